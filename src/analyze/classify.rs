//! Telling readable text from ciphertext: byte statistics and the verdict built on them.
//!
//! Owns the statistics (Shannon entropy against the entropy expected of random bytes of the
//! same length, printable UTF-8 ratio, chi-square when the sample is large enough), the
//! detection of text encodings that carry high-entropy bytes (base64, hex, decimal numbers),
//! and the plain-words reason given for each verdict. It sees bytes only: never packets,
//! files or streams. Input is fed in pieces so memory stays bounded whatever the length.
//!
//! How a verdict is reached, in order:
//! 1. Under 16 bytes nothing can be told (`inconclusive`).
//! 2. Character class first: random bytes are printable UTF-8 with probability about 0.45
//!    each, so data that is (almost) all printable UTF-8 is text of some kind. Text made only
//!    of the characters of an encoding (decimal numbers, hex digits, base64), or mostly of
//!    long tokens of one (a JSON envelope around a base64 field), is decoded and the decoded
//!    bytes judged in turn (`encoded`); other text is `plaintext`.
//! 3. Non-text is `ciphertext` when its byte histogram is as flat as random bytes of the same
//!    length would give (a dispersion test valid at every length, plus Shannon entropy
//!    against its exact expectation for that length), otherwise `binary`.
//!
//! Memory is a 256-bin histogram (bytes are counted in four interleaved scratch tables, the
//! thread's own or ones lent for a run of pieces, then added to it), a UTF-8 decoder state
//! carried across pieces, and the first 64 KiB as a sample for encoding detection (copied, or
//! noted by its place in the capture file and read back if needed: see `sample`). The
//! printable count of a stream decodes every byte of the first 64 KiB and one 64 KiB block in
//! 16 after it, which keeps `update` at histogram speed on long streams; a single message
//! given to [`classify`] is decoded in full.

use std::borrow::Cow;
use std::fs::File;
use std::sync::{Arc, OnceLock};

use serde::Serialize;

use super::input::sample::Sample;

/// What an eavesdropper is looking at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Readable text.
    Plaintext,
    /// High entropy: encrypted, or compressed (the two look alike).
    Ciphertext,
    /// Printable text that carries high-entropy bytes (base64, hex, decimal numbers).
    Encoded,
    /// Not text, low entropy, structured.
    Binary,
    /// Several kinds, e.g. a readable key exchange followed by ciphertext.
    Mixed,
    /// Too few bytes to tell.
    Inconclusive,
    /// No bytes at all.
    Empty,
}

impl Verdict {
    /// The verdict as its lowercase name (as in the JSON output).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Plaintext => "plaintext",
            Verdict::Ciphertext => "ciphertext",
            Verdict::Encoded => "encoded",
            Verdict::Binary => "binary",
            Verdict::Mixed => "mixed",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Empty => "empty",
        }
    }
}

/// How sure the verdict is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// Strong evidence.
    High,
    /// Some evidence.
    Medium,
    /// Weak evidence.
    Low,
}

/// A text encoding of binary data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Base64 (standard or URL-safe alphabet).
    Base64,
    /// Hexadecimal digits.
    Hex,
    /// Decimal numbers (textbook RSA printed as integers).
    Decimal,
}

impl Encoding {
    /// The encoding as its lowercase name (as in the JSON output).
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Base64 => "base64",
            Encoding::Hex => "hex",
            Encoding::Decimal => "decimal",
        }
    }
}

/// The numbers behind a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    /// Bytes examined.
    pub bytes: u64,
    /// Shannon entropy in bits per byte.
    pub entropy: f64,
    /// Mean Shannon entropy of uniformly random bytes of the same length.
    pub expected_random_entropy: f64,
    /// Share of the bytes that are printable UTF-8 text (0..=1): valid UTF-8, not a control
    /// character except tab, newline and carriage return. For a stream, exact for the first
    /// 64 KiB; beyond it, estimated from one 64 KiB block in 16.
    pub printable_ratio: f64,
    /// Chi-square statistic against uniform bytes, when the sample is large enough.
    pub chi_square: Option<f64>,
}

/// A verdict with its confidence, reason and numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    /// The verdict.
    pub verdict: Verdict,
    /// How sure.
    pub confidence: Confidence,
    /// For `Encoded`: which encoding.
    pub encoding: Option<Encoding>,
    /// For `Encoded`: the size of the decoded bytes.
    pub decoded_bytes: Option<u64>,
    /// One plain sentence a student can follow.
    pub reason: String,
    /// The numbers behind it.
    pub stats: Stats,
}

/// A verdict and its confidence, without the reason and the numbers: all that is kept of
/// each message of a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Brief {
    /// The verdict.
    pub verdict: Verdict,
    /// How sure.
    pub confidence: Confidence,
}

impl Classification {
    /// The verdict and confidence alone.
    pub fn brief(&self) -> Brief {
        Brief { verdict: self.verdict, confidence: self.confidence }
    }
}

/// Fewer bytes than this are `inconclusive`.
pub const MIN_BYTES: u64 = 16;
/// Chi-square is reported from this many bytes on (5 expected per bin).
pub const CHI_SQUARE_MIN_BYTES: u64 = 1280;
pub use super::input::sample::SAMPLE_LIMIT;

const LANES: usize = 4;
/// Interleaved counting tables: consecutive bytes go to different tables, so repeated bytes
/// (spaces in text) do not wait on each other.
type Lanes = [[u32; 256]; LANES];

thread_local! {
    /// Each thread's scratch lanes: always in cache, whichever stream is being counted.
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}
/// Counting tables lent to an accumulator for several pieces in a row, so that their counts
/// are added to the accumulator's own table once (see [`Accumulator::update_lent`]) instead
/// of once per piece.
#[derive(Debug)]
pub struct Scratch {
    lanes: Box<Lanes>,
    /// Bytes counted in `lanes` and not yet added to their accumulator.
    pending: u64,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch { lanes: Box::new([[0; 256]; LANES]), pending: 0 }
    }
}

/// Fold the 32-bit counters before this many bytes were counted in them.
const FOLD_EVERY: u64 = 1 << 31;
/// A streaming [`Accumulator`] decodes every byte of its first `STREAM_EXACT_BLOCKS` blocks of
/// `BLOCK` bytes (64 KiB) for the printable count, then one block in `SAMPLE_EVERY`: decoding
/// UTF-8 costs more than the histogram, and a systematic 1-in-16 sample of a long stream
/// estimates the ratio to well under a percent. [`classify`], which judges one message or
/// sample, decodes every byte.
const BLOCK: u64 = 64 * 1024;
const STREAM_EXACT_BLOCKS: u64 = 1;
const SAMPLE_EVERY: u64 = 16;
/// Pieces shorter than `LANES * LANE_MIN` are scanned in one lane.
const LANE_MIN: usize = 128;

// ---------------------------------------------------------------------------------------------
// Printable UTF-8 counting: a table-driven decoder. Each entry is `out << 8 | next_state`, where
// `out` is the number of bytes that just completed a printable character (0 when the byte only
// advanced a sequence, or was invalid, or completed a control character). A byte that breaks a
// sequence drops the pending bytes and is decoded afresh from the start state.

const START: u8 = 0;
const C2_1: u8 = 1; // after C2: U+0080..U+00BF, of which U+0080..U+009F are controls
const N2_1: u8 = 2; // two-byte sequence, one continuation to go
const E0_2: u8 = 3; // after E0: next must be A0..BF
const N3_2: u8 = 4; // three-byte sequence, two to go
const ED_2: u8 = 5; // after ED: next must be 80..9F (no surrogates)
const N3_1: u8 = 6; // three-byte sequence, one to go
const F0_3: u8 = 7; // after F0: next must be 90..BF
const N4_3: u8 = 8; // four-byte sequence, three to go
const F4_3: u8 = 9; // after F4: next must be 80..8F
const N4_2: u8 = 10; // four-byte sequence, two to go
const N4_1: u8 = 11; // four-byte sequence, one to go

const fn entry(next: u8, out: u16) -> u16 {
    (out << 8) | next as u16
}

const fn from_start(b: u8) -> u16 {
    match b {
        0x09 | 0x0A | 0x0D | 0x20..=0x7E => entry(START, 1),
        0xC2 => entry(C2_1, 0),
        0xC3..=0xDF => entry(N2_1, 0),
        0xE0 => entry(E0_2, 0),
        0xED => entry(ED_2, 0),
        0xE1..=0xEF => entry(N3_2, 0),
        0xF0 => entry(F0_3, 0),
        0xF1..=0xF3 => entry(N4_3, 0),
        0xF4 => entry(F4_3, 0),
        _ => entry(START, 0),
    }
}

const fn transition(s: u8, b: u8) -> u16 {
    let cont = b >= 0x80 && b <= 0xBF;
    match s {
        C2_1 if cont => entry(START, if b < 0xA0 { 0 } else { 2 }),
        N2_1 if cont => entry(START, 2),
        E0_2 if b >= 0xA0 && b <= 0xBF => entry(N3_1, 0),
        N3_2 if cont => entry(N3_1, 0),
        ED_2 if b >= 0x80 && b <= 0x9F => entry(N3_1, 0),
        N3_1 if cont => entry(START, 3),
        F0_3 if b >= 0x90 && b <= 0xBF => entry(N4_2, 0),
        N4_3 if cont => entry(N4_2, 0),
        F4_3 if b >= 0x80 && b <= 0x8F => entry(N4_2, 0),
        N4_2 if cont => entry(N4_1, 0),
        N4_1 if cont => entry(START, 4),
        _ => from_start(b),
    }
}

