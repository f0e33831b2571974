//! The frames of a room (docs/PROTOCOL.md, "The room") as an eavesdropper reads them out of one
//! direction: the host's ROSTER, JOINED and LEFT notices, with every member's id, name and
//! public key in the clear, and the ROOM MESSAGEs, whose sender, sequence number, private flag
//! and recipients travel in the clear while each copy of the text is encrypted to its
//! recipient's key.
//!
//! Owns the direction's member table (at most [`MAX_MEMBERS`] people), the last sequence number
//! of each sender, and, given private keys (`--key`), which member holds each key and the
//! opening of that member's copy. A key's holder is found by its fingerprint among the
//! members the direction names, by the direction's HELLO, or else by trying the full copies
//! whose blocks are the key's size; a copy that did not open is not tried again, so a key costs
//! at most one failed RSA operation per member and direction. [`share_rooms`] then names the
//! members across every connection of a capture, once all of them are read. It never verifies
//! a signature, and keeps no frame bytes: what it keeps of a frame is its report.

use std::sync::Arc;

use serde::Serialize;

use super::HelloReport;
use crate::crypto::{Fingerprint, Identity, PeerKey};
use crate::escape::text as escape;
use crate::protocol::room_wire::{
    CopyBody, Joined, Left, MAX_ROOM_PEOPLE, Member, RoomMessage, Roster,
};
use crate::protocol::wire::MODE_ROOM;

/// Most members a direction's table keeps (the room's limit, twice: room for those who left).
pub const MAX_MEMBERS: usize = 2 * MAX_ROOM_PEOPLE;
/// Recipients named one by one in a reason; more are counted.
const NAMED_RECIPIENTS: usize = 4;

/// One person of a room, as a ROSTER or JOINED names them to anyone on the path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberReport {
    /// The host's number for this person (the host is 0).
    pub id: u16,
    /// The name in the room, as sent (every sentence of the report escapes it).
    pub name: String,
    /// Size of the member's RSA key (`None` when the key does not parse).
    pub key_bits: Option<usize>,
    /// `SHA256:...` of the member's public key, as `rchat fingerprint` prints it.
    pub fingerprint: String,
}

impl MemberReport {
    /// A member as the report lists it, and why its key does not parse, if it does not.
    fn of(m: &Member) -> (Self, Option<String>) {
        let (key_bits, fingerprint, bad) = match PeerKey::from_spki(&m.spki) {
            Ok(key) => (Some(key.bits()), key.fingerprint, None),
            Err(e) => (None, Fingerprint::of_spki(&m.spki), Some(e)),
        };
        let report = MemberReport {
            id: m.id,
            name: m.name.clone(),
            key_bits,
            fingerprint: fingerprint.to_string(),
        };
        (report, bad)
    }
}

/// How a copy of a room message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyForm {
    /// The text encrypted to the recipient's key (form `00`).
    Ciphertext,
    /// Only the SHA-256 of a copy that went to its recipient another way (form `01`).
    Digest,
}

/// One recipient's copy of a ROOM MESSAGE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RecipientReport {
    /// The recipient's id.
    pub id: u16,
    /// Ciphertext or digest.
    pub form: CopyForm,
    /// RSA-OAEP blocks (ciphertext only).
    pub blocks: Option<usize>,
    /// Bytes per block: the recipient's modulus size (ciphertext only).
    pub block_len: Option<u16>,
}

