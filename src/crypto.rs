//! Keys and the RSA operations the encrypted chat uses: key generation, key files,
//! fingerprints, RSA-OAEP-SHA256 encryption split over blocks, and RSA-PSS-SHA256 signatures.
//!
//! This module owns every call into the `rsa` crate, so the choice of padding lives in one
//! place: OAEP for encryption and PSS for signatures. It never uses PKCS#1 v1.5 and never
//! prints anything: the `keygen` and `fingerprint` commands (in `cmd`) print what it returns.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::sha2::{Digest, Sha256};
use rsa::traits::PublicKeyParts;
use rsa::{PrivateKey, PublicKey};

/// Smallest key accepted without `--allow-weak-keys`.
pub const MIN_STRONG_BITS: usize = 2048;
/// Smallest key accepted at all (the size the original program used).
pub const MIN_WEAK_BITS: usize = 1024;
/// Largest key accepted from a file or a peer.
pub const MAX_BITS: usize = 4096;
/// Bytes OAEP-SHA256 spends on padding in each block: two hashes and two bytes.
pub const OAEP_OVERHEAD: usize = 2 * 32 + 2;

/// What went wrong with a key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("cannot read key file {path}: {source}", path = .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file could not be written.
    #[error("cannot write key file {path}: {source}", path = .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `keygen` would overwrite a file.
    #[error("{path} already exists: choose another --out or add --force to replace it", path = .path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no key we understand.
    #[error("{path} is not an RSA key file ({what}): create one with `rchat keygen --out FILE`", path = .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said or what the file looks like.
        what: String,
    },
    /// A key size rchat does not offer.
    #[error("{bits}-bit keys are not offered: use 2048, 3072 or 4096 bits")]
    UnsupportedBits {
        /// The size asked for.
        bits: usize,
    },
    /// A size under 2048 bits asked for without `--allow-weak-keys`.
    #[error("{bits}-bit keys are weak: use 2048 bits or more, or add --allow-weak-keys for a lab")]
    WeakRequested {
        /// The size asked for.
        bits: usize,
    },
    /// A key under 2048 bits without `--allow-weak-keys`.
    #[error(
        "{whose} key is {bits} bits, under the 2048-bit minimum: add --allow-weak-keys to accept it for a lab"
    )]
    Weak {
        /// "our" / "the peer's" / a file name.
        whose: String,
        /// Its size.
        bits: usize,
    },
    /// The key could not be generated.
    #[error("key generation failed: {0}")]
    Generate(rsa::Error),
}

impl KeyError {
    /// Whether this error comes from the flags rather than the world (exit status 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            KeyError::UnsupportedBits { .. }
                | KeyError::WeakRequested { .. }
                | KeyError::Exists { .. }
        )
    }
}

/// The SHA-256 fingerprint of a public key: the hash of its SubjectPublicKeyInfo DER.
///
/// Printed as `SHA256:` followed by unpadded base64, the shape OpenSSH uses. It is computed
/// over the SPKI encoding, so it differs from what `ssh-keygen -l` prints for the same key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Fingerprint of a public key's SPKI DER bytes.
    pub fn of_spki(spki_der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(spki_der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHA256:{}", STANDARD_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Fingerprint {
    type Err = String;

    /// Accepts `SHA256:<43 base64 characters>` or the base64 part alone.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let b64 = s.strip_prefix("SHA256:").unwrap_or(s).trim_end_matches('=');
        let bad = || {
            format!(
                "`{s}` is not a fingerprint: expected SHA256: followed by 43 base64 characters, \
                 as `rchat fingerprint` prints"
            )
        };
        let bytes = STANDARD_NO_PAD.decode(b64).map_err(|_| bad())?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        Ok(Fingerprint(arr))
    }
}

