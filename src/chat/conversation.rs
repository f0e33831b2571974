//! The conversation on an established [`Link`]: typed lines go out, received ones are shown,
//! and both sides close politely. Returns whether the person's input is still open, or why
//! the chat broke.
//!
//! Owns the rules of a running chat: lines typed before a peer arrived are sent first; a
//! goodbye is a half-close (we keep reading until the peer says goodbye too); a host refuses
//! extra connections while a chat runs; the recording is finished when the chat ends, however
//! it ends. All waiting happens on one channel of [`Event`]s, so Ctrl-C and a dead peer are
//! noticed wherever the chat is. The peer is read on a thread of its own.

use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use std::thread;
use std::time::{Duration, Instant};

use super::link::{
    Link, PeerEvent, explain_plain, finish_recording, goodbye, read_secure, refuse, send_text,
    unfinished_recording,
};
use super::record::Tap;
use super::terminal::{Input, Ui};
use super::transport::PeerReader;
use super::{ChatError, Event, Settings};
use crate::crypto::Identity;
use crate::protocol::secure::{Opener, Sealer};
use crate::protocol::wire::MAX_MESSAGE_LEN;

/// How long an interactive user who said goodbye waits for the peer's goodbye.
const LINGER_INTERACTIVE: Duration = Duration::from_secs(2);
/// How long a Ctrl-C waits for the peer's goodbye.
const LINGER_INTERRUPT: Duration = Duration::from_secs(1);

/// Where the conversation talks to the person: the event channel (both ends) and the screen.
#[derive(Debug, Clone, Copy)]
pub struct Console<'a> {
    /// Sends events to the loop (given to the peer's reader thread).
    pub tx: &'a Sender<Event>,
    /// The loop's events: typed lines, the peer, new connections.
    pub rx: &'a Receiver<Event>,
    /// The screen.
    pub ui: &'a Arc<Ui>,
}

/// What happened before the conversation started: lines typed while waiting, and whether
/// the person's input is still open.
#[derive(Debug, Default)]
pub struct Pending {
    /// Lines typed before the peer arrived, sent first.
    pub queued: Vec<String>,
    /// False when the input ended while waiting: say goodbye right after the queued lines.
    pub input_open: bool,
}

/// The conversation on `link` until both sides said goodbye, the peer left, or it broke.
/// Returns whether the person's input is still open (`Ok`) or why the chat broke (`Err`).
pub fn run(
    link: Link,
    pending: Pending,
    console: Console<'_>,
    settings: &Settings,
    me: Option<&Identity>,
) -> Result<bool, ChatError> {
    let Console { tx, rx, ui } = console;
    let Pending { queued, input_open } = pending;
    let Link { stream, reader, secure, peer_name, peer_addr, tap, .. } = link;
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
            let Some(event) = next_event(rx, linger) else { return Ok(()) };
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
                Event::Room(_) => {}
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

/// The next event, or `None` when the loop should end: the channel closed, or `linger` (the
/// end of the wait for the peer's goodbye, if one is under way) passed.
pub(crate) fn next_event(rx: &Receiver<Event>, linger: Option<Instant>) -> Option<Event> {
    match linger {
        Some(until) => rx.recv_timeout(until.saturating_duration_since(Instant::now())).ok(),
        None => rx.recv().ok(),
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
