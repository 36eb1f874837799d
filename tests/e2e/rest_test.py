#!/usr/bin/python3
"""End-to-end test of the REST edge: campaignd-gateway in front of a real
campaignd, driven over HTTP (urllib, and the curl binary for the seeds'
own commands).

  * the seeds' REST calls: JSON bodies, lowerCamelCase output, snake_case and
    camelCase input, route order (/campaigns/stats), PUT and PATCH with
    update_mask, money (calculateGoal, price), auth headers;
  * strict JSON: a misspelt field in a body (create campaign, set prices,
    create template) or a query parameter is 400 invalid_request naming it,
    and nothing is stored; malformed JSON, a body on a GET, an oversized
    body; unknown routes and methods answer JSON 404 / 405;
  * the seeds' spellings (the alias table) and the README's copy of it;
  * the seeds' statuses (201, 204, 409, 422, 429 + Retry-After) and error
    body {"error", "message", "field", "details"}, with no Grpc-* header;
  * uploads: seed 000's multipart form (CSV and JSON files) and seed 004's
    {"recipients": [...]}, their bad input, all or nothing when the client
    goes away mid-upload;
  * ProvidersRestTest: campaignd started with --config (a [[providers]]
    table, a flag winning over the file): GET /api/v1/providers, the
    sender refusals naming `provider`, and a bad config file stopping the
    start with exit 2 and a message naming line and key, never the secret;
  * SeedReplayTest: every request of the five seeds (seed_requests.json)
    replayed with curl, each checked by status and by what it stored, and
    each again with one field misspelt (400, nothing stored).

Same command line as e2e_test.py (harness.main).
"""

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

import harness
from harness import BOOTSTRAP_KEY, HTTP_TIMEOUT, GatewayCase

SEED_FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "seed_requests.json")
README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                      "README.md")
CURL = "/usr/bin/curl"

SEED_SENDER = {"sender_id": "+15550001", "channel": "sms", "tier": "tier_10k"}
SEED_CAMPAIGN = {
    "name": "Spring Promotion", "channel": "sms", "sender_id": "+15550001",
    "body": "Hi {{name}}", "batch_delay": "2s",
    "schedule_at": "2026-12-01T09:00:00Z",
    "variable_mapping": {"name": "first_name"},
}



class RestGatewayTest(GatewayCase):
    """The seeds' REST calls through the gateway."""

    seed_sender_response = None

    def seed_sender(self):
        """Registers the seed's sender once (the first test to need it)."""
        cls = type(self)
        if cls.seed_sender_response is None:
            cls.seed_sender_response = self.call("POST", "/api/v1/senders",
                                                 SEED_SENDER)
        self.assertEqual(cls.seed_sender_response.status, 201,
                         cls.seed_sender_response)
        return cls.seed_sender_response.json

    def create(self, body):
        self.seed_sender()
        got = self.ok("POST", "/api/v1/campaigns", body, status=201)
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
            "sender_id": "+15550002", "channel": "sms", "tier": "tier_1k"},
            status=201)
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
        acct = self.ok("POST", "/api/v1/accounts", {"name": "payer"},
                       status=201)
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
        self.ok("POST", "/api/v1/senders", dict(SEED_SENDER), status=201,
                key=key)
        for i, tag in enumerate(["vip", "vip", "vip", "other"]):
            self.ok("POST", "/api/v1/contacts",
                    {"channel": "sms", "address": "+1202555020%d" % i,
                     "attributes": {"first_name": "Ann"}, "tags": [tag]},
                    status=201, key=key)
        c = self.ok("POST", "/api/v1/campaigns",
                    dict({k: v for k, v in SEED_CAMPAIGN.items()
                          if k != "schedule_at"}, tags=["vip"]),
                    status=201, key=key)
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
        self.assert_error(r, 422, "INSUFFICIENT_CREDITS")
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
            # have made it "Body"); the seeds answer it with 422.
            r = self.call("PATCH", path, {"body": "", "template_id": "",
                                          "update_mask": "body"})
            self.assert_error(r, 422, "VALIDATION_ERROR", "body")
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
                                    401, "UNAUTHORIZED")
        wrong = self.assert_error(self.call("GET", "/api/v1/account",
                                            key="ck_wrong_key"),
                                  401, "UNAUTHORIZED")
        self.assertEqual(missing["message"], wrong["message"])
        acct = self.ok("GET", "/api/v1/account", key=None,
                       headers={"X-Api-Key": BOOTSTRAP_KEY})
        self.assertTrue(acct["id"].startswith("acct_"), acct)
        self.assertIs(acct["admin"], True, acct)
        self.assert_error(self.call("GET", "/api/v1/campaigns", key=None),
                          401, "UNAUTHORIZED")
        listed = self.ok("GET", "/api/v1/campaigns", key=None,
                         headers={"X-Api-Key": BOOTSTRAP_KEY})
        self.assertIn("items", listed)

    def test_list_limit_over_100(self):
        r = self.call("GET", "/api/v1/campaigns?limit=101")
        self.assert_error(r, 400, "INVALID_REQUEST", "limit")

    def test_not_found(self):
        r = self.call("GET", "/api/v1/campaigns/cmp_doesnotexist")
        self.assert_error(r, 404, "NOT_FOUND")

    def test_delete(self):
        c = self.create(dict(SEED_CAMPAIGN, name="To delete"))
        path = "/api/v1/campaigns/" + c["id"]
        self.assertIsNone(self.ok("DELETE", path, status=204))
        self.assert_error(self.call("GET", path), 404, "NOT_FOUND")
        self.assert_error(self.call("DELETE", path), 404, "NOT_FOUND")


