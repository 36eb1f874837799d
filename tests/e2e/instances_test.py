#!/usr/bin/python3
"""campaignd instances sharing one PostgreSQL database, end to end.

Real campaignd processes on one database (--engine postgres only), sending
through the `webhook` provider to a fake receiver that de-duplicates on
webhook-id (providers_test.FakeVendors, Standard Webhooks checked):

  * three instances; the instance that sends a campaign is killed -9 with
    its window of requests unanswered, then the next one that sends it:
    the last completes it, every recipient reaches the receiver under
    exactly one webhook-id, and the counters add up;
  * two instances killed in turn, each restarted before the other dies;
  * a tier_1k sender (10 a second) with a campaign started on each of two
    instances: no second at the receiver sees more than 10 of them;
  * PostgreSQL stopped while two instances send, with messages out, for
    longer than the lease ttl: both answer UNAVAILABLE meanwhile, and once
    it is back the campaign completes, each recipient sent once;
  * a campaign watched and cancelled on the instance that does not send it:
    the watch ends only once the sender has skipped what was queued.

Same command line as e2e_test.py (harness.main).
"""

import os
import tempfile
import threading
import time

import grpc

import harness
from harness import http_request, pb
from providers_test import WEBHOOK_SECRET, FakeVendors, wait_until


