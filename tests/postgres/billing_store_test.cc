// storage/postgres/billing_store.h with several instances on one database:
// credits added on every instance at once all land, once each, and every
// ledger row keeps balance + reserved = credits - debited (the account's
// row is locked while its money moves), also while campaigns are started
// on both; one request id given to every instance at once credits once
// (its advisory lock); and an estimate read while another instance
// prepares a 50,000-recipient campaign's costs is either not ready or
// right, never half counted (one snapshot). The contract on one instance:
// tests/conformance/billing_repository_test.cc.
#include "storage/postgres/billing_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/barrier.h"
#include "server/domain/billing.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
#include "storage/postgres/account_store.h"
#include "storage/postgres/campaign_store.h"
#include "storage/postgres/catalog_store.h"
#include "storage/postgres/contact_store.h"
#include "storage/postgres/database.h"
#include "tests/storage/temp_db.h"
#include "tests/support/builders.h"
#include "tests/support/pg_fixture.h"

namespace campaigns::storage::postgres::testing {
namespace {

using storage::test_util::AwaitResult;
using storage::test_util::AwaitStatus;

constexpr int kBillingInstances = 2;

// Counts down to zero once; Wait blocks until it has (on std::mutex, which
// ThreadSanitizer sees).
class BillingLatch {
 public:
  explicit BillingLatch(int count) : count_(count) {}
  void CountDown() {
    std::lock_guard<std::mutex> lock(mu_);
    if (--count_ == 0) cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return count_ <= 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_;
};

// Every ledger row: balance + reserved = credits so far - debits so far.
constexpr char kLedgerRowsOff[] =
    "SELECT count(*) FROM (SELECT balance_after + reserved_after AS held, "
    "sum(CASE type WHEN 'credit' THEN amount WHEN 'debit' THEN -amount ELSE 0 "
    "END) OVER (ORDER BY seq) AS net FROM transactions) AS t WHERE held <> "
    "net";

class BillingStoreInstancesTest : public PgTest {
 protected:
  // One campaignd's view of the database: its own Database and stores.
  struct Instance {
    std::unique_ptr<Database> db;
    std::unique_ptr<BillingStore> billing;
    std::unique_ptr<CampaignStore> campaigns;
  };

  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    for (int i = 0; i < kBillingInstances; ++i) {
      std::unique_ptr<Database> db = OpenDatabase();
      ASSERT_NE(db, nullptr);
      Instance in;
      in.db = std::move(db);
      in.billing = std::make_unique<BillingStore>(in.db.get());
      in.campaigns = std::make_unique<CampaignStore>(in.db.get());
      instances_.push_back(std::move(in));
    }
    AccountStore accounts(instances_[0].db.get());
    absl::StatusOr<AccountWithKey> made =
        AwaitResult<AccountWithKey>([&](Done<AccountWithKey> done) {
          accounts.CreateAccount(
              test_builders::NewAccount(
                  "acme", absl::StrCat(NewId("s"), "-secret-0123456789")),
              {}, std::move(done));
        });
    ASSERT_TRUE(made.ok()) << made.status();
    a_ = made->account.id;
    CatalogStore catalog(instances_[0].db.get());
    ASSERT_TRUE(AwaitResult<Sender>([&](Done<Sender> done) {
                  catalog.RegisterSender(
                      test_builders::NewSender(a_, "+15550100"), {},
                      std::move(done));
                }).ok());
  }

  void TearDown() override { instances_.clear(); }

  BillingStore& billing(int i) { return *instances_[i].billing; }

  void MustSetPrices(std::vector<Price> prices) {
    absl::StatusOr<std::vector<Price>> normalized =
        NormalizePrices(std::move(prices));
    ASSERT_TRUE(normalized.ok()) << normalized.status();
    ASSERT_TRUE(
        AwaitResult<std::vector<Price>>([&](Done<std::vector<Price>> done) {
          billing(0).SetPrices(a_, *normalized, std::move(done));
        }).ok());
  }

  Account GetAccount(int i) {
    absl::StatusOr<Account> a =
        AccountStore(instances_[i].db.get()).GetAccount(a_);
    EXPECT_TRUE(a.ok()) << a.status();
    return a.ok() ? *a : Account{};
  }

