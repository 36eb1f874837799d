// storage/postgres/dispatch_store.h with several instances on one database:
// outcomes of disjoint recipients of one campaign recorded on two instances
// at once all count, and each write returns the counters as it left them
// (the campaign's row is locked while they are read and added to); receipts
// on one instance while the other pauses, resumes and cancels the campaign
// neither deadlock nor lose a counter; the same receipts on both instances
// count once; a cancel skips more than a chunk of recipients, and a cut-off
// cancel resumed on both instances at once finishes once. Plus a
// benchmark of outcomes (DISABLED_: run it by name). The contract on one
// instance: tests/conformance/dispatch_store_test.cc.
#include "storage/postgres/dispatch_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
#include "storage/postgres/account_store.h"
#include "storage/postgres/campaign_store.h"
#include "storage/postgres/catalog_store.h"
#include "storage/postgres/database.h"
#include "storage/postgres/ledger.h"
#include "tests/storage/temp_db.h"
#include "tests/support/builders.h"
#include "tests/support/pg_fixture.h"

namespace campaigns::storage::postgres::testing {
namespace {

using storage::test_util::AwaitResult;

// Collects the results of asynchronous writes; Wait blocks until `count`
// have arrived. On std::mutex, which ThreadSanitizer sees.
template <typename T>
class Results {
 public:
  explicit Results(int count) : count_(count) {}
  void Add(absl::StatusOr<T> r) {
    std::lock_guard<std::mutex> lock(mu_);
    got_.push_back(std::move(r));
    if (static_cast<int>(got_.size()) == count_) cv_.notify_all();
  }
  // False if they did not all arrive within `timeout`.
  bool WaitFor(std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [this] {
      return static_cast<int>(got_.size()) >= count_;
    });
  }
  std::vector<absl::StatusOr<T>> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::move(got_);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  const int count_;
  std::vector<absl::StatusOr<T>> got_;
};

class DispatchStoreInstancesTest : public PgTest {
 protected:
  static constexpr int kInstances = 2;

  struct Instance {
    std::unique_ptr<Database> db;
    std::unique_ptr<DispatchStore> dispatch;
  };

  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    for (int i = 0; i < kInstances; ++i) {
      std::unique_ptr<Database> db = OpenDatabase();
      ASSERT_NE(db, nullptr);
      Instance in;
      in.db = std::move(db);
      in.dispatch = std::make_unique<DispatchStore>(in.db.get());
      instances_.push_back(std::move(in));
    }
    AccountStore accounts(db(0));
    absl::StatusOr<AccountWithKey> made =
        AwaitResult<AccountWithKey>([&](Done<AccountWithKey> done) {
          accounts.CreateAccount(
              test_builders::NewAccount(
                  "acme", absl::StrCat(NewId("s"), "-secret-0123456789")),
              {}, std::move(done));
        });
    ASSERT_TRUE(made.ok()) << made.status();
    a_ = made->account.id;
    CatalogStore catalog(db(0));
    ASSERT_TRUE(AwaitResult<Sender>([&](Done<Sender> done) {
                  catalog.RegisterSender(
                      test_builders::NewSender(a_, "+15550100"), {},
                      std::move(done));
                }).ok());
  }

  void TearDown() override { instances_.clear(); }

  Database* db(int i) { return instances_[i].db.get(); }
  DispatchStore& dispatch(int i) { return *instances_[i].dispatch; }

  // `price` per SMS unit and a credit of `credits` (a ledger row).
  void SeedMoney(int64_t price, int64_t credits) {
    absl::Status seeded = db(0)->WriteSync([&](Connection& c) {
      RETURN_IF_ERROR(c.Query("INSERT INTO prices(account_id, channel, "
                              "country, amount) VALUES ($1, 'sms', '', $2)",
                              {a_, absl::StrCat(price)})
                          .status());
      return AppendLedger(c, a_, Transaction::Type::kCredit, credits, "",
                          "test", /*allow_negative=*/false)
          .status();
    });
    ASSERT_TRUE(seeded.ok()) << seeded;
  }

