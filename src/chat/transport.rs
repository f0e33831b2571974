//! Reading the peer's bytes off a socket with limits: whole frames (encrypted mode) or
//! lines (plaintext mode), each with a deadline once it has started, and the check that
//! tells the two modes apart from the first bytes.
//!
//! Owns every read from the peer's socket. It allocates a frame body only after the header
//! has been checked against the per-type limit, and never buffers more than one frame or
//! one 64 KiB line. It knows nothing of keys, but lets its caller look at a frame's first
//! bytes while the rest is still on its way (the chat decrypts a message's blocks then).
//! With `--record`, every byte it reads (and the end of the stream) is reported to the
//! connection's [`Tap`] as it arrives.

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::record::Tap;
use crate::protocol::deframe::{Front, front};
use crate::protocol::wire::{Frame, FrameType, HEADER_LEN, MAGIC, MAX_MESSAGE_LEN, WireError};

/// Why reading from the peer stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer closed the connection between frames or lines.
    #[error("the connection was closed")]
    Closed,
    /// The peer closed the connection in the middle of a frame.
    #[error("the peer disconnected in the middle of a frame ({have} of {need} bytes received)")]
    ClosedMidFrame {
        /// Bytes of the frame received.
        have: usize,
        /// Bytes the frame needed.
        need: usize,
    },
    /// Nothing (more) arrived in time.
    #[error("the peer went silent: the {what} did not arrive in time")]
    Timeout {
        /// What we were waiting for.
        what: &'static str,
    },
    /// The bytes are not an rchat frame: the peer is probably in plaintext mode.
    #[error("the peer sent bytes that are not rchat frames ({preview})")]
    NotRchat {
        /// The first bytes, escaped.
        preview: String,
    },
    /// A frame header or body broke the format.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A plaintext line over 64 KiB.
    #[error("the peer sent a line longer than 64 KiB")]
    LineTooLong,
    /// The operating system reported an error.
    #[error("{0}")]
    Io(io::Error),
}

/// A buffered reader over the peer's socket.
#[derive(Debug)]
pub struct PeerReader {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    frame_timeout: Duration,
    tap: Option<Tap>,
    /// Set at the first byte read (see [`PeerReader::with_heard`]).
    heard: Option<Arc<AtomicBool>>,
}

const READ_CHUNK: usize = 16 * 1024;

/// What [`ReadError::Timeout`] names when no byte of a new frame arrived.
pub const NEXT_FRAME: &str = "next frame";
/// What [`ReadError::Timeout`] names when a frame started but did not finish.
pub const REST_OF_FRAME: &str = "rest of the frame";

impl PeerReader {
    /// Wrap a socket (a clone used only for reading).
    pub fn new(stream: TcpStream, frame_timeout: Duration) -> Self {
        PeerReader {
            stream,
            buf: Vec::with_capacity(READ_CHUNK),
            start: 0,
            frame_timeout,
            tap: None,
            heard: None,
        }
    }

    /// Set `heard` when the first byte arrives: a host tells the candidates that have sent
    /// something from those that only hold a connection open.
    pub fn with_heard(mut self, heard: Option<Arc<AtomicBool>>) -> Self {
        self.heard = heard;
        self
    }

