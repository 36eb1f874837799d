#!/usr/bin/python3
"""End-to-end test of what an operator sees: campaignd started with
--log-format json, one campaign imported, sent through the simulator and
completed, then

  * /metrics: every series the README lists is there, the counters moved by
    exactly the work done (rows imported, duplicate and invalid; messages
    accepted; receipts delivered; RPCs by method and code), label values
    are bounded (no ids, addresses or keys), and `promtool check metrics`
    (Debian's prometheus package) accepts the exposition;
  * /metrics, /healthz and /readyz answer GET only (405 JSON otherwise) and
    ignore query strings; readiness is JSON;
  * the log: every line is one JSON object with ts, level and msg; a flood
    of requests with invalid UTF-8 adds at most the library-log budget of
    lines, not one per request; SIGTERM logs each shutdown step;
  * the alert rules the README shows pass `promtool check rules` and their
    unit tests (`promtool test rules`: each fires on what it describes);
  * --no-metrics: /metrics is 404 and nothing is counted;
  * a damaged database: refused at start; with --skip-check, stopped (no
    writes, not ready, health NOT_SERVING, a critical log line) by the
    first read that meets the damage.

Same command line as e2e_test.py (harness.main).
"""

import json
import os
import re
import shutil
import subprocess
import time

import grpc

import harness
from harness import BOOTSTRAP_KEY, CampaignD, GatewayCase, http_request, new_db

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")


