"""A catalogue of hostile input against a real evbusd, over both ingress
sockets and the control socket. For every case: the reply (REJECTED with
its code on the acknowledged socket, none on the fire-and-forget one, an
ERROR on the control socket), the rejection counter of its ingress and
reason moving by exactly one (read from /metrics, over HTTP), and a valid
event accepted and delivered right after it. At the end: every reason was
logged, the broker's totals add up, and its resident memory stayed
bounded."""

import json
import os

import msgpack
import zmq

import evbtest
from evbtest import envelope, http_get, ids_in, parse_metrics, wait_for

SANITIZERS = os.environ.get("EVBTEST_SANITIZERS") == "1"


def env(**attrs):
    """An envelope with exactly these attributes (no defaults)."""
    return msgpack.packb(attrs, use_bin_type=True)


def raw_map(*pairs):
    """A msgpack map written pair by pair (duplicates and any key allowed)."""
    out = bytes([0x80 | len(pairs)]) if len(pairs) < 16 else \
        b"\xde" + len(pairs).to_bytes(2, "big")
    for k, v in pairs:
        out += msgpack.packb(k, use_bin_type=True) + v
    return out


def deep(n):
    v = None
    for _ in range(n):
        v = [v]
    return v


T = b"task.failed"
TYPE = ("type", msgpack.packb("task.failed"))
MAP_KEY_BOMB = b"\x82\xa4type\xabtask.failed\xa4data" + b"\x81" * 22 + b"\xc0" * 24

