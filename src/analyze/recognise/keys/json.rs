//! JSON objects that carry a key: an RSA modulus and exponent under the usual member names
//! (`n`/`e`, `modulus`/`exponent`, a JWK, ...) as decimal, hex or base64, or a string holding
//! a PEM block or base64 DER. The object may sit anywhere in the message; keys are looked for
//! in it and in objects and arrays up to two levels inside.
//!
//! Members are read as raw text (`serde_json`'s `RawValue`), so a modulus written as a JSON
//! number of hundreds of digits is read exactly, not as a float.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::value::RawValue;

use super::{
    BASE64, BASE64_URL, Evidence, Found, JsonCarrier, KeyFormat, KeyKind, MAX_RSA_BITS, MAX_TRIES,
    Parsed,
};

type Object<'a> = BTreeMap<String, &'a RawValue>;

/// Objects inside the outer object that are still read: two levels.
const MAX_DEPTH: usize = 2;
/// The most member values read in one outer object, nested ones included.
const MAX_VALUES: usize = 256;
/// The most decimal digits read for one integer (a 16384-bit number has 4933).
const MAX_DIGITS: usize = 4940;
/// The most hex digits read for one integer.
const MAX_HEX: usize = 4200;
/// The most base64 characters read for one integer.
const MAX_BASE64: usize = 2900;

const N_NAMES: [&str; 6] = ["n", "modulus", "pub_n", "public_n", "rsa_n", "pubkey_n"];
const E_NAMES: [&str; 8] = [
    "e",
    "exponent",
    "publicexponent",
    "public_exponent",
    "pub_e",
    "public_e",
    "rsa_e",
    "pubkey_e",
];
const D_NAMES: [&str; 4] = ["d", "privateexponent", "private_exponent", "priv_d"];

/// How an integer was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Radix {
    Decimal,
    Hex,
    Base64,
}

/// Every JSON-borne key in a message.
pub(super) fn find(message: &[u8], found: &mut Found) {
    let mut from = 0;
    let mut tries = 0;
    while tries < MAX_TRIES && !found.full() {
        let Some(at) = message.get(from..).and_then(|m| memchr::memchr(b'{', m)).map(|i| from + i)
        else {
            break;
        };
        from = at + 1;
        let after = message.get(from..).unwrap_or(&[]);
        if after.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'"') {
            continue;
        }
        tries += 1;
        let Some(text) = message.get(at..) else { break };
        let mut stream = serde_json::Deserializer::from_slice(text).into_iter::<Object<'_>>();
        if let Some(Ok(object)) = stream.next() {
            let end = at + stream.byte_offset();
            let mut budget = MAX_VALUES;
            visit_object(message, &object, at, end - at, 0, &mut budget, found);
            from = end;
        }
    }
}

/// Where a raw value borrowed from `message` lies in it.
fn span_of(message: &[u8], raw: &RawValue) -> Option<(usize, usize)> {
    let text = raw.get().as_bytes();
    let start = (text.as_ptr() as usize).checked_sub(message.as_ptr() as usize)?;
    (start.checked_add(text.len())? <= message.len()).then_some((start, text.len()))
}

fn member<'a>(object: &Object<'a>, names: &[&str]) -> Option<&'a RawValue> {
    names
        .iter()
        .find_map(|name| object.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| *v))
}

fn visit_object(
    message: &[u8],
    object: &Object<'_>,
    offset: usize,
    length: usize,
    depth: usize,
    budget: &mut usize,
    found: &mut Found,
) {
    let n = member(object, &N_NAMES);
    let e = member(object, &E_NAMES);
    if let (Some(n), Some(e)) = (n, e) {
        let jwk = member(object, &["kty"]).is_some_and(|k| k.get().eq_ignore_ascii_case("\"rsa\""));
        let private = member(object, &D_NAMES).is_some_and(|d| integer(d, None, jwk).is_some());
        if let Some(parsed) = modulus_exponent(n, e, jwk, private) {
            let format = KeyFormat::Json { carrier: JsonCarrier::ModulusExponent };
            found.push(parsed.at(offset, length, format));
        }
    }
    for value in object.values() {
        if n.is_some_and(|n| std::ptr::eq(n, *value)) || e.is_some_and(|e| std::ptr::eq(e, *value))
        {
            continue;
        }
        visit_value(message, value, depth, budget, found);
    }
}

