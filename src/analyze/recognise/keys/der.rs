//! DER structures that hold keys (SPKI, PKCS#1, X.509, PKCS#8, SEC 1), decoded with the `der`
//! crate's checked readers, and a whole message that is one of them.
//!
//! Every decode is exact: the structure's length must be the bytes' length, so bytes that are
//! not DER, or hold a byte more, are never a key.

use rsa::pkcs1::{RsaPrivateKeyRef, RsaPublicKeyRef};
use rsa::pkcs8::PrivateKeyInfoRef;
use rsa::pkcs8::der::asn1::{AnyRef, BitStringRef, ObjectIdentifier, OctetStringRef, UintRef};
use rsa::pkcs8::der::{self, Decode, Encode, Header, Reader, SliceReader, Tag, Tagged};
use rsa::pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

use super::{
    Algorithm, Curve, DerEncoding, Evidence, Found, KeyFormat, KeyKind, MAX_SCAN, Parsed, rsa_key,
};
use crate::crypto::Fingerprint;

const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const DSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10040.4.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const ED448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.113");
const X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");
const X448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.111");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const SECP256K1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.10");

/// The DER structures a bare message may be, most common first (an encrypted PKCS#8 key is
/// too loose a shape to claim without its PEM label).
const BARE: [DerEncoding; 6] = [
    DerEncoding::Spki,
    DerEncoding::Pkcs1,
    DerEncoding::Certificate,
    DerEncoding::Pkcs8,
    DerEncoding::Pkcs1Private,
    DerEncoding::Sec1,
];

/// The fewest base64 characters a whole-message base64 key may have (a 256-bit PKCS#1 key
/// is about 60).
const MIN_BASE64: usize = 56;

/// The key in `der` if it is exactly the structure `encoding`.
pub(super) fn parse(encoding: DerEncoding, der: &[u8], evidence: Evidence) -> Option<Parsed> {
    match encoding {
        DerEncoding::Spki => {
            let spki = SubjectPublicKeyInfoRef::from_der(der).ok()?;
            from_spki(&spki, der, KeyKind::PublicKey, evidence)
        }
        DerEncoding::Pkcs1 => {
            let key = RsaPublicKeyRef::from_der(der).ok()?;
            rsa_key(
                KeyKind::PublicKey,
                key.modulus.as_bytes(),
                key.public_exponent.as_bytes(),
                evidence,
            )
        }
        DerEncoding::Certificate => {
            let raw = certificate_spki(der)?;
            let spki = SubjectPublicKeyInfoRef::from_der(raw).ok()?;
            from_spki(&spki, raw, KeyKind::Certificate, Evidence::Labelled)
        }
        DerEncoding::Pkcs8 => pkcs8(der, evidence),
        DerEncoding::Pkcs8Encrypted => {
            (evidence == Evidence::Labelled).then(|| encrypted_pkcs8(der)).flatten()
        }
        DerEncoding::Pkcs1Private => {
            let key = RsaPrivateKeyRef::from_der(der).ok()?;
            rsa_key(
                KeyKind::PrivateKey,
                key.modulus.as_bytes(),
                key.public_exponent.as_bytes(),
                evidence,
            )
        }
        DerEncoding::Sec1 => {
            let (curve, point) = sec1(der)?;
            let curve = curve?;
            if evidence == Evidence::Bare && curve_of(curve) == Curve::Other {
                return None;
            }
            ec_private(curve, point)
        }
    }
}