/// What a room frame says in the clear; the fields a frame's type does not have are `None`
/// or empty.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoomFrameReport {
    /// ROSTER: the room's id, hex.
    pub room_id: Option<String>,
    /// ROSTER: the receiving member's id; LEFT: who left.
    pub member_id: Option<u16>,
    /// ROSTER: the receiving member's name in the room.
    pub member_name: Option<String>,
    /// ROSTER: everyone in the room (not listed for a second ROSTER); JOINED: who entered.
    pub members: Vec<MemberReport>,
    /// LEFT: how the member left, as the host wrote it.
    pub reason: Option<String>,
    /// ROOM MESSAGE: the sender's id.
    pub sender: Option<u16>,
    /// ROOM MESSAGE: sent with `/msg` to one person.
    pub private: Option<bool>,
    /// ROOM MESSAGE: one copy per recipient, in increasing id.
    pub recipients: Vec<RecipientReport>,
    /// Why no given key opened the message, for naming the members once the whole capture
    /// is read ([`share_rooms`]).
    #[serde(skip)]
    pub miss: Option<Miss>,
}

/// The room a direction belongs to, as far as the capture tells.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoomReport {
    /// The room's id, hex, from the connection's ROSTER (`None` when it was not captured).
    pub room_id: Option<String>,
    /// The member at the other end of this connection from the host, from its ROSTER.
    pub member_id: Option<u16>,
    /// That member's name in the room.
    pub member_name: Option<String>,
    /// Everyone the capture names in the room, by id: from this direction's ROSTER and JOINED
    /// frames, then from the room's other connections (at most [`MAX_MEMBERS`]).
    pub members: Vec<MemberReport>,
}

impl RoomReport {
    fn member(&self, id: u16) -> Option<&MemberReport> {
        self.members.iter().find(|m| m.id == id)
    }
}

/// Why the given keys did not open a ROOM MESSAGE, the most telling first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// The key's holder sent it, and has no copy of its own.
    Own {
        /// The sender.
        holder: u16,
    },
    /// The key's holder has a copy, but only its digest travels here.
    Digest {
        /// The key's holder.
        holder: u16,
    },
    /// The key's holder's copy does not decrypt with the key.
    Broken {
        /// The key's holder.
        holder: u16,
        /// The first block that fails.
        block: usize,
    },
    /// The key's holder's copy is encrypted to a key of another size.
    Size {
        /// The key's holder.
        holder: u16,
        /// The size the copy's blocks are for.
        bits: usize,
        /// The given key's size.
        key_bits: usize,
    },
    /// No copy is for a given key.
    NotTo {
        /// How many keys were given.
        keys: usize,
    },
}

impl Miss {
    fn rank(self) -> u8 {
        match self {
            Miss::Own { .. } => 0,
            Miss::Digest { .. } => 1,
            Miss::Broken { .. } => 2,
            Miss::Size { .. } => 3,
            Miss::NotTo { .. } => 4,
        }
    }
}

/// `member 2 (bob, SHA256:...)`, or `member 2` when the capture does not name it; the name
/// escaped.
fn who(id: u16, members: &[MemberReport]) -> String {
    match members.iter().find(|m| m.id == id) {
        Some(m) => format!("member {id} ({}, {})", escape(&m.name), m.fingerprint),
        None => format!("member {id}"),
    }
}

/// `a, b and c`.
fn join_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Why a room message was not decrypted, in one sentence naming its recipients as `members`
/// know them.
pub fn reason(miss: Miss, frame: &RoomFrameReport, members: &[MemberReport]) -> String {
    match miss {
        Miss::Own { holder } => format!(
            "sent by {}, the owner of the given key: it is encrypted to its recipients' keys, \
             which were not given",
            who(holder, members)
        ),
        Miss::Digest { holder: 0 } => format!(
            "only a digest of this key's copy, the one for the host, {}, travels on this \
             connection: the copy itself went to the host on its sender's connection",
            who(0, members)
        ),
        Miss::Digest { holder } => format!(
            "only a digest of this key's copy, the one for {}, travels on this connection: the \
             relay sent the copy itself to its recipient, on the recipient's own connection",
            who(holder, members)
        ),
        Miss::Broken { holder, block } => format!(
            "block {block} of the copy for {}, the holder of the given key, does not decrypt \
             with it: the copy was encrypted to another key, or altered",
            who(holder, members)
        ),
        Miss::Size { holder, bits, key_bits } => format!(
            "the copy for {} is encrypted to a {bits}-bit key; the given key is {key_bits} bits",
            who(holder, members)
        ),
        Miss::NotTo { keys } => {
            let mut to: Vec<String> = frame
                .recipients
                .iter()
                .take(NAMED_RECIPIENTS)
                .map(|r| who(r.id, members))
                .collect();
            let more = frame.recipients.len().saturating_sub(NAMED_RECIPIENTS);
            if more > 0 {
                to.push(format!("{more} others"));
            }
            let what = if frame.private == Some(true) { "a private message sent" } else { "sent" };
            let key = if keys > 1 { "not to any of the given keys" } else { "not to this key" };
            format!("{what} to {}: {key}", join_list(&to))
        }
    }
}

