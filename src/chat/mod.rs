//! The chat library behind `rchat host`, `rchat join` and `rchat demo`: the validated
//! [`Settings`] it runs with, the errors a chat can end with, and the parts, from the socket up:
//! [`net`] opens sockets, [`transport`] reads the peer's bytes with limits, [`link`] runs the
//! handshake and yields an established link, [`conversation`] runs the message loop on one
//! link, [`session`] waits for a peer (host) or connects (join) and hands the link over,
//! [`room`] holds a conversation for many (the host relays, each member has a link),
//! [`terminal`] talks to the person, [`record`] writes `--record` capture files, [`demo`]
//! plays a scripted chat in one process. It never sees the command line: `cmd::chat` turns
//! the flags into settings.

pub mod candidates;
pub mod conversation;
pub mod demo;
pub mod link;
pub mod net;
pub mod record;
pub mod room;
pub mod session;
pub mod terminal;
pub mod transport;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::crypto::{Fingerprint, KeyError};
use crate::protocol::secure::SecurityError;
use crate::protocol::wire::{FrameType, WireError};
use record::RecordError;
use terminal::Input;
use transport::ReadError;

/// Why a chat (or an attempt to start one) ended badly. Exit status 1.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The listening socket could not be opened.
    #[error("{}", listen_message(addr, source))]
    Listen {
        /// Where we tried to listen.
        addr: SocketAddr,
        /// Why it failed.
        source: io::Error,
    },
    /// The host name did not resolve.
    #[error("cannot find host {target}: check the spelling, or use its IP address ({source})")]
    Resolve {
        /// What the user asked to join.
        target: String,
        /// Why it failed.
        source: io::Error,
    },
    /// The connection could not be made.
    #[error("{}", connect_message(target, source))]
    Connect {
        /// What the user asked to join.
        target: String,
        /// Why it failed.
        source: io::Error,
    },
    /// The encrypted side received bytes that are not rchat frames.
    #[error(
        "the peer seems to be in plaintext mode (it sent {preview}): run both sides with --plaintext, or neither"
    )]
    PlaintextPeer {
        /// What it sent, escaped.
        preview: String,
    },
    /// The plaintext side received an rchat HELLO.
    #[error(
        "the peer uses encrypted mode (it sent an rchat HELLO): remove --plaintext here, or add it on the other side"
    )]
    EncryptedPeer,
    /// The peer hung up before the handshake finished.
    #[error(
        "the peer closed the connection during the handshake: if it runs with --plaintext, run both sides with --plaintext, or neither"
    )]
    HandshakeClosed,
    /// The peer hung up after its HELLO: it refused our key or our fingerprint.
    #[error(
        "the peer closed the connection after the HELLOs: it probably refused our key (a fingerprint it did not expect with --peer-fingerprint, or a key under 2048 bits)"
    )]
    HandshakeRefused,
    /// The peer did not complete the handshake in time.
    #[error(
        "no handshake from the peer within {0:.0} s: if it is in plaintext mode (or plain netcat), use --plaintext here too"
    )]
    HandshakeTimeout(f64),
    /// The host is already in a chat.
    #[error("the host is busy: {0}")]
    Busy(String),
    /// A frame that has no business where it arrived.
    #[error("the peer sent an unexpected {kind} frame {when}")]
    Unexpected {
        /// The frame type.
        kind: FrameType,
        /// Where in the conversation.
        when: &'static str,
    },
    /// A frame broke the wire format.
    #[error("protocol violation: {0}")]
    Wire(#[from] WireError),
    /// A frame failed a cryptographic check.
    #[error("{0}")]
    Security(#[from] SecurityError),
    /// Reading from the peer failed.
    #[error("connection lost: {0}")]
    Read(ReadError),
    /// Writing to the peer failed.
    #[error("connection lost: could not send to the peer ({0})")]
    Write(io::Error),
    /// The peer closed the connection without a goodbye.
    #[error("connection lost: the peer closed the connection without saying goodbye")]
    Dropped,
    /// `--record` could not write its file.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// Our key could not be made or loaded, or is unfit.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The scripted demo did not go as written.
    #[error("the demo went wrong: {0}")]
    Demo(String),
}

impl From<ReadError> for ChatError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Wire(w) => ChatError::Wire(w),
            ReadError::NotRchat { preview } => ChatError::PlaintextPeer { preview },
            other => ChatError::Read(other),
        }
    }
}

