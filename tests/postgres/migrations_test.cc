// Tests of storage/postgres/migrations.h against a real PostgreSQL.
#include "storage/postgres/migrations.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/support/pg_fixture.h"

namespace campaigns::storage::postgres::testing {
namespace {

using MigrationsTest = PgTest;

TEST_F(MigrationsTest, AFreshDatabaseGetsEveryVersionOnce) {
  std::unique_ptr<Connection> c = Connect();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(SchemaVersion(*c).value_or(-1), 0);
  absl::StatusOr<int> v = Migrate(*c);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, LatestSchemaVersion());
  EXPECT_EQ(SchemaVersion(*c).value_or(-1), LatestSchemaVersion());
  // Again: nothing to do.
  v = Migrate(*c);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, LatestSchemaVersion());
  absl::StatusOr<Rows> rows = c->Query("SELECT count(*) FROM campaignd_schema");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->Text(0, 0), absl::StrCat(LatestSchemaVersion()));
  // The schema holds what the engine needs, e.g. the recipient id key.
  rows = c->Query("SELECT value FROM meta WHERE key = 'recipient_id_key'");
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 1);
  EXPECT_EQ(rows->Text(0, 0).size(), 32u);
  EXPECT_EQ(rows->Text(0, 0).find_first_not_of("0123456789ABCDEF"),
            std::string::npos);
}

// A build from before several instances could share a database holds the
// sole-instance lock while it runs: this build neither migrates nor starts
// beside it, and says why.
TEST_F(MigrationsTest, AnOlderSoleInstanceBuildStillRunningIsRefused) {
  std::unique_ptr<Connection> old_build = Connect();
  std::unique_ptr<Connection> c = Connect();
  ASSERT_NE(old_build, nullptr);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(old_build
                  ->Exec(absl::StrCat("SELECT pg_advisory_lock(",
                                      kSoleInstanceLock, ")"))
                  .ok());
  absl::StatusOr<int> v = Migrate(*c);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kFailedPrecondition)
      << v.status();
  EXPECT_TRUE(absl::StrContains(v.status().message(), "older campaignd"))
      << v.status();
  EXPECT_EQ(SchemaVersion(*c).value_or(-1), 0);
  // Once it stopped: migrated, and the lock is not kept (another instance
  // of this build migrates too). Unlocked first: a closed connection's
  // backend lets go of its locks only as it exits, after the close returns
  // (the next Migrate could still find it held).
  ASSERT_TRUE(old_build
                  ->Exec(absl::StrCat("SELECT pg_advisory_unlock(",
                                      kSoleInstanceLock, ")"))
                  .ok());
  old_build.reset();
  v = Migrate(*c);
  ASSERT_TRUE(v.ok()) << v.status();
  std::unique_ptr<Connection> other = Connect();
  ASSERT_NE(other, nullptr);
  v = Migrate(*other);
  ASSERT_TRUE(v.ok()) << v.status();
  absl::StatusOr<Rows> free_now = other->Query(
      absl::StrCat("SELECT pg_try_advisory_lock(", kSoleInstanceLock, ")"));
  ASSERT_TRUE(free_now.ok()) << free_now.status();
  EXPECT_EQ(free_now->Text(0, 0), "t");
}

TEST_F(MigrationsTest, InstancesStartingTogetherMigrateOnce) {
  constexpr int kInstances = 4;
  std::vector<std::unique_ptr<Connection>> conns;
  for (int i = 0; i < kInstances; ++i) {
    conns.push_back(Connect());
    ASSERT_NE(conns.back(), nullptr);
  }
  std::vector<absl::StatusOr<int>> results(kInstances, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kInstances; ++i) {
    threads.emplace_back([&, i] { results[i] = Migrate(*conns[i]); });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kInstances; ++i) {
    ASSERT_TRUE(results[i].ok()) << i << ": " << results[i].status();
    EXPECT_EQ(*results[i], LatestSchemaVersion());
  }
  absl::StatusOr<Rows> rows = conns[0]->Query(
      "SELECT count(*), count(DISTINCT version) FROM campaignd_schema");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->Text(0, 0), absl::StrCat(LatestSchemaVersion()));
  EXPECT_EQ(rows->Text(0, 1), absl::StrCat(LatestSchemaVersion()));
  // One recipient id key, not one per instance.
  rows = conns[0]->Query("SELECT count(*) FROM meta");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->Text(0, 0), "1");
  // And the lock is released: a session can take it at once.
  rows = conns[1]->Query(
      absl::StrCat("SELECT pg_try_advisory_lock(", kMigrationLock, ")"));
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->Text(0, 0), "t");
}

TEST_F(MigrationsTest, ADatabaseFromANewerBuildIsRefused) {
  std::unique_ptr<Connection> c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(Migrate(*c).ok());
  const int future = LatestSchemaVersion() + 1;
  ASSERT_TRUE(c->Query("INSERT INTO campaignd_schema(version) VALUES ($1)",
                       {absl::StrCat(future)})
                  .ok());
  absl::StatusOr<int> v = Migrate(*c);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(
      v.status().message(),
      absl::StrCat("version ", future, " is newer than this build (",
                   LatestSchemaVersion(), ")")))
      << v.status();
  // The refusal released the lock.
  absl::StatusOr<Rows> rows =
      c->Query(absl::StrCat("SELECT pg_advisory_unlock(", kMigrationLock, ")"));
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->Text(0, 0), "f");
}

TEST_F(MigrationsTest, AFailedMigrationLeavesTheVersionBefore) {
  std::unique_ptr<Connection> c = Connect();
  ASSERT_NE(c, nullptr);
  // A table the first migration creates already exists: it fails, and
  // nothing of it stays.
  ASSERT_TRUE(c->Exec("CREATE TABLE leases (x INT)").ok());
  absl::StatusOr<int> v = Migrate(*c);
  ASSERT_FALSE(v.ok());
  EXPECT_TRUE(absl::StrContains(v.status().message(), "schema migration 1"))
      << v.status();
  EXPECT_EQ(SchemaVersion(*c).value_or(-1), 0);
  absl::StatusOr<Rows> rows =
      c->Query("SELECT to_regclass('accounts') IS NULL");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->Text(0, 0), "t");
  // Once the obstacle is gone, the same call succeeds.
  ASSERT_TRUE(c->Exec("DROP TABLE leases").ok());
  v = Migrate(*c);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, LatestSchemaVersion());
}

}  // namespace
}  // namespace campaigns::storage::postgres::testing
