//! The cryptographic rules of the encrypted mode: what the handshake transcript is, what each
//! signature covers, and how a received frame is checked before its text is believed.
//!
//! Owns the order of checks on a received message (signature, then sequence number, then
//! decryption), so that a replayed, reordered, reflected, altered or unsigned message is told
//! apart and refused. A message's blocks may be decrypted as soon as they arrive, while the
//! sender is still signing ([`Opener::decrypt_early`]), but nothing of that work is used or
//! shown, not even whether it failed, before the signature and sequence number pass. It sees
//! decoded frames and keys, never sockets.

use std::sync::Arc;

use rsa::sha2::{Digest, Sha256};

use crate::crypto::{Fingerprint, Identity, KeyError, PeerKey, check_strength};
use crate::protocol::wire::{
    Auth, Bye, Frame, FrameType, Hello, MAX_BLOCKS, MAX_MESSAGE_LEN, MODE_ROOM,
    MODE_RSA_OAEP_PSS_SHA256, Message, MessageBlocks,
};

/// Which end of the connection a party is; part of everything it signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The side that listened.
    Host,
    /// The side that connected.
    Joiner,
}

impl Role {
    /// The byte that stands for this role in signed data.
    pub fn byte(self) -> u8 {
        match self {
            Role::Host => b'H',
            Role::Joiner => b'J',
        }
    }

    /// The other role.
    pub fn peer(self) -> Role {
        match self {
            Role::Host => Role::Joiner,
            Role::Joiner => Role::Host,
        }
    }
}

/// Why a handshake or a message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityError {
    /// The HELLO announced a mode we do not know.
    #[error("the peer announced mode {0}, which this rchat does not know: update both sides")]
    UnknownMode(u8),
    /// The public key in the HELLO does not parse.
    #[error("the peer's public key is malformed ({0})")]
    BadKey(String),
    /// The key is outside the sizes rchat accepts.
    #[error(
        "the peer's key is {0} bits; rchat accepts 2048 to 4096 bits (1024 with --allow-weak-keys)"
    )]
    KeySize(usize),
    /// A key under 2048 bits without `--allow-weak-keys`.
    #[error("the peer's key is only {0} bits: add --allow-weak-keys to accept it for a lab")]
    WeakKey(usize),
    /// `--peer-fingerprint` does not match.
    #[error(
        "the peer's fingerprint is {got}, not the expected {expected}: someone may be in the middle; check the fingerprint with your peer"
    )]
    FingerprintMismatch {
        /// What `--peer-fingerprint` said.
        expected: Fingerprint,
        /// What the peer's key hashes to.
        got: Fingerprint,
    },
    /// The AUTH signature does not verify.
    #[error(
        "the peer could not prove it holds the private key of the key it sent (bad handshake signature)"
    )]
    BadAuth,
    /// A frame with no signature.
    #[error("the peer sent an unsigned {0}: refused")]
    Unsigned(&'static str),
    /// A signature that does not match the frame.
    #[error("a {0} signature does not match: the frame was altered or forged")]
    BadSignature(&'static str),
    /// One of our own frames sent back to us.
    #[error("the peer sent back one of our own messages (reflected): refused")]
    Reflected,
    /// A sequence number already used.
    #[error("message {got} was replayed (expected message {expected}): refused")]
    Replayed {
        /// Sequence number received.
        got: u64,
        /// Sequence number expected.
        expected: u64,
    },
    /// A sequence number from the future.
    #[error(
        "message {got} arrived where message {expected} was due: messages were reordered or dropped"
    )]
    OutOfOrder {
        /// Sequence number received.
        got: u64,
        /// Sequence number expected.
        expected: u64,
    },
    /// Ciphertext blocks of the wrong size for our key.
    #[error("ciphertext blocks are {got} bytes but our key makes {want}-byte blocks")]
    BlockSize {
        /// Block size received.
        got: usize,
        /// Our modulus size.
        want: usize,
    },
    /// More blocks than a 64 KiB message needs.
    #[error("{0} ciphertext blocks is more than a 64 KiB message needs")]
    TooManyBlocks(usize),
    /// OAEP decryption failed.
    #[error("block {0} of a message could not be decrypted (OAEP check failed)")]
    Decrypt(usize),
    /// The decrypted text is not UTF-8.
    #[error("a decrypted message is not UTF-8 text")]
    NotUtf8,
    /// The decrypted text is over 64 KiB.
    #[error("a decrypted message is {0} bytes, over the 64 KiB limit")]
    TooLong(usize),
    /// Our own key or signature failed.
    #[error("local cryptography failed: {0}")]
    Local(String),
}

