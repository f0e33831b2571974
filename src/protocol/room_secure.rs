//! The cryptographic rules of a room message: what its sender signs (the room id, sender,
//! sequence number, flags and every copy's digest), how a text is sealed to many recipients
//! at once, and the checks, in order, that the relay and each recipient run before the text
//! is believed.
//!
//! A relay checks a message without being able to read it ([`SenderCheck`]); a recipient
//! checks it with the sender's key, never the relay's, and decrypts only its own copy
//! ([`RoomOpener`]). Sequence numbers per sender only rise: a gap is a private message to
//! someone else, a repeat or a step back is a replay or a reordering. It sees decoded frames
//! and keys, never sockets.

use std::collections::HashMap;
use std::sync::Arc;

use super::room_wire::{Copy, CopyBody, MAX_ROOM_BLOCKS, MAX_ROOM_TEXT, RoomMessage};
use super::secure::SecurityError;
use crate::crypto::{Identity, PeerKey};

/// The bytes a room message's signature covers.
pub fn room_message_input(room_id: &[u8; 32], msg: &RoomMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + 32 + 13 + msg.copies.len() * 34);
    out.extend_from_slice(b"rchat/1 room message");
    out.extend_from_slice(room_id);
    out.extend_from_slice(&msg.sender.to_be_bytes());
    out.extend_from_slice(&msg.seq.to_be_bytes());
    out.push(msg.flags());
    out.extend_from_slice(&(msg.copies.len() as u16).to_be_bytes());
    for copy in &msg.copies {
        out.extend_from_slice(&copy.recipient.to_be_bytes());
        out.extend_from_slice(&copy.digest());
    }
    out
}

/// Encrypt `text` to every recipient and sign it once: the frame a member sends the relay.
/// `recipients` need not be sorted; the copies are.
pub fn seal(
    me: &Identity,
    room_id: &[u8; 32],
    sender: u16,
    seq: u64,
    private: bool,
    recipients: &[(u16, &PeerKey)],
    text: &str,
) -> Result<RoomMessage, SecurityError> {
    if text.len() > MAX_ROOM_TEXT {
        return Err(SecurityError::TooLong(text.len()));
    }
    let local = |e: rsa::Error| SecurityError::Local(e.to_string());
    let mut copies = recipients
        .iter()
        .map(|&(recipient, key)| {
            let blocks = key.encrypt_blocks(text.as_bytes()).map_err(local)?.concat();
            let block_len = u16::try_from(key.size()).map_err(|_| SecurityError::KeySize(0))?;
            Ok(Copy { recipient, body: CopyBody::Cipher { block_len, blocks } })
        })
        .collect::<Result<Vec<_>, SecurityError>>()?;
    copies.sort_by_key(|c| c.recipient);
    copies.dedup_by_key(|c| c.recipient);
    let mut msg = RoomMessage { sender, seq, private, copies, signature: vec![] };
    msg.signature = me.sign(&room_message_input(room_id, &msg)).map_err(local)?;
    Ok(msg)
}

/// The checks every holder of a room message runs: signed, signed by `key`, in sequence.
fn check_signed(
    room_id: &[u8; 32],
    key: &PeerKey,
    last: Option<u64>,
    msg: &RoomMessage,
) -> Result<(), SecurityError> {
    if msg.signature.is_empty() {
        return Err(SecurityError::Unsigned("room message"));
    }
    if !key.verify(&room_message_input(room_id, msg), &msg.signature) {
        return Err(SecurityError::BadSignature("room message"));
    }
    match last {
        Some(last) if msg.seq <= last => {
            Err(SecurityError::Replayed { got: msg.seq, expected: last.saturating_add(1) })
        }
        _ => Ok(()),
    }
}

/// What the relay knows of one member's messages: the key they must be signed with, and the
/// last sequence number it accepted.
#[derive(Debug)]
pub struct SenderCheck {
    room_id: [u8; 32],
    id: u16,
    key: PeerKey,
    last: Option<u64>,
}

impl SenderCheck {
    /// Check the messages of member `id`, whose key is `key`.
    pub fn new(room_id: [u8; 32], id: u16, key: PeerKey) -> Self {
        SenderCheck { room_id, id, key, last: None }
    }

    /// Check a message the member sent: its own id as sender, every copy in full, its
    /// signature, a rising sequence number. The relay reads none of the copies.
    pub fn check(&mut self, msg: &RoomMessage) -> Result<(), SecurityError> {
        if msg.sender != self.id {
            return Err(SecurityError::BadSignature(
                "room message (sent in another member's name)",
            ));
        }
        if msg.copies.iter().any(|c| matches!(c.body, CopyBody::Digest(_))) {
            return Err(SecurityError::Local("a member sent a copy as a digest only".into()));
        }
        check_signed(&self.room_id, &self.key, self.last, msg)?;
        self.last = Some(msg.seq);
        Ok(())
    }
}

/// A member's side of a room's messages: its key and id, the room id, and the last sequence
/// number accepted from each sender.
#[derive(Debug)]
pub struct RoomOpener {
    room_id: [u8; 32],
    me: Arc<Identity>,
    my_id: u16,
    last: HashMap<u16, u64>,
}

impl RoomOpener {
    /// Open the messages of room `room_id` addressed to member `my_id`.
    pub fn new(room_id: [u8; 32], me: Arc<Identity>, my_id: u16) -> Self {
        RoomOpener { room_id, me, my_id, last: HashMap::new() }
    }

    /// The room's id.
    pub fn room_id(&self) -> &[u8; 32] {
        &self.room_id
    }

    /// Our id in the room.
    pub fn my_id(&self) -> u16 {
        self.my_id
    }

    /// Forget a sender who left (ids are never reused, so nothing can replay into it).
    pub fn forget(&mut self, id: u16) {
        self.last.remove(&id);
    }

