"""What the benchmark scripts share: ports, child processes, output files, a
broker started with one file plugin instance, and `make bench`."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_child(proc, timeout):
    """Wait for proc; return (exit code, cpu seconds, max rss KiB)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, ru.ru_utime + ru.ru_stime, ru.ru_maxrss
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("bench: %s did not finish in %ss" % (proc.args[0], timeout))
        time.sleep(0.01)


def count_lines(path):
    n = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                return n
            n += chunk.count(b"\n")


def last_line(path):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 4096))
            tail = f.read()
    except FileNotFoundError:
        return b""
    lines = tail.rstrip(b"\n").split(b"\n")
    return lines[-1] if lines else b""


def wait_for_seq(out, proc, seq, timeout=600):
    """Wait until the file plugin has written the event blast numbered seq
    (the last one: blast sends in order and the instance keeps it)."""
    want = b'"seq":%d,' % seq
    deadline = time.monotonic() + timeout
    while want not in last_line(out):
        if time.monotonic() > deadline or proc.poll() is not None:
            return False
        time.sleep(0.005)
    return True


class Env:
    """The build tree's programs and a scratch directory."""

    def __init__(self, builddir):
        self.builddir = builddir
        self.evbusd = os.path.join(builddir, "core", "evbusd")
        self.blast = os.path.join(builddir, "bench", "blast")
        self.baseline = os.path.join(builddir, "bench", "baseline_pull")
        self.tail = os.path.join(builddir, "bench", "tail_latency")
        self.plugins = os.path.join(builddir, "plugins", "file", ".libs")
        self.tmp = tempfile.mkdtemp(prefix="evbus-bench-")

    def build(self):
        r = subprocess.run(["make", "-s", "-C", self.builddir, "bench"],
                           stdout=subprocess.DEVNULL)
        if r.returncode != 0:
            raise SystemExit("bench: `make bench` failed in %s" % self.builddir)

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def default_builddir():
    return os.environ.get("EVBUS_BUILDDIR", os.path.dirname(HERE))


class Broker:
    """evbusd with one file plugin instance on "**", in its own directory
    (config, journal, output), on free loopback ports."""

    def __init__(self, env, name, fsync="never", journal=""):
        self.dir = d = os.path.join(env.tmp, name)
        os.makedirs(d)
        eps = ["tcp://127.0.0.1:%d" % free_port() for _ in range(3)]
        self.pub, self.ack = eps[0], eps[1]
        conf = os.path.join(d, "evbus.conf")
        self.out = os.path.join(d, "events.jsonl")
        with open(conf, "w") as f:
            f.write(
                'log_level = "warn";\n'
                'dead_letter_dir = "%s/dead";\n'
                'ingress = { pub = "%s"; ack = "%s"; };\n'
                'egress = { pub = "%s"; };\n'
                'journal = { dir = "%s/journal"; %s };\n'
                'control = { endpoint = ""; };\n'
                'instances = ( { name = "all"; plugin = "file"; topics = [ "**" ];\n'
                '  queue_size = 2000000;\n'
                '  options = { path = "%s"; rotate_size = 0; fsync = "%s"; }; } );\n'
                % (d, eps[0], eps[1], eps[2], d, journal, self.out, fsync))
        self.log = os.path.join(d, "evbusd.log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([env.evbusd, "-c", conf], stderr=log, stdout=log,
                                         env=dict(os.environ, EVBUS_PLUGIN_PATH=env.plugins))
        # ready once the file plugin has created its file and the sockets
        # are bound (they are bound before plugins start)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.out):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("bench: evbusd did not start; see %s" % self.log)
            time.sleep(0.01)

    def stop(self):
        """SIGTERM; (exit code, cpu seconds, max rss KiB)."""
        self.proc.send_signal(signal.SIGTERM)
        return wait_child(self.proc, 60)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)
