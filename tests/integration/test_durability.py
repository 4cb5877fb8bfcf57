"""The durable journal against a real evbusd: acknowledged events survive
kill -9, a destination that is down builds its backlog on disk (memory
stays bounded) and gets it in order, a torn or corrupt journal tail is
cut off and reported, a failing fdatasync is never acknowledged, retried
ids are not delivered twice, retention limits are counted, and dead
letters are listed and replayed with evbusctl.

EVBTEST_SCALE (default 1) scales the event counts (the sanitizer pass
runs with less)."""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time

import msgpack
import zmq

import evbtest
from evbtest import envelope, ids_in, wait_for

SCALE = float(os.environ.get("EVBTEST_SCALE", "1"))
# built with AddressSanitizer: resident memory is shadow memory and
# quarantine, so memory bounds are not checked (make check sets this)
SANITIZERS = os.environ.get("EVBTEST_SANITIZERS") == "1"
GATE_SO = os.path.join(evbtest.TEST_PLUGIN_DIR, "plugin_gate.so")
EVBUSCTL = os.path.join(evbtest.BUILDDIR, "tools", "evbusctl")


def scaled(n, least=100):
    return max(least, int(n * SCALE))


def gate_instance(b, name="gated", extra=""):
    return ('{ name = "%s"; plugin = "%s"; %s '
            'options = { out = "%s/%s.jsonl"; gate = "%s/%s.gate"; }; }'
            % (name, GATE_SO, extra, b.dir, name, b.dir, name))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fiu_environment(fiu_run):
    """The environment `fiu-run -x` would run evbusd in (its preloaded
    libraries, the control FIFO), taken from its dry run. A sanitizer
    build's AddressSanitizer runtime must come first in LD_PRELOAD, before
    libfiu's (fiu-run would put it last, and the broker crash at start)."""
    dry = subprocess.run([fiu_run, "-x", "-n", "true"], capture_output=True,
                         text=True, check=True).stdout
    env = dict(re.findall(r'^(\w+)="(.*)" \\$', dry, re.M))
    if "LD_PRELOAD" not in env:
        raise AssertionError("fiu-run -n printed no LD_PRELOAD:\n" + dry)
    ldd = subprocess.run(["ldd", evbtest.EVBUSD], capture_output=True, text=True).stdout
    asan = re.search(r"^\s*libasan\.so\S* => (\S+)", ldd, re.M)
    if asan:
        env["LD_PRELOAD"] = asan.group(1) + " " + env["LD_PRELOAD"]
    return env


class AckPublisher:
    """Acknowledged publishing with a window of unacknowledged events;
    anything not acknowledged within `timeout` s is sent again with the
    same id (so the broker's duplicate suppression is exercised)."""

    def __init__(self, broker, window=500, timeout=1.0):
        self.b = broker
        self.window = window
        self.timeout = timeout
        self.sock = broker.dealer()
        self.sock.setsockopt(zmq.SNDHWM, 100000)
        self.pending = {}  # id -> time sent
        self.acked = set()

    def frames(self, id_):
        return [b"task.completed", envelope("task.completed", id=id_, data={"n": id_})]

    def run(self, ids, until=None):
        queue = list(ids)
        while queue or self.pending:
            now = time.monotonic()
            while queue and len(self.pending) < self.window:
                id_ = queue.pop()
                self.sock.send_multipart(self.frames(id_))
                self.pending[id_] = now
            if self.sock.poll(50):
                while True:
                    try:
                        reply = self.sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    status, id_ = reply[0], reply[1].decode()
                    if status == b"ACCEPTED":
                        self.acked.add(id_)
                        self.pending.pop(id_, None)
            for id_, sent in list(self.pending.items()):
                if time.monotonic() - sent > self.timeout:
                    self.sock.send_multipart(self.frames(id_))
                    self.pending[id_] = time.monotonic()
            if until and until():
                return


