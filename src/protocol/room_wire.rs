//! The frames of a room on the wire: ROSTER, JOINED and LEFT (the host's notices to one
//! member) and ROOM MESSAGE (one text, a copy per recipient, signed once by its sender), each
//! body's encoder and checked decoder side by side, as `wire` does for the two-person frames.
//!
//! Decoders are strict, so that encoding a decoded body gives back its bytes: the signed
//! bytes of a frame are rebuilt from its fields. No I/O, no cryptography beyond the SHA-256
//! digest that stands for a copy sent to someone else.

use rsa::sha2::{Digest, Sha256};

use super::wire::{
    Frame, FrameType, MAX_NAME_LEN, MAX_SIGNATURE_LEN, MAX_SPKI_LEN, Reader, WireError,
    push_u16_bytes, truncate_utf8,
};

/// Most people in a room, the host included.
pub const MAX_ROOM_PEOPLE: usize = 100;
/// Longest text of a room message, in bytes of UTF-8: a message is encrypted once per
/// recipient, so a room keeps its messages to chat lines.
pub const MAX_ROOM_TEXT: usize = 4096;
/// Most ciphertext blocks of one copy: the longest text through the smallest key.
pub const MAX_ROOM_BLOCKS: usize = MAX_ROOM_TEXT.div_ceil(62);
/// Most ciphertext bytes of one copy: the smallest key costs the most.
pub const MAX_ROOM_CIPHERTEXT: usize = MAX_ROOM_BLOCKS * 128;
/// Longest reason a LEFT may carry.
pub const MAX_REASON_LEN: usize = 255;
/// Flag bit of a private message (`/msg`).
pub const FLAG_PRIVATE: u8 = 1;

const MEMBER_MAX: usize = 2 + 1 + MAX_NAME_LEN + 2 + MAX_SPKI_LEN;
const SIGNATURE_MAX: usize = 2 + MAX_SIGNATURE_LEN;
const COPY_MAX: usize = 2 + 1 + 2 + 2 + MAX_ROOM_CIPHERTEXT;
/// Largest ROSTER body.
pub const MAX_ROSTER_BODY: usize =
    8 + 32 + 2 + 1 + MAX_NAME_LEN + 2 + MAX_ROOM_PEOPLE * MEMBER_MAX + SIGNATURE_MAX;
/// Largest JOINED body.
pub const MAX_JOINED_BODY: usize = 8 + MEMBER_MAX + SIGNATURE_MAX;
/// Largest LEFT body.
pub const MAX_LEFT_BODY: usize = 8 + 2 + 1 + MAX_REASON_LEN + SIGNATURE_MAX;
/// Largest ROOM MESSAGE body.
pub const MAX_ROOM_BODY: usize = 2 + 8 + 1 + 2 + MAX_ROOM_PEOPLE * COPY_MAX + SIGNATURE_MAX;

/// One person in a room: `id u16 | name_len u8 | name | spki_len u16 | spki`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The host's number for this person (the host is 0).
    pub id: u16,
    /// The name, unique in the room.
    pub name: String,
    /// The public key, SubjectPublicKeyInfo DER.
    pub spki: Vec<u8>,
}

impl Member {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_be_bytes());
        push_name(out, &self.name);
        push_u16_bytes(out, &self.spki);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let id = r.u16("member id")?;
        let name = read_name(r, "member name")?;
        let spki = r.bytes_u16("member key", MAX_SPKI_LEN)?.to_vec();
        Ok(Member { id, name, spki })
    }
}

fn push_name(out: &mut Vec<u8>, name: &str) {
    let name = truncate_utf8(name, MAX_NAME_LEN);
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
}

fn read_name(r: &mut Reader<'_>, what: &'static str) -> Result<String, WireError> {
    let len = usize::from(r.u8(what)?);
    if len > MAX_NAME_LEN {
        return Err(r.malformed(format!("{what} is {len} bytes, over {MAX_NAME_LEN}")));
    }
    let bytes = r.take(len, what)?;
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| r.malformed(format!("{what} is not UTF-8")))
}

