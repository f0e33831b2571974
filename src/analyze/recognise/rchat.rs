//! Reading rchat's own encrypted protocol out of one reassembled direction: the HELLO with
//! the public key anyone on the path sees, each frame's type, sequence number and sizes,
//! protocol violations, and, given the private key of the receiving side (`--key`), the
//! decrypted text of the messages sent to it.
//!
//! The [`Recogniser`] of rchat's protocol: a direction is rchat's when it opens with the frame
//! magic `RCHT`. Owns nothing but what one direction says. It decodes frames with the same
//! checked decoders the chat uses (`protocol::deframe` for boundaries and headers,
//! `protocol::wire` and `protocol::room_wire` for bodies),
//! keeps at most one frame's bytes at a time, and lists at most [`MAX_FRAMES`] frames; a room's
//! frames are read by [`room`], which keeps a bounded member table. It never verifies
//! signatures: that needs both directions.

use std::sync::Arc;

use serde::Serialize;

use super::{Recogniser, Start};
use crate::crypto::{Identity, PeerKey};
use crate::protocol::deframe::{Deframer, Event};
use crate::protocol::room_wire;
use crate::protocol::wire::{
    Busy, Bye, FrameHeader, FrameType, HEADER_LEN, Hello, MAGIC, MODE_ROOM, Message, WireError,
};

pub mod room;

use room::{RoomFrameReport, RoomReport, RoomState};

/// Frames listed per direction; more are counted.
pub const MAX_FRAMES: usize = 1000;
/// Decrypted text kept per message for the report.
const MAX_SHOWN: usize = 4096;

/// The sender's HELLO, as an eavesdropper reads it.
#[derive(Debug, Clone, Serialize)]
pub struct HelloReport {
    /// The name the sender announced.
    pub name: String,
    /// Size of its RSA key.
    pub key_bits: usize,
    /// `SHA256:...` of its public key: anyone on the path can compute it.
    pub fingerprint: String,
    /// The mode it announced: 1 for a two-person chat or a room's member, 2 for a room's host.
    pub mode: u8,
}

/// One frame of the direction.
#[derive(Debug, Clone, Serialize)]
pub struct FrameReport {
    /// Offset of the frame's first byte in the direction.
    pub offset: u64,
    /// `HELLO`, `AUTH`, `MESSAGE`, `BYE`, `BUSY`, or in a room `ROSTER`, `JOINED`, `LEFT`,
    /// `ROOM MESSAGE`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Header and body, in bytes.
    pub length: u64,
    /// Sequence number (MESSAGE, BYE, ROSTER, JOINED, LEFT: the sender's on this connection;
    /// ROOM MESSAGE: its sender's in the room).
    pub seq: Option<u64>,
    /// Number of RSA-OAEP blocks (MESSAGE).
    pub blocks: Option<usize>,
    /// Bytes per block (MESSAGE): the recipient's modulus size.
    pub block_len: Option<u16>,
    /// Bytes of RSA-PSS signature (AUTH, MESSAGE, BYE, and the room's frames).
    pub signature_len: Option<usize>,
    /// The message text, decrypted with `--key` (at most 4 KiB shown).
    pub plaintext: Option<String>,
    /// Why a MESSAGE or ROOM MESSAGE was not decrypted, when `--key` was given.
    pub not_decrypted: Option<String>,
    /// What the frame's bytes look like to an eavesdropper (the classifier's verdict on the
    /// frame as a message of the direction).
    pub verdict: Option<crate::analyze::classify::Verdict>,
    /// What a room's frame (ROSTER, JOINED, LEFT, ROOM MESSAGE) says in the clear.
    pub room: Option<Box<RoomFrameReport>>,
}

/// What one direction said in rchat's protocol.
#[derive(Debug, Clone, Serialize)]
pub struct RchatReport {
    /// The sender's HELLO, if it was seen.
    pub hello: Option<HelloReport>,
    /// The frames, in order (at most [`MAX_FRAMES`]).
    pub frames: Vec<FrameReport>,
    /// Frames past the listing limit.
    pub unlisted_frames: u64,
    /// The room the direction belongs to, when it carries a room's frames or its HELLO is a
    /// room host's.
    pub room: Option<RoomReport>,
    /// Messages (MESSAGE and ROOM MESSAGE) decrypted with `--key`.
    pub decrypted: u64,
    /// Messages `--key` could not decrypt.
    pub not_decrypted: u64,
    /// Breaks of the protocol: bad headers, malformed bodies, sequence numbers out of order.
    pub violations: Vec<String>,
    /// Other remarks, e.g. where a gap in the capture stopped the decoding.
    pub notes: Vec<String>,
}

/// Decodes the frames of one direction as its bytes stream in.
#[derive(Debug)]
pub struct FrameLog {
    keys: Vec<Arc<Identity>>,
    /// Bytes of the frame being read (at most one frame).
    buf: Vec<u8>,
    /// Offset of `buf[0]` in the direction.
    buf_offset: u64,
    /// Where the frame in `buf` ends.
    frames: Deframer,
    /// Header of the frame in `buf`, once it is in.
    head: Option<FrameHeader>,
    /// Decoding stopped (violation or gap); bytes are ignored from here on.
    stopped: bool,
    next_seq: u64,
    /// What the direction says of its room, from its first room frame or room HELLO.
    room: Option<Box<RoomState>>,
    report: RchatReport,
}

impl FrameLog {
    /// A log that decrypts with `keys` where it can.
    pub fn new(keys: Vec<Arc<Identity>>) -> Self {
        FrameLog {
            keys,
            buf: Vec::new(),
            buf_offset: 0,
            frames: Deframer::new(),
            head: None,
            stopped: false,
            next_seq: 0,
            room: None,
            report: RchatReport {
                hello: None,
                frames: Vec::new(),
                unlisted_frames: 0,
                room: None,
                decrypted: 0,
                not_decrypted: 0,
                violations: Vec::new(),
                notes: Vec::new(),
            },
        }
    }

