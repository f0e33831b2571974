//! Frames on the wire: the 10-byte header, the body of each frame type, and a checked
//! cursor for reading bodies.
//!
//! Everything here works on byte slices a peer (or a capture) controls. A header is decoded
//! with its length checked against the per-type maximum *before* anything is allocated for
//! the body, and bodies are read through [`Reader`], whose every accessor fails instead of
//! panicking. Encoding and decoding of each body sit side by side. No I/O, no cryptography.

use std::fmt;

/// The first four bytes of every frame: readable in a hex dump.
pub const MAGIC: [u8; 4] = *b"RCHT";
/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Length of the frame header.
pub const HEADER_LEN: usize = 10;
/// Longest chat message, in bytes of UTF-8.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;
/// Longest name a HELLO may carry, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 64;
/// Longest SubjectPublicKeyInfo a HELLO may carry (a 4096-bit key needs 550 bytes).
pub const MAX_SPKI_LEN: usize = 1024;
/// Longest signature (a 4096-bit key makes 512-byte signatures).
pub const MAX_SIGNATURE_LEN: usize = 512;
/// Longest reason a BUSY frame may carry.
pub const MAX_BUSY_LEN: usize = 256;
/// Most ciphertext blocks in one message: 64 KiB through the smallest key (1024 bits, 62 bytes a block).
pub const MAX_BLOCKS: usize = MAX_MESSAGE_LEN.div_ceil(62);
/// Longest ciphertext block (4096-bit key).
pub const MAX_BLOCK_LEN: usize = 512;
/// Most ciphertext in one message: 64 KiB costs the most ciphertext through the smallest key.
pub const MAX_CIPHERTEXT: usize = MAX_BLOCKS * 128;

/// The kind of a frame (byte 5 of the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    /// Opens the handshake: mode, name, public key.
    Hello = 1,
    /// Proves the sender holds its private key: a signature over the handshake.
    Auth = 2,
    /// One chat message: sequence number, ciphertext blocks, signature.
    Message = 3,
    /// The sender is leaving: sequence number and signature.
    Bye = 4,
    /// The host is already in a chat: a short reason, then the host closes.
    Busy = 5,
    /// A room's host tells a new member who is in the room (see `room_wire`).
    Roster = 6,
    /// A room's host tells a member that someone entered.
    Joined = 7,
    /// A room's host tells a member that someone left.
    Left = 8,
    /// A room message: one copy per recipient, signed once by its sender.
    Room = 9,
}

impl FrameType {
    /// The type for a header byte, if it is one.
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => FrameType::Hello,
            2 => FrameType::Auth,
            3 => FrameType::Message,
            4 => FrameType::Bye,
            5 => FrameType::Busy,
            6 => FrameType::Roster,
            7 => FrameType::Joined,
            8 => FrameType::Left,
            9 => FrameType::Room,
            _ => return None,
        })
    }

    /// Largest body this type may declare; longer frames are refused unread.
    pub fn max_body(self) -> usize {
        match self {
            FrameType::Hello => 1 + 1 + MAX_NAME_LEN + 2 + MAX_SPKI_LEN,
            FrameType::Auth => 2 + MAX_SIGNATURE_LEN,
            FrameType::Message => 8 + 2 + 2 + MAX_CIPHERTEXT + 2 + MAX_SIGNATURE_LEN,
            FrameType::Bye => 8 + 2 + MAX_SIGNATURE_LEN,
            FrameType::Busy => 2 + MAX_BUSY_LEN,
            FrameType::Roster => super::room_wire::MAX_ROSTER_BODY,
            FrameType::Joined => super::room_wire::MAX_JOINED_BODY,
            FrameType::Left => super::room_wire::MAX_LEFT_BODY,
            FrameType::Room => super::room_wire::MAX_ROOM_BODY,
        }
    }

    /// Upper-case name as the documentation and `--explain` print it.
    pub fn name(self) -> &'static str {
        match self {
            FrameType::Hello => "HELLO",
            FrameType::Auth => "AUTH",
            FrameType::Message => "MESSAGE",
            FrameType::Bye => "BYE",
            FrameType::Busy => "BUSY",
            FrameType::Roster => "ROSTER",
            FrameType::Joined => "JOINED",
            FrameType::Left => "LEFT",
            FrameType::Room => "ROOM MESSAGE",
        }
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why bytes are not a frame, or not the frame they claim to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The first bytes are not `RCHT`.
    #[error("the bytes do not start with the rchat magic RCHT")]
    BadMagic([u8; 4]),
    /// A version this build does not speak.
    #[error("protocol version {0} is not supported (this rchat speaks version {VERSION})")]
    Version(u8),
    /// A type byte with no meaning.
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    /// A declared length over the limit for its type.
    #[error("a {kind} frame declared {len} bytes, over the {max}-byte limit")]
    TooLong {
        /// The frame type.
        kind: FrameType,
        /// The declared body length.
        len: u32,
        /// The limit.
        max: usize,
    },
    /// A body whose fields do not add up.
    #[error("malformed {kind} frame: {why}")]
    Malformed {
        /// The frame type.
        kind: FrameType,
        /// What did not add up.
        why: String,
    },
    /// A field that needs more bytes than the body has left (kept without a message of its
    /// own, so that a reader waiting for more bytes pays nothing for asking early).
    #[error("malformed {kind} frame: {what} needs {need} bytes but only {have} remain")]
    Short {
        /// The frame type.
        kind: FrameType,
        /// The field.
        what: &'static str,
        /// Bytes it needs.
        need: usize,
        /// Bytes left.
        have: usize,
    },
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The frame type.
    pub kind: FrameType,
    /// The body length, already checked against `kind.max_body()`.
    pub len: u32,
}