  Campaign NewCampaign() {
    Campaign c;
    c.id = NewId(kCampaignPrefix);
    c.account_id = a_;
    c.name = "Spring sale";
    c.channel = Channel::kSms;
    c.sender_id = "+15550100";
    c.body = "Hi {{name}}";
    c.created_at = c.updated_at = NowMicros();
    return c;
  }

  // `n` sms contacts of the account tagged "vip", written by hand (as fast
  // as an import would); named "n".
  void InsertContacts(int n) {
    std::unique_ptr<Connection> c = Connect();
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(
        c->Query("INSERT INTO contacts(id, account_id, channel, address, "
                 "attributes, created_at, updated_at) SELECT 'ct_b' || i, $1, "
                 "'sms', '+1202' || (5000000 + i), '{\"name\":\"n\"}', 0, 0 "
                 "FROM generate_series(1, $2::int) AS i",
                 {a_, absl::StrCat(n)})
            .ok());
    ASSERT_TRUE(c->Query("INSERT INTO contact_tags(account_id, tag, "
                         "contact_seq) SELECT $1, 'vip', seq FROM contacts "
                         "WHERE account_id = $1",
                         {a_})
                    .ok());
    // As autovacuum would have by the time 50,000 contacts are used: without
    // statistics the planner materialises them by nested loops, for minutes.
    ASSERT_TRUE(c->Exec("ANALYZE contacts; ANALYZE contact_tags").ok());
  }