    /// The next in-order bytes of the direction, starting at `offset`.
    fn take(&mut self, offset: u64, mut bytes: &[u8]) {
        if self.stopped {
            return;
        }
        if self.buf.is_empty() {
            self.buf_offset = offset;
        }
        while !self.stopped {
            let step = match self.frames.push(bytes) {
                Ok(step) => step,
                Err(e) => {
                    return self.stop_with_violation(format!(
                        "at byte {}: {e}; frames after it are not decoded",
                        self.buf_offset
                    ));
                }
            };
            let (now, rest) = bytes.split_at(step.used);
            self.buf.extend_from_slice(now);
            bytes = rest;
            match step.event {
                Event::Header(h) => {
                    self.head = Some(h);
                    // A frame with an empty body ends with its header.
                    if h.len == 0 && matches!(self.frames.push(&[]), Ok(s) if s.event == Event::End)
                    {
                        self.end_frame();
                    }
                }
                Event::End => self.end_frame(),
                Event::NeedMore => return,
            }
        }
    }

    /// The frame in `buf` is whole: decode it, and keep the buffer for the next frame's bytes.
    fn end_frame(&mut self) {
        let Some(head) = self.head.take() else { return };
        let start = self.buf_offset + self.buf.len() as u64;
        // Lent out for the frame's decoding, then kept for the next frame's bytes.
        let mut frame = std::mem::take(&mut self.buf);
        self.frame(self.buf_offset, head.kind, frame.get(HEADER_LEN..).unwrap_or(&[]));
        frame.clear();
        self.buf = frame;
        self.buf_offset = start;
    }

    /// Bytes of the direction are missing from the capture: frame boundaries are lost.
    fn lost(&mut self, offset: u64) {
        if !self.stopped {
            self.stopped = true;
            self.report.notes.push(format!(
                "bytes are missing from the capture at byte {offset}: frames after it are not decoded"
            ));
        }
    }

    fn stop_with_violation(&mut self, what: String) {
        self.report.violations.push(what);
        self.stopped = true;
    }

    /// A whole frame at `offset`: its type (from its decoded header) and body.
    fn frame(&mut self, offset: u64, kind: FrameType, body: &[u8]) {
        let mut info = FrameReport {
            offset,
            kind: kind.name(),
            length: (HEADER_LEN + body.len()) as u64,
            seq: None,
            blocks: None,
            block_len: None,
            signature_len: None,
            plaintext: None,
            not_decrypted: None,
            verdict: None,
            room: None,
        };
        let result = match kind {
            FrameType::Hello => self.hello(body),
            FrameType::Auth => crate::protocol::wire::Auth::decode(body).map(|a| {
                info.signature_len = Some(a.signature.len());
            }),
            FrameType::Message => Message::decode(body).map(|m| {
                info.seq = Some(m.seq);
                info.blocks = Some(m.block_count());
                info.block_len = Some(m.block_len);
                info.signature_len = Some(m.signature.len());
                self.sequence(m.seq, offset);
                if !self.keys.is_empty() {
                    match self.decrypt(&m) {
                        Ok(text) => {
                            self.report.decrypted += 1;
                            info.plaintext = Some(text);
                        }
                        Err(why) => {
                            self.report.not_decrypted += 1;
                            info.not_decrypted = Some(why);
                        }
                    }
                }
            }),
            FrameType::Bye => Bye::decode(body).map(|b| {
                info.seq = Some(b.seq);
                info.signature_len = Some(b.signature.len());
                self.sequence(b.seq, offset);
            }),
            FrameType::Busy => Busy::decode(body).map(|_| ()),
            FrameType::Roster | FrameType::Joined | FrameType::Left | FrameType::Room => {
                self.room_frame(kind, body, offset, &mut info)
            }
        };
        if let Err(e) = result {
            self.report.violations.push(format!("at byte {offset}: {e}"));
        }
        if self.report.frames.len() < MAX_FRAMES {
            self.report.frames.push(info);
        } else {
            self.report.unlisted_frames += 1;
        }
    }

    fn hello(&mut self, body: &[u8]) -> Result<(), WireError> {
        let hello = Hello::decode(body)?;
        if self.report.hello.is_some() {
            self.report.violations.push("a second HELLO in the same direction".into());
        }
        match PeerKey::from_spki(&hello.spki) {
            Ok(key) => {
                self.report.hello = Some(HelloReport {
                    name: hello.name,
                    key_bits: key.bits(),
                    fingerprint: key.fingerprint.to_string(),
                    mode: hello.mode,
                });
                if hello.mode == MODE_ROOM {
                    self.room_state();
                }
            }
            Err(e) => {
                self.report.violations.push(format!("the HELLO's public key is malformed ({e})"))
            }
        }
        Ok(())
    }

    /// The direction's room, made at its first room frame (or room HELLO).
    fn room_state(&mut self) -> &mut RoomState {
        let keys = &self.keys;
        self.room.get_or_insert_with(|| Box::new(RoomState::new(keys)))
    }

