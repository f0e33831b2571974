//! `rchat analyze` on captures built in code: every link type and file format, every
//! reassembly case, compared with what was sent and (when tshark is installed) with tshark's
//! Follow TCP Stream.

mod common;

use common::capture::*;
use common::scratch;
use std::path::PathBuf;

use pcap_file::Endianness;
use serde_json::Value;
use tempfile::TempDir;

const CHAT_C: &[&[u8]] = &[b"hello bob\n", b"are you there?\n", "Привет 你好\n".as_bytes()];
const CHAT_S: &[&[u8]] = &[b"yes, here\n", b"see you at ten\n"];

fn chat(client: End, server: End, cisn: u32, sisn: u32) -> Conv {
    let mut c = Conv::new(client, server, cisn, sisn);
    c.handshake();
    c.c(CHAT_C[0]).s(CHAT_S[0]).c(CHAT_C[1]).s(CHAT_S[1]).c(CHAT_C[2]).close();
    c
}

fn v4() -> (End, End) {
    (End::new("10.1.1.1", 51000), End::new("10.1.1.2", 9999))
}

fn v6() -> (End, End) {
    (End::new("fd00::1", 51001), End::new("fd00::2", 9999))
}

fn dir<'a>(report: &'a Value, stream: usize, d: &str) -> &'a Value {
    &report["streams"][stream]["directions"][d]
}

fn assert_dir(report: &Value, stream: usize, d: &str, expect: &[u8]) {
    let got = dir(report, stream, d);
    assert_eq!(got["bytes"], expect.len() as u64, "stream {stream} {d}: {got}");
    assert_eq!(got["sha256"], sha256(expect), "stream {stream} {d}");
}

fn assert_chat(report: &Value, stream: usize) {
    assert_dir(report, stream, "client_to_server", &CHAT_C.concat());
    assert_dir(report, stream, "server_to_client", &CHAT_S.concat());
}

#[test]
fn every_link_type_in_pcap_both_byte_orders() {
    let dir = scratch("analyze-links");
    let links = [
        Link::Ethernet,
        Link::EthernetVlan,
        Link::Sll,
        Link::Sll2,
        Link::NullLe(24),
        Link::NullLe(28),
        Link::NullBe(30),
        Link::Loop,
        Link::Raw(101),
        Link::Raw(12),
        Link::Raw(14),
        Link::Raw(228),
        Link::Raw(229),
    ];
    for (i, link) in links.into_iter().enumerate() {
        let mut ips = Vec::new();
        let mut expected = 0;
        if link != Link::Raw(229) {
            let (c, s) = v4();
            ips.extend(chat(c, s, 1000, 2000).packets);
            expected += 1;
        }
        if link != Link::Raw(228) {
            let (c, s) = v6();
            ips.extend(chat(c, s, 3000, 4000).packets);
            expected += 1;
        }
        let recs = records(link, &ips);
        let (endianness, nanos) =
            if i % 2 == 0 { (Endianness::Little, false) } else { (Endianness::Big, true) };
        let bytes = pcap_bytes(link.linktype(), &recs, endianness, nanos);
        let file = write(dir.path(), &format!("link-{i}.pcap"), &bytes);
        let report = analyze_json(&file, &[]);
        assert_eq!(report["streams"].as_array().map(Vec::len), Some(expected), "{link:?}");
        assert_eq!(report["warnings"], serde_json::json!([]), "{link:?}");
        for s in 0..expected {
            assert_chat(&report, s);
        }
        assert_eq!(report["streams"][0]["start"].as_f64(), Some(1_700_000_000.0), "{link:?}");
        if link == Link::Raw(101) || link == Link::NullBe(30) || link == Link::Sll2 {
            assert_extract_matches_tshark(&file);
        }
    }
    let (c, s) = v6();
    let v6_report = analyze_json(&dir.path().join("link-0.pcap"), &[]);
    assert_eq!(v6_report["streams"][1]["client"], c.ep());
    assert_eq!(v6_report["streams"][1]["server"], s.ep());
}

