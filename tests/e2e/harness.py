#!/usr/bin/python3
"""The end-to-end tests' harness: real campaignd, campaignctl and
campaignd-gateway processes on 127.0.0.1 with fresh databases, a Python gRPC
client with stubs generated from proto/ at run time, urllib for REST, and a
runner that prints "N passed, N failed" last.

A test file defines unittest.TestCase classes on top of ServerCase (one
campaignd per class) or GatewayCase (plus a gateway) and ends with

  if __name__ == "__main__":
      sys.exit(harness.main(__doc__, [TestClassA, TestClassB]))

Its command line is the harness's (see main()); ctest passes the paths of
the built binaries. Run with Debian's /usr/bin/python3 (python3-grpcio and
python3-grpc-tools).
"""

import argparse
import glob
import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import unittest
import urllib.error
import urllib.parse
import urllib.request

import grpc

GRPC_PROTO_DIR = "/usr/share/grpc-proto"
BOOTSTRAP_KEY = "ck_e2e_bootstrap_admin_key_0123456789"
ALL_SERVICES = [
    "campaigns.v1.AccountService",
    "campaigns.v1.CampaignService",
    "campaigns.v1.ContactService",
    "campaigns.v1.DeliveryService",
    "campaigns.v1.SenderService",
    "campaigns.v1.SuppressionService",
    "campaigns.v1.TemplateService",
    "grpc.health.v1.Health",
]
ERROR_INFO_URL = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST_URL = "type.googleapis.com/google.rpc.BadRequest"

RPC_TIMEOUT = 10        # seconds per RPC
START_TIMEOUT = 20      # seconds for campaignd to log its port and be SERVING
STOP_TIMEOUT = 15       # seconds for campaignd to exit after SIGTERM
CTL_TIMEOUT = 40        # seconds per campaignctl run (its default deadline is 30s)
HTTP_TIMEOUT = 10       # seconds per HTTP request to the gateway
GATEWAY_START_TIMEOUT = 20  # seconds for campaignd-gateway to answer
GATEWAY_STOP_TIMEOUT = 12   # seconds to exit after SIGTERM (drains up to 10s)

ARGS = None             # parsed command line
RUN_DIR = None          # fresh directory of this run, under --work-dir
ALL_SERVERS = []        # every CampaignD started, to stop and to show logs of
ALL_GATEWAYS = []       # every Gateway started, likewise
PG = None               # the PostgreSQL cluster with --engine postgres

# Generated modules, filled in by generate_stubs().
pb = {}


def fail_setup(message):
    print("e2e setup error: " + message, file=sys.stderr, flush=True)
    print("0 passed, 1 failed", flush=True)
    sys.exit(1)


# ---------------------------------------------------------------------------
# Stubs


