//! Cutting a byte stream into rchat frames: bytes in; "a frame's header is in", "the frame
//! ended here", "need more bytes", or a typed [`WireError`] out. The one place that knows
//! where a frame starts and stops, used by the chat's socket reader, by `rchat analyze` on
//! captured streams, and by tests that read what crossed the wire.
//!
//! [`Deframer`] works on a stream that arrives in pieces of any size and never holds more than
//! one header (10 bytes): the caller decides what to keep of a body, so a reader that only
//! counts frames stores nothing. [`front`] answers the simpler question for bytes already in a
//! buffer: is a whole frame at its start? Headers are checked by [`FrameHeader::decode`] (magic,
//! version, type, and the body length against the type's limit) before any body byte is
//! counted, and a wrong magic is refused as soon as the bytes present show it.

use super::wire::{FrameHeader, HEADER_LEN, MAGIC, WireError};

/// What [`Deframer::push`] found in the bytes it used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Every byte given was used and no boundary was reached: give more.
    NeedMore,
    /// A frame's header is complete and checked; its body (`header.len` bytes) follows.
    Header(FrameHeader),
    /// A frame ended with the last byte used.
    End,
}

/// One step of [`Deframer::push`]: how many bytes it used, and what those bytes completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Bytes used from the front of the input; the rest belongs to later steps.
    pub used: usize,
    /// What the used bytes completed.
    pub event: Event,
}

/// Frame boundaries of one direction of a stream, fed in order.
#[derive(Debug, Clone)]
pub struct Deframer {
    head: [u8; HEADER_LEN],
    /// Header bytes collected so far.
    have: usize,
    /// The frame being read and the body bytes it still needs, once its header is in.
    body: Option<(FrameHeader, u32)>,
}

impl Default for Deframer {
    fn default() -> Self {
        Self::new()
    }
}

impl Deframer {
    /// A deframer at the start of a frame.
    pub fn new() -> Self {
        Deframer { head: [0; HEADER_LEN], have: 0, body: None }
    }

    /// Use bytes from the front of `bytes` up to the next boundary (a complete header, or the
    /// end of a frame), or all of them. Call again with the rest. An empty input is
    /// [`Event::NeedMore`] with nothing used, except that a frame whose body is empty ends at
    /// once after its header. After an error the deframer is lost: frame boundaries are
    /// unknown from there on.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Step, WireError> {
        if let Some((header, left)) = self.body {
            let take = bytes.len().min(left as usize);
            let left = left - take as u32;
            if left == 0 {
                self.body = None;
                return Ok(Step { used: take, event: Event::End });
            }
            self.body = Some((header, left));
            return Ok(Step { used: take, event: Event::NeedMore });
        }
        let take = (HEADER_LEN - self.have).min(bytes.len());
        let (dst, src) = (&mut self.head[self.have..self.have + take], &bytes[..take]);
        dst.copy_from_slice(src);
        self.have += take;
        let magic = self.have.min(MAGIC.len());
        if self.head[..magic] != MAGIC[..magic] {
            let mut seen = [0u8; 4];
            seen[..magic].copy_from_slice(&self.head[..magic]);
            return Err(WireError::BadMagic(seen));
        }
        if self.have < HEADER_LEN {
            return Ok(Step { used: take, event: Event::NeedMore });
        }
        let header = FrameHeader::decode(&self.head)?;
        self.have = 0;
        self.body = Some((header, header.len));
        Ok(Step { used: take, event: Event::Header(header) })
    }

    /// The header of the frame being read, once it is complete.
    pub fn header(&self) -> Option<FrameHeader> {
        self.body.map(|(h, _)| h)
    }

    /// Whether the deframer is between frames (no byte of the next one seen).
    pub fn between_frames(&self) -> bool {
        self.have == 0 && self.body.is_none()
    }
}

/// What [`front`] found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    /// A whole frame: its header and its length on the wire (header and body).
    Whole {
        /// The checked header.
        header: FrameHeader,
        /// `HEADER_LEN + header.len`.
        len: usize,
    },
    /// Not all of the frame is there yet; its header when that much is.
    Partial {
        /// The checked header, once its 10 bytes are in.
        header: Option<FrameHeader>,
    },
}