/// A public key as it travels in a HELLO: parsed, with its DER and fingerprint.
#[derive(Clone, Debug)]
pub struct PeerKey {
    /// The parsed key.
    pub key: PublicKey,
    /// Its SubjectPublicKeyInfo DER, exactly as received.
    pub spki_der: Vec<u8>,
    /// SHA-256 of `spki_der`.
    pub fingerprint: Fingerprint,
}

impl PeerKey {
    /// Parse SPKI DER bytes received from a peer. Returns a plain reason on failure.
    pub fn from_spki(der: &[u8]) -> Result<Self, String> {
        let key = PublicKey::from_public_key_der(der).map_err(|e| e.to_string())?;
        Ok(PeerKey { key, spki_der: der.to_vec(), fingerprint: Fingerprint::of_spki(der) })
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.key.size() * 8
    }

    /// Modulus size in bytes: the length of every ciphertext block and signature.
    pub fn size(&self) -> usize {
        self.key.size()
    }

    /// Largest plaintext one OAEP-SHA256 block carries under this key.
    pub fn block_capacity(&self) -> usize {
        self.size().saturating_sub(OAEP_OVERHEAD)
    }

    /// Encrypt `msg` with OAEP-SHA256, split into as many blocks as it needs (at least one).
    pub fn encrypt_blocks(&self, msg: &[u8]) -> Result<Vec<Vec<u8>>, rsa::Error> {
        let cap = self.block_capacity().max(1);
        if msg.is_empty() {
            return Ok(vec![self.key.oaep_encrypt::<Sha256>(msg)?]);
        }
        msg.chunks(cap).map(|chunk| self.key.oaep_encrypt::<Sha256>(chunk)).collect()
    }

    /// Check an RSA-PSS-SHA256 signature over `data`.
    pub fn verify(&self, data: &[u8], signature: &[u8]) -> bool {
        self.key.pss_verify::<Sha256>(data, signature).is_ok()
    }
}

/// Our own key pair for a session.
#[derive(Debug)]
pub struct Identity {
    private: PrivateKey,
    public: PeerKey,
}

impl Identity {
    /// Wrap a private key, computing its public half and fingerprint.
    pub fn new(private: PrivateKey) -> Result<Self, KeyError> {
        let public_key = private.to_public_key();
        let der = public_key
            .to_public_key_der()
            .map_err(|e| KeyError::Generate(rsa::Error::Pkcs8(e.into())))?;
        let spki_der = der.as_bytes().to_vec();
        let fingerprint = Fingerprint::of_spki(&spki_der);
        Ok(Identity { private, public: PeerKey { key: public_key, spki_der, fingerprint } })
    }

    /// Generate a fresh key of `bits` bits (already checked with [`check_bits`]).
    pub fn generate(bits: usize) -> Result<Self, KeyError> {
        let private = PrivateKey::new(&mut rand::rng(), bits).map_err(KeyError::Generate)?;
        Identity::new(private)
    }

    /// Load a private key file, PKCS#8 or PKCS#1, PEM or DER.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let bytes = read_key_file(path)?;
        let private = parse_private_key(&bytes)
            .ok_or_else(|| KeyError::Parse { path: path.to_owned(), what: describe(&bytes) })?;
        let bits = private.size() * 8;
        if !(MIN_WEAK_BITS..=MAX_BITS).contains(&bits) {
            return Err(KeyError::Parse {
                path: path.to_owned(),
                what: format!("a {bits}-bit key; rchat uses 1024 to 4096 bits"),
            });
        }
        Identity::new(private)
    }

    /// Our public key, as the peer will see it.
    pub fn public(&self) -> &PeerKey {
        &self.public
    }

    /// Decrypt one OAEP-SHA256 block sent to us.
    pub fn decrypt_block(&self, block: &[u8]) -> Result<Vec<u8>, rsa::Error> {
        self.private.oaep_decrypt::<Sha256>(block)
    }

    /// Decrypt consecutive OAEP blocks of `block_len` bytes each, one result per block, in
    /// order. A long message is hundreds of blocks, so they are shared out over as many
    /// threads as the machine has cores.
    pub fn decrypt_blocks(
        &self,
        blocks: &[u8],
        block_len: usize,
    ) -> Vec<Result<Vec<u8>, rsa::Error>> {
        let blocks: Vec<&[u8]> = blocks.chunks(block_len.max(1)).collect();
        let threads = if blocks.len() <= 1 { 1 } else { crate::cores().min(blocks.len()) };
        if threads <= 1 {
            return blocks.iter().map(|b| self.decrypt_block(b)).collect();
        }
        let share = blocks.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let workers: Vec<_> = blocks
                .chunks(share)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter().map(|b| self.decrypt_block(b)).collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect()
        })
    }

    /// Sign `data` with RSA-PSS-SHA256.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, rsa::Error> {
        self.private.pss_sign::<Sha256>(data)
    }

    /// The private key as PKCS#8 PEM.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        self.private
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|e| KeyError::Generate(rsa::Error::Pkcs8(e)))
    }
}

