//! Byte counting and the statistics made of the counts.
//!
//! Owns the [`Accumulator`] (a 256-bin histogram counted in four interleaved scratch tables,
//! the thread's own or a caller's, then added to it; a UTF-8 decoder carried across pieces for
//! the printable count; the first bytes kept as a sample for the encoding checks) and the
//! statistics of a histogram: Shannon entropy, its exact expectation for random bytes of the
//! same length, and chi-square. It sees bytes only, never packets or streams.

use std::borrow::Cow;
use std::sync::OnceLock;

use super::verdict::{Facts, occurring};
use super::{Brief, Classification};
use crate::analyze::input::Captured;
use crate::analyze::input::sample::Sample;

const LANES: usize = 4;
/// Interleaved counting tables: consecutive bytes go to different tables, so repeated bytes
/// (spaces in text) do not wait on each other.
type Lanes = [[u32; 256]; LANES];

thread_local! {
    /// Each thread's scratch lanes: always in cache, whichever stream is being counted.
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}
/// Counting tables a caller keeps for several pieces in a row, so that their counts are added
/// to the accumulator's own table once (see [`Accumulator::count_in`]) instead of once per
/// piece.
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

/// A counter of an accumulator's table: 8, 16 or 32 bits (see [`Table`]).
trait Counter: Copy + Default + Into<u64> + std::ops::AddAssign {
    /// The largest count it holds.
    const MAX: u64;
    const ONE: Self;
    /// `v`, which the caller has checked is at most [`Counter::MAX`].
    fn from_u32(v: u32) -> Self;
}

impl Counter for u8 {
    const MAX: u64 = u8::MAX as u64;
    const ONE: Self = 1;
    fn from_u32(v: u32) -> Self {
        v as u8
    }
}

impl Counter for u16 {
    const MAX: u64 = u16::MAX as u64;
    const ONE: Self = 1;
    fn from_u32(v: u32) -> Self {
        v as u16
    }
}

impl Counter for u32 {
    const MAX: u64 = u32::MAX as u64;
    const ONE: Self = 1;
    fn from_u32(v: u32) -> Self {
        v
    }
}

/// An accumulator's own counting table: none until the first byte is counted, then as narrow
/// as the number of bytes counted in it allows, widened before any counter could overflow.
/// A direction or message of a few hundred bytes (most of a chat's) keeps 256 or 512 bytes
/// of counters, not a kilobyte; past 64 KiB it has the 32-bit table it always had.
#[derive(Debug, Clone, Default)]
pub(super) enum Table {
    #[default]
    Empty,
    U8(Box<[u8; 256]>),
    U16(Box<[u16; 256]>),
    U32(Box<[u32; 256]>),
}

/// The same counters, each `u64::from`-widened into a wider table.
fn widened<A: Counter, B: Counter + From<A>>(t: &[A; 256]) -> Box<[B; 256]> {
    let mut wide = Box::new([B::default(); 256]);
    for (w, &c) in wide.iter_mut().zip(t.iter()) {
        *w = B::from(c);
    }
    wide
}

impl Table {
    /// Make room for `total` bytes counted in the table: widen it if a counter could pass
    /// what it holds (`total` is at most [`FOLD_EVERY`], which 32 bits hold).
    #[inline]
    fn fit(&mut self, total: u64) {
        let fits = match self {
            Table::Empty => false,
            Table::U8(_) => total <= <u8 as Counter>::MAX,
            Table::U16(_) => total <= <u16 as Counter>::MAX,
            Table::U32(_) => true,
        };
        if !fits {
            self.widen(total);
        }
    }

    #[cold]
    fn widen(&mut self, total: u64) {
        *self = match std::mem::take(self) {
            Table::Empty if total <= <u8 as Counter>::MAX => Table::U8(Box::new([0; 256])),
            Table::Empty if total <= <u16 as Counter>::MAX => Table::U16(Box::new([0; 256])),
            Table::Empty => Table::U32(Box::new([0; 256])),
            Table::U8(t) if total <= <u16 as Counter>::MAX => Table::U16(widened(&t)),
            Table::U8(t) => Table::U32(widened(&t)),
            Table::U16(t) => Table::U32(widened(&t)),
            wide @ Table::U32(_) => wide,
        };
    }

