//! A connected, handshaken peer: [`establish`] runs the handshake on a fresh socket and
//! yields a [`Link`] (the socket, the reader with its limits, and in encrypted mode the
//! session's keys, transcript binding and sequence numbers); a link sends, receives, says
//! goodbye and closes. The two-person chat and the demo use one link each; it holds nothing
//! about terminals or other connections, so anything that needs several peers can hold one
//! link per peer.
//!
//! Owns every write to a peer's socket (`write_frame`): a message leaves as its blocks, then
//! its signature, and an incoming one is decrypted while its signature is still on the way. With
//! `--record`, the connection's [`Tap`] is told of every byte written here and of our FIN.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread;
use std::time::{Duration, Instant};

use super::record::Tap;
use super::terminal::Ui;
use super::transport::{PeerReader, ReadError, preview};
use super::{ChatError, Settings};
use crate::crypto::Identity;
use crate::escape::text as escape;
use crate::protocol::secure::{
    Opener, Role, Sealer, Session, check_hello, hello_frame, room_hello_frame,
};
use crate::protocol::wire::{
    Auth, Busy, Bye, Frame, FrameType, HEADER_LEN, Hello, MODE_ROOM, Message, MessageBlocks,
};

/// The first line a plaintext room's host writes on every connection: how a joiner knows it
/// entered a room (see `docs/PROTOCOL.md`).
pub const ROOM_GREETING: &str =
    "* rchat room, PLAINTEXT: everything said here can be read by anyone on the network\n";

/// How long a plaintext side waits for an encrypted peer's HELLO before it speaks.
const PLAINTEXT_GRACE: Duration = Duration::from_millis(400);
/// How long a write to the peer may block before the peer counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Our side of a handshake: which end of the connection we are, our key (none in plaintext
/// mode), the settings, and where `--explain` notes go.
#[derive(Debug, Clone, Copy)]
pub struct Local<'a> {
    /// Host (accepted the connection) or joiner (opened it).
    pub role: Role,
    /// Our key; `None` in plaintext mode.
    pub me: Option<&'a Arc<Identity>>,
    /// The chat's settings (timeouts, pin, weak keys, name, `--explain`).
    pub settings: &'a Settings,
    /// Where `--explain` notes go.
    pub ui: &'a Ui,
    /// We host a room: our HELLO says so (mode 02), or in plaintext our greeting does.
    pub room: bool,
}

/// What the peer's reader thread reports.
#[derive(Debug)]
pub enum PeerEvent {
    /// A message, checked and decrypted.
    Message(String),
    /// The peer said goodbye (encrypted mode).
    Bye,
    /// The peer closed the connection.
    Closed,
    /// The peer broke the protocol or the connection failed.
    Error(ChatError),
}

/// A connected, handshaken peer.
#[derive(Debug)]
pub struct Link {
    pub(super) stream: TcpStream,
    pub(super) reader: PeerReader,
    pub(super) secure: Option<(Sealer, Opener)>,
    pub(super) peer_name: String,
    pub(super) peer_addr: SocketAddr,
    pub(super) tap: Option<Tap>,
    /// The connection is a room's: the host's HELLO said mode 02 (or, in plaintext, its first
    /// line is the room's greeting).
    pub(super) room: bool,
}

impl Link {
    /// The name the peer announced (encrypted mode) or its address (plaintext mode).
    pub fn peer_name(&self) -> &str {
        &self.peer_name
    }

    /// Send one message without a terminal: encrypt and sign it, or write it as a line.
    pub fn send(&mut self, text: &str) -> Result<(), ChatError> {
        let sealer = self.secure.as_mut().map(|(sealer, _)| sealer);
        send_text(&self.stream, self.tap.as_ref(), sealer, text, false).map(drop)
    }

    /// Like [`Link::send`], and return what `--explain` says about the bytes sent.
    pub fn send_explained(&mut self, text: &str) -> Result<String, ChatError> {
        let sealer = self.secure.as_mut().map(|(sealer, _)| sealer);
        let explained = send_text(&self.stream, self.tap.as_ref(), sealer, text, true)?;
        Ok(explained.unwrap_or_default())
    }

