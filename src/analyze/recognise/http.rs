//! HTTP/1.x in one reassembled direction: where its header blocks and bodies start and end
//! ([`HttpCutter`]), whether a direction opens with a request or status line ([`opens`]), and
//! what its messages tell an eavesdropper ([`HttpRecogniser`]): request and status lines, the
//! first message's headers, the Host, how many messages and body bytes.
//!
//! The cutter reads line by line, keeping only a line's first bytes (enough for Content-Length
//! and Transfer-Encoding), and frames a body only by Content-Length: a chunked body, a response
//! read until close or a protocol switch leaves the rest to be cut by writes ([`Unframed`]).
//! The recogniser keeps one header block (at most [`MAX_HEAD`] bytes) and decodes it with the
//! `httparse` crate. Neither sees where bytes lie in the capture file, decides whether they are
//! readable, nor escapes text for display (the report does). A response to HEAD carries a
//! Content-Length but no body: the cutter cannot know the request and cuts it wrongly.

use super::{Cut, Cutter, Part, Recogniser, Start, Unframed};

/// The longest header block taken (request or status line through the empty line).
pub const MAX_HEAD: usize = 64 * 1024;
/// Request lines and status lines listed per direction.
pub const MAX_LINES: usize = 16;
/// Bytes kept of each request or status line.
pub const MAX_LINE_SHOWN: usize = 512;
/// Headers of the first message listed.
pub const MAX_HEADERS: usize = 32;
/// Bytes kept of a header's name and of its value.
pub const MAX_HEADER_SHOWN: usize = 1024;
/// Errors and notes kept per direction.
pub const MAX_ERRORS: usize = 16;
/// Headers `httparse` is given room for in one message.
const PARSE_HEADERS: usize = 128;
/// Bytes kept of each line by the cutter: enough for a Content-Length or Transfer-Encoding line.
const LINE_KEPT: usize = 32;

/// Request methods a direction may open with.
const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];
/// Status line openings.
const STATUSES: [&[u8]; 2] = [b"HTTP/1.0 ", b"HTTP/1.1 "];

/// Whether a direction whose first bytes (up to 512, fewer when it is shorter) are `prefix` is
/// HTTP/1.x: a request line of a known method, or an HTTP/1.0 or 1.1 status line.
pub fn opens(prefix: &[u8]) -> bool {
    METHODS.iter().chain(STATUSES.iter()).any(|m| prefix.starts_with(m))
}

/// Why the cutter stopped framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// A first line that is neither a request line nor a status line.
    NotHttp,
    /// A header block longer than [`MAX_HEAD`].
    TooLong,
    /// A Content-Length that is not a number, or two that differ.
    BadLength,
    /// A chunked (or otherwise transfer-encoded) body.
    Chunked,
    /// A response without a length: read until the connection closes.
    UntilClose,
    /// 101 Switching Protocols: another protocol follows.
    Switched,
}

impl Why {
    /// Whether the bytes after the header block are a body (or another protocol) rather than
    /// broken HTTP.
    fn is_body(self) -> bool {
        matches!(self, Why::Chunked | Why::UntilClose | Why::Switched)
    }

    fn says(self) -> &'static str {
        match self {
            Why::NotHttp => "not a request or status line",
            Why::TooLong => "a header block longer than 64 KiB",
            Why::BadLength => "a malformed or conflicting Content-Length",
            Why::Chunked => "a chunked body: the rest of the direction is counted as body",
            Why::UntilClose => "a response body without a length: the rest is counted as body",
            Why::Switched => "switching protocols: the rest is counted as body",
        }
    }
}

/// What the header block being read says so far.
#[derive(Debug, Clone, Copy, Default)]
struct Head {
    /// Bytes of the block so far.
    len: usize,
    /// Bytes of the current line so far.
    line_len: usize,
    /// The current line's first bytes.
    line: [u8; LINE_KEPT],
    /// The first line was read.
    started: bool,
    /// A response's status code; `None` for a request.
    status: Option<u16>,
    content_length: Option<u64>,
    transfer_encoding: bool,
}

/// Where the cutter is.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Head(Head),
    Body {
        left: u64,
    },
    /// The next push is unframed, for this reason.
    Stop(Why),
}

