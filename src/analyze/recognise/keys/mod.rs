//! Key material in one message's bytes: what an eavesdropper learns when a chat program sends
//! its keys over the wire.
//!
//! [`find_keys`] is handed the bytes of one message and names every key it can prove is there:
//! PEM blocks anywhere in the message (public keys, certificates, private keys), OpenSSH public
//! key lines, JSON objects carrying an RSA modulus and exponent (or a PEM block or base64 DER in
//! a string), and a whole message that is DER (bare, behind a 2- or 4-byte length prefix, or as
//! base64 text). For each it gives the kind, format, algorithm, size, rchat's fingerprint (SHA-256
//! of the public key's SubjectPublicKeyInfo DER: for an RSA key the same as `rchat fingerprint`
//! prints for it, whatever format it was written in) and, for RSA, the modulus. A key is claimed only when its bytes parse completely; a BEGIN without END, bad
//! base64 or DER with a byte too many is not a key.
//!
//! The work is bounded: at most [`MAX_SCAN`] bytes are read, at most [`MAX_KEYS`] keys kept, and
//! every format tries a bounded number of places. The module keeps nothing between calls, never
//! sees where the message lies in the stream or the capture file, and never decides whether the
//! message was readable: that is `classify`'s work, and warning about a private key the report's.
//! [`pem_span`] tells a message cutter where a PEM block that starts a message ends.

mod der;
mod json;
mod pem;
mod ssh;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::crypto::Fingerprint;

pub use pem::{MAX_PEM, PemSpan, pem_span};

/// The most bytes of a message [`find_keys`] reads: the rest is ignored.
pub const MAX_SCAN: usize = 64 * 1024;
/// The most keys [`find_keys`] returns for one message.
pub const MAX_KEYS: usize = 8;
/// The smallest RSA modulus, in bits, taken for a key (smaller numbers are too common by chance).
pub const MIN_RSA_BITS: u32 = 256;
/// The largest RSA modulus, in bits, taken for a key.
pub const MAX_RSA_BITS: u32 = 16384;
/// The most places one format may try in one message.
const MAX_TRIES: usize = 64;
/// Without a label naming the bytes an RSA key, its public exponent must fit in this many bits
/// (real ones are 3, 17 or 65537): a pair of two large integers is more often a signature.
const MAX_BARE_EXPONENT_BITS: u32 = 64;

/// Key material found in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    /// Where in the message bytes the key starts.
    pub offset: usize,
    /// How many bytes it spans: a PEM block with its BEGIN and END lines (and the END line's
    /// newline), an OpenSSH line's type and base64 (not its comment), a JSON object or string,
    /// a whole DER message with its length prefix.
    pub length: usize,
    /// Public key, certificate or private key.
    pub kind: KeyKind,
    /// How it was written.
    pub format: KeyFormat,
    /// The key's algorithm.
    pub algorithm: Algorithm,
    /// Modulus bits for RSA, `p` bits for DSA, curve size for EC; `None` where the name fixes the
    /// size (Ed25519, X25519, ...) or the key is encrypted.
    pub bits: Option<u32>,
    /// rchat's fingerprint of the public key: SHA-256 of its SubjectPublicKeyInfo DER (for a
    /// certificate its SPKI, for a private key its public half when the bytes carry or imply it,
    /// for an RSA key the SPKI encoded from `n` and `e`). `None` when the public key cannot be
    /// known from the bytes (an encrypted private key, an Ed25519 private key without its public
    /// half).
    pub fingerprint: Option<Fingerprint>,
    /// The RSA modulus `n`, big-endian without leading zeros, whenever it is known (public keys,
    /// certificates and unencrypted private keys alike).
    pub rsa_modulus: Option<Vec<u8>>,
}

/// What kind of key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// A public key: anyone may see it, but the eavesdropper now knows who talks.
    PublicKey,
    /// An X.509 certificate, which carries a public key.
    Certificate,
    /// A private key, encrypted or not: it should never travel over a network.
    PrivateKey,
}

impl KeyKind {
    /// Lowercase name for reports.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::PublicKey => "public key",
            KeyKind::Certificate => "certificate",
            KeyKind::PrivateKey => "private key",
        }
    }
}

/// How a key was written in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFormat {
    /// A PEM block with this label (`"PUBLIC KEY"`, `"RSA PUBLIC KEY"`, `"CERTIFICATE"`, ...).
    Pem {
        /// The label between `-----BEGIN ` and `-----`.
        label: &'static str,
    },
    /// An OpenSSH public key line (`ssh-rsa AAAA... comment`).
    OpenSsh,
    /// A JSON object or string.
    Json {
        /// What in the JSON held the key.
        carrier: JsonCarrier,
    },
    /// The whole message is DER, after a length prefix of `prefix` bytes (0, 2 or 4), big-endian,
    /// equal to the length of the rest.
    Der {
        /// Bytes of length prefix before the DER.
        prefix: u8,
        /// Which DER structure.
        encoding: DerEncoding,
    },
    /// The whole message (bar surrounding whitespace) is base64 of DER.
    Base64 {
        /// Which DER structure.
        encoding: DerEncoding,
    },
}

