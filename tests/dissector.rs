//! The Wireshark dissector (`wireshark/rchat.lua`) run by tshark must see the same frames as
//! rchat's own decoder: for each direction of each TCP connection, the same number of frames,
//! the same types and the same value in every numeric field the dissector shows (header
//! length, sequence numbers, block count and length, signature, name, key and reason lengths,
//! key size), with no Lua error. Checked on the shipped encrypted captures, on a session
//! recorded by the rchat under test, and on a capture built here whose TCP segments split
//! frames and pack several frames together.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{BIN, have_tool, scratch};
use rchat::crypto::PeerKey;
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
];

/// One frame as both decoders describe it: its type byte, and the value of each field of
/// [`NUMBERS`] that a frame of this type has.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decoded {
    kind: u8,
    numbers: BTreeMap<&'static str, u64>,
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
            let mut numbers = BTreeMap::new();
            for &name in NUMBERS {
                if item.get(name).is_some() {
                    let value = text(&item, name);
                    numbers.insert(
                        name,
                        value.parse().unwrap_or_else(|e| panic!("{name} {value:?}: {e}")),
                    );
                }
            }
            let kind = text(&item, "rchat.type").parse().unwrap();
            map.entry(dir).or_default().push(Decoded { kind, numbers });
        }
    }
    map
}

/// What rchat's decoder says of one frame, in the dissector's terms.
fn describe(frame: &Frame) -> Decoded {
    let n = |v: usize| v as u64;
    let mut numbers = BTreeMap::from([
        ("rchat.version", u64::from(VERSION)),
        ("rchat.length", n(frame.body.len())),
    ]);
    match frame.kind {
        FrameType::Hello => {
            let hello = Hello::decode(&frame.body).expect("HELLO body");
            let key = PeerKey::from_spki(&hello.spki).expect("an RSA key in the HELLO");
            numbers.extend([
                ("rchat.mode", u64::from(hello.mode)),
                ("rchat.name_length", n(hello.name.len())),
                ("rchat.key_length", n(hello.spki.len())),
                ("rchat.key_bits", n(key.bits())),
            ]);
        }
        FrameType::Auth => {
            let auth = Auth::decode(&frame.body).expect("AUTH body");
            numbers.insert("rchat.signature_length", n(auth.signature.len()));
        }
        FrameType::Message => {
            let msg = Message::decode(&frame.body).expect("MESSAGE body");
            numbers.extend([
                ("rchat.seq", msg.seq),
                ("rchat.block_count", n(msg.block_count())),
                ("rchat.block_length", u64::from(msg.block_len)),
                ("rchat.signature_length", n(msg.signature.len())),
            ]);
        }
        FrameType::Bye => {
            let bye = Bye::decode(&frame.body).expect("BYE body");
            numbers.extend([
                ("rchat.seq", bye.seq),
                ("rchat.signature_length", n(bye.signature.len())),
            ]);
        }
        FrameType::Busy => {
            let busy = Busy::decode(&frame.body).expect("BUSY body");
            numbers.insert("rchat.reason_length", n(busy.reason.len()));
        }
        // The room's frames: not in any capture compared here yet.
        FrameType::Roster | FrameType::Joined | FrameType::Left | FrameType::Room => {}
    }
    Decoded { kind: frame.kind as u8, numbers }
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
            "rchat.truncated || rchat.trailing || rchat.not_rchat || rchat.internal || _ws.malformed",
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
        let capture = root().join("captures").join(name);
        let dir = scratch(&format!("dissector-{name}"));
        let ours = decoded(&extracted(&capture, dir.path()));
        compare(&capture, &ours);
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

#[test]
fn dissector_survives_malformed_frames() {
    if !have_tool("tshark") {
        return;
    }
    // Valid headers with bodies whose inner lengths lie, an unknown type, a wrong version,
    // a length far over the maximum, and trailing garbage after a frame.
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
    client.extend(frame(9, 1, &[1, 2, 3])); // unknown type
    client.extend(frame(1, 7, &[1, 2, 3])); // unknown version
    client.extend(b"garbage that is not a frame");
    let mut server = frame(3, 1, &[]);
    server.extend(b"RCHT\x01\x03\xff\xff\xff\xff and no body");

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
        ],
    );
    // tshark() itself fails the test on any Lua error.
    let out = tshark(&path, &["-V"]);
    assert!(out.contains("rchat"), "nothing dissected:\n{out}");
    for expected in ["rchat.truncated", "rchat.unsigned", "rchat.bad_type", "rchat.bad_version"] {
        let hits = tshark(&path, &["-Y", expected]);
        assert!(!hits.trim().is_empty(), "no packet flagged {expected}");
    }
    let internal = tshark(&path, &["-Y", "rchat.internal"]);
    assert!(internal.trim().is_empty(), "the dissector hit an internal error:\n{internal}");
    for port in [9999, 41000] {
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