    /// Check a message with its sender's key (`None` when the sender is not in the room),
    /// then decrypt our copy. In order: reflected, unknown sender, signature, sequence
    /// number, our copy's shape, decryption, UTF-8.
    pub fn open(
        &mut self,
        msg: &RoomMessage,
        sender_key: Option<&PeerKey>,
    ) -> Result<String, SecurityError> {
        if msg.sender == self.my_id {
            return Err(SecurityError::Reflected);
        }
        let key = sender_key
            .ok_or(SecurityError::BadSignature("room message (from someone not in the room)"))?;
        check_signed(&self.room_id, key, self.last.get(&msg.sender).copied(), msg)?;
        self.last.insert(msg.sender, msg.seq);
        decrypt_copy(&self.me, self.my_id, msg)
    }
}

/// Decrypt `my_id`'s copy of a message already checked (by [`RoomOpener::open`], or by the
/// relay's [`SenderCheck`]): its shape, then every block, then UTF-8 of at most 4 KiB.
pub fn decrypt_copy(me: &Identity, my_id: u16, msg: &RoomMessage) -> Result<String, SecurityError> {
    let want = me.public().size();
    let Some(Copy { body: CopyBody::Cipher { block_len, blocks }, .. }) = msg.copy_for(my_id)
    else {
        return Err(SecurityError::Local("a room message without our copy".into()));
    };
    if usize::from(*block_len) != want {
        return Err(SecurityError::BlockSize { got: usize::from(*block_len), want });
    }
    let count = blocks.len() / want;
    if count > MAX_ROOM_BLOCKS {
        return Err(SecurityError::TooManyBlocks(count));
    }
    let mut text = Vec::with_capacity(blocks.len());
    for (i, piece) in me.decrypt_blocks(blocks, want).into_iter().enumerate() {
        text.extend_from_slice(&piece.map_err(|_| SecurityError::Decrypt(i))?);
    }
    if text.len() > MAX_ROOM_TEXT {
        return Err(SecurityError::TooLong(text.len()));
    }
    String::from_utf8(text).map_err(|_| SecurityError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<Arc<Identity>> {
        (0..n).map(|_| Arc::new(Identity::generate(1024).unwrap())).collect()
    }

    #[test]
    fn each_recipient_opens_its_copy_and_the_relay_checks_without_reading() {
        let ids = keys(3);
        let room = [7u8; 32];
        let to: Vec<(u16, &PeerKey)> = vec![(2, ids[2].public()), (0, ids[0].public())];
        let msg = seal(&ids[1], &room, 1, 0, false, &to, "hello room").unwrap();
        assert_eq!(msg.copies.iter().map(|c| c.recipient).collect::<Vec<_>>(), [0, 2]);
        let mut relay = SenderCheck::new(room, 1, ids[1].public().clone());
        relay.check(&msg).unwrap();
        assert!(matches!(relay.check(&msg), Err(SecurityError::Replayed { .. })));
        for id in [0u16, 2] {
            let mut opener = RoomOpener::new(room, ids[usize::from(id)].clone(), id);
            let relayed = msg.for_recipient(id);
            assert_eq!(opener.open(&relayed, Some(ids[1].public())).unwrap(), "hello room");
            assert!(matches!(
                opener.open(&relayed, Some(ids[1].public())),
                Err(SecurityError::Replayed { .. })
            ));
        }
    }

    #[test]
    fn forged_reflected_and_misaddressed_messages_are_refused() {
        let ids = keys(3);
        let room = [9u8; 32];
        let to = [(2u16, ids[2].public())];
        let msg = seal(&ids[1], &room, 1, 4, true, &to, "secret").unwrap();
        // Checked with the relay's key instead of the sender's: refused.
        let mut opener = RoomOpener::new(room, ids[2].clone(), 2);
        assert_eq!(
            opener.open(&msg, Some(ids[0].public())),
            Err(SecurityError::BadSignature("room message"))
        );
        // Another room's id, an altered copy, a changed flag: refused.
        let mut other = RoomOpener::new([1; 32], ids[2].clone(), 2);
        assert!(other.open(&msg, Some(ids[1].public())).is_err());
        let mut altered = msg.clone();
        if let CopyBody::Cipher { blocks, .. } = &mut altered.copies[0].body {
            blocks[0] ^= 1;
        }
        assert!(opener.open(&altered, Some(ids[1].public())).is_err());
        let mut public = msg.clone();
        public.private = false;
        assert!(opener.open(&public, Some(ids[1].public())).is_err());
        // Sent back to its sender: reflected. Someone not in the copies: no copy.
        let mut sender = RoomOpener::new(room, ids[1].clone(), 1);
        assert_eq!(sender.open(&msg, Some(ids[1].public())), Err(SecurityError::Reflected));
        let mut host = RoomOpener::new(room, ids[0].clone(), 0);
        assert!(matches!(host.open(&msg, Some(ids[1].public())), Err(SecurityError::Local(_))));
        // The relay refuses a message sent in someone else's name.
        let mut relay = SenderCheck::new(room, 2, ids[2].public().clone());
        assert!(relay.check(&msg).is_err());
        // Sequence numbers may skip but never step back.
        assert_eq!(opener.open(&msg, Some(ids[1].public())).unwrap(), "secret");
        let later = seal(&ids[1], &room, 1, 9, true, &to, "later").unwrap();
        assert_eq!(opener.open(&later, Some(ids[1].public())).unwrap(), "later");
        let older = seal(&ids[1], &room, 1, 5, true, &to, "older").unwrap();
        assert!(matches!(
            opener.open(&older, Some(ids[1].public())),
            Err(SecurityError::Replayed { got: 5, expected: 10 })
        ));
    }
}