/// A host's notice (ROSTER, JOINED, LEFT): `seq u64 | fields | sig_len u16 | signature`.
pub fn notice_frame(kind: FrameType, seq: u64, fields: &[u8], signature: &[u8]) -> Frame {
    let mut body = Vec::with_capacity(8 + fields.len() + 2 + signature.len());
    body.extend_from_slice(&seq.to_be_bytes());
    body.extend_from_slice(fields);
    push_u16_bytes(&mut body, signature);
    Frame { kind, body }
}

fn read_signature(r: &mut Reader<'_>) -> Result<Vec<u8>, WireError> {
    Ok(r.bytes_u16("signature", MAX_SIGNATURE_LEN)?.to_vec())
}

/// ROSTER body: `seq u64 | room_id [32] | your_id u16 | your_name | count u16 | members |
/// sig_len u16 | signature`, signed by the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    /// The host's sequence number on this connection (0).
    pub seq: u64,
    /// The room's random id, part of every room message signature.
    pub room_id: [u8; 32],
    /// The receiving member's id.
    pub you: u16,
    /// The receiving member's name in the room.
    pub your_name: String,
    /// Everyone in the room, the host and the receiver included.
    pub members: Vec<Member>,
    /// The host's signature (see `room_secure`).
    pub signature: Vec<u8>,
}

impl Roster {
    /// The signed fields after the sequence number.
    pub fn fields(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40 + self.members.len() * 300);
        out.extend_from_slice(&self.room_id);
        out.extend_from_slice(&self.you.to_be_bytes());
        push_name(&mut out, &self.your_name);
        let count = self.members.len().min(MAX_ROOM_PEOPLE);
        out.extend_from_slice(&(count as u16).to_be_bytes());
        for m in self.members.iter().take(count) {
            m.encode(&mut out);
        }
        out
    }

    /// Encode as a frame.
    pub fn to_frame(&self) -> Frame {
        notice_frame(FrameType::Roster, self.seq, &self.fields(), &self.signature)
    }

    /// Decode a ROSTER body.
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(FrameType::Roster, body);
        let seq = r.u64("sequence number")?;
        let room_id = r.array::<32>("room id")?;
        let you = r.u16("your id")?;
        let your_name = read_name(&mut r, "your name")?;
        let count = usize::from(r.u16("member count")?);
        if count > MAX_ROOM_PEOPLE {
            return Err(r.malformed(format!("{count} members, over {MAX_ROOM_PEOPLE}")));
        }
        let members = (0..count).map(|_| Member::read(&mut r)).collect::<Result<Vec<_>, _>>()?;
        let signature = read_signature(&mut r)?;
        r.finish()?;
        Ok(Roster { seq, room_id, you, your_name, members, signature })
    }
}

/// JOINED body: `seq u64 | member | sig_len u16 | signature`, signed by the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The host's sequence number on this connection.
    pub seq: u64,
    /// Who entered.
    pub member: Member,
    /// The host's signature.
    pub signature: Vec<u8>,
}

impl Joined {
    /// The signed fields after the sequence number.
    pub fn fields(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MEMBER_MAX);
        self.member.encode(&mut out);
        out
    }

    /// Encode as a frame.
    pub fn to_frame(&self) -> Frame {
        notice_frame(FrameType::Joined, self.seq, &self.fields(), &self.signature)
    }

    /// Decode a JOINED body.
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(FrameType::Joined, body);
        let seq = r.u64("sequence number")?;
        let member = Member::read(&mut r)?;
        let signature = read_signature(&mut r)?;
        r.finish()?;
        Ok(Joined { seq, member, signature })
    }
}

/// LEFT body: `seq u64 | id u16 | reason_len u8 | reason | sig_len u16 | signature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Left {
    /// The host's sequence number on this connection.
    pub seq: u64,
    /// Who left.
    pub id: u16,
    /// How ("left", "stopped reading", …).
    pub reason: String,
    /// The host's signature.
    pub signature: Vec<u8>,
}

impl Left {
    /// The signed fields after the sequence number.
    pub fn fields(&self) -> Vec<u8> {
        let reason = truncate_utf8(&self.reason, MAX_REASON_LEN);
        let mut out = Vec::with_capacity(3 + reason.len());
        out.extend_from_slice(&self.id.to_be_bytes());
        out.push(reason.len() as u8);
        out.extend_from_slice(reason.as_bytes());
        out
    }

