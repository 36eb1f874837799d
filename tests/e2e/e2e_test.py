#!/usr/bin/python3
"""End-to-end test of the built campaignd and campaignctl binaries.

Starts real campaignd processes on 127.0.0.1:0 with fresh databases and drives
them with a Python gRPC client (stubs generated from proto/ at test time) and
with campaignctl as a subprocess:

  * health (grpc.health.v1) and server reflection (v1alpha, what grpcurl uses);
  * API keys in `authorization: Bearer` and `x-api-key`, UNAUTHENTICATED with
    one message for a missing, unknown or revoked key;
  * error details: google.rpc.Status in `grpc-status-details-bin` with the
    wire-compatible ErrorInfo and google.rpc.BadRequest;
  * idempotent CreateCampaign, tenancy, admin-only RPCs, start refusals;
  * the README's campaignctl walkthrough, its JSON output and exit codes;
  * SIGTERM shutdown (exit 0) and persistence across a restart;
  * crash safety: SIGKILL six times during a 20,000-recipient dispatch;
  * the generated bootstrap key of a database started without
    CAMPAIGND_BOOTSTRAP_KEY;
  * the REST/JSON face through campaignd-gateway (urllib only): the seeds'
    JSON bodies, lowerCamelCase output, snake_case and camelCase input,
    route order (/campaigns/stats), PUT and PATCH with update_mask, and the
    JSON errors with their decoded ErrorInfo and BadRequest details.

Run by ctest (tests/CMakeLists.txt) with Debian's /usr/bin/python3, which has
python3-grpcio and python3-grpc-tools:

  /usr/bin/python3 tests/e2e/e2e_test.py --campaignd PATH --campaignctl PATH \
      --gateway PATH --proto-dir proto --googleapis-dir DIR --work-dir DIR

The last line printed is "N passed, N failed"; the exit status is non-zero on
any failure.
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
        "google/api/annotations.proto",
        "google/api/http.proto",
        "google/rpc/status.proto",
        "google/rpc/error_details.proto",
        "grpc/health/v1/health.proto",
        "grpc/reflection/v1alpha/reflection.proto",
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
        "status": "google.rpc.status_pb2",
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

    def __init__(self, name, db_path, bootstrap_key, extra_args=()):
        self.name = name
        self.extra_args = list(extra_args)
        self.db_path = db_path
        self.bootstrap_key = bootstrap_key
        self.proc = None
        self.port = None
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
                [ARGS.campaignd, "--listen", "127.0.0.1:0", "--db",
                 self.db_path, "--shutdown-timeout", "5"] + self.extra_args,
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


def new_db(name):
    d = os.path.join(RUN_DIR, "db-" + name)
    os.makedirs(d, exist_ok=False)
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
                self.error_info = pb["common"].ErrorInfo.FromString(
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


# ---------------------------------------------------------------------------
# gRPC: health, reflection, the Python client


class GrpcApiTest(ServerCase):

    def test_health(self):
        health = pb["health_grpc"].HealthStub(self.server.channel)
        serving = pb["health"].HealthCheckResponse.SERVING
        for service in ("", "campaigns.v1.CampaignService"):
            with self.subTest(service=service):
                r = health.Check(pb["health"].HealthCheckRequest(
                    service=service), timeout=RPC_TIMEOUT)
                self.assertEqual(r.status, serving)

    def reflect(self, request):
        stub = pb["refl_grpc"].ServerReflectionStub(self.server.channel)
        responses = list(stub.ServerReflectionInfo(iter([request]),
                                                   timeout=RPC_TIMEOUT))
        self.assertEqual(len(responses), 1, responses)
        r = responses[0]
        self.assertNotEqual(r.WhichOneof("message_response"),
                            "error_response", r)
        return r

    def test_reflection_list_services(self):
        r = self.reflect(pb["refl"].ServerReflectionRequest(list_services=""))
        names = {s.name for s in r.list_services_response.service}
        for service in ALL_SERVICES:
            self.assertIn(service, names)

    def test_reflection_file_containing_symbol(self):
        r = self.reflect(pb["refl"].ServerReflectionRequest(
            file_containing_symbol="campaigns.v1.CampaignService"))
        files = [pb["descriptor"].FileDescriptorProto.FromString(b)
                 for b in r.file_descriptor_response.file_descriptor_proto]
        self.assertTrue(files, r)
        methods = {}
        for f in files:
            for s in f.service:
                methods["%s.%s" % (f.package, s.name)] = [
                    m.name for m in s.method]
        self.assertIn("campaigns.v1.CampaignService", methods,
                      [f.name for f in files])
        self.assertIn("CreateCampaign",
                      methods["campaigns.v1.CampaignService"])
        self.assertEqual(files[0].name, "campaigns/v1/campaign.proto")

    def test_get_account_with_both_headers(self):
        account = self.stub("account")
        for md in (bearer(BOOTSTRAP_KEY), (("x-api-key", BOOTSTRAP_KEY),)):
            with self.subTest(metadata=md[0][0]):
                a = account.GetAccount(pb["account"].GetAccountRequest(),
                                       metadata=md, timeout=RPC_TIMEOUT)
                self.assertTrue(a.id.startswith("acct_"), a)
                self.assertTrue(a.admin, a)

    def test_unauthenticated_same_message(self):
        account = self.stub("account")
        req = pb["account"].GetAccountRequest()
        unauth = grpc.StatusCode.UNAUTHENTICATED
        missing = self.call_fails(account.GetAccount, req, (), unauth,
                                  "UNAUTHORIZED")
        wrong = self.call_fails(account.GetAccount, req,
                                bearer("ck_wrong_key"), unauth, "UNAUTHORIZED")
        wrong_x = self.call_fails(account.GetAccount, req,
                                  (("x-api-key", "ck_wrong_key"),), unauth,
                                  "UNAUTHORIZED")
        self.assertEqual(missing.message, wrong.message)
        self.assertEqual(missing.message, wrong_x.message)
        # Every RPC authenticates first.
        self.call_fails(self.stub("campaign").StartCampaign,
                        pb["campaign"].StartCampaignRequest(id="cmp_x"), (),
                        unauth, "UNAUTHORIZED")

    def test_list_limit_over_100(self):
        f = self.call_fails(
            self.stub("campaign").ListCampaigns,
            pb["campaign"].ListCampaignsRequest(limit=101),
            bearer(BOOTSTRAP_KEY), grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_REQUEST", "limit")
        self.assertIsNotNone(f.bad_request, f)

    def test_unregistered_sender(self):
        self.call_fails(
            self.stub("campaign").CreateCampaign,
            pb["campaign"].CreateCampaignRequest(
                name="nobody", channel=pb["common"].sms,
                sender_id="+15559999999", body="Hi"),
            bearer(BOOTSTRAP_KEY), grpc.StatusCode.FAILED_PRECONDITION,
            "VALIDATION_ERROR", "sender_id")

    def register_sender(self, key, sender_id):
        return self.stub("sender").RegisterSender(
            pb["sender"].RegisterSenderRequest(
                sender_id=sender_id, channel=pb["common"].sms,
                tier=pb["sender"].Sender.tier_1k, verified=True),
            metadata=bearer(key), timeout=RPC_TIMEOUT)

    def test_idempotent_create(self):
        self.register_sender(BOOTSTRAP_KEY, "+15550100")
        campaigns = self.stub("campaign")
        md = bearer(BOOTSTRAP_KEY)

        def request(name):
            return pb["campaign"].CreateCampaignRequest(
                name=name, channel=pb["common"].sms, sender_id="+15550100",
                body="Hi {{name}}", request_id="e2e-idem-1")

        first = campaigns.CreateCampaign(request("Idem"), metadata=md,
                                         timeout=RPC_TIMEOUT)
        self.assertTrue(first.id.startswith("cmp_"), first)
        self.assertEqual(first.status, pb["campaign"].Campaign.draft)
        again = campaigns.CreateCampaign(request("Idem"), metadata=md,
                                         timeout=RPC_TIMEOUT)
        self.assertEqual(again.id, first.id)
        self.call_fails(campaigns.CreateCampaign, request("Idem (changed)"),
                        md, grpc.StatusCode.ALREADY_EXISTS,
                        "IDEMPOTENCY_CONFLICT")
        listed = campaigns.ListCampaigns(
            pb["campaign"].ListCampaignsRequest(sender_id="+15550100"),
            metadata=md, timeout=RPC_TIMEOUT)
        self.assertEqual([c.id for c in listed.items], [first.id])

    def test_idempotent_api_key(self):
        # A repeat returns the first key without its secret (shown once).
        account = self.stub("account")
        md = bearer(BOOTSTRAP_KEY)
        req = pb["account"].CreateApiKeyRequest(name="idem",
                                                request_id="e2e-key-1")
        first = account.CreateApiKey(req, metadata=md, timeout=RPC_TIMEOUT)
        self.assertTrue(first.id.startswith("key_"), first)
        self.assertTrue(first.secret, first)
        again = account.CreateApiKey(req, metadata=md, timeout=RPC_TIMEOUT)
        self.assertEqual(again.id, first.id)
        self.assertEqual(again.secret, "", again)
        self.call_fails(account.CreateApiKey, pb["account"].CreateApiKeyRequest(
            name="other", request_id="e2e-key-1"), md,
            grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_CONFLICT")

    def test_tenancy(self):
        md_admin = bearer(BOOTSTRAP_KEY)
        self.register_sender(BOOTSTRAP_KEY, "+15550200")
        campaigns = self.stub("campaign")
        mine = campaigns.CreateCampaign(
            pb["campaign"].CreateCampaignRequest(
                name="Admin's", channel=pb["common"].sms,
                sender_id="+15550200", body="Hi"),
            metadata=md_admin, timeout=RPC_TIMEOUT)

        acct = self.stub("account").CreateAccount(
            pb["account"].CreateAccountRequest(name="tenant-b"),
            metadata=md_admin, timeout=RPC_TIMEOUT)
        self.assertTrue(acct.id.startswith("acct_"), acct)
        self.assertFalse(acct.admin, acct)
        self.assertTrue(acct.api_key.id.startswith("key_"), acct)
        self.assertTrue(acct.api_key.secret, acct)
        md_b = bearer(acct.api_key.secret)

        me = self.stub("account").GetAccount(
            pb["account"].GetAccountRequest(), metadata=md_b,
            timeout=RPC_TIMEOUT)
        self.assertEqual(me.id, acct.id)
        self.assertEqual(me.name, "tenant-b")
        self.assertFalse(me.api_key.secret)

        other = self.call_fails(
            campaigns.GetCampaign, pb["campaign"].GetCampaignRequest(id=mine.id),
            md_b, grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
        missing = self.call_fails(
            campaigns.GetCampaign,
            pb["campaign"].GetCampaignRequest(id="cmp_doesnotexist"), md_b,
            grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
        self.assertEqual(other.message.replace(mine.id, "ID"),
                         missing.message.replace("cmp_doesnotexist", "ID"))
        listed = campaigns.ListCampaigns(pb["campaign"].ListCampaignsRequest(),
                                         metadata=md_b, timeout=RPC_TIMEOUT)
        self.assertEqual(len(listed.items), 0, listed)
        self.assertEqual(listed.total, 0, listed)
        # The admin still sees it; the tenant may not call admin-only RPCs.
        campaigns.GetCampaign(pb["campaign"].GetCampaignRequest(id=mine.id),
                              metadata=md_admin, timeout=RPC_TIMEOUT)
        self.call_fails(self.stub("account").CreateAccount,
                        pb["account"].CreateAccountRequest(name="nope"), md_b,
                        grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")

    def test_start_refusals(self):
        md = bearer(BOOTSTRAP_KEY)
        campaigns = self.stub("campaign")
        self.call_fails(campaigns.StartCampaign,
                        pb["campaign"].StartCampaignRequest(id="cmp_x"), md,
                        grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
        # CreateCampaign with start: true and no audience is refused, and
        # nothing is stored.
        self.register_sender(BOOTSTRAP_KEY, "+15550300")
        self.call_fails(campaigns.CreateCampaign,
                        pb["campaign"].CreateCampaignRequest(
                            name="Now", channel=pb["common"].sms,
                            sender_id="+15550300", body="Hi", start=True),
                        md, grpc.StatusCode.FAILED_PRECONDITION,
                        "VALIDATION_ERROR")
        listed = campaigns.ListCampaigns(
            pb["campaign"].ListCampaignsRequest(sender_id="+15550300"),
            metadata=md, timeout=RPC_TIMEOUT)
        self.assertEqual(len(listed.items), 0, listed)


# ---------------------------------------------------------------------------
# campaignctl


class CampaignctlTest(ServerCase):

    def ok(self, *args, key=BOOTSTRAP_KEY):
        r = ctl(*args, server=self.server.address, key=key)
        self.assert_ctl(r)
        return r

    def json(self, *args, key=BOOTSTRAP_KEY):
        return self.ctl_json(*args, server=self.server.address, key=key)

    def test_walkthrough(self):
        account = self.json("account", "get")
        self.assertTrue(account["id"].startswith("acct_"), account)
        self.assertIs(account["admin"], True, account)
        self.assertIn(account["id"], self.ok("account", "get").stdout)

        sender = self.json("senders", "register", "--sender-id", "+15550001",
                           "--channel", "sms", "--tier", "tier_10k",
                           "--verified")
        self.assertTrue(sender["id"].startswith("snd_"), sender)
        self.assertEqual(sender["senderId"], "+15550001")
        self.assertEqual(sender["channel"], "sms")
        self.assertEqual(sender["tier"], "tier_10k")
        self.assertIs(sender["verified"], True)

        tmpl = self.json("templates", "create", "--name", "welcome",
                         "--language", "en_US", "--channel", "sms", "--body",
                         "Hi {{name}}, use {{code}}")
        self.assertTrue(tmpl["id"].startswith("tmpl_"), tmpl)
        self.assertEqual(tmpl["status"], "pending")
        approved = self.json("templates", "set-status", tmpl["id"],
                             "--status", "approved")
        self.assertEqual(approved["status"], "approved")

        cmp = self.json("campaigns", "create", "--name", "Spring Promotion",
                        "--channel", "sms", "--sender", "+15550001",
                        "--template", tmpl["id"], "--var", "name=first_name",
                        "--batch-size", "500", "--rate", "20")
        cid = cmp["id"]
        self.assertTrue(cid.startswith("cmp_"), cmp)
        self.assertEqual(cmp["status"], "draft")
        self.assertEqual(cmp["variableMapping"], {"name": "first_name"})
        self.assertEqual(cmp["batchSize"], 500)
        self.assertEqual(cmp["rateLimitPerSecond"], 20)

        table = self.ok("campaigns", "list", "--status", "draft").stdout
        self.assertIn(cid, table)
        self.assertIn("Spring Promotion", table)
        self.assertIn("ID", table.splitlines()[0])

        updated = self.ok("campaigns", "update", cid, "--name",
                          "Spring Promotion (EU)").stdout
        self.assertIn("Spring Promotion (EU)", updated)
        self.assertIn(cid, updated)

        got = self.json("campaigns", "get", cid)
        self.assertEqual(got["id"], cid)
        self.assertEqual(got["name"], "Spring Promotion (EU)")
        self.assertEqual(got["senderId"], "+15550001")
        self.assertEqual(got["status"], "draft")
        self.assertEqual(got["channel"], "sms")
        self.assertEqual(got["templateId"], tmpl["id"])
        self.assertEqual(got["templateName"], "welcome")
        self.assertEqual(got["templateLang"], "en_US")
        self.assertEqual(got["variableMapping"], {"name": "first_name"})
        self.assertNotIn("sender_id", got)
        self.assertIn(cid, self.ok("campaigns", "get", cid).stdout)

        # The same through --server/--api-key instead of the environment.
        r = ctl("--server", self.server.address, "--api-key", BOOTSTRAP_KEY,
                "campaigns", "get", cid, "--json")
        self.assert_ctl(r)
        self.assertEqual(json.loads(r.stdout)["id"], cid)

    def test_keys(self):
        key = self.json("keys", "create", "--name", "ci-pipeline")
        self.assertTrue(key["id"].startswith("key_"), key)
        self.assertEqual(key["name"], "ci-pipeline")
        secret = key.get("secret")
        self.assertTrue(secret, key)

        listed = self.ok("keys", "list").stdout
        self.assertIn(key["id"], listed)
        self.assertIn("ci-pipeline", listed)
        self.assertNotIn(secret, listed)
        items = self.json("keys", "list")["items"]
        mine = [k for k in items if k["id"] == key["id"]]
        self.assertEqual(len(mine), 1, items)
        self.assertIs(mine[0]["revoked"], False)
        self.assertFalse(mine[0].get("secret"), mine[0])

        self.assertTrue(self.json("account", "get", key=secret)["admin"])
        revoked = self.json("keys", "revoke", key["id"])
        self.assertIs(revoked["revoked"], True, revoked)

        # A revoked key answers like an unknown one.
        r_revoked = ctl("account", "get", server=self.server.address,
                        key=secret)
        r_unknown = ctl("account", "get", server=self.server.address,
                        key="ck_unknown")
        self.assert_ctl(r_revoked, 1)
        self.assert_ctl(r_unknown, 1)
        self.assertIn("UNAUTHENTICATED", r_revoked.stderr)
        self.assertEqual(r_revoked.stderr, r_unknown.stderr)

    def test_account_create(self):
        r = self.ok("account", "create", "--name", "acme")
        m = re.search(r"API key secret[^\n]*\n\s*\n\s*(\S+)", r.stdout)
        self.assertIsNotNone(m, describe(r))
        secret = m.group(1)
        acme = self.json("account", "get", key=secret)
        self.assertEqual(acme["name"], "acme")
        self.assertIs(acme["admin"], False)
        self.assertIn(acme["id"], r.stdout)
        # The new tenant sees none of the admin's campaigns.
        listed = self.json("campaigns", "list", key=secret)
        self.assertEqual(listed.get("items", []), [], listed)

    def test_not_found_exits_1(self):
        r = ctl("campaigns", "get", "cmp_nope", server=self.server.address,
                key=BOOTSTRAP_KEY)
        self.assert_ctl(r, 1)
        self.assertIn("NOT_FOUND", r.stderr)
        self.assertEqual(r.stdout, "")
        r = ctl("campaigns", "get", "cmp_nope", "--json",
                server=self.server.address, key=BOOTSTRAP_KEY)
        self.assert_ctl(r, 1)
        err = json.loads(r.stderr.strip().splitlines()[-1])["error"]
        self.assertEqual(err["code"], "NOT_FOUND")
        self.assertEqual(err["reason"], "NOT_FOUND")
        self.assertEqual(err["domain"], "campaigns.v1")

    def test_no_key_exits_1(self):
        r = ctl("account", "get", server=self.server.address)
        self.assert_ctl(r, 1)
        self.assertIn("UNAUTHENTICATED", r.stderr)

    def test_usage_error_exits_2(self):
        r = ctl("campaigns", "create", "--name", "x", "--channel", "pigeon",
                "--sender", "+15550001", "--body", "hi",
                server=self.server.address, key=BOOTSTRAP_KEY)
        self.assert_ctl(r, 2)
        self.assertTrue(r.stderr.strip(), describe(r))

    def test_unreachable_exits_3(self):
        r = ctl("--server", "127.0.0.1:1", "account", "get", key=BOOTSTRAP_KEY)
        self.assert_ctl(r, 3)


# ---------------------------------------------------------------------------
# REST/JSON through campaignd-gateway


SEED_SENDER = {"sender_id": "+15550001", "channel": "sms", "tier": "tier_10k"}
SEED_CAMPAIGN = {
    "name": "Spring Promotion", "channel": "sms", "sender_id": "+15550001",
    "body": "Hi {{name}}", "batch_delay": "2s",
    "schedule_at": "2026-12-01T09:00:00Z",
    "variable_mapping": {"name": "first_name"},
}


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

    def ok(self, method, path, body=None, **kw):
        r = self.call(method, path, body, **kw)
        self.assertEqual(r.status, 200, r)
        self.assertIsInstance(r.json, dict, r)
        self.assertIn("application/json", r.headers.get("Content-Type", ""), r)
        return r.json

    def assert_error(self, r, http_status, code, reason, field=None):
        """The gateway's JSON error: status, code, ErrorInfo, BadRequest."""
        self.assertEqual(r.status, http_status, r)
        self.assertIn("application/json", r.headers.get("Content-Type", ""), r)
        err = r.json
        self.assertIsInstance(err, dict, r)
        self.assertEqual(err.get("code"), code, r)
        self.assertTrue(err.get("message"), r)
        self.assertEqual(err.get("error"), err.get("message"), r)
        details = err.get("details")
        self.assertIsInstance(details, list, r)
        infos = [d for d in details if d.get("@type") == ERROR_INFO_URL]
        self.assertEqual(len(infos), 1, r)
        self.assertEqual(infos[0].get("reason"), reason, r)
        self.assertEqual(infos[0].get("domain"), "campaigns.v1", r)
        if field is not None:
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