/// The key in a SubjectPublicKeyInfo (`raw` is its DER).
fn from_spki(
    spki: &SubjectPublicKeyInfoRef<'_>,
    raw: &[u8],
    kind: KeyKind,
    evidence: Evidence,
) -> Option<Parsed> {
    let key = spki.subject_public_key.as_bytes()?;
    let params = spki.algorithm.parameters;
    let named = |algorithm, bits| {
        Some(Parsed {
            kind,
            algorithm,
            bits,
            fingerprint: Some(Fingerprint::of_spki(raw)),
            rsa_modulus: None,
        })
    };
    match spki.algorithm.oid {
        RSA => {
            if params.is_some_and(|p| !p.is_null()) {
                return None;
            }
            let rsa = RsaPublicKeyRef::from_der(key).ok()?;
            rsa_key(kind, rsa.modulus.as_bytes(), rsa.public_exponent.as_bytes(), evidence)
        }
        RSA_PSS => {
            let rsa = RsaPublicKeyRef::from_der(key).ok()?;
            let mut parsed =
                rsa_key(kind, rsa.modulus.as_bytes(), rsa.public_exponent.as_bytes(), evidence)?;
            parsed.algorithm = Algorithm::RsaPss;
            parsed.fingerprint = Some(Fingerprint::of_spki(raw));
            Some(parsed)
        }
        EC => {
            let curve = curve_of(spki.algorithm.parameters_oid().ok()?);
            if curve == Curve::Other {
                return (evidence == Evidence::Labelled && !key.is_empty())
                    .then(|| named(Algorithm::Ec { curve }, None))
                    .flatten();
            }
            if !curve.is_point(key) {
                return None;
            }
            named(Algorithm::Ec { curve }, curve.bits())
        }
        ED25519 | X25519 | ED448 | X448 => {
            let (algorithm, len) = edwards(spki.algorithm.oid)?;
            (params.is_none() && key.len() == len).then(|| named(algorithm, None)).flatten()
        }
        DSA => {
            let y = UintRef::from_der(key).ok()?;
            let bits = match params {
                Some(p) => Some(dsa_p_bits(p)?),
                None => None,
            };
            (!y.is_empty()).then(|| named(Algorithm::Dsa, bits)).flatten()
        }
        _ => (evidence == Evidence::Labelled && !key.is_empty())
            .then(|| named(Algorithm::Other, None))
            .flatten(),
    }
}

/// The Edwards and Montgomery curves: their algorithm and the length of a public key.
fn edwards(oid: ObjectIdentifier) -> Option<(Algorithm, usize)> {
    match oid {
        ED25519 => Some((Algorithm::Ed25519, 32)),
        X25519 => Some((Algorithm::X25519, 32)),
        ED448 => Some((Algorithm::Ed448, 57)),
        X448 => Some((Algorithm::X448, 56)),
        _ => None,
    }
}

/// The curve an OID names.
fn curve_of(oid: ObjectIdentifier) -> Curve {
    match oid {
        P256 => Curve::P256,
        P384 => Curve::P384,
        P521 => Curve::P521,
        SECP256K1 => Curve::Secp256k1,
        _ => Curve::Other,
    }
}

/// The OID of a named curve.
pub(super) fn curve_oid(curve: Curve) -> Option<ObjectIdentifier> {
    match curve {
        Curve::P256 => Some(P256),
        Curve::P384 => Some(P384),
        Curve::P521 => Some(P521),
        Curve::Secp256k1 => Some(SECP256K1),
        Curve::Other => None,
    }
}

/// Bits of `p` in DSA parameters `SEQUENCE { p, q, g }`.
fn dsa_p_bits(params: AnyRef<'_>) -> Option<u32> {
    if params.tag() != Tag::Sequence {
        return None;
    }
    let mut r = SliceReader::new(params.value()).ok()?;
    let p = UintRef::decode(&mut r).ok()?;
    UintRef::decode(&mut r).ok()?;
    UintRef::decode(&mut r).ok()?;
    r.finish().ok()?;
    Some(super::bit_len(p.as_bytes()))
}

/// The raw SubjectPublicKeyInfo inside an X.509 certificate.
///
/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }` and
/// `TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
/// validity, subject, subjectPublicKeyInfo, ... }`.
fn certificate_spki(der: &[u8]) -> Option<&[u8]> {
    let mut r = SliceReader::new(der).ok()?;
    let tbs = r
        .sequence(|cert| {
            let tbs = cert.tlv_bytes()?;
            AlgorithmIdentifierRef::decode(cert)?;
            BitStringRef::decode(cert)?;
            Ok::<_, der::Error>(tbs)
        })
        .ok()?;
    r.finish().ok()?;
    let mut r = SliceReader::new(tbs).ok()?;
    let spki = r
        .sequence(|tbs| {
            if tbs.peek_byte() == Some(0xA0) {
                tbs.tlv_bytes()?;
            }
            let serial = AnyRef::decode(tbs)?;
            serial.tag().assert_eq(Tag::Integer)?;
            AlgorithmIdentifierRef::decode(tbs)?;
            for _ in 0..3 {
                // issuer, validity, subject
                AnyRef::decode(tbs)?.tag().assert_eq(Tag::Sequence)?;
            }
            let spki = tbs.tlv_bytes()?;
            // issuerUniqueID, subjectUniqueID, extensions: at most three more fields.
            for _ in 0..3 {
                if !tbs.is_finished() {
                    tbs.tlv_bytes()?;
                }
            }
            Ok::<_, der::Error>(spki)
        })
        .ok()?;
    r.finish().ok()?;
    Some(spki)
}

