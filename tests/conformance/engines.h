// The engines the conformance suite runs against: each test of it runs once
// per engine (TEST_P over kEngines), on a fresh database of that engine, and
// reaches it only through the repository interfaces of
// server/domain/repository.h (and DispatchStore, server/domain/
// dispatch_store.h), so what it asserts is the interfaces' contract, not an
// engine's.
//
// A repository the PostgreSQL engine does not implement yet has no suite
// here; its tests stay in tests/storage/ (SQLite) until it does.
#ifndef CAMPAIGND_TESTS_CONFORMANCE_ENGINES_H_
#define CAMPAIGND_TESTS_CONFORMANCE_ENGINES_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/domain/billing.h"
#include "server/domain/ids.h"
#include "server/domain/repository.h"
#include "storage/postgres/account_store.h"
#include "storage/postgres/billing_store.h"
#include "storage/postgres/campaign_store.h"
#include "storage/postgres/catalog_store.h"
#include "storage/postgres/contact_store.h"
#include "storage/postgres/database.h"
#include "storage/postgres/dispatch_store.h"
#include "storage/postgres/recipient_store.h"
#include "storage/postgres/suppression_store.h"
#include "storage/sqlite/database.h"
#include "storage/sqlite/store.h"
#include "tests/storage/temp_db.h"
#include "tests/support/builders.h"
#include "tests/support/pg_fixture.h"