class RestGatewayTest(GatewayCase):
    """The seeds' REST calls through the gateway."""

    seed_sender_response = None

    def seed_sender(self):
        """Registers the seed's sender once (the first test to need it)."""
        cls = type(self)
        if cls.seed_sender_response is None:
            cls.seed_sender_response = self.call("POST", "/api/v1/senders",
                                                 SEED_SENDER)
        self.assertEqual(cls.seed_sender_response.status, 200,
                         cls.seed_sender_response)
        return cls.seed_sender_response.json

    def create(self, body):
        self.seed_sender()
        got = self.ok("POST", "/api/v1/campaigns", body)
        self.assertTrue(got.get("id", "").startswith("cmp_"), got)
        return got

    # -- tests

    def test_register_sender(self):
        s = self.seed_sender()
        self.assertTrue(s["id"].startswith("snd_"), s)
        self.assertEqual(s["senderId"], "+15550001", s)
        self.assertEqual(s["channel"], "sms", s)
        self.assertEqual(s["tier"], "tier_10k", s)
        self.assertEqual(s["ratePerSecond"], 30, s)
        self.assertNotIn("sender_id", s)
        got = self.ok("GET", "/api/v1/senders/" + s["id"])
        self.assertEqual(got["senderId"], "+15550001", got)

    def test_create_campaign(self):
        c = self.create(SEED_CAMPAIGN)
        self.assertEqual(c["status"], "draft", c)
        self.assertEqual(c["name"], "Spring Promotion", c)
        self.assertEqual(c["channel"], "sms", c)
        self.assertEqual(c["senderId"], "+15550001", c)
        self.assertEqual(c["body"], "Hi {{name}}", c)
        self.assertEqual(c["batchDelay"], "2s", c)
        self.assertEqual(c["scheduleAt"], "2026-12-01T09:00:00Z", c)
        self.assertEqual(c["variableMapping"], {"name": "first_name"}, c)
        for snake in ("sender_id", "batch_delay", "schedule_at",
                      "variable_mapping"):
            self.assertNotIn(snake, c)

        # The same with the JSON (lowerCamelCase) names as input.
        camel = self.create({
            "name": "Camel", "channel": "sms", "senderId": "+15550001",
            "body": "Hello {{name}}", "batchDelay": "1.500s",
            "scheduleAt": "2026-12-02T10:30:00Z",
            "variableMapping": {"name": "first_name"}})
        self.assertNotEqual(camel["id"], c["id"])
        self.assertEqual(camel["status"], "draft", camel)
        self.assertEqual(camel["senderId"], "+15550001", camel)
        self.assertEqual(camel["batchDelay"], "1.500s", camel)
        self.assertEqual(camel["scheduleAt"], "2026-12-02T10:30:00Z", camel)
        self.assertEqual(camel["variableMapping"], {"name": "first_name"},
                         camel)

    def test_get_and_list(self):
        self.ok("POST", "/api/v1/senders", {
            "sender_id": "+15550002", "channel": "sms", "tier": "tier_1k"})
        first = self.create(dict(SEED_CAMPAIGN, name="List A",
                                 sender_id="+15550002"))
        second = self.create(dict(SEED_CAMPAIGN, name="List B",
                                  sender_id="+15550002"))

        got = self.ok("GET", "/api/v1/campaigns/" + first["id"])
        self.assertEqual(got["id"], first["id"], got)
        self.assertEqual(got["name"], "List A", got)
        self.assertEqual(got["status"], "draft", got)
        self.assertIsInstance(got.get("stats"), dict, got)
        self.assert_int64(got["stats"].get("total"), 0, got)

        listed = self.ok("GET", "/api/v1/campaigns?status=draft&limit=1")
        self.assertEqual(len(listed["items"]), 1, listed)
        self.assertGreaterEqual(int(listed["total"]), 2, listed)
        self.assertIs(listed["hasMore"], True, listed)
        self.assertEqual(listed["limit"], 1, listed)

        # Filtered to this test's sender: exactly its two drafts.
        query = urllib.parse.urlencode(
            {"status": "draft", "limit": 1, "sender_id": "+15550002"})
        page1 = self.ok("GET", "/api/v1/campaigns?" + query)
        self.assertEqual(len(page1["items"]), 1, page1)
        self.assert_int64(page1["total"], 2, page1)
        self.assertIs(page1["hasMore"], True, page1)
        page2 = self.ok("GET", "/api/v1/campaigns?" + query + "&page=2")
        self.assertEqual(len(page2["items"]), 1, page2)
        self.assertIs(page2["hasMore"], False, page2)
        self.assertEqual(
            {page1["items"][0]["id"], page2["items"][0]["id"]},
            {first["id"], second["id"]})

    def test_stats_route_is_not_get_campaign(self):
        # GET /campaigns/stats is GetCampaignStats (declared before
        # GetCampaign); read as GetCampaign("stats") it would be 404.
        got = self.ok("GET", "/api/v1/campaigns/stats?channel=sms")
        self.assertIn("campaigns", got)
        self.assertEqual(got.get("currency"), "EUR", got)
        window = self.ok("GET", "/api/v1/campaigns/stats?"
                         "from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z")
        self.assert_int64(window.get("campaigns"), 0, window)

    def test_money_calculate_goal_price_and_ledger(self):
        # A tenant whose admin sets prices and adds credits; the seeds'
        # calculateGoal / price, then a start refused for want of credits.
        acct = self.ok("POST", "/api/v1/accounts", {"name": "payer"})
        key = acct["apiKey"]["secret"]
        prices = self.ok("PUT", "/api/v1/accounts/%s/prices" % acct["id"],
                         {"prices": [{"channel": "sms", "amount": "30000"},
                                     {"channel": "sms", "country": "us",
                                      "amount": "20000"}]})
        self.assertEqual(len(prices["prices"]), 2, prices)
        added = self.ok("POST", "/api/v1/accounts/%s/credits" % acct["id"],
                        {"amount": "50000", "description": "invoice 1"})
        self.assert_int64(added["creditsBalance"], 50000, added)
        self.assertEqual(added["creditUnit"], "micro", added)
        self.ok("POST", "/api/v1/senders", dict(SEED_SENDER), key=key)
        for i, tag in enumerate(["vip", "vip", "vip", "other"]):
            self.ok("POST", "/api/v1/contacts",
                    {"channel": "sms", "address": "+1202555020%d" % i,
                     "attributes": {"first_name": "Ann"}, "tags": [tag]},
                    key=key)
        c = self.ok("POST", "/api/v1/campaigns",
                    dict({k: v for k, v in SEED_CAMPAIGN.items()
                          if k != "schedule_at"}, tags=["vip"]),
                    key=key)
        goal = self.ok("POST", "/api/v1/campaigns/%s/calculateGoal" % c["id"],
                       {}, key=key)
        self.assert_int64(goal["total"], 60000, goal)
        self.assertEqual(goal["currency"], "EUR", goal)
        self.assertEqual(goal["creditUnit"], "micro", goal)
        self.assertIs(goal["sufficient"], False, goal)
        self.assert_int64(goal["creditsAvailable"], 50000, goal)
        self.assertEqual(len(goal["lines"]), 1, goal)
        line = goal["lines"][0]
        self.assertEqual((line["channel"], line["country"]), ("sms", "US"))
        self.assert_int64(line["recipients"], 3, line)
        self.assert_int64(line["segments"], 3, line)
        self.assert_int64(line["unitPrice"], 20000, line)
        price = self.ok("GET", "/api/v1/campaigns/%s/price" % c["id"], key=key)
        self.assertEqual(price, goal)
        r = self.call("POST", "/api/v1/campaigns/%s/start" % c["id"], {},
                      key=key)
        self.assert_error(r, 412, 9, "INSUFFICIENT_CREDITS")
        self.ok("POST", "/api/v1/accounts/%s/credits" % acct["id"],
                {"amount": "10000"})
        started = self.ok("POST", "/api/v1/campaigns/%s/start" % c["id"], {},
                          key=key)
        self.assertIn(started["status"], ("sending", "sent", "completed"))
        deadline = time.monotonic() + 60
        while started["status"] != "completed" and time.monotonic() < deadline:
            time.sleep(0.05)
            started = self.ok("GET", "/api/v1/campaigns/" + c["id"], key=key)
        self.assertEqual(started["status"], "completed", started)
        account = self.ok("GET", "/api/v1/account", key=key)
        ledger = self.ok("GET", "/api/v1/account/transactions?limit=100",
                         key=key)
        debited = sum(int(t["amount"]) for t in ledger["items"]
                      if t["type"] == "debit")
        self.assertEqual(debited, 60000, ledger)
        self.assert_int64(account["creditsBalance"], 0, account)
        self.assert_int64(account["creditsReserved"], 0, account)
        types = [t["type"] for t in ledger["items"]]
        self.assertIn("reservation", types, ledger)
        self.assertEqual(types.count("credit"), 2, ledger)

    def test_put_and_patch(self):
        c = self.create(dict(SEED_CAMPAIGN, name="To update"))
        path = "/api/v1/campaigns/" + c["id"]

        with self.subTest("PUT without update_mask"):
            put = self.ok("PUT", path, {"name": "Renamed"})
            self.assertEqual(put["id"], c["id"], put)
            self.assertEqual(put["name"], "Renamed", put)
            self.assertEqual(put["body"], "Hi {{name}}", put)
            self.assertEqual(put["batchDelay"], "2s", put)

        with self.subTest("PATCH update_mask body"):
            # update_mask "body" clears the body; without a template that is
            # a VALIDATION_ERROR on `body`, which proves the server got the
            # path as "body" (grpc-gateway 1.6.4's CamelCaseFieldMask would
            # have made it "Body"). FAILED_PRECONDITION is HTTP 412 in
            # grpc-gateway 1.6.4's runtime.HTTPStatusFromCode.
            r = self.call("PATCH", path, {"body": "", "template_id": "",
                                          "update_mask": "body"})
            self.assert_error(r, 412, 9, "VALIDATION_ERROR", "body")
            unchanged = self.ok("GET", path)
            self.assertEqual(unchanged["body"], "Hi {{name}}", unchanged)

        with self.subTest("PATCH update_mask name"):
            masked = self.ok("PATCH", path, {"name": "Masked",
                                             "update_mask": "name"})
            self.assertEqual(masked["name"], "Masked", masked)
            self.assertEqual(masked["body"], "Hi {{name}}", masked)
            self.assertEqual(self.ok("GET", path)["name"], "Masked")

        with self.subTest("PATCH update_mask in proto3 JSON (lowerCamelCase)"):
            # proto3 JSON spells FieldMask paths in lowerCamelCase
            # ("batchDelay" is the path batch_delay).
            r = self.ok("PATCH", path, {"batch_delay": "5s",
                                        "update_mask": "batchDelay"})
            self.assertEqual(r["batchDelay"], "5s", r)
            self.assertEqual(r["body"], "Hi {{name}}", r)

    def test_auth(self):
        missing = self.assert_error(self.call("GET", "/api/v1/account",
                                              key=None),
                                    401, 16, "UNAUTHORIZED")
        wrong = self.assert_error(self.call("GET", "/api/v1/account",
                                            key="ck_wrong_key"),
                                  401, 16, "UNAUTHORIZED")
        self.assertEqual(missing["message"], wrong["message"])
        acct = self.ok("GET", "/api/v1/account", key=None,
                       headers={"X-Api-Key": BOOTSTRAP_KEY})
        self.assertTrue(acct["id"].startswith("acct_"), acct)
        self.assertIs(acct["admin"], True, acct)
        self.assert_error(self.call("GET", "/api/v1/campaigns", key=None),
                          401, 16, "UNAUTHORIZED")
        listed = self.ok("GET", "/api/v1/campaigns", key=None,
                         headers={"X-Api-Key": BOOTSTRAP_KEY})
        self.assertIn("items", listed)

    def test_list_limit_over_100(self):
        r = self.call("GET", "/api/v1/campaigns?limit=101")
        self.assert_error(r, 400, 3, "INVALID_REQUEST", "limit")

    def test_not_found(self):
        r = self.call("GET", "/api/v1/campaigns/cmp_doesnotexist")
        self.assert_error(r, 404, 5, "NOT_FOUND")

    def test_delete(self):
        c = self.create(dict(SEED_CAMPAIGN, name="To delete"))
        path = "/api/v1/campaigns/" + c["id"]
        self.assertEqual(self.ok("DELETE", path), {})
        self.assert_error(self.call("GET", path), 404, 5, "NOT_FOUND")
        self.assert_error(self.call("DELETE", path), 404, 5, "NOT_FOUND")