impl Default for Phase {
    fn default() -> Self {
        Phase::Head(Head::default())
    }
}

/// Cuts an HTTP/1.x direction: each header block is one [`Part::Message`], each body with a
/// Content-Length another. Keeps only a line's first bytes.
#[derive(Debug, Default)]
pub struct HttpCutter {
    phase: Phase,
}

impl HttpCutter {
    /// A cutter at the start of a direction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the next byte belongs to a header block.
    fn in_head(&self) -> bool {
        matches!(self.phase, Phase::Head(_))
    }

    /// Why the cutter stopped framing, once it did.
    fn stopped(&self) -> Option<Why> {
        match self.phase {
            Phase::Stop(why) => Some(why),
            _ => None,
        }
    }

    /// Header block bytes: up to the end of one line.
    fn head(&mut self, mut head: Head, bytes: &[u8]) -> Result<Cut, Unframed> {
        let room = MAX_HEAD - head.len;
        let window = bytes.get(..room).unwrap_or(bytes);
        let end = memchr::memchr(b'\n', window);
        let used = end.map_or(window.len(), |i| i + 1);
        let now = window.get(..used).unwrap_or(&[]);
        let keep = LINE_KEPT.saturating_sub(head.line_len).min(now.len());
        if let (Some(to), Some(from)) =
            (head.line.get_mut(head.line_len..head.line_len + keep), now.get(..keep))
        {
            to.copy_from_slice(from);
        }
        head.len += used;
        head.line_len += used;
        if end.is_none() {
            if head.len >= MAX_HEAD {
                return self.stop(Why::TooLong);
            }
            self.phase = Phase::Head(head);
            return Ok(Cut { used, ended: None });
        }
        let line_len = head.line_len;
        let kept = head.line.get(..line_len.min(LINE_KEPT)).unwrap_or(&[]);
        let line = trim_eol(kept);
        let whole = line_len <= LINE_KEPT;
        head.line_len = 0;
        if line.is_empty() && whole {
            if !head.started {
                // Empty lines before a message are skipped (RFC 9112 §2.2), inside its block.
                self.phase = Phase::Head(head);
                return Ok(Cut { used, ended: None });
            }
            self.phase = match body(&head) {
                Ok(0) => Phase::Head(Head::default()),
                Ok(left) => Phase::Body { left },
                Err(why) => Phase::Stop(why),
            };
            return Ok(Cut { used, ended: Some(Part::Message) });
        }
        if !head.started {
            head.started = true;
            if STATUSES.iter().any(|s| line.starts_with(s)) {
                let code = line.get(9..12).and_then(|c| std::str::from_utf8(c).ok());
                match code.and_then(|c| c.parse::<u16>().ok()).filter(|c| (100..600).contains(c)) {
                    Some(c) => head.status = Some(c),
                    None => return self.stop(Why::NotHttp),
                }
            } else if !METHODS.iter().any(|m| line.starts_with(m)) {
                return self.stop(Why::NotHttp);
            }
        } else if let Some(value) = header_value(line, b"content-length") {
            let n = whole.then(|| parse_length(value)).flatten();
            match (n, head.content_length) {
                (Some(n), None) => head.content_length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => return self.stop(Why::BadLength),
            }
        } else if header_value(line, b"transfer-encoding").is_some() {
            head.transfer_encoding = true;
        }
        self.phase = Phase::Head(head);
        Ok(Cut { used, ended: None })
    }

    fn stop(&mut self, why: Why) -> Result<Cut, Unframed> {
        self.phase = Phase::Stop(why);
        Err(Unframed)
    }
}

impl Cutter for HttpCutter {
    fn push(&mut self, bytes: &[u8]) -> Result<Cut, Unframed> {
        if bytes.is_empty() {
            return match self.phase {
                Phase::Stop(_) => Err(Unframed),
                _ => Ok(Cut { used: 0, ended: None }),
            };
        }
        match self.phase {
            Phase::Stop(_) => Err(Unframed),
            Phase::Head(head) => self.head(head, bytes),
            Phase::Body { left } => {
                let n = left.min(bytes.len() as u64);
                let left = left - n;
                self.phase = if left == 0 { Phase::default() } else { Phase::Body { left } };
                Ok(Cut { used: n as usize, ended: (left == 0).then_some(Part::Message) })
            }
        }
    }
}

