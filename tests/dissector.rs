//! The Wireshark dissector (`wireshark/rchat.lua`) run by tshark must see the same frames as
//! rchat's own decoder: for each direction of each TCP connection, the same number of frames,
//! the same types and the same value in every numeric field the dissector shows (header
//! length, sequence numbers, block count and length, signature, name, key and reason lengths,
//! key size, and in a room the ids, counts, flags and copy forms), the same names, reasons,
//! fingerprints, room id and copy digests, and the same members or copies in the same order,
//! with no Lua error. Checked on the shipped encrypted captures, on a session recorded by the
//! rchat under test, and on captures built here whose TCP segments split frames and pack
//! several frames together: one of a two-person chat, one of a room with real keys and frames.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{BIN, have_tool, scratch};
use rchat::crypto::{Identity, PeerKey};
use rchat::protocol::room_secure::seal;
use rchat::protocol::room_wire::{CopyBody, Joined, Left, Member, RoomMessage, Roster};
use rchat::protocol::secure::{Role, Sealer, Session, hello_frame, room_hello_frame};
use rchat::protocol::wire::{Auth, Busy, Bye, Frame, FrameType, Hello, Message, VERSION};

/// One direction of a connection: (source port, destination port).
type Direction = (u16, u16);

/// The dissector's numeric fields (`ProtoField.uint*` in rchat.lua) that rchat's decoder also
/// knows, besides the frame type: all of them, as `every_numeric_field_is_compared` checks.
const NUMBERS: &[&str] = &[
    "rchat.version",
    "rchat.length",
    "rchat.mode",
    "rchat.name_length",
    "rchat.key_length",
    "rchat.key_bits",
    "rchat.seq",
    "rchat.block_count",
    "rchat.block_length",
    "rchat.signature_length",
    "rchat.reason_length",
    "rchat.your_id",
    "rchat.your_name_length",
    "rchat.member_count",
    "rchat.member_id",
    "rchat.sender_id",
    "rchat.flags",
    "rchat.copy_count",
    "rchat.recipient_id",
    "rchat.copy_form",
];

/// The dissector's text fields compared too: what it reads (names, reasons, the room id, a
/// relayed copy's digest) and what it computes (fingerprints, the digest of a full copy).
const TEXTS: &[&str] = &[
    "rchat.name",
    "rchat.fingerprint",
    "rchat.reason",
    "rchat.room_id",
    "rchat.your_name",
    "rchat.digest",
    "rchat.computed_digest",
];

/// The subtrees that repeat within a frame: the members of a ROSTER (or the one of a JOINED)
/// and the copies of a ROOM MESSAGE. In tshark's JSON each is an object of its fields (an
/// array of them, in order, when there are several).
const PARTS: &[&str] = &["rchat.member", "rchat.copy"];

/// Values of the fields of [`NUMBERS`] and [`TEXTS`] found at one level of a frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Fields {
    numbers: BTreeMap<&'static str, u64>,
    texts: BTreeMap<&'static str, String>,
}

/// One frame as both decoders describe it: its type byte, its own fields, and those of each
/// of its members or copies ([`PARTS`]), in order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decoded {
    kind: u8,
    fields: Fields,
    parts: Vec<Fields>,
}

const ENCRYPTED_CAPTURES: &[&str] =
    &["chat-encrypted.pcapng", "two-sessions-and-noise.pcapng", "chat-any-interface.pcap"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn dissector() -> PathBuf {
    root().join("wireshark").join("rchat.lua")
}

/// Run tshark with the dissector; panic on a failed run or a Lua error, return stdout.
fn tshark(capture: &Path, extra: &[&str]) -> String {
    let script = format!("lua_script:{}", dissector().display());
    let out = Command::new("tshark")
        .args(["-n", "-X", &script, "-r"])
        .arg(capture)
        .args(extra)
        .output()
        .expect("run tshark");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "tshark failed on {}: {stderr}", capture.display());
    // tshark prints nothing on stderr but a warning when run as root; a Lua error or a
    // "Dissector bug" (a misuse of the TCP reassembly API) would show up there.
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line.contains("Running as user"),
            "tshark complained about {}: {stderr}",
            capture.display()
        );
    }
    for bad in ["Lua Error", "Dissector bug"] {
        assert!(
            !stdout.contains(bad),
            "{bad} in the dissection of {}:\n{stdout}",
            capture.display()
        );
    }
    stdout
}