/// What the handshake settles: both keys, the transcript hash, our role.
#[derive(Debug)]
pub struct Session {
    me: Arc<Identity>,
    peer: PeerKey,
    peer_name: String,
    transcript: [u8; 32],
    role: Role,
}

/// Our HELLO frame.
pub fn hello_frame(me: &Identity, name: &str) -> Frame {
    Hello { mode: MODE_RSA_OAEP_PSS_SHA256, name: name.into(), spki: me.public().spki_der.clone() }
        .to_frame()
}

/// A room host's HELLO: [`hello_frame`] with the room's mode.
pub fn room_hello_frame(me: &Identity, name: &str) -> Frame {
    Hello { mode: MODE_ROOM, name: name.into(), spki: me.public().spki_der.clone() }.to_frame()
}

/// Check a peer's HELLO: mode, key parse, key size, pinned fingerprint.
pub fn check_hello(
    hello: &Hello,
    allow_weak: bool,
    pin: Option<&Fingerprint>,
) -> Result<PeerKey, SecurityError> {
    if hello.mode != MODE_RSA_OAEP_PSS_SHA256 && hello.mode != MODE_ROOM {
        return Err(SecurityError::UnknownMode(hello.mode));
    }
    let key = PeerKey::from_spki(&hello.spki).map_err(SecurityError::BadKey)?;
    let bits = key.bits();
    if !(crate::crypto::MIN_WEAK_BITS..=crate::crypto::MAX_BITS).contains(&bits) {
        return Err(SecurityError::KeySize(bits));
    }
    if let Err(KeyError::Weak { bits, .. }) = check_strength("the peer's", bits, allow_weak) {
        return Err(SecurityError::WeakKey(bits));
    }
    if let Some(expected) = pin
        && *expected != key.fingerprint
    {
        return Err(SecurityError::FingerprintMismatch {
            expected: *expected,
            got: key.fingerprint,
        });
    }
    Ok(key)
}

/// SHA-256 over a label and both HELLO frames exactly as sent, host's first.
pub fn transcript_hash(host_hello: &[u8], joiner_hello: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"rchat/1 transcript");
    h.update(host_hello);
    h.update(joiner_hello);
    h.finalize().into()
}

fn signed_prefix(label: &[u8], transcript: &[u8; 32], role: Role) -> Vec<u8> {
    let mut out = Vec::with_capacity(label.len() + 33);
    out.extend_from_slice(label);
    out.extend_from_slice(transcript);
    out.push(role.byte());
    out
}

/// The bytes an AUTH signature covers.
pub fn auth_input(transcript: &[u8; 32], role: Role) -> Vec<u8> {
    signed_prefix(b"rchat/1 auth", transcript, role)
}

/// The bytes a MESSAGE signature covers.
pub fn message_input(transcript: &[u8; 32], role: Role, msg: &Message) -> Vec<u8> {
    let mut out = signed_prefix(b"rchat/1 message", transcript, role);
    out.extend_from_slice(&msg.signed_fields());
    out
}

/// The label of a host's notice in a room (ROSTER, JOINED, LEFT), if `kind` is one.
fn notice_label(kind: FrameType) -> Option<&'static [u8]> {
    match kind {
        FrameType::Roster => Some(b"rchat/1 roster"),
        FrameType::Joined => Some(b"rchat/1 joined"),
        FrameType::Left => Some(b"rchat/1 left"),
        _ => None,
    }
}