/// A given key, and what the direction taught about who holds it.
#[derive(Debug)]
struct KeyState {
    key: Arc<Identity>,
    fingerprint: String,
    /// The member holding it, once known (ids are never reused in a room).
    holder: Option<u16>,
    /// Members whose copy it failed to open.
    tried: Vec<u16>,
}

/// Who holds a key, as far as the direction tells.
enum Holder {
    Known(u16),
    /// The direction's ROSTER and JOINED frames name every member, and none has the key.
    NotMember,
    Unknown,
}

/// Decrypt a copy's blocks (each `size` bytes) with `key`; the index of the first block that
/// fails otherwise. The first block alone is tried first: a copy for someone else costs one
/// RSA operation.
fn open_copy(key: &Identity, blocks: &[u8], size: usize) -> Result<Vec<u8>, usize> {
    let (first, rest) = blocks.split_at(size.min(blocks.len()));
    let mut text = key.decrypt_block(first).map_err(|_| 0usize)?;
    for (i, piece) in key.decrypt_blocks(rest, size).into_iter().enumerate() {
        text.extend_from_slice(&piece.map_err(|_| i + 1)?);
    }
    Ok(text)
}

/// What one direction knows of its room.
#[derive(Debug)]
pub(super) struct RoomState {
    /// The room as the report will show it; its members are the table.
    pub(super) report: RoomReport,
    roster_seen: bool,
    /// Members of the table who left, oldest first: the first to make room.
    gone: Vec<u16>,
    /// The last sequence number of each sender.
    last_seq: Vec<(u16, u64)>,
    keys: Vec<KeyState>,
    /// On a member's own connection, the one sender its messages name.
    sender: Option<u16>,
}

impl RoomState {
    /// A room seen from a direction with these keys to open its messages.
    pub(super) fn new(keys: &[Arc<Identity>]) -> Self {
        RoomState {
            report: RoomReport::default(),
            roster_seen: false,
            gone: Vec::new(),
            last_seq: Vec::new(),
            keys: keys
                .iter()
                .map(|key| KeyState {
                    key: key.clone(),
                    fingerprint: key.public().fingerprint.to_string(),
                    holder: None,
                    tried: Vec::new(),
                })
                .collect(),
            sender: None,
        }
    }

    /// Put `m` in the member table, making room by forgetting the oldest member who left.
    fn add(&mut self, m: MemberReport) {
        let table = &mut self.report.members;
        if let Some(known) = table.iter_mut().find(|k| k.id == m.id) {
            *known = m;
            return;
        }
        if table.len() >= MAX_MEMBERS {
            let Some(old) = (!self.gone.is_empty()).then(|| self.gone.remove(0)) else { return };
            table.retain(|k| k.id != old);
        }
        table.push(m);
    }

    /// A member as listed, its malformed key reported.
    fn member(m: &Member, offset: u64, violations: &mut Vec<String>) -> MemberReport {
        let (report, bad) = MemberReport::of(m);
        if let Some(why) = bad {
            violations.push(format!(
                "at byte {offset}: member {}'s public key is malformed ({why})",
                m.id
            ));
        }
        report
    }

