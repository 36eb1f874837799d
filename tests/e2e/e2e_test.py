#!/usr/bin/python3
"""End-to-end test of the built campaignd and campaignctl binaries over gRPC.

Starts real campaignd processes on 127.0.0.1:0 with fresh databases (see
harness.py) and drives them with a Python gRPC client and with campaignctl
as a subprocess:

  * health (grpc.health.v1) and server reflection (v1 and v1alpha): every
    symbol a client meets resolves, as grpcurl resolves it, and Health/Check
    is called by the resolved descriptor alone;
  * API keys in `authorization: Bearer` and `x-api-key`, UNAUTHENTICATED with
    one message for a missing, unknown or revoked key;
  * error details: google.rpc.Status in `grpc-status-details-bin` with
    google.rpc.ErrorInfo and google.rpc.BadRequest;
  * idempotent CreateCampaign, tenancy, admin-only RPCs, start refusals;
  * the README's campaignctl walkthrough, its JSON output and exit codes;
  * SIGTERM shutdown (exit 0) and persistence across a restart;
  * crash safety: SIGKILL six times during a 20,000-recipient dispatch;
  * the generated bootstrap key of a database started without
    CAMPAIGND_BOOTSTRAP_KEY.

The REST face is tested by rest_test.py. Run by ctest with Debian's
/usr/bin/python3:

  /usr/bin/python3 tests/e2e/e2e_test.py --campaignd PATH --campaignctl PATH \
      --gateway PATH --proto-dir proto --googleapis-dir DIR --work-dir DIR

The last line printed is "N passed, N failed"; the exit status is non-zero on
any failure.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time

import grpc
from google.protobuf import descriptor_pool, message_factory

import harness
from harness import (ALL_SERVICES, BOOTSTRAP_KEY, RPC_TIMEOUT, STOP_TIMEOUT,
                     CampaignD, E2ECase, ServerCase, bearer, ctl, describe,
                     new_db, pb)


# ---------------------------------------------------------------------------
# gRPC: health, reflection, the Python client


def message_class(pool, descriptor):
    """The message class of a descriptor from a pool built at run time."""
    get = getattr(message_factory, "GetMessageClass", None)
    if get is not None:
        return get(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


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

    def test_reflection_resolves_what_grpcurl_needs(self):
        """What grpcurl does without proto files, on both reflection
        versions: resolve each symbol through reflection, build descriptors
        from the answers alone (a fresh pool), call Health/Check by the
        resolved descriptor, and decode a failed call's ErrorInfo with the
        resolved google.rpc.ErrorInfo."""
        symbols = ["grpc.health.v1.Health", "google.rpc.ErrorInfo",
                   "google.rpc.BadRequest", "google.rpc.RetryInfo",
                   "campaigns.v1.CampaignService"]
        for version in ("refl", "refl_v1"):
            with self.subTest(reflection=version):
                stub = pb[version + "_grpc"].ServerReflectionStub(
                    self.server.channel)
                requests = [pb[version].ServerReflectionRequest(
                    file_containing_symbol=s) for s in symbols]
                responses = list(stub.ServerReflectionInfo(
                    iter(requests), timeout=RPC_TIMEOUT))
                self.assertEqual(len(responses), len(symbols))
                files = {}
                for symbol, r in zip(symbols, responses):
                    self.assertEqual(r.WhichOneof("message_response"),
                                     "file_descriptor_response",
                                     "%s: %s" % (symbol, r))
                    for raw in r.file_descriptor_response.file_descriptor_proto:
                        f = pb["descriptor"].FileDescriptorProto.FromString(raw)
                        files[f.name] = f
                # A fresh pool of what was sent alone, imports first.
                pool = descriptor_pool.DescriptorPool()
                added = set()

                def add(name):
                    if name in added:
                        return
                    self.assertIn(name, files, "an import was not sent")
                    for dep in files[name].dependency:
                        add(dep)
                    pool.Add(files[name])
                    added.add(name)

                for name in files:
                    add(name)
                for symbol in symbols:
                    pool.FindFileContainingSymbol(symbol)

                health = pool.FindServiceByName("grpc.health.v1.Health")
                check = health.FindMethodByName("Check")
                request_class = message_class(pool, check.input_type)
                response_class = message_class(pool, check.output_type)
                call = self.server.channel.unary_unary(
                    "/grpc.health.v1.Health/Check",
                    request_serializer=request_class.SerializeToString,
                    response_deserializer=response_class.FromString)
                answer = call(request_class(service=""), timeout=RPC_TIMEOUT)
                serving = check.output_type.fields_by_name[
                    "status"].enum_type.values_by_name["SERVING"].number
                self.assertEqual(answer.status, serving)

                info = pool.FindMessageTypeByName("google.rpc.ErrorInfo")
                self.assertEqual(info.file.package, "google.rpc")
                self.assertEqual(
                    {f.name: f.number for f in info.fields},
                    {"reason": 1, "domain": 2, "metadata": 3})
                self.assertTrue(info.fields_by_name[
                    "metadata"].message_type.GetOptions().map_entry)
                account = self.stub("account")
                try:
                    account.GetAccount(pb["account"].GetAccountRequest(),
                                       timeout=RPC_TIMEOUT)
                    self.fail("GetAccount without a key succeeded")
                except grpc.RpcError as e:
                    details = dict(e.trailing_metadata() or ())[
                        "grpc-status-details-bin"]
                status = pb["status"].Status.FromString(details)
                infos = [d for d in status.details if d.type_url ==
                         "type.googleapis.com/" + info.full_name]
                self.assertEqual(len(infos), 1, status)
                decoded = message_class(pool, info).FromString(
                    infos[0].value)
                self.assertEqual(decoded.reason, "UNAUTHORIZED")
                self.assertEqual(decoded.domain, "campaigns.v1")

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

        providers = self.json("senders", "providers")
        self.assertEqual([p["name"] for p in providers["providers"]],
                         ["simulator"], providers)
        self.assertEqual(providers["providers"][0]["state"], "ok", providers)
        table = self.ok("senders", "providers").stdout.splitlines()
        self.assertEqual(table[0].split(),
                         ["NAME", "TYPE", "CHANNELS", "FALLBACK", "STATE",
                          "REASON"], table)
        self.assertEqual(table[1].split(),
                         ["simulator", "simulator",
                          "sms,whatsapp,telegram,email,slack,rcs", "-", "ok",
                          "-"], table)

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

    def test_email_walkthrough(self):
        # The README's email lines: a template with a subject and an HTML
        # body from a file, a campaign with its own subject.
        self.json("senders", "register", "--sender-id", "news@example.com",
                  "--channel", "email", "--tier", "tier_10k", "--verified")
        html = os.path.join(harness.RUN_DIR, "news.html")
        with open(html, "w") as f:
            f.write("<h1>Spring news</h1>\n"
                    "<p>Hi {{name}}, use <b>{{code}}</b></p>\n")
        news = self.json("templates", "create", "--name", "newsletter",
                         "--language", "en", "--channel", "email", "--body",
                         "Hi {{name}}, use {{code}}", "--subject",
                         "Spring news for {{name}}", "--html-body-file", html)
        self.assertEqual(news["subject"], "Spring news for {{name}}", news)
        self.assertEqual(news["htmlBody"], "<h1>Spring news</h1>\n"
                         "<p>Hi {{name}}, use <b>{{code}}</b></p>\n", news)
        self.assertEqual(news["placeholders"], ["name", "code"], news)
        self.json("templates", "set-status", news["id"], "--status",
                  "approved")
        mail = self.json("campaigns", "create", "--name", "Spring news",
                         "--channel", "email", "--sender", "news@example.com",
                         "--template", news["id"], "--subject",
                         "Last call, {{name}}")
        self.assertEqual(mail["subject"], "Last call, {{name}}", mail)
        self.assertEqual(mail.get("htmlBody", ""), "", mail)  # the template's

        # Without a subject anywhere: exit 1, VALIDATION_ERROR on `subject`.
        r = ctl("campaigns", "create", "--name", "No subject", "--channel",
                "email", "--sender", "news@example.com", "--body", "Hi",
                "--json", server=self.server.address, key=BOOTSTRAP_KEY)
        self.assert_ctl(r, 1)
        err = json.loads(r.stderr.strip().splitlines()[-1])["error"]
        self.assertEqual(err["code"], "FAILED_PRECONDITION", err)
        self.assertEqual(err["reason"], "VALIDATION_ERROR", err)
        self.assertEqual(err["message"],
                         "subject: is required for an email campaign", err)

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
# Shutdown, persistence, bootstrap, crash safety


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
        self.assertIn("shutdown complete", srv.stderr())

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

    def test_idle_connections_do_not_hold_the_shutdown(self):
        # The shutdown deadline is an hour: an exit before it means nothing
        # waited for the idle connections. Open while the process exits: the
        # harness's gRPC channel (idle after its health checks), a TCP
        # connection to the gRPC port that never sends a byte, one that sent
        # the HTTP/2 preface and SETTINGS and nothing since (not even the
        # answers a gRPC client gives to GOAWAY and PING), and an HTTP
        # keep-alive connection idle after one answer.
        srv = CampaignD("idle-conns", new_db("idle-conns"), BOOTSTRAP_KEY,
                        shutdown_timeout="1h")
        self.servers.append(srv)
        srv.start()
        silent = socket.create_connection(("127.0.0.1", srv.port))
        http2 = socket.create_connection(("127.0.0.1", srv.port))
        http2.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                      b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        keep_alive = socket.create_connection(("127.0.0.1", srv.http_port))
        keep_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = keep_alive.recv(4096)
            self.assertTrue(chunk, "the HTTP connection closed before answering")
            answer += chunk
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer)
        self.assertNotIn(b"connection: close", answer.lower())
        srv.sigterm()
        # STOP_TIMEOUT only keeps a failing run from hanging.
        try:
            code = srv.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        self.assertEqual(code, 0, "campaignd did not exit while idle "
                         "connections were open:\n" + srv.stderr()[-2000:])
        # The connections were still the client's when the process exited:
        # the server's side of each is closed now.
        for sock in (silent, http2, keep_alive):
            sock.settimeout(RPC_TIMEOUT)
            try:
                rest = sock.recv(4096)
                while rest:
                    rest = sock.recv(4096)
            except ConnectionResetError:
                pass
            sock.close()
        self.assertNotIn("calls still running at the deadline", srv.stderr())
        self.assertIn("shutdown complete", srv.stderr())

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
    resumes on the same database by itself, every receipt arrives (the
    simulator reports what it owes after each restart), and its send log
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
            # Long enough that only the simulator's own receipts (owed
            # ones reported again after each restart) complete it.
            "--receipt-timeout", "300"])
        self.servers.append(srv)
        return srv.start()

    def start_sending(self, name, recipients):
        """A new database and server, and a campaign of `recipients` started
        on it: (db, sim_log, server, campaign)."""
        db = new_db(name)
        sim_log = os.path.join(harness.db_dir(name), "simulator.jsonl")
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
            for i in range(recipients))
        req = pb["campaign"].ImportRecipientsRequest
        imported = campaigns.ImportRecipients(iter([
            req(campaign_id=c.id, format=req.csv, default_region="US"),
            req(csv_chunk=rows.encode())]), metadata=md, timeout=60)
        self.assertEqual(imported.imported, recipients)
        campaigns.StartCampaign(pb["campaign"].StartCampaignRequest(id=c.id),
                                metadata=md, timeout=RPC_TIMEOUT)
        return db, sim_log, srv, c

    def test_sigkill_during_dispatch_loses_and_repeats_nothing(self):
        import random
        rng = random.Random(20261123)
        md = bearer(BOOTSTRAP_KEY)
        db, sim_log, srv, c = self.start_sending("crash", self.RECIPIENTS)
        campaigns = pb["campaign_grpc"].CampaignServiceStub(srv.channel)
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
        self.check_sent_once(srv, c, sim_log, self.RECIPIENTS)

    def check_sent_once(self, srv, c, sim_log, recipients):
        """Waits for `c` to complete; every recipient delivered, each
        accepted by the provider exactly once."""
        md = bearer(BOOTSTRAP_KEY)
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
        self.assertEqual(st.total, recipients)
        self.assertEqual(st.queued + st.failed + st.skipped, 0, st)
        # Every receipt arrived, kills or not: none waited for the timeout.
        self.assertEqual(st.delivered, recipients, st)
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
        self.assertEqual(len(states), recipients)
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


class PostgresTest(CrashSafetyTest):
    """With --engine postgres only: a second instance on the database, and
    a PostgreSQL restart in the middle of dispatch."""

    def setUp(self):
        if harness.engine() != "postgres":
            self.skipTest("PostgreSQL only (--engine postgres)")
        super().setUp()

    def test_sigkill_during_dispatch_loses_and_repeats_nothing(self):
        self.skipTest("CrashSafetyTest's own test; it runs there")

    def test_a_second_instance_shares_the_database(self):
        db = new_db("second")
        first = self.start(db, os.path.join(harness.db_dir("second"), "a"))
        second = CampaignD("second-instance", db, BOOTSTRAP_KEY)
        self.servers.append(second)
        second.start()  # serving (tests/e2e/instances_test.py: the rest)
        err = second.stdout() + second.stderr()
        self.assertIn("instance registered for work sharing", err)
        # Never the URI's password.
        password = db.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
        self.assertNotIn(password, err)
        self.assertNotIn(password, first.stdout() + first.stderr())

    def test_an_unreachable_postgresql_stops_the_start_naming_it(self):
        with socket.socket() as sock:  # a free port nothing listens on
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        dsn = "postgresql://campaignd:pw-never-logged@127.0.0.1:%d/x" % port
        srv = CampaignD("unreachable", dsn, BOOTSTRAP_KEY)
        self.servers.append(srv)
        with self.assertRaises(AssertionError):
            srv.start()
        self.assertEqual(srv.proc.wait(timeout=STOP_TIMEOUT), 1)
        err = srv.stdout() + srv.stderr()
        self.assertIn("cannot be reached", err)
        self.assertIn("127.0.0.1:%d/x" % port, err)
        self.assertNotIn("pw-never-logged", err)

    def test_a_postgresql_restart_mid_dispatch_loses_and_repeats_nothing(self):
        md = bearer(BOOTSTRAP_KEY)
        db, sim_log, srv, c = self.start_sending("pg-restart", 10000)
        campaigns = pb["campaign_grpc"].CampaignServiceStub(srv.channel)
        deadline = time.monotonic() + 30
        while True:  # stopped mid-dispatch: some sent, some still queued
            got = campaigns.GetCampaign(
                pb["campaign"].GetCampaignRequest(id=c.id), metadata=md,
                timeout=RPC_TIMEOUT)
            if got.stats.sent + got.stats.delivered > 0:
                break
            self.assertLess(time.monotonic(), deadline, got)
            time.sleep(0.05)
        self.assertEqual(got.status, pb["campaign"].Campaign.sending, got)
        harness.PG.stop()
        try:
            # While PostgreSQL is away, calls answer UNAVAILABLE (never
            # INTERNAL), and readiness says why.
            self.call_fails(campaigns.GetCampaign,
                            pb["campaign"].GetCampaignRequest(id=c.id),
                            metadata=md, code=grpc.StatusCode.UNAVAILABLE)
            time.sleep(1)
            ready = harness.http_request(
                "GET", "http://127.0.0.1:%d/readyz" % srv.http_port)
            self.assertEqual(ready.status, 503, ready)
        finally:
            harness.PG.start()
        # Back within a few seconds: until campaignd's next attempt to
        # connect, calls may still answer UNAVAILABLE (never INTERNAL).
        deadline = time.monotonic() + 15
        while True:
            try:
                campaigns.GetCampaign(
                    pb["campaign"].GetCampaignRequest(id=c.id), metadata=md,
                    timeout=RPC_TIMEOUT)
                break
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.UNAVAILABLE, e)
                self.assertLess(time.monotonic(), deadline, e)
                time.sleep(0.1)
        # Sending goes on by itself (meanwhile the campaign reads as paused
        # with the storage error as its reason).
        self.check_sent_once(srv, c, sim_log, 10000)


if __name__ == "__main__":
    sys.exit(harness.main(__doc__, [GrpcApiTest, CampaignctlTest,
                                    LifecycleTest, CrashSafetyTest,
                                    PostgresTest]))
