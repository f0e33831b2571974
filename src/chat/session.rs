//! One chat from start to end: accepting candidates (host) or connecting (join), the
//! handshake that turns a socket into a [`Link`], and the event loop that sends typed lines,
//! shows received ones and closes politely.
//!
//! Owns the rules of a session: a host keeps waiting after a bad candidate and refuses
//! extra connections while a chat runs; lines typed before a peer arrives are sent once the
//! chat starts; a goodbye is a half-close (we keep reading until the peer says goodbye too);
//! a message leaves as its blocks, then its signature, and an incoming one is decrypted while
//! its signature is still on the way.
//! All waiting happens on one channel of [`Event`]s, so Ctrl-C and a dead peer are noticed
//! wherever the chat is. With `--record`, the connection's [`Tap`] is told of every byte
//! written here and of our FIN, and is finished when the chat ends, however it ends.

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use super::record::{Recording, Tap};
use super::terminal::{Input, Ui, stdio_is_terminal};
use super::transport::{PeerReader, ReadError, preview};
use super::{ChatError, Event, KeySource, Settings, net};
use crate::crypto::{self, Identity};
use crate::escape::text as escape;
use crate::protocol::secure::{Opener, Role, Sealer, Session, check_hello, hello_frame};
use crate::protocol::wire::{
    Auth, Busy, Bye, Frame, FrameType, HEADER_LEN, Hello, MAX_MESSAGE_LEN, Message, MessageBlocks,
};

/// How long a plaintext side waits for an encrypted peer's HELLO before it speaks.
const PLAINTEXT_GRACE: Duration = Duration::from_millis(400);
/// How long a write to the peer may block before the peer counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an interactive user who said goodbye waits for the peer's goodbye.
const LINGER_INTERACTIVE: Duration = Duration::from_secs(2);
/// How long a Ctrl-C waits for the peer's goodbye.
const LINGER_INTERRUPT: Duration = Duration::from_secs(1);
/// Candidates a host handshakes with at once; more are refused.
const MAX_CANDIDATES: usize = 4;

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
    stream: TcpStream,
    reader: PeerReader,
    secure: Option<(Sealer, Opener)>,
    peer_name: String,
    peer_addr: SocketAddr,
    tap: Option<Tap>,
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

/// Our key for this run, or none in plaintext mode.
fn load_identity(settings: &Settings, ui: &Ui) -> Result<Option<Arc<Identity>>, ChatError> {
    if settings.plaintext {
        return Ok(None);
    }
    if settings.allow_weak {
        ui.warn(
            "--allow-weak-keys: keys under 2048 bits are accepted. They can be broken; \
             use this only to reproduce a weak setup in a lab",
        );
    }
    let id = match &settings.key {
        KeySource::Fresh(bits) => Identity::generate(*bits)?,
        KeySource::File(path) => {
            let id = Identity::load(path)?;
            crypto::check_strength(
                &format!("the key in {}", path.display()),
                id.public().bits(),
                settings.allow_weak,
            )?;
            id
        }
    };
    Ok(Some(Arc::new(id)))
}

/// The first lines a side prints: its command, its mode, its key.
fn announce(ui: &Ui, command: &str, settings: &Settings, me: Option<&Identity>) {
    ui.status(format!("rchat {command}, {}", mode_line(settings)));
    if let Some(me) = me {
        ui.status(format!(
            "your key: {}-bit RSA, fingerprint {}",
            me.public().bits(),
            me.public().fingerprint
        ));
    }
}

fn mode_line(settings: &Settings) -> &'static str {
    if settings.plaintext {
        "PLAINTEXT mode: every line is sent as typed, readable by anyone on the network"
    } else {
        "encrypted mode: RSA-OAEP-SHA256 messages, each signed with RSA-PSS-SHA256"
    }
}