class KeyLimitRestTest(GatewayCase):
    """A key over its request limit gets 429 with Retry-After; others not."""

    server_args = ("--key-rate", "0.5", "--key-burst", "3")

    def test_429_with_retry_after(self):
        other = self.ok("POST", "/api/v1/accounts", {"name": "other"},
                        status=201)
        r = None
        for _ in range(10):
            r = self.call("GET", "/api/v1/account")
            if r.status != 200:
                break
        err = self.assert_error(r, 429, "RATE_LIMIT_EXCEEDED")
        self.assertGreaterEqual(int(r.headers.get("Retry-After", "0")), 1, r)
        retry = [d for d in err["details"]
                 if d.get("@type") == "type.googleapis.com/google.rpc.RetryInfo"]
        self.assertEqual(len(retry), 1, r)
        self.ok("GET", "/api/v1/account", key=other["apiKey"]["secret"])


# ---------------------------------------------------------------------------
# Helpers


def multipart(fields, boundary="campaigndBoundary7MA4YWxk"):
    """A multipart/form-data body from (name, filename or None, bytes)."""
    out = b""
    for name, filename, data in fields:
        out += b"--" + boundary.encode() + b"\r\n"
        disposition = 'form-data; name="%s"' % name
        if filename is not None:
            disposition += '; filename="%s"' % filename
        out += b"Content-Disposition: " + disposition.encode() + b"\r\n\r\n"
        out += data + b"\r\n"
    out += b"--" + boundary.encode() + b"--\r\n"
    return out, "multipart/form-data; boundary=" + boundary


def csv_rows(numbers, name="Ann"):
    """A CSV file of phone,name,code rows."""
    lines = ["phone,name,code"] + ["%s,%s,C%d" % (n, name, i)
                                   for i, n in enumerate(numbers)]
    return ("\n".join(lines) + "\n").encode()


def us_numbers(count, base):
    """`count` distinct valid US numbers."""
    return ["+1202555%04d" % (base + i) for i in range(count)]


class EdgeCase(GatewayCase):
    """Helpers of the REST edge tests."""

    def register_sender(self, sender_id, channel="sms", tier="tier_10k",
                        key=BOOTSTRAP_KEY):
        return self.ok("POST", "/api/v1/senders",
                       {"sender_id": sender_id, "channel": channel,
                        "tier": tier}, status=201, key=key)

    def campaign(self, sender_id, **fields):
        body = dict({"name": "c", "sender_id": sender_id, "body": "Hi {{name}}"},
                    **fields)
        return self.ok("POST", "/api/v1/campaigns", body, status=201)

    def campaign_count(self):
        return int(self.ok("GET", "/api/v1/campaigns?limit=1")["total"])

    def upload(self, campaign_id, fields, path=None, query=""):
        body, content_type = multipart(fields)
        path = path or "/api/v1/campaigns/%s/recipients" % campaign_id
        return self.call("POST", path + query, body,
                         headers={"Content-Type": content_type})

    def recipients(self, campaign_id):
        got = self.ok("GET", "/api/v1/campaigns/%s/recipients?limit=100" %
                      campaign_id)
        return got["items"]


# ---------------------------------------------------------------------------
# Strict JSON