def parse_metrics(text):
    """{(name, frozenset(labels)): value} of every sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"',
                                      m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


class OpsTest(GatewayCase):
    server_args = ("--key-rate", "0", "--log-format", "json",
                   "--simulator", "default:delivered_delay=50ms")

    def metrics_url(self):
        return "http://127.0.0.1:%d" % self.server.http_port

    def scrape(self):
        r = http_request("GET", self.metrics_url() + "/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers.get("Content-Type", "").startswith(
            "text/plain; version=0.0.4"), r.headers)
        return r.raw.decode(), parse_metrics(r.raw.decode())

    def wait_for(self, cid, status, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            c = self.ok("GET", "/api/v1/campaigns/" + cid)
            if c["status"] == status:
                return c
            if time.monotonic() > deadline:
                self.fail("campaign %s is %s, not %s" % (cid, c, status))
            time.sleep(0.1)

    def test_1_metrics_move_with_the_work(self):
        _, before = self.scrape()
        self.ok("POST", "/api/v1/senders", {
            "sender_id": "+15550101", "channel": "sms", "tier": "unlimited"},
            status=201)
        c = self.ok("POST", "/api/v1/campaigns", {
            "name": "ops", "sender_id": "+15550101", "body": "Hi {{name}}"},
            status=201)
        rows = [{"address": "+1415555%04d" % i, "name": "n%d" % i}
                for i in range(20)]
        rows.append({"address": "+14155550003", "name": "again"})  # duplicate
        rows.append({"address": "not a number", "name": "bad"})    # invalid
        r = self.call("POST", "/api/v1/campaigns/%s/recipients" % c["id"],
                      {"recipients": rows})
        self.assertIn(r.status, (200, 201), r)
        self.ok("POST", "/api/v1/campaigns/%s/start" % c["id"], {})
        done = self.wait_for(c["id"], "completed")
        self.assertEqual(int(done["stats"]["delivered"]), 20, done)

        text, after = self.scrape()

        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        self.assertEqual(delta("campaignd_import_rows_total",
                               result="imported"), 20)
        self.assertEqual(delta("campaignd_import_rows_total",
                               result="duplicate"), 1)
        self.assertEqual(delta("campaignd_import_rows_total",
                               result="invalid"), 1)
        self.assertEqual(delta("campaignd_messages_total",
                               provider="simulator", channel="sms",
                               outcome="accepted"), 20)
        self.assertEqual(delta("campaignd_receipts_total",
                               status="delivered"), 20)
        self.assertEqual(delta("campaignd_rpc_requests_total",
                               method="CreateCampaign", code="OK"), 1)
        self.assertEqual(delta("campaignd_rpc_duration_seconds_count",
                               method="CreateCampaign"), 1)
        self.assertGreaterEqual(delta("campaignd_rpc_requests_total",
                                      method="GetCampaign", code="OK"), 1)
        self.assertGreater(delta(
            "campaignd_provider_request_duration_seconds_count",
            provider="simulator"), 0)
        self.assertGreater(delta("campaignd_storage_commit_duration_seconds_count"),
                           0)
        self.assertGreater(delta("campaignd_storage_batch_ops_count"), 0)
        self.assertEqual(value(after, "campaignd_campaigns",
                               status="completed"), 1)
        self.assertEqual(value(after, "campaignd_campaigns", status="sending"),
                         0)
        self.assertEqual(value(after, "campaignd_recipients_queued"), 0)
        self.assertEqual(value(after, "campaignd_provider_state",
                               provider="simulator"), 1)
        self.assertIn(("campaignd_storage_queue_depth", frozenset()), after)
        self.assertIn(("campaignd_watch_streams", frozenset()), after)
        self.assertGreaterEqual(value(after, "campaignd_http_requests_total",
                                      path="/metrics", code="200"), 1)
        build = [k for k in after if k[0] == "campaignd_build_info"]
        self.assertEqual(len(build), 1, build)
        self.assertEqual({l for l, _ in build[0][1]}, {"version", "commit"})
        for name in ("process_resident_memory_bytes",
                     "process_cpu_seconds_total", "process_open_fds",
                     "process_max_fds", "process_start_time_seconds"):
            self.assertGreater(value(after, name), 0, name)

        # Bounded labels: no campaign id, address or key anywhere.
        for (name, labels) in after:
            for _, v in labels:
                self.assertNotIn("cmp_", v, name)
                self.assertNotIn("+1415", v, name)
                self.assertNotIn(BOOTSTRAP_KEY, v, name)

        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool (Debian's prometheus "
                             "package; scripts/deps.sh installs it)")
        r = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_2_operator_endpoints_answer_get_only(self):
        base = self.metrics_url()
        for path in ("/metrics", "/healthz", "/readyz"):
            r = http_request("POST", base + path, b"{}")
            self.assertEqual(r.status, 405, r)
            self.assertEqual(json.loads(r.raw)["error"], "method_not_allowed")
            self.assertIn("GET", r.headers.get("Allow", ""), r.headers)
            r = http_request("GET", base + path + "?x=1&y=%ff")
            self.assertEqual(r.status, 200, r)
        self.assertEqual(json.loads(http_request("GET", base + "/healthz").raw),
                         {"status": "ok"})
        self.assertEqual(json.loads(http_request("GET", base + "/readyz").raw),
                         {"status": "ready"})
        r = http_request("GET", base + "/nothing/here")
        self.assertEqual(r.status, 404, r)
        _, s = self.scrape()
        self.assertGreaterEqual(value(s, "campaignd_http_requests_total",
                                      path="other", code="404"), 1)
        self.assertGreaterEqual(value(s, "campaignd_http_requests_total",
                                      path="/metrics", code="405"), 1)

    def test_3_logs_are_json_and_library_noise_is_bounded(self):
        # GetCampaignRequest.id (field 1) with invalid UTF-8, many times.
        bad = b"\x0a\x02\xff\xfe"
        call = self.server.channel.unary_unary(
            "/campaigns.v1.CampaignService/GetCampaign",
            request_serializer=None, response_deserializer=None)
        md = (("authorization", "Bearer " + BOOTSTRAP_KEY),)
        lines_before = len(self.server.stderr().splitlines())
        for _ in range(60):
            with self.assertRaises(grpc.RpcError) as e:
                call(bad, metadata=md, timeout=10)
            self.assertEqual(e.exception.code(),
                             grpc.StatusCode.INVALID_ARGUMENT)
        time.sleep(0.2)
        lines = self.server.stderr().splitlines()
        added = lines[lines_before:]
        self.assertLessEqual(len(added), 12, "\n".join(added))
        for line in lines:
            obj = json.loads(line)
            for key in ("ts", "level", "msg"):
                self.assertIn(key, obj, line)
            self.assertRegex(obj["ts"],
                             r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertNotIn(BOOTSTRAP_KEY, line)
            self.assertNotIn("+14155550003", line)


class AlertRulesTest(harness.E2ECase):
    """The README's alert rules (packaging/prometheus/campaignd.rules.yml)
    are valid and fire on what they describe (tests/ops/alerts_test.yml)."""

    def test_rules_check_and_their_unit_tests_pass(self):
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool (scripts/deps.sh installs "
                             "Debian's prometheus)")
        root = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))))
        for args in (["check", "rules",
                      "packaging/prometheus/campaignd.rules.yml"],
                     ["test", "rules", "tests/ops/alerts_test.yml"]):
            r = subprocess.run([promtool] + args, cwd=root,
                               capture_output=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class OpsShutdownTest(harness.E2ECase):
    def test_shutdown_steps_are_logged_and_no_metrics_is_off(self):
        srv = CampaignD("OpsShutdown", new_db("OpsShutdown"), BOOTSTRAP_KEY,
                        ("--log-format", "json", "--no-metrics"))
        srv.start()
        try:
            base = "http://127.0.0.1:%d" % srv.http_port
            self.assertEqual(http_request("GET", base + "/metrics").status, 404)
            self.assertEqual(http_request("GET", base + "/readyz").status, 200)
        finally:
            self.assertEqual(srv.terminate(), 0)
        msgs = [json.loads(l)["msg"] for l in srv.stderr().splitlines()]
        for step in ("shutdown: signal received",
                     "shutdown: health NOT_SERVING, no new calls",
                     "shutdown: webhooks and dispatch stopped",
                     "shutdown: calls and streams finished",
                     "shutdown: writes flushed, database closed",
                     "shutdown complete"):
            self.assertIn(step, msgs)
        self.assertLess(msgs.index("shutdown: signal received"),
                        msgs.index("shutdown complete"))


class OpsDamagedDatabaseTest(harness.E2ECase):
    """A database file damaged in the middle (its recipient pages
    overwritten) is refused at start with a message naming the check;
    started anyway with --skip-check, the first read that meets the damage
    stops writes and turns readiness and the health service off."""

    def test_damaged_database_is_refused_and_found_while_running(self):
        pb = harness.pb
        md = harness.bearer(BOOTSTRAP_KEY)
        db = new_db("OpsDamaged")
        srv = CampaignD("OpsDamaged", db, BOOTSTRAP_KEY)
        srv.start()
        pb["sender_grpc"].SenderServiceStub(srv.channel).RegisterSender(
            pb["sender"].RegisterSenderRequest(
                sender_id="+15550909", channel=pb["common"].sms,
                tier=pb["sender"].Sender.unlimited),
            metadata=md, timeout=harness.RPC_TIMEOUT)
        campaigns = pb["campaign_grpc"].CampaignServiceStub(srv.channel)
        c = campaigns.CreateCampaign(pb["campaign"].CreateCampaignRequest(
            name="damaged", channel=pb["common"].sms, sender_id="+15550909",
            body="Hi {{name}}"), metadata=md, timeout=harness.RPC_TIMEOUT)
        rows = "phone,name\n" + "".join(
            "+1202%07d,%s\n" % (5000000 + i, "n" * 200) for i in range(4000))
        req = pb["campaign"].ImportRecipientsRequest
        imported = campaigns.ImportRecipients(iter([
            req(campaign_id=c.id, format=req.csv, default_region="US"),
            req(csv_chunk=rows.encode())]), metadata=md, timeout=60)
        self.assertEqual(imported.imported, 4000, imported)
        self.assertEqual(srv.terminate(), 0)
        # A clean stop leaves everything in the file itself.
        self.assertFalse(os.path.exists(db + "-wal"))
        size = os.path.getsize(db)
        with open(db, "r+b") as f:
            f.seek(size // 3)
            f.write(b"\xa5" * (size // 3))

        r = subprocess.run(
            [harness.ARGS.campaignd, "--listen", "127.0.0.1:0",
             "--http-listen", "127.0.0.1:0", "--db", db],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
            env=harness.clean_env(CAMPAIGND_BOOTSTRAP_KEY=BOOTSTRAP_KEY))
        self.assertNotEqual(r.returncode, 0, r)
        self.assertIn(b"failed its integrity check (PRAGMA quick_check",
                      r.stderr)
        self.assertIn(b"--skip-check", r.stderr)

        srv = CampaignD("OpsDamagedSkip", db, BOOTSTRAP_KEY,
                        ("--skip-check", "--log-format", "json"))
        srv.start()
        try:
            base = "http://127.0.0.1:%d" % srv.http_port
            self.assertEqual(http_request("GET", base + "/readyz").status, 200)
            campaigns = pb["campaign_grpc"].CampaignServiceStub(srv.channel)
            lreq = pb["campaign"].ListRecipientsRequest(campaign_id=c.id,
                                                        limit=100)
            with self.assertRaises(grpc.RpcError) as err:
                while True:
                    page = campaigns.ListRecipients(
                        lreq, metadata=md, timeout=harness.RPC_TIMEOUT)
                    if not page.has_more:
                        break
                    lreq.page_token = page.next_page_token
            self.assertEqual(err.exception.code(), grpc.StatusCode.INTERNAL)
            self.assertIn("corrupt", err.exception.details())

            ready = http_request("GET", base + "/readyz")
            self.assertEqual(ready.status, 503, ready)
            self.assertIn("corrupt", json.loads(ready.raw)["reason"])
            health = pb["health_grpc"].HealthStub(srv.channel).Check(
                pb["health"].HealthCheckRequest(service=""),
                timeout=harness.RPC_TIMEOUT)
            self.assertEqual(health.status,
                             pb["health"].HealthCheckResponse.NOT_SERVING)
            with self.assertRaises(grpc.RpcError) as err:
                campaigns.CreateCampaign(pb["campaign"].CreateCampaignRequest(
                    name="after", channel=pb["common"].sms,
                    sender_id="+15550909", body="b"),
                    metadata=md, timeout=harness.RPC_TIMEOUT)
            self.assertEqual(err.exception.code(),
                             grpc.StatusCode.UNAVAILABLE)
        finally:
            srv.terminate()
        critical = [json.loads(l) for l in srv.stderr().splitlines()
                    if '"critical"' in l]
        self.assertTrue(any("corrupt" in e["msg"] for e in critical),
                        srv.stderr())


if __name__ == "__main__":
    raise SystemExit(harness.main(__doc__, [OpsTest, AlertRulesTest,
                                            OpsShutdownTest,
                                            OpsDamagedDatabaseTest]))