/// Run `rchat host`: listen, wait for one good peer, chat; with a recording, write that
/// peer's connection to it.
pub fn run_host(
    bind: Option<IpAddr>,
    port: u16,
    settings: Settings,
    mut recording: Option<Recording>,
) -> Result<(), ChatError> {
    let (tx, rx) = mpsc::channel();
    let ui = Ui::start(stdio_is_terminal(), &settings.name, tx.clone());
    let me = load_identity(&settings, &ui)?;
    let listeners = net::listen(bind, port)?;
    let port = listeners.first().and_then(|l| l.local_addr().ok()).map_or(port, |a| a.port());

    announce(&ui, "host", &settings, me.as_deref());
    let addrs: Vec<String> =
        listeners.iter().filter_map(|l| l.local_addr().ok()).map(|a| a.to_string()).collect();
    ui.status(format!("listening on port {port} ({})", addrs.join(", ")));
    let flags = if settings.plaintext { " --plaintext" } else { "" };
    let lan = match bind {
        Some(ip) if ip.is_loopback() => vec![],
        Some(ip) if !ip.is_unspecified() => vec![ip],
        _ => net::lan_addresses(),
    };
    if lan.is_empty() {
        ui.status(if bind.is_some_and(|ip| ip.is_loopback()) {
            "listening on loopback only: only this machine can join"
        } else {
            "no network address found: only this machine can join"
        });
    }
    for ip in &lan {
        ui.status(format!(
            "others can join with: rchat join {}{flags}",
            net::join_target(*ip, port)
        ));
    }
    if bind.is_none_or(|ip| ip.is_unspecified() || ip.is_loopback()) {
        let local = net::join_target(IpAddr::from([127, 0, 0, 1]), port);
        ui.status(format!("on this machine:       rchat join {local}{flags}"));
    }
    if let Some(me) = &me {
        ui.status(format!(
            "to refuse impostors the joiner can add: --peer-fingerprint {}",
            me.public().fingerprint
        ));
    }
    ui.status("waiting for a peer (Ctrl-C to stop)");

    for listener in listeners {
        let tx = tx.clone();
        thread::spawn(move || accept_loop(listener, &tx));
    }

    let mut queued = Vec::new();
    let mut input_open = true;
    let mut candidates = 0usize;
    let settings = Arc::new(settings);
    while let Ok(event) = rx.recv() {
        match event {
            Event::Input(Input::Line(line)) => queued.push(line),
            Event::Input(Input::End) => input_open = false,
            Event::Input(Input::Interrupt) => {
                ui.status("stopped waiting");
                return Ok(());
            }
            Event::Warning(w) => ui.warn(w),
            Event::Incoming(stream, addr) if candidates >= MAX_CANDIDATES => {
                ui.status(format!("refused a connection from {addr}: too many at once"));
                refuse(stream, settings.plaintext, "too many connections at once; try again");
            }
            Event::Incoming(stream, addr) => {
                candidates += 1;
                let (tx, me, settings, ui) = (tx.clone(), me.clone(), settings.clone(), ui.clone());
                // Every candidate is recorded in memory; only the one we chat with is kept.
                let tap = match (&recording, stream.local_addr()) {
                    (Some(_), Ok(local)) => Some(Tap::new(local, addr, false)),
                    _ => None,
                };
                thread::spawn(move || {
                    let result = establish(stream, addr, Role::Host, me, &settings, &ui, tap);
                    let _ = tx.send(Event::Handshake(addr, Box::new(result)));
                });
            }
            Event::Handshake(addr, result) => {
                candidates -= 1;
                match *result {
                    Ok(link) => {
                        if let (Some(tap), Some(file)) = (&link.tap, recording.take()) {
                            tap.attach(file);
                        }
                        let outcome =
                            chat(link, queued, input_open, &tx, &rx, &ui, &settings, me.as_deref());
                        return finish(outcome, &ui, &rx);
                    }
                    Err(e) => ui.status(format!(
                        "rejected a connection from {addr}: {e}; still waiting for a peer"
                    )),
                }
            }
            Event::Peer(_) => {}
        }
    }
    Ok(())
}

fn accept_loop(listener: TcpListener, tx: &Sender<Event>) {
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        let Ok(addr) = stream.peer_addr() else { continue };
        if tx.send(Event::Incoming(stream, addr)).is_err() {
            return;
        }
    }
}