class StrictJsonTest(EdgeCase):
    """A typo never loses data: 400 naming it, nothing stored."""

    def test_misspelt_create_campaign_field(self):
        self.register_sender("+15550101")
        before = self.campaign_count()
        r = self.call("POST", "/api/v1/campaigns", {
            "name": "Typo", "sender_id": "+15550101", "body": "Hi",
            "sheduled_at": "2030-01-01T00:00:00Z"})
        self.assert_error(r, 400, "INVALID_REQUEST", "sheduled_at")
        self.assertEqual(self.campaign_count(), before)

    def test_misspelt_price_field(self):
        acct = self.ok("POST", "/api/v1/accounts", {"name": "prices"},
                       status=201)
        key = acct["apiKey"]["secret"]
        path = "/api/v1/accounts/%s/prices" % acct["id"]
        self.ok("PUT", path, {"prices": [{"channel": "sms", "amount": 7}]})
        r = self.call("PUT", path, {"prices": [
            {"channel": "sms", "amount": 5},
            {"channel": "email", "unit_price": 9}]})
        self.assert_error(r, 400, "INVALID_REQUEST", "prices[1].unit_price")
        # The table is as it was: what an estimate prices a message at.
        self.register_sender("+15550104", key=key)
        self.ok("POST", "/api/v1/contacts", {
            "channel": "sms", "address": "+12025550104", "tags": ["t"]},
            status=201, key=key)
        c = self.ok("POST", "/api/v1/campaigns", {
            "name": "p", "sender_id": "+15550104", "body": "Hi",
            "tags": ["t"]}, status=201, key=key)
        goal = self.ok("POST", "/api/v1/campaigns/%s/calculateGoal" % c["id"],
                       key=key)
        self.assertEqual(goal["lines"][0]["unitPrice"], "7", goal)

    def test_misspelt_template_field(self):
        before = int(self.ok("GET", "/api/v1/templates?limit=1")["total"])
        r = self.call("POST", "/api/v1/templates", {
            "name": "welcome", "language": "en", "channel": "sms",
            "bodyy": "Hi {{1}}"})
        self.assert_error(r, 400, "INVALID_REQUEST", "bodyy")
        r = self.call("POST", "/api/v1/templates", {
            "name": "welcome", "language": "en", "channel": "whatsapp",
            "components": [{"type": "body", "parameters": [
                {"type": "text", "txt": "{{1}}"}]}]})
        self.assert_error(r, 400, "INVALID_REQUEST",
                          "components[0].parameters[0].txt")
        self.assertEqual(
            int(self.ok("GET", "/api/v1/templates?limit=1")["total"]), before)

    def test_misspelt_query_parameter(self):
        for path, field in (("/api/v1/campaigns?statuss=draft", "statuss"),
                            ("/api/v1/campaigns?limit=5&pag=2", "pag"),
                            ("/api/v1/campaigns/stats?form=2026-01-01", "form"),
                            ("/api/v1/account?verbose=1", "verbose")):
            with self.subTest(path=path):
                self.assert_error(self.call("GET", path), 400,
                                  "INVALID_REQUEST", field)
        # A query parameter on a route that takes a JSON body is not read.
        before = self.campaign_count()
        self.register_sender("+15550102")
        r = self.call("POST", "/api/v1/campaigns?start=true", {
            "name": "q", "sender_id": "+15550102", "body": "Hi"})
        self.assert_error(r, 400, "INVALID_REQUEST", "start")
        self.assertEqual(self.campaign_count(), before)

    def test_wrong_types_and_values_name_the_field(self):
        self.register_sender("+15550103")
        cases = [
            ({"name": 5}, "name"),
            ({"name": "x", "sender_id": "+15550103", "body": "Hi",
              "batch_size": "many"}, "batch_size"),
            ({"name": "x", "sender_id": "+15550103", "body": "Hi",
              "channel": "pigeon"}, "channel"),
            ({"name": "x", "sender_id": "+15550103", "body": "Hi",
              "schedule_at": "next tuesday"}, "schedule_at"),
            ({"name": "x", "sender_id": "+15550103", "body": "Hi",
              "tags": "vip"}, "tags"),
            ({"name": "x", "sender_id": "+15550103", "body": "Hi",
              "start": "yes"}, "start"),
        ]
        for body, field in cases:
            with self.subTest(field=field):
                self.assert_error(self.call("POST", "/api/v1/campaigns", body),
                                  400, "INVALID_REQUEST", field)
        r = self.call("GET", "/api/v1/campaigns?limit=ten")
        self.assert_error(r, 400, "INVALID_REQUEST", "limit")
        r = self.call("GET", "/api/v1/campaigns?status=finished")
        self.assert_error(r, 400, "INVALID_REQUEST", "status")

    def test_malformed_json_and_bodies_where_none_is_taken(self):
        for raw in (b'{"name": ', b'{"name": "x"} {"name": "y"}', b"[1, 2]",
                    b"\xff\xfe"):
            with self.subTest(body=raw):
                r = self.call("POST", "/api/v1/campaigns", raw)
                self.assert_error(r, 400, "INVALID_REQUEST", "body")
        r = self.call("DELETE", "/api/v1/campaigns/cmp_x", {"force": True})
        self.assert_error(r, 400, "INVALID_REQUEST", "body")

    def test_body_over_the_limit_is_413(self):
        r = self.call("POST", "/api/v1/campaigns",
                      b'{"name": "' + b"x" * (9 << 20) + b'"}')
        self.assertEqual(r.status, 413, r)
        err = r.json
        self.assertEqual(err["error"], "payload_too_large", r)
        self.assertEqual(err["field"], "body", r)

    def test_unknown_route_and_method_are_json(self):
        r = self.call("GET", "/api/v1/nowhere")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.json["error"], "not_found", r)
        self.assertIn("application/json", r.headers["Content-Type"])
        r = self.call("POST", "/api/v1/campaigns/cmp_x", {})
        self.assertEqual(r.status, 405, r)
        self.assertEqual(r.json["error"], "method_not_allowed", r)
        self.assertEqual(r.headers["Allow"], "DELETE, GET, PATCH, PUT")
        r = self.call("GET", "/api/v1/campaigns/cmp_x/recipients/import")
        self.assertEqual(r.status, 405, r)
        self.assertEqual(r.headers["Allow"], "POST")


# ---------------------------------------------------------------------------
# The seeds' spellings, paths, auth and statuses


