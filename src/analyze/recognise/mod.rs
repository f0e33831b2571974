//! Stage 3, recognising: one direction's in-order bytes come in; what they say in a protocol
//! the analysis knows goes out: rchat's own frames ([`rchat`]), TLS ([`tls`]), SSH ([`ssh`]),
//! HTTP/1.x ([`http`]), and length-prefixed frames ([`prefix`]), each module also giving the
//! protocol's [`Cutter`] and an `opens` test on a direction's first bytes.
//!
//! Every protocol is one module behind one small trait, [`Recogniser`]: it is asked about the
//! first bytes of a direction ([`Recogniser::start`], at most [`MAX_START`] of them), and only
//! a direction it claims is read by it; [`Watch`] does that for every recogniser alike, so a
//! direction that is not its protocol costs one comparison per piece. A recogniser keeps at
//! most one message's bytes at a time and a bounded list of what it found; it must never
//! buffer a whole stream, never see where bytes lie in the capture file, and never decide
//! whether the bytes are readable (that is `classify`'s work).

pub mod http;
pub mod keys;
pub mod prefix;
pub mod raw_rsa;
pub mod rchat;
pub mod ssh;
pub mod tls;

use serde::Serialize;

/// The most first bytes a recogniser may ask to see before it says whether a direction is its
/// protocol.
pub const MAX_START: usize = 16;

/// What a recogniser says about a direction from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The direction carries this protocol: read it.
    Yes,
    /// It does not: ignore the rest of the direction.
    No,
    /// Too few bytes yet to tell.
    More,
}

/// One protocol's reader of one direction.
pub trait Recogniser {
    /// What it found in a direction that carries its protocol.
    type Found;
    /// The protocol's name.
    fn name(&self) -> &'static str;
    /// The most first bytes [`Recogniser::start`] needs (at most [`MAX_START`]): with that
    /// many and still [`Start::More`], the direction is not this protocol.
    fn start_len(&self) -> usize;
    /// Whether a direction opening with `first_bytes` (all its bytes so far, up to
    /// [`Recogniser::start_len`]) carries this protocol.
    fn start(&self, first_bytes: &[u8]) -> Start;
    /// The direction's next in-order bytes, from stream offset `offset`, once it was claimed
    /// (the first bytes included: they are handed over once claimed).
    fn data(&mut self, offset: u64, bytes: &[u8]);
    /// Bytes of a claimed direction are missing from the capture from `offset` on.
    fn gap(&mut self, offset: u64);
    /// What the claimed direction said.
    fn finish(self) -> Self::Found;
}

/// Whether a [`Watch`] has heard enough to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Undecided,
    Claimed,
    Ignored,
}

/// A recogniser watching one direction: it keeps the first bytes until the recogniser says
/// whether the direction is its protocol, then hands it the direction or ignores the rest.
///
/// The recogniser and the kept bytes are boxed and dropped once it ignores the direction: a
/// capture of many connections keeps them only for those still undecided or claimed.
#[derive(Debug)]
pub struct Watch<R> {
    /// `None` once ignored.
    watching: Option<Box<Watching<R>>>,
    claimed: bool,
}

#[derive(Debug)]
struct Watching<R> {
    recogniser: R,
    /// The direction's first bytes, while undecided.
    first: [u8; MAX_START],
    first_len: usize,
    /// Stream offset of the first byte.
    first_offset: u64,
}

impl<R: Recogniser> Watch<R> {
    /// Watch a direction with `recogniser`.
    pub fn new(recogniser: R) -> Self {
        let watching =
            Watching { recogniser, first: [0; MAX_START], first_len: 0, first_offset: 0 };
        Watch { watching: Some(Box::new(watching)), claimed: false }
    }

    /// The direction's next in-order bytes, from stream offset `offset`.
    #[inline]
    pub fn data(&mut self, offset: u64, bytes: &[u8]) {
        let Some(w) = self.watching.as_deref_mut() else { return };
        if self.claimed {
            w.recogniser.data(offset, bytes);
            return;
        }
        match w.first_bytes(offset, bytes) {
            State::Claimed => self.claimed = true,
            State::Ignored => self.watching = None,
            State::Undecided => {}
        }
    }

    /// Bytes are missing from the capture from `offset` on.
    pub fn gap(&mut self, offset: u64) {
        if let Some(w) = self.watching.as_deref_mut().filter(|_| self.claimed) {
            w.recogniser.gap(offset);
        }
    }

