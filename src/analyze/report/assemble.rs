//! From what the stages found to the report: the warnings about streams and the room's members
//! named across its connections need every stream's result, so they are found first
//! ([`unmade_file_report`]); each stream's report is then made from its result when it is
//! taken ([`FileReport::next_unmade`]), so that the JSON writer holds a few at a time and a
//! capture of many connections never holds all its reports and results at once.

use crate::analyze::classify::plural;
use crate::analyze::engine::direction::{DirectionResult, StreamResult};
use crate::analyze::input::decode::endpoint;
use crate::analyze::recognise::rchat::{self, RchatReport};
use crate::analyze::stream::ports::PortSeen;
use crate::analyze::stream::{Dir, OOO_CAP, Stream};

use super::{
    Directions, FileReport, OtherPort, SCHEMA_VERSION, StreamReport, direction_report,
    eavesdropper, key_phrase, raw_rsa_of, recognized, stream_verdict,
};

/// What is known of one capture file before its streams: how it was read and what went wrong
/// reading it.
#[derive(Debug)]
pub struct Capture {
    /// The file as named on the command line.
    pub file: String,
    /// `pcap` or `pcapng`.
    pub format: &'static str,
    /// Names of the capture's link types.
    pub link_types: Vec<String>,
    /// Records read.
    pub packets: u64,
    /// Ports analysed.
    pub ports: Vec<u16>,
    /// The busiest TCP ports not analysed.
    pub other_ports: Vec<PortSeen>,
    /// Warnings so far (reading, decoding, the analysis threads).
    pub warnings: Vec<String>,
}

/// The report of one file: its streams (those with results) in order, each direction's
/// counters and result together, and a warning for each stream that overflowed the
/// out-of-order buffer or was picked up mid-connection.
pub fn file_report(
    capture: Capture,
    streams: Vec<Stream>,
    results: Vec<Option<StreamResult>>,
) -> FileReport {
    let mut report = unmade_file_report(capture, streams, results);
    report.make_streams();
    report
}

/// [`file_report`] with every warning, but its streams' reports not made yet: each is made
/// from its result when it is taken ([`FileReport::next_unmade`], as the JSON writer does a
/// few at a time), so that the reports of many streams are never all held at once.
pub fn unmade_file_report(
    capture: Capture,
    streams: Vec<Stream>,
    mut results: Vec<Option<StreamResult>>,
) -> FileReport {
    let Capture { file, format, link_types, packets, ports, other_ports, mut warnings } = capture;
    // A room's members are named on its connections one by one: name them across all.
    let mut connections: Vec<[Option<&mut RchatReport>; 2]> = results
        .iter_mut()
        .flatten()
        .map(|pair| {
            let [c2s, s2c] = &mut **pair;
            [c2s.rchat.as_deref_mut(), s2c.rchat.as_deref_mut()]
        })
        .collect();
    if connections.iter().flatten().flatten().any(|r| r.room.is_some()) {
        rchat::room::share_rooms(&mut connections);
    }
    drop(connections);
    for (s, result) in streams.iter().zip(&results) {
        let Some(pair) = result else { continue };
        if s.overflowed {
            warnings.push(format!(
                "stream {}: more than {} MiB arrived out of order; the hole in front of it was \
                 declared missing",
                s.id,
                OOO_CAP / (1024 * 1024)
            ));
        }
        let before = s.stats(Dir::ClientToServer).before_start_bytes
            + s.stats(Dir::ServerToClient).before_start_bytes;
        if before > 0 {
            warnings.push(format!(
                "stream {}: the capture starts mid-connection; {} sent before the first \
                 segment seen {} not in the reassembled stream",
                s.id,
                plural(before, "byte", "bytes"),
                if before == 1 { "is" } else { "are" }
            ));
        }
        for (label, d) in [("client to server", &pair[0]), ("server to client", &pair[1])] {
            // Private keys are only found in messages (a handshake or HELLO carries public
            // ones).
            let found = d.keys.iter().map(|k| recognized(k.offset, &k.key));
            for k in found.filter(|k| k.kind == "private_key") {
                warnings.push(format!(
                    "stream {}, {label}: a PRIVATE KEY ({}) travelled in the clear at offset {}: \
                     anyone who captured it can decrypt and sign as its owner; make a new key",
                    s.id,
                    key_phrase(&k),
                    k.offset
                ));
            }
        }
    }
    FileReport {
        schema_version: SCHEMA_VERSION,
        file,
        format,
        link_types,
        packets,
        ports,
        other_ports: other_ports.iter().map(OtherPort::from).collect(),
        warnings,
        streams: Vec::new(),
        unmade: Some(Box::new(Unmade {
            streams: streams.into_iter(),
            results: results.into_iter(),
        })),
    }
}

/// The streams of a report whose reports are not made yet, and their results.
pub struct Unmade {
    streams: std::vec::IntoIter<Stream>,
    results: std::vec::IntoIter<Option<StreamResult>>,
}

impl std::fmt::Debug for Unmade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Unmade({} streams)", self.streams.len())
    }
}

impl FileReport {
    /// The next stream's report not made yet (see [`unmade_file_report`]), made now.
    pub fn next_unmade(&mut self) -> Option<StreamReport> {
        let unmade = self.unmade.as_mut()?;
        loop {
            let (Some(s), Some(result)) = (unmade.streams.next(), unmade.results.next()) else {
                self.unmade = None;
                return None;
            };
            if let Some(pair) = result {
                return Some(stream_report(&s, *pair));
            }
        }
    }

    /// Whether some streams' reports are not made yet.
    pub fn has_unmade(&self) -> bool {
        self.unmade.is_some()
    }

    /// Make the reports of the streams not made yet, into [`FileReport::streams`].
    pub fn make_streams(&mut self) {
        while let Some(s) = self.next_unmade() {
            self.streams.push(s);
        }
    }
}

/// One stream's report, from its counters and its two results.
fn stream_report(s: &Stream, [c2s, s2c]: [DirectionResult; 2]) -> StreamReport {
    // Raw RSA to the other side's key: the blocks of each direction are measured against
    // the keys the other direction sent.
    let rsa_c2s = raw_rsa_of(&c2s, &s2c);
    let rsa_s2c = raw_rsa_of(&s2c, &c2s);
    let c2s = direction_report(&s.stats(Dir::ClientToServer), c2s, rsa_c2s, true, s.start_ns);
    let s2c = direction_report(&s.stats(Dir::ServerToClient), s2c, rsa_s2c, false, s.start_ns);
    let verdict = stream_verdict(c2s.verdict, s2c.verdict);
    StreamReport {
        id: s.id,
        client: endpoint(s.client.0, s.client.1),
        server: endpoint(s.server.0, s.server.1),
        start: s.start_ns as f64 / 1e9,
        end: s.end_ns as f64 / 1e9,
        verdict,
        eavesdropper: eavesdropper(verdict, [&c2s, &s2c]),
        directions: Directions { client_to_server: c2s, server_to_client: s2c },
    }
}