  // A campaign sending to `n` recipients (+1202xxxxxxx, inserted by SQL:
  // an import of many would take long), started through instance 0.
  Campaign MustStartWith(int64_t n) {
    Campaign c;
    c.id = NewId(kCampaignPrefix);
    c.account_id = a_;
    c.name = "Spring sale";
    c.channel = Channel::kSms;
    c.sender_id = "+15550100";
    c.body = "Hi";
    c.created_at = c.updated_at = NowMicros();
    CampaignStore campaigns(db(0));
    absl::StatusOr<Campaign> draft =
        AwaitResult<Campaign>([&](Done<Campaign> done) {
          campaigns.CreateCampaign(c, {}, std::move(done));
        });
    EXPECT_TRUE(draft.ok()) << draft.status();
    if (!draft.ok()) return Campaign{};
    absl::Status seeded = db(0)->WriteSync([&](Connection& conn) {
      const std::string now = Micros(NowMicros());
      RETURN_IF_ERROR(
          conn.Query("INSERT INTO recipients(campaign_seq, address, status, "
                     "created_at, updated_at) SELECT $1, '+1202' || "
                     "lpad(i::text, 7, '0'), 'queued', $3, $3 FROM "
                     "generate_series(1, $2::bigint) AS i",
                     {absl::StrCat(draft->seq), absl::StrCat(n), now})
              .status());
      return conn
          .Query(
              "UPDATE campaigns SET total = total + $2, queued = queued + "
              "$2 WHERE seq = $1",
              {absl::StrCat(draft->seq), absl::StrCat(n)})
          .status();
    });
    EXPECT_TRUE(seeded.ok()) << seeded;
    absl::StatusOr<Campaign> started = Move(0, c.id, CampaignEvent::kStart);
    EXPECT_TRUE(started.ok()) << started.status();
    return started.ok() ? *started : Campaign{};
  }

  absl::StatusOr<Campaign> Move(int instance, const std::string& id,
                                CampaignEvent event) {
    LifecycleChange change;
    change.event = event;
    change.now = NowMicros();
    return AwaitResult<Campaign>([&](Done<Campaign> done) {
      dispatch(instance).TransitionCampaign(a_, id, change, std::move(done));
    });
  }

  // Every queued recipient's seq, in order.
  std::vector<int64_t> QueuedSeqs(const Campaign& c) {
    std::vector<int64_t> seqs;
    int64_t after = 0;
    for (;;) {
      absl::StatusOr<std::vector<Recipient>> got =
          dispatch(0).LeaseRecipients(c, after, 10000);
      EXPECT_TRUE(got.ok()) << got.status();
      if (!got.ok() || got->empty()) return seqs;
      for (const Recipient& r : *got) seqs.push_back(r.seq);
      after = seqs.back();
    }
  }

  // The campaign as stored, its counters checked against its rows: each
  // equals the number of rows in its status, and they add up to total.
  Campaign ExpectCountersMatchRows(const std::string& id) {
    CampaignStore campaigns(db(0));
    absl::StatusOr<Campaign> c = campaigns.GetCampaign(a_, id);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return Campaign{};
    const CampaignStats& s = c->stats;
    EXPECT_EQ(s.total,
              s.queued + s.sent + s.delivered + s.read + s.failed + s.skipped);
    const std::string rows = absl::StrCat(
        "SELECT count(*) FROM recipients WHERE campaign_seq = ", c->seq,
        " AND status = ");
    EXPECT_EQ(s.queued, Count(rows + "'queued'"));
    EXPECT_EQ(s.sent, Count(rows + "'sent'"));
    EXPECT_EQ(s.delivered, Count(rows + "'delivered'"));
    EXPECT_EQ(s.read, Count(rows + "'read'"));
    EXPECT_EQ(s.failed, Count(rows + "'failed'"));
    EXPECT_EQ(s.skipped, Count(rows + "'skipped'"));
    return *c;
  }