    /// A ROSTER: the room, who this connection's member is, and everyone in the room.
    pub(super) fn roster(
        &mut self,
        r: &Roster,
        offset: u64,
        violations: &mut Vec<String>,
    ) -> RoomFrameReport {
        let mut out = RoomFrameReport {
            room_id: Some(hex::encode(r.room_id)),
            member_id: Some(r.you),
            member_name: Some(r.your_name.clone()),
            ..RoomFrameReport::default()
        };
        if self.roster_seen {
            violations.push(format!(
                "at byte {offset}: a second ROSTER on this connection ({} members, not listed)",
                r.members.len()
            ));
            return out;
        }
        self.roster_seen = true;
        self.report.room_id = out.room_id.clone();
        self.report.member_id = Some(r.you);
        self.report.member_name = Some(r.your_name.clone());
        for m in &r.members {
            let m = Self::member(m, offset, violations);
            out.members.push(m.clone());
            self.add(m);
        }
        if !r.members.iter().any(|m| m.id == r.you) {
            violations.push(format!(
                "at byte {offset}: the ROSTER does not list its own receiver, member {}",
                r.you
            ));
        }
        out
    }

    /// A JOINED: who entered.
    pub(super) fn joined(
        &mut self,
        j: &Joined,
        offset: u64,
        violations: &mut Vec<String>,
    ) -> RoomFrameReport {
        let m = Self::member(&j.member, offset, violations);
        self.gone.retain(|&id| id != m.id);
        self.add(m.clone());
        RoomFrameReport { members: vec![m], ..RoomFrameReport::default() }
    }

    /// A LEFT: who left, and how.
    pub(super) fn left(&mut self, l: &Left) -> RoomFrameReport {
        if self.report.member(l.id).is_some() && !self.gone.contains(&l.id) {
            self.gone.push(l.id);
        }
        self.last_seq.retain(|&(id, _)| id != l.id);
        RoomFrameReport {
            member_id: Some(l.id),
            reason: Some(l.reason.clone()),
            ..RoomFrameReport::default()
        }
    }

    /// A ROOM MESSAGE: what travels in the clear, the breaks of the room's rules an
    /// eavesdropper can see, and, with keys, the text of the copy for a key or why none opened.
    pub(super) fn message(
        &mut self,
        m: &RoomMessage,
        hello: Option<&HelloReport>,
        offset: u64,
        violations: &mut Vec<String>,
    ) -> (RoomFrameReport, Option<Result<Vec<u8>, Miss>>) {
        let out = RoomFrameReport {
            sender: Some(m.sender),
            private: Some(m.private),
            recipients: m
                .copies
                .iter()
                .map(|c| match &c.body {
                    CopyBody::Cipher { block_len, blocks } => RecipientReport {
                        id: c.recipient,
                        form: CopyForm::Ciphertext,
                        blocks: Some(blocks.len() / usize::from((*block_len).max(1))),
                        block_len: Some(*block_len),
                    },
                    CopyBody::Digest(_) => RecipientReport {
                        id: c.recipient,
                        form: CopyForm::Digest,
                        blocks: None,
                        block_len: None,
                    },
                })
                .collect(),
            ..RoomFrameReport::default()
        };
        self.check(m, hello, offset, violations);
        if self.keys.is_empty() {
            return (out, None);
        }
        let mut best: Option<Miss> = None;
        for k in 0..self.keys.len() {
            match self.open(k, m, hello) {
                Ok(text) => return (out, Some(Ok(text))),
                Err(miss) if best.is_none_or(|b| miss.rank() < b.rank()) => best = Some(miss),
                Err(_) => {}
            }
        }
        let miss = best.unwrap_or(Miss::NotTo { keys: self.keys.len() });
        (out, Some(Err(miss)))
    }

