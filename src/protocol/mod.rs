//! The encrypted mode's protocol, documented byte by byte in `docs/PROTOCOL.md`:
//! [`wire`] turns frames into bytes and back with checked lengths, [`deframe`] finds where
//! each frame starts and ends in a stream, [`secure`] says what the handshake and every
//! signature cover and checks received frames before they are believed; [`room_wire`] and
//! [`room_secure`] do the same for the frames of a room. None of them touches a socket.

/// The TCP port rchat uses unless told otherwise: the one the original classroom program used.
pub const DEFAULT_PORT: u16 = 9999;

pub mod deframe;
pub mod room_secure;
pub mod room_wire;
pub mod secure;
pub mod wire;