#[test]
fn pcapng_sections_interfaces_resolutions_and_simple_blocks() {
    let dir = scratch("analyze-pcapng");
    let (c, s) = v4();
    let eth = records(Link::Ethernet, &chat(c, s, 10, 20).packets);
    let (c6, s6) = v6();
    let null = records(Link::NullLe(30), &chat(c6, s6, 30, 40).packets);
    let raw = records(Link::Raw(101), &chat(End::new("10.9.9.9", 52000), s, 50, 60).packets);
    let sections = [
        Section {
            endianness: Endianness::Big,
            interfaces: vec![(1, 6), (0, 9)],
            packets: eth
                .iter()
                .map(|r| (Some(0), r.clone()))
                .chain(null.iter().map(|r| (Some(1), r.clone())))
                .collect(),
        },
        // A new section forgets the old interfaces: interface 0 is now raw IP.
        Section {
            endianness: Endianness::Little,
            interfaces: vec![(101, 6)],
            packets: raw.iter().map(|r| (None, r.clone())).collect(),
        },
    ];
    let file = write(dir.path(), "multi.pcapng", &pcapng_bytes(&sections));
    let report = analyze_json(&file, &[]);
    assert_eq!(report["format"], "pcapng");
    assert_eq!(report["link_types"], serde_json::json!(["ETHERNET", "NULL", "RAW"]));
    assert_eq!(report["streams"].as_array().map(Vec::len), Some(3));
    for i in 0..3 {
        assert_chat(&report, i);
    }
    // Microsecond (if_tsresol 6) and nanosecond (9) interfaces give the same times.
    assert_eq!(report["streams"][0]["start"].as_f64(), Some(1_700_000_000.0));
    assert_eq!(report["streams"][1]["start"].as_f64(), Some(1_700_000_000.0));
    assert_extract_matches_tshark(&file);
}

/// Write `ips` as a raw-IP pcap in a scratch folder and analyse it: the folder (keep it while
/// the file is used), the file and the report.
fn run_case(name: &str, ips: &[Vec<u8>]) -> (TempDir, PathBuf, Value) {
    let dir = scratch(&format!("analyze-{name}"));
    let bytes = pcap_bytes(101, &records(Link::Raw(101), ips), Endianness::Little, false);
    let file = write(dir.path(), &format!("{name}.pcap"), &bytes);
    let report = analyze_json(&file, &[]);
    (dir, file, report)
}

#[test]
fn out_of_order_segments_are_put_back_in_order() {
    let (c, s) = v4();
    let mut conv = Conv::new(c, s, 100, 200);
    conv.handshake();
    let base = conv.cseq;
    conv.c_at(base + 10, b"KLMNOPQRST").c_at(base + 5, b"FGHIJ").c_at(base, b"ABCDE");
    conv.cseq = base + 20;
    conv.c(b"\n").close();
    let (_dir, file, r) = run_case("ooo", &conv.packets);
    assert_dir(&r, 0, "client_to_server", b"ABCDEFGHIJKLMNOPQRST\n");
    assert_eq!(dir(&r, 0, "client_to_server")["missing_bytes"], 0);
    assert_extract_matches_tshark(&file);
}

#[test]
fn retransmissions_first_copy_wins_and_conflicts_are_counted() {
    let (c, s) = v4();
    let mut conv = Conv::new(c, s, 7, 9);
    conv.handshake();
    let base = conv.cseq;
    conv.c(b"first copy\n");
    conv.c_at(base, b"first copy\n"); // same bytes again
    conv.c_at(base, b"FORGED!!!!\n"); // different bytes, same place
    conv.c_at(base + 6, b"copy\nmore\n"); // overlaps the end, adds "more\n"
    conv.cseq = base + 16;
    conv.close();
    let (_dir, file, r) = run_case("retrans", &conv.packets);
    assert_dir(&r, 0, "client_to_server", b"first copy\nmore\n");
    let d = dir(&r, 0, "client_to_server");
    assert_eq!(d["retransmitted_bytes"], 11 + 11 + 5);
    assert_eq!(d["conflicting_retransmissions"], 1);
    assert_extract_matches_tshark(&file);
}