/// The body length after a whole header block, or why it cannot be framed.
fn body(head: &Head) -> Result<u64, Why> {
    match head.status {
        Some(101) => Err(Why::Switched),
        Some(100..=199 | 204 | 304) => Ok(0),
        _ if head.transfer_encoding => Err(Why::Chunked),
        _ => match (head.content_length, head.status) {
            (Some(n), _) => Ok(n),
            (None, None) => Ok(0),
            (None, Some(_)) => Err(Why::UntilClose),
        },
    }
}

/// A line without its CR LF (or bare LF).
fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The value of a header line named `name` (lowercase), if it is one.
fn header_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let head = line.get(..name.len())?;
    if !head.eq_ignore_ascii_case(name) || line.get(name.len()) != Some(&b':') {
        return None;
    }
    line.get(name.len() + 1..)
}

/// A Content-Length value: digits between optional blanks, at most 18 of them.
fn parse_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// What one direction's HTTP said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpReport {
    /// Request lines, in order (at most [`MAX_LINES`], each at most [`MAX_LINE_SHOWN`] bytes,
    /// lossily decoded; raw: the report escapes them).
    pub requests: Vec<String>,
    /// Status lines, likewise.
    pub statuses: Vec<String>,
    /// The first message's headers, name and value (at most [`MAX_HEADERS`]).
    pub headers: Vec<(String, String)>,
    /// The first request's Host header.
    pub host: Option<String>,
    /// Header blocks read: requests and responses.
    pub messages: u64,
    /// Body bytes: framed by Content-Length, or all after a block whose body is not framed.
    pub body_bytes: u64,
    /// Malformed messages, gaps, a direction cut off (at most [`MAX_ERRORS`]).
    pub errors: Vec<String>,
    /// Where framing ended for a reason that is not an error: a chunked body, a response read
    /// until close, a protocol switch.
    pub notes: Vec<String>,
}

/// Reads the messages of one HTTP/1.x direction.
#[derive(Debug, Default)]
pub struct HttpRecogniser {
    cutter: HttpCutter,
    /// The header block being read (at most [`MAX_HEAD`] bytes).
    head: Vec<u8>,
    /// All the rest of the direction is body.
    rest_is_body: bool,
    /// Message boundaries are lost: bytes are ignored.
    stopped: bool,
    at: u64,
    report: HttpReport,
}

impl HttpRecogniser {
    /// A recogniser at the start of a direction.
    pub fn new() -> Self {
        Self::default()
    }

    fn take(&mut self, offset: u64, mut bytes: &[u8]) {
        self.at = offset;
        while !self.stopped && !bytes.is_empty() {
            if self.rest_is_body {
                self.report.body_bytes += bytes.len() as u64;
                return;
            }
            let in_head = self.cutter.in_head();
            match self.cutter.push(bytes) {
                Ok(cut) => {
                    let (now, rest) = bytes.split_at(cut.used.min(bytes.len()));
                    if in_head {
                        self.head.extend_from_slice(now);
                    } else {
                        self.report.body_bytes += now.len() as u64;
                    }
                    if in_head && cut.ended.is_some() {
                        let head = std::mem::take(&mut self.head);
                        self.message(&head);
                        self.head = head;
                        self.head.clear();
                    }
                    self.at += now.len() as u64;
                    bytes = rest;
                }
                Err(Unframed) => {
                    let at = self.at;
                    let why = self.cutter.stopped().unwrap_or(Why::NotHttp);
                    if why.is_body() {
                        self.rest_is_body = true;
                        push(&mut self.report.notes, format!("at byte {at}: {}", why.says()));
                    } else {
                        self.stopped = true;
                        push(
                            &mut self.report.errors,
                            format!("at byte {at}: {}; the rest is not read", why.says()),
                        );
                    }
                }
            }
        }
    }