/// A PKCS#8 PrivateKeyInfo.
fn pkcs8(der: &[u8], evidence: Evidence) -> Option<Parsed> {
    let info = PrivateKeyInfoRef::from_der(der).ok()?;
    let private = info.private_key.as_bytes();
    let public = info.public_key.and_then(|p| p.as_bytes());
    let oid = info.algorithm.oid;
    let private_key = |algorithm, bits, fingerprint| {
        Some(Parsed { kind: KeyKind::PrivateKey, algorithm, bits, fingerprint, rsa_modulus: None })
    };
    match oid {
        RSA | RSA_PSS => {
            let key = RsaPrivateKeyRef::from_der(private).ok()?;
            let mut parsed = rsa_key(
                KeyKind::PrivateKey,
                key.modulus.as_bytes(),
                key.public_exponent.as_bytes(),
                evidence,
            )?;
            if oid == RSA_PSS {
                // The SPKI of a PSS key carries PSS parameters this module does not rebuild.
                parsed.algorithm = Algorithm::RsaPss;
                parsed.fingerprint = None;
            }
            Some(parsed)
        }
        EC => {
            let (inner, point) = sec1(private)?;
            let curve = match (info.algorithm.parameters_oid().ok(), inner) {
                (Some(a), Some(b)) if a != b => return None,
                (Some(c), _) | (None, Some(c)) => c,
                (None, None) => return None,
            };
            ec_private(curve, point.or(public))
        }
        ED25519 | X25519 | ED448 | X448 => {
            let (algorithm, len) = edwards(oid)?;
            let secret = <&OctetStringRef>::from_der(private).ok()?;
            if info.algorithm.parameters.is_some() || secret.as_bytes().len() != len {
                return None;
            }
            let fingerprint = match public {
                Some(p) if p.len() == len => Some(Fingerprint::of_spki(&spki_der(oid, None, p)?)),
                Some(_) => return None,
                None => None,
            };
            private_key(algorithm, None, fingerprint)
        }
        DSA => {
            UintRef::from_der(private).ok()?;
            let bits = dsa_p_bits(info.algorithm.parameters?)?;
            private_key(Algorithm::Dsa, Some(bits), None)
        }
        _ => (evidence == Evidence::Labelled && !private.is_empty())
            .then(|| private_key(Algorithm::Other, None, None))
            .flatten(),
    }
}

/// A SEC 1 ECPrivateKey: `SEQUENCE { version 1, privateKey OCTET STRING, [0] curve OPTIONAL,
/// [1] publicKey BIT STRING OPTIONAL }`. Gives the curve and the public point when present.
fn sec1(der: &[u8]) -> Option<(Option<ObjectIdentifier>, Option<&[u8]>)> {
    let mut r = SliceReader::new(der).ok()?;
    let found = r
        .sequence(|s| {
            let version = UintRef::decode(s)?;
            if version.as_bytes() != [1] {
                return Err(der::Error::from(Tag::Integer.value_error()));
            }
            let secret = <&OctetStringRef>::decode(s)?;
            if secret.as_bytes().is_empty() {
                return Err(der::Error::from(Tag::OctetString.length_error()));
            }
            let mut curve = None;
            if s.peek_byte() == Some(0xA0) {
                let header = Header::decode(s)?;
                curve = Some(s.read_nested(header.length(), ObjectIdentifier::decode)?);
            }
            let mut point = None;
            if s.peek_byte() == Some(0xA1) {
                let header = Header::decode(s)?;
                point = Some(s.read_nested(header.length(), BitStringRef::decode)?);
            }
            Ok::<_, der::Error>((curve, point))
        })
        .ok()?;
    r.finish().ok()?;
    let (curve, point) = found;
    let point = match point {
        Some(p) => Some(p.as_bytes()?),
        None => None,
    };
    Some((curve, point))
}

/// An EC private key of curve `curve`, with its public point if known.
fn ec_private(curve: ObjectIdentifier, point: Option<&[u8]>) -> Option<Parsed> {
    let named = curve_of(curve);
    let fingerprint = match point {
        Some(p) if named == Curve::Other || named.is_point(p) => {
            Some(Fingerprint::of_spki(&ec_spki(curve, p)?))
        }
        Some(_) => return None,
        None => None,
    };
    Some(Parsed {
        kind: KeyKind::PrivateKey,
        algorithm: Algorithm::Ec { curve: named },
        bits: named.bits(),
        fingerprint,
        rsa_modulus: None,
    })
}