namespace campaigns::conformance {

inline constexpr const char* kEngines[] = {"sqlite", "postgres"};

// Opens the engine named by the test's parameter on a fresh database.
class EngineTest : public storage::postgres::testing::PgTest,
                   public ::testing::WithParamInterface<const char*> {
 protected:
  void SetUp() override {
    // Not PgTest::SetUp: the SQLite runs need no PostgreSQL cluster.
    if (std::string(GetParam()) == "sqlite") {
      storage::DatabaseOptions options;
      options.path = dir_.File("conformance.db");
      absl::StatusOr<std::unique_ptr<storage::Database>> db =
          storage::Database::Open(options);
      ASSERT_TRUE(db.ok()) << db.status();
      sqlite_db_ = *std::move(db);
      sqlite_store_ = std::make_unique<storage::Store>(sqlite_db_.get());
      accounts_ = sqlite_store_.get();
      templates_ = sqlite_store_.get();
      senders_ = sqlite_store_.get();
      suppressions_ = sqlite_store_.get();
      contacts_ = sqlite_store_.get();
      campaigns_ = sqlite_store_.get();
      dispatch_ = sqlite_store_.get();
      recipients_ = sqlite_store_.get();
      billing_ = sqlite_store_.get();
    } else {
      CreateDatabase();
      if (HasFatalFailure()) return;
      storage::postgres::DatabaseOptions options;
      options.dsn = Dsn();
      absl::StatusOr<std::unique_ptr<storage::postgres::Database>> db =
          storage::postgres::Database::Open(options);
      ASSERT_TRUE(db.ok()) << db.status();
      pg_db_ = *std::move(db);
      pg_accounts_ =
          std::make_unique<storage::postgres::AccountStore>(pg_db_.get());
      accounts_ = pg_accounts_.get();
      pg_catalog_ =
          std::make_unique<storage::postgres::CatalogStore>(pg_db_.get());
      templates_ = pg_catalog_.get();
      senders_ = pg_catalog_.get();
      pg_suppressions_ =
          std::make_unique<storage::postgres::SuppressionStore>(pg_db_.get());
      suppressions_ = pg_suppressions_.get();
      pg_contacts_ =
          std::make_unique<storage::postgres::ContactStore>(pg_db_.get());
      contacts_ = pg_contacts_.get();
      pg_campaigns_ =
          std::make_unique<storage::postgres::CampaignStore>(pg_db_.get());
      campaigns_ = pg_campaigns_.get();
      pg_dispatch_ =
          std::make_unique<storage::postgres::DispatchStore>(pg_db_.get());
      dispatch_ = pg_dispatch_.get();
      pg_recipients_ = std::make_unique<storage::postgres::RecipientStore>(
          pg_db_.get(), pg_contacts_.get());
      recipients_ = pg_recipients_.get();
      pg_billing_ =
          std::make_unique<storage::postgres::BillingStore>(pg_db_.get());
      billing_ = pg_billing_.get();
    }
  }

  void TearDown() override {
    // Stores before their databases.
    sqlite_store_.reset();
    sqlite_db_.reset();
    pg_accounts_.reset();
    pg_catalog_.reset();
    pg_suppressions_.reset();
    pg_contacts_.reset();
    pg_campaigns_.reset();
    pg_dispatch_.reset();
    pg_recipients_.reset();
    pg_billing_.reset();
    pg_db_.reset();
  }

  // Creates an account named `name` (with a key of its own) through
  // accounts(); its id, or "" after a test failure.
  std::string MustCreateAccount(const std::string& name) {
    absl::StatusOr<AccountWithKey> made =
        storage::test_util::AwaitResult<AccountWithKey>(
            [&](Done<AccountWithKey> done) {
              accounts().CreateAccount(
                  test_builders::NewAccount(name, "ck_test_" + NewId("k")), {},
                  std::move(done));
            });
    EXPECT_TRUE(made.ok()) << made.status();
    return made.ok() ? made->account.id : "";
  }

  // Gives the account `prices` (NormalizePrices'd) and a credit of
  // `credits` micro-credits, through billing().
  void SeedMoney(const std::string& account_id, std::vector<Price> prices,
                 int64_t credits) {
    absl::StatusOr<std::vector<Price>> normalized =
        NormalizePrices(std::move(prices));
    ASSERT_TRUE(normalized.ok()) << normalized.status();
    absl::StatusOr<std::vector<Price>> stored =
        storage::test_util::AwaitResult<std::vector<Price>>(
            [&](Done<std::vector<Price>> done) {
              billing().SetPrices(account_id, *normalized, std::move(done));
            });
    ASSERT_TRUE(stored.ok()) << stored.status();
    absl::StatusOr<Account> credited =
        storage::test_util::AwaitResult<Account>([&](Done<Account> done) {
          billing().AddCredits(account_id, credits, "test", {},
                               std::move(done));
        });
    ASSERT_TRUE(credited.ok()) << credited.status();
  }

  // Runs `sql` (text both engines take) through the engine's writer, past
  // every repository: for tests that stand in for a writer that breaks a
  // rule (a counter that disagrees with its rows).
  absl::Status ExecBehindTheStores(const std::string& sql) {
    if (sqlite_db_ != nullptr) {
      return storage::test_util::AwaitStatus([&](StatusDone done) {
        sqlite_db_->WriteRaw(
            [sql](SQLite::Database& db) {
              db.exec(sql);
              return absl::OkStatus();
            },
            std::move(done));
      });
    }
    return pg_db_->WriteSync(
        [sql](storage::postgres::Connection& c) { return c.Exec(sql); });
  }

  AccountRepository& accounts() { return *accounts_; }
  TemplateRepository& templates() { return *templates_; }
  SenderRepository& senders() { return *senders_; }
  SuppressionRepository& suppressions() { return *suppressions_; }
  ContactRepository& contacts() { return *contacts_; }
  CampaignRepository& campaigns() { return *campaigns_; }
  DispatchStore& dispatch() { return *dispatch_; }
  RecipientRepository& recipients() { return *recipients_; }
  BillingRepository& billing() { return *billing_; }

 private:
  storage::test_util::TempDir dir_;
  std::unique_ptr<storage::Database> sqlite_db_;
  std::unique_ptr<storage::Store> sqlite_store_;
  std::unique_ptr<storage::postgres::Database> pg_db_;
  std::unique_ptr<storage::postgres::AccountStore> pg_accounts_;
  std::unique_ptr<storage::postgres::CatalogStore> pg_catalog_;
  std::unique_ptr<storage::postgres::SuppressionStore> pg_suppressions_;
  std::unique_ptr<storage::postgres::ContactStore> pg_contacts_;
  std::unique_ptr<storage::postgres::CampaignStore> pg_campaigns_;
  std::unique_ptr<storage::postgres::DispatchStore> pg_dispatch_;
  std::unique_ptr<storage::postgres::RecipientStore> pg_recipients_;
  std::unique_ptr<storage::postgres::BillingStore> pg_billing_;
  AccountRepository* accounts_ = nullptr;
  TemplateRepository* templates_ = nullptr;
  SenderRepository* senders_ = nullptr;
  SuppressionRepository* suppressions_ = nullptr;
  ContactRepository* contacts_ = nullptr;
  CampaignRepository* campaigns_ = nullptr;
  DispatchStore* dispatch_ = nullptr;
  RecipientRepository* recipients_ = nullptr;
  BillingRepository* billing_ = nullptr;
};

// "sqlite" / "postgres" as the test name's suffix.
inline std::string EngineName(
    const ::testing::TestParamInfo<const char*>& info) {
  return info.param;
}

}  // namespace campaigns::conformance

#endif  // CAMPAIGND_TESTS_CONFORMANCE_ENGINES_H_