def generate_stubs(gen_dir):
    """Generates Python stubs into gen_dir and imports them into `pb`."""
    proto_dir = os.path.abspath(ARGS.proto_dir)
    campaign_protos = sorted(
        os.path.relpath(p, proto_dir)
        for p in glob.glob(os.path.join(proto_dir, "campaigns", "v1", "*.proto")))
    if not campaign_protos:
        fail_setup("no campaigns/v1/*.proto under " + proto_dir)
    files = campaign_protos + [
        "google/rpc/error_info.proto",
        "google/api/annotations.proto",
        "google/api/http.proto",
        "google/rpc/status.proto",
        "google/rpc/error_details.proto",
        "grpc/health/v1/health.proto",
        "grpc/reflection/v1alpha/reflection.proto",
        "grpc/reflection/v1/reflection.proto",
    ]
    os.makedirs(gen_dir, exist_ok=True)
    # python3-grpcio ships neither grpc_health nor grpc_reflection; generating
    # both from /usr/share/grpc-proto also keeps them in step with grpcio.
    cmd = [sys.executable, "-m", "grpc_tools.protoc",
           "-I" + proto_dir, "-I" + os.path.abspath(ARGS.googleapis_dir),
           "-I" + GRPC_PROTO_DIR,
           "--python_out=" + gen_dir, "--grpc_python_out=" + gen_dir] + files
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        fail_setup("protoc failed (exit %d): %s\n%s\ncommand: %s" % (
            r.returncode, r.stdout, r.stderr, " ".join(cmd)))

    sys.path.insert(0, gen_dir)
    # gen/grpc/health/... and gen/grpc/reflection/... have no __init__.py, so
    # the installed `grpc` package still wins the import; make its
    # subpackages reachable as grpc.health.v1 / grpc.reflection.v1alpha (the
    # names the generated *_pb2_grpc modules import them by).
    grpc.__path__.append(os.path.join(gen_dir, "grpc"))
    importlib.invalidate_caches()

    names = {
        "health": "grpc.health.v1.health_pb2",
        "health_grpc": "grpc.health.v1.health_pb2_grpc",
        "refl": "grpc.reflection.v1alpha.reflection_pb2",
        "refl_grpc": "grpc.reflection.v1alpha.reflection_pb2_grpc",
        "refl_v1": "grpc.reflection.v1.reflection_pb2",
        "refl_v1_grpc": "grpc.reflection.v1.reflection_pb2_grpc",
        "status": "google.rpc.status_pb2",
        "error_info": "google.rpc.error_info_pb2",
        "error_details": "google.rpc.error_details_pb2",
        "descriptor": "google.protobuf.descriptor_pb2",
    }
    for p in campaign_protos:
        base = os.path.splitext(os.path.basename(p))[0]
        names[base] = "campaigns.v1.%s_pb2" % base
        names[base + "_grpc"] = "campaigns.v1.%s_pb2_grpc" % base
    for key, module in names.items():
        try:
            pb[key] = importlib.import_module(module)
        except Exception:  # noqa: BLE001 - report any import problem
            fail_setup("cannot import %s from %s:\n%s" % (
                module, gen_dir, traceback.format_exc()))


# ---------------------------------------------------------------------------
# Processes


