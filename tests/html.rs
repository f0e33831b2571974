//! `rchat analyze --html`: the page of every shipped capture (those listed in
//! `captures/README.md`, whatever they are) and of the plaintext and encrypted conversations
//! together draws exactly the numbers of `--json` (every histogram bar is its count), holds
//! the charts it should, and renders in headless Chromium without a console message into a
//! picture that is not blank; captured HTML, scripts, SVG and control characters
//! (`tests/data/hostile-html.pcap`) stay text in the page's DOM; and the flag's other cases
//! (`-`, a file that cannot be written, a file that is not a capture) behave. The Chromium
//! cases are skipped with a message where `chromium` is missing (and fail under
//! `RCHAT_REQUIRE_TOOLS=1`).

mod common;

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{BIN, have_tool, output_within, scratch, shipped_captures};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rchat(args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("analyze").args(args).current_dir(root()).env("NO_COLOR", "1");
    output_within(cmd, 60)
}

/// One run whose page is checked: its name and the capture files it analyses.
struct Run {
    name: String,
    files: Vec<String>,
}

/// Each shipped capture alone, then the plaintext and the encrypted conversation together
/// (the picture README shows).
fn runs() -> Vec<Run> {
    let shipped = shipped_captures();
    assert!(!shipped.is_empty(), "no capture listed in captures/README.md");
    let mut runs: Vec<Run> = shipped
        .iter()
        .map(|f| Run { name: stem(f), files: vec![format!("captures/{f}")] })
        .collect();
    runs.push(Run {
        name: "plaintext-and-encrypted".into(),
        files: vec!["captures/chat-plaintext.pcap".into(), "captures/chat-encrypted.pcapng".into()],
    });
    runs
}

fn stem(file: &str) -> String {
    Path::new(file).file_stem().unwrap().to_string_lossy().into_owned()
}

/// The `--json` documents of a run, one per file.
fn json_reports(files: &[String]) -> Vec<serde_json::Value> {
    let mut args = vec!["--json"];
    args.extend(files.iter().map(String::as_str));
    let out = rchat(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    serde_json::Deserializer::from_str(&text).into_iter().map(Result::unwrap).collect()
}

/// The page of a run, written with `--html` into `dir`; checks that the terminal report is
/// printed as it is without the flag.
fn page_of(files: &[String], extra: &[&str], dir: &Path) -> (PathBuf, String) {
    let page = dir.join("report.html");
    let page_arg = page.display().to_string();
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(files.iter().map(String::as_str));
    let plain = rchat(&args);
    let mut with: Vec<&str> = vec!["--html", &page_arg];
    with.extend(&args);
    let out = rchat(&with);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, plain.stdout, "--html changed the terminal report");
    let html = fs::read_to_string(&page).unwrap();
    (page, html)
}

/// The charts a page of these reports holds: per stream two histograms, a timeline and an
/// entropy chart, and two small histograms more per stream in the overview when the run has
/// more than one stream.
fn expected_charts(reports: &[serde_json::Value]) -> usize {
    let streams: usize = reports.iter().map(|r| r["streams"].as_array().unwrap().len()).sum();
    4 * streams + if streams > 1 { 2 * streams } else { 0 }
}

/// Each direction's `histogram` from the JSON, client to server first, stream by stream.
fn json_histograms(reports: &[serde_json::Value]) -> Vec<Vec<u64>> {
    let mut out = Vec::new();
    for r in reports {
        for s in r["streams"].as_array().unwrap() {
            for dir in ["client_to_server", "server_to_client"] {
                let h = s["directions"][dir]["histogram"].as_array().unwrap();
                out.push(h.iter().map(|c| c.as_u64().unwrap()).collect());
            }
        }
    }
    out
}