  // balance + reserved = credits - debited, over the ledger's rows.
  void ExpectLedgerIdentity() {
    const std::string sum =
        "SELECT COALESCE(sum(amount), 0) FROM transactions WHERE type = ";
    const int64_t credits = Count(sum + "'credit'");
    const int64_t debited = Count(sum + "'debit'");
    EXPECT_EQ(Count("SELECT credits_balance + credits_reserved FROM accounts "
                    "WHERE id = '" +
                    a_ + "'"),
              credits - debited);
  }

  static DispatchOutcome SentOutcome(int64_t seq) {
    DispatchOutcome o;
    o.seq = seq;
    o.status = RecipientStatus::kSent;
    o.provider = "simulator";
    o.provider_message_id = absl::StrCat("m-", seq);
    return o;
  }

  std::vector<Instance> instances_;
  std::string a_;
};

// Batches of disjoint recipients go to both instances at once, so their
// writers read-modify-write the campaign's counters and money at the same
// time. Every outcome counts, the ledger balances, and each write returns
// the counters as its commit left them: ordered, the settled counts it
// returned are 100, 200, ..., all (without the row lock, two writes read
// the same counters and both return their own batch added to them).
TEST_F(DispatchStoreInstancesTest, OutcomesOnTwoInstancesAllCount) {
  SeedMoney(10000, 100000000);
  if (HasFatalFailure()) return;
  constexpr int kRecipients = 4000;
  constexpr int kBatch = 100;
  const Campaign c = MustStartWith(kRecipients);
  ASSERT_EQ(c.stats.queued, kRecipients);
  ASSERT_EQ(c.credits_reserved, int64_t{kRecipients} * 10000);
  const std::vector<int64_t> seqs = QueuedSeqs(c);
  ASSERT_EQ(seqs.size(), static_cast<size_t>(kRecipients));
  constexpr int kBatches = kRecipients / kBatch;
  Results<Campaign> results(kBatches);
  int failed = 0;
  for (int b = 0; b < kBatches; ++b) {
    std::vector<DispatchOutcome> batch;
    for (int i = b * kBatch; i < (b + 1) * kBatch; ++i) {
      DispatchOutcome o = SentOutcome(seqs[i]);
      if (i % 10 == 0) {
        o.status = RecipientStatus::kFailed;
        o.provider_message_id.clear();
        o.error_code = "30003";
        ++failed;
      }
      batch.push_back(std::move(o));
    }
    dispatch(b % kInstances)
        .RecordOutcomes(a_, c.id, std::move(batch),
                        [&results](absl::StatusOr<Campaign> r) {
                          results.Add(std::move(r));
                        });
  }
  ASSERT_TRUE(results.WaitFor(std::chrono::seconds(120)));
  std::vector<int64_t> settled;
  for (const absl::StatusOr<Campaign>& r : results.Take()) {
    ASSERT_TRUE(r.ok()) << r.status();
    settled.push_back(r->stats.sent + r->stats.failed);
    EXPECT_EQ(r->stats.total, kRecipients);
    EXPECT_EQ(r->stats.queued + r->stats.sent + r->stats.failed, kRecipients);
  }
  std::sort(settled.begin(), settled.end());
  std::vector<int64_t> expected;
  for (int b = 1; b <= kBatches; ++b) expected.push_back(int64_t{b} * kBatch);
  EXPECT_EQ(settled, expected);

  const Campaign stored = ExpectCountersMatchRows(c.id);
  EXPECT_EQ(stored.stats.queued, 0);
  EXPECT_EQ(stored.stats.sent, kRecipients - failed);
  EXPECT_EQ(stored.stats.failed, failed);
  EXPECT_EQ(stored.credits_debited, int64_t{kRecipients - failed} * 10000);
  EXPECT_EQ(stored.credits_reserved, 0);
  EXPECT_EQ(
      Count("SELECT credits_reserved FROM accounts WHERE id = '" + a_ + "'"),
      0);
  ExpectLedgerIdentity();
}

