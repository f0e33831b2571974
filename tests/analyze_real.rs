//! `rchat analyze` on real captures of real loopback traffic (see `tests/data/README.md`):
//! the reassembled bytes, the link types and formats found, `--extract` byte for byte
//! against tshark's Follow TCP Stream, and a report whose reader fails or goes away.

mod common;

use common::capture::*;
use common::scratch;

const CAPTURES: &[&str] = &[
    "chat-plaintext.pcap",
    "tls-openssl.pcapng",
    "random-ipv6.pcap",
    "base64-text.pcap",
    "chat-snaplen96.pcap",
    "chat-snaplen60.pcap",
    "rchat-encrypted.pcap",
    "two-interfaces.pcapng",
];

#[test]
fn every_real_capture_gives_a_report() {
    for name in CAPTURES {
        let r = analyze_json(&data(name), &[]);
        assert_eq!(r["schema_version"], 2);
        assert_eq!(r["streams"].as_array().map(Vec::len), Some(1), "{name}");
        // The one warning a capture made with a short snaplen gives.
        let warnings = r["warnings"].as_array().cloned().unwrap_or_default();
        let snaplen = warnings
            .iter()
            .filter(|w| w.as_str().is_some_and(|w| w.starts_with("the capture kept at most")));
        let want = usize::from(name.contains("snaplen"));
        assert_eq!((snaplen.count(), warnings.len()), (want, want), "{name}: {warnings:?}");
        let st = &r["streams"][0];
        assert!(st["server"].as_str().is_some_and(|s| s.ends_with(":9999")), "{name}");
        assert!(st["end"].as_f64() >= st["start"].as_f64());
    }
}

#[test]
fn extract_matches_tshark_on_real_captures() {
    for name in CAPTURES {
        assert_extract_matches_tshark(&data(name));
    }
}

