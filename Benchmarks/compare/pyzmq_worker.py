#!/usr/bin/env python3
"""A plain Python worker: pyzmq ROUTER, v1 JSON envelope, the reference receiver through the ORM.

What a Django team could write instead of the Swift worker: one process, one
message at a time, one transaction per message, replies like signal-worker
(``{"v":1,"id":..,"status":"ok","result":{"action":..}}``). No dedupe table,
no ``seq`` ordering, no batching. The user is not loaded from the database:
the instance is built from the envelope's pk (as the Swift worker does).

    DJANGO_DATABASE_URL=... pyzmq_worker.py --bind tcp://127.0.0.1:PORT
"""

import argparse
import json
import os
import signal
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "python-bridge" / "example"
sys.path.insert(0, str(EXAMPLE))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exampleproject.settings")
os.environ["ACCOUNTS_RECEIVER"] = "none"

import django  # noqa: E402

django.setup()

import zmq  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.db import DatabaseError, IntegrityError, transaction  # noqa: E402

from accounts.receivers import create_or_update_user_profile  # noqa: E402


def reply(message_id, status, body):
    out = {"v": 1, "id": message_id, "status": status}
    out["result" if status == "ok" else "error"] = body
    return json.dumps(out, separators=(",", ":")).encode()


def handle(payload: bytes) -> bytes:
    try:
        msg = json.loads(payload)
    except ValueError as error:
        return reply(None, "error", {"code": "bad_request", "message": str(error)})
    mid = msg.get("id") if isinstance(msg, dict) else None
    if not isinstance(msg, dict) or msg.get("v") != 1:
        return reply(mid, "error", {"code": "unsupported", "message": "protocol version"})
    if msg.get("signal") != "post_save" or msg.get("sender") != "auth.user":
        return reply(mid, "error", {"code": "unsupported", "message": "no receiver"})
    try:
        pk = msg["instance"]["pk"]
        data = (msg.get("attrs") or {}).get("_profile_data", {})
        created = bool(msg["created"])
    except (KeyError, TypeError) as error:
        return reply(mid, "error", {"code": "bad_request", "message": f"missing {error}"})
    if not isinstance(data, dict):
        return reply(mid, "error", {"code": "bad_request", "message": "_profile_data is not an object"})
    user = User(pk=pk)
    user._state.adding = False
    user._state.db = "default"
    user._profile_data = data
    try:
        with transaction.atomic():
            create_or_update_user_profile(sender=User, instance=user, created=created)
    except IntegrityError as error:
        return reply(mid, "error", {"code": "conflict", "message": str(error)})
    except DatabaseError as error:
        return reply(mid, "error", {"code": "store_unavailable", "message": str(error)})
    except Exception as error:  # noqa: BLE001 - bad values (dates) and the like
        return reply(mid, "error", {"code": "invalid_value", "message": str(error)})
    if created:
        action = "created"
    else:
        action = "updated" if user._state.fields_cache.get("profile") is not None else "skipped"
    return reply(mid, "ok", {"action": action})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", required=True)
    args = parser.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind(args.bind)
    print("ready", flush=True)
    while not stop:
        if not sock.poll(200, zmq.POLLIN):
            continue
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            sock.send_multipart(frames[:-1] + [handle(frames[-1])])
    sock.close(linger=1000)
    ctx.term()


if __name__ == "__main__":
    main()
