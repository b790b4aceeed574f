"""Headless Chromium (Debian's package) driven over the DevTools protocol: load a page, wait, take
a screenshot. Flags from the machine notes: no sandbox (root), no GPU (SwiftShader WebGL), no
background networking (the network is closed)."""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def screenshot(url: str, out_png: str, wait_s: float, width: int = 1280, height: int = 800,
               ready=None) -> None:
    """Open `url` in headless Chromium, wait until `ready(png_bytes)` is true (polled every 2 s)
    or `wait_s` passes, and write the last screenshot to `out_png`."""
    import websocket  # websocket-client

    port = _free_port()
    # Chromium's helper processes (crashpad, renderer) may still write to the profile for a moment
    # after the browser is gone; a leftover temp folder is no failure of the page under test
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
             f"--user-data-dir={profile}", f"--window-size={width},{height}",
             # Chromium >= 111 rejects DevTools websockets from an unlisted origin (403)
             f"--remote-debugging-port={port}", f"--remote-allow-origins=http://127.0.0.1:{port}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2))
                    ws_url = next(p["webSocketDebuggerUrl"] for p in pages if p.get("type") == "page")
                    break
                except (OSError, StopIteration):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
            ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
            ids = iter(range(1, 10_000))

            def call(method: str, **params):
                i = next(ids)
                ws.send(json.dumps({"id": i, "method": method, "params": params}))
                while True:
                    m = json.loads(ws.recv())
                    if m.get("id") == i:
                        return m.get("result", {})

            call("Page.enable")
            call("Page.navigate", url=url)
            end = time.monotonic() + wait_s
            png = b""
            while True:
                time.sleep(2.0)
                png = base64.b64decode(call("Page.captureScreenshot", format="png")["data"])
                if (ready is not None and ready(png)) or time.monotonic() > end:
                    break
            ws.close()
            with open(out_png, "wb") as f:
                f.write(png)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            try:   # its helper processes too (its own session: the group is only Chromium's)
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
