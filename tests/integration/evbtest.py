"""Shared harness for the integration tests: a real evbusd on loopback,
real ZeroMQ peers (pyzmq), real files.

Run a test file with /usr/bin/python3 (Debian's python3-zmq and
python3-msgpack import there). The build tree comes from $EVBUS_BUILDDIR
(set by `make check`), else the current directory. Each test file ends with
evbtest.main(), which prints one summary line tools/run-tests adds up:
"test_name: N passed, N failed, N skipped".
"""

import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import msgpack
import zmq

BUILDDIR = os.path.abspath(os.environ.get("EVBUS_BUILDDIR", "."))
SRCDIR = os.path.abspath(
    os.environ.get("EVBUS_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
)
EVBUSD = os.path.join(BUILDDIR, "core", "evbusd")
EVBUS_PUB = os.path.join(BUILDDIR, "tools", "evbus-pub")
EVBUS_SUB = os.path.join(BUILDDIR, "tools", "evbus-sub")
PLUGIN_PATH = os.environ.get(
    "EVBUS_PLUGIN_PATH",
    ":".join(os.path.join(BUILDDIR, "plugins", p, ".libs") for p in ("file", "webhook", "slack", "metrics")),
)
TEST_PLUGIN_DIR = os.path.join(BUILDDIR, "tests", "abi", ".libs")
PYTHON = os.environ.get("PYTHON3", "/usr/bin/python3")


_HANDED_OUT = set()


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A TCP port free on 127.0.0.1 now, for evbusd to bind later. Taken
    below the ephemeral range: a port from bind(0) is one that outgoing
    connections (libcurl's, ZeroMQ's, a test client's, in this test or one
    running beside it) also draw from, and one of them can take it before
    evbusd binds it ("Address already in use")."""
    hi = min(32000, _ephemeral_low() - 1)
    for _ in range(500):
        port = random.randint(20000, hi)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Poll predicate() until it is truthy; return its value or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def read_lines(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def ids_in(path, torn=None):
    """The ids of the events in a file plugin's output. A line that is not
    JSON is the fragment of a write cut short by a SIGKILL (the plugin ends
    it with a newline at its next start); with `torn` (a list) they are
    collected there, else they fail the test."""
    ids = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    ids.append(json.loads(line)["id"])
                except ValueError:
                    if torn is None:
                        raise
                    torn.append(line)
    except FileNotFoundError:
        pass
    return ids


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, ((label, value), ...)): float} of every sample of a
    Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        labels = tuple(sorted(
            (k, v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\"))
            for k, v in LABEL.findall(m.group(2) or "")))
        key = (m.group(1), labels)
        assert key not in out, "duplicate series %r" % (key,)
        out[key] = float(m.group(3))
    return out


def http_get(port, path, method="GET", headers=None, timeout=10):
    """(status, {header: value}, body) of one request to 127.0.0.1:port."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), \
            r.read().decode("utf-8")
    finally:
        c.close()


def envelope(type_, **attrs):
    """A msgpack envelope as a publisher would build it."""
    env = {"type": type_, "source": "evbtest"}
    env.update(attrs)
    return msgpack.packb(env, use_bin_type=True)


# ---- the journal's files (docs/durability.md, "On disk"), read and damaged
# by the tests the way an operator or a disk would

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def cursor_line(name, seq):
    """A cursor file's content as evbusd writes it (format 2)."""
    head = "evbus-cursor 2 %s %d " % (name, seq)
    return "%s%08x\n" % (head, crc32c(head.encode()))


def read_cursor(path):
    """The seq in a cursor file of format 2 (checksum checked)."""
    with open(path) as f:
        line = f.read()
    head, _, crc = line.rstrip("\n").rpartition(" ")
    assert line.startswith("evbus-cursor 2 "), line
    assert int(crc, 16) == crc32c((head + " ").encode()), "bad checksum: " + line
    return int(head.split()[3])


def journal_segments(journal_dir):
    return sorted(os.path.join(journal_dir, f) for f in os.listdir(journal_dir)
                  if f.startswith("seg-") and f.endswith(".evj"))


def journal_records(journal_dir):
    """Every record of every segment, in order: dicts with path, off (of the
    record), size (bytes, prefix included), seq, kind and id (the event's,
    None when the envelope has none)."""
    out = []
    for path in journal_segments(journal_dir):
        with open(path, "rb") as f:
            b = f.read()
        off = 32
        while off + 8 <= len(b):
            length = int.from_bytes(b[off:off + 4], "little")
            if length < 24 or off + 8 + length > len(b):
                break
            seq = int.from_bytes(b[off + 8:off + 16], "little")
            kind = int.from_bytes(b[off + 24:off + 26], "little")
            tlen = int.from_bytes(b[off + 26:off + 28], "little")
            data = b[off + 32 + tlen:off + 8 + length]
            try:
                id_ = msgpack.unpackb(data, raw=False).get("id")
            except Exception:
                id_ = None
            out.append({"path": path, "off": off, "size": 8 + length, "seq": seq,
                        "kind": kind, "id": id_})
            off += 8 + length
    return out


def flip_bit(path, offset, bit=0):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ (1 << bit)]))