    /// Each byte value's count.
    pub(super) fn counts(&self) -> [u64; 256] {
        fn all<C: Counter>(t: &[C; 256]) -> [u64; 256] {
            let mut out = [0u64; 256];
            for (o, &c) in out.iter_mut().zip(t.iter()) {
                *o = c.into();
            }
            out
        }
        match self {
            Table::Empty => [0; 256],
            Table::U8(t) => all(t),
            Table::U16(t) => all(t),
            Table::U32(t) => all(t),
        }
    }

    /// Set every counter to zero (keeping the table's width).
    fn clear(&mut self) {
        match self {
            Table::Empty => {}
            Table::U8(t) => **t = [0; 256],
            Table::U16(t) => **t = [0; 256],
            Table::U32(t) => **t = [0; 256],
        }
    }
}

/// Add the lanes' counts into `t` (the caller made room for them).
fn merge_into<C: Counter>(t: &mut [C; 256], lanes: &Lanes) {
    let [l0, l1, l2, l3] = lanes;
    for (i, h) in t.iter_mut().enumerate() {
        // `i` < 256: every lane has 256 entries.
        *h += C::from_u32(l0[i] + l1[i] + l2[i] + l3[i]);
    }
}

/// Scan one lane: histogram and printable count, returning the final decoder state.
///
/// (Here and in the other scanners, indexing cannot fail: a `u8` indexes 256-entry tables and
/// `& 15` one of the decoder's 16 rows.)
#[inline(always)]
fn scan_lane<C: Counter>(
    data: &[u8],
    hist: &mut [C; 256],
    state: usize,
    printable: &mut u64,
) -> usize {
    let mut st = state;
    let mut count = 0u64;
    for &b in data {
        hist[b as usize] += C::ONE;
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
fn count_one_table<C: Counter>(data: &[u8], hist: &mut [C; 256]) {
    for &b in data {
        hist[b as usize] += C::ONE;
    }
}

/// Count and decode `piece` in one table, the decoder in `state`, printable bytes added to
/// `printable`.
#[inline(always)]
fn decode_into<C: Counter>(
    piece: &[u8],
    hist: &mut [C; 256],
    state: &mut usize,
    printable: &mut u64,
) {
    if *state == START as usize && piece.is_ascii() {
        count_one_table(piece, hist);
        *printable += count_printable_ascii(piece);
    } else {
        *state = scan_lane(piece, hist, *state, printable);
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
/// Memory is bounded: a histogram, a decoder state and the first [`SAMPLE_LIMIT`](super::SAMPLE_LIMIT) bytes.
#[derive(Debug, Clone)]
pub struct Accumulator {
    pub(super) bytes: u64,
    /// The counters, one table of at most 32 bits each (a kilobyte: with hundreds of streams
    /// fed in turn, each stream's table is mostly out of cache, so it should be small), made
    /// at the first byte and only as wide as needed ([`Table`]); folded into `folded` before
    /// any could overflow. Pieces are first counted in a per-thread scratch table of several
    /// interleaved lanes that stays in cache, then added here.
    pub(super) hist: Table,
    /// Made at the first fold (after 2^31 bytes), so that short messages do not pay for it.
    pub(super) folded: Option<Box<[u64; 256]>>,
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
    /// Counting put off ([`Accumulator::deferred`]): the bytes are only in `sample`, and
    /// `bytes` stays 0 until they are counted.
    deferred: bool,
}

impl Default for Accumulator {
    fn default() -> Self {
        Self {
            bytes: 0,
            hist: Table::Empty,
            folded: None,
            folded_at: 0,
            printable: 0,
            examined: 0,
            exact_blocks: STREAM_EXACT_BLOCKS,
            utf8_state: START as usize,
            state_offset: 0,
            sample: Sample::default(),
            deferred: false,
        }
    }
}

impl Accumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// An accumulator that decodes every byte for the printable count, however long the
    /// input (slower on long streams; what [`classify`](super::classify) uses).
    pub fn exact() -> Self {
        Self { exact_blocks: u64::MAX, ..Self::default() }
    }

    /// An accumulator that keeps its first bytes in `sample` (which may note where captured
    /// bytes came from instead of copying them: see [`Sample`]).
    pub fn with_sample(sample: Sample) -> Self {
        Self { sample, ..Self::default() }
    }

    /// An accumulator that only keeps what it is fed, in its sample, and counts it when asked
    /// for a verdict: a message of a few segments then holds no counting table while it is
    /// open (with thousands of connections, each has one open message a side). Fed more
    /// than the sample keeps ([`SAMPLE_LIMIT`](super::SAMPLE_LIMIT)), it counts what it kept
    /// and goes on as any other. Every answer is the same as [`Accumulator::new`]'s.
    pub fn deferred() -> Self {
        Self { deferred: true, ..Self::default() }
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        if self.deferred { self.sample.len() as u64 } else { self.bytes }
    }

    /// True when nothing has been fed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kept bytes of a deferred accumulator, counted: `None` if they cannot be read back
    /// from the capture file (it was cut short during the analysis).
    fn counted(&self) -> Option<Accumulator> {
        let kept = self.sample.bytes()?;
        let mut counted = Accumulator { exact_blocks: self.exact_blocks, ..Self::default() };
        counted.count_kept(&kept);
        Some(counted)
    }

    /// Count `kept` (bytes already in a sample: they are not kept again).
    fn count_kept(&mut self, kept: &[u8]) {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => {
                self.count_bytes(kept, &mut scratch);
                self.add_counts(&mut scratch);
            }
            Err(_) => {
                let mut scratch = Scratch::default();
                self.count_bytes(kept, &mut scratch);
                self.add_counts(&mut scratch);
            }
        });
    }

    /// Count the bytes a deferred accumulator kept, and count from now on.
    fn undefer(&mut self, scratch: &mut Scratch) {
        self.deferred = false;
        let kept = self.sample.bytes().map(Cow::into_owned).unwrap_or_default();
        // (Bytes that can no longer be read back are not counted: the verdict is on the rest.)
        self.count_bytes(&kept, scratch);
    }

    /// Add the next bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.update_captured(Captured::from(data));
    }

    /// [`Accumulator::update`] for captured bytes (the sample keeps their origin).
    pub fn update_captured(&mut self, data: Captured<'_>) {
        // Counted in the thread's own scratch tables (always in cache, whichever stream this
        // is), then added to this accumulator at once.
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => {
                self.count_in(data, &mut scratch);
                self.add_counts(&mut scratch);
            }
            Err(_) => {
                let mut scratch = Scratch::default();
                self.count_in(data, &mut scratch);
                self.add_counts(&mut scratch);
            }
        });
    }

    /// Add the next bytes, counting them in `scratch` and leaving the counts there: call
    /// [`Accumulator::add_counts`] with the same scratch before using it for another
    /// accumulator or asking this one anything. Every other method gives the same results as
    /// [`update`] once the counts are added.
    ///
    /// [`update`]: Accumulator::update
    pub fn count_in(&mut self, data: Captured<'_>, scratch: &mut Scratch) {
        if self.deferred {
            if self.sample.len() + data.len() <= super::SAMPLE_LIMIT {
                self.sample.push(data);
                return;
            }
            self.undefer(scratch);
        }
        self.sample.push(data);
        self.count_bytes(data.bytes(), scratch);
    }

    /// Count `data` (already in the sample, as far as it keeps bytes), leaving the counts of
    /// long pieces in `scratch` (see [`Accumulator::count_in`]).
    fn count_bytes(&mut self, data: &[u8], scratch: &mut Scratch) {
        // No counter can pass u32::MAX while fewer than 2^32 bytes were counted since the
        // last fold: the lanes' counters and the table's stay below 2^31.
        if data.len() as u64 >= FOLD_EVERY / 2 {
            let step = FOLD_EVERY as usize / 4;
            for piece in data.chunks(step) {
                self.count_bytes(piece, scratch);
            }
            return;
        }
        if scratch.pending + data.len() as u64 >= FOLD_EVERY / 2 {
            self.add_counts(scratch);
        }
        if self.bytes - self.folded_at + data.len() as u64 >= FOLD_EVERY {
            self.add_counts(scratch);
            self.fold();
        }
        if data.len() < LANES * LANE_MIN {
            // A few bytes (a chat message): counting them in the lanes would mean adding up
            // and clearing all of the lanes' counters for them.
            self.count(data, None);
        } else {
            self.count(data, Some(&mut scratch.lanes));
            scratch.pending += data.len() as u64;
        }
    }

    /// Add the counts left in `scratch` by [`Accumulator::count_in`] to this accumulator, and
    /// clear it.
    pub fn add_counts(&mut self, scratch: &mut Scratch) {
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
                None => {
                    // Straight into the table: room for them first.
                    self.hist.fit(offset + piece.len() as u64 - self.folded_at);
                    if decode {
                        let (st, pr) = (&mut self.utf8_state, &mut self.printable);
                        match &mut self.hist {
                            Table::U8(t) => decode_into(piece, t, st, pr),
                            Table::U16(t) => decode_into(piece, t, st, pr),
                            Table::U32(t) => decode_into(piece, t, st, pr),
                            Table::Empty => {}
                        }
                    } else {
                        match &mut self.hist {
                            Table::U8(t) => count_one_table(piece, t),
                            Table::U16(t) => count_one_table(piece, t),
                            Table::U32(t) => count_one_table(piece, t),
                            Table::Empty => {}
                        }
                    }
                }
                Some(lanes) => count_only(piece, lanes),
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
        if self.deferred {
            return self.counted().map_or([0; 256], |c| c.histogram());
        }
        let mut h = self.hist.counts();
        if let Some(folded) = self.folded.as_deref() {
            for (total, c) in h.iter_mut().zip(folded) {
                *total += c;
            }
        }
        h
    }

    /// Which byte values were fed ([`occurring`], from the narrow counters).
    fn occurring(&self) -> [u64; 4] {
        let mut present = match &self.hist {
            Table::Empty => [0; 4],
            Table::U8(t) => occurring(t),
            Table::U16(t) => occurring(t),
            Table::U32(t) => occurring(t),
        };
        if let Some(folded) = self.folded.as_deref() {
            for (word, folded) in present.iter_mut().zip(occurring(folded)) {
                *word |= folded;
            }
        }
        present
    }

    /// Move the 32-bit counters into the 64-bit totals.
    fn fold(&mut self) {
        let folded = self.folded.get_or_insert_with(|| Box::new([0; 256]));
        for (total, c) in folded.iter_mut().zip(self.hist.counts()) {
            *total += c;
        }
        self.hist.clear();
        self.folded_at = self.bytes;
    }

    /// Ask for this accumulator's counting table to be brought into the cache, ahead of
    /// [`Accumulator::add_counts`].
    pub fn prefetch(&self) {
        use crate::analyze::engine::cache::prefetch_value;
        match &self.hist {
            Table::Empty => {}
            Table::U8(t) => prefetch_value(&**t),
            Table::U16(t) => prefetch_value(&**t),
            Table::U32(t) => prefetch_value(&**t),
        }
    }

    /// Add the scratch lanes into this accumulator's table and clear them.
    fn merge(&mut self, lanes: &mut Lanes) {
        // Every byte counted since the fold is in the table or in the lanes.
        self.hist.fit(self.bytes - self.folded_at);
        match &mut self.hist {
            Table::Empty => {}
            Table::U8(t) => merge_into(t, lanes),
            Table::U16(t) => merge_into(t, lanes),
            Table::U32(t) => merge_into(t, lanes),
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

    /// [`Accumulator::brief`] and [`Accumulator::entropy`], counting a deferred accumulator's
    /// bytes once for both.
    pub fn brief_and_entropy(&self) -> (Brief, f64) {
        if !self.deferred {
            let (c, entropy) =
                self.judge_counts(self.sample.head(), true, false, || self.sample.bytes());
            return (c.brief(), entropy);
        }
        match self.sample.bytes() {
            Some(kept) => {
                let mut counted =
                    Accumulator { exact_blocks: self.exact_blocks, ..Self::default() };
                counted.count_kept(&kept);
                let (c, entropy) =
                    counted.judge_counts(self.sample.head(), true, false, || Some(kept));
                (c.brief(), entropy)
            }
            None => (self.brief(), 0.0),
        }
    }

    /// The verdict, with encoding checks if `detect_encodings`, with a reason if `words`.
    pub(super) fn judge(&self, detect_encodings: bool, words: bool) -> Classification {
        if !self.deferred {
            return self
                .judge_counts(self.sample.head(), detect_encodings, words, || self.sample.bytes())
                .0;
        }
        // Counted now, from the kept bytes, which also serve the encoding checks.
        let Some(kept) = self.sample.bytes() else {
            return Classification {
                verdict: super::Verdict::Inconclusive,
                confidence: super::Confidence::Low,
                encoding: None,
                decoded_bytes: None,
                reason: if words {
                    super::reasons::not_read_back(self.len())
                } else {
                    String::new()
                },
                stats: super::Stats { bytes: self.len(), ..super::Stats::default() },
            };
        };
        let mut counted = Accumulator { exact_blocks: self.exact_blocks, ..Self::default() };
        counted.count_kept(&kept);
        counted.judge_counts(self.sample.head(), detect_encodings, words, || Some(kept)).0
    }

    /// The verdict on the counts and their entropy (as [`Accumulator::entropy`] gives it);
    /// `head` is the first bytes fed, `sample` gives the kept ones.
    fn judge_counts<'s>(
        &self,
        head: &[u8],
        detect_encodings: bool,
        words: bool,
        sample: impl FnOnce() -> Option<Cow<'s, [u8]>>,
    ) -> (Classification, f64) {
        // A message cut out of a stream may start or end inside a character: up to three
        // continuation bytes at the start and an unfinished sequence at the end are pieces of
        // text, not evidence against it.
        let leading = head.iter().take_while(|&&b| is_continuation(b)).count();
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
        let hist = self.histogram();
        let present = self.occurring();
        let facts = Facts::new(self.bytes, &hist, present, printable, self.examined, words);
        // The sample may have to be read back from the capture file: only if it is needed. If
        // the file cannot give it back (it was cut short under us), there are no encoding
        // checks.
        let c = facts.decide(detect_encodings, sample);
        let entropy = if c.stats.entropy > 0.0 {
            c.stats.entropy
        } else {
            entropy_of_present(&hist, &present, self.bytes)
        };
        (c, entropy)
    }
}

