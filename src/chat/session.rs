//! One chat from start to end: `host` listens and handshakes with candidates until one
//! succeeds, `join` connects; either hands its [`Link`](super::link::Link) to the conversation and gives the
//! terminal back when it is over.
//!
//! Owns the rules of waiting: a host keeps waiting after a bad candidate, handshakes with
//! many candidates at once ([`Candidates`]: silent ones make room for newcomers); lines typed before a peer arrives are kept
//! for the conversation; the `--record` file is given to the connection the chat is with.

use std::net::{IpAddr, TcpListener};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;

use super::candidates::{Admission, Candidates, MAX_CANDIDATES, MAX_PER_SOURCE};
use super::conversation::{self, Console, Pending};
use super::link::{Local, establish, establish_heard, refuse, unfinished_recording};
use super::record::{Recording, Tap};
use super::terminal::{Input, Ui, stdio_is_terminal};
use super::{ChatError, Event, KeySource, Settings, net, room};
use crate::crypto::{self, Identity};
use crate::protocol::secure::Role;

/// Our key for this run, or none in plaintext mode.
pub(super) fn load_identity(
    settings: &Settings,
    ui: &Ui,
) -> Result<Option<Arc<Identity>>, ChatError> {
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
pub(super) fn announce(ui: &Ui, command: &str, settings: &Settings, me: Option<&Identity>) {
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
    let listeners = listen_and_announce(bind, port, &settings, me.as_deref(), &ui, "host")?;
    ui.status("waiting for a peer (Ctrl-C to stop)");

    for listener in listeners {
        let tx = tx.clone();
        thread::spawn(move || accept_loop(listener, &tx));
    }

    let mut queued = Vec::new();
    let mut input_open = true;
    let mut candidates = Candidates::new();
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
            Event::Incoming(stream, addr) => {
                let admission = match stream.try_clone() {
                    Ok(handle) => candidates.admit(addr, handle),
                    Err(_) => Admission::Refused,
                };
                let heard = match admission {
                    Admission::Refused => {
                        ui.status(format!(
                            "refused a connection from {addr}: {} handshakes under way (at most \
                             {MAX_CANDIDATES}, {MAX_PER_SOURCE} from one address), all of them \
                             talking",
                            candidates.len()
                        ));
                        refuse(
                            stream,
                            settings.plaintext,
                            "too many connections at once; try again",
                        );
                        continue;
                    }
                    Admission::Admitted { heard, dropped } => {
                        if let Some(old) = dropped {
                            ui.status(format!(
                                "closed the connection from {old}: it had sent nothing, and \
                                 {addr} needed its place"
                            ));
                        }
                        heard
                    }
                };
                let (tx, me, settings, ui) = (tx.clone(), me.clone(), settings.clone(), ui.clone());
                // Every candidate is recorded in memory; only the one we chat with is kept.
                let tap = match (&recording, stream.local_addr()) {
                    (Some(_), Ok(local)) => Some(Tap::new(local, addr, false)),
                    _ => None,
                };
                thread::spawn(move || {
                    let local = Local {
                        role: Role::Host,
                        me: me.as_ref(),
                        settings: &settings,
                        ui: &ui,
                        room: false,
                    };
                    let result = establish_heard(stream, addr, local, tap, Some(heard));
                    let _ = tx.send(Event::Handshake(addr, Box::new(result)));
                });
            }
            Event::Handshake(addr, result) => {
                if !candidates.finished(addr) {
                    continue;
                }
                match *result {
                    Ok(link) => {
                        if let (Some(tap), Some(file)) = (&link.tap, recording.take()) {
                            tap.attach(file);
                        }
                        let pending = Pending { queued, input_open };
                        let console = Console { tx: &tx, rx: &rx, ui: &ui };
                        let outcome =
                            conversation::run(link, pending, console, &settings, me.as_deref());
                        return finish(outcome, &ui, &rx);
                    }
                    Err(e) => ui.status(format!(
                        "rejected a connection from {addr}: {e}; still waiting for a peer"
                    )),
                }
            }
            Event::Peer(_) | Event::Room(_) => {}
        }
    }
    Ok(())
}

/// Open the listening sockets and print the first lines of a host: its mode and key, where
/// it listens, and how others join.
pub(super) fn listen_and_announce(
    bind: Option<IpAddr>,
    port: u16,
    settings: &Settings,
    me: Option<&Identity>,
    ui: &Ui,
    command: &str,
) -> Result<Vec<TcpListener>, ChatError> {
    let listeners = net::listen(bind, port)?;
    let port = listeners.first().and_then(|l| l.local_addr().ok()).map_or(port, |a| a.port());

    announce(ui, command, settings, me);
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
    if let Some(me) = me {
        ui.status(format!(
            "to refuse impostors the joiner can add: --peer-fingerprint {}",
            me.public().fingerprint
        ));
    }
    Ok(listeners)
}

pub(super) fn accept_loop(listener: TcpListener, tx: &Sender<Event>) {
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        let Ok(addr) = stream.peer_addr() else { continue };
        if tx.send(Event::Incoming(stream, addr)).is_err() {
            return;
        }
    }
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
    let local =
        Local { role: Role::Joiner, me: me.as_ref(), settings: &settings, ui: &ui, room: false };
    let link = match establish(stream, addr, local, tap.clone()) {
        Ok(link) => link,
        Err(e) => {
            // The failed handshake is recorded too, closed like the connection was.
            unfinished_recording(tap.as_ref(), &ui);
            return Err(e);
        }
    };
    let console = Console { tx: &tx, rx: &rx, ui: &ui };
    let pending = Pending { queued: Vec::new(), input_open: true };
    let outcome = match (&me, link.room) {
        (Some(me), true) => room::member::run(link, pending, console, &settings, me),
        (None, true) => room::member::run_plain(link, pending, console, &settings),
        _ => conversation::run(link, pending, console, &settings, me.as_deref()),
    };
    finish(outcome, &ui, &rx)
}

/// After the chat: a person at a terminal whose line editor is still waiting presses Enter,
/// so the terminal is given back in the state it was found.
pub(super) fn finish(
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