impl FrameHeader {
    /// Decode and check a header. Fails on bad magic, version, type or an oversized length.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Self, WireError> {
        let [m0, m1, m2, m3, version, kind, l0, l1, l2, l3] = *bytes;
        if [m0, m1, m2, m3] != MAGIC {
            return Err(WireError::BadMagic([m0, m1, m2, m3]));
        }
        if version != VERSION {
            return Err(WireError::Version(version));
        }
        let kind = FrameType::from_byte(kind).ok_or(WireError::UnknownType(kind))?;
        let len = u32::from_be_bytes([l0, l1, l2, l3]);
        let max = kind.max_body();
        if len as usize > max {
            return Err(WireError::TooLong { kind, len, max });
        }
        Ok(FrameHeader { kind, len })
    }

    /// Encode a header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let l = self.len.to_be_bytes();
        let [m0, m1, m2, m3] = MAGIC;
        [m0, m1, m2, m3, VERSION, self.kind as u8, l[0], l[1], l[2], l[3]]
    }
}

/// A whole frame: header fields and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The frame type.
    pub kind: FrameType,
    /// The body.
    pub body: Vec<u8>,
}

impl Frame {
    /// The frame as it goes on the wire: header then body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.body.len());
        // Bodies are built by the encoders below, all far under u32::MAX.
        let len = u32::try_from(self.body.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&FrameHeader { kind: self.kind, len }.encode());
        out.extend_from_slice(&self.body);
        out
    }

    /// Split one frame off the front of `bytes`: `Ok(None)` when more bytes are needed,
    /// otherwise the frame and the number of bytes it used.
    pub fn parse(bytes: &[u8]) -> Result<Option<(Frame, usize)>, WireError> {
        match super::deframe::front(bytes)? {
            super::deframe::Front::Whole { header, len } => {
                let body = bytes.get(HEADER_LEN..len).unwrap_or_default().to_vec();
                Ok(Some((Frame { kind: header.kind, body }, len)))
            }
            super::deframe::Front::Partial { .. } => Ok(None),
        }
    }
}

/// A cursor over an untrusted body: every read checks the bytes are there.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    kind: FrameType,
}

impl<'a> Reader<'a> {
    /// Start reading the body of a frame of type `kind` (named in errors).
    pub fn new(kind: FrameType, buf: &'a [u8]) -> Self {
        Reader { buf, kind }
    }

    /// The error for a body whose fields do not add up.
    pub fn malformed(&self, why: impl Into<String>) -> WireError {
        WireError::Malformed { kind: self.kind, why: why.into() }
    }

    /// Take the next `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::Short { kind: self.kind, what, need: n, have: self.buf.len() });
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// Take `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// A byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// A big-endian u16.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    /// A big-endian u64.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// Bytes preceded by a u16 length, which must not exceed `max`.
    pub fn bytes_u16(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], WireError> {
        let n = usize::from(self.u16(what)?);
        if n > max {
            return Err(self.malformed(format!("{what} is {n} bytes, over the {max}-byte limit")));
        }
        self.take(n, what)
    }