const fn build_utf8_table() -> [[u16; 256]; 16] {
    let mut t = [[0u16; 256]; 16];
    let mut s = 0;
    while s < 16 {
        let mut b = 0;
        while b < 256 {
            t[s][b] = transition(s as u8, b as u8);
            b += 1;
        }
        s += 1;
    }
    t
}

static UTF8: [[u16; 256]; 16] = build_utf8_table();

fn is_continuation(b: u8) -> bool {
    (0x80..=0xBF).contains(&b)
}

/// Scan one lane: histogram and printable count, returning the final decoder state.
///
/// (Here and in the other scanners, indexing cannot fail: a `u8` indexes 256-entry tables and
/// `& 15` one of the decoder's 16 rows.)
#[inline(always)]
fn scan_lane(data: &[u8], hist: &mut [u32; 256], state: usize, printable: &mut u64) -> usize {
    let mut st = state;
    let mut count = 0u64;
    for &b in data {
        hist[b as usize] += 1;
        let e = UTF8[st & 15][b as usize];
        st = (e & 15) as usize;
        count += u64::from(e >> 8);
    }
    *printable += count;
    st
}

/// Histogram only, four interleaved tables. Eight bytes are loaded at once and taken apart
/// with shifts: half the loads of one byte at a time.
fn count_only(data: &[u8], hist: &mut Lanes) {
    let [h0, h1, h2, h3] = hist;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let Ok(w) = <[u8; 8]>::try_from(w) else { continue };
        let v = u64::from_le_bytes(w);
        h0[(v & 0xff) as usize] += 1;
        h1[((v >> 8) & 0xff) as usize] += 1;
        h2[((v >> 16) & 0xff) as usize] += 1;
        h3[((v >> 24) & 0xff) as usize] += 1;
        h0[((v >> 32) & 0xff) as usize] += 1;
        h1[((v >> 40) & 0xff) as usize] += 1;
        h2[((v >> 48) & 0xff) as usize] += 1;
        h3[(v >> 56) as usize] += 1;
    }
    for &b in words.remainder() {
        h0[b as usize] += 1;
    }
}

/// Histogram only, one table (for a few bytes).
fn count_one_table(data: &[u8], hist: &mut [u32; 256]) {
    for &b in data {
        hist[b as usize] += 1;
    }
}

/// Printable bytes in ASCII-only data (no branch per byte, so it vectorises).
fn count_printable_ascii(data: &[u8]) -> u64 {
    data.chunks(1 << 16)
        .map(|chunk| {
            chunk
                .iter()
                .map(|&b| {
                    u32::from(
                        (b.wrapping_sub(0x20) < 0x5f) | (b == b'\t') | (b == b'\n') | (b == b'\r'),
                    )
                })
                .sum::<u32>()
        })
        .map(u64::from)
        .sum()
}

/// Move a lane boundary forward past at most three continuation bytes, so that each lane
/// starts where a character may start (UTF-8 resynchronises within three bytes).
fn lane_boundary(data: &[u8], at: usize) -> usize {
    let mut i = at;
    while i < at + 3 && data.get(i).is_some_and(|&b| is_continuation(b)) {
        i += 1;
    }
    i.min(data.len())
}

/// Incremental classifier: feed bytes in pieces, then ask for the verdict.
///
/// Memory is bounded: a histogram, a decoder state and the first [`SAMPLE_LIMIT`] bytes.
#[derive(Debug, Clone)]
pub struct Accumulator {
    bytes: u64,
    /// 32-bit counters, one table (a kilobyte: with hundreds of streams fed in turn, each
    /// stream's table is mostly out of cache, so it should be small); folded into `folded`
    /// before any could overflow. Pieces are first counted in a per-thread scratch table of
    /// several interleaved lanes that stays in cache, then added here.
    hist: Box<[u32; 256]>,
    /// Made at the first fold (after 2^31 bytes), so that short messages do not pay for it.
    folded: Option<Box<[u64; 256]>>,
    /// `bytes` when the counters were last folded.
    folded_at: u64,
    printable: u64,
    /// Bytes decoded for the printable count (all of the first blocks, then 1 block in 16).
    examined: u64,
    /// How many leading blocks are decoded in full.
    exact_blocks: u64,
    utf8_state: usize,
    /// Stream offset just after the last decoded byte: where `utf8_state` applies.
    state_offset: u64,
    sample: Sample,
}

impl Default for Accumulator {
    fn default() -> Self {
        Self {
            bytes: 0,
            hist: Box::new([0; 256]),
            folded: None,
            folded_at: 0,
            printable: 0,
            examined: 0,
            exact_blocks: STREAM_EXACT_BLOCKS,
            utf8_state: START as usize,
            state_offset: 0,
            sample: Sample::default(),
        }
    }
}

