//! A member's side of a room, once the handshake showed the host holds one: who is here
//! (the ROSTER, then JOINED and LEFT), every message as `[time] NAME: text`, `/who` with
//! fingerprints, `/msg NAME TEXT`, and a polite goodbye.
//!
//! Owns the member's checks on what the relay sends: every notice is signed by the host over
//! this connection's transcript, every message by its sender, checked with the sender's key
//! from the roster, never the relay's. The roster lives with the reader thread, which applies
//! notices in the order they came; the loop that sends reads a copy of it. In a plaintext
//! room, lines are shown as the host wrote them, escaped, and typed lines are sent as they are.

use std::collections::BTreeMap;
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{CLOSED_NOTICE, Command, RoomEvent};
use crate::chat::conversation::{Console, Pending, next_event};
use crate::chat::link::{Link, busy, finish_recording, goodbye, unfinished_recording, write_frame};
use crate::chat::record::Tap;
use crate::chat::terminal::{Input, Ui};
use crate::chat::transport::{PeerReader, ReadError};
use crate::chat::{ChatError, Event, Settings};
use crate::crypto::{Identity, PeerKey};
use crate::escape::text as escape;
use crate::protocol::room_secure::{RoomOpener, seal};
use crate::protocol::room_wire::{Joined, Left, MAX_ROOM_TEXT, Member, RoomMessage, Roster};
use crate::protocol::secure::{Opener, SecurityError};
use crate::protocol::wire::{Bye, Frame, FrameType, HEADER_LEN};

/// How long a member who said goodbye waits for the host's.
const LINGER: Duration = Duration::from_secs(2);

/// What a member's reader thread reports.
#[derive(Debug)]
pub enum Update {
    /// The ROSTER arrived: our name in the room, and who else is here.
    Entered {
        /// Our name in this room.
        name: String,
        /// Everyone else.
        others: Vec<String>,
    },
    /// Someone entered.
    Joined(String, String),
    /// Someone left, and how.
    Left(String, String),
    /// A message, checked: sender, private, text, and with `--explain` what came on the wire.
    Message(String, bool, String, Option<String>),
    /// A plaintext room's line.
    Line(String),
    /// The host closed the room (its goodbye, or its FIN in plaintext).
    HostLeft,
    /// The connection closed without a goodbye.
    Closed,
    /// The relay broke the protocol.
    Error(ChatError),
}

/// Who is in the room, as the relay said: id, name, key.
#[derive(Debug, Default)]
struct View {
    room_id: [u8; 32],
    me: u16,
    members: BTreeMap<u16, (String, PeerKey)>,
}

