//! `rchat analyze`: the flags become [`analyze::Options`], every file is analysed (all cores),
//! and each report is printed in the order the files were given, or the one error line of a
//! file that is not a capture.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use crate::analyze::{self, report};
use crate::cli::{AnalyzeArgs, ColorChoice};
use crate::crypto::Identity;
use crate::protocol::DEFAULT_PORT;
use crate::{Error, Result};

/// Turn the parsed flags into settings.
pub fn options(args: &AnalyzeArgs) -> Result<analyze::Options> {
    let mut ports = if args.all_ports {
        Vec::new()
    } else if args.ports.is_empty() {
        vec![DEFAULT_PORT]
    } else {
        args.ports.clone()
    };
    ports.sort_unstable();
    ports.dedup();
    let cores = crate::cores();
    // One file: all cores on it. Several: the files already keep the cores busy.
    let workers = if args.files.len() == 1 && cores > 1 { cores } else { 0 };
    let mut keys = Vec::with_capacity(args.keys.len());
    for path in &args.keys {
        keys.push(Arc::new(Identity::load(path)?));
    }
    Ok(analyze::Options { ports, full: args.full, extract: args.extract.clone(), workers, keys })
}

/// Run `rchat analyze`.
pub fn run(args: &AnalyzeArgs) -> Result<ExitCode> {
    let opts = options(args)?;
    let color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => io::stdout().is_terminal(),
    };
    let several = args.files.len() > 1;
    let results = analyze::analyze_files(&args.files, &opts, several);
    let mut failed = false;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(r) => {
                let written = if args.json {
                    // Written as it is made: a report with `--full` previews can be as large
                    // as the capture, and need not be held twice.
                    let mut w = io::BufWriter::with_capacity(1 << 16, &mut out);
                    report::json::write_pretty(&mut w, &r)
                        .and_then(|()| w.write_all(b"\n"))
                        .and_then(|()| w.flush())
                } else {
                    let gap: &[u8] = if several && i > 0 { b"\n" } else { b"" };
                    out.write_all(gap).and_then(|()| {
                        out.write_all(report::human(&r, report::Style::new(color)).as_bytes())
                    })
                };
                if let Err(e) = written {
                    if e.kind() == io::ErrorKind::BrokenPipe {
                        return Ok(ExitCode::SUCCESS);
                    }
                    return Err(Error::io("cannot write the report", e));
                }
            }
            Err(e) => {
                let _ = out.flush();
                failed = true;
                crate::error::print(&e.into());
            }
        }
    }
    let _ = out.flush();
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