def clean_env(**extra):
    """os.environ without CAMPAIGND_* and proxy settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CAMPAIGND_")
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy",
                                 "grpc_proxy", "no_proxy")}
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def tail(path, lines=40):
    try:
        with open(path, "r", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return "(cannot read %s: %s)\n" % (path, e)


def log_paths(name):
    """Fresh stdout/stderr file paths for a process called `name`."""
    base = os.path.join(RUN_DIR, "logs", name)
    os.makedirs(os.path.dirname(base), exist_ok=True)
    n = 0
    while os.path.exists("%s.%d.stdout" % (base, n)):
        n += 1
    return "%s.%d.stdout" % (base, n), "%s.%d.stderr" % (base, n)


class CampaignD:
    """One campaignd process: stdout and stderr go to files under RUN_DIR."""

    def __init__(self, name, db_path, bootstrap_key, extra_args=(),
                 shutdown_timeout="5"):
        self.name = name
        self.extra_args = list(extra_args)
        self.shutdown_timeout = shutdown_timeout
        self.db_path = db_path
        self.bootstrap_key = bootstrap_key
        self.proc = None
        self.port = None
        self.http_port = None
        self.channel = None
        self.exit_code = None
        self.sigterm_sent = False
        self.stdout_path, self.stderr_path = log_paths(name)
        ALL_SERVERS.append(self)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def stdout(self):
        with open(self.stdout_path, "r", errors="replace") as f:
            return f.read()

    def stderr(self):
        with open(self.stderr_path, "r", errors="replace") as f:
            return f.read()

    def start(self):
        """Starts it, parses the port from its log, waits for SERVING."""
        env = clean_env(CAMPAIGND_BOOTSTRAP_KEY=self.bootstrap_key)
        with open(self.stdout_path, "wb") as out, \
                open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [ARGS.campaignd, "--listen", "127.0.0.1:0",
                 "--http-listen", "127.0.0.1:0", "--db",
                 self.db_path, "--shutdown-timeout", self.shutdown_timeout]
                + self.extra_args,
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        deadline = time.monotonic() + START_TIMEOUT
        pattern = re.compile(r"campaignd listening on \S+ \(port (\d+)\)")
        while self.port is None:
            m = pattern.search(self.stdout() + self.stderr())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise AssertionError(
                    "%s exited with %d before logging its port" % (
                        self.name, self.proc.returncode))
            if time.monotonic() > deadline:
                raise AssertionError(
                    "%s did not log 'campaignd listening on ... (port N)' "
                    "within %ds" % (self.name, START_TIMEOUT))
            time.sleep(0.05)
        if self.port <= 0:
            raise AssertionError("%s logged port %d" % (self.name, self.port))
        # campaignd logs its HTTP listener just after the gRPC one: wait for
        # that line too (reading the log between the two gave no port).
        http_pattern = re.compile(
            r"http \(webhooks[^)]*\) on \S+ \(port (\d+)\)")
        while self.http_port is None:
            m = http_pattern.search(self.stdout() + self.stderr())
            if m:
                self.http_port = int(m.group(1))
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        self.channel = grpc.insecure_channel(
            self.address, options=[("grpc.enable_http_proxy", 0)])
        health = pb["health_grpc"].HealthStub(self.channel)
        last = None
        while True:
            try:
                r = health.Check(pb["health"].HealthCheckRequest(service=""),
                                 timeout=2)
                if r.status == pb["health"].HealthCheckResponse.SERVING:
                    return self
                last = "status %s" % r.status
            except grpc.RpcError as e:
                last = "%s: %s" % (e.code(), e.details())
            if self.proc.poll() is not None:
                raise AssertionError("%s exited with %d while waiting for "
                                     "health" % (self.name, self.proc.returncode))
            if time.monotonic() > deadline:
                raise AssertionError("%s: health check not SERVING within "
                                     "%ds (last: %s)" % (
                                         self.name, START_TIMEOUT, last))
            time.sleep(0.1)

    def sigterm(self):
        """Sends SIGTERM once."""
        if not self.sigterm_sent and self.proc.poll() is None:
            self.sigterm_sent = True
            self.proc.send_signal(signal.SIGTERM)

    def terminate(self, timeout=STOP_TIMEOUT):
        """SIGTERM; returns the exit code, or None if it had to be killed."""
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            self.exit_code = self.proc.returncode
            return self.exit_code
        self.sigterm()
        try:
            self.exit_code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.exit_code = None
        return self.exit_code

    def kill(self):
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self):
        return ("---- %s stdout (%s), last lines ----\n%s"
                "---- %s stderr (%s), last lines ----\n%s" % (
                    self.name, self.stdout_path, tail(self.stdout_path),
                    self.name, self.stderr_path, tail(self.stderr_path)))


class PgCluster:
    """A throwaway PostgreSQL cluster: tests/support/pg_cluster_main.cc, run
    as a child whose stdin we hold; it stops the cluster when that closes
    (or its watchdog does, if we are killed)."""

    def __init__(self, binary):
        self.proc = subprocess.Popen(
            [binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.port = int(self._answer("ready"))
        self.names = set()

    def _answer(self, expected):
        line = self.proc.stdout.readline().strip()
        if not line.startswith(expected + " ") and line != expected:
            raise AssertionError("PostgreSQL cluster: expected %r, got %r" % (
                expected, line))
        return line[len(expected) + 1:]

    def _command(self, command, expected):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._answer(expected)

    def db(self, name):
        """Creates a database for `name`; returns its libpq URI."""
        base = "db_" + re.sub(r"[^a-z0-9_]", "_", name.lower())[:50]
        name, n = base, 1
        while name in self.names:
            n += 1
            name = "%s_%d" % (base, n)
        self.names.add(name)
        return self._command("db " + name, "dsn").split(" ", 1)[1]

    def restart(self):
        self._command("restart", "restarted")

    def stop(self):
        self._command("stop", "stopped")

    def start(self):
        self._command("start", "started")

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def engine():
    """"sqlite" or "postgres": what new_db makes (--engine)."""
    return ARGS.engine


def db_dir(name):
    """The directory of new_db(name)'s test: for its other files."""
    return os.path.join(RUN_DIR, "db-" + name)


