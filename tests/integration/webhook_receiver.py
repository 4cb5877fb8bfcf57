#!/usr/bin/env python3
"""A scriptable HTTP/1.1 webhook receiver for the integration tests.

    /usr/bin/python3 webhook_receiver.py [--host 127.0.0.1] [--port 0]
        [--ready-file F] [--sink] [--exit-with-parent] [--verbose]

It prints the bound port as the first line on stdout and, with
--ready-file, writes it to F (atomically) once it accepts connections.
Standard library only, plus Node for one scheme (below).

Every request to a path outside /_control/ is recorded and answered as the
path's script says. Scripts, secrets and the deliveries filter match the
path without its query string (kept in the record's "query"). The control
API, on the same server (JSON bodies):

  POST /_control/script   {"path": "/a", "responses": [R, ...], "default": R}
      Responses are consumed in order for that path, then "default" applies
      (200 when not given). Posting a script for a path replaces its
      previous one. A response R is an object with any of:
        "status": 200        the status code (default 200)
        "body": "text"       the response body (default empty)
        "retry_after": "2"   a Retry-After header, passed through as given
                             (seconds or an HTTP date)
        "location": "http:"  a Location header
        "headers": {...}     further response headers
        "delay_ms": 20       answer after this many milliseconds
        "hang": 30           wait this many seconds, then close the
                             connection without answering (or answer, if
                             "status" is given too): the client should
                             time out first
        "idle_close_ms": 100 answer, then close the connection when no
                             further request comes on it for this long
                             (a server's keep-alive timeout)
        "close": true        close the connection without answering
                             ("reset" sends a TCP RST instead of a FIN)
  POST /_control/secrets  {"path": "/a", "scheme": "standard"|"github"|
                           "custom"|"none", "secrets": ["..."],
                           "signature_header": "X-Evbus-Signature",
                           "timestamp_header": "X-Evbus-Timestamp",
                           "tolerance": 300}
      How deliveries to that path are verified. With several secrets, a
      delivery is valid only if it verifies with each of them (each
      secret's signature must be present); per-secret results are recorded.
      Secrets are "whsec_<base64>" for standard, used as UTF-8 bytes for
      github and custom.
      "tolerance" (seconds, custom scheme only; 0 or null: no check) bounds
      how far the timestamp header may be from now; the standard scheme
      uses the library's fixed 5 minutes.
  GET  /_control/deliveries[?path=/a]
      JSON list in arrival order of {"method", "path", "query", "headers"
      (lower-cased names), "body" (text), "received_at" (unix time, float),
      "verified" (true/false, null when the path has no scheme or "none"),
      "verify_error" (string or null), "verify_results" ([{"secret": i,
      "ok", "error"}] per configured secret), "response_status" (what the
      receiver answered; null for close and for a hang without a status)}.
  Paths starting with /slack behave like Slack incoming webhooks: each
  payload is checked against Slack's Block Kit limits (a text fallback, at
  most 50 blocks, 3,000 characters per section text, 2,000 per field and
  10 fields, 150 per header); a payload Slack would refuse is answered 400
  "invalid_payload" whatever the script says, and its problems are
  recorded in the delivery's "slack_problems" (else []). A 200 without a
  scripted body answers "ok", as Slack does.
  GET  /_control/count    {"requests": N, "bytes": M} (non-control requests
                          and their body bytes)
  GET  /_control/health   {"ok": true, "sink": false}
  POST /_control/reset    clears scripts, secrets, deliveries and counts

Verification uses implementations independent of evbus: "github" and
"custom" with Python's hmac here; "standard" with the npm package
standardwebhooks in ONE long-lived Node helper (webhook_verify_standard.js),
started at launch and called under a lock. Node is `node` on PATH (or
$EVBUS_TEST_NODE); the package is looked up in $EVBUS_TEST_NODE_PATH if set,
else in $NODE_PATH and `npm root -g`. If either is missing the receiver
exits with status 2 and says so: verification is never skipped silently.

--sink: the benchmark's fast sink. Every non-control request is answered
"200" at once, counted (requests and body bytes) and not recorded or
verified; only /_control/count, /_control/health and /_control/reset work.
No Node helper is started.
"""

