//! PEM blocks: where one ends ([`pem_span`]) and the key in it.
//!
//! A block is a `-----BEGIN LABEL-----` line, optional RFC 1421 header lines (`Proc-Type`,
//! `DEK-Info`), base64 lines of any width, and `-----END LABEL-----` with the same label. Lines
//! may end in LF or CRLF. Anything else inside (another dash line, a byte that is not base64)
//! means the bytes are not a PEM block.

use memchr::memmem;

use super::{
    Algorithm, Curve, DerEncoding, Evidence, Found, KeyFormat, KeyKind, MAX_TRIES, Parsed,
};

/// The longest PEM block [`pem_span`] waits for: past this many bytes without an END line,
/// the bytes are not PEM.
pub const MAX_PEM: usize = 64 * 1024;
/// The longest label taken.
const MAX_LABEL: usize = 64;

const BEGIN: &[u8] = b"-----BEGIN ";
const END: &[u8] = b"-----END ";
const DASHES: &[u8] = b"-----";

/// Where a PEM block that starts some bytes ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemSpan {
    /// The bytes do not start with a PEM block (or it runs past [`MAX_PEM`]).
    NotPem,
    /// They may: more bytes are needed to tell where it ends.
    Incomplete,
    /// The block ends here: just past the END line and its newline (or just past the END
    /// line's dashes when something other than a newline follows them).
    Complete(usize),
}

/// Where the PEM block at the start of `bytes` ends, for a message cutter reading a stream:
/// bytes that are a prefix of a block so far are [`PemSpan::Incomplete`]. Reads at most
/// [`MAX_PEM`] bytes.
pub fn pem_span(bytes: &[u8]) -> PemSpan {
    match scan(bytes, false) {
        Scan::Not => PemSpan::NotPem,
        Scan::More => PemSpan::Incomplete,
        Scan::Block(block) => PemSpan::Complete(block.end),
    }
}

/// A whole PEM block.
#[derive(Debug)]
struct Block<'a> {
    label: &'a [u8],
    /// From the first base64 line to the END line.
    body: &'a [u8],
    /// A `Proc-Type: 4,ENCRYPTED` header: the body is encrypted.
    encrypted: bool,
    /// Just past the block.
    end: usize,
}

/// What [`scan`] saw.
#[derive(Debug)]
enum Scan<'a> {
    Not,
    More,
    Block(Block<'a>),
}

/// How a line ends at some position.
enum Eol {
    /// A newline; the next line starts here.
    At(usize),
    /// The bytes end first (perhaps after a `\r`).
    Short,
    /// Something else follows.
    No,
}

fn eol(bytes: &[u8], pos: usize) -> Eol {
    match (bytes.get(pos), bytes.get(pos + 1)) {
        (Some(b'\n'), _) => Eol::At(pos + 1),
        (Some(b'\r'), Some(b'\n')) => Eol::At(pos + 2),
        (None, _) | (Some(b'\r'), None) => Eol::Short,
        _ => Eol::No,
    }
}

fn skip_blanks(bytes: &[u8], mut pos: usize) -> usize {
    while matches!(bytes.get(pos), Some(b' ' | b'\t')) {
        pos += 1;
    }
    pos
}

fn is_base64_line(line: &[u8]) -> bool {
    line.iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b' ' | b'\t'))
}

fn is_printable(line: &[u8]) -> bool {
    line.iter().all(|&b| (0x20..0x7f).contains(&b) || b == b'\t')
}

/// Read the PEM block at the start of `bytes`. `whole`: the bytes are a whole message, so
/// running out of them ends the question (no END: not PEM; an END line without its newline:
/// the block ends with the bytes).
fn scan(bytes: &[u8], whole: bool) -> Scan<'_> {
    let truncated = bytes.len() > MAX_PEM;
    let window = bytes.get(..MAX_PEM).unwrap_or(bytes);
    let out_of_bytes = || if whole || truncated { Scan::Not } else { Scan::More };

    if window.len() < BEGIN.len() {
        return if BEGIN.starts_with(window) { out_of_bytes() } else { Scan::Not };
    }
    if !window.starts_with(BEGIN) {
        return Scan::Not;
    }
    let label_start = BEGIN.len();
    let mut pos = label_start;
    loop {
        match window.get(pos) {
            None => return out_of_bytes(),
            Some(b'-') => break,
            Some(&c) if (c == b' ' || c.is_ascii_graphic()) && pos - label_start < MAX_LABEL => {
                pos += 1;
            }
            Some(_) => return Scan::Not,
        }
    }
    let label = window.get(label_start..pos).unwrap_or(&[]);
    if label.is_empty() || label.first() == Some(&b' ') || label.last() == Some(&b' ') {
        return Scan::Not;
    }
    let rest = window.get(pos..).unwrap_or(&[]);
    if !rest.starts_with(DASHES) {
        return if DASHES.starts_with(rest) { out_of_bytes() } else { Scan::Not };
    }
    pos = skip_blanks(window, pos + DASHES.len());
    pos = match eol(window, pos) {
        Eol::At(next) => next,
        Eol::Short => return out_of_bytes(),
        Eol::No => return Scan::Not,
    };

    let end_marker = [END, label, DASHES].concat();
    let mut body_start = None;
    let mut in_headers = true;
    let mut last_was_header = false;
    let mut encrypted = false;
    loop {
        let line_start = pos;
        let rest = window.get(pos..).unwrap_or(&[]);
        if rest.first() == Some(&b'-') {
            if rest.len() < end_marker.len() {
                let could_be = end_marker.starts_with(rest);
                return if could_be { out_of_bytes() } else { Scan::Not };
            }
            if !rest.starts_with(&end_marker) {
                return Scan::Not;
            }
            let after = pos + end_marker.len();
            let end = match eol(window, skip_blanks(window, after)) {
                Eol::At(next) => next,
                Eol::Short if truncated => after,
                Eol::Short if whole => window.len(),
                Eol::Short => return Scan::More,
                Eol::No => after,
            };
            let body = window.get(body_start.unwrap_or(line_start)..line_start).unwrap_or(&[]);
            return Scan::Block(Block { label, body, encrypted, end });
        }
        let (raw, next) = match memchr::memchr(b'\n', rest) {
            Some(i) => (rest.get(..i).unwrap_or(&[]), Some(pos + i + 1)),
            None => (rest, None),
        };
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let blank = line.iter().all(|&b| b == b' ' || b == b'\t');
        let continuation = last_was_header && matches!(line.first(), Some(b' ' | b'\t'));
        if blank {
            last_was_header = false;
        } else if in_headers && continuation && is_printable(line) {
            // The rest of the header above: nothing to note.
        } else if is_base64_line(line) {
            in_headers = false;
            last_was_header = false;
            body_start.get_or_insert(line_start);
        } else if in_headers && is_printable(line) && (line.contains(&b':') || next.is_none()) {
            if line.starts_with(b"Proc-Type:") && memmem::find(line, b"ENCRYPTED").is_some() {
                encrypted = true;
            }
            last_was_header = true;
        } else {
            return Scan::Not;
        }
        match next {
            Some(n) => pos = n,
            None => return out_of_bytes(),
        }
    }
}