def new_db(name):
    """A fresh database for --db: a SQLite file in db_dir(name), or a
    database of the PostgreSQL cluster with --engine postgres."""
    d = db_dir(name)
    os.makedirs(d, exist_ok=False)
    if ARGS.engine == "postgres":
        return PG.db(name)
    return os.path.join(d, "c.db")


def ctl(*args, server=None, key=None, timeout=CTL_TIMEOUT):
    """Runs campaignctl with CAMPAIGND_ADDR/CAMPAIGND_API_KEY set."""
    env = clean_env(CAMPAIGND_ADDR=server, CAMPAIGND_API_KEY=key)
    cmd = [ARGS.campaignctl] + [str(a) for a in args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("campaignctl %s did not finish within %ds" % (
            " ".join(args), timeout)) from e


def describe(r):
    return "command: %s\nexit: %d\nstdout:\n%s\nstderr:\n%s" % (
        " ".join(r.args), r.returncode, r.stdout, r.stderr)


def free_port():
    """A port that was free a moment ago on 127.0.0.1 (bind to 0, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# urllib without any proxy from the environment.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class HttpResponse:
    """Status, headers and body of one HTTP exchange; `json` if it parses."""

    def __init__(self, method, url, status, headers, raw):
        self.method = method
        self.url = url
        self.status = status
        self.headers = headers
        self.raw = raw
        try:
            self.json = json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return "%s %s -> HTTP %s %s" % (
            self.method, self.url, self.status,
            self.raw.decode("utf-8", "replace")[:2000])


def http_request(method, url, body=None, headers=None, timeout=HTTP_TIMEOUT):
    """One HTTP request with urllib; an HTTP error status is a response too."""
    data = None
    hdrs = {"Accept": "application/json"}
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    try:
        with HTTP.open(req, timeout=timeout) as r:
            return HttpResponse(method, url, r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        with e:
            return HttpResponse(method, url, e.code, e.headers, e.read())


class Gateway:
    """One campaignd-gateway in front of a CampaignD, on a free port."""

    def __init__(self, name, backend):
        self.name = name
        self.backend = backend
        self.proc = None
        self.port = None
        self.exit_code = None
        self.stdout_path, self.stderr_path = log_paths(name)
        ALL_GATEWAYS.append(self)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def output(self):
        text = ""
        for path in (self.stdout_path, self.stderr_path):
            try:
                with open(path, "r", errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return text

    def start(self):
        """Starts it on a free port (a second port if the first was taken)
        and waits until it answers through to campaignd."""
        for attempt in (1, 2):
            try:
                self.port = free_port()
            except OSError:
                if attempt == 2:
                    raise
                continue
            with open(self.stdout_path, "ab") as out, \
                    open(self.stderr_path, "ab") as err:
                self.proc = subprocess.Popen(
                    [ARGS.gateway, "--listen", "127.0.0.1:%d" % self.port,
                     "--backend", self.backend],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                    env=clean_env())
            if self.wait_ready():
                return self
            code = self.proc.wait()
            if attempt == 1 and "address already in use" in self.output():
                continue  # someone took the port between close and bind
            raise AssertionError("%s exited with %d before answering on "
                                 "port %d:\n%s" % (self.name, code, self.port,
                                                   tail(self.stderr_path)))
        raise AssertionError("unreachable")

    def wait_ready(self):
        """True once it answers an unauthenticated call with campaignd's 401;
        False if it exited first; raises on timeout."""
        deadline = time.monotonic() + GATEWAY_START_TIMEOUT
        last = None
        while True:
            if self.proc.poll() is not None:
                return False
            try:
                r = http_request("GET", self.url + "/api/v1/account",
                                 timeout=2)
                if r.status == 401:
                    return True
                last = r
            except (OSError, urllib.error.URLError) as e:
                last = e
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(
                    "%s did not answer 401 on %s/api/v1/account within %ds "
                    "(last: %r)" % (self.name, self.url,
                                    GATEWAY_START_TIMEOUT, last))
            time.sleep(0.1)

    def terminate(self, timeout=GATEWAY_STOP_TIMEOUT):
        """SIGTERM, then kill; returns the exit code, None if killed."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.exit_code = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                self.exit_code = None
        else:
            self.exit_code = self.proc.returncode
        return self.exit_code

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self):
        return ("---- %s stdout (%s), last lines ----\n%s"
                "---- %s stderr (%s), last lines ----\n%s" % (
                    self.name, self.stdout_path, tail(self.stdout_path),
                    self.name, self.stderr_path, tail(self.stderr_path)))