    /// Whether the direction turned out not to be the recogniser's protocol.
    pub fn ignored(&self) -> bool {
        self.watching.is_none()
    }

    /// What the direction said, if it was the recogniser's protocol.
    pub fn finish(self) -> Option<R::Found> {
        let w = self.watching.filter(|_| self.claimed)?;
        Some(w.recogniser.finish())
    }
}

impl<R: Recogniser> Watching<R> {
    /// Bytes while undecided: keep them, ask, and hand them over once claimed.
    fn first_bytes(&mut self, offset: u64, bytes: &[u8]) -> State {
        if self.first_len == 0 {
            self.first_offset = offset;
        }
        let want = self.recogniser.start_len().min(MAX_START);
        let take = want.saturating_sub(self.first_len).min(bytes.len());
        if let (Some(to), Some(from)) =
            (self.first.get_mut(self.first_len..self.first_len + take), bytes.get(..take))
        {
            to.copy_from_slice(from);
        }
        self.first_len += take;
        let first = self.first.get(..self.first_len).unwrap_or(&[]);
        match self.recogniser.start(first) {
            Start::Yes => {
                let first = self.first;
                self.recogniser.data(self.first_offset, first.get(..self.first_len).unwrap_or(&[]));
                let rest = bytes.get(take..).unwrap_or(&[]);
                if !rest.is_empty() {
                    self.recogniser.data(offset + take as u64, rest);
                }
                State::Claimed
            }
            Start::More if self.first_len < want => State::Undecided,
            Start::No | Start::More => State::Ignored,
        }
    }
}

/// What part of a conversation a message is. Only [`Part::Message`] parts are what the people
/// sent; the verdict of a direction judges those, and names the others beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// What a person (or the program for them) sent: text, ciphertext, a request.
    #[default]
    Message,
    /// Key material: a public key, a certificate, a private key, rchat's HELLO.
    Key,
    /// A protocol's setup: a TLS handshake record, an SSH banner or key exchange packet,
    /// rchat's AUTH.
    Handshake,
    /// A protocol's bookkeeping that carries no message: a TLS change-cipher-spec or alert
    /// record, rchat's BYE or BUSY.
    Framing,
}

impl Part {
    /// Lowercase name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Part::Message => "message",
            Part::Key => "key",
            Part::Handshake => "handshake",
            Part::Framing => "framing",
        }
    }
}

/// One step of a [`Cutter`]: how many of the bytes given belong to the message being cut, and
/// whether it ended with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Bytes taken from the start of those given (all of them unless a message ended).
    pub used: usize,
    /// The message ended after `used` bytes: what part it was.
    pub ended: Option<Part>,
}

/// From here on the bytes are not framed the way the cutter reads them: a header no sender of
/// the protocol would write, or lengths the protocol encrypts from now on (SSH after NEWKEYS).
/// The rest of the direction is cut by the sender's writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unframed;

/// Cuts a direction that carries a protocol into its messages by the protocol's own framing
/// (TLS records, SSH packets, length prefixes), bounded state, no bytes kept but a header.
pub trait Cutter {
    /// The direction's next in-order bytes: takes bytes from their start, at least one when
    /// `bytes` is not empty, and stops where a message ends.
    fn push(&mut self, bytes: &[u8]) -> Result<Cut, Unframed>;
    /// The part of the message being cut, once its header has said (`None` until then).
    fn part(&self) -> Option<Part> {
        None
    }
}

/// A protocol whose own framing cuts a direction into messages (see [`framing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// TLS records.
    Tls,
    /// SSH's identification line and clear-text packets, up to NEWKEYS.
    Ssh,
    /// HTTP/1.x header blocks and bodies of known length.
    Http,
    /// A big-endian length of this many bytes (2 or 4) before each message.
    LengthPrefix(u8),
}

/// Whether a direction opening with `prefix` (its first bytes, up to 512; `writes` are the
/// offsets in it where the sender started a new write, 0 included) carries a protocol whose
/// framing cuts it into messages, and the cutter that does.
pub fn framing(prefix: &[u8], writes: &[usize]) -> Option<(Framing, Box<dyn Cutter + Send>)> {
    if tls::opens(prefix) {
        return Some((Framing::Tls, Box::new(tls::TlsCutter::new())));
    }
    if ssh::opens(prefix) {
        return Some((Framing::Ssh, Box::new(ssh::SshCutter::new())));
    }
    if http::opens(prefix) {
        return Some((Framing::Http, Box::new(http::HttpCutter::new())));
    }
    let width = prefix::opens(prefix, writes)?;
    Some((Framing::LengthPrefix(width), Box::new(prefix::PrefixCutter::new(width))))
}