  std::vector<Instance> instances_;
  std::string a_;
};

// Each instance queues 40 credits of distinct amounts at once, so both
// writers move the account's money at the same time: every credit lands
// once, and every ledger row adds up.
TEST_F(BillingStoreInstancesTest, CreditsOnEveryInstanceAllLandOnce) {
  constexpr int kCreditsPerInstance = 40;
  absl::Barrier* start = new absl::Barrier(kBillingInstances);
  std::mutex mu;
  int failed = 0;
  int64_t added = 0;
  std::vector<std::thread> threads;
  for (int i = 0; i < kBillingInstances; ++i) {
    threads.emplace_back([&, i] {
      if (start->Block()) delete start;
      BillingLatch pending(kCreditsPerInstance);
      for (int k = 0; k < kCreditsPerInstance; ++k) {
        const int64_t amount = (i + 1) * 1000000 + k + 1;
        billing(i).AddCredits(a_, amount, absl::StrCat("top-up ", i, "/", k),
                              {}, [&, amount](absl::StatusOr<Account> a) {
                                {
                                  std::lock_guard<std::mutex> lock(mu);
                                  if (a.ok()) {
                                    added += amount;
                                  } else {
                                    ++failed;
                                    ADD_FAILURE() << a.status();
                                  }
                                }
                                pending.CountDown();
                              });
      }
      pending.Wait();
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failed, 0);
  const Account a = GetAccount(1);
  EXPECT_EQ(a.credits_balance, added);
  EXPECT_EQ(a.credits_reserved, 0);
  EXPECT_EQ(Count("SELECT count(*) FROM transactions WHERE type = 'credit'"),
            kBillingInstances * kCreditsPerInstance);
  EXPECT_EQ(Count("SELECT count(DISTINCT description) FROM transactions"),
            kBillingInstances * kCreditsPerInstance);
  EXPECT_EQ(Count("SELECT COALESCE(sum(amount), 0) FROM transactions"), added);
  EXPECT_EQ(Count(kLedgerRowsOff), 0);
}

// Credits on both instances while both create and start campaigns of
// 30,000 each: whatever starts, the account, its campaigns and every ledger
// row agree.
TEST_F(BillingStoreInstancesTest,
       CreditsAndStartsOnEveryInstanceKeepTheLedger) {
  constexpr int kCreditsPerInstance = 20;
  constexpr int kStartsPerInstance = 6;
  MustSetPrices({Price{Channel::kSms, "", 10000}});
  if (HasFatalFailure()) return;
  ContactStore contacts(instances_[0].db.get());
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    Contact c;
    c.id = NewId(kContactPrefix);
    c.account_id = a_;
    c.channel = Channel::kSms;
    c.address = absl::StrCat("+1202555", 1000 + i);
    c.attributes = {{"name", "n"}};
    c.created_at = c.updated_at = NowMicros();
    ASSERT_TRUE(AwaitResult<Contact>([&](Done<Contact> d) {
                  contacts.CreateContact(c, {}, std::move(d));
                }).ok());
    ids.push_back(c.id);
  }
  absl::Barrier* start = new absl::Barrier(kBillingInstances);
  std::mutex mu;
  int started = 0;
  int64_t added = 0;
  std::vector<std::thread> threads;
  for (int i = 0; i < kBillingInstances; ++i) {
    threads.emplace_back([&, i] {
      if (start->Block()) delete start;
      BillingLatch pending(kCreditsPerInstance + kStartsPerInstance);
      for (int k = 0; k < kCreditsPerInstance + kStartsPerInstance; ++k) {
        if (k % 4 == 3 && k / 4 < kStartsPerInstance) {
          Campaign c = NewCampaign();
          c.contact_ids = ids;
          LifecycleChange change;
          change.event = CampaignEvent::kStart;
          change.now = NowMicros();
          instances_[i].campaigns->CreateCampaign(
              c, {},
              [&](absl::StatusOr<Campaign> out) {
                {
                  std::lock_guard<std::mutex> lock(mu);
                  if (out.ok()) {
                    ++started;
                    EXPECT_EQ(out->credits_reserved, 30000);
                  } else {
                    EXPECT_EQ(errors::ReasonOf(out.status()),
                              "INSUFFICIENT_CREDITS")
                        << out.status();
                  }
                }
                pending.CountDown();
              },
              change);
          continue;
        }
        billing(i).AddCredits(a_, 10000, "top-up", {},
                              [&](absl::StatusOr<Account> a) {
                                {
                                  std::lock_guard<std::mutex> lock(mu);
                                  EXPECT_TRUE(a.ok()) << a.status();
                                  if (a.ok()) added += 10000;
                                }
                                pending.CountDown();
                              });
      }
      pending.Wait();
    });
  }
  for (std::thread& t : threads) t.join();
  const Account a = GetAccount(1);
  EXPECT_EQ(a.credits_reserved, started * int64_t{30000});
  EXPECT_EQ(a.credits_balance + a.credits_reserved, added);
  EXPECT_EQ(Count(absl::StrCat("SELECT COALESCE(sum(credits_reserved), 0) "
                               "FROM campaigns WHERE account_id = '",
                               a_, "'")),
            a.credits_reserved);
  EXPECT_EQ(Count("SELECT count(*) FROM transactions WHERE type = "
                  "'reservation'"),
            started);
  EXPECT_EQ(Count(kLedgerRowsOff), 0);
}

// Every instance is given the same 20 requests (request id and body) at
// once: each credits once, and every answer is OK with the first result.
TEST_F(BillingStoreInstancesTest, OneRequestIdOnEveryInstanceCreditsOnce) {
  constexpr int kRequests = 20;
  absl::Barrier* start = new absl::Barrier(kBillingInstances);
  std::mutex mu;
  int ok = 0;
  std::vector<std::thread> threads;
  for (int i = 0; i < kBillingInstances; ++i) {
    threads.emplace_back([&, i] {
      if (start->Block()) delete start;
      BillingLatch pending(kRequests);
      for (int k = 0; k < kRequests; ++k) {
        billing(i).AddCredits(
            a_, 1000, "top-up",
            IdempotencyKey{"AddCredits", absl::StrCat("topup-", k), "h"},
            [&](absl::StatusOr<Account> a) {
              {
                std::lock_guard<std::mutex> lock(mu);
                EXPECT_TRUE(a.ok()) << a.status();
                if (a.ok()) ++ok;
              }
              pending.CountDown();
            });
      }
      pending.Wait();
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok, kBillingInstances * kRequests);
  EXPECT_EQ(GetAccount(0).credits_balance, kRequests * 1000);
  EXPECT_EQ(Count("SELECT count(*) FROM transactions WHERE type = 'credit'"),
            kRequests);
  EXPECT_EQ(Count("SELECT count(*) FROM idempotency_keys WHERE method = "
                  "'AddCredits'"),
            kRequests);
  EXPECT_EQ(Count(kLedgerRowsOff), 0);
}

// A draft whose audience is 50,000 contacts has its costs prepared by one
// instance (materialised, then counted in chunks) while readers on both
// instances ask for its estimate over and over: each answer is either not
// ready, the estimate of the campaign before it had recipients, or the
// final one; never rows counted mixed with rows not yet counted.
TEST_F(BillingStoreInstancesTest, EstimatesReadWhileCostsArePreparedAreRight) {
  constexpr int kContacts = 50000;
  constexpr int kReaders = 4;
  // Rows without a country (not yet counted) would cost 2000, not 1000.
  MustSetPrices(
      {Price{Channel::kSms, "", 2000}, Price{Channel::kSms, "US", 1000}});
  if (HasFatalFailure()) return;
  InsertContacts(kContacts);
  if (HasFatalFailure()) return;
  Campaign c = NewCampaign();
  // A message without placeholders: its rows need only their country.
  c.body = "Hi there";
  c.tags = {"vip"};
  ASSERT_TRUE(AwaitResult<Campaign>([&](Done<Campaign> d) {
                instances_[0].campaigns->CreateCampaign(c, {}, std::move(d));
              }).ok());

  std::atomic<bool> prepared{false};
  std::mutex mu;
  std::vector<CostEstimateValue> answers;
  int not_ready = 0;
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      BillingStore& store = billing(r % kBillingInstances);
      while (!prepared.load()) {
        absl::StatusOr<std::optional<CostEstimateValue>> e =
            store.ReadEstimate(a_, c.id);
        std::lock_guard<std::mutex> lock(mu);
        if (!e.ok()) {
          ADD_FAILURE() << e.status();
          return;
        }
        if (e->has_value()) {
          answers.push_back(**e);
        } else {
          ++not_ready;
        }
      }
    });
  }
  const absl::Status then = AwaitStatus([&](StatusDone done) {
    billing(0).PrepareCosts(a_, c.id, /*only_if_priced=*/false,
                            std::move(done));
  });
  prepared = true;
  for (std::thread& t : readers) t.join();
  EXPECT_TRUE(then.ok()) << then;

  absl::StatusOr<std::optional<CostEstimateValue>> final_estimate =
      billing(1).ReadEstimate(a_, c.id);
  ASSERT_TRUE(final_estimate.ok()) << final_estimate.status();
  ASSERT_TRUE(final_estimate->has_value());
  const CostEstimateValue& want = **final_estimate;
  int64_t recipients = 0;
  for (const CostLineValue& l : want.lines) recipients += l.recipients;
  EXPECT_EQ(recipients, kContacts);
  ASSERT_EQ(want.lines.size(), 1u);
  EXPECT_EQ(want.lines[0].country, "US");
  EXPECT_EQ(want.total, int64_t{kContacts} * 1000);

  int half = 0;
  for (const CostEstimateValue& got : answers) {
    if (got.lines.empty() && got.total == 0) continue;  // before materialised
    bool same =
        got.total == want.total && got.lines.size() == want.lines.size();
    for (size_t i = 0; same && i < got.lines.size(); ++i) {
      same = got.lines[i].country == want.lines[i].country &&
             got.lines[i].recipients == want.lines[i].recipients &&
             got.lines[i].units == want.lines[i].units &&
             got.lines[i].amount == want.lines[i].amount;
    }
    if (!same) {
      ++half;
      if (half == 1) {
        ADD_FAILURE() << "an estimate half counted: total " << got.total
                      << " in " << got.lines.size() << " lines";
      }
    }
  }
  EXPECT_EQ(half, 0);
  // The readers did read while it was being prepared.
  EXPECT_GT(not_ready + static_cast<int>(answers.size()), 0);
}

}  // namespace
}  // namespace campaigns::storage::postgres::testing