    /// Encode as a frame.
    pub fn to_frame(&self) -> Frame {
        notice_frame(FrameType::Left, self.seq, &self.fields(), &self.signature)
    }

    /// Decode a LEFT body.
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(FrameType::Left, body);
        let seq = r.u64("sequence number")?;
        let id = r.u16("member id")?;
        let len = usize::from(r.u8("reason length")?);
        let reason = String::from_utf8_lossy(r.take(len, "reason")?).into_owned();
        let signature = read_signature(&mut r)?;
        r.finish()?;
        Ok(Left { seq, id, reason, signature })
    }
}

/// What a copy of a room message holds for its recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyBody {
    /// The text encrypted to the recipient: `block_count u16 | block_len u16 | blocks`.
    Cipher {
        /// Length of every block (the recipient's modulus size).
        block_len: u16,
        /// The blocks, concatenated.
        blocks: Vec<u8>,
    },
    /// Only the SHA-256 of a copy for someone else (what the relay sends the others).
    Digest([u8; 32]),
}

/// One recipient's copy: `recipient u16 | form u8 | ciphertext or digest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// Who it is for.
    pub recipient: u16,
    /// The ciphertext, or its digest.
    pub body: CopyBody,
}

impl Copy {
    /// SHA-256 of the copy's ciphertext fields, as the sender's signature covers it.
    pub fn digest(&self) -> [u8; 32] {
        match &self.body {
            CopyBody::Cipher { block_len, blocks } => cipher_digest(*block_len, blocks),
            CopyBody::Digest(d) => *d,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.recipient.to_be_bytes());
        match &self.body {
            CopyBody::Cipher { block_len, blocks } => {
                out.push(0);
                out.extend_from_slice(&block_count(*block_len, blocks).to_be_bytes());
                out.extend_from_slice(&block_len.to_be_bytes());
                out.extend_from_slice(blocks);
            }
            CopyBody::Digest(d) => {
                out.push(1);
                out.extend_from_slice(d);
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let recipient = r.u16("recipient id")?;
        let body = match r.u8("copy form")? {
            0 => {
                let count = usize::from(r.u16("block count")?);
                let block_len = r.u16("block length")?;
                if count == 0 || count > MAX_ROOM_BLOCKS {
                    return Err(r.malformed(format!(
                        "block count {count} is not within 1..={MAX_ROOM_BLOCKS}"
                    )));
                }
                let total = count * usize::from(block_len);
                if block_len == 0 || total > MAX_ROOM_CIPHERTEXT {
                    return Err(r.malformed(format!(
                        "{count} blocks of {block_len} bytes is not within 1..={MAX_ROOM_CIPHERTEXT} bytes"
                    )));
                }
                let blocks = r.take(total, "ciphertext blocks")?.to_vec();
                CopyBody::Cipher { block_len, blocks }
            }
            1 => CopyBody::Digest(r.array::<32>("copy digest")?),
            form => return Err(r.malformed(format!("copy form {form} is neither 0 nor 1"))),
        };
        Ok(Copy { recipient, body })
    }
}

fn block_count(block_len: u16, blocks: &[u8]) -> u16 {
    // Copies are built from at most MAX_ROOM_BLOCKS blocks.
    blocks.len().checked_div(usize::from(block_len)).unwrap_or(0) as u16
}

/// SHA-256 over `block_count u16 | block_len u16 | blocks`: what stands for a copy.
pub fn cipher_digest(block_len: u16, blocks: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(block_count(block_len, blocks).to_be_bytes());
    h.update(block_len.to_be_bytes());
    h.update(blocks);
    h.finalize().into()
}

/// ROOM MESSAGE body: `sender u16 | seq u64 | flags u8 | count u16 | copies | sig_len u16 |
/// signature`, signed by the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomMessage {
    /// The sender's id.
    pub sender: u16,
    /// The sender's sequence number in the room.
    pub seq: u64,
    /// Sent with `/msg` to one person.
    pub private: bool,
    /// One per recipient, in increasing recipient id.
    pub copies: Vec<Copy>,
    /// The sender's signature (see `room_secure`).
    pub signature: Vec<u8>,
}

impl RoomMessage {
    /// The flags byte.
    pub fn flags(&self) -> u8 {
        if self.private { FLAG_PRIVATE } else { 0 }
    }