class SeedSpellingTest(EdgeCase):

    def test_alias_table_is_the_readmes(self):
        table = subprocess.run([harness.ARGS.gateway, "--aliases"],
                               capture_output=True, text=True, timeout=30,
                               check=True).stdout
        with open(README) as f:
            readme = f.read()
        self.assertTrue(table in readme,
                        "the README's alias table is not what "
                        "`campaignd-gateway --aliases` prints:\n" + table)

    def test_seed_003_and_004_spellings_are_stored(self):
        wa = self.register_sender("+15550201", "whatsapp")
        contact = self.ok("POST", "/api/v1/contacts", {
            "channel": "whatsapp", "address": "+12025550201",
            "tags": ["vip"]}, status=201)
        template = self.ok("POST", "/api/v1/templates", {
            "name": "greeting", "language": "en_US", "channel": "whatsapp",
            "body": "Hi {{1}}"}, status=201)
        self.ok("POST", "/api/v1/templates/%s/status" % template["id"],
                {"status": "APPROVED"})
        c = self.ok("POST", "/api/v1/campaigns", {
            "channel_id": wa["id"], "name": "Welcome",
            "template_id": template["id"],
            "template_components": [{"type": "body", "parameters": [
                {"type": "text", "text": "{{1}}"}]}],
            "audience_type": "tags", "audience_tags": ["vip"],
            "recipient_variables": {contact["id"]: {"1": "Asha"}},
            "variable_mappings": {"1": "first_name"},
            "scheduled_at": "2030-03-25T10:00:00Z"}, status=201)
        self.assertEqual(c["channel"], "whatsapp", c)  # from the sender
        self.assertEqual(c["senderId"], "+15550201", c)
        self.assertEqual(c["tags"], ["vip"], c)
        self.assertEqual(c["scheduleAt"], "2030-03-25T10:00:00Z", c)
        self.assertEqual(c["variableMapping"], {"1": "first_name"}, c)
        self.assertEqual(c["recipientVariables"],
                         {contact["id"]: {"1": "Asha"}}, c)
        self.assertEqual(c["templateComponents"][0]["parameters"][0]["text"],
                         "{{1}}", c)
        c4 = self.ok("POST", "/api/campaigns", {
            "name": "Seed 004", "account_id": wa["id"],
            "template_id": template["id"],
            "audience_type": "contact_ids",
            "audience_contact_ids": [contact["id"]]}, status=201)
        self.assertEqual(c4["contactIds"], [contact["id"]], c4)
        self.assertEqual(c4["senderId"], "+15550201", c4)
        # Both spellings of one field: which one counts is not guessed.
        r = self.call("POST", "/api/v1/campaigns", {
            "name": "x", "sender_id": wa["id"], "channel_id": wa["id"],
            "template_id": template["id"]})
        self.assert_error(r, 400, "INVALID_REQUEST", "channel_id")
        r = self.call("POST", "/api/v1/campaigns", {
            "name": "x", "sender_id": wa["id"], "template_id": template["id"],
            "audience_type": "tags"})
        self.assert_error(r, 400, "INVALID_REQUEST", "audience_tags")

    def test_list_spellings_and_path_aliases(self):
        sender = self.register_sender("+15550202", tier="tier_1k")
        c = self.campaign("+15550202")
        upload = self.upload(c["id"], [("file", "r.csv",
                                        csv_rows(us_numbers(40, 2000)))])
        self.assertEqual(upload.status, 200, upload)
        self.ok("POST", "/api/v1/campaigns/%s/start" % c["id"], {})
        for status in ("running", "PROCESSING", "Sending"):
            with self.subTest(status=status):
                got = self.ok("GET", "/api/campaigns?status=%s&per_page=100&"
                              "account_id=%s" % (status, sender["id"]))
                self.assertEqual([x["id"] for x in got["items"]], [c["id"]])
                self.assertEqual(got["limit"], 100, got)
        got = self.ok("GET", "/api/v1/messaging/campaigns/%s/recipients?"
                      "per_page=7" % c["id"])
        self.assertEqual(len(got["items"]), 7, got)
        self.ok("POST", "/api/v1/campaigns/%s/cancel" % c["id"], {})
        stats = self.ok("GET", "/api/v1/campaigns/stats?from=2026-01-01")
        self.assertEqual(stats["from"], "2026-01-01T00:00:00Z", stats)

    def test_x_auth_token_and_id(self):
        account = self.ok("GET", "/api/v1/account")
        got = self.ok("GET", "/api/v1/messaging/campaigns", key=None,
                      headers={"X-Auth-Token": BOOTSTRAP_KEY,
                               "X-Auth-ID": account["id"]})
        self.assertIn("items", got)
        self.ok("GET", "/api/v1/account", key=None,
                headers={"X-Auth-Token": BOOTSTRAP_KEY})
        r = self.call("GET", "/api/v1/account", key=None,
                      headers={"X-Auth-Token": BOOTSTRAP_KEY,
                               "X-Auth-ID": "MA_XXXXXXXX"})
        self.assert_error(r, 401, "UNAUTHORIZED")

    def test_statuses(self):
        self.register_sender("+15550203")
        c = self.campaign("+15550203")
        r = self.call("POST", "/api/v1/campaigns/%s/start" % c["id"], {})
        self.assert_error(r, 422, "VALIDATION_ERROR")  # no recipients
        r = self.call("POST", "/api/v1/campaigns/%s/resume" % c["id"], {})
        self.assert_error(r, 409, "ILLEGAL_TRANSITION")
        r = self.call("GET", "/api/v1/campaigns/cmp_nope")
        self.assert_error(r, 404, "NOT_FOUND")
        r = self.call("GET", "/api/v1/campaigns/" + c["id"], key="ck_nope")
        self.assert_error(r, 401, "UNAUTHORIZED")
        self.assertIsNone(self.ok("DELETE", "/api/v1/campaigns/" + c["id"],
                                  status=204))
        r = self.call("POST", "/api/v1/campaigns", {
            "name": "x", "sender_id": "+19990000", "body": "Hi",
            "channel": "sms"})
        self.assert_error(r, 422, "VALIDATION_ERROR", "sender_id")


    def test_watch_streams_and_fails_like_every_route(self):
        self.assert_error(self.call("GET", "/api/v1/campaigns/cmp_nope/watch"),
                          404, "NOT_FOUND")
        self.assert_error(self.call("GET", "/api/v1/campaigns/cmp_nope/watch",
                                    key=None), 401, "UNAUTHORIZED")
        self.assert_error(self.call(
            "GET", "/api/v1/campaigns/cmp_nope/watch?max_rate=5"), 400,
            "INVALID_REQUEST", "max_rate")
        self.register_sender("+15550204", tier="unlimited")
        c = self.campaign("+15550204")
        r = self.call("POST", "/api/v1/campaigns/%s/recipients" % c["id"],
                      csv_rows(us_numbers(3, 2100)),
                      headers={"Content-Type": "text/csv"})
        self.assertEqual(r.status, 200, r)
        self.ok("POST", "/api/v1/campaigns/%s/start" % c["id"], {})
        r = self.call("GET", "/api/v1/campaigns/%s/watch?max_rate_hz=20" %
                      c["id"])  # ends when the campaign is final
        self.assertEqual(r.status, 200, r)
        lines = [json.loads(x) for x in r.raw.decode().splitlines()]
        self.assertTrue(lines, r)
        self.assertTrue(all("result" in x for x in lines), r)
        self.assertEqual(lines[-1]["result"]["status"], "completed", r)
        self.assertEqual(lines[-1]["result"]["stats"]["total"], "3", r)


# ---------------------------------------------------------------------------
# Uploads