/// The bytes a notice's signature covers: its label, T, R, the sequence number and the
/// fields after it.
pub fn notice_input(
    kind: FrameType,
    transcript: &[u8; 32],
    role: Role,
    seq: u64,
    fields: &[u8],
) -> Option<Vec<u8>> {
    let mut out = signed_prefix(notice_label(kind)?, transcript, role);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(fields);
    Some(out)
}

/// The bytes a BYE signature covers.
pub fn bye_input(transcript: &[u8; 32], role: Role, seq: u64) -> Vec<u8> {
    let mut out = signed_prefix(b"rchat/1 bye", transcript, role);
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

impl Session {
    /// Settle a session once both HELLOs are exchanged and the peer's is checked.
    pub fn new(
        me: Arc<Identity>,
        peer: PeerKey,
        peer_name: String,
        role: Role,
        host_hello: &[u8],
        joiner_hello: &[u8],
    ) -> Self {
        let transcript = transcript_hash(host_hello, joiner_hello);
        Session { me, peer, peer_name, transcript, role }
    }

    /// The peer's key.
    pub fn peer(&self) -> &PeerKey {
        &self.peer
    }

    /// The name the peer announced.
    pub fn peer_name(&self) -> &str {
        &self.peer_name
    }

    /// Our identity.
    pub fn me(&self) -> &Identity {
        &self.me
    }

    /// Our AUTH frame: proof that we hold our private key, bound to this handshake and role.
    pub fn auth(&self) -> Result<Auth, SecurityError> {
        let signature = self
            .me
            .sign(&auth_input(&self.transcript, self.role))
            .map_err(|e| SecurityError::Local(e.to_string()))?;
        Ok(Auth { signature })
    }

    /// Check the peer's AUTH.
    pub fn check_auth(&self, auth: &Auth) -> Result<(), SecurityError> {
        if auth.signature.is_empty() {
            return Err(SecurityError::Unsigned("handshake"));
        }
        if self.peer.verify(&auth_input(&self.transcript, self.role.peer()), &auth.signature) {
            return Ok(());
        }
        if self.me.public().verify(&auth_input(&self.transcript, self.role), &auth.signature) {
            return Err(SecurityError::Reflected);
        }
        Err(SecurityError::BadAuth)
    }

    /// Split into the sending and receiving halves, each with its own sequence counter.
    pub fn split(self) -> (Sealer, Opener) {
        let shared = Arc::new(self);
        (Sealer { s: shared.clone(), next_seq: 0 }, Opener { s: shared, next_seq: 0 })
    }
}

/// The sending half: encrypts to the peer, signs with our key, numbers each frame.
#[derive(Debug)]
pub struct Sealer {
    s: Arc<Session>,
    next_seq: u64,
}

impl Sealer {
    /// Encrypt and sign one message. The text must be at most 64 KiB.
    pub fn seal(&mut self, text: &str) -> Result<Message, SecurityError> {
        let mut msg = self.encrypt(text)?;
        self.sign(&mut msg)?;
        Ok(msg)
    }

    /// The first half of [`Sealer::seal`]: encrypt `text` to the peer and number it, leaving
    /// the signature empty. The blocks can be sent while [`Sealer::sign`] runs.
    pub fn encrypt(&self, text: &str) -> Result<Message, SecurityError> {
        if text.len() > MAX_MESSAGE_LEN {
            return Err(SecurityError::TooLong(text.len()));
        }
        let local = |e: rsa::Error| SecurityError::Local(e.to_string());
        let blocks = self.s.peer.encrypt_blocks(text.as_bytes()).map_err(local)?;
        let block_len = u16::try_from(self.s.peer.size()).map_err(|_| SecurityError::KeySize(0))?;
        Ok(Message { seq: self.next_seq, block_len, blocks: blocks.concat(), signature: vec![] })
    }

    /// The second half of [`Sealer::seal`]: sign a message from [`Sealer::encrypt`] and
    /// move on to the next sequence number.
    pub fn sign(&mut self, msg: &mut Message) -> Result<(), SecurityError> {
        if msg.seq != self.next_seq {
            return Err(SecurityError::Local(format!(
                "message {} signed out of turn (next is {})",
                msg.seq, self.next_seq
            )));
        }
        let input = message_input(&self.s.transcript, self.s.role, msg);
        let signature = self.s.me.sign(&input).map_err(|e| SecurityError::Local(e.to_string()))?;
        if signature.len() != self.signature_len() {
            return Err(SecurityError::Local(format!(
                "a {}-byte signature from a {}-byte key",
                signature.len(),
                self.signature_len()
            )));
        }
        msg.signature = signature;
        self.next_seq += 1;
        Ok(())
    }

    /// The length of our signatures: the size of our modulus in bytes.
    pub fn signature_len(&self) -> usize {
        self.s.me.public().size()
    }

    /// Sign a goodbye.
    pub fn bye(&mut self) -> Result<Bye, SecurityError> {
        let seq = self.next_seq;
        let signature = self
            .s
            .me
            .sign(&bye_input(&self.s.transcript, self.s.role, seq))
            .map_err(|e| SecurityError::Local(e.to_string()))?;
        self.next_seq += 1;
        Ok(Bye { seq, signature })
    }

    /// Sign a room notice (ROSTER, JOINED, LEFT) whose fields after the sequence number are
    /// `fields`: returns its sequence number and signature. Notices, messages and the BYE
    /// share one sequence.
    pub fn notice(
        &mut self,
        kind: FrameType,
        fields: &[u8],
    ) -> Result<(u64, Vec<u8>), SecurityError> {
        let seq = self.next_seq;
        let local = |why: String| SecurityError::Local(why);
        let input = notice_input(kind, &self.s.transcript, self.s.role, seq, fields)
            .ok_or_else(|| local(format!("a {kind} frame is not a notice")))?;
        let signature = self.s.me.sign(&input).map_err(|e| local(e.to_string()))?;
        self.next_seq += 1;
        Ok((seq, signature))
    }

    /// The session this half belongs to.
    pub fn session(&self) -> &Session {
        &self.s
    }
}

/// A message's blocks decrypted ahead of its signature by [`Opener::decrypt_early`]:
/// unchecked, so it stays opaque until [`Opener::open_with`] has checked the message.
pub struct Early {
    block_len: u16,
    blocks: Vec<u8>,
    plain: Vec<Result<Vec<u8>, rsa::Error>>,
}

impl std::fmt::Debug for Early {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print what was decrypted before it was checked.
        write!(f, "Early({} blocks)", self.plain.len())
    }
}

