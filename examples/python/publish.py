#!/usr/bin/python3
"""Publish one event to an evbus broker, using only pyzmq and msgpack.

Written from docs/protocol.md alone; see examples/python/README.md.

    publish.py --type task.completed --source ci/runner-3 \\
               --data '{"task_id": "T-1", "duration_ms": 5120}'
    publish.py --ack --type task.failed --data '{"error": "boom"}'

Exit status (the same as evbus-pub): 0 published (with --ack: accepted),
1 invalid or rejected, 2 usage error, 3 no receipt in time (--ack),
4 not sent (fire-and-forget: no broker subscribed, or high-water mark).
"""
import argparse
import json
import os
import re
import sys
import time
import uuid

import msgpack
import zmq

PUB_ENDPOINT = "tcp://127.0.0.1:7700"
ACK_ENDPOINT = "tcp://127.0.0.1:7701"

# docs/protocol.md 3.1 and 4.1
TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$")
NAME_RE = re.compile(r"^[a-z0-9]{1,20}$")


def uuid7():
    """A UUIDv7 (time-ordered), the id format the protocol recommends."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & (2**48 - 1)) << 80
    value |= 0x7 << 76                       # version 7
    value |= ((rand >> 62) & 0xFFF) << 64    # rand_a, 12 bits
    value |= 0b10 << 62                      # RFC 9562 variant
    value |= rand & (2**62 - 1)              # rand_b, 62 bits
    return str(uuid.UUID(int=value))


def build_event(args):
    """The envelope as a dict. The id is set here, once, so that every
    retry sends the same id (the idempotency key, protocol 4.2)."""
    if not TYPE_RE.match(args.type) or len(args.type.encode()) > 255:
        raise ValueError(f"invalid type {args.type!r}: dot-separated "
                         "lower-case [a-z0-9_-] segments")
    # id first: a rejection can then always name it (protocol 4.2)
    event = {"id": args.id or uuid7(), "type": args.type}
    for name in ("source", "subject", "project", "ticket", "agent"):
        value = getattr(args, name)
        if value is not None:
            event[name] = value
    for item in args.attr:
        name, sep, value = item.partition("=")
        if not sep or not NAME_RE.match(name) or name in ("type", "data"):
            raise ValueError(f"--attr wants NAME=VALUE with NAME "
                             f"[a-z0-9]{{1,20}}, got {item!r}")
        event[name] = value
    if args.data is not None:
        try:
            # floats like NaN are not JSON and the broker refuses them
            event["data"] = json.loads(args.data, parse_constant=_no_nan)
        except ValueError as e:
            raise ValueError(f"--data is not valid JSON: {e}") from None
    return event


def _no_nan(name):
    raise ValueError(f"{name} is not allowed")


def publish_fire_and_forget(endpoint, event, wait_ms=1000):
    """Send [type][envelope] on an XPUB. Returns None when queued, or a
    reason string when the event was not sent.

    XPUB rather than PUB (protocol 5.1, 5.2): the XPUB hands us the
    broker's subscription, so we can wait for it instead of losing the
    first event to the slow-joiner problem (a fixed sleep would be a guess:
    too short on a busy host, wasted time otherwise). And with
    XPUB_NODROP, a full queue raises zmq.Again instead of dropping
    silently."""
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.XPUB_NODROP, 1)
    pub.setsockopt(zmq.SNDHWM, 10000)
    pub.setsockopt(zmq.LINGER, 2000)   # close() waits until it is sent
    pub.connect(endpoint)
    try:
        deadline = time.monotonic() + wait_ms / 1000
        subscribed = False
        while not subscribed:
            left = deadline - time.monotonic()
            if left <= 0 or not pub.poll(int(left * 1000) + 1):
                return (f"no broker subscribed on {endpoint} within "
                        f"{wait_ms} ms (is evbusd running there?)")
            msg = pub.recv()
            subscribed = msg[:1] == b"\x01"  # b"\x01" + prefix ("" here)
        frames = [event["type"].encode(),
                  msgpack.packb(event, use_bin_type=True)]
        try:
            pub.send_multipart(frames, zmq.DONTWAIT)
        except zmq.Again:
            return "high-water mark reached: the event was not sent"
        return None
    finally:
        pub.close()
        ctx.term()


class Rejected(Exception):
    def __init__(self, code, text):
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


def publish_ack(endpoint, event, timeout_ms=5000, retries=2):
    """Send on a DEALER and wait for the broker's receipt. Returns the
    accepted id; raises Rejected, or TimeoutError after 1 + retries
    attempts. Every attempt sends the same bytes, hence the same id."""
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    # a request still queued when we give up is not worth waiting for
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(endpoint)
    frames = [event["type"].encode(), msgpack.packb(event, use_bin_type=True)]
    in_flight = 0
    try:
        for attempt in range(1 + retries):
            if attempt:
                print(f"publish.py: no receipt within {timeout_ms} ms, "
                      f"retrying with the same id ({attempt}/{retries})",
                      file=sys.stderr)
            dealer.send_multipart(frames)
            in_flight += 1
            deadline = time.monotonic() + timeout_ms / 1000
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not dealer.poll(int(left * 1000) + 1):
                    break
                reply = dealer.recv_multipart()
                in_flight -= 1
                status = reply[0]
                rid = reply[1].decode("utf-8", "replace") if len(reply) > 1 else ""
                if status == b"ACCEPTED" and rid == event["id"]:
                    return rid
                if status == b"REJECTED" and (
                        rid == event["id"] or (rid == "" and in_flight == 0)):
                    code = reply[2].decode() if len(reply) > 2 else "unknown"
                    text = reply[3].decode("utf-8", "replace") if len(reply) > 3 else ""
                    raise Rejected(code, text)
                # anything else answers an older request of this socket
        raise TimeoutError(f"no receipt from {endpoint} within {timeout_ms} ms "
                           f"({1 + retries} attempts); the event may or may "
                           f"not have been accepted")
    finally:
        dealer.close()
        ctx.term()


def main():
    p = argparse.ArgumentParser(
        description="Publish one event to an evbus broker (pyzmq + msgpack).",
        epilog="Exit status: 0 ok, 1 invalid or rejected, 2 usage, "
               "3 no receipt (--ack), 4 not sent (fire-and-forget).")
    p.add_argument("--endpoint", help=f"broker endpoint (default {PUB_ENDPOINT},"
                   f" with --ack {ACK_ENDPOINT})")
    p.add_argument("--ack", action="store_true",
                   help="acknowledged mode: wait for the broker's receipt")
    p.add_argument("--type", default="task.completed",
                   help="event type (default task.completed)")
    p.add_argument("--data", help="data as JSON text")
    p.add_argument("--source", default="examples/python")
    p.add_argument("--subject")
    p.add_argument("--project")
    p.add_argument("--ticket")
    p.add_argument("--agent")
    p.add_argument("--attr", action="append", default=[],
                   metavar="NAME=VALUE", help="another string attribute")
    p.add_argument("--id", help="event id (default: a new UUIDv7)")
    p.add_argument("--timeout", type=int, default=5000, metavar="MS",
                   help="--ack: wait this long for each receipt (default 5000)")
    p.add_argument("--retries", type=int, default=2,
                   help="--ack: attempts after a timeout (default 2)")
    args = p.parse_args()   # exits 2 on a usage error

    try:
        event = build_event(args)
    except ValueError as e:
        print(f"publish.py: {e}", file=sys.stderr)
        return 1
    if args.ack:
        endpoint = args.endpoint or ACK_ENDPOINT
        try:
            print(publish_ack(endpoint, event, args.timeout, args.retries))
        except Rejected as e:
            print(f"publish.py: event {event['id']} rejected: {e}",
                  file=sys.stderr)
            return 1
        except TimeoutError as e:
            print(f"publish.py: {e}", file=sys.stderr)
            return 3
        return 0
    why = publish_fire_and_forget(args.endpoint or PUB_ENDPOINT, event)
    if why:
        print(f"publish.py: event {event['id']}: {why}", file=sys.stderr)
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())
