#!/usr/bin/python3
"""End-to-end test of real delivery: campaignd with a config of the five
HTTP provider types, each pointed at a fake of its vendor (written here from
the vendors' public API docs, not from campaignd's code), one campaign per
channel sent through them, and receipts posted back through campaignd's
signed webhooks on http_listen.

  * the generic webhook (Standard Webhooks signature checked by the fake),
    WhatsApp Cloud API, Twilio, Telegram Bot API, Slack chat.postMessage:
    every campaign completes with the right counts (Telegram and Slack have
    no receipts: sent is final);
  * receipts come back signed (Standard Webhooks, Meta's
    X-Hub-Signature-256, X-Twilio-Signature); a forged one is 401 and
    changes nothing; a STOP through the webhook suppresses the writer;
  * /healthz and /readyz;
  * kill -9 during dispatch (ProviderCrashTest), the fake holding the
    requests campaignd has in flight: through the generic webhook every
    recipient arrives, resends reuse their webhook-id; through WhatsApp
    (no de-duplication) no number gets two messages, and exactly what was
    marked as handed without an outcome ends failed with outcome_unknown.
  * SmppE2ETest: an `smpp` provider bound to the npm SMSC of
    tests/peers/smsc: the campaign sent as submit_sm (long texts in
    parts), delivered by the SMSC's deliver_sm receipts, completed; a
    mobile-originated STOP suppresses the writer.
  * an email campaign created over REST with `subject` and `html_body`
    reaches the webhook rendered: the subject one line, the HTML body's
    values escaped; a missing subject is 422 naming `subject`.

Same command line as e2e_test.py (harness.main).
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import harness
from harness import GatewayCase, http_request, pb

WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WA_TOKEN = "EAAG-e2e-access-token"
WA_APP_SECRET = "e2e-app-secret"
WA_VERIFY = "e2e-verify-token"
WA_PHONE_ID = "106540352242922"
TW_SID = "AC0123456789abcdef0123456789abcdef"
TW_TOKEN = "e2e-twilio-auth-token"
TW_PUBLIC = "https://hooks.example.com"
TG_TOKEN = "123456:ABC-e2e-bot-token"
TG_SECRET = "e2e-telegram-secret"
SLACK_TOKEN = "xoxb-e2e-slack-token"


class FakeVendors(http.server.ThreadingHTTPServer):
    """One HTTP server playing every vendor, by path prefix. Records each
    request as it arrives, before answering it (so a request whose answer
    campaignd never reads is recorded too); `problems` lists what a real
    vendor would have refused.

    hold(vendor, n): answer that vendor's first n requests, then hold each
    further one unanswered until `release` is set (a vendor that stops
    answering, to kill campaignd while messages are with it). `epoch` tags
    the requests recorded from then on (0 before a kill, 1 after)."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), VendorHandler)
        self.lock = threading.Lock()
        # dicts: vendor, body, webhook_id, epoch, held, at (arrival,
        # time.monotonic())
        self.requests = []
        self.problems = []
        self.counter = 0
        self.hold_vendor = None
        self.hold_after = 0
        self.hold_index = None
        self.release = threading.Event()
        self.epoch = 0
        self.webhook_ids = {}  # webhook-id -> message_id (de-duplication)

    def next_id(self):
        with self.lock:
            self.counter += 1
            return self.counter

    def hold(self, vendor, n, index=None):
        """Holds `vendor`'s requests from the n-th on, unanswered until
        `release`; with `index` (request body -> position of its recipient
        in the campaign), those whose recipient is at position n or later,
        whatever order the requests arrive in."""
        with self.lock:
            self.hold_vendor = vendor
            self.hold_after = n
            self.hold_index = index
            self.release.clear()

    def record(self, vendor, body, problem=None, webhook_id=None):
        """Records a request; returns its entry (entry["held"]: wait for
        `release` before answering)."""
        with self.lock:
            held = False
            if vendor == self.hold_vendor and not self.release.is_set():
                if self.hold_index:
                    seen = self.hold_index(body)
                else:
                    seen = sum(1 for r in self.requests
                               if r["vendor"] == vendor)
                held = seen >= self.hold_after
            entry = {"vendor": vendor, "body": body, "webhook_id": webhook_id,
                     "epoch": self.epoch, "held": held, "answer_id": None,
                     "at": time.monotonic()}
            self.requests.append(entry)
            if problem:
                self.problems.append("%s: %s" % (vendor, problem))
            return entry

    def webhook_message_id(self, webhook_id):
        """The receiver de-duplicates on webhook-id: a repeat gets the
        first message_id again."""
        with self.lock:
            if webhook_id not in self.webhook_ids:
                self.counter += 1
                self.webhook_ids[webhook_id] = "wh-%d" % self.counter
            return self.webhook_ids[webhook_id]

    def sent(self, vendor):
        with self.lock:
            return [r["body"] for r in self.requests if r["vendor"] == vendor]

    def entries(self, vendor):
        with self.lock:
            return [dict(r) for r in self.requests if r["vendor"] == vendor]

    def held(self, vendor):
        with self.lock:
            return sum(1 for r in self.requests
                       if r["vendor"] == vendor and r["held"])

    def set_epoch(self, epoch):
        with self.lock:
            self.epoch = epoch

    def handle_error(self, request, client_address):
        # A held answer written after campaignd was killed: expected.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class VendorHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, obj, entry=None):
        if entry is not None:
            if entry["held"]:
                # Never longer than a test: tearDown sets release.
                self.server.release.wait(60)
            entry["answer_id"] = obj.get("message_id") or (
                obj.get("messages") or [{}])[0].get("id")
        raw = json.dumps(obj).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except ConnectionError:
            # Held until campaignd was killed: nobody reads this answer.
            self.close_connection = True

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        srv = self.server
        path = self.path
        if path == "/hook":
            # Standard Webhooks: HMAC-SHA256 of "{id}.{timestamp}.{body}"
            # under the base64-decoded secret, "v1," + base64.
            key = base64.b64decode(WEBHOOK_SECRET[len("whsec_"):])
            msg_id = self.headers.get("webhook-id", "")
            ts = self.headers.get("webhook-timestamp", "")
            want = "v1," + base64.b64encode(hmac.new(
                key, ("%s.%s." % (msg_id, ts)).encode() + raw,
                hashlib.sha256).digest()).decode()
            sigs = self.headers.get("webhook-signature", "").split()
            problem = None if want in sigs else "bad signature"
            if abs(time.time() - int(ts or 0)) > 300:
                problem = "stale timestamp"
            body = json.loads(raw)
            if body.get("type") != "message.send" or body.get("id") != msg_id:
                problem = "not a message.send with id = webhook-id"
            entry = srv.record("webhook", body, problem, msg_id)
            return self.answer(
                200, {"message_id": srv.webhook_message_id(msg_id)}, entry)
        if path == "/graph/v21.0/%s/messages" % WA_PHONE_ID:
            # Cloud API: Bearer token, JSON, answer messages[0].id (wamid).
            body = json.loads(raw)
            problem = None
            if self.headers.get("Authorization") != "Bearer " + WA_TOKEN:
                problem = "bad Authorization"
            if body.get("messaging_product") != "whatsapp":
                problem = "messaging_product is not whatsapp"
            entry = srv.record("whatsapp", body, problem)
            return self.answer(200, {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body.get("to"),
                              "wa_id": body.get("to")}],
                "messages": [{"id": "wamid.E2E%d" % srv.next_id()}]}, entry)
        if path == "/twilio/2010-04-01/Accounts/%s/Messages.json" % TW_SID:
            # Messages resource: basic auth, form-encoded To/From/Body.
            form = dict(urllib.parse.parse_qsl(raw.decode()))
            auth = "Basic " + base64.b64encode(
                ("%s:%s" % (TW_SID, TW_TOKEN)).encode()).decode()
            problem = None
            if self.headers.get("Authorization") != auth:
                problem = "bad basic auth"
            if not form.get("To") or not form.get("Body"):
                problem = "To and Body are required"
            if "form-urlencoded" not in self.headers.get("Content-Type", ""):
                problem = "not form-encoded"
            srv.record("twilio", form, problem)
            return self.answer(201, {
                "sid": "SM%032x" % srv.next_id(), "status": "queued",
                "to": form.get("To"), "from": form.get("From")})
        if path == "/tg/bot%s/sendMessage" % TG_TOKEN:
            body = json.loads(raw)
            problem = None if body.get("chat_id") and body.get("text") else \
                "chat_id and text are required"
            srv.record("telegram", body, problem)
            return self.answer(200, {"ok": True, "result": {
                "message_id": srv.next_id(), "date": int(time.time()),
                "chat": {"id": body.get("chat_id"), "type": "private"},
                "text": body.get("text")}})
        if path == "/slack/api/chat.postMessage":
            body = json.loads(raw)
            problem = None
            if self.headers.get("Authorization") != "Bearer " + SLACK_TOKEN:
                problem = "bad Authorization"
            srv.record("slack", body, problem)
            return self.answer(200, {
                "ok": True, "channel": body.get("channel"),
                "ts": "1700000000.%06d" % srv.next_id(),
                "message": {"text": body.get("text")}})
        srv.record("unknown", {"path": path}, "no such route " + path)
        return self.answer(404, {"error": "not found"})