/// The receiving half: checks signature, sequence number, then decrypts.
#[derive(Debug)]
pub struct Opener {
    s: Arc<Session>,
    next_seq: u64,
}

impl Opener {
    fn check_seq(&mut self, got: u64) -> Result<(), SecurityError> {
        let expected = self.next_seq;
        if got < expected {
            return Err(SecurityError::Replayed { got, expected });
        }
        if got > expected {
            return Err(SecurityError::OutOfOrder { got, expected });
        }
        self.next_seq += 1;
        Ok(())
    }

    /// Decrypt a MESSAGE's blocks before its signature has arrived, so that the decryption
    /// overlaps the sender's signing. `None` when the blocks are not for our key or too many:
    /// [`Opener::open_with`] then refuses the message in its usual order.
    pub fn decrypt_early(&self, blocks: MessageBlocks<'_>) -> Option<Early> {
        self.check_shape(blocks.block_len, blocks.blocks).ok()?;
        Some(Early {
            block_len: blocks.block_len,
            blocks: blocks.blocks.to_vec(),
            plain: self.s.me.decrypt_blocks(blocks.blocks, usize::from(blocks.block_len)),
        })
    }

    /// Most blocks a message to our key needs.
    fn max_blocks(&self) -> usize {
        let cap = self.s.me.public().block_capacity().max(1);
        MAX_MESSAGE_LEN.div_ceil(cap).clamp(1, MAX_BLOCKS)
    }

