//! Tests on real keys made by real tools (`tests/data/keys/`, see its README), on keys put in
//! messages, and properties on random and damaged input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        ($name, include_bytes!(concat!("../../../../tests/data/keys/", $name)).as_slice())
    };
}

// Expected fingerprints: `openssl pkey -pubout -outform DER` (or `openssl rsa -RSAPublicKey_in
// -pubout -outform DER`, `ssh-keygen -e -m PKCS8 | openssl pkey -pubin -outform DER`) piped
// through `openssl dgst -sha256 -binary | base64`, computed when the fixtures were made.
const FP_RSA2048: &str = "SHA256:Zg6XU8Qleujq2XyBDPHf18cUfpieNgxBujhXszgtCKA";
const FP_RSA1024: &str = "SHA256:GuE7Thz5IdIk/PmmLPV0j/w39mlfJGmwJjL2N3kFCkw";
const FP_CERT_RSA: &str = "SHA256:y/nQnH38iwl6NDGWZMietPAIYDo6l5sKZ/DUdo1Oh/k";
const FP_EC_P256: &str = "SHA256:xi0Tvjq+ls4eYcBST92pHxpiSpwfgXltpAzf9Wj7A+w";
const FP_ED25519: &str = "SHA256:dpd4b2lrJa5bRAr/Wfv74J1/1Jc4ExLIsQ41oJgbiDc";
const FP_SSH_RSA: &str = "SHA256:sWqBTgaVXojaKYiJVBpbSx54C7OPEdAfAx8qJ/hNXGY";
const FP_SSH_ED25519: &str = "SHA256:YC1Qujjuv27rqDsWbwJxjtnrKp2rduVCFG/QIyRR6f8";
const FP_SSH_P256: &str = "SHA256:C7fr9Wh9FlW+YTVgo63P32knxNJRV60M0J/tFQ++X/c";
const FP_SSH_P384: &str = "SHA256:x+pGLgTyw4+QNjus01lNjYNccl+uA6a9qyu5VleY3UI";
const FP_SSH_P521: &str = "SHA256:wbMaMtj7P9I+aUvW4mugAYKe1IHRAgoGOXaHxz66mGk";
const FP_PY1024: &str = "SHA256:yN98kSE/XrSSD0qZvO431uLUvoA4h9MXiUSggIRliUI";
const FP_PY512: &str = "SHA256:XE6RHgksBZkXtzjx25x9veLsOSn8nKxtjG1o/b9Mj+k";

use Algorithm as A;
use KeyKind::{Certificate, PrivateKey, PublicKey};

const P256: A = A::Ec { curve: Curve::P256 };
const P384: A = A::Ec { curve: Curve::P384 };
const P521: A = A::Ec { curve: Curve::P521 };

const fn pem(label: &'static str) -> KeyFormat {
    KeyFormat::Pem { label }
}
const fn der(encoding: DerEncoding) -> KeyFormat {
    KeyFormat::Der { prefix: 0, encoding }
}
const JSON_NE: KeyFormat = KeyFormat::Json { carrier: JsonCarrier::ModulusExponent };