#[test]
fn retransmissions_of_long_segments_are_compared_with_the_first_copy() {
    // Long segments are remembered by their place in the file and read back when compared.
    let (c, s) = v4();
    let mut conv = Conv::new(c, s, 1000, 5000);
    conv.handshake();
    let base = conv.cseq;
    let seg = |i: u32| -> Vec<u8> { (0..1200u32).map(|j| (i * 31 + j * 7) as u8).collect() };
    for i in 0..20 {
        conv.c(&seg(i));
    }
    conv.c_at(base + 15 * 1200, &seg(15)); // the same bytes again
    let mut forged = seg(16);
    forged[600] ^= 0xff;
    conv.c_at(base + 16 * 1200, &forged); // one byte changed
    conv.c_at(base + 2 * 1200, &forged); // changed, but long forgotten: not compared
    conv.close();
    let (_dir, file, r) = run_case("retrans-long", &conv.packets);
    let d = dir(&r, 0, "client_to_server");
    assert_eq!(d["bytes"], 20 * 1200);
    assert_eq!(d["retransmitted_bytes"], 3 * 1200);
    assert_eq!(d["conflicting_retransmissions"], 1);
    let all: Vec<u8> = (0..20).flat_map(seg).collect();
    assert_dir(&r, 0, "client_to_server", &all);
    assert_extract_matches_tshark(&file);
}

#[test]
fn sequence_numbers_wrap_around() {
    let (c, s) = v4();
    let mut conv = Conv::new(c, s, u32::MAX - 5, u32::MAX);
    conv.handshake();
    conv.c(b"0123456789").s(b"abcdefgh").c(b"wrapped\n").close();
    let (_dir, file, r) = run_case("wrap", &conv.packets);
    assert_dir(&r, 0, "client_to_server", b"0123456789wrapped\n");
    assert_dir(&r, 0, "server_to_client", b"abcdefgh");
    assert_extract_matches_tshark(&file);
}

#[test]
fn capture_starting_mid_connection() {
    let (c, s) = v4();
    let mut conv = Conv::new(c, s, 5000, 6000);
    conv.handshake();
    conv.c(b"before the capture\n").s(b"reply one\n").c(b"after\n").s(b"reply two\n");
    let ips = conv.packets[7..].to_vec(); // from the server's ACK of "reply one"
    let (_dir, file, r) = run_case("midstream", &ips);
    let st = &r["streams"][0];
    assert_eq!(st["client"], c.ep(), "client is the side not on port 9999");
    assert_dir(&r, 0, "client_to_server", b"after\n");
    assert_dir(&r, 0, "server_to_client", b"reply two\n");
    assert_extract_matches_tshark(&file);
}

#[test]
fn lost_segments_become_gaps_and_reassembly_carries_on() {
    let (c, s) = v4();
    let mut conv = Conv::new(c, s, 1, 1);
    conv.handshake();
    conv.c(b"one\n");
    let lost_at = conv.packets.len();
    conv.c(b"two (lost)\n").c(b"three\n").close();
    let mut ips = conv.packets.clone();
    ips.remove(lost_at);
    let (_dir, file, r) = run_case("gap", &ips);
    let d = dir(&r, 0, "client_to_server");
    assert_eq!(d["bytes"], 10);
    assert_eq!(d["sha256"], sha256(b"one\nthree\n"));
    assert_eq!(d["missing_bytes"], 11);
    assert_eq!(d["gaps"], serde_json::json!([{"offset": 4, "length": 11}]));
    assert_eq!(d["preview"], "one\\n[11 bytes missing]three\\n");
    // tshark writes "[11 bytes missing in capture file]" where the bytes are: so does --extract.
    assert_extract_matches_tshark(&file);
}

#[test]
fn fin_rst_late_data_and_data_after_fin() {
    let (c, s) = v4();
    let mut conv = Conv::new(c, s, 40, 80);
    conv.handshake();
    let base = conv.cseq;
    // The FIN (after "abcdef") arrives before "def"; then junk after the FIN.
    conv.c_at(base, b"abc");
    conv.packets.push(tcp_ip(c, s, base + 6, conv.sseq, FIN, b""));
    conv.c_at(base + 3, b"def");
    conv.c_at(base + 7, b"after fin");
    conv.packets.push(tcp_ip(s, c, conv.sseq, base + 7, RST, b""));
    let (_dir, file, r) = run_case("fin", &conv.packets);
    assert_dir(&r, 0, "client_to_server", b"abcdef");
    assert_extract_matches_tshark(&file);
}

