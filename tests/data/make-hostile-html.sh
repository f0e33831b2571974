#!/usr/bin/env bash
# Re-create hostile-html.pcap: real plaintext traffic on the loopback interface whose payloads
# are HTML, script and SVG tags, markup breakers and control characters, for the test that
# the HTML report shows them as text only (tests/html.rs). Needs root (to capture), tcpdump
# and nc (OpenBSD netcat). Only 127.0.0.1 and port 9999 (plus ephemeral client ports) are
# used, and every process stops by itself.
set -euo pipefail
cd "$(dirname "$0")"
PORT=9999
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

tcpdump -i lo -U -w hostile-html.pcap "tcp port $PORT" >/dev/null 2>&1 &
cap=$!
sleep 1.5

# 1. A chat typed into netcat, both ways, one hostile line at a time.
( sleep 0.3
  printf '%s\n' "<style>body{display:none}</style><b>bold?</b> &amp; &lt;not a tag&gt; ]]> -->"
  sleep 0.3
  printf '%s\n' '<math><mtext><table><mglyph><style><img src=x onerror="document.title=1">'
  sleep 0.3
  printf '%s\n' '<base href="http://evil.invalid/"><meta http-equiv="refresh" content="0;url=http://evil.invalid/">'
  # Stay until the guest has said everything.
  sleep 2 ) |
  nc -q 1 -l 127.0.0.1 "$PORT" > "$work/host-got" &
host=$!
sleep 0.3
( sleep 0.5
  printf '%s\n' "<script>document.title='INJECTED';document.body.textContent='INJECTED'</script>"
  sleep 0.3
  printf '%s\n' "</pre></details></section></svg></td><img src=x onerror=\"document.title='INJECTED'\">"
  sleep 0.3
  printf '%s\n' "<svg onload=\"document.title='INJECTED'\"><circle r=\"40\"/></svg><a href=\"javascript:alert(1)\">click</a>"
  sleep 0.3
  # ESC [2J (clear screen), an OSC title, BEL, NUL, DEL, U+202E (right-to-left override) and a
  # typed backslash escape, inside a line of text.
  printf 'these control characters must show as escapes, not act: \033[2J clear, \033]0;owned\007 title, nul \000 del \177 and rlo \342\200\256txt.exe, typed \\u{1b}\n'
  sleep 0.5 ) |
  nc -q 1 127.0.0.1 "$PORT" > "$work/guest-got"
wait "$host" || true

# 2. An HTTP request and answer whose request line, headers and body carry markup: the
#    protocol's summary shows them.
( sleep 0.3
  printf 'HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nX-Note: </svg><script>alert(2)</script>\r\nContent-Length: 31\r\n\r\n<script>alert("body")</script>\n'
  sleep 0.5 ) |
  nc -q 1 -l 127.0.0.1 "$PORT" > "$work/http-got" &
host=$!
sleep 0.3
# The client's input stays open until the answer is in.
( printf 'GET /search?q=<script>alert(1)</script> HTTP/1.1\r\nHost: <img src=x onerror=alert(1)>\r\nUser-Agent: "></svg><svg onload=alert(3)>\r\n\r\n'
  sleep 1.5 ) |
  nc -q 1 127.0.0.1 "$PORT" > /dev/null
wait "$host" || true

sleep 1
kill -INT "$cap"
wait "$cap" || true
echo "hostile-html.pcap: $(sha256sum hostile-html.pcap | cut -d' ' -f1)"