// A writer that changes a recipient without the campaign's lock (none
// does; this one stands for a future mistake) while a batch of outcomes
// waits for that row: the batch's update skips the row's new version, finds
// it changed fewer rows than it targeted, and is written again, so no
// outcome is lost (which would send the recipient twice).
TEST_F(DispatchStoreInstancesTest, AnOutcomeWriteThatMissesARowIsWrittenAgain) {
  const Campaign c = MustStartWith(10);
  const std::vector<int64_t> seqs = QueuedSeqs(c);
  ASSERT_EQ(seqs.size(), 10u);
  std::unique_ptr<Connection> rogue = Connect();
  ASSERT_NE(rogue, nullptr);
  const std::string rogue_pid =
      rogue->Query("SELECT pg_backend_pid()").value().Text(0, 0);
  ASSERT_TRUE(rogue->Exec("BEGIN").ok());
  ASSERT_TRUE(rogue
                  ->Query("UPDATE recipients SET updated_at = updated_at + 1 "
                          "WHERE seq = $1",
                          {absl::StrCat(seqs[3])})
                  .ok());
  std::vector<DispatchOutcome> batch;
  for (int64_t seq : seqs) batch.push_back(SentOutcome(seq));
  Results<Campaign> result(1);
  dispatch(0).RecordOutcomes(
      a_, c.id, std::move(batch),
      [&result](absl::StatusOr<Campaign> r) { result.Add(std::move(r)); });
  // Until the write waits for the rogue's row lock.
  const std::string blocked =
      absl::StrCat("SELECT count(*) FROM pg_stat_activity WHERE ", rogue_pid,
                   " = ANY(pg_blocking_pids(pid))");
  for (int i = 0; i < 400 && Count(blocked) == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(25));
  }
  ASSERT_EQ(Count(blocked), 1);
  ASSERT_TRUE(rogue->Exec("COMMIT").ok());
  ASSERT_TRUE(result.WaitFor(std::chrono::seconds(60)));
  std::vector<absl::StatusOr<Campaign>> got = result.Take();
  ASSERT_TRUE(got[0].ok()) << got[0].status();
  EXPECT_EQ(got[0]->stats.sent, 10);
  const Campaign stored = ExpectCountersMatchRows(c.id);
  EXPECT_EQ(stored.stats.sent, 10);
  EXPECT_EQ(stored.stats.queued, 0);
}

