#!/usr/bin/env python3
"""Add one capture's facts to expected.json, taken from the logs its peers wrote.

Directions are named by port, as rchat names them: client_to_server is what the joiner (the
side that connected) sent, server_to_client what the host (the side that listened) sent. The
expected verdicts are given on the command line; everything else comes from the logs.

  facts.py expected.json original-rsa-1024.pcap --port 9999 --verdict ciphertext \
      --server host.json --client join.json
"""
import argparse
import json
import os
import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization

import peerlib


def direction(log, verdict):
    """What one side put on the wire, summed up from its log."""
    facts = {"sender": log["role"], "program": log["program"], "verdict": verdict}
    if log.get("settings"):
        facts["settings"] = log["settings"]
    if log.get("key"):
        facts["key"] = dict(log["key"], in_clear=True)
    sent = log["sent"]
    messages = [s for s in sent if s["kind"] == "message"]
    if messages:
        facts["messages"] = len(messages)
        facts["message_sizes"] = [m["bytes"] for m in messages]
        if any("ct_bytes" in m for m in messages):
            facts["ciphertext_sizes"] = [m["ct_bytes"] for m in messages]
        facts["plaintext_sizes"] = [m["plain_bytes"] for m in messages]
        facts["texts"] = [m["text"] for m in messages]
    lines = [s for s in sent if s["kind"] == "line"]
    if lines:
        # Lines typed into a program that wraps them (TLS): sizes before encryption.
        facts["application_lines"] = len(lines)
        facts["application_line_sizes"] = [s["bytes"] for s in lines]
        facts["texts"] = [s["text"] for s in lines]
    requests = [s for s in sent if s["kind"] == "request"]
    if requests:
        facts["requests"] = [s["text"] for s in requests if s["text"]]
        facts["request_bytes"] = sum(s["bytes"] for s in requests)
    facts["sends"] = [{"kind": s["kind"], "bytes": s["bytes"]} for s in sent]
    if messages or requests:
        # The chat peers and the HTTP client write nothing else: this is the stream's size.
        facts["bytes"] = sum(s["bytes"] for s in sent)
    return facts


def ssh_facts(debug_file, c2s, s2c):
    """The banners, host key and algorithms that `ssh -v` reports."""
    with open(debug_file, encoding="utf-8", errors="replace") as f:
        text = f.read()

    def find(pattern):
        m = re.search(pattern, text)
        return m.group(1).strip() if m else None
    local = find(r"Local version string (\S.*)")
    remote = find(r"Remote protocol version ([\d.]+, remote software version .*)")
    if local:
        c2s["banner"] = local
        c2s["banner_bytes"] = len(local) + 2  # with its CR LF
    if remote:
        version, software = remote.split(", remote software version ")
        s2c["banner"] = "SSH-%s-%s" % (version, software)
        s2c["banner_bytes"] = len(s2c["banner"]) + 2
    s2c["host_key"] = find(r"Server host key: (.*)")
    kex = {"kex": find(r"kex: algorithm: (.*)"),
           "host_key_algorithm": find(r"kex: host key algorithm: (.*)"),
           "client_to_server_cipher": find(r"kex: client->server cipher: (.*)"),
           "server_to_client_cipher": find(r"kex: server->client cipher: (.*)")}
    return {k: v for k, v in kex.items() if v}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("name")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--verdict", required=True, help="the stream's expected verdict")
    p.add_argument("--c2s-verdict", help="if not the stream's")
    p.add_argument("--s2c-verdict", help="if not the stream's")
    p.add_argument("--encoding", help="for encoded text: base64, hex or decimal")
    p.add_argument("--program", required=True, help="what made the traffic, in words")
    p.add_argument("--server", help="the host's log")
    p.add_argument("--client", help="the joiner's log")
    p.add_argument("--cert", help="the TLS server's certificate")
    p.add_argument("--cert-in-clear", choices=["yes", "no"])
    p.add_argument("--ssh-debug", help="the output of ssh -v")
    p.add_argument("--psk-file", help="the pre-shared key's file name, if any")
    p.add_argument("--note", action="append", default=[])
    args = p.parse_args()

    entry = {"program": args.program, "port": args.port, "verdict": args.verdict}
    if args.encoding:
        entry["encoding"] = args.encoding
    c2s = {"verdict": args.c2s_verdict or args.verdict}
    s2c = {"verdict": args.s2c_verdict or args.verdict}
    if args.client:
        with open(args.client, encoding="utf-8") as f:
            log = json.load(f)
        c2s = direction(log, c2s["verdict"])
        # The HTTP client logs the response it read: the server's side of the stream.
        for r in log.get("received", []):
            if r.get("kind") == "response":
                s2c.update(status=r["status"], header_lines=r["header_lines"],
                           body_bytes=r["body_bytes"])
    if args.server:
        with open(args.server, encoding="utf-8") as f:
            s2c = direction(json.load(f), s2c["verdict"])
    if args.cert:
        with open(args.cert, "rb") as f:
            public = x509.load_pem_x509_certificate(f.read()).public_key()
        der = public.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        s2c["key"] = {"format": "x509-certificate", "bits": public.key_size,
                      "fingerprint": peerlib.fingerprint(der),
                      "pem_file": os.path.basename(args.cert),
                      "in_clear": args.cert_in_clear == "yes"}
    if args.ssh_debug:
        entry["ssh"] = ssh_facts(args.ssh_debug, c2s, s2c)
    if args.psk_file:
        entry["psk_file"] = args.psk_file
    entry["client_to_server"] = c2s
    entry["server_to_client"] = s2c
    if args.note:
        entry["notes"] = args.note

    facts = {}
    if os.path.exists(args.out):
        with open(args.out, encoding="utf-8") as f:
            facts = json.load(f)
    facts[args.name] = entry
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(dict(sorted(facts.items())), f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
