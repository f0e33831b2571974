//! The person at the keyboard: reading what they type (a line editor on a terminal, plain
//! lines from a pipe or file) and showing messages and status without garbling the line
//! being typed.
//!
//! Owns stdin, stdout and stderr for the chat. Interactive use (stdin and stdout are both
//! terminals) gets a line editor whose prompt is redrawn under each incoming message, and
//! timestamps. Scripted use gets one received message per line on stdout and status on
//! stderr. Everything shown that came from the peer is escaped first, so a peer cannot
//! move the cursor or clear the screen.

use std::io::{self, BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread;

use rustyline::error::ReadlineError;
use rustyline::{DefaultEditor, ExternalPrinter};

use super::Event;
use crate::escape::text as escape;
use crate::protocol::wire::MAX_MESSAGE_LEN;

/// What the person did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A line to send (without its newline).
    Line(String),
    /// End of input (Ctrl-D, or the end of a pipe or file).
    End,
    /// Ctrl-C.
    Interrupt,
}

type Printer = Box<dyn ExternalPrinter + Send>;

/// Output to the person, shared by every thread of a chat.
pub struct Ui {
    printer: Option<Mutex<Printer>>,
    /// Whether the line editor is still reading (its printer only works while it is).
    editing: Arc<AtomicBool>,
    name: String,
}

impl std::fmt::Debug for Ui {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ui").field("interactive", &self.is_interactive()).finish()
    }
}

/// Whether the chat runs with a person at a terminal.
pub fn stdio_is_terminal() -> bool {
    io::stdin().is_terminal() && io::stdout().is_terminal()
}

impl Ui {
    /// Start reading input on its own thread, sending each [`Input`] as an [`Event`] to `tx`.
    /// `name` is our display name, used in the prompt.
    pub fn start(interactive: bool, name: &str, tx: Sender<Event>) -> Arc<Ui> {
        if interactive
            && let Ok(mut editor) = DefaultEditor::new()
            && let Ok(printer) = editor.create_external_printer()
        {
            let prompt = format!("{name}> ");
            let editing = Arc::new(AtomicBool::new(true));
            let flag = editing.clone();
            thread::spawn(move || read_terminal(editor, &prompt, &tx, &flag));
            let printer: Printer = Box::new(printer);
            let printer = Some(Mutex::new(printer));
            return Arc::new(Ui { printer, editing, name: name.into() });
        }
        let ctrl_c = tx.clone();
        // Without a line editor, Ctrl-C is a signal: turn it into an event so the chat can
        // say goodbye. Failing to install the handler only loses that nicety.
        let _ = ctrlc::set_handler(move || {
            let _ = ctrl_c.send(Event::Input(Input::Interrupt));
        });
        thread::spawn(move || read_lines(io::stdin().lock(), &tx));
        Arc::new(Ui::detached(name))
    }

    /// Output only, for programs that drive a chat themselves: no input thread, status on
    /// stderr.
    pub fn detached(name: &str) -> Ui {
        Ui { printer: None, editing: Arc::new(AtomicBool::new(false)), name: name.into() }
    }

    /// Whether a line editor is in use.
    pub fn is_interactive(&self) -> bool {
        self.printer.is_some()
    }

    fn print(&self, line: String) {
        if let Some(p) = &self.printer
            && self.editing.load(Ordering::SeqCst)
            && let Ok(mut p) = p.lock()
            // Outside raw mode the printer writes the text as is: end it with the newline.
            && p.print(format!("{line}\n")).is_ok()
        {
            return;
        }
        eprintln!("{line}");
    }

    /// A status line (stderr when scripted, above the prompt when interactive).
    pub fn status(&self, msg: impl AsRef<str>) {
        self.print(msg.as_ref().to_owned());
    }

    /// A warning.
    pub fn warn(&self, msg: impl AsRef<str>) {
        self.print(format!("warning: {}", msg.as_ref()));
    }