impl Accumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// An accumulator that decodes every byte for the printable count, however long the
    /// input (slower on long streams; what [`classify`] uses).
    pub fn exact() -> Self {
        Self { exact_blocks: u64::MAX, ..Self::default() }
    }

    /// An accumulator whose sample notes where bytes that came straight from the capture
    /// `file` are instead of copying them (see [`Accumulator::update_lent_at`]).
    pub fn sampling_in(file: Arc<File>) -> Self {
        Self { sample: Sample::in_file(file), ..Self::default() }
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.bytes
    }

    /// True when nothing has been fed.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Add the next bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.update_at(data, None);
    }

    /// [`Accumulator::update`] for bytes found at position `at` of the capture file (see
    /// [`Accumulator::update_lent_at`]).
    pub fn update_at(&mut self, data: &[u8], at: Option<u64>) {
        // Counted in the thread's own scratch tables (always in cache, whichever stream this
        // is), then added to this accumulator at once.
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => {
                self.update_lent_at(data, at, &mut scratch);
                self.settle(&mut scratch);
            }
            Err(_) => {
                let mut scratch = Scratch::default();
                self.update_lent_at(data, at, &mut scratch);
                self.settle(&mut scratch);
            }
        });
    }

    /// Add the next bytes, counting them in `scratch` and leaving the counts there: call
    /// [`Accumulator::settle`] with the same scratch before using it for another accumulator
    /// or asking this one anything. Every other method gives the same results as [`update`]
    /// once settled.
    ///
    /// [`update`]: Accumulator::update
    pub fn update_lent(&mut self, data: &[u8], scratch: &mut Scratch) {
        self.update_lent_at(data, None, scratch);
    }

    /// [`Accumulator::update_lent`] for bytes found at position `at` of the capture file,
    /// when they came straight from it: an accumulator made by [`Accumulator::sampling_in`]
    /// notes that position for its sample instead of copying the bytes.
    pub fn update_lent_at(&mut self, data: &[u8], at: Option<u64>, scratch: &mut Scratch) {
        // No counter can pass u32::MAX while fewer than 2^32 bytes were counted since the
        // last fold: the lanes' counters and the table's stay below 2^31.
        if data.len() as u64 >= FOLD_EVERY / 2 {
            let step = FOLD_EVERY as usize / 4;
            for (i, piece) in data.chunks(step).enumerate() {
                let at = at.map(|a| a + (i * step) as u64);
                self.update_lent_at(piece, at, scratch);
            }
            return;
        }
        if scratch.pending + data.len() as u64 >= FOLD_EVERY / 2 {
            self.settle(scratch);
        }
        if self.bytes - self.folded_at + data.len() as u64 >= FOLD_EVERY {
            self.settle(scratch);
            self.fold();
        }
        self.sample.push(data, at);
        if data.len() < LANES * LANE_MIN {
            // A few bytes (a chat message): counting them in the lanes would mean adding up
            // and clearing all of the lanes' counters for them.
            self.count(data, None);
        } else {
            self.count(data, Some(&mut scratch.lanes));
            scratch.pending += data.len() as u64;
        }
    }

    /// Add the counts left in `scratch` by [`Accumulator::update_lent`] to this accumulator,
    /// and clear it.
    pub fn settle(&mut self, scratch: &mut Scratch) {
        if scratch.pending > 0 {
            self.merge(&mut scratch.lanes);
            scratch.pending = 0;
        }
    }

    /// Count `data` into `lanes`, or without them (for fewer than `LANES * LANE_MIN` bytes)
    /// straight into this accumulator's own table; the printable count goes into `self`.
    /// Either way gives the same counts: that few bytes are decoded one lane, [`scan_lane`].
    fn count(&mut self, data: &[u8], mut lanes: Option<&mut Lanes>) {
        let mut rest = data;
        while !rest.is_empty() {
            let offset = self.bytes;
            let block = offset / BLOCK;
            let room = (BLOCK - offset % BLOCK) as usize;
            let Some((piece, tail)) = rest.split_at_checked(room.min(rest.len())) else {
                break;
            };
            let decode = block < self.exact_blocks || block.is_multiple_of(SAMPLE_EVERY);
            if decode && self.state_offset != offset {
                // The bytes in between were not decoded: start afresh.
                self.utf8_state = START as usize;
            }
            match lanes.as_deref_mut() {
                Some(lanes) if decode => {
                    if self.utf8_state == START as usize && piece.is_ascii() {
                        // All ASCII (most text, and every encoding): no decoder needed.
                        count_only(piece, lanes);
                        self.printable += count_printable_ascii(piece);
                    } else if piece.len() < LANES * LANE_MIN || !self.scan_interleaved(piece, lanes)
                    {
                        let [h0, ..] = lanes;
                        self.utf8_state =
                            scan_lane(piece, h0, self.utf8_state, &mut self.printable);
                    }
                }
                None if decode => {
                    if self.utf8_state == START as usize && piece.is_ascii() {
                        count_one_table(piece, &mut self.hist);
                        self.printable += count_printable_ascii(piece);
                    } else {
                        let state = self.utf8_state;
                        self.utf8_state =
                            scan_lane(piece, &mut self.hist, state, &mut self.printable);
                    }
                }
                Some(lanes) => count_only(piece, lanes),
                None => count_one_table(piece, &mut self.hist),
            }
            if decode {
                self.examined += piece.len() as u64;
                self.state_offset = offset + piece.len() as u64;
            }
            self.bytes += piece.len() as u64;
            rest = tail;
        }
    }

    /// Split `data` into four lanes scanned side by side (independent dependency chains and
    /// histogram tables). Returns false, having done nothing, if the split fails.
    fn scan_interleaved(&mut self, data: &[u8], lanes: &mut Lanes) -> bool {
        let q = data.len() / LANES;
        let b1 = lane_boundary(data, q);
        let b2 = lane_boundary(data, 2 * q).max(b1);
        let b3 = lane_boundary(data, 3 * q).max(b2);
        let (Some(l0), Some(l1), Some(l2), Some(l3)) =
            (data.get(..b1), data.get(b1..b2), data.get(b2..b3), data.get(b3..))
        else {
            return false;
        };
        let m = l0.len().min(l1.len()).min(l2.len()).min(l3.len());
        let (Some((a0, t0)), Some((a1, t1)), Some((a2, t2)), Some((a3, t3))) = (
            l0.split_at_checked(m),
            l1.split_at_checked(m),
            l2.split_at_checked(m),
            l3.split_at_checked(m),
        ) else {
            return false;
        };
        let [h0, h1, h2, h3] = lanes;
        let (mut s0, mut s1, mut s2, mut s3) = (self.utf8_state, 0usize, 0usize, 0usize);
        let (mut c0, mut c1, mut c2, mut c3) = (0u64, 0u64, 0u64, 0u64);
        for (((&x0, &x1), &x2), &x3) in a0.iter().zip(a1).zip(a2).zip(a3) {
            h0[x0 as usize] += 1;
            h1[x1 as usize] += 1;
            h2[x2 as usize] += 1;
            h3[x3 as usize] += 1;
            let e0 = UTF8[s0 & 15][x0 as usize];
            let e1 = UTF8[s1 & 15][x1 as usize];
            let e2 = UTF8[s2 & 15][x2 as usize];
            let e3 = UTF8[s3 & 15][x3 as usize];
            s0 = (e0 & 15) as usize;
            s1 = (e1 & 15) as usize;
            s2 = (e2 & 15) as usize;
            s3 = (e3 & 15) as usize;
            c0 += u64::from(e0 >> 8);
            c1 += u64::from(e1 >> 8);
            c2 += u64::from(e2 >> 8);
            c3 += u64::from(e3 >> 8);
        }
        self.printable += c0 + c1 + c2 + c3;
        // Lanes 0..2 end where the next lane starts a character: what they leave pending can
        // never complete, so their final states are dropped.
        scan_lane(t0, h0, s0, &mut self.printable);
        scan_lane(t1, h1, s1, &mut self.printable);
        scan_lane(t2, h2, s2, &mut self.printable);
        self.utf8_state = scan_lane(t3, h3, s3, &mut self.printable);
        true
    }

    /// The byte histogram of everything fed so far.
    pub fn histogram(&self) -> [u64; 256] {
        let mut h = self.folded.as_deref().copied().unwrap_or([0; 256]);
        for (total, &c) in h.iter_mut().zip(self.hist.iter()) {
            *total += u64::from(c);
        }
        h
    }

    /// Move the 32-bit counters into the 64-bit totals.
    fn fold(&mut self) {
        let folded = self.folded.get_or_insert_with(|| Box::new([0; 256]));
        for (total, c) in folded.iter_mut().zip(self.hist.iter_mut()) {
            *total += u64::from(*c);
            *c = 0;
        }
        self.folded_at = self.bytes;
    }

    /// Ask for this accumulator's counting table to be brought into the cache, ahead of
    /// [`Accumulator::settle`].
    pub fn prefetch(&self) {
        crate::analyze::engine::cache::prefetch_value(&*self.hist);
    }

    /// Add the scratch lanes into this accumulator's table and clear them.
    fn merge(&mut self, lanes: &mut Lanes) {
        let [l0, l1, l2, l3] = lanes;
        for (i, h) in self.hist.iter_mut().enumerate() {
            // `i` < 256: every lane has 256 entries.
            *h += l0[i] + l1[i] + l2[i] + l3[i];
        }
        *lanes = [[0; 256]; LANES];
    }

    /// The verdict on everything fed so far.
    pub fn finish(&self) -> Classification {
        self.judge(true, true)
    }

    /// The verdict on everything fed so far and its confidence: the same as
    /// [`Accumulator::finish`] gives, without writing the reason.
    pub fn brief(&self) -> Brief {
        self.judge(true, false).brief()
    }

    /// The verdict, with encoding checks if `detect_encodings`, with a reason if `words`.
    fn judge(&self, detect_encodings: bool, words: bool) -> Classification {
        // A message cut out of a stream may start or end inside a character: up to three
        // continuation bytes at the start and an unfinished sequence at the end are pieces of
        // text, not evidence against it.
        let leading = self.sample.head().iter().take_while(|&&b| is_continuation(b)).count();
        let trailing = if self.state_offset == self.bytes {
            match self.utf8_state as u8 {
                N3_1 | N4_2 => 2,
                N4_1 => 3,
                START => 0,
                _ => 1,
            }
        } else {
            0
        };
        let printable = self.printable + leading as u64 + trailing;
        let facts = Facts::new(self.bytes, self.histogram(), printable, self.examined, words);
        // The sample may have to be read back from the capture file: only if it is needed. If
        // the file cannot give it back (it was cut short under us), there are no encoding
        // checks.
        facts.decide(detect_encodings, || self.sample.bytes())
    }
}

/// Classify one complete piece of data.
pub fn classify(data: &[u8]) -> Classification {
    let mut acc = Accumulator::exact();
    acc.update(data);
    acc.finish()
}

// ---------------------------------------------------------------------------------------------
// Statistics

/// Shannon entropy in bits per byte of a byte histogram.
pub fn shannon_entropy(hist: &[u64; 256]) -> f64 {
    let n: u64 = hist.iter().sum();
    if n == 0 {
        return 0.0;
    }
    let nf = n as f64;
    let sum: f64 = hist.iter().filter(|&&c| c > 1).map(|&c| (c as f64) * (c as f64).log2()).sum();
    (nf.log2() - sum / nf).max(0.0)
}

/// Pearson's chi-square statistic of a byte histogram against uniform bytes (255 degrees of
/// freedom: mean 255, standard deviation about 22.6 for random bytes).
pub fn chi_square(hist: &[u64; 256]) -> f64 {
    let n: u64 = hist.iter().sum();
    if n == 0 {
        return 0.0;
    }
    let expected = n as f64 / 256.0;
    hist.iter()
        .map(|&c| {
            let d = c as f64 - expected;
            d * d / expected
        })
        .sum()
}

const CACHED_EXPECTED: usize = 1024;

/// Mean Shannon entropy (bits per byte) of `n` uniformly random bytes: the exact expectation
/// of the plug-in estimator, `log2 n - (256/n) * sum_k P(c = k) k log2 k` with
/// `c ~ Binomial(n, 1/256)`, summed outward from the mode until the terms vanish (about
/// 10 standard deviations), cached for n up to 1024. From 2^18 bytes on, the
/// asymptotic series for 256 equally likely values is used instead:
/// `8 - (255/2n + 65535/12n^2 + 16711680/12n^3)/ln 2`, within 1e-12 of the sum there.
pub fn expected_random_entropy(n: u64) -> f64 {
    static CACHE: OnceLock<Vec<f64>> = OnceLock::new();
    if n < CACHED_EXPECTED as u64 {
        let table = CACHE.get_or_init(|| (0..CACHED_EXPECTED as u64).map(expected_exact).collect());
        if let Some(&v) = table.get(n as usize) {
            return v;
        }
    }
    if n >= ASYMPTOTIC_FROM {
        let nf = n as f64;
        let nats =
            255.0 / (2.0 * nf) + 65535.0 / (12.0 * nf * nf) + 16_711_680.0 / (12.0 * nf.powi(3));
        return 8.0 - nats / std::f64::consts::LN_2;
    }
    expected_exact(n)
}