    /// Say goodbye without a terminal: a signed BYE in encrypted mode, then close our
    /// sending direction. Keep calling [`Link::receive`] for the peer's goodbye.
    pub fn goodbye(&mut self) -> Result<(), ChatError> {
        let sealer = self.secure.as_mut().map(|(sealer, _)| sealer);
        goodbye(&self.stream, self.tap.as_ref(), sealer, None)
    }

    /// Close the connection and finish its recording, if it has one.
    pub fn close(self) -> Result<(), ChatError> {
        let _ = self.stream.shutdown(Shutdown::Both);
        finish_recording(self.tap.as_ref())
    }

    /// Wait for the peer's next message, goodbye or close, without a terminal.
    pub fn receive(&mut self) -> Result<PeerEvent, ChatError> {
        match &mut self.secure {
            Some((_, opener)) => read_secure(&mut self.reader, opener, None),
            None => Ok(match self.reader.read_line()? {
                Some(line) => PeerEvent::Message(String::from_utf8_lossy(&line).into_owned()),
                None => PeerEvent::Closed,
            }),
        }
    }
}

/// Handshake on a fresh connection: HELLO both ways, checks, AUTH both ways. In plaintext
/// mode, only make sure the peer is not an encrypted rchat. `tap` (when there is one) is told
/// every byte that crosses the socket from the first, and is kept in the [`Link`] for the rest
/// of the chat.
pub fn establish(
    stream: TcpStream,
    peer_addr: SocketAddr,
    local: Local<'_>,
    tap: Option<Tap>,
) -> Result<Link, ChatError> {
    establish_heard(stream, peer_addr, local, tap, None)
}

/// [`establish`], setting `heard` when the peer's first byte arrives.
pub fn establish_heard(
    stream: TcpStream,
    peer_addr: SocketAddr,
    local: Local<'_>,
    tap: Option<Tap>,
    heard: Option<Arc<AtomicBool>>,
) -> Result<Link, ChatError> {
    let Local { role, me, settings, ui, room } = local;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut reader =
        PeerReader::new(stream.try_clone().map_err(ChatError::Write)?, settings.frame_timeout)
            .with_tap(tap.clone())
            .with_heard(heard);
    let Some(me) = me else {
        if room {
            // Greet at once: an encrypted joiner then hears plaintext and says so.
            write_frame(&stream, tap.as_ref(), ROOM_GREETING.as_bytes())?;
        }
        if reader.peer_speaks_rchat(PLAINTEXT_GRACE)? {
            return Err(ChatError::EncryptedPeer);
        }
        // Nothing heard during the grace: a two-person host, with no need to wait longer.
        let grace = if reader.buffered() > 0 { PLAINTEXT_GRACE } else { Duration::ZERO };
        let room = room
            || (role == Role::Joiner
                && reader.starts_with(ROOM_GREETING.as_bytes(), Instant::now() + grace)?);
        let peer_name = peer_addr.to_string();
        return Ok(Link { stream, reader, secure: None, peer_name, peer_addr, tap, room });
    };

    let deadline = Instant::now() + settings.handshake_timeout;
    let secs = settings.handshake_timeout.as_secs_f64();
    // `after_hello`: the peer already sent its HELLO, so it speaks rchat; if it hangs up
    // now, it most likely refused our key.
    let read = |reader: &mut PeerReader, after_hello: bool| {
        reader.read_frame(Some(deadline)).map_err(|e| match e {
            ReadError::Closed if after_hello => ChatError::HandshakeRefused,
            ReadError::Closed => ChatError::HandshakeClosed,
            // The handshake deadline passed; otherwise the frame deadline fired first and
            // keeps its own message.
            ReadError::Timeout { .. } if Instant::now() >= deadline => {
                ChatError::HandshakeTimeout(secs)
            }
            other => other.into(),
        })
    };
    let my_hello = match room {
        true => room_hello_frame(me, &settings.name),
        false => hello_frame(me, &settings.name),
    }
    .to_bytes();
    write_frame(&stream, tap.as_ref(), &my_hello)?;
    if settings.explain {
        ui.status(format!(
            "wire: sent HELLO, {} bytes: our name and our {}-bit public key ({} bytes), in the clear",
            my_hello.len(),
            me.public().bits(),
            me.public().spki_der.len()
        ));
    }
    let frame = read(&mut reader, false)?;
    let hello = match frame.kind {
        FrameType::Hello => Hello::decode(&frame.body)?,
        FrameType::Busy if role == Role::Joiner => return Err(busy(&frame.body)?),
        kind => return Err(ChatError::Unexpected { kind, when: "instead of a HELLO" }),
    };
    let peer = check_hello(&hello, settings.allow_weak, settings.pin.as_ref())?;
    let room = room || (role == Role::Joiner && hello.mode == MODE_ROOM);
    let peer_hello = frame.to_bytes();
    if settings.explain {
        ui.status(format!(
            "wire: received HELLO, {} bytes: the peer's name and {}-bit public key, in the clear",
            peer_hello.len(),
            peer.bits()
        ));
    }
    let (host_hello, joiner_hello) = match role {
        Role::Host => (&my_hello, &peer_hello),
        Role::Joiner => (&peer_hello, &my_hello),
    };
    let peer_name = match hello.name.trim() {
        "" => "peer".to_owned(),
        name => escape(name).into_owned(),
    };
    let session = Session::new(me.clone(), peer, peer_name.clone(), role, host_hello, joiner_hello);
    let auth = session.auth()?.to_frame().to_bytes();
    write_frame(&stream, tap.as_ref(), &auth)?;
    let frame = read(&mut reader, true)?;
    match frame.kind {
        FrameType::Auth => session.check_auth(&Auth::decode(&frame.body)?)?,
        FrameType::Busy if role == Role::Joiner => return Err(busy(&frame.body)?),
        kind => return Err(ChatError::Unexpected { kind, when: "instead of an AUTH" }),
    }
    if settings.explain {
        ui.status(format!(
            "wire: sent and received AUTH ({} bytes each way): each side's RSA-PSS signature \
             over both HELLOs proves it holds its private key",
            auth.len()
        ));
    }
    Ok(Link { stream, reader, secure: Some(session.split()), peer_name, peer_addr, tap, room })
}