    /// A whole header block.
    fn message(&mut self, block: &[u8]) {
        self.report.messages += 1;
        let first = self.report.messages == 1;
        // Skip empty lines before the start line.
        let start = block.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(block.len());
        let block = block.get(start..).unwrap_or(&[]);
        let line_end = memchr::memchr(b'\n', block).unwrap_or(block.len());
        let line = shown(trim_eol(block.get(..line_end + 1).unwrap_or(block)), MAX_LINE_SHOWN);
        let mut headers = [httparse::EMPTY_HEADER; PARSE_HEADERS];
        let is_response = STATUSES.iter().any(|s| block.starts_with(s));
        let parsed = if is_response {
            let list = &mut self.report.statuses;
            if list.len() < MAX_LINES {
                list.push(line);
            }
            let mut response = httparse::Response::new(&mut headers);
            response.parse(block).map(|_| response.headers.len())
        } else {
            let list = &mut self.report.requests;
            if list.len() < MAX_LINES {
                list.push(line);
            }
            let mut request = httparse::Request::new(&mut headers);
            request.parse(block).map(|_| request.headers.len())
        };
        match parsed {
            Ok(n) => {
                let headers = headers.get(..n).unwrap_or(&[]);
                if first {
                    for h in headers.iter().take(MAX_HEADERS) {
                        let name = shown(h.name.as_bytes(), MAX_HEADER_SHOWN);
                        self.report.headers.push((name, shown(h.value, MAX_HEADER_SHOWN)));
                    }
                }
                if !is_response && self.report.host.is_none() {
                    let host = headers.iter().find(|h| h.name.eq_ignore_ascii_case("host"));
                    self.report.host = host.map(|h| shown(h.value, MAX_HEADER_SHOWN));
                }
            }
            Err(e) => {
                let at = self.at;
                push(&mut self.report.errors, format!("near byte {at}: a malformed message ({e})"));
            }
        }
    }

    fn lost(&mut self, offset: u64) {
        if !self.stopped && !self.rest_is_body {
            self.stopped = true;
            push(
                &mut self.report.errors,
                format!(
                    "bytes are missing from the capture at byte {offset}: messages after it are \
                     not read"
                ),
            );
        }
    }

    fn report(mut self) -> HttpReport {
        let cut_off = match self.cutter.phase {
            Phase::Head(h) => h.len > 0,
            Phase::Body { .. } => true,
            Phase::Stop(_) => false,
        };
        if !self.stopped && !self.rest_is_body && cut_off {
            let at = self.at;
            push(
                &mut self.report.errors,
                format!("the direction ends at byte {at} inside a message"),
            );
        }
        self.report
    }
}

/// Push `what` onto a bounded list.
fn push(list: &mut Vec<String>, what: String) {
    if list.len() < MAX_ERRORS {
        list.push(what);
    }
}

/// At most `max` bytes, lossily decoded.
fn shown(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(bytes.get(..max).unwrap_or(bytes)).into_owned()
}

impl Recogniser for HttpRecogniser {
    type Found = HttpReport;

