"""CURVE keys for talking to a worker started with ``--curve-secret-key-file``.

The files are the ones ``signal-worker keygen`` writes (see docs/OPERATIONS.md,
"Security"): one 40-character Z85 key per file, lines starting with ``#``
ignored. The bridge needs its own secret key (``NAME.key``, readable by its
owner only, as the worker demands of its own) and the worker's public key
(``worker.pub``); the worker needs the bridge's ``NAME.pub`` in its
``--curve-allowed-clients`` directory.
"""

from __future__ import annotations

import dataclasses
import os
import stat

import zmq


@dataclasses.dataclass(frozen=True)
class CurveKeys:
    """What a CURVE client socket needs (Z85 bytes); ``repr`` never shows the secret key."""

    server_public: bytes
    public: bytes
    secret: bytes

    def __repr__(self) -> str:
        return f"CurveKeys(server_public={self.server_public!r}, public={self.public!r}, secret=<redacted>)"

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_serverkey = self.server_public
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret


class CurveKeyError(ValueError):
    """A key file is missing, unreadable, malformed, or too open."""


def read_key(path: str, kind: str) -> bytes:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            lines = [line.strip() for line in handle if line.strip() and not line.strip().startswith("#")]
    except OSError as error:
        raise CurveKeyError(f"cannot read the {kind} file {path}: {error.strerror}") from error
    if len(lines) != 1 or len(lines[0]) != 40:
        raise CurveKeyError(
            f"{path} is not a {kind} file: expected one 40-character Z85 key (signal-worker keygen writes them)"
        )
    return lines[0].encode("ascii")


def _mode(path: str, kind: str) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError as error:
        raise CurveKeyError(f"cannot read the {kind} file {path}: {error.strerror}") from error


def load(server_public_key_file: str, secret_key_file: str) -> CurveKeys:
    """Reads both files, refusing files others could read or change.

    The secret key file must be readable by its owner only (as the worker
    demands of its own). The worker's public key file is what the bridge
    trusts, as the worker trusts its ``--curve-allowed-clients`` directory:
    whoever can write it can put in a key of their own and talk to the bridge
    as the worker, so it must not be writable by group or others.
    """
    mode = _mode(secret_key_file, "secret key")
    if mode & 0o077:
        raise CurveKeyError(
            f"the secret key file {secret_key_file} has mode {mode:o}: it must be readable by its owner only "
            f"(chmod 600 {secret_key_file})"
        )
    mode = _mode(server_public_key_file, "public key")
    if mode & 0o022:
        raise CurveKeyError(
            f"the worker's public key file {server_public_key_file} has mode {mode:o}: it must not be writable "
            f"by group or others (chmod 644 {server_public_key_file})"
        )
    secret = read_key(secret_key_file, "secret key")
    try:
        public = zmq.curve_public(secret)
    except (zmq.ZMQError, ValueError) as error:
        raise CurveKeyError(f"{secret_key_file}: not a valid CURVE secret key ({error})") from error
    return CurveKeys(server_public=read_key(server_public_key_file, "public key"), public=public, secret=secret)
