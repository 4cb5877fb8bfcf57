"""Operator and disk faults against a real evbusd: two brokers on one
journal, damaged or missing cursor files, bits flipped in old and new
journal segments, a segment deleted, a tail truncated, an instance renamed,
re-subscribed, removed and added back, and SIGKILLs alternating with damage.

The rule every test checks: an acknowledged event that was not itself
damaged is delivered, and what damage took is reported (log and status),
never more and never silently.

EVBTEST_SCALE (default 1) scales the event counts."""

import json
import os
import random
import re
import subprocess
import threading
import time

import zmq

import evbtest
from evbtest import envelope, ids_in, journal_records, wait_for

SCALE = float(os.environ.get("EVBTEST_SCALE", "1"))
GATE_SO = os.path.join(evbtest.TEST_PLUGIN_DIR, "plugin_gate.so")
EVBUSCTL = os.path.join(evbtest.BUILDDIR, "tools", "evbusctl")
FAST_RETRY = 'retry = { initial_delay = "20ms"; max_delay = "50ms"; max_attempts = 1000000; };'


def scaled(n, least=50):
    return max(least, int(n * SCALE))


def gate_instance(b, name, extra=""):
    """A destination that fails while <dir>/<name>.gate exists; writes JSON
    lines to <dir>/<name>.jsonl otherwise."""
    return ('{ name = "%s"; plugin = "%s"; %s %s '
            'options = { out = "%s/%s.jsonl"; gate = "%s/%s.gate"; }; }'
            % (name, GATE_SO, FAST_RETRY, extra, b.dir, name, b.dir, name))


def lost_ranges(log):
    """The seq ranges the broker reported lost to damage (each once: the
    summary line repeats the first)."""
    return sorted({(int(a), int(b)) for a, b in
                   re.findall(r"seq (\d+)\.\.(\d+) \(\d+ records?\) lost", log)})


def reported(seq, ranges):
    return any(a <= seq <= b for a, b in ranges)


