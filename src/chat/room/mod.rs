//! A room for the whole class (`rchat host --room`): the host relays, every member joins
//! with `rchat join` (or, in plaintext, with any netcat). [`relay`] is the host's side: it
//! admits members, gives them unique names and ids, and forwards what each says to the
//! others, in encrypted mode without being able to read what is not addressed to it.
//! [`member`] is a joiner's side once the host's HELLO (or greeting) said "room".
//!
//! What both sides share lives here: the events the relay's threads report, the rule for
//! names, and what a typed line means (`/who`, `/msg NAME TEXT`, `/name NEW`). Each
//! member's connection is a [`Link`] made by the same handshake as a
//! two-person chat's.

pub mod member;
pub mod relay;

use super::ChatError;
use super::link::Link;
use crate::protocol::room_wire::RoomMessage;
use crate::protocol::wire::MAX_NAME_LEN;

/// Members in a room besides the host, unless `--max` says otherwise.
pub const DEFAULT_MAX: usize = 40;

/// The last line a plaintext room's host writes when it closes the room (its members then do
/// not say so again).
pub const CLOSED_NOTICE: &str = "* the host closed the room";

/// What the threads of a room's host report to its loop.
#[derive(Debug)]
pub enum RoomEvent {
    /// A candidate's handshake ended.
    Arrived(std::net::SocketAddr, Box<Result<Arrival, ChatError>>),
    /// Member `id` said something, or left.
    From(u16, Heard),
    /// A member's reader thread reports what the relay sent.
    Update(member::Update),
}

/// A connection whose handshake succeeded, before it has a seat.
#[derive(Debug)]
pub struct Arrival {
    /// The handshaken connection.
    pub link: Link,
    /// The name it asked for: its HELLO's, or a plaintext member's first `/name`.
    pub wanted: Option<String>,
    /// A plaintext member's first line, when it was not `/name`: its first message.
    pub first_line: Option<String>,
}

/// What a member's reader thread heard.
#[derive(Debug)]
pub enum Heard {
    /// A room message that passed the relay's checks, and the host's own copy decrypted when
    /// it has one.
    Message(Box<RoomMessage>, Option<String>),
    /// A line from a plaintext member.
    Line(String),
    /// A signed goodbye.
    Bye,
    /// The connection closed.
    Closed,
    /// The member broke the protocol: drop it.
    Error(ChatError),
}

/// A name as a room shows it: letters, digits and `-_.` only (anything else becomes `_`), at
/// most 32 characters; empty becomes `guest`. So no name can pose as a notice (`* …`) or as
/// another name with a message (`bob: …`), or hide or reorder text.
pub fn clean_name(wanted: &str) -> String {
    let name: String = wanted
        .trim()
        .chars()
        .take(32)
        .map(|c| if c.is_alphanumeric() || "-_.".contains(c) { c } else { '_' })
        .collect();
    if name.is_empty() { "guest".into() } else { name }
}

/// `wanted` cleaned, made unique by `-2`, `-3`, … when `taken` says it is in use.
pub fn unique_name(wanted: &str, taken: impl Fn(&str) -> bool) -> String {
    let base = clean_name(wanted);
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|n| {
            let suffix = format!("-{n}");
            let cut = crate::protocol::wire::truncate_utf8(&base, MAX_NAME_LEN - suffix.len());
            format!("{cut}{suffix}")
        })
        .find(|name| !taken(name))
        .unwrap_or(base)
}

/// What a line typed in a room asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// A message to everyone.
    Say(&'a str),
    /// `/msg NAME TEXT`: a message to one member.
    Private(&'a str, &'a str),
    /// `/who`: who is in the room.
    Who,
    /// `/name NEW` (plaintext rooms).
    Rename(&'a str),
    /// `/quit`.
    Quit,
    /// A command used wrongly: what to say instead.
    Usage(&'static str),
}

impl<'a> Command<'a> {
    /// Read a typed line.
    pub fn parse(line: &'a str) -> Command<'a> {
        let trimmed = line.trim();
        let (word, rest) = trimmed.split_once(' ').unwrap_or((trimmed, ""));
        match word {
            "/who" => Command::Who,
            "/quit" => Command::Quit,
            "/msg" => match rest.trim_start().split_once(' ') {
                Some((to, text)) if !to.is_empty() => Command::Private(to, text.trim_start()),
                _ => Command::Usage("/msg NAME TEXT sends TEXT to NAME alone"),
            },
            "/name" if !rest.trim().is_empty() => Command::Rename(rest.trim()),
            "/name" => Command::Usage("/name NEW renames you"),
            _ => Command::Say(line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_and_made_unique() {
        assert_eq!(clean_name(" bob "), "bob");
        assert_eq!(clean_name("evil\u{202e}gnp.exe"), "evil_gnp.exe");
        assert_eq!(clean_name("* alice: hi"), "__alice__hi");
        assert_eq!(clean_name("\u{1b}[2J"), "__2J");
        assert_eq!(clean_name(""), "guest");
        assert_eq!(clean_name("Zoë"), "Zoë");
        let taken = ["bob", "bob-2"];
        assert_eq!(unique_name("bob", |n| taken.contains(&n)), "bob-3");
        assert_eq!(unique_name("carol", |n| taken.contains(&n)), "carol");
        let long = "x".repeat(40);
        let named = unique_name(&long, |n| n.len() == 32);
        assert_eq!(named, format!("{}-2", "x".repeat(32)));
    }

    #[test]
    fn typed_lines_become_commands() {
        assert_eq!(Command::parse("hello all"), Command::Say("hello all"));
        assert_eq!(Command::parse("/msg bob  psst, bob"), Command::Private("bob", "psst, bob"));
        assert!(matches!(Command::parse("/msg bob"), Command::Usage(_)));
        assert_eq!(Command::parse(" /who "), Command::Who);
        assert_eq!(Command::parse("/name carol"), Command::Rename("carol"));
        assert_eq!(Command::parse("/quit"), Command::Quit);
        assert_eq!(Command::parse("/whom"), Command::Say("/whom"));
    }
}