#[test]
fn reused_port_pair_is_a_new_stream_but_a_retransmitted_syn_is_not() {
    let (c, s) = v4();
    let mut a = Conv::new(c, s, 1000, 2000);
    a.packets.push(tcp_ip(c, s, 1000, 0, SYN, b"")); // retransmitted SYN
    a.handshake();
    a.c(b"first\n").close();
    let mut b = Conv::new(c, s, 900_000, 3000);
    b.handshake();
    b.c(b"second\n").close();
    let mut ips = a.packets.clone();
    ips.extend(b.packets.clone());
    let (_dir, file, r) = run_case("reuse", &ips);
    assert_eq!(r["streams"].as_array().map(Vec::len), Some(2));
    assert_dir(&r, 0, "client_to_server", b"first\n");
    assert_dir(&r, 1, "client_to_server", b"second\n");
    assert_extract_matches_tshark(&file);
}

#[test]
fn unacknowledged_data_at_end_of_capture_is_kept() {
    let (c, s) = v4();
    let mut conv = Conv::new(c, s, 10, 20);
    conv.handshake();
    conv.c(b"acked\n");
    conv.c_at(conv.cseq, b"last words, never acked\n");
    let (_dir, file, r) = run_case("unacked", &conv.packets);
    assert_dir(&r, 0, "client_to_server", b"acked\nlast words, never acked\n");
    assert_extract_matches_tshark(&file);
}

#[test]
fn ipv4_options_ipv6_extension_headers_and_ipv4_fragments() {
    let (c, s) = v4();
    let mut ips = Vec::new();
    let a = [10, 1, 1, 1];
    let b = [10, 1, 1, 2];
    ips.push(tcp_ip_with(ipv4_with_options(a, b), c.port, 9999, 1, 0, PSH, b"with options\n"));
    let a6: [u8; 16] = "fd00::1".parse::<std::net::Ipv6Addr>().expect("ip").octets();
    let b6: [u8; 16] = "fd00::2".parse::<std::net::Ipv6Addr>().expect("ip").octets();
    ips.push(tcp_ip_with(ipv6_with_extensions(a6, b6), 51001, 9999, 1, 0, PSH, b"with ext\n"));
    let big: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let whole = tcp_ip(End::new("10.2.2.2", 52000), s, 77, 0, PSH, &big);
    let mut frags = fragment_ipv4(&whole, 256);
    frags.swap(1, 2);
    ips.extend(frags);
    let (_dir, file, r) = run_case("ipopts", &ips);
    assert_eq!(r["streams"].as_array().map(Vec::len), Some(3), "{r}");
    assert_dir(&r, 0, "client_to_server", b"with options\n");
    assert_dir(&r, 1, "client_to_server", b"with ext\n");
    assert_dir(&r, 2, "client_to_server", &big);
    assert_extract_matches_tshark(&file);
}

#[test]
fn snaplen_cut_records_are_read_and_counted() {
    let (c, s) = v4();
    let mut conv = Conv::new(c, s, 1, 1);
    conv.handshake();
    conv.c(&[b'x'; 200]).c(&[b'y'; 200]).s(b"ok\n").close();
    let dir = scratch("analyze-snaplen");
    let mut recs = records(Link::Ethernet, &conv.packets);
    snap(&mut recs, 14 + 20 + 20 + 50);
    let file = write(dir.path(), "snap.pcap", &pcap_bytes(1, &recs, Endianness::Little, false));
    let r = analyze_json(&file, &[]);
    let d = &r["streams"][0]["directions"]["client_to_server"];
    assert_eq!(d["bytes"], 100);
    assert_eq!(d["snaplen_cut_bytes"], 300);
    assert_eq!(d["missing_bytes"], 300);
    assert_dir(&r, 0, "server_to_client", b"ok\n");
    assert_extract_matches_tshark(&file);
}