class FaultTest(evbtest.TestCase):

    # ---- helpers

    def publish(self, b, ids, type_="task.completed", pad=0):
        """Publish ids acknowledged (a window of 200) and check each is
        ACCEPTED."""
        d = b.dealer()
        data = {"pad": "x" * pad} if pad else {}
        sent = 0
        acked = set()
        window = 200
        while len(acked) < len(ids):
            while sent < len(ids) and sent - len(acked) < window:
                d.send_multipart([type_.encode(), envelope(type_, id=ids[sent], data=data)])
                sent += 1
            if not d.poll(10000):
                raise AssertionError("no reply: %d of %d acknowledged" % (len(acked), len(ids)))
            status, id_ = [f.decode() for f in d.recv_multipart()]
            self.assertEqual(status, "ACCEPTED", id_)
            acked.add(id_)
        d.close()
        return acked

    def status(self, b):
        out = subprocess.run([EVBUSCTL, "-e", b.control, "status"], capture_output=True,
                             text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)

    def instance_status(self, b, name):
        for inst in self.status(b)["instances"]:
            if inst["name"] == name:
                return inst
        raise AssertionError("no instance %s in status" % name)

    def set_config(self, b, old, new):
        with open(b.config) as f:
            text = f.read()
        self.assertIn(old, text)
        with open(b.config, "w") as f:
            f.write(text.replace(old, new))

    def gated_backlog(self, n, name="gated", delivered_first=0, journal="", pad=0):
        """A broker whose gated instance delivered `delivered_first` events,
        then holds a backlog of n more behind its closed gate; stopped.
        Returns (broker, every id)."""
        b = self.make_broker(instances=lambda b: gate_instance(b, name), journal=journal)
        b.start()
        first = ["d%05d" % i for i in range(delivered_first)]
        if first:
            self.publish(b, first, pad=pad)
            wait_for(lambda: len(ids_in(b.path(name + ".jsonl"))) >= len(first),
                     what="the first events delivered")
            time.sleep(0.3)  # a cursor save
        open(b.path(name + ".gate"), "w").close()
        rest = ["b%05d" % i for i in range(n)]
        self.publish(b, rest, pad=pad)
        self.assertEqual(b.stop(), 0)
        return b, first + rest

    # ---- 1. two brokers on one journal directory

    def test_a_second_broker_on_the_same_journal_is_refused_naming_the_pid(self):
        b1 = self.make_broker().start()
        self.publish(b1, ["one-%d" % i for i in range(50)])
        b2 = evbtest.Broker()
        self.addCleanup(b2.close)
        self.set_config(b2, '%s/journal' % b2.dir, '%s/journal' % b1.dir)
        # --check-config takes no lock
        check = subprocess.run([evbtest.EVBUSD, "--check-config", "-c", b2.config],
                               capture_output=True, text=True, env=b2.env, timeout=30)
        self.assertEqual(check.returncode, 0, check.stderr)
        b2.start(wait=False)
        self.assertEqual(b2.proc.wait(timeout=20), 1)
        log = b2.log()
        self.assertIn("%s/journal is in use by another evbusd (pid %d" % (b1.dir, b1.proc.pid), log)
        self.assertNotIn("ready:", log)
        b2.proc = None
        b2.log_file.close()
        # the first one was not disturbed
        self.publish(b1, ["two-%d" % i for i in range(50)])
        wait_for(lambda: len(b1.output()) == 100, what="every event of the first broker")
        self.assertEqual(b1.stop(), 0)
        # once it is gone, the directory is free
        b2.start()
        self.publish(b2, ["three-%d" % i for i in range(10)])
        self.assertEqual(b2.stop(), 0)
        recs = journal_records(b1.path("journal"))
        self.assertEqual(len(recs), 110)
        self.assertEqual([r["seq"] for r in recs], list(range(1, 111)))

    # ---- 2. cursor files

    def test_every_kind_of_cursor_damage_resumes_without_skipping(self):
        n = scaled(300)
        kinds = ["garbage", "empty", "deleted", "deleted with its fallback", "out of range",
                 "another instance's", "format 1 number"]
        for kind in kinds:
            with self.subTest(kind=kind):
                b, ids = self.gated_backlog(n, delivered_first=40)
                cdir = b.path("journal/cursors")
                cursor = os.path.join(cdir, "gated.cursor")
                saved = evbtest.read_cursor(cursor)
                self.assertGreaterEqual(saved, 40)
                if kind == "garbage":
                    with open(cursor, "wb") as f:
                        f.write(os.urandom(37))
                elif kind == "empty":
                    open(cursor, "w").close()
                elif kind == "deleted":
                    os.unlink(cursor)
                elif kind == "deleted with its fallback":
                    os.unlink(cursor)
                    os.unlink(os.path.join(cdir, "gated.prev"))
                elif kind == "out of range":
                    with open(cursor, "w") as f:
                        f.write(evbtest.cursor_line("gated", 10 ** 9))
                elif kind == "another instance's":
                    with open(cursor, "w") as f:
                        f.write(evbtest.cursor_line("other", saved))
                else:
                    with open(cursor, "w") as f:
                        f.write("%d\n" % (n + 40))
                os.unlink(b.path("gated.gate"))
                b.start()
                wait_for(lambda: set(ids) <= set(ids_in(b.path("gated.jsonl"))), timeout=30,
                         what="every acknowledged event after the damage")
                log = b.log()
                self.assertRegex(log, r"ERROR \[gated\] cursor %s .*: resuming after seq \d+" % re.escape(cursor))
                self.assertEqual(self.instance_status(b, "gated")["cursor_recovered"], 1)
                self.assertEqual(b.stop(), 0)
                b.close()

    def test_a_new_instance_starts_at_the_end_or_with_start_at_oldest(self):
        b = self.make_broker(instances=lambda b: b.file_instance("first", ["**"]))
        b.start()
        old = ["old-%d" % i for i in range(30)]
        self.publish(b, old)
        self.assertEqual(b.stop(), 0)
        self.set_config(b, "instances = (\n", "instances = (\n%s,\n%s,\n" % (
            b.file_instance("late", ["**"]),
            b.file_instance("history", ["**"]).replace("plugin =", 'start_at = "oldest"; plugin =')))
        b.start()
        self.publish(b, ["new-1"])
        wait_for(lambda: len(b.output("history")) == 31, what="history from the oldest record")
        wait_for(lambda: len(b.output("late")) == 1, what="the new event in late")
        self.assertEqual([e["id"] for e in b.output("late")], ["new-1"])
        self.assertEqual([e["id"] for e in b.output("history")], old + ["new-1"])
        self.assertEqual(b.stop(), 0)

    # ---- 3. journal segments

    def test_flipped_bits_in_old_and_new_segments_cost_only_those_records(self):
        n = scaled(3000, 600)
        b, ids = self.gated_backlog(n, journal='segment_size = "64K";', pad=100)
        recs = [r for r in journal_records(b.path("journal")) if r["id"]]
        segs = sorted({r["path"] for r in recs})
        self.assertGreater(len(segs), 3)
        rnd = random.Random(int(os.environ.get("EVBTEST_SEED", "7")))
        damaged = []
        # two records in old segments, one in the middle of the newest
        picks = [rnd.choice([r for r in recs if r["path"] == segs[1]]),
                 rnd.choice([r for r in recs if r["path"] == segs[-2]])]
        newest = [r for r in recs if r["path"] == segs[-1]]
        picks.append(newest[len(newest) // 2])
        for r in picks:
            at = r["off"] + rnd.randrange(r["size"])
            evbtest.flip_bit(r["path"], at, rnd.randrange(8))
            damaged.append(r)
        os.unlink(b.path("gated.gate"))
        b.start()
        want = set(ids) - {r["id"] for r in damaged}
        wait_for(lambda: want <= set(ids_in(b.path("gated.jsonl"))), timeout=30,
                 what="every undamaged acknowledged event")
        log = b.log()
        ranges = lost_ranges(log)
        for r in damaged:
            self.assertTrue(reported(r["seq"], ranges), "seq %d not reported: %s" % (r["seq"], ranges))
        self.assertEqual(sum(bb - a + 1 for a, bb in ranges), len(damaged))
        st = self.status(b)
        self.assertEqual(st["journal"]["lost_at_start"], len(damaged))
        wait_for(lambda: self.instance_status(b, "gated")["lost"] == len(damaged),
                 what="the instance counting what it lost")
        # new events get seqs above every intact record: none reused
        self.publish(b, ["after-%d" % i for i in range(20)])
        wait_for(lambda: len(ids_in(b.path("gated.jsonl"))) >= len(want) + 20, what="new events")
        self.assertEqual(b.stop(), 0)
        seqs = [r["seq"] for r in journal_records(b.path("journal"))]
        self.assertEqual(len(seqs), len(set(seqs)))
        self.assertEqual(sorted(set(ids_in(b.path("gated.jsonl")))),
                         sorted(want | {"after-%d" % i for i in range(20)}))

    def test_a_deleted_segment_and_a_truncated_tail_are_reported(self):
        n = scaled(2000, 600)
        b, ids = self.gated_backlog(n, journal='segment_size = "64K";', pad=100)
        recs = journal_records(b.path("journal"))
        segs = sorted({r["path"] for r in recs})
        self.assertGreater(len(segs), 3)
        gone = [r for r in recs if r["path"] == segs[1]]
        os.unlink(segs[1])
        last = recs[-1]
        with open(last["path"], "r+b") as f:  # cut inside the last record
            f.truncate(last["off"] + 20)
        gone.append(last)
        os.unlink(b.path("gated.gate"))
        b.start()
        want = set(ids) - {r["id"] for r in gone}
        wait_for(lambda: want <= set(ids_in(b.path("gated.jsonl"))), timeout=30,
                 what="every undamaged acknowledged event")
        ranges = lost_ranges(b.log())
        for r in gone:
            self.assertTrue(reported(r["seq"], ranges), "seq %d not reported" % r["seq"])
        self.assertIn("no segment holds them", b.log())
        self.assertEqual(b.stop(), 0)

    # ---- 4. config changes

    def test_a_renamed_instance_is_an_orphan_until_rename_from_adopts_it(self):
        n = scaled(500)
        b, ids = self.gated_backlog(n, name="alpha")
        self.set_config(b, 'name = "alpha"', 'name = "beta"')
        b.start()
        log = b.log()
        self.assertIn('instance "alpha" is no longer configured, but its cursor is kept: %d journal '
                      'records after seq 0 unread' % n, log)
        orphans = self.status(b)["orphans"]
        self.assertEqual(orphans, [{"name": "alpha", "cursor": 0, "backlog": n}])
        self.assertEqual(b.stop(), 0)
        # adopted: beta delivers alpha's whole backlog
        self.set_config(b, 'name = "beta";', 'name = "beta"; rename_from = "alpha";')
        b.start()
        self.assertIn('took over the cursor of "alpha"', b.log())
        self.assertEqual(self.status(b)["orphans"], [])
        os.unlink(b.path("alpha.gate"))
        wait_for(lambda: set(ids) <= set(ids_in(b.path("alpha.jsonl"))), what="alpha's backlog")
        self.assertEqual(b.stop(), 0)
        # and the setting is harmless on later starts
        b.start()
        self.assertEqual(self.status(b)["orphans"], [])
        self.assertEqual(b.stop(), 0)

    def test_changing_topics_keeps_the_cursor(self):
        b = self.make_broker(instances=lambda b: gate_instance(b, "g", 'topics = ["task.*"];'))
        open(b.path("g.gate"), "w").close()
        b.start()
        ids = ["t%04d" % i for i in range(scaled(300))]
        self.publish(b, ids)
        self.assertEqual(b.stop(), 0)
        self.set_config(b, 'topics = ["task.*"]', 'topics = ["task.*", "agent.*"]')
        os.unlink(b.path("g.gate"))
        b.start()
        wait_for(lambda: ids_in(b.path("g.jsonl")) == ids, what="the backlog after a topic change")
        self.assertEqual(b.stop(), 0)

    def test_a_removed_instance_keeps_its_records_until_it_is_back_or_dropped(self):
        n = scaled(1500, 500)
        b = self.make_broker(
            instances=lambda b: ",\n".join([b.file_instance("fast", ["**"]), gate_instance(b, "gated")]),
            journal='segment_size = "64K";')
        open(b.path("gated.gate"), "w").close()
        b.start()
        first = ["a%05d" % i for i in range(n)]
        self.publish(b, first, pad=100)
        self.assertEqual(b.stop(), 0)
        gated_conf = gate_instance(b, "gated")
        self.set_config(b, ",\n" + gated_conf, "")
        b.start()
        self.assertIn('instance "gated" is no longer configured', b.log())
        second = ["b%05d" % i for i in range(n)]
        self.publish(b, second, pad=100)
        wait_for(lambda: len(b.output("fast")) == 2 * n, what="fast")
        time.sleep(2.5)  # retention runs every second
        oldest = evbtest.journal_segments(b.path("journal"))[0]
        self.assertTrue(oldest.endswith("seg-00000000000000000001.evj"), oldest)
        self.assertEqual(self.status(b)["orphans"][0]["backlog"], 2 * n)
        self.assertEqual(b.stop(), 0)
        # added back: everything it missed, while absent too
        self.set_config(b, b.file_instance("fast", ["**"]),
                        b.file_instance("fast", ["**"]) + ",\n" + gated_conf)
        os.unlink(b.path("gated.gate"))
        b.start()
        wait_for(lambda: set(first + second) <= set(ids_in(b.path("gated.jsonl"))), timeout=30,
                 what="the whole backlog of the instance that was away")
        self.assertEqual(b.stop(), 0)
        # removed again, then dropped: retention lets go
        self.set_config(b, ",\n" + gated_conf, "")
        b.start()
        self.publish(b, ["c%05d" % i for i in range(n)], pad=100)
        out = subprocess.run([EVBUSCTL, "-e", b.control, "drop-cursor", "fast"],
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 1)
        self.assertIn("is configured", out.stdout + out.stderr)
        out = subprocess.run([EVBUSCTL, "-e", b.control, "drop-cursor", "gated"],
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["dropped"], "gated")
        wait_for(lambda: not evbtest.journal_segments(b.path("journal"))[0].endswith(
            "seg-00000000000000000001.evj"), timeout=10, what="retention to delete old segments")
        self.assertEqual(self.status(b)["orphans"], [])
        self.assertEqual(b.stop(), 0)
        # and it stays dropped: the next start knows nothing of it
        before = len(b.log())
        b.start()
        self.assertEqual(self.status(b)["orphans"], [])
        self.assertEqual(b.stop(), 0)
        self.assertNotIn('instance "gated" is no longer configured', b.log()[before:])

    # ---- 5. a missing journal directory

    def test_a_missing_journal_directory_is_created_and_said(self):
        b = self.make_broker().start()
        self.assertIn("%s/journal did not exist: created it, starting an empty journal" % b.dir,
                      b.log())
        self.assertEqual(b.stop(), 0)
        b.start()
        self.assertEqual(b.log().count("did not exist"), 1)
        self.assertEqual(b.stop(), 0)

    # ---- 6. damage and SIGKILLs, alternating

    def test_damage_and_kill_9_alternate_and_only_damaged_events_go(self):
        rounds = max(4, int(12 * SCALE))
        b = self.make_broker(journal='segment_size = "256K";')
        rnd = random.Random(int(os.environ.get("EVBTEST_SEED", "11")))
        acked, damaged = set(), set()
        next_id = [0]
        for k in range(rounds):
            b.start()
            stop = threading.Event()
            pub = threading.Thread(target=self._publish_until, args=(b, stop, acked, next_id))
            pub.start()
            time.sleep(rnd.uniform(0.3, 1.0))
            b.proc.kill()
            b.proc.wait()
            stop.set()
            pub.join()
            b.proc = None
            b.log_file.close()
            kind = k % 4
            recs = [r for r in journal_records(b.path("journal")) if r["id"]]
            if kind == 0 and recs:  # a bit in any record of any segment
                r = rnd.choice(recs)
                evbtest.flip_bit(r["path"], r["off"] + rnd.randrange(r["size"]), rnd.randrange(8))
                damaged.add(r["id"])
            elif kind == 1:  # the cursor: garbage
                with open(b.path("journal/cursors/all.cursor"), "wb") as f:
                    f.write(b"\x00garbage")
            elif kind == 2:  # the cursor: deleted
                os.unlink(b.path("journal/cursors/all.cursor"))
            elif recs:  # the newest segment cut inside its last record
                r = recs[-1]
                with open(r["path"], "r+b") as f:
                    f.truncate(r["off"] + 16 + rnd.randrange(r["size"] - 16))
                damaged.add(r["id"])
        b.start()
        want = acked - damaged
        wait_for(lambda: want <= set(ids_in(b.path("all.jsonl"), [])), timeout=60,
                 what="every acknowledged, undamaged event")
        self.assertEqual(b.stop(), 0)
        # a kill may cut the file plugin's last write short: at most one
        # fragment per kill, each ended with a newline and logged
        torn = []
        ids_in(b.path("all.jsonl"), torn)
        self.assertLessEqual(len(torn), rounds)
        if torn:
            self.assertIn("partial line", b.log())
        # every damaged record was reported (by seq) when it was found
        ranges = lost_ranges(b.log())
        self.assertGreaterEqual(sum(bb - a + 1 for a, bb in ranges), len(damaged))
        print("\n  %d rounds: %d acknowledged, %d damaged, %d reported lost"
              % (rounds, len(acked), len(damaged), sum(bb - a + 1 for a, bb in ranges)))

    def _publish_until(self, b, stop, acked, next_id):
        d = b.dealer()
        pending = {}
        try:
            while not stop.is_set():
                while len(pending) < 100:
                    id_ = "k%07d" % next_id[0]
                    next_id[0] += 1
                    d.send_multipart([b"task.completed", envelope("task.completed", id=id_)])
                    pending[id_] = True
                if d.poll(50):
                    while True:
                        try:
                            status, id_ = d.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        if status == b"ACCEPTED":
                            acked.add(id_.decode())
                        pending.pop(id_.decode(), None)
        finally:
            d.close()


if __name__ == "__main__":
    evbtest.main()
