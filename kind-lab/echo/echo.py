"""The lab's echo backend: answers every request with JSON describing what it received, so the
smoke checks can see what the filters did to the request.

    {"version": "v1", "method": "GET", "path": "/x?q=1", "headers": {"x-request-id": "...", ...}}

Header names are lowercased; a repeated header's values are joined with ", ". Python standard
library only: the same file runs in the kind cluster (python image, ConfigMap) and on 127.0.0.1
for the local smoke test.

    python3 echo.py --version v1 --host 127.0.0.1 --port 8080
"""

import argparse
import http.server
import json
import socket


def handler_for(version):
    class Echo(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and
            # the peer's delayed ACK hold the body back about 40 ms on every kept-alive request.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def answer(self):
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            headers = {}
            for name, value in self.headers.items():
                name = name.lower()
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            body = json.dumps({"version": version, "method": self.command, "path": self.path,
                               "headers": headers}, sort_keys=True).encode() + b"\n"
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = answer

        def log_message(self, *args):
            pass

    return Echo


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", required=True, help="what the answers report, e.g. v1")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer((args.host, args.port), handler_for(args.version))
    server.serve_forever()


if __name__ == "__main__":
    main()