/// The frames the dissector finds, per direction: each rchat item of each packet, in order,
/// from tshark's JSON. With `--no-duplicate-keys`, a packet that completes several frames
/// gives an array of items (without it, the JSON would repeat the key `rchat`).
fn dissected(capture: &Path) -> BTreeMap<Direction, Vec<Decoded>> {
    let out =
        tshark(capture, &["-Y", "rchat", "-T", "json", "--no-duplicate-keys", "-J", "tcp rchat"]);
    let packets: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("tshark's JSON for {}: {e}", capture.display()));
    let text = |v: &serde_json::Value, name: &str| -> String {
        v[name].as_str().unwrap_or_else(|| panic!("no single {name} in {v}")).to_string()
    };
    let fields = |v: &serde_json::Value| -> Fields {
        let mut out = Fields::default();
        for &name in NUMBERS {
            if v.get(name).is_some() {
                let value = text(v, name);
                // Flags are shown in hexadecimal ("0x01").
                let number = match value.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => value.parse(),
                };
                let number = number.unwrap_or_else(|e| panic!("{name} {value:?}: {e}"));
                out.numbers.insert(name, number);
            }
        }
        for &name in TEXTS {
            if v.get(name).is_some() {
                out.texts.insert(name, text(v, name));
            }
        }
        out
    };
    let mut map: BTreeMap<Direction, Vec<Decoded>> = BTreeMap::new();
    for packet in packets.as_array().expect("a JSON array of packets") {
        let layers = &packet["_source"]["layers"];
        let tcp = &layers["tcp"];
        let dir =
            (text(tcp, "tcp.srcport").parse().unwrap(), text(tcp, "tcp.dstport").parse().unwrap());
        let items = match &layers["rchat"] {
            serde_json::Value::Array(items) => items.clone(),
            item => vec![item.clone()],
        };
        for item in items {
            let mut parts = vec![];
            for &name in PARTS {
                match item.get(name) {
                    Some(serde_json::Value::Array(trees)) => parts.extend(trees.iter().map(fields)),
                    Some(tree) => parts.push(fields(tree)),
                    None => {}
                }
            }
            let kind = text(&item, "rchat.type").parse().unwrap();
            map.entry(dir).or_default().push(Decoded { kind, fields: fields(&item), parts });
        }
    }
    map
}

