//! The wire format of rchat's encrypted mode, documented byte by byte in `docs/PROTOCOL.md`.