/// Length from which [`expected_random_entropy`] uses its asymptotic series.
const ASYMPTOTIC_FROM: u64 = 1 << 18;

fn expected_exact(n: u64) -> f64 {
    if n <= 1 {
        return 0.0;
    }
    let nf = n as f64;
    let p = 1.0 / 256.0;
    let odds = p / (1.0 - p);
    let mode = ((nf + 1.0) * p).floor().min(nf);
    let klogk = |k: f64| if k > 1.0 { k * k.log2() } else { 0.0 };
    // Unnormalised weights relative to the mode; normalising by their sum makes the result
    // exact without any factorials.
    let mut weight_sum = 1.0;
    let mut moment = klogk(mode);
    let mut w = 1.0;
    let mut k = mode;
    while k < nf {
        w *= (nf - k) / (k + 1.0) * odds;
        k += 1.0;
        weight_sum += w;
        moment += w * klogk(k);
        if w < 1e-20 {
            break;
        }
    }
    let mut w = 1.0;
    let mut k = mode;
    while k > 0.0 {
        w *= k / (nf - k + 1.0) / odds;
        k -= 1.0;
        weight_sum += w;
        moment += w * klogk(k);
        if w < 1e-20 {
            break;
        }
    }
    nf.log2() - 256.0 / nf * (moment / weight_sum)
}

/// Is this histogram as flat as `n` random bytes would give? Either the chi-square statistic
/// is within 6 standard deviations of its mean for random bytes (an exact mean and variance
/// for every `n`, so it works on short samples too), or the entropy is close to the
/// expectation for random bytes of that length: within 3% plus `0.7/sqrt(n)` (15% at 32
/// bytes, 7% at 256, 4% at 4 KiB). Compressed data passes the second: it is not perfectly
/// uniform (a deflate block starts with its Huffman tables), but far flatter than structured
/// binary, which is full of zeros and repeated bytes.
fn looks_random(n: u64, chi: f64, entropy: f64, expected: f64) -> (bool, bool) {
    let chi_ok = chi <= 255.0 + 6.0 * 510f64.sqrt();
    let tolerance = 0.03 + 0.7 / (n.max(1) as f64).sqrt();
    let entropy_ok = entropy >= expected * (1.0 - tolerance);
    (chi_ok, entropy_ok)
}

struct Facts {
    n: u64,
    hist: [u64; 256],
    /// Which byte values occur (bit `b % 64` of word `b / 64`).
    present: [u64; 4],
    printable: u64,
    entropy: f64,
    expected: f64,
    chi: f64,
    /// Whether to write the reasons (see [`Facts::say`]).
    words: bool,
}

fn pct(x: f64) -> String {
    let p = x * 100.0;
    if p > 99.5 && p < 100.0 {
        "over 99%".into()
    } else if p > 0.0 && p < 0.5 {
        "under 1%".into()
    } else {
        format!("{p:.0}%")
    }
}

/// `n` and the word for one or for many: "1 byte", "2 bytes".
pub(crate) fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 { format!("{n} {one}") } else { format!("{n} {many}") }
}

fn rsa_hint(len: u64) -> Option<u32> {
    match len {
        128 => Some(1024),
        256 => Some(2048),
        384 => Some(3072),
        512 => Some(4096),
        _ => None,
    }
}

/// What the encoding check found.
enum EncodingCheck {
    Found(Classification),
    /// Could be an encoding or a single word: too short to tell.
    Ambiguous(String),
    None,
}

impl Facts {
    /// `printable` of `examined` bytes were printable; scaled up when only a sample was decoded.
    /// Without `words`, only the verdict and confidence of what [`Facts::decide`] returns mean
    /// anything: the numbers no verdict on text depends on are then not worked out for it.
    fn new(n: u64, hist: [u64; 256], printable: u64, examined: u64, words: bool) -> Self {
        let printable = if examined >= n || examined == 0 {
            printable
        } else {
            (printable as f64 * n as f64 / examined as f64).round() as u64
        }
        .min(n);
        let numbers = words || n - printable > n / 20;
        let (entropy, expected, chi) = if numbers {
            (shannon_entropy(&hist), expected_random_entropy(n), chi_square(&hist))
        } else {
            (0.0, 0.0, 0.0)
        };
        let mut present = [0u64; 4];
        for (word, counts) in present.iter_mut().zip(hist.chunks_exact(64)) {
            *word = counts.iter().zip(0..).fold(0, |w, (&c, i)| w | u64::from(c > 0) << i);
        }
        Facts { n, hist, present, printable, entropy, expected, chi, words }
    }

    /// `reason()`, or nothing when no reasons are wanted: a message's verdict is kept without
    /// one, and writing them took most of the time on captures of many short messages.
    fn say(&self, reason: impl FnOnce() -> String) -> String {
        if self.words { reason() } else { String::new() }
    }