/// Bytes as tshark's JSON shows a bytes field: lower-case hex, colon-separated.
fn hex_colons(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

impl Fields {
    fn number(&mut self, name: &'static str, value: impl TryInto<u64>) -> &mut Self {
        let value = value.try_into().unwrap_or_else(|_| panic!("{name} does not fit in u64"));
        self.numbers.insert(name, value);
        self
    }

    fn text(&mut self, name: &'static str, value: impl Into<String>) -> &mut Self {
        self.texts.insert(name, value.into());
        self
    }

    /// A name the dissector shows only when it is not empty.
    fn name(&mut self, name: &'static str, value: &str) -> &mut Self {
        if !value.is_empty() {
            self.text(name, value);
        }
        self
    }

    /// Name length, name, key length, and the key's size and fingerprint, as in a HELLO.
    fn person(&mut self, name: &str, spki: &[u8]) -> &mut Self {
        let key = PeerKey::from_spki(spki).expect("an RSA key");
        self.number("rchat.name_length", name.len())
            .name("rchat.name", name)
            .number("rchat.key_length", spki.len())
            .number("rchat.key_bits", key.bits())
            .text("rchat.fingerprint", key.fingerprint.to_string())
    }
}

fn member(m: &Member) -> Fields {
    let mut out = Fields::default();
    out.number("rchat.member_id", m.id).person(&m.name, &m.spki);
    out
}

/// What rchat's decoder says of one frame, in the dissector's terms.
fn describe(frame: &Frame) -> Decoded {
    let mut out = Fields::default();
    out.number("rchat.version", VERSION).number("rchat.length", frame.body.len());
    let mut parts = vec![];
    match frame.kind {
        FrameType::Hello => {
            let hello = Hello::decode(&frame.body).expect("HELLO body");
            out.number("rchat.mode", hello.mode).person(&hello.name, &hello.spki);
        }
        FrameType::Auth => {
            let auth = Auth::decode(&frame.body).expect("AUTH body");
            out.number("rchat.signature_length", auth.signature.len());
        }
        FrameType::Message => {
            let msg = Message::decode(&frame.body).expect("MESSAGE body");
            out.number("rchat.seq", msg.seq)
                .number("rchat.block_count", msg.block_count())
                .number("rchat.block_length", msg.block_len)
                .number("rchat.signature_length", msg.signature.len());
        }
        FrameType::Bye => {
            let bye = Bye::decode(&frame.body).expect("BYE body");
            out.number("rchat.seq", bye.seq).number("rchat.signature_length", bye.signature.len());
        }
        FrameType::Busy => {
            let busy = Busy::decode(&frame.body).expect("BUSY body");
            out.number("rchat.reason_length", busy.reason.len()).name("rchat.reason", &busy.reason);
        }
        FrameType::Roster => {
            let roster = Roster::decode(&frame.body).expect("ROSTER body");
            out.number("rchat.seq", roster.seq)
                .text("rchat.room_id", hex_colons(&roster.room_id))
                .number("rchat.your_id", roster.you)
                .number("rchat.your_name_length", roster.your_name.len())
                .name("rchat.your_name", &roster.your_name)
                .number("rchat.member_count", roster.members.len())
                .number("rchat.signature_length", roster.signature.len());
            parts.extend(roster.members.iter().map(member));
        }
        FrameType::Joined => {
            let joined = Joined::decode(&frame.body).expect("JOINED body");
            out.number("rchat.seq", joined.seq)
                .number("rchat.signature_length", joined.signature.len());
            parts.push(member(&joined.member));
        }
        FrameType::Left => {
            let left = Left::decode(&frame.body).expect("LEFT body");
            out.number("rchat.seq", left.seq)
                .number("rchat.member_id", left.id)
                .number("rchat.reason_length", left.reason.len())
                .name("rchat.reason", &left.reason)
                .number("rchat.signature_length", left.signature.len());
        }
        FrameType::Room => {
            let msg = RoomMessage::decode(&frame.body).expect("ROOM MESSAGE body");
            out.number("rchat.sender_id", msg.sender)
                .number("rchat.seq", msg.seq)
                .number("rchat.flags", msg.flags())
                .number("rchat.copy_count", msg.copies.len())
                .number("rchat.signature_length", msg.signature.len());
            for copy in &msg.copies {
                let mut part = Fields::default();
                part.number("rchat.recipient_id", copy.recipient);
                match &copy.body {
                    CopyBody::Cipher { block_len, blocks } => {
                        part.number("rchat.copy_form", 0u8)
                            .number("rchat.block_count", blocks.len() / usize::from(*block_len))
                            .number("rchat.block_length", *block_len)
                            .text("rchat.computed_digest", hex::encode(copy.digest()));
                    }
                    CopyBody::Digest(digest) => {
                        part.number("rchat.copy_form", 1u8)
                            .text("rchat.digest", hex_colons(digest));
                    }
                }
                parts.push(part);
            }
        }
    }
    Decoded { kind: frame.kind as u8, fields: out, parts }
}

/// rchat's own decoder over one direction's bytes: every whole frame, in order.
fn decode(bytes: &[u8]) -> Vec<Decoded> {
    let mut out = vec![];
    let mut rest = bytes;
    while let Ok(Some((frame, used))) = Frame::parse(rest) {
        out.push(describe(&frame));
        rest = &rest[used..];
    }
    out
}

/// Each direction's reassembled bytes, as `rchat analyze --extract` writes them.
fn extracted(capture: &Path, dir: &Path) -> BTreeMap<Direction, Vec<u8>> {
    fs::create_dir_all(dir).unwrap();
    let out = Command::new(BIN)
        .args(["analyze", "--all-ports", "--color", "never", "--extract"])
        .arg(dir)
        .arg(capture)
        .output()
        .expect("run rchat analyze");
    assert!(
        out.status.success(),
        "rchat analyze --extract failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut map = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        // stream0-127.0.0.1_41172-127.0.0.1_9999.bin
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let ports: Vec<u16> = name
            .split('-')
            .skip(1)
            .map(|end| end.rsplit('_').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(ports.len(), 2, "unexpected extract file name {name}");
        map.insert((ports[0], ports[1]), fs::read(&path).unwrap());
    }
    map
}

/// The frames rchat's decoder finds, per direction (directions without frames left out).
fn decoded(streams: &BTreeMap<Direction, Vec<u8>>) -> BTreeMap<Direction, Vec<Decoded>> {
    streams
        .iter()
        .map(|(dir, bytes)| (*dir, decode(bytes)))
        .filter(|(_, frames)| !frames.is_empty())
        .collect()
}

/// Assert that the dissector finds, in every direction of every connection of `capture`,
/// the frames rchat's decoder finds in the bytes `rchat analyze --extract` reassembles.
/// Returns those frames. Works on any capture, `rchat host --room --record` ones included.
fn assert_dissector_agrees(capture: &Path) -> BTreeMap<Direction, Vec<Decoded>> {
    let name = capture.file_name().unwrap().to_string_lossy().into_owned();
    let dir = scratch(&format!("dissector-{name}"));
    let ours = decoded(&extracted(capture, dir.path()));
    compare(capture, &ours);
    ours
}

/// Assert that the dissector finds in `capture` exactly the frames of `ours`, field by field,
/// without a warning.
fn compare(capture: &Path, ours: &BTreeMap<Direction, Vec<Decoded>>) {
    let theirs = dissected(capture);
    assert!(!ours.is_empty(), "no rchat frames in {}", capture.display());
    let directions = |m: &BTreeMap<Direction, Vec<Decoded>>| m.keys().copied().collect::<Vec<_>>();
    assert_eq!(
        directions(&theirs),
        directions(ours),
        "directions with frames in {}: the dissector's (left), rchat's (right)",
        capture.display()
    );
    for (dir, frames) in ours {
        let seen = &theirs[dir];
        for (i, (t, o)) in seen.iter().zip(frames).enumerate() {
            assert_eq!(
                t,
                o,
                "frame {i} from port {} to port {} of {}: the dissector (left) and rchat's \
                 decoder (right) disagree",
                dir.0,
                dir.1,
                capture.display()
            );
        }
        assert_eq!(
            seen.len(),
            frames.len(),
            "frames from port {} to port {}: the dissector's count (left), rchat's (right)",
            dir.0,
            dir.1
        );
    }
    // No malformed-frame warning from the dissector on frames rchat itself sent.
    let bad = tshark(
        capture,
        &[
            "-Y",
            "rchat.truncated || rchat.trailing || rchat.not_rchat || rchat.internal \
             || rchat.bad_value || rchat.unsigned || rchat.too_long || _ws.malformed",
        ],
    );
    assert!(bad.trim().is_empty(), "expert warnings on {}:\n{bad}", capture.display());
}

#[test]
fn dissector_agrees_with_rchat_on_the_shipped_captures() {
    if !have_tool("tshark") {
        return;
    }
    for name in ENCRYPTED_CAPTURES {
        assert_dissector_agrees(&root().join("captures").join(name));
    }
}

/// A session recorded now, by the rchat under test: each MESSAGE leaves in two writes
/// (blocks, then signature), so the dissector must join them.
#[test]
fn dissector_agrees_with_rchat_on_a_fresh_recording() {
    if !have_tool("tshark") {
        return;
    }
    let dir = scratch("dissector-fresh");
    let capture = dir.path().join("demo.pcap");
    // An ephemeral port: the dissector finds the frames by its heuristic.
    let out = Command::new(BIN)
        .args(["demo", "--fast", "--port", "0", "--record"])
        .arg(&capture)
        .output()
        .expect("run rchat demo");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ours = decoded(&extracted(&capture, &dir.path().join("extract")));
    let messages = ours.values().flatten().filter(|d| d.kind == FrameType::Message as u8);
    assert!(messages.count() >= 2, "the demo sent messages: {ours:?}");
    compare(&capture, &ours);
}

#[test]
fn dissector_shows_fingerprints_and_names_from_hello() {
    if !have_tool("tshark") {
        return;
    }
    let capture = root().join("captures").join("chat-encrypted.pcapng");
    let out = tshark(
        &capture,
        &[
            "-Y",
            "rchat.type == 1",
            "-T",
            "fields",
            "-e",
            "rchat.name",
            "-e",
            "rchat.fingerprint",
            "-e",
            "rchat.key_bits",
        ],
    );
    let mut seen: Vec<(String, String)> = out
        .lines()
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .map(|cols| {
            assert_eq!(cols.len(), 3, "{cols:?}");
            assert_eq!(cols[2], "2048", "key size of {}", cols[0]);
            (cols[0].to_string(), cols[1].to_string())
        })
        .collect();
    seen.sort();
    let mut expected = vec![];
    for who in ["alice", "bob"] {
        let key = root().join("captures").join("keys").join(format!("{who}.pem"));
        let out = Command::new(BIN).arg("fingerprint").arg(&key).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        let fp = text.split_whitespace().next().unwrap().to_string();
        assert!(fp.starts_with("SHA256:"), "unexpected fingerprint output {text:?}");
        expected.push((who.to_string(), fp));
    }
    assert_eq!(seen, expected);
}

#[test]
fn dissector_leaves_plaintext_mode_alone() {
    if !have_tool("tshark") {
        return;
    }
    // Plaintext mode on port 9999 has no frames: the dissector must not claim its lines; nor
    // the PEM keys, lines and RSA blocks of the original program on the same port.
    for name in ["chat-plaintext.pcap", "original-plaintext.pcap", "original-encrypted.pcap"] {
        let capture = root().join("captures").join(name);
        let out = tshark(&capture, &["-Y", "rchat"]);
        assert!(out.trim().is_empty(), "rchat frames found in {name}:\n{out}");
        let data = tshark(&capture, &["-Y", "tcp.len > 0"]);
        assert!(!data.trim().is_empty(), "no data packets in {name}");
    }
}

/// One TCP connection to write into a made-up capture.
struct Conn<'a> {
    client_port: u16,
    server_port: u16,
    client: &'a [u8],
    server: &'a [u8],
    /// Segment sizes, used in a cycle, to cut both directions into.
    sizes: &'a [usize],
}

/// Build a pcap holding the connections, one after the other.
fn write_resegmented(path: &Path, conns: &[Conn]) {
    use etherparse::PacketBuilder;
    use pcap_file::pcap::{PcapPacket, PcapWriter};

    let mut writer = PcapWriter::new(fs::File::create(path).unwrap()).unwrap();
    let mut t = Duration::from_secs(1_700_000_000);
    let mut put = |data: Vec<u8>| {
        t += Duration::from_millis(1);
        writer.write_packet(&PcapPacket::new(t, data.len() as u32, &data)).unwrap();
    };
    let lo = [127, 0, 0, 1];
    let mac = [0u8; 6];
    for conn in conns {
        let (cport, sport, client, server, sizes) =
            (conn.client_port, conn.server_port, conn.client, conn.server, conn.sizes);
        let (mut cseq, mut sseq) = (1000u32, 5000u32);
        let seg = |src: u16, dst: u16, seq: u32, ack: u32, syn: bool, payload: &[u8]| {
            let mut b =
                PacketBuilder::ethernet2(mac, mac).ipv4(lo, lo, 64).tcp(src, dst, seq, 65535);
            if syn {
                b = b.syn();
            }
            if ack != 0 {
                b = b.ack(ack);
            }
            if !payload.is_empty() {
                b = b.psh();
            }
            let mut out = vec![];
            b.write(&mut out, payload).unwrap();
            out
        };
        put(seg(cport, sport, cseq, 0, true, &[]));
        put(seg(sport, cport, sseq, cseq + 1, true, &[]));
        cseq += 1;
        sseq += 1;
        put(seg(cport, sport, cseq, sseq, false, &[]));
        // Alternate directions, each cut by the cycle of sizes.
        let (mut ci, mut si, mut k) = (0usize, 0usize, 0usize);
        while ci < client.len() || si < server.len() {
            if ci < client.len() {
                let n = sizes[k % sizes.len()].min(client.len() - ci);
                put(seg(cport, sport, cseq, sseq, false, &client[ci..ci + n]));
                cseq += n as u32;
                ci += n;
            }
            if si < server.len() {
                let n = sizes[(k + 1) % sizes.len()].min(server.len() - si);
                put(seg(sport, cport, sseq, cseq, false, &server[si..si + n]));
                sseq += n as u32;
                si += n;
            }
            k += 1;
        }
    }
}

#[test]
fn dissector_reassembles_split_frames_and_splits_packed_ones() {
    if !have_tool("tshark") {
        return;
    }
    // Real frames from the shipped capture, re-cut into awkward segments: a header split
    // after 3 and 7 bytes, single bytes, and large segments that hold several frames and
    // end in the middle of another.
    let capture = root().join("captures").join("chat-encrypted.pcapng");
    let dir = scratch("dissector-resegment");
    let streams = extracted(&capture, &dir.path().join("extract"));
    let client = streams
        .iter()
        .find(|(d, b)| d.1 == 9999 && !b.is_empty())
        .map(|(_, b)| b)
        .expect("client direction");
    let server = streams
        .iter()
        .find(|(d, b)| d.0 == 9999 && !b.is_empty())
        .map(|(_, b)| b)
        .expect("server direction");

    let on_port = [3usize, 7, 1, 600, 1500, 2];
    let other_port = [2000usize, 5, 900, 4000];
    let path = dir.path().join("resegmented.pcap");
    write_resegmented(
        &path,
        &[
            Conn { client_port: 40001, server_port: 9999, client, server, sizes: &on_port },
            Conn { client_port: 40002, server_port: 41001, client, server, sizes: &other_port },
        ],
    );

    let mut ours = BTreeMap::new();
    for (cport, sport) in [(40001u16, 9999u16), (40002, 41001)] {
        ours.insert((cport, sport), decode(client));
        ours.insert((sport, cport), decode(server));
    }
    compare(&path, &ours);

    // Some packet must carry more than one frame, or the packing was not tested.
    let infos = tshark(&path, &["-Y", "rchat", "-T", "fields", "-e", "rchat.type"]);
    assert!(infos.lines().any(|l| l.contains(',')), "no packet with several frames:\n{infos}");
}

/// One member's connection to a room's host after the handshake: the bytes each side has
/// sent so far, and each side's signing half.
struct Link {
    member_out: Vec<u8>,
    host_out: Vec<u8>,
    host: Sealer,
    member: Sealer,
}

impl Link {
    /// Both HELLOs (the host's in the room's mode 02) and both AUTHs, with real signatures.
    fn new(host: &Arc<Identity>, member: &Arc<Identity>, name: &str) -> Link {
        let host_hello = room_hello_frame(host, "teacher").to_bytes();
        let member_hello = hello_frame(member, name).to_bytes();
        let session = |me: &Arc<Identity>, peer: &Arc<Identity>, peer_name: &str, role| {
            let (h, j) = (&host_hello, &member_hello);
            Session::new(me.clone(), peer.public().clone(), peer_name.into(), role, h, j)
        };
        let host_side = session(host, member, name, Role::Host);
        let member_side = session(member, host, "teacher", Role::Joiner);
        let mut host_out = host_hello.clone();
        host_out.extend(host_side.auth().unwrap().to_frame().to_bytes());
        let mut member_out = member_hello.clone();
        member_out.extend(member_side.auth().unwrap().to_frame().to_bytes());
        Link { member_out, host_out, host: host_side.split().0, member: member_side.split().0 }
    }

    fn roster(&mut self, room_id: [u8; 32], you: u16, name: &str, members: &[Member]) {
        let mut roster = Roster {
            seq: 0,
            room_id,
            you,
            your_name: name.into(),
            members: members.to_vec(),
            signature: vec![],
        };
        (roster.seq, roster.signature) =
            self.host.notice(FrameType::Roster, &roster.fields()).unwrap();
        self.host_out.extend(roster.to_frame().to_bytes());
    }

    fn joined(&mut self, member: &Member) {
        let mut joined = Joined { seq: 0, member: member.clone(), signature: vec![] };
        (joined.seq, joined.signature) =
            self.host.notice(FrameType::Joined, &joined.fields()).unwrap();
        self.host_out.extend(joined.to_frame().to_bytes());
    }

    fn left(&mut self, id: u16, reason: &str) {
        let mut left = Left { seq: 0, id, reason: reason.into(), signature: vec![] };
        (left.seq, left.signature) = self.host.notice(FrameType::Left, &left.fields()).unwrap();
        self.host_out.extend(left.to_frame().to_bytes());
    }

    /// What the relay sends this member (`id`) of a message: its copy in full, others as
    /// digests.
    fn relay(&mut self, msg: &RoomMessage, id: u16) {
        self.host_out.extend(msg.for_recipient(id).to_frame().to_bytes());
    }

    /// A message the member sends the relay: every copy in full.
    fn send(&mut self, msg: &RoomMessage) {
        self.member_out.extend(msg.to_frame().to_bytes());
    }

    fn byes(&mut self) {
        self.member_out.extend(self.member.bye().unwrap().to_frame().to_bytes());
        self.host_out.extend(self.host.bye().unwrap().to_frame().to_bytes());
    }
}

/// A room, frame by frame as rchat's library builds them, with real keys and signatures:
/// the host "teacher" (id 0), alice (1), bob (2, the only 2048-bit key) and carol (3, who
/// has no connection here and leaves). Returns the bytes of alice's and bob's connections to
/// the host, (member, host) each.
fn room_streams() -> [(Vec<u8>, Vec<u8>); 2] {
    let keys: Vec<Arc<Identity>> = [1024, 1024, 2048, 1024]
        .into_iter()
        .map(|bits| Arc::new(Identity::generate(bits).unwrap()))
        .collect();
    let names = ["teacher", "alice", "bob", "carol"];
    let members: Vec<Member> = (0..4u16)
        .map(|id| Member {
            id,
            name: names[usize::from(id)].into(),
            spki: keys[usize::from(id)].public().spki_der.clone(),
        })
        .collect();
    let room_id: [u8; 32] = std::array::from_fn(|i| (i * 37 + 11) as u8);
    let to = |ids: &[u16]| -> Vec<(u16, &PeerKey)> {
        ids.iter().map(|&id| (id, keys[usize::from(id)].public())).collect()
    };
    let sealed = |from: u16, seq: u64, private: bool, ids: &[u16], text: &str| {
        seal(&keys[usize::from(from)], &room_id, from, seq, private, &to(ids), text).unwrap()
    };

    let mut alice = Link::new(&keys[0], &keys[1], "alice");
    alice.roster(room_id, 1, "alice", &members[..2]);
    let mut bob = Link::new(&keys[0], &keys[2], "bob");
    bob.roster(room_id, 2, "bob", &members[..3]);
    alice.joined(&members[2]);
    alice.joined(&members[3]);
    bob.joined(&members[3]);

    // alice to everyone, then privately to bob.
    let hello = sealed(1, 0, false, &[0, 2, 3], "hello room");
    alice.send(&hello);
    bob.relay(&hello, 2);
    let private = sealed(1, 1, true, &[2], "psst, bob");
    alice.send(&private);
    bob.relay(&private, 2);
    // bob's longest text: 67 blocks a copy for the 1024-bit keys, frames of many segments.
    let long = sealed(2, 0, false, &[0, 1, 3], &"0123456789abcdef".repeat(256));
    bob.send(&long);
    alice.relay(&long, 1);
    // The host's own message, to each member with the others' copies as digests.
    let welcome = sealed(0, 0, false, &[1, 2, 3], "welcome, all three");
    alice.relay(&welcome, 1);
    bob.relay(&welcome, 2);

    for link in [&mut alice, &mut bob] {
        link.left(3, "stopped reading");
    }
    alice.byes();
    bob.left(1, "left");
    bob.byes();
    [(alice.member_out, alice.host_out), (bob.member_out, bob.host_out)]
}

#[test]
fn dissector_agrees_with_rchat_on_a_room() {
    if !have_tool("tshark") {
        return;
    }
    let [(alice, alice_host), (bob, bob_host)] = room_streams();
    let dir = scratch("dissector-room");
    let path = dir.path().join("room.pcap");
    // alice on rchat's port, cut small and large; bob on another port (found by the
    // heuristic), in segments that pack several frames or cut the long message in pieces.
    write_resegmented(
        &path,
        &[
            Conn {
                client_port: 40011,
                server_port: 9999,
                client: &alice,
                server: &alice_host,
                sizes: &[3, 7, 1, 600, 1500, 2, 9000],
            },
            Conn {
                client_port: 40012,
                server_port: 41002,
                client: &bob,
                server: &bob_host,
                sizes: &[4000, 5, 900, 64, 12000],
            },
        ],
    );
    let mut ours = BTreeMap::new();
    for (cport, sport, client, server) in
        [(40011u16, 9999u16, &alice, &alice_host), (40012, 41002, &bob, &bob_host)]
    {
        ours.insert((cport, sport), decode(client));
        ours.insert((sport, cport), decode(server));
    }
    let kinds: Vec<u8> = ours.values().flatten().map(|d| d.kind).collect();
    for kind in [FrameType::Roster, FrameType::Joined, FrameType::Left, FrameType::Room] {
        assert!(kinds.contains(&(kind as u8)), "no {kind} in the room capture");
    }
    compare(&path, &ours);
    // The capture as rchat analyze reassembles it gives the same frames.
    assert_eq!(assert_dissector_agrees(&path), ours);

    let infos = tshark(&path, &["-Y", "rchat", "-T", "fields", "-e", "_ws.col.Info"]);
    for expected in [
        "HELLO (room host) name=teacher SHA256:",
        "ROSTER: 2 members for alice (id 1)",
        "ROSTER: 3 members for bob (id 2)",
        "JOINED bob (id 2)",
        "JOINED carol (id 3)",
        "ROOM MESSAGE from 1 seq 0 to 3 recipients",
        "ROOM MESSAGE from 1 seq 0 to 3 recipients (ciphertext for 2 only)",
        "ROOM MESSAGE from 1 seq 1 to 1 recipient (private)",
        "ROOM MESSAGE from 2 seq 0 to 3 recipients (ciphertext for 1 only)",
        "ROOM MESSAGE from 0 seq 0 to 3 recipients (ciphertext for 1 only)",
        "LEFT 3: stopped reading",
        "LEFT 1: left",
    ] {
        assert!(infos.contains(expected), "no Info column with {expected:?}:\n{infos}");
    }
    let private =
        tshark(&path, &["-Y", "rchat.flags.private == 1", "-T", "fields", "-e", "frame.number"]);
    assert_eq!(private.lines().count(), 2, "the private message, sent and relayed:\n{private}");
    // Several frames in one packet, and the long message over many segments.
    let types = tshark(&path, &["-Y", "rchat", "-T", "fields", "-e", "rchat.type"]);
    assert!(types.lines().any(|l| l.contains(',')), "no packet with several frames:\n{types}");
    let pieces = tshark(&path, &["-Y", "rchat.type == 9 && tcp.reassembled.length > 20000"]);
    assert!(!pieces.trim().is_empty(), "the long message was not reassembled from segments");
}

#[test]
fn dissector_survives_malformed_frames() {
    if !have_tool("tshark") {
        return;
    }
    // Valid headers with bodies whose inner lengths lie, an unknown type, a wrong version,
    // a length far over the maximum, and trailing garbage after a frame; then the room's
    // frames, each malformed in one way.
    let frame = |kind: u8, version: u8, body: &[u8]| {
        let mut f = b"RCHT".to_vec();
        f.push(version);
        f.push(kind);
        f.extend_from_slice(&(body.len() as u32).to_be_bytes());
        f.extend_from_slice(body);
        f
    };
    let mut client = vec![];
    client.extend(frame(1, 1, &[1, 200, b'x'])); // name length past the end
    client.extend(frame(1, 1, &[1, 0, 0, 0])); // empty key
    client.extend(frame(2, 1, &[0, 0])); // unsigned AUTH
    client.extend(frame(3, 1, &[0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff])); // huge blocks
    client.extend(frame(3, 1, &[0; 4])); // MESSAGE shorter than its sequence number
    client.extend(frame(4, 1, &[0, 0, 0, 0, 0, 0, 0, 2, 0, 1, 9, 9, 9])); // trailing bytes
    client.extend(frame(5, 1, &[0, 3, 0xff, 0xfe, 0xfd])); // BUSY reason not UTF-8
    client.extend(frame(10, 1, &[1, 2, 3])); // unknown type
    client.extend(frame(1, 7, &[1, 2, 3])); // unknown version
    client.extend(b"garbage that is not a frame");
    let mut server = frame(3, 1, &[]);
    server.extend(b"RCHT\x01\x03\xff\xff\xff\xff and no body");

    // ROOM MESSAGEs from sender 1, seq 7, with `count` copies and a two-byte signature.
    let signature = [0u8, 2, 0xaa, 0xbb];
    let room = |flags: u8, count: u16, copies: &[u8]| {
        let mut body = vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 7, flags];
        body.extend(count.to_be_bytes());
        body.extend(copies);
        body.extend(signature);
        frame(9, 1, &body)
    };
    let digest = |id: u16| [&id.to_be_bytes()[..], &[1], &[0xd1; 32]].concat();
    let cipher = |id: u16, count: u16, len: u16, bytes: usize| {
        let fields = [count.to_be_bytes(), len.to_be_bytes()].concat();
        [&id.to_be_bytes()[..], &[0], &fields, &vec![0xc1; bytes]].concat()
    };
    // ROSTER with `count` members (`members` their bytes), unsigned.
    let roster = |count: u16, members: &[u8]| {
        let head = [&[0u8; 8][..], &[0x5a; 32], &[0, 4, 1, b'x'], &count.to_be_bytes()].concat();
        frame(6, 1, &[&head[..], members].concat())
    };
    // Each malformed room frame and (part of) the warning the dissector must give it.
    let room_cases: Vec<(Vec<u8>, &str)> = vec![
        (
            frame(
                9,
                1,
                &[&[0u8, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 1][..], &cipher(0, 1, 128, 10)].concat(),
            ),
            "ciphertext blocks: 128 bytes needed, 10 left",
        ),
        (room(0, 2, &[&[0u8, 0, 7][..], &[0xee; 40]].concat()), "copy form 7 is neither"),
        (
            room(0, 101, &(0..101).flat_map(digest).collect::<Vec<_>>()),
            "copy count 101 is not within 1 to 100",
        ),
        (room(0, 0, &[]), "copy count 0 is not within 1 to 100"),
        (room(0, 2, &[digest(2), digest(1)].concat()), "recipient 1 after recipient 2"),
        (room(1, 2, &[digest(1), digest(2)].concat()), "a private message has one copy, not 2"),
        (room(0x80, 1, &digest(1)), "unknown flags 0x80"),
        (room(0, 1, &cipher(1, 68, 128, 68 * 128)), "block count 68 is not within 1 to 67"),
        (room(0, 1, &cipher(1, 67, 256, 67 * 256)), "67 blocks of 256 bytes is over 8576 bytes"),
        (room(0, 1, &cipher(1, 1, 0, 0)), "block length 0 is not within 1 to 512"),
        (roster(101, &[]), "member count 101 is over 100"),
        (roster(1, &[0, 4, 200, b'x']), "member name: 200 bytes needed, 1 left"),
        (
            frame(7, 1, &[&[0u8; 8][..], &[0, 4, 3], b"bob", &[1, 0], &[0x30; 20]].concat()),
            "public key: 256 bytes needed, 20 left",
        ),
        (
            frame(8, 1, &[&[0u8; 8][..], &[0, 3, 40], b"stopped"].concat()),
            "reason: 40 bytes needed, 7 left",
        ),
    ];
    let room_client: Vec<u8> = room_cases.iter().flat_map(|(bytes, _)| bytes.clone()).collect();
    // A ROOM MESSAGE one byte over its limit: shown, not waited for.
    let mut room_server = frame(9, 1, &[]);
    room_server.truncate(6);
    room_server.extend(858_828u32.to_be_bytes());
    room_server.extend(b" and no body");

    let dir = scratch("dissector-malformed");
    let path = dir.path().join("malformed.pcap");
    write_resegmented(
        &path,
        &[
            Conn {
                client_port: 40003,
                server_port: 9999,
                client: &client,
                server: &server,
                sizes: &[5, 1000],
            },
            Conn {
                client_port: 40004,
                server_port: 41000,
                client: &client,
                server: &server,
                sizes: &[64],
            },
            Conn {
                client_port: 40005,
                server_port: 9999,
                client: &room_client,
                server: &room_server,
                sizes: &[5, 1000],
            },
            Conn {
                client_port: 40006,
                server_port: 41005,
                client: &room_client,
                server: &room_server,
                sizes: &[64],
            },
        ],
    );
    // tshark() itself fails the test on any Lua error.
    let out = tshark(&path, &["-V"]);
    assert!(out.contains("rchat"), "nothing dissected:\n{out}");
    for port in [9999, 41005] {
        let out = tshark(&path, &["-V", "-Y", &format!("tcp.port == {port}")]);
        for (_, warning) in &room_cases {
            assert!(out.contains(warning), "no warning {warning:?} on port {port}:\n{out}");
        }
    }
    let too_long = tshark(&path, &["-Y", "rchat.type == 9 && rchat.too_long"]);
    assert_eq!(too_long.lines().count(), 2, "the over-long ROOM MESSAGE, once a port:\n{too_long}");
    for expected in [
        "rchat.truncated",
        "rchat.unsigned",
        "rchat.bad_type",
        "rchat.bad_version",
        "rchat.bad_value",
        "rchat.too_long",
    ] {
        let hits = tshark(&path, &["-Y", expected]);
        assert!(!hits.trim().is_empty(), "no packet flagged {expected}");
    }
    let internal = tshark(&path, &["-Y", "rchat.internal"]);
    assert!(internal.trim().is_empty(), "the dissector hit an internal error:\n{internal}");
    for port in [9999, 41000, 41005] {
        let hits = tshark(&path, &["-Y", &format!("rchat && tcp.port == {port}")]);
        assert!(!hits.trim().is_empty(), "nothing dissected on port {port}");
    }
}