# ---------------------------------------------------------------------------
# Shutdown, persistence, bootstrap



class KeyLimitRestTest(GatewayCase):
    """A key over its request limit gets 429 with Retry-After; others not."""

    server_args = ("--key-rate", "0.5", "--key-burst", "3")

    def test_429_with_retry_after(self):
        other = self.ok("POST", "/api/v1/accounts", {"name": "other"})
        r = None
        for _ in range(10):
            r = self.call("GET", "/api/v1/account")
            if r.status != 200:
                break
        err = self.assert_error(r, 429, 8, "RATE_LIMIT_EXCEEDED")
        self.assertGreaterEqual(int(r.headers.get("Retry-After", "0")), 1, r)
        retry = [d for d in err["details"]
                 if d.get("@type") == "type.googleapis.com/google.rpc.RetryInfo"]
        self.assertEqual(len(retry), 1, r)
        self.ok("GET", "/api/v1/account", key=other["apiKey"]["secret"])

class LifecycleTest(E2ECase):

    def setUp(self):
        self.servers = []

    def tearDown(self):
        for srv in self.servers:
            srv.kill()

    def start(self, name, db, key):
        srv = CampaignD(name, db, key)
        self.servers.append(srv)
        return srv.start()

    def stop(self, srv, timeout=STOP_TIMEOUT):
        code = srv.terminate(max(timeout, 0.1))
        self.assertIsNotNone(code, "%s did not exit within %ds of SIGTERM" % (
            srv.name, STOP_TIMEOUT))
        self.assertEqual(code, 0, "%s exit code after SIGTERM" % srv.name)

    def test_sigterm_and_restart_keeps_data(self):
        db = new_db("persist")
        srv = self.start("persist", db, BOOTSTRAP_KEY)
        md = bearer(BOOTSTRAP_KEY)
        pb["sender_grpc"].SenderServiceStub(srv.channel).RegisterSender(
            pb["sender"].RegisterSenderRequest(
                sender_id="+15550400", channel=pb["common"].sms),
            metadata=md, timeout=RPC_TIMEOUT)
        cmp = pb["campaign_grpc"].CampaignServiceStub(srv.channel).CreateCampaign(
            pb["campaign"].CreateCampaignRequest(
                name="Persistent", channel=pb["common"].sms,
                sender_id="+15550400", body="Hi {{name}}"),
            metadata=md, timeout=RPC_TIMEOUT)
        # A Health.Watch stream open across the SIGTERM sees NOT_SERVING
        # first; then it is cancelled so that it does not hold the shutdown
        # for its whole timeout.
        watch = pb["health_grpc"].HealthStub(srv.channel).Watch(
            pb["health"].HealthCheckRequest(service=""),
            timeout=STOP_TIMEOUT)
        serving = pb["health"].HealthCheckResponse.ServingStatus
        self.assertEqual(serving.Name(next(watch).status), "SERVING")
        t0 = time.monotonic()
        srv.sigterm()
        try:
            after = serving.Name(next(watch).status)
        except (grpc.RpcError, StopIteration) as e:
            after = "no update, the stream ended: %r" % (e,)
        watch.cancel()
        self.assertEqual(after, "NOT_SERVING")
        self.stop(srv, STOP_TIMEOUT - (time.monotonic() - t0))
        self.assertIn("shutdown complete", srv.stdout())

        # Restart on the same database. CAMPAIGND_BOOTSTRAP_KEY only seeds a
        # new database, so another value now must not become a key.
        srv2 = self.start("persist-restart", db, "ck_e2e_other_key")
        got = pb["campaign_grpc"].CampaignServiceStub(srv2.channel).GetCampaign(
            pb["campaign"].GetCampaignRequest(id=cmp.id), metadata=md,
            timeout=RPC_TIMEOUT)
        self.assertEqual(got.id, cmp.id)
        self.assertEqual(got.name, "Persistent")
        self.assertEqual(got.sender_id, "+15550400")
        self.assertEqual(got.body, "Hi {{name}}")
        account = pb["account_grpc"].AccountServiceStub(srv2.channel)
        self.assertTrue(account.GetAccount(
            pb["account"].GetAccountRequest(), metadata=md,
            timeout=RPC_TIMEOUT).admin)
        self.call_fails(account.GetAccount, pb["account"].GetAccountRequest(),
                        bearer("ck_e2e_other_key"),
                        grpc.StatusCode.UNAUTHENTICATED, "UNAUTHORIZED")
        self.assertNotIn("Admin API key", srv2.stderr())
        self.stop(srv2)

    def test_generated_bootstrap_key(self):
        srv = self.start("generated-key", new_db("generated"), None)
        m = re.search(r"\b(ck_[A-Za-z0-9_\-]+)", srv.stderr())
        self.assertIsNotNone(m, "no ck_ key on stderr:\n" + srv.stderr())
        key = m.group(1)
        a = pb["account_grpc"].AccountServiceStub(srv.channel).GetAccount(
            pb["account"].GetAccountRequest(), metadata=bearer(key),
            timeout=RPC_TIMEOUT)
        self.assertTrue(a.admin, a)
        self.assertNotIn(key, srv.stdout(), "the key is printed to stderr only")
        self.stop(srv)


