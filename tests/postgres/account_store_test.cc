// storage/postgres/account_store.h with several instances on one database:
// what the conformance suite cannot see from a single instance.
#include "storage/postgres/account_store.h"

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
#include "storage/postgres/database.h"
#include "tests/storage/temp_db.h"
#include "tests/support/pg_fixture.h"

namespace campaigns::storage::postgres::testing {
namespace {

using storage::test_util::AwaitResult;

class AccountStoreInstancesTest : public PgTest {
 protected:
  // One campaignd's view of the database: its own Database (connections,
  // writer) and store.
  struct Instance {
    std::unique_ptr<Database> db;
    std::unique_ptr<AccountStore> accounts;
  };

  Instance Start() {
    Instance i;
    i.db = OpenDatabase();
    if (i.db != nullptr) {
      i.accounts = std::make_unique<AccountStore>(i.db.get());
    }
    return i;
  }

  int64_t Count(const std::string& sql) {
    std::unique_ptr<Connection> c = Connect();
    if (c == nullptr) return -1;
    absl::StatusOr<Rows> r = c->Query(sql);
    return r.ok() ? std::stoll(r->Text(0, 0)) : -1;
  }

  static AccountWithKey NewAccount(const std::string& secret) {
    AccountWithKey a;
    a.account.id = NewId(kAccountPrefix);
    a.account.name = "acme";
    a.account.created_at = a.account.updated_at = absl::Now();
    a.key.id = NewId(kApiKeyPrefix);
    a.key.account_id = a.account.id;
    a.key.name = "k";
    a.key.prefix = secret.substr(0, 8);
    a.key.key_hash = Sha256Hex(secret);
    a.key.created_at = absl::Now();
    return a;
  }
};

TEST_F(AccountStoreInstancesTest, AKeyRevokedOnOneInstanceIsRefusedByAll) {
  Instance a = Start();
  Instance b = Start();
  ASSERT_NE(a.accounts, nullptr);
  ASSERT_NE(b.accounts, nullptr);
  const std::string secret = "shared-secret-0123456789";
  absl::StatusOr<AccountWithKey> made =
      AwaitResult<AccountWithKey>([&](Done<AccountWithKey> done) {
        a.accounts->CreateAccount(NewAccount(secret), {}, std::move(done));
      });
  ASSERT_TRUE(made.ok()) << made.status();
  ASSERT_TRUE(b.accounts->Authenticate(secret).ok());
  ASSERT_TRUE(AwaitResult<ApiKey>([&](Done<ApiKey> done) {
                a.accounts->RevokeApiKey(made->account.id, made->key.id,
                                         std::move(done));
              }).ok());
  EXPECT_EQ(b.accounts->Authenticate(secret).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(AccountStoreInstancesTest, InstancesBootstrappingTogetherMakeOneAdmin) {
  Instance a = Start();
  Instance b = Start();
  ASSERT_NE(a.accounts, nullptr);
  ASSERT_NE(b.accounts, nullptr);
  for (int round = 0; round < 10; ++round) {
    std::unique_ptr<Connection> c = Connect();
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(c->Exec("TRUNCATE api_keys, accounts CASCADE").ok());
    absl::Barrier* start = new absl::Barrier(2);
    absl::StatusOr<bool> made_a = false, made_b = false;
    std::thread ta([&] {
      if (start->Block()) delete start;
      made_a = a.accounts->BootstrapAdmin(
          absl::StrCat("admin-a-", round, "-0123456789"));
    });
    std::thread tb([&] {
      if (start->Block()) delete start;
      made_b = b.accounts->BootstrapAdmin(
          absl::StrCat("admin-b-", round, "-0123456789"));
    });
    ta.join();
    tb.join();
    ASSERT_TRUE(made_a.ok()) << made_a.status();
    ASSERT_TRUE(made_b.ok()) << made_b.status();
    EXPECT_NE(*made_a, *made_b) << "round " << round;
    EXPECT_EQ(Count("SELECT count(*) FROM accounts"), 1) << "round " << round;
  }
}

TEST_F(AccountStoreInstancesTest, TheSameRequestOnTwoInstancesCreatesOnce) {
  Instance a = Start();
  Instance b = Start();
  ASSERT_NE(a.accounts, nullptr);
  ASSERT_NE(b.accounts, nullptr);
  for (int round = 0; round < 10; ++round) {
    const IdempotencyKey idem{"CreateAccount/acc_x", absl::StrCat("r", round),
                              "h"};
    absl::Barrier* start = new absl::Barrier(2);
    absl::StatusOr<AccountWithKey> got_a, got_b;
    std::thread ta([&] {
      if (start->Block()) delete start;
      got_a = AwaitResult<AccountWithKey>([&](Done<AccountWithKey> done) {
        a.accounts->CreateAccount(
            NewAccount(absl::StrCat("a", round, "-secret-0123456789")), idem,
            std::move(done));
      });
    });
    std::thread tb([&] {
      if (start->Block()) delete start;
      got_b = AwaitResult<AccountWithKey>([&](Done<AccountWithKey> done) {
        b.accounts->CreateAccount(
            NewAccount(absl::StrCat("b", round, "-secret-0123456789")), idem,
            std::move(done));
      });
    });
    ta.join();
    tb.join();
    ASSERT_TRUE(got_a.ok()) << got_a.status();
    ASSERT_TRUE(got_b.ok()) << got_b.status();
    EXPECT_EQ(got_a->account.id, got_b->account.id) << "round " << round;
  }
  EXPECT_EQ(Count("SELECT count(*) FROM accounts"), 10);
}

}  // namespace
}  // namespace campaigns::storage::postgres::testing
