//! The SHA-256 of each direction, computed for several directions at a time.
//!
//! Every reassembled byte is hashed, which makes SHA-256 the largest single cost of an
//! analysis. One SHA-256 compression is a chain of rounds that each wait for the one before,
//! so hashing one stream leaves the CPU's SHA unit idle between rounds. Independent streams do
//! not wait for each other: [`update_many`] advances up to four directions in lockstep and
//! fills those waits (on x86-64 with the SHA extensions, about 1.7 times the bytes per second
//! of one stream at a time). [`Sha256Stream`] is the incremental hasher whose state it
//! advances; it also takes bytes one stream at a time. Without the SHA extensions, or on other
//! processors, every block goes through the `sha2` crate's compression function, one stream at
//! a time; the tests check both paths against the `sha2` crate's own hasher.

/// Bytes per SHA-256 block.
const BLOCK: usize = 64;

/// The SHA-256 initial hash value (FIPS 180-4, 5.3.3).
const H0: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// Directions advanced together at most.
const WAYS: usize = 4;

/// An incremental SHA-256 of one direction's bytes.
#[derive(Debug, Clone)]
pub struct Sha256Stream {
    state: [u32; 8],
    /// Bytes waiting for the rest of their block.
    pending: [u8; BLOCK],
    pending_len: usize,
    /// Bytes taken in so far.
    len: u64,
}

impl Default for Sha256Stream {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha256Stream {
    /// The hash of no bytes yet.
    pub fn new() -> Self {
        Sha256Stream { state: H0, pending: [0; BLOCK], pending_len: 0, len: 0 }
    }

    /// Take in `data`.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.pending_len > 0 {
            data = self.top_up(data);
            if self.pending_len < BLOCK {
                return;
            }
            compress1(&mut self.state, std::slice::from_ref(&self.pending));
            self.pending_len = 0;
        }
        let (blocks, rest) = data.as_chunks::<BLOCK>();
        compress1(&mut self.state, blocks);
        self.keep(rest);
    }

    /// The digest of every byte taken in.
    pub fn finish(mut self) -> [u8; 32] {
        let bits = self.len.wrapping_mul(8);
        let mut last = [0u8; BLOCK];
        let n = self.pending_len.min(BLOCK - 1);
        last[..n].copy_from_slice(&self.pending[..n]);
        last[n] = 0x80;
        if n >= BLOCK - 8 {
            compress1(&mut self.state, std::slice::from_ref(&last));
            last = [0; BLOCK];
        }
        last[BLOCK - 8..].copy_from_slice(&bits.to_be_bytes());
        compress1(&mut self.state, std::slice::from_ref(&last));
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// Move the front of `data` into the pending block, as much as fits; return the rest.
    fn top_up<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        let take = (BLOCK - self.pending_len).min(data.len());
        let (now, rest) = data.split_at(take);
        self.pending[self.pending_len..self.pending_len + take].copy_from_slice(now);
        self.pending_len += take;
        rest
    }

    /// Keep fewer than a block's bytes (the pending block is empty).
    fn keep(&mut self, rest: &[u8]) {
        let n = rest.len().min(BLOCK);
        self.pending[..n].copy_from_slice(&rest[..n]);
        self.pending_len = n;
    }
}

/// Compress whole blocks one stream at a time (the `sha2` crate picks the fastest way this
/// processor has).
fn compress1(state: &mut [u32; 8], blocks: &[[u8; BLOCK]]) {
    if !blocks.is_empty() {
        sha2::block_api::compress256(state, blocks);
    }
}

/// One direction's bytes for [`update_many`]: its hasher and the pieces to take in, in order.
pub type Job<'h, 'p, P> = (&'h mut Sha256Stream, &'p [P]);