/// What in a JSON object held the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonCarrier {
    /// Members naming the RSA modulus and exponent (`n`/`e`, `modulus`/`exponent`, a JWK, ...).
    ModulusExponent,
    /// A string holding a PEM block with this label.
    Pem {
        /// The PEM label.
        label: &'static str,
    },
    /// A string holding base64 of DER.
    Base64 {
        /// Which DER structure.
        encoding: DerEncoding,
    },
}

/// A DER structure that holds a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DerEncoding {
    /// X.509 SubjectPublicKeyInfo (PEM `PUBLIC KEY`).
    Spki,
    /// PKCS#1 RSAPublicKey (PEM `RSA PUBLIC KEY`).
    Pkcs1,
    /// X.509 certificate (PEM `CERTIFICATE`).
    Certificate,
    /// PKCS#8 PrivateKeyInfo (PEM `PRIVATE KEY`).
    Pkcs8,
    /// PKCS#8 EncryptedPrivateKeyInfo (PEM `ENCRYPTED PRIVATE KEY`); only ever found in PEM.
    Pkcs8Encrypted,
    /// PKCS#1 RSAPrivateKey (PEM `RSA PRIVATE KEY`).
    Pkcs1Private,
    /// SEC 1 ECPrivateKey (PEM `EC PRIVATE KEY`).
    Sec1,
}

/// A key's algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSA (`rsaEncryption`, PKCS#1, `ssh-rsa`, a modulus and exponent).
    Rsa,
    /// RSA restricted to PSS signatures (`id-RSASSA-PSS`).
    RsaPss,
    /// Elliptic-curve key (`id-ecPublicKey`, `ecdsa-sha2-*`).
    Ec {
        /// Its curve.
        curve: Curve,
    },
    /// Ed25519.
    Ed25519,
    /// Ed448.
    Ed448,
    /// X25519.
    X25519,
    /// X448.
    X448,
    /// DSA.
    Dsa,
    /// An algorithm this module does not name (seen in a labelled structure only).
    Other,
    /// The key is encrypted, and its algorithm with it.
    Unknown,
}

impl Algorithm {
    /// Name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rsa => "RSA",
            Algorithm::RsaPss => "RSA-PSS",
            Algorithm::Ec { curve } => match curve {
                Curve::P256 => "EC P-256",
                Curve::P384 => "EC P-384",
                Curve::P521 => "EC P-521",
                Curve::Secp256k1 => "EC secp256k1",
                Curve::Other => "EC",
            },
            Algorithm::Ed25519 => "Ed25519",
            Algorithm::Ed448 => "Ed448",
            Algorithm::X25519 => "X25519",
            Algorithm::X448 => "X448",
            Algorithm::Dsa => "DSA",
            Algorithm::Other => "an unnamed algorithm",
            Algorithm::Unknown => "unknown (encrypted)",
        }
    }
}

/// An elliptic curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    /// NIST P-256 (prime256v1, nistp256).
    P256,
    /// NIST P-384 (secp384r1, nistp384).
    P384,
    /// NIST P-521 (secp521r1, nistp521).
    P521,
    /// secp256k1.
    Secp256k1,
    /// A curve not named here, or one hidden by encryption.
    Other,
}

impl Curve {
    /// The curve's size in bits.
    pub fn bits(self) -> Option<u32> {
        match self {
            Curve::P256 | Curve::Secp256k1 => Some(256),
            Curve::P384 => Some(384),
            Curve::P521 => Some(521),
            Curve::Other => None,
        }
    }

    /// Bytes of one coordinate.
    fn field_len(self) -> Option<usize> {
        self.bits().map(|b| (b as usize).div_ceil(8))
    }

    /// Whether `point` is an uncompressed or compressed SEC 1 point of this curve's size.
    fn is_point(self, point: &[u8]) -> bool {
        let Some(n) = self.field_len() else { return false };
        match point.first() {
            Some(4) => point.len() == 1 + 2 * n,
            Some(2 | 3) => point.len() == 1 + n,
            _ => false,
        }
    }
}

/// How much the surroundings already say the bytes are a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Evidence {
    /// A PEM label, JSON member names or a certificate's structure name it.
    Labelled,
    /// Nothing but the bytes' own structure does.
    Bare,
}

