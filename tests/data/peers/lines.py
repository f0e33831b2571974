#!/usr/bin/env python3
"""Print lines to standard output with pauses, for piping into a program such as openssl
s_client or s_server, and log them (the same JSON log as the chat peers) so facts.py knows
what went into the connection. Exits (closing the pipe) after --linger seconds.

  lines.py --log client.json --role join "first line" "second line" | openssl s_client ...
"""
import argparse
import json
import sys
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("lines", nargs="*")
    p.add_argument("--role", choices=["host", "join"], required=True)
    p.add_argument("--program", default="openssl", help="the program the lines are fed to")
    p.add_argument("--first-delay", type=float, default=0.5)
    p.add_argument("--pause", type=float, default=0.4)
    p.add_argument("--linger", type=float, default=1.0)
    p.add_argument("--log")
    args = p.parse_intermixed_args()

    sent = []
    time.sleep(args.first_delay)
    for i, text in enumerate(args.lines):
        if i:
            time.sleep(args.pause)
        data = (text + "\n").encode("utf-8")
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        sent.append({"kind": "line", "bytes": len(data), "text": text})
    time.sleep(args.linger)
    if args.log:
        with open(args.log, "w", encoding="utf-8") as f:
            json.dump({"program": args.program, "role": args.role, "key": None,
                       "sent": sent, "received": []}, f, indent=1, ensure_ascii=False)
            f.write("\n")


if __name__ == "__main__":
    main()