    /// A message from the peer: timestamped above the prompt, or one line on stdout.
    pub fn incoming(&self, who: &str, text: &str) {
        let text = escape(text);
        if self.is_interactive() {
            self.print(format!("[{}] {}: {text}", clock(), escape(who)));
        } else {
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "{text}").and_then(|()| out.flush());
        }
    }

    /// A message in a room: `who` said `text`, to everyone or (`private`) to us alone. Shown
    /// with its time above the prompt, or as `who: text` (`who (private): text`) on stdout.
    pub fn room_message(&self, who: &str, text: &str, private: bool) {
        let (who, text) = (escape(who), escape(text));
        let to = if private { " (private)" } else { "" };
        if self.is_interactive() {
            self.print(format!("[{}] {who}{to}: {text}", clock()));
        } else {
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "{who}{to}: {text}").and_then(|()| out.flush());
        }
    }

    /// Confirm a line we sent, with its time (interactive only: a script knows what it sent).
    pub fn sent(&self, text: &str) {
        if self.is_interactive() {
            // Replace the line the editor left behind ("name> text") with the stamped one.
            // Older Windows consoles may not understand the escape: leave both lines there.
            let erase = if cfg!(windows) { "" } else { "\x1b[1A\x1b[2K" };
            self.print(format!("{erase}[{}] {}: {}", clock(), self.name, escape(text)));
        }
    }
}

fn clock() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

fn read_terminal(
    mut editor: DefaultEditor,
    prompt: &str,
    tx: &Sender<Event>,
    editing: &AtomicBool,
) {
    loop {
        let input = match editor.readline(prompt) {
            Ok(line) => {
                if !line.is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                if line.trim() == "/quit" { Input::End } else { Input::Line(line) }
            }
            Err(ReadlineError::Interrupted) => Input::Interrupt,
            Err(_) => Input::End,
        };
        let more = input != Input::End && input != Input::Interrupt;
        if !more {
            // The editor is done: from now on status lines go straight to stderr.
            editing.store(false, Ordering::SeqCst);
        }
        if tx.send(Event::Input(input)).is_err() || !more {
            return;
        }
    }
}

/// Read lines from a pipe or file, one message each, never holding more than one line of
/// 64 KiB: longer lines are skipped with a warning.
fn read_lines(mut input: impl BufRead, tx: &Sender<Event>) {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let (done, used) = match input.fill_buf() {
            Ok([]) => (true, 0),
            Ok(buf) => match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    if !too_long {
                        line.extend_from_slice(&buf[..i]);
                    }
                    (false, i + 1)
                }
                None => {
                    if !too_long {
                        line.extend_from_slice(buf);
                    }
                    let n = buf.len();
                    if line.len() > MAX_MESSAGE_LEN + 1 {
                        too_long = true;
                        line.clear();
                    }
                    input.consume(n);
                    continue;
                }
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => (true, 0),
        };
        input.consume(used);
        if done && line.is_empty() && !too_long {
            let _ = tx.send(Event::Input(Input::End));
            return;
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let event = if too_long || line.len() > MAX_MESSAGE_LEN {
            Event::Warning("a line longer than 64 KiB was not sent".into())
        } else {
            Event::Input(Input::Line(String::from_utf8_lossy(&line).into_owned()))
        };
        line.clear();
        too_long = false;
        if tx.send(event).is_err() {
            return;
        }
        if done {
            let _ = tx.send(Event::Input(Input::End));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn lines_of(input: &[u8]) -> Vec<Event> {
        let (tx, rx) = mpsc::channel();
        read_lines(io::BufReader::with_capacity(7, input), &tx);
        drop(tx);
        rx.iter().collect()
    }

    #[test]
    fn piped_lines_become_messages() {
        let got = lines_of(b"one\r\n\ntwo\nlast");
        let want = ["one", "", "two", "last"];
        assert_eq!(got.len(), 5);
        for (g, w) in got.iter().zip(want) {
            assert!(matches!(g, Event::Input(Input::Line(l)) if l == w), "{g:?}");
        }
        assert!(matches!(got[4], Event::Input(Input::End)));
    }

    #[test]
    fn overlong_lines_are_skipped() {
        let mut input = vec![b'a'; MAX_MESSAGE_LEN + 10];
        input.extend_from_slice(b"\nok\n");
        let got = lines_of(&input);
        assert!(matches!(got[0], Event::Warning(_)));
        assert!(matches!(&got[1], Event::Input(Input::Line(l)) if l == "ok"));
        let exact = vec![b'b'; MAX_MESSAGE_LEN];
        let got = lines_of(&exact);
        assert!(matches!(&got[0], Event::Input(Input::Line(l)) if l.len() == MAX_MESSAGE_LEN));
    }
}