// Receipts of a campaign's sent recipients arrive on instance 0 while
// instance 1 pauses and resumes it and then cancels it (skipping the rest
// in chunks). Every write completes (no deadlock: both lock the campaign's
// row before its recipients), and every counter equals its rows after: the
// lifecycle writes, which store the counters they loaded, load them with
// the row locked.
TEST_F(DispatchStoreInstancesTest, ReceiptsRacingACancelLoseNothing) {
  constexpr int kRecipients = 25000;
  constexpr int kSent = 4000;
  constexpr int kBatch = 100;
  const Campaign c = MustStartWith(kRecipients);
  ASSERT_EQ(c.stats.queued, kRecipients);
  const std::vector<int64_t> seqs = QueuedSeqs(c);
  ASSERT_EQ(seqs.size(), static_cast<size_t>(kRecipients));
  std::vector<DispatchOutcome> sent;
  for (int i = 0; i < kSent; ++i) sent.push_back(SentOutcome(seqs[i]));
  ASSERT_TRUE(AwaitResult<Campaign>([&](Done<Campaign> done) {
                dispatch(0).RecordOutcomes(a_, c.id, sent, std::move(done));
              }).ok());

  constexpr int kBatches = kSent / kBatch;
  constexpr int kCycles = 20;
  Results<ReceiptResult> receipts(kBatches);
  Results<Campaign> moves(2 * kCycles + 1);
  for (int b = 0; b < kBatches; ++b) {
    std::vector<ReceiptUpdate> batch;
    for (int i = b * kBatch; i < (b + 1) * kBatch; ++i) {
      ReceiptUpdate r;
      r.provider_message_id = absl::StrCat("m-", seqs[i]);
      r.status =
          i % 2 == 0 ? RecipientStatus::kDelivered : RecipientStatus::kRead;
      r.occurred_at = NowMicros();
      batch.push_back(std::move(r));
    }
    dispatch(0).ApplyReceipts(a_, std::move(batch),
                              [&receipts](absl::StatusOr<ReceiptResult> r) {
                                receipts.Add(std::move(r));
                              });
    if (b < kCycles) {
      for (CampaignEvent e : {CampaignEvent::kPause, CampaignEvent::kResume}) {
        LifecycleChange change;
        change.event = e;
        change.now = NowMicros();
        dispatch(1).TransitionCampaign(
            a_, c.id, change,
            [&moves](absl::StatusOr<Campaign> r) { moves.Add(std::move(r)); });
      }
    }
    if (b == kCycles) {
      LifecycleChange cancel;
      cancel.event = CampaignEvent::kCancel;
      cancel.now = NowMicros();
      dispatch(1).TransitionCampaign(
          a_, c.id, cancel,
          [&moves](absl::StatusOr<Campaign> r) { moves.Add(std::move(r)); });
    }
  }
  ASSERT_TRUE(receipts.WaitFor(std::chrono::seconds(120)));
  ASSERT_TRUE(moves.WaitFor(std::chrono::seconds(120)));
  int64_t matched = 0;
  for (const absl::StatusOr<ReceiptResult>& r : receipts.Take()) {
    ASSERT_TRUE(r.ok()) << r.status();
    matched += r->matched;
  }
  EXPECT_EQ(matched, kSent);
  std::vector<absl::StatusOr<Campaign>> done = moves.Take();
  for (const absl::StatusOr<Campaign>& r : done) {
    ASSERT_TRUE(r.ok()) << r.status();
  }
  const Campaign stored = ExpectCountersMatchRows(c.id);
  EXPECT_EQ(stored.status, CampaignStatus::kCancelled);
  EXPECT_EQ(stored.stats.queued, 0);
  EXPECT_EQ(stored.stats.skipped, kRecipients - kSent);
  EXPECT_EQ(stored.stats.delivered, kSent / 2);
  EXPECT_EQ(stored.stats.read, kSent / 2);
  EXPECT_EQ(stored.stats.sent, 0);
}

