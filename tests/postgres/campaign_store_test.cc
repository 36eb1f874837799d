// storage/postgres/campaign_store.h with several instances on one database:
// updates of one campaign queued on every instance at once all take effect
// (none overwrites another's: the row is locked while it is
// read-modified-written); starts of one account's campaigns on every
// instance at once never reserve more than the balance and keep
// balance + reserved = credits - debited (the account's row is locked);
// and a deletion's purge, in chunks, resumed on every instance at once,
// deletes everything once; a sender deleted on one instance while a
// campaign using it is being created on another is refused. The contract
// on one instance:
// tests/conformance/campaign_repository_test.cc.
#include "storage/postgres/campaign_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/barrier.h"
#include "absl/time/clock.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
#include "storage/postgres/account_store.h"
#include "storage/postgres/billing_store.h"
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

constexpr int kCampaignInstances = 2;

// Counts down to zero once; Wait blocks until it has. On std::mutex, which
// ThreadSanitizer sees (Debian's Abseil is not built for it, so its
// BlockingCounter and Notification would look like no synchronisation).
class Latch {
 public:
  explicit Latch(int count) : count_(count) {}
  void CountDown() {
    std::lock_guard<std::mutex> lock(mu_);
    if (--count_ == 0) cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return count_ <= 0; });
  }
  // False if it did not reach zero within `timeout`.
  bool WaitFor(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return count_ <= 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_;
};

class CampaignStoreInstancesTest : public PgTest {
 protected:
  // One campaignd's view of the database: its own Database and stores.
  struct Instance {
    std::unique_ptr<Database> db;
    std::unique_ptr<CampaignStore> campaigns;
    std::unique_ptr<ContactStore> contacts;
  };

  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    for (int i = 0; i < kCampaignInstances; ++i) {
      std::unique_ptr<Database> db = OpenDatabase();
      ASSERT_NE(db, nullptr);
      Instance in;
      in.db = std::move(db);
      // Alive throughout (the test kills instances by hand).
      const WorkOwner owner{absl::StrCat("ins_", i), absl::Hours(1)};
      RegisterInstance(owner.instance);
      in.campaigns = std::make_unique<CampaignStore>(in.db.get(), owner);
      in.contacts = std::make_unique<ContactStore>(in.db.get(), owner);
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

  CampaignStore& campaigns(int i) { return *instances_[i].campaigns; }

  // Waits (up to 10 s) until `sql` counts 0.
  void AwaitNone(const std::string& sql) {
    for (int i = 0; i < 1000 && Count(sql) != 0; ++i) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    EXPECT_EQ(Count(sql), 0) << sql;
  }

  // The campaign is gone for every instance's reads.
  void ExpectNotFoundIn(const std::string& id) {
    for (int i = 0; i < kCampaignInstances; ++i) {
      test_builders::ExpectNotFound(campaigns(i).GetCampaign(a_, id).status());
      PageRequest all;
      all.limit = 100;
      absl::StatusOr<Page<Campaign>> page =
          campaigns(i).ListCampaigns(a_, CampaignFilter{}, all);
      ASSERT_TRUE(page.ok()) << page.status();
      EXPECT_EQ(page->total, 0);
    }
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
  Campaign MustCreate(Campaign c) {
    absl::StatusOr<Campaign> out = AwaitResult<Campaign>([&](Done<Campaign> d) {
      campaigns(0).CreateCampaign(std::move(c), {}, std::move(d));
    });
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : Campaign{};
  }

  // `n` sms contacts of the account; their ids.
  std::vector<std::string> MustCreateContacts(int n) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
      Contact c;
      c.id = NewId(kContactPrefix);
      c.account_id = a_;
      c.channel = Channel::kSms;
      c.address = absl::StrCat("+1202555", 1000 + i);
      c.attributes = {{"name", absl::StrCat("n", i)}};
      c.created_at = c.updated_at = NowMicros();
      absl::StatusOr<Contact> out = AwaitResult<Contact>([&](Done<Contact> d) {
        instances_[0].contacts->CreateContact(c, {}, std::move(d));
      });
      EXPECT_TRUE(out.ok()) << out.status();
      ids.push_back(c.id);
    }
    return ids;
  }