/// One fixture and what must be found in it.
struct Case {
    file: (&'static str, &'static [u8]),
    kind: KeyKind,
    format: KeyFormat,
    algorithm: Algorithm,
    bits: Option<u32>,
    fingerprint: Option<&'static str>,
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    let c = |file, kind, format, algorithm, bits, fingerprint| Case { file, kind, format, algorithm, bits, fingerprint };
    vec![
        c(fixture!("rsa2048.pub.pem"), PublicKey, pem("PUBLIC KEY"), A::Rsa, Some(2048), Some(FP_RSA2048)),
        c(fixture!("rsa2048.rsapub.pem"), PublicKey, pem("RSA PUBLIC KEY"), A::Rsa, Some(2048), Some(FP_RSA2048)),
        c(fixture!("rsa2048.key"), PrivateKey, pem("PRIVATE KEY"), A::Rsa, Some(2048), Some(FP_RSA2048)),
        c(fixture!("rsa2048.trad.key"), PrivateKey, pem("RSA PRIVATE KEY"), A::Rsa, Some(2048), Some(FP_RSA2048)),
        c(fixture!("rsa1024.key"), PrivateKey, pem("PRIVATE KEY"), A::Rsa, Some(1024), Some(FP_RSA1024)),
        c(fixture!("rsa1024.pub.der"), PublicKey, der(DerEncoding::Spki), A::Rsa, Some(1024), Some(FP_RSA1024)),
        c(fixture!("rsa1024.rsapub.der"), PublicKey, der(DerEncoding::Pkcs1), A::Rsa, Some(1024), Some(FP_RSA1024)),
        c(fixture!("rsa1024.enc.key"), PrivateKey, pem("ENCRYPTED PRIVATE KEY"), A::Unknown, None, None),
        c(fixture!("rsa1024.trad-enc.key"), PrivateKey, pem("RSA PRIVATE KEY"), A::Rsa, None, None),
        c(fixture!("cert-rsa2048.pem"), Certificate, pem("CERTIFICATE"), A::Rsa, Some(2048), Some(FP_CERT_RSA)),
        c(fixture!("cert-ec-p256.pem"), Certificate, pem("CERTIFICATE"), P256, Some(256), Some(FP_EC_P256)),
        c(fixture!("ec-p256.key"), PrivateKey, pem("EC PRIVATE KEY"), P256, Some(256), Some(FP_EC_P256)),
        c(fixture!("ec-p256.p8.key"), PrivateKey, pem("PRIVATE KEY"), P256, Some(256), Some(FP_EC_P256)),
        c(fixture!("ec-p256.pub.pem"), PublicKey, pem("PUBLIC KEY"), P256, Some(256), Some(FP_EC_P256)),
        c(fixture!("ed25519.key"), PrivateKey, pem("PRIVATE KEY"), A::Ed25519, None, None),
        c(fixture!("ed25519.pub.pem"), PublicKey, pem("PUBLIC KEY"), A::Ed25519, None, Some(FP_ED25519)),
        c(fixture!("ssh-rsa3072.pub"), PublicKey, KeyFormat::OpenSsh, A::Rsa, Some(3072), Some(FP_SSH_RSA)),
        c(fixture!("ssh-rsa3072"), PrivateKey, pem("OPENSSH PRIVATE KEY"), A::Rsa, Some(3072), Some(FP_SSH_RSA)),
        c(fixture!("ssh-ed25519.pub"), PublicKey, KeyFormat::OpenSsh, A::Ed25519, None, Some(FP_SSH_ED25519)),
        c(fixture!("ssh-ed25519"), PrivateKey, pem("OPENSSH PRIVATE KEY"), A::Ed25519, None, Some(FP_SSH_ED25519)),
        c(fixture!("ssh-ecdsa256.pub"), PublicKey, KeyFormat::OpenSsh, P256, Some(256), Some(FP_SSH_P256)),
        c(fixture!("ssh-ecdsa256"), PrivateKey, pem("OPENSSH PRIVATE KEY"), P256, Some(256), Some(FP_SSH_P256)),
        c(fixture!("ssh-ecdsa384.pub"), PublicKey, KeyFormat::OpenSsh, P384, Some(384), Some(FP_SSH_P384)),
        c(fixture!("ssh-ecdsa384"), PrivateKey, pem("OPENSSH PRIVATE KEY"), P384, Some(384), Some(FP_SSH_P384)),
        c(fixture!("ssh-ecdsa521.pub"), PublicKey, KeyFormat::OpenSsh, P521, Some(521), Some(FP_SSH_P521)),
        c(fixture!("ssh-ecdsa521"), PrivateKey, pem("OPENSSH PRIVATE KEY"), P521, Some(521), Some(FP_SSH_P521)),
        c(fixture!("py-rsa1024.pem"), PublicKey, pem("RSA PUBLIC KEY"), A::Rsa, Some(1024), Some(FP_PY1024)),
        c(fixture!("py-rsa1024.der"), PublicKey, der(DerEncoding::Pkcs1), A::Rsa, Some(1024), Some(FP_PY1024)),
        c(fixture!("py-rsa1024.json"), PublicKey, JSON_NE, A::Rsa, Some(1024), Some(FP_PY1024)),
        c(fixture!("py-rsa512.pem"), PublicKey, pem("RSA PUBLIC KEY"), A::Rsa, Some(512), Some(FP_PY512)),
        c(fixture!("py-rsa512.jwk.json"), PublicKey, JSON_NE, A::Rsa, Some(512), Some(FP_PY512)),
        c(fixture!("py-rsa512.hex.json"), PublicKey, JSON_NE, A::Rsa, Some(512), Some(FP_PY512)),
    ]
}