    /// Report every byte read, and the end of the stream, to `tap`.
    pub fn with_tap(mut self, tap: Option<Tap>) -> Self {
        self.tap = tap;
        self
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Bytes read from the socket and not consumed yet.
    pub fn buffered(&self) -> usize {
        self.available().len()
    }

    /// Read more bytes, waiting until `deadline` (forever when `None`). Returns the count
    /// (0 = end of stream).
    fn fill(&mut self, deadline: Option<Instant>, what: &'static str) -> Result<usize, ReadError> {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > READ_CHUNK {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK, 0);
        let result = loop {
            let timeout = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break Err(ReadError::Timeout { what });
                    }
                    Some(left)
                }
                None => None,
            };
            if let Err(e) = self.stream.set_read_timeout(timeout) {
                break Err(ReadError::Io(e));
            }
            match self.stream.read(&mut self.buf[old..]) {
                Ok(n) => break Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
                {
                    continue;
                }
                Err(e) => break Err(ReadError::Io(e)),
            }
        };
        let n = *result.as_ref().unwrap_or(&0);
        self.buf.truncate(old + n);
        if let Some(heard) = self.heard.as_ref().filter(|_| n > 0) {
            heard.store(true, Ordering::Relaxed);
        }
        if let (Some(tap), Ok(got)) = (&self.tap, &result) {
            match got {
                0 => tap.peer_closed(),
                _ => tap.received(&self.buf[old..]),
            }
        }
        result
    }

    /// Read one whole frame. Nothing may take past `deadline` (no limit when `None`), and
    /// once a frame's first byte arrived, the rest must arrive within the frame timeout.
    pub fn read_frame(&mut self, deadline: Option<Instant>) -> Result<Frame, ReadError> {
        self.read_frame_with(deadline, |_, _| {})
    }

    /// Like [`PeerReader::read_frame`], and each time part of a frame's body has arrived
    /// but not all of it, show `early` the frame type and the body so far before waiting
    /// for more: work on the first bytes can overlap the wait for the last. The time
    /// `early` takes does not count against the frame timeout.
    pub fn read_frame_with(
        &mut self,
        deadline: Option<Instant>,
        mut early: impl FnMut(FrameType, &[u8]),
    ) -> Result<Frame, ReadError> {
        let started = !self.available().is_empty();
        let mut body_deadline = started.then(|| Instant::now() + self.frame_timeout);
        loop {
            let have = self.available();
            // The protocol's deframer: a wrong magic is refused as soon as the first byte
            // that differs is in, a header as soon as its 10 bytes are.
            match front(have) {
                Err(WireError::BadMagic(_)) => {
                    return Err(ReadError::NotRchat { preview: preview(have) });
                }
                Err(e) => return Err(e.into()),
                Ok(Front::Whole { header, len }) => {
                    let body = have.get(HEADER_LEN..len).unwrap_or_default().to_vec();
                    self.start += len;
                    return Ok(Frame { kind: header.kind, body });
                }
                Ok(Front::Partial { header: Some(header) }) => {
                    let began = Instant::now();
                    early(header.kind, have.get(HEADER_LEN..).unwrap_or_default());
                    let spent = began.elapsed();
                    body_deadline = body_deadline.map(|d| d + spent);
                }
                Ok(Front::Partial { header: None }) => {}
            }
            let empty = have.is_empty();
            // Inside a frame both limits hold: the frame's own and the caller's.
            let wait = if empty {
                deadline
            } else {
                match (deadline, body_deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            };
            let what = if empty { NEXT_FRAME } else { REST_OF_FRAME };
            let got = self.fill(wait, what)?;
            if got == 0 {
                let have = self.available().len();
                if have == 0 {
                    return Err(ReadError::Closed);
                }
                let need = match front(self.available()) {
                    Ok(Front::Partial { header: Some(h) }) => HEADER_LEN + h.len as usize,
                    _ => HEADER_LEN,
                };
                return Err(ReadError::ClosedMidFrame { have, need });
            }
            if body_deadline.is_none() {
                body_deadline = Some(Instant::now() + self.frame_timeout);
            }
        }
    }

    /// Wait up to `grace` for the peer's first bytes and report whether they open an rchat
    /// frame. Consumes nothing. Used by plaintext mode to spot an encrypted peer.
    pub fn peer_speaks_rchat(&mut self, grace: Duration) -> Result<bool, ReadError> {
        self.starts_with(&MAGIC, Instant::now() + grace)
    }

    /// Wait up to `deadline` for the peer's first bytes to show whether they begin with
    /// `prefix`. Consumes nothing.
    pub fn starts_with(&mut self, prefix: &[u8], deadline: Instant) -> Result<bool, ReadError> {
        while self.available().len() < prefix.len() {
            let have = self.available();
            if have != &prefix[..have.len()] {
                return Ok(false);
            }
            match self.fill(Some(deadline), "first bytes") {
                Ok(0) | Err(ReadError::Timeout { .. }) => return Ok(false),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.available().starts_with(prefix))
    }

    /// Read one line (without its `\n` or `\r\n`). `Ok(None)` at the end of the stream; a
    /// last line without a newline is returned first.
    pub fn read_line(&mut self) -> Result<Option<Vec<u8>>, ReadError> {
        self.read_line_by(None)
    }

    /// [`PeerReader::read_line`], waiting no later than `deadline` (then
    /// [`ReadError::Timeout`], keeping what arrived).
    pub fn read_line_by(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<Vec<u8>>, ReadError> {
        let mut searched = 0;
        loop {
            let have = self.available();
            if let Some(i) = have[searched..].iter().position(|&b| b == b'\n') {
                let end = searched + i;
                let mut line = have[..end].to_vec();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.start += end + 1;
                return Ok(Some(line));
            }
            searched = have.len();
            if searched > MAX_MESSAGE_LEN + 1 {
                return Err(ReadError::LineTooLong);
            }
            if self.fill(deadline, "line")? == 0 {
                let rest = self.available().to_vec();
                self.start = self.buf.len();
                return Ok(if rest.is_empty() { None } else { Some(rest) });
            }
        }
    }
}

/// The first bytes of a stream as a short escaped string, e.g. `"hello\n"`.
pub fn preview(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(24)];
    let mut s = String::from("\"");
    s.push_str(&String::from_utf8_lossy(cut).escape_debug().to_string());
    s.push('"');
    if bytes.len() > cut.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::wire::{Busy, FrameType};
    use std::io::Write;
    use std::net::TcpListener;

    fn pair() -> (TcpStream, PeerReader) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, PeerReader::new(b, Duration::from_millis(300)))
    }

    #[test]
    fn frames_split_across_writes_are_reassembled() {
        let (mut w, mut r) = pair();
        let f = Busy { reason: "busy".into() }.to_frame().to_bytes();
        w.write_all(&f[..3]).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        w.write_all(&f[3..]).unwrap();
        w.write_all(&f).unwrap();
        assert_eq!(r.read_frame(None).unwrap().kind, FrameType::Busy);
        assert_eq!(r.read_frame(None).unwrap().kind, FrameType::Busy);
        drop(w);
        assert!(matches!(r.read_frame(None), Err(ReadError::Closed)));
    }

    #[test]
    fn the_start_of_a_frame_is_shown_early_and_that_work_is_not_counted_as_waiting() {
        let (mut w, mut r) = pair();
        let f = Busy { reason: "x".repeat(200) }.to_frame().to_bytes();
        let (seen_tx, seen_rx) = std::sync::mpsc::channel();
        // The writer holds back the frame's last byte until the reader has seen the rest.
        let head = f[..f.len() - 1].to_vec();
        let last = f[f.len() - 1..].to_vec();
        let writer = std::thread::spawn(move || {
            w.write_all(&head).unwrap();
            let shown: usize = seen_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            w.write_all(&last).unwrap();
            shown
        });
        let mut calls = Vec::new();
        let frame = r
            .read_frame_with(None, |kind, body| {
                calls.push((kind, body.len()));
                if body.len() == f.len() - HEADER_LEN - 1 {
                    // Work longer than the 300 ms frame timeout: it must not count.
                    std::thread::sleep(Duration::from_millis(400));
                    seen_tx.send(body.len()).unwrap();
                }
            })
            .unwrap();
        assert_eq!(frame.to_bytes(), f);
        assert_eq!(writer.join().unwrap(), f.len() - HEADER_LEN - 1);
        assert!(calls.iter().all(|&(kind, _)| kind == FrameType::Busy), "{calls:?}");
    }

    #[test]
    fn a_frame_that_arrived_whole_is_not_shown_early() {
        let (mut w, mut r) = pair();
        let f = Busy { reason: "busy".into() }.to_frame().to_bytes();
        w.write_all(&f).unwrap();
        let frame = r.read_frame_with(None, |_, body| panic!("shown early: {body:?}")).unwrap();
        assert_eq!(frame.to_bytes(), f);
    }

    #[test]
    fn plaintext_bytes_are_spotted_at_once() {
        let (mut w, mut r) = pair();
        w.write_all(b"hi\n").unwrap();
        match r.read_frame(None) {
            Err(ReadError::NotRchat { preview }) => assert_eq!(preview, "\"hi\\n\""),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn silence_after_a_header_times_out() {
        let (mut w, mut r) = pair();
        let f = Busy { reason: "busy".into() }.to_frame().to_bytes();
        w.write_all(&f[..HEADER_LEN]).unwrap();
        assert!(matches!(r.read_frame(None), Err(ReadError::Timeout { .. })));
    }

    #[test]
    fn truncated_frames_and_lines() {
        let (mut w, mut r) = pair();
        let f = Busy { reason: "busy".into() }.to_frame().to_bytes();
        w.write_all(&f[..12]).unwrap();
        drop(w);
        assert!(matches!(r.read_frame(None), Err(ReadError::ClosedMidFrame { have: 12, .. })));
        let (mut w, mut r) = pair();
        w.write_all(b"one\r\ntwo\n\nlast").unwrap();
        drop(w);
        assert_eq!(r.read_line().unwrap().unwrap(), b"one");
        assert_eq!(r.read_line().unwrap().unwrap(), b"two");
        assert_eq!(r.read_line().unwrap().unwrap(), b"");
        assert_eq!(r.read_line().unwrap().unwrap(), b"last");
        assert!(r.read_line().unwrap().is_none());
    }

    #[test]
    fn rchat_peers_are_recognised_without_consuming() {
        let (mut w, mut r) = pair();
        w.write_all(b"RC").unwrap();
        w.write_all(b"HT\x01").unwrap();
        assert!(r.peer_speaks_rchat(Duration::from_millis(200)).unwrap());
        let (mut w, mut r) = pair();
        w.write_all(b"hello\n").unwrap();
        assert!(!r.peer_speaks_rchat(Duration::from_millis(200)).unwrap());
        assert_eq!(r.read_line().unwrap().unwrap(), b"hello");
        let (_w, mut r) = pair();
        assert!(!r.peer_speaks_rchat(Duration::from_millis(50)).unwrap());
    }
}