    /// A room's frame: decoded, its sequence number checked, what it says in the clear listed
    /// and, for a ROOM MESSAGE with `--key`, the copy for a key decrypted.
    fn room_frame(
        &mut self,
        kind: FrameType,
        body: &[u8],
        offset: u64,
        info: &mut FrameReport,
    ) -> Result<(), WireError> {
        let notice = match kind {
            FrameType::Roster => {
                let r = room_wire::Roster::decode(body)?;
                Some((r.seq, r.signature.len(), Notice::Roster(r)))
            }
            FrameType::Joined => {
                let j = room_wire::Joined::decode(body)?;
                Some((j.seq, j.signature.len(), Notice::Joined(j)))
            }
            FrameType::Left => {
                let l = room_wire::Left::decode(body)?;
                Some((l.seq, l.signature.len(), Notice::Left(l)))
            }
            _ => None,
        };
        if let Some((seq, signature_len, notice)) = notice {
            info.seq = Some(seq);
            info.signature_len = Some(signature_len);
            self.sequence(seq, offset);
            if let Some(h) = self.report.hello.as_ref().filter(|h| h.mode != MODE_ROOM) {
                let what = format!(
                    "at byte {offset}: a {} from a side that is not a room's host (its HELLO says \
                     mode {})",
                    kind.name(),
                    h.mode
                );
                self.report.violations.push(what);
            }
            let keys = &self.keys;
            let room = self.room.get_or_insert_with(|| Box::new(RoomState::new(keys)));
            let violations = &mut self.report.violations;
            let out = match notice {
                Notice::Roster(r) => room.roster(&r, offset, violations),
                Notice::Joined(j) => room.joined(&j, offset, violations),
                Notice::Left(l) => room.left(&l),
            };
            info.room = Some(Box::new(out));
            return Ok(());
        }
        let m = room_wire::RoomMessage::decode(body)?;
        info.seq = Some(m.seq);
        info.signature_len = Some(m.signature.len());
        let keys = &self.keys;
        let room = self.room.get_or_insert_with(|| Box::new(RoomState::new(keys)));
        let hello = self.report.hello.as_ref();
        let (mut out, opened) = room.message(&m, hello, offset, &mut self.report.violations);
        match opened {
            Some(Ok(text)) => {
                self.report.decrypted += 1;
                info.plaintext = Some(shown(&text));
            }
            Some(Err(miss)) => {
                self.report.not_decrypted += 1;
                info.not_decrypted = Some(room::reason(miss, &out, &room.report.members));
                out.miss = Some(miss);
            }
            None => {}
        }
        info.room = Some(Box::new(out));
        Ok(())
    }

    fn sequence(&mut self, seq: u64, offset: u64) {
        let expected = self.next_seq;
        if seq < expected {
            self.report.violations.push(format!(
                "at byte {offset}: sequence number {seq} again (replayed? {expected} was due)"
            ));
        } else if seq > expected {
            self.report.violations.push(format!(
                "at byte {offset}: sequence number {seq} where {expected} was due (dropped or reordered)"
            ));
        }
        self.next_seq = seq.saturating_add(1);
    }

    /// Decrypt with the first given key that opens the message; otherwise say why none did
    /// (the most telling reason first: sent by a key's owner, then sent to another key, then
    /// a key of another size).
    fn decrypt(&self, m: &Message) -> Result<String, String> {
        let sender = self.report.hello.as_ref().map(|h| h.fingerprint.as_str());
        let mut reasons: Vec<(u8, String)> = Vec::new();
        for key in &self.keys {
            let mine = key.public();
            if sender == Some(mine.fingerprint.to_string().as_str()) {
                reasons.push((
                    0,
                    "sent by the owner of the given key: it is encrypted to the peer's key, \
                     which was not given"
                        .into(),
                ));
            } else if usize::from(m.block_len) != mine.size() {
                reasons.push((
                    2,
                    format!(
                        "encrypted to a {}-bit key; the given key is {} bits",
                        usize::from(m.block_len) * 8,
                        mine.bits()
                    ),
                ));
            } else {
                match open(key, m) {
                    Ok(text) => return Ok(shown(&text)),
                    Err(i) => reasons.push((
                        1,
                        format!(
                            "block {i} does not decrypt with the given key: it was sent to \
                             another key"
                        ),
                    )),
                }
            }
        }
        reasons.sort_by_key(|(rank, _)| *rank);
        Err(reasons.into_iter().next().map_or_else(|| "no key given".into(), |(_, why)| why))
    }

    /// What the direction said.
    fn report(mut self) -> RchatReport {
        self.report.room = self.room.take().map(|r| {
            let mut room = r.report;
            room.members.sort_by_key(|m| m.id);
            room
        });
        if !self.stopped && !self.buf.is_empty() {
            let need = HEADER_LEN + self.head.map_or(0, |h| h.len as usize);
            self.report.notes.push(format!(
                "the direction ends inside a frame ({} of {need} bytes): the capture stopped, or \
                 the sender was cut off",
                self.buf.len()
            ));
        }
        self.report
    }
}

impl Recogniser for FrameLog {
    type Found = RchatReport;

    fn name(&self) -> &'static str {
        "rchat"
    }

    fn start_len(&self) -> usize {
        MAGIC.len()
    }

    /// rchat frames open with the magic `RCHT`.
    fn start(&self, first_bytes: &[u8]) -> Start {
        let n = first_bytes.len().min(MAGIC.len());
        match (first_bytes.get(..n), MAGIC.get(..n)) {
            (Some(seen), Some(magic)) if seen != magic => Start::No,
            _ if n == MAGIC.len() => Start::Yes,
            _ => Start::More,
        }
    }

    fn data(&mut self, offset: u64, bytes: &[u8]) {
        self.take(offset, bytes);
    }

    fn gap(&mut self, offset: u64) {
        self.lost(offset);
    }

    fn finish(self) -> RchatReport {
        self.report()
    }
}

/// A host's notice to one member, decoded.
enum Notice {
    Roster(room_wire::Roster),
    Joined(room_wire::Joined),
    Left(room_wire::Left),
}