#[test]
fn plaintext_netcat_chat() {
    let r = analyze_json(&data("chat-plaintext.pcap"), &[]);
    assert_eq!(r["format"], "pcap");
    assert_eq!(r["link_types"], serde_json::json!(["ETHERNET"]));
    let d = &r["streams"][0]["directions"];
    assert_eq!(d["client_to_server"]["preview"], "yes, here\\nthanks, see you there\\n");
    assert_eq!(d["client_to_server"]["message_mode"], "lines");
    assert_eq!(d["client_to_server"]["messages"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        d["server_to_client"]["preview"],
        "hi bob, are you there?\\nthe exam is at 10\\nПривет! 你好! bye\\n"
    );
}

#[test]
fn tls_random_and_base64_captures() {
    let tls = analyze_json(&data("tls-openssl.pcapng"), &[]);
    assert_eq!(tls["format"], "pcapng");
    let d = &tls["streams"][0]["directions"]["client_to_server"];
    assert_eq!(d["preview_format"], "hex");
    assert!(d["preview"].as_str().is_some_and(|p| p.starts_with("16030")), "TLS record");

    let random = analyze_json(&data("random-ipv6.pcap"), &[]);
    assert_eq!(random["link_types"], serde_json::json!(["LINUX_SLL2"]));
    let st = &random["streams"][0];
    assert!(st["client"].as_str().is_some_and(|c| c.starts_with("[::1]:")));
    assert_eq!(st["directions"]["client_to_server"]["bytes"], 4096);

    let b64 = analyze_json(&data("base64-text.pcap"), &[]);
    let d = &b64["streams"][0]["directions"]["client_to_server"];
    assert_eq!(d["bytes"], 4150);
    assert_eq!(d["message_mode"], "lines");
}

#[test]
fn rchat_encrypted_chat_is_cut_into_frames() {
    let r = analyze_json(&data("rchat-encrypted.pcap"), &[]);
    for dir in ["client_to_server", "server_to_client"] {
        let d = &r["streams"][0]["directions"][dir];
        assert_eq!(d["message_mode"], "frames", "{dir}");
        // HELLO, AUTH, one MESSAGE, BYE; the frames tile the direction.
        let msgs = d["messages"].as_array().expect("messages");
        assert_eq!(msgs.len(), 4, "{dir}: {d}");
        let mut at = 0;
        for m in msgs {
            assert_eq!(m["offset"], at);
            at += m["length"].as_u64().expect("length");
        }
        assert_eq!(d["bytes"], at);
        assert!(d["preview"].as_str().is_some_and(|p| p.starts_with("52434854")), "RCHT");
    }
    let out = rchat(&["analyze", data("rchat-encrypted.pcap").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("4 rchat frames"), "{text}");
    assert!(text.contains("RCHT"), "hex dump with ASCII column: {text}");
}

#[test]
fn pcapng_with_two_interfaces_of_different_link_types() {
    let r = analyze_json(&data("two-interfaces.pcapng"), &[]);
    assert_eq!(r["link_types"], serde_json::json!(["ETHERNET", "LINUX_SLL"]));
    let d = &r["streams"][0]["directions"];
    assert_eq!(d["client_to_server"]["preview"], "line from guest\\n");
    assert_eq!(d["server_to_client"]["preview"], "line from host\\n");
    // Each packet was captured on both interfaces: the second copy is a retransmission.
    assert_eq!(d["client_to_server"]["retransmitted_bytes"], d["client_to_server"]["bytes"]);
    assert_eq!(d["client_to_server"]["conflicting_retransmissions"], 0);
}

#[test]
fn short_snaplen_capture_counts_the_cut_bytes() {
    let r = analyze_json(&data("chat-snaplen96.pcap"), &[]);
    let d = &r["streams"][0]["directions"]["server_to_client"];
    assert!(d["snaplen_cut_bytes"].as_u64() > Some(0), "{d}");
    assert_eq!(d["snaplen_cut_bytes"], d["missing_bytes"]);
}

#[test]
fn a_snaplen_that_cuts_the_tcp_options_still_counts_every_packet() {
    // tcpdump -s 60: 26 bytes of each 32-byte TCP header, no payload byte.
    let r = analyze_json(&data("chat-snaplen60.pcap"), &[]);
    let w = r["warnings"][0].as_str().unwrap_or_default();
    assert!(w.starts_with("the capture kept at most 60 bytes of each packet"), "{w}");
    let st = &r["streams"][0];
    assert_eq!(st["verdict"], "inconclusive", "{st}");
    let mut packets = 0;
    for d in ["client_to_server", "server_to_client"] {
        let d = &st["directions"][d];
        packets += d["packets"].as_u64().unwrap_or(0);
        assert_eq!(d["bytes"], 0, "{d}");
        assert!(d["snaplen_cut_bytes"].as_u64() > Some(0), "{d}");
        assert_eq!(d["snaplen_cut_bytes"], d["missing_bytes"], "{d}");
        assert_eq!(d["verdict"], "inconclusive", "{d}");
        assert!(d["reason"].as_str().is_some_and(|s| s.contains("snaplen cut off")), "{d}");
    }
    assert_eq!(packets, r["packets"].as_u64().unwrap_or(0), "every packet is in the stream");
}

#[test]
fn nothing_on_the_port_lists_the_ports_there_are() {
    let out = rchat(&["analyze", "--port", "80", data("chat-plaintext.pcap").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("No TCP traffic on port 80"), "{text}");
    assert!(text.contains("port  9999: 17 packets"), "{text}");
    assert!(text.contains("looks like a text chat"), "{text}");
    assert!(text.contains("Try: rchat analyze --port 9999 "), "{text}");
    let r = analyze_json(&data("rchat-encrypted.pcap"), &["--port", "80"]);
    assert_eq!(r["streams"], serde_json::json!([]));
    assert_eq!(r["other_ports"][0]["port"], 9999, "{r}");
    assert_eq!(r["other_ports"][0]["looks_like"], "rchat", "{r}");
    assert_eq!(r["other_ports"][0]["connections"], 1, "{r}");
}

#[test]
fn several_files_in_one_run_one_of_them_not_a_capture() {
    let dir = scratch("analyze-several");
    let bad = write(dir.path(), "notes.txt", b"these are my notes, not a capture\n");
    let a = data("chat-plaintext.pcap");
    let b = data("random-ipv6.pcap");
    let args = ["analyze", a.to_str().unwrap(), bad.to_str().unwrap(), b.to_str().unwrap()];
    let out = rchat(&args);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("chat-plaintext.pcap") && stdout.contains("random-ipv6.pcap"));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("rchat: error: ") && stderr.contains("notes.txt"), "{stderr}");
}

#[test]
fn worker_threads_give_the_same_report_as_one_thread() {
    use rchat::analyze::{Options, analyze_input};
    for name in CAPTURES {
        let bytes = std::fs::read(data(name)).expect("capture");
        let run = |workers| {
            let cfg =
                Options { ports: vec![9999], full: true, extract: None, workers, keys: Vec::new() };
            let r = analyze_input(name.to_string(), &bytes[..], &cfg).expect("report");
            serde_json::to_string(&r).expect("json")
        };
        assert_eq!(run(0), run(3), "{name}");
    }
}

/// Several files in one run are each analysed on their own reading thread (no worker
/// threads): every report is the one the file gets alone, with its worker threads.
#[test]
fn a_file_among_several_gets_the_report_it_gets_alone() {
    let paths: Vec<String> = CAPTURES.iter().map(|n| data(n).display().to_string()).collect();
    let json = |files: &[String]| {
        let mut args = vec!["analyze", "--json", "--full", "--all-ports"];
        args.extend(files.iter().map(String::as_str));
        let out = rchat(&args);
        assert!(out.status.success(), "{files:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let alone: String = paths.iter().map(|p| json(std::slice::from_ref(p))).collect();
    assert_eq!(json(&paths), alone);
}

#[test]
fn extract_with_several_files_uses_one_folder_per_file() {
    let dir = scratch("analyze-extract-several");
    let a = data("chat-plaintext.pcap");
    let b = data("random-ipv6.pcap");
    let out = rchat(&[
        "analyze",
        "--extract",
        dir.path().to_str().unwrap(),
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (file, from) in [("chat-plaintext.pcap", "127.0.0.1_"), ("random-ipv6.pcap", "::1_")] {
        let names: Vec<String> = std::fs::read_dir(dir.path().join(file))
            .expect("per-file folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{file}: {names:?}");
        assert!(names.iter().all(|n| n.starts_with(&format!("stream0-{from}"))), "{names:?}");
    }
}

/// A report that cannot be written (a full disk, here `/dev/full`) is one error line and
/// status 1, for the JSON and the human report alike.
#[cfg(target_os = "linux")]
#[test]
fn a_report_that_cannot_be_written_is_one_error_line() {
    let file = data("chat-plaintext.pcap");
    for extra in [&["--json"][..], &[][..]] {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
        let out = std::process::Command::new(common::BIN)
            .arg("analyze")
            .args(extra)
            .arg(&file)
            .stdout(full)
            .output()
            .expect("run rchat");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {err}");
        assert_eq!(
            err.trim_end(),
            "rchat: error: cannot write the report: No space left on device (os error 28)",
            "{extra:?}"
        );
    }
}

/// A reader that goes away (`rchat analyze ... | head`) ends the run quietly, with status 0.
#[test]
fn a_reader_that_goes_away_ends_the_run_quietly() {
    let file = data("tls-openssl.pcapng");
    for extra in [&["--json", "--full"][..], &["--full"][..]] {
        let mut child = std::process::Command::new(common::BIN)
            .arg("analyze")
            .args(extra)
            .arg(&file)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run rchat");
        // Closed before anything is written: every write fails.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait for rchat");
        assert_eq!(out.status.code(), Some(0), "{extra:?}");
        assert!(out.stderr.is_empty(), "{extra:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Each message's `time` is that of the packet that brought its first byte, as tshark shows
/// it: the first packet (in file order) from the sender whose payload holds the message's
/// first offset.
#[test]
fn message_times_are_those_of_the_packets_tshark_shows() {
    if !common::have_tool("tshark") {
        return;
    }
    for name in ["chat-plaintext.pcap", "rchat-encrypted.pcap", "tls-openssl.pcapng"] {
        let path = data(name);
        let out = std::process::Command::new("tshark")
            .arg("-r")
            .arg(&path)
            .args(["-T", "fields", "-e", "frame.time_epoch", "-e", "tcp.srcport"])
            .args(["-e", "tcp.seq", "-e", "tcp.len"])
            .stderr(std::process::Stdio::null())
            .output()
            .expect("run tshark");
        // (time, source port, first offset, payload length) of each packet with payload.
        let packets: Vec<(f64, u16, u64, u64)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                let len: u64 = f.get(3)?.parse().ok()?;
                let seq: u64 = f.get(2)?.parse().ok()?;
                if len == 0 {
                    return None;
                }
                // Relative sequence numbers: the SYN is 0, the first payload byte 1.
                Some((f[0].parse().ok()?, f[1].parse().ok()?, seq.checked_sub(1)?, len))
            })
            .collect();
        let r = analyze_json(&path, &[]);
        let stream = &r["streams"][0];
        let start = stream["start"].as_f64().unwrap();
        let mut checked = 0;
        for (key, end) in [("client_to_server", "client"), ("server_to_client", "server")] {
            let port: u16 =
                stream[end].as_str().unwrap().rsplit(':').next().unwrap().parse().unwrap();
            for m in stream["directions"][key]["messages"].as_array().unwrap() {
                let at = m["offset"].as_u64().unwrap();
                let (want, ..) = packets
                    .iter()
                    .find(|&&(_, p, off, len)| p == port && off <= at && at < off + len)
                    .unwrap_or_else(|| panic!("{name}: no packet holds offset {at} of {key}"));
                let got = start + m["time"].as_f64().unwrap();
                assert!((got - want).abs() < 2e-6, "{name} {key} offset {at}: {got} vs {want}");
                checked += 1;
            }
        }
        assert!(checked >= 4, "{name}: only {checked} messages");
    }
}

/// Each direction's `histogram` counts the bytes its entropy is computed on: 256 counts whose
/// Shannon entropy is the `entropy` shown.
#[test]
fn the_histogram_is_what_the_entropy_is_computed_on() {
    for name in CAPTURES {
        let r = analyze_json(&data(name), &[]);
        for d in r["streams"][0]["directions"].as_object().unwrap().values() {
            let counts: Vec<u64> =
                d["histogram"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).collect();
            assert_eq!(counts.len(), 256, "{name}");
            let n: u64 = counts.iter().sum();
            let said: u64 = d["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["kind"] == "message")
                .map(|m| m["length"].as_u64().unwrap())
                .sum();
            assert_eq!(n, said, "{name}: the histogram counts the message bytes");
            let entropy = if n == 0 {
                0.0
            } else {
                let nf = n as f64;
                counts
                    .iter()
                    .filter(|&&c| c > 0)
                    .map(|&c| c as f64 / nf)
                    .map(|p| -p * p.log2())
                    .sum()
            };
            let shown = d["entropy"].as_f64().unwrap();
            assert!((entropy - shown).abs() < 1e-9, "{name}: {entropy} vs {shown}");
        }
    }
}

/// Each message's `entropy` is that of its own bytes, as `--extract` writes them.
#[test]
fn each_message_has_the_entropy_of_its_bytes() {
    let entropy = |b: &[u8]| -> f64 {
        let mut counts = [0u64; 256];
        for &x in b {
            counts[x as usize] += 1;
        }
        let n = b.len() as f64;
        counts.iter().filter(|&&c| c > 0).map(|&c| c as f64 / n).map(|p| -p * p.log2()).sum()
    };
    for name in CAPTURES {
        let dir = scratch("message-entropy");
        let out = dir.path().display().to_string();
        let r = analyze_json(&data(name), &["--extract", &out]);
        let mut checked = 0;
        for d in r["streams"][0]["directions"].as_object().unwrap().values() {
            if d["missing_bytes"].as_u64() != Some(0) {
                continue;
            }
            let bytes = std::fs::read(d["extract"].as_str().unwrap()).unwrap();
            for m in d["messages"].as_array().unwrap() {
                let (at, len) = (m["offset"].as_u64().unwrap(), m["length"].as_u64().unwrap());
                let own = entropy(&bytes[at as usize..(at + len) as usize]);
                let shown = m["entropy"].as_f64().unwrap();
                assert!((own - shown).abs() < 6e-4, "{name} offset {at}: {own} vs {shown}");
                checked += 1;
            }
        }
        assert!(checked > 0 || name.contains("snaplen"), "{name}: no message checked");
    }
}
