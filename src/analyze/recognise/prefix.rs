//! Length-prefix framing in one reassembled direction: whether a direction's first bytes are
//! frames behind a big-endian length of 4 or 2 bytes ([`opens`]), and where each frame ends
//! ([`PrefixCutter`]).
//!
//! A length prefix carries no magic, so [`opens`] claims a direction only when the lengths agree
//! with how the sender wrote: every frame of the first bytes must be plausible, no write of the
//! sender may start inside a frame (except right after its prefix), and at least one frame must
//! end where a write ended or where the direction did. Text, TLS records, rchat frames and
//! random bytes are then almost never claimed (the tests measure it). The cutter keeps only a
//! prefix's bytes; neither looks inside a frame (key material in it is `keys`' work) nor sees
//! where bytes lie in the capture file.

use super::{Cut, Cutter, Part, Unframed};

/// The most first bytes of a direction [`opens`] is given.
pub const OPENING: usize = 512;
/// The longest frame body behind a 4-byte prefix.
pub const MAX_FRAME: usize = 1 << 20;
/// The widest prefix.
const MAX_WIDTH: usize = 4;

/// The largest length a prefix of `width` bytes may give.
fn max_len(width: u8) -> usize {
    if width == 2 { usize::from(u16::MAX) } else { MAX_FRAME }
}

/// A big-endian length of `width` bytes (2 or 4) at the start of `bytes`.
fn length(bytes: &[u8], width: u8) -> Option<usize> {
    match (width, bytes) {
        (2, &[a, b, ..]) => Some(usize::from(u16::from_be_bytes([a, b]))),
        (4, &[a, b, c, d, ..]) => usize::try_from(u32::from_be_bytes([a, b, c, d])).ok(),
        _ => None,
    }
}

/// Whether a direction whose first bytes are `prefix` (up to [`OPENING`]; fewer when the
/// direction ended there) is framed by a big-endian length prefix, and of how many bytes: 4
/// is tried before 2. `writes` are the offsets in `prefix` where a write of the sender started
/// (0 among them).
///
/// Claimed when, walking the frames through `prefix`: every length is at least 1 (and at most
/// [`MAX_FRAME`] for 4 bytes); no write starts inside a frame but right after its prefix; the
/// direction, if it ended within `prefix`, ended on a frame's end; and some frame ends on a
/// write boundary or on the direction's end.
pub fn opens(prefix: &[u8], writes: &[usize]) -> Option<u8> {
    [4, 2].into_iter().find(|&w| framed(prefix, writes, w))
}

/// Whether `prefix` walks as frames behind `width`-byte lengths, as [`opens`] says.
fn framed(prefix: &[u8], writes: &[usize], width: u8) -> bool {
    let ended = prefix.len() < OPENING;
    let len = prefix.len();
    let w = usize::from(width);
    let mut at = 0;
    let mut confirmed = false;
    while at < len {
        let Some(body) = prefix.get(at..).and_then(|rest| length(rest, width)) else {
            // A prefix cut off: by the end of what was given, or of the direction.
            return !ended && confirmed;
        };
        if body == 0 || body > max_len(width) {
            return false;
        }
        let end = at + w + body;
        let inside = end.min(len);
        if writes.iter().any(|&b| at < b && b < inside && b != at + w) {
            return false;
        }
        if writes.contains(&end) || (ended && end == len) {
            confirmed = true;
        }
        if end > len {
            return !ended && confirmed;
        }
        at = end;
    }
    confirmed
}

/// Cuts a direction framed by a big-endian length prefix of 2 or 4 bytes: each frame, prefix
/// and body, is one [`Part::Message`]. A length of 0 (or over [`MAX_FRAME`] behind 4 bytes) is
/// [`Unframed`]. Keeps only the prefix's bytes.
#[derive(Debug)]
pub struct PrefixCutter {
    width: u8,
    head: [u8; MAX_WIDTH],
    head_len: usize,
    /// Body bytes left of the frame being read.
    left: usize,
    unframed: bool,
}

