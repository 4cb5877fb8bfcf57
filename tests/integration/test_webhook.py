"""The webhook plugin against a real HTTP receiver on loopback
(webhook_receiver.py), which checks every signature with an independent
implementation: npm's standardwebhooks for the standard scheme, Python's
hmac for the others. Real evbusd, real sockets."""

import json
import os
import subprocess
import time

import evbtest
from evbtest import wait_for
import webhooktest

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRET_OLD = "whsec_dGhlIG9sZCBzZWNyZXQgYmVpbmcgcm90YXRlZCBvdXQ="


def check_config(b):
    return subprocess.run([evbtest.EVBUSD, "-c", b.config, "--check-config"], env=b.env,
                          capture_output=True, text=True, timeout=30)


def endpoint(url, extra=""):
    return '{ url = "%s"; secret = "%s"; %s }' % (url, SECRET, extra)


def hook_instance(endpoints, routes="", options="", retry=None, name="hooks"):
    retry = retry or ('retry = { initial_delay = "50ms"; max_delay = "100ms"; '
                      'max_attempts = 5; };')
    return ('{ name = "%s"; plugin = "webhook"; %s\n'
            '  options = { %s endpoints = ( %s ); %s }; }'
            % (name, retry, options, ",\n".join(endpoints),
               "routes = ( %s );" % ",\n".join(routes) if routes else ""))