class Broker:
    """evbusd with a generated config in a private directory.

    instances: libconfig text for the `instances` list body, a function of
    the broker returning it (to use file_instance()), or None for a single
    file instance named "all" on "**" writing <dir>/all.jsonl.
    ingress: extra settings inside the ingress group.
    """

    def __init__(self, instances=None, extra="", env=None, log_level="info", ingress="",
                 journal="", shutdown_timeout="5s"):
        self.dir = tempfile.mkdtemp(prefix="evbtest-")
        self.pub_port, self.ack_port, self.egress_port = free_port(), free_port(), free_port()
        self.pub = "tcp://127.0.0.1:%d" % self.pub_port
        self.ack = "tcp://127.0.0.1:%d" % self.ack_port
        self.egress = "tcp://127.0.0.1:%d" % self.egress_port
        self.control = "tcp://127.0.0.1:%d" % free_port()
        self.wrap = []  # a command to run evbusd under (e.g. fiu-run -x)
        if instances is None:
            instances = self.file_instance("all", ["**"])
        elif callable(instances):
            instances = instances(self)
        self.config = os.path.join(self.dir, "evbus.conf")
        with open(self.config, "w") as f:
            f.write(
                'log_level = "%s";\n'
                'dead_letter_dir = "%s/dead";\n'
                'shutdown_timeout = "%s";\n'
                'ingress = { pub = "%s"; ack = "%s"; %s };\n'
                'egress = { pub = "%s"; };\n'
                'journal = { dir = "%s/journal"; %s };\n'
                'control = { endpoint = "%s"; };\n'
                "%s\n"
                "instances = (\n%s\n);\n"
                % (log_level, self.dir, shutdown_timeout, self.pub, self.ack, ingress,
                   self.egress, self.dir,
                   journal, self.control, extra, instances)
            )
        self.env = dict(os.environ)
        self.env["EVBUS_PLUGIN_PATH"] = PLUGIN_PATH
        if env:
            self.env.update(env)
        self.proc = None
        self.log_path = os.path.join(self.dir, "evbusd.log")
        self.ctx = zmq.Context.instance()

    def file_instance(self, name, topics, filter_=None, options=""):
        topics_s = ", ".join('"%s"' % t for t in topics)
        flt = ""
        if filter_:
            flt = "filter = { %s };" % " ".join(
                '%s = "%s";' % (k, v) for k, v in filter_.items()
            )
        return (
            '{ name = "%s"; plugin = "file"; topics = [ %s ]; %s '
            'options = { path = "%s/%s.jsonl"; fsync = "never"; %s }; }'
            % (name, topics_s, flt, self.dir, name, options)
        )

    def path(self, name):
        return os.path.join(self.dir, name)

    def output(self, name="all"):
        return read_lines(self.path(name + ".jsonl"))

    def dead_letters(self, name):
        return read_lines(os.path.join(self.dir, "dead", name + ".jsonl"))

    def log(self):
        try:
            with open(self.log_path, "r", encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def start(self, wait=True):
        readies = self.log().count("ready:")
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.wrap + [EVBUSD, "-c", self.config],
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        if wait:
            # "ready:" once more than before this start (a restart appends
            # to the same log)
            wait_for(
                lambda: self.log().count("ready:") > readies or self.proc.poll() is not None,
                what="evbusd to be ready",
            )
            if self.proc.poll() is not None:
                raise AssertionError("evbusd exited at start:\n" + self.log())
        return self

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stop the broker; returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("evbusd did not stop within %ss:\n%s" % (timeout, self.log()))
        self.log_file.close()
        self.proc = None
        return code

    def close(self):
        try:
            if self.proc is not None:
                self.stop(signal.SIGKILL)
        finally:
            if os.environ.get("EVBTEST_KEEP"):
                print("kept", self.dir, file=sys.stderr)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # ---- peers

    def publisher(self):
        """A PUB-compatible socket connected to ingress.pub, after the
        broker's subscription has arrived (so nothing sent is lost to the
        slow-joiner effect)."""
        s = self.ctx.socket(zmq.XPUB)
        s.setsockopt(zmq.LINGER, 2000)
        s.setsockopt(zmq.SNDHWM, 0)
        s.connect(self.pub)
        if not s.poll(5000):
            raise AssertionError("no subscription from the broker's SUB socket")
        s.recv()
        return s

    def dealer(self):
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(self.ack)
        return s

    def subscriber(self, prefix=b""):
        s = self.ctx.socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SUBSCRIBE, prefix)
        s.connect(self.egress)
        return s

    def ack_publish(self, frames, timeout_ms=5000, dealer=None):
        """Send frames on a DEALER and return the reply frames (as str)."""
        d = dealer or self.dealer()
        try:
            d.send_multipart(frames)
            if not d.poll(timeout_ms):
                raise AssertionError("no reply from ingress.ack within %d ms" % timeout_ms)
            return [f.decode("utf-8", "replace") for f in d.recv_multipart()]
        finally:
            if dealer is None:
                d.close()

    def run_tool(self, args, input_=None, timeout=30):
        return subprocess.run(
            args,
            input=input_,
            capture_output=True,
            timeout=timeout,
            env=self.env,
        )


