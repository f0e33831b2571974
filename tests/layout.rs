//! The layout the README describes, checked: the libraries (`chat`, `analyze`, `protocol`,
//! `crypto`) never import the command layer (`cli`, `cmd`) or the top-level error (`error`,
//! `crate::Error`, `crate::Result`), so the import graph runs one way, from the commands down;
//! and no source file grows past 1,000 lines.

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The words of `path::to::thing` imports and uses in `text` that name the command layer.
fn command_layer_uses(text: &str) -> Vec<String> {
    let mut found = vec![];
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        // `crate::cli`, `crate::cmd::x`, `crate::error`, `crate::Error`, `crate::Result`,
        // and the same names inside `use crate::{...}` groups.
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let names: Vec<&str> = if let Some(group) = after.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                group[..end].split(',').map(|s| s.trim().split("::").next().unwrap_or("")).collect()
            } else {
                vec![after.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap_or("")]
            };
            for name in names {
                if ["cli", "cmd", "error", "Error", "Result"].contains(&name) {
                    found.push(format!("line {}: {}", n + 1, line.trim()));
                }
            }
            rest = after;
        }
        for up in ["super::cli", "super::cmd", "super::error"] {
            if code.contains(up) {
                found.push(format!("line {}: {}", n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn libraries_never_import_the_command_layer() {
    let mut files = vec![];
    for lib in ["chat", "analyze", "protocol", "crypto"] {
        rust_files(&src().join(lib), &mut files);
        let single = src().join(format!("{lib}.rs"));
        if single.is_file() {
            files.push(single);
        }
    }
    assert!(files.len() > 10, "found only {files:?}");
    let mut bad = vec![];
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        for hit in command_layer_uses(&text) {
            bad.push(format!("{}: {hit}", file.strip_prefix(src()).unwrap().display()));
        }
    }
    assert!(bad.is_empty(), "libraries importing the command layer:\n{}", bad.join("\n"));
}

#[test]
fn the_check_sees_every_form_of_import() {
    for bad in [
        "use crate::cli::AnalyzeArgs;",
        "use crate::{cmd, crypto};",
        "fn f() -> crate::Result<()> {",
        "    crate::error::print(&e);",
        "use super::super::cli::X;",
    ] {
        assert!(!command_layer_uses(bad).is_empty(), "missed {bad}");
    }
    for good in ["use crate::crypto::Identity;", "// crate::cli is above us", "crate::cores()"] {
        assert!(command_layer_uses(good).is_empty(), "flagged {good}");
    }
}

#[test]
fn no_source_file_is_over_1000_lines() {
    let mut files = vec![];
    rust_files(&src(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = fs::read_to_string(f).unwrap().lines().count();
            (n > 1000).then(|| format!("{} ({n} lines)", f.strip_prefix(src()).unwrap().display()))
        })
        .collect();
    assert!(long.is_empty(), "split these files: {}", long.join(", "));
}
