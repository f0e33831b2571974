//! The host of a room: it listens, handshakes with every candidate (as the two-person host
//! does, silent candidates making room for newcomers), seats each member with an id and a
//! unique name, and relays. In encrypted mode it checks each member's message (signature,
//! sequence number) and forwards each recipient its own copy, reading only the copies
//! addressed to the host; in plaintext mode it relays lines, as `ncat --chat` does.
//!
//! Owns the rules that keep one member from stalling the room: each member has a writer
//! thread behind a bounded queue (a member whose queue fills has stopped reading and is
//! dropped), a reader thread that checks what it sends (garbage, a bad signature or a replay
//! drops it), and the host's loop never waits on a socket. A full room answers a newcomer
//! with one line and closes. With `--record`, every member's connection goes to one file.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{Arrival, Command, Heard, RoomEvent, unique_name};
use crate::chat::candidates::Candidates;
use crate::chat::link::{Link, Local, establish_heard, goodbye, refuse, write_frame};
use crate::chat::record::{Recording, Tap};
use crate::chat::session::{accept_loop, finish, listen_and_announce, load_identity};
use crate::chat::terminal::{Input, Ui, stdio_is_terminal};
use crate::chat::transport::{PeerReader, ReadError};
use crate::chat::{ChatError, Event, Settings};
use crate::crypto::{Identity, PeerKey};
use crate::escape::text as escape;
use crate::protocol::room_secure::{SenderCheck, decrypt_copy, seal};
use crate::protocol::room_wire::{
    CopyBody, Joined, Left, MAX_ROOM_TEXT, Member, RoomMessage, Roster, notice_frame,
};
use crate::protocol::secure::{Opener, Role, Sealer};
use crate::protocol::wire::{Bye, FrameType, WireError};

/// Frames waiting for one member: more, and it has stopped reading.
const QUEUE: usize = 128;
/// Connections waiting for a handshake slot (every slot busy with a talking candidate).
const BACKLOG: usize = 64;
/// How long a plaintext member has to say `/name` before it keeps its guest name.
const NAME_WAIT: Duration = Duration::from_secs(1);
/// How often the waiting line is looked at while connections wait in it.
const TICK: Duration = Duration::from_millis(100);
/// How long a candidate may stay silent before a connection that talks may take its place.
const SILENT_GRACE: Duration = Duration::from_millis(250);
/// How long the closing host waits for its goodbyes to be written.
const CLOSING: Duration = Duration::from_secs(2);

/// What a member's writer thread sends (cloning shares the bytes of a relayed frame).
#[derive(Debug, Clone)]
enum Out {
    /// Bytes as they are: a relayed frame, or a line.
    Bytes(Arc<[u8]>),
    /// A notice (ROSTER, JOINED, LEFT) to sign with this connection's keys, and send.
    Notice(FrameType, Vec<u8>),
    /// Say goodbye and stop.
    Bye,
}

/// A connection waiting for a handshake slot.
#[derive(Debug)]
struct Waiting {
    stream: TcpStream,
    addr: SocketAddr,
    since: Instant,
}

/// Whether a waiting connection has sent something (`None`: it closed, or its socket failed).
/// Nothing is consumed; nobody else reads the socket yet.
fn talking(stream: &TcpStream) -> Option<bool> {
    stream.set_nonblocking(true).ok()?;
    let got = stream.peek(&mut [0u8; 1]);
    stream.set_nonblocking(false).ok()?;
    match got {
        Ok(0) => None,
        Ok(_) => Some(true),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Some(false),
        Err(_) => None,
    }
}

/// A member with a seat in the room.
#[derive(Debug)]
struct Seat {
    name: String,
    addr: SocketAddr,
    /// Its key (encrypted rooms).
    key: Option<PeerKey>,
    out: SyncSender<Out>,
    /// A handle on its socket, to wake its reader when it is dropped.
    stream: TcpStream,
    writer: JoinHandle<()>,
}

/// The room as the host's loop sees it.
struct Relay<'a> {
    ui: &'a Ui,
    settings: &'a Settings,
    me: Option<Arc<Identity>>,
    room_id: [u8; 32],
    seats: BTreeMap<u16, Seat>,
    next_id: u16,
    max: usize,
    tx: Sender<Event>,
    /// The host's own sequence number for its messages.
    next_seq: u64,
    recording: Option<Recording>,
    /// Writers of members who left, finishing their goodbyes.
    closing: Vec<JoinHandle<()>>,
}