// A webhook retried to the other instance: the same receipts on both at
// once count once (the second finds them applied: ignored).
TEST_F(DispatchStoreInstancesTest, TheSameReceiptsOnBothInstancesCountOnce) {
  constexpr int kSent = 2000;
  constexpr int kBatch = 100;
  const Campaign c = MustStartWith(kSent);
  const std::vector<int64_t> seqs = QueuedSeqs(c);
  ASSERT_EQ(seqs.size(), static_cast<size_t>(kSent));
  std::vector<DispatchOutcome> sent;
  for (int64_t seq : seqs) sent.push_back(SentOutcome(seq));
  ASSERT_TRUE(AwaitResult<Campaign>([&](Done<Campaign> done) {
                dispatch(0).RecordOutcomes(a_, c.id, sent, std::move(done));
              }).ok());
  constexpr int kBatches = kSent / kBatch;
  Results<ReceiptResult> results(kInstances * kBatches);
  for (int b = 0; b < kBatches; ++b) {
    std::vector<ReceiptUpdate> batch;
    for (int i = b * kBatch; i < (b + 1) * kBatch; ++i) {
      ReceiptUpdate r;
      r.provider_message_id = absl::StrCat("m-", seqs[i]);
      r.status = RecipientStatus::kDelivered;
      r.occurred_at = NowMicros();
      batch.push_back(std::move(r));
    }
    for (int i = 0; i < kInstances; ++i) {
      dispatch(i).ApplyReceipts(a_, batch,
                                [&results](absl::StatusOr<ReceiptResult> r) {
                                  results.Add(std::move(r));
                                });
    }
  }
  ASSERT_TRUE(results.WaitFor(std::chrono::seconds(120)));
  int64_t matched = 0;
  int64_t ignored = 0;
  for (const absl::StatusOr<ReceiptResult>& r : results.Take()) {
    ASSERT_TRUE(r.ok()) << r.status();
    matched += r->matched;
    ignored += r->ignored;
  }
  EXPECT_EQ(matched, kSent);
  EXPECT_EQ(ignored, kSent);
  const Campaign stored = ExpectCountersMatchRows(c.id);
  EXPECT_EQ(stored.stats.delivered, kSent);
  EXPECT_EQ(stored.stats.sent, 0);
}

// More than a chunk of recipients: the cancel skips them all, chunk by
// chunk, before its callback. A cancel cut off (its status stored, its
// recipients still queued) is finished by ResumeCancellations, here on
// both instances at once: once.
TEST_F(DispatchStoreInstancesTest, CancelSkipsInChunksAndResumesOnce) {
  constexpr int kRecipients = 2 * DispatchStore::kSkipChunkRows + 500;
  const Campaign c = MustStartWith(kRecipients);
  absl::StatusOr<Campaign> cancelled = Move(1, c.id, CampaignEvent::kCancel);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->stats.queued, 0);
  EXPECT_EQ(cancelled->stats.skipped, kRecipients);
  Campaign stored = ExpectCountersMatchRows(c.id);
  EXPECT_EQ(stored.stats.skipped, kRecipients);

  // Cut off: cancelled, and every recipient still queued.
  const Campaign cut = MustStartWith(kRecipients);
  std::unique_ptr<Connection> conn = Connect();
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Query("UPDATE campaigns SET status = 'cancelled' WHERE "
                          "seq = $1",
                          {absl::StrCat(cut.seq)})
                  .ok());
  for (int i = 0; i < kInstances; ++i) {
    absl::StatusOr<int> resumed = dispatch(i).ResumeCancellations();
    ASSERT_TRUE(resumed.ok()) << resumed.status();
    // The second may find the first's chain done already.
    if (i == 0) {
      EXPECT_EQ(*resumed, 1);
    }
    EXPECT_LE(*resumed, 1);
  }
  const std::string queued =
      absl::StrCat("SELECT queued FROM campaigns WHERE seq = ", cut.seq);
  for (int i = 0; i < 3000 && Count(queued) != 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  for (int i = 0; i < kInstances; ++i) db(i)->Flush();
  stored = ExpectCountersMatchRows(cut.id);
  EXPECT_EQ(stored.stats.queued, 0);
  EXPECT_EQ(stored.stats.skipped, kRecipients);
  absl::StatusOr<int> again = dispatch(0).ResumeCancellations();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, 0);
}