    fn name(&self) -> &'static str {
        "http"
    }

    fn start_len(&self) -> usize {
        9
    }

    /// A known method and a space, or `HTTP/1.0 ` / `HTTP/1.1 `.
    fn start(&self, first_bytes: &[u8]) -> Start {
        if opens(first_bytes) {
            return Start::Yes;
        }
        let could = METHODS.iter().chain(STATUSES.iter()).any(|m| m.starts_with(first_bytes));
        if could { Start::More } else { Start::No }
    }

    fn data(&mut self, offset: u64, bytes: &[u8]) {
        self.take(offset, bytes);
    }

    fn gap(&mut self, offset: u64) {
        self.lost(offset);
    }

    fn finish(self) -> HttpReport {
        self.report()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::analyze::recognise::testing::{cut_all, read_all};

    const CLIENT: &[u8] = include_bytes!("../../../tests/data/streams/http-get-client.bin");
    const SERVER: &[u8] = include_bytes!("../../../tests/data/streams/http-get-server.bin");

    /// Cut lengths in pieces of `piece`, and whether the cutter gave up.
    fn cuts(bytes: &[u8], piece: usize) -> (Vec<usize>, bool) {
        let (cuts, gave_up) = cut_all(&mut HttpCutter::new(), bytes, piece);
        assert!(cuts.iter().all(|&(_, p)| p == Part::Message), "{cuts:?}");
        (cuts.into_iter().map(|(n, _)| n).collect(), gave_up)
    }

    fn read(bytes: &[u8], piece: usize) -> Option<HttpReport> {
        read_all(HttpRecogniser::new(), bytes, piece)
    }

    #[test]
    fn the_real_get_and_its_answer() {
        for piece in [1, 4, 4096] {
            assert_eq!(cuts(CLIENT, piece), (vec![127], false));
            assert_eq!(cuts(SERVER, piece), (vec![186, 44], false));
            let c = read(CLIENT, piece).unwrap();
            assert_eq!(c.requests, ["GET /hello.txt HTTP/1.1"]);
            assert_eq!(c.host.as_deref(), Some("127.0.0.1:9999"));
            assert_eq!(c.messages, 1);
            assert_eq!(c.body_bytes, 0);
            assert!(c.headers.iter().any(|(n, _)| n == "User-Agent"), "{:?}", c.headers);
            assert!(c.errors.is_empty(), "{:?}", c.errors);
            let s = read(SERVER, piece).unwrap();
            assert_eq!(s.statuses, ["HTTP/1.0 200 OK"]);
            assert_eq!(s.headers.len(), 5);
            assert_eq!(s.headers[3], ("Content-Length".to_string(), "44".to_string()));
            assert_eq!(s.host, None);
            assert_eq!(s.body_bytes, 44);
            assert!(s.errors.is_empty() && s.notes.is_empty(), "{s:?}");
        }
    }

    #[test]
    fn bodies_are_framed_by_content_length_only() {
        let two = b"\r\nPOST /a HTTP/1.1\r\ncontent-length:  3 \r\n\r\nabcHEAD / HTTP/1.0\n\n";
        assert_eq!(cuts(two, 1), (vec![43, 3, 17], false));
        let r = read(&two[2..], 3).unwrap();
        assert_eq!(r.requests, ["POST /a HTTP/1.1", "HEAD / HTTP/1.0"]);
        assert_eq!((r.messages, r.body_bytes), (2, 3));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(cuts(chunked, 1), (vec![47], true));
        let r = read(chunked, 7).unwrap();
        assert_eq!(r.body_bytes, 15);
        assert!(r.notes[0].contains("chunked"), "{r:?}");
        let until_close = b"HTTP/1.0 200 OK\r\n\r\nall of it";
        assert_eq!(cuts(until_close, 2), (vec![19], true));
        let no_content =
            b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\nHTTP/1.1 304 x\r\n\r\n";
        assert_eq!(cuts(no_content, 5), (vec![46, 18], false));
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\nhello\r\n",
        ] {
            assert!(cuts(bad, 1).1, "{}", String::from_utf8_lossy(bad));
        }
        let r = read(b"GET / HTTP/1.1\r\n\r\nhello\r\n", 100).unwrap();
        assert!(r.errors.iter().any(|e| e.contains("not a request")), "{:?}", r.errors);
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_HEAD + 10, b'a');
        assert_eq!(cuts(&long, 1000), (vec![], true));
        let r = read(&CLIENT[..100], 9).unwrap();
        assert!(r.errors.iter().any(|e| e.contains("inside a message")), "{:?}", r.errors);
    }

    #[test]
    fn opens_and_start() {
        assert!(opens(CLIENT) && opens(SERVER));
        assert!(opens(b"OPTIONS * HTTP/1.1\r\n"));
        assert!(!opens(b"GET"));
        assert!(!opens(b"HTTP/2 200\r\n"));
        assert!(!opens(b"get / HTTP/1.1\r\n"));
        assert!(!opens(b"SSH-2.0-x\r\n"));
        let r = HttpRecogniser::new();
        assert_eq!(r.start(b"HTTP/1."), Start::More);
        assert_eq!(r.start(b"GET /"), Start::Yes);
        assert_eq!(r.start(b"GETS"), Start::No);
        assert!(read(b"RCHT\0\0", 6).is_none());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
            text in "[A-Za-z0-9:\r\n -]{0,400}",
            piece in 1usize..64,
            start in 0usize..3,
        ) {
            let mut input = match start {
                0 => b"GET / HTTP/1.1\r\n".to_vec(),
                1 => b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n".to_vec(),
                _ => Vec::new(),
            };
            input.extend_from_slice(text.as_bytes());
            input.extend_from_slice(&bytes);
            let _ = read(&input, piece);
            prop_assert_eq!(cuts(&input, piece), cuts(&input, input.len().max(1)));
            let _ = opens(&input);
        }
    }
}