/// The encrypted room, from `link` on: until we or the host leave. Returns whether the
/// person's input is still open, or why the room broke.
pub fn run(
    link: Link,
    pending: Pending,
    console: Console<'_>,
    settings: &Settings,
    me: &Arc<Identity>,
) -> Result<bool, ChatError> {
    let Console { tx, rx, ui } = console;
    let Link { stream, reader, secure, peer_name, peer_addr, tap, .. } = link;
    let Some((mut sealer, opener)) = secure else {
        return Err(ChatError::Demo("an encrypted room needs an encrypted link".into()));
    };
    ui.status(format!(
        "joined the room of {peer_name} ({peer_addr}); relay's fingerprint {}",
        sealer.session().peer().fingerprint
    ));
    let view = Arc::new(Mutex::new(View::default()));
    {
        let (view, tx, me) = (view.clone(), tx.clone(), me.clone());
        let explain = settings.explain;
        thread::spawn(move || read_room(reader, opener, &view, &tx, me, explain));
    }
    let mut queued = pending.queued;
    let mut input_open = pending.input_open;
    let mut entered = false;
    let mut said_bye = false;
    let mut linger: Option<Instant> = None;
    let mut next_seq = 0u64;
    let result = (|| {
        loop {
            let Some(event) = next_event(rx, linger) else { return Ok(()) };
            let say = |line: &str, seq: &mut u64| {
                send_line(&stream, tap.as_ref(), &view, me, ui, line, seq, settings.explain)
            };
            // Our goodbye, once.
            let mut leave = |said_bye: &mut bool| -> Result<(), ChatError> {
                if !*said_bye {
                    let explain = settings.explain.then_some(&**ui);
                    goodbye(&stream, tap.as_ref(), Some(&mut sealer), explain)?;
                    *said_bye = true;
                }
                Ok(())
            };
            match event {
                Event::Input(Input::Line(line)) if !entered => queued.push(line),
                Event::Input(Input::Line(line)) if !said_bye => {
                    if !say(&line, &mut next_seq)? {
                        leave(&mut said_bye)?;
                        linger = Some(Instant::now() + LINGER);
                    }
                }
                Event::Input(Input::Line(_)) => {}
                Event::Input(_) => {
                    input_open = false;
                    leave(&mut said_bye)?;
                    linger = Some(Instant::now() + LINGER);
                }
                Event::Warning(w) => ui.warn(w),
                Event::Room(RoomEvent::Update(update)) => match update {
                    Update::Entered { name, others } => {
                        entered = true;
                        if name != settings.name {
                            ui.status(format!(
                                "the name {} is taken in this room: you are {name}",
                                escape(&settings.name)
                            ));
                        }
                        ui.status(match others.is_empty() {
                            true => "nobody else is here yet".to_owned(),
                            false => format!("in the room: {}", others.join(", ")),
                        });
                        ui.status(
                            "type to write to everyone, /msg NAME TEXT to one, /who for names and \
                             fingerprints, /quit to leave",
                        );
                        for line in std::mem::take(&mut queued) {
                            say(&line, &mut next_seq)?;
                        }
                        if !input_open {
                            leave(&mut said_bye)?;
                        }
                    }
                    Update::Joined(name, fp) => ui.status(format!("{name} joined ({fp})")),
                    Update::Left(name, why) => match why.as_str() {
                        "left" => ui.status(format!("{name} left")),
                        _ => ui.status(format!("{name} left: {why}")),
                    },
                    Update::Message(from, private, text, explained) => {
                        if let Some(explained) = explained {
                            ui.status(explained);
                        }
                        ui.room_message(&from, &text, private)
                    }
                    Update::Line(_) => {}
                    // After our goodbye, the host's is its answer: the room goes on.
                    Update::HostLeft if said_bye => return Ok(()),
                    Update::HostLeft => {
                        ui.status("the host closed the room");
                        leave(&mut said_bye)?;
                        return Ok(());
                    }
                    Update::Closed if said_bye => return Ok(()),
                    Update::Closed => return Err(ChatError::Dropped),
                    Update::Error(e) => return Err(e),
                },
                Event::Incoming(..) | Event::Handshake(..) | Event::Peer(_) | Event::Room(_) => {}
            }
        }
    })();
    let _ = stream.shutdown(Shutdown::Both);
    match result {
        Ok(()) => finish_recording(tap.as_ref()).map(|()| input_open),
        Err(e) => {
            unfinished_recording(tap.as_ref(), ui);
            Err(e)
        }
    }
}

/// A typed line: a message to everyone or to one, or `/who`. Returns false on `/quit`.
#[allow(clippy::too_many_arguments)]
fn send_line(
    stream: &TcpStream,
    tap: Option<&Tap>,
    view: &Mutex<View>,
    me: &Identity,
    ui: &Ui,
    line: &str,
    next_seq: &mut u64,
    explain: bool,
) -> Result<bool, ChatError> {
    let view = view.lock().unwrap_or_else(|p| p.into_inner());
    let (to, text, private): (Vec<(u16, &PeerKey)>, &str, bool) = match Command::parse(line) {
        Command::Quit => return Ok(false),
        Command::Usage(usage) => {
            ui.warn(usage);
            return Ok(true);
        }
        Command::Rename(_) => {
            ui.warn("names are fixed in an encrypted room: join again with --name");
            return Ok(true);
        }
        Command::Who => {
            ui.status(format!("in the room ({}):", view.members.len()));
            for (id, (name, key)) in &view.members {
                let you = if *id == view.me {
                    " (you)"
                } else if *id == 0 {
                    " (host, the relay)"
                } else {
                    ""
                };
                ui.status(format!(
                    "  {}{you}: {}-bit key {}",
                    escape(name),
                    key.bits(),
                    key.fingerprint
                ));
            }
            ui.status(
                "  the relay hands out these keys: compare the fingerprints aloud to catch a swap",
            );
            return Ok(true);
        }
        Command::Say(text) => {
            let to = view.members.iter().filter(|(id, _)| **id != view.me);
            (to.map(|(id, (_, key))| (*id, key)).collect(), text, false)
        }
        Command::Private(name, text) => {
            match view.members.iter().find(|(id, (n, _))| n == name && **id != view.me) {
                Some((id, (_, key))) => (vec![(*id, key)], text, true),
                None => {
                    ui.warn(format!("nobody called {} here: /who lists the room", escape(name)));
                    return Ok(true);
                }
            }
        }
    };
    if text.len() > MAX_ROOM_TEXT {
        ui.warn(format!(
            "that message is {} bytes; a room's limit is {MAX_ROOM_TEXT}: not sent",
            text.len()
        ));
        return Ok(true);
    }
    let msg = seal(me, &view.room_id, view.me, *next_seq, private, &to, text)?;
    *next_seq += 1;
    let bytes = msg.to_frame().to_bytes();
    write_frame(stream, tap, &bytes)?;
    if explain {
        ui.status(format!(
            "wire: sent ROOM MESSAGE #{}, {} bytes: {} cop{} of the text, each encrypted to its \
             recipient's key, and one RSA-PSS signature; the relay can read only its own copy",
            msg.seq,
            bytes.len(),
            msg.copies.len(),
            if msg.copies.len() == 1 { "y" } else { "ies" }
        ));
    }
    match private {
        true => {
            let name = view.members.get(&to[0].0).map_or("?", |(n, _)| n.as_str());
            ui.sent(&format!("(to {name} only) {text}"));
        }
        false => ui.sent(text),
    }
    Ok(true)
}