/// Take each job's pieces into its hasher, in order: the same result as calling
/// [`Sha256Stream::update`] on every piece, but with up to four directions advanced together.
pub fn update_many<P: AsRef<[u8]>>(jobs: &mut [Job<'_, '_, P>]) {
    if !lockstep::available() || jobs.len() < 2 {
        for (hash, pieces) in jobs.iter_mut() {
            for p in pieces.iter() {
                hash.update(p.as_ref());
            }
        }
        return;
    }
    let mut waiting = jobs.iter_mut();
    let mut lanes: Vec<Lane<'_, '_, P>> = Vec::with_capacity(WAYS);
    // A block that straddled two pieces, per lane (kept apart from the lanes so that it can
    // be lent while the lanes' states are borrowed).
    let mut joined = [[0u8; BLOCK]; WAYS];
    loop {
        while lanes.len() < WAYS {
            let Some((hash, pieces)) = waiting.next() else { break };
            let mut lane = Lane::new(hash, pieces);
            let slot = lanes.len();
            if let Some(j) = joined.get_mut(slot)
                && lane.refill(j)
            {
                lanes.push(lane);
            }
        }
        if lanes.is_empty() {
            return;
        }
        let step = lanes.iter().map(Lane::left).min().unwrap_or(0);
        let mut work = lanes.iter_mut().zip(&joined).map(|(lane, j)| {
            let all = lane.blocks.unwrap_or(std::slice::from_ref(j));
            (&mut lane.hash.state, all.get(lane.at..lane.at + step).unwrap_or(&[]))
        });
        match (work.next(), work.next(), work.next(), work.next()) {
            (Some(a), Some(b), Some(c), Some(d)) => compress_together(&mut [a, b, c, d]),
            (Some(a), Some(b), Some(c), None) => compress_together(&mut [a, b, c]),
            (Some(a), Some(b), None, _) => compress_together(&mut [a, b]),
            (Some(a), None, _, _) => compress_together(&mut [a]),
            _ => {}
        }
        drop(work);
        // Advance every lane; a lane with nothing left gives its place to the next job. Every
        // lane moves at least one block, so a lane on its joined block has used it up here:
        // one moved into another place refills that place's joined block before reading it.
        let mut i = 0;
        while i < lanes.len() {
            let done = match (lanes.get_mut(i), joined.get_mut(i)) {
                (Some(lane), Some(j)) => {
                    lane.at += step;
                    lane.left() == 0 && !lane.refill(j)
                }
                _ => true,
            };
            if done {
                lanes.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }
}

/// One direction being hashed by [`update_many`].
struct Lane<'h, 'p, P> {
    hash: &'h mut Sha256Stream,
    pieces: std::slice::Iter<'p, P>,
    /// What is left of the current piece after `blocks`.
    rest: &'p [u8],
    /// Whole blocks of the current piece, or `None` when the lane's joined block is next.
    blocks: Option<&'p [[u8; BLOCK]]>,
    /// Blocks of `blocks` (or of the joined block) already compressed.
    at: usize,
}

impl<'h, 'p, P: AsRef<[u8]>> Lane<'h, 'p, P> {
    fn new(hash: &'h mut Sha256Stream, pieces: &'p [P]) -> Self {
        Lane { hash, pieces: pieces.iter(), rest: &[], blocks: Some(&[]), at: 0 }
    }

    /// Blocks not yet compressed.
    fn left(&self) -> usize {
        self.blocks.map_or(1, <[_]>::len).saturating_sub(self.at)
    }

    /// Find the next whole block(s), filling `joined` when a block straddles pieces. False
    /// when the pieces are used up: what is left of them is then pending in the hasher.
    fn refill(&mut self, joined: &mut [u8; BLOCK]) -> bool {
        self.at = 0;
        loop {
            let hash = &mut *self.hash;
            if hash.pending_len > 0 {
                self.rest = hash.top_up(self.rest);
                if hash.pending_len == BLOCK {
                    *joined = hash.pending;
                    hash.pending_len = 0;
                    self.blocks = None;
                    return true;
                }
            } else {
                let (blocks, rest) = self.rest.as_chunks::<BLOCK>();
                self.rest = rest;
                if !blocks.is_empty() {
                    self.blocks = Some(blocks);
                    return true;
                }
                hash.keep(rest);
                self.rest = &[];
            }
            let Some(next) = self.pieces.next() else {
                self.blocks = Some(&[]);
                return false;
            };
            self.rest = next.as_ref();
            hash.len += self.rest.len() as u64;
            if let Some(after) = self.pieces.as_slice().first() {
                crate::analyze::engine::cache::prefetch(after.as_ref());
            }
        }
    }
}

/// Compress the same number of blocks into each of up to four states.
fn compress_together(work: &mut [(&mut [u32; 8], &[[u8; BLOCK]])]) {
    let done = match work {
        [a, b, c, d] => lockstep::compress([a, b, c, d]),
        [a, b, c] => lockstep::compress([a, b, c]),
        [a, b] => lockstep::compress([a, b]),
        _ => false,
    };
    if !done {
        for (state, blocks) in work.iter_mut() {
            compress1(state, blocks);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod lockstep {
    //! Several SHA-256 compressions interleaved with the x86 SHA extensions.

    use std::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_loadu_si128, _mm_set_epi64x,
        _mm_setzero_si128, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32,
        _mm_shuffle_epi8, _mm_shuffle_epi32, _mm_storeu_si128,
    };

    use super::BLOCK;

    /// The SHA-256 round constants (FIPS 180-4, 4.2.2).
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    /// Whether this processor has what [`compress`] needs (the answer is cached by std).
    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse2")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1")
    }

    /// Compress `blocks` into `state` for `N` pairs in lockstep (all with as many blocks as
    /// the first). False, having done nothing, when the processor lacks the instructions.
    pub fn compress<const N: usize>(work: [&mut (&mut [u32; 8], &[[u8; BLOCK]]); N]) -> bool {
        if !available() {
            return false;
        }
        // SAFETY: the instructions `rounds` is compiled for were just found on this processor.
        unsafe { rounds(work) };
        true
    }

    /// # Safety
    /// The processor must have the SHA extensions and SSE4.1 ([`available`]).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn rounds<const N: usize>(work: [&mut (&mut [u32; 8], &[[u8; BLOCK]]); N]) {
        // SAFETY (every block below): the caller checked the features; the helpers only read
        // and write inside the arrays they are given.
        let blocks = work.iter().map(|(_, b)| b.len()).min().unwrap_or(0);
        let zero = _mm_setzero_si128();
        let mut abef = [zero; N];
        let mut cdgh = [zero; N];
        for (i, (state, _)) in work.iter().enumerate() {
            (abef[i], cdgh[i]) = unsafe { load_state(state) };
        }
        for b in 0..blocks {
            let (abef0, cdgh0) = (abef, cdgh);
            let mut w = [[zero; 4]; N];
            for (i, (_, lane)) in work.iter().enumerate() {
                if let Some(block) = lane.get(b) {
                    w[i] = unsafe { load_block(block) };
                }
            }
            for r in 0..16 {
                for i in 0..N {
                    unsafe { four_rounds(&mut abef[i], &mut cdgh[i], w[i][r % 4], r) };
                }
                if r < 12 {
                    for wi in w.iter_mut() {
                        wi[r % 4] = unsafe { schedule(wi, r) };
                    }
                }
            }
            for i in 0..N {
                abef[i] = _mm_add_epi32(abef[i], abef0[i]);
                cdgh[i] = _mm_add_epi32(cdgh[i], cdgh0[i]);
            }
        }
        for (i, (state, _)) in work.into_iter().enumerate() {
            unsafe { store_state(state, abef[i], cdgh[i]) };
        }
    }

    /// Rounds `4r` to `4r + 3` with message words `w`.
    #[inline(always)]
    unsafe fn four_rounds(abef: &mut __m128i, cdgh: &mut __m128i, w: __m128i, r: usize) {
        unsafe {
            let k = _mm_loadu_si128(K.as_ptr().add(4 * (r % 16)).cast());
            let wk = _mm_add_epi32(w, k);
            *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, wk);
            *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32(wk, 0x0e));
        }
    }

    /// Message words `4r + 16` to `4r + 19`, from the four groups before them (kept in a
    /// ring of four: group `r` is `w[r % 4]`).
    #[inline(always)]
    unsafe fn schedule(w: &[__m128i; 4], r: usize) -> __m128i {
        unsafe {
            let t = _mm_add_epi32(
                _mm_sha256msg1_epu32(w[r % 4], w[(r + 1) % 4]),
                _mm_alignr_epi8(w[(r + 3) % 4], w[(r + 2) % 4], 4),
            );
            _mm_sha256msg2_epu32(t, w[(r + 3) % 4])
        }
    }

    /// The state as the instructions want it: (A, B, E, F) and (C, D, G, H).
    #[inline(always)]
    unsafe fn load_state(s: &[u32; 8]) -> (__m128i, __m128i) {
        unsafe {
            let dcba = _mm_loadu_si128(s.as_ptr().cast());
            let hgfe = _mm_loadu_si128(s.as_ptr().add(4).cast());
            let cdab = _mm_shuffle_epi32(dcba, 0xb1);
            let efgh = _mm_shuffle_epi32(hgfe, 0x1b);
            (_mm_alignr_epi8(cdab, efgh, 8), _mm_blend_epi16(efgh, cdab, 0xf0))
        }
    }

    #[inline(always)]
    unsafe fn store_state(s: &mut [u32; 8], abef: __m128i, cdgh: __m128i) {
        unsafe {
            let feba = _mm_shuffle_epi32(abef, 0x1b);
            let dchg = _mm_shuffle_epi32(cdgh, 0xb1);
            _mm_storeu_si128(s.as_mut_ptr().cast(), _mm_blend_epi16(feba, dchg, 0xf0));
            _mm_storeu_si128(s.as_mut_ptr().add(4).cast(), _mm_alignr_epi8(dchg, feba, 8));
        }
    }

    /// The block's sixteen big-endian words, four per register.
    #[inline(always)]
    unsafe fn load_block(block: &[u8; BLOCK]) -> [__m128i; 4] {
        unsafe {
            let swap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
            let p = block.as_ptr();
            [
                _mm_shuffle_epi8(_mm_loadu_si128(p.cast()), swap),
                _mm_shuffle_epi8(_mm_loadu_si128(p.add(16).cast()), swap),
                _mm_shuffle_epi8(_mm_loadu_si128(p.add(32).cast()), swap),
                _mm_shuffle_epi8(_mm_loadu_si128(p.add(48).cast()), swap),
            ]
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod lockstep {
    //! No lockstep compression on this processor: blocks go one stream at a time.

    use super::BLOCK;

    pub fn available() -> bool {
        false
    }

    pub fn compress<const N: usize>(_: [&mut (&mut [u32; 8], &[[u8; BLOCK]]); N]) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    fn reference(pieces: &[Vec<u8>]) -> [u8; 32] {
        let mut h = Sha256::new();
        for p in pieces {
            h.update(p);
        }
        h.finalize().into()
    }

    #[test]
    fn known_answers() {
        // FIPS 180-2 appendix B examples.
        let cases: [(&[u8], &str); 3] = [
            (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
            ),
        ];
        for (input, want) in cases {
            let mut h = Sha256Stream::new();
            h.update(input);
            assert_eq!(hex::encode(h.finish()), want);
        }
        let mut h = Sha256Stream::new();
        for _ in 0..1000 {
            h.update(&[b'a'; 1000]);
        }
        assert_eq!(
            hex::encode(h.finish()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn padding_at_every_length_around_a_block() {
        for n in 0..200 {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
            let mut h = Sha256Stream::new();
            h.update(&data);
            assert_eq!(h.finish(), reference(&[data]), "length {n}");
        }
    }

    #[test]
    fn many_directions_hashed_together_match_one_at_a_time() {
        // Five directions (a lane is handed on) of very different lengths, in pieces of
        // every size around a block, some empty; some hashers already part way.
        let mut next = crate::analyze::xorshift(0x9e37_79b9_7f4a_7c15u64);
        let mut dirs: Vec<(Vec<u8>, Vec<Vec<u8>>)> = Vec::new();
        for d in 0..5 {
            let head: Vec<u8> = (0..(d * 37) % 90).map(|_| next() as u8).collect();
            let pieces: Vec<Vec<u8>> = (0..(d * 11 + 1))
                .map(|_| {
                    let len = (next() % 200) as usize;
                    (0..len).map(|_| next() as u8).collect()
                })
                .collect();
            dirs.push((head, pieces));
        }
        let mut hashes: Vec<Sha256Stream> = dirs
            .iter()
            .map(|(head, _)| {
                let mut h = Sha256Stream::new();
                h.update(head);
                h
            })
            .collect();
        let mut jobs: Vec<Job<'_, '_, Vec<u8>>> =
            hashes.iter_mut().zip(&dirs).map(|(h, (_, pieces))| (h, pieces.as_slice())).collect();
        update_many(&mut jobs);
        for (h, (head, pieces)) in hashes.into_iter().zip(&dirs) {
            let mut all = vec![head.clone()];
            all.extend(pieces.iter().cloned());
            assert_eq!(h.finish(), reference(&all));
        }
    }

    proptest! {
        #[test]
        fn update_many_equals_the_reference(
            dirs in prop::collection::vec(
                (0usize..130, prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..12)),
                0..7,
            )
        ) {
            let mut hashes: Vec<Sha256Stream> = dirs
                .iter()
                .map(|(head, _)| {
                    let mut h = Sha256Stream::new();
                    h.update(&vec![0xa5; *head]);
                    h
                })
                .collect();
            let mut jobs: Vec<Job<'_, '_, Vec<u8>>> = hashes
                .iter_mut()
                .zip(&dirs)
                .map(|(h, (_, pieces))| (h, pieces.as_slice()))
                .collect();
            update_many(&mut jobs);
            for (h, (head, pieces)) in hashes.into_iter().zip(&dirs) {
                let mut all = vec![vec![0xa5; *head]];
                all.extend(pieces.iter().cloned());
                prop_assert_eq!(h.finish(), reference(&all));
            }
        }
    }

    #[test]
    fn lockstep_compression_matches_the_sha2_crate() {
        if !lockstep::available() {
            eprintln!("skipped: this processor has no SHA extensions");
            return;
        }
        let blocks: Vec<[u8; BLOCK]> =
            (0..40u8).map(|i| std::array::from_fn(|j| i.wrapping_mul(31) ^ j as u8)).collect();
        for ways in 2..=WAYS {
            let mut states: Vec<[u32; 8]> = (0..ways).map(|i| [i as u32; 8]).collect();
            let want: Vec<[u32; 8]> = states
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let mut s = *s;
                    sha2::block_api::compress256(&mut s, &blocks[i..i + 30]);
                    s
                })
                .collect();
            let mut work: Vec<(&mut [u32; 8], &[[u8; BLOCK]])> =
                states.iter_mut().enumerate().map(|(i, s)| (s, &blocks[i..i + 30])).collect();
            compress_together(&mut work);
            assert_eq!(states, want, "{ways} ways");
        }
    }
}