def wait_until(case, what, check, timeout=30):
    """Polls `check` until it returns something true (returned), failing
    `case` after `timeout` seconds; `what` (a text, or a callable giving
    one when it is needed) says what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            case.fail("gave up waiting for " +
                      (what() if callable(what) else what))
        time.sleep(0.05)


def closed_port():
    """A port nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProvidersE2ETest(GatewayCase):
    """Five providers, five channels, receipts back through webhooks."""

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeVendors()
        threading.Thread(target=cls.fake.serve_forever, daemon=True).start()
        base = "http://127.0.0.1:%d" % cls.fake.server_address[1]
        cls.dir = tempfile.mkdtemp(prefix="providers-", dir=harness.RUN_DIR)

        def secret(name, value):
            path = os.path.join(cls.dir, name)
            with open(path, "w") as f:
                f.write(value + "\n")
            return "file:" + path

        config = """
receipt_timeout = "10m"

[[providers]]
name = "hooks"
type = "webhook"
url = "%(base)s/hook"
secret = "%(wh)s"

[[providers]]
name = "meta"
type = "whatsapp_cloud"
base_url = "%(base)s/graph/v21.0"
phone_number_id = "%(pnid)s"
access_token = "%(wa_token)s"
app_secret = "%(wa_app)s"
verify_token = "%(wa_verify)s"

[[providers]]
name = "tw"
type = "twilio"
base_url = "%(base)s/twilio"
account_sid = "%(tw_sid)s"
auth_token = "%(tw_token)s"
public_url = "%(tw_public)s"

[[providers]]
name = "tg"
type = "telegram"
base_url = "%(base)s/tg"
bot_token = "%(tg_token)s"
webhook_secret = "%(tg_secret)s"

[[providers]]
name = "team"
type = "slack"
base_url = "%(base)s/slack"
bot_token = "%(slack)s"

[[providers]]
name = "dead"
type = "webhook"
url = "http://127.0.0.1:%(dead_port)d/hook"
secret = "%(wh)s"
fallback = "hooks"
circuit_failures = 3
circuit_probe = "1h"
""" % {"base": base, "wh": secret("wh", WEBHOOK_SECRET),
       "dead_port": closed_port(),
       "pnid": WA_PHONE_ID, "wa_token": secret("wa_token", WA_TOKEN),
       "wa_app": secret("wa_app", WA_APP_SECRET),
       "wa_verify": secret("wa_verify", WA_VERIFY), "tw_sid": TW_SID,
       "tw_token": secret("tw_token", TW_TOKEN), "tw_public": TW_PUBLIC,
       "tg_token": secret("tg_token", TG_TOKEN),
       "tg_secret": secret("tg_secret", TG_SECRET),
       "slack": secret("slack", SLACK_TOKEN)}
        cls.config_path = os.path.join(cls.dir, "campaignd.toml")
        with open(cls.config_path, "w") as f:
            f.write(config)
        cls.server_args = ("--key-rate", "0", "--config", cls.config_path)
        super().setUpClass()
        cls.http = "http://127.0.0.1:%d" % cls.server.http_port

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake.shutdown()
            cls.fake.server_close()

    # -- helpers

    def sender(self, sender_id, channel, provider):
        return self.ok("POST", "/api/v1/senders", {
            "sender_id": sender_id, "channel": channel,
            "tier": "unlimited", "provider": provider}, status=201)

    def send_campaign(self, sender_id, addresses):
        c = self.ok("POST", "/api/v1/campaigns", {
            "name": "e2e " + sender_id, "sender_id": sender_id,
            "body": "Hi {{name}}"}, status=201)
        rows = [{"address": a, "name": "n%d" % i}
                for i, a in enumerate(addresses)]
        r = self.call("POST", "/api/v1/campaigns/%s/recipients" % c["id"],
                      {"recipients": rows})
        self.assertIn(r.status, (200, 201), r)
        self.ok("POST", "/api/v1/campaigns/%s/start" % c["id"], {})
        return c["id"]

    def webhook_bodies(self, cid):
        return [b for b in self.fake.sent("webhook")
                if b.get("campaign_id") == cid]

    def campaign(self, cid):
        return self.ok("GET", "/api/v1/campaigns/%s" % cid)

    def wait_for(self, cid, statuses, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            c = self.campaign(cid)
            if c["status"] in statuses:
                return c
            if time.monotonic() > deadline:
                self.fail("campaign %s is %s, not %s" % (cid, c, statuses))
            time.sleep(0.1)

    def stat(self, c, name):
        return int(c.get("stats", {}).get(name, 0))

    def message_ids(self, cid):
        got = self.ok("GET", "/api/v1/campaigns/%s/recipients?limit=100" % cid)
        return [r["providerMessageId"] for r in got["items"]]

    def post_webhook(self, provider, raw, headers):
        h = {"Content-Type": "application/json"}
        h.update(headers)
        return http_request("POST", "%s/webhooks/%s" % (self.http, provider),
                            raw, h)

    def standard_webhook(self, events, forge=False):
        raw = json.dumps(events).encode()
        key = base64.b64decode(WEBHOOK_SECRET[len("whsec_"):])
        if forge:
            key = b"not the key"
        ts = str(int(time.time()))
        sig = base64.b64encode(hmac.new(
            key, ("evt_1.%s." % ts).encode() + raw,
            hashlib.sha256).digest()).decode()
        return self.post_webhook("hooks", raw, {
            "webhook-id": "evt_1", "webhook-timestamp": ts,
            "webhook-signature": "v1," + sig})

    # -- the test

    def test_five_providers_five_channels(self):
        r = http_request("GET", self.http + "/healthz")
        self.assertEqual(r.status, 200, r)
        r = http_request("GET", self.http + "/readyz")
        self.assertEqual(r.status, 200, r)
        providers = self.ok("GET", "/api/v1/providers")["providers"]
        # ("dead" is the failover test's.)
        self.assertEqual({p["name"]: p["state"] for p in providers
                          if p["name"] != "dead"}, {
            "simulator": "ok", "hooks": "ok", "meta": "ok", "tw": "ok",
            "tg": "ok", "team": "ok"}, providers)

        self.sender("+15550701", "sms", "hooks")
        self.sender("+15550702", "sms", "tw")
        self.sender("+15550703", "whatsapp", "meta")
        self.sender("e2e_campaign_bot", "telegram", "tg")
        self.sender("campaign-bot", "slack", "team")
        phones = ["+14155550101", "+14155550102", "+14155550103"]
        hooks = self.send_campaign("+15550701", phones)
        tw = self.send_campaign("+15550702", phones)
        wa = self.send_campaign("+15550703", phones)
        tg = self.send_campaign("e2e_campaign_bot",
                                ["1000001", "1000002", "1000003"])
        team = self.send_campaign("campaign-bot",
                                  ["U024BE7LH", "U024BE7LJ", "U024BE7LK"])

        # Telegram and Slack have no receipts: completed once all is sent.
        for cid in (tg, team):
            c = self.wait_for(cid, ("completed",))
            self.assertEqual(self.stat(c, "sent"), 3, c)
        for cid in (hooks, tw, wa):
            c = self.wait_for(cid, ("sent",))
            self.assertEqual(self.stat(c, "sent"), 3, c)
        self.assertEqual(self.fake.problems, [])
        self.assertEqual(len(self.webhook_bodies(hooks)), 3)
        self.assertEqual(len(self.fake.sent("twilio")), 3)
        self.assertEqual(len(self.fake.sent("whatsapp")), 3)
        self.assertEqual(len(self.fake.sent("telegram")), 3)
        self.assertEqual(len(self.fake.sent("slack")), 3)
        self.assertEqual(sorted(b["to"] for b in self.webhook_bodies(hooks)),
                         phones)
        self.assertEqual(
            sorted(b["text"] for b in self.webhook_bodies(hooks)),
            ["Hi n0", "Hi n1", "Hi n2"])
        for b in self.webhook_bodies(hooks):
            self.assertNotIn("subject", b)  # email only
            self.assertNotIn("html", b)

        # A forged receipt: 401, nothing changes.
        ids = self.message_ids(hooks)
        r = self.standard_webhook(
            [{"type": "message.status", "message_id": i,
              "status": "delivered"} for i in ids], forge=True)
        self.assertEqual(r.status, 401, r)
        self.assertEqual(self.stat(self.campaign(hooks), "delivered"), 0)

        # Standard Webhooks receipts.
        r = self.standard_webhook(
            [{"type": "message.status", "message_id": i,
              "status": "delivered"} for i in ids])
        self.assertEqual(r.status, 200, r)

        # Meta: statuses under entry[].changes[].value, X-Hub-Signature-256.
        statuses = [{"id": i, "status": "delivered",
                     "timestamp": str(int(time.time())),
                     "recipient_id": "14155550101"}
                    for i in self.message_ids(wa)]
        raw = json.dumps({"object": "whatsapp_business_account", "entry": [{
            "id": "WABA_ID", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550703",
                             "phone_number_id": WA_PHONE_ID},
                "statuses": statuses}}]}]}).encode()
        sig = hmac.new(WA_APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        r = self.post_webhook("meta", raw,
                              {"X-Hub-Signature-256": "sha256=" + sig})
        self.assertEqual(r.status, 200, r)
        # Meta's subscription check echoes the challenge.
        r = http_request("GET", "%s/webhooks/meta?hub.mode=subscribe&"
                         "hub.verify_token=%s&hub.challenge=1158201444" %
                         (self.http, WA_VERIFY))
        self.assertEqual((r.status, r.raw), (200, b"1158201444"), r)

        # Twilio: form status callbacks signed over public_url + path and
        # the sorted parameters (HMAC-SHA1, base64).
        for sid in self.message_ids(tw):
            params = {"MessageSid": sid, "MessageStatus": "delivered",
                      "AccountSid": TW_SID, "To": "+14155550101"}
            url = TW_PUBLIC + "/webhooks/tw"
            data = url + "".join(k + params[k] for k in sorted(params))
            sig = base64.b64encode(hmac.new(
                TW_TOKEN.encode(), data.encode(), hashlib.sha1).digest())
            r = http_request(
                "POST", self.http + "/webhooks/tw",
                urllib.parse.urlencode(params).encode(),
                {"Content-Type": "application/x-www-form-urlencoded",
                 "X-Twilio-Signature": sig.decode()})
            self.assertEqual(r.status, 200, r)

        for cid in (hooks, tw, wa):
            c = self.wait_for(cid, ("completed",))
            self.assertEqual(self.stat(c, "delivered"), 3, c)

        # A STOP through the generic webhook suppresses the writer.
        r = self.standard_webhook({"type": "message.inbound",
                                   "from": "+14155550199", "to": "+15550701",
                                   "channel": "sms", "text": "STOP"})
        self.assertEqual(r.status, 200, r)
        got = self.ok("GET", "/api/v1/suppressions?limit=100")
        addresses = [s["address"] for s in got.get("items", [])]
        self.assertIn("+14155550199", addresses, got)

    def test_dead_provider_fails_over_and_each_message_goes_once(self):
        self.sender("+15550199", "sms", "dead")
        addresses = ["+1415555%04d" % (2000 + i) for i in range(12)]
        cid = self.send_campaign("+15550199", addresses)
        c = self.wait_for(cid, ("sent", "completed", "failed", "paused"))
        self.assertEqual(c["status"], "sent", c)
        self.assertEqual(self.stat(c, "sent"), 12, c)
        # Every recipient reached the fallback once (the dead one refused
        # every connection), and its row says who sent it.
        bodies = self.webhook_bodies(cid)
        self.assertEqual(sorted(b["to"] for b in bodies), sorted(addresses))
        got = self.ok("GET", "/api/v1/campaigns/%s/recipients?limit=100" % cid)
        self.assertEqual({r.get("provider") for r in got["items"]}, {"hooks"})
        for r in got["items"]:
            self.assertEqual(int(r["attempts"]), 2, r)  # refused, then sent
        providers = {p["name"]: p
                     for p in self.ok("GET", "/api/v1/providers")["providers"]}
        dead = providers["dead"]
        self.assertEqual(dead["state"], "circuit_open", dead)
        self.assertEqual(dead["fallback"], "hooks")
        self.assertIn("3 transient failures in a row", dead["reason"])
        self.assertEqual(providers["hooks"]["state"], "ok")
        # The fallback's receipts match what it sent.
        ids = [r["providerMessageId"] for r in got["items"]]
        events = [{"type": "message.status", "message_id": i,
                   "status": "delivered"} for i in ids]
        r = self.standard_webhook(events)
        self.assertEqual(r.status, 200, r)
        c = self.wait_for(cid, ("completed",))
        self.assertEqual(self.stat(c, "delivered"), 12, c)

    def test_email_subject_and_html_reach_the_webhook_rendered(self):
        self.sender("news@example.com", "email", "hooks")
        self.sender("+15550709", "sms", "hooks")
        create = {"name": "e2e email", "channel": "email",
                  "sender_id": "news@example.com",
                  "body": "Hi {{name}}, {{offer}}",
                  "subject": "{{name}}: {{offer}}",
                  "html_body": "<p>Hi <b>{{name}}</b>, {{offer}}</p>"}

        # Refusals name their field, as seed 001's error body does.
        def refused(body, status, error, field):
            r = self.call("POST", "/api/v1/campaigns", body)
            self.assertEqual(r.status, status, r)
            self.assertEqual(r.json.get("error"), error, r)
            self.assertEqual(r.json.get("field"), field, r)

        no_subject = dict(create)
        del no_subject["subject"]
        refused(no_subject, 422, "validation_error", "subject")
        refused(dict(create, subject="Hi\r\nBcc: all@example.com"), 400,
                "invalid_request", "subject")
        refused({"name": "sms", "sender_id": "+15550709", "body": "Hi",
                 "subject": "Hello"}, 422, "validation_error", "subject")
        refused({"name": "sms", "sender_id": "+15550709", "body": "Hi",
                 "htmlBody": "<p>Hi</p>"}, 422, "validation_error",
                "html_body")

        c = self.ok("POST", "/api/v1/campaigns", create, status=201)
        self.assertEqual(c["subject"], "{{name}}: {{offer}}", c)
        self.assertEqual(c["htmlBody"],
                         "<p>Hi <b>{{name}}</b>, {{offer}}</p>", c)
        rows = [{"address": "ann@example.com", "name": "Ann <ann@x>",
                 "offer": "5 > 3 & 'free'\r\nBcc: all@example.com"},
                {"address": "bob@example.com", "name": "Bob"}]  # no offer
        r = self.call("POST", "/api/v1/campaigns/%s/recipients" % c["id"],
                      {"recipients": rows})
        self.assertIn(r.status, (200, 201), r)
        self.ok("POST", "/api/v1/campaigns/%s/start" % c["id"], {})
        done = self.wait_for(c["id"], ("sent", "completed"))
        self.assertEqual(self.stat(done, "sent"), 1, done)
        self.assertEqual(self.stat(done, "skipped"), 1, done)  # Bob

        self.assertEqual(self.fake.problems, [])
        bodies = self.webhook_bodies(c["id"])
        self.assertEqual(len(bodies), 1, bodies)
        b = bodies[0]
        self.assertEqual(b["channel"], "email")
        self.assertEqual(b["from"], "news@example.com")
        self.assertEqual(b["to"], "ann@example.com")
        self.assertEqual(
            b["text"], "Hi Ann <ann@x>, 5 > 3 & 'free'\r\nBcc: all@example.com")
        # One header line: the value's CR LF became a space.
        self.assertEqual(
            b["subject"], "Ann <ann@x>: 5 > 3 & 'free' Bcc: all@example.com")
        # The values HTML-escaped, the markup kept.
        self.assertEqual(
            b["html"], "<p>Hi <b>Ann &lt;ann@x&gt;</b>, 5 &gt; 3 &amp; "
            "&#39;free&#39;\r\nBcc: all@example.com</p>")



class ProviderCrashTest(harness.E2ECase):
    """kill -9 while campaignd dispatches through a real provider type, then
    a restart on the same database.

    The fake answers the requests for the campaign's first ANSWERED
    recipients at once and holds every later one unanswered, so campaignd
    fills its max_in_flight with held requests and stops there. It holds by
    the recipient's position, not by arrival: the requests of the next
    batch may reach the vendor before the last of the previous batch's. The kill comes once exactly IN_FLIGHT
    are held (nothing else can be on the wire) and the first whole batches'
    outcomes are recorded: the same kill point every run. ANSWERED is not
    a whole number of batches, so the batch after the recorded ones was
    partly answered (answers read but not recorded), partly held."""

    IN_FLIGHT = 16   # max_in_flight of the providers below
    BATCH = 50
    ANSWERED = 325   # 6 whole batches and half of the 7th
    RECORDED = (ANSWERED // BATCH) * BATCH

    def setUp(self):
        self.fake = FakeVendors()
        threading.Thread(target=self.fake.serve_forever, daemon=True).start()
        self.servers = []
        self.srv = None
        self.md = harness.bearer(harness.BOOTSTRAP_KEY)
        name = "crash-" + self._testMethodName
        self.dir = tempfile.mkdtemp(prefix=name + "-", dir=harness.RUN_DIR)
        self.db = harness.new_db(name)
        base = "http://127.0.0.1:%d" % self.fake.server_address[1]

        def secret(name, value):
            path = os.path.join(self.dir, name)
            with open(path, "w") as f:
                f.write(value + "\n")
            return "file:" + path

        self.config_path = os.path.join(self.dir, "campaignd.toml")
        with open(self.config_path, "w") as f:
            f.write("""
receipt_timeout = "10m"

[[providers]]
name = "hooks"
type = "webhook"
url = "%(base)s/hook"
secret = "%(wh)s"
max_in_flight = %(n)d
timeout = "60s"

[[providers]]
name = "meta"
type = "whatsapp_cloud"
base_url = "%(base)s/graph/v21.0"
phone_number_id = "%(pnid)s"
access_token = "%(wa_token)s"
app_secret = "%(wa_app)s"
verify_token = "%(wa_verify)s"
max_in_flight = %(n)d
# Held requests must not time out: a timeout is transient and retried,
# which is another test's business.
timeout = "60s"
""" % {"base": base, "n": self.IN_FLIGHT,
       "wh": secret("wh", WEBHOOK_SECRET), "pnid": WA_PHONE_ID,
       "wa_token": secret("wa_token", WA_TOKEN),
       "wa_app": secret("wa_app", WA_APP_SECRET),
       "wa_verify": secret("wa_verify", WA_VERIFY)})

    def tearDown(self):
        self.fake.release.set()
        for srv in self.servers:
            srv.kill()
        self.fake.shutdown()
        self.fake.server_close()

    # -- helpers

    def start(self):
        srv = harness.CampaignD(
            "provider-crash", self.db, harness.BOOTSTRAP_KEY,
            ["--key-rate", "0", "--config", self.config_path])
        self.servers.append(srv)
        srv.start()
        self.srv = srv
        self.campaigns = pb["campaign_grpc"].CampaignServiceStub(srv.channel)
        return srv

    @staticmethod
    def position(body):
        """The recipient's position in start_campaign's addresses, from a
        request's `to` (with or without the +)."""
        return int(body["to"][-7:]) - 5000000

    def start_campaign(self, sender_id, channel, provider, count):
        pb["sender_grpc"].SenderServiceStub(self.srv.channel).RegisterSender(
            pb["sender"].RegisterSenderRequest(
                sender_id=sender_id, channel=channel, provider=provider,
                tier=pb["sender"].Sender.unlimited),
            metadata=self.md, timeout=harness.RPC_TIMEOUT)
        c = self.campaigns.CreateCampaign(
            pb["campaign"].CreateCampaignRequest(
                name="crash " + provider, channel=channel,
                sender_id=sender_id, body="Hi {{name}}",
                batch_size=self.BATCH),
            metadata=self.md, timeout=harness.RPC_TIMEOUT)
        addresses = ["+1202%07d" % (5000000 + i) for i in range(count)]
        rows = "phone,name\n" + "".join(
            "%s,n%d\n" % (a, i) for i, a in enumerate(addresses))
        req = pb["campaign"].ImportRecipientsRequest
        imported = self.campaigns.ImportRecipients(iter([
            req(campaign_id=c.id, format=req.csv, default_region="US"),
            req(csv_chunk=rows.encode())]), metadata=self.md, timeout=60)
        self.assertEqual(imported.imported, count, imported)
        self.campaigns.StartCampaign(
            pb["campaign"].StartCampaignRequest(id=c.id), metadata=self.md,
            timeout=harness.RPC_TIMEOUT)
        return c.id, addresses

    def campaign(self, cid):
        return self.campaigns.GetCampaign(
            pb["campaign"].GetCampaignRequest(id=cid), metadata=self.md,
            timeout=harness.RPC_TIMEOUT)

    def wait_until(self, what, check, timeout=30):
        return wait_until(self, what, check, timeout)

    def wait_status(self, cid, status):
        last = []

        def check():
            last[:] = [self.campaign(cid)]
            return last[0] if last[0].status == status else None
        return self.wait_until(
            lambda: "campaign %s to be %s: %s" % (
                cid, pb["campaign"].Campaign.Status.Name(status), last), check)

    def recipients(self, cid):
        """Every recipient of the campaign, by address."""
        out = {}
        token = ""
        while True:
            page = self.campaigns.ListRecipients(
                pb["campaign"].ListRecipientsRequest(
                    campaign_id=cid, limit=100, page_token=token),
                metadata=self.md, timeout=harness.RPC_TIMEOUT)
            for r in page.items:
                self.assertNotIn(r.address, out)
                out[r.address] = r
            if not page.has_more:
                return out
            token = page.next_page_token

    def kill_while_held(self, vendor, cid):
        """Waits for the kill point, kills campaignd -9 and opens the fake:
        what it holds is answered into dead sockets, later requests at
        once (tagged epoch 1)."""
        last = []

        def ready():
            held = self.fake.held(vendor)
            c = self.campaign(cid)
            last[:] = [held, c]
            return held >= self.IN_FLIGHT and c.stats.sent >= self.RECORDED
        self.wait_until(lambda: "%d requests held and %d sent (held, "
                        "campaign): %s" % (self.IN_FLIGHT, self.RECORDED,
                                           last), ready)
        c = last[1]
        self.assertEqual(c.status, pb["campaign"].Campaign.sending, c)
        self.srv.kill()  # SIGKILL
        self.fake.set_epoch(1)
        # max_in_flight bounds what campaignd had at the vendor at once.
        self.assertEqual(self.fake.held(vendor), self.IN_FLIGHT)
        self.assertEqual(c.stats.sent, self.RECORDED, c)

    def post_webhook(self, provider, raw, headers):
        h = {"Content-Type": "application/json"}
        h.update(headers)
        r = http_request("POST", "http://127.0.0.1:%d/webhooks/%s" % (
            self.srv.http_port, provider), raw, h)
        self.assertEqual(r.status, 200, r)

    def standard_webhook_receipts(self, message_ids):
        key = base64.b64decode(WEBHOOK_SECRET[len("whsec_"):])
        for n, i in enumerate(range(0, len(message_ids), 500)):
            raw = json.dumps([{"type": "message.status", "message_id": m,
                               "status": "delivered"}
                              for m in message_ids[i:i + 500]]).encode()
            ts = str(int(time.time()))
            evt = "evt_crash_%d" % n
            sig = base64.b64encode(hmac.new(
                key, ("%s.%s." % (evt, ts)).encode() + raw,
                hashlib.sha256).digest()).decode()
            self.post_webhook("hooks", raw, {
                "webhook-id": evt, "webhook-timestamp": ts,
                "webhook-signature": "v1," + sig})

    def meta_receipts(self, message_ids):
        for i in range(0, len(message_ids), 500):
            raw = json.dumps({"object": "whatsapp_business_account",
                              "entry": [{"id": "WABA_ID", "changes": [{
                                  "field": "messages", "value": {
                                      "messaging_product": "whatsapp",
                                      "metadata": {
                                          "display_phone_number": "15550703",
                                          "phone_number_id": WA_PHONE_ID},
                                      "statuses": [{
                                          "id": m, "status": "delivered",
                                          "timestamp": str(int(time.time())),
                                          "recipient_id": "12025550000"}
                                          for m in message_ids[i:i + 500]]}}]}]
                              }).encode()
            sig = hmac.new(WA_APP_SECRET.encode(), raw,
                           hashlib.sha256).hexdigest()
            self.post_webhook("meta", raw,
                              {"X-Hub-Signature-256": "sha256=" + sig})

    def marked_at_kill(self):
        """Addresses the dead campaignd had durably marked as handed to the
        vendor without a recorded outcome. A look into the database (read
        only, before the restart): the one place that says which messages
        were in doubt at the kill."""
        con = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True)
        try:
            return {a for (a,) in con.execute(
                "SELECT address FROM recipients WHERE handed = 1 AND "
                "status = 'queued'")}
        finally:
            con.close()

    # -- the tests

    def test_kill_during_webhook_dispatch_resends_with_the_same_id(self):
        """The generic webhook de-duplicates on webhook-id: what was in
        flight at the kill is sent again after the restart, with the id it
        had; every recipient arrives, none under two ids."""
        count = 1000
        Recipient = pb["campaign"].Recipient
        self.start()
        self.fake.hold("webhook", self.ANSWERED, self.position)
        cid, addresses = self.start_campaign(
            "+15550701", pb["common"].sms, "hooks", count)
        self.kill_while_held("webhook", cid)
        before = self.fake.entries("webhook")
        self.fake.release.set()
        self.start()  # resumes the campaign by itself
        self.wait_status(cid, pb["campaign"].Campaign.sent)

        entries = self.fake.entries("webhook")
        self.assertEqual(self.fake.problems, [])
        ids_of = {}   # recipient_id -> {webhook-id}
        for e in entries:
            ids_of.setdefault(e["body"]["recipient_id"], set()).add(
                e["webhook_id"])
        two = {r: ids for r, ids in ids_of.items() if len(ids) != 1}
        self.assertEqual(two, {}, "recipients sent under two webhook-ids")
        got = self.recipients(cid)
        self.assertEqual(sorted(got), sorted(addresses))
        self.assertEqual(set(ids_of), {r.id for r in got.values()},
                         "every recipient reaches the receiver")
        # What was held at the kill was never answered to campaignd: it was
        # sent again after the restart, under the same webhook-id.
        held = [e for e in before if e["held"]]
        self.assertEqual(len(held), self.IN_FLIGHT)
        again = {e["webhook_id"] for e in entries if e["epoch"] == 1}
        for e in held:
            self.assertIn(e["webhook_id"], again, e)
        for addr, r in got.items():
            self.assertEqual(r.status, Recipient.sent, r)
            [wid] = ids_of[r.id]
            self.assertEqual(r.provider_message_id,
                             self.fake.webhook_message_id(wid), r)

        self.standard_webhook_receipts(
            [r.provider_message_id for r in got.values()])
        c = self.wait_status(cid, pb["campaign"].Campaign.completed)
        st = c.stats
        self.assertEqual((st.total, st.delivered, st.queued, st.sent,
                          st.failed, st.skipped),
                         (count, count, 0, 0, 0, 0), st)
        self.assertEqual(self.srv.terminate(), 0)

    def test_kill_during_whatsapp_dispatch_sends_nothing_twice(self):
        """WhatsApp does not de-duplicate: what campaignd had marked as
        handed without a recorded outcome at the kill ends failed with
        outcome_unknown and is not sent again; everything else is sent
        once; no number gets two messages."""
        # More than the engine keeps in flight, so that some are still
        # unmarked at the kill and go out after the restart.
        count = 3000
        Recipient = pb["campaign"].Recipient
        self.start()
        self.fake.hold("whatsapp", self.ANSWERED, self.position)
        cid, addresses = self.start_campaign(
            "+15550703", pb["common"].whatsapp, "meta", count)
        self.kill_while_held("whatsapp", cid)
        marked = self.marked_at_kill()
        self.fake.release.set()
        self.start()
        self.wait_status(cid, pb["campaign"].Campaign.sent)

        entries = self.fake.entries("whatsapp")
        self.assertEqual(self.fake.problems, [])
        by_number = {}
        for e in entries:
            by_number.setdefault("+" + e["body"]["to"], []).append(e)
        twice = {a: len(es) for a, es in by_number.items() if len(es) > 1}
        self.assertEqual(twice, {}, "numbers that got two messages")
        got = self.recipients(cid)
        self.assertEqual(sorted(got), sorted(addresses))

        unknown = set()
        for addr, r in got.items():
            if r.status == Recipient.failed:
                self.assertEqual(r.error_code, "outcome_unknown", r)
                unknown.add(addr)
                # Never sent after the restart.
                for e in by_number.get(addr, []):
                    self.assertEqual(e["epoch"], 0, (r, e))
                continue
            self.assertEqual(r.status, Recipient.sent, r)
            # Sent means the vendor got it (once) and its id was recorded.
            self.assertIn(addr, by_number, r)
            [e] = by_number[addr]
            self.assertFalse(e["held"] and e["epoch"] == 0, (r, e))
            self.assertEqual(r.provider_message_id, e["answer_id"], (r, e))
        held = {a for a, es in by_number.items()
                if es[0]["held"] and es[0]["epoch"] == 0}
        self.assertEqual(len(held), self.IN_FLIGHT)
        self.assertLessEqual(held, unknown,
                             "held at the kill, so never answered")
        # The in-doubt ones are exactly those marked without an outcome.
        self.assertEqual(unknown, marked)
        answered_before = {a for a, es in by_number.items()
                           if es[0]["epoch"] == 0 and not es[0]["held"]}
        self.assertGreaterEqual(len(answered_before - unknown), self.RECORDED)

        sent_ids = [r.provider_message_id for r in got.values()
                    if r.status == Recipient.sent]
        c = self.campaign(cid)
        st = c.stats
        self.assertEqual((st.total, st.sent, st.failed, st.queued, st.skipped),
                         (count, len(sent_ids), len(unknown), 0, 0), st)
        self.meta_receipts(sent_ids)
        c = self.wait_status(cid, pb["campaign"].Campaign.completed)
        st = c.stats
        self.assertEqual((st.total, st.delivered, st.failed, st.queued,
                          st.sent, st.skipped),
                         (count, len(sent_ids), len(unknown), 0, 0, 0), st)
        self.assertEqual(self.srv.terminate(), 0)


SMSC_JS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "..", "peers", "smsc", "smsc.js")