    /// The room's rules an eavesdropper can check on one direction: rising sequence numbers per
    /// sender, a member's messages in its own name with every copy in full, none sent back to
    /// its sender.
    fn check(
        &mut self,
        m: &RoomMessage,
        hello: Option<&HelloReport>,
        offset: u64,
        violations: &mut Vec<String>,
    ) {
        match self.last_seq.iter_mut().find(|(id, _)| *id == m.sender) {
            Some((_, last)) => {
                if m.seq <= *last {
                    violations.push(format!(
                        "at byte {offset}: member {}'s sequence number {} after {} (replayed or \
                         reordered)",
                        m.sender, m.seq, *last
                    ));
                }
                *last = m.seq;
            }
            None => {
                if self.last_seq.len() >= MAX_MEMBERS {
                    self.last_seq.remove(0);
                }
                self.last_seq.push((m.sender, m.seq));
            }
        }
        let Some(hello) = hello else { return };
        if hello.mode == MODE_ROOM {
            if self.report.member_id == Some(m.sender) {
                violations.push(format!(
                    "at byte {offset}: member {}'s own ROOM MESSAGE sent back to it (reflected)",
                    m.sender
                ));
            }
            return;
        }
        // A member's own connection to the host.
        match self.sender {
            Some(s) if s != m.sender => violations.push(format!(
                "at byte {offset}: a ROOM MESSAGE in the name of member {} on the connection of \
                 member {s}",
                m.sender
            )),
            Some(_) => {}
            None => self.sender = Some(m.sender),
        }
        if m.copies.iter().any(|c| matches!(c.body, CopyBody::Digest(_))) {
            violations.push(format!(
                "at byte {offset}: a member's ROOM MESSAGE with a copy only as a digest (a \
                 member sends every copy in full)"
            ));
        }
    }

    /// Who holds key `k`: known before, named by the room, or the sender of this direction.
    fn holder(&mut self, k: usize, m: &RoomMessage, hello: Option<&HelloReport>) -> Holder {
        let Some(state) = self.keys.get(k) else { return Holder::NotMember };
        if let Some(id) = state.holder {
            return Holder::Known(id);
        }
        let named = self.report.members.iter().find(|x| x.fingerprint == state.fingerprint);
        let found = named.map(|x| x.id).or_else(|| {
            // The direction's own sender: the host (0), or the member whose connection it is.
            hello
                .filter(|h| h.fingerprint == state.fingerprint)
                .map(|h| if h.mode == MODE_ROOM { 0 } else { m.sender })
        });
        match found {
            Some(id) => {
                if let Some(s) = self.keys.get_mut(k) {
                    s.holder = Some(id);
                }
                Holder::Known(id)
            }
            None if self.roster_seen => Holder::NotMember,
            None => Holder::Unknown,
        }
    }

    /// Open `m` with key `k`: its holder's copy, or, when the holder is unknown, each full
    /// copy of the key's size not tried before.
    fn open(
        &mut self,
        k: usize,
        m: &RoomMessage,
        hello: Option<&HelloReport>,
    ) -> Result<Vec<u8>, Miss> {
        let keys = self.keys.len();
        let holder = self.holder(k, m, hello);
        let Some(state) = self.keys.get_mut(k) else { return Err(Miss::NotTo { keys }) };
        let key = state.key.clone();
        let size = key.public().size();
        match holder {
            Holder::Known(id) => match m.copy_for(id).map(|c| &c.body) {
                None if id == m.sender => Err(Miss::Own { holder: id }),
                None => Err(Miss::NotTo { keys }),
                Some(CopyBody::Digest(_)) => Err(Miss::Digest { holder: id }),
                Some(CopyBody::Cipher { block_len, .. }) if usize::from(*block_len) != size => {
                    Err(Miss::Size {
                        holder: id,
                        bits: usize::from(*block_len) * 8,
                        key_bits: key.public().bits(),
                    })
                }
                Some(CopyBody::Cipher { blocks, .. }) => open_copy(&key, blocks, size)
                    .map_err(|block| Miss::Broken { holder: id, block }),
            },
            Holder::NotMember => Err(Miss::NotTo { keys }),
            Holder::Unknown => {
                for copy in &m.copies {
                    let CopyBody::Cipher { block_len, blocks } = &copy.body else { continue };
                    if usize::from(*block_len) != size || state.tried.contains(&copy.recipient) {
                        continue;
                    }
                    match open_copy(&key, blocks, size) {
                        Ok(text) => {
                            state.holder = Some(copy.recipient);
                            return Ok(text);
                        }
                        Err(0) => {
                            if state.tried.len() < MAX_MEMBERS {
                                state.tried.push(copy.recipient);
                            }
                        }
                        // Its first block opened: the copy is for this key, and broken.
                        Err(block) => {
                            state.holder = Some(copy.recipient);
                            return Err(Miss::Broken { holder: copy.recipient, block });
                        }
                    }
                }
                Err(Miss::NotTo { keys })
            }
        }
    }
}

