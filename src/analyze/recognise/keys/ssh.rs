//! OpenSSH keys: public key lines (`ssh-rsa AAAA... comment`) and the public half of an
//! `openssh-key-v1` private key, read from the SSH wire encoding (RFC 4251 strings and mpints)
//! with every length checked.

use memchr::memmem;

use super::{Algorithm, Curve, Evidence, Found, KeyFormat, KeyKind, MAX_TRIES, Parsed};
use crate::crypto::Fingerprint;

/// The key types read, as they open a line and the blob.
const TYPES: [&str; 5] =
    ["ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"];
/// The longest base64 blob read (a 16384-bit RSA key is under 3 KiB of base64).
const MAX_BLOB_TEXT: usize = 16 * 1024;
/// The most keys an `openssh-key-v1` file may declare.
const MAX_FILE_KEYS: u32 = 16;
const MAGIC: &[u8] = b"openssh-key-v1\0";

/// A cursor over SSH wire bytes; every read checks its length and fails rather than panic.
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*head))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        let (s, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(s)
    }

    /// A positive mpint in its one minimal encoding, without a leading zero.
    fn positive_mpint(&mut self) -> Option<&'a [u8]> {
        match self.string()? {
            [] => None,
            [0, rest @ ..] if rest.first().is_some_and(|&b| b >= 0x80) => Some(rest),
            [first, ..] if *first == 0 || *first >= 0x80 => None,
            s => Some(s),
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The key in an SSH public key blob, with its type; the blob must hold nothing more.
fn public_blob(blob: &[u8]) -> Option<(&'static str, Parsed)> {
    let mut w = Wire(blob);
    let name = w.string()?;
    let &kind = TYPES.iter().find(|t| t.as_bytes() == name)?;
    let parsed = match kind {
        "ssh-rsa" => {
            let e = w.positive_mpint()?;
            let n = w.positive_mpint()?;
            super::rsa_key(KeyKind::PublicKey, n, e, Evidence::Labelled)?
        }
        "ssh-ed25519" => {
            let key = w.string()?;
            let spki = super::der::ed25519_spki(key)?;
            public(Algorithm::Ed25519, None, &spki)
        }
        _ => {
            let (curve, id) = match kind {
                "ecdsa-sha2-nistp256" => (Curve::P256, "nistp256"),
                "ecdsa-sha2-nistp384" => (Curve::P384, "nistp384"),
                _ => (Curve::P521, "nistp521"),
            };
            if w.string()? != id.as_bytes() {
                return None;
            }
            let point = w.string()?;
            if point.first() != Some(&4) || !curve.is_point(point) {
                return None;
            }
            let spki = super::der::ec_spki(super::der::curve_oid(curve)?, point)?;
            public(Algorithm::Ec { curve }, curve.bits(), &spki)
        }
    };
    w.is_empty().then_some((kind, parsed))
}

fn public(algorithm: Algorithm, bits: Option<u32>, spki: &[u8]) -> Parsed {
    Parsed {
        kind: KeyKind::PublicKey,
        algorithm,
        bits,
        fingerprint: Some(Fingerprint::of_spki(spki)),
        rsa_modulus: None,
    }
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// Every OpenSSH public key line in a message: the key type, blanks, then the base64 blob of
/// a key of that same type.
pub(super) fn find(message: &[u8], found: &mut Found) {
    for kind in TYPES {
        for at in memmem::find_iter(message, kind.as_bytes()).take(MAX_TRIES) {
            if found.full() {
                break;
            }
            let before = at.checked_sub(1).and_then(|i| message.get(i));
            if before.is_some_and(|&b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b)) {
                continue;
            }
            let after_type = at + kind.len();
            if !matches!(message.get(after_type), Some(b' ' | b'\t')) {
                continue;
            }
            let mut start = after_type;
            while matches!(message.get(start), Some(b' ' | b'\t')) && start - after_type < 8 {
                start += 1;
            }
            let rest = message.get(start..).unwrap_or(&[]);
            let rest = rest.get(..MAX_BLOB_TEXT + 3).unwrap_or(rest);
            let mut len = rest.iter().position(|&b| !is_base64(b)).unwrap_or(rest.len());
            while len < rest.len() && rest.get(len) == Some(&b'=') && len % 4 != 0 {
                len += 1;
            }
            let text = rest.get(..len).unwrap_or(&[]);
            if !text.starts_with(b"AAAA") || text.len() > MAX_BLOB_TEXT {
                continue;
            }
            if rest.get(len).is_some_and(|&b| is_base64(b) || b == b'=') {
                continue;
            }
            let Some(blob) = super::decode_base64(text) else { continue };
            if let Some((blob_kind, parsed)) = public_blob(&blob)
                && blob_kind == kind
            {
                found.push(parsed.at(at, start + len - at, KeyFormat::OpenSsh));
            }
        }
    }
}

/// The public half of an `openssh-key-v1` private key (the body of an `OPENSSH PRIVATE KEY`
/// PEM block), which stays readable even when the private half is encrypted.
pub(super) fn private_key(body: &[u8]) -> Option<Parsed> {
    let mut w = Wire(body.strip_prefix(MAGIC)?);
    let cipher = w.string()?;
    let kdf = w.string()?;
    w.string()?; // KDF options
    let printable = |s: &[u8]| !s.is_empty() && s.len() <= 64 && s.iter().all(u8::is_ascii_graphic);
    if !printable(cipher) || !printable(kdf) || (cipher == b"none") != (kdf == b"none") {
        return None;
    }
    let count = w.u32()?;
    if !(1..=MAX_FILE_KEYS).contains(&count) {
        return None;
    }
    let (_, mut parsed) = public_blob(w.string()?)?;
    for _ in 1..count {
        w.string()?;
    }
    let private = w.string()?;
    if private.is_empty() || !private.len().is_multiple_of(8) || !w.is_empty() {
        return None;
    }
    parsed.kind = KeyKind::PrivateKey;
    Some(parsed)
}
