"""The metrics plugin: a real evbusd serving /metrics, /healthz and /readyz
on loopback, scraped over HTTP after publishing known events over real
ZeroMQ sockets. Every scrape must pass `promtool check metrics` (Debian's
prometheus package), and the counters must be exact."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time

import evbtest
from evbtest import envelope, free_port, wait_for
from evbtest import http_get as get, parse_metrics as parse
import webhooktest

PROMTOOL = os.environ.get("PROMTOOL") or shutil.which("promtool") or "/usr/bin/promtool"

def metrics_instance(port, options="", topics=("**",), name="metrics"):
    return ('{ name = "%s"; plugin = "metrics"; topics = [ %s ];\n'
            '  options = { listen = "127.0.0.1:%d"; %s }; }'
            % (name, ", ".join('"%s"' % t for t in topics), port, options))


class MetricsTest(evbtest.TestCase):
    def scrape(self, port):
        status, headers, body = get(port, "/metrics")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        self.promtool(body)
        return body, parse(body)

    def promtool(self, text):
        self.assertTrue(os.path.exists(PROMTOOL),
                        "promtool not found: install Debian's prometheus package "
                        "(tools/install-deps.sh does)")
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, "promtool check metrics:\n%s%s"
                         % (r.stdout.decode(), r.stderr.decode()))

    def value(self, samples, name, **labels):
        key = (name, tuple(sorted(labels.items())))
        self.assertIn(key, samples, "no series %s%s" % (name, labels))
        return samples[key]

    def delivered(self, port, instance, n):
        def done():
            _, _, body = get(port, "/metrics")
            s = parse(body)
            return s.get(("evbus_instance_delivered_total",
                          (("instance", instance),)), 0) >= n
        wait_for(done, timeout=30, what="%d deliveries to %s" % (n, instance))

    # ------------------------------------------------------------------

    def test_known_events_give_exact_counters_and_promtool_accepts_them(self):
        port = free_port()
        b = self.make_broker(instances=lambda b: b.file_instance("files", ["task.*"]) +
                             ",\n" + metrics_instance(port))
        b.start()
        self.assertIn("serving http://127.0.0.1:%d/metrics" % port, b.log())
        started = time.time()
        self.publish_acked(b, "c1", "task.completed", project="alpha",
                         data={"task_id": "t1", "duration_ms": 1500, "cost": 0.25})
        self.publish_acked(b, "c2", "task.completed", project="alpha",
                         data={"task_id": "t2", "duration_ms": 45000, "cost": 1.5})
        self.publish_acked(b, "c3", "task.completed", project="beta",
                         data={"task_id": "t3", "duration_ms": 200})
        self.publish_acked(b, "f1", "task.failed", project="alpha",
                         data={"task_id": "t4", "error": "boom", "duration_ms": 7000})
        self.publish_acked(b, "s1", "agent.stuck", project="beta", data={"agent_id": "a1"})
        self.publish_acked(b, "s2", "agent.stuck", project="beta", data={"agent_id": "a2"})
        # a duplicate (same id, acknowledged again), a malformed envelope
        self.publish_acked(b, "c1", "task.completed", project="alpha",
                         data={"task_id": "t1", "duration_ms": 1500, "cost": 0.25})
        reply = b.ack_publish([b"task.completed", b"\xc1 not msgpack"])
        self.assertEqual(reply[0], "REJECTED")
        self.assertEqual(reply[2], "malformed")
        pub = b.publisher()
        pub.send_multipart([b"build.started", envelope("build.started", project="alpha")])
        pub.send_multipart([b"build.started", envelope("build.started", project="gamma")])
        pub.send_multipart([b"only-one-frame"])
        pub.close()
        self.delivered(port, "metrics", 8)
        self.delivered(port, "files", 4)

        body, s = self.scrape(port)
        v = lambda name, **l: self.value(s, name, **l)
        # ingress, by type and reason
        self.assertEqual(v("evbus_events_received_total", ingress="ack", type="task.completed"), 5)
        self.assertEqual(v("evbus_events_accepted_total", ingress="ack", type="task.completed"), 3)
        self.assertEqual(v("evbus_events_duplicate_total", ingress="ack", type="task.completed"), 1)
        self.assertEqual(v("evbus_events_rejected_total", ingress="ack", type="task.completed",
                           reason="malformed"), 1)
        self.assertEqual(v("evbus_events_accepted_total", ingress="ack", type="task.failed"), 1)
        self.assertEqual(v("evbus_events_accepted_total", ingress="ack", type="agent.stuck"), 2)
        self.assertEqual(v("evbus_events_accepted_total", ingress="pub", type="build.started"), 2)
        self.assertEqual(v("evbus_events_received_total", ingress="pub", type="_invalid"), 1)
        self.assertEqual(v("evbus_events_rejected_total", ingress="pub", type="_invalid",
                           reason="bad_frames"), 1)
        self.assertEqual(v("evbus_events_received_total", ingress="pub", type="other"), 0)
        self.assertNotIn(("evbus_events_received_total",
                          (("ingress", "ack"), ("type", "build.started"))), s)
        rejected = sum(val for (n, _), val in s.items() if n == "evbus_events_rejected_total")
        self.assertEqual(rejected, 2)
        # per instance
        self.assertEqual(v("evbus_instance_delivered_total", instance="files"), 4)
        self.assertEqual(v("evbus_instance_delivered_total", instance="metrics"), 8)
        self.assertEqual(v("evbus_instance_retried_total", instance="files"), 0)
        for reason in ("permanent", "max_attempts", "max_age", "broken", "disabled",
                       "overflow", "shutdown", "internal"):
            self.assertEqual(v("evbus_instance_dead_lettered_total", instance="files",
                               reason=reason), 0)
        self.assertEqual(v("evbus_instance_queue_depth", instance="files", state="queued"), 0)
        self.assertEqual(v("evbus_instance_oldest_event_age_seconds", instance="files"), 0)
        self.assertEqual(v("evbus_instance_up", instance="files"), 1)
        self.assertEqual(v("evbus_instance_info", instance="files", plugin="file",
                           version=[l for (n, ls), _ in s.items() if n == "evbus_instance_info"
                                    for k, l in ls if k == "version"][0]), 1)
        self.assertEqual(v("evbus_instance_delivery_duration_seconds_count", instance="files"), 4)
        self.assertEqual(v("evbus_instance_publish_to_delivery_seconds_count",
                           instance="files"), 4)
        self.assertEqual(v("evbus_instance_publish_to_delivery_seconds_bucket",
                           instance="files", le="+Inf"), 4)
        self.assertLess(v("evbus_instance_publish_to_delivery_seconds_sum", instance="files"),
                        4 * 10)
        self.assertEqual(v("evbus_ready"), 1)
        self.assertEqual(v("evbus_journal_healthy"), 1)
        self.assertAlmostEqual(v("evbus_ingest_heartbeat_timestamp_seconds"), time.time(),
                               delta=5)
        # drawn from the events
        self.assertEqual(v("evbus_tasks_completed_total", project="alpha"), 2)
        self.assertEqual(v("evbus_tasks_completed_total", project="beta"), 1)
        self.assertEqual(v("evbus_tasks_failed_total", project="alpha"), 1)
        self.assertEqual(v("evbus_tasks_failed_total", project="beta"), 0)
        self.assertEqual(v("evbus_agents_stuck_total", project="beta"), 2)
        self.assertAlmostEqual(v("evbus_task_cost_total", project="alpha"), 1.75)
        self.assertEqual(v("evbus_task_cost_total", project="beta"), 0)
        self.assertEqual(v("evbus_task_duration_seconds_bucket", project="alpha",
                           outcome="completed", le="1"), 0)
        self.assertEqual(v("evbus_task_duration_seconds_bucket", project="alpha",
                           outcome="completed", le="5"), 1)
        self.assertEqual(v("evbus_task_duration_seconds_bucket", project="alpha",
                           outcome="completed", le="60"), 2)
        self.assertEqual(v("evbus_task_duration_seconds_sum", project="alpha",
                           outcome="completed"), 46.5)
        self.assertEqual(v("evbus_task_duration_seconds_count", project="alpha",
                           outcome="failed"), 1)
        self.assertEqual(v("evbus_task_duration_seconds_count", project="beta",
                           outcome="completed"), 1)
        last = v("evbus_last_event_timestamp_seconds", type="build.started")
        self.assertGreaterEqual(last, started - 1)
        self.assertLessEqual(last, time.time() + 1)
        # the process, named as client libraries name it
        self.assertGreater(v("process_resident_memory_bytes"), 1 << 20)
        self.assertGreater(v("process_open_fds"), 5)
        self.assertGreater(v("process_max_fds"), v("process_open_fds"))
        self.assertAlmostEqual(v("process_start_time_seconds"), started, delta=60)
        # CPU time is counted in 10 ms ticks: a quiet broker may show 0
        self.assertGreaterEqual(v("process_cpu_seconds_total"), 0)
        self.assertLess(v("process_cpu_seconds_total"), (time.time() - started + 5) * 2)
        for family in ("evbus_events_received_total", "evbus_instance_delivered_total",
                       "evbus_task_duration_seconds", "process_open_fds"):
            self.assertEqual(body.count("# HELP %s " % family), 1, family)
            self.assertEqual(body.count("# TYPE %s " % family), 1, family)
        self.assertEqual(b.stop(), 0)

    def test_retries_dead_letters_and_latency_per_instance(self):
        port = free_port()
        dead_port = free_port()  # nothing listens: every attempt fails at once
        hook = ('{ name = "hook"; plugin = "webhook"; topics = [ "task.*" ];\n'
                '  retry = { max_attempts = 3; initial_delay = "50ms"; max_delay = "50ms"; };\n'
                '  options = { endpoints = ( { url = "http://127.0.0.1:%d/x"; signature = "none"; } );'
                ' }; }'
                % dead_port)
        b = self.make_broker(instances=lambda b: hook + ",\n" + metrics_instance(port))
        b.start()
        for i in range(2):
            self.publish_acked(b, "e%d" % i, "task.completed", project="p")

        def dead():
            _, _, body = get(port, "/metrics")
            return parse(body).get(("evbus_instance_dead_lettered_total",
                                    (("instance", "hook"), ("reason", "max_attempts"))), 0) == 2
        wait_for(dead, timeout=30, what="two dead letters")
        _, s = self.scrape(port)
        v = lambda name, **l: self.value(s, name, **l)
        self.assertEqual(v("evbus_instance_retried_total", instance="hook"), 4)
        self.assertEqual(v("evbus_instance_delivered_total", instance="hook"), 0)
        self.assertEqual(v("evbus_instance_dead_lettered_total", instance="hook",
                           reason="permanent"), 0)
        self.assertEqual(v("evbus_instance_delivery_duration_seconds_count", instance="hook"), 6)
        self.assertEqual(v("evbus_instance_publish_to_delivery_seconds_count",
                           instance="hook"), 0)
        self.assertEqual(len(b.dead_letters("hook")), 2)
        self.assertEqual(b.stop(), 0)

    def test_ten_thousand_projects_and_invented_types_stay_bounded(self):
        port = free_port()
        b = self.make_broker(
            instances=lambda b: metrics_instance(port, "max_label_values = 20;"),
            ingress="max_types = 30;")
        b.start()
        pub = b.publisher()
        for i in range(10000):
            pub.send_multipart([b"task.completed",
                                envelope("task.completed", project="proj-%05d" % i,
                                         data={"duration_ms": 1000, "cost": 1})])
        for i in range(100):
            t = "invented.t%d" % i
            pub.send_multipart([t.encode(), envelope(t, project="proj-00000")])
        pub.close()
        self.delivered(port, "metrics", 10100)
        body, s = self.scrape(port)
        completed = {dict(l)["project"]: val for (n, l), val in s.items()
                     if n == "evbus_tasks_completed_total"}
        self.assertEqual(len(completed), 21)  # 20 + other
        self.assertEqual(sum(completed.values()), 10000)
        self.assertEqual(completed["other"], 9980)
        self.assertEqual(completed["proj-00000"], 1)
        self.assertEqual(self.value(s, "evbus_task_cost_total", project="other"), 9980)
        self.assertEqual(self.value(s, "evbus_metrics_label_folded_total", label="project"), 9980)
        self.assertEqual(self.value(s, "evbus_metrics_label_values", label="project"), 21)
        last = [l for (n, l) in s if n == "evbus_last_event_timestamp_seconds"]
        self.assertEqual(len(last), 21)
        # the broker's own count by type: 30 types, then "other"
        types = {dict(l)["type"]: val for (n, l), val in s.items()
                 if n == "evbus_events_accepted_total" and dict(l)["ingress"] == "pub"}
        self.assertLessEqual(len(types), 32)  # 30 + _invalid + other
        self.assertEqual(sum(types.values()), 10100)
        self.assertEqual(types["task.completed"], 10000)
        self.assertEqual(types["other"], 71)  # 100 invented, 29 kept
        self.assertLess(len(s), 1200, "series count stays bounded")
        self.assertLess(len(body), 200000)
        self.assertEqual(b.stop(), 0)

    def test_health_and_readiness(self):
        port = free_port()
        b = self.make_broker(instances=lambda b: metrics_instance(port, 'stall_after = "5s";'))
        b.start()
        status, headers, body = get(port, "/healthz")
        self.assertEqual((status, body), (200, "ok\n"))
        status, _, body = get(port, "/readyz")
        self.assertEqual((status, body), (200, "ready\n"))
        status, _, body = get(port, "/nothing")
        self.assertEqual(status, 404)
        self.assertIn("/metrics", body)
        status, headers, _ = get(port, "/metrics", method="POST")
        self.assertEqual(status, 405)
        self.assertEqual(headers["allow"], "GET, HEAD")
        status, _, body = get(port, "/metrics", method="HEAD")
        self.assertEqual((status, body), (200, ""))
        # (a stalled ingest loop answers 503: tests/plugins/test_metrics.c,
        # since no signal stops one thread of a process and not the other)
        self.assertEqual(b.stop(), 0)

    def test_readyz_fails_while_draining_and_lists_disabled_instances(self):
        port = free_port()
        rx = webhooktest.Receiver().start()
        self.addCleanup(rx.stop)
        rx.script("/slack/gone", [{"status": 404, "body": "no_service"}])
        rx.script("/hang", [{"hang": 20}])
        slack = ('{ name = "chat"; plugin = "slack"; topics = [ "agent.*" ];\n'
                 '  options = { url = "%s"; }; }' % rx.url("/slack/gone"))
        hook = ('{ name = "hook"; plugin = "webhook"; topics = [ "task.*" ];\n'
                '  options = { endpoints = ( { url = "%s"; timeout = "30s"; signature = "none"; } );'
                ' }; }'
                % rx.url("/hang"))
        b = self.make_broker(instances=lambda b: slack + ",\n" + hook + ",\n" +
                             metrics_instance(port))
        b.start()
        self.publish_acked(b, "s1", "agent.stuck", project="x")
        wait_for(lambda: "no_service" in b.log() and len(b.dead_letters("chat")) == 1,
                 what="the Slack instance disabled")
        status, _, body = get(port, "/readyz")
        self.assertEqual(status, 200, body)
        self.assertEqual(body, "ready\ndisabled instances (see the log): chat\n")
        _, s = self.scrape(port)
        self.assertEqual(self.value(s, "evbus_instance_disabled", instance="chat"), 1)
        self.assertEqual(self.value(s, "evbus_instance_up", instance="chat"), 0)
        # the refused message was a permanent failure; the instance is now
        # disabled, so the next one is dead-lettered for that
        self.assertEqual(self.value(s, "evbus_instance_dead_lettered_total", instance="chat",
                                    reason="permanent"), 1)
        self.publish_acked(b, "s2", "agent.stuck", project="x")
        wait_for(lambda: len(b.dead_letters("chat")) == 2, what="the second dead letter")
        _, s = self.scrape(port)
        self.assertEqual(self.value(s, "evbus_instance_dead_lettered_total", instance="chat",
                                    reason="disabled"), 1)
        # a delivery that hangs keeps the broker draining after SIGTERM
        self.publish_acked(b, "t1", "task.completed", project="x")
        wait_for(lambda: rx.count()["requests"] >= 2, what="the hanging request")
        b.send_signal(signal.SIGTERM)
        wait_for(lambda: "stopping ingress" in b.log(), what="the drain")
        # the instances begin draining one after the other, just after
        # that line: wait for both (the hanging one drains until the
        # shutdown deadline)
        wait_for(lambda: "instances not running: chat, hook" in get(port, "/readyz")[2],
                 what="both instances draining")
        status, _, body = get(port, "/readyz")
        self.assertEqual(status, 503, body)
        self.assertIn("not ready: evbusd is starting or stopping;", body)
        self.assertIn("instances not running: chat, hook", body)
        status, _, body = get(port, "/healthz")
        self.assertEqual(status, 200, body)
        b.proc.wait(timeout=30)

    def test_requests_are_bounded(self):
        port = free_port()
        b = self.make_broker(instances=lambda b: metrics_instance(
            port, 'max_request_size = "4K"; connection_timeout = "1s";'))
        b.start()
        status, _, _ = get(port, "/metrics", headers={"X-Big": "x" * 16384})
        self.assertIn(status, (413, 414, 431))
        # an idle connection is closed after the timeout
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(10)
        t0 = time.monotonic()
        self.assertEqual(s.recv(100), b"")
        self.assertLess(time.monotonic() - t0, 5)
        s.close()
        self.assertEqual(get(port, "/healthz")[0], 200)
        self.assertEqual(b.stop(), 0)

    def test_connections_beyond_the_limit_wait_in_the_backlog(self):
        port = free_port()
        b = self.make_broker(instances=lambda b: metrics_instance(
            port, 'max_connections = 2; connection_timeout = "30s";'))
        b.start()
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        self.addCleanup(lambda: [s.close() for s in idle])
        time.sleep(0.3)
        with self.assertRaises(OSError):  # not served while two are open
            get(port, "/healthz", timeout=1.5)
        idle.pop().close()
        self.assertEqual(get(port, "/healthz", timeout=10)[:3:2], (200, "ok\n"))
        self.assertEqual(b.stop(), 0)

    def test_config_errors_name_file_line_and_setting(self):
        b = self.make_broker(instances=lambda b: (
            '{ name = "m"; plugin = "metrics";\n'
            '  options = { listen = "localhost"; max_label_values = 0;\n'
            '              duration_buckets = [ 5.0, 1.0 ]; }; }'))
        r = b.run_tool([evbtest.EVBUSD, "-c", b.config, "--check-config"])
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 1, err)
        self.assertRegex(err, r"evbus\.conf:\d+: instances\[0\]\.options\.listen: "
                              r"expected HOST:PORT, got \"localhost\"")
        self.assertRegex(err, r"instances\[0\]\.options\.max_label_values: expected 1 to "
                              r"100000, got 0")
        self.assertRegex(err, r"instances\[0\]\.options\.duration_buckets\[1\]: bounds must be "
                              r"positive seconds in increasing order, got 1")

    def test_documented_alert_rules_and_queries_pass_promtool(self):
        with open(os.path.join(evbtest.SRCDIR, "docs", "metrics.md"), encoding="utf-8") as f:
            doc = f.read()
        blocks = re.findall(r"```yaml\n(.*?)```", doc, re.S)
        rules = [b for b in blocks if "groups:" in b]
        self.assertEqual(len(rules), 1)
        path = os.path.join(self.make_tmpdir(), "evbus-alerts.yml")
        with open(path, "w") as f:
            f.write(rules[0])
        self.assertTrue(os.path.exists(PROMTOOL), "promtool not found")
        r = subprocess.run([PROMTOOL, "check", "rules", path], capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
        self.assertIn("SUCCESS: 8 rules found", r.stdout.decode())
        # every metric the queries and rules name exists in a real scrape
        port = free_port()
        b = self.make_broker(instances=lambda b: metrics_instance(port))
        b.start()
        self.publish_acked(b, "x1", "task.completed", project="p", data={"duration_ms": 5})
        self.assertEqual(b.ack_publish([b"task.failed", b"\xc1"])[0], "REJECTED")
        self.delivered(port, "metrics", 1)
        _, samples = self.scrape(port)
        names = {n for n, _ in samples}
        promql = "\n".join(re.findall(r"```(?:promql|yaml)\n(.*?)```", doc, re.S))
        for name in sorted(set(re.findall(r"\b(evbus_[a-z_]+)", promql))):
            self.assertTrue(name in names, "a documented query names %s" % name)
        self.assertEqual(b.stop(), 0)

    def test_journal_damage_cursor_recoveries_and_orphans_are_figures(self):
        port = evbtest.free_port()
        b = self.make_broker(instances=lambda b: ",\n".join([
            b.file_instance("kept", ["**"]), b.file_instance("gone", ["**"]),
            metrics_instance(port)]))
        b.start()
        for i in range(10):
            self.publish_acked(b, "f%d" % i)
        wait_for(lambda: len(b.output("gone")) == 10, what="deliveries")
        self.assertEqual(b.stop(), 0)
        # damage: a record in the middle, kept's cursor; "gone" leaves
        recs = evbtest.journal_records(b.path("journal"))
        evbtest.flip_bit(recs[4]["path"], recs[4]["off"] + 40)
        with open(b.path("journal/cursors/kept.cursor"), "w") as f:
            f.write("junk")
        with open(b.config) as f:
            text = f.read()
        with open(b.config, "w") as f:
            f.write(text.replace(b.file_instance("gone", ["**"]) + ",\n", ""))
        b.start()
        _, samples = self.scrape(port)
        self.assertEqual(self.value(samples, "evbus_journal_lost_records_total"), 1)
        self.assertEqual(self.value(samples, "evbus_journal_orphaned_cursors"), 1)
        self.assertEqual(self.value(samples, "evbus_instance_cursor_recoveries_total",
                                    instance="kept"), 1)
        self.assertEqual(self.value(samples, "evbus_instance_cursor_recoveries_total",
                                    instance="metrics"), 0)
        self.assertEqual(b.stop(), 0)

    def test_a_port_in_use_is_a_clear_start_error(self):
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        self.addCleanup(taken.close)
        port = taken.getsockname()[1]
        b = self.make_broker(instances=lambda b: metrics_instance(port))
        b.start(wait=False)
        self.assertEqual(b.proc.wait(timeout=30), 1)
        self.assertIn("cannot listen on 127.0.0.1:%d: Address already in use" % port, b.log())


if __name__ == "__main__":
    evbtest.main()