/// A key as one format's parser sees it, before its place in the message is known.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parsed {
    kind: KeyKind,
    algorithm: Algorithm,
    bits: Option<u32>,
    fingerprint: Option<Fingerprint>,
    rsa_modulus: Option<Vec<u8>>,
}

impl Parsed {
    fn at(self, offset: usize, length: usize, format: KeyFormat) -> KeyMaterial {
        KeyMaterial {
            offset,
            length,
            kind: self.kind,
            format,
            algorithm: self.algorithm,
            bits: self.bits,
            fingerprint: self.fingerprint,
            rsa_modulus: self.rsa_modulus,
        }
    }
}

/// The keys found so far in one message, kept in bounds and apart.
struct Found {
    keys: Vec<KeyMaterial>,
}

impl Found {
    fn full(&self) -> bool {
        self.keys.len() >= MAX_KEYS
    }

    /// Keep `key` unless the list is full or it overlaps a key already found.
    fn push(&mut self, key: KeyMaterial) {
        let end = key.offset.saturating_add(key.length);
        let overlaps = self
            .keys
            .iter()
            .any(|k| key.offset < k.offset.saturating_add(k.length) && k.offset < end);
        if !self.full() && !overlaps && key.length > 0 {
            self.keys.push(key);
        }
    }
}

/// The keys in one message, in the order they appear: at most [`MAX_KEYS`], from the first
/// [`MAX_SCAN`] bytes. Never panics, whatever the bytes.
pub fn find_keys(message: &[u8]) -> Vec<KeyMaterial> {
    let message = message.get(..MAX_SCAN).unwrap_or(message);
    let mut found = Found { keys: Vec::new() };
    pem::find(message, &mut found);
    ssh::find(message, &mut found);
    json::find(message, &mut found);
    der::find_whole(message, &mut found);
    found.keys.sort_by_key(|k| k.offset);
    found.keys
}

/// The bytes of a big-endian unsigned integer without its leading zeros.
fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or(&[])
}

/// Bits of a big-endian unsigned integer.
fn bit_len(bytes: &[u8]) -> u32 {
    let bytes = strip_zeros(bytes);
    match bytes.first() {
        None => 0,
        Some(&top) => {
            let whole = u32::try_from(bytes.len() - 1).unwrap_or(u32::MAX / 16);
            whole.saturating_mul(8).saturating_add(8 - top.leading_zeros())
        }
    }
}

/// Compare two big-endian unsigned integers.
fn compare(a: &[u8], b: &[u8]) -> Ordering {
    let (a, b) = (strip_zeros(a), strip_zeros(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// An RSA public key from its modulus and exponent, if they look like one: `n` odd and of
/// [`MIN_RSA_BITS`] to [`MAX_RSA_BITS`] bits, `e` odd, at least 3 and below `n` (and, for
/// [`Evidence::Bare`] bytes, of at most 64 bits). Its fingerprint is that of the SPKI encoded
/// from `n` and `e`, as `rchat fingerprint` computes it.
fn rsa_key(kind: KeyKind, n: &[u8], e: &[u8], evidence: Evidence) -> Option<Parsed> {
    let (n, e) = (strip_zeros(n), strip_zeros(e));
    let bits = bit_len(n);
    let odd = |x: &[u8]| x.last().is_some_and(|b| b & 1 == 1);
    let exponent_fits = evidence == Evidence::Labelled || bit_len(e) <= MAX_BARE_EXPONENT_BITS;
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits)
        || !odd(n)
        || !odd(e)
        || bit_len(e) < 2
        || compare(e, n) != Ordering::Less
        || !exponent_fits
    {
        return None;
    }
    let spki = der::rsa_spki(n, e)?;
    Some(Parsed {
        kind,
        algorithm: Algorithm::Rsa,
        bits: Some(bits),
        fingerprint: Some(Fingerprint::of_spki(&spki)),
        rsa_modulus: Some(n.to_vec()),
    })
}

/// Base64 decoding that takes padding or its absence.
const fn lenient(alphabet: &'static alphabet::Alphabet) -> GeneralPurpose {
    GeneralPurpose::new(
        alphabet,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}
const BASE64: GeneralPurpose = lenient(&alphabet::STANDARD);
const BASE64_URL: GeneralPurpose = lenient(&alphabet::URL_SAFE);

/// Decode standard base64, skipping ASCII whitespace; `None` if any other byte is not base64.
fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    let mut clean = Vec::with_capacity(text.len());
    for &b in text {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=' => clean.push(b),
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => return None,
        }
    }
    BASE64.decode(&clean).ok().filter(|d| !d.is_empty())
}