/// The member's reader: the ROSTER first, then notices and messages, each checked.
fn read_room(
    mut reader: PeerReader,
    mut pair: Opener,
    view: &Mutex<View>,
    tx: &Sender<Event>,
    me: Arc<Identity>,
    explain: bool,
) {
    let report = |u: Update| tx.send(Event::Room(RoomEvent::Update(u))).is_ok();
    let mut room: Option<RoomOpener> = None;
    loop {
        let update = match reader.read_frame(None) {
            Err(ReadError::Closed) => Update::Closed,
            Err(e) => Update::Error(e.into()),
            Ok(frame) => match take(&frame, &mut pair, &mut room, view, &me, explain) {
                Ok(u) => u,
                Err(e) => Update::Error(e),
            },
        };
        let last = matches!(update, Update::HostLeft | Update::Closed | Update::Error(_));
        if !report(update) || last {
            return;
        }
    }
}

/// Apply one frame from the relay.
fn take(
    frame: &Frame,
    pair: &mut Opener,
    room: &mut Option<RoomOpener>,
    view: &Mutex<View>,
    me: &Arc<Identity>,
    explain: bool,
) -> Result<Update, ChatError> {
    let mut view = view.lock().unwrap_or_else(|p| p.into_inner());
    let key_of = |m: &Member| {
        PeerKey::from_spki(&m.spki).map_err(|e| ChatError::Security(SecurityError::BadKey(e)))
    };
    match (frame.kind, room.as_mut()) {
        (FrameType::Roster, None) => {
            let roster = Roster::decode(&frame.body)?;
            pair.open_notice(FrameType::Roster, roster.seq, &roster.fields(), &roster.signature)?;
            view.room_id = roster.room_id;
            view.me = roster.you;
            for m in &roster.members {
                view.members.insert(m.id, (super::clean_name(&m.name), key_of(m)?));
            }
            *room = Some(RoomOpener::new(roster.room_id, me.clone(), roster.you));
            let others = view
                .members
                .iter()
                .filter(|(id, _)| **id != roster.you)
                .map(|(_, (n, _))| n.clone())
                .collect();
            Ok(Update::Entered { name: super::clean_name(&roster.your_name), others })
        }
        (FrameType::Joined, Some(_)) => {
            let joined = Joined::decode(&frame.body)?;
            pair.open_notice(FrameType::Joined, joined.seq, &joined.fields(), &joined.signature)?;
            let key = key_of(&joined.member)?;
            let (name, fp) = (super::clean_name(&joined.member.name), key.fingerprint.to_string());
            view.members.insert(joined.member.id, (name.clone(), key));
            Ok(Update::Joined(name, fp))
        }
        (FrameType::Left, Some(opener)) => {
            let left = Left::decode(&frame.body)?;
            pair.open_notice(FrameType::Left, left.seq, &left.fields(), &left.signature)?;
            opener.forget(left.id);
            let name = view
                .members
                .remove(&left.id)
                .map_or_else(|| format!("member {}", left.id), |(n, _)| n);
            Ok(Update::Left(name, escape(&left.reason).into_owned()))
        }
        (FrameType::Room, Some(opener)) => {
            let msg = RoomMessage::decode(&frame.body)?;
            let sender = view.members.get(&msg.sender);
            let text = opener.open(&msg, sender.map(|(_, k)| k))?;
            let from = sender.map_or_else(|| "?".to_owned(), |(n, _)| n.clone());
            let explained = explain.then(|| {
                let digests = match msg.copies.len().saturating_sub(1) {
                    0 => "no other copy".to_owned(),
                    1 => "1 other recipient's copy as its SHA-256 digest".to_owned(),
                    n => format!("{n} other recipients' copies as their SHA-256 digests"),
                };
                format!(
                    "wire: received ROOM MESSAGE #{} from {from}, {} bytes: the copy encrypted to \
                     this key (opened with RSA-OAEP) and {digests}; {from}'s RSA-PSS signature \
                     over all of them checked",
                    msg.seq,
                    HEADER_LEN + frame.body.len(),
                )
            });
            Ok(Update::Message(from, msg.private, text, explained))
        }
        (FrameType::Bye, _) => {
            pair.open_bye(&Bye::decode(&frame.body)?)?;
            Ok(Update::HostLeft)
        }
        (FrameType::Busy, _) => Err(busy(&frame.body)?),
        (kind, None) => Err(ChatError::Unexpected { kind, when: "instead of the room's ROSTER" }),
        (kind, Some(_)) => Err(ChatError::Unexpected { kind, when: "in a room" }),
    }
}