import argparse
import hashlib
import hmac
import json
import os
import select
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
HELPER = os.path.join(HERE, "webhook_verify_standard.js")
CONTROL = "/_control/"
SCHEMES = ("standard", "github", "custom", "none")
DEFAULT_SIGNATURE_HEADER = "X-Evbus-Signature"
DEFAULT_TIMESTAMP_HEADER = "X-Evbus-Timestamp"
DEFAULT_TOLERANCE = 300
NPM_HINT = "install it with: npm install -g standardwebhooks@1.1.1"


class SetupError(Exception):
    pass


# ---------------------------------------------------------------- Node helper


def locate_node(node=None, node_path=None):
    """(node executable, NODE_PATH value) for the Standard Webhooks helper."""
    node = node or os.environ.get("EVBUS_TEST_NODE") or shutil.which("node") \
        or shutil.which("nodejs")
    if not node or not (os.path.isfile(node) and os.access(node, os.X_OK)):
        raise SetupError(
            "node not found (%s): the standard scheme is verified with Node and the npm "
            "package standardwebhooks; install Debian's nodejs and npm, then %s"
            % (node or "not on PATH", NPM_HINT))
    if node_path is None:
        node_path = os.environ.get("EVBUS_TEST_NODE_PATH")
    if node_path is None:
        paths = [p for p in os.environ.get("NODE_PATH", "").split(os.pathsep) if p]
        npm = shutil.which("npm")
        if npm:
            try:
                r = subprocess.run([npm, "root", "-g"], capture_output=True, text=True,
                                   timeout=60, stdin=subprocess.DEVNULL)
                root = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
                if r.returncode == 0 and root:
                    paths.append(root)
            except (OSError, subprocess.TimeoutExpired):
                pass
        node_path = os.pathsep.join(paths)
    return node, node_path


class StandardVerifier:
    """The long-lived Node helper; calls are serialised with a lock."""

    def __init__(self, node=None, node_path=None, startup_timeout=30.0):
        node, node_path = locate_node(node, node_path)
        env = dict(os.environ)
        env["NODE_PATH"] = node_path
        self.lock = threading.Lock()
        try:
            self.proc = subprocess.Popen([node, HELPER], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, env=env)
        except OSError as e:
            raise SetupError("cannot run node (%s): %s" % (node, e))
        # The first line is the ping's answer, or the helper's "fatal" line
        # when the package could not be loaded.
        try:
            self.proc.stdin.write(b'{"op": "ping"}\n')
            self.proc.stdin.flush()
        except OSError:
            pass
        ready, _, _ = select.select([self.proc.stdout], [], [], startup_timeout)
        line = self.proc.stdout.readline() if ready else b""
        try:
            answer = json.loads(line) if line else {}
        except ValueError:
            answer = {"error": "unexpected output %r" % line[:200]}
        if not answer.get("ok"):
            self.close()
            reason = answer.get("fatal") or answer.get("error") or (
                "no answer from %s within %.0fs" % (HELPER, startup_timeout) if not ready
                else "%s exited at start (code %s)" % (HELPER, self.proc.returncode))
            raise SetupError("the Standard Webhooks verifier did not start: %s; %s"
                             % (reason, NPM_HINT))
        self.versions = answer

    def call(self, request):
        data = (json.dumps(request) + "\n").encode("utf-8")
        with self.lock:
            try:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
                line = self.proc.stdout.readline()
            except (OSError, ValueError) as e:
                return {"ok": False, "error": "the Node verifier is gone: %s" % e}
        if not line:
            return {"ok": False, "error": "the Node verifier exited (code %s)"
                    % self.proc.poll()}
        return json.loads(line)

    def verify(self, secret, headers, body_text):
        r = self.call({"secret": secret, "headers": headers, "body": body_text})
        return bool(r.get("ok")), r.get("error")

    def close(self):
        p = getattr(self, "proc", None)
        if p is None:
            return
        try:
            p.stdin.close()
        except OSError:
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        try:
            p.stdout.close()
        except OSError:
            pass