# (name, frames, the refusal code)
EVENTS = [
    ("one frame", [T], "bad_frames"),
    ("three frames", [T, envelope("task.failed"), b"x"], "bad_frames"),
    ("five frames", [T, b"a", b"b", b"c", b"d"], "bad_frames"),
    ("never-used byte", [T, b"\xc1"], "malformed"),
    ("truncated", [T, envelope("task.failed")[:-3]], "malformed"),
    ("trailing bytes", [T, envelope("task.failed") + b"\x00"], "malformed"),
    ("count bomb in data", [T, raw_map(TYPE, ("data", b"\xdd\xff\xff\xff\xff"))],
     "malformed"),
    ("4G attributes", [T, b"\xdf\xff\xff\xff\xff"], "bad_attribute"),
    ("an array", [T, msgpack.packb(["task.failed"])], "not_a_map"),
    ("a string", [T, msgpack.packb("task.failed")], "not_a_map"),
    ("nil", [T, b"\xc0"], "not_a_map"),
    ("no type", [T, env(source="x")], "missing_type"),
    ("upper-case type", [b"Task.Failed", env(type="Task.Failed")], "bad_type"),
    ("type frame differs", [T, envelope("task.completed")], "bad_type"),
    ("empty type frame", [b"", envelope("task.failed")], "bad_type"),
    ("300-byte type", [b"t" * 300, env(type="t" * 300)], "bad_type"),
    ("type with a space", [b"task failed", env(type="task failed")], "bad_type"),
    ("subject not UTF-8", [T, raw_map(TYPE, ("subject", b"\xa2\xff\xfe"))], "bad_utf8"),
    ("data string not UTF-8", [T, raw_map(TYPE, ("data", b"\xa1\xc3"))], "bad_utf8"),
    ("data key not UTF-8", [T, raw_map(TYPE, ("data", b"\x81\xa1\xff\x01"))], "bad_utf8"),
    ("a surrogate", [T, raw_map(TYPE, ("data", b"\xa3\xed\xa0\x80"))], "bad_utf8"),
    ("40 arrays deep", [T, envelope("task.failed", data=deep(40))], "too_deep"),
    ("9 maps deep", [T, raw_map(TYPE, ("data", b"\x81\xa1k" * 9 + b"\x01"))], "too_deep"),
    ("70 KB of data", [T, envelope("task.failed", data="x" * 70000)], "too_large"),
    ("a 10 MB id", [T, envelope("task.failed", id="i" * (10 << 20))], "too_large"),
    ("renders past max_rendered_size", [T, envelope("task.failed", data="\x01" * 60000)],
     "too_large"),
    ("time not RFC 3339", [T, envelope("task.failed", time="yesterday")], "bad_attribute"),
    ("time out of range", [T, envelope("task.failed", time="2026-13-40T25:61:00Z")],
     "bad_attribute"),
    ("upper-case name", [T, envelope("task.failed", Bad="x")], "bad_attribute"),
    ("21-letter name", [T, envelope("task.failed", **{"a" * 21: "x"})], "bad_attribute"),
    ("duplicate name", [T, raw_map(TYPE, ("source", b"\xa1a"), ("source", b"\xa1b"))],
     "bad_attribute"),
    ("empty id", [T, envelope("task.failed", id="")], "bad_attribute"),
    ("300-byte id", [T, envelope("task.failed", id="i" * 300)], "bad_attribute"),
    ("specversion 0.3", [T, envelope("task.failed", specversion="0.3")], "bad_attribute"),
    ("empty source", [T, envelope("task.failed", source="")], "bad_attribute"),
    ("subject an integer", [T, envelope("task.failed", subject=5)], "bad_attribute"),
    ("extension a float", [T, envelope("task.failed", cost=1.5)], "bad_attribute"),
    ("extension an array", [T, envelope("task.failed", tags=["a"])], "bad_attribute"),
    ("attribute of 5000 bytes", [T, envelope("task.failed", subject="s" * 5000)],
     "bad_attribute"),
    ("NUL in the id", [T, envelope("task.failed", id="ab\0cd")], "bad_attribute"),
    ("NUL in project", [T, envelope("task.failed", project="alpha\0evil")], "bad_attribute"),
    ("newline in subject", [T, envelope("task.failed", subject="a\nb")], "bad_attribute"),
    ("DEL in source", [T, envelope("task.failed", source="a\x7fb")], "bad_attribute"),
    ("C1 control in agent", [T, envelope("task.failed", agent="a\u0085b")], "bad_attribute"),
    ("129 attributes", [T, env(type="task.failed", **{"x%d" % i: 1 for i in range(128)})],
     "bad_attribute"),
    ("an integer name", [T, raw_map(TYPE, (1, b"\x01"))], "bad_attribute"),
    ("type as bin", [T, raw_map(("type", b"\xc4\x0btask.failed"))], "bad_attribute"),
    ("NaN", [T, raw_map(TYPE, ("data", b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00"))],
     "bad_value"),
    ("infinity", [T, raw_map(TYPE, ("data", b"\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00"))],
     "bad_value"),
    ("an ext", [T, raw_map(TYPE, ("data", b"\xd4\x01\x00"))], "bad_value"),
    ("a map as a map key", [T, raw_map(TYPE, ("data", b"\x81\x81\xa1k\x01\x02"))],
     "bad_value"),
    ("an array as a map key", [T, raw_map(TYPE, ("data", b"\x81\x91\x01\x02"))], "bad_value"),
    ("maps as keys, 22 deep", [T, MAP_KEY_BOMB], "bad_value"),
]

# sent on the fire-and-forget socket: no reply, counted and logged
PUB_EVENTS = ["one frame", "three frames", "never-used byte", "an array", "upper-case type",
              "NUL in the id", "a map as a map key", "70 KB of data", "40 arrays deep",
              "a surrogate"]

# (name, frames, what the error says)
CONTROL = [
    ("empty request", [b""], "unknown command"),
    ("unknown command", [b"shutdown"], "unknown command"),
    ("command not UTF-8", [b"\xc7noe"], "unknown command"),
    ("dead-letters, no instance", [b"dead-letters"], "usage"),
    ("dead-letters, unknown instance", [b"dead-letters", b"nobody"], "nobody"),
    ("dead-letters, limit not a number", [b"dead-letters", b"all", b"abc"], "abc"),
    ("replay, unknown instance", [b"replay", b"nobody", b"all"], "nobody"),
    ("replay, bad selector", [b"replay", b"all", b"x=1"], "x=1"),
    ("drop-cursor, no name", [b"drop-cursor"], "usage"),
    ("drop-cursor, a configured instance", [b"drop-cursor", b"all"], "configured"),
]


class HostileTest(evbtest.TestCase):
    def setUp(self):
        self.mport = evbtest.free_port()
        self.b = self.make_broker(
            ingress='max_message_size = "64K"; max_depth = 8; max_rendered_size = "100K";',
            instances=lambda b: b.file_instance("all", ["**"]) + (
                ',\n{ name = "metrics"; plugin = "metrics"; '
                'options = { listen = "127.0.0.1:%d"; }; }' % self.mport))
        self.b.start()
        self.ok = 0

    def rejected(self):
        """{(ingress, reason): count} from /metrics, summed over types."""
        status, _, body = http_get(self.mport, "/metrics")
        self.assertEqual(status, 200)
        out = {}
        for (name, labels), v in parse_metrics(body).items():
            if name == "evbus_events_rejected_total":
                d = dict(labels)
                key = (d["ingress"], d["reason"])
                out[key] = out.get(key, 0) + v
        return out

    def still_serves(self, d):
        """A valid event is accepted and delivered."""
        self.ok += 1
        id_ = "ok%03d" % self.ok
        self.assertEqual(self.b.ack_publish([T, envelope("task.failed", id=id_)], dealer=d),
                         ["ACCEPTED", id_])
        wait_for(lambda: id_ in ids_in(self.b.path("all.jsonl")), what=id_)

    def rss_mib(self):
        with open("/proc/%d/status" % self.b.proc.pid) as f:
            return int([l for l in f if l.startswith("VmRSS:")][0].split()[1]) / 1024

    def test_every_case_is_refused_counted_and_costs_nothing_else(self):
        self.assertGreaterEqual(len(EVENTS) + len(PUB_EVENTS) + len(CONTROL), 60)
        b = self.b
        d = b.dealer()
        pub = b.publisher()
        ctl = b.ctx.socket(zmq.REQ)
        ctl.setsockopt(zmq.LINGER, 0)
        ctl.setsockopt(zmq.RCVTIMEO, 5000)
        ctl.connect(b.control)
        cases = dict((name, (frames, code)) for name, frames, code in EVENTS)
        for name, frames, code in EVENTS:
            before = self.rejected().get(("ack", code), 0)
            reply = b.ack_publish(frames, dealer=d, timeout_ms=20000)
            self.assertEqual(reply[0], "REJECTED", (name, reply))
            self.assertEqual(reply[2], code, (name, reply))
            self.assertGreater(len(reply[3]), 5, (name, reply))  # a reason in words
            self.assertEqual(self.rejected().get(("ack", code), 0), before + 1, name)
            self.still_serves(d)
        for name in PUB_EVENTS:
            frames, code = cases[name]
            before = self.rejected().get(("pub", code), 0)
            pub.send_multipart(frames)
            wait_for(lambda: self.rejected().get(("pub", code), 0) == before + 1,
                     what="%s counted on ingress.pub" % name)
            self.still_serves(d)
        for name, frames, words in CONTROL:
            ctl.send_multipart(frames)
            status, body = ctl.recv_multipart()
            self.assertEqual(status, b"ERROR", name)
            err = json.loads(body.decode("utf-8"))["error"]
            self.assertIn(words, err, name)
            self.still_serves(d)
        rss = self.rss_mib()
        # everything refused reached no plugin, nothing valid was lost
        self.assertEqual(ids_in(b.path("all.jsonl")),
                         ["ok%03d" % i for i in range(1, self.ok + 1)])
        pub.close()
        ctl.close()
        d.close()
        self.assertEqual(b.stop(), 0)
        # logged at a bounded rate (20 lines per 10 s): the first twenty in
        # order, each with its code and reason
        lines = [l for l in b.log().splitlines() if "ingress ack: rejected" in l]
        self.assertGreaterEqual(len(lines), 20)
        for (name, frames, code), line in zip(EVENTS[:20], lines):
            self.assertIn(": %s: " % code, line, name)
        log = b.log()
        self.assertRegex(log, r"totals: %d accepted, %d rejected"
                         % (self.ok, len(EVENTS) + len(PUB_EVENTS)))
        # a 10 MB frame was read, refused and freed
        if not SANITIZERS:
            self.assertLess(rss, 120, "resident memory %.0f MiB after the catalogue" % rss)
        print("\n  %d events refused on ingress.ack, %d on ingress.pub, %d control requests; "
              "RSS %.0f MiB" % (len(EVENTS), len(PUB_EVENTS), len(CONTROL), rss))


if __name__ == "__main__":
    evbtest.main()
