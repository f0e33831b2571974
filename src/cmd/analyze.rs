//! `rchat analyze`: the flags become [`analyze::Options`], every file is analysed (all cores),
//! and each report is printed in the order the files were given, or the one error line of a
//! file that is not a capture; with `--html`, one page for all of them is written too.

use std::io::{self, IsTerminal, Write};
use std::path::Path;
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
    let page_only = args.html.as_deref() == Some(Path::new("-"));
    if page_only && args.json {
        return Err(Error::Usage(
            "--html - and --json would both write to standard output: give --html a file name"
                .into(),
        ));
    }
    let terminal = io::stdout().is_terminal();
    let color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => terminal,
    };
    let sketch = args.histogram || (terminal && std::env::var_os("NO_COLOR").is_none());
    let style = report::Style::new(color).with_histogram(sketch);
    let several = args.files.len() > 1;
    let results = analyze::analyze_files(&args.files, &opts, several);
    let mut failed = false;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    // Each file's report, or its error line, for the page.
    let mut outcomes: Vec<std::result::Result<report::FileReport, String>> = Vec::new();
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(mut r) => {
                // The JSON writer makes the streams' reports as it writes them; the other
                // forms need them all.
                if !args.json || args.html.is_some() {
                    r.make_streams();
                }
                let written = if page_only {
                    Ok(())
                } else if args.json {
                    // Written as it is made: a report with `--full` previews can be as large
                    // as the capture, and need not be held twice.
                    let mut w = io::BufWriter::with_capacity(1 << 16, &mut out);
                    report::json::write_report(&mut w, &mut r, crate::cores())
                        .and_then(|()| w.write_all(b"\n"))
                        .and_then(|()| w.flush())
                } else {
                    let gap: &[u8] = if several && i > 0 { b"\n" } else { b"" };
                    out.write_all(gap)
                        .and_then(|()| out.write_all(report::human(&r, style).as_bytes()))
                };
                if let Err(e) = written {
                    if e.kind() == io::ErrorKind::BrokenPipe {
                        return Ok(ExitCode::SUCCESS);
                    }
                    return Err(Error::io("cannot write the report", e));
                }
                if args.html.is_some() {
                    outcomes.push(Ok(r));
                }
            }
            Err(e) => {
                let _ = out.flush();
                failed = true;
                let e = Error::from(e);
                outcomes.push(Err(e.to_string()));
                crate::error::print(&e);
            }
        }
    }
    let _ = out.flush();
    if let Some(path) = &args.html {
        let entries: Vec<report::html::Entry<'_>> = outcomes
            .iter()
            .map(|o| match o {
                Ok(r) => report::html::Entry::Report(r),
                Err(line) => report::html::Entry::Failed(line),
            })
            .collect();
        let page = report::html::page(&entries);
        if page_only {
            match out.write_all(page.as_bytes()).and_then(|()| out.flush()) {
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(Error::io("cannot write the HTML report", e)),
                Ok(()) => {}
            }
        } else {
            std::fs::write(path, page).map_err(|e| {
                Error::io(format!("cannot write the HTML report {}", path.display()), e)
            })?;
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