# ---------------------------------------------------------------- Python schemes


def _eq(a, b):
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"),
                               b.encode("utf-8", "surrogateescape"))


def _check_timestamp(ts, tolerance):
    if ts is None:
        return "missing timestamp header"
    if not (ts.isascii() and ts.isdigit()):
        return "timestamp is not an integer: %r" % ts
    if tolerance and abs(time.time() - int(ts)) > tolerance:
        return "timestamp %s is more than %ss from now" % (ts, tolerance)
    return None


def verify_github(secret, headers, body):
    value = headers.get("x-hub-signature-256")
    if value is None:
        return False, "missing X-Hub-Signature-256 header"
    expected = "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    for entry in value.replace(",", " ").split():
        if _eq(entry, expected):
            return True, None
    return False, "no matching sha256= signature"


def verify_custom(secret, headers, body, signature_header, timestamp_header, tolerance):
    value = headers.get(signature_header.lower())
    if value is None:
        return False, "missing %s header" % signature_header
    ts = headers.get(timestamp_header.lower())
    if ts is None:
        return False, "missing %s header" % timestamp_header
    err = _check_timestamp(ts, tolerance)
    if err:
        return False, err
    expected = hmac.new(secret.encode("utf-8"), ts.encode("utf-8") + b"." + body,
                        hashlib.sha256).hexdigest()
    for entry in value.split():
        if _eq(entry, expected):
            return True, None
    return False, "no matching signature in %s" % signature_header


# ---------------------------------------------------------------- state


class State:
    def __init__(self, verifier):
        self.verifier = verifier
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.reset()

    def reset(self):
        with self.lock:
            self.scripts = {}  # path -> (deque of responses, default)
            self.secrets = {}  # path -> config
            self.deliveries = []
            self.requests = 0
            self.bytes = 0

    def next_response(self, path):
        """Under self.lock."""
        responses, default = self.scripts.get(path, (None, None))
        if responses:
            return responses.popleft()
        return default or {"status": 200}

    def verify(self, path, headers, body):
        with self.lock:
            cfg = self.secrets.get(path)
        if not cfg or cfg["scheme"] == "none":
            return None, None, []
        results = []
        for i, secret in enumerate(cfg["secrets"]):
            if cfg["scheme"] == "standard":
                ok, err = self.verifier.verify(secret, headers,
                                               body.decode("utf-8", "replace"))
            elif cfg["scheme"] == "github":
                ok, err = verify_github(secret, headers, body)
            else:
                ok, err = verify_custom(secret, headers, body, cfg["signature_header"],
                                        cfg["timestamp_header"], cfg["tolerance"])
            results.append({"secret": i, "ok": ok, "error": err})
        if not results:
            return False, "no secrets configured for scheme %s" % cfg["scheme"], results
        bad = [r for r in results if not r["ok"]]
        if not bad:
            return True, None, results
        if len(results) == 1:
            return False, bad[0]["error"], results
        return False, "; ".join("secret %d: %s" % (r["secret"], r["error"]) for r in bad), \
            results


def _check_response(r):
    if not isinstance(r, dict):
        raise ValueError("a response must be an object: %r" % (r,))
    status = r.get("status", 200)
    if not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError("bad status: %r" % (status,))
    for k in ("hang", "delay_ms"):
        if k in r and not isinstance(r[k], (int, float)):
            raise ValueError("%s must be a number" % k)
    return r


class BadRequest(Exception):
    pass


# ---------------------------------------------------------------- Slack

SLACK_PREFIX = "/slack"  # paths that behave like Slack incoming webhooks


