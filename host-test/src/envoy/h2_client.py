"""Sends one request to Envoy over HTTP/2 (cleartext, prior knowledge) behind a PROXY protocol
line, for `host-test envoy` steps whose request says `protocol: HTTP/2`.

Reads the request as JSON on stdin; writes the response as JSON on stdout. Runs with the
project's .venv Python, where scripts/install-envoy installs the `h2` package.
"""
import json
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events


def main():
    request = json.load(sys.stdin)
    sock = socket.create_connection(("127.0.0.1", request["port"]), timeout=20)
    sock.sendall(request["proxy_line"].encode())
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())

    chunks, trailers = request["chunks"], request["trailers"]
    headers = [(":method", request["method"]), (":path", request["path"]),
               (":authority", request["authority"]), (":scheme", request["scheme"])]
    headers += [(name.lower(), value) for name, value in request["headers"]]
    conn.send_headers(1, headers, end_stream=not chunks and not trailers)
    sock.sendall(conn.data_to_send())
    for index, chunk in enumerate(chunks):
        # One DATA frame per chunk, apart in time: one body callback each in Envoy.
        time.sleep(0.04)
        conn.send_data(1, chunk.encode(), end_stream=index == len(chunks) - 1 and not trailers)
        sock.sendall(conn.data_to_send())
    if trailers:
        conn.send_headers(1, [(name.lower(), value) for name, value in trailers], end_stream=True)
        sock.sendall(conn.data_to_send())

    response = {"headers": [], "body": "", "trailers": [], "reset": False}
    body = b""
    done = False
    while not done:
        data = sock.recv(65536)
        if not data:
            response["reset"] = True
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                response["headers"] = [[k, v] for k, v in event.headers]
            elif isinstance(event, h2.events.TrailersReceived):
                response["trailers"] = [[k, v] for k, v in event.headers]
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                done = True
            elif isinstance(event, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                response["reset"] = True
                done = True
        sock.sendall(conn.data_to_send())
    response["body"] = body.decode("utf-8", "replace")
    json.dump(response, sys.stdout)


if __name__ == "__main__":
    main()