/// A PKCS#8 EncryptedPrivateKeyInfo: `SEQUENCE { AlgorithmIdentifier, OCTET STRING }`.
fn encrypted_pkcs8(der: &[u8]) -> Option<Parsed> {
    let mut r = SliceReader::new(der).ok()?;
    let secret = r
        .sequence(|s| {
            AlgorithmIdentifierRef::decode(s)?;
            <&OctetStringRef>::decode(s)
        })
        .ok()?;
    r.finish().ok()?;
    (!secret.as_bytes().is_empty()).then_some(Parsed {
        kind: KeyKind::PrivateKey,
        algorithm: Algorithm::Unknown,
        bits: None,
        fingerprint: None,
        rsa_modulus: None,
    })
}

/// SubjectPublicKeyInfo DER for an algorithm, its parameters and its key bytes.
fn spki_der(oid: ObjectIdentifier, parameters: Option<AnyRef<'_>>, key: &[u8]) -> Option<Vec<u8>> {
    let spki = SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef { oid, parameters },
        subject_public_key: BitStringRef::from_bytes(key).ok()?,
    };
    spki.to_der().ok()
}

/// The SPKI of an RSA key, as `rchat fingerprint` encodes it: `rsaEncryption`, NULL
/// parameters, and the PKCS#1 RSAPublicKey of `n` and `e`.
pub(super) fn rsa_spki(n: &[u8], e: &[u8]) -> Option<Vec<u8>> {
    let pkcs1 = rsa::pkcs1::RsaPublicKey {
        modulus: UintRef::new(n).ok()?,
        public_exponent: UintRef::new(e).ok()?,
    }
    .to_der()
    .ok()?;
    spki_der(RSA, Some(AnyRef::NULL), &pkcs1)
}

/// The SPKI of an EC public point on the curve `curve`.
pub(super) fn ec_spki(curve: ObjectIdentifier, point: &[u8]) -> Option<Vec<u8>> {
    let params = AnyRef::new(Tag::ObjectIdentifier, curve.as_bytes()).ok()?;
    spki_der(EC, Some(params), point)
}

/// The SPKI of an Ed25519 public key.
pub(super) fn ed25519_spki(key: &[u8]) -> Option<Vec<u8>> {
    (key.len() == 32).then(|| spki_der(ED25519, None, key)).flatten()
}

/// Whether a whole message is one DER key: bare, after a 2- or 4-byte big-endian length prefix
/// equal to the rest, or as base64 text.
pub(super) fn find_whole(message: &[u8], found: &mut Found) {
    if found.full() || message.len() >= MAX_SCAN {
        return;
    }
    let len = message.len();
    let after_prefix = |n: usize| {
        let (head, body) = message.split_at_checked(n)?;
        let declared = head.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        (declared == body.len() as u64).then_some(body)
    };
    for (prefix, body) in [(0u8, Some(message)), (2, after_prefix(2)), (4, after_prefix(4))] {
        if let Some((encoding, parsed)) = body.and_then(bare) {
            found.push(parsed.at(0, len, KeyFormat::Der { prefix, encoding }));
            return;
        }
    }
    let start = message.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(len);
    let end = message.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    let text = message.get(start..end).unwrap_or(&[]);
    if text.len() >= MIN_BASE64
        && text.first() == Some(&b'M')
        && let Some((encoding, parsed)) = super::decode_base64(text).as_deref().and_then(bare)
    {
        found.push(parsed.at(start, text.len(), KeyFormat::Base64 { encoding }));
    }
}

/// The key in bytes that are exactly one DER key structure, with nothing to name them.
pub(super) fn bare(der: &[u8]) -> Option<(DerEncoding, Parsed)> {
    if der.first() != Some(&0x30) {
        return None;
    }
    BARE.iter().find_map(|&e| parse(e, der, Evidence::Bare).map(|p| (e, p)))
}

/// Base64 text that is exactly one DER key (for a JSON string).
pub(super) fn bare_base64(text: &[u8]) -> Option<(DerEncoding, Parsed)> {
    if text.len() < MIN_BASE64 || text.first() != Some(&b'M') {
        return None;
    }
    let der = super::decode_base64(text).or_else(|| {
        use base64::Engine;
        super::BASE64_URL.decode(text).ok()
    })?;
    bare(&der)
}
