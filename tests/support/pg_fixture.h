// PgTest: a fixture for tests against a real PostgreSQL. The test process
// starts one throwaway cluster (PostgresServer) for the first test that needs
// it and stops it after its last test (a gtest environment, pg_fixture.cc);
// each test gets a database of its own (CREATE DATABASE), so tests neither
// see nor disturb each other's rows.
#ifndef CAMPAIGND_TESTS_SUPPORT_PG_FIXTURE_H_
#define CAMPAIGND_TESTS_SUPPORT_PG_FIXTURE_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "storage/postgres/connection.h"
#include "storage/postgres/database.h"
#include "tests/support/postgres_server.h"

namespace campaigns::storage::postgres::testing {

// A fresh database named after the running test on the process's cluster
// (started if this is the first test to need it): its name. For fixtures
// that are not PgTests (e.g. a whole server on PostgreSQL).
absl::StatusOr<std::string> CreateTestDatabase();
// A DSN of database `db` on the process's cluster.
std::string TestDatabaseDsn(const std::string& db);

class PgTest : public ::testing::Test {
 protected:
  // The process's cluster (pg_fixture.cc); null if it did not start.
  static campaigns::testing::PostgresServer* Server();

  void SetUp() override { CreateDatabase(); }

  // Creates this test's database (db_) in the process's cluster, starting
  // the cluster if this is the first test to need it.
  void CreateDatabase() {
    absl::StatusOr<std::string> db = CreateTestDatabase();
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
  }

  // A DSN of this test's database.
  std::string Dsn() const { return Server()->Dsn(db_); }

  // A Database on this test's database (one campaignd instance's view of
  // it); null after a test failure.
  std::unique_ptr<Database> OpenDatabase(DatabaseOptions options = {}) {
    options.dsn = Dsn();
    absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(options);
    EXPECT_TRUE(db.ok()) << db.status();
    return db.ok() ? *std::move(db) : nullptr;
  }

  std::unique_ptr<Connection> Connect() {
    absl::StatusOr<std::unique_ptr<Connection>> c = Connection::Open(Dsn());
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  // The number the query `sql` (one row, one column) answers, from a
  // connection of its own; -1 (and a failure) if it fails.
  int64_t Count(const std::string& sql) {
    std::unique_ptr<Connection> c = Connect();
    if (c == nullptr) return -1;
    absl::StatusOr<Rows> r = c->Query(sql);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? std::stoll(r->Text(0, 0)) : -1;
  }

  // Registers instance `id` as alive now (as its lease keeper's heartbeat
  // would): the work it owns is left to it (owners.h) for `ttl` after this.
  void RegisterInstance(const std::string& id) {
    std::unique_ptr<Connection> c = Connect();
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(c->Query("INSERT INTO instances(id, started_at, "
                         "heartbeat_at) SELECT $1, n, n FROM (SELECT "
                         "(extract(epoch FROM clock_timestamp()) * "
                         "1000000)::bigint AS n) AS now ON CONFLICT (id) DO "
                         "UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at",
                         {id})
                    .ok());
  }
  // Instance `id` stopped long ago (as after a kill -9): its work may be
  // taken over.
  void KillInstance(const std::string& id) {
    std::unique_ptr<Connection> c = Connect();
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(
        c->Query("UPDATE instances SET heartbeat_at = 0 WHERE id = $1", {id})
            .ok());
  }

  // Terminates every other session of this test's database (as a network
  // cut or a server-side kill would).
  void CutConnections() {
    std::unique_ptr<Connection> c = Connect();
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(c->Query("SELECT pg_terminate_backend(pid) FROM "
                         "pg_stat_activity WHERE datname = $1 AND pid <> "
                         "pg_backend_pid()",
                         {db_})
                    .ok());
  }

  std::string db_;
};

}  // namespace campaigns::storage::postgres::testing

#endif  // CAMPAIGND_TESTS_SUPPORT_PG_FIXTURE_H_