/// Where the key lies in a fixture file: all of it, but for an OpenSSH line's comment and
/// newline and the nested object of `py-rsa512.hex.json`.
fn expected_span(name: &str, bytes: &[u8]) -> (usize, usize) {
    if name.ends_with(".pub") {
        let second_space = bytes.iter().enumerate().filter(|(_, b)| **b == b' ').nth(1).unwrap().0;
        (0, second_space)
    } else if name == "py-rsa512.hex.json" {
        let start = bytes.iter().position(|&b| b == b'{').unwrap();
        let inner = start + 1 + bytes[start + 1..].iter().position(|&b| b == b'{').unwrap();
        (inner, bytes.len() - 1 - inner)
    } else {
        (0, bytes.len())
    }
}

fn one_key(bytes: &[u8]) -> KeyMaterial {
    let mut keys = find_keys(bytes);
    assert_eq!(keys.len(), 1, "{keys:#?}");
    keys.remove(0)
}

#[test]
fn real_keys_are_named() {
    for case in cases() {
        let (name, bytes) = case.file;
        let key = one_key(bytes);
        assert_eq!((key.offset, key.length), expected_span(name, bytes), "{name}");
        assert_eq!(key.kind, case.kind, "{name}");
        assert_eq!(key.format, case.format, "{name}");
        assert_eq!(key.algorithm, case.algorithm, "{name}");
        assert_eq!(key.bits, case.bits, "{name}");
        let want = case.fingerprint.map(|f| f.parse::<Fingerprint>().unwrap());
        assert_eq!(key.fingerprint, want, "{name}");
        let rsa = matches!(key.algorithm, A::Rsa) && key.bits.is_some();
        assert_eq!(key.rsa_modulus.is_some(), rsa, "{name}");
        if let Some(n) = &key.rsa_modulus {
            assert_eq!(Some(bit_len(n)), key.bits, "{name}");
            assert_ne!(n.first(), Some(&0), "{name}");
        }
    }
}