fn listen_message(addr: &SocketAddr, e: &io::Error) -> String {
    let port = addr.port();
    match e.kind() {
        io::ErrorKind::AddrInUse => format!(
            "port {port} is already in use (another rchat host?): stop it, or choose another port with --port"
        ),
        io::ErrorKind::PermissionDenied => {
            format!("not allowed to listen on port {port}: use a port above 1023 with --port")
        }
        io::ErrorKind::AddrNotAvailable => {
            format!("{} is not an address of this machine: check --bind", addr.ip())
        }
        _ => format!("cannot listen on {addr}: {e}"),
    }
}

fn connect_message(target: &str, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            format!("{target} refused the connection: is `rchat host` running there, on that port?")
        }
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => format!(
            "{target} did not answer within {} s: check the address, and that no firewall blocks the port",
            net::CONNECT_TIMEOUT.as_secs()
        ),
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            format!(
                "{target} is unreachable: check the address and that both machines share a network"
            )
        }
        _ => format!("cannot connect to {target}: {e}"),
    }
}

/// Where our key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A fresh key of this many bits.
    Fresh(usize),
    /// A key file.
    File(PathBuf),
}

/// Chat settings after validation (`cmd::chat` makes them from the flags): the rest of the
/// chat sees only these.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--plaintext`.
    pub plaintext: bool,
    /// Our key (encrypted mode).
    pub key: KeySource,
    /// `--peer-fingerprint`.
    pub pin: Option<Fingerprint>,
    /// Our display name.
    pub name: String,
    /// `--explain`.
    pub explain: bool,
    /// `--allow-weak-keys`.
    pub allow_weak: bool,
    /// Time a peer has for the whole handshake.
    pub handshake_timeout: Duration,
    /// Time a frame's body may take once its header arrived.
    pub frame_timeout: Duration,
}

/// Everything the chat's main loop waits for, from every thread.
#[derive(Debug)]
pub enum Event {
    /// The person typed something.
    Input(Input),
    /// Something to tell the person that is not an error.
    Warning(String),
    /// A new connection on a listening socket.
    Incoming(std::net::TcpStream, SocketAddr),
    /// A handshake with a candidate peer finished.
    Handshake(SocketAddr, Box<Result<link::Link, ChatError>>),
    /// The peer's reader thread reports.
    Peer(link::PeerEvent),
    /// A room's threads report.
    Room(room::RoomEvent),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a joiner is told for each way a connection can fail. Loopback can show only
    /// "refused" (tests/chat.rs does); the others need a network, so their wording is
    /// checked here.
    #[test]
    fn every_connect_failure_says_what_to_check() {
        let said = |kind: io::ErrorKind| {
            ChatError::Connect { target: "192.0.2.7:9999".into(), source: io::Error::from(kind) }
                .to_string()
        };
        for kind in [io::ErrorKind::HostUnreachable, io::ErrorKind::NetworkUnreachable] {
            assert_eq!(
                said(kind),
                "192.0.2.7:9999 is unreachable: check the address and that both machines share a network"
            );
        }
        assert!(said(io::ErrorKind::TimedOut).contains("did not answer within"));
        assert!(said(io::ErrorKind::ConnectionRefused).contains("is `rchat host` running there"));
        let other = said(io::ErrorKind::PermissionDenied);
        assert!(other.starts_with("cannot connect to 192.0.2.7:9999: "), "{other}");
    }
}
