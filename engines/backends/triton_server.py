"""Start and stop a real `tritonserver` from the nvidia-pytriton wheel (no container, no GPU).

The wheel bundles the server binary, its shared libraries and the Python backend, with one
Python-backend stub per Python version. Facts this module handles (learnt by running it):
- the stub for *this* interpreter's version must sit beside libtriton_python.so, so a private
  backend folder is laid out of links;
- the stub links the system `libpython3.x`: LD_LIBRARY_PATH gets this interpreter's sysconfig
  LIBDIR (with another build the model load fails with
  "'_thread.RLock' object has no attribute '_recursion_count'");
- the server binds 0.0.0.0 unless told otherwise: here it binds `host` (127.0.0.1 by default);
- it needs glibc >= 2.35 (`glibc_ok()`; tests skip with that reason on older systems).

Used by the tests, `bench/bench_triton.py`, and a single-host deployment without Docker:

    python -m engines.backends.triton_server --model-repository model_repository/
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from engines.backends.malloc_tuning import MALLOC_ENV
from stream.errors import DependencyError, EngineError

MIN_GLIBC = (2, 35)


def pytriton_dist() -> Path:
    """Folder of the bundled server (bin/, backends/, python_backend_stubs/)."""
    try:
        import importlib.util
        spec = importlib.util.find_spec("pytriton")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError("a local tritonserver needs the nvidia-pytriton wheel; install it "
                              "with: pip install --no-deps nvidia-pytriton==0.7.0")
    return Path(list(spec.submodule_search_locations)[0]) / "tritonserver"


def glibc_ok() -> tuple[bool, str]:
    """(usable, reason): the bundled binary needs glibc >= 2.35."""
    lib, ver = platform.libc_ver()
    if lib != "glibc":
        return False, f"tritonserver needs glibc >= 2.35; this system has {lib or 'no glibc'}"
    have = tuple(int(x) for x in ver.split(".")[:2])
    if have < MIN_GLIBC:
        return False, f"tritonserver needs glibc >= 2.35; this system has {ver}"
    return True, ""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def server_env() -> dict[str, str]:
    """Environment for the server: its bundled libs, this interpreter's libpython, glibc's
    allocator settings."""
    dist = pytriton_dist()
    libs = [str(dist.parent.parent / "nvidia_pytriton.libs"), sysconfig.get_config_var("LIBDIR")]
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join([p for p in libs if p] +
                                             [p for p in [env.get("LD_LIBRARY_PATH")] if p])
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    # glibc malloc settings for the server and its Python-backend stubs (those the client sets
    # with mallopt): a model's activations come from the heap instead of a fresh mmap faulted in
    # on every forward pass (BENCHMARKS.md, issue 16). A user's own setting wins.
    for key, value in MALLOC_ENV.items():
        env.setdefault(key, value)
    return env


def backend_dir(into: Path) -> Path:
    """<into>/python/: links to the wheel's Python backend plus this Python version's stub."""
    dist = pytriton_dist()
    py = into / "python"
    py.mkdir(parents=True, exist_ok=True)
    for f in (dist / "backends" / "python").iterdir():
        if f.is_file() and not (py / f.name).exists():
            (py / f.name).symlink_to(f)
    ver = f"{sys.version_info[0]}.{sys.version_info[1]}"
    stub = dist / "python_backend_stubs" / ver / "triton_python_backend_stub"
    if not stub.is_file():
        raise DependencyError(f"nvidia-pytriton has no Python-backend stub for Python {ver}; "
                              "use Python 3.8-3.13")
    if not (py / stub.name).exists():
        (py / stub.name).symlink_to(stub)
    return into


class LocalTritonServer:
    """A tritonserver subprocess on free loopback ports; a context manager that always stops it.

    `url` (gRPC, host:port), `http_url`; `log_path` holds the server's output."""

    def __init__(self, model_repository: str | Path, host: str = "127.0.0.1",
                 grpc_port: int | None = None, http_port: int | None = None,
                 ready_timeout_s: float = 180.0, extra_args: tuple[str, ...] = ()):
        ok, why = glibc_ok()
        if not ok:
            raise DependencyError(why)
        self.repo = Path(model_repository)
        self.host = host
        self.grpc_port = grpc_port or free_port(host)
        self.http_port = http_port or free_port(host)
        self.ready_timeout_s = ready_timeout_s
        self.extra_args = tuple(extra_args)
        self._work = Path(tempfile.mkdtemp(prefix="skelstream-triton-"))
        self.log_path = self._work / "tritonserver.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    def command(self) -> list[str]:
        return [str(pytriton_dist() / "bin" / "tritonserver"),
                f"--model-repository={self.repo}",
                f"--backend-directory={backend_dir(self._work / 'backends')}",
                f"--grpc-address={self.host}", f"--grpc-port={self.grpc_port}",
                f"--http-address={self.host}", f"--http-port={self.http_port}",
                "--allow-metrics=false", "--exit-timeout-secs=5", *self.extra_args]

    def start(self, wait: bool = True) -> "LocalTritonServer":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), env=server_env(), stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        """Poll the HTTP readiness endpoint until every model loaded; raise with the log tail."""
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EngineError(f"tritonserver exited with code {self.proc.returncode} at start; "
                                  f"its log ends: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        self.stop()
        raise EngineError(f"tritonserver not ready after {self.ready_timeout_s:.0f} s; its log "
                          f"ends: {self.log_tail()}")

    def log_tail(self, n: int = 8) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-n:])

    def kill(self) -> None:
        """SIGKILL the server (a crash, for fault tests); ports are freed when it is reaped."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (Triton unloads models and exits), SIGKILL after `timeout_s`."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._work, ignore_errors=True)

    def __enter__(self) -> "LocalTritonServer":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engines.backends.triton_server",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--model-repository", required=True)
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface)")
    ap.add_argument("--grpc-port", type=int, default=8001)
    ap.add_argument("--http-port", type=int, default=8000)
    a = ap.parse_args(argv)
    srv = LocalTritonServer(a.model_repository, a.host, a.grpc_port, a.http_port)
    try:
        srv.start()
        print(f"tritonserver ready: grpc {srv.url} http {srv.http_url} (log {srv.log_path})",
              file=sys.stderr)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except (DependencyError, EngineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        srv.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