  // `price` per sms unit, and a credit of `credits`, through BillingStore.
  void SeedMoney(int64_t price, int64_t credits) {
    BillingStore billing(instances_[0].db.get());
    ASSERT_TRUE(
        AwaitResult<std::vector<Price>>([&](Done<std::vector<Price>> done) {
          billing.SetPrices(a_, {Price{Channel::kSms, "", price}},
                            std::move(done));
        }).ok());
    absl::StatusOr<Account> credited =
        AwaitResult<Account>([&](Done<Account> done) {
          billing.AddCredits(a_, credits, "test", {}, std::move(done));
        });
    ASSERT_TRUE(credited.ok()) << credited.status();
  }

  std::vector<Instance> instances_;
  std::string a_;
};

// Each instance queues its increments of one campaign's batch_size at
// once, so both writers read-modify-write the row at the same time: every
// increment must show.
TEST_F(CampaignStoreInstancesTest, UpdatesOfOneCampaignOnEveryInstanceAllLand) {
  constexpr int kUpdatesPerInstance = 40;
  Campaign c = NewCampaign();
  c.batch_size = 100;
  c = MustCreate(c);
  absl::Barrier* start = new absl::Barrier(kCampaignInstances);
  std::mutex mu;
  int failed = 0;
  std::vector<std::thread> threads;
  for (int i = 0; i < kCampaignInstances; ++i) {
    threads.emplace_back([&, i] {
      if (start->Block()) delete start;
      std::vector<absl::Status> statuses(kUpdatesPerInstance);
      Latch pending(kUpdatesPerInstance);
      for (int k = 0; k < kUpdatesPerInstance; ++k) {
        campaigns(i).UpdateCampaign(
            a_, c.id,
            [](Campaign& x) {
              ++x.batch_size;
              return absl::OkStatus();
            },
            [&, k](absl::StatusOr<Campaign> updated) {
              statuses[k] = updated.status();
              pending.CountDown();
            });
      }
      pending.Wait();
      for (const absl::Status& s : statuses) {
        EXPECT_TRUE(s.ok()) << s;
        if (!s.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          ++failed;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  absl::StatusOr<Campaign> got = campaigns(1).GetCampaign(a_, c.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->batch_size,
            100 + kCampaignInstances * kUpdatesPerInstance - failed);
  EXPECT_EQ(failed, 0);
}

// Eight campaigns of 300,000 each, created and started at once on two
// instances against a balance of 1,000,000: three start, five are refused,
// and the account, the campaigns and every ledger row agree.
TEST_F(CampaignStoreInstancesTest, StartsOnEveryInstanceKeepTheLedger) {
  constexpr int kCampaignsPerInstance = 4;
  SeedMoney(10000, 1000000);
  if (HasFatalFailure()) return;
  const std::vector<std::string> contacts = MustCreateContacts(30);
  absl::Barrier* start = new absl::Barrier(kCampaignInstances);
  std::mutex mu;
  int started = 0;
  int refused = 0;
  std::vector<std::thread> threads;
  for (int i = 0; i < kCampaignInstances; ++i) {
    std::vector<Campaign> mine;
    for (int k = 0; k < kCampaignsPerInstance; ++k) {
      Campaign c = NewCampaign();
      c.contact_ids = contacts;
      mine.push_back(std::move(c));
    }
    threads.emplace_back([&, i, mine] {
      if (start->Block()) delete start;
      Latch pending(kCampaignsPerInstance);
      for (const Campaign& c : mine) {
        LifecycleChange change;
        change.event = CampaignEvent::kStart;
        change.now = NowMicros();
        campaigns(i).CreateCampaign(
            c, {},
            [&](absl::StatusOr<Campaign> out) {
              {
                std::lock_guard<std::mutex> lock(mu);
                if (out.ok()) {
                  ++started;
                  EXPECT_EQ(out->credits_reserved, 300000);
                } else {
                  EXPECT_EQ(errors::ReasonOf(out.status()),
                            "INSUFFICIENT_CREDITS")
                      << out.status();
                  ++refused;
                }
              }
              pending.CountDown();
            },
            change);
      }
      pending.Wait();
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(started, 3);
  EXPECT_EQ(refused, 5);
  absl::StatusOr<Account> a =
      AccountStore(instances_[1].db.get()).GetAccount(a_);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->credits_reserved, 900000);
  EXPECT_EQ(a->credits_balance, 100000);
  EXPECT_EQ(Count(absl::StrCat("SELECT COALESCE(sum(credits_reserved), 0) "
                               "FROM campaigns WHERE account_id = '",
                               a_, "'")),
            a->credits_reserved);
  EXPECT_EQ(Count("SELECT count(*) FROM campaigns"), 3);
  // Every ledger row: balance + reserved = credits so far - debits so far.
  EXPECT_EQ(Count("SELECT count(*) FROM (SELECT balance_after + "
                  "reserved_after AS held, sum(CASE type WHEN 'credit' THEN "
                  "amount WHEN 'debit' THEN -amount ELSE 0 END) OVER (ORDER BY "
                  "seq) AS net FROM transactions) AS t WHERE held <> net"),
            0);
  EXPECT_EQ(Count("SELECT count(*) FROM transactions WHERE type = "
                  "'reservation'"),
            3);
}

// A deletion a stopped instance left behind (hidden, its rows still there)
// is resumed by both instances at once: one takes it over, and all of it
// goes, the row last.
TEST_F(CampaignStoreInstancesTest, ADeletionResumedOnEveryInstanceFinishes) {
  Campaign c = MustCreate(NewCampaign());
  std::unique_ptr<Connection> conn = Connect();
  ASSERT_NE(conn, nullptr);
  // 25,000 recipients and their address set: three chunks of each.
  ASSERT_TRUE(
      conn->Query("WITH added AS (INSERT INTO recipients(campaign_seq, "
                  "address, status, created_at, updated_at) SELECT $1, '+1555' "
                  "|| (1000000 + i), 'queued', 0, 0 FROM generate_series(1, "
                  "25000) AS i RETURNING seq, address) INSERT INTO "
                  "recipient_addresses(campaign_seq, address, seq) SELECT $1, "
                  "address, seq FROM added",
                  {absl::StrCat(c.seq)})
          .ok());
  ASSERT_TRUE(conn->Query("UPDATE campaigns SET deleting = TRUE, total = "
                          "25000, queued = 25000 WHERE id = $1",
                          {c.id})
                  .ok());
  ExpectNotFoundIn(c.id);

  std::vector<int> resumed(kCampaignInstances, -1);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCampaignInstances; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<int> n = campaigns(i).ResumeCampaignDeletions();
      EXPECT_TRUE(n.ok()) << n.status();
      resumed[i] = n.ok() ? *n : -1;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_THAT(resumed, ::testing::Each(::testing::AnyOf(0, 1)));
  EXPECT_EQ(resumed[0] + resumed[1], 1);
  AwaitNone("SELECT count(*) FROM campaigns");
  EXPECT_EQ(Count("SELECT count(*) FROM recipients"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM recipient_addresses"), 0);
}

// A deletion belongs to the instance that made it: another one resumes it
// only once that one is dead.
TEST_F(CampaignStoreInstancesTest, ADeletionIsResumedOnlyOnceItsInstanceDied) {
  Campaign c = MustCreate(NewCampaign());
  std::unique_ptr<Connection> conn = Connect();
  ASSERT_NE(conn, nullptr);
  // As instance 0 would leave it, stopped mid-purge (its rows still there).
  ASSERT_TRUE(conn->Query("INSERT INTO recipients(campaign_seq, address, "
                          "status, created_at, updated_at) VALUES ($1, "
                          "'+15551000001', 'queued', 0, 0)",
                          {absl::StrCat(c.seq)})
                  .ok());
  ASSERT_TRUE(conn->Query("UPDATE campaigns SET deleting = TRUE, work_owner = "
                          "'ins_0' WHERE id = $1",
                          {c.id})
                  .ok());
  absl::StatusOr<int> resumed = campaigns(1).ResumeCampaignDeletions();
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(*resumed, 0);  // instance 0 lives: its own to finish
  EXPECT_EQ(Count("SELECT count(*) FROM campaigns"), 1);
  KillInstance("ins_0");
  resumed = campaigns(1).ResumeCampaignDeletions();
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(*resumed, 1);
  AwaitNone("SELECT count(*) FROM campaigns");
  EXPECT_EQ(Count("SELECT count(*) FROM recipients"), 0);
}

// A campaign paused on the instance that sent it while messages were with
// the provider (marked handed by that live instance) is not deleted from
// another one until their outcomes are recorded, or that instance is dead:
// the late outcomes, and what they cost, would be lost with the campaign.
TEST_F(CampaignStoreInstancesTest, ADeleteWaitsForALiveInstancesCallsOut) {
  Campaign c = MustCreate(NewCampaign());
  std::unique_ptr<Connection> conn = Connect();
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Query("INSERT INTO recipients(campaign_seq, address, "
                          "status, created_at, updated_at, handed, "
                          "handed_by) VALUES ($1, '+15551000001', 'queued', "
                          "0, 0, TRUE, 'ins_0')",
                          {absl::StrCat(c.seq)})
                  .ok());
  ASSERT_TRUE(
      conn->Query("UPDATE campaigns SET status = 'paused' WHERE id = $1",
                  {c.id})
          .ok());
  auto remove = [&](int instance) {
    return AwaitStatus([&](StatusDone d) {
      campaigns(instance).DeleteCampaign(a_, c.id, std::move(d));
    });
  };
  const absl::Status refused = remove(1);
  test_builders::ExpectError(refused, absl::StatusCode::kFailedPrecondition,
                             "ILLEGAL_TRANSITION");
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr("ins_0"));
  EXPECT_TRUE(campaigns(1).GetCampaign(a_, c.id).ok());
  KillInstance("ins_0");
  ASSERT_TRUE(remove(1).ok());
  ExpectNotFoundIn(c.id);
}

// A purge chunk that fails (here its COMMIT is rolled back) is tried again
// by the same instance: the campaign's rows go without a restart.
TEST_F(CampaignStoreInstancesTest, AFailedDeletionChunkIsTriedAgainLater) {
  Campaign c = MustCreate(NewCampaign());
  std::unique_ptr<Connection> conn = Connect();
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(
      conn->Query("WITH added AS (INSERT INTO recipients(campaign_seq, "
                  "address, status, created_at, updated_at) SELECT $1, '+1555' "
                  "|| (1000000 + i), 'queued', 0, 0 FROM generate_series(1, "
                  "15000) AS i RETURNING seq, address) INSERT INTO "
                  "recipient_addresses(campaign_seq, address, seq) SELECT $1, "
                  "address, seq FROM added",
                  {absl::StrCat(c.seq)})
          .ok());
  std::atomic<int> commits{0};
  DatabaseOptions options;
  options.retry_after = absl::Milliseconds(50);
  options.before_commit = [&](Connection& tx) {
    if (++commits == 2) (void)tx.Exec("SELECT 1/0");  // the first chunk
  };
  std::unique_ptr<Database> db = OpenDatabase(options);
  ASSERT_NE(db, nullptr);
  CampaignStore store(db.get());
  ASSERT_TRUE(AwaitStatus([&](StatusDone d) {
                store.DeleteCampaign(a_, c.id, std::move(d));
              }).ok());
  ExpectNotFoundIn(c.id);
  AwaitNone("SELECT count(*) FROM campaigns");
  EXPECT_GE(commits.load(), 3);
  EXPECT_EQ(Count("SELECT count(*) FROM recipients"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM recipient_addresses"), 0);
}

// Delete: hidden at once, its rows purged behind it, and money held
// released.
TEST_F(CampaignStoreInstancesTest, DeleteHidesAtOnceAndPurgesBehind) {
  SeedMoney(10000, 1000000);
  if (HasFatalFailure()) return;
  Campaign c = NewCampaign();
  c.contact_ids = MustCreateContacts(3);
  LifecycleChange change;
  change.event = CampaignEvent::kStart;
  change.now = NowMicros();
  change.send_at = change.now + absl::Hours(1);
  absl::StatusOr<Campaign> scheduled =
      AwaitResult<Campaign>([&](Done<Campaign> d) {
        campaigns(0).CreateCampaign(c, {}, std::move(d), change);
      });
  ASSERT_TRUE(scheduled.ok()) << scheduled.status();
  EXPECT_EQ(scheduled->credits_reserved, 30000);
  EXPECT_EQ(Count("SELECT count(*) FROM recipients"), 3);

  ASSERT_TRUE(AwaitStatus([&](StatusDone d) {
                campaigns(1).DeleteCampaign(a_, c.id, std::move(d));
              }).ok());
  ExpectNotFoundIn(c.id);
  AwaitNone("SELECT count(*) FROM campaigns");
  EXPECT_EQ(Count("SELECT count(*) FROM recipients"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM recipient_addresses"), 0);
  EXPECT_EQ(Count("SELECT credits_reserved FROM accounts"), 0);
  EXPECT_EQ(Count("SELECT credits_balance FROM accounts"), 1000000);
  EXPECT_EQ(Count("SELECT count(*) FROM transactions WHERE type = 'release' "
                  "AND amount = 30000"),
            1);
}

// A campaign is being created on one instance (held just before its
// COMMIT) with a sender another instance is deleting: the delete waits for
// the create (the create holds the sender's row FOR KEY SHARE, the delete
// locks it FOR UPDATE first), then sees the campaign and is refused. Before
// the locks the delete found no campaign and went through, leaving the
// campaign with a sender that no longer exists.
TEST_F(CampaignStoreInstancesTest, ASenderInUseOnAnotherInstanceIsNotDeleted) {
  CatalogStore catalog(instances_[1].db.get());
  Sender s = test_builders::NewSender(a_, "+15550122");
  ASSERT_TRUE(AwaitResult<Sender>([&](Done<Sender> done) {
                catalog.RegisterSender(s, {}, std::move(done));
              }).ok());

  Latch paused(1);
  Latch release(1);
  std::atomic<bool> armed{false};
  DatabaseOptions options;
  options.before_commit = [&](Connection&) {
    if (armed.exchange(false)) {
      paused.CountDown();
      release.Wait();
    }
  };
  std::unique_ptr<Database> held = OpenDatabase(options);
  ASSERT_NE(held, nullptr);
  CampaignStore creating(held.get());

  Campaign c = NewCampaign();
  c.sender_id = "+15550122";
  Latch created_done(1);
  absl::StatusOr<Campaign> created = absl::UnknownError("not run");
  armed = true;
  creating.CreateCampaign(c, {}, [&](absl::StatusOr<Campaign> out) {
    created = std::move(out);
    created_done.CountDown();
  });
  paused.Wait();

  Latch deleted_done(1);
  absl::Status deleted = absl::UnknownError("not run");
  catalog.DeleteSender(a_, s.id, [&](absl::Status status) {
    deleted = std::move(status);
    deleted_done.CountDown();
  });
  // It waits for the create's lock however long that is held.
  EXPECT_FALSE(deleted_done.WaitFor(std::chrono::milliseconds(300)));
  release.CountDown();
  created_done.Wait();
  deleted_done.Wait();
  ASSERT_TRUE(created.ok()) << created.status();
  test_builders::ExpectError(deleted, absl::StatusCode::kFailedPrecondition,
                             "VALIDATION_ERROR");
  EXPECT_TRUE(catalog.GetSender(a_, s.id).ok());
  held.reset();
}

}  // namespace
}  // namespace campaigns::storage::postgres::testing