def slack_problems(body):
    """What Slack would refuse in an incoming-webhook payload (its
    documented Block Kit limits), as a list of strings; [] when valid."""
    try:
        msg = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        return ["not JSON: %s" % e]
    if not isinstance(msg, dict):
        return ["not a JSON object"]
    errs = []
    text, blocks = msg.get("text"), msg.get("blocks")
    if not isinstance(text, str) or not text.strip():
        errs.append("no text fallback")
    elif len(text) > 40000:
        errs.append("text over 40000 characters")
    if blocks is None:
        return errs
    if not isinstance(blocks, list):
        return errs + ["blocks is not a list"]
    if len(blocks) > 50:
        errs.append("%d blocks (at most 50)" % len(blocks))

    def text_obj(where, t, kinds, limit):
        if not isinstance(t, dict) or t.get("type") not in kinds:
            errs.append("%s: not a %s text object" % (where, "/".join(kinds)))
        elif not isinstance(t.get("text"), str) or not t["text"]:
            errs.append("%s: empty text" % where)
        elif len(t["text"]) > limit:
            errs.append("%s: %d characters (at most %d)" % (where, len(t["text"]), limit))

    for i, b in enumerate(blocks):
        where = "blocks[%d]" % i
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "section":
            if "text" not in b and "fields" not in b:
                errs.append(where + ": a section needs text or fields")
            if "text" in b:
                text_obj(where + ".text", b["text"], ("mrkdwn", "plain_text"), 3000)
            if "fields" in b:
                f = b["fields"]
                if not isinstance(f, list) or not 1 <= len(f) <= 10:
                    errs.append(where + ": fields must be 1 to 10")
                else:
                    for j, x in enumerate(f):
                        text_obj("%s.fields[%d]" % (where, j), x, ("mrkdwn", "plain_text"), 2000)
        elif kind == "header":
            text_obj(where + ".text", b.get("text"), ("plain_text",), 150)
        elif kind == "context":
            el = b.get("elements")
            if not isinstance(el, list) or not 1 <= len(el) <= 10:
                errs.append(where + ": elements must be 1 to 10")
            else:
                for j, x in enumerate(el):
                    text_obj("%s.elements[%d]" % (where, j), x, ("mrkdwn", "plain_text"), 3000)
        else:
            errs.append("%s: unexpected block type %r" % (where, kind))
    return errs