/// The value of every `name="..."` attribute in `text`, in order.
fn attributes<'t>(text: &'t str, name: &str) -> Vec<&'t str> {
    let key = format!(" {name}=\"");
    text.match_indices(&key)
        .filter_map(|(i, _)| {
            let rest = &text[i + key.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

/// The bars of each histogram in the page (those whose class starts with `kind`), as the
/// counts they carry, in the page's order; checks that each has one bar per byte value, in
/// order.
fn page_histograms(html: &str, kind: &str) -> Vec<Vec<u64>> {
    let open = format!("<svg class=\"chart {kind}\"");
    let mut out = Vec::new();
    for (i, _) in html.match_indices(&open) {
        let svg = &html[i..];
        let svg = &svg[..svg.find("</svg>").unwrap()];
        let bytes: Vec<usize> =
            attributes(svg, "data-byte").iter().map(|b| b.parse().unwrap()).collect();
        assert_eq!(bytes, (0..256).collect::<Vec<_>>(), "the bars are 0x00 to 0xff in order");
        out.push(attributes(svg, "data-count").iter().map(|c| c.parse().unwrap()).collect());
    }
    out
}

#[test]
fn every_shipped_capture_gets_a_page_that_draws_its_numbers() {
    for run in runs() {
        let dir = scratch("html-page");
        let (_, html) = page_of(&run.files, &["--color", "never"], dir.path());
        let reports = json_reports(&run.files);
        let name = &run.name;
        assert!(html.starts_with("<!DOCTYPE html>"), "{name}");
        assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none'"), "{name}");
        // Self-contained: nothing to fetch, nothing to run.
        assert!(!html.contains("<script"), "{name}");
        assert!(!html.contains(" src="), "{name}");
        assert!(attributes(&html, "href").iter().all(|h| h.starts_with('#')), "{name}");
        let charts = html.matches("<svg class=\"chart ").count();
        assert_eq!(charts, expected_charts(&reports), "{name}: charts");
        let want = json_histograms(&reports);
        assert_eq!(page_histograms(&html, "histogram"), want, "{name}: histograms");
        if want.len() > 2 {
            assert_eq!(page_histograms(&html, "histogram mini"), want, "{name}: overview");
        }
        // The timeline has a bar, and the entropy chart a mark, for each message listed.
        let messages: usize = reports
            .iter()
            .flat_map(|r| r["streams"].as_array().unwrap().iter())
            .flat_map(|s| s["directions"].as_object().unwrap().values())
            .map(|d| d["messages"].as_array().unwrap().len())
            .sum();
        assert_eq!(html.matches("class=\"message\"").count(), 2 * messages, "{name}: messages");
    }
}

#[test]
fn the_page_goes_to_standard_output_with_a_dash_and_errors_are_one_line() {
    let file = "captures/chat-plaintext.pcap";
    let dir = scratch("html-flags");
    let (_, html) = page_of(&[file.to_string()], &[], dir.path());
    let out = rchat(&["--html", "-", file]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), html, "the page alone, on stdout");

    let out = rchat(&["--html", "-", "--json", file]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("rchat: error: --html - and --json") && err.lines().count() == 1);

    let nowhere = dir.path().join("no-such-folder/report.html");
    let out = rchat(&["--html", nowhere.to_str().unwrap(), file]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("rchat: error: cannot write the HTML report"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // A file that is not a capture: its error line, on stderr and in the page.
    let junk = dir.path().join("notes.txt");
    fs::write(&junk, "<b>not a capture</b> at all, just some text to read").unwrap();
    let page = dir.path().join("two.html");
    let out = rchat(&["--html", page.to_str().unwrap(), file, junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let html = fs::read_to_string(&page).unwrap();
    assert!(html.contains("is not a pcap or pcapng capture"), "the error is in the page");
    assert_eq!(html.matches("<svg class=\"chart ").count(), 4, "the capture's charts");
}

/// `--json` beside `--html FILE`: the JSON is that of `--json` alone, though the JSON writer
/// alone makes the streams' reports as it writes them, and the page that of `--html` alone.
#[test]
fn json_beside_a_page_changes_neither() {
    let files = ["captures/two-sessions-and-noise.pcapng".to_string()];
    let dir = scratch("html-and-json");
    let (_, page) = page_of(&files, &["--all-ports"], dir.path());
    let (_, beside_json) = page_of(&files, &["--all-ports", "--json"], dir.path());
    assert_eq!(beside_json, page);
    assert!(json_reports(&files)[0]["streams"].as_array().is_some_and(|s| s.len() > 1));
}

/// What the hostile capture's payloads hold, raw, and as the page must show them.
const HOSTILE: &[(&str, &str)] = &[
    ("<script>document.title=", "&lt;script&gt;document.title=&#39;INJECTED&#39;"),
    ("</svg></td><img src=x", "&lt;/svg&gt;&lt;/td&gt;&lt;img src=x onerror=&quot;"),
    ("<svg onload=", "&lt;svg onload=&quot;document.title"),
    ("<a href=\"javascript:", "&lt;a href=&quot;javascript:alert(1)&quot;&gt;click"),
    ("<style>body{display:none}", "&lt;style&gt;body{display:none}&lt;/style&gt;"),
    ("<base href=", "&lt;base href=&quot;http://evil.invalid/&quot;&gt;"),
    ("<math><mtext>", "&lt;math&gt;&lt;mtext&gt;&lt;table&gt;"),
    ("X-Note: </svg><script>", "X-Note: &lt;/svg&gt;&lt;script&gt;alert(2)"),
    ("GET /search?q=<script>", "GET /search?q=&lt;script&gt;alert(1)&lt;/script&gt;"),
    ("\u{1b}[2J", "\\u{1b}[2J clear, \\u{1b}]0;owned\\u{7} title, nul \\u{0} del \\u{7f}"),
    ("\u{202e}txt.exe", "rlo \\u{202e}txt.exe, typed \\\\u{1b}"),
];

/// A copy of the hostile capture under a hostile name, in `dir`.
fn hostile_copy(dir: &Path) -> PathBuf {
    let copy = dir.join("<img src=x onerror=alert(4)>.pcap");
    fs::copy(root().join("tests/data/hostile-html.pcap"), &copy).unwrap();
    copy
}

#[test]
fn captured_markup_and_control_characters_stay_text_in_the_page() {
    let raw = fs::read(root().join("tests/data/hostile-html.pcap")).unwrap();
    let dir = scratch("html-hostile");
    let copy = hostile_copy(dir.path());
    let (_, html) = page_of(&[copy.display().to_string()], &["--full"], dir.path());
    for (payload, shown) in HOSTILE {
        let p = payload.as_bytes();
        assert!(raw.windows(p.len()).any(|w| w == p), "the capture holds {payload:?}");
        assert!(!html.contains(payload), "the page holds {payload:?} as it is");
        assert!(html.contains(shown), "the page does not show {shown:?}");
    }
    assert!(html.contains("&lt;img src=x onerror=alert(4)&gt;.pcap"), "the file name");
    for bad in ["<script", "<img", "<iframe", "<base", "<math"] {
        assert!(!html.contains(bad), "{bad}");
    }
    // No tag has an event handler: every `<` in the page opens one of the page's own.
    for (i, _) in html.match_indices('<') {
        let tag = &html[i..i + html[i..].find('>').unwrap_or(0)];
        let handler = tag.match_indices(" on").any(|(j, _)| {
            let name: String = tag[j + 3..].chars().take_while(char::is_ascii_alphabetic).collect();
            !name.is_empty() && tag[j + 3 + name.len()..].starts_with('=')
        });
        assert!(!handler, "an event handler in {tag:?}");
    }
    assert_eq!(html.matches("<style>").count(), 1);
    let controls: Vec<char> =
        html.chars().filter(|&c| (c.is_control() && c != '\n') || c == '\u{202e}').collect();
    assert!(controls.is_empty(), "control characters in the page: {controls:?}");
}

/// A PNG's width, height and pixels as RGBA (8-bit RGB or RGBA, not interlaced: what
/// Chromium writes).
fn decode_png(png: &[u8]) -> (usize, usize, Vec<[u8; 4]>) {
    assert_eq!(png.get(..8), Some(&b"\x89PNG\r\n\x1a\n"[..]), "not a PNG");
    let (mut at, mut idat) = (8, Vec::new());
    let (mut width, mut height, mut channels) = (0, 0, 0);
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let kind = &png[at + 4..at + 8];
        let body = &png[at + 8..at + 8 + len];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(body[0..4].try_into().unwrap()) as usize;
                height = u32::from_be_bytes(body[4..8].try_into().unwrap()) as usize;
                assert_eq!((body[8], body[12]), (8, 0), "8-bit, not interlaced");
                channels = match body[9] {
                    2 => 3,
                    6 => 4,
                    other => panic!("colour type {other}"),
                };
            }
            b"IDAT" => idat.extend_from_slice(body),
            _ => {}
        }
        at += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..]).read_to_end(&mut raw).unwrap();
    let stride = width * channels;
    let mut prev = vec![0u8; stride];
    let mut pixels = Vec::with_capacity(width * height);
    for row in raw.chunks(stride + 1).take(height) {
        let (filter, data) = (row[0], &row[1..]);
        let mut line = vec![0u8; stride];
        for i in 0..stride {
            let a = if i >= channels { line[i - channels] } else { 0 };
            let (b, c) = (prev[i], if i >= channels { prev[i - channels] } else { 0 });
            let predicted = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) = (
                        (p - i16::from(a)).abs(),
                        (p - i16::from(b)).abs(),
                        (p - i16::from(c)).abs(),
                    );
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                other => panic!("PNG filter {other}"),
            };
            line[i] = data[i].wrapping_add(predicted);
        }
        for px in line.chunks(channels) {
            pixels.push([px[0], px[1], px[2], if channels == 4 { px[3] } else { 255 }]);
        }
        prev = line;
    }
    (width, height, pixels)
}