    /// Succeed only if every byte was read.
    pub fn finish(self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.malformed(format!("{} unexpected bytes after the last field", self.buf.len())))
        }
    }
}

/// The mode of a two-person chat's HELLO: RSA-OAEP-SHA256 messages, RSA-PSS-SHA256 signatures.
pub const MODE_RSA_OAEP_PSS_SHA256: u8 = 1;
/// The mode of a room host's HELLO: the same cryptography, and the connection is a room's.
pub const MODE_ROOM: u8 = 2;

/// The start of a MESSAGE body once all its ciphertext blocks have arrived, before the
/// signature: what a recipient may decrypt early (see [`Message::frame_head`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageBlocks<'a> {
    /// The sender's sequence number, not yet checked.
    pub seq: u64,
    /// Length of every block.
    pub block_len: u16,
    /// The ciphertext blocks, concatenated.
    pub blocks: &'a [u8],
}

impl<'a> MessageBlocks<'a> {
    /// Read the fields before the signature from the first bytes of a MESSAGE body.
    /// `None` while the blocks are incomplete or when the fields are out of range (the
    /// whole frame's decoder then says what is wrong).
    pub fn peek(body: &'a [u8]) -> Option<Self> {
        MessageBlocks::read(&mut Reader::new(FrameType::Message, body)).ok()
    }

    /// Read the fields before the signature: `seq | block_count | block_len | blocks`.
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let seq = r.u64("sequence number")?;
        let count = usize::from(r.u16("block count")?);
        let block_len = r.u16("block length")?;
        if count == 0 || count > MAX_BLOCKS {
            return Err(r.malformed(format!("block count {count} is not within 1..={MAX_BLOCKS}")));
        }
        if block_len == 0 || usize::from(block_len) > MAX_BLOCK_LEN {
            return Err(
                r.malformed(format!("block length {block_len} is not within 1..={MAX_BLOCK_LEN}"))
            );
        }
        let blocks = r.take(count * usize::from(block_len), "ciphertext blocks")?;
        Ok(MessageBlocks { seq, block_len, blocks })
    }
}

/// HELLO body: `mode u8 | name_len u8 | name | spki_len u16 | spki`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Announced mode (always [`MODE_RSA_OAEP_PSS_SHA256`] today).
    pub mode: u8,
    /// The sender's display name, UTF-8.
    pub name: String,
    /// The sender's public key, SubjectPublicKeyInfo DER.
    pub spki: Vec<u8>,
}

impl Hello {
    /// Encode as a frame. The name is cut to [`MAX_NAME_LEN`] bytes on a char boundary.
    pub fn to_frame(&self) -> Frame {
        let name = truncate_utf8(&self.name, MAX_NAME_LEN);
        let mut body = Vec::with_capacity(4 + name.len() + self.spki.len());
        body.push(self.mode);
        body.push(name.len() as u8);
        body.extend_from_slice(name.as_bytes());
        push_u16_bytes(&mut body, &self.spki);
        Frame { kind: FrameType::Hello, body }
    }

    /// Decode a HELLO body.
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(FrameType::Hello, body);
        let mode = r.u8("mode")?;
        let name_len = usize::from(r.u8("name length")?);
        if name_len > MAX_NAME_LEN {
            return Err(r.malformed(format!("name is {name_len} bytes, over {MAX_NAME_LEN}")));
        }
        let name = r.take(name_len, "name")?;
        let name =
            std::str::from_utf8(name).map_err(|_| r.malformed("name is not UTF-8"))?.to_owned();
        let spki = r.bytes_u16("public key", MAX_SPKI_LEN)?.to_vec();
        r.finish()?;
        Ok(Hello { mode, name, spki })
    }
}

/// AUTH body: `sig_len u16 | signature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// RSA-PSS-SHA256 signature over the handshake (see `docs/PROTOCOL.md`).
    pub signature: Vec<u8>,
}

impl Auth {
    /// Encode as a frame.
    pub fn to_frame(&self) -> Frame {
        let mut body = Vec::with_capacity(2 + self.signature.len());
        push_u16_bytes(&mut body, &self.signature);
        Frame { kind: FrameType::Auth, body }
    }

    /// Decode an AUTH body.
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(FrameType::Auth, body);
        let signature = r.bytes_u16("signature", MAX_SIGNATURE_LEN)?.to_vec();
        r.finish()?;
        Ok(Auth { signature })
    }
}

