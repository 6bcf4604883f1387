"""Receive Alertmanager webhook notifications and print each alert as JSON.

Usage: python webhook_logger.py [--host HOST] [--port PORT]

A stand-in for an incident tool in docker-compose.yml (``docker compose logs
alert-webhook`` shows what Alertmanager sent) and in the tests. It prints one
JSON object per alert on stdout: receiver, status, labels, annotations and
startsAt, and responds to every POST with 200. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_logger = logging.getLogger("webhook_logger")


class AlertHandler(BaseHTTPRequestHandler):
    """Print the alerts of each webhook POST."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        try:
            payload: dict[str, Any] = json.loads(body)
        except json.JSONDecodeError as error:
            _logger.warning("Invalid JSON from %s: %s", self.client_address[0], error)
            self.send_response(400)
            self.end_headers()
            return
        for alert in payload.get("alerts", []):
            line = {
                "receiver": payload.get("receiver"),
                "status": alert.get("status"),
                "labels": alert.get("labels", {}),
                "annotations": alert.get("annotations", {}),
                "startsAt": alert.get("startsAt"),
            }
            print(json.dumps(line, sort_keys=True), flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        _logger.debug(format, *args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="TCP port (default 8080)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    server = ThreadingHTTPServer((args.host, args.port), AlertHandler)
    _logger.info("Listening on %s:%d", args.host, server.server_address[1])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        _logger.info("Stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