// A chunk of a cancel's skips that fails to commit is tried again later:
// the campaign is cancelled already, and its queued recipients are all
// skipped once writes succeed, without waiting for a restart.
TEST_F(DispatchStoreInstancesTest, AFailedCancelChunkIsTriedAgainLater) {
  const Campaign c = MustStartWith(DispatchStore::kSkipChunkRows + 10);
  std::atomic<int> commits{0};
  std::atomic<int> fail_at{-1};
  DatabaseOptions options;
  options.dsn = Dsn();
  options.retry_after = absl::Milliseconds(50);
  options.before_commit = [&](Connection& conn) {
    if (++commits == fail_at.load()) {
      (void)conn.Exec("SELECT 1/0");  // the COMMIT becomes a ROLLBACK
    }
  };
  absl::StatusOr<std::unique_ptr<Database>> faulty = Database::Open(options);
  ASSERT_TRUE(faulty.ok()) << faulty.status();
  DispatchStore store(faulty->get());
  fail_at = commits.load() + 2;  // the cancel itself, then its first chunk
  LifecycleChange change;
  change.event = CampaignEvent::kCancel;
  change.now = NowMicros();
  absl::StatusOr<Campaign> cancelled =
      AwaitResult<Campaign>([&](Done<Campaign> done) {
        store.TransitionCampaign(a_, c.id, change, std::move(done));
      });
  EXPECT_FALSE(cancelled.ok());
  const std::string queued =
      absl::StrCat("SELECT queued FROM campaigns WHERE seq = ", c.seq);
  for (int i = 0; i < 600 && Count(queued) != 0; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  (*faulty)->Flush();
  const Campaign stored = ExpectCountersMatchRows(c.id);
  EXPECT_EQ(stored.status, CampaignStatus::kCancelled);
  EXPECT_EQ(stored.stats.queued, 0);
  EXPECT_EQ(stored.stats.skipped, DispatchStore::kSkipChunkRows + 10);
}

TEST_F(DispatchStoreInstancesTest, NothingIsLeasedWhileTheGateIsShut) {
  const Campaign c = MustStartWith(10);
  std::atomic<bool> open{false};
  DispatchStore gated(db(0), [&]() -> absl::Status {
    if (open.load()) return absl::OkStatus();
    return absl::UnavailableError("the instance lock is not held");
  });
  absl::StatusOr<std::vector<Recipient>> leased =
      gated.LeaseRecipients(c, 0, 100);
  EXPECT_EQ(leased.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(leased.status().message(), "the instance lock is not held");
  open = true;
  leased = gated.LeaseRecipients(c, 0, 100);
  ASSERT_TRUE(leased.ok()) << leased.status();
  EXPECT_EQ(leased->size(), 10u);
}

// Outcomes of 200,000 recipients in batches of 1,000 (each one UPDATE of
// them all), queued at once on one instance; prints rows/s.
TEST_F(DispatchStoreInstancesTest, DISABLED_BenchmarkRecordOutcomes) {
  constexpr int kRecipients = 200000;
  constexpr int kBatch = 1000;
  const Campaign c = MustStartWith(kRecipients);
  const std::vector<int64_t> seqs = QueuedSeqs(c);
  ASSERT_EQ(seqs.size(), static_cast<size_t>(kRecipients));
  constexpr int kBatches = kRecipients / kBatch;
  std::vector<std::vector<DispatchOutcome>> batches(kBatches);
  for (int i = 0; i < kRecipients; ++i) {
    batches[i / kBatch].push_back(SentOutcome(seqs[i]));
  }
  Results<Campaign> results(kBatches);
  const absl::Time start = absl::Now();
  for (std::vector<DispatchOutcome>& batch : batches) {
    dispatch(0).RecordOutcomes(
        a_, c.id, std::move(batch),
        [&results](absl::StatusOr<Campaign> r) { results.Add(std::move(r)); });
  }
  ASSERT_TRUE(results.WaitFor(std::chrono::seconds(600)));
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  for (const absl::StatusOr<Campaign>& r : results.Take()) {
    ASSERT_TRUE(r.ok()) << r.status();
  }
  std::printf("RecordOutcomes: %d rows in %.2f s: %.0f rows/s\n", kRecipients,
              seconds, kRecipients / seconds);
  const Campaign stored = ExpectCountersMatchRows(c.id);
  EXPECT_EQ(stored.stats.sent, kRecipients);
}

}  // namespace
}  // namespace campaigns::storage::postgres::testing
