#!/usr/bin/env python3
"""One real HTTP/1.1 GET with urllib, logging the exact request bytes it sent and what came
back (the same JSON log as the chat peers), for a capture of plain HTTP.

  http_get.py http://127.0.0.1:9999/hello.txt --log client.json
"""
import argparse
import http.client
import json
import time
import urllib.request

sent = []


class LoggingConnection(http.client.HTTPConnection):
    """urllib's own connection class, noting every chunk it writes to the socket."""

    def send(self, data):
        sent.append({"kind": "request", "bytes": len(data),
                     "text": data.decode("latin-1").split("\r\n", 1)[0]})
        super().send(data)


class LoggingHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(LoggingConnection, req)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--log")
    p.add_argument("--tries", type=int, default=40, help="wait for the server this many times")
    args = p.parse_args()

    opener = urllib.request.build_opener(LoggingHandler)
    for attempt in range(args.tries):
        try:
            with opener.open(args.url, timeout=5) as response:
                body = response.read()
                status = response.status
                headers = str(response.headers)
            break
        except OSError:
            if attempt + 1 == args.tries:
                raise
            sent.clear()
            time.sleep(0.1)
    print(body.decode("utf-8", "replace"), end="")
    if args.log:
        with open(args.log, "w", encoding="utf-8") as f:
            json.dump({"program": "http_get.py (urllib)", "role": "join", "key": None,
                       "sent": sent,
                       "received": [{"kind": "response", "status": status,
                                     "header_lines": headers.strip().splitlines(),
                                     "body_bytes": len(body)}]},
                      f, indent=1, ensure_ascii=False)
            f.write("\n")


if __name__ == "__main__":
    main()