/// Run `rchat host --room`: up to `max` members besides the host.
pub fn run(
    bind: Option<IpAddr>,
    port: u16,
    settings: Settings,
    max: usize,
    recording: Option<Recording>,
) -> Result<(), ChatError> {
    let (tx, rx) = mpsc::channel();
    let ui = Ui::start(stdio_is_terminal(), &settings.name, tx.clone());
    let me = load_identity(&settings, &ui)?;
    let listeners = listen_and_announce(bind, port, &settings, me.as_deref(), &ui, "host --room")?;
    ui.status(format!(
        "the room is open for up to {max} members; type to write to everyone, /msg NAME TEXT \
         to one, /who to list them, /quit to close the room"
    ));
    for listener in listeners {
        let tx = tx.clone();
        thread::spawn(move || accept_loop(listener, &tx));
    }
    let settings = Arc::new(settings);
    let mut relay = Relay {
        ui: &ui,
        settings: &settings,
        me,
        room_id: rand::random(),
        seats: BTreeMap::new(),
        next_id: 1,
        max,
        tx: tx.clone(),
        next_seq: 0,
        recording,
        closing: Vec::new(),
    };
    let outcome = relay.serve(&rx, &settings, &ui);
    relay.close();
    finish(outcome, &ui, &rx)
}