/// What a label's body holds.
#[derive(Clone, Copy)]
enum Body {
    Der(DerEncoding),
    OpenSsh,
}

/// The labels that name keys.
const LABELS: [(&str, Body); 8] = [
    ("PUBLIC KEY", Body::Der(DerEncoding::Spki)),
    ("RSA PUBLIC KEY", Body::Der(DerEncoding::Pkcs1)),
    ("CERTIFICATE", Body::Der(DerEncoding::Certificate)),
    ("PRIVATE KEY", Body::Der(DerEncoding::Pkcs8)),
    ("ENCRYPTED PRIVATE KEY", Body::Der(DerEncoding::Pkcs8Encrypted)),
    ("RSA PRIVATE KEY", Body::Der(DerEncoding::Pkcs1Private)),
    ("EC PRIVATE KEY", Body::Der(DerEncoding::Sec1)),
    ("OPENSSH PRIVATE KEY", Body::OpenSsh),
];

/// The key in a whole block, with its label.
fn parse_block(block: &Block<'_>) -> Option<(&'static str, Parsed)> {
    let &(label, body) = LABELS.iter().find(|(l, _)| l.as_bytes() == block.label)?;
    let bytes = super::decode_base64(block.body)?;
    let parsed = match body {
        Body::Der(encoding) if block.encrypted => legacy_encrypted(encoding, &bytes)?,
        Body::Der(encoding) => super::der::parse(encoding, &bytes, Evidence::Labelled)?,
        Body::OpenSsh => super::ssh::private_key(&bytes)?,
    };
    Some((label, parsed))
}

/// An OpenSSL "traditional" private key encrypted under its `Proc-Type`/`DEK-Info` headers:
/// only its label says what it is, and its body is whole cipher blocks.
fn legacy_encrypted(encoding: DerEncoding, body: &[u8]) -> Option<Parsed> {
    let algorithm = match encoding {
        DerEncoding::Pkcs1Private => Algorithm::Rsa,
        DerEncoding::Sec1 => Algorithm::Ec { curve: Curve::Other },
        _ => return None,
    };
    body.len().is_multiple_of(8).then_some(Parsed {
        kind: KeyKind::PrivateKey,
        algorithm,
        bits: None,
        fingerprint: None,
        rsa_modulus: None,
    })
}

/// Every key in a PEM block in `text` (at most `max`): offset, length, label, key.
pub(super) fn blocks(text: &[u8], max: usize) -> Vec<(usize, usize, &'static str, Parsed)> {
    let finder = memmem::Finder::new(BEGIN);
    let mut out = Vec::new();
    let mut from = 0;
    for _ in 0..MAX_TRIES {
        if out.len() >= max {
            break;
        }
        let Some(at) = text.get(from..).and_then(|t| finder.find(t)).map(|i| from + i) else {
            break;
        };
        let Some(rest) = text.get(at..) else { break };
        match scan(rest, true) {
            Scan::Block(block) => {
                if let Some((label, parsed)) = parse_block(&block) {
                    out.push((at, block.end, label, parsed));
                }
                from = at + block.end.max(1);
            }
            Scan::Not | Scan::More => from = at + 1,
        }
    }
    out
}

/// Every PEM key in a message.
pub(super) fn find(message: &[u8], found: &mut Found) {
    for (offset, length, label, parsed) in blocks(message, super::MAX_KEYS) {
        found.push(parsed.at(offset, length, KeyFormat::Pem { label }));
    }
}