/// Check a key size asked for on the command line.
pub fn check_bits(bits: usize, allow_weak: bool) -> Result<(), KeyError> {
    match bits {
        2048 | 3072 | 4096 => Ok(()),
        1024 if allow_weak => Ok(()),
        1024 => Err(KeyError::WeakRequested { bits }),
        _ => Err(KeyError::UnsupportedBits { bits }),
    }
}

/// Refuse a key under 2048 bits unless weak keys are allowed.
pub fn check_strength(whose: &str, bits: usize, allow_weak: bool) -> Result<(), KeyError> {
    if bits < MIN_STRONG_BITS && !allow_weak {
        return Err(KeyError::Weak { whose: whose.into(), bits });
    }
    Ok(())
}

/// Key files are small; anything larger than this is not a key.
const MAX_KEY_FILE: u64 = 64 * 1024;

fn read_key_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    let meta = fs::metadata(path).map_err(|source| KeyError::Read { path: path.into(), source })?;
    if meta.is_dir() {
        return Err(KeyError::Parse { path: path.into(), what: "a directory".into() });
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(KeyError::Parse {
            path: path.into(),
            what: format!("{} bytes, far too large for a key", meta.len()),
        });
    }
    fs::read(path).map_err(|source| KeyError::Read { path: path.into(), source })
}

fn parse_private_key(bytes: &[u8]) -> Option<PrivateKey> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        if let Ok(k) = PrivateKey::from_pkcs8_pem(text) {
            return Some(k);
        }
        if let Ok(k) = PrivateKey::from_pkcs1_pem(text) {
            return Some(k);
        }
    }
    PrivateKey::from_pkcs8_der(bytes).or_else(|_| PrivateKey::from_pkcs1_der(bytes)).ok()
}

fn parse_public_key(bytes: &[u8]) -> Option<PublicKey> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        if let Ok(k) = PublicKey::from_public_key_pem(text) {
            return Some(k);
        }
        if let Ok(k) = PublicKey::from_pkcs1_pem(text) {
            return Some(k);
        }
    }
    PublicKey::from_public_key_der(bytes).or_else(|_| PublicKey::from_pkcs1_der(bytes)).ok()
}

/// A short description of what a file that is not a key seems to be.
fn describe(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "the file is empty".into();
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => match text.lines().find(|l| l.starts_with("-----BEGIN ")) {
            Some(line) => format!("unreadable or unsupported {}", line.trim_matches('-').trim()),
            None => "no PEM block found".into(),
        },
        Err(_) => "not PEM, and not a DER key".into(),
    }
}

/// Write a private key readable only by its owner (mode 0600 where the system has modes).
pub fn write_private_key(path: &Path, pem: &str) -> std::io::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path)?;
    #[cfg(unix)]
    {
        // An existing file (--force) keeps its old mode through open(): set it again.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(pem.as_bytes())?;
    file.sync_all()
}