    /// The byte values that occur, in order.
    fn occurring(&self) -> impl Iterator<Item = u8> + '_ {
        self.present.iter().zip(0u8..).flat_map(|(&word, w)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                let bit = bits.trailing_zeros() as u8;
                bits &= bits.wrapping_sub(1);
                (bit < 64).then(|| w * 64 + bit)
            })
        })
    }

    fn stats(&self) -> Stats {
        Stats {
            bytes: self.n,
            entropy: self.entropy,
            expected_random_entropy: self.expected,
            printable_ratio: if self.n == 0 { 0.0 } else { self.printable as f64 / self.n as f64 },
            chi_square: (self.n >= CHI_SQUARE_MIN_BYTES).then_some(self.chi),
        }
    }

    /// A verdict, its reason written only if reasons are wanted (see [`Facts::say`]).
    fn make(
        &self,
        verdict: Verdict,
        confidence: Confidence,
        reason: impl FnOnce() -> String,
    ) -> Classification {
        Classification {
            verdict,
            confidence,
            encoding: None,
            decoded_bytes: None,
            reason: self.say(reason),
            stats: self.stats(),
        }
    }

    fn count_where(&self, f: impl Fn(u8) -> bool) -> u64 {
        self.occurring().filter(|&b| f(b)).filter_map(|b| self.hist.get(usize::from(b))).sum()
    }

    fn only(&self, f: impl Fn(u8) -> bool) -> bool {
        self.occurring().all(f)
    }

    /// The verdict; `sample` gives the first bytes for the encoding checks (`None` if they
    /// cannot be had: then there are no encoding checks).
    fn decide<'s>(
        &self,
        detect: bool,
        sample: impl FnOnce() -> Option<Cow<'s, [u8]>>,
    ) -> Classification {
        let n = self.n;
        if n == 0 {
            return self.make(Verdict::Empty, Confidence::High, || {
                "No bytes were sent, so there is nothing to read.".into()
            });
        }
        if n < MIN_BYTES {
            return self.make(
                Verdict::Inconclusive,
                Confidence::Low,
                || {
                    format!(
                        "Only {}: too few to tell readable text from ciphertext (at least {MIN_BYTES} are needed).",
                        plural(n, "byte", "bytes")
                    )
                },
            );
        }
        let ratio = self.printable as f64 / n as f64;
        let nonprintable = n - self.printable;
        if nonprintable <= n / 20 {
            // No sample (not asked for, or lost): no encoding checks.
            if let Some(sample) = if detect { sample() } else { None }.as_deref() {
                if self.only(|b| b.is_ascii()) {
                    match self.check_encodings(sample) {
                        EncodingCheck::Found(c) => return c,
                        EncodingCheck::Ambiguous(reason) => {
                            return self.make(Verdict::Inconclusive, Confidence::Low, || reason);
                        }
                        EncodingCheck::None => {}
                    }
                }
                if let Some(c) = self.check_embedded(sample) {
                    return c;
                }
            }
            return self.plaintext(ratio);
        }
        let (chi_ok, entropy_ok) = looks_random(self.n, self.chi, self.entropy, self.expected);
        // Random bytes are about 45% printable; allow four standard deviations above that
        // (short samples vary a lot), and never more than 80% on long ones.
        let printable_cap = (0.45 + 4.0 * (0.25 / n as f64).sqrt()).max(0.8);
        if (chi_ok || entropy_ok) && ratio < printable_cap {
            let confidence = if chi_ok && entropy_ok && n >= 64 {
                Confidence::High
            } else if n >= 32 {
                Confidence::Medium
            } else {
                Confidence::Low
            };
            return self.make(
                Verdict::Ciphertext,
                confidence,
                || {
                    format!(
                        "The {n} bytes look like random noise (entropy {:.2} bits/byte against {:.2} for random bytes of that length, only {} printable), so they are encrypted (or compressed): the two look alike.",
                        self.entropy,
                        self.expected,
                        pct(ratio)
                    )
                },
            );
        }
        let confidence = if n >= 64 && self.entropy < self.expected * 0.9 {
            Confidence::High
        } else if n >= 32 {
            Confidence::Medium
        } else {
            Confidence::Low
        };
        self.make(Verdict::Binary, confidence, || {
            let what = if ratio >= 0.7 {
                format!("mostly text ({} printable) mixed with non-text bytes", pct(ratio))
            } else {
                format!("not text (only {} printable)", pct(ratio))
            };
            format!(
                "The {n} bytes are {what} and too uneven to be random (entropy {:.2} bits/byte against {:.2} for random bytes of that length), so this is structured binary data, not ciphertext.",
                self.entropy, self.expected
            )
        })
    }

    fn plaintext(&self, ratio: f64) -> Classification {
        let n = self.n;
        let non_ascii = self.count_where(|b| !b.is_ascii()) > 0;
        let has_space = self.count_where(|b| b == b' ' || b == b'\n' || b == b'\t') > 0;
        let confidence = if !non_ascii && !has_space {
            Confidence::Low
        } else if n >= 64 && ratio >= 0.98 {
            Confidence::High
        } else {
            Confidence::Medium
        };
        let script = if non_ascii { " (including non-Latin letters)" } else { "" };
        self.make(Verdict::Plaintext, confidence, || {
            format!(
                "{} of the {n} bytes are printable UTF-8 text{script}, which random bytes almost never are, so anyone on the path can read it (entropy {:.2} bits/byte, random bytes would give {:.2}).",
                pct(ratio),
                self.entropy,
                self.expected
            )
        })
    }

    fn check_encodings(&self, sample: &[u8]) -> EncodingCheck {
        if let Some(c) = self.check_decimal(sample) {
            return EncodingCheck::Found(c);
        }
        if let Some(c) = self.check_hex(sample) {
            return EncodingCheck::Found(c);
        }
        self.check_base64(sample)
    }

    fn check_decimal(&self, sample: &[u8]) -> Option<Classification> {
        let sep = |b: u8| {
            matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b',' | b';' | b'[' | b']' | b'(' | b')')
        };
        if !self.only(|b| b.is_ascii_digit() || sep(b)) {
            return None;
        }
        let digits = self.count_where(|b| b.is_ascii_digit());
        if digits * 2 < self.n {
            return None;
        }
        let numbers: Vec<&[u8]> =
            sample.split(|b| !b.is_ascii_digit()).filter(|t| !t.is_empty()).collect();
        // Space-separated pairs of digits are a hex dump that happens to have no letters.
        if numbers.len() >= 4 && numbers.iter().all(|t| t.len() == 2) {
            return None;
        }
        let mut decoded = Vec::new();
        let mut lengths = Vec::new();
        let mut sample_digits = 0u64;
        for t in &numbers {
            let bytes = decimal_to_bytes(t);
            sample_digits += t.len() as u64;
            lengths.push(bytes.len() as u64);
            decoded.extend_from_slice(&bytes);
        }
        let sample_decoded = decoded.len() as u64;
        let total = if sample_digits >= digits || sample_digits == 0 {
            sample_decoded
        } else {
            (sample_decoded as f64 * digits as f64 / sample_digits as f64).round() as u64
        };
        let count = numbers.len() as u64;
        let first = lengths.first().copied().unwrap_or(0);
        let same = lengths.iter().all(|&l| l == first);
        let hint = if same { rsa_hint(first) } else { None };
        let mean_digits = if count == 0 { 0.0 } else { sample_digits as f64 / count as f64 };
        let what = if count == 1 {
            "one decimal number".to_string()
        } else {
            format!("{count} decimal numbers")
        };
        let what = if sample.len() as u64 == self.n {
            what
        } else {
            format!("{what} (in the first {} bytes)", sample.len())
        };
        let hint_text = match hint {
            Some(bits) if count == 1 => format!(", the size of one RSA-{bits} block"),
            Some(bits) => format!(", each the size of one RSA-{bits} block"),
            None => String::new(),
        };
        let small = mean_digits < 6.0;
        Some(self.encoded(Encoding::Decimal, &what, &decoded, total, &hint_text, small))
    }

    fn check_hex(&self, sample: &[u8]) -> Option<Classification> {
        let ws = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
        if !self.only(|b| b.is_ascii_hexdigit() || ws(b)) {
            return None;
        }
        let digits = self.count_where(|b| b.is_ascii_hexdigit());
        if digits < MIN_BYTES / 2 {
            return None;
        }
        let tokens: Vec<&[u8]> = sample.split(|&b| ws(b)).filter(|t| !t.is_empty()).collect();
        // The last token may be cut short (a piece of a stream), so only the others must pair up.
        let checked = tokens.len().saturating_sub(1);
        if tokens.iter().take(checked).any(|t| t.len() % 2 != 0) {
            return None;
        }
        let mut decoded = Vec::with_capacity(sample.len() / 2);
        let mut high: Option<u8> = None;
        for &b in sample {
            let Some(v) = hex_value(b) else { continue };
            match high.take() {
                Some(h) => decoded.push(h << 4 | v),
                None => high = Some(v),
            }
        }
        let total = digits / 2;
        let hint =
            rsa_hint(total).map(|b| format!(", the size of one RSA-{b} block")).unwrap_or_default();
        Some(self.encoded(Encoding::Hex, "hexadecimal digits", &decoded, total, &hint, false))
    }

    fn check_base64(&self, sample: &[u8]) -> EncodingCheck {
        let std_sym = |b: u8| b == b'+' || b == b'/';
        let url_sym = |b: u8| b == b'-' || b == b'_';
        let alpha = |b: u8| b.is_ascii_alphanumeric() || std_sym(b) || url_sym(b);
        if !self.only(|b| alpha(b) || b == b'=' || b == b'\r' || b == b'\n') {
            return EncodingCheck::None;
        }
        if self.count_where(std_sym) > 0 && self.count_where(url_sym) > 0 {
            return EncodingCheck::None;
        }
        // Padding only at the end of a line or of the data, at most two.
        let mut run = 0;
        for (i, &b) in sample.iter().enumerate() {
            if b == b'=' {
                run += 1;
                let next = sample.get(i + 1).copied();
                if run > 2 || !matches!(next, None | Some(b'=') | Some(b'\r') | Some(b'\n')) {
                    return EncodingCheck::None;
                }
            } else {
                run = 0;
            }
        }
        let chars = self.count_where(alpha);
        if chars < MIN_BYTES {
            return EncodingCheck::None;
        }
        let letters: Vec<u8> = sample.iter().copied().filter(|&b| alpha(b)).collect();
        if base64_like(&letters) {
            let decoded = base64_decode_lenient(sample);
            let total = chars * 6 / 8;
            let hint = rsa_hint(total)
                .map(|b| format!(", the size of one RSA-{b} block"))
                .unwrap_or_default();
            return EncodingCheck::Found(self.encoded(
                Encoding::Base64,
                "base64 text",
                &decoded,
                total,
                &hint,
                false,
            ));
        }
        if chars < 32 {
            return EncodingCheck::Ambiguous(self.say(|| {
                format!(
                    "The {} bytes are letters and digits with no spaces: a single word or a piece of base64, too few to tell which.",
                    self.n
                )
            }));
        }
        EncodingCheck::None
    }

    /// Text that mostly carries long encoded tokens (e.g. JSON with a base64 ciphertext field):
    /// encoded when the tokens make up at least half of the sample.
    fn check_embedded(&self, sample: &[u8]) -> Option<Classification> {
        const MIN_RUN: usize = 24;
        let token =
            |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'=');
        // Cheap first pass: a run of 24 token bytes contains a whole aligned block of 8, and
        // most text has no such block (it is checked without a branch per byte).
        let is_token = |b: u8| {
            let lower = b | 0x20;
            lower.is_ascii_lowercase()
                | b.is_ascii_digit()
                | (b == b'+')
                | (b == b'/')
                | (b == b'-')
                | (b == b'_')
                | (b == b'=')
        };
        if !sample.chunks_exact(8).any(|c| c.iter().fold(true, |all, &b| all & is_token(b))) {
            return None;
        }
        // (bytes, runs, decoded) per encoding: decimal, hex, base64.
        let mut found: [(usize, u64, Vec<u8>); 3] = Default::default();
        for run in sample.split(|b| !token(b)).filter(|r| r.len() >= MIN_RUN) {
            let body: &[u8] = match run.iter().position(|&b| b == b'=') {
                Some(i) if run.iter().skip(i).all(|&b| b == b'=') => run.get(..i).unwrap_or(run),
                Some(_) => continue,
                None => run,
            };
            let (slot, decoded) = if body.iter().all(u8::is_ascii_digit) {
                (0, decimal_to_bytes(body))
            } else if body.len() >= 32
                && body.len().is_multiple_of(2)
                && body.iter().all(u8::is_ascii_hexdigit)
            {
                let pairs = body.chunks_exact(2);
                (
                    1,
                    pairs
                        .filter_map(|p| Some(hex_value(*p.first()?)? << 4 | hex_value(*p.get(1)?)?))
                        .collect(),
                )
            } else if base64_like(body) {
                (2, base64_decode_lenient(body))
            } else {
                continue;
            };
            if let Some(entry) = found.get_mut(slot) {
                entry.0 += run.len();
                entry.1 += 1;
                entry.2.extend_from_slice(&decoded);
            }
        }
        let covered: usize = found.iter().map(|f| f.0).sum();
        if covered * 2 < sample.len() || sample.is_empty() {
            return None;
        }
        let (slot, (bytes, runs, decoded)) = found.iter().enumerate().max_by_key(|(_, f)| f.0)?;
        let encoding = [Encoding::Decimal, Encoding::Hex, Encoding::Base64].get(slot).copied()?;
        let share = *bytes as f64 / sample.len() as f64;
        let sample_decoded = decoded.len() as u64;
        let total = if sample.len() as u64 >= self.n {
            sample_decoded
        } else {
            (sample_decoded as f64 * self.n as f64 / sample.len() as f64).round() as u64
        };
        let hint = if *runs == 1 {
            rsa_hint(total).map(|b| format!(", the size of one RSA-{b} block")).unwrap_or_default()
        } else {
            String::new()
        };
        let what = format!(
            "mostly {} inside a little readable text ({}, {} of the bytes)",
            encoding.as_str(),
            plural(*runs, "block", "blocks"),
            pct(share)
        );
        Some(self.encoded(encoding, &what, decoded, total, &hint, false))
    }

    fn encoded(
        &self,
        encoding: Encoding,
        what: &str,
        decoded: &[u8],
        total: u64,
        hint: &str,
        small_numbers: bool,
    ) -> Classification {
        let mut inner = Accumulator::new();
        inner.update(decoded);
        let judged = inner.judge(false, false);
        let sure = match judged.verdict {
            Verdict::Ciphertext => judged.confidence != Confidence::Low,
            Verdict::Plaintext | Verdict::Binary => true,
            _ => false,
        };
        let confidence = if small_numbers {
            Confidence::Low
        } else if sure && self.n >= 48 {
            Confidence::High
        } else {
            Confidence::Medium
        };
        let n = self.n;
        Classification {
            verdict: Verdict::Encoded,
            confidence,
            encoding: Some(encoding),
            decoded_bytes: Some(total),
            reason: self.say(|| {
                let size = plural(total, "byte", "bytes");
                let content = match judged.verdict {
                    Verdict::Ciphertext => format!(
                        "{size} that look random (ciphertext, compressed data, a key or a hash){hint}"
                    ),
                    Verdict::Plaintext => {
                        format!("{size} of readable text{hint}, so anyone can decode and read it")
                    }
                    Verdict::Binary => format!("{size} of structured binary data{hint}"),
                    _ => format!("{size}{hint}, too few to say what they are"),
                };
                format!("The {n} printable bytes are {what}, not language: they decode to {content}.")
            }),
            stats: self.stats(),
        }
    }
}