    /// Whether `blocks`, cut in blocks of `block_len` bytes, can be a message to our key:
    /// blocks of our key's size, no more of them than the longest message needs.
    fn check_shape(&self, block_len: u16, blocks: &[u8]) -> Result<(), SecurityError> {
        let want = self.s.me.public().size();
        if usize::from(block_len) != want {
            return Err(SecurityError::BlockSize { got: usize::from(block_len), want });
        }
        let count = blocks.len().checked_div(want).unwrap_or(0);
        if count > self.max_blocks() {
            return Err(SecurityError::TooManyBlocks(count));
        }
        Ok(())
    }

    /// Check and decrypt a MESSAGE from the peer.
    pub fn open(&mut self, msg: &Message) -> Result<String, SecurityError> {
        self.open_with(msg, None)
    }

    /// Like [`Opener::open`], using the blocks [`Opener::decrypt_early`] already decrypted
    /// when they are the message's own. The checks and their order are the same.
    pub fn open_with(
        &mut self,
        msg: &Message,
        early: Option<Early>,
    ) -> Result<String, SecurityError> {
        let s = &self.s;
        if msg.signature.is_empty() {
            return Err(SecurityError::Unsigned("message"));
        }
        if !s.peer.verify(&message_input(&s.transcript, s.role.peer(), msg), &msg.signature) {
            if s.me.public().verify(&message_input(&s.transcript, s.role, msg), &msg.signature) {
                return Err(SecurityError::Reflected);
            }
            return Err(SecurityError::BadSignature("message"));
        }
        self.check_seq(msg.seq)?;
        self.check_shape(msg.block_len, &msg.blocks)?;
        let pieces = match early {
            Some(e) if e.block_len == msg.block_len && e.blocks == msg.blocks => e.plain,
            _ => self.s.me.decrypt_blocks(&msg.blocks, usize::from(msg.block_len)),
        };
        let mut text = Vec::with_capacity(msg.block_count() * self.s.me.public().block_capacity());
        for (i, piece) in pieces.into_iter().enumerate() {
            text.extend_from_slice(&piece.map_err(|_| SecurityError::Decrypt(i))?);
        }
        if text.len() > MAX_MESSAGE_LEN {
            return Err(SecurityError::TooLong(text.len()));
        }
        String::from_utf8(text).map_err(|_| SecurityError::NotUtf8)
    }

    /// Check a room notice from the host: signature over this connection's transcript, then
    /// sequence number.
    pub fn open_notice(
        &mut self,
        kind: FrameType,
        seq: u64,
        fields: &[u8],
        signature: &[u8],
    ) -> Result<(), SecurityError> {
        let s = &self.s;
        if signature.is_empty() {
            return Err(SecurityError::Unsigned("room notice"));
        }
        let input = |role| notice_input(kind, &s.transcript, role, seq, fields);
        if !input(s.role.peer()).is_some_and(|i| s.peer.verify(&i, signature)) {
            if input(s.role).is_some_and(|i| s.me.public().verify(&i, signature)) {
                return Err(SecurityError::Reflected);
            }
            return Err(SecurityError::BadSignature("room notice"));
        }
        self.check_seq(seq)
    }