class WebhookTest(evbtest.TestCase):
    def setUp(self):
        self.rx = webhooktest.Receiver().start()
        self.addCleanup(self.rx.stop)

    def test_an_event_is_posted_as_a_cloudevent_and_signed(self):
        self.rx.secrets("/hook", "standard", [SECRET])
        b = self.make_broker(instances=lambda b: hook_instance([
            endpoint(self.rx.url("/hook"), 'headers = { X-Team = "ops"; };'),
            endpoint(self.rx.url("/ua"), 'headers = { User-Agent = "acme-hooks/2"; };')]))
        b.start()
        self.publish_acked(b, "e-1", source="ci", data={"task_id": "T-1"})
        got = self.rx.wait_deliveries("/hook", 1)
        d = got[0]
        self.assertRegex(d["headers"]["user-agent"], r"^evbus/\d+\.\d+\.\d+$")
        # an endpoint's own User-Agent replaces evbus's (one line, not two)
        self.assertEqual(self.rx.wait_deliveries("/ua", 1)[0]["headers"]["user-agent"],
                         "acme-hooks/2")
        self.assertEqual(d["method"], "POST")
        self.assertTrue(d["verified"], d["verify_error"])
        self.assertEqual(d["headers"]["content-type"], "application/cloudevents+json")
        self.assertEqual(d["headers"]["webhook-id"], "e-1")
        self.assertEqual(d["headers"]["x-team"], "ops")
        self.assertLess(abs(int(d["headers"]["webhook-timestamp"]) - time.time()), 60)
        body = json.loads(d["body"])
        self.assertEqual(body["id"], "e-1")
        self.assertEqual(body["type"], "task.completed")
        self.assertEqual(body["data"], {"task_id": "T-1"})
        self.assertEqual(body["specversion"], "1.0")
        self.assertEqual(b.stop(), 0)

    def test_format_data_posts_the_data_alone_as_json(self):
        b = self.make_broker(instances=lambda b: hook_instance([
            endpoint(self.rx.url("/data"), 'format = "data"; signature = "none";')]))
        b.start()
        self.publish_acked(b, "e-2", data={"cost": 0.5})
        d = self.rx.wait_deliveries("/data", 1)[0]
        self.assertEqual(d["headers"]["content-type"], "application/json")
        self.assertEqual(json.loads(d["body"]), {"cost": 0.5})
        self.assertNotIn("webhook-signature", d["headers"])
        self.assertEqual(d["headers"]["x-evbus-event-id"], "e-2")
        self.assertEqual(b.stop(), 0)

    def test_retry_then_success_with_the_same_webhook_id_on_every_attempt(self):
        self.rx.secrets("/flaky", "standard", [SECRET])
        self.rx.script("/flaky", [{"status": 503}, {"status": 500}, {"status": 200}])
        b = self.make_broker(instances=lambda b: hook_instance([endpoint(self.rx.url("/flaky"))]))
        b.start()
        self.publish_acked(b, "e-3")
        got = self.rx.wait_deliveries("/flaky", 3)
        self.assertEqual([d["response_status"] for d in got], [503, 500, 200])
        self.assertEqual({d["headers"]["webhook-id"] for d in got}, {"e-3"})
        self.assertTrue(all(d["verified"] for d in got), [d["verify_error"] for d in got])
        time.sleep(0.5)
        self.assertEqual(len(self.rx.deliveries("/flaky")), 3)  # delivered once
        # one line per attempt: event id, endpoint, attempt, status, latency
        self.assertRegex(b.log(), r"POST http://127\.0\.0\.1:\d+/flaky event e-3 attempt 1: "
                                  r"HTTP 503: .*, \d+ ms")
        self.assertEqual(b.stop(), 0)
        self.assertEqual(b.dead_letters("hooks"), [])

    def test_retry_after_is_honoured_in_seconds_and_as_a_date(self):
        self.rx.script("/busy", [{"status": 429, "retry_after": "2"}, {"status": 200}])
        date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 3))
        self.rx.script("/dated", [{"status": 503, "retry_after": date}, {"status": 200}])
        b = self.make_broker(instances=lambda b: hook_instance([
            endpoint(self.rx.url("/busy"), 'signature = "none"; topics = [ "a.*" ];'),
            endpoint(self.rx.url("/dated"), 'signature = "none"; topics = [ "b.*" ];')]))
        b.start()
        self.publish_acked(b, "e-4", type_="a.x")
        self.publish_acked(b, "e-5", type_="b.x")
        busy = self.rx.wait_deliveries("/busy", 2, timeout=15)
        dated = self.rx.wait_deliveries("/dated", 2, timeout=15)
        # the host's own backoff here is 50-100 ms: the hint decides
        self.assertGreaterEqual(busy[1]["received_at"] - busy[0]["received_at"], 1.9)
        self.assertGreaterEqual(dated[1]["received_at"] - dated[0]["received_at"], 1.9)
        self.assertEqual(b.stop(), 0)

    def test_a_permanent_4xx_is_dead_lettered_with_status_and_body(self):
        self.rx.script("/strict", [{"status": 400, "body": "bad field x"}])
        b = self.make_broker(instances=lambda b: hook_instance([
            endpoint(self.rx.url("/strict"), 'signature = "none";')]))
        b.start()
        self.publish_acked(b, "e-6")
        wait_for(lambda: b.dead_letters("hooks"), what="the dead letter")
        dl = b.dead_letters("hooks")[0]
        self.assertIn("permanent failure", dl["reason"])
        self.assertIn("HTTP 400", dl["reason"])
        self.assertIn("bad field x", dl["reason"])
        self.assertEqual(dl["attempts"], 1)
        self.assertEqual(len(self.rx.deliveries("/strict")), 1)  # not retried
        self.assertEqual(b.stop(), 0)

    def test_a_long_response_body_is_cut_at_max_response_and_the_status_decides(self):
        big = "x" * (2 << 20)  # 2 MiB, far past max_response
        self.rx.script("/big", [{"status": 200, "body": big},
                                {"status": 400, "body": "refused " + big}])
        b = self.make_broker(log_level="debug", instances=lambda b: hook_instance([
            endpoint(self.rx.url("/big"), 'signature = "none";')],
            options='max_response = "4K";'))
        b.start()
        self.publish_acked(b, "e-big-1")
        wait_for(lambda: "response body cut at max_response" in b.log(),
                 what="the cut response")
        self.assertRegex(b.log(), r"event e-big-1 attempt 1: HTTP 200 \(response body cut")
        self.publish_acked(b, "e-big-2")
        wait_for(lambda: b.dead_letters("hooks"), what="the dead letter")
        dl = b.dead_letters("hooks")[0]
        self.assertEqual(dl["event"]["id"], "e-big-2")
        self.assertIn("HTTP 400", dl["reason"])
        self.assertIn("refused xxx", dl["reason"])
        self.assertLess(len(dl["reason"]), 1000)  # an excerpt, not the body
        self.assertEqual(len(self.rx.deliveries("/big")), 2)  # neither retried
        self.assertEqual(b.stop(), 0)

    def test_tls_is_verified_by_default_and_ca_file_trusts_a_private_ca(self):
        certs = webhooktest.make_test_ca(self.make_tmpdir())
        rx = webhooktest.Receiver(tls=certs).start()
        self.addCleanup(rx.stop)
        self.assertTrue(rx.url("/x").startswith("https://"))
        one = 'retry = { initial_delay = "50ms"; max_attempts = 2; };'
        b = self.make_broker(instances=lambda b: ",\n".join([
            hook_instance([endpoint(rx.url("/system"))], name="system", retry=one),
            hook_instance([endpoint(rx.url("/private"))], name="private", retry=one,
                          options='ca_file = "%s";' % certs["ca"])]))
        b.start()
        self.publish_acked(b, "e-tls")
        # signed by a CA the system does not know: refused, never sent
        wait_for(lambda: b.dead_letters("system"), what="the refused delivery")
        self.assertRegex(b.dead_letters("system")[0]["reason"], r"(?i)certificate")
        self.assertEqual(rx.deliveries("/system"), [])
        # the same server, trusted through ca_file
        got = rx.wait_deliveries("/private", 1)
        self.assertEqual(got[0]["headers"]["webhook-id"], "e-tls")
        self.assertEqual(b.dead_letters("private"), [])
        self.assertNotIn("insecure", b.log())
        self.assertEqual(b.stop(), 0)

    def test_insecure_skips_verification_and_warns_at_start(self):
        certs = webhooktest.make_test_ca(self.make_tmpdir())
        rx = webhooktest.Receiver(tls=certs).start()
        self.addCleanup(rx.stop)
        b = self.make_broker(instances=lambda b: hook_instance(
            [endpoint(rx.url("/lax"))], options="insecure = true;"))
        b.start()
        self.assertRegex(b.log(), r"WARN .*insecure = true: TLS certificates are NOT verified")
        self.publish_acked(b, "e-lax")
        self.assertEqual(rx.wait_deliveries("/lax", 1)[0]["headers"]["webhook-id"], "e-lax")
        self.assertEqual(b.stop(), 0)

    def test_a_redirect_is_not_followed_and_is_permanent(self):
        self.rx.script("/moved", [{"status": 301, "location": self.rx.url("/elsewhere")}])
        b = self.make_broker(instances=lambda b: hook_instance([
            endpoint(self.rx.url("/moved"), 'signature = "none";')]))
        b.start()
        self.publish_acked(b, "e-7")
        wait_for(lambda: b.dead_letters("hooks"), what="the dead letter")
        self.assertIn("HTTP 301", b.dead_letters("hooks")[0]["reason"])
        self.assertEqual(self.rx.deliveries("/elsewhere"), [])
        self.assertEqual(b.stop(), 0)

    def test_410_gone_disables_the_endpoint_loudly_and_the_others_go_on(self):
        self.rx.script("/gone", [{"status": 410}])
        b = self.make_broker(instances=lambda b: hook_instance([
            endpoint(self.rx.url("/gone"), 'signature = "none";'),
            endpoint(self.rx.url("/alive"), 'signature = "none";')]))
        b.start()
        self.publish_acked(b, "e-8")
        wait_for(lambda: len(b.dead_letters("hooks")) == 1, what="the first dead letter")
        self.assertIn("DISABLED", b.log())
        self.publish_acked(b, "e-9")
        wait_for(lambda: len(b.dead_letters("hooks")) == 2, what="the second dead letter")
        # the disabled endpoint is not asked again; the other one got both
        self.assertEqual(len(self.rx.deliveries("/gone")), 1)
        self.assertEqual([d["headers"]["x-evbus-event-id"] for d in self.rx.wait_deliveries("/alive", 2)],
                         ["e-8", "e-9"])
        self.assertIn("disabled", b.dead_letters("hooks")[1]["reason"])
        self.assertEqual(b.stop(), 0)

    def test_a_timeout_is_retried(self):
        self.rx.script("/slow", [{"hang": 5}, {"status": 200}])
        b = self.make_broker(instances=lambda b: hook_instance([
            endpoint(self.rx.url("/slow"), 'signature = "none"; timeout = "300ms";')]))
        b.start()
        self.publish_acked(b, "e-10")
        got = self.rx.wait_deliveries("/slow", 2, timeout=10)
        self.assertIsNone(got[0]["response_status"])
        self.assertEqual(got[1]["response_status"], 200)
        self.assertRegex(b.log(), r"/slow event e-10 attempt 1: .*timed out after 3\d\d "
                                  r"milliseconds")
        self.assertEqual(b.stop(), 0)

    def test_a_closed_connection_is_retried(self):
        self.rx.script("/drop", [{"close": True}, {"status": 200}])
        b = self.make_broker(instances=lambda b: hook_instance([
            endpoint(self.rx.url("/drop"), 'signature = "none";')]))
        b.start()
        self.publish_acked(b, "e-11")
        got = self.rx.wait_deliveries("/drop", 2)
        self.assertEqual(got[1]["response_status"], 200)
        self.assertEqual(b.stop(), 0)

    def test_a_retry_goes_only_to_the_endpoints_that_still_need_it(self):
        self.rx.script("/b", [{"status": 503}, {"status": 200}])
        b = self.make_broker(instances=lambda b: hook_instance([
            endpoint(self.rx.url("/a"), 'signature = "none";'),
            endpoint(self.rx.url("/b"), 'signature = "none";')]))
        b.start()
        self.publish_acked(b, "e-12")
        self.rx.wait_deliveries("/b", 2)
        time.sleep(0.5)
        self.assertEqual(len(self.rx.deliveries("/a")), 1)
        self.assertEqual(b.stop(), 0)

    def test_project_and_ticket_routes_most_specific_wins(self):
        b = self.make_broker(instances=lambda b: hook_instance(
            [endpoint(self.rx.url("/global"), 'signature = "none";')],
            routes=[
                '{ project = "alpha"; mode = "replace"; url = "%s"; signature = "none"; }'
                % self.rx.url("/alpha"),
                '{ ticket = "T-9"; mode = "add"; url = "%s"; signature = "none"; }'
                % self.rx.url("/t9"),
                '{ ticket = "T-10"; project = "alpha"; mode = "replace"; url = "%s"; '
                'signature = "none"; }' % self.rx.url("/t10"),
            ]))
        b.start()
        self.publish_acked(b, "plain")
        self.publish_acked(b, "alpha", project="alpha")
        self.publish_acked(b, "beta", project="beta")
        self.publish_acked(b, "alpha-t9", project="alpha", ticket="T-9")
        self.publish_acked(b, "beta-t9", project="beta", ticket="T-9")
        self.publish_acked(b, "alpha-t10", project="alpha", ticket="T-10")
        self.publish_acked(b, "beta-t10", project="beta", ticket="T-10")

        def ids(path, n):
            return sorted(d["headers"]["x-evbus-event-id"]
                          for d in self.rx.wait_deliveries(path, n))
        self.assertEqual(ids("/global", 4), ["beta", "beta-t10", "beta-t9", "plain"])
        self.assertEqual(ids("/alpha", 2), ["alpha", "alpha-t9"])
        self.assertEqual(ids("/t9", 2), ["alpha-t9", "beta-t9"])
        self.assertEqual(ids("/t10", 1), ["alpha-t10"])
        time.sleep(0.3)
        self.assertEqual(len(self.rx.deliveries()), 9)  # nothing else
        self.assertEqual(b.stop(), 0)

    def test_two_secrets_during_a_rotation_both_verify(self):
        self.rx.secrets("/rot", "standard", [SECRET, SECRET_OLD])
        self.rx.secrets("/gh", "github", ["gh-secret"])
        self.rx.secrets("/custom", "custom", ["k-new", "k-old"],
                        signature_header="X-Sig", timestamp_header="X-Ts")
        b = self.make_broker(instances=lambda b: hook_instance([
            '{ url = "%s"; secrets = [ "%s", "%s" ]; }' % (self.rx.url("/rot"), SECRET, SECRET_OLD),
            '{ url = "%s"; signature = "github"; secret = "gh-secret"; }' % self.rx.url("/gh"),
            '{ url = "%s"; signature = "custom"; secrets = [ "k-new", "k-old" ]; '
            'signature_header = "X-Sig"; timestamp_header = "X-Ts"; }' % self.rx.url("/custom")]))
        b.start()
        self.publish_acked(b, "e-13")
        rot = self.rx.wait_deliveries("/rot", 1)[0]
        self.assertTrue(rot["verified"], rot["verify_error"])
        self.assertEqual(len(rot["headers"]["webhook-signature"].split(" ")), 2)
        gh = self.rx.wait_deliveries("/gh", 1)[0]
        self.assertTrue(gh["verified"], gh["verify_error"])
        self.assertTrue(gh["headers"]["x-hub-signature-256"].startswith("sha256="))
        custom = self.rx.wait_deliveries("/custom", 1)[0]
        self.assertTrue(custom["verified"], custom["verify_error"])
        self.assertEqual(len(custom["headers"]["x-sig"].split(" ")), 2)
        self.assertEqual(b.stop(), 0)

    def test_a_hanging_endpoint_does_not_delay_another(self):
        self.rx.script("/stuck", [], default={"hang": 20})
        b = self.make_broker(instances=lambda b: hook_instance([
            endpoint(self.rx.url("/stuck"), 'signature = "none"; timeout = "10s"; '
                     'max_in_flight = 4; max_queue = 8;'),
            endpoint(self.rx.url("/fast"), 'signature = "none";')],
            retry='retry = { initial_delay = "1s"; max_delay = "2s"; max_attempts = 100; };'))
        b.start()
        t0 = time.time()
        for i in range(30):
            self.publish_acked(b, "h-%02d" % i)
        time.sleep(1.5)  # the stuck endpoint has answered nothing for a while
        for i in range(30, 60):
            self.publish_acked(b, "h-%02d" % i)
        fast = self.rx.wait_deliveries("/fast", 60, timeout=10)
        # every event reached the fast endpoint at once, while the stuck one
        # holds each request for its 10 s timeout
        self.assertLess(max(d["received_at"] for d in fast) - t0, 5.0)
        self.assertLessEqual(len(self.rx.deliveries("/stuck")), 8)
        # past its queue, the stalled endpoint's events wait for a retry
        # instead of taking the instance's attempts
        self.assertRegex(b.log(), r"/stuck: stalled: \d+ requests waiting or in flight")
        self.assertEqual(b.stop(), 0)

    def test_requests_are_spread_over_the_engines_within_max_in_flight(self):
        # max_in_flight 3 over 2 engines (shares 2 + 1) and 1 over 2 (one
        # engine has it all): a request starts only when one of the
        # endpoint's has ended, so no window shorter than the answer's
        # delay holds more arrivals than max_in_flight
        delay = 0.4
        for path in ("/three", "/one"):
            self.rx.script(path, [], default={"delay_ms": int(delay * 1000)})
        b = self.make_broker(instances=lambda b: hook_instance([
            endpoint(self.rx.url("/three"), 'signature = "none"; max_in_flight = 3;'),
            endpoint(self.rx.url("/one"), 'signature = "none"; max_in_flight = 1;')],
            options="engines = 2;"))
        b.start()
        self.assertIn("2 HTTP threads", b.log())
        for i in range(9):
            self.publish_acked(b, "mif-%d" % i)

        def most_at_once(path, n):
            t = sorted(d["received_at"] for d in self.rx.wait_deliveries(path, n, timeout=20))
            return max(sum(1 for u in t if v <= u < v + delay * 0.9) for v in t)
        self.assertEqual(most_at_once("/three", 9), 3)  # both engines at work
        self.assertEqual(most_at_once("/one", 9), 1)
        self.assertEqual(b.stop(), 0)
        self.assertEqual(b.dead_letters("hooks"), [])

    def test_an_attempt_split_over_engines_retries_only_where_it_failed(self):
        # three endpoints whose round robins drift apart (/some gets half
        # the events), so one event's requests end on different engines;
        # /flaky fails the first ten requests it gets
        for engines in (1, 3):
            with self.subTest(engines=engines):
                self.rx.reset()
                self.rx.script("/flaky", [{"status": 503}] * 10)
                b = self.make_broker(instances=lambda b: hook_instance([
                    endpoint(self.rx.url("/all"), 'signature = "none";'),
                    endpoint(self.rx.url("/some"), 'signature = "none"; topics = [ "task.failed" ];'),
                    endpoint(self.rx.url("/flaky"), 'signature = "none";')],
                    options="engines = %d;" % engines))
                b.start()
                types = ["task.failed" if i % 2 else "task.completed" for i in range(40)]
                for i, t in enumerate(types):
                    self.publish_acked(b, "sp-%02d" % i, type_=t)

                def ids(path, n):
                    return sorted(d["headers"]["x-evbus-event-id"]
                                  for d in self.rx.wait_deliveries(path, n, timeout=20))
                every = ["sp-%02d" % i for i in range(40)]
                self.assertEqual(ids("/all", 40), every)
                self.assertEqual(ids("/some", 20), every[1::2])
                flaky = ids("/flaky", 50)
                self.assertEqual(sorted(set(flaky)), every)
                time.sleep(0.5)
                # each event once at the endpoints that took it the first time
                self.assertEqual(len(self.rx.deliveries("/all")), 40)
                self.assertEqual(len(self.rx.deliveries("/some")), 20)
                self.assertEqual(len(self.rx.deliveries("/flaky")), 50)
                self.assertEqual(b.stop(), 0)
                self.assertEqual(b.dead_letters("hooks"), [])

    def test_a_connection_the_server_closes_while_idle_is_dropped_quietly(self):
        # the receiver closes each connection 100 ms after its last answer:
        # the engine must stop watching it (no busy loop on a closed idle
        # socket) and open a new one for the next event
        self.rx.script("/idle", [], default={"idle_close_ms": 100})
        b = self.make_broker(instances=lambda b: hook_instance([
            endpoint(self.rx.url("/idle"), 'signature = "none";')], options="engines = 1;"))
        b.start()

        def cpu_seconds():
            with open("/proc/%d/stat" % b.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for i in range(5):
            self.publish_acked(b, "idle-%d" % i)
            self.rx.wait_deliveries("/idle", i + 1)
            time.sleep(0.3)  # the connection is closed meanwhile
        before = cpu_seconds()
        time.sleep(1.0)
        self.assertLess(cpu_seconds() - before, 0.3)  # idle, not spinning
        got = self.rx.deliveries("/idle")
        self.assertEqual([d["headers"]["x-evbus-event-id"] for d in got],
                         ["idle-%d" % i for i in range(5)])
        # no request failed: at info, a logged request is a failed one (a
        # success is logged at debug, and its retry would be too)
        self.assertNotRegex(b.log(), r"POST \S+ event idle-\d attempt \d+:")
        self.assertEqual(b.stop(), 0)

    def config_errors(self, instances):
        """evbusd --check-config on a broker with these instances: it must
        fail; returns what it printed on stderr."""
        r = check_config(self.make_broker(instances=lambda b: instances))
        self.assertEqual(r.returncode, 1)
        return r.stderr

    def test_bad_options_are_reported_with_file_line_and_setting(self):
        err = self.config_errors(hook_instance([
            '{ url = "ftp://x/"; signature = "none"; }',
            '{ url = "%s"; signature = "gitlab"; }' % self.rx.url("/x"),
            '{ url = "%s"; secret = "whsec_%%%%"; }' % self.rx.url("/y")],
            routes=['{ project = "p"; mode = "sometimes"; url = "%s"; signature = "none"; }'
                    % self.rx.url("/p")]))
        self.assertRegex(err, r"evbus\.conf:\d+: instances\[0\]\.options\.endpoints\[0\]\.url: "
                              r"expected an http:// or https:// URL")
        self.assertRegex(err, r"evbus\.conf:\d+: instances\[0\]\.options\.endpoints\[1\]\.signature: "
                              r"expected \"standard\"")
        self.assertRegex(err, r"endpoints\[2\]\.secret: .*base64")
        self.assertRegex(err, r"routes\[0\]\.mode: expected \"add\" .* or \"replace\"")
        self.assertIn("4 configuration errors", err)
        # what the option schema catches: a secret from a missing
        # environment variable, a route without its mode
        err = self.config_errors(hook_instance([
            '{ url = "%s"; secret = "${EVB_TEST_MISSING_SECRET}"; }' % self.rx.url("/y")],
            routes=['{ project = "p"; url = "%s"; signature = "none"; }' % self.rx.url("/p")]))
        self.assertRegex(err, r"evbus\.conf:\d+: instances\[0\]\.options\.endpoints\[0\]\.secret: "
                              r"environment variable \"EVB_TEST_MISSING_SECRET\" is not set")
        self.assertRegex(err, r"evbus\.conf:\d+: instances\[0\]\.options\.routes\[0\]\.mode: "
                              r"required option is not set")
        # engines out of range; a header that is evbus's
        err = self.config_errors(hook_instance([
            '{ url = "%s"; signature = "none"; headers = { Content-Type = "text/plain"; }; }'
            % self.rx.url("/y")], options="engines = 0;"))
        self.assertRegex(err, r"evbus\.conf:\d+: instances\[0\]\.options\.engines: "
                              r"expected 1 to 16")
        self.assertRegex(err, r"evbus\.conf:\d+: instances\[0\]\.options\.endpoints\[0\]"
                              r"\.headers\.Content-Type: not a header this endpoint may set")

    def test_secrets_never_appear_in_check_config_or_logs(self):
        b = self.make_broker(instances=lambda b: hook_instance([
            endpoint(self.rx.url("/s"), 'headers = { Authorization = "Bearer tok-123"; };')]),
            log_level="debug")
        r = check_config(b)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(SECRET, r.stdout + r.stderr)
        self.assertNotIn("tok-123", r.stdout + r.stderr)
        b.start()
        self.publish_acked(b, "e-14")
        self.rx.wait_deliveries("/s", 1)
        self.assertEqual(b.stop(), 0)
        self.assertNotIn(SECRET, b.log())
        self.assertNotIn("tok-123", b.log())


if __name__ == "__main__":
    evbtest.main()