class TestCase(unittest.TestCase):
    """A test case whose broker (self.broker) is stopped and removed after
    each test; its log is printed when the test fails."""

    broker = None

    def make_tmpdir(self):
        """A directory removed after the test."""
        d = tempfile.mkdtemp(prefix="evbtest-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def publish_acked(self, b, id_, type_="task.completed", **attrs):
        """Publish one event on ingress.ack and check it is ACCEPTED."""
        reply = b.ack_publish([type_.encode(), envelope(type_, id=id_, **attrs)])
        self.assertEqual(reply, ["ACCEPTED", id_])

    def make_broker(self, **kw):
        self.broker = Broker(**kw)
        self.addCleanup(self._cleanup_broker, self.broker)
        return self.broker

    def _cleanup_broker(self, broker):
        outcome = getattr(self, "_outcome", None)
        failed = False
        if outcome is not None and hasattr(outcome, "errors"):
            failed = any(err for _, err in outcome.errors)
        elif outcome is not None and hasattr(outcome, "result"):
            result = outcome.result
            failed = any(t is self for t, _ in result.failures + result.errors)
        if failed:
            sys.stderr.write("---- evbusd log ----\n" + broker.log() + "\n")
        broker.close()


def main(needs_evbusd=True):
    name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    if needs_evbusd and not os.path.exists(EVBUSD):
        print("%s: evbusd not built at %s" % (name, EVBUSD), file=sys.stderr)
        print("%s: 0 passed, 1 failed" % name)
        sys.exit(1)
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules["__main__"])
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    print("\n%s: %d passed, %d failed, %d skipped" % (name, passed, failed, skipped))
    sys.exit(0 if failed == 0 else 1)
