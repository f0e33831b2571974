//! Snapshot tests of the reports: every run listed in `tests/data/reports/cases.txt` (the
//! shipped captures, human and JSON, with and without keys) must print exactly what its
//! `.out` file holds. The files were written before a change that must not alter the reports;
//! when a change means to alter them, `RCHAT_BLESS=1 cargo test --test reports` writes them
//! anew and the diff shows what changed.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

/// What one run printed, in the form the `.out` files hold.
fn snapshot(args: &[&str]) -> String {
    let bin = std::env::var("RCHAT_REPORTS_BIN").unwrap_or_else(|_| common::BIN.to_string());
    let out = Command::new(&bin)
        .arg("analyze")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn reports_match_their_snapshots() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/reports");
    let cases = fs::read_to_string(dir.join("cases.txt")).expect("cases.txt");
    let bless = std::env::var_os("RCHAT_BLESS").is_some();
    let mut failed = vec![];
    let mut count = 0;
    for line in cases.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let mut words = line.split_whitespace();
        let name = words.next().expect("a name");
        let args: Vec<&str> = words.collect();
        let got = snapshot(&args);
        let path = dir.join(format!("{name}.out"));
        count += 1;
        if bless {
            fs::write(&path, &got).expect("write snapshot");
            continue;
        }
        let want = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (RCHAT_BLESS=1 writes it)", path.display()));
        if got != want {
            let at = got.lines().zip(want.lines()).position(|(g, w)| g != w);
            let line = at.map_or(got.lines().count().min(want.lines().count()), |i| i);
            failed.push(format!(
                "{name} (rchat analyze {}): first difference at line {}\n  got:  {:?}\n  want: {:?}",
                args.join(" "),
                line + 1,
                got.lines().nth(line).unwrap_or("<end>"),
                want.lines().nth(line).unwrap_or("<end>"),
            ));
        }
    }
    assert!(count >= 30, "only {count} cases in cases.txt");
    assert!(
        failed.is_empty(),
        "{} of {count} reports changed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}