# ---------------------------------------------------------------------------
# Error details


class RpcFailure:
    """A failed call's code, message and decoded status details."""

    def __init__(self, error):
        self.code = error.code()
        self.message = error.details()
        self.status = None
        self.error_info = None
        self.bad_request = None
        self.detail_types = []
        for key, value in error.trailing_metadata() or ():
            if key == "grpc-status-details-bin":
                self.status = pb["status"].Status.FromString(value)
        if self.status is None:
            return
        for any_msg in self.status.details:
            self.detail_types.append(any_msg.type_url)
            if any_msg.type_url == ERROR_INFO_URL:
                self.error_info = pb["error_info"].ErrorInfo.FromString(
                    any_msg.value)
            elif any_msg.type_url == BAD_REQUEST_URL:
                self.bad_request = pb["error_details"].BadRequest.FromString(
                    any_msg.value)

    @property
    def reason(self):
        return self.error_info.reason if self.error_info else None

    @property
    def fields(self):
        if self.bad_request is None:
            return []
        return [v.field for v in self.bad_request.field_violations]

    def __repr__(self):
        return "RpcFailure(%s, %r, reason=%r, fields=%r, details=%r)" % (
            self.code, self.message, self.reason, self.fields,
            self.detail_types)


def bearer(key):
    return (("authorization", "Bearer " + key),)


class E2ECase(unittest.TestCase):
    """Helpers shared by the test classes."""

    maxDiff = None

    def call_fails(self, method, request, metadata=(), code=None,
                   reason=None, field=None):
        """Calls method expecting an error; checks code/reason/field."""
        try:
            response = method(request, metadata=metadata, timeout=RPC_TIMEOUT)
        except grpc.RpcError as e:
            f = RpcFailure(e)
        else:
            self.fail("expected %s, got a response: %s" % (code, response))
        if code is not None:
            self.assertEqual(f.code, code, f)
        self.assertIsNotNone(f.status, "no grpc-status-details-bin: %r" % f)
        self.assertEqual(f.status.code, f.code.value[0], f)
        self.assertEqual(f.status.message, f.message, f)
        self.assertIsNotNone(f.error_info, "no ErrorInfo detail: %r" % f)
        self.assertEqual(f.error_info.domain, "campaigns.v1", f)
        if reason is not None:
            self.assertEqual(f.reason, reason, f)
        if field is not None:
            self.assertIn(field, f.fields, f)
            self.assertTrue(f.message.startswith(field), f)
        return f

    def assert_ctl(self, r, code=0):
        self.assertEqual(r.returncode, code, describe(r))

    def ctl_json(self, *args, **kw):
        r = ctl(*args, "--json", **kw)
        self.assert_ctl(r)
        try:
            return json.loads(r.stdout)
        except ValueError as e:
            self.fail("not JSON (%s):\n%s" % (e, describe(r)))