/// The error for a BUSY frame, its peer-chosen reason escaped for the terminal.
pub(super) fn busy(body: &[u8]) -> Result<ChatError, ChatError> {
    Ok(ChatError::Busy(escape(&Busy::decode(body)?.reason).into_owned()))
}

/// Turn away a connection while busy: say why in the host's mode, then close politely
/// (reading what the client sent first, so the close does not reset the connection and
/// destroy the message).
pub(super) fn refuse(stream: TcpStream, plaintext: bool, reason: &str) {
    let bytes = if plaintext {
        format!("rchat: {reason}\n").into_bytes()
    } else {
        Busy { reason: reason.into() }.to_frame().to_bytes()
    };
    thread::spawn(move || {
        let mut stream = stream;
        let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
        let _ = stream.write_all(&bytes);
        let _ = stream.shutdown(Shutdown::Write);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut sink = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match stream.read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    });
}

/// Write bytes to the peer: the one place the chat writes to its socket.
pub(super) fn write_frame(
    mut stream: &TcpStream,
    tap: Option<&Tap>,
    bytes: &[u8],
) -> Result<(), ChatError> {
    stream.write_all(bytes).map_err(ChatError::Write)?;
    if let Some(tap) = tap {
        tap.sent(bytes);
    }
    Ok(())
}

/// Send `text` (a signed MESSAGE frame, or the line itself) and, when `explain` asks for it,
/// return what `--explain` says about the bytes sent.
///
/// A MESSAGE goes out in two writes: the header and ciphertext blocks as soon as they are
/// encrypted, then the signature once it is computed. The peer decrypts the blocks while
/// we sign, which halves the time a message takes to arrive.
pub(super) fn send_text(
    stream: &TcpStream,
    tap: Option<&Tap>,
    sealer: Option<&mut Sealer>,
    text: &str,
    explain: bool,
) -> Result<Option<String>, ChatError> {
    match sealer {
        Some(sealer) => {
            let mut msg = sealer.encrypt(text)?;
            let head = msg.frame_head(sealer.signature_len());
            write_frame(stream, tap, &head)?;
            sealer.sign(&mut msg)?;
            let tail = msg.frame_tail();
            write_frame(stream, tap, &tail)?;
            Ok(explain.then(|| {
                let explained = explain_message("sent", &msg, head.len() + tail.len());
                format!(
                    "{explained}; sent as {} + {} bytes: the blocks at once, the signature once computed",
                    head.len(),
                    tail.len()
                )
            }))
        }
        None => {
            let mut bytes = text.as_bytes().to_vec();
            bytes.push(b'\n');
            write_frame(stream, tap, &bytes)?;
            Ok(explain.then(|| explain_plain("sent", &bytes)))
        }
    }
}

