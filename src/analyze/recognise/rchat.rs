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
    mod room;
}
