"""evbusd as an operator runs it: --check-config, signals (SIGTERM drains,
SIGHUP reopens), dead letters at shutdown, and refusing a broken start."""

import os
import signal
import subprocess

import evbtest
from evbtest import envelope, wait_for


def run(args, env=None):
    return subprocess.run([evbtest.EVBUSD] + args, capture_output=True, text=True,
                          env=env or dict(os.environ, EVBUS_PLUGIN_PATH=evbtest.PLUGIN_PATH),
                          timeout=30)


class LifecycleTest(evbtest.TestCase):
    def test_version_and_help(self):
        r = run(["--version"])
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"evbusd \d+\.\d+\.\d+ \(plugin ABI 1\.\d+\)")
        r = run(["--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn("--check-config", r.stdout)
        r = run(["--bogus"])
        self.assertEqual(r.returncode, 2)

    def test_check_config_accepts_a_valid_file_and_starts_nothing(self):
        b = self.make_broker()
        r = run(["-c", b.config, "--check-config"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK", r.stdout)
        self.assertIn('instance "all": plugin file', r.stdout)
        self.assertIn('journal.dir = "%s' % b.dir, r.stdout)
        self.assertIn("control.endpoint = ", r.stdout)
        self.assertFalse(os.path.exists(b.path("all.jsonl")))

    def test_check_config_names_file_line_and_setting_of_every_error(self):
        b = self.make_broker(instances=lambda b: (
            '{ name = "a"; plugin = "file"; queue_size = -5;\n'
            '  options = { path = "%s/a.jsonl"; fsync = "sometimes"; }; },\n'
            '{ name = "b"; plugin = "file"; topics = [ "task..x" ];\n'
            '  options = { path = "%s/b.jsonl"; bogus = 1; }; }' % (b.dir, b.dir)))
        r = run(["-c", b.config, "--check-config"])
        self.assertEqual(r.returncode, 1)
        err = r.stderr
        conf = b.config
        self.assertRegex(err, r"%s:\d+: instances\[0\]\.queue_size" % conf)
        self.assertRegex(err, r"%s:\d+: instances\[1\]\.topics" % conf)
        self.assertRegex(err, r"%s:\d+: instances\[1\]\.options\.bogus" % conf)

    def test_check_config_reports_plugin_option_errors(self):
        b = self.make_broker(instances=lambda b: (
            '{ name = "a"; plugin = "file";\n'
            '  options = { path = "%s/a.jsonl"; fsync = "sometimes"; }; }' % b.dir))
        r = run(["-c", b.config, "--check-config"])
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"%s:\d+: instances\[0\]\.options\.fsync" % b.config)

    def test_missing_and_mismatched_plugins_are_refused_with_the_reason(self):
        major2 = os.path.join(evbtest.TEST_PLUGIN_DIR, "plugin_major2.so")
        b = self.make_broker(instances=lambda b: (
            '{ name = "gone"; plugin = "nosuch"; },\n'
            '{ name = "future"; plugin = "%s"; }' % major2))
        r = run(["-c", b.config, "--check-config"])
        self.assertEqual(r.returncode, 1)
        self.assertIn('plugin "nosuch" not found', r.stderr)
        self.assertIn("built for plugin ABI 2.0", r.stderr)
        # and the broker refuses to start the same way
        b.start(wait=False)
        self.assertEqual(b.proc.wait(timeout=10), 1)
        b.proc = None
        self.assertIn("built for plugin ABI 2.0", b.log())

    def test_a_port_in_use_stops_the_start_with_a_clear_error(self):
        a = self.make_broker().start()
        clash = evbtest.Broker()
        self.addCleanup(clash.close)
        with open(clash.config) as f:
            text = f.read().replace(clash.pub, a.pub)
        with open(clash.config, "w") as f:
            f.write(text)
        clash.start(wait=False)
        self.assertEqual(clash.proc.wait(timeout=10), 1)
        clash.proc = None
        self.assertIn("cannot bind ingress.pub to %s" % a.pub, clash.log())

    def test_sigterm_drains_every_accepted_event_and_exits_zero(self):
        b = self.make_broker().start()
        d = b.dealer()
        n = 5000
        for i in range(n):
            d.send_multipart([b"task.completed", envelope("task.completed", id="d-%d" % i)])
        accepted = 0
        while accepted < n and d.poll(10000):
            if d.recv_multipart()[0] == b"ACCEPTED":
                accepted += 1
        self.assertEqual(accepted, n)
        self.assertEqual(b.stop(signal.SIGTERM), 0)
        ids = [l["id"] for l in b.output()]
        self.assertEqual(len(ids), n)
        self.assertEqual(set(ids), {"d-%d" % i for i in range(n)})
        self.assertIn("stopped", b.log())

    def test_sigint_also_stops_cleanly(self):
        b = self.make_broker().start()
        self.assertEqual(b.stop(signal.SIGINT), 0)

    def test_undeliverable_events_stay_in_the_journal_at_shutdown(self):
        # /dev/full fails every write: events wait for retries until the
        # shutdown deadline; they are neither lost nor dead-lettered: the
        # journal keeps them (and the cursor before them) for the next start
        b = self.make_broker(instances=(
            '{ name = "full"; plugin = "file"; '
            'retry = { initial_delay = "50ms"; max_delay = "100ms"; max_attempts = 1000; }; '
            'options = { path = "/dev/full"; fsync = "never"; }; }'))
        with open(b.config) as f:
            text = f.read().replace('shutdown_timeout = "5s"', 'shutdown_timeout = "1s"')
        with open(b.config, "w") as f:
            f.write(text)
        b.start()
        for i in range(5):
            self.assertEqual(b.ack_publish([b"task.failed", envelope("task.failed", id="f%d" % i)])[0],
                             "ACCEPTED")
        wait_for(lambda: "next attempt" in b.log(), what="a retry")
        self.assertEqual(b.stop(), 0)
        self.assertEqual(b.dead_letters("full"), [])
        self.assertIn("stay in the journal for the next start", b.log())
        # nothing done yet
        self.assertEqual(evbtest.read_cursor(b.path("journal/cursors/full.cursor")), 0)

    def test_a_stuck_instance_delays_neither_acks_nor_another_instance(self):
        # "stuck" can never write (/dev/full): its window (queue_size)
        # fills and it falls back to reading the journal; "fast" must still
        # get every event, and every publish must be acknowledged
        b = self.make_broker(instances=lambda b: ",\n".join([
            '{ name = "stuck"; plugin = "file"; queue_size = 500; '
            'retry = { initial_delay = "1s"; max_delay = "1s"; max_attempts = 1000; }; '
            'options = { path = "/dev/full"; }; }',
            b.file_instance("fast", ["**"]),
        ]))
        b.start()
        d = b.dealer()
        n = 20000
        for i in range(n):
            d.send_multipart([b"task.completed", envelope("task.completed", id="s-%d" % i)])
        accepted = 0
        while accepted < n and d.poll(10000):
            if d.recv_multipart()[0] == b"ACCEPTED":
                accepted += 1
        self.assertEqual(accepted, n)
        wait_for(lambda: len(b.output("fast")) == n, timeout=30,
                 what="every event in the fast instance's file")
        self.assertIn("reading the journal from seq", b.log())
        self.assertEqual(b.stop(), 0)
        # nothing is dead-lettered for a full window: the backlog waits on disk
        self.assertEqual([x for x in b.dead_letters("stuck") if "queue full" in x["reason"]], [])

    def test_sighup_reopens_the_file_after_logrotate_moved_it(self):
        b = self.make_broker().start()
        b.ack_publish([b"task.completed", envelope("task.completed", id="before")])
        wait_for(lambda: b.output(), what="first line")
        os.rename(b.path("all.jsonl"), b.path("all.jsonl.1"))
        b.send_signal(signal.SIGHUP)
        wait_for(lambda: os.path.exists(b.path("all.jsonl")), what="the file reopened")
        b.ack_publish([b"task.completed", envelope("task.completed", id="after")])
        wait_for(lambda: b.output(), what="a line in the new file")
        self.assertEqual([l["id"] for l in b.output()], ["after"])
        self.assertEqual([l["id"] for l in evbtest.read_lines(b.path("all.jsonl.1"))], ["before"])


if __name__ == "__main__":
    evbtest.main()