/// The fingerprint of a private or public key file, PEM or DER.
pub fn fingerprint_of_file(path: &Path) -> Result<(Fingerprint, usize), KeyError> {
    let bytes = read_key_file(path)?;
    let public = match parse_private_key(&bytes) {
        Some(private) => private.to_public_key(),
        None => parse_public_key(&bytes)
            .ok_or_else(|| KeyError::Parse { path: path.to_owned(), what: describe(&bytes) })?,
    };
    let der = public
        .to_public_key_der()
        .map_err(|e| KeyError::Parse { path: path.to_owned(), what: e.to_string() })?;
    Ok((Fingerprint::of_spki(der.as_bytes()), public.size() * 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_round_trips_through_text() {
        let fp = Fingerprint::of_spki(b"not really a key");
        let text = fp.to_string();
        assert!(text.starts_with("SHA256:"));
        assert_eq!(text.len(), 7 + 43);
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(text[7..].parse::<Fingerprint>().unwrap(), fp);
        assert!("SHA256:abc".parse::<Fingerprint>().is_err());
        assert!("".parse::<Fingerprint>().is_err());
    }

    #[test]
    fn bits_are_checked() {
        assert!(check_bits(2048, false).is_ok());
        assert!(check_bits(4096, false).is_ok());
        assert!(matches!(check_bits(1024, false), Err(KeyError::WeakRequested { .. })));
        assert!(check_bits(1024, true).is_ok());
        assert!(matches!(check_bits(1000, true), Err(KeyError::UnsupportedBits { .. })));
    }

    #[test]
    fn blocks_split_and_decrypt() {
        let id = Identity::generate(1024).unwrap();
        let msg: Vec<u8> = (0..200u8).collect();
        let blocks = id.public().encrypt_blocks(&msg).unwrap();
        assert_eq!(blocks.len(), 200usize.div_ceil(128 - OAEP_OVERHEAD));
        let mut out = Vec::new();
        for b in &blocks {
            assert_eq!(b.len(), 128);
            out.extend(id.decrypt_block(b).unwrap());
        }
        assert_eq!(out, msg);
        assert_eq!(id.public().encrypt_blocks(b"").unwrap().len(), 1);
    }

    #[test]
    fn blocks_decrypt_in_order_whatever_the_threads() {
        let id = Identity::generate(1024).unwrap();
        let text: Vec<u8> = (0..62 * 6 + 5).map(|i| (i % 251) as u8).collect();
        let mut blocks = id.public().encrypt_blocks(&text).unwrap().concat();
        assert_eq!(blocks.len(), 7 * 128);
        let plain: Vec<u8> =
            id.decrypt_blocks(&blocks, 128).into_iter().flat_map(|piece| piece.unwrap()).collect();
        assert_eq!(plain, text);
        // A damaged block fails on its own, in its own place.
        blocks[4 * 128 + 9] ^= 1;
        let results = id.decrypt_blocks(&blocks, 128);
        let failed: Vec<usize> = (0..results.len()).filter(|&i| results[i].is_err()).collect();
        assert_eq!(failed, [4]);
    }

    #[test]
    fn pss_signature_checks() {
        let id = Identity::generate(1024).unwrap();
        let sig = id.sign(b"transcript").unwrap();
        assert!(id.public().verify(b"transcript", &sig));
        assert!(!id.public().verify(b"transcripT", &sig));
        assert!(!id.public().verify(b"transcript", &sig[1..]));
    }

    #[test]
    fn pem_round_trip_keeps_fingerprint() {
        let id = Identity::generate(1024).unwrap();
        let pem = id.to_pem().unwrap();
        let back = parse_private_key(pem.as_bytes()).unwrap();
        assert_eq!(Identity::new(back).unwrap().public().fingerprint, id.public().fingerprint);
        assert_eq!(describe(b""), "the file is empty");
        assert_eq!(describe(b"hello"), "no PEM block found");
    }
}