#[test]
fn fingerprints_match_rchat_fingerprint() {
    // `rchat fingerprint FILE` prints crypto::fingerprint_of_file: the same key found in a
    // message must carry the same fingerprint. (It refuses keys under 1024 bits, so the
    // 512-bit fixture is checked against openssl's fingerprint only.)
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/keys");
    for name in
        ["rsa2048.pub.pem", "rsa2048.rsapub.pem", "rsa2048.key", "rsa1024.key", "py-rsa1024.pem"]
    {
        let (fingerprint, bits) = crate::crypto::fingerprint_of_file(&dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let key = one_key(&std::fs::read(dir.join(name)).unwrap());
        assert_eq!(key.fingerprint, Some(fingerprint), "{name}");
        assert_eq!(key.bits, Some(bits as u32), "{name}");
    }
}

#[test]
fn rsa_modulus_is_the_one_the_rsa_crate_reads() {
    use rsa::pkcs8::DecodePublicKey;
    use rsa::traits::PublicKeyParts;
    let text = std::str::from_utf8(fixture!("rsa2048.pub.pem").1).unwrap();
    let n = rsa::PublicKey::from_public_key_pem(text).unwrap().n().to_be_bytes();
    let n = strip_zeros(&n);
    for name in ["rsa2048.pub.pem", "rsa2048.rsapub.pem", "rsa2048.key", "rsa2048.trad.key"] {
        let bytes = cases().into_iter().find(|c| c.file.0 == name).unwrap().file.1;
        assert_eq!(one_key(bytes).rsa_modulus.as_deref(), Some(n), "{name}");
    }
}

#[test]
fn key_in_the_middle_of_a_message() {
    let block = fixture!("rsa2048.pub.pem").1;
    let prefix = b"here is my key:\n";
    let message = [prefix.as_slice(), block, b"write back soon\n"].concat();
    let key = one_key(&message);
    assert_eq!((key.offset, key.length), (prefix.len(), block.len()));
    assert_eq!(key.fingerprint, Some(FP_RSA2048.parse().unwrap()));

    // Right after text on the same line, and with nothing after the END line.
    let message = [b"KEY:".as_slice(), block.strip_suffix(b"\n").unwrap()].concat();
    let key = one_key(&message);
    assert_eq!((key.offset, key.length), (4, block.len() - 1));
}

#[test]
fn pem_with_crlf_and_other_widths() {
    let block = std::str::from_utf8(fixture!("rsa2048.pub.pem").1).unwrap();
    let crlf = block.replace('\n', "\r\n");
    assert_eq!(one_key(crlf.as_bytes()).fingerprint, Some(FP_RSA2048.parse().unwrap()));
    assert_eq!(pem_span(crlf.as_bytes()), PemSpan::Complete(crlf.len()));

    let lines: Vec<&str> = block.lines().collect();
    let body: String = lines[1..lines.len() - 1].concat();
    for width in [1, 40, 76, body.len()] {
        let wrapped: Vec<String> =
            body.as_bytes().chunks(width).map(|c| String::from_utf8(c.to_vec()).unwrap()).collect();
        let text = format!("{}\n{}\n{}\n", lines[0], wrapped.join("\n"), lines[lines.len() - 1]);
        let key = one_key(text.as_bytes());
        assert_eq!(key.fingerprint, Some(FP_RSA2048.parse().unwrap()), "width {width}");
        assert_eq!(key.length, text.len());
    }
}

#[test]
fn several_keys_in_one_message_in_order() {
    let message = [
        b"mine:\n".as_slice(),
        fixture!("ssh-ed25519.pub").1,
        b"and the server's certificate\n",
        fixture!("cert-ec-p256.pem").1,
        b"and a private key by mistake\n",
        fixture!("rsa1024.key").1,
    ]
    .concat();
    let keys = find_keys(&message);
    let kinds: Vec<_> = keys.iter().map(|k| (k.kind, k.algorithm)).collect();
    assert_eq!(kinds, [(PublicKey, A::Ed25519), (Certificate, P256), (PrivateKey, A::Rsa)]);
    assert!(keys.windows(2).all(|w| w[0].offset + w[0].length <= w[1].offset));
}

#[test]
fn broken_pem_is_not_a_key() {
    let block = std::str::from_utf8(fixture!("rsa2048.pub.pem").1).unwrap();
    let no_end = block.replace("-----END PUBLIC KEY-----\n", "");
    let other_end = block.replace("END PUBLIC KEY", "END RSA PUBLIC KEY");
    let bad_char = block.replacen("MII", "M*I", 1);
    let one_line_less = {
        let mut lines: Vec<&str> = block.lines().collect();
        lines.remove(2);
        lines.join("\n")
    };
    // One byte more inside the DER: the SEQUENCE no longer spans the bytes.
    let der =
        STANDARD.decode(block.lines().filter(|l| !l.starts_with('-')).collect::<String>()).unwrap();
    let longer = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode([der.as_slice(), &[0]].concat())
    );
    let unknown_label = block.replace("PUBLIC KEY", "PUBLIK KEY");
    let wrong_label = block.replace("PUBLIC KEY", "RSA PUBLIC KEY");
    let empty = "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n".to_string();
    for text in
        [no_end, other_end, bad_char, one_line_less, longer, unknown_label, wrong_label, empty]
    {
        assert_eq!(find_keys(text.as_bytes()), [], "{text}");
    }
}

#[test]
fn pem_span_of_complete_incomplete_and_garbage() {
    let block = fixture!("rsa2048.pub.pem").1;
    assert_eq!(pem_span(block), PemSpan::Complete(block.len()));
    let followed = [block, b"next message"].concat();
    assert_eq!(pem_span(&followed), PemSpan::Complete(block.len()));
    // No newline yet after the END line: it may still come.
    assert_eq!(pem_span(&block[..block.len() - 1]), PemSpan::Incomplete);
    // END dashes followed at once by other bytes: the block ends with the dashes.
    let glued = [&block[..block.len() - 1], b"hello".as_slice()].concat();
    assert_eq!(pem_span(&glued), PemSpan::Complete(block.len() - 1));
    for cut in 0..block.len() - 1 {
        assert_eq!(pem_span(&block[..cut]), PemSpan::Incomplete, "cut at {cut}");
    }
    let encrypted = fixture!("rsa1024.trad-enc.key").1;
    assert_eq!(pem_span(encrypted), PemSpan::Complete(encrypted.len()));
    let openssh = fixture!("ssh-ed25519").1;
    assert_eq!(pem_span(openssh), PemSpan::Complete(openssh.len()));

    for garbage in [
        b"hello".as_slice(),
        b"-----BEGIN PUBLIC KEY-----\nnot base64!\n",
        b"-----BEGIN PUBLIC KEY-----\nMIIB\n-----END RSA PUBLIC KEY-----\n",
        b"-----BEGIN PUBLIC KEY----- trailing\n",
        b"-----BEGIN -----\n",
        b"-----BEGIN PUBLIC KEY-----\n-----BEGIN PUBLIC KEY-----\n",
        b"-----BEGIN PUBLIC\x00KEY-----\n",
        b"\xff\xfe",
    ] {
        assert_eq!(pem_span(garbage), PemSpan::NotPem, "{}", String::from_utf8_lossy(garbage));
    }
    // Past MAX_PEM without an END line.
    let long =
        [b"-----BEGIN PUBLIC KEY-----\n".as_slice(), &b"QUFB\n".repeat(MAX_PEM / 5 + 1)].concat();
    assert_eq!(pem_span(&long), PemSpan::NotPem);
    assert_eq!(pem_span(&long[..MAX_PEM / 2]), PemSpan::Incomplete);
}

