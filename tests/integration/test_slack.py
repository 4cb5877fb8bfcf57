"""The Slack plugin against a local endpoint that behaves like a Slack
incoming webhook (webhook_receiver.py, paths under /slack): it checks every
payload against Slack's Block Kit limits, answers "ok", 429 with
Retry-After, 5xx or Slack's error words. Real evbusd, real sockets."""

import json
import subprocess
import time

import evbtest
from evbtest import wait_for
import webhooktest


def slack_instance(url, options="", retry=None, name="chat", topics=None):
    retry = retry or ('retry = { initial_delay = "100ms"; max_delay = "200ms"; '
                      'max_attempts = 5; };')
    return ('{ name = "%s"; plugin = "slack"; %s %s\n'
            '  options = { url = "%s"; %s }; }'
            % (name, retry, 'topics = [ %s ];' % ", ".join('"%s"' % t for t in topics)
               if topics else "", url, options))


class SlackTest(evbtest.TestCase):
    def setUp(self):
        self.rx = webhooktest.Receiver().start()
        self.addCleanup(self.rx.stop)

    def messages(self, path, n, timeout=15):
        got = self.rx.wait_deliveries(path, n, timeout=timeout)
        for d in got:
            self.assertEqual(d["slack_problems"], [], d["body"])
        return [json.loads(d["body"]) for d in got]

    def test_each_event_type_is_a_readable_message_slack_accepts(self):
        b = self.make_broker(instances=lambda b: slack_instance(
            self.rx.url("/slack/T0/B0/tok"), "rate = 20.0; burst = 10;"))
        b.start()
        self.publish_acked(b, "c-1", project="alpha",
                     data={"task_id": "T-1", "duration_ms": 125300, "cost": 0.42})
        self.publish_acked(b, "f-1", "task.failed", project="alpha", ticket="T-9",
                     data={"task_id": "T-2", "error": "disk full", "exit_code": 2})
        self.publish_acked(b, "s-1", "agent.stuck",
                     data={"agent_id": "a7", "task_id": "T-3", "stuck_for_s": 600})
        self.publish_acked(b, "o-1", "deploy.finished", source="cd", subject="api v2",
                     data={"env": "prod"})
        msgs = self.messages("/slack/T0/B0/tok", 4)
        self.assertEqual([m["text"] for m in msgs], [
            ":white_check_mark: Task T-1 completed in 2m 05s, cost 0.42 (project alpha)",
            ":x: Task T-2 failed: disk full (exit 2, project alpha, ticket T-9)",
            ":warning: Agent a7 is stuck on task T-3 for 10m 00s",
            "deploy.finished from cd: api v2",
        ])
        self.assertEqual(msgs[1]["blocks"][1]["text"]["text"], "```disk full```")
        self.assertEqual(msgs[3]["blocks"][1]["text"]["text"], "\u2022 *env*: prod")
        for d in self.rx.deliveries("/slack/T0/B0/tok"):
            self.assertEqual(d["response_status"], 200)
            self.assertTrue(d["headers"]["content-type"].startswith("application/json"))
        self.assertEqual(b.dead_letters("chat"), [])
        self.assertEqual(b.stop(), 0)

    def test_messages_are_paced_to_the_rate_after_a_burst(self):
        b = self.make_broker(instances=lambda b: slack_instance(
            self.rx.url("/slack/pace"), "rate = 4.0; burst = 2;"))
        b.start()
        for i in range(8):
            self.publish_acked(b, "p-%d" % i)
        got = self.rx.wait_deliveries("/slack/pace", 8, timeout=20)
        at = [d["received_at"] for d in got]
        # two at once, then one every 250 ms: 6 more take >= 1.5 s
        self.assertLess(at[1] - at[0], 0.2)
        gaps = [b_ - a for a, b_ in zip(at[2:], at[3:])]
        self.assertGreaterEqual(min(gaps), 0.2, gaps)
        self.assertGreaterEqual(at[7] - at[0], 1.4)
        self.assertEqual(b.stop(), 0)

    def test_429_is_retried_after_retry_after_and_nothing_goes_before(self):
        self.rx.script("/slack/busy", [{"status": 429, "retry_after": "2", "body": "rate_limited"}])
        b = self.make_broker(instances=lambda b: slack_instance(
            self.rx.url("/slack/busy"), "rate = 20.0; burst = 10;"))
        b.start()
        self.publish_acked(b, "r-1")
        self.publish_acked(b, "r-2")
        got = self.rx.wait_deliveries("/slack/busy", 3, timeout=15)
        ids = [json.loads(d["body"])["blocks"][-1]["elements"][0]["text"].split("`")[-2]
               for d in got]
        self.assertEqual(ids, ["r-1", "r-1", "r-2"])  # in order
        self.assertEqual(got[0]["response_status"], 429)
        # the retry and the next event both waited out the 2 s
        self.assertGreaterEqual(got[1]["received_at"] - got[0]["received_at"], 1.9)
        self.assertGreaterEqual(got[2]["received_at"] - got[0]["received_at"], 1.9)
        self.assertRegex(b.log(), r"HTTP 429 \(Retry-After 2\): rate-limited by Slack")
        self.assertEqual(b.dead_letters("chat"), [])
        self.assertEqual(b.stop(), 0)

    def test_5xx_and_closed_connections_are_retried(self):
        self.rx.script("/slack/flaky", [{"status": 500, "body": "rollup_error"},
                                        {"close": True}])
        b = self.make_broker(instances=lambda b: slack_instance(self.rx.url("/slack/flaky")))
        b.start()
        self.publish_acked(b, "x-1")
        got = self.rx.wait_deliveries("/slack/flaky", 3)
        self.assertEqual([d["response_status"] for d in got], [500, None, 200])
        self.assertEqual(b.dead_letters("chat"), [])
        self.assertEqual(b.stop(), 0)

    def test_slacks_refusals_are_dead_lettered_with_its_word(self):
        for word, status in (("channel_not_found", 404), ("invalid_token", 403),
                             ("posting_to_general_channel_denied", 403)):
            with self.subTest(word=word):
                path = "/slack/refuse-" + word
                self.rx.script(path, [{"status": status, "body": word}])
                b = self.make_broker(instances=lambda b: slack_instance(self.rx.url(path)))
                b.start()
                self.publish_acked(b, "d-1")
                wait_for(lambda: b.dead_letters("chat"), what="the dead letter")
                dl = b.dead_letters("chat")[0]
                self.assertIn("Slack refused the message: %s (HTTP %d)" % (word, status),
                              dl["reason"])
                self.assertEqual(dl["attempts"], 1)
                self.assertEqual(len(self.rx.deliveries(path)), 1)
                self.assertEqual(b.stop(), 0)

    def test_no_service_disables_the_instance_loudly(self):
        self.rx.script("/slack/gone", [{"status": 404, "body": "no_service"}])
        b = self.make_broker(instances=lambda b: slack_instance(self.rx.url("/slack/gone")))
        b.start()
        self.publish_acked(b, "g-1")
        wait_for(lambda: "Slack answered no_service" in b.log(), what="the error")
        self.assertRegex(b.log(), r"ERROR .*Slack answered no_service")
        self.publish_acked(b, "g-2")
        wait_for(lambda: len(b.dead_letters("chat")) == 2, what="two dead letters")
        self.assertEqual(len(self.rx.deliveries("/slack/gone")), 1)  # g-2 never sent
        self.assertEqual(b.stop(), 0)

    def test_templates_mentions_and_routes(self):
        opts = ('channel = "#ops"; username = "evbus";\n'
                'types = ( { topics = [ "task.failed" ]; mention = "<!here>";\n'
                '            text = "{{project}}: {{data.task_id}} failed ({{data.why}})";\n'
                '            title = "Failure in {{project}}"; },\n'
                '          { topics = [ "agent.*" ]; mention = "<@U42>"; } );\n'
                'routes = ( { project = "alpha"; channel = "#alpha"; },\n'
                '           { project = "alpha"; ticket = "T-7"; channel = "#t7";\n'
                '             icon_emoji = ":fire:"; } );\n'
                'rate = 20.0; burst = 10;')
        b = self.make_broker(instances=lambda b: slack_instance(self.rx.url("/slack/t"), opts))
        b.start()
        self.publish_acked(b, "t-1", "task.failed", project="alpha",
                     data={"task_id": "T-1", "why": "a<b&c"})
        self.publish_acked(b, "t-2", "task.failed", project="beta", data={"task_id": "T-2"})
        self.publish_acked(b, "t-3", "agent.stuck", project="alpha", ticket="T-7",
                     data={"agent_id": "a1"})
        m = self.messages("/slack/t", 3)
        self.assertEqual(m[0]["text"], "<!here> alpha: T-1 failed (a&lt;b&amp;c)")
        self.assertEqual(m[0]["blocks"][0], {"type": "header", "text": {
            "type": "plain_text", "text": "Failure in alpha", "emoji": True}})
        self.assertEqual((m[0]["channel"], m[0]["username"]), ("#alpha", "evbus"))
        self.assertEqual(m[1]["text"], "<!here> beta: T-2 failed ()")
        self.assertEqual(m[1]["channel"], "#ops")
        self.assertTrue(m[2]["text"].startswith("<@U42> :warning: Agent a1 is stuck"))
        self.assertEqual((m[2]["channel"], m[2]["icon_emoji"]), ("#t7", ":fire:"))
        self.assertEqual(b.stop(), 0)

    def test_a_storm_is_folded_into_one_summary(self):
        opts = 'coalesce = { threshold = 2; window = "2s"; }; rate = 20.0; burst = 10;'
        b = self.make_broker(instances=lambda b: slack_instance(self.rx.url("/slack/storm"), opts))
        b.start()
        t0 = time.time()
        for i in range(12):
            self.publish_acked(b, "st-%02d" % i, "agent.stuck", data={"agent_id": "a%d" % i})
        m = self.messages("/slack/storm", 3, timeout=15)
        self.assertTrue(m[0]["text"].startswith(":warning: Agent a0 is stuck"))
        self.assertTrue(m[1]["text"].startswith(":warning: Agent a1 is stuck"))
        self.assertEqual(m[2]["text"], ":repeat: 10 more agent.stuck events in 2.0 s")
        listed = m[2]["blocks"][1]["text"]["text"]
        self.assertIn("`st-02` a2", listed)
        self.assertIn("`st-11` a11", listed)
        got = self.rx.deliveries("/slack/storm")
        self.assertGreaterEqual(got[2]["received_at"] - t0, 1.8)  # when the window ended
        time.sleep(0.5)
        self.assertEqual(len(self.rx.deliveries("/slack/storm")), 3)
        self.assertEqual(b.stop(), 0)
        self.assertRegex(b.log(), r"\[chat\] totals: 12 delivered, 0 retried, 0 dead-lettered")

    def test_huge_events_still_give_a_valid_payload(self):
        b = self.make_broker(instances=lambda b: slack_instance(self.rx.url("/slack/big"),
                                                                "rate = 20.0; burst = 10;"))
        b.start()
        big = "x<&>" * 6000
        self.publish_acked(b, "h-1", "task.failed", subject=big[:4000],
                     data={"task_id": big[:500], "error": big})
        self.publish_acked(b, "h-2", "custom.thing", subject=big[:4000],
                     data={"k%02d" % i: big[:1000] for i in range(30)})
        m = self.messages("/slack/big", 2)  # each checked against Slack's limits
        self.assertTrue(m[0]["text"].startswith(":x: Task x&lt;&amp;&gt;x"), m[0]["text"][:40])
        self.assertEqual(self.rx.deliveries("/slack/big")[1]["response_status"], 200)
        self.assertEqual(b.stop(), 0)

    def test_the_webhook_url_is_a_secret(self):
        url = self.rx.url("/slack/T000/B000/SeCrEtToKeN")
        b = self.make_broker(env={"SLACK_URL": url}, instances=lambda b: slack_instance(
            "${SLACK_URL}", "rate = 20.0;"))
        b.start()
        self.publish_acked(b, "u-1")
        self.messages("/slack/T000/B000/SeCrEtToKeN", 1)
        r = subprocess.run([evbtest.EVBUSD, "-c", b.config, "--check-config"], env=b.env,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(b.stop(), 0)
        for text in (r.stdout, r.stderr, b.log()):
            self.assertNotIn("SeCrEtToKeN", text)
        self.assertIn("posting to http://127.0.0.1:%d/\u2026" % self.rx.port, b.log())

    def test_bad_options_are_reported_with_file_line_and_setting(self):
        opts = ('types = ( { topics = [ "task.*" ]; text = "{{project"; },\n'
                '          { topics = [ "x" ]; title = "no text"; } );\n'
                'routes = ( { channel = "#x"; } );\n'
                'rate = 0.0;')
        b = self.make_broker(instances=lambda b: slack_instance("ftp://example.com/x", opts))
        r = subprocess.run([evbtest.EVBUSD, "-c", b.config, "--check-config"], env=b.env,
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        err = r.stderr
        conf = b.config
        for setting, why in (("options.url", "http:// or https://"),
                             ("options.types[0].text", "has no \"}}\""),
                             ("options.types[1].text", "a template needs text"),
                             ("options.routes[0]", "needs a project or a ticket"),
                             ("options.rate", "want 0.01 to 1000")):
            self.assertRegex(err, r"%s:\d+: .*%s.*%s" % (conf, setting.replace("[", r"\[")
                                                     .replace("]", r"\]"), why.replace("(", r"\(")),
                             err)

    def test_a_missing_url_variable_is_a_config_error(self):
        b = self.make_broker(instances=lambda b: slack_instance("${NO_SUCH_SLACK_URL}"))
        r = subprocess.run([evbtest.EVBUSD, "-c", b.config, "--check-config"], env=b.env,
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("NO_SUCH_SLACK_URL", r.stderr)


if __name__ == "__main__":
    evbtest.main()