class SmppE2ETest(harness.E2ECase):
    """campaignd with an `smpp` provider bound to tests/peers/smsc (the npm
    package `smpp` on node, 127.0.0.1:0): a campaign is sent as submit_sm,
    the SMSC's delivery receipts (deliver_sm) make every recipient
    delivered and the campaign completed, and a mobile-originated STOP
    suppresses its writer."""

    def setUp(self):
        self.smsc = subprocess.Popen(
            ["/usr/bin/node", SMSC_JS, "--password", "e2e-pw1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        port = int(self.smsc.stdout.readline())
        self.md = harness.bearer(harness.BOOTSTRAP_KEY)
        self.dir = tempfile.mkdtemp(prefix="smpp-", dir=harness.RUN_DIR)
        secret = os.path.join(self.dir, "smpp_password")
        with open(secret, "w") as f:
            f.write("e2e-pw1\n")
        config = os.path.join(self.dir, "campaignd.toml")
        with open(config, "w") as f:
            f.write("""
receipt_timeout = "10m"

[[providers]]
name = "aggregator"
type = "smpp"
host = "127.0.0.1"
port = %d
system_id = "acme"
password = "file:%s"
window = 5
""" % (port, secret))
        self.srv = harness.CampaignD(
            "smpp", harness.new_db("smpp"), harness.BOOTSTRAP_KEY,
            ["--key-rate", "0", "--config", config])
        self.srv.start()
        self.campaigns = pb["campaign_grpc"].CampaignServiceStub(
            self.srv.channel)

    def tearDown(self):
        self.srv.kill()
        self.smsc.stdin.close()
        self.smsc.wait(timeout=10)

    def smsc_command(self, line):
        self.smsc.stdin.write(line + "\n")
        self.smsc.stdin.flush()
        return json.loads(self.smsc.stdout.readline())

    def wait_until(self, what, check, timeout=30):
        return wait_until(self, what, check, timeout)

    def test_campaign_delivered_through_smpp_and_stop_suppresses(self):
        pb["sender_grpc"].SenderServiceStub(self.srv.channel).RegisterSender(
            pb["sender"].RegisterSenderRequest(
                sender_id="ACME", channel=pb["common"].sms,
                provider="aggregator",
                tier=pb["sender"].Sender.unlimited),
            metadata=self.md, timeout=harness.RPC_TIMEOUT)
        c = self.campaigns.CreateCampaign(
            pb["campaign"].CreateCampaignRequest(
                name="smpp", channel=pb["common"].sms, sender_id="ACME",
                body="Hi {{name}}, " + "long " * 40),
            metadata=self.md, timeout=harness.RPC_TIMEOUT)
        addresses = ["+1202555%04d" % (100 + i) for i in range(6)]
        rows = "phone,name\n" + "".join(
            "%s,n%d\n" % (a, i) for i, a in enumerate(addresses))
        req = pb["campaign"].ImportRecipientsRequest
        imported = self.campaigns.ImportRecipients(iter([
            req(campaign_id=c.id, format=req.csv, default_region="US"),
            req(csv_chunk=rows.encode())]), metadata=self.md, timeout=60)
        self.assertEqual(imported.imported, len(addresses), imported)
        self.campaigns.StartCampaign(
            pb["campaign"].StartCampaignRequest(id=c.id), metadata=self.md,
            timeout=harness.RPC_TIMEOUT)

        def completed():
            got = self.campaigns.GetCampaign(
                pb["campaign"].GetCampaignRequest(id=c.id), metadata=self.md,
                timeout=harness.RPC_TIMEOUT)
            return got if got.status == pb["campaign"].Campaign.completed \
                else None
        got = self.wait_until("campaign %s completed" % c.id, completed)
        self.assertEqual((got.stats.total, got.stats.delivered,
                          got.stats.failed), (6, 6, 0), got.stats)
        stats = self.smsc_command("stats")["stats"]
        # Two parts a message (a long text), each submitted once, and
        # every receipt answered only after it was stored.
        self.assertEqual(stats["accepted"], 12, stats)
        self.assertEqual(stats["submits"], 12, stats)
        self.assertLessEqual(stats["max_outstanding"], 5, stats)
        self.wait_until("receipts answered", lambda: self.smsc_command(
            "stats")["stats"]["deliver_resp_ok"] == 12)

        self.assertEqual(self.smsc_command("mo 12025550100 ACME STOP"),
                         {"ok": "mo"})
        sup = pb["suppression_grpc"].SuppressionServiceStub(self.srv.channel)

        def suppressed():
            got = sup.ListSuppressions(
                pb["suppression"].ListSuppressionsRequest(limit=100),
                metadata=self.md, timeout=harness.RPC_TIMEOUT)
            return [s for s in got.items if s.address == "+12025550100"]
        self.wait_until("the STOP writer suppressed", suppressed)
        self.assertEqual(self.srv.terminate(), 0)
        # The provider unbound on shutdown.
        self.wait_until("unbind", lambda: self.smsc_command(
            "stats")["stats"]["unbinds"] == 1)


class SmtpE2ETest(GatewayCase):
    """An email campaign through the `smtp` provider into aiosmtpd
    (tests/peers/smtp_sink.py, Debian's python3-aiosmtpd): every recipient
    gets exactly one message, its MIME read back with Python's email parser;
    a 550 "user unknown" fails its recipient and suppresses the address as a
    bounce; the campaign completes (SMTP has no receipts)."""

    SINK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "peers", "smtp_sink.py")
    COUNT = 20

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="smtp-", dir=harness.RUN_DIR)
        cls.sink_dir = os.path.join(cls.dir, "sink")
        os.mkdir(cls.sink_dir)
        cls.sink = subprocess.Popen(
            ["/usr/bin/python3", cls.SINK, "serve", "--dir", cls.sink_dir,
             "--reject550", "gone@example.com"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = os.path.join(cls.sink_dir, "port")
        deadline = time.monotonic() + 30
        while not os.path.exists(port_file):
            if cls.sink.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the SMTP sink did not start")
            time.sleep(0.05)
        with open(port_file) as f:
            port = int(f.read())
        config = """
[[providers]]
name = "mail"
type = "smtp"
url = "smtp://127.0.0.1:%d"
from = "Acme Störe <news@acme.test>"
starttls = "never"
unsubscribe_url = "https://acme.test/u/{recipient_id}"
max_in_flight = 2

[[providers]]
name = "dead_mail"
type = "smtp"
url = "smtp://127.0.0.1:%d"
from = "news@acme.test"
starttls = "never"
fallback = "mail"
circuit_failures = 3
circuit_probe = "1h"
""" % (port, closed_port())
        cls.config_path = os.path.join(cls.dir, "campaignd.toml")
        with open(cls.config_path, "w", encoding="utf-8") as f:
            f.write(config)
        cls.server_args = ("--key-rate", "0", "--config", cls.config_path)
        try:
            super().setUpClass()
        except BaseException:
            cls.sink.kill()
            cls.sink.wait()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.sink.terminate()
            cls.sink.wait()

    def received(self):
        out = subprocess.run(
            ["/usr/bin/python3", self.SINK, "summarize", self.sink_dir],
            check=True, capture_output=True).stdout
        return json.loads(out)

    def test_dead_smtp_server_fails_over_to_a_live_one(self):
        self.ok("POST", "/api/v1/senders", {
            "sender_id": "alerts@acme.test", "channel": "email",
            "tier": "unlimited", "provider": "dead_mail"}, status=201)
        c = self.ok("POST", "/api/v1/campaigns", {
            "name": "e2e smtp failover", "channel": "email",
            "sender_id": "alerts@acme.test", "body": "Hi {{name}}",
            "subject": "Failover"}, status=201)
        rows = [{"address": "f%d@failover.test" % i, "name": "F%d" % i}
                for i in range(12)]
        r = self.call("POST", "/api/v1/campaigns/%s/recipients" % c["id"],
                      {"recipients": rows})
        self.assertIn(r.status, (200, 201), r)
        self.ok("POST", "/api/v1/campaigns/%s/start" % c["id"], {})
        deadline = time.monotonic() + 60
        while True:
            done = self.ok("GET", "/api/v1/campaigns/%s" % c["id"])
            if done["status"] in ("completed", "failed", "paused"):
                break
            if time.monotonic() > deadline:
                self.fail("campaign not completed: %s" % done)
            time.sleep(0.1)
        self.assertEqual(done["status"], "completed", done)
        self.assertEqual(int(done.get("stats", {}).get("sent", 0)), 12, done)
        # The dead server refused every connection; the live one got each
        # message exactly once, and each row names it.
        msgs = [m for m in self.received()
                if m["rcpt_tos"][0].endswith("@failover.test")]
        self.assertEqual(sorted(m["rcpt_tos"][0] for m in msgs),
                         sorted(r["address"] for r in rows))
        got = self.ok("GET", "/api/v1/campaigns/%s/recipients?limit=100"
                      % c["id"])
        self.assertEqual({x.get("provider") for x in got["items"]}, {"mail"})
        ids = {x["address"]: x["providerMessageId"] for x in got["items"]}
        for m in msgs:
            self.assertEqual(m["message_id"], ids[m["rcpt_tos"][0]])
        providers = {p["name"]: p
                     for p in self.ok("GET", "/api/v1/providers")["providers"]}
        self.assertEqual(providers["dead_mail"]["state"], "circuit_open",
                         providers)
        self.assertEqual(providers["dead_mail"]["fallback"], "mail")
        self.assertEqual(providers["mail"]["state"], "ok")

    def test_email_campaign_through_smtp(self):
        self.ok("POST", "/api/v1/senders", {
            "sender_id": "news@acme.test", "channel": "email",
            "tier": "unlimited", "provider": "mail"}, status=201)
        c = self.ok("POST", "/api/v1/campaigns", {
            "name": "e2e smtp", "channel": "email",
            "sender_id": "news@acme.test", "body": "Hi {{name}} — 50% off",
            "subject": "{{name}}, Frühlingsangebote 🎉",
            "html_body": "<p>Hi <b>{{name}}</b></p>"}, status=201)
        rows = [{"address": "user%d@example.com" % i, "name": "N%d" % i}
                for i in range(self.COUNT)]
        rows.append({"address": "gone@example.com", "name": "Gone"})
        r = self.call("POST", "/api/v1/campaigns/%s/recipients" % c["id"],
                      {"recipients": rows})
        self.assertIn(r.status, (200, 201), r)
        self.ok("POST", "/api/v1/campaigns/%s/start" % c["id"], {})
        deadline = time.monotonic() + 60
        while True:
            done = self.ok("GET", "/api/v1/campaigns/%s" % c["id"])
            if done["status"] == "completed":
                break
            if time.monotonic() > deadline:
                self.fail("campaign not completed: %s" % done)
            time.sleep(0.1)
        stats = done.get("stats", {})
        self.assertEqual(int(stats.get("sent", 0)), self.COUNT, done)
        self.assertEqual(int(stats.get("failed", 0)), 1, done)

        got = self.ok("GET", "/api/v1/campaigns/%s/recipients?limit=100"
                      % c["id"])
        by_address = {x["address"]: x for x in got["items"]}
        gone = by_address["gone@example.com"]
        self.assertEqual(gone.get("errorCode"), "550", gone)
        ids = {a: x.get("providerMessageId") for a, x in by_address.items()
               if a != "gone@example.com"}

        msgs = [m for m in self.received()
                if m["rcpt_tos"][0].endswith("@example.com")]
        # Exactly once: one message per recipient, none for the bounce.
        self.assertEqual(sorted(m["rcpt_tos"][0] for m in msgs),
                         sorted(r["address"] for r in rows[:-1]))
        for m in msgs:
            to = m["rcpt_tos"][0]
            n = to[len("user"):-len("@example.com")]
            self.assertEqual(m["mail_from"], "news@acme.test")
            self.assertEqual(m["to"], to)
            self.assertEqual(m["from_name"], "Acme Störe")
            self.assertEqual(m["subject"],
                             "N%s, Frühlingsangebote 🎉" % n)
            self.assertEqual(m["message_id"], ids[to])
            self.assertEqual(m["content_type"], "multipart/alternative")
            self.assertEqual([p["content_type"] for p in m["parts"]],
                             ["text/plain", "text/html"])
            self.assertEqual(m["parts"][0]["content"],
                             "Hi N%s — 50%% off" % n)
            self.assertEqual(m["parts"][1]["content"],
                             "<p>Hi <b>N%s</b></p>" % n)
            self.assertEqual(m["list_unsubscribe_post"],
                             "List-Unsubscribe=One-Click")
            self.assertTrue(m["list_unsubscribe"].startswith(
                "<https://acme.test/u/rcp_"), m)
            self.assertEqual(m["defects"], 0, m)

        sup = self.ok("GET", "/api/v1/suppressions?limit=100")
        reasons = {s["address"]: s.get("reason") for s in sup.get("items", [])}
        self.assertEqual(reasons.get("gone@example.com"), "bounce", sup)


if __name__ == "__main__":
    raise SystemExit(harness.main(__doc__, [ProvidersE2ETest,
                                            ProviderCrashTest, SmppE2ETest,
                                            SmtpE2ETest]))