/// The comparison covers every numeric field the dissector defines: a field added to
/// rchat.lua must be added to [`NUMBERS`] (and to [`describe`]) too.
#[test]
fn every_numeric_field_is_compared() {
    let lua = fs::read_to_string(dissector()).unwrap();
    let mut defined: Vec<&str> = lua
        .split("ProtoField.uint")
        .skip(1)
        .map(|rest| {
            let name = rest.split('"').nth(1).expect("a quoted field name");
            assert!(name.starts_with("rchat."), "{name}");
            name
        })
        .collect();
    defined.sort();
    let mut compared: Vec<&str> = NUMBERS.iter().copied().chain(["rchat.type"]).collect();
    compared.sort();
    assert_eq!(defined, compared, "numeric fields in rchat.lua (left), compared here (right)");
}

#[test]
fn dissector_agrees_with_rchat_on_a_recorded_room() {
    if !have_tool("tshark") {
        return;
    }
    let dir = scratch("dissector-room");
    let capture = dir.path().join("room.pcap");
    let weak = ["--bits", "1024", "--allow-weak-keys"];
    let rec = capture.to_str().unwrap();
    let mut args = vec!["--room", "--name", "teacher", "--record", rec];
    args.extend_from_slice(&weak);
    let (mut host, port) = common::Proc::host(&args);
    let target = format!("127.0.0.1:{port}");
    let join = |name: &str| {
        let mut args = vec!["join", target.as_str(), "--name", name];
        args.extend_from_slice(&weak);
        let mut p = common::Proc::spawn(&args);
        p.wait_err(|l| l.starts_with("in the room: "), 60);
        p
    };
    let mut alice = join("alice");
    let mut bob = join("bob");
    alice.wait_err(|l| l.starts_with("bob joined"), 60);
    alice.send(&["hello room", "/msg bob just for bob"]);
    bob.wait_out(|l| l == "alice (private): just for bob", 60);
    for p in [&mut alice, &mut bob] {
        p.close_stdin();
        assert_eq!(p.finish(60), 0, "{:#?}", p.err);
    }
    host.wait_err(|l| l.starts_with("bob left"), 60);
    host.close_stdin();
    assert_eq!(host.finish(60), 0, "{:#?}", host.err);
    let ours = assert_dissector_agrees(&capture);
    let kinds: Vec<u8> = ours.values().flatten().map(|d| d.kind).collect();
    for kind in [FrameType::Roster, FrameType::Joined, FrameType::Left, FrameType::Room] {
        assert!(kinds.contains(&(kind as u8)), "a {kind} frame in the recording: {kinds:?}");
    }
}