class UploadTest(EdgeCase):

    def setUp(self):
        if not hasattr(type(self), "sender"):
            type(self).sender = self.register_sender("+15550301")

    def fresh(self):
        return self.campaign("+15550301")["id"]

    def total(self, campaign_id):
        got = self.ok("GET", "/api/v1/campaigns/" + campaign_id)
        return int(got["stats"]["total"])

    def test_seed_000_multipart_csv_and_json(self):
        cid = self.fresh()
        r = self.upload(cid, [
            ("default_region", None, b"US"), ("request_id", None, b"up-1"),
            ("file", "recipients.csv",
             b"phone,name,code\n(202) 555-0101,John,SAVE20\n"
             b"+12025550102,Jane,SAVE20\n+1234567890,Bad,X\n")])
        self.assertEqual(r.status, 200, r)
        got = r.json
        self.assertEqual((got["received"], got["imported"], got["invalid"]),
                         ("3", "2", "1"), got)
        self.assertEqual(got["errors"][0]["row"], "3", got)
        rows = {x["address"]: x["variables"] for x in self.recipients(cid)}
        self.assertEqual(rows["+12025550101"], {"name": "John",
                                                "code": "SAVE20"})
        # The same request_id and file: the first answer, nothing twice.
        again = self.upload(cid, [
            ("default_region", None, b"US"), ("request_id", None, b"up-1"),
            ("file", "recipients.csv",
             b"phone,name,code\n(202) 555-0101,John,SAVE20\n"
             b"+12025550102,Jane,SAVE20\n+1234567890,Bad,X\n")])
        self.assertEqual(again.json, got)
        json_file = json.dumps([{"phone": "+12025550103", "name": "A"},
                                {"phone_number": "+12025550104",
                                 "variables": {"name": "B"}}]).encode()
        r = self.upload(cid, [("file", "r.json", json_file)])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["imported"], "2", r)
        self.assertEqual(self.total(cid), 4)

    def test_seed_004_recipients_import(self):
        cid = self.fresh()
        r = self.call("POST", "/api/campaigns/%s/recipients/import" % cid, {
            "recipients": [
                {"phone_number": "+12025550111", "name": "John Doe",
                 "discount_code": "SAVE20"},
                {"phone_number": "+0987654321", "name": "Jane Smith",
                 "discount_code": "SAVE15"}]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["imported"], r.json["invalid"]), ("1", "1"))
        rows = self.recipients(cid)
        self.assertEqual(rows[0]["variables"],
                         {"name": "John Doe", "discount_code": "SAVE20"})

    def test_bad_uploads_name_the_field_and_import_nothing(self):
        cid = self.fresh()
        good = csv_rows(us_numbers(3, 300))
        cases = [
            ([("fil", "r.csv", good)], "fil"),
            ([("title", None, b"x"), ("file", "r.csv", good)], "title"),
            ([("file", "r.csv", good), ("default_region", None, b"US")],
             "default_region"),
            ([("file", "r.csv", good), ("file", "s.csv", good)], "file"),
            ([("file", "r.bin", b"\x89PNG\r\n\x1a\n\x00\x00\x00")], "file"),
            ([("file", "r.csv", b"")], "file"),
            ([("file", "r.json", b'[{"phone": "+12025550120"}, 7]')],
             "file[1]"),
            ([("file", "r.json", b'{"recipients": [{"phone": "+1"}')],
             "recipients"),
            ([("format", None, b"xml"), ("file", "r.csv", good)], "format"),
        ]
        for fields, field in cases:
            with self.subTest(field=field, names=[f[0] for f in fields]):
                self.assert_error(self.upload(cid, fields), 400,
                                  "INVALID_REQUEST", field)
        r = self.upload(cid, [("file", "r.csv", good)], query="?regoin=US")
        self.assert_error(r, 400, "INVALID_REQUEST", "regoin")
        r = self.call("POST", "/api/v1/campaigns/%s/recipients/import" % cid,
                      {"recipient": [{"phone_number": "+12025550121"}]})
        self.assert_error(r, 400, "INVALID_REQUEST", "recipient")
        r = self.call("POST", "/api/v1/campaigns/%s/recipients" % cid,
                      b"<xml/>", headers={"Content-Type": "application/xml"})
        self.assertEqual(r.status, 415, r)
        self.assertEqual(r.json["error"], "unsupported_media_type", r)
        self.assertEqual(self.total(cid), 0)
        # Nothing is held: the same campaign takes the good file once the
        # rollback of an upload the gateway cut off (it cancels the stream)
        # has finished, which the answer says ("retry when it has
        # finished"); on PostgreSQL that may be a moment after the 400.
        deadline = time.monotonic() + 20
        while True:
            r = self.upload(cid, [("file", "r.csv", good)])
            if r.status != 422 or time.monotonic() > deadline:
                break
            self.assertIn("being rolled back", r.json["message"], r)
            time.sleep(0.2)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.total(cid), 3)

    def test_campaignd_errors_come_through(self):
        r = self.upload("cmp_nope", [("file", "r.csv",
                                      csv_rows(us_numbers(1, 400)))])
        self.assert_error(r, 404, "NOT_FOUND")
        r = self.call("POST", "/api/v1/campaigns/%s/recipients" % self.fresh(),
                      csv_rows(us_numbers(1, 401)), key="ck_nope",
                      headers={"Content-Type": "text/csv"})
        self.assert_error(r, 401, "UNAUTHORIZED")

    def test_client_gone_mid_upload_leaves_the_campaign_as_it_was(self):
        cid = self.fresh()
        body, content_type = multipart([("file", "r.csv",
                                         csv_rows(us_numbers(5000, 1000)))])
        cut = body[:len(body) * 2 // 3]
        with socket.create_connection(("127.0.0.1", self.gateway.port),
                                      timeout=HTTP_TIMEOUT) as s:
            s.sendall((
                "POST /api/v1/campaigns/%s/recipients HTTP/1.1\r\n"
                "Host: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
                    cid, BOOTSTRAP_KEY, content_type, len(body))).encode())
            s.sendall(cut)
            time.sleep(0.5)
        # The import is rolled back; the campaign takes a new one.
        deadline = time.monotonic() + 20
        while True:
            r = self.upload(cid, [("file", "r.csv",
                                   csv_rows(us_numbers(10, 7000)))])
            if r.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # the rollback may still be running
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.total(cid), 10)