    /// The copy for `id`, if there is one.
    pub fn copy_for(&self, id: u16) -> Option<&Copy> {
        self.copies.iter().find(|c| c.recipient == id)
    }

    /// What the relay sends each recipient, in copy order: the recipient's id and the message
    /// with its own copy in full and the others as digests, each digest computed once.
    pub fn for_each_recipient(&self) -> impl Iterator<Item = (u16, RoomMessage)> + '_ {
        let digests: Vec<Copy> = self
            .copies
            .iter()
            .map(|c| Copy { recipient: c.recipient, body: CopyBody::Digest(c.digest()) })
            .collect();
        self.copies.iter().enumerate().map(move |(i, own)| {
            let mut copies = digests.clone();
            copies[i] = own.clone();
            (own.recipient, RoomMessage { copies, signature: self.signature.clone(), ..*self })
        })
    }

    /// The frame the relay sends to `id`: its own copy in full, the others as digests.
    pub fn for_recipient(&self, id: u16) -> RoomMessage {
        let copies = self
            .copies
            .iter()
            .map(|c| match c.recipient == id {
                true => c.clone(),
                false => Copy { recipient: c.recipient, body: CopyBody::Digest(c.digest()) },
            })
            .collect();
        RoomMessage { copies, signature: self.signature.clone(), ..*self }
    }

    /// Encode as a frame.
    pub fn to_frame(&self) -> Frame {
        let size: usize = self
            .copies
            .iter()
            .map(|c| match &c.body {
                CopyBody::Cipher { blocks, .. } => 7 + blocks.len(),
                CopyBody::Digest(_) => 35,
            })
            .sum();
        let mut body = Vec::with_capacity(13 + size + 2 + self.signature.len());
        body.extend_from_slice(&self.sender.to_be_bytes());
        body.extend_from_slice(&self.seq.to_be_bytes());
        body.push(self.flags());
        let count = self.copies.len().min(MAX_ROOM_PEOPLE);
        body.extend_from_slice(&(count as u16).to_be_bytes());
        for c in self.copies.iter().take(count) {
            c.encode(&mut body);
        }
        push_u16_bytes(&mut body, &self.signature);
        Frame { kind: FrameType::Room, body }
    }

    /// Decode a ROOM MESSAGE body: copies in increasing recipient id, known flags only.
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(FrameType::Room, body);
        let sender = r.u16("sender id")?;
        let seq = r.u64("sequence number")?;
        let flags = r.u8("flags")?;
        if flags & !FLAG_PRIVATE != 0 {
            return Err(r.malformed(format!("unknown flags {flags:#04x}")));
        }
        let count = usize::from(r.u16("copy count")?);
        if count == 0 || count > MAX_ROOM_PEOPLE {
            return Err(
                r.malformed(format!("copy count {count} is not within 1..={MAX_ROOM_PEOPLE}"))
            );
        }
        let mut copies: Vec<Copy> = Vec::with_capacity(count);
        for _ in 0..count {
            let copy = Copy::read(&mut r)?;
            if copies.last().is_some_and(|last| last.recipient >= copy.recipient) {
                return Err(r.malformed("copies are not in increasing recipient id"));
            }
            copies.push(copy);
        }
        let private = flags & FLAG_PRIVATE != 0;
        if private && count != 1 {
            return Err(r.malformed(format!("a private message with {count} copies")));
        }
        let signature = read_signature(&mut r)?;
        r.finish()?;
        Ok(RoomMessage { sender, seq, private, copies, signature })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::wire::HEADER_LEN;

    fn member(id: u16) -> Member {
        Member { id, name: format!("m{id}"), spki: vec![id as u8; 294] }
    }

    fn message() -> RoomMessage {
        let cipher = |n: u8| CopyBody::Cipher { block_len: 256, blocks: vec![n; 512] };
        RoomMessage {
            sender: 2,
            seq: 7,
            private: false,
            copies: vec![
                Copy { recipient: 0, body: cipher(1) },
                Copy { recipient: 1, body: cipher(2) },
                Copy { recipient: 3, body: cipher(3) },
            ],
            signature: vec![9; 256],
        }
    }