#[test]
fn whole_message_der_with_and_without_prefix() {
    let spki = fixture!("rsa1024.pub.der").1;
    let fp = Some(FP_RSA1024.parse::<Fingerprint>().unwrap());
    let short = [&(spki.len() as u16).to_be_bytes()[..], spki].concat();
    let long = [&(spki.len() as u32).to_be_bytes()[..], spki].concat();
    for (message, prefix) in [(spki.to_vec(), 0), (short, 2), (long, 4)] {
        let key = one_key(&message);
        assert_eq!(key.format, KeyFormat::Der { prefix, encoding: DerEncoding::Spki });
        assert_eq!((key.offset, key.length, key.fingerprint), (0, message.len(), fp));
    }
    // A prefix that does not equal the rest, a byte more, a byte less: nothing.
    let wrong = [&((spki.len() + 1) as u16).to_be_bytes()[..], spki].concat();
    for message in [wrong, [spki, &[0]].concat(), spki[..spki.len() - 1].to_vec()] {
        assert_eq!(find_keys(&message), []);
    }
    // Base64 of the DER, alone in a message (as `base64.b64encode(der)` sends it).
    let text = format!("{}\n", STANDARD.encode(spki));
    let key = one_key(text.as_bytes());
    assert_eq!(key.format, KeyFormat::Base64 { encoding: DerEncoding::Spki });
    assert_eq!((key.offset, key.length, key.fingerprint), (0, text.len() - 1, fp));
    // A private key in DER is found as one too.
    let private = STANDARD
        .decode(
            std::str::from_utf8(fixture!("rsa1024.key").1)
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with('-'))
                .collect::<String>(),
        )
        .unwrap();
    let key = one_key(&private);
    assert_eq!((key.kind, key.format, key.fingerprint), (PrivateKey, der(DerEncoding::Pkcs8), fp));
}

/// The 512-bit Python key's n and e.
fn py512() -> (Vec<u8>, Vec<u8>) {
    let key = one_key(fixture!("py-rsa512.pem").1);
    (key.rsa_modulus.unwrap(), vec![1, 0, 1])
}