impl PrefixCutter {
    /// A cutter for prefixes of `width` bytes (2 or 4; any other width is unframed at once).
    pub fn new(width: u8) -> Self {
        PrefixCutter {
            width,
            head: [0; MAX_WIDTH],
            head_len: 0,
            left: 0,
            unframed: !matches!(width, 2 | 4),
        }
    }
}

impl Cutter for PrefixCutter {
    fn push(&mut self, bytes: &[u8]) -> Result<Cut, Unframed> {
        if self.unframed {
            return Err(Unframed);
        }
        let w = usize::from(self.width);
        let mut used = 0;
        if self.left == 0 {
            let n = (w - self.head_len).min(bytes.len());
            if let (Some(to), Some(from)) =
                (self.head.get_mut(self.head_len..self.head_len + n), bytes.get(..n))
            {
                to.copy_from_slice(from);
            }
            self.head_len += n;
            used = n;
            if self.head_len < w {
                return Ok(Cut { used, ended: None });
            }
            self.head_len = 0;
            match length(&self.head, self.width) {
                Some(body) if body >= 1 && body <= max_len(self.width) => self.left = body,
                _ => {
                    self.unframed = true;
                    return Err(Unframed);
                }
            }
        }
        let rest = bytes.get(used..).unwrap_or(&[]);
        let n = self.left.min(rest.len());
        self.left -= n;
        Ok(Cut { used: used + n, ended: (self.left == 0).then_some(Part::Message) })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::{RngExt, SeedableRng};

    use super::*;
    use crate::analyze::recognise::testing::cut_all;

    const CLIENT: &[u8] = include_bytes!("../../../tests/data/streams/oaep-prefix-client.bin");
    const SERVER: &[u8] = include_bytes!("../../../tests/data/streams/oaep-prefix-server.bin");

    fn cuts(width: u8, bytes: &[u8], piece: usize) -> (Vec<usize>, bool) {
        let (cuts, gave_up) = cut_all(&mut PrefixCutter::new(width), bytes, piece);
        assert!(cuts.iter().all(|&(_, p)| p == Part::Message), "{cuts:?}");
        (cuts.into_iter().map(|(n, _)| n).collect(), gave_up)
    }

    /// The first [`OPENING`] bytes of `bytes`, and the writes among them, from write sizes.
    fn opening<'a>(bytes: &'a [u8], sizes: &[usize]) -> (&'a [u8], Vec<usize>) {
        let prefix = &bytes[..bytes.len().min(OPENING)];
        let mut writes = vec![0];
        let mut at = 0;
        for size in sizes {
            at += size;
            if at >= prefix.len() {
                break;
            }
            writes.push(at);
        }
        (prefix, writes)
    }

    #[test]
    fn the_real_program_is_framed_by_four_bytes() {
        for (bytes, frames) in [(CLIENT, 2), (SERVER, 3)] {
            // It wrote the key (298 bytes) and each message (260) in one write each.
            let mut sizes = vec![298];
            sizes.extend(std::iter::repeat_n(260, frames));
            let (prefix, writes) = opening(bytes, &sizes);
            assert_eq!(opens(prefix, &writes), Some(4));
            // Without write boundaries the next plausible header is not enough: nothing ends
            // where a write or the direction does inside the first 512 bytes.
            assert_eq!(opens(prefix, &[0]), None);
            // A shorter direction that ends on a frame is claimed from its end alone.
            assert_eq!(opens(&bytes[..298], &[0]), Some(4));
            let mut want = vec![298];
            want.extend(std::iter::repeat_n(260, frames));
            for piece in [1, 3, 298, 4096] {
                assert_eq!(cuts(4, bytes, piece), (want.clone(), false), "piece {piece}");
            }
        }
    }