/// MESSAGE body: `seq u64 | block_count u16 | block_len u16 | blocks | sig_len u16 | signature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Sender's sequence number, from 0.
    pub seq: u64,
    /// Length of every ciphertext block (the recipient's modulus size).
    pub block_len: u16,
    /// The ciphertext blocks, concatenated: `block_count * block_len` bytes.
    pub blocks: Vec<u8>,
    /// RSA-PSS-SHA256 signature over the transcript, role, seq and blocks.
    pub signature: Vec<u8>,
}

impl Message {
    /// Number of blocks.
    pub fn block_count(&self) -> usize {
        self.blocks.len().checked_div(usize::from(self.block_len)).unwrap_or(0)
    }

    /// The blocks one by one.
    pub fn iter_blocks(&self) -> impl Iterator<Item = &[u8]> {
        self.blocks.chunks(usize::from(self.block_len).max(1))
    }

    /// The signed part of the body: everything before `sig_len`.
    pub fn signed_fields(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.blocks.len());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&(self.block_count() as u16).to_be_bytes());
        out.extend_from_slice(&self.block_len.to_be_bytes());
        out.extend_from_slice(&self.blocks);
        out
    }

    /// Encode as a frame.
    pub fn to_frame(&self) -> Frame {
        let mut body = self.signed_fields();
        push_u16_bytes(&mut body, &self.signature);
        Frame { kind: FrameType::Message, body }
    }

    /// The frame's first bytes, up to the end of the ciphertext blocks, before the
    /// signature exists: the header (whose length already counts a signature of `sig_len`
    /// bytes) and the signed fields. Followed by [`Message::frame_tail`], they are exactly
    /// [`Message::to_frame`]'s bytes. Sending the head first lets the recipient decrypt
    /// while the sender is still signing.
    pub fn frame_head(&self, sig_len: usize) -> Vec<u8> {
        let fields = self.signed_fields();
        let body_len = fields.len() + 2 + sig_len;
        // Bodies are bounded by MAX_CIPHERTEXT and MAX_SIGNATURE_LEN, far under u32::MAX.
        let len = u32::try_from(body_len).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(HEADER_LEN + fields.len());
        out.extend_from_slice(&FrameHeader { kind: FrameType::Message, len }.encode());
        out.extend_from_slice(&fields);
        out
    }

    /// The frame's last bytes: the signature's length and the signature.
    pub fn frame_tail(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.signature.len());
        push_u16_bytes(&mut out, &self.signature);
        out
    }

    /// Decode a MESSAGE body.
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(FrameType::Message, body);
        let MessageBlocks { seq, block_len, blocks } = MessageBlocks::read(&mut r)?;
        let signature = r.bytes_u16("signature", MAX_SIGNATURE_LEN)?.to_vec();
        r.finish()?;
        Ok(Message { seq, block_len, blocks: blocks.to_vec(), signature })
    }
}

/// BYE body: `seq u64 | sig_len u16 | signature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bye {
    /// Sender's next sequence number.
    pub seq: u64,
    /// RSA-PSS-SHA256 signature over the transcript, role and seq.
    pub signature: Vec<u8>,
}

impl Bye {
    /// Encode as a frame.
    pub fn to_frame(&self) -> Frame {
        let mut body = Vec::with_capacity(10 + self.signature.len());
        body.extend_from_slice(&self.seq.to_be_bytes());
        push_u16_bytes(&mut body, &self.signature);
        Frame { kind: FrameType::Bye, body }
    }

    /// Decode a BYE body.
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(FrameType::Bye, body);
        let seq = r.u64("sequence number")?;
        let signature = r.bytes_u16("signature", MAX_SIGNATURE_LEN)?.to_vec();
        r.finish()?;
        Ok(Bye { seq, signature })
    }
}

/// BUSY body: `reason_len u16 | reason (UTF-8)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    /// Why the host refused.
    pub reason: String,
}

impl Busy {
    /// Encode as a frame.
    pub fn to_frame(&self) -> Frame {
        let reason = truncate_utf8(&self.reason, MAX_BUSY_LEN);
        let mut body = Vec::with_capacity(2 + reason.len());
        push_u16_bytes(&mut body, reason.as_bytes());
        Frame { kind: FrameType::Busy, body }
    }

    /// Decode a BUSY body.
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(FrameType::Busy, body);
        let reason = r.bytes_u16("reason", MAX_BUSY_LEN)?;
        let reason = String::from_utf8_lossy(reason).into_owned();
        r.finish()?;
        Ok(Busy { reason })
    }
}

