// storage/postgres/suppression_store.h with several instances on one
// database: the same entry added by all of them at once (an API call and a
// provider's opt-out arriving at different instances) is one row, and no
// add fails.
#include "storage/postgres/suppression_store.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/barrier.h"
#include "absl/time/clock.h"
#include "server/domain/ids.h"
#include "storage/postgres/account_store.h"
#include "storage/postgres/catalog_store.h"
#include "storage/postgres/database.h"
#include "tests/storage/temp_db.h"
#include "tests/support/builders.h"
#include "tests/support/pg_fixture.h"

namespace campaigns::storage::postgres::testing {
namespace {

using storage::test_util::AwaitResult;

constexpr int kInstances = 3;
constexpr int kRounds = 30;

class SuppressionStoreInstancesTest : public PgTest {
 protected:
  // One campaignd's view of the database: its own Database (connections,
  // writer) and store.
  struct Instance {
    std::unique_ptr<Database> db;
    std::unique_ptr<SuppressionStore> suppressions;
  };

  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    for (int i = 0; i < kInstances; ++i) {
      Instance in;
      in.db = OpenDatabase();
      ASSERT_NE(in.db, nullptr);
      in.suppressions = std::make_unique<SuppressionStore>(in.db.get());
      instances_.push_back(std::move(in));
    }
    AccountStore accounts(instances_[0].db.get());
    CatalogStore senders(instances_[0].db.get());
    for (std::string* id : {&a_, &b_}) {
      absl::StatusOr<AccountWithKey> made =
          AwaitResult<AccountWithKey>([&](Done<AccountWithKey> done) {
            accounts.CreateAccount(
                test_builders::NewAccount(
                    "acme", absl::StrCat(NewId("s"), "-secret-0123456789")),
                {}, std::move(done));
          });
      ASSERT_TRUE(made.ok()) << made.status();
      *id = made->account.id;
      Sender s = test_builders::NewSender(*id, "+15550100");
      s.provider = "twilio";
      ASSERT_TRUE(AwaitResult<Sender>([&](Done<Sender> done) {
                    senders.RegisterSender(s, {}, std::move(done));
                  }).ok());
    }
  }

  void TearDown() override { instances_.clear(); }

  int64_t Count(const std::string& address) {
    std::unique_ptr<Connection> c = Connect();
    if (c == nullptr) return -1;
    absl::StatusOr<Rows> r = c->Query(
        "SELECT count(*) FROM suppressions WHERE address = $1", {address});
    return r.ok() ? std::stoll(r->Text(0, 0)) : -1;
  }

  // Runs `add(instance)` on every instance at once, `kRounds` times with a
  // new address each round; every add must succeed and leave `rows` rows.
  template <typename Add>
  void AllAtOnce(int64_t rows, const Add& add) {
    for (int round = 0; round < kRounds; ++round) {
      const std::string address = absl::StrCat("+1555020", 1000 + round);
      absl::Barrier* start = new absl::Barrier(kInstances);
      std::vector<absl::Status> statuses(kInstances);
      std::vector<std::thread> threads;
      for (int i = 0; i < kInstances; ++i) {
        threads.emplace_back([&, i] {
          if (start->Block()) delete start;
          statuses[i] = add(*instances_[i].suppressions, address, i);
        });
      }
      for (std::thread& t : threads) t.join();
      for (int i = 0; i < kInstances; ++i) {
        EXPECT_TRUE(statuses[i].ok())
            << "round " << round << ", instance " << i << ": " << statuses[i];
      }
      EXPECT_EQ(Count(address), rows) << "round " << round;
    }
  }

  static Suppression OptOut(const std::string& account,
                            const std::string& address, int instance) {
    Suppression s;
    s.account_id = account;
    s.address = address;
    s.channel = Channel::kSms;
    s.reason = SuppressionReason::kOptOut;
    s.note = absl::StrCat("via instance ", instance);
    s.created_at = absl::Now();
    return s;
  }

  std::vector<Instance> instances_;
  std::string a_;
  std::string b_;
};

TEST_F(SuppressionStoreInstancesTest, TheSameAddOnEveryInstanceMakesOneRow) {
  AllAtOnce(1, [&](SuppressionStore& store, const std::string& address, int i) {
    return AwaitResult<Suppression>([&](Done<Suppression> done) {
             store.AddSuppression(OptOut(a_, address, i), std::move(done));
           })
        .status();
  });
}

TEST_F(SuppressionStoreInstancesTest,
       TheSameProviderOptOutOnEveryInstanceMakesOneRowPerAccount) {
  AllAtOnce(2,
            [&](SuppressionStore& store, const std::string& address,
                int i) -> absl::Status {
              absl::StatusOr<int> added = AwaitResult<int>([&](Done<int> done) {
                store.AddProviderSuppression({"twilio"}, "+15550100",
                                             OptOut("", address, i),
                                             std::move(done));
              });
              if (!added.ok()) return added.status();
              if (*added != 2) return absl::InternalError(absl::StrCat(*added));
              return absl::OkStatus();
            });
}

}  // namespace
}  // namespace campaigns::storage::postgres::testing