    #[test]
    fn two_byte_frames_and_what_is_not_framed() {
        let mut bytes = Vec::new();
        for body in [&b"hello"[..], &[7; 200], b"bye"] {
            bytes.extend_from_slice(&(body.len() as u16).to_be_bytes());
            bytes.extend_from_slice(body);
        }
        assert_eq!(opens(&bytes, &[0, 7, 209]), Some(2));
        assert_eq!(opens(&bytes, &[0]), Some(2), "the direction ends on a frame");
        assert_eq!(opens(&bytes, &[0, 3]), None, "a write inside a frame");
        assert_eq!(opens(&bytes[..100], &[0]), None, "the direction ends inside a frame");
        assert_eq!(cuts(2, &bytes, 1), (vec![7, 202, 5], false));
        assert_eq!(cuts(2, &[0, 0, 1], 1), (vec![], true));
        assert_eq!(cuts(4, &[0, 0x10, 0, 1, 0], 2), (vec![], true), "over 1 MiB");
        assert_eq!(cuts(3, &[0, 0, 1, 0], 2), (vec![], true), "no such width");
        assert_eq!(opens(b"", &[0]), None);
        assert_eq!(opens(&[0, 0, 0, 1], &[0]), None);
        assert_eq!(opens(&[0, 0, 0, 1, 9], &[0]), Some(4));
        assert_eq!(opens(&[0, 1, 9], &[0]), Some(2));
        assert_eq!(opens(b"RCHT\x01\x00\x00\x00\x05hello", &[0]), None);
        assert_eq!(opens(b"hello there\n", &[0]), None);
        assert_eq!(opens(&[22, 3, 1, 0, 5, 1, 0, 0, 1, 0], &[0]), None);
    }

    /// Random first bytes with random writes, as the property tests and the measurement draw
    /// them: a length up to [`OPENING`] (shorter: the direction ended) and writes of 1 to 600
    /// bytes.
    fn random_case(rng: &mut impl RngExt) -> (Vec<u8>, Vec<usize>) {
        let len = if rng.random_bool(0.5) { OPENING } else { rng.random_range(0..OPENING) };
        let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        let sizes: Vec<usize> = (0..8).map(|_| rng.random_range(1..=600)).collect();
        let (_, writes) = opening(&bytes, &sizes);
        (bytes, writes)
    }

    #[test]
    fn random_bytes_are_almost_never_claimed() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let trials = 200_000;
        let claimed = (0..trials)
            .filter(|_| {
                let (bytes, writes) = random_case(&mut rng);
                opens(&bytes, &writes).is_some()
            })
            .count();
        assert!(claimed * 10_000 <= trials, "{claimed} of {trials} random directions claimed");
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(1),
            cases: 2000,
            ..ProptestConfig::default()
        })]

        #[test]
        fn random_bytes_are_not_claimed(
            bytes in proptest::collection::vec(any::<u8>(), 0..=OPENING),
            sizes in proptest::collection::vec(1usize..=600, 0..8),
        ) {
            let (prefix, writes) = opening(&bytes, &sizes);
            prop_assert_eq!(opens(prefix, &writes), None);
        }

        #[test]
        fn text_tls_and_rchat_are_never_claimed(
            text in "[ -~\t\r\n]{1,512}",
            record in proptest::collection::vec(any::<u8>(), 0..=OPENING),
            kind in 20u8..=24,
            sizes in proptest::collection::vec(1usize..=600, 0..8),
        ) {
            let (prefix, writes) = opening(text.as_bytes(), &sizes);
            prop_assert_eq!(opens(prefix, &writes), None);
            let mut tls = vec![kind, 3, 3];
            tls.extend_from_slice(&record);
            let (prefix, writes) = opening(&tls, &sizes);
            prop_assert_eq!(opens(prefix, &writes), None);
            let mut rchat = b"RCHT".to_vec();
            rchat.extend_from_slice(&record);
            let (prefix, writes) = opening(&rchat, &sizes);
            prop_assert_eq!(opens(prefix, &writes), None);
        }

        #[test]
        fn cutting_never_panics_and_pieces_agree(
            bytes in proptest::collection::vec(any::<u8>(), 0..3000),
            piece in 1usize..64,
            width in prop_oneof![Just(2u8), Just(4u8)],
        ) {
            prop_assert_eq!(cuts(width, &bytes, piece), cuts(width, &bytes, bytes.len().max(1)));
        }
    }
}