    #[test]
    fn every_room_frame_decodes_to_itself() {
        let roster = Roster {
            seq: 0,
            room_id: [5; 32],
            you: 3,
            your_name: "bob-2".into(),
            members: (0..4).map(member).collect(),
            signature: vec![1; 256],
        };
        assert_eq!(Roster::decode(&roster.to_frame().body).unwrap(), roster);
        let joined = Joined { seq: 4, member: member(9), signature: vec![2; 256] };
        assert_eq!(Joined::decode(&joined.to_frame().body).unwrap(), joined);
        let left =
            Left { seq: 5, id: 9, reason: "stopped reading".into(), signature: vec![3; 256] };
        assert_eq!(Left::decode(&left.to_frame().body).unwrap(), left);
        let msg = message();
        assert_eq!(RoomMessage::decode(&msg.to_frame().body).unwrap(), msg);
    }

    #[test]
    fn a_relayed_copy_keeps_what_the_signature_covers() {
        let msg = message();
        let relayed = msg.for_recipient(1);
        assert!(matches!(relayed.copy_for(1).unwrap().body, CopyBody::Cipher { .. }));
        assert!(matches!(relayed.copy_for(0).unwrap().body, CopyBody::Digest(_)));
        let digests = |m: &RoomMessage| m.copies.iter().map(Copy::digest).collect::<Vec<_>>();
        assert_eq!(digests(&relayed), digests(&msg));
        let again = RoomMessage::decode(&relayed.to_frame().body).unwrap();
        assert_eq!(again, relayed);
        let each: Vec<(u16, RoomMessage)> = msg.for_each_recipient().collect();
        assert_eq!(each.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [0, 1, 3]);
        for (id, m) in each {
            assert_eq!(m, msg.for_recipient(id));
        }
        // Three full copies of 512 bytes become one and two digests.
        assert!(relayed.to_frame().body.len() < msg.to_frame().body.len() - 900);
    }

    #[test]
    fn malformed_room_messages_are_refused() {
        let good = message().to_frame().body;
        let mut unordered = message();
        unordered.copies.swap(0, 1);
        assert!(RoomMessage::decode(&unordered.to_frame().body).is_err());
        let mut private = message();
        private.private = true;
        assert!(RoomMessage::decode(&private.to_frame().body).is_err());
        let mut flags = good.clone();
        flags[10] = 0x80;
        assert!(RoomMessage::decode(&flags).is_err());
        for cut in 0..good.len() {
            assert!(RoomMessage::decode(&good[..cut]).is_err(), "{cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(RoomMessage::decode(&longer).is_err());
    }

    #[test]
    fn the_largest_bodies_fit_their_limits() {
        let biggest = RoomMessage {
            sender: 1,
            seq: 0,
            private: false,
            copies: (0..MAX_ROOM_PEOPLE as u16)
                .map(|recipient| Copy {
                    recipient,
                    body: CopyBody::Cipher { block_len: 128, blocks: vec![0; MAX_ROOM_CIPHERTEXT] },
                })
                .collect(),
            signature: vec![0; MAX_SIGNATURE_LEN],
        };
        let frame = biggest.to_frame();
        assert_eq!(frame.body.len(), MAX_ROOM_BODY);
        assert_eq!(frame.to_bytes().len(), HEADER_LEN + MAX_ROOM_BODY);
        let full = Member { id: 1, name: "n".repeat(MAX_NAME_LEN), spki: vec![0; MAX_SPKI_LEN] };
        let roster = Roster {
            seq: 0,
            room_id: [0; 32],
            you: 1,
            your_name: "n".repeat(MAX_NAME_LEN),
            members: vec![full.clone(); MAX_ROOM_PEOPLE],
            signature: vec![0; MAX_SIGNATURE_LEN],
        };
        assert_eq!(roster.to_frame().body.len(), MAX_ROSTER_BODY);
        let joined = Joined { seq: 0, member: full, signature: vec![0; MAX_SIGNATURE_LEN] };
        assert_eq!(joined.to_frame().body.len(), MAX_JOINED_BODY);
        let left =
            Left { seq: 0, id: 1, reason: "r".repeat(300), signature: vec![0; MAX_SIGNATURE_LEN] };
        assert_eq!(left.to_frame().body.len(), MAX_LEFT_BODY);
    }
}
