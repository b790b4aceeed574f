"""Make CURVE key pairs for an encrypted, authenticated publisher: `python -m sinks.curve KEYDIR`.

Writes KEYDIR/server.key (public, give to clients), KEYDIR/server.key_secret (publisher only),
KEYDIR/client.key + client.key_secret (one client; run with --client NAME for more) and copies
each client's public key into KEYDIR/authorized_clients/ (publisher.curve_authorized_dir).
Files are zmq.auth certificates (Z85 text), so keys made by other ZeroMQ tools work as well.
"""
from __future__ import annotations

import argparse
import os
import shutil


def make_keys(keydir: str, clients: tuple[str, ...] = ("client",), server: bool = True) -> dict:
    """Create the key files; returns {name: (public_path, secret_path)}."""
    import zmq.auth

    os.makedirs(os.path.join(keydir, "authorized_clients"), exist_ok=True)
    out = {}
    for name in (("server",) if server else ()) + tuple(clients):
        pub, sec = zmq.auth.create_certificates(keydir, name)
        os.chmod(sec, 0o600)
        out[name] = (pub, sec)
        if name != "server":
            shutil.copy(pub, os.path.join(keydir, "authorized_clients", f"{name}.key"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sinks.curve", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("keydir")
    ap.add_argument("--client", action="append", default=None, help="client name (repeatable)")
    ap.add_argument("--no-server", action="store_true", help="only add client keys")
    a = ap.parse_args(argv)
    made = make_keys(a.keydir, tuple(a.client or ["client"]), server=not a.no_server)
    for name, (pub, sec) in made.items():
        print(f"{name}: public {pub}  secret {sec}")
    print(f"publisher: --set publisher.curve_server_secret_file={a.keydir}/server.key_secret "
          f"--set publisher.curve_authorized_dir={a.keydir}/authorized_clients")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