/// Put `m` in `table` unless its id is there; a note when the capture names the same id with
/// another key.
fn merge(table: &mut Vec<MemberReport>, m: &MemberReport) -> Option<String> {
    match table.iter().find(|k| k.id == m.id) {
        Some(k) if k.fingerprint != m.fingerprint => Some(format!(
            "member {} (\"{}\") is named with key {} on this connection and {} on another \
             connection of the room: one of them is not that member's key (a relay handing out \
             its own?); compare fingerprints",
            m.id,
            escape(&k.name),
            k.fingerprint,
            m.fingerprint
        )),
        Some(_) => None,
        None => {
            if table.len() < MAX_MEMBERS {
                table.push(m.clone());
            }
            None
        }
    }
}

/// Name the members of each room across every connection of a capture, once all are read:
/// each connection's `[client to server, server to client]` rchat reports. A direction learns
/// its room's id from the other direction's ROSTER, and its table the members named on the
/// room's other connections (all of them, when the capture holds one room and the connection's
/// ROSTER was not captured); then the reasons its room messages were not decrypted are told
/// again, naming those members.
pub fn share_rooms(connections: &mut [[Option<&mut super::RchatReport>; 2]]) {
    let ids: Vec<Option<String>> = connections
        .iter()
        .map(|c| c.iter().flatten().find_map(|r| r.room.as_ref()?.room_id.clone()))
        .collect();
    let mut rooms: Vec<(String, Vec<MemberReport>)> = Vec::new();
    for (c, id) in connections.iter().zip(&ids) {
        let Some(id) = id else { continue };
        let at = match rooms.iter().position(|(r, _)| r == id) {
            Some(at) => at,
            None => {
                rooms.push((id.clone(), Vec::new()));
                rooms.len() - 1
            }
        };
        let Some((_, table)) = rooms.get_mut(at) else { continue };
        for room in c.iter().flatten().filter_map(|r| r.room.as_ref()) {
            for m in &room.members {
                merge(table, m);
            }
        }
    }
    let only = match rooms.as_slice() {
        [(id, _)] => Some(id.clone()),
        _ => None,
    };
    for (c, id) in connections.iter_mut().zip(ids) {
        let Some(table) = id
            .as_ref()
            .or(only.as_ref())
            .and_then(|id| rooms.iter().find(|(r, _)| r == id))
            .map(|(_, t)| t)
        else {
            continue;
        };
        for r in c.iter_mut().flatten() {
            let super::RchatReport { room: Some(room), frames, notes, .. } = &mut **r else {
                continue;
            };
            if room.room_id.is_none() {
                room.room_id.clone_from(&id);
            }
            for m in table {
                if let Some(note) = merge(&mut room.members, m) {
                    notes.push(note);
                }
            }
            room.members.sort_by_key(|m| m.id);
            for f in frames.iter_mut() {
                if let Some(rf) = f.room.as_deref()
                    && let Some(miss) = rf.miss
                {
                    f.not_decrypted = Some(reason(miss, rf, &room.members));
                }
            }
        }
    }
}
