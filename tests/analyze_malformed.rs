//! Damaged and hostile input: `rchat analyze` never panics and always ends with its documented
//! exit status (0 with a report, 1 when the file is not a readable capture at all).

mod common;

use common::capture::*;
use common::scratch;
use proptest::prelude::*;
use rchat::analyze::{Options, analyze_input};

fn cfg() -> Options {
    Options { ports: vec![9999], full: false, extract: None, workers: 0, keys: Vec::new() }
}

fn stopped(report: &rchat::analyze::report::FileReport) -> bool {
    report.warnings.iter().any(|w| w.contains("the capture stops at byte"))
}

#[test]
fn truncated_at_every_offset() {
    for (name, header) in [("chat-plaintext.pcap", 24), ("tls-openssl.pcapng", 28)] {
        let bytes = std::fs::read(data(name)).expect("capture");
        let full = analyze_input(name.into(), &bytes[..], &cfg()).expect("whole file");
        assert!(full.warnings.is_empty());
        let mut cut_warnings = 0;
        for n in 0..bytes.len() {
            let result = analyze_input(name.into(), &bytes[..n], &cfg());
            match result {
                Ok(r) => {
                    assert!(n >= header, "{name} cut at {n} should not be readable");
                    assert!(r.packets <= full.packets);
                    if stopped(&r) {
                        cut_warnings += 1;
                    }
                }
                Err(e) => assert!(n < header, "{name} cut at {n}: {e}"),
            }
        }
        // Almost every cut falls inside a record, and says so.
        assert!(cut_warnings > bytes.len() * 9 / 10, "{name}: {cut_warnings}");
    }
}

#[test]
fn truncated_files_exit_with_the_documented_status() {
    let dir = scratch("analyze-truncated-status");
    for (name, header) in [("chat-plaintext.pcap", 24), ("tls-openssl.pcapng", 28)] {
        let bytes = std::fs::read(data(name)).expect("capture");
        let mut cuts: Vec<usize> = (0..bytes.len()).step_by(bytes.len() / 12).collect();
        cuts.extend([1, header - 1, header, header + 1]);
        for n in cuts {
            let file = write(dir.path(), &format!("cut-{n}-{name}"), &bytes[..n]);
            let out = rchat(&["analyze", "--json", file.to_str().expect("utf-8")]);
            let expect = if n < header { 1 } else { 0 };
            assert_eq!(out.status.code(), Some(expect), "{name} cut at {n}");
            if expect == 1 {
                assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
            } else {
                let _: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
            }
        }
    }
}

#[test]
fn truncated_file_reports_what_came_before_the_cut() {
    let bytes = std::fs::read(data("chat-plaintext.pcap")).expect("capture");
    let dir = scratch("analyze-truncated");
    let file = write(dir.path(), "cut.pcap", &bytes[..bytes.len() - 7]);
    let r = analyze_json(&file, &[]);
    let w = r["warnings"][0].as_str().unwrap_or_default();
    assert!(w.starts_with("the capture stops at byte "), "{w}");
    assert_eq!(r["streams"].as_array().map(Vec::len), Some(1));
}

#[test]
fn not_captures_get_one_error_line_and_status_1() {
    let dir = scratch("analyze-not-captures");
    let cases: [(&str, &[u8], &str); 4] = [
        ("empty.pcap", b"", "is empty (0 bytes)"),
        (
            "capture.pcap.gz",
            &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3],
            "is a gzip file: gunzip it first",
        ),
        (
            "garbage.pcap",
            b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
            "is not a pcap or pcapng capture",
        ),
        ("short.pcap", &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0], "cut off after 8 of 24 bytes"),
    ];
    for (name, bytes, says) in cases {
        let file = write(dir.path(), name, bytes);
        let out = rchat(&["analyze", file.to_str().expect("utf-8")]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.starts_with("rchat: error: ") && err.contains(says), "{name}: {err}");
        assert!(out.stdout.is_empty());
    }
    let missing = dir.path().join("no-such-file.pcap");
    let out = rchat(&["analyze", missing.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let out = rchat(&["analyze", "--no-such-flag", "x.pcap"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn impossible_record_lengths_stop_with_a_warning() {
    let dir = scratch("analyze-impossible");
    // pcap: a record header claiming 4 GB.
    let mut pcap = std::fs::read(data("chat-plaintext.pcap")).expect("capture");
    pcap.truncate(24);
    pcap.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0xf0, 0xff, 0xff, 0xff, 0x40, 0, 0, 0]);
    pcap.extend_from_slice(&[0u8; 64]);
    // pcapng: a block of length 7 after the section header.
    let ng = std::fs::read(data("tls-openssl.pcapng")).expect("capture");
    let shb_len = u32::from_le_bytes(ng[4..8].try_into().expect("4 bytes")) as usize;
    let mut bad_ng = ng[..shb_len].to_vec();
    bad_ng.extend_from_slice(&[6, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
    for (name, bytes) in [("huge.pcap", pcap), ("seven.pcapng", bad_ng)] {
        let file = write(dir.path(), name, &bytes);
        let r = analyze_json(&file, &[]);
        let w = r["warnings"].to_string();
        assert!(w.contains("impossible length"), "{name}: {w}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_after_a_valid_header_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..4096),
        which in 0usize..4,
    ) {
        let headers: [&[u8]; 4] = [
            &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0],
            &[0xa1, 0xb2, 0x3c, 0x4d, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 101],
            // pcapng section header (little endian) and an Ethernet interface.
            &[0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0,
              0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0,
              1, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0],
            &[0xa1, 0xb2, 0xc3, 0xd4, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0],
        ];
        let mut file = headers[which].to_vec();
        file.extend_from_slice(&body);
        let _ = analyze_input("fuzz".into(), &file[..], &Options { ports: vec![], full: true, extract: None, workers: 2, keys: Vec::new() });
    }

    #[test]
    fn damaged_real_captures_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..32),
        which in 0usize..2,
    ) {
        let name = ["chat-plaintext.pcap", "tls-openssl.pcapng"][which];
        let mut bytes = std::fs::read(data(name)).expect("capture");
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let _ = analyze_input(name.into(), &bytes[..], &Options { ports: vec![], full: false, extract: None, workers: 0, keys: Vec::new() });
    }
}