# ---------------------------------------------------------------- recording server


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "evbus-webhook-receiver/1"

    def version_string(self):
        return self.server_version
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("webhook_receiver: %s %s\n" % (self.address_string(), fmt % args))

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
        n = self.headers.get("Content-Length")
        return self.rfile.read(int(n)) if n else b""

    def handle_any(self):
        try:
            body = self.read_body()
        except ValueError:
            self.answer({"status": 400, "body": "bad body framing"})
            self.close_connection = True
            return
        parts = urlsplit(self.path)
        if parts.path.startswith(CONTROL):
            return self.control(parts.path, parts.query, body)
        st = self.server.state
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = headers[name] + ", " + value if name in headers else value
        verified, error, results = st.verify(parts.path, headers, body)
        slack = parts.path.startswith(SLACK_PREFIX)
        problems = slack_problems(body) if slack else []
        with st.lock:
            response = st.next_response(parts.path)
            if problems:  # what Slack answers to a payload it cannot take
                response = {"status": 400, "body": "invalid_payload"}
            elif slack and "body" not in response and response.get("status", 200) == 200:
                response = dict(response, body="ok")
            if "hang" in response and "status" not in response or response.get("close"):
                status = None
            else:
                status = response.get("status", 200)
            st.deliveries.append({
                "method": self.command,
                "path": parts.path,
                "query": parts.query,
                "headers": headers,
                "body": body.decode("utf-8", "replace"),
                "received_at": time.time(),
                "verified": verified,
                "verify_error": error,
                "verify_results": results,
                "response_status": status,
                "slack_problems": problems,
            })
            st.requests += 1
            st.bytes += len(body)
        self.act(response)

    def act(self, response):
        st = self.server.state
        if response.get("close"):
            self.drop(response["close"] == "reset")
            return
        if "hang" in response:
            if st.stop.wait(float(response["hang"])) or "status" not in response:
                self.drop(False)
                return
        if response.get("delay_ms"):
            time.sleep(float(response["delay_ms"]) / 1000.0)
        self.answer(response)
        if response.get("idle_close_ms"):
            # http.server closes the connection when reading the next
            # request times out
            self.connection.settimeout(float(response["idle_close_ms"]) / 1000.0)

    def drop(self, reset):
        self.close_connection = True
        try:
            if reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           b"\x01\x00\x00\x00\x00\x00\x00\x00")
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def answer(self, response):
        body = response.get("body", "")
        body = body.encode("utf-8") if isinstance(body, str) else json.dumps(body).encode()
        status = response.get("status", 200)
        if status < 200 or status in (204, 304):
            body = b""  # these have no body: one would break the connection
        self.send_response(status)
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if "retry_after" in response:
            headers["Retry-After"] = str(response["retry_after"])
        if "location" in response:
            headers["Location"] = response["location"]
        headers.update(response.get("headers") or {})
        for name, value in headers.items():
            self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def reply_json(self, obj, status=200):
        self.answer({"status": status, "body": json.dumps(obj),
                     "headers": {"Content-Type": "application/json"}})

    def control(self, path, query, body):
        st = self.server.state
        try:
            if self.command == "GET" and path == "/_control/deliveries":
                want = parse_qs(query).get("path")
                with st.lock:
                    out = [d for d in st.deliveries if not want or d["path"] == want[0]]
                    text = json.dumps(out)
                return self.answer({"body": text,
                                    "headers": {"Content-Type": "application/json"}})
            if self.command == "GET" and path == "/_control/count":
                with st.lock:
                    return self.reply_json({"requests": st.requests, "bytes": st.bytes})
            if self.command == "GET" and path == "/_control/health":
                return self.reply_json({"ok": True, "sink": False,
                                        "verifier": st.verifier.versions})
            if self.command != "POST":
                raise BadRequest("unknown control request %s %s" % (self.command, path))
            if path == "/_control/reset":
                st.reset()
                return self.reply_json({"ok": True})
            try:
                req = json.loads(body or b"{}")
            except ValueError as e:
                raise BadRequest("body is not JSON: %s" % e)
            if not isinstance(req, dict) or not isinstance(req.get("path"), str) \
                    or not req["path"].startswith("/"):
                raise BadRequest('needs {"path": "/..."}')
            if path == "/_control/script":
                try:
                    responses = deque(_check_response(r) for r in req.get("responses") or [])
                    default = _check_response(req["default"]) if req.get("default") else None
                except ValueError as e:
                    raise BadRequest(str(e))
                with st.lock:
                    st.scripts[req["path"]] = (responses, default)
                return self.reply_json({"ok": True})
            if path == "/_control/secrets":
                scheme = req.get("scheme", "standard")
                if scheme not in SCHEMES:
                    raise BadRequest("scheme must be one of %s" % ", ".join(SCHEMES))
                secrets = req.get("secrets") or []
                if isinstance(secrets, str):
                    secrets = [secrets]
                if not all(isinstance(s, str) for s in secrets):
                    raise BadRequest("secrets must be strings")
                if scheme != "none" and not secrets:
                    raise BadRequest("scheme %s needs at least one secret" % scheme)
                cfg = {
                    "scheme": scheme,
                    "secrets": secrets,
                    "signature_header": req.get("signature_header") or DEFAULT_SIGNATURE_HEADER,
                    "timestamp_header": req.get("timestamp_header") or DEFAULT_TIMESTAMP_HEADER,
                    "tolerance": req.get("tolerance", DEFAULT_TOLERANCE),
                }
                with st.lock:
                    st.secrets[req["path"]] = cfg
                return self.reply_json({"ok": True})
            raise BadRequest("unknown control request POST %s" % path)
        except BadRequest as e:
            self.reply_json({"error": str(e)}, 400)


for _m in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"):
    setattr(Handler, "do_" + _m, Handler.handle_any)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


