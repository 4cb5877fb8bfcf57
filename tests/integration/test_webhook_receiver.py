"""Tests of the webhook test receiver itself (webhook_receiver.py through
webhooktest.Receiver), so that the webhook plugin's integration tests can
trust what it records: each signature scheme verified by an independent
implementation, scripted answers, hangs, closed connections, concurrency,
the sink mode; and the verification code in docs/webhooks.md, run against
the same vectors. Only the Python standard library (http.client) and Node
with the npm package standardwebhooks; no evbus binary is needed.

Run: /usr/bin/python3 tests/integration/test_webhook_receiver.py
Ends with "test_webhook_receiver: N passed, N failed, N skipped".
"""

import base64
import hashlib
import hmac
import http.client
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from email.utils import formatdate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evbtest  # noqa: E402
import webhook_receiver  # noqa: E402  (locate_node, for the Node checks)
import webhooktest  # noqa: E402

# The Standard Webhooks specification's published vector.
VEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VEC_TS = 1614265330
VEC_BODY = b'{"test": 2432232314}'
VEC_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SECRET2 = "whsec_" + base64.b64encode(b"the second secret, 32 bytes long").decode()
GH_SECRET = "It's a Secret to Everybody"
CUSTOM_SECRET = "custom-secret-1"
CUSTOM_SECRET2 = "custom-secret-2"

