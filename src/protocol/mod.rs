//! The encrypted mode's protocol, documented byte by byte in `docs/PROTOCOL.md`:
//! [`wire`] turns frames into bytes and back with checked lengths, [`secure`] says what the
//! handshake and every signature cover and checks received frames before they are believed.
//! Neither touches a socket.

pub mod secure;
pub mod wire;