# ---------------------------------------------------------------------------
# The seeds' requests, replayed


def misspell(name):
    """One letter dropped: "scheduled_at" -> "scheduled_a"."""
    return name[:-1]


class ProvidersRestTest(GatewayCase):
    """campaignd with --config: its providers over REST."""

    SECRET = "xoxb-e2e-secret-value"

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="providers-", dir=harness.RUN_DIR)
        token = os.path.join(cls.dir, "slack_token")
        with open(token, "w") as f:
            f.write(cls.SECRET + "\n")
        cls.config_path = os.path.join(cls.dir, "campaignd.toml")
        with open(cls.config_path, "w") as f:
            # The harness's --listen 127.0.0.1:0 wins over this address.
            f.write('listen = "127.0.0.1:1"\n'
                    'receipt_timeout = "10m"\n'
                    '\n'
                    '[[providers]]\n'
                    'name = "team-slack"\n'
                    'type = "slack"\n'
                    'bot_token = "file:%s"\n'
                    'timeout = "5s"\n' % token)
        cls.server_args = ("--key-rate", "0", "--config", cls.config_path)
        super().setUpClass()

    def test_list_providers(self):
        r = self.call("GET", "/api/v1/providers")
        got = self.ok("GET", "/api/v1/providers")
        self.assertNotIn(self.SECRET.encode(), r.raw)
        providers = got["providers"]
        self.assertEqual([p["name"] for p in providers],
                         ["simulator", "team-slack"], got)
        sim = providers[0]
        self.assertEqual(sim["type"], "simulator", got)
        self.assertEqual(sim["state"], "ok", got)
        self.assertEqual(sim["channels"], ["sms", "whatsapp", "telegram",
                                           "email", "slack", "rcs"], got)
        self.assertEqual(sim.get("reason", ""), "", got)
        slack = providers[1]
        self.assertEqual(slack["type"], "slack", got)
        self.assertEqual(slack["channels"], ["slack"], got)
        self.assertEqual(slack["state"], "ok", got)
        self.assertEqual(slack.get("reason", ""), "", got)
        # Any key may list them; no key may not.
        r = self.call("GET", "/api/v1/providers", key="ck_nope")
        self.assert_error(r, 401, "UNAUTHORIZED")

    def test_register_sender_provider_checks(self):
        r = self.call("POST", "/api/v1/senders", {
            "sender_id": "+15550301", "channel": "sms", "provider": "nope"})
        self.assert_error(r, 422, "VALIDATION_ERROR", "provider")
        r = self.call("POST", "/api/v1/senders", {
            "sender_id": "+15550301", "channel": "sms",
            "provider": "team-slack"})
        self.assert_error(r, 422, "VALIDATION_ERROR", "provider")
        got = self.ok("POST", "/api/v1/senders", {
            "sender_id": "campaign-bot", "channel": "slack",
            "provider": "team-slack"}, status=201)
        self.assertEqual(got["provider"], "team-slack", got)

    def test_bad_config_file_exits_2_naming_line_and_key(self):
        path = os.path.join(self.dir, "bad.toml")
        with open(path, "w") as f:
            f.write('db = "x.db"\n\n[[providers]]\nname = "s"\n'
                    'type = "slack"\nbot_token = "xoxb-literal-secret"\n')
        p = subprocess.run(
            [harness.ARGS.campaignd, "--config", path, "--db",
             os.path.join(self.dir, "never.db")],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
            env=harness.clean_env())
        self.assertEqual(p.returncode, 2, p)
        err = p.stderr.decode()
        self.assertIn(path + ":6: providers[0].bot_token: a secret is "
                      'written "env:NAME" or "file:/path"', err)
        self.assertNotIn("xoxb-literal-secret", err + p.stdout.decode())
        self.assertFalse(os.path.exists(os.path.join(self.dir, "never.db")))


    def test_a_db_password_for_a_sqlite_db_exits_2(self):
        path = os.path.join(self.dir, "pw.toml")
        secret = os.path.join(self.dir, "pgpass")
        with open(secret, "w") as f:
            f.write("db-secret-value\n")
        with open(path, "w") as f:
            f.write('db_password = "file:%s"\n' % secret)
        db = os.path.join(self.dir, "never-pw.db")
        p = subprocess.run(
            [harness.ARGS.campaignd, "--config", path, "--db", db],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
            env=harness.clean_env())
        self.assertEqual(p.returncode, 2, p)
        err = p.stderr.decode()
        self.assertIn("db_password: only for a PostgreSQL db", err)
        self.assertNotIn("db-secret-value", err + p.stdout.decode())
        self.assertFalse(os.path.exists(db))