DOC = os.path.join(webhooktest.SRCDIR, "docs", "webhooks.md")
EVENT = json.dumps({"specversion": "1.0", "id": "evt-1", "type": "task.completed",
                    "source": "ci/runner-3", "data": {"task_id": "T-17", "note": "h\u00e9"}},
                   separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# ---------------------------------------------------------------- signing (Python hmac)


def sign_standard(secret, msg_id, ts, body):
    key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
    mac = hmac.new(key, b"%s.%d.%s" % (msg_id.encode(), ts, body), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def standard_headers(secrets, body, msg_id="evt-1", ts=None):
    ts = int(time.time()) if ts is None else ts
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": " ".join(sign_standard(s, msg_id, ts, body) for s in secrets),
            "Content-Type": "application/cloudevents+json"}


def sign_github(secret, body):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign_custom(secret, ts, body):
    return hmac.new(secret.encode(), b"%d.%s" % (ts, body), hashlib.sha256).hexdigest()


def custom_headers(secrets, body, ts=None, sig="X-Evbus-Signature", tsh="X-Evbus-Timestamp"):
    ts = int(time.time()) if ts is None else ts
    return {sig: " ".join(sign_custom(s, ts, body) for s in secrets), tsh: str(ts),
            "Content-Type": "application/json"}


# ---------------------------------------------------------------- helpers


def request(port, path, body=b"", headers=None, method="POST", timeout=10):
    """One request on a fresh connection: (status, headers dict lower-cased, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def doc_block(lang):
    """The code block of `lang` in docs/webhooks.md marked as tested."""
    if not os.path.exists(DOC):
        raise unittest.SkipTest("no %s" % DOC)
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"<!-- tested:[^>]*runs this block -->\n```%s\n(.*?)\n```" % lang, text, re.S)
    if not m:
        raise AssertionError("no tested ```%s block in %s" % (lang, DOC))
    return m.group(1) + "\n"


def node_env():
    node, node_path = webhook_receiver.locate_node()
    return node, dict(os.environ, NODE_PATH=node_path)


def wait_port(port, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("the example server exited: %s" % (proc.communicate(),))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the example server did not listen on %d" % port)


# ---------------------------------------------------------------- the receiver


def check_example_server(test, argv, env):
    """A documented example receiver (argv, listening on $HOST:$PORT with
    $EVBUS_WEBHOOK_SECRET) verifies, answers 204, handles a retried id once,
    and refuses a changed body or a wrong secret with 401."""
    port = evbtest.free_port()
    env = dict(env, EVBUS_WEBHOOK_SECRET=VEC_SECRET, HOST="127.0.0.1", PORT=str(port))
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    test.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
    wait_port(port, proc)
    h = standard_headers([VEC_SECRET], EVENT, msg_id="evt-1")
    test.assertEqual(request(port, "/hook", EVENT, h)[0], 204)
    test.assertEqual(request(port, "/hook", EVENT, h)[0], 204)  # a retry: not handled
    h2 = standard_headers([SECRET2, VEC_SECRET], EVENT, msg_id="evt-2")
    test.assertEqual(request(port, "/hook", EVENT, h2)[0], 204)
    test.assertEqual(request(port, "/hook", EVENT + b" ", h2)[0], 401)
    test.assertEqual(request(port, "/hook", EVENT, standard_headers([SECRET2], EVENT))[0], 401)
    time.sleep(0.3)
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    test.assertEqual(out.splitlines(), ["handled evt-1", "handled evt-2"])


class ReceiverTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.r = webhooktest.Receiver().start()

    @classmethod
    def tearDownClass(cls):
        cls.r.stop()

    def setUp(self):
        self.r.reset()

    def post(self, path, body=EVENT, headers=None, **kw):
        return request(self.r.port, path, body, headers, **kw)

    def one(self, path):
        got = self.r.wait_deliveries(path, 1)
        self.assertEqual(len(got), 1, got)
        return got[0]

    # ---- signatures

    def test_standard_signed_now_verifies_with_the_npm_library(self):
        self.r.secrets("/std", "standard", [VEC_SECRET])
        status, _, _ = self.post("/std", headers=standard_headers([VEC_SECRET], EVENT))
        self.assertEqual(status, 200)
        d = self.one("/std")
        self.assertIs(d["verified"], True, d)
        self.assertIsNone(d["verify_error"])
        self.assertEqual(d["verify_results"], [{"secret": 0, "ok": True, "error": None}])
        self.assertEqual(d["method"], "POST")
        self.assertEqual(d["body"], EVENT.decode("utf-8"))
        self.assertEqual(d["headers"]["webhook-id"], "evt-1")
        self.assertEqual(d["headers"]["content-type"], "application/cloudevents+json")
        self.assertEqual(d["response_status"], 200)
        self.assertAlmostEqual(d["received_at"], time.time(), delta=30)

    def test_standard_tampered_body_is_not_verified(self):
        self.r.secrets("/std", "standard", [VEC_SECRET])
        h = standard_headers([VEC_SECRET], EVENT)
        self.post("/std", body=EVENT.replace(b"T-17", b"T-18"), headers=h)
        d = self.one("/std")
        self.assertIs(d["verified"], False)
        self.assertIn("No matching signature", d["verify_error"])

    def test_standard_wrong_secret_stale_timestamp_and_missing_headers_fail(self):
        self.r.secrets("/std", "standard", [VEC_SECRET])
        self.post("/std", headers=standard_headers([SECRET2], EVENT))
        self.post("/std", headers=standard_headers([VEC_SECRET], EVENT,
                                                   ts=int(time.time()) - 3600))
        self.post("/std", headers={"Content-Type": "application/json"})
        got = self.r.wait_deliveries("/std", 3)
        self.assertEqual([d["verified"] for d in got], [False, False, False])
        self.assertIn("No matching signature", got[0]["verify_error"])
        self.assertIn("too old", got[1]["verify_error"])
        self.assertIn("Missing required headers", got[2]["verify_error"])

    def test_standard_two_secrets_need_both_signatures(self):
        self.r.secrets("/rot", "standard", [VEC_SECRET, SECRET2])
        self.post("/rot", headers=standard_headers([VEC_SECRET, SECRET2], EVENT))
        self.post("/rot", headers=standard_headers([SECRET2, VEC_SECRET], EVENT))
        self.post("/rot", headers=standard_headers([VEC_SECRET], EVENT))
        got = self.r.wait_deliveries("/rot", 3)
        for d in got[:2]:
            self.assertIs(d["verified"], True, d)
            self.assertEqual([x["ok"] for x in d["verify_results"]], [True, True])
        self.assertIs(got[2]["verified"], False)
        self.assertEqual([x["ok"] for x in got[2]["verify_results"]], [True, False])
        self.assertTrue(got[2]["verify_error"].startswith("secret 1: "), got[2])
        self.assertEqual(got[0]["headers"]["webhook-signature"].count("v1,"), 2)

    def test_github_signature(self):
        self.r.secrets("/gh", "github", [GH_SECRET])
        self.post("/gh", headers={"X-Hub-Signature-256": sign_github(GH_SECRET, EVENT)})
        self.post("/gh", body=EVENT + b" ",
                  headers={"X-Hub-Signature-256": sign_github(GH_SECRET, EVENT)})
        self.post("/gh")
        got = self.r.wait_deliveries("/gh", 3)
        self.assertEqual([d["verified"] for d in got], [True, False, False])
        self.assertIsNone(got[0]["verify_error"])
        self.assertIn("no matching", got[1]["verify_error"])
        self.assertIn("missing X-Hub-Signature-256", got[2]["verify_error"])

    def test_github_scheme_matches_githubs_published_example(self):
        # docs.github.com, "Validating webhook deliveries": secret
        # "It's a Secret to Everybody", payload "Hello, World!"
        self.assertEqual(
            sign_github(GH_SECRET, b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
        self.r.secrets("/gh", "github", GH_SECRET)
        self.post("/gh", body=b"Hello, World!", headers={
            "X-Hub-Signature-256":
                "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"})
        self.assertIs(self.one("/gh")["verified"], True)

    def test_custom_signature_default_and_configured_headers(self):
        self.r.secrets("/c", "custom", [CUSTOM_SECRET])
        self.r.secrets("/c2", "custom", [CUSTOM_SECRET], signature_header="X-Sig",
                       timestamp_header="X-Time")
        self.post("/c", headers=custom_headers([CUSTOM_SECRET], EVENT))
        self.post("/c", body=b"{}", headers=custom_headers([CUSTOM_SECRET], EVENT))
        self.post("/c", headers=custom_headers([CUSTOM_SECRET], EVENT,
                                               ts=int(time.time()) - 3600))
        h = custom_headers([CUSTOM_SECRET], EVENT)
        h["X-Evbus-Signature"] = h["X-Evbus-Signature"].upper()  # must be lowercase hex
        self.post("/c", headers=h)
        h = custom_headers([CUSTOM_SECRET], EVENT)
        h["X-Evbus-Timestamp"] = "\u00b2"
        self.post("/c", headers=h)
        self.post("/c2", headers=custom_headers([CUSTOM_SECRET], EVENT, sig="X-Sig",
                                                tsh="X-Time"))
        self.post("/c2", headers=custom_headers([CUSTOM_SECRET], EVENT))
        got = self.r.wait_deliveries("/c", 5)
        self.assertEqual([d["verified"] for d in got], [True, False, False, False, False])
        self.assertIn("more than 300s from now", got[2]["verify_error"])
        self.assertIn("not an integer", got[4]["verify_error"])
        got2 = self.r.wait_deliveries("/c2", 2)
        self.assertEqual([d["verified"] for d in got2], [True, False])
        self.assertIn("missing X-Sig", got2[1]["verify_error"])

    def test_custom_two_secrets(self):
        self.r.secrets("/c", "custom", [CUSTOM_SECRET, CUSTOM_SECRET2])
        self.post("/c", headers=custom_headers([CUSTOM_SECRET, CUSTOM_SECRET2], EVENT))
        self.post("/c", headers=custom_headers([CUSTOM_SECRET2], EVENT))
        got = self.r.wait_deliveries("/c", 2)
        self.assertIs(got[0]["verified"], True)
        self.assertEqual([x["ok"] for x in got[0]["verify_results"]], [True, True])
        self.assertIs(got[1]["verified"], False)
        self.assertEqual([x["ok"] for x in got[1]["verify_results"]], [False, True])
        self.assertTrue(got[1]["verify_error"].startswith("secret 0: "))

    def test_no_scheme_or_none_records_verified_null(self):
        self.r.secrets("/n", "none")
        self.post("/n")
        self.post("/unconfigured")
        self.assertIsNone(self.one("/n")["verified"])
        d = self.one("/unconfigured")
        self.assertIsNone(d["verified"])
        self.assertIsNone(d["verify_error"])

    # ---- scripted answers

    def test_scripted_500_then_200_then_default(self):
        self.r.script("/s", [{"status": 500}, {"status": 200, "body": "ok"}],
                      default={"status": 204})
        results = [self.post("/s") for _ in range(4)]
        self.assertEqual([s for s, _, _ in results], [500, 200, 204, 204])
        self.assertEqual(results[1][2], b"ok")
        got = self.r.wait_deliveries("/s", 4)
        self.assertEqual([d["response_status"] for d in got], [500, 200, 204, 204])
        # without a script: 200
        self.assertEqual(self.post("/other")[0], 200)

    def test_429_retry_after_passed_through_as_given(self):
        date = formatdate(time.time() + 60, usegmt=True)
        self.r.script("/t", [{"status": 429, "retry_after": "2"},
                             {"status": 503, "retry_after": date}])
        s1, h1, _ = self.post("/t")
        s2, h2, _ = self.post("/t")
        self.assertEqual((s1, h1["retry-after"]), (429, "2"))
        self.assertEqual((s2, h2["retry-after"]), (503, date))

    def test_410_redirect_400_body_and_delay(self):
        self.r.script("/x", [{"status": 410},
                             {"status": 301, "location": "http://127.0.0.1:1/moved"},
                             {"status": 400, "body": "bad field x"},
                             {"delay_ms": 150, "status": 200}])
        self.assertEqual(self.post("/x")[0], 410)
        s, h, _ = self.post("/x")
        self.assertEqual((s, h["location"]), (301, "http://127.0.0.1:1/moved"))
        s, _, b = self.post("/x")
        self.assertEqual((s, b), (400, b"bad field x"))
        t0 = time.monotonic()
        self.assertEqual(self.post("/x")[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.14)

    def test_hang_times_out_the_client_while_other_connections_are_answered(self):
        self.r.script("/slow", [{"hang": 30}])
        errors = []

        def slow():
            try:
                self.post("/slow", timeout=4)
                errors.append("answered")
            except (socket.timeout, TimeoutError) as e:
                errors.append(e)

        t = threading.Thread(target=slow)
        t0 = time.monotonic()
        t.start()
        self.r.wait_deliveries("/slow", 1)
        t1 = time.monotonic()
        self.assertEqual(self.post("/fast", timeout=3)[0], 200)
        # answered while the hanging request still waits for its answer
        self.assertTrue(t.is_alive())
        self.assertLess(time.monotonic() - t1, 2)
        t.join(20)
        self.assertEqual(len(errors), 1)
        self.assertIsInstance(errors[0], (socket.timeout, TimeoutError))
        self.assertLess(time.monotonic() - t0, 15)
        self.assertIsNone(self.one("/slow")["response_status"])

    def test_close_gives_the_client_a_connection_error(self):
        self.r.script("/cl", [{"close": True}, {"close": "reset"}])
        for _ in range(2):
            with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
                self.post("/cl")
        got = self.r.wait_deliveries("/cl", 2)
        self.assertEqual([d["response_status"] for d in got], [None, None])
        self.assertEqual(self.post("/cl")[0], 200)

    def test_keep_alive_reuses_one_connection_and_chunked_bodies_are_read(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.r.port, timeout=10)
        self.addCleanup(conn.close)
        socks = set()
        for i in range(5):
            conn.request("POST", "/ka", body=b'{"n": %d}' % i,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            self.assertEqual(resp.status, 200)
            self.assertFalse(resp.will_close)
            socks.add(id(conn.sock))
        self.assertEqual(len(socks), 1)
        conn.request("POST", "/ka", body=iter([b'{"chunked": ', b"true}"]),
                     encode_chunked=True)
        resp = conn.getresponse()
        resp.read()
        got = self.r.wait_deliveries("/ka", 6)
        self.assertEqual([d["body"] for d in got],
                         ['{"n": %d}' % i for i in range(5)] + ['{"chunked": true}'])

    def test_64_parallel_connections(self):
        n = 64
        self.r.script("/par", [], default={"delay_ms": 200, "status": 200})
        barrier = threading.Barrier(n)
        statuses = []
        lock = threading.Lock()

        def one(i):
            conn = http.client.HTTPConnection("127.0.0.1", self.r.port, timeout=20)
            try:
                conn.connect()
                barrier.wait(10)
                conn.request("POST", "/par", body=b'{"i": %d}' % i)
                resp = conn.getresponse()
                resp.read()
                with lock:
                    statuses.append(resp.status)
            finally:
                conn.close()

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        # 64 answers that each wait 200 ms, all at once: well under 64 * 0.2 s
        self.assertLess(time.monotonic() - t0, 8)
        self.assertEqual(statuses, [200] * n)
        got = self.r.wait_deliveries("/par", n)
        self.assertEqual(sorted(json.loads(d["body"])["i"] for d in got), list(range(n)))

    def test_reset_clears_scripts_secrets_deliveries(self):
        self.r.script("/z", [{"status": 500}])
        self.r.secrets("/z", "github", [GH_SECRET])
        self.post("/z", headers={"X-Hub-Signature-256": sign_github(GH_SECRET, EVENT)})
        self.assertEqual(len(self.r.deliveries()), 1)
        self.assertEqual(self.r.count()["requests"], 1)
        self.r.reset()
        self.assertEqual(self.r.deliveries(), [])
        self.assertEqual(self.r.count(), {"requests": 0, "bytes": 0})
        self.assertEqual(self.post("/z")[0], 200)
        self.assertIsNone(self.one("/z")["verified"])

    def test_control_api_rejects_bad_requests(self):
        with self.assertRaises(webhooktest.ReceiverError):
            self.r.secrets("/b", "rot13", ["x"])
        with self.assertRaises(webhooktest.ReceiverError):
            self.r.script("/b", [{"status": 1000}])
        with self.assertRaises(webhooktest.ReceiverError):
            self.r.secrets("/b", "standard", [])
        self.assertEqual(self.r.url("/hook"), "http://127.0.0.1:%d/hook" % self.r.port)


class NodeLibraryTest(unittest.TestCase):
    def test_published_vector(self):
        """The published vector against our Python signer and the npm
        library's own signer. Its verify() always checks the timestamp
        against now (5 minutes, no option to skip), so the vector's verify
        belongs to the C unit tests; here it must fail as too old."""
        self.assertEqual(sign_standard(VEC_SECRET, VEC_ID, VEC_TS, VEC_BODY), VEC_SIG)
        node, env = node_env()
        reqs = [
            {"op": "sign", "secret": VEC_SECRET, "id": VEC_ID, "timestamp": VEC_TS,
             "body": VEC_BODY.decode()},
            {"secret": VEC_SECRET, "body": VEC_BODY.decode(),
             "headers": {"webhook-id": VEC_ID, "webhook-timestamp": str(VEC_TS),
                         "webhook-signature": VEC_SIG}},
        ]
        r = subprocess.run([node, webhook_receiver.HELPER], env=env, capture_output=True,
                           text=True, timeout=60,
                           input="".join(json.dumps(x) + "\n" for x in reqs))
        out = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual(out[0], {"ok": True, "signature": VEC_SIG}, r.stderr)
        self.assertEqual(out[1], {"ok": False, "error": "Message timestamp too old"})


class StartupTest(unittest.TestCase):
    def test_missing_node_fails_at_start_with_a_clear_message(self):
        r = webhooktest.Receiver(env={"EVBUS_TEST_NODE": "/nonexistent/node"})
        with self.assertRaises(webhooktest.ReceiverError) as cm:
            r.start()
        msg = str(cm.exception)
        self.assertIn("exited at start (code 2)", msg)
        self.assertIn("node not found", msg)
        self.assertIn("npm install -g standardwebhooks@1.1.1", msg)

    def test_missing_package_fails_at_start_with_a_clear_message(self):
        empty = tempfile.mkdtemp(prefix="webhooktest-empty-")
        self.addCleanup(shutil.rmtree, empty, True)
        r = webhooktest.Receiver(env={"EVBUS_TEST_NODE_PATH": empty})
        with self.assertRaises(webhooktest.ReceiverError) as cm:
            r.start()
        msg = str(cm.exception)
        self.assertIn("exited at start (code 2)", msg)
        self.assertIn("cannot load the npm package standardwebhooks", msg)
        self.assertIn("npm install -g standardwebhooks@1.1.1", msg)


class SinkTest(unittest.TestCase):
    def test_sink_counts_requests_and_bytes(self):
        with webhooktest.Receiver(sink=True) as r:
            conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
            self.addCleanup(conn.close)
            total = 0
            for i in range(200):
                body = b'{"i": %d}' % i
                total += len(body)
                conn.request("POST", "/sink", body=body,
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                self.assertEqual(resp.status, 200)
            conn.request("POST", "/sink", body=iter([b"ab", b"cde"]), encode_chunked=True)
            resp = conn.getresponse()
            resp.read()
            self.assertEqual(r.count(), {"requests": 201, "bytes": total + 5})
            with self.assertRaises(webhooktest.ReceiverError):
                r.deliveries()  # sink mode records nothing
            r.reset()
            self.assertEqual(r.count(), {"requests": 0, "bytes": 0})


# ---------------------------------------------------------------- docs/webhooks.md


class DocPythonTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="webhooktest-doc-")
        cls.path = os.path.join(cls.dir, "receiver.py")
        with open(cls.path, "w", encoding="utf-8") as f:
            f.write(doc_block("python"))
        spec = importlib.util.spec_from_file_location("doc_receiver", cls.path)
        cls.m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cls.m)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_verify_standard_published_vector_and_doc_example(self):
        m = self.m
        h = {"webhook-id": VEC_ID, "webhook-timestamp": str(VEC_TS), "webhook-signature": VEC_SIG}
        m.verify_standard(VEC_SECRET, h, VEC_BODY, now=VEC_TS + 10)
        with self.assertRaises(m.InvalidSignature):
            m.verify_standard(VEC_SECRET, h, VEC_BODY)  # 2021: too old now
        with self.assertRaises(m.InvalidSignature):
            m.verify_standard(VEC_SECRET, h, VEC_BODY + b" ", now=VEC_TS)
        # the example delivery shown in the doc verifies
        with open(DOC, encoding="utf-8") as f:
            text = f.read()
        ex = re.search(r"checks this signature -->\n```http\n(.*?)\n```", text, re.S).group(1)
        head, body = ex.split("\n\n", 1)
        headers = dict(line.split(": ", 1) for line in head.splitlines()[1:])
        self.assertEqual(int(headers["Content-Length"]), len(body.encode()))
        lower = {k.lower(): v for k, v in headers.items()}
        m.verify_standard(VEC_SECRET, lower, body.encode(),
                          now=int(lower["webhook-timestamp"]))
        self.assertEqual(json.loads(body)["id"], lower["webhook-id"])

    def test_verify_functions_against_the_test_signers(self):
        m = self.m

        def low(h):
            return {k.lower(): v for k, v in h.items()}

        m.verify_standard(VEC_SECRET, low(standard_headers([VEC_SECRET], EVENT)), EVENT)
        # rotation: one of two signatures is ours
        m.verify_standard(SECRET2, low(standard_headers([VEC_SECRET, SECRET2], EVENT)), EVENT)
        m.verify_github(GH_SECRET, {"x-hub-signature-256": sign_github(GH_SECRET, EVENT)}, EVENT)
        m.verify_custom(CUSTOM_SECRET2,
                        low(custom_headers([CUSTOM_SECRET, CUSTOM_SECRET2], EVENT)), EVENT)
        m.verify_custom(CUSTOM_SECRET, low(custom_headers([CUSTOM_SECRET], EVENT, sig="X-S",
                                                          tsh="X-T")), EVENT,
                        signature_header="x-s", timestamp_header="x-t")
        bad = [
            lambda: m.verify_standard(SECRET2, low(standard_headers([VEC_SECRET], EVENT)), EVENT),
            lambda: m.verify_standard(VEC_SECRET, low(standard_headers(
                [VEC_SECRET], EVENT, ts=int(time.time()) - 600)), EVENT),
            lambda: m.verify_standard(VEC_SECRET, {}, EVENT),
            lambda: m.verify_github(GH_SECRET, {"x-hub-signature-256": sign_github(
                GH_SECRET, EVENT)}, EVENT + b"x"),
            lambda: m.verify_github(GH_SECRET, {}, EVENT),
            lambda: m.verify_custom(CUSTOM_SECRET, low(custom_headers([CUSTOM_SECRET2], EVENT)),
                                    EVENT),
            lambda: m.verify_custom(CUSTOM_SECRET, low(custom_headers(
                [CUSTOM_SECRET], EVENT, ts=int(time.time()) + 600)), EVENT),
            lambda: m.verify_custom(CUSTOM_SECRET, {"x-evbus-signature": "00"}, EVENT),
            lambda: m.verify_custom(CUSTOM_SECRET, {"x-evbus-signature": "00",
                                                    "x-evbus-timestamp": "\u00b2"}, EVENT),
        ]
        for i, f in enumerate(bad):
            with self.subTest(case=i), self.assertRaises(self.m.InvalidSignature):
                f()

    def test_example_server_verifies_dedupes_and_answers_fast(self):
        check_example_server(self, [webhooktest.python3(), self.path],
                             dict(os.environ, PYTHONUNBUFFERED="1"))


class DocNodeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="webhooktest-doc-")
        cls.path = os.path.join(cls.dir, "receiver.js")
        with open(cls.path, "w", encoding="utf-8") as f:
            f.write(doc_block("javascript"))
        cls.node, cls.env = node_env()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def run_cases(self, cases):
        harness = (
            "const m = require(%s);\n"
            "const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
            "const out = cases.map((c) => {\n"
            "  const body = Buffer.from(c.body, 'base64');\n"
            "  try { m[c.fn](c.secret, c.headers, body, ...(c.args || [])); return 'ok'; }\n"
            "  catch (e) { return 'error: ' + e.message; }\n"
            "});\n"
            "console.log(JSON.stringify(out));\n" % json.dumps(self.path))
        r = subprocess.run([self.node, "-e", harness], input=json.dumps(cases), text=True,
                           capture_output=True, env=self.env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def case(self, fn, secret, headers, body=EVENT, args=None):
        return {"fn": fn, "secret": secret, "body": base64.b64encode(body).decode(),
                "headers": {k.lower(): v for k, v in headers.items()}, "args": args or []}

    def test_verify_functions_against_the_test_signers(self):
        now = int(time.time())
        good = [
            self.case("verifyStandard", VEC_SECRET, standard_headers([VEC_SECRET], EVENT)),
            self.case("verifyStandard", SECRET2, standard_headers([VEC_SECRET, SECRET2], EVENT)),
            self.case("verifyGithub", GH_SECRET, {"X-Hub-Signature-256":
                                                  sign_github(GH_SECRET, EVENT)}),
            self.case("verifyCustom", CUSTOM_SECRET2,
                      custom_headers([CUSTOM_SECRET, CUSTOM_SECRET2], EVENT)),
            self.case("verifyCustom", CUSTOM_SECRET,
                      custom_headers([CUSTOM_SECRET], EVENT, sig="X-S", tsh="X-T"),
                      args=["x-s", "x-t"]),
        ]
        bad = [
            self.case("verifyStandard", SECRET2, standard_headers([VEC_SECRET], EVENT)),
            self.case("verifyStandard", VEC_SECRET,
                      standard_headers([VEC_SECRET], EVENT, ts=now - 600)),
            self.case("verifyStandard", VEC_SECRET, standard_headers([VEC_SECRET], EVENT),
                      body=EVENT + b" "),
            self.case("verifyGithub", GH_SECRET, {"X-Hub-Signature-256":
                                                  sign_github(GH_SECRET, EVENT)},
                      body=EVENT + b"x"),
            self.case("verifyGithub", GH_SECRET, {}),
            self.case("verifyCustom", CUSTOM_SECRET, custom_headers([CUSTOM_SECRET2], EVENT)),
            self.case("verifyCustom", CUSTOM_SECRET,
                      custom_headers([CUSTOM_SECRET], EVENT, ts=now + 600)),
            self.case("verifyCustom", CUSTOM_SECRET, {"X-Evbus-Signature": "00"}),
        ]
        out = self.run_cases(good + bad)
        self.assertEqual(out[:len(good)], ["ok"] * len(good))
        for i, res in enumerate(out[len(good):]):
            self.assertTrue(res.startswith("error: "), (i, res))

    def test_example_server_verifies_dedupes_and_answers_fast(self):
        check_example_server(self, [self.node, self.path], self.env)


if __name__ == "__main__":
    evbtest.main(needs_evbusd=False)  # it tests the receiver alone