fn to_decimal(bytes: &[u8]) -> String {
    // Repeated division by ten of a big-endian number: slow, plain, independent of json.rs.
    let mut n = bytes.to_vec();
    let mut digits = Vec::new();
    while n.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for b in &mut n {
            let cur = rem * 256 + u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    digits.reverse();
    String::from_utf8(digits).unwrap()
}

#[test]
fn json_objects_in_their_many_spellings() {
    let (n, e) = py512();
    let fp = Some(FP_PY512.parse::<Fingerprint>().unwrap());
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let dec = to_decimal(&n);
    let pem_text = std::str::from_utf8(fixture!("py-rsa512.pem").1).unwrap();
    let b64 = STANDARD.encode(fixture!("rsa1024.pub.der").1);
    let cases: Vec<(String, KeyKind, KeyFormat, Option<Fingerprint>)> = vec![
        (format!(r#"{{"n": {dec}, "e": 65537}}"#), PublicKey, JSON_NE, fp),
        (format!(r#"{{"N": "{dec}", "E": "65537"}}"#), PublicKey, JSON_NE, fp),
        (
            format!(r#"{{"modulus": "0x{}", "exponent": "0x10001"}}"#, hex::encode(&n)),
            PublicKey,
            JSON_NE,
            fp,
        ),
        (
            format!(r#"{{"pub_n": "{}", "pub_e": "{}"}}"#, hex::encode(&n), hex::encode(&e)),
            PublicKey,
            JSON_NE,
            fp,
        ),
        (
            format!(r#"{{"pub_n": "{}", "pub_e": "65537"}}"#, hex::encode(&n)),
            PublicKey,
            JSON_NE,
            fp,
        ),
        (format!(r#"{{"n": "{}", "e": "AQAB"}}"#, STANDARD.encode(&n)), PublicKey, JSON_NE, fp),
        (
            format!(r#"{{"kty": "RSA", "n": "{}", "e": "AQAB", "d": "AQAB"}}"#, url.encode(&n)),
            PrivateKey,
            JSON_NE,
            fp,
        ),
        (
            format!(r#"{{"type": "hello", "key": {}}}"#, serde_json::json!({"pem": pem_text})),
            PublicKey,
            KeyFormat::Json { carrier: JsonCarrier::Pem { label: "RSA PUBLIC KEY" } },
            fp,
        ),
        (
            format!(r#"{{"from": "alice", "pubkey": "{b64}"}}"#),
            PublicKey,
            KeyFormat::Json { carrier: JsonCarrier::Base64 { encoding: DerEncoding::Spki } },
            Some(FP_RSA1024.parse().unwrap()),
        ),
        (
            format!(r#"{{"keys": [{{"kty": "RSA", "n": "{}", "e": "AQAB"}}]}}"#, url.encode(&n)),
            PublicKey,
            JSON_NE,
            fp,
        ),
    ];
    for (text, kind, format, fingerprint) in cases {
        let message = format!("KEY {text}\n");
        let key = one_key(message.as_bytes());
        assert_eq!((key.kind, key.format, key.fingerprint), (kind, format, fingerprint), "{text}");
        assert_eq!(key.bits, Some(if fingerprint == fp { 512 } else { 1024 }), "{text}");
        assert!(key.offset >= 4 && key.offset + key.length <= 4 + text.len(), "{text}");
        assert_eq!(
            message.as_bytes()[key.offset],
            if format == JSON_NE { b'{' } else { b'"' },
            "{text}"
        );
    }
}

#[test]
fn json_that_is_not_a_key() {
    let (n, _) = py512();
    let dec = to_decimal(&n);
    let even = to_decimal(&[n.as_slice(), &[0]].concat()); // n * 256
    for text in [
        format!(r#"{{"n": {even}, "e": 65537}}"#),
        format!(r#"{{"n": {dec}, "e": 1}}"#),
        format!(r#"{{"n": {dec}, "e": 65536}}"#),
        format!(r#"{{"n": {dec}, "e": {dec}}}"#),
        r#"{"n": 3233, "e": 17}"#.to_string(),
        format!(r#"{{"n": {dec}}}"#),
        format!(r#"{{"n": {dec}, "e": 65537"#),
        format!(r#"{{"n": -{dec}, "e": 65537}}"#),
        format!(r#"{{"n": {dec}.5, "e": 65537}}"#),
        format!(r#"{{"n": "{}", "e": 65537}}"#, "9".repeat(6000)),
        format!(r#"{{"a": {{"b": {{"c": {{"n": {dec}, "e": 65537}}}}}}}}"#),
        "[".repeat(10_000),
        format!("{{\"a\": {}", "[".repeat(100_000)),
        format!("{{\"a\": {}", "{\"b\": ".repeat(50_000)),
        format!("{}\"{}", "{\"a\":".repeat(5000), "}".repeat(5000)),
    ] {
        assert_eq!(find_keys(text.as_bytes()), [], "{}", &text[..text.len().min(80)]);
    }
}

#[test]
fn decimal_conversion() {
    for n in [0u128, 1, 9, 10, 255, 256, 999_999_999, 1_000_000_000, u64::MAX as u128, u128::MAX] {
        let got = json_decimal(&n.to_string());
        assert_eq!(got, strip_zeros(&n.to_be_bytes()), "{n}");
    }
    let (n, _) = py512();
    assert_eq!(json_decimal(&to_decimal(&n)), n);
}

fn json_decimal(s: &str) -> Vec<u8> {
    let raw = serde_json::value::RawValue::from_string(s.to_string()).unwrap();
    json::integer_for_tests(&raw)
}

#[test]
fn small_and_odd_sizes() {
    let (n, e) = py512();
    let key = rsa_key(KeyKind::PublicKey, &n, &e, Evidence::Bare).unwrap();
    assert_eq!(key.bits, Some(512));
    assert_eq!(rsa_key(KeyKind::PublicKey, &n[..31], &e, Evidence::Labelled), None); // 248 bits
    let mut even = n.clone();
    *even.last_mut().unwrap() &= 0xfe;
    assert_eq!(rsa_key(KeyKind::PublicKey, &even, &e, Evidence::Labelled), None);
    // A huge exponent passes only where something names the bytes a key.
    let big_e = [&[0x01][..], &[0u8; 20], &[0x01]].concat();
    assert!(rsa_key(KeyKind::PublicKey, &n, &big_e, Evidence::Labelled).is_some());
    assert_eq!(rsa_key(KeyKind::PublicKey, &n, &big_e, Evidence::Bare), None);
    assert_eq!(bit_len(&[0, 0, 1]), 1);
    assert_eq!(bit_len(&[0x80, 0]), 16);
    assert_eq!(bit_len(&[]), 0);
}

#[test]
fn openssh_lines_in_text() {
    let line = fixture!("ssh-rsa3072.pub").1;
    let message =
        [b"my authorized_keys line is \"".as_slice(), &line[..line.len() - 1], b"\" ok"].concat();
    let key = one_key(&message);
    assert_eq!(key.offset, 28);
    assert_eq!(key.fingerprint, Some(FP_SSH_RSA.parse().unwrap()));
    // The type must match the blob's, and stand as a word.
    let text = std::str::from_utf8(line).unwrap();
    let mismatched = text.replacen("ssh-rsa", "ssh-ed25519", 1);
    let glued = format!("xssh-rsa{}", &text[7..]);
    let truncated = &text[..text.find(' ').unwrap() + 100];
    for bad in [mismatched.as_str(), glued.as_str(), truncated] {
        assert_eq!(find_keys(bad.as_bytes()), [], "{bad}");
    }
}

#[test]
fn bounded_on_ten_megabytes() {
    let block = fixture!("rsa2048.pub.pem").1;
    let many = block.repeat(10_000_000 / block.len() + 1);
    let start = Instant::now();
    assert_eq!(find_keys(&many).len(), MAX_KEYS);
    // A key past MAX_SCAN is not looked at.
    let late = [vec![b'x'; MAX_SCAN], block.to_vec(), vec![b'y'; 10_000_000]].concat();
    assert_eq!(find_keys(&late), []);
    // Inputs built to make each format try hard.
    for piece in [
        b"-----BEGIN PUBLIC KEY-----\nQUFB\n".as_slice(),
        b"-----BEGIN ",
        b"{\"n\":{\"e\":[\"",
        b"{\"",
        b"ssh-rsa AAAA",
        b"ssh-rsa ",
        b"0\x82\x01\x22",
    ] {
        let input = piece.repeat(10_000_000 / piece.len());
        assert_eq!(find_keys(&input), [], "{}", String::from_utf8_lossy(piece));
    }
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
}

fn base64_lines(bytes: &[u8]) -> String {
    let text = STANDARD.encode(bytes);
    text.as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each fixture and its key, for the damage properties.
fn fixtures_and_keys() -> Vec<(&'static str, &'static [u8], KeyMaterial)> {
    cases().into_iter().map(|c| (c.file.0, c.file.1, one_key(c.file.1))).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn nothing_in_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        prop_assert_eq!(find_keys(&bytes), []);
    }

    #[test]
    fn nothing_in_base64_of_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let text = base64_lines(&bytes);
        prop_assert_eq!(find_keys(text.as_bytes()), []);
        for label in ["PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE", "PRIVATE KEY", "OPENSSH PRIVATE KEY"] {
            let armoured = format!("-----BEGIN {label}-----\n{text}\n-----END {label}-----\n");
            prop_assert_eq!(find_keys(armoured.as_bytes()), []);
        }
        let line = format!("ssh-rsa {} user@host", STANDARD.encode(&bytes));
        prop_assert_eq!(find_keys(line.as_bytes()), []);
    }

    #[test]
    fn nothing_in_random_prose(text in "[ -~\n]{0,3000}", words in proptest::collection::vec(
        prop_oneof![Just("ssh-rsa AAAA"), Just("-----BEGIN PUBLIC KEY-----\n"), Just("{\"n\": "),
            Just("\"e\": 65537}"), Just("-----END PUBLIC KEY-----\n"), Just("MIIB")], 0..6)) {
        let prose = format!("{}{text}", words.concat());
        prop_assert_eq!(find_keys(prose.as_bytes()), []);
    }

    #[test]
    fn nothing_in_random_bytes_behind_a_length(
        bytes in proptest::collection::vec(any::<u8>(), 0..3000),
        der_like in any::<bool>(),
    ) {
        let mut body = bytes;
        if der_like && body.len() > 4 {
            // A SEQUENCE header with the right length, so the DER decoders look further.
            let len = (body.len() - 4) as u16;
            body[..4].copy_from_slice(&[0x30, 0x82, (len >> 8) as u8, len as u8]);
        }
        for message in [
            [&(body.len() as u16).to_be_bytes()[..], &body].concat(),
            [&(body.len() as u32).to_be_bytes()[..], &body].concat(),
            body.clone(),
        ] {
            prop_assert_eq!(find_keys(&message), []);
        }
    }

    #[test]
    fn truncated_fixtures_are_found_whole_or_not_at_all(which in 0usize..32, cut in 0.0f64..1.0) {
        let all = fixtures_and_keys();
        let (name, bytes, whole) = &all[which % all.len()];
        let cut = (bytes.len() as f64 * cut) as usize;
        let keys = find_keys(&bytes[..cut]);
        prop_assert!(keys.len() <= 1, "{}: {:?}", name, keys);
        if let Some(key) = keys.first() {
            // Only the END line's newline (or an OpenSSH comment) may be cut off.
            let mut expect = whole.clone();
            expect.length = expect.length.min(cut - expect.offset);
            prop_assert!(whole.length - expect.length <= 2, "{}", name);
            prop_assert_eq!(key, &expect, "{}", name);
        }
    }

    #[test]
    fn damaged_fixtures_are_never_misread(which in 0usize..32, at in 0.0f64..1.0, byte in any::<u8>()) {
        let all = fixtures_and_keys();
        let (name, bytes, whole) = &all[which % all.len()];
        let mut damaged = bytes.to_vec();
        let pos = ((bytes.len() as f64 * at) as usize).min(bytes.len() - 1);
        damaged[pos] = byte;
        let keys = find_keys(&damaged);
        prop_assert!(keys.len() <= 1, "{}: {:?}", name, keys);
        if let Some(key) = keys.first() {
            // Found at the same place, as the same kind in the same format...
            prop_assert_eq!(key.offset, whole.offset, "{}", name);
            prop_assert!(key.length == whole.length || key.offset + key.length == pos, "{}", name);
            prop_assert_eq!((key.kind, key.format), (whole.kind, whole.format), "{}", name);
            // ...with the size of the key the bytes now hold: the size changes only with the
            // key (its modulus, or its algorithm or curve).
            if let Some(n) = &key.rsa_modulus {
                prop_assert_eq!(key.bits, Some(bit_len(n)), "{}", name);
            }
            let same_key = key.rsa_modulus == whole.rsa_modulus && key.algorithm == whole.algorithm;
            if same_key {
                prop_assert_eq!(key.bits, whole.bits, "{}", name);
            }
            if key.fingerprint.is_some() && key.fingerprint == whole.fingerprint {
                let same_length = KeyMaterial { length: whole.length, ..key.clone() };
                prop_assert_eq!(&same_length, whole, "{}", name);
            }
            // An independent reader agrees on the modulus of a damaged SPKI.
            if *name == "rsa1024.pub.der" {
                use rsa::pkcs8::DecodePublicKey;
                use rsa::traits::PublicKeyParts;
                if let Ok(k) = rsa::PublicKey::from_public_key_der(&damaged) {
                    let n = k.n().to_be_bytes();
                    prop_assert_eq!(key.rsa_modulus.as_deref(), Some(strip_zeros(&n)));
                }
            }
        }
    }

    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000), which in 0usize..32, at in 0usize..4000) {
        let all = fixtures_and_keys();
        let (_, fixture, _) = &all[which % all.len()];
        let at = at.min(fixture.len());
        let spliced = [&fixture[..at], &bytes, &fixture[at..]].concat();
        for key in find_keys(&spliced) {
            prop_assert!(key.offset + key.length <= spliced.len());
        }
        let _ = pem_span(&bytes);
        let _ = pem_span(&spliced);
    }
}
