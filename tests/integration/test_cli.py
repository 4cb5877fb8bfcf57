"""The CLIs and the Python examples against a real evbusd: evbus-pub in
both modes and in line mode, evbus-sub with patterns, publish.py and
subscribe.py written from docs/protocol.md alone."""

import json
import os
import subprocess
import time

import evbtest
from evbtest import envelope, wait_for

EXAMPLES = os.path.join(evbtest.SRCDIR, "examples", "python")


class CliTest(evbtest.TestCase):
    def pub(self, b, *args, input_=None, ack=False):
        cmd = [evbtest.EVBUS_PUB, "--endpoint", b.ack if ack else b.pub]
        if ack:
            cmd.append("--ack")
        return b.run_tool(cmd + list(args), input_=input_)

    def test_fire_and_forget_publish_reaches_the_file_with_its_data(self):
        b = self.make_broker().start()
        r = self.pub(b, "--type", "task.completed", "--source", "ci/runner-3",
                     "--project", "alpha", "--ticket", "T-17", "--subject", "build",
                     "--data", '{"task_id":"T-17","duration_ms":5120,"cost":0.42}')
        self.assertEqual(r.returncode, 0, r.stderr)
        line = wait_for(lambda: b.output(), what="the event in the file")[0]
        self.assertEqual(line["type"], "task.completed")
        self.assertEqual(line["source"], "ci/runner-3")
        self.assertEqual(line["project"], "alpha")
        self.assertEqual(line["ticket"], "T-17")
        self.assertEqual(line["subject"], "build")
        self.assertEqual(line["data"], {"task_id": "T-17", "duration_ms": 5120, "cost": 0.42})
        self.assertEqual(len(line["id"]), 36)

    def test_ack_prints_the_accepted_id_and_data_can_come_from_a_file_or_stdin(self):
        b = self.make_broker().start()
        r = self.pub(b, "--type", "agent.stuck", "--id", "stuck-1",
                     "--data", '{"agent_id":"a-7","stuck_for_s":900}', ack=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode().strip(), "stuck-1")
        path = os.path.join(b.dir, "data.json")
        with open(path, "w") as f:
            f.write('{"from": "file"}')
        r = self.pub(b, "--type", "task.failed", "--id", "f-1", "--data", "@" + path, ack=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.pub(b, "--type", "task.failed", "--id", "s-1", "--data", "-",
                     input_=b'{"from": "stdin"}', ack=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = wait_for(lambda: b.output() if len(b.output()) == 3 else None,
                         what="three events")
        self.assertEqual({l["id"]: l["data"] for l in lines},
                         {"stuck-1": {"agent_id": "a-7", "stuck_for_s": 900},
                          "f-1": {"from": "file"}, "s-1": {"from": "stdin"}})

    def test_invalid_input_exits_1_with_the_reason_and_sends_nothing(self):
        b = self.make_broker().start()
        r = self.pub(b, "--type", "Task.Failed", ack=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("type", r.stderr.decode())
        r = self.pub(b, "--type", "task.failed", "--data", "{not json", ack=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("line 1, column", r.stderr.decode())
        r = self.pub(b, "--bogus")
        self.assertEqual(r.returncode, 2)
        time.sleep(0.2)
        self.assertEqual(b.output(), [])

    def test_broker_rejection_is_reported_with_its_code(self):
        b = self.make_broker(ingress="max_depth = 3;").start()
        r = self.pub(b, "--type", "task.failed", "--data", '{"a":{"b":{"c":1}}}', ack=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("too_deep", r.stderr.decode())

    def test_ack_without_a_broker_times_out_with_status_3(self):
        port = evbtest.free_port()
        t0 = time.monotonic()
        r = subprocess.run([evbtest.EVBUS_PUB, "--ack", "--endpoint",
                            "tcp://127.0.0.1:%d" % port, "--timeout", "300",
                            "--type", "task.failed"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertLess(time.monotonic() - t0, 5)

    def test_json_lines_on_stdin_are_published_and_bad_lines_reported(self):
        b = self.make_broker().start()
        lines = "\n".join([
            json.dumps({"type": "task.completed", "id": "l1", "source": "x",
                        "data": {"n": 1}}),
            "",
            "{broken",
            json.dumps({"type": "budget.warning", "id": "l2", "source": "x"}),
            json.dumps({"type": "BAD", "id": "l3", "source": "x"}),
            json.dumps({"type": "agent.stuck", "id": "l4", "source": "x",
                        "data_base64": "Zm9vYmFy"}),
        ]) + "\n"
        r = self.pub(b, input_=lines.encode(), ack=True)
        self.assertEqual(r.returncode, 1)           # two bad lines
        err = r.stderr.decode()
        self.assertIn("line 3", err)
        self.assertIn("line 5", err)
        self.assertEqual(r.stdout.decode().split(), ["l1", "l2", "l4"])
        got = wait_for(lambda: b.output() if len(b.output()) == 3 else None,
                       what="three events")
        self.assertEqual([l["id"] for l in got], ["l1", "l2", "l4"])
        self.assertEqual(got[2]["data_base64"], "Zm9vYmFy")   # binary data kept

    def test_evbus_sub_prints_matching_events_as_json_lines(self):
        b = self.make_broker().start()
        sub = subprocess.Popen([evbtest.EVBUS_SUB, "--endpoint", b.egress, "--count", "3",
                                "--timeout", "10000", "task.*", "agent.stuck"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: sub.poll() is None and sub.kill())
        # the subscription takes a moment to reach the broker: keep
        # publishing a mix until three matching events have been printed
        sent = []
        deadline = time.monotonic() + 10
        i = 0
        while sub.poll() is None and time.monotonic() < deadline:
            for t in ["budget.warning", "task.failed", "workflow.step.completed"]:
                b.ack_publish([t.encode(), envelope(t, id="%s-%d" % (t, i))])
                sent.append(t)
            i += 1
            time.sleep(0.05)
        out, err = sub.communicate(timeout=10)
        self.assertEqual(sub.returncode, 0, err)
        events = [json.loads(l) for l in out.decode().splitlines()]
        self.assertEqual(len(events), 3)
        self.assertTrue(all(e["type"] == "task.failed" for e in events), events)
        # consecutive: nothing matching was skipped once the subscription was up
        nums = [int(e["id"].rsplit("-", 1)[1]) for e in events]
        self.assertEqual(nums, list(range(nums[0], nums[0] + 3)))
        self.assertEqual(events[0]["specversion"], "1.0")

    def test_python_examples_publish_and_subscribe(self):
        b = self.make_broker().start()
        r = subprocess.run([evbtest.PYTHON, os.path.join(EXAMPLES, "publish.py"),
                            "--endpoint", b.ack, "--ack", "--type", "task.completed",
                            "--id", "py-1", "--data", '{"task_id":"T-20"}'],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"py-1", r.stdout)
        r = subprocess.run([evbtest.PYTHON, os.path.join(EXAMPLES, "publish.py"),
                            "--endpoint", b.pub, "--type", "task.failed",
                            "--id", "py-2", "--data", '{"error":"boom"}'],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run([evbtest.PYTHON, os.path.join(EXAMPLES, "publish.py"),
                            "--endpoint", b.ack, "--ack", "--type", "task.failed",
                            "--data", '{"x":1}', "--attr", "time=yesterday"],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        got = wait_for(lambda: b.output() if len(b.output()) == 2 else None, what="2 events")
        self.assertEqual([(l["id"], l["data"]) for l in got],
                         [("py-1", {"task_id": "T-20"}), ("py-2", {"error": "boom"})])

        sub = subprocess.Popen([evbtest.PYTHON, os.path.join(EXAMPLES, "subscribe.py"),
                                "--endpoint", b.egress, "--count", "1", "--timeout", "10000",
                                "agent."], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: sub.poll() is None and sub.kill())
        deadline = time.monotonic() + 10
        k = 0
        while sub.poll() is None and time.monotonic() < deadline:
            # a new id each time: a repeated id is a duplicate, answered with
            # the original acceptance and not published again
            k += 1
            b.ack_publish([b"agent.stuck", envelope("agent.stuck", id="py-sub-%d" % k)])
            time.sleep(0.1)
        out, err = sub.communicate(timeout=10)
        self.assertEqual(sub.returncode, 0, err)
        self.assertTrue(json.loads(out.decode().splitlines()[0])["id"].startswith("py-sub-"))


if __name__ == "__main__":
    evbtest.main()