impl Relay<'_> {
    /// The loop: until the host leaves. Returns whether its input is still open.
    fn serve(
        &mut self,
        rx: &Receiver<Event>,
        settings: &Arc<Settings>,
        ui: &Arc<Ui>,
    ) -> Result<bool, ChatError> {
        let mut candidates = Candidates::new();
        let mut waiting: VecDeque<Waiting> = VecDeque::new();
        loop {
            let event = match waiting.is_empty() {
                true => rx.recv().ok(),
                false => match rx.recv_timeout(TICK) {
                    Ok(event) => Some(event),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.pump(&mut candidates, &mut waiting, settings, ui);
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => None,
                },
            };
            let Some(event) = event else { return Ok(true) };
            match event {
                Event::Input(Input::Line(line)) => {
                    if !self.host_says(&line) {
                        return Ok(true);
                    }
                }
                Event::Input(Input::End | Input::Interrupt) => return Ok(false),
                Event::Warning(w) => self.ui.warn(w),
                Event::Incoming(stream, addr) => {
                    if self.seats.len() >= self.max {
                        self.turn_away(stream, addr);
                        continue;
                    }
                    if waiting.len() >= BACKLOG {
                        match waiting.iter().position(|w| talking(&w.stream) != Some(true)) {
                            Some(i) => drop(waiting.remove(i)),
                            None => {
                                self.ui.status(format!(
                                    "refused a connection from {addr}: too many at once"
                                ));
                                refuse(
                                    stream,
                                    settings.plaintext,
                                    "too many connections at once; try again",
                                );
                                continue;
                            }
                        }
                    }
                    waiting.push_back(Waiting { stream, addr, since: Instant::now() });
                    self.pump(&mut candidates, &mut waiting, settings, ui);
                }
                Event::Room(RoomEvent::Arrived(addr, result)) => {
                    let known = candidates.finished(addr);
                    self.pump(&mut candidates, &mut waiting, settings, ui);
                    match (*result, known) {
                        (Ok(arrival), true) => self.seat(arrival),
                        (Ok(arrival), false) => drop(arrival),
                        (Err(_), false) => {}
                        (Err(e), true) => self.ui.status(format!(
                            "rejected a connection from {addr}: {e}; the room goes on"
                        )),
                    }
                }
                Event::Room(RoomEvent::From(id, heard)) => self.heard(id, heard),
                Event::Handshake(..) | Event::Peer(_) | Event::Room(RoomEvent::Update(_)) => {}
            }
        }
    }

    /// A room that is full answers a newcomer with one line and closes.
    fn turn_away(&self, stream: TcpStream, addr: SocketAddr) {
        let n = self.seats.len();
        let members = if n == 1 { "member" } else { "members" };
        let reason = format!("the room is full ({n} {members}): ask the host to raise --max");
        self.ui.status(format!("refused a connection from {addr}: {reason}"));
        refuse(stream, self.settings.plaintext, &reason);
    }

    /// Start the handshakes the waiting line allows: connections that already talk first,
    /// closing for them a candidate that has been silent for a while; silent ones when there is
    /// room. Connections that left or waited past the handshake time are closed.
    fn pump(
        &self,
        candidates: &mut Candidates,
        waiting: &mut VecDeque<Waiting>,
        settings: &Arc<Settings>,
        ui: &Arc<Ui>,
    ) {
        let (mut speaking, mut silent) = (Vec::new(), Vec::new());
        for w in waiting.drain(..) {
            match talking(&w.stream) {
                Some(true) => speaking.push(w),
                Some(false) if w.since.elapsed() < settings.handshake_timeout => silent.push(w),
                _ => {}
            }
        }
        let mut kept = VecDeque::new();
        for w in speaking {
            let ip = w.addr.ip();
            if !candidates.has_room(ip)
                && let Some(old) = candidates.make_room(ip, SILENT_GRACE)
            {
                self.ui.status(format!(
                    "closed the connection from {old}: it had sent nothing, and {} needed its \
                     place",
                    w.addr
                ));
            }
            match candidates.has_room(ip) {
                true => self.start(candidates, w, settings, ui),
                false => kept.push_back(w),
            }
        }
        for w in silent {
            match candidates.has_room(w.addr.ip()) {
                true => self.start(candidates, w, settings, ui),
                false => kept.push_back(w),
            }
        }
        *waiting = kept;
    }

    /// Handshake with a connection on a thread of its own.
    fn start(
        &self,
        candidates: &mut Candidates,
        w: Waiting,
        settings: &Arc<Settings>,
        ui: &Arc<Ui>,
    ) {
        let Waiting { stream, addr, .. } = w;
        let Ok(handle) = stream.try_clone() else { return };
        let heard = candidates.enter(addr, handle);
        let tap = match (&self.recording, stream.local_addr()) {
            (Some(_), Ok(local)) => Some(Tap::new(local, addr, false)),
            _ => None,
        };
        let (tx, me, settings, ui) =
            (self.tx.clone(), self.me.clone(), settings.clone(), ui.clone());
        thread::spawn(move || {
            let local = Local {
                role: Role::Host,
                me: me.as_ref(),
                settings: &settings,
                ui: &ui,
                room: true,
            };
            let result = establish_heard(stream, addr, local, tap, Some(heard)).and_then(|link| {
                if link.secure.is_some() {
                    let wanted = Some(link.peer_name.clone());
                    Ok(Arrival { link, wanted, first_line: None })
                } else {
                    plain_arrival(link)
                }
            });
            let _ = tx.send(Event::Room(RoomEvent::Arrived(addr, Box::new(result))));
        });
    }

    fn taken(&self, name: &str) -> bool {
        name == self.settings.name || self.seats.values().any(|s| s.name == name)
    }

    /// Give a handshaken connection its seat: an id, a unique name, a writer and a reader;
    /// tell it who is here and tell the others it came.
    fn seat(&mut self, arrival: Arrival) {
        let Arrival { link, wanted, first_line } = arrival;
        if self.seats.len() >= self.max || usize::from(self.next_id) >= usize::from(u16::MAX) {
            self.turn_away(link.stream, link.peer_addr);
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        let name = match &wanted {
            Some(w) => unique_name(w, |n| self.taken(n)),
            None => unique_name(&format!("guest-{id}"), |n| self.taken(n)),
        };
        let Link { stream, reader, secure, peer_addr, tap, .. } = link;
        if let (Some(tap), Some(file)) = (&tap, &self.recording) {
            tap.attach(file.clone());
        }
        let Ok(handle) = stream.try_clone() else { return };
        let (sealer, opener) = match secure {
            Some((s, o)) => (Some(s), Some(o)),
            None => (None, None),
        };
        let key = sealer.as_ref().map(|s| s.session().peer().clone());
        let (out, queue) = mpsc::sync_channel(QUEUE);
        let writer = {
            let (tx, tap) = (self.tx.clone(), tap.clone());
            thread::spawn(move || write_loop(&stream, tap.as_ref(), sealer, &queue, &tx, id))
        };
        let others: Vec<u16> = self.seats.keys().copied().collect();
        let seat = Seat {
            name: name.clone(),
            addr: peer_addr,
            key: key.clone(),
            out,
            stream: handle,
            writer,
        };
        self.seats.insert(id, seat);
        match (&key, self.me.clone()) {
            (Some(key), Some(me)) => {
                let member = |id: u16, name: &str, spki: &[u8]| Member {
                    id,
                    name: name.to_owned(),
                    spki: spki.to_vec(),
                };
                let mut members = vec![member(0, &self.settings.name, &me.public().spki_der)];
                members.extend(self.seats.iter().map(|(&i, s)| {
                    member(i, &s.name, s.key.as_ref().map_or(&[][..], |k| &k.spki_der))
                }));
                let roster = Roster {
                    seq: 0,
                    room_id: self.room_id,
                    you: id,
                    your_name: name.clone(),
                    members,
                    signature: vec![],
                };
                self.send(&[id], Out::Notice(FrameType::Roster, roster.fields()));
                let joined =
                    Joined { seq: 0, member: member(id, &name, &key.spki_der), signature: vec![] };
                for other in others {
                    self.send(&[other], Out::Notice(FrameType::Joined, joined.fields()));
                }
                let opener = opener.map(|o| (o, me.clone()));
                let check = SenderCheck::new(self.room_id, id, key.clone());
                let tx = self.tx.clone();
                thread::spawn(move || read_frames(reader, opener, check, &tx, id));
                self.ui.status(format!(
                    "{name} joined from {peer_addr}, {}-bit key {} ({} in the room)",
                    key.bits(),
                    key.fingerprint,
                    self.seats.len() + 1
                ));
            }
            _ => {
                let names: Vec<&str> = std::iter::once(self.settings.name.as_str())
                    .chain(self.seats.values().map(|s| s.name.as_str()))
                    .collect();
                let welcome = format!(
                    "* you are {name}; /name NEW renames you, /who lists the room, /msg NAME TEXT \
                     writes to one person, /quit leaves\n* in the room: {}\n",
                    names.join(", ")
                );
                self.send(&[id], Out::Bytes(welcome.as_bytes().into()));
                self.broadcast_line(&format!("* {name} joined"), Some(id));
                let tx = self.tx.clone();
                thread::spawn(move || read_lines(reader, &tx, id));
                self.ui.status(format!(
                    "{name} joined from {peer_addr} ({} in the room)",
                    self.seats.len() + 1
                ));
                if let Some(line) = first_line {
                    self.heard(id, Heard::Line(line));
                }
            }
        }
    }

    /// Queue `out` for each of `ids`; a member whose queue is full, or whose writer is gone,
    /// is dropped.
    fn send(&mut self, ids: &[u16], out: Out) {
        let mut gone = Vec::new();
        for &id in ids {
            if let Some(seat) = self.seats.get(&id)
                && let Err(e) = seat.out.try_send(out.clone())
            {
                gone.push((id, e));
            }
        }
        for (id, e) in gone {
            let why = match e {
                TrySendError::Full(_) => {
                    format!("stopped reading ({QUEUE} frames waited for it)")
                }
                TrySendError::Disconnected(_) => "connection lost".to_owned(),
            };
            self.drop_member(id, &why, false);
        }
    }

    /// A line to every plaintext member but `except`.
    fn broadcast_line(&mut self, line: &str, except: Option<u16>) {
        let ids: Vec<u16> = self.seats.keys().copied().filter(|&i| Some(i) != except).collect();
        let bytes: Arc<[u8]> = format!("{line}\n").into_bytes().into();
        self.send(&ids, Out::Bytes(bytes));
    }

    /// Take member `id`'s seat and tell the others. `polite`: it said goodbye, so say
    /// goodbye back.
    fn drop_member(&mut self, id: u16, why: &str, polite: bool) {
        let Some(seat) = self.seats.remove(&id) else { return };
        let Seat { name, addr, out, stream, writer, .. } = seat;
        if polite {
            let _ = out.try_send(Out::Bye);
        } else {
            let _ = stream.shutdown(Shutdown::Both);
        }
        drop(out);
        self.closing.push(writer);
        self.closing.retain(|w| !w.is_finished());
        if polite {
            self.ui.status(format!("{name} left ({} in the room)", self.seats.len() + 1));
        } else {
            self.ui.status(format!("dropped {name} ({addr}): {why}"));
        }
        let reason = if polite { "left".to_owned() } else { why.to_owned() };
        if self.me.is_some() {
            let left = Left { seq: 0, id, reason, signature: vec![] };
            let ids: Vec<u16> = self.seats.keys().copied().collect();
            self.send(&ids, Out::Notice(FrameType::Left, left.fields()));
        } else if polite {
            self.broadcast_line(&format!("* {name} left"), None);
        } else {
            self.broadcast_line(&format!("* {name} left: {why}"), None);
        }
    }

    /// What member `id`'s reader reported.
    fn heard(&mut self, id: u16, heard: Heard) {
        let Some(name) = self.seats.get(&id).map(|s| s.name.clone()) else { return };
        match heard {
            Heard::Message(msg, text) => self.relay(id, &name, &msg, text),
            Heard::Line(line) => self.plain_line(id, &name, &line),
            Heard::Bye => self.drop_member(id, "left", true),
            Heard::Closed => match self.me {
                Some(_) => self.drop_member(id, "closed the connection without a goodbye", false),
                None => self.drop_member(id, "left", true),
            },
            Heard::Error(e) => self.drop_member(id, &e.to_string(), false),
        }
    }

    /// Forward a checked message: each recipient gets its own copy in full and the others'
    /// digests. The host shows its own copy, and says what it relayed without reading.
    fn relay(&mut self, from: u16, name: &str, msg: &RoomMessage, text: Option<String>) {
        let mut to = Vec::new();
        for (r, relayed) in msg.for_each_recipient() {
            if r == 0 || r == from || !self.seats.contains_key(&r) {
                continue;
            }
            let bytes: Arc<[u8]> = relayed.to_frame().to_bytes().into();
            let len = bytes.len();
            self.send(&[r], Out::Bytes(bytes));
            to.push((r, len));
        }
        if self.settings.explain {
            let got = msg.to_frame().to_bytes().len();
            let sent: Vec<String> = to
                .iter()
                .filter_map(|(r, len)| self.seats.get(r).map(|s| format!("{} {len}", s.name)))
                .collect();
            self.ui.status(format!(
                "wire: received ROOM MESSAGE #{} from {name}, {got} bytes ({} cop{}); sent each \
                 recipient its own copy and the others' SHA-256 digests: {}",
                msg.seq,
                msg.copies.len(),
                if msg.copies.len() == 1 { "y" } else { "ies" },
                if sent.is_empty() { "nobody".to_owned() } else { sent.join(", ") }
            ));
        }
        let to: Vec<u16> = to.into_iter().map(|(r, _)| r).collect();
        match text {
            Some(text) => self.ui.room_message(name, &text, msg.private),
            None if msg.private => {
                let names: Vec<String> =
                    to.iter().filter_map(|r| self.seats.get(r).map(|s| s.name.clone())).collect();
                let bytes: usize = msg
                    .copies
                    .iter()
                    .map(|c| match &c.body {
                        CopyBody::Cipher { blocks, .. } => blocks.len(),
                        CopyBody::Digest(_) => 0,
                    })
                    .sum();
                self.ui.status(format!(
                    "relayed a private message from {name} to {}: {bytes} bytes of ciphertext \
                     this host cannot read",
                    names.join(", ")
                ));
            }
            None => {}
        }
    }

    /// A line from a plaintext member: a command, or a message to everyone.
    fn plain_line(&mut self, id: u16, name: &str, line: &str) {
        let reply = |relay: &mut Self, text: &str| {
            relay.send(&[id], Out::Bytes(format!("* {text}\n").into_bytes().into()));
        };
        match Command::parse(line) {
            Command::Say(text) => {
                self.ui.room_message(name, text, false);
                self.broadcast_line(&format!("{name}: {text}"), Some(id));
            }
            Command::Private(to, text) => {
                reply(
                    self,
                    "/msg in a plaintext room travels in the clear: anyone on the network can read it",
                );
                if to == self.settings.name {
                    self.ui.room_message(name, text, true);
                } else if let Some(&r) =
                    self.seats.iter().find(|(_, s)| s.name == to).map(|(i, _)| i)
                {
                    let line = format!("{name} (private): {text}\n");
                    self.send(&[r], Out::Bytes(line.into_bytes().into()));
                    self.ui.status(format!(
                        "relayed a private message from {name} to {to}, in the clear"
                    ));
                } else {
                    reply(self, &format!("nobody called {} here; /who lists the room", escape(to)));
                }
            }
            Command::Who => {
                let names: Vec<String> = std::iter::once(self.settings.name.clone())
                    .chain(self.seats.values().map(|s| s.name.clone()))
                    .collect();
                reply(self, &format!("in the room: {}", names.join(", ")));
            }
            Command::Rename(new) => {
                let new = unique_name(new, |n| n != name && self.taken(n));
                if new != name {
                    if let Some(seat) = self.seats.get_mut(&id) {
                        seat.name = new.clone();
                    }
                    self.ui.status(format!("{name} is now {new}"));
                    self.broadcast_line(&format!("* {name} is now {new}"), Some(id));
                }
                reply(self, &format!("you are {new}"));
            }
            Command::Quit => self.drop_member(id, "left", true),
            Command::Usage(usage) => reply(self, usage),
        }
    }

    /// A line the host typed. Returns false when the host leaves.
    fn host_says(&mut self, line: &str) -> bool {
        match Command::parse(line) {
            Command::Quit => return false,
            Command::Usage(usage) => self.ui.warn(usage),
            Command::Rename(_) => self.ui.warn("the host's name is set with --name"),
            Command::Who => self.who(),
            Command::Say(text) => {
                let ids: Vec<u16> = self.seats.keys().copied().collect();
                self.host_message(&ids, text, false);
            }
            Command::Private(to, text) => {
                match self.seats.iter().find(|(_, s)| s.name == to).map(|(&i, _)| i) {
                    Some(id) => self.host_message(&[id], text, true),
                    None => self
                        .ui
                        .warn(format!("nobody called {} here: /who lists the room", escape(to))),
                }
            }
        }
        true
    }

    /// `/who` on the host's screen: everyone, with their fingerprints.
    fn who(&self) {
        let mine = self.me.as_ref().map(|me| format!(", {}", me.public().fingerprint));
        self.ui.status(format!(
            "in the room ({}): {} (you, the relay{})",
            self.seats.len() + 1,
            self.settings.name,
            mine.unwrap_or_default()
        ));
        for seat in self.seats.values() {
            match &seat.key {
                Some(key) => {
                    self.ui.status(format!("  {}: {} ({})", seat.name, key.fingerprint, seat.addr))
                }
                None => self.ui.status(format!("  {} ({})", seat.name, seat.addr)),
            }
        }
    }

    /// Send the host's own message to `ids`.
    fn host_message(&mut self, ids: &[u16], text: &str, private: bool) {
        if ids.is_empty() {
            self.ui.status("nobody else is in the room yet: not sent");
            return;
        }
        if text.len() > MAX_ROOM_TEXT {
            self.ui.warn(format!(
                "that message is {} bytes; a room's limit is {MAX_ROOM_TEXT}: not sent",
                text.len()
            ));
            return;
        }
        let Some(me) = self.me.clone() else {
            let line = match private {
                true => format!("{} (private): {text}", self.settings.name),
                false => format!("{}: {text}", self.settings.name),
            };
            let bytes: Arc<[u8]> = format!("{line}\n").into_bytes().into();
            self.send(ids, Out::Bytes(bytes));
            if private {
                self.ui.warn("/msg in a plaintext room travels in the clear: anyone on the network can read it");
            }
            self.ui.sent(text);
            return;
        };
        let recipients: Vec<(u16, &PeerKey)> = ids
            .iter()
            .filter_map(|id| self.seats.get(id).and_then(|s| s.key.as_ref()).map(|k| (*id, k)))
            .collect();
        match seal(&me, &self.room_id, 0, self.next_seq, private, &recipients, text) {
            Ok(msg) => {
                self.next_seq += 1;
                for (id, relayed) in msg.for_each_recipient() {
                    self.send(&[id], Out::Bytes(relayed.to_frame().to_bytes().into()));
                }
                self.ui.sent(text);
            }
            Err(e) => self.ui.warn(format!("not sent: {e}")),
        }
    }

    /// Close the room: a goodbye to every member, then a moment for the writers to send it.
    fn close(&mut self) {
        if self.me.is_none() {
            self.broadcast_line(super::CLOSED_NOTICE, None);
        }
        let seats = std::mem::take(&mut self.seats);
        for seat in seats.into_values() {
            let _ = seat.out.try_send(Out::Bye);
            self.closing.push(seat.writer);
        }
        let until = Instant::now() + CLOSING;
        while Instant::now() < until && self.closing.iter().any(|w| !w.is_finished()) {
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A plaintext candidate after the greeting: it may ask for a name in its first second.
fn plain_arrival(mut link: Link) -> Result<Arrival, ChatError> {
    let deadline = Instant::now() + NAME_WAIT;
    let first = match link.reader.read_line_by(Some(deadline)) {
        Ok(Some(line)) => Some(String::from_utf8_lossy(&line).into_owned()),
        Ok(None) | Err(ReadError::Timeout { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(match first.as_deref().map(Command::parse) {
        Some(Command::Rename(name)) => {
            Arrival { wanted: Some(name.to_owned()), first_line: None, link }
        }
        _ => Arrival { link, wanted: None, first_line: first },
    })
}

/// A member's writer: everything queued for it, in order, until a goodbye or an error.
fn write_loop(
    stream: &TcpStream,
    tap: Option<&Tap>,
    mut sealer: Option<Sealer>,
    queue: &Receiver<Out>,
    tx: &Sender<Event>,
    id: u16,
) {
    let mut polite = false;
    for out in queue {
        let sent = match out {
            Out::Bytes(bytes) => write_frame(stream, tap, &bytes),
            Out::Notice(kind, fields) => match sealer.as_mut().map(|s| s.notice(kind, &fields)) {
                Some(Ok((seq, sig))) => {
                    write_frame(stream, tap, &notice_frame(kind, seq, &fields, &sig).to_bytes())
                }
                Some(Err(e)) => Err(e.into()),
                None => Ok(()),
            },
            Out::Bye => {
                polite = true;
                let _ = goodbye(stream, tap, sealer.as_mut(), None);
                break;
            }
        };
        if let Err(e) = sent {
            let _ = tx.send(Event::Room(RoomEvent::From(id, Heard::Error(e))));
            break;
        }
    }
    if !polite {
        let _ = stream.shutdown(Shutdown::Both);
    }
    if let Some(tap) = tap {
        let _ = tap.finish();
    }
}

/// An encrypted member's reader: checks every message before it reaches the loop.
fn read_frames(
    mut reader: PeerReader,
    mut opener: Option<(Opener, Arc<Identity>)>,
    mut check: SenderCheck,
    tx: &Sender<Event>,
    id: u16,
) {
    let report = |heard: Heard| tx.send(Event::Room(RoomEvent::From(id, heard))).is_ok();
    loop {
        let heard = match reader.read_frame(None) {
            Err(ReadError::Closed) => Heard::Closed,
            // After a handshake, bytes that are not frames are a broken protocol, not a mode.
            Err(ReadError::NotRchat { preview }) => {
                Heard::Error(ChatError::Wire(WireError::Malformed {
                    kind: FrameType::Room,
                    why: format!("the member sent bytes that are not rchat frames: {preview}"),
                }))
            }
            Err(e) => Heard::Error(e.into()),
            Ok(frame) => match (frame.kind, opener.as_mut()) {
                (FrameType::Room, Some((_, host))) => {
                    match checked(&frame.body, &mut check, host) {
                        Ok((msg, text)) => Heard::Message(Box::new(msg), text),
                        Err(e) => Heard::Error(e),
                    }
                }
                (FrameType::Bye, Some((pair, _))) => {
                    match Bye::decode(&frame.body)
                        .map_err(ChatError::from)
                        .and_then(|bye| pair.open_bye(&bye).map_err(ChatError::from))
                    {
                        Ok(()) => Heard::Bye,
                        Err(e) => Heard::Error(e),
                    }
                }
                (kind, _) => Heard::Error(ChatError::Unexpected { kind, when: "in a room" }),
            },
        };
        let last = !matches!(heard, Heard::Message(..));
        if !report(heard) || last {
            return;
        }
    }
}

/// Decode and check a member's message; decrypt the host's copy when there is one.
fn checked(
    body: &[u8],
    check: &mut SenderCheck,
    host: &Identity,
) -> Result<(RoomMessage, Option<String>), ChatError> {
    let msg = RoomMessage::decode(body)?;
    check.check(&msg)?;
    let text = match msg.copy_for(0) {
        Some(_) => Some(decrypt_copy(host, 0, &msg)?),
        None => None,
    };
    Ok((msg, text))
}

/// A plaintext member's reader: one message (or command) per line.
fn read_lines(mut reader: PeerReader, tx: &Sender<Event>, id: u16) {
    let report = |heard: Heard| tx.send(Event::Room(RoomEvent::From(id, heard))).is_ok();
    loop {
        let heard = match reader.read_line() {
            Ok(Some(line)) => Heard::Line(String::from_utf8_lossy(&line).into_owned()),
            Ok(None) => Heard::Closed,
            Err(e) => Heard::Error(e.into()),
        };
        let last = !matches!(heard, Heard::Line(_));
        if !report(heard) || last {
            return;
        }
    }
}