class ServerCase(E2ECase):
    """One campaignd per test class, with BOOTSTRAP_KEY as its admin key and
    the class's server_args."""

    server = None
    # Tests call as fast as they can; the per-key limit has its own test.
    server_args = ("--key-rate", "0")

    @classmethod
    def setUpClass(cls):
        srv = CampaignD(cls.__name__, new_db(cls.__name__), BOOTSTRAP_KEY,
                        cls.server_args)
        try:
            srv.start()
        except BaseException:
            srv.kill()
            raise
        cls.server = srv

    @classmethod
    def tearDownClass(cls):
        if cls.server is not None:
            code = cls.server.terminate()
            cls.server = None
            if code != 0:
                raise AssertionError("campaignd exit code on SIGTERM: %r" % code)

    def stub(self, name):
        service = {"account": "AccountService", "campaign": "CampaignService",
                   "sender": "SenderService", "template": "TemplateService"}
        return getattr(pb[name + "_grpc"], service[name] + "Stub")(
            self.server.channel)


class GatewayCase(ServerCase):
    """campaignd-gateway in front of this class's campaignd; urllib only."""

    gateway = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        gw = Gateway(cls.__name__ + "-gateway", cls.server.address)
        try:
            gw.start()
        except BaseException:
            gw.kill()
            super().tearDownClass()
            raise
        cls.gateway = gw

    @classmethod
    def tearDownClass(cls):
        code = 0
        try:
            if cls.gateway is not None:
                code = cls.gateway.terminate()
                cls.gateway = None
        finally:
            super().tearDownClass()
        if code != 0:
            raise AssertionError("campaignd-gateway exit code on SIGTERM: %r "
                                 "(None: killed)" % code)

    # -- helpers

    def call(self, method, path, body=None, key=BOOTSTRAP_KEY, headers=None):
        hdrs = {} if key is None else {"Authorization": "Bearer " + key}
        hdrs.update(headers or {})
        return http_request(method, self.gateway.url + path, body, hdrs)

    def ok(self, method, path, body=None, status=200, **kw):
        """The call's JSON object, which must come with `status` (201 for
        a create, 204 with no body for a delete: then None)."""
        r = self.call(method, path, body, **kw)
        self.assertEqual(r.status, status, r)
        if status == 204:
            self.assertEqual(r.raw, b"", r)
            return None
        self.assertIsInstance(r.json, dict, r)
        self.assertIn("application/json", r.headers.get("Content-Type", ""), r)
        for header in r.headers.keys():
            self.assertFalse(header.lower().startswith("grpc-"), r.headers)
        return r.json

    def assert_error(self, r, http_status, reason, field=None):
        """The gateway's JSON error: status, the seeds' body
        {"error", "message", "field", "details"} with ErrorInfo (and
        BadRequest for a field)."""
        self.assertEqual(r.status, http_status, r)
        self.assertIn("application/json", r.headers.get("Content-Type", ""), r)
        for header in r.headers.keys():
            self.assertFalse(header.lower().startswith("grpc-"), r.headers)
        err = r.json
        self.assertIsInstance(err, dict, r)
        self.assertEqual(err.get("error"), reason.lower(), r)
        self.assertTrue(err.get("message"), r)
        self.assertNotIn("code", err, r)
        details = err.get("details")
        self.assertIsInstance(details, list, r)
        infos = [d for d in details if d.get("@type") == ERROR_INFO_URL]
        self.assertEqual(len(infos), 1, r)
        self.assertEqual(infos[0].get("reason"), reason, r)
        self.assertEqual(infos[0].get("domain"), "campaigns.v1", r)
        if field is not None:
            self.assertEqual(err.get("field"), field, r)
            bad = [d for d in details if d.get("@type") == BAD_REQUEST_URL]
            self.assertEqual(len(bad), 1, r)
            fields = [v.get("field")
                      for v in bad[0].get("fieldViolations", [])]
            self.assertIn(field, fields, r)
            self.assertTrue(err["message"].startswith(field), r)
        return err

    def assert_int64(self, value, expected, what):
        # proto3 JSON writes int64 as a string; accept a number too.
        self.assertIn(value, (expected, str(expected)), what)