class InstancesTest(harness.E2ECase):
    """Instances on one database, killed while they send."""

    IN_FLIGHT = 16     # the webhook provider's max_in_flight
    BATCH = 50
    LEASE_TTL = "3s"   # takeovers within seconds

    def setUp(self):
        if harness.engine() != "postgres":
            self.skipTest("PostgreSQL only (--engine postgres)")
        self.fake = FakeVendors()
        threading.Thread(target=self.fake.serve_forever, daemon=True).start()
        self.servers = []
        self.md = harness.bearer(harness.BOOTSTRAP_KEY)
        name = "instances-" + self._testMethodName
        self.dir = tempfile.mkdtemp(prefix=name + "-", dir=harness.RUN_DIR)
        self.db = harness.new_db(name)
        secret = os.path.join(self.dir, "wh")
        with open(secret, "w") as f:
            f.write(WEBHOOK_SECRET + "\n")
        self.config_path = os.path.join(self.dir, "campaignd.toml")
        with open(self.config_path, "w") as f:
            f.write("""
receipt_timeout = "1s"
lease_ttl = "%(ttl)s"

[[providers]]
name = "hooks"
type = "webhook"
url = "http://127.0.0.1:%(port)d/hook"
secret = "file:%(secret)s"
max_in_flight = %(n)d
# Held requests must not time out while the test looks at them.
timeout = "60s"
""" % {"ttl": self.LEASE_TTL, "port": self.fake.server_address[1],
       "secret": secret, "n": self.IN_FLIGHT})

    def tearDown(self):
        self.fake.release.set()
        for srv in self.servers:
            srv.kill()
        self.fake.shutdown()
        self.fake.server_close()

    # -- helpers

    def start(self, name):
        srv = harness.CampaignD(
            name, self.db, harness.BOOTSTRAP_KEY,
            ["--key-rate", "0", "--config", self.config_path])
        self.servers.append(srv)
        return srv.start()

    def campaigns(self, srv):
        return pb["campaign_grpc"].CampaignServiceStub(srv.channel)

    def register_sender(self, srv, sender_id, tier):
        pb["sender_grpc"].SenderServiceStub(srv.channel).RegisterSender(
            pb["sender"].RegisterSenderRequest(
                sender_id=sender_id, channel=pb["common"].sms,
                provider="hooks", tier=tier),
            metadata=self.md, timeout=harness.RPC_TIMEOUT)

    def create(self, srv, sender_id, count, first=5000000):
        """A campaign of `count` recipients, created and filled through
        `srv`: (id, addresses)."""
        c = self.campaigns(srv).CreateCampaign(
            pb["campaign"].CreateCampaignRequest(
                name="instances", channel=pb["common"].sms,
                sender_id=sender_id, body="Hi {{name}}",
                batch_size=self.BATCH),
            metadata=self.md, timeout=harness.RPC_TIMEOUT)
        addresses = ["+1202%07d" % (first + i) for i in range(count)]
        rows = "phone,name\n" + "".join(
            "%s,n%d\n" % (a, i) for i, a in enumerate(addresses))
        req = pb["campaign"].ImportRecipientsRequest
        imported = self.campaigns(srv).ImportRecipients(iter([
            req(campaign_id=c.id, format=req.csv, default_region="US"),
            req(csv_chunk=rows.encode())]), metadata=self.md, timeout=60)
        self.assertEqual(imported.imported, count, imported)
        return c.id, addresses

    def start_campaign(self, srv, cid):
        self.campaigns(srv).StartCampaign(
            pb["campaign"].StartCampaignRequest(id=cid), metadata=self.md,
            timeout=harness.RPC_TIMEOUT)

    def campaign(self, srv, cid):
        return self.campaigns(srv).GetCampaign(
            pb["campaign"].GetCampaignRequest(id=cid), metadata=self.md,
            timeout=harness.RPC_TIMEOUT)

    def start_with_window_held(self, srv, cid, held):
        """Starts `cid` through `srv` with the receiver holding its answers
        from request `held` on; returns once the sender's window is full of
        held requests."""
        self.fake.hold("webhook", held)
        self.start_campaign(srv, cid)
        wait_until(self, lambda: "%d held requests (held: %d)" % (
            self.IN_FLIGHT, self.fake.held("webhook")),
            lambda: self.fake.held("webhook") >= self.IN_FLIGHT, timeout=60)

    @staticmethod
    def handed(srv):
        """Messages `srv` handed to the hooks provider so far (its
        /metrics), whatever their outcome."""
        r = http_request("GET", "http://127.0.0.1:%d/metrics" % srv.http_port)
        total = 0.0
        for line in r.raw.decode().splitlines():
            if (line.startswith("campaignd_messages_total{") and
                    'provider="hooks"' in line):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def requests(self):
        return self.fake.entries("webhook")

    def kill_the_sender(self, live, held):
        """Holds the receiver's answers from request `held` on, waits until
        the instance sending the campaign has its window full of them, and
        kills it -9; returns it. Requests held are answered once released
        (into a dead socket for the killed one's)."""
        self.rounds = getattr(self, "rounds", 0) + 1
        self.fake.set_epoch(self.rounds)  # tags this round's requests
        self.fake.hold("webhook", held)

        def held_now():
            return sum(1 for e in self.requests()
                       if e["held"] and e["epoch"] == self.rounds)
        wait_until(self, lambda: "%d held requests (held: %d)" % (
            self.IN_FLIGHT, held_now()),
            lambda: held_now() >= self.IN_FLIGHT, timeout=60)
        # Only the owner hands messages over: the one whose count moved.
        senders = [s for s in live if self.handed(s) > 0]
        self.assertTrue(senders, "no instance handed messages to hooks")
        owner = max(senders, key=self.handed)
        owner.kill()  # SIGKILL
        # max_in_flight bounds what it had at the receiver at once.
        self.assertEqual(held_now(), self.IN_FLIGHT)
        self.fake.release.set()
        return owner

    def check_each_once(self, srv, cid, addresses):
        """`cid` completes; every recipient reached the receiver, each under
        one webhook-id, and the counters and rows agree."""
        last = []

        def completed():
            try:
                last[:] = [self.campaign(srv, cid)]
            except grpc.RpcError as e:
                # Reconnecting to a database that was away: asked again.
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                return False
            return last[0].status == pb["campaign"].Campaign.completed
        wait_until(self, lambda: "completed: %s" % last, completed,
                   timeout=120)
        st = last[0].stats
        self.assertEqual(st.total, len(addresses))
        self.assertEqual(st.sent, len(addresses), st)
        self.assertEqual(st.queued + st.failed + st.skipped, 0, st)
        ids = {}
        for e in self.requests():
            ids.setdefault(e["body"]["to"], set()).add(e["webhook_id"])
        mine = {a: ids.get(a, set()) for a in addresses}
        self.assertEqual([a for a, s in mine.items() if not s], [],
                         "recipients that never reached the receiver")
        self.assertEqual({a: s for a, s in mine.items() if len(s) > 1}, {},
                         "recipients sent under more than one webhook-id")
        self.assertEqual(self.fake.problems, [])
        statuses = {}
        token = ""
        while True:
            page = self.campaigns(srv).ListRecipients(
                pb["campaign"].ListRecipientsRequest(
                    campaign_id=cid, limit=100, page_token=token),
                metadata=self.md, timeout=harness.RPC_TIMEOUT)
            for r in page.items:
                self.assertNotIn(r.address, statuses)
                statuses[r.address] = r.status
            if not page.has_more:
                break
            token = page.next_page_token
        self.assertEqual(set(statuses), set(addresses))
        self.assertEqual(
            [a for a, s in statuses.items()
             if s != pb["campaign"].Recipient.sent], [])

    # -- tests

    def test_three_instances_lose_two_senders_and_finish(self):
        count = 1500
        live = [self.start("inst-%d" % i) for i in range(3)]
        self.register_sender(live[0], "+15550700",
                             pb["sender"].Sender.unlimited)
        cid, addresses = self.create(live[0], "+15550700", count)
        self.start_campaign(live[1], cid)
        for held in (300, 800):
            dead = self.kill_the_sender(live, held)
            live.remove(dead)
        self.assertEqual(len(live), 1)
        self.check_each_once(live[0], cid, addresses)

    def test_two_instances_killed_in_turn(self):
        count = 1200
        a, b = self.start("inst-a"), self.start("inst-b")
        self.register_sender(a, "+15550701", pb["sender"].Sender.unlimited)
        cid, addresses = self.create(a, "+15550701", count)
        self.start_campaign(a, cid)
        live = [a, b]
        for i, held in enumerate((300, 700)):
            dead = self.kill_the_sender(live, held)
            live.remove(dead)
            # Back (a new instance), before the other one dies.
            live.append(self.start("inst-%s-%d" % (dead.name[-1], i)))
        self.check_each_once(live[0], cid, addresses)

    def test_a_senders_tier_holds_across_instances(self):
        count = 25  # each campaign: 5 s at the tier together
        a, b = self.start("tier-a"), self.start("tier-b")
        self.register_sender(a, "+15550702", pb["sender"].Sender.tier_1k)
        first, first_addresses = self.create(a, "+15550702", count)
        second, second_addresses = self.create(b, "+15550702", count,
                                               first=6000000)
        self.start_campaign(a, first)
        self.start_campaign(b, second)
        self.check_each_once(a, first, first_addresses)
        self.check_each_once(b, second, second_addresses)
        times = sorted(e["at"] for e in self.requests())
        self.assertEqual(len(times), 2 * count)
        # Any 11 in a row span a second or more (less 50 ms for the way
        # from the engine's permit to the receiver on a loaded machine;
        # an instance with a bucket of its own would show half a second).
        tightest = min(times[i + 10] - times[i]
                       for i in range(len(times) - 10))
        self.assertGreaterEqual(tightest, 0.95)

    def test_postgresql_stopped_while_two_instances_send(self):
        count = 1200
        a, b = self.start("pgr-a"), self.start("pgr-b")
        self.register_sender(a, "+15550703", pb["sender"].Sender.unlimited)
        cid, addresses = self.create(a, "+15550703", count)
        self.start_with_window_held(b, cid, 400)
        harness.PG.stop()
        try:
            for srv in (a, b):
                with self.assertRaises(grpc.RpcError) as refused:
                    self.campaign(srv, cid)
                self.assertEqual(refused.exception.code(),
                                 grpc.StatusCode.UNAVAILABLE,
                                 refused.exception.details())
            # The answers come while the database is away, and the leases
            # (3 s) lapse: whoever holds the campaign afterwards must not
            # send what was answered again under another webhook-id.
            self.fake.release.set()
            time.sleep(5)
        finally:
            harness.PG.start()
        self.check_each_once(a, cid, addresses)

    def test_a_watch_elsewhere_ends_once_the_cancel_has_settled(self):
        count = 600
        a, b = self.start("watch-a"), self.start("watch-b")
        self.register_sender(a, "+15550704", pb["sender"].Sender.unlimited)
        cid, _ = self.create(a, "+15550704", count)
        self.start_with_window_held(a, cid, 100)
        sender = max((a, b), key=self.handed)
        other = b if sender is a else a
        self.assertEqual(self.handed(other), 0)
        campaigns = self.campaigns(other)
        stream = campaigns.WatchCampaign(
            pb["campaign"].WatchCampaignRequest(id=cid, max_rate_hz=50),
            metadata=self.md, timeout=60)
        self.assertEqual(next(stream).status,
                         pb["campaign"].Campaign.sending)
        cancelled = campaigns.CancelCampaign(
            pb["campaign"].CancelCampaignRequest(id=cid), metadata=self.md,
            timeout=harness.RPC_TIMEOUT)
        # Answered at once: the sender still has its window out.
        self.assertEqual(cancelled.status, pb["campaign"].Campaign.cancelled)
        self.assertGreater(cancelled.stats.queued, 0, cancelled.stats)
        self.fake.release.set()
        seen = list(stream)  # to the end of the stream
        self.assertTrue(seen)
        last = seen[-1]
        self.assertEqual(last.status, pb["campaign"].Campaign.cancelled)
        self.assertEqual(last.stats.queued, 0, last.stats)
        self.assertEqual(last.stats.sent + last.stats.skipped, count,
                         last.stats)
        self.assertGreaterEqual(last.stats.sent, 100, last.stats)


if __name__ == "__main__":
    raise SystemExit(harness.main(__doc__, [InstancesTest]))
