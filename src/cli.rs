//! Command-line surface: the raw arguments as clap parses them.
//!
//! Every `///` comment on a field is the help text a user sees. This module only describes
//! flags; checking that a combination makes sense, and turning it into the settings a library
//! takes, happens in [`crate::cmd`], so no library ever sees an unvalidated flag.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::protocol::DEFAULT_PORT;

/// rchat: a two-person chat that shows what encryption does on a network.
#[derive(Debug, Parser)]
#[command(name = "rchat", version, about, long_about = None)]
#[command(after_help = "Exit status: 0 on success, 1 on a connection, protocol or file error, \
2 on bad usage.")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Wait for one peer to join, then chat.
    Host(HostArgs),
    /// Connect to a host that is waiting, then chat.
    Join(JoinArgs),
    /// Create a private key file to reuse across sessions (stable fingerprint).
    Keygen(KeygenArgs),
    /// Print the fingerprint of a private or public key file.
    Fingerprint(FingerprintArgs),
    /// Read saved captures and tell whether the chat traffic in them is readable.
    Analyze(AnalyzeArgs),
    /// Play a short scripted chat between two people in this one process, over loopback.
    Demo(DemoArgs),
}

/// `rchat host`.
#[derive(Debug, Args)]
pub struct HostArgs {
    /// Address to listen on [default: every interface, IPv4 and IPv6].
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<std::net::IpAddr>,
    /// TCP port to listen on (0 picks a free one).
    #[arg(long, short, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Hold a room for the whole class: every member joins with `rchat join`, the host
    /// relays (in encrypted mode, messages it cannot read).
    #[arg(long)]
    pub room: bool,
    /// Most members in the room besides the host (1 to 99).
    #[arg(long, value_name = "N", requires = "room")]
    pub max: Option<usize>,
    /// Options shared with `join`.
    #[command(flatten)]
    pub chat: ChatArgs,
}

/// `rchat join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The host to join: `HOST`, `HOST:PORT`, `[IPv6]:PORT`; the port defaults to 9999.
    #[arg(value_name = "HOST[:PORT]")]
    pub target: String,
    /// Options shared with `host`.
    #[command(flatten)]
    pub chat: ChatArgs,
}

/// Options that `host` and `join` share.
#[derive(Debug, Args, Clone)]
pub struct ChatArgs {
    /// Send typed lines as they are, unencrypted (netcat-compatible), to see them in Wireshark.
    #[arg(long)]
    pub plaintext: bool,
    /// Use the private key in FILE (PEM) instead of a fresh one for this run.
    #[arg(long, value_name = "FILE", conflicts_with = "bits")]
    pub key: Option<PathBuf>,
    /// Size of the fresh key: 2048, 3072 or 4096 (1024 with --allow-weak-keys).
    #[arg(long, value_name = "N")]
    pub bits: Option<usize>,
    /// Abort unless the peer's key has this fingerprint (SHA256:...).
    #[arg(long, value_name = "FP")]
    pub peer_fingerprint: Option<String>,
    /// Name shown to the peer [default: host or guest].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Show, for each message, what crossed the wire (frame, sizes, first ciphertext bytes).
    #[arg(long)]
    pub explain: bool,
    /// Accept keys under 2048 bits, ours or the peer's (only to reproduce weak setups in a lab).
    #[arg(long)]
    pub allow_weak_keys: bool,
    /// Write this chat's TCP connection to FILE (pcap), without capture rights. A
    /// reconstruction from what crossed our socket, not a sniffer: no other traffic, no
    /// retransmissions, nothing a router or middlebox changed.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Seconds a peer has to complete the handshake.
    #[arg(long, value_name = "SECS", default_value_t = 15.0, hide = true)]
    pub handshake_timeout: f64,
    /// Seconds a frame's body may take once its header arrived.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, hide = true)]
    pub frame_timeout: f64,
}

/// `rchat demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Send the lines unencrypted, to read them in Wireshark.
    #[arg(long)]
    pub plaintext: bool,
    /// Write the demo's TCP connection to FILE (pcap): a reconstruction from the socket,
    /// not a sniffer.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// TCP port on 127.0.0.1 (0 picks a free one).
    #[arg(long, short, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// No pauses between the lines.
    #[arg(long)]
    pub fast: bool,
}

/// `rchat keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the private key (PKCS#8 PEM, readable only by you).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Key size: 2048, 3072 or 4096 (1024 with --allow-weak-keys).
    #[arg(long, value_name = "N", default_value_t = 2048)]
    pub bits: usize,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
    /// Allow a key under 2048 bits (only to reproduce weak setups in a lab).
    #[arg(long)]
    pub allow_weak_keys: bool,
}

/// `rchat fingerprint`.
#[derive(Debug, Args)]
pub struct FingerprintArgs {
    /// A private or public key file, PEM or DER.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// When to colour the analysis report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ColorChoice {
    /// Colour when standard output is a terminal.
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// `rchat analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Capture files (pcap or pcapng), as saved by Wireshark, tcpdump or dumpcap.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// TCP port of the chat; repeat for several [default: 9999].
    #[arg(long = "port", short = 'p', value_name = "N")]
    pub ports: Vec<u16>,
    /// Analyse every TCP stream, whatever its ports.
    #[arg(long, conflicts_with = "ports")]
    pub all_ports: bool,
    /// Print one JSON document per file instead of the report.
    #[arg(long)]
    pub json: bool,
    /// Write each direction's reassembled bytes to its own file in DIR.
    #[arg(long, value_name = "DIR")]
    pub extract: Option<PathBuf>,
    /// Show everything an eavesdropper reads, not just a preview.
    #[arg(long)]
    pub full: bool,
    /// Colour the report.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
    /// Decrypt the rchat messages sent to this private key (PEM), e.g. one saved by keygen;
    /// repeat for several keys.
    #[arg(long = "key", value_name = "FILE.pem")]
    pub keys: Vec<PathBuf>,
    /// Also write the report as one self-contained HTML page with pictures (histograms,
    /// timeline, entropy against length) to FILE; `-` writes it to standard output instead of
    /// the report.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Sketch each direction's byte-value histogram in one line of the report (the default on
    /// a terminal, unless NO_COLOR is set).
    #[arg(long)]
    pub histogram: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