# ---------------------------------------------------------------------------
# Main


class Result(unittest.TextTestResult):
    """Also records which tests failed (a test with failing subtests once)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.failed_ids = set()

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.failed_ids.add(test.id())

    def addError(self, test, err):
        super().addError(test, err)
        self.failed_ids.add(test.id())

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.failed_ids.add(test.id())

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self.failed_ids.add(test.id())


def main(doc, test_classes):
    """Parses the command line, generates the stubs, runs `test_classes`
    (or the tests named on the command line) and returns the exit status."""
    global ARGS, RUN_DIR
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--campaignd", required=True)
    parser.add_argument("--campaignctl", required=True)
    parser.add_argument("--gateway", required=True,
                        help="campaignd-gateway (the REST/JSON proxy)")
    parser.add_argument("--proto-dir", required=True)
    parser.add_argument("--googleapis-dir", required=True)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--engine", choices=("sqlite", "postgres"),
                        default="sqlite",
                        help="the storage engine of the servers' databases")
    parser.add_argument("--pg-cluster",
                        help="campaignd_test_pg (with --engine postgres)")
    parser.add_argument("--keep", action="store_true",
                        help="keep this run's directory even when all pass")
    parser.add_argument("tests", nargs="*",
                        help="optional test names, e.g. GrpcApiTest.test_health")
    ARGS = parser.parse_args()
    for flag in ("campaignd", "campaignctl", "gateway"):
        path = getattr(ARGS, flag)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            fail_setup("--%s %s: not an executable file" % (flag, path))
    ARGS.campaignd = os.path.abspath(ARGS.campaignd)
    ARGS.campaignctl = os.path.abspath(ARGS.campaignctl)
    ARGS.gateway = os.path.abspath(ARGS.gateway)

    work_dir = os.path.abspath(ARGS.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    RUN_DIR = tempfile.mkdtemp(prefix="run-", dir=work_dir)
    print("e2e: run directory " + RUN_DIR, flush=True)

    t0 = time.monotonic()
    generate_stubs(os.path.join(RUN_DIR, "gen"))
    global PG
    if ARGS.engine == "postgres":
        if not ARGS.pg_cluster:
            fail_setup("--engine postgres needs --pg-cluster")
        PG = PgCluster(os.path.abspath(ARGS.pg_cluster))
        print("e2e: PostgreSQL cluster on port %d" % PG.port, flush=True)

    loader = unittest.TestLoader()
    module = sys.modules[test_classes[0].__module__]
    if ARGS.tests:
        suite = loader.loadTestsFromNames(ARGS.tests, module)
    else:
        suite = unittest.TestSuite(
            loader.loadTestsFromTestCase(c) for c in test_classes)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2,
                                     resultclass=Result)
    def on_signal(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, on_signal)
    result = None
    try:
        result = runner.run(suite)
    finally:
        for gw in ALL_GATEWAYS:
            gw.kill()
        for srv in ALL_SERVERS:
            srv.kill()
        if PG is not None:
            PG.close()

    # A test with failing subtests counts once; an error in setUpClass or
    # tearDownClass counts as one failure of its own.
    failed = len(result.failed_ids)
    run_failed = sum(1 for t in result.failed_ids
                     if not t.startswith(("setUpClass", "tearDownClass",
                                          "setUpModule", "tearDownModule")))
    passed = max(result.testsRun - len(result.skipped) - run_failed, 0)
    if failed:
        print("\n==== server logs ====", flush=True)
        for proc in ALL_SERVERS + ALL_GATEWAYS:
            print(proc.log_tail(), flush=True)
        print("run directory kept: " + RUN_DIR)
    elif not ARGS.keep:
        shutil.rmtree(RUN_DIR, ignore_errors=True)
    print("e2e: %.1fs" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed or not result.wasSuccessful() else 0