/// The plaintext room, from `link` on: lines from the host shown as notices or messages,
/// typed lines sent as they are (the host reads the commands).
pub fn run_plain(
    link: Link,
    pending: Pending,
    console: Console<'_>,
    settings: &Settings,
) -> Result<bool, ChatError> {
    let Console { tx, rx, ui } = console;
    let Link { stream, mut reader, peer_addr, tap, .. } = link;
    ui.status(format!(
        "joined the PLAINTEXT room at {peer_addr}: anyone on the network can read it"
    ));
    let write = |line: &str| write_frame(&stream, tap.as_ref(), format!("{line}\n").as_bytes());
    let result = (|| {
        write(&format!("/name {}", settings.name))?;
        let tx = tx.clone();
        thread::spawn(move || {
            loop {
                let update = match reader.read_line() {
                    Ok(Some(line)) => Update::Line(String::from_utf8_lossy(&line).into_owned()),
                    Ok(None) => Update::HostLeft,
                    Err(e) => Update::Error(e.into()),
                };
                let last = !matches!(update, Update::Line(_));
                if tx.send(Event::Room(RoomEvent::Update(update))).is_err() || last {
                    return;
                }
            }
        });
        for line in &pending.queued {
            write(line)?;
            ui.sent(line);
        }
        let mut input_open = pending.input_open;
        let mut linger: Option<Instant> = None;
        let mut told_closed = false;
        if !input_open {
            let _ = stream.shutdown(Shutdown::Write);
            linger = Some(Instant::now() + LINGER);
        }
        loop {
            let Some(event) = next_event(rx, linger) else { return Ok(input_open) };
            match event {
                Event::Input(Input::Line(line)) if linger.is_none() => {
                    if line.trim() == "/quit" {
                        let _ = stream.shutdown(Shutdown::Write);
                        linger = Some(Instant::now() + LINGER);
                        continue;
                    }
                    write(&line)?;
                    if !line.starts_with('/') {
                        ui.sent(&line);
                    }
                }
                Event::Input(Input::Line(_)) => {}
                Event::Input(_) => {
                    input_open = false;
                    let _ = stream.shutdown(Shutdown::Write);
                    linger.get_or_insert(Instant::now() + LINGER);
                }
                Event::Warning(w) => ui.warn(w),
                Event::Room(RoomEvent::Update(Update::Line(line))) => {
                    told_closed = line == CLOSED_NOTICE;
                    show_line(ui, &line);
                }
                Event::Room(RoomEvent::Update(Update::HostLeft)) => {
                    // The host's last line usually said so already; after our own leaving,
                    // its closing is the answer.
                    if !told_closed && linger.is_none() {
                        ui.status("the host closed the room");
                    }
                    return Ok(input_open);
                }
                Event::Room(RoomEvent::Update(Update::Error(e))) => return Err(e),
                _ => {}
            }
        }
    })();
    let _ = stream.shutdown(Shutdown::Both);
    match result {
        Ok(open) => finish_recording(tap.as_ref()).map(|()| open),
        Err(e) => {
            unfinished_recording(tap.as_ref(), ui);
            Err(e)
        }
    }
}

/// A line of a plaintext room: `* notice`, `NAME: text` or `NAME (private): text`.
fn show_line(ui: &Ui, line: &str) {
    if let Some(notice) = line.strip_prefix("* ") {
        ui.status(escape(notice));
        return;
    }
    match line.split_once(": ") {
        Some((who, text)) if !who.contains(' ') => ui.room_message(who, text, false),
        Some((who, text)) if who.ends_with(" (private)") => {
            ui.room_message(who.trim_end_matches(" (private)"), text, true);
        }
        _ => ui.status(escape(line)),
    }
}