class SeedReplayTest(EdgeCase):
    """Every request of seed_requests.json through the gateway with curl, in
    order; before each one with a field, the same request with that field
    misspelt."""

    def setUp(self):
        with open(SEED_FIXTURE) as f:
            self.fixture = json.load(f)
        self.work = os.path.join(harness.RUN_DIR, "seed-replay")
        os.makedirs(self.work, exist_ok=True)
        with open(os.path.join(self.work, "recipients.csv"), "w") as f:
            f.write("phone,name,code\n+1234567890,John,SAVE20\n"
                    "+9876543210,Jane,SAVE20\n")  # seed 000's file
        self.values = self.prepare()

    def prepare(self):
        """What the placeholders stand for: a sender, templates, contacts
        and a list made over REST before the replay."""
        account = self.ok("GET", "/api/v1/account")
        sms = self.register_sender("+15550401", tier="tier_1k")
        wa = self.register_sender("+15550402", "whatsapp", tier="tier_1k")
        sms_tmpl = self.approved_template("spring", "sms",
                                          "Hi {{name}}, use {{code}}")
        wa_tmpl = self.approved_template("welcome_message", "whatsapp",
                                         "Hi {{1}}")
        contacts = []
        for i in range(30):
            contacts.append(self.ok("POST", "/api/v1/contacts", {
                "channel": "whatsapp", "address": "+1202555%04d" % (4000 + i),
                "attributes": {"1": "friend %d" % i, "name": "N%d" % i,
                               "discount_code": "D%d" % i},
                "tags": ["vip"]}, status=201))
        lst = self.ok("POST", "/api/v1/contact-lists", {"name": "seed list"},
                      status=201)
        members = [self.ok("POST", "/api/v1/contacts", {
            "channel": "sms", "address": "+1202555%04d" % (4100 + i)},
            status=201)["id"] for i in range(5)]
        self.ok("POST", "/api/v1/contact-lists/%s/contacts" % lst["id"],
                {"contact_ids": members})
        return {
            "YOUR_TOKEN": BOOTSTRAP_KEY, "{auth_token}": BOOTSTRAP_KEY,
            "MA_XXXXXXXX": account["id"],
            "tmpl_abc123": sms_tmpl["id"], "sender_xyz789": sms["id"],
            "SENDER_ID": sms["senderId"], "LIST_ID": lst["id"],
            "3f1c9b7e-2d4a-4f6b-9c8e-0a1b2c3d4e5f": wa["id"],
            "9d8f1e2a-4c3b-4a1d-8e7f-1a2b3c4d5e6f": wa_tmpl["id"],
            "1f2e3d4c-5b6a-7980-a1b2-c3d4e5f60718": contacts[0]["id"],
            # Seed 004 writes "uuid" for every id: told apart by field.
            '"account_id": "uuid"': '"account_id": "%s"' % wa["id"],
            '"template_id": "uuid"': '"template_id": "%s"' % wa_tmpl["id"],
            "account_id=uuid": "account_id=" + wa["id"],
            # Filled in by the creates (the response's id).
            "cmp_abc123": None, "CAMPAIGN_001": None, "CAMPAIGN_002": None,
            "{id}": None, "CAMPAIGN_004": None,
        }

    def approved_template(self, name, channel, body):
        t = self.ok("POST", "/api/v1/templates", {
            "name": name, "language": "en_US", "channel": channel,
            "body": body}, status=201)
        self.ok("POST", "/api/v1/templates/%s/status" % t["id"],
                {"status": "approved"})
        return t

    # -- running a seed's curl command

    def command(self, text):
        """The seed's curl command as argv for this gateway: placeholders
        replaced, the host ours."""
        text = text.replace("\\\n", " ")
        for placeholder, value in self.values.items():
            if value is not None:
                text = text.replace(placeholder, value)
        unfilled = [p for p, v in self.values.items() if v is None and p in text]
        self.assertEqual(unfilled, [], text)
        argv = shlex.split(text)
        self.assertEqual(argv[0], "curl")
        out = []
        for arg in argv[1:]:
            m = re.match(r"^https://[^/]+(/.*)$", arg)
            out.append(self.gateway.url + m.group(1) if m else arg)
        return out

    def curl(self, args):
        """Runs curl; returns (status, parsed JSON body or raw bytes)."""
        body_path = os.path.join(self.work, "body")
        r = subprocess.run(
            [CURL, "-s", "-S", "--max-time", str(HTTP_TIMEOUT), "-o",
             body_path, "-w", "%{http_code}"] + args,
            capture_output=True, text=True, cwd=self.work,
            env=harness.clean_env(), timeout=HTTP_TIMEOUT + 5)
        self.assertEqual(r.returncode, 0, "curl %s: %s" % (args, r.stderr))
        with open(body_path, "rb") as f:
            raw = f.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return int(r.stdout), parsed

    def misspelt(self, args):
        """The same command with its first field misspelt, and that name:
        the first key of a JSON body, else the first query parameter, else
        the first form field; None when it has no field."""
        args = list(args)
        for i, arg in enumerate(args):
            if arg in ("-d", "--data") and i + 1 < len(args):
                body = json.loads(args[i + 1])
                key = next(iter(body))
                bad = misspell(key)
                body = {(bad if k == key else k): v for k, v in body.items()}
                args[i + 1] = json.dumps(body)
                return args, bad
        for i, arg in enumerate(args):
            if arg.startswith(self.gateway.url) and "?" in arg:
                url = urllib.parse.urlsplit(arg)
                query = urllib.parse.parse_qsl(url.query)
                bad = misspell(query[0][0])
                query[0] = (bad, query[0][1])
                args[i] = urllib.parse.urlunsplit(
                    url._replace(query=urllib.parse.urlencode(query)))
                return args, bad
        for i, arg in enumerate(args):
            if arg == "-F":
                name, value = args[i + 1].split("=", 1)
                args[i + 1] = misspell(name) + "=" + value
                return args, misspell(name)
        return None, None

    # -- what each request must have stored

    def get(self, campaign_id):
        return self.ok("GET", "/api/v1/campaigns/" + campaign_id)

    def import_valid(self, campaign_id, count, base):
        """Valid recipients for the lifecycle requests that follow (the
        seeds' example numbers are not valid numbers)."""
        r = self.upload(campaign_id, [("file", "valid.csv",
                                       csv_rows(us_numbers(count, base)))])
        self.assertEqual(r.status, 200, r)

    def check(self, rid, status_body):
        body = status_body
        v = self.values
        if rid == "000-create":
            v["cmp_abc123"] = body["id"]
            self.assertEqual(body["status"], "draft")
            self.assertEqual(body["channel"], "sms")  # the template's
            self.assertEqual(body["templateId"], v["tmpl_abc123"])
            self.assertEqual(body["senderId"], "+15550401")
            self.assertEqual(body["scheduleAt"], "2026-03-01T09:00:00Z")
        elif rid in ("000-upload", "004-import"):
            # The seeds' example numbers are not valid: counted, named.
            self.assertEqual((body["received"], body["imported"],
                              body["invalid"]), ("2", "0", "2"), body)
            self.assertEqual([e["row"] for e in body["errors"]], ["1", "2"])
            cid = v["cmp_abc123"] if rid == "000-upload" else v["CAMPAIGN_004"]
            self.assertEqual(self.get(cid)["stats"]["total"], "0")
            self.import_valid(cid, 40, 100 if rid == "000-upload" else 200)
        elif rid in ("000-start", "004-start", "003-start", "003-resume"):
            self.assertEqual(body["status"], "sending", body)
        elif rid in ("000-pause", "003-pause", "004-pause"):
            self.assertEqual(body["status"], "paused", body)
        elif rid in ("000-cancel", "003-cancel", "004-cancel"):
            self.assertEqual(body["status"], "cancelled", body)
            self.assertGreater(int(body["stats"]["skipped"]), 0, body)
        elif rid == "000-get":
            self.assertEqual(body["status"], "cancelled", body)
            self.assertEqual(body["stats"]["total"], "40", body)
        elif rid == "000-recipients":
            self.assertEqual((len(body["items"]), body["limit"], body["page"],
                              body["total"]), (20, 20, 1, "40"), body)
        elif rid == "001-create":
            v["CAMPAIGN_001"] = body["id"]
            self.assertEqual((body["status"], body["contactListId"],
                              body["scheduleAt"]),
                             ("draft", v["LIST_ID"], "2030-07-01T08:00:00Z"))
        elif rid == "001-list":
            self.assertTrue(all(c["status"] == "sending"
                                for c in body["items"]), body)
        elif rid == "002-create":
            v["CAMPAIGN_002"] = body["id"]
        elif rid == "002-update":
            self.assertEqual(body["body"], "Spring is here: 10% off")
        elif rid in ("002-calculate-goal", "002-price"):
            self.assertIn("total", body)
            self.assertIs(body["sufficient"], True)
        elif rid in ("002-confirm", "002-get"):
            self.assertEqual((body["status"], body["scheduleAt"]),
                             ("scheduled", "2030-05-01T09:00:00Z"), body)
        elif rid == "002-delete":
            r = self.call("GET", "/api/v1/campaigns/" + v["CAMPAIGN_002"])
            self.assert_error(r, 404, "NOT_FOUND")
        elif rid == "003-create":
            v["{id}"] = body["id"]
            self.assertEqual((body["status"], body["channel"], body["senderId"],
                              body["tags"], body["scheduleAt"]),
                             ("draft", "whatsapp", "+15550402", ["vip"],
                              "2026-03-25T10:00:00Z"), body)
            ct = v["1f2e3d4c-5b6a-7980-a1b2-c3d4e5f60718"]
            self.assertEqual(body["recipientVariables"], {ct: {"1": "Asha"}})
            self.assertEqual(body["templateComponents"][0]["parameters"],
                             [{"type": "text", "text": "{{1}}",
                               "payload": ""}])
        elif rid == "003-recipients":
            self.assertEqual(body["limit"], 50, body)
            ct = v["1f2e3d4c-5b6a-7980-a1b2-c3d4e5f60718"]
            everyone = self.recipients(v["{id}"])
            self.assertEqual(len(everyone), 30)
            mine = [r for r in everyone if r["contactId"] == ct]
            self.assertEqual(mine[0]["variables"]["1"], "Asha", mine)
            others = [r for r in everyone if r["contactId"] != ct]
            self.assertTrue(all(r["variables"]["1"].startswith("friend")
                                for r in others))
        elif rid in ("003-delete", "004-delete"):
            cid = v["{id}"] if rid == "003-delete" else v["CAMPAIGN_004"]
            self.assert_error(self.call("GET", "/api/v1/campaigns/" + cid),
                              404, "NOT_FOUND")
        elif rid == "004-create":
            v["CAMPAIGN_004"] = body["id"]
            self.assertEqual((body["senderId"], body["channel"],
                              body["variableMapping"], body["scheduleAt"]),
                             ("+15550402", "whatsapp",
                              {"1": "name", "2": "discount_code"},
                              "2024-01-01T00:00:00Z"), body)
        elif rid == "004-update":
            self.assertEqual(body["name"], "New Year Sale (EU)")
        elif rid == "004-recipients":
            self.assertEqual(body["total"], "40", body)
            self.assertTrue(all(r["status"] == "queued"
                                for r in body["items"]))

    def test_replay(self):
        # In order, stopping at the first failure: later requests use what
        # earlier ones made.
        for req in self.fixture["requests"]:
            rid = req["id"]
            args = self.command(req["curl"])
            bad_args, field = self.misspelt(args)
            if bad_args is not None:
                before = self.campaign_count()
                status, body = self.curl(bad_args)
                self.assertEqual(status, 400, "%s with %s misspelt: %s" % (
                    rid, field, body))
                self.assertEqual(body["error"], "invalid_request", body)
                self.assertEqual(body["field"], field, body)
                self.assertEqual(self.campaign_count(), before, rid)
            status, body = self.curl(args)
            self.assertEqual(status, req["status"], "%s: %s" % (rid, body))
            if status == 204:
                self.assertIsNone(body, rid)
            try:
                self.check(rid, body)
            except AssertionError as e:
                raise AssertionError("%s: %s" % (rid, e)) from e


if __name__ == "__main__":
    sys.exit(harness.main(__doc__, [
        RestGatewayTest, KeyLimitRestTest, StrictJsonTest, SeedSpellingTest,
        UploadTest, ProvidersRestTest, SeedReplayTest]))
