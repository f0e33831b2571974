//! Byte counting.
//!
//! Owns the [`Accumulator`]: a 256-bin histogram counted in four interleaved scratch tables
//! (the thread's own or a caller's, then added to it), a UTF-8 decoder carried across pieces
//! for the printable count, and the first bytes kept as a sample for the encoding checks; or,
//! for a message ([`Accumulator::deferred`]), only the sample until it is asked for a verdict
//! (in `judge`) or outgrows the sample. The numbers made of the counts are in `entropy`. It
//! sees bytes only, never packets or streams.

use std::borrow::Cow;

use super::verdict::occurring;
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
/// as its largest counter allows (a bound on it: [`Accumulator`]'s `peak`), widened before
/// any counter could overflow. A direction or message of a few hundred bytes (most of a
/// chat's), or a few kilobytes of random bytes, keeps 256 bytes of counters, not a kilobyte;
/// past 64 KiB it has the 32-bit table it always had.
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
    /// Make room for counters up to `total`: widen the table if one could pass what it holds
    /// (`total` is at most [`FOLD_EVERY`], which 32 bits hold).
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
fn merge_into<C: Counter>(t: &mut [C; 256], sums: &[u32; 256]) {
    for (h, &n) in t.iter_mut().zip(sums) {
        *h += C::from_u32(n);
    }
}

/// Each value's count summed over the lanes, and the largest sum.
fn lane_sums(lanes: &Lanes) -> ([u32; 256], u32) {
    let [l0, l1, l2, l3] = lanes;
    let mut sums = [0u32; 256];
    for (i, s) in sums.iter_mut().enumerate() {
        // `i` < 256: every lane has 256 entries.
        *s = l0[i] + l1[i] + l2[i] + l3[i];
    }
    let most = sums.iter().copied().fold(0, u32::max);
    (sums, most)
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
    /// No counter in `hist` is above this (at most the bytes counted since the fold): the
    /// table is widened by it, so that bytes spread over many values stay in narrow counters.
    peak: u64,
    pub(super) printable: u64,
    /// Bytes decoded for the printable count (all of the first blocks, then 1 block in 16).
    pub(super) examined: u64,
    /// How many leading blocks are decoded in full.
    pub(super) exact_blocks: u64,
    utf8_state: usize,
    /// Stream offset just after the last decoded byte: where `utf8_state` applies.
    state_offset: u64,
    pub(super) sample: Sample,
    /// Counting put off ([`Accumulator::deferred`]): the bytes are only in `sample`, and
    /// `bytes` stays 0 until they are counted.
    pub(super) deferred: bool,
}

impl Default for Accumulator {
    fn default() -> Self {
        Self {
            bytes: 0,
            hist: Table::Empty,
            folded: None,
            folded_at: 0,
            peak: 0,
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

    /// Count `kept` (bytes already in a sample: they are not kept again).
    pub(super) fn count_kept(&mut self, kept: &[u8]) {
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

    /// An empty accumulator that counts as this one does (not deferred).
    pub(super) fn empty_like(&self) -> Accumulator {
        Accumulator { exact_blocks: self.exact_blocks, ..Self::default() }
    }

    /// Bytes of characters cut at the ends, which count as printable: a message cut out of a
    /// stream may start or end inside a character, and up to three continuation bytes at the
    /// start (`head` is the first bytes fed) and an unfinished sequence at the end are pieces
    /// of text, not evidence against it.
    pub(super) fn cut_characters(&self, head: &[u8]) -> u64 {
        let leading = head.iter().take_while(|&&b| is_continuation(b)).count() as u64;
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
        leading + trailing
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
                    self.peak += piece.len() as u64;
                    self.hist.fit(self.peak);
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
    pub(super) fn occurring(&self) -> [u64; 4] {
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
        self.peak = 0;
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
        // No counter gets more than the largest sum of the lanes' counters for one value.
        let (sums, most) = lane_sums(lanes);
        self.peak = (self.peak + u64::from(most)).min(self.bytes - self.folded_at);
        self.hist.fit(self.peak);
        match &mut self.hist {
            Table::Empty => {}
            Table::U8(t) => merge_into(t, &sums),
            Table::U16(t) => merge_into(t, &sums),
            Table::U32(t) => merge_into(t, &sums),
        }
        *lanes = [[0; 256]; LANES];
    }
}

#[cfg(test)]
mod tests {
    use super::super::shannon_entropy;
    use super::super::test_data::{TEXT, noise};
    use super::super::{SAMPLE_LIMIT, Verdict, classify};
    use super::*;

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
            while fed < 100_000 + piece {
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
                let most = want.iter().copied().max().unwrap_or(0);
                let ok = match &acc.hist {
                    Table::Empty => false,
                    Table::U8(_) => most <= 255,
                    Table::U16(_) => most <= 65_535,
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
