#!/usr/bin/env python3
"""The alert receiver of scripts/suites/monitoring-e2e.sh: records every Alertmanager webhook POST as one JSON
line {"receiver", "authorized", "body"} in a file, where `receiver` is the URL path (prepare.py gives each
Alertmanager receiver its own path) and `authorized` tells whether the bearer token matched.

    webhook.py --listen 127.0.0.1:PORT --log FILE --token-file FILE

Standard library only.
"""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Alertmanager's webhook bodies are a few KiB per group; anything far bigger is not a notification.
MAX_BODY = 1024 * 1024


def handler(log_path, token):
    lock = threading.Lock()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the name http.server dispatches to)
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self.send_error(411, "Content-Length required")
                return
            if not 0 <= length <= MAX_BODY:
                self.send_error(413, f"body must be at most {MAX_BODY} bytes")
                return
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError as error:
                self.send_error(400, f"body is not JSON: {error}")
                return
            record = {
                "receiver": self.path.strip("/"),
                "authorized": self.headers.get("Authorization") == f"Bearer {token}",
                "body": body,
            }
            with lock, open(log_path, "a", encoding="utf-8") as log:
                log.write(json.dumps(record) + "\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_):
            """Quiet: the records are the output."""

    return Receiver


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--token-file", type=Path, required=True)
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        print(f"webhook.py: --listen {args.listen!r} is not HOST:PORT", file=sys.stderr)
        return 1
    try:
        token = args.token_file.read_text().strip()
        server = ThreadingHTTPServer((host, int(port)), handler(args.log, token))
    except OSError as error:
        print(f"webhook.py: {error}", file=sys.stderr)
        return 1
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