/// Turn away a connection while busy: say why in the host's mode, then close politely
/// (reading what the client sent first, so the close does not reset the connection and
/// destroy the message).
fn refuse(stream: TcpStream, plaintext: bool, reason: &str) {
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

/// Run `rchat join`: connect, handshake, chat; with a recording, write the connection to it.
pub fn run_join(
    host: &str,
    port: u16,
    settings: Settings,
    recording: Option<Recording>,
) -> Result<(), ChatError> {
    let (tx, rx) = mpsc::channel();
    let ui = Ui::start(stdio_is_terminal(), &settings.name, tx.clone());
    let me = load_identity(&settings, &ui)?;
    announce(&ui, "join", &settings, me.as_deref());
    let stream = net::connect(host, port, net::CONNECT_TIMEOUT)?;
    let addr = stream.peer_addr().map_err(ChatError::Write)?;
    let tap = match recording {
        Some(file) => {
            let tap = Tap::new(stream.local_addr().map_err(ChatError::Write)?, addr, true);
            tap.attach(file);
            Some(tap)
        }
        None => None,
    };
    let link = match establish(stream, addr, Role::Joiner, me.clone(), &settings, &ui, tap.clone())
    {
        Ok(link) => link,
        Err(e) => {
            // The failed handshake is recorded too, closed like the connection was.
            unfinished_recording(tap.as_ref(), &ui);
            return Err(e);
        }
    };
    let outcome = chat(link, Vec::new(), true, &tx, &rx, &ui, &settings, me.as_deref());
    finish(outcome, &ui, &rx)
}

/// After the chat: a person at a terminal whose line editor is still waiting presses Enter,
/// so the terminal is given back in the state it was found.
fn finish(
    outcome: Result<bool, ChatError>,
    ui: &Ui,
    rx: &Receiver<Event>,
) -> Result<(), ChatError> {
    let input_open = match &outcome {
        Ok(open) => *open,
        Err(_) => true,
    };
    if ui.is_interactive() && input_open {
        match &outcome {
            Ok(_) => ui.status("the chat is over: press Enter to exit"),
            Err(e) => ui.status(format!("error: {e} (press Enter to exit)")),
        }
        while let Ok(event) = rx.recv() {
            if matches!(event, Event::Input(_)) {
                break;
            }
        }
    }
    outcome.map(|_| ())
}

/// Handshake on a fresh connection: HELLO both ways, checks, AUTH both ways. In plaintext
/// mode, only make sure the peer is not an encrypted rchat. `tap` (when there is one) is told
/// every byte that crosses the socket from the first, and is kept in the [`Link`] for the rest
/// of the chat.
pub fn establish(
    stream: TcpStream,
    peer_addr: SocketAddr,
    role: Role,
    me: Option<Arc<Identity>>,
    settings: &Settings,
    ui: &Ui,
    tap: Option<Tap>,
) -> Result<Link, ChatError> {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut reader =
        PeerReader::new(stream.try_clone().map_err(ChatError::Write)?, settings.frame_timeout)
            .with_tap(tap.clone());
    let Some(me) = me else {
        if reader.peer_speaks_rchat(PLAINTEXT_GRACE)? {
            return Err(ChatError::EncryptedPeer);
        }
        let peer_name = peer_addr.to_string();
        return Ok(Link { stream, reader, secure: None, peer_name, peer_addr, tap });
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
    let my_hello = hello_frame(&me, &settings.name).to_bytes();
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
    let session = Session::new(me, peer, peer_name.clone(), role, host_hello, joiner_hello);
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
    Ok(Link { stream, reader, secure: Some(session.split()), peer_name, peer_addr, tap })
}

/// The error for a BUSY frame, its peer-chosen reason escaped for the terminal.
fn busy(body: &[u8]) -> Result<ChatError, ChatError> {
    Ok(ChatError::Busy(escape(&Busy::decode(body)?.reason).into_owned()))
}

/// Write bytes to the peer: the one place the chat writes to its socket.
fn write_frame(mut stream: &TcpStream, tap: Option<&Tap>, bytes: &[u8]) -> Result<(), ChatError> {
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
fn send_text(
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
fn goodbye(
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
fn finish_recording(tap: Option<&Tap>) -> Result<(), ChatError> {
    tap.map_or(Ok(()), Tap::finish).map_err(ChatError::from)
}

/// Finish the recording after a broken connection, whose error is the one to report: a
/// broken recording is then a warning, so that it does not go unsaid.
fn unfinished_recording(tap: Option<&Tap>, ui: &Ui) {
    if let Err(e) = finish_recording(tap) {
        ui.warn(e.to_string());
    }
}

/// The chat itself. Returns whether the person's input is still open (`Ok`) or why the
/// chat broke (`Err`).
#[allow(clippy::too_many_arguments)]
fn chat(
    link: Link,
    queued: Vec<String>,
    input_open: bool,
    tx: &Sender<Event>,
    rx: &Receiver<Event>,
    ui: &Arc<Ui>,
    settings: &Settings,
    me: Option<&Identity>,
) -> Result<bool, ChatError> {
    let Link { stream, reader, secure, peer_name, peer_addr, tap } = link;
    let (mut sealer, opener) = match secure {
        Some((s, o)) => (Some(s), Some(o)),
        None => (None, None),
    };
    match (&sealer, me) {
        (Some(s), Some(me)) => {
            let peer = s.session().peer();
            ui.status(format!("connected to {peer_name} ({peer_addr}), {}-bit key", peer.bits()));
            let theirs = format!("{peer_name}'s fingerprint:");
            let width = theirs.chars().count().max("your fingerprint:".len());
            ui.status(format!("  {:<width$} {}", "your fingerprint:", me.public().fingerprint));
            ui.status(format!("  {theirs:<width$} {}", peer.fingerprint));
            ui.status(
                "  compare them aloud with your peer: if they differ, someone is in the middle",
            );
        }
        _ => ui.status(format!(
            "connected to {peer_addr} in PLAINTEXT: anyone on the network can read this chat"
        )),
    }
    ui.status("type a message and press Enter; /quit or Ctrl-D to leave");

    reader_thread(reader, opener, tx.clone(), ui.clone(), settings.explain);
    let mut out = Outgoing {
        stream: &stream,
        tap: tap.as_ref(),
        sealer: sealer.as_mut(),
        ui,
        explain: settings.explain,
    };
    let mut input_open = input_open;
    let mut said_bye = false;
    let mut peer_gone = false;
    let mut linger: Option<Instant> = None;
    let result = (|| {
        for line in queued {
            out.send(&line)?;
        }
        if !input_open {
            out.goodbye()?;
            said_bye = true;
        }
        loop {
            if said_bye && peer_gone {
                return Ok(());
            }
            // After our goodbye, a person (or a Ctrl-C) waits a moment for the peer's; a
            // script waits as long as the peer keeps talking.
            let event = match linger {
                Some(until) => {
                    match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                        Ok(e) => e,
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                            return Ok(());
                        }
                    }
                }
                None => match rx.recv() {
                    Ok(e) => e,
                    Err(_) => return Ok(()),
                },
            };
            match event {
                Event::Input(Input::Line(line)) if !said_bye => out.send(&line)?,
                Event::Input(Input::Line(_)) => {}
                Event::Input(end) => {
                    input_open = false;
                    if !said_bye {
                        out.goodbye()?;
                        said_bye = true;
                    }
                    if end == Input::Interrupt {
                        linger = Some(Instant::now() + LINGER_INTERRUPT);
                    } else if ui.is_interactive() {
                        linger = Some(Instant::now() + LINGER_INTERACTIVE);
                    }
                }
                Event::Warning(w) => ui.warn(w),
                Event::Incoming(stream, addr) => {
                    ui.status(format!("refused a connection from {addr}: already in a chat"));
                    refuse(stream, settings.plaintext, "this host is already in a chat");
                }
                Event::Handshake(addr, result) => {
                    if let Ok(link) = *result {
                        ui.status(format!("refused a connection from {addr}: already in a chat"));
                        refuse(link.stream, settings.plaintext, "this host is already in a chat");
                    }
                }
                Event::Peer(PeerEvent::Message(text)) => ui.incoming(&peer_name, &text),
                Event::Peer(PeerEvent::Bye) => {
                    ui.status(format!("{peer_name} left"));
                    peer_gone = true;
                    if ui.is_interactive() && !said_bye {
                        out.goodbye()?;
                        said_bye = true;
                    }
                }
                Event::Peer(PeerEvent::Closed) => {
                    if out.sealer.is_some() && !said_bye {
                        return Err(ChatError::Dropped);
                    }
                    if out.sealer.is_none() {
                        ui.status(format!("{peer_name} left (connection closed)"));
                    }
                    peer_gone = true;
                    if ui.is_interactive() && !said_bye {
                        out.goodbye()?;
                        said_bye = true;
                    }
                }
                Event::Peer(PeerEvent::Error(e)) => return Err(e),
            }
        }
    })();
    // Also wakes the reader thread, which reads from a clone of this socket.
    let _ = stream.shutdown(Shutdown::Both);
    match result {
        // A broken recording of a good chat is the error to report.
        Ok(()) => finish_recording(tap.as_ref()).map(|()| input_open),
        Err(e) => {
            unfinished_recording(tap.as_ref(), ui);
            Err(e)
        }
    }
}

/// The sending side of a chat.
struct Outgoing<'a> {
    stream: &'a TcpStream,
    tap: Option<&'a Tap>,
    sealer: Option<&'a mut Sealer>,
    ui: &'a Ui,
    explain: bool,
}

impl Outgoing<'_> {
    fn send(&mut self, text: &str) -> Result<(), ChatError> {
        if text.len() > MAX_MESSAGE_LEN {
            self.ui.warn(format!(
                "that message is {} bytes; the limit is {MAX_MESSAGE_LEN}: not sent",
                text.len()
            ));
            return Ok(());
        }
        let sealer = self.sealer.as_deref_mut();
        if let Some(explained) = send_text(self.stream, self.tap, sealer, text, self.explain)? {
            self.ui.status(explained);
        }
        self.ui.sent(text);
        Ok(())
    }

    /// Say goodbye: a signed BYE in encrypted mode, then close our sending direction.
    fn goodbye(&mut self) -> Result<(), ChatError> {
        let explain = self.explain.then_some(self.ui);
        goodbye(self.stream, self.tap, self.sealer.as_deref_mut(), explain)
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

/// Read the peer's frames or lines on a thread of their own, reporting each as an event.
/// The thread ends at the peer's goodbye or close, or when the chat shuts the socket down.
fn reader_thread(
    mut reader: PeerReader,
    opener: Option<Opener>,
    tx: Sender<Event>,
    ui: Arc<Ui>,
    explain: bool,
) {
    thread::spawn(move || {
        let send = |e: PeerEvent| tx.send(Event::Peer(e)).is_ok();
        match opener {
            Some(mut opener) => loop {
                let shown = explain.then_some(&*ui);
                let event = match read_secure(&mut reader, &mut opener, shown) {
                    Ok(e) => e,
                    Err(e) => PeerEvent::Error(e),
                };
                let last = !matches!(event, PeerEvent::Message(_));
                if !send(event) || last {
                    return;
                }
            },
            None => loop {
                let event = match reader.read_line() {
                    Ok(Some(line)) => {
                        if explain {
                            let mut wire = line.clone();
                            wire.push(b'\n');
                            ui.status(explain_plain("received", &wire));
                        }
                        PeerEvent::Message(String::from_utf8_lossy(&line).into_owned())
                    }
                    Ok(None) => PeerEvent::Closed,
                    Err(e) => PeerEvent::Error(e.into()),
                };
                let last = !matches!(event, PeerEvent::Message(_));
                if !send(event) || last {
                    return;
                }
            },
        }
    });
}

/// Read and check one frame; `explain` is where `--explain` output goes, if anywhere.
fn read_secure(
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