class CrashSafetyTest(E2ECase):
    """SIGKILL campaignd again and again while it dispatches; every restart
    resumes on the same database by itself, and the simulator's send log
    (JSON lines, one per provider call) shows no message accepted twice."""

    RECIPIENTS = 20000
    KILLS = 6

    def setUp(self):
        self.servers = []

    def tearDown(self):
        for srv in self.servers:
            srv.kill()

    def start(self, db, sim_log):
        srv = CampaignD("crash", db, BOOTSTRAP_KEY, extra_args=[
            "--simulator-log", sim_log,
            # Latency keeps accepted-but-unrecorded messages in flight at
            # every kill: their resends must be recognised, not repeated.
            "--simulator", "default:latency=50ms,delivered_delay=0s",
            "--receipt-timeout", "5"])
        self.servers.append(srv)
        return srv.start()

    def test_sigkill_during_dispatch_loses_and_repeats_nothing(self):
        import random
        rng = random.Random(20261123)
        db = new_db("crash")
        sim_log = os.path.join(os.path.dirname(db), "simulator.jsonl")
        md = bearer(BOOTSTRAP_KEY)
        srv = self.start(db, sim_log)
        pb["sender_grpc"].SenderServiceStub(srv.channel).RegisterSender(
            pb["sender"].RegisterSenderRequest(
                sender_id="+15550900", channel=pb["common"].sms,
                tier=pb["sender"].Sender.unlimited),
            metadata=md, timeout=RPC_TIMEOUT)
        campaigns = pb["campaign_grpc"].CampaignServiceStub(srv.channel)
        # 2,000 a second: about ten seconds of sending to kill into.
        c = campaigns.CreateCampaign(pb["campaign"].CreateCampaignRequest(
            name="crash", channel=pb["common"].sms, sender_id="+15550900",
            body="Hi {{name}}", rate_limit_per_second=2000, batch_size=200),
            metadata=md, timeout=RPC_TIMEOUT)
        rows = "phone,name\n" + "".join(
            "+1202%07d,n%d\n" % (5000000 + i, i)
            for i in range(self.RECIPIENTS))
        req = pb["campaign"].ImportRecipientsRequest
        imported = campaigns.ImportRecipients(iter([
            req(campaign_id=c.id, format=req.csv, default_region="US"),
            req(csv_chunk=rows.encode())]), metadata=md, timeout=60)
        self.assertEqual(imported.imported, self.RECIPIENTS)
        campaigns.StartCampaign(pb["campaign"].StartCampaignRequest(id=c.id),
                                metadata=md, timeout=RPC_TIMEOUT)
        kills = 0
        while kills < self.KILLS:
            time.sleep(rng.uniform(0.2, 0.9))
            got = campaigns.GetCampaign(
                pb["campaign"].GetCampaignRequest(id=c.id), metadata=md,
                timeout=RPC_TIMEOUT)
            self.assertEqual(got.status, pb["campaign"].Campaign.sending,
                             "the campaign finished before kill %d; "
                             "it should still be sending" % (kills + 1))
            srv.kill()  # SIGKILL
            kills += 1
            srv = self.start(db, sim_log)
            campaigns = pb["campaign_grpc"].CampaignServiceStub(srv.channel)
        deadline = time.monotonic() + 120
        while True:
            got = campaigns.GetCampaign(
                pb["campaign"].GetCampaignRequest(id=c.id), metadata=md,
                timeout=RPC_TIMEOUT)
            if got.status == pb["campaign"].Campaign.completed:
                break
            self.assertLess(time.monotonic(), deadline,
                            "not completed: %s" % got)
            time.sleep(0.2)
        st = got.stats
        self.assertEqual(st.total, self.RECIPIENTS)
        self.assertEqual(st.queued + st.failed + st.skipped, 0, st)
        self.assertEqual(st.sent + st.delivered, self.RECIPIENTS, st)
        # Every recipient once, in one state that agrees with the counters.
        states = {}
        token = ""
        while True:
            page = campaigns.ListRecipients(
                pb["campaign"].ListRecipientsRequest(
                    campaign_id=c.id, limit=100, page_token=token),
                metadata=md, timeout=RPC_TIMEOUT)
            for r in page.items:
                self.assertNotIn(r.id, states)
                states[r.id] = r.status
            if not page.has_more:
                break
            token = page.next_page_token
        self.assertEqual(len(states), self.RECIPIENTS)
        delivered = sum(1 for v in states.values()
                        if v == pb["campaign"].Recipient.delivered)
        self.assertEqual(delivered, st.delivered)
        # The provider's side: each recipient's key accepted exactly once.
        accepted = {}
        with open(sim_log) as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e["outcome"] == "accepted":
                    accepted[e["key"]] = accepted.get(e["key"], 0) + 1
        twice = [k for k, n in accepted.items() if n > 1]
        self.assertEqual(twice, [], "keys delivered more than once")
        self.assertEqual(set(accepted),
                         {"%s:%s" % (c.id, rid) for rid in states})


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


def main():
    global ARGS, RUN_DIR
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--campaignd", required=True)
    parser.add_argument("--campaignctl", required=True)
    parser.add_argument("--gateway", required=True,
                        help="campaignd-gateway (the REST/JSON proxy)")
    parser.add_argument("--proto-dir", required=True)
    parser.add_argument("--googleapis-dir", required=True)
    parser.add_argument("--work-dir", required=True)
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

    loader = unittest.TestLoader()
    module = sys.modules[__name__]
    if ARGS.tests:
        suite = loader.loadTestsFromNames(ARGS.tests, module)
    else:
        suite = unittest.TestSuite(loader.loadTestsFromTestCase(c) for c in (
            GrpcApiTest, CampaignctlTest, RestGatewayTest, LifecycleTest,
            CrashSafetyTest))
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


if __name__ == "__main__":
    sys.exit(main())