/// Decrypt every block of `m` with `key`; the index of the first block that fails otherwise.
fn open(key: &Identity, m: &Message) -> Result<Vec<u8>, usize> {
    let mut text = Vec::new();
    for (i, block) in m.iter_blocks().enumerate() {
        text.extend_from_slice(&key.decrypt_block(block).map_err(|_| i)?);
    }
    Ok(text)
}

/// Decrypted bytes as text for the report, at most [`MAX_SHOWN`] bytes of it.
pub(crate) fn shown(text: &[u8]) -> String {
    let shown = String::from_utf8_lossy(text);
    if shown.len() > MAX_SHOWN {
        format!("{}…", crate::protocol::wire::truncate_utf8(&shown, MAX_SHOWN))
    } else {
        shown.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::recognise::Watch;
    use crate::protocol::secure::{Role, Sealer, Session, hello_frame};

    /// Two keys, both HELLOs, and the host's sending half of their session.
    fn session() -> (Arc<Identity>, Arc<Identity>, Vec<u8>, Vec<u8>, Sealer) {
        let host = Arc::new(Identity::generate(1024).unwrap());
        let guest = Arc::new(Identity::generate(1024).unwrap());
        let hh = hello_frame(&host, "alice").to_bytes();
        let jh = hello_frame(&guest, "bob").to_bytes();
        let hs =
            Session::new(host.clone(), guest.public().clone(), "bob".into(), Role::Host, &hh, &jh);
        let (seal, _) = hs.split();
        (host, guest, hh, jh, seal)
    }

    fn conversation() -> (Arc<Identity>, Arc<Identity>, Vec<u8>, Vec<u8>) {
        let (host, guest, hh, jh, mut seal) = session();
        let mut c2s = hh.clone();
        for text in ["the locker code is 4711", "see you"] {
            c2s.extend(seal.seal(text).unwrap().to_frame().to_bytes());
        }
        c2s.extend(seal.bye().unwrap().to_frame().to_bytes());
        (host, guest, c2s, jh)
    }

    fn feed(log: &mut Watch<FrameLog>, bytes: &[u8], piece: usize) {
        let mut off = 0u64;
        for chunk in bytes.chunks(piece) {
            log.data(off, chunk);
            off += chunk.len() as u64;
        }
    }

    #[test]
    fn frames_are_listed_and_decrypted_with_the_recipients_key() {
        let (host, guest, from_host, _) = conversation();
        for piece in [1, 7, 4096] {
            let mut log = Watch::new(FrameLog::new(vec![guest.clone()]));
            feed(&mut log, &from_host, piece);
            let r = log.finish().unwrap();
            let hello = r.hello.as_ref().unwrap();
            assert_eq!(hello.name, "alice");
            assert_eq!(hello.key_bits, 1024);
            assert_eq!(hello.fingerprint, host.public().fingerprint.to_string());
            let kinds: Vec<&str> = r.frames.iter().map(|f| f.kind).collect();
            assert_eq!(kinds, ["HELLO", "MESSAGE", "MESSAGE", "BYE"]);
            assert_eq!(r.frames[1].plaintext.as_deref(), Some("the locker code is 4711"));
            assert_eq!(r.frames[2].seq, Some(1));
            assert_eq!(r.decrypted, 2);
            assert!(r.violations.is_empty(), "{:?}", r.violations);
        }
        // The sender's own key cannot open what it sent.
        let mut log = Watch::new(FrameLog::new(vec![host.clone()]));
        feed(&mut log, &from_host, 100);
        let r = log.finish().unwrap();
        assert_eq!(r.decrypted, 0);
        assert!(r.frames[1].not_decrypted.as_deref().unwrap().contains("owner of the given key"));
        // Nor can an unrelated one.
        let other = Arc::new(Identity::generate(1024).unwrap());
        let mut log = Watch::new(FrameLog::new(vec![other]));
        feed(&mut log, &from_host, 100);
        let r = log.finish().unwrap();
        assert!(r.frames[1].not_decrypted.as_deref().unwrap().contains("another key"));
    }

    #[test]
    fn violations_and_gaps_are_reported() {
        let (_, _, mut from_host, _) = conversation();
        // Replay the first MESSAGE after the BYE: a sequence number seen before.
        let first_msg_start = {
            let mut log = Watch::new(FrameLog::new(Vec::new()));
            feed(&mut log, &from_host, 4096);
            log.finish().unwrap().frames[1].offset as usize
        };
        let end = {
            let mut log = Watch::new(FrameLog::new(Vec::new()));
            feed(&mut log, &from_host, 4096);
            let r = log.finish().unwrap();
            (r.frames[1].offset + r.frames[1].length) as usize
        };
        let replay = from_host[first_msg_start..end].to_vec();
        from_host.extend(replay);
        from_host.extend_from_slice(b"RCHX garbage");
        let mut log = Watch::new(FrameLog::new(Vec::new()));
        feed(&mut log, &from_host, 13);
        let r = log.finish().unwrap();
        assert!(r.violations.iter().any(|v| v.contains("again")), "{:?}", r.violations);
        assert!(r.violations.iter().any(|v| v.contains("magic")), "{:?}", r.violations);

        let mut log = Watch::new(FrameLog::new(Vec::new()));
        log.data(0, &from_host[..20]);
        log.gap(20);
        log.data(40, &from_host[40..]);
        let r = log.finish().unwrap();
        assert!(r.notes.iter().any(|n| n.contains("missing")));
    }

    #[test]
    fn a_key_of_another_size_and_a_cut_frame_are_explained() {
        let (_, _, from_host, _) = conversation();
        let bigger = Arc::new(Identity::generate(2048).unwrap());
        let mut log = Watch::new(FrameLog::new(vec![bigger]));
        // The last frame (BYE) is cut short.
        feed(&mut log, &from_host[..from_host.len() - 5], 100);
        let r = log.finish().unwrap();
        let why = r.frames[1].not_decrypted.as_deref().unwrap();
        assert!(why.contains("encrypted to a 1024-bit key; the given key is 2048 bits"), "{why}");
        assert!(r.notes.iter().any(|n| n.contains("ends inside a frame")), "{:?}", r.notes);
    }

    #[test]
    fn long_texts_and_long_conversations_are_cut() {
        let (_, guest, hh, _, mut seal) = session();
        let mut c2s = hh;
        c2s.extend(seal.seal(&"é".repeat(3000)).unwrap().to_frame().to_bytes());
        for _ in 0..MAX_FRAMES {
            c2s.extend(seal.bye().unwrap().to_frame().to_bytes());
        }
        let mut log = Watch::new(FrameLog::new(vec![guest]));
        feed(&mut log, &c2s, 4096);
        let r = log.finish().unwrap();
        let text = r.frames[1].plaintext.as_deref().unwrap();
        assert!(text.ends_with('…') && text.len() <= MAX_SHOWN + '…'.len_utf8(), "{}", text.len());
        assert_eq!(r.frames.len(), MAX_FRAMES);
        assert_eq!(r.unlisted_frames, 2);
    }

    #[test]
    fn other_traffic_is_not_rchat() {
        let mut log = Watch::new(FrameLog::new(Vec::new()));
        log.data(0, b"RC");
        log.data(2, b"hello");
        assert!(log.finish().is_none());
        let mut log = Watch::new(FrameLog::new(Vec::new()));
        log.data(0, b"hello\n");
        assert!(log.finish().is_none());
        let mut log = Watch::new(FrameLog::new(Vec::new()));
        log.data(0, b"RC");
        assert!(log.finish().is_none(), "too short to say");
    }

    /// A room of four (the host "teacher" 0, alice 1, bob 2, carol 3, joined in that order),
    /// every frame made by the protocol's own code with real keys; each connection's two
    /// directions as the wire carries them.
    mod room {
        use super::*;
        use crate::analyze::recognise::rchat::room::{CopyForm, share_rooms};
        use crate::crypto::PeerKey;
        use crate::protocol::room_secure::seal;
        use crate::protocol::room_wire::{Joined, Left, Member, RoomMessage, Roster};
        use crate::protocol::secure::room_hello_frame;
        use crate::protocol::wire::{Frame, FrameType};
        use proptest::prelude::*;

        pub(super) const ROOM: [u8; 32] = [0x5a; 32];
        const NAMES: [&str; 4] = ["teacher", "alice", "bob", "carol"];

        /// One member's connection: what the host sent it, what it sent the host.
        pub(super) struct Leg {
            pub(super) from_host: Vec<u8>,
            pub(super) to_host: Vec<u8>,
        }

        pub(super) struct Room {
            pub(super) ids: Vec<Arc<Identity>>,
            /// alice's, bob's and carol's connections.
            pub(super) legs: Vec<Leg>,
        }

        fn member(id: u16, key: &Identity) -> Member {
            Member { id, name: NAMES[usize::from(id)].into(), spki: key.public().spki_der.clone() }
        }

        fn bytes(frame: Frame) -> Vec<u8> {
            frame.to_bytes()
        }

        /// alice (1) says "hello room" to everyone, then "bob, the code is 4711" to bob alone;
        /// then she leaves.
        pub(super) fn room() -> Room {
            let ids: Vec<Arc<Identity>> =
                (0..4).map(|_| Arc::new(Identity::generate(1024).unwrap())).collect();
            let host = &ids[0];
            let keys: Vec<(u16, &PeerKey)> =
                vec![(0, ids[0].public()), (2, ids[2].public()), (3, ids[3].public())];
            let public = seal(&ids[1], &ROOM, 1, 0, false, &keys, "hello room").unwrap();
            let private =
                seal(&ids[1], &ROOM, 1, 1, true, &[(2, ids[2].public())], "bob, the code is 4711")
                    .unwrap();
            let mut legs = Vec::new();
            for me in 1..4u16 {
                let key = &ids[usize::from(me)];
                let hh = bytes(room_hello_frame(host, "teacher"));
                let jh = bytes(hello_frame(key, NAMES[usize::from(me)]));
                let hs = Session::new(
                    host.clone(),
                    key.public().clone(),
                    NAMES[usize::from(me)].into(),
                    Role::Host,
                    &hh,
                    &jh,
                );
                let js = Session::new(
                    key.clone(),
                    host.public().clone(),
                    "teacher".into(),
                    Role::Joiner,
                    &hh,
                    &jh,
                );
                let mut from_host = hh.clone();
                from_host.extend(bytes(hs.auth().unwrap().to_frame()));
                let mut to_host = jh.clone();
                to_host.extend(bytes(js.auth().unwrap().to_frame()));
                let (mut hseal, _) = hs.split();
                let (mut jseal, _) = js.split();
                let mut roster = Roster {
                    seq: 0,
                    room_id: ROOM,
                    you: me,
                    your_name: NAMES[usize::from(me)].into(),
                    members: (0..=me).map(|id| member(id, &ids[usize::from(id)])).collect(),
                    signature: vec![],
                };
                let (seq, signature) = hseal.notice(FrameType::Roster, &roster.fields()).unwrap();
                (roster.seq, roster.signature) = (seq, signature);
                from_host.extend(bytes(roster.to_frame()));
                for id in me + 1..4 {
                    let mut joined = Joined {
                        seq: 0,
                        member: member(id, &ids[usize::from(id)]),
                        signature: vec![],
                    };
                    let (seq, signature) =
                        hseal.notice(FrameType::Joined, &joined.fields()).unwrap();
                    (joined.seq, joined.signature) = (seq, signature);
                    from_host.extend(bytes(joined.to_frame()));
                }
                if me == 1 {
                    to_host.extend(bytes(public.to_frame()));
                    to_host.extend(bytes(private.to_frame()));
                } else {
                    from_host.extend(bytes(public.for_recipient(me).to_frame()));
                    if me == 2 {
                        from_host.extend(bytes(private.for_recipient(me).to_frame()));
                    }
                    let mut left = Left { seq: 0, id: 1, reason: "left".into(), signature: vec![] };
                    let (seq, signature) = hseal.notice(FrameType::Left, &left.fields()).unwrap();
                    (left.seq, left.signature) = (seq, signature);
                    from_host.extend(bytes(left.to_frame()));
                }
                from_host.extend(bytes(hseal.bye().unwrap().to_frame()));
                to_host.extend(bytes(jseal.bye().unwrap().to_frame()));
                legs.push(Leg { from_host, to_host });
            }
            Room { ids, legs }
        }

        fn read(keys: &[&Arc<Identity>], bytes: &[u8], piece: usize) -> RchatReport {
            let keys = keys.iter().map(|k| (*k).clone()).collect();
            crate::analyze::recognise::testing::read_all(FrameLog::new(keys), bytes, piece).unwrap()
        }

        fn room_messages(r: &RchatReport) -> Vec<&FrameReport> {
            r.frames.iter().filter(|f| f.kind == "ROOM MESSAGE").collect()
        }

        #[test]
        fn room_frames_are_listed_as_an_eavesdropper_reads_them() {
            let room = room();
            let fp = |i: usize| room.ids[i].public().fingerprint.to_string();
            for piece in [1, 4096] {
                let r = read(&[], &room.legs[1].from_host, piece);
                assert!(r.violations.is_empty(), "{:?}", r.violations);
                let hello = r.hello.as_ref().unwrap();
                assert_eq!((hello.name.as_str(), hello.mode), ("teacher", MODE_ROOM));
                let kinds: Vec<&str> = r.frames.iter().map(|f| f.kind).collect();
                assert_eq!(
                    kinds,
                    [
                        "HELLO",
                        "AUTH",
                        "ROSTER",
                        "JOINED",
                        "ROOM MESSAGE",
                        "ROOM MESSAGE",
                        "LEFT",
                        "BYE"
                    ]
                );
                let roster = r.frames[2].room.as_deref().unwrap();
                assert_eq!(roster.room_id.as_deref(), Some(hex::encode(ROOM).as_str()));
                assert_eq!(
                    (roster.member_id, roster.member_name.as_deref()),
                    (Some(2), Some("bob"))
                );
                let listed: Vec<(u16, &str, Option<usize>, String)> = roster
                    .members
                    .iter()
                    .map(|m| (m.id, m.name.as_str(), m.key_bits, m.fingerprint.clone()))
                    .collect();
                assert_eq!(
                    listed,
                    (0..3).map(|i| (i as u16, NAMES[i], Some(1024), fp(i))).collect::<Vec<_>>()
                );
                assert_eq!(r.frames[2].seq, Some(0));
                assert_eq!(r.frames[3].seq, Some(1));
                let joined = r.frames[3].room.as_deref().unwrap();
                assert_eq!(joined.members[0].name, "carol");
                assert_eq!(joined.members[0].fingerprint, fp(3));
                let [public, private] = room_messages(&r)[..] else { panic!() };
                let p = public.room.as_deref().unwrap();
                assert_eq!((p.sender, public.seq, p.private), (Some(1), Some(0), Some(false)));
                let forms: Vec<(u16, CopyForm, Option<usize>, Option<u16>)> =
                    p.recipients.iter().map(|c| (c.id, c.form, c.blocks, c.block_len)).collect();
                assert_eq!(
                    forms,
                    [
                        (0, CopyForm::Digest, None, None),
                        (2, CopyForm::Ciphertext, Some(1), Some(128)),
                        (3, CopyForm::Digest, None, None)
                    ]
                );
                assert_eq!(public.signature_len, Some(128));
                assert!(public.plaintext.is_none() && public.not_decrypted.is_none());
                let q = private.room.as_deref().unwrap();
                assert_eq!((q.private, private.seq, q.recipients.len()), (Some(true), Some(1), 1));
                let left = r.frames[6].room.as_deref().unwrap();
                assert_eq!((left.member_id, left.reason.as_deref()), (Some(1), Some("left")));
                assert_eq!(r.frames[6].seq, Some(2));
                assert_eq!(r.frames[7].seq, Some(3), "the BYE follows the host's notices");
                let table = r.room.as_ref().unwrap();
                assert_eq!(table.members.iter().map(|m| m.id).collect::<Vec<_>>(), [0, 1, 2, 3]);
                assert_eq!(table.member_id, Some(2));
                // The member's own leg: its HELLO is not a host's, its messages are in full.
                let r = read(&[], &room.legs[0].to_host, piece);
                assert!(r.violations.is_empty(), "{:?}", r.violations);
                assert_eq!(r.hello.as_ref().unwrap().mode, 1);
                let sent = room_messages(&r);
                assert!(
                    sent[0]
                        .room
                        .as_deref()
                        .unwrap()
                        .recipients
                        .iter()
                        .all(|c| c.form == CopyForm::Ciphertext)
                );
                assert_eq!(r.room.as_ref().unwrap().room_id, None);
            }
        }

        #[test]
        fn a_members_key_opens_exactly_the_messages_addressed_to_it() {
            let room = room();
            let bob = &room.ids[2];
            let carol = &room.ids[3];
            for piece in [1, 4096] {
                // bob's key on the host's leg to bob, and on alice's leg to the host.
                for bytes in [&room.legs[1].from_host, &room.legs[0].to_host] {
                    let r = read(&[bob], bytes, piece);
                    let texts: Vec<Option<&str>> =
                        room_messages(&r).iter().map(|f| f.plaintext.as_deref()).collect();
                    assert_eq!(texts, [Some("hello room"), Some("bob, the code is 4711")]);
                    assert_eq!((r.decrypted, r.not_decrypted), (2, 0));
                }
                // carol's: the public message on her own leg and alice's; not bob's private one.
                let r = read(&[carol], &room.legs[2].from_host, piece);
                assert_eq!(room_messages(&r)[0].plaintext.as_deref(), Some("hello room"));
                let r = read(&[carol], &room.legs[0].to_host, piece);
                let [public, private] = room_messages(&r)[..] else { panic!() };
                assert_eq!(public.plaintext.as_deref(), Some("hello room"));
                let why = private.not_decrypted.as_deref().unwrap();
                assert_eq!(why, "a private message sent to member 2: not to this key");
                // On bob's leg, carol's copy of the public message is only a digest, and the
                // private one is bob's: both said with the names the ROSTER gave.
                let r = read(&[carol], &room.legs[1].from_host, piece);
                let [public, private] = room_messages(&r)[..] else { panic!() };
                let why = public.not_decrypted.as_deref().unwrap();
                assert!(
                    why.starts_with(&format!(
                        "only a digest of this key's copy, the one for member 3 (carol, {}), \
                         travels on this connection: the relay sent the copy itself to its \
                         recipient",
                        carol.public().fingerprint
                    )),
                    "{why}"
                );
                let why = private.not_decrypted.as_deref().unwrap();
                assert_eq!(
                    why,
                    format!(
                        "a private message sent to member 2 (bob, {}): not to this key",
                        bob.public().fingerprint
                    )
                );
                assert_eq!((r.decrypted, r.not_decrypted), (0, 2));
            }
        }

        #[test]
        fn the_hosts_key_opens_its_copies_and_never_a_private_message() {
            let room = room();
            let (host, alice) = (&room.ids[0], &room.ids[1]);
            for piece in [1, 4096] {
                let r = read(&[host], &room.legs[0].to_host, piece);
                let [public, private] = room_messages(&r)[..] else { panic!() };
                assert_eq!(public.plaintext.as_deref(), Some("hello room"));
                assert!(private.plaintext.is_none());
                assert!(private.not_decrypted.as_deref().unwrap().contains("sent to member 2"));
                // On bob's leg the host's copy is a digest: it came in full on alice's.
                let r = read(&[host], &room.legs[1].from_host, piece);
                let [public, private] = room_messages(&r)[..] else { panic!() };
                let why = public.not_decrypted.as_deref().unwrap();
                assert!(why.starts_with("only a digest of this key's copy, the one for the host, member 0 (teacher, SHA256:"), "{why}");
                assert!(why.ends_with("went to the host on its sender's connection"), "{why}");
                assert!(private.not_decrypted.as_deref().unwrap().contains("(bob, SHA256:"));
                // The sender's own key: its messages are for others.
                let r = read(&[alice], &room.legs[0].to_host, piece);
                let why = room_messages(&r)[0].not_decrypted.as_deref().unwrap();
                assert!(why.starts_with("sent by member 1, the owner of the given key"), "{why}");
                // Several keys: the one that opens wins; else the most telling reason.
                let r = read(&[alice, host], &room.legs[0].to_host, piece);
                let [public, private] = room_messages(&r)[..] else { panic!() };
                assert_eq!(public.plaintext.as_deref(), Some("hello room"));
                assert!(private.not_decrypted.as_deref().unwrap().starts_with("sent by member 1"));
            }
        }

        #[test]
        fn a_key_outside_the_room_is_told_without_trying_it() {
            let room = room();
            let stranger = Arc::new(Identity::generate(1024).unwrap());
            let r = read(&[&stranger], &room.legs[1].from_host, 4096);
            let why = room_messages(&r)[0].not_decrypted.as_deref().unwrap();
            let fp = |i: usize| room.ids[i].public().fingerprint.to_string();
            assert_eq!(
                why,
                format!(
                    "sent to member 0 (teacher, {}), member 2 (bob, {}) and member 3 (carol, {}): \
                     not to this key",
                    fp(0),
                    fp(2),
                    fp(3)
                )
            );
            let r = read(&[&stranger, &room.ids[3]], &room.legs[0].to_host, 4096);
            let why = room_messages(&r)[1].not_decrypted.as_deref().unwrap();
            assert!(why.ends_with("not to any of the given keys"), "{why}");
        }

        #[test]
        fn the_capture_names_the_members_on_every_connection() {
            let room = room();
            let host = &room.ids[0];
            let mut c2s = read(&[host], &room.legs[0].to_host, 4096);
            let mut s2c = read(&[host], &room.legs[0].from_host, 4096);
            let mut bob_c2s = read(&[host], &room.legs[1].to_host, 4096);
            let mut bob_s2c = read(&[host], &room.legs[1].from_host, 4096);
            assert!(c2s.room.as_ref().unwrap().members.is_empty());
            share_rooms(&mut [
                [Some(&mut c2s), Some(&mut s2c)],
                [Some(&mut bob_c2s), Some(&mut bob_s2c)],
            ]);
            let table = c2s.room.as_ref().unwrap();
            assert_eq!(table.room_id.as_deref(), Some(hex::encode(ROOM).as_str()));
            assert_eq!(table.members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), NAMES);
            let why = room_messages(&c2s)[1].not_decrypted.as_deref().unwrap();
            assert_eq!(
                why,
                format!(
                    "a private message sent to member 2 (bob, {}): not to this key",
                    room.ids[2].public().fingerprint
                )
            );
            assert!(c2s.notes.is_empty(), "{:?}", c2s.notes);
        }

        #[test]
        fn a_relay_handing_out_another_key_is_noticed_across_connections() {
            let room = room();
            let mut alice = read(&[], &room.legs[0].from_host, 4096);
            // The ROSTER to carol names bob with another key.
            let mut forged = room.legs[2].from_host.clone();
            let bob_spki = &room.ids[2].public().spki_der;
            let at = forged.windows(bob_spki.len()).position(|w| w == &bob_spki[..]).unwrap();
            forged[at + bob_spki.len() - 5] ^= 1;
            let mut carol = read(&[], &forged, 4096);
            share_rooms(&mut [[None, Some(&mut alice)], [None, Some(&mut carol)]]);
            let notes = [&alice.notes[..], &carol.notes[..]].concat();
            assert_eq!(notes.len(), 1, "{notes:?}");
            assert!(notes[0].starts_with("member 2 (\"bob\") is named with key"), "{notes:?}");
        }

        #[test]
        fn names_from_the_capture_are_escaped_in_every_sentence() {
            let ids: Vec<Arc<Identity>> =
                (0..2).map(|_| Arc::new(Identity::generate(1024).unwrap())).collect();
            let evil = "bob\u{1b}[2J\u{202e}";
            let mut from_host = bytes(room_hello_frame(&ids[0], "teacher"));
            let roster = Roster {
                seq: 0,
                room_id: ROOM,
                you: 1,
                your_name: evil.into(),
                members: vec![
                    member(0, &ids[0]),
                    Member { id: 1, name: evil.into(), spki: ids[1].public().spki_der.clone() },
                ],
                signature: vec![1; 128],
            };
            from_host.extend(bytes(roster.to_frame()));
            let other = Arc::new(Identity::generate(1024).unwrap());
            let msg = seal(&ids[0], &ROOM, 0, 0, true, &[(1, ids[1].public())], "hi").unwrap();
            from_host.extend(bytes(msg.to_frame()));
            let r = read(&[&other], &from_host, 4096);
            let why = room_messages(&r)[0].not_decrypted.as_deref().unwrap();
            assert!(!why.contains('\u{1b}') && !why.contains('\u{202e}'), "{why:?}");
            assert!(why.contains("bob\\u{1b}[2J\\u{202e}"), "{why:?}");
            // The JSON keeps the name as sent, for a program to read.
            assert_eq!(r.room.as_ref().unwrap().members[1].name, evil);
        }

        #[test]
        fn breaks_of_the_rooms_rules_are_reported() {
            let room = room();
            // alice's public message sent twice on her leg: a replay.
            let r = read(&[], &room.legs[0].to_host, 4096);
            let msg = room_messages(&r)[0];
            let (at, len) = (msg.offset as usize, msg.length as usize);
            let mut replayed = room.legs[0].to_host.clone();
            let copy = replayed[at..at + len].to_vec();
            replayed.splice(at + len..at + len, copy.clone());
            let r = read(&[], &replayed, 4096);
            assert!(
                r.violations.iter().any(|v| v.contains("member 1's sequence number 0 after")),
                "{:?}",
                r.violations
            );
            // A relayed message (with digests) on the member's own leg, and a ROSTER from the
            // member's side.
            let mut wrong = room.legs[0].to_host.clone();
            let relayed = RoomMessage::decode(&copy[HEADER_LEN..]).unwrap().for_recipient(2);
            wrong.splice(at..at, bytes(RoomMessage { seq: 9, ..relayed }.to_frame()));
            let r = read(&[], &wrong, 4096);
            assert!(
                r.violations.iter().any(|v| v.contains("only as a digest")),
                "{:?}",
                r.violations
            );
            let from_host = read(&[], &room.legs[0].from_host, 4096);
            let roster = &from_host.frames[2];
            let (at, len) = (roster.offset as usize, roster.length as usize);
            let mut member_roster = room.legs[0].to_host.clone();
            member_roster.extend_from_slice(&room.legs[0].from_host[at..at + len]);
            let r = read(&[], &member_roster, 4096);
            assert!(
                r.violations
                    .iter()
                    .any(|v| v.contains("a ROSTER from a side that is not a room's host")),
                "{:?}",
                r.violations
            );
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

            /// Room frames cut short, garbled or with random bodies never make the recogniser
            /// panic, with or without a key to try.
            #[test]
            fn garbled_room_frames_never_panic(
                leg in 0usize..3,
                to_host in any::<bool>(),
                cut in any::<prop::sample::Index>(),
                flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..6),
                kind in 6u8..=9,
                body in prop::collection::vec(any::<u8>(), 0..400),
                piece in 1usize..64,
            ) {
                let room = fixture();
                let leg = &room.legs[leg];
                let mut bytes = if to_host { leg.to_host.clone() } else { leg.from_host.clone() };
                for (at, x) in flips {
                    let i = at.index(bytes.len());
                    bytes[i] ^= x;
                }
                bytes.truncate(cut.index(bytes.len() + 1));
                // And a frame of a room's type with a random body.
                bytes.extend_from_slice(b"RCHT\x01");
                bytes.push(kind);
                bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
                bytes.extend_from_slice(&body);
                for keys in [vec![], vec![room.ids[2].clone()]] {
                    let log = FrameLog::new(keys);
                    let _ = crate::analyze::recognise::testing::read_all(log, &bytes, piece);
                }
            }
        }

        /// One room for every case of the property test: keys take long to make.
        fn fixture() -> &'static Room {
            static ROOM_FIXTURE: std::sync::OnceLock<Room> = std::sync::OnceLock::new();
            ROOM_FIXTURE.get_or_init(room)
        }
    }
}
