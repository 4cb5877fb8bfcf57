"""The webhook receiver (webhook_receiver.py) for tests: started as its own
process, scripted and read through its control API with urllib.

    with webhooktest.Receiver() as r:            # or r = Receiver().start()
        r.script("/hook", [{"status": 503}, {"status": 200}])
        r.secrets("/hook", "standard", ["whsec_..."])
        ... point a webhook instance at r.url("/hook") ...
        got = r.wait_deliveries("/hook", 2)
        assert got[1]["verified"] is True

In a unittest.TestCase, `self.addCleanup(r.stop)` after start(); the
process is also stopped at interpreter exit and exits by itself when the
test process dies (--exit-with-parent). Its log (stderr) is r.log().
Standard library only.
"""

import atexit
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
RECEIVER = os.path.join(HERE, "webhook_receiver.py")
SRCDIR = os.path.abspath(os.environ.get("EVBUS_SRCDIR", os.path.join(HERE, "..", "..")))


def python3():
    if os.environ.get("PYTHON3"):
        return os.environ["PYTHON3"]
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


class ReceiverError(AssertionError):
    pass


# never through a proxy from the environment: the receiver is on loopback
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def make_test_ca(directory, host="127.0.0.1"):
    """A private CA and a server certificate it signed for `host` (an IP
    address, in subjectAltName), made with the openssl command. Returns
    {"ca", "cert", "key"}: file paths."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, cwd=directory,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=evbus test CA", "-keyout", "ca.key", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % host,
        "-keyout", "server.key", "-out", "server.csr")
    with open(os.path.join(directory, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n" % host)
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem")
    return {k: os.path.join(directory, v) for k, v in
            (("ca", "ca.pem"), ("cert", "server.pem"), ("key", "server.key"))}


class Receiver:
    """sink=True starts the benchmark's fast sink (count only).
    env: extra environment variables for the receiver process."""

    def __init__(self, sink=False, env=None, host="127.0.0.1", verbose=False, tls=None):
        """tls: a TestCA's files ({"cert", "key", "ca"}): serve HTTPS."""
        self.sink = sink
        self.tls = tls
        self._opener = _opener
        if tls:
            ctx = ssl.create_default_context(cafile=tls["ca"])
            self._opener = urllib.request.build_opener(
                urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
        self.host = host
        self.verbose = verbose
        self.env = dict(os.environ)
        if env:
            self.env.update(env)
        self.proc = None
        self.port = None
        self.dir = None
        self._log_file = None

    # ---- process

    def start(self, timeout=60):
        self.dir = tempfile.mkdtemp(prefix="webhooktest-")
        ready = os.path.join(self.dir, "port")
        self.log_path = os.path.join(self.dir, "receiver.log")
        self._log_file = open(self.log_path, "ab")
        cmd = [python3(), RECEIVER, "--host", self.host, "--port", "0",
               "--ready-file", ready, "--exit-with-parent"]
        if self.sink:
            cmd.append("--sink")
        if self.verbose:
            cmd.append("--verbose")
        if self.tls:
            cmd += ["--tls-cert", self.tls["cert"], "--tls-key", self.tls["key"]]
        self.proc = subprocess.Popen(cmd, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while not os.path.exists(ready):
            if self.proc.poll() is not None:
                code = self.proc.returncode
                log = self.log()
                self.stop()
                raise ReceiverError("webhook receiver exited at start (code %s):\n%s"
                                    % (code, log))
            if time.monotonic() > deadline:
                log = self.log()
                self.stop()
                raise ReceiverError("webhook receiver not ready after %ss:\n%s"
                                    % (timeout, log))
            time.sleep(0.02)
        with open(ready) as f:
            self.port = int(f.read().strip())
        return self

    def stop(self):
        """Stop the process (SIGTERM, then SIGKILL) and remove its files.
        Safe to call more than once."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self.dir is not None:
            if os.environ.get("EVBTEST_KEEP"):
                print("kept", self.dir, file=sys.stderr)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        try:
            atexit.unregister(self.stop)
        except Exception:
            pass

    def log(self):
        try:
            with open(self.log_path, "r", encoding="utf-8", errors="replace") as f:
                return f.read()
        except (AttributeError, OSError):
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- control API

    def url(self, path="/"):
        if not path.startswith("/"):
            path = "/" + path
        return "%s://%s:%d%s" % ("https" if self.tls else "http", self.host, self.port, path)

    def _call(self, method, path, payload=None, timeout=30):
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        req = urllib.request.Request(self.url(path), data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with self._opener.open(req, timeout=timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raise ReceiverError("%s %s: HTTP %d %s" % (method, path, e.code,
                                                         e.read().decode("utf-8", "replace")))

    def script(self, path, responses, default=None):
        """Answers for `path`, consumed in order, then `default` (200 if
        None). See webhook_receiver.py for the response objects."""
        payload = {"path": path, "responses": list(responses)}
        if default is not None:
            payload["default"] = default
        self._call("POST", "/_control/script", payload)

    def secrets(self, path, scheme, secrets=(), **options):
        """How deliveries to `path` are verified. options: signature_header,
        timestamp_header (custom scheme), tolerance (seconds, custom)."""
        if isinstance(secrets, str):
            secrets = [secrets]
        payload = {"path": path, "scheme": scheme, "secrets": list(secrets)}
        payload.update(options)
        self._call("POST", "/_control/secrets", payload)

    def deliveries(self, path=None):
        q = "?" + urllib.parse.urlencode({"path": path}) if path is not None else ""
        return self._call("GET", "/_control/deliveries" + q)

    def wait_deliveries(self, path, n, timeout=10):
        """At least n deliveries to `path` (all of them, in arrival order)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.deliveries(path)
            if len(got) >= n:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(
                    "timed out after %ss waiting for %d deliveries to %s; got %d:\n%s"
                    % (timeout, n, path, len(got), json.dumps(got, indent=1)[:4000]))
            time.sleep(0.02)

    def count(self):
        """{"requests": N, "bytes": M}"""
        return self._call("GET", "/_control/count")

    def reset(self):
        self._call("POST", "/_control/reset", {})