#[test]
fn unknown_link_type_is_a_warning_and_its_packets_are_skipped() {
    let dir = scratch("analyze-unknown-link");
    let (c, s) = v4();
    let mut conv = chat(c, s, 1, 2);
    let eth = records(Link::Ethernet, &conv.packets);
    let odd = records(Link::Raw(147), &std::mem::take(&mut conv.packets));
    let sections = [Section {
        endianness: Endianness::Little,
        interfaces: vec![(147, 6), (1, 6)],
        packets: odd
            .into_iter()
            .map(|r| (Some(0), r))
            .chain(eth.into_iter().map(|r| (Some(1), r)))
            .collect(),
    }];
    let file = write(dir.path(), "odd.pcapng", &pcapng_bytes(&sections));
    let r = analyze_json(&file, &[]);
    let warnings = r["warnings"].to_string();
    assert!(warnings.contains("LINKTYPE_147"), "{warnings}");
    assert_eq!(r["streams"].as_array().map(Vec::len), Some(1));
    assert_chat(&r, 0);
}

#[test]
fn ports_filter_all_ports_and_empty_capture() {
    let (c, _) = v4();
    let other = End::new("10.1.1.2", 8080);
    let mut conv = chat(c, other, 1, 2);
    let (_dir, file, r) = run_case("ports", &std::mem::take(&mut conv.packets));
    assert_eq!(r["streams"], serde_json::json!([]));
    let out = rchat(&["analyze", file.to_str().expect("utf-8"), "--color", "never"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("No TCP traffic on port 9999"), "{text}");
    let r = analyze_json(&file, &["--port", "8080"]);
    assert_eq!(r["ports"], serde_json::json!([8080]));
    assert_chat(&r, 0);
    let r = analyze_json(&file, &["--all-ports"]);
    assert_eq!(r["streams"][0]["client"], c.ep());
    assert_chat(&r, 0);
}

#[test]
fn human_report_shows_streams_previews_and_summary() {
    let (c, s) = v4();
    let conv = chat(c, s, 1, 2);
    let (_dir, file, _) = run_case("human", &conv.packets);
    let out = rchat(&["analyze", file.to_str().expect("utf-8")]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains('\x1b'), "no colour when not a terminal");
    assert!(text.contains("10.1.1.1:51000 \u{2192} 10.1.1.2:9999"), "{text}");
    assert!(text.contains("hello bob\\n"), "{text}");
    assert!(text.contains("Привет 你好\\n"), "{text}");
    assert!(text.contains("1 stream on port 9999:"), "{text}");
    let coloured = rchat(&["analyze", "--color", "always", file.to_str().expect("utf-8")]);
    assert!(String::from_utf8_lossy(&coloured.stdout).contains('\x1b'));
}

#[test]
fn mid_connection_start_with_the_first_segment_out_of_order() {
    let (c, s) = v4();
    let mut conv = Conv::new(c, s, 5000, 6000);
    let base = conv.cseq;
    // The capture starts mid-connection and sees "world\n" before "hello ".
    conv.c_at(base + 6, b"world\n").c_at(base, b"hello ");
    conv.cseq = base + 12;
    conv.c(b"more\n");
    let (_dir, file, r) = run_case("midstream-ooo", &conv.packets);
    // Like Wireshark, the first segment seen fixes where the stream starts: "hello " came
    // from before that point and is counted, not reassembled.
    assert_dir(&r, 0, "client_to_server", b"world\nmore\n");
    assert_eq!(dir(&r, 0, "client_to_server")["before_start_bytes"], 6);
    let warnings = r["warnings"].to_string();
    assert!(warnings.contains("starts mid-connection; 6 bytes sent before"), "{warnings}");
    assert_extract_matches_tshark(&file);
}

#[test]
fn one_byte_from_before_the_capture_is_one_byte() {
    let (c, s) = v4();
    let mut conv = Conv::new(c, s, 5000, 6000);
    let base = conv.cseq;
    conv.c_at(base + 1, b"ello\n").c_at(base, b"h");
    let (_dir, _file, r) = run_case("midstream-one", &conv.packets);
    assert_eq!(dir(&r, 0, "client_to_server")["before_start_bytes"], 1);
    let warnings = r["warnings"].to_string();
    let said = "starts mid-connection; 1 byte sent before the first segment seen is not in";
    assert!(warnings.contains(said), "{warnings}");
}

/// Long directions of every kind the encoding checks look at, in 1448-byte segments: read
/// from a file, whose classifier samples are noted by their place in it and read back, they
/// give the same report as read from a pipe, whose samples are copied.
#[cfg(unix)]
#[test]
fn samples_read_back_from_the_file_give_the_same_report_as_copied_ones() {
    use base64::Engine;
    let mut seed = 0x1234_5678_9abc_def1u64;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    let noise = random(150_000);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&noise).into_bytes();
    let hexed = hex::encode(&noise).into_bytes();
    let decimal: Vec<u8> = noise.iter().map(|b| format!("{b} ")).collect::<String>().into_bytes();
    let text = "The quick brown fox jumps over the lazy dog. Съешь же ещё этих булок. \n"
        .repeat(2000)
        .into_bytes();
    // Mostly text with base64 tokens inside, and binary with a printable tail.
    let embedded: Vec<u8> = (0..400)
        .flat_map(|i| {
            format!("key {i}: {}\n", &hex::encode(&noise[i * 40..i * 40 + 40])).into_bytes()
        })
        .collect();
    let mut mixed = random(3000);
    mixed.extend_from_slice(&text);
    let mut convs = Vec::new();
    for (i, body) in [&b64, &hexed, &decimal, &text, &embedded, &mixed, &noise].iter().enumerate() {
        let (c, s) = (End::new("10.2.0.1", 42000 + i as u16), End::new("10.2.0.2", 9999));
        let mut conv = Conv::new(c, s, 1000 * i as u32, 77);
        conv.handshake();
        for seg in body.chunks(1448) {
            conv.c(seg);
        }
        conv.s(b"thanks\n").close();
        convs.push(conv);
    }
    // Interleave the conversations, so that each direction's bytes are spread over the file.
    let mut ips = Vec::new();
    let longest = convs.iter().map(|c| c.packets.len()).max().unwrap_or(0);
    for k in 0..longest {
        for conv in &convs {
            if let Some(p) = conv.packets.get(k) {
                ips.push(p.clone());
            }
        }
    }
    let bytes = pcap_bytes(1, &records(Link::Ethernet, &ips), Endianness::Little, false);
    let dir = scratch("analyze-sample-read-back");
    let file = write(dir.path(), "encodings.pcap", &bytes);
    let mut from_file = analyze_json(&file, &["--full"]);
    // The same bytes through a pipe: read with `read` calls, every sample copied.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rchat"))
        .args(["analyze", "--json", "--full", "/dev/stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("rchat");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &bytes));
    let out = child.wait_with_output().expect("rchat output");
    writer.join().expect("writer").expect("write to rchat");
    let mut from_pipe: Value = serde_json::from_slice(&out.stdout).expect("json");
    from_file["file"] = Value::Null;
    from_pipe["file"] = Value::Null;
    let verdicts: Vec<String> = (0..7).map(|i| dir_verdict(&from_file, i)).collect();
    assert_eq!(
        verdicts,
        [
            "encoded base64",
            "encoded hex",
            "encoded decimal",
            "plaintext",
            "encoded hex",
            "plaintext",
            "ciphertext"
        ],
        "{verdicts:?}"
    );
    assert_eq!(from_file, from_pipe);
}

fn dir_verdict(report: &Value, stream: usize) -> String {
    let d = dir(report, stream, "client_to_server");
    match d["encoding"].as_str() {
        Some(e) => format!("{} {e}", d["verdict"].as_str().unwrap_or("")),
        None => d["verdict"].as_str().unwrap_or("").to_string(),
    }
}

#[test]
fn a_private_key_on_the_wire_is_a_loud_warning() {
    let (c, s) = v4();
    let key = std::fs::read(data("keys/rsa1024.key")).unwrap();
    let mut conv = Conv::new(c, s, 100, 200);
    conv.handshake();
    conv.c(&key).s(b"thanks, got your key file\n").c(b"now read my messages\n").close();
    let (_dir, _file, r) = run_case("private-key", &conv.packets);
    let d = dir(&r, 0, "client_to_server");
    let k = &d["recognized"][0];
    assert_eq!(k["kind"], "private_key", "{d}");
    assert_eq!(k["bits"], 1024);
    assert_eq!(d["messages"][0]["kind"], "key");
    // The verdict is about the messages: the key is named apart.
    assert_eq!(d["verdict"], "plaintext", "{}", d["reason"]);
    let warnings = r["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("a PRIVATE KEY (1024-bit RSA private key")),
        "{warnings:?}"
    );
    assert!(r["streams"][0]["eavesdropper"].as_str().unwrap().contains("PRIVATE KEY in the clear"));
}