/// [`shannon_entropy`] of `hist` (`n` counts in all), whose values that occur are `present`
/// ([`occurring`]): the same sum in the same order, over those values only (a chat message
/// has a few dozen), with `c log2 c` from a table for counts below 256.
fn entropy_of_present(hist: &[u64; 256], present: &[u64; 4], n: u64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let table = klogk_table();
    let mut sum = 0.0;
    for (w, &word) in present.iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            let b = w * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let c = hist.get(b).copied().unwrap_or(0);
            if c > 1 {
                sum += match table.get(c as usize) {
                    Some(&v) => v,
                    None => (c as f64) * (c as f64).log2(),
                };
            }
        }
    }
    let nf = n as f64;
    (nf.log2() - sum / nf).max(0.0)
}

/// `k log2 k` for k below 256, as [`shannon_entropy`] works it out.
pub(super) fn klogk_table() -> &'static [f64; 256] {
    static KLOGK: OnceLock<[f64; 256]> = OnceLock::new();
    KLOGK.get_or_init(|| {
        let mut v = [0.0; 256];
        for (k, x) in v.iter_mut().enumerate().skip(2) {
            *x = (k as f64) * (k as f64).log2();
        }
        v
    })
}

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

#[cfg(test)]
mod tests {
    use super::super::test_data::{TEXT, noise};
    use super::super::{SAMPLE_LIMIT, Verdict, classify};
    use super::*;

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
    fn the_table_widens_before_a_counter_could_overflow() {
        // One byte value many times, fed straight into the table (short pieces) and through
        // the lanes (long ones), across the 8-bit and 16-bit limits.
        for piece in [1usize, 7, 200, 511, 512, 4000] {
            let mut acc = Accumulator::new();
            assert!(matches!(acc.hist, Table::Empty), "nothing counted, nothing made");
            let mut want = [0u64; 256];
            let mut fed = 0usize;
            let mut scratch = Scratch::default();
            let mut i = 0u32;
            while fed < 70_000 + piece {
                i += 1;
                let b = if i.is_multiple_of(3) { b'a' } else { 0xff };
                let data = vec![b; piece];
                want[b as usize] += piece as u64;
                if i.is_multiple_of(2) {
                    acc.update(&data);
                } else {
                    acc.count_in(Captured::from(&data[..]), &mut scratch);
                    acc.add_counts(&mut scratch);
                }
                fed += piece;
                assert_eq!(acc.histogram(), want, "piece {piece}, {fed} bytes");
                let ok = match &acc.hist {
                    Table::Empty => false,
                    Table::U8(_) => fed <= 255,
                    Table::U16(_) => fed <= 65_535,
                    Table::U32(_) => true,
                };
                assert!(
                    ok,
                    "piece {piece}: {fed} bytes in {:?}",
                    std::mem::discriminant(&acc.hist)
                );
            }
            assert!(matches!(acc.hist, Table::U32(_)));
        }
        // A short message keeps the narrowest table; its verdict is the same as a copy's.
        let mut short = Accumulator::new();
        short.update(b"see you at six");
        assert!(matches!(short.hist, Table::U8(_)));
        assert_eq!(short.finish(), classify(b"see you at six"));
        // Folding after a wide table keeps the totals.
        let data = noise(70_000, 5);
        let mut folded = Accumulator::new();
        folded.update(&data[..66_000]);
        folded.fold();
        folded.update(&data[66_000..]);
        let mut plain = Accumulator::new();
        plain.update(&data);
        assert_eq!(folded.histogram(), plain.histogram());
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

    use proptest::prelude::Strategy as _;

    #[test]
    fn a_deferred_accumulator_past_its_sample_counts_what_it_kept() {
        // Text, then random bytes, past the sample's limit: the kept bytes are counted when
        // the limit is reached, the rest as they come.
        let mut data = b"the exam moved to room 204, see you there\n".repeat(900);
        data.extend(noise(120_000, 7));
        let mut counting = Accumulator::new();
        let mut deferred = Accumulator::deferred();
        for piece in data.chunks(1448) {
            counting.update(piece);
            deferred.update(piece);
            if deferred.len() < crate::analyze::classify::SAMPLE_LIMIT as u64 {
                assert!(matches!(deferred.hist, Table::Empty), "nothing counted while it keeps");
            }
        }
        assert!(!matches!(deferred.hist, Table::Empty), "counted once past the sample");
        assert_eq!(deferred.len(), data.len() as u64);
        assert_eq!(deferred.histogram(), counting.histogram());
        assert_eq!(deferred.finish(), counting.finish());
    }

    #[test]
    fn a_deferred_message_that_cannot_be_read_back_is_inconclusive() {
        use crate::analyze::classify::{Confidence, Verdict};
        use std::io::Write;
        use std::sync::Arc;
        let dir = tempfile::Builder::new().prefix("rchat-lost-message-").tempdir().unwrap();
        let path = dir.path().join("capture.bin");
        let text = b"a line of text that came straight from the capture file\n".repeat(40);
        std::fs::File::create(&path).unwrap().write_all(&text).unwrap();
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        let mut acc =
            Accumulator { deferred: true, ..Accumulator::with_sample(Sample::in_file(file)) };
        let mut scratch = Scratch::default();
        for (i, piece) in text.chunks(1000).enumerate() {
            acc.count_in(Captured::copied_from(piece, Some(i as u64 * 1000)), &mut scratch);
        }
        acc.add_counts(&mut scratch);
        assert!(matches!(acc.hist, Table::Empty), "kept, not counted");
        assert_eq!(acc.finish(), classify(&text), "read back while the file is intact");
        std::fs::File::create(&path).unwrap();
        let lost = acc.finish();
        assert_eq!((lost.verdict, lost.confidence), (Verdict::Inconclusive, Confidence::Low));
        assert!(lost.reason.contains("could not be read back"), "{}", lost.reason);
        assert_eq!(lost.stats.bytes, text.len() as u64);
    }

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
        fn a_deferred_accumulator_answers_as_a_counting_one(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            text in "[ -~\\n\u{80}-\u{7FF}]{0,300}",
            cuts in proptest::collection::vec(0usize..3300, 0..6),
        ) {
            let data: Vec<u8> = if data.len() % 2 == 0 { text.into_bytes() } else { data };
            let mut counting = Accumulator::new();
            let mut deferred = Accumulator::deferred();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut from = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                counting.update(&data[from..c]);
                deferred.update(&data[from..c]);
                from = c;
            }
            proptest::prop_assert_eq!(deferred.len(), counting.len());
            proptest::prop_assert_eq!(deferred.histogram(), counting.histogram());
            proptest::prop_assert_eq!(deferred.brief(), counting.brief());
            proptest::prop_assert_eq!(deferred.finish(), counting.finish());
            let entropy = shannon_entropy(&counting.histogram());
            proptest::prop_assert_eq!(counting.brief_and_entropy(), (counting.brief(), entropy));
            proptest::prop_assert_eq!(deferred.brief_and_entropy(), (counting.brief(), entropy));
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
}