# ---------------------------------------------------------------- sink


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class SinkHandler(socketserver.StreamRequestHandler):
    """A minimal HTTP/1.1 parser: keep-alive, Content-Length or chunked
    bodies, Expect: 100-continue; one write per response."""

    rbufsize = 65536
    wbufsize = 0
    disable_nagle_algorithm = True

    def handle(self):
        rfile, sock, srv = self.rfile, self.connection, self.server
        while True:
            line = rfile.readline(65537)
            if not line:
                return
            if line in (b"\r\n", b"\n"):
                continue
            fields = line.split()
            if len(fields) != 3:
                sock.sendall(BAD)
                return
            _, target, version = fields
            close = version == b"HTTP/1.0"
            length, chunked, expect = 0, False, False
            while True:
                h = rfile.readline(65537)
                if h in (b"\r\n", b"\n", b""):
                    break
                name, _, value = h.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif name == b"connection":
                    v = value.strip().lower()
                    close = v == b"close" or (close and v != b"keep-alive")
                elif name == b"expect":
                    expect = b"100-continue" in value.lower()
            if expect:
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            n = 0
            if chunked:
                while True:
                    size = int(rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    n += len(rfile.read(size))
                    rfile.readline(65537)
            elif length:
                n = len(rfile.read(length))
            if target.startswith(b"/_control/"):
                sock.sendall(self.control(target))
            else:
                with srv.count_lock:
                    srv.requests += 1
                    srv.bytes += n
                sock.sendall(OK)
            if close:
                return

    def control(self, target):
        srv = self.server
        path = target.split(b"?")[0]
        if path == b"/_control/reset":
            with srv.count_lock:
                srv.requests = srv.bytes = 0
            obj, status = {"ok": True}, b"200 OK"
        elif path == b"/_control/count":
            with srv.count_lock:
                obj, status = {"requests": srv.requests, "bytes": srv.bytes}, b"200 OK"
        elif path == b"/_control/health":
            obj, status = {"ok": True, "sink": True}, b"200 OK"
        else:
            obj, status = {"error": "sink mode: only count, health and reset"}, \
                b"400 Bad Request"
        body = json.dumps(obj).encode()
        return (b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


class SinkServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, addr):
        super().__init__(addr, SinkHandler)
        self.count_lock = threading.Lock()
        self.requests = 0
        self.bytes = 0


# ---------------------------------------------------------------- main


def watch_parent(ppid):
    while True:
        time.sleep(0.5)
        if os.getppid() != ppid:
            os.kill(os.getpid(), signal.SIGTERM)
            return


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ready-file", help="write the bound port here once listening")
    ap.add_argument("--sink", action="store_true",
                    help="answer 200 to everything at once; count, verify nothing")
    ap.add_argument("--exit-with-parent", action="store_true",
                    help="exit when the process that started this one dies")
    ap.add_argument("--verbose", action="store_true", help="log every request on stderr")
    ap.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (chain)")
    ap.add_argument("--tls-key", help="...and this PEM private key")
    args = ap.parse_args(argv)

    def on_term(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    verifier = None
    try:
        if args.sink:
            server = SinkServer((args.host, args.port))
        else:
            try:
                verifier = StandardVerifier()
            except SetupError as e:
                print("webhook_receiver: %s" % e, file=sys.stderr)
                return 2
            server = Server((args.host, args.port), Handler)
            server.state = State(verifier)
            server.verbose = args.verbose
        if args.tls_cert:
            # the handshake runs in the connection's thread on its first
            # read, so a client that refuses the certificate fails there
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
            server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                            do_handshake_on_connect=False)
        port = server.server_address[1]
        print(port, flush=True)
        if args.ready_file:
            tmp = args.ready_file + ".tmp"
            with open(tmp, "w") as f:
                f.write("%d\n" % port)
            os.rename(tmp, args.ready_file)
        if args.exit_with_parent:
            threading.Thread(target=watch_parent, args=(os.getppid(),), daemon=True).start()
        try:
            server.serve_forever(poll_interval=0.2)
        except (SystemExit, KeyboardInterrupt):
            pass
        finally:
            if not args.sink:
                server.state.stop.set()
            server.server_close()
        return 0
    finally:
        if verifier is not None:
            verifier.close()


if __name__ == "__main__":
    sys.exit(main())