fn visit_value(
    message: &[u8],
    value: &RawValue,
    depth: usize,
    budget: &mut usize,
    found: &mut Found,
) {
    if *budget == 0 || found.full() {
        return;
    }
    *budget -= 1;
    let Some((offset, length)) = span_of(message, value) else { return };
    match value.get().as_bytes().first() {
        Some(b'"') => {
            let Ok(text) = serde_json::from_str::<String>(value.get()) else { return };
            if let Some((_, _, label, parsed)) = super::pem::blocks(text.as_bytes(), 1).pop() {
                let format = KeyFormat::Json { carrier: JsonCarrier::Pem { label } };
                found.push(parsed.at(offset, length, format));
            } else if let Some((encoding, parsed)) = super::der::bare_base64(text.trim().as_bytes())
            {
                let format = KeyFormat::Json { carrier: JsonCarrier::Base64 { encoding } };
                found.push(parsed.at(offset, length, format));
            }
        }
        Some(b'{') if depth < MAX_DEPTH => {
            if let Ok(object) = serde_json::from_str::<Object<'_>>(value.get()) {
                visit_object(message, &object, offset, length, depth + 1, budget, found);
            }
        }
        Some(b'[') if depth < MAX_DEPTH => {
            if let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(value.get()) {
                for item in items {
                    visit_value(message, item, depth + 1, budget, found);
                }
            }
        }
        _ => {}
    }
}

/// An RSA key from JSON members for its modulus and exponent.
fn modulus_exponent(n: &RawValue, e: &RawValue, jwk: bool, private: bool) -> Option<Parsed> {
    let (n, radix) = integer(n, None, jwk)?;
    let (e, _) = integer(e, Some(radix), jwk)?;
    let kind = if private { KeyKind::PrivateKey } else { KeyKind::PublicKey };
    super::rsa_key(kind, &n, &e, Evidence::Labelled)
}

/// A non-negative integer in a JSON number or string, big-endian, and how it was written.
///
/// A string is hex with `0x`, else decimal if all digits, hex if all hex digits, else base64
/// (standard or URL-safe; only base64url in a JWK). An exponent (`modulus_radix` given) is read
/// like its modulus: all digits and the modulus in hex means hex, unless the digits read as a
/// usual exponent in decimal (3, 17, 65537).
fn integer(raw: &RawValue, modulus_radix: Option<Radix>, jwk: bool) -> Option<(Vec<u8>, Radix)> {
    let text = raw.get();
    if text.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return Some((decimal(text)?, Radix::Decimal));
    }
    let owned = serde_json::from_str::<String>(text).ok()?;
    let s = owned.trim();
    if jwk {
        return (s.len() <= MAX_BASE64)
            .then(|| BASE64_URL.decode(s).ok())
            .flatten()
            .map(|b| (b, Radix::Base64));
    }
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return Some((hex_digits(hex)?, Radix::Hex));
    }
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits {
        let usual = matches!(s.trim_start_matches('0'), "3" | "17" | "65537");
        if modulus_radix == Some(Radix::Hex) && !usual {
            return Some((hex_digits(s)?, Radix::Hex));
        }
        return Some((decimal(s)?, Radix::Decimal));
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some((hex_digits(s)?, Radix::Hex));
    }
    if s.len() > MAX_BASE64 {
        return None;
    }
    let bytes = BASE64.decode(s).or_else(|_| BASE64_URL.decode(s)).ok()?;
    Some((bytes, Radix::Base64))
}

/// Hex digits (an odd count allowed) as big-endian bytes.
fn hex_digits(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || s.len() > MAX_HEX {
        return None;
    }
    if s.len() % 2 == 1 { hex::decode(format!("0{s}")).ok() } else { hex::decode(s).ok() }
}

/// Decimal digits as big-endian bytes, at most [`MAX_DIGITS`] of them (so at most a few
/// bytes over [`MAX_RSA_BITS`]).
fn decimal(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || s.len() > MAX_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Little-endian base 2^32 limbs, nine digits at a time.
    let mut limbs: Vec<u32> = Vec::with_capacity(MAX_RSA_BITS as usize / 32 + 2);
    for chunk in s.as_bytes().chunks(9) {
        let mut value = 0u64;
        let mut scale = 1u64;
        for &d in chunk {
            value = value * 10 + u64::from(d - b'0');
            scale *= 10;
        }
        let mut carry = value;
        for limb in &mut limbs {
            let t = u64::from(*limb) * scale + carry;
            *limb = t as u32;
            carry = t >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    let bytes: Vec<u8> = limbs.iter().rev().flat_map(|l| l.to_be_bytes()).collect();
    Some(super::strip_zeros(&bytes).to_vec())
}

/// [`integer`] for the tests: a JSON value read as a modulus, empty if it is not one.
#[cfg(test)]
pub(super) fn integer_for_tests(raw: &RawValue) -> Vec<u8> {
    integer(raw, None, false).map(|(bytes, _)| bytes).unwrap_or_default()
}