class DurabilityTest(evbtest.TestCase):
    def test_every_acknowledged_event_survives_repeated_kill_9(self):
        n = scaled(100000, 2000)
        kills_wanted = 20
        b = self.make_broker(instances=lambda b: b.file_instance("all", ["**"]))
        b.start()
        pub = AckPublisher(b, window=500, timeout=1.0)
        ids = ["k-%06d" % i for i in range(n)]
        kills = [0]
        stop = threading.Event()

        def killer():
            rnd = random.Random(1)
            while not stop.is_set() and kills[0] < kills_wanted:
                time.sleep(rnd.uniform(0.05, 0.4))
                if stop.is_set():
                    break
                b.proc.kill()  # SIGKILL: no drain, no cursor save
                b.proc.wait()
                b.proc = None
                kills[0] += 1
                b.start()

        t = threading.Thread(target=killer)
        t.start()
        try:
            pub.run(ids)
            # keep killing until the count is reached, publishing nothing
            while kills[0] < kills_wanted and t.is_alive():
                time.sleep(0.05)
        finally:
            stop.set()
            t.join()
        self.assertGreaterEqual(kills[0], kills_wanted)
        self.assertEqual(len(pub.acked), n)
        # let the restarted broker deliver whatever it resumed with
        wait_for(lambda: pub.acked <= set(ids_in(b.path("all.jsonl"), [])), timeout=60,
                 what="every acknowledged id in the file")
        self.assertEqual(b.stop(), 0)
        torn = []
        written = ids_in(b.path("all.jsonl"), torn)
        missing = pub.acked - set(written)
        self.assertEqual(missing, set())
        # at most one cut-short line per kill, each on a line of its own
        self.assertLessEqual(len(torn), kills[0])
        if torn:
            self.assertIn("partial line", b.log())
        dups = len(written) - len(set(written))
        print("\n  %d events, %d kills: %d acknowledged, %d written, %d duplicates "
              "(%.2f%%), %d lines cut short by a kill"
              % (n, kills[0], len(pub.acked), len(written), dups,
                 100.0 * dups / max(1, len(written)), len(torn)))

    def test_a_destination_that_is_down_gets_its_backlog_in_order_and_memory_stays_bounded(self):
        n = scaled(1000000, 5000)
        # The destination is the real file plugin writing to a disk that is
        # full: its path is a symlink to /dev/full, so every write fails
        # with ENOSPC and every delivery is retried. Recovery: the link is
        # pointed at a real file and the broker gets SIGHUP (as after
        # logrotate or a remount), and the plugin reopens it.
        # Memory held in the broker is bounded by configuration, not by the
        # backlog: queue_size events in the window, dedupe_max_ids ids (32
        # bytes each), and the journal not yet synced.
        b = self.make_broker(instances=lambda b: (
            '{ name = "gated"; plugin = "file"; queue_size = 1000; '
            'retry = { initial_delay = "50ms"; max_delay = "100ms"; '
            'max_attempts = 100000; max_age = "0"; }; '
            'options = { path = "%s/gated.link"; fsync = "never"; rotate_size = 0; }; }'
            % b.dir), journal="dedupe_max_ids = 100000;")
        out = b.path("gated.jsonl")
        os.symlink("/dev/full", b.path("gated.link"))  # the disk is full
        b.start()
        base_rss = rss_kib(b.proc.pid)
        pub = b.publisher()
        pub.setsockopt(zmq.XPUB_NODROP, 1)  # block instead of dropping
        t0 = time.monotonic()
        quarter_rss = 0
        for i in range(n):
            pub.send_multipart([b"task.completed", msgpack.packb(
                {"type": "task.completed", "source": "t", "id": "o-%07d" % i,
                 "data": {"i": i, "pad": "x" * 150}})])
            if i == n // 4:
                # measured once synced (journal.sync_interval): the unsynced
                # tail (up to 32,768 records and what arrives during their
                # sync) comes and goes with the sync's phase
                quarter = wait_for(
                    lambda: self._status(b, lambda s: s["journal"]["durable_seq"] > n // 4),
                    timeout=120, what="a quarter journaled")
                quarter_rss = rss_kib(b.proc.pid)
                quarter_heap = quarter["memory"]["heap_in_use"]
        last = "o-%07d" % (n - 1)
        status = wait_for(lambda: self._status(b, lambda s: s["journal"]["durable_seq"] >= n),
                          timeout=120, what="every event journaled")
        peak = rss_kib(b.proc.pid)
        heap = status["memory"]["heap_in_use"]
        journal_bytes = status["journal"]["bytes"]
        inst = status["instances"][0]
        self.assertFalse(inst["live"])
        self.assertGreaterEqual(inst["backlog"], n - 1000)
        self.assertFalse(os.path.exists(out))
        self.assertIn("No space left on device", b.log())
        # the backlog is on disk, not in memory
        print("\n  %d events queued behind a dead destination: heap in use %d MiB "
              "(%d MiB with a quarter queued), RSS %d MiB (%d at start, %d with a "
              "quarter), journal %d MiB, publish %.1f s"
              % (n, heap >> 20, quarter_heap >> 20, peak // 1024, base_rss // 1024,
                 quarter_rss // 1024, journal_bytes >> 20, time.monotonic() - t0))
        if n >= 100000 and not SANITIZERS:
            # 4x the backlog, not 4x the memory: what the broker holds is
            # bounded by its configuration (ingress.rcvhwm, queue_size,
            # dedupe_max_ids, the journal's unsynced tail), not the backlog
            self.assertLess(heap - quarter_heap, 16 << 20)
            self.assertLess(heap, 96 << 20)
            self.assertLess(peak - base_rss, 192 * 1024)
            self.assertGreater(journal_bytes, n * 150)
        # the destination recovers: everything, in order of acceptance
        os.unlink(b.path("gated.link"))
        os.symlink(out, b.path("gated.link"))
        b.send_signal(signal.SIGHUP)
        wait_for(lambda: self._last_line_has(out, last),
                 timeout=600, what="the whole backlog delivered")
        got = ids_in(out)
        self.assertEqual(got, ["o-%07d" % i for i in range(n)])
        self.assertEqual(b.stop(), 0)
        pub.close()

    @staticmethod
    def _last_line_has(path, needle):
        try:
            with open(path, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - 4096))
                return needle.encode() in f.read()
        except FileNotFoundError:
            return False

    def _status(self, b, pred=None):
        r = subprocess.run([EVBUSCTL, "--endpoint", b.control, "status"],
                           capture_output=True, timeout=30)
        if r.returncode != 0:
            return None
        s = json.loads(r.stdout)
        return s if pred is None or pred(s) else None

    def test_every_acknowledgement_comes_from_a_commit_without_the_idle_timer(self):
        # sync_interval = 0: nothing but waiting acknowledgements triggers a
        # sync, so a wake-up the commit thread misses stalls a publisher
        # for good instead of for a second. A small window makes the main
        # thread report waiting acks while a sync is running, and again
        # right after it.
        for journal in ('commit_interval = "0"; sync_interval = "0";',
                        'commit_interval = "2ms"; commit_batch = 4; sync_interval = "0";'):
            with self.subTest(journal=journal):
                b = self.make_broker(journal=journal).start()
                d = b.dealer()
                n, window, sent, got = scaled(3000), 8, 0, 0
                while got < n:
                    while sent < n and sent - got < window:
                        d.send_multipart([b"task.completed",
                                          envelope("task.completed", id="w%05d" % sent)])
                        sent += 1
                    self.assertTrue(d.poll(10000), "no reply for w%05d within 10 s (%d of %d "
                                    "acknowledged)" % (got, got, n))
                    self.assertEqual(d.recv_multipart(), [b"ACCEPTED", b"w%05d" % got])
                    got += 1
                d.close()
                wait_for(lambda: len(b.output()) >= n, what="every event in the output")
                self.assertEqual(b.stop(), 0)

    def test_fire_and_forget_events_are_synced_within_sync_interval(self):
        # no acknowledgement asks for a sync: the timer alone must make
        # them durable, each time a quiet journal gets new events
        b = self.make_broker(journal='sync_interval = "200ms";').start()
        pub = b.publisher()
        for burst in range(3):
            for i in range(10):
                pub.send_multipart([b"task.completed",
                                    envelope("task.completed", id="f%d-%d" % (burst, i))])
            want = 10 * (burst + 1)
            st = wait_for(lambda: self._status(b, lambda s: s["journal"]["durable_seq"] >= want),
                          timeout=5, what="burst %d synced by the timer" % burst)
            self.assertEqual(st["journal"]["written_seq"], want)
            time.sleep(0.5)  # the commit thread goes idle again
        pub.close()
        self.assertEqual(b.stop(), 0)

    def test_a_plugin_that_logs_every_failure_is_rate_limited(self):
        # the file plugin logs each failed write; on a full disk with a
        # fast retry that is dozens of lines a second, for as long as the
        # outage lasts
        b = self.make_broker(instances=lambda b: (
            '{ name = "full"; plugin = "file"; '
            'retry = { initial_delay = "1ms"; max_delay = "2ms"; max_attempts = 1000000; '
            'max_age = "0"; }; options = { path = "%s/full.link"; }; }' % b.dir))
        os.symlink("/dev/full", b.path("full.link"))
        b.start()
        t0 = time.monotonic()
        pub = b.publisher()
        for i in range(20):
            pub.send_multipart([b"task.completed", envelope("task.completed", id="d%d" % i)])
        st = wait_for(lambda: self._status(b, lambda s: s["instances"][0]["retried"] >= 3000),
                      timeout=60, what="3,000 failed attempts")
        elapsed = time.monotonic() - t0
        log = b.log()
        plugin_lines = log.count("events will be retried") + log.count("event will be retried")
        print("\n  %d failed attempts in %.1f s, %d plugin log lines"
              % (st["instances"][0]["retried"], elapsed, plugin_lines))
        self.assertGreater(plugin_lines, 0)
        # at most 100 lines per 10 s per instance (plus the window the
        # status query may have started)
        self.assertLessEqual(plugin_lines, 100 * (1 + int(elapsed // 10) + 1))
        pub.close()
        self.assertEqual(b.stop(), 0)

    def test_an_idle_restart_keeps_the_cursor_and_redelivers_nothing(self):
        b = self.make_broker().start()
        for i in range(20):
            self.assertEqual(b.ack_publish([b"task.completed",
                                            envelope("task.completed", id="c%02d" % i)])[0],
                             "ACCEPTED")
        wait_for(lambda: len(b.output()) == 20, what="20 events delivered")
        self.assertEqual(b.stop(), 0)
        cursor = b.path("journal/cursors/all.cursor")
        self.assertEqual(evbtest.read_cursor(cursor), 20)
        # up and idle for several cursor-save periods, then killed: the
        # cursor must still say 20, so the next start redelivers nothing
        b.start()
        time.sleep(0.5)
        b.proc.kill()
        b.proc.wait()
        b.proc = None
        self.assertEqual(evbtest.read_cursor(cursor), 20)
        b.start()
        self.assertEqual(b.ack_publish([b"task.completed", envelope("task.completed", id="c20")])[0],
                         "ACCEPTED")
        wait_for(lambda: len(b.output()) >= 21, what="the new event")
        self.assertEqual(b.stop(), 0)
        self.assertEqual([l["id"] for l in b.output()], ["c%02d" % i for i in range(21)])

    def test_undelivered_events_stay_in_the_journal_across_a_restart(self):
        b = self.make_broker(instances=lambda b: gate_instance(
            b, extra='retry = { initial_delay = "20ms"; max_delay = "50ms"; '
                     'max_attempts = 100000; };'))
        open(b.path("gated.gate"), "w").close()
        b.start()
        for i in range(50):
            self.assertEqual(b.ack_publish([b"task.failed", envelope("task.failed", id="r%02d" % i)])[0],
                             "ACCEPTED")
        self.assertEqual(b.stop(), 0)
        self.assertEqual(b.dead_letters("gated"), [])  # not dead-lettered
        os.unlink(b.path("gated.gate"))
        b.start()
        wait_for(lambda: len(ids_in(b.path("gated.jsonl"))) >= 50, what="the backlog after restart")
        self.assertEqual(ids_in(b.path("gated.jsonl")), ["r%02d" % i for i in range(50)])
        self.assertIn("resuming from the journal", b.log())

    def test_a_retried_id_is_accepted_again_but_delivered_once_even_after_restart(self):
        b = self.make_broker().start()
        for _ in range(3):
            self.assertEqual(b.ack_publish([b"task.completed",
                                            envelope("task.completed", id="same-1")]),
                             ["ACCEPTED", "same-1"])
        wait_for(lambda: b.output(), what="the event")
        self.assertEqual(b.stop(), 0)
        b.start()
        self.assertEqual(b.ack_publish([b"task.completed", envelope("task.completed", id="same-1")]),
                         ["ACCEPTED", "same-1"])
        self.assertEqual(b.ack_publish([b"task.completed", envelope("task.completed", id="other")])[0],
                         "ACCEPTED")
        wait_for(lambda: len(b.output()) >= 2, what="the second id")
        self.assertEqual(b.stop(), 0)
        self.assertEqual([l["id"] for l in b.output()], ["same-1", "other"])
        self.assertIn("duplicate index: 1 ids", b.log())

    def _journal_segments(self, b):
        d = b.path("journal")
        return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".evj"))

    def test_a_torn_tail_is_cut_off_and_reported_and_the_broker_serves(self):
        b = self.make_broker().start()
        for i in range(20):
            b.ack_publish([b"task.completed", envelope("task.completed", id="t%02d" % i)])
        wait_for(lambda: len(b.output()) == 20, what="20 events written")
        b.proc.kill()  # no clean close
        b.proc.wait()
        b.proc = None
        seg = self._journal_segments(b)[-1]
        size = os.path.getsize(seg)
        with open(seg, "r+b") as f:
            f.truncate(size - 7)  # a torn last record
        b.start()
        log = b.log()
        self.assertRegex(log, r"journal .*recovered: \d+ bytes? of a torn or corrupt tail cut off")
        self.assertEqual(b.ack_publish([b"task.completed", envelope("task.completed", id="after")]),
                         ["ACCEPTED", "after"])
        wait_for(lambda: "after" in [l["id"] for l in b.output()], what="a new event")
        self.assertEqual(b.stop(), 0)

    def test_a_bit_flip_in_the_tail_is_detected_and_reported(self):
        b = self.make_broker().start()
        for i in range(20):
            b.ack_publish([b"task.completed", envelope("task.completed", id="f%02d" % i)])
        wait_for(lambda: len(b.output()) == 20, what="20 events written")
        self.assertEqual(b.stop(), 0)
        seg = self._journal_segments(b)[-1]
        with open(seg, "r+b") as f:
            f.seek(-20, 2)
            byte = f.read(1)
            f.seek(-20, 2)
            f.write(bytes([byte[0] ^ 0x10]))
        b.start()
        self.assertRegex(b.log(), r"journal .*recovered:.*cut off")
        self.assertEqual(b.ack_publish([b"task.completed", envelope("task.completed", id="ok")]),
                         ["ACCEPTED", "ok"])
        self.assertEqual(b.stop(), 0)

    def test_a_failing_fdatasync_is_never_acknowledged(self):
        fiu_run, fiu_ctrl = shutil.which("fiu-run"), shutil.which("fiu-ctrl")
        if not fiu_run or not fiu_ctrl:
            self.skipTest("fiu-run/fiu-ctrl (Debian fiu-utils) not installed")
        b = self.make_broker()
        b.env.update(fiu_environment(fiu_run))
        b.start()
        self.assertEqual(b.ack_publish([b"task.completed", envelope("task.completed", id="before")]),
                         ["ACCEPTED", "before"])
        ctl = lambda *a: subprocess.run([fiu_ctrl] + list(a) + [str(b.proc.pid)],
                                        capture_output=True, timeout=10)
        self.assertEqual(ctl("-c", "enable name=posix/io/sync/fdatasync,failnum=1").returncode, 0)
        replies = [b.ack_publish([b"task.completed", envelope("task.completed", id="during-%d" % i)])
                   for i in range(5)]
        for r in replies:
            self.assertEqual(r[0], "REJECTED", r)
            self.assertEqual(r[2], "unavailable", r)
            self.assertIn("journal", r[3])
        self.assertEqual(ctl("-c", "disable name=posix/io/sync/fdatasync").returncode, 0)
        # repaired within a second or two, then accepting again
        reply = wait_for(lambda: (lambda r: r if r[0] == "ACCEPTED" else None)(
            b.ack_publish([b"task.completed", envelope("task.completed", id="after")])),
            timeout=15, interval=0.3, what="acceptance after the repair")
        self.assertEqual(reply, ["ACCEPTED", "after"])
        self.assertIn("journal repaired", b.log())
        self.assertEqual(b.stop(), 0)

    def test_retention_deletes_consumed_segments_and_counts_forced_deletions(self):
        b = self.make_broker(
            instances=lambda b: ",\n".join([b.file_instance("fast", ["**"]),
                                            gate_instance(b, extra='queue_size = 100;')]),
            journal='segment_size = "64K"; max_size = "256K";')
        open(b.path("gated.gate"), "w").close()
        b.start()
        d = b.dealer()
        n = 3000
        for i in range(n):
            d.send_multipart([b"task.completed", envelope("task.completed", id="z%05d" % i,
                                                          data={"pad": "y" * 200})])
        got = 0
        while got < n and d.poll(10000):
            d.recv_multipart()
            got += 1
        self.assertEqual(got, n)
        wait_for(lambda: len(b.output("fast")) == n, what="the fast instance")
        # size limit: old segments go although "gated" has not read them
        wait_for(lambda: "before this instance read them" in b.log(), timeout=15,
                 what="the forced deletion logged")
        size = sum(os.path.getsize(p) for p in self._journal_segments(b))
        self.assertLess(size, 512 * 1024)
        os.unlink(b.path("gated.gate"))
        status = wait_for(lambda: self._status(b, lambda s: s["instances"][1]["lost"] > 0),
                          timeout=15, what="the lost count")
        self.assertGreater(status["instances"][1]["lost"], 0)
        self.assertEqual(b.stop(), 0)

    def test_dead_letters_are_listed_and_replayed_with_evbusctl(self):
        b = self.make_broker(instances=lambda b: gate_instance(
            b, extra='retry = { max_attempts = 1; };'))
        open(b.path("gated.gate"), "w").close()
        b.start()
        for i, t in enumerate(["task.failed", "task.failed", "agent.stuck", "task.completed"]):
            b.ack_publish([t.encode(), envelope(t, id="d%d" % i)])
        wait_for(lambda: len(b.dead_letters("gated")) == 4, what="4 dead letters")
        ctl = lambda *a: subprocess.run([EVBUSCTL, "--endpoint", b.control] + list(a),
                                        capture_output=True, timeout=30)
        r = ctl("dead-letters", "gated")
        self.assertEqual(r.returncode, 0, r.stderr)
        listed = json.loads(r.stdout)
        self.assertEqual(listed["total"], 4)
        self.assertEqual([x["event"]["id"] for x in listed["dead_letters"]], ["d0", "d1", "d2", "d3"])
        self.assertIn("gave up after 1 attempts", listed["dead_letters"][0]["reason"])
        os.unlink(b.path("gated.gate"))  # the destination is back
        r = ctl("replay", "gated", "id=d2")
        self.assertEqual(json.loads(r.stdout)["replayed"], 1)
        r = ctl("replay", "gated", "type=task.*")
        self.assertEqual(json.loads(r.stdout)["replayed"], 3)
        self.assertEqual(json.loads(r.stdout)["remaining"], 0)
        wait_for(lambda: len(ids_in(b.path("gated.jsonl"))) == 4, what="the replays delivered")
        self.assertEqual(sorted(ids_in(b.path("gated.jsonl"))), ["d0", "d1", "d2", "d3"])
        r = ctl("replay", "nosuch", "all")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no instance", r.stderr.decode())
        status = json.loads(ctl("status").stdout)
        self.assertEqual(status["instances"][0]["delivered"], 4)
        self.assertTrue(status["journal"]["healthy"])
        self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    evbtest.main()
