"""A tiny live MPEG-TS-over-HTTP server for the reconnect tests (run as a subprocess).

usage: python tests/sources_stream_server.py PORT FILE.ts SECONDS_PER_LOOP
Every client gets `HTTP/1.0 200` and then FILE.ts, paced to SECONDS_PER_LOOP per pass, repeated
forever, like a camera's HTTP stream. Killing the process drops every client at once.
"""
from __future__ import annotations

import socketserver
import sys
import time

TS_CHUNK = 188 * 7  # whole transport-stream packets per send


def main() -> None:
    port, path, loop_s = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    data = open(path, "rb").read()
    chunks = [data[i:i + TS_CHUNK] for i in range(0, len(data), TS_CHUNK)]
    dt = loop_s / max(1, len(chunks))

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # request line and headers
            self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: video/mp2t\r\nConnection: close\r\n\r\n")
            t = time.monotonic()
            try:
                while True:
                    for chunk in chunks:
                        self.wfile.write(chunk)
                        t += dt
                        time.sleep(max(0.0, t - time.monotonic()))
            except (BrokenPipeError, ConnectionResetError):
                return

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

    with Server(("127.0.0.1", port), Handler) as srv:
        print("ready", flush=True)
        srv.serve_forever()


if __name__ == "__main__":
    main()