    /// Check a BYE from the peer.
    pub fn open_bye(&mut self, bye: &Bye) -> Result<(), SecurityError> {
        let s = &self.s;
        if bye.signature.is_empty() {
            return Err(SecurityError::Unsigned("goodbye"));
        }
        if !s.peer.verify(&bye_input(&s.transcript, s.role.peer(), bye.seq), &bye.signature) {
            if s.me.public().verify(&bye_input(&s.transcript, s.role, bye.seq), &bye.signature) {
                return Err(SecurityError::Reflected);
            }
            return Err(SecurityError::BadSignature("goodbye"));
        }
        self.check_seq(bye.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Sealer, Opener, Sealer, Opener) {
        let host = Arc::new(Identity::generate(1024).unwrap());
        let guest = Arc::new(Identity::generate(1024).unwrap());
        let hh = hello_frame(&host, "host").to_bytes();
        let jh = hello_frame(&guest, "guest").to_bytes();
        let hs = Session::new(
            host.clone(),
            guest.public().clone(),
            "guest".into(),
            Role::Host,
            &hh,
            &jh,
        );
        let js = Session::new(guest, host.public().clone(), "host".into(), Role::Joiner, &hh, &jh);
        hs.check_auth(&js.auth().unwrap()).unwrap();
        js.check_auth(&hs.auth().unwrap()).unwrap();
        assert_eq!(hs.check_auth(&hs.auth().unwrap()), Err(SecurityError::Reflected));
        let (hseal, hopen) = hs.split();
        let (jseal, jopen) = js.split();
        (hseal, hopen, jseal, jopen)
    }

    /// What the recipient of `msg` decrypts early from its first bytes on the wire.
    fn early(opener: &Opener, msg: &Message, sig_len: usize) -> Option<Early> {
        let head = msg.frame_head(sig_len);
        opener.decrypt_early(MessageBlocks::peek(&head[crate::protocol::wire::HEADER_LEN..])?)
    }

    #[test]
    fn early_decryption_changes_nothing_but_the_timing() {
        let (mut hseal, _, _, mut jopen) = pair();
        let sig_len = hseal.signature_len();
        // Sent in two halves, as the chat does: encrypt, (send), sign, (send).
        let mut msg = hseal.encrypt("first").unwrap();
        let ahead = early(&jopen, &msg, sig_len);
        assert!(ahead.is_some(), "blocks for our key are decrypted early");
        hseal.sign(&mut msg).unwrap();
        assert_eq!(msg.signature.len(), sig_len);
        assert_eq!(jopen.open_with(&msg, ahead).unwrap(), "first");

        // A forged message whose blocks do not decrypt is still refused for its signature:
        // the failed early decryption is never what the peer learns.
        let mut forged = hseal.seal("second").unwrap();
        forged.blocks[3] ^= 1;
        forged.signature[5] ^= 1;
        let ahead = early(&jopen, &forged, sig_len);
        assert_eq!(jopen.open_with(&forged, ahead), Err(SecurityError::BadSignature("message")));

        // A replay is a replay, decrypted early or not.
        let replay = msg.clone();
        let ahead = early(&jopen, &replay, sig_len);
        assert!(matches!(
            jopen.open_with(&replay, ahead),
            Err(SecurityError::Replayed { got: 0, expected: 1 })
        ));
    }

    #[test]
    fn early_work_on_other_blocks_is_not_used() {
        let (mut hseal, _, _, mut jopen) = pair();
        let sig_len = hseal.signature_len();
        let decoy = hseal.encrypt("decoy").unwrap();
        let ahead = early(&jopen, &decoy, sig_len);
        let real = hseal.seal("real").unwrap();
        assert_eq!(jopen.open_with(&real, ahead).unwrap(), "real");
        // Blocks sized for another key are not decrypted early at all.
        let mut wrong = hseal.seal("x").unwrap();
        wrong.block_len = 100;
        wrong.blocks = vec![7; 300];
        assert!(early(&jopen, &wrong, sig_len).is_none());
    }

    #[test]
    fn signing_out_of_turn_is_refused() {
        let (mut hseal, ..) = pair();
        let mut first = hseal.encrypt("one").unwrap();
        let mut second = hseal.encrypt("two").unwrap();
        second.seq += 1;
        assert!(matches!(hseal.sign(&mut second), Err(SecurityError::Local(_))));
        hseal.sign(&mut first).unwrap();
        assert_eq!(first.seq, 0);
    }

    #[test]
    fn messages_round_trip_and_attacks_are_told_apart() {
        let (mut hseal, mut hopen, mut jseal, mut jopen) = pair();
        let m0 = hseal.seal("héllo 你好 🙂").unwrap();
        assert_eq!(jopen.open(&m0).unwrap(), "héllo 你好 🙂");
        // replay
        assert!(matches!(jopen.open(&m0), Err(SecurityError::Replayed { got: 0, expected: 1 })));
        // reorder: skip message 1
        let _m1 = hseal.seal("one").unwrap();
        let m2 = hseal.seal("two").unwrap();
        assert!(matches!(jopen.open(&m2), Err(SecurityError::OutOfOrder { got: 2, .. })));
        // reflection: the joiner's own message sent back to it
        let own = jseal.seal("mine").unwrap();
        assert_eq!(jopen.open(&own), Err(SecurityError::Reflected));
        assert_eq!(hopen.open(&own).unwrap(), "mine");
        // altered ciphertext
        let mut bad = jseal.seal("x").unwrap();
        bad.blocks[5] ^= 1;
        assert_eq!(hopen.open(&bad), Err(SecurityError::BadSignature("message")));
        // unsigned
        let mut unsigned = jseal.seal("y").unwrap();
        unsigned.signature.clear();
        assert_eq!(hopen.open(&unsigned), Err(SecurityError::Unsigned("message")));
    }

    #[test]
    fn long_messages_span_blocks_and_empty_ones_work() {
        let (mut hseal, _, _, mut jopen) = pair();
        let long = "a".repeat(MAX_MESSAGE_LEN);
        let m = hseal.seal(&long).unwrap();
        assert!(m.block_count() > 1000);
        assert_eq!(jopen.open(&m).unwrap(), long);
        let e = hseal.seal("").unwrap();
        assert_eq!(e.block_count(), 1);
        assert_eq!(jopen.open(&e).unwrap(), "");
        assert!(matches!(
            hseal.seal(&"a".repeat(MAX_MESSAGE_LEN + 1)),
            Err(SecurityError::TooLong(_))
        ));
    }

    #[test]
    fn more_blocks_than_the_longest_message_needs_are_refused() {
        let (mut hseal, _, _, mut jopen) = pair();
        let sig_len = hseal.signature_len();
        let mut msg = hseal.encrypt("x").unwrap();
        let block = msg.blocks.clone();
        let most = jopen.max_blocks();
        msg.blocks = block.repeat(most + 1);
        assert!(early(&jopen, &msg, sig_len).is_none(), "not decrypted early either");
        hseal.sign(&mut msg).unwrap();
        assert_eq!(jopen.open(&msg), Err(SecurityError::TooManyBlocks(most + 1)));
    }

    #[test]
    fn goodbye_is_signed_and_numbered() {
        let (mut hseal, _, _, mut jopen) = pair();
        let m = hseal.seal("hi").unwrap();
        jopen.open(&m).unwrap();
        let bye = hseal.bye().unwrap();
        assert_eq!(bye.seq, 1);
        let mut forged = bye.clone();
        forged.signature[0] ^= 1;
        assert_eq!(jopen.open_bye(&forged), Err(SecurityError::BadSignature("goodbye")));
        jopen.open_bye(&bye).unwrap();
    }

    #[test]
    fn hello_checks() {
        let weak = Identity::generate(1024).unwrap();
        let hello = Hello::decode(&hello_frame(&weak, "w").body).unwrap();
        assert_eq!(check_hello(&hello, false, None).unwrap_err(), SecurityError::WeakKey(1024));
        let key = check_hello(&hello, true, None).unwrap();
        let fp = key.fingerprint;
        assert!(check_hello(&hello, true, Some(&fp)).is_ok());
        let other = Fingerprint([0; 32]);
        assert!(matches!(
            check_hello(&hello, true, Some(&other)),
            Err(SecurityError::FingerprintMismatch { .. })
        ));
        let mut garbage = hello.clone();
        garbage.spki = vec![0x30, 0x03, 1, 2, 3];
        assert!(matches!(check_hello(&garbage, true, None), Err(SecurityError::BadKey(_))));
        let mut mode = hello;
        mode.mode = 7;
        assert_eq!(check_hello(&mode, true, None).unwrap_err(), SecurityError::UnknownMode(7));
    }
}
