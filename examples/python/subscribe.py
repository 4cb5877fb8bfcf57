#!/usr/bin/python3
"""Print the events an evbus broker re-publishes on its egress, one
CloudEvents JSON object per line, using only pyzmq and msgpack.

Written from docs/protocol.md alone (section 9); see README.md.

    subscribe.py                      # everything
    subscribe.py task. agent.stuck    # types starting with these bytes
    subscribe.py --count 1 --timeout 5000 task.

Prefixes are ZeroMQ's byte prefixes of the type: "task." gets
task.completed and task.failed; "" (the default) gets everything.

Exit status: 0 after --count events or on Ctrl-C, 1 when --timeout ran
out first.
"""
import argparse
import base64
import json
import signal
import sys

import msgpack
import zmq

EGRESS_ENDPOINT = "tcp://127.0.0.1:7702"


def to_json(envelope):
    """The CloudEvents JSON form (protocol 4.5): binary data as
    data_base64, everything else as is, in the envelope's order."""
    out = {}
    for name, value in envelope.items():
        if name == "data" and isinstance(value, bytes):
            out["data_base64"] = base64.b64encode(value).decode()
        else:
            out[name] = value
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"),
                      default=_jsonable)


def _jsonable(value):
    # bytes nested inside data: show them as base64 text, as evbus does
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON")


def main():
    p = argparse.ArgumentParser(
        description="Subscribe to an evbus broker's egress stream.")
    p.add_argument("prefixes", nargs="*", default=[""],
                   help='type prefixes to subscribe to (default "": all)')
    p.add_argument("--endpoint", default=EGRESS_ENDPOINT,
                   help=f"egress endpoint (default {EGRESS_ENDPOINT})")
    p.add_argument("--count", type=int, help="exit after N events")
    p.add_argument("--timeout", type=int, metavar="MS",
                   help="exit 1 when MS ms pass without an event")
    args = p.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    for prefix in args.prefixes:
        sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    sub.connect(args.endpoint)
    seen = 0
    try:
        while args.count is None or seen < args.count:
            if not sub.poll(args.timeout if args.timeout is not None else None):
                print(f"subscribe.py: no event within {args.timeout} ms",
                      file=sys.stderr)
                return 1
            frames = sub.recv_multipart()
            if len(frames) != 2:
                continue
            try:
                envelope = msgpack.unpackb(frames[1], raw=False)
            except ValueError:
                continue
            print(to_json(envelope), flush=True)
            seen += 1
    except KeyboardInterrupt:
        pass
    finally:
        sub.close()
        ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