/// Do these base64-alphabet characters look like base64 of something rather than a word?
/// Random base64 switches between upper case, lower case, digits and symbols at about 65% of
/// adjacent pairs; words and identifiers rarely do.
fn base64_like(chars: &[u8]) -> bool {
    let class = |b: u8| {
        if b.is_ascii_uppercase() {
            0
        } else if b.is_ascii_lowercase() {
            1
        } else if b.is_ascii_digit() {
            2
        } else {
            3
        }
    };
    let std_sym = chars.iter().any(|&b| b == b'+' || b == b'/');
    let url_sym = chars.iter().any(|&b| b == b'-' || b == b'_');
    let changes =
        chars.windows(2).filter(|w| matches!(w, [a, b] if class(*a) != class(*b))).count();
    let pairs = chars.len().saturating_sub(1).max(1);
    let has_upper = chars.iter().any(u8::is_ascii_uppercase);
    let has_lower = chars.iter().any(u8::is_ascii_lowercase);
    !(std_sym && url_sym) && changes * 10 >= pairs * 3 && has_upper && has_lower
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decode base64 of either alphabet, skipping padding, line breaks and anything else.
fn base64_decode_lenient(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &b in text {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Longest run of digits converted as one number; longer numbers are converted in pieces
/// (keeps the quadratic conversion cheap; 1233 digits is just over 4096 bits).
const DECIMAL_CHUNK: usize = 1233;

/// The big-endian bytes of a decimal number (no leading zero bytes).
fn decimal_to_bytes(digits: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in digits.chunks(DECIMAL_CHUNK) {
        // Little-endian base-2^32 limbs.
        let mut limbs: Vec<u32> = Vec::with_capacity(chunk.len() / 9 + 1);
        for group in chunk.chunks(9) {
            let mut mul = 1u64;
            let mut add = 0u64;
            for &d in group {
                mul *= 10;
                add = add * 10 + u64::from(d.wrapping_sub(b'0') % 10);
            }
            let mut carry = add;
            for limb in limbs.iter_mut() {
                let v = u64::from(*limb) * mul + carry;
                *limb = v as u32;
                carry = v >> 32;
            }
            if carry > 0 {
                limbs.push(carry as u32);
            }
        }
        let bytes = limbs.iter().rev().flat_map(|l| l.to_be_bytes());
        out.extend(bytes.skip_while(|&b| b == 0));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Combining per-message verdicts

/// The verdict for a whole direction, given the verdict on all its bytes and on each of its
/// messages: `Mixed` when the messages are of several kinds (e.g. a readable handshake then
/// ciphertext), otherwise the overall verdict.
///
/// Only decisive messages count (`plaintext`, `ciphertext`, `encoded`, `binary`) with at least
/// medium confidence; tiny or doubtful messages never make a direction mixed. One exception to
/// "otherwise the overall verdict": when every decisive message is ciphertext but the whole is
/// `binary` (the repeated frame headers of many short encrypted messages), the direction is
/// `ciphertext`.
pub fn combine(overall: &Classification, messages: &[Brief]) -> Classification {
    let decisive = |c: &Brief| {
        matches!(
            c.verdict,
            Verdict::Plaintext | Verdict::Ciphertext | Verdict::Encoded | Verdict::Binary
        ) && c.confidence != Confidence::Low
    };
    // Runs of consecutive decisive messages of one kind, in order.
    let mut runs: Vec<(Verdict, u64)> = Vec::new();
    let mut kinds: Vec<Verdict> = Vec::new();
    for m in messages.iter().filter(|m| decisive(m)) {
        match runs.last_mut() {
            Some((v, count)) if *v == m.verdict => *count += 1,
            _ => runs.push((m.verdict, 1)),
        }
        if !kinds.contains(&m.verdict) {
            kinds.push(m.verdict);
        }
    }
    if let [Verdict::Ciphertext] = kinds[..]
        && overall.verdict == Verdict::Binary
    {
        // Short encrypted frames each look random, but their headers (lengths, types) repeat
        // and make the whole direction look structured: the messages tell the truth.
        let count = runs.iter().map(|r| r.1).sum::<u64>();
        return Classification {
            verdict: Verdict::Ciphertext,
            confidence: Confidence::Medium,
            encoding: None,
            decoded_bytes: None,
            reason: format!(
                "Each of the {} looks like random noise on its own (only the framing bytes between them repeat), so they are encrypted (or compressed): the two look alike.",
                plural(count, "message", "messages")
            ),
            stats: overall.stats,
        };
    }
    if kinds.len() < 2 {
        return overall.clone();
    }
    let other = messages.len() as u64 - runs.iter().map(|r| r.1).sum::<u64>();
    let adjective = |v: Verdict| match v {
        Verdict::Plaintext => "readable",
        Verdict::Ciphertext => "ciphertext",
        Verdict::Encoded => "encoded",
        Verdict::Binary => "binary",
        _ => "other",
    };
    let describe = |(v, c): &(Verdict, u64)| {
        format!(
            "{} {}",
            plural(*c, adjective(*v), adjective(*v)),
            if *c == 1 { "message" } else { "messages" }
        )
    };
    let mut parts: Vec<String> = runs.iter().take(6).map(describe).collect();
    if runs.len() > 6 {
        parts.push(format!("{} more runs", runs.len() - 6));
    }
    let mut reason = format!("The messages are of several kinds: {}", parts.join(" then "));
    if other > 0 {
        reason.push_str(&format!(
            " (and {} too short or too doubtful to tell)",
            plural(other, "message", "messages")
        ));
    }
    reason.push('.');
    let strong = kinds
        .iter()
        .all(|k| messages.iter().any(|m| m.verdict == *k && m.confidence == Confidence::High));
    Classification {
        verdict: Verdict::Mixed,
        confidence: if strong { Confidence::High } else { Confidence::Medium },
        encoding: None,
        decoded_bytes: None,
        reason,
        stats: overall.stats,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic test bytes (xorshift64*).
    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    }

    fn to_hex(bytes: &[u8], sep: &str, upper: bool) -> String {
        let parts: Vec<String> = bytes
            .iter()
            .map(|b| if upper { format!("{b:02X}") } else { format!("{b:02x}") })
            .collect();
        parts.join(sep)
    }

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    const TEXT: &str = "Meet me by the old oak at six; bring the map and the spare key.\n\
        Встретимся у старого дуба в шесть, не забудь карту. 我们六点在老橡树下见面，别忘了带地图。\n";

    #[test]
    fn expected_entropy_matches_simulation_and_limits() {
        assert_eq!(expected_random_entropy(0), 0.0);
        assert_eq!(expected_random_entropy(1), 0.0);
        assert!((expected_random_entropy(2) - 255.0 / 256.0).abs() < 1e-12);
        for (n, want) in [(16, 3.94), (64, 5.77), (256, 7.18)] {
            let got = expected_random_entropy(n);
            assert!((got - want).abs() < 0.01, "n={n}: {got}");
        }
        let big = expected_random_entropy(4096);
        assert!(big > 7.94 && big < 7.96, "{big}");
        // Cache boundary and asymptotic switch are seamless.
        let a = expected_random_entropy(1023);
        let b = expected_exact(1023);
        assert!((a - b).abs() < 1e-12);
        for n in [ASYMPTOTIC_FROM, ASYMPTOTIC_FROM + 12_345, 1 << 20, (1 << 26) + 1] {
            let asym = expected_random_entropy(n);
            let exact = expected_exact(n);
            assert!((asym - exact).abs() < 1e-12, "n={n}: {asym} vs {exact}");
        }
        // Monotonic and below 8.
        let mut last = 0.0;
        for n in (2..5000).step_by(37).chain([1 << 20, 1 << 24]) {
            let e = expected_random_entropy(n);
            assert!(e > last && e < 8.0, "n={n}");
            last = e;
        }
    }

    #[test]
    fn empty_and_short() {
        let c = classify(b"");
        assert_eq!(c.verdict, Verdict::Empty);
        assert_eq!(c.stats.bytes, 0);
        let c = classify(b"hi there");
        assert_eq!(c.verdict, Verdict::Inconclusive);
        assert!(c.reason.contains("8 bytes"), "{}", c.reason);
        assert_eq!(classify(&noise(15, 3)).verdict, Verdict::Inconclusive);
        assert_eq!(classify(b"see you at noon!").verdict, Verdict::Plaintext);
    }

    #[test]
    fn text_in_any_script_is_plaintext() {
        for text in [
            "The quick meeting moved to room 12, see you there.",
            "Привет! Как дела? Увидимся завтра в библиотеке.",
            "明天下午三点在图书馆门口见面，不见不散。",
            "{\"from\":\"alice\",\"text\":\"hello bob\",\"ts\":1700000000}",
            "\u{1b}[1mbold\u{1b}[0m and plain text with a colour escape or two in it",
        ] {
            let c = classify(text.as_bytes());
            assert_eq!(c.verdict, Verdict::Plaintext, "{text}: {}", c.reason);
            assert!(c.reason.contains("anyone"));
        }
    }

    #[test]
    fn utf8_split_across_updates() {
        let whole = classify(TEXT.as_bytes());
        assert_eq!(whole.stats.printable_ratio, 1.0);
        let mut acc = Accumulator::new();
        for b in TEXT.as_bytes() {
            acc.update(std::slice::from_ref(b));
        }
        assert_eq!(acc.finish(), whole);
        // C1 controls and invalid sequences are not printable.
        let c = classify("ab\u{85}cdefghijklmnopq".as_bytes());
        assert!(c.stats.printable_ratio < 1.0);
        let c = classify(b"abcdefghijklmnop\xC3(");
        assert!(c.stats.printable_ratio < 1.0);
        // Cut out of a stream in the middle of characters at both ends: still text.
        let cut = &"ЖЖ Привет, как дела? Увидимся завтра. 你好".as_bytes()[1..46];
        let c = classify(cut);
        assert_eq!(c.stats.printable_ratio, 1.0);
        assert_eq!(c.verdict, Verdict::Plaintext);
    }

    #[test]
    fn folding_the_counters_keeps_the_histogram() {
        let data = noise(10_000, 3);
        let mut folded = Accumulator::new();
        folded.update(&data[..4000]);
        folded.fold();
        folded.update(&data[4000..]);
        let mut plain = Accumulator::new();
        plain.update(&data);
        assert_eq!(folded.histogram(), plain.histogram());
        assert_eq!(folded.finish(), plain.finish());
    }

    #[test]
    fn interleaved_lanes_agree_with_one_lane() {
        let mut data = noise(50_000, 9);
        for _ in 0..40 {
            data.extend_from_slice(TEXT.as_bytes());
        }
        data.extend_from_slice(&noise(10_001, 11));
        let whole = classify(&data);
        let mut acc = Accumulator::exact();
        for piece in data.chunks(7) {
            acc.update(piece);
        }
        assert_eq!(acc.finish().stats, whole.stats);
        let hist_total: u64 = acc.histogram().iter().sum();
        assert_eq!(hist_total, data.len() as u64);
    }

    #[test]
    fn a_sample_that_cannot_be_read_back_skips_the_encoding_checks() {
        use base64::Engine;
        use std::io::Write;
        let dir = tempfile::Builder::new().prefix("rchat-lost-sample-").tempdir().unwrap();
        let path = dir.path().join("capture.bin");
        let noise: Vec<u8> =
            (0..3000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let cases = [
            hex::encode(&noise).into_bytes(),
            base64::engine::general_purpose::STANDARD.encode(&noise).into_bytes(),
            noise.iter().map(|b| format!("{b} ")).collect::<String>().into_bytes(),
        ];
        for text in cases {
            std::fs::File::create(&path).unwrap().write_all(&text).unwrap();
            let file = Arc::new(File::open(&path).unwrap());
            let mut acc = Accumulator::sampling_in(file);
            let mut scratch = Scratch::default();
            for (i, piece) in text.chunks(1000).enumerate() {
                acc.update_lent_at(piece, Some(i as u64 * 1000), &mut scratch);
            }
            acc.settle(&mut scratch);
            // Read back while the file is intact: what a copy would give.
            assert_eq!(acc.finish(), classify(&text));
            // The file is cut short: no sample, so no encoding checks (and no panic).
            std::fs::File::create(&path).unwrap();
            let lost = acc.finish();
            assert_eq!((lost.verdict, lost.encoding), (Verdict::Plaintext, None), "{lost:?}");
        }
    }

    #[test]
    fn long_streams_sample_the_printable_count() {
        let mut acc = Accumulator::new();
        let text = TEXT.repeat(30_000);
        for piece in text.as_bytes().chunks(1448) {
            acc.update(piece);
        }
        let c = acc.finish();
        assert!(c.stats.bytes > 4 << 20);
        assert!(c.stats.printable_ratio > 0.999, "{}", c.stats.printable_ratio);
        assert_eq!(c.verdict, Verdict::Plaintext);
        let mut acc = Accumulator::new();
        for i in 0..48 {
            acc.update(&noise(100_000, i + 1));
        }
        let c = acc.finish();
        assert_eq!(c.verdict, Verdict::Ciphertext);
        assert!((c.stats.printable_ratio - 0.45).abs() < 0.02, "{}", c.stats.printable_ratio);
        assert!(acc.sample.len() <= SAMPLE_LIMIT);
    }

    #[test]
    fn random_is_ciphertext_with_the_right_words() {
        let c = classify(&noise(4096, 5));
        assert_eq!(c.verdict, Verdict::Ciphertext);
        assert_eq!(c.confidence, Confidence::High);
        assert!(c.reason.contains("encrypted (or compressed): the two look alike"), "{}", c.reason);
        assert!(c.stats.chi_square.is_some_and(|x| x > 150.0 && x < 400.0));
        assert!(c.stats.entropy > 7.9);
        let c = classify(&noise(256, 6));
        assert_eq!(c.verdict, Verdict::Ciphertext);
        assert_eq!(c.stats.chi_square, None);
        for seed in 0..200 {
            assert_ne!(classify(&noise(16, seed)).verdict, Verdict::Plaintext);
        }
    }

    #[test]
    fn structured_binary() {
        let mut data = Vec::new();
        for i in 0u32..200 {
            data.extend_from_slice(&i.to_be_bytes());
            data.extend_from_slice(&[0, 0, 0, 1, 0x80, 0, 0, 0]);
        }
        let c = classify(&data);
        assert_eq!(c.verdict, Verdict::Binary, "{}", c.reason);
        assert!(c.reason.contains("not ciphertext"));
        // Short binary: an ELF header, a few x86 instructions, floats.
        let elf = [
            0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0x3e, 0, 1, 0, 0, 0,
            0x40, 0x10, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0,
        ];
        let code = [
            0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10, 0x89, 0x7d, 0xfc, 0x8b, 0x45, 0xfc,
            0x83, 0xc0, 0x01, 0x89, 0x45, 0xf8, 0x8b, 0x45, 0xf8, 0x48, 0x83, 0xc4, 0x10, 0x5d,
            0xc3, 0x90, 0x90, 0x90, 0x55, 0x48, 0x89, 0xe5, 0xb8, 0x00, 0x00, 0x00,
        ];
        let floats: Vec<u8> = (0..16).flat_map(|i| (i as f32 * 0.5).to_le_bytes()).collect();
        for data in [&elf[..], &code[..], &floats[..]] {
            assert_eq!(classify(data).verdict, Verdict::Binary, "{data:?}");
        }
        let utf16: Vec<u8> =
            "hello there, how are you".encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(classify(&utf16).verdict, Verdict::Binary);
    }

    #[test]
    fn base64_of_random_with_rsa_hint() {
        let text = b64(&noise(256, 21));
        let c = classify(text.as_bytes());
        assert_eq!(c.verdict, Verdict::Encoded, "{}", c.reason);
        assert_eq!(c.encoding, Some(Encoding::Base64));
        assert_eq!(c.decoded_bytes, Some(256));
        assert!(c.reason.contains("RSA-2048"), "{}", c.reason);
        assert!(c.reason.contains("look random"), "{}", c.reason);
        // Wrapped in lines, URL-safe without padding.
        let url = text.replace('+', "-").replace('/', "_").replace('=', "");
        let wrapped: Vec<&str> =
            url.as_bytes().chunks(64).filter_map(|l| std::str::from_utf8(l).ok()).collect();
        let c = classify(wrapped.join("\r\n").as_bytes());
        assert_eq!(c.encoding, Some(Encoding::Base64), "{}", c.reason);
        // Short: never plaintext.
        for seed in 0..200 {
            let short = b64(&noise(12, seed));
            assert_ne!(classify(short.as_bytes()).verdict, Verdict::Plaintext, "{short}");
        }
    }

    #[test]
    fn base64_of_text_says_it_is_readable() {
        let text = b64(b"Meet me by the old oak at six and bring the map with you.");
        let c = classify(text.as_bytes());
        assert_eq!(c.verdict, Verdict::Encoded, "{}", c.reason);
        assert!(c.reason.contains("readable text"), "{}", c.reason);
    }

    #[test]
    fn hex_in_its_forms() {
        let raw = noise(128, 31);
        for text in [to_hex(&raw, "", false), to_hex(&raw, " ", true), to_hex(&raw, "\n", false)] {
            let c = classify(text.as_bytes());
            assert_eq!(c.verdict, Verdict::Encoded, "{text}: {}", c.reason);
            assert_eq!(c.encoding, Some(Encoding::Hex));
            assert_eq!(c.decoded_bytes, Some(128));
            assert!(c.reason.contains("RSA-1024"), "{}", c.reason);
        }
        // Words made of hex letters do not pair up.
        assert_eq!(classify(b"a bad cafe faced a dead bee").verdict, Verdict::Plaintext);
    }

    #[test]
    fn decimal_numbers() {
        // A 2048-bit number in decimal.
        let mut digits = String::from("1");
        for d in noise(616, 41) {
            digits.push(char::from(b'0' + d % 10));
        }
        let bytes = decimal_to_bytes(digits.as_bytes());
        assert_eq!(bytes.len(), 256);
        let c = classify(digits.as_bytes());
        assert_eq!(c.verdict, Verdict::Encoded, "{}", c.reason);
        assert_eq!(c.encoding, Some(Encoding::Decimal));
        assert_eq!(c.decoded_bytes, Some(256));
        assert!(c.reason.contains("RSA-2048"), "{}", c.reason);
        let list = "[2790, 1313, 2185, 745, 2412, 1992, 2185, 3000, 1230]";
        let c = classify(list.as_bytes());
        assert_eq!(c.encoding, Some(Encoding::Decimal), "{}", c.reason);
        assert_eq!(decimal_to_bytes(b"65536"), vec![1, 0, 0]);
        assert_eq!(decimal_to_bytes(b"0"), Vec::<u8>::new());
    }

    #[test]
    fn odd_inputs_never_panic() {
        let all: Vec<u8> = (0..=255).collect();
        for input in [
            &all[..],
            b"================================",
            b"\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n",
            b",,,,,,,,,,[[[[]]]]]]]]]]]]]]]]]]]]",
            b"\xF4\x90\x80\x80\xED\xA0\x80\xE0\x80\x80\xC0\xAF\xFF\xFE\xF0\x9F\x98\x80",
        ] {
            let c = classify(input);
            assert!(!c.reason.is_empty());
        }
        let huge = "9".repeat(200_000);
        let c = classify(huge.as_bytes());
        assert_eq!(c.encoding, Some(Encoding::Decimal));
        let word = classify(b"internationalization");
        assert_ne!(word.verdict, Verdict::Encoded);
    }

    #[test]
    fn text_wrapped_around_encoded_blobs() {
        let blob = b64(&noise(256, 77));
        let json = format!("{{\"type\":\"msg\",\"seq\":7,\"ciphertext\":\"{blob}\"}}\n");
        let c = classify(json.as_bytes());
        assert_eq!(c.verdict, Verdict::Encoded, "{}", c.reason);
        assert_eq!(c.encoding, Some(Encoding::Base64));
        assert_eq!(c.decoded_bytes, Some(256));
        assert!(c.reason.contains("RSA-2048"), "{}", c.reason);
        let hex = to_hex(&noise(64, 78), "", false);
        let c = classify(format!("KEY {hex}\nOK\n").as_bytes());
        assert_eq!(c.encoding, Some(Encoding::Hex), "{}", c.reason);
        // Short fields and long identifiers stay plaintext.
        for text in [
            "{\"from\":\"alice\",\"to\":\"bob\",\"ts\":1700000000,\"text\":\"see you soon\"}",
            "call this_is_a_rather_long_function_name_for_a_test() then retry",
        ] {
            assert_eq!(classify(text.as_bytes()).verdict, Verdict::Plaintext, "{text}");
        }
    }

    use proptest::prelude::Strategy as _;

    proptest::proptest! {
        #[test]
        fn any_bytes_any_split_same_verdict(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            cuts in proptest::collection::vec(0usize..3000, 0..6),
        ) {
            let whole = classify(&data);
            let mut acc = Accumulator::new();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut from = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                acc.update(&data[from..c]);
                from = c;
            }
            proptest::prop_assert_eq!(acc.finish(), whole.clone());
            proptest::prop_assert_eq!(acc.brief(), whole.brief());
            let s = whole.stats;
            proptest::prop_assert!((0.0..=1.0).contains(&s.printable_ratio));
            proptest::prop_assert!(s.entropy >= 0.0 && s.entropy <= 8.0);
            proptest::prop_assert!(!whole.reason.is_empty());
        }

        #[test]
        fn printable_count_matches_std_utf8(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    "[ -~\\t\\n\\r\\u{80}-\\u{10FFFF}]{0,8}".prop_map(String::into_bytes),
                    proptest::collection::vec(proptest::prelude::any::<u8>(), 0..6),
                ],
                0..40,
            )
        ) {
            let data: Vec<u8> = parts.concat();
            let reference: u64 = data
                .utf8_chunks()
                .flat_map(|chunk| chunk.valid().chars())
                .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
                .map(|c| c.len_utf8() as u64)
                .sum();
            let mut acc = Accumulator::new();
            acc.update(&data);
            proptest::prop_assert_eq!(acc.printable, reference);
        }

        #[test]
        fn any_text_is_never_ciphertext(text in "[ -~\\t\\n\\r\\p{Cyrillic}\\p{Han}]{16,400}") {
            let c = classify(text.as_bytes());
            proptest::prop_assert_ne!(c.verdict, Verdict::Ciphertext);
            proptest::prop_assert_ne!(c.verdict, Verdict::Binary);
        }
    }

    fn message(verdict: Verdict, confidence: Confidence) -> Brief {
        Brief { verdict, confidence }
    }

    #[test]
    fn short_encrypted_frames() {
        // Frames: 4-byte length, 1-byte type, then 35 random bytes.
        let mut acc = Accumulator::new();
        let mut messages = Vec::new();
        for i in 0..300u64 {
            let mut frame = vec![0, 0, 0, 36, 2];
            frame.extend_from_slice(&noise(35, 1000 + i));
            acc.update(&frame);
            messages.push(classify(&frame).brief());
        }
        assert!(messages.iter().all(|m| m.verdict == Verdict::Ciphertext));
        let overall = acc.finish();
        assert_eq!(overall.verdict, Verdict::Binary, "{}", overall.reason);
        let c = combine(&overall, &messages);
        assert_eq!(c.verdict, Verdict::Ciphertext, "{} / {}", overall.reason, c.reason);
        assert!(c.reason.contains("encrypted (or compressed): the two look alike"));
    }

    #[test]
    fn combine_mixed_and_not() {
        let overall = classify(&noise(5000, 1));
        let mut messages = vec![message(Verdict::Plaintext, Confidence::High); 2];
        messages.extend(vec![message(Verdict::Ciphertext, Confidence::High); 14]);
        messages.push(message(Verdict::Inconclusive, Confidence::Low));
        let c = combine(&overall, &messages);
        assert_eq!(c.verdict, Verdict::Mixed);
        assert_eq!(c.confidence, Confidence::High);
        assert!(
            c.reason.contains("2 readable messages then 14 ciphertext messages"),
            "{}",
            c.reason
        );
        assert!(c.reason.contains("1 message too short"), "{}", c.reason);
        assert_eq!(c.stats, overall.stats);

        let mut messages = vec![message(Verdict::Ciphertext, Confidence::High); 10];
        messages.push(message(Verdict::Inconclusive, Confidence::Low));
        messages.push(message(Verdict::Plaintext, Confidence::Low));
        assert_eq!(combine(&overall, &messages), overall);
        assert_eq!(combine(&overall, &[]), overall);
    }
}