/// Append `bytes` behind their u16 length.
pub fn push_u16_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Every caller passes a field bounded far below u16::MAX (keys, signatures, reasons).
    let n = bytes.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&bytes[..n]);
}

/// The longest prefix of `s` that is at most `max` bytes and ends on a char boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u8, len: u32) -> [u8; HEADER_LEN] {
        let l = len.to_be_bytes();
        [b'R', b'C', b'H', b'T', VERSION, kind, l[0], l[1], l[2], l[3]]
    }

    #[test]
    fn header_round_trip() {
        let h = FrameHeader { kind: FrameType::Message, len: 300 };
        assert_eq!(FrameHeader::decode(&h.encode()), Ok(h));
        assert_eq!(&h.encode()[..4], b"RCHT");
    }

    #[test]
    fn header_rejects_bad_fields_before_reading_a_body() {
        let mut bad = header(1, 10);
        bad[0] = b'X';
        assert!(matches!(FrameHeader::decode(&bad), Err(WireError::BadMagic(_))));
        let mut v = header(1, 10);
        v[4] = 9;
        assert_eq!(FrameHeader::decode(&v), Err(WireError::Version(9)));
        assert_eq!(FrameHeader::decode(&header(0, 1)), Err(WireError::UnknownType(0)));
        assert_eq!(FrameHeader::decode(&header(10, 1)), Err(WireError::UnknownType(10)));
        assert!(matches!(
            FrameHeader::decode(&header(3, u32::MAX)),
            Err(WireError::TooLong { kind: FrameType::Message, .. })
        ));
        let max = FrameType::Hello.max_body() as u32;
        assert!(FrameHeader::decode(&header(1, max)).is_ok());
        assert!(FrameHeader::decode(&header(1, max + 1)).is_err());
    }

    #[test]
    fn limits_match_docs_protocol_md() {
        let doc = include_str!("../../docs/PROTOCOL.md");
        for (kind, max) in [
            (FrameType::Hello, "1 092"),
            (FrameType::Auth, "514"),
            (FrameType::Message, "135 950"),
            (FrameType::Bye, "522"),
            (FrameType::Busy, "258"),
            (FrameType::Roster, "109 923"),
            (FrameType::Joined, "1 615"),
            (FrameType::Left, "780"),
            (FrameType::Room, "858 827"),
        ] {
            assert_eq!(kind.max_body().to_string(), max.replace(' ', ""), "{kind}");
            assert!(doc.contains(&format!("| {kind} | {max} |")), "{kind} row in PROTOCOL.md");
        }
        assert!(doc.contains(&format!("block count *c* (1 to {})", fmt_thousands(MAX_BLOCKS))));
    }

    fn fmt_thousands(n: usize) -> String {
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(' ');
            }
            out.push(c);
        }
        out
    }

    #[test]
    fn message_head_and_tail_make_the_whole_frame() {
        let msg =
            Message { seq: 7, block_len: 4, blocks: b"abcdefgh".to_vec(), signature: vec![9; 5] };
        let mut bytes = msg.frame_head(5);
        let head_len = bytes.len();
        bytes.extend_from_slice(&msg.frame_tail());
        assert_eq!(bytes, msg.to_frame().to_bytes());
        // The head alone holds everything an early decryption needs, and no less will do.
        let body = &bytes[HEADER_LEN..head_len];
        let early = MessageBlocks::peek(body).unwrap();
        assert_eq!((early.seq, early.block_len, early.blocks), (7, 4, &b"abcdefgh"[..]));
        assert_eq!(MessageBlocks::peek(&body[..body.len() - 1]), None);
        // Out-of-range fields are left to the full decoder.
        let mut zero = body.to_vec();
        zero[8..10].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(MessageBlocks::peek(&zero), None);
        let mut huge = body.to_vec();
        huge[10..12].copy_from_slice(&(MAX_BLOCK_LEN as u16 + 1).to_be_bytes());
        assert_eq!(MessageBlocks::peek(&huge), None);
        let mut many = body.to_vec();
        many[8..10].copy_from_slice(&(MAX_BLOCKS as u16 + 1).to_be_bytes());
        assert_eq!(MessageBlocks::peek(&many), None);
    }

    #[test]
    fn message_limit_fits_the_largest_message() {
        // 64 KiB through a 1024-bit key: 62 bytes a block, 128 bytes of ciphertext each.
        let blocks = MAX_MESSAGE_LEN.div_ceil(62);
        assert!(8 + 2 + 2 + blocks * 128 + 2 + 512 <= FrameType::Message.max_body());
        // and through a 4096-bit key.
        let blocks = MAX_MESSAGE_LEN.div_ceil(512 - 66);
        assert!(8 + 2 + 2 + blocks * 512 + 2 + 512 <= FrameType::Message.max_body());
    }

    #[test]
    fn bodies_round_trip() {
        let hello = Hello { mode: 1, name: "ana".into(), spki: vec![7; 294] };
        assert_eq!(Hello::decode(&hello.to_frame().body), Ok(hello));
        let auth = Auth { signature: vec![1; 256] };
        assert_eq!(Auth::decode(&auth.to_frame().body), Ok(auth));
        let msg = Message { seq: 5, block_len: 4, blocks: vec![9; 12], signature: vec![2; 8] };
        assert_eq!(msg.block_count(), 3);
        assert_eq!(Message::decode(&msg.to_frame().body), Ok(msg));
        let bye = Bye { seq: 3, signature: vec![4; 256] };
        assert_eq!(Bye::decode(&bye.to_frame().body), Ok(bye));
        let busy = Busy { reason: "in a chat".into() };
        assert_eq!(Busy::decode(&busy.to_frame().body), Ok(busy));
    }

    #[test]
    fn truncated_and_padded_bodies_are_malformed() {
        let msg = Message { seq: 1, block_len: 4, blocks: vec![9; 8], signature: vec![2; 8] };
        let body = msg.to_frame().body;
        for cut in 0..body.len() {
            assert!(Message::decode(&body[..cut]).is_err(), "cut at {cut}");
        }
        // A cut inside the blocks says which field is short, and by how much.
        let cut = Message::decode(&body[..12 + 5]).unwrap_err().to_string();
        assert_eq!(
            cut,
            "malformed MESSAGE frame: ciphertext blocks needs 8 bytes but only 5 remain"
        );
        let mut long = body.clone();
        long.push(0);
        assert!(Message::decode(&long).is_err());
        let hello = Hello { mode: 1, name: "é".into(), spki: vec![1; 3] }.to_frame().body;
        for cut in 0..hello.len() {
            assert!(Hello::decode(&hello[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn impossible_counts_are_rejected() {
        let mut body = Vec::new();
        body.extend_from_slice(&0u64.to_be_bytes());
        body.extend_from_slice(&0u16.to_be_bytes()); // zero blocks
        body.extend_from_slice(&256u16.to_be_bytes());
        assert!(Message::decode(&body).is_err());
        let mut body = Vec::new();
        body.extend_from_slice(&0u64.to_be_bytes());
        body.extend_from_slice(&1u16.to_be_bytes());
        body.extend_from_slice(&4000u16.to_be_bytes()); // block longer than any key
        assert!(Message::decode(&body).is_err());
        // a name length byte over the limit
        assert!(Hello::decode(&[1, 200]).is_err());
    }

    #[test]
    fn parse_splits_frames_from_a_stream() {
        let a = Busy { reason: "x".into() }.to_frame();
        let b = Auth { signature: vec![1, 2, 3] }.to_frame();
        let mut stream = a.to_bytes();
        stream.extend(b.to_bytes());
        let (f1, n1) = Frame::parse(&stream).unwrap().unwrap();
        assert_eq!(f1, a);
        let (f2, n2) = Frame::parse(&stream[n1..]).unwrap().unwrap();
        assert_eq!(f2, b);
        assert_eq!(n1 + n2, stream.len());
        assert_eq!(Frame::parse(&stream[..n1 - 1]), Ok(None));
        assert_eq!(Frame::parse(b"RC"), Ok(None));
        assert!(Frame::parse(b"he").is_err());
    }

    #[test]
    fn names_are_cut_on_char_boundaries() {
        assert_eq!(truncate_utf8("日本語", 4), "日");
        assert_eq!(truncate_utf8("abc", 10), "abc");
    }

    proptest::proptest! {
        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = Frame::parse(&data);
            let _ = Hello::decode(&data);
            let _ = Auth::decode(&data);
            let _ = Message::decode(&data);
            let _ = Bye::decode(&data);
            let _ = Busy::decode(&data);
            if let Some(h) = data.first_chunk::<HEADER_LEN>() {
                let _ = FrameHeader::decode(h);
            }
        }
    }
}