/// What headless Chromium made of a page: its DOM after loading, the console messages it
/// logged, and the screenshot's pixels.
struct Rendered {
    dom: String,
    console: Vec<String>,
    size: (usize, usize),
    pixels: Vec<[u8; 4]>,
}

fn render(page: &Path, dir: &Path) -> Rendered {
    let shot = dir.join("shot.png");
    let mut cmd = Command::new("chromium");
    cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .args(["--enable-logging=stderr", "--v=0", "--window-size=1280,1600"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()));
    let out = output_within(cmd, 120);
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    let (w, h, pixels) = decode_png(&fs::read(&shot).expect("the screenshot"));
    Rendered { dom: String::from_utf8(out.stdout).unwrap(), console, size: (w, h), pixels }
}

/// The names of the elements in a serialised DOM (text is serialised with `<` escaped, so
/// every `<name` is an element).
fn elements(dom: &str) -> Vec<String> {
    dom.match_indices('<')
        .filter_map(|(i, _)| {
            let name: String = dom[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            (!name.is_empty()).then(|| name.to_ascii_lowercase())
        })
        .collect()
}

/// The elements this program's pages are made of.
const OURS: &[&str] = &[
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "svg",
    "defs",
    "pattern",
    "rect",
    "path",
    "circle",
    "g",
    "line",
    "text",
    "polygon",
    "polyline",
    "header",
    "h1",
    "h2",
    "h3",
    "h4",
    "p",
    "ul",
    "li",
    "b",
    "span",
    "nav",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "a",
    "br",
    "small",
    "main",
    "section",
    "article",
    "div",
    "figure",
    "figcaption",
    "details",
    "summary",
    "pre",
    "code",
    "footer",
    "q",
];

#[test]
fn every_page_renders_in_chromium_and_captured_markup_stays_text() {
    if !have_tool("chromium") {
        return;
    }
    let mut jobs: Vec<(String, Vec<String>, Vec<&str>)> =
        runs().into_iter().map(|r| (r.name, r.files, vec![])).collect();
    let hostile_dir = scratch("html-hostile-chromium");
    let copy = hostile_copy(hostile_dir.path()).display().to_string();
    jobs.push(("hostile".into(), vec![copy], vec!["--full"]));
    let failures: Vec<String> = std::thread::scope(|scope| {
        // Two at a time: one per core.
        let mut failures = Vec::new();
        for pair in jobs.chunks(2) {
            let handles: Vec<_> = pair
                .iter()
                .map(|(name, files, extra)| {
                    scope.spawn(move || {
                        let dir = scratch("html-chromium");
                        let (page, _) = page_of(files, extra, dir.path());
                        let shown = render(&page, dir.path());
                        check_rendered(name, &shown, expected_charts(&json_reports(files)))
                    })
                })
                .collect();
            for h in handles {
                if let Err(e) = h.join().unwrap_or_else(|_| Err("a check panicked".into())) {
                    failures.push(e);
                }
            }
        }
        failures
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn check_rendered(name: &str, r: &Rendered, charts: usize) -> Result<(), String> {
    if !r.console.is_empty() {
        return Err(format!("{name}: console messages: {:?}", r.console));
    }
    let found = r.dom.matches("<svg class=\"chart ").count();
    if found != charts {
        return Err(format!("{name}: {found} charts in the DOM, {charts} expected"));
    }
    let names = elements(&r.dom);
    let foreign: Vec<&String> = names.iter().filter(|n| !OURS.contains(&n.as_str())).collect();
    if !foreign.is_empty() {
        return Err(format!("{name}: elements that are not the page's own: {foreign:?}"));
    }
    let count = |n: &str| names.iter().filter(|x| *x == n).count();
    let counts = (count("style"), count("meta"), count("svg"), count("a"));
    let links = r.dom.matches("<a href=\"#f").count();
    if counts != (1, 4, charts + 1, links) {
        return Err(format!("{name}: an element was injected: (style, meta, svg, a) {counts:?}"));
    }
    if r.dom.matches("<title>rchat analyze: ").count() != 1 || r.dom.contains("INJECTED</") {
        return Err(format!("{name}: the title changed"));
    }
    // Not blank: a good share of the pixels is not the background, in many colours.
    let (w, h) = r.size;
    let background = r.pixels.first().copied().unwrap_or_default();
    let inked = r.pixels.iter().filter(|p| **p != background).count();
    let mut colours: Vec<[u8; 4]> = r.pixels.iter().step_by(7).copied().collect();
    colours.sort_unstable();
    colours.dedup();
    if w != 1280 || h != 1600 || inked * 20 < w * h || colours.len() < 20 {
        return Err(format!(
            "{name}: the screenshot looks blank ({w}x{h}, {inked} inked pixels, {} colours)",
            colours.len()
        ));
    }
    Ok(())
}

/// One screenshot per shipped capture is kept in `docs/screenshots/` for README and the labs;
/// `docs/make-screenshots.sh` makes them anew (after a capture is added to the table, say).
#[test]
fn every_shipped_capture_has_its_screenshot_in_docs() {
    for run in runs() {
        let path = root().join(format!("docs/screenshots/{}.png", run.name));
        let png = fs::read(&path).unwrap_or_else(|_| {
            panic!("{} is missing: run docs/make-screenshots.sh", path.display())
        });
        let (w, h, pixels) = decode_png(&png);
        assert!(w >= 800 && h >= 600, "{}: {w}x{h}", path.display());
        let background = pixels[0];
        assert!(pixels.iter().filter(|p| **p != background).count() * 20 > w * h);
    }
}