/// Say goodbye: a signed BYE in encrypted mode, then close our sending direction.
pub(super) fn goodbye(
    stream: &TcpStream,
    tap: Option<&Tap>,
    sealer: Option<&mut Sealer>,
    explain: Option<&Ui>,
) -> Result<(), ChatError> {
    if let Some(sealer) = sealer {
        let bye = sealer.bye()?.to_frame().to_bytes();
        if let Some(ui) = explain {
            ui.status(format!("wire: sent BYE, {} bytes, signed", bye.len()));
        }
        write_frame(stream, tap, &bye)?;
    }
    match stream.shutdown(Shutdown::Write) {
        Ok(()) => {
            if let Some(tap) = tap {
                tap.we_closed();
            }
            Ok(())
        }
        // The peer already closed: nothing is left to tell it.
        Err(e) if e.kind() == std::io::ErrorKind::NotConnected => Ok(()),
        Err(e) => Err(ChatError::Write(e)),
    }
}

/// Finish a recording (a no-op without one).
pub(super) fn finish_recording(tap: Option<&Tap>) -> Result<(), ChatError> {
    tap.map_or(Ok(()), Tap::finish).map_err(ChatError::from)
}

/// Finish the recording after a broken connection, whose error is the one to report: a
/// broken recording is then a warning, so that it does not go unsaid.
pub(super) fn unfinished_recording(tap: Option<&Tap>, ui: &Ui) {
    if let Err(e) = finish_recording(tap) {
        ui.warn(e.to_string());
    }
}

/// What `--explain` prints for an encrypted message.
pub fn explain_message(dir: &str, msg: &Message, total: usize) -> String {
    let head: Vec<String> = msg.blocks.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "wire: {dir} MESSAGE #{}, {total} bytes = {HEADER_LEN}-byte header + {} RSA-OAEP block(s) of {} bytes + {}-byte RSA-PSS signature + 14 bytes of fields; ciphertext begins {} …",
        msg.seq,
        msg.block_count(),
        msg.block_len,
        msg.signature.len(),
        head.join(" ")
    )
}

/// What `--explain` prints for a plaintext line.
pub fn explain_plain(dir: &str, bytes: &[u8]) -> String {
    let head: Vec<String> = bytes.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let more = if bytes.len() > 16 { " …" } else { "" };
    format!(
        "wire: {dir} {} bytes in the clear: {}{more} = {}",
        bytes.len(),
        head.join(" "),
        preview(bytes)
    )
}

/// Read and check one frame; `explain` is where `--explain` output goes, if anywhere.
pub(super) fn read_secure(
    reader: &mut PeerReader,
    opener: &mut Opener,
    explain: Option<&Ui>,
) -> Result<PeerEvent, ChatError> {
    // Decrypt a message's blocks while its signature is still on the way; the result is
    // used only once the whole frame has been checked.
    let mut early = None;
    let read = reader.read_frame_with(None, |kind, body| {
        if kind == FrameType::Message && early.is_none() {
            early = MessageBlocks::peek(body).and_then(|blocks| opener.decrypt_early(blocks));
        }
    });
    let frame: Frame = match read {
        Ok(f) => f,
        Err(ReadError::Closed) => return Ok(PeerEvent::Closed),
        Err(e) => return Err(e.into()),
    };
    match frame.kind {
        FrameType::Message => {
            let msg = Message::decode(&frame.body)?;
            if let Some(ui) = explain {
                ui.status(explain_message("received", &msg, HEADER_LEN + frame.body.len()));
            }
            Ok(PeerEvent::Message(opener.open_with(&msg, early)?))
        }
        FrameType::Bye => {
            opener.open_bye(&Bye::decode(&frame.body)?)?;
            Ok(PeerEvent::Bye)
        }
        FrameType::Busy => Err(busy(&frame.body)?),
        kind => Err(ChatError::Unexpected { kind, when: "during the chat" }),
    }
}