/// What a direction said in a protocol other than rchat's (rchat's has its own [`Watch`]).
#[derive(Debug, Clone)]
pub enum Protocol {
    /// TLS.
    Tls(tls::TlsReport),
    /// SSH.
    Ssh(ssh::SshReport),
    /// HTTP/1.x.
    Http(http::HttpReport),
}

/// The recognisers of TLS, SSH and HTTP watching one direction; made at its first byte, so a
/// connection that sends nothing costs nothing, and dropped once none of them claimed it.
#[derive(Debug)]
pub struct Protocols {
    watches: Option<Box<Watches>>,
    /// None of them claimed the direction.
    none: bool,
}

#[derive(Debug)]
struct Watches {
    tls: Watch<tls::TlsRecogniser>,
    ssh: Watch<ssh::SshRecogniser>,
    http: Watch<http::HttpRecogniser>,
}

impl Default for Protocols {
    fn default() -> Self {
        Self::new()
    }
}

impl Protocols {
    /// Recognisers that have seen nothing.
    pub fn new() -> Self {
        Protocols { watches: None, none: false }
    }

    /// The direction's next in-order bytes, from stream offset `offset`.
    pub fn data(&mut self, offset: u64, bytes: &[u8]) {
        if bytes.is_empty() || self.none {
            return;
        }
        let w = self.watches.get_or_insert_with(|| {
            Box::new(Watches {
                tls: Watch::new(tls::TlsRecogniser::new()),
                ssh: Watch::new(ssh::SshRecogniser::new()),
                http: Watch::new(http::HttpRecogniser::new()),
            })
        });
        w.tls.data(offset, bytes);
        w.ssh.data(offset, bytes);
        w.http.data(offset, bytes);
        if w.tls.ignored() && w.ssh.ignored() && w.http.ignored() {
            self.watches = None;
            self.none = true;
        }
    }

    /// Bytes are missing from the capture from `offset` on.
    pub fn gap(&mut self, offset: u64) {
        if let Some(w) = &mut self.watches {
            w.tls.gap(offset);
            w.ssh.gap(offset);
            w.http.gap(offset);
        }
    }

    /// The protocol the direction spoke, if one claimed it.
    pub fn finish(self) -> Option<Protocol> {
        let w = *self.watches?;
        w.tls
            .finish()
            .map(Protocol::Tls)
            .or_else(|| w.ssh.finish().map(Protocol::Ssh))
            .or_else(|| w.http.finish().map(Protocol::Http))
    }
}

/// What the recognisers' tests share: feeding bytes in pieces.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Cut, Cutter, Part, Recogniser, Watch};

    /// Every message `cutter` cuts `bytes` into, fed in pieces of `piece` bytes: its length and
    /// part, and whether the cutter gave up (unframed).
    pub(crate) fn cut_all(
        cutter: &mut impl Cutter,
        bytes: &[u8],
        piece: usize,
    ) -> (Vec<(usize, Part)>, bool) {
        let (mut out, mut len) = (Vec::new(), 0);
        for mut chunk in bytes.chunks(piece) {
            while !chunk.is_empty() {
                let Ok(Cut { used, ended }) = cutter.push(chunk) else { return (out, true) };
                assert!(used > 0 && used <= chunk.len());
                len += used;
                chunk = &chunk[used..];
                if let Some(part) = ended {
                    out.push((len, part));
                    len = 0;
                }
            }
        }
        (out, false)
    }

    /// What `recogniser` finds in `bytes`, fed through a [`Watch`] in pieces of `piece` bytes.
    pub(crate) fn read_all<R: Recogniser>(
        recogniser: R,
        bytes: &[u8],
        piece: usize,
    ) -> Option<R::Found> {
        let mut watch = Watch::new(recogniser);
        let mut off = 0;
        for chunk in bytes.chunks(piece) {
            watch.data(off, chunk);
            off += chunk.len() as u64;
        }
        watch.finish()
    }
}
