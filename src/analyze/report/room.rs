//! What the report says of a room's connection beyond what it says of any rchat connection:
//! the protocol line of a direction that carries a room's frames, and the parts of the
//! eavesdropper's sentence that name the room, its members and their keys (each key once,
//! however many frames carried it), and who sent each room message to whom. It reads the
//! directions' reports only.

use super::{DirectionReport, Recognized, join_same, key_phrase_short};
use crate::analyze::classify::plural;
use crate::analyze::recognise::rchat::RchatReport;
use crate::escape::bytes as escape;

/// What an eavesdropper reads of an rchat direction, in one line.
pub(super) fn rchat_summary(r: &RchatReport) -> String {
    let Some(room) = &r.room else {
        return match &r.hello {
            Some(h) => format!(
                "rchat: HELLO from \"{}\" with a {}-bit RSA key in the clear, then signed, \
                 encrypted frames",
                escape(h.name.as_bytes()),
                h.key_bits
            ),
            None => "rchat frames".to_string(),
        };
    };
    let hello = match &r.hello {
        Some(h) if h.mode == crate::protocol::wire::MODE_ROOM => format!(
            "HELLO from the room's host \"{}\" with a {}-bit RSA key in the clear, then ",
            escape(h.name.as_bytes()),
            h.key_bits
        ),
        Some(h) => format!(
            "HELLO from \"{}\" with a {}-bit RSA key in the clear, then ",
            escape(h.name.as_bytes()),
            h.key_bits
        ),
        None => String::new(),
    };
    let notices = r.frames.iter().any(|f| matches!(f.kind, "ROSTER" | "JOINED" | "LEFT"));
    let what = if notices {
        "signed notices naming the members and their keys in the clear, and encrypted room \
         messages whose sender and recipients are in the clear"
    } else {
        "encrypted room messages whose sender and recipients are in the clear"
    };
    let id = room.room_id.as_deref().map(|id| format!(" {}", short_id(id))).unwrap_or_default();
    format!("rchat room{id}: {hello}{what}")
}

/// A room id as prose shows it: its first 8 bytes in hex, then `…`.
pub(super) fn short_id(id: &str) -> String {
    match id.get(..16) {
        Some(start) if id.len() > 16 => format!("{start}\u{2026}"),
        _ => id.to_string(),
    }
}

/// What a room's connection shows an eavesdropper beyond the messages: the room, its members
/// and their keys (each key once, however many frames carried it), and who sent each room
/// message to whom. `None` for a connection that is not a room's.
pub(super) fn room_phrases(
    dirs: [&DirectionReport; 2],
    publics: &[&&Recognized],
) -> Option<(String, Option<String>)> {
    let rchats: Vec<&RchatReport> = dirs.iter().filter_map(|d| d.rchat.as_deref()).collect();
    let rooms: Vec<_> = rchats.iter().filter_map(|r| r.room.as_ref()).collect();
    if rooms.is_empty() {
        return None;
    }
    let frames = || rchats.iter().flat_map(|r| r.frames.iter());
    let mut ids: Vec<u16> = frames()
        .filter_map(|f| f.room.as_deref())
        .flat_map(|r| r.members.iter().map(|m| m.id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut seen: Vec<&str> = Vec::new();
    let mut distinct: Vec<String> = Vec::new();
    for k in publics {
        let fresh = match k.fingerprint.as_deref() {
            Some(fp) if seen.contains(&fp) => false,
            Some(fp) => {
                seen.push(fp);
                true
            }
            None => true,
        };
        if fresh {
            distinct.push(key_phrase_short(k));
        }
    }
    let keys = if distinct.is_empty() { String::new() } else { join_same(&distinct) };
    let room = match rooms.iter().find_map(|r| r.room_id.as_deref()) {
        Some(id) => format!("room {}", short_id(id)),
        None => "a room".to_string(),
    };
    let members = match (ids.len(), keys.is_empty()) {
        (0, true) => room,
        (0, false) => format!("{room} and {keys}"),
        (n, true) => {
            format!("{room} with {} named in the clear", plural(n as u64, "member", "members"))
        }
        (n, false) => format!(
            "{room} with {} named in the clear (their ids, names and {keys})",
            plural(n as u64, "member", "members")
        ),
    };
    let sent: Vec<_> =
        frames().filter(|f| f.kind == "ROOM MESSAGE").filter_map(|f| f.room.as_deref()).collect();
    let whom = (!sent.is_empty()).then(|| {
        let private = sent.iter().filter(|r| r.private == Some(true)).count() as u64;
        let one = if sent.len() == 1 { "it" } else { "each" };
        match private {
            0 => format!("who sent {one} and to whom (member ids in the clear)"),
            1 if sent.len() == 1 => {
                "who sent it and to whom (member ids in the clear; it is private)".to_string()
            }
            1 => format!("who sent {one} and to whom (member ids in the clear; one is private)"),
            n => format!("who sent {one} and to whom (member ids in the clear; {n} are private)"),
        }
    });
    Some((members, whom))
}
