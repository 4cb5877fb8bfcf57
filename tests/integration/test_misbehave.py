"""Misbehaving plugins against a real evbusd: a plugin built outside the
build system, against the public header alone (plugins/misbehave.c), that
crashes, aborts, blocks in deliver() or shutdown(), or answers garbage.

What every test checks: the broker names the plugin, the instance and the
event; a crash costs at most crash_limit restarts before the event is
dead-lettered and delivery goes on; a blocked call is reported while it
lasts and never holds the exit past shutdown_timeout; the other instance
gets every event."""

import json
import os
import signal
import subprocess
import tempfile
import time

import evbtest
from evbtest import envelope, ids_in, wait_for

EVBUSCTL = os.path.join(evbtest.BUILDDIR, "tools", "evbusctl")
SANITIZERS = os.environ.get("EVBTEST_SANITIZERS") == "1"
_SO = []


def misbehave_so():
    """misbehave.c, compiled once per run with only include/evbus."""
    if not _SO:
        out = os.path.join(tempfile.mkdtemp(prefix="evbtest-mb-"), "misbehave.so")
        cc = os.environ.get("CC", "cc").split()
        r = subprocess.run(cc + ["-shared", "-fPIC", "-pthread", "-fvisibility=hidden", "-Wall",
                                 "-Werror", "-I", os.path.join(evbtest.SRCDIR, "include"),
                                 "-o", out,
                                 os.path.join(evbtest.SRCDIR, "tests", "integration",
                                              "plugins", "misbehave.c")],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError("cannot build misbehave.so: " + r.stderr)
        _SO.append(out)
    return _SO[0]


def instances(b, retry="", **opts):
    """The misbehaving instance "bad" and a file instance "all" beside it."""
    o = " ".join('%s = %s;' % (k, json.dumps(v)) for k, v in opts.items())
    return ('{ name = "bad"; plugin = "%s"; %s options = { out = "%s/bad.jsonl"; %s }; },\n%s'
            % (misbehave_so(), retry, b.dir, o, b.file_instance("all", ["**"])))


class MisbehaveTest(evbtest.TestCase):
    def broker(self, extra="", shutdown_timeout="5s", retry="", **opts):
        return self.make_broker(instances=lambda b: instances(b, retry, **opts), extra=extra,
                                shutdown_timeout=shutdown_timeout)

    def publish(self, b, ids):
        d = b.dealer()
        for id_ in ids:
            self.assertEqual(
                b.ack_publish([b"task.done", envelope("task.done", id=id_)], dealer=d),
                ["ACCEPTED", id_])
        d.close()

    def status(self, b, name):
        out = subprocess.run([EVBUSCTL, "-e", b.control, "status"], capture_output=True,
                             text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        return [i for i in json.loads(out.stdout)["instances"] if i["name"] == name][0]

    def assert_died_of(self, b, sig, timeout=15):
        """The broker died of sig (under AddressSanitizer, whose handler
        the crash note hands a SIGSEGV on to, it exits 1 instead)."""
        code = b.proc.wait(timeout=timeout)
        b.log_file.close()
        b.proc = None
        if SANITIZERS and sig == signal.SIGSEGV:
            self.assertNotEqual(code, 0)
        else:
            self.assertEqual(code, -sig)

    def _crash_twice_then_dead_letter(self, how, sig):
        # the acknowledgement of e3 is out before the plugin crashes on it
        b = self.broker(**{how: "e3", "delay": "300ms"})
        b.start()
        self.publish(b, ["e1", "e2", "e3"])
        self.assert_died_of(b, sig)
        # the note names it; delivered again once (crash_limit 2) ...
        b.start(wait=False)
        self.assert_died_of(b, sig)
        log = b.log()
        self.assertRegex(
            log, r"ERROR the previous evbusd died of signal %d \([^)]*\) in plugin misbehave, "
                 r"instance bad, delivering event e3 \(seq 3\); 1 crash in a row on this "
                 r"event: it is delivered again" % sig)
        # ... then dead-lettered, and delivery goes on
        b.start()
        self.assertRegex(b.log(), r"2 crashes in a row on this event: it is dead-lettered "
                                  r"for that instance")
        self.publish(b, ["e4", "e5"])
        # (e1 and e2 may come twice: the crashes saved no cursor)
        wait_for(lambda: set(ids_in(b.path("bad.jsonl"))) == {"e1", "e2", "e4", "e5"},
                 what="the bad instance's other events")
        wait_for(lambda: set(ids_in(b.path("all.jsonl"))) == {"e1", "e2", "e3", "e4", "e5"},
                 what="every event at the other instance")
        dead = b.dead_letters("bad")
        self.assertEqual([d["event"]["id"] for d in dead], ["e3"])
        self.assertRegex(dead[0]["reason"], r"crashed the broker: signal %d .* in plugin "
                                            r"misbehave, 2 times in a row" % sig)
        self.assertEqual(self.status(b, "bad")["dead_lettered"], 1)
        self.assertEqual(b.stop(), 0)
        # an orderly stop ends the count: nothing is said at the next start
        before = len(b.log())
        b.start()
        self.assertEqual(b.stop(), 0)
        self.assertNotIn("previous evbusd died", b.log()[before:])

    def test_a_segfault_in_deliver_is_named_and_dead_lettered_after_two(self):
        self._crash_twice_then_dead_letter("crash_on", signal.SIGSEGV)

    def test_an_abort_in_deliver_is_named_and_dead_lettered_after_two(self):
        self._crash_twice_then_dead_letter("abort_on", signal.SIGABRT)

    def test_a_stack_overflow_in_deliver_is_named(self):
        b = self.broker(overflow_on="o2", delay="300ms")
        b.start()
        self.publish(b, ["o1", "o2"])
        self.assert_died_of(b, signal.SIGSEGV)
        b.start(wait=False)
        self.assert_died_of(b, signal.SIGSEGV)
        self.assertRegex(b.log(), r"died of signal 11 \([^)]*\) in plugin misbehave, "
                                  r"instance bad, delivering event o2 \(seq 2\)")

    def test_crash_limit_is_a_setting(self):
        b = self.broker(extra="crash_limit = 1;", crash_on="c2", delay="300ms")
        b.start()
        self.publish(b, ["c1", "c2"])
        self.assert_died_of(b, signal.SIGSEGV)
        b.start()
        self.assertIn("1 crash in a row on this event: it is dead-lettered", b.log())
        self.publish(b, ["c3"])
        wait_for(lambda: set(ids_in(b.path("bad.jsonl"))) == {"c1", "c3"}, what="c3 after c2")
        self.assertEqual(b.stop(), 0)

    def test_a_crash_on_the_plugins_own_thread_is_put_down_to_it(self):
        b = self.broker(crash_thread=True, delay="500ms")
        b.start()
        self.assert_died_of(b, signal.SIGSEGV)
        with open(b.config) as f:
            conf = f.read()
        with open(b.config, "w") as f:
            f.write(conf.replace("crash_thread = true;", ""))
        b.start()
        self.assertRegex(b.log(), r"ERROR the previous evbusd died of signal 11 \([^)]*\) in "
                                  r"the code of plugin misbehave, on a thread of its own")
        self.assertEqual(b.stop(), 0)

    def test_a_blocked_deliver_is_reported_and_cannot_hold_the_exit(self):
        b = self.broker(extra='slow_call = "1s";', shutdown_timeout="1s", block_on="b2")
        b.start()
        self.publish(b, ["b1", "b2", "b3"])
        wait_for(lambda: "has not returned for" in b.log(), timeout=10,
                 what="the slow call to be reported")
        self.assertRegex(b.log(), r"WARN +\[bad\] plugin misbehave: deliver\(\) of event b2 "
                                  r"\(seq 2\) has not returned for \d+ s")
        st = self.status(b, "bad")
        self.assertEqual((st["stuck"], st["slow_calls"]), (1, 1))
        # ingest and the other instance go on
        self.publish(b, ["b4"])
        wait_for(lambda: set(ids_in(b.path("all.jsonl"))) == {"b1", "b2", "b3", "b4"},
                 what="the other instance")
        t0 = time.monotonic()
        code = b.stop(timeout=15)
        took = time.monotonic() - t0
        self.assertEqual(code, 1)
        self.assertLess(took, 4.0)
        log = b.log()
        self.assertRegex(log, r"ERROR +\[bad\] shutdown deadline passed: plugin misbehave is "
                              r"still in deliver\(\) of event b2 \(seq 2\)")
        self.assertIn("every cursor saved, exiting (status 1)", log)
        # the blocked event stayed in the journal: a fixed plugin gets it
        with open(b.config) as f:
            conf = f.read()
        with open(b.config, "w") as f:
            f.write(conf.replace('block_on = "b2";', ""))
        b.start()
        wait_for(lambda: ids_in(b.path("bad.jsonl")) == ["b1", "b2", "b3", "b4"],
                 what="b2 and what followed it, once each")
        self.assertEqual(b.stop(), 0)

    def test_a_blocked_shutdown_cannot_hold_the_exit(self):
        b = self.broker(shutdown_timeout="1s", block_in_shutdown=True)
        b.start()
        self.publish(b, ["s1"])
        wait_for(lambda: ids_in(b.path("bad.jsonl")) == ["s1"], what="s1")
        t0 = time.monotonic()
        code = b.stop(timeout=15)
        self.assertEqual(code, 1)
        self.assertLess(time.monotonic() - t0, 4.0)
        self.assertRegex(b.log(), r"plugin misbehave is still in shutdown\(\) after \d+ s")
        # and nothing is delivered twice
        b.start()
        self.publish(b, ["s2"])
        wait_for(lambda: ids_in(b.path("bad.jsonl")) == ["s1", "s2"], what="s2 once")
        b.stop(timeout=15)

    def test_a_garbage_outcome_is_not_taken_for_success(self):
        # taken for a retry, with the value as the reason
        b = self.broker(garbage_on="g1", retry='retry = { initial_delay = "20ms"; '
                                                 'max_attempts = 3; };')
        b.start()
        self.publish(b, ["g1", "g2"])
        wait_for(lambda: "g2" in ids_in(b.path("bad.jsonl")), what="g2")
        self.assertNotIn("g1", ids_in(b.path("bad.jsonl")))
        self.assertIn("plugin misbehave reported invalid outcome 12345 for event g1; "
                      "treating it as a retry", b.log())
        dead = b.dead_letters("bad")
        self.assertEqual([d["event"]["id"] for d in dead], ["g1"])
        self.assertIn("12345", dead[0]["reason"])
        self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    evbtest.main()