/// Look at the frame at the start of `bytes`.
pub fn front(bytes: &[u8]) -> Result<Front, WireError> {
    let mut d = Deframer::new();
    let mut at = 0;
    let mut header = None;
    loop {
        let step = d.push(&bytes[at..])?;
        at += step.used;
        match step.event {
            Event::Header(h) => header = Some(h),
            // A fresh deframer reports a frame's header before its end.
            Event::End => {
                return Ok(match header {
                    Some(header) => Front::Whole { header, len: at },
                    None => Front::Partial { header },
                });
            }
            Event::NeedMore => return Ok(Front::Partial { header }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::wire::{Auth, Busy, Frame, FrameType};

    fn frames() -> (Vec<u8>, Vec<usize>) {
        let parts = [
            Busy { reason: "x".into() }.to_frame().to_bytes(),
            Frame { kind: FrameType::Bye, body: vec![] }.to_bytes(),
            Auth { signature: vec![7; 300] }.to_frame().to_bytes(),
        ];
        let ends = parts.iter().scan(0, |n, p| Some(*n + p.len()).inspect(|e| *n = *e)).collect();
        (parts.concat(), ends)
    }

    /// Every boundary, fed in pieces of `size` bytes.
    fn boundaries(stream: &[u8], size: usize) -> Result<(Vec<usize>, Vec<FrameType>), WireError> {
        let mut d = Deframer::new();
        let (mut ends, mut kinds, mut offset) = (vec![], vec![], 0);
        for chunk in stream.chunks(size) {
            let mut rest = chunk;
            loop {
                let step = d.push(rest)?;
                offset += step.used;
                rest = &rest[step.used..];
                match step.event {
                    Event::Header(h) => kinds.push(h.kind),
                    Event::End => ends.push(offset),
                    Event::NeedMore => break,
                }
            }
        }
        assert!(d.between_frames());
        Ok((ends, kinds))
    }

    #[test]
    fn boundaries_do_not_depend_on_how_the_bytes_arrive() {
        let (stream, ends) = frames();
        for size in [1, 2, 3, 9, 10, 11, 64, stream.len()] {
            let (got, kinds) = boundaries(&stream, size).unwrap();
            assert_eq!(got, ends, "pieces of {size}");
            assert_eq!(kinds, [FrameType::Busy, FrameType::Bye, FrameType::Auth]);
        }
    }

    #[test]
    fn a_wrong_magic_is_refused_from_its_first_byte() {
        let mut d = Deframer::new();
        assert!(matches!(d.push(b"h"), Err(WireError::BadMagic([b'h', 0, 0, 0]))));
        let mut d = Deframer::new();
        assert_eq!(d.push(b"RC").unwrap(), Step { used: 2, event: Event::NeedMore });
        assert!(matches!(d.push(b"x"), Err(WireError::BadMagic(_))));
    }

    #[test]
    fn headers_are_checked_before_any_body_byte() {
        let big = FrameHeader { kind: FrameType::Message, len: 2000 }.encode();
        let mut bad = big;
        bad[6..].copy_from_slice(&u32::MAX.to_be_bytes());
        let mut d = Deframer::new();
        assert!(matches!(d.push(&bad), Err(WireError::TooLong { .. })));
        let mut d = Deframer::new();
        let step = d.push(&big).unwrap();
        assert_eq!(step.used, HEADER_LEN);
        assert!(matches!(step.event, Event::Header(h) if h.len == 2000));
    }

    #[test]
    fn front_finds_whole_and_partial_frames() {
        let (stream, ends) = frames();
        let whole = front(&stream).unwrap();
        assert!(
            matches!(whole, Front::Whole { len, header } if len == ends[0] && header.kind == FrameType::Busy)
        );
        assert_eq!(
            front(&stream[..ends[0] - 1]).unwrap(),
            Front::Partial {
                header: Some(FrameHeader {
                    kind: FrameType::Busy,
                    len: (ends[0] - HEADER_LEN) as u32
                })
            }
        );
        assert_eq!(front(b"RCH").unwrap(), Front::Partial { header: None });
        assert_eq!(front(b"").unwrap(), Front::Partial { header: None });
        let empty = front(&stream[ends[0]..]).unwrap();
        assert_eq!(
            empty,
            Front::Whole { header: FrameHeader { kind: FrameType::Bye, len: 0 }, len: HEADER_LEN }
        );
        assert!(front(b"GET / HTTP/1.1").is_err());
    }

    proptest::proptest! {
        #[test]
        fn deframer_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..400), size in 1usize..40) {
            let _ = boundaries(&data, size);
            let _ = front(&data);
        }
    }
}
