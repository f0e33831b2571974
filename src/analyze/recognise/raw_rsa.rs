//! Raw RSA, measured: whether each ciphertext message of a direction is exactly one RSA block,
//! as in the program this project grew out of (every message the RSA encryption of the typed
//! text alone, no symmetric cipher, one block per message).
//!
//! Sees only what the other stages kept: each message's length, first bytes and verdict, and
//! the RSA keys the other direction sent in the clear. A block of a key is exactly as long as
//! its modulus and, read as a number, below it; when the recipient's key was seen, every
//! message must pass both tests against it. It never reads bytes itself and never changes a
//! verdict: it names what an eavesdropper still learns (how many messages, their size, when).

use super::keys::{Algorithm, KeyMaterial};
use crate::crypto::Fingerprint;

/// The sizes of RSA blocks looked for: 1024-, 2048-, 3072- and 4096-bit keys.
pub const BLOCK_SIZES: [u64; 4] = [128, 256, 384, 512];

/// The ciphertext messages of a direction are each one RSA block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRsa {
    /// Bytes of each block (the modulus size).
    pub block_bytes: u64,
    /// How many messages, each one block.
    pub messages: u64,
    /// The recipient's key the blocks fit (as long as its modulus and below it), when it was
    /// seen on the wire.
    pub key: Option<(Fingerprint, u32)>,
}

/// One message as [`one_block_per_message`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Block<'a> {
    /// Its length in bytes.
    pub length: u64,
    /// Its first bytes.
    pub head: &'a [u8],
}

/// Whether every message in `blocks` (the direction's ciphertext messages, at least one) is
/// one RSA block, and to which of `recipient_keys` (the keys the other side sent). When the
/// recipient sent RSA keys and none fits every block, the messages are not raw RSA to it:
/// `None`.
pub fn one_block_per_message(
    blocks: &[Block<'_>],
    recipient_keys: &[&KeyMaterial],
) -> Option<RawRsa> {
    let size = blocks.first()?.length;
    if !BLOCK_SIZES.contains(&size) || blocks.iter().any(|b| b.length != size) {
        return None;
    }
    let rsa: Vec<&KeyMaterial> = recipient_keys
        .iter()
        .copied()
        .filter(|k| matches!(k.algorithm, Algorithm::Rsa) && k.rsa_modulus.is_some())
        .collect();
    let fits = |k: &KeyMaterial| {
        let Some(n) = &k.rsa_modulus else { return false };
        n.len() as u64 == size && blocks.iter().all(|b| below(b.head, n))
    };
    let key = rsa.iter().find(|k| fits(k));
    if !rsa.is_empty() && key.is_none() {
        return None;
    }
    Some(RawRsa {
        block_bytes: size,
        messages: blocks.len() as u64,
        key: key.and_then(|k| Some((k.fingerprint?, k.bits?))),
    })
}

/// Whether a number whose first bytes are `head` (big-endian, as long as `n`) may be below
/// `n`: it is not when its first bytes already exceed `n`'s.
fn below(head: &[u8], n: &[u8]) -> bool {
    let len = head.len().min(n.len());
    match (head.get(..len), n.get(..len)) {
        (Some(h), Some(m)) => h <= m,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::recognise::keys::find_keys;

    fn key(pem: &str) -> KeyMaterial {
        find_keys(pem.as_bytes()).into_iter().next().expect("a key")
    }

    #[test]
    fn blocks_of_the_recipients_key_are_named() {
        let pem = std::fs::read_to_string("tests/data/peers/original-rsa-1024-host.pem").unwrap();
        let k = key(&pem);
        let n = k.rsa_modulus.clone().unwrap();
        assert_eq!(n.len(), 128);
        let low = [0x01u8; 8];
        let blocks = [Block { length: 128, head: &low }, Block { length: 128, head: &low }];
        let found = one_block_per_message(&blocks, &[&k]).unwrap();
        assert_eq!(found.block_bytes, 128);
        assert_eq!(found.messages, 2);
        assert_eq!(found.key.as_ref().map(|(_, bits)| *bits), Some(1024));
        // A block above the modulus cannot be RSA to that key.
        let high = [0xffu8; 8];
        let blocks = [Block { length: 128, head: &low }, Block { length: 128, head: &high }];
        assert_eq!(one_block_per_message(&blocks, &[&k]), None);
        // Without the key, the size alone says so.
        let blocks = [Block { length: 128, head: &high }];
        let found = one_block_per_message(&blocks, &[]).unwrap();
        assert_eq!(found.key, None);
    }

    #[test]
    fn other_sizes_are_not_blocks() {
        let h = [0u8; 8];
        assert_eq!(one_block_per_message(&[], &[]), None);
        assert_eq!(one_block_per_message(&[Block { length: 260, head: &h }], &[]), None);
        let mixed = [Block { length: 128, head: &h }, Block { length: 256, head: &h }];
        assert_eq!(one_block_per_message(&mixed, &[]), None);
        // A recipient's key of another size: not blocks of its key.
        let pem = std::fs::read_to_string("tests/data/peers/original-rsa-2048-host.pem").unwrap();
        let k = key(&pem);
        assert_eq!(one_block_per_message(&[Block { length: 128, head: &h }], &[&k]), None);
    }
}
