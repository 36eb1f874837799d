// Tests of storage/postgres/connection.h against a real PostgreSQL: every
// way a start can fail names its cause with its own code, and failures
// while running map to codes a caller can act on.
#include "storage/postgres/connection.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/support/pg_fixture.h"

namespace campaigns::storage::postgres::testing {
namespace {

using ConnectionTest = PgTest;

TEST_F(ConnectionTest, OpensAndReportsAVersionOfAtLeast15) {
  std::unique_ptr<Connection> c = Connect();
  ASSERT_NE(c, nullptr);
  EXPECT_GE(c->server_version(), kMinimumServerVersion);
  EXPECT_TRUE(c->ok());
  EXPECT_EQ(c->where(), absl::StrCat("127.0.0.1:", Server()->port(), "/", db_,
                                     " as ", Server()->user()));
}

TEST_F(ConnectionTest, SessionsEndIdleTransactionsAndBoundLockWaits) {
  std::unique_ptr<Connection> c = Connect();
  ASSERT_NE(c, nullptr);
  const auto show = [&](const char* setting) {
    absl::StatusOr<Rows> r = c->Query(absl::StrCat("SHOW ", setting));
    return r.ok() ? r->Text(0, 0) : r.status().ToString();
  };
  EXPECT_EQ(show("idle_in_transaction_session_timeout"), "30s");
  EXPECT_EQ(show("lock_timeout"), "10s");
  // Client-side TCP keepalives: a vanished server is noticed in seconds.
  int idle = 0;
  socklen_t len = sizeof(idle);
  ASSERT_EQ(getsockopt(c->socket(), IPPROTO_TCP, TCP_KEEPIDLE, &idle, &len), 0);
  EXPECT_EQ(idle, 10);
}

TEST_F(ConnectionTest, RefusedCredentialsAreUnauthenticatedWithoutThePassword) {
  const std::string wrong = "not-the-password-123";
  absl::StatusOr<std::unique_ptr<Connection>> c = Connection::Open(
      absl::StrCat("postgresql://", Server()->user(), ":", wrong,
                   "@127.0.0.1:", Server()->port(), "/", db_));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnauthenticated)
      << c.status();
  EXPECT_TRUE(
      absl::StrContains(c.status().message(), "refused the credentials"))
      << c.status();
  EXPECT_TRUE(absl::StrContains(c.status().message(),
                                absl::StrCat("as ", Server()->user())))
      << c.status();
  EXPECT_FALSE(absl::StrContains(c.status().message(), wrong)) << c.status();
  EXPECT_FALSE(absl::StrContains(c.status().message(), Server()->password()));
}

TEST_F(ConnectionTest, AnUnknownUserIsUnauthenticated) {
  absl::StatusOr<std::unique_ptr<Connection>> c = Connection::Open(absl::StrCat(
      "postgresql://nobody:x@127.0.0.1:", Server()->port(), "/", db_));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnauthenticated)
      << c.status();
}

TEST_F(ConnectionTest, AMissingPasswordIsUnauthenticated) {
  absl::StatusOr<std::unique_ptr<Connection>> c = Connection::Open(absl::StrCat(
      "postgresql://", Server()->user(), "@127.0.0.1:", Server()->port(), "/",
      db_, "?passfile=/nonexistent"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnauthenticated)
      << c.status();
}

// db_password: the config's secret completes a DSN without a password; a
// wrong one is refused like a wrong password in the DSN; a DSN that has one
// too is refused before connecting, naming both places.
TEST_F(ConnectionTest, APasswordGivenApartFromTheDsnIsUsed) {
  const std::string no_password = absl::StrCat(
      "postgresql://", Server()->user(), "@127.0.0.1:", Server()->port(), "/",
      db_, "?passfile=/nonexistent");
  absl::StatusOr<std::unique_ptr<Connection>> c =
      Connection::Open(no_password, absl::Seconds(10), Server()->password());
  ASSERT_TRUE(c.ok()) << c.status();
  c = Connection::Open(no_password, absl::Seconds(10), "wrong");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnauthenticated)
      << c.status();
  EXPECT_FALSE(absl::StrContains(c.status().message(), "wrong"));
  c = Connection::Open(Dsn(), absl::Seconds(10), Server()->password());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument)
      << c.status();
  EXPECT_TRUE(absl::StrContains(c.status().message(), "given twice"))
      << c.status();
  EXPECT_FALSE(absl::StrContains(c.status().message(), Server()->password()));
}

TEST_F(ConnectionTest, AnUnknownDatabaseIsNotFoundNamingIt) {
  absl::StatusOr<std::unique_ptr<Connection>> c =
      Connection::Open(Server()->Dsn("no_such_db"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound) << c.status();
  EXPECT_TRUE(absl::StrContains(c.status().message(), "no_such_db"))
      << c.status();
}

TEST_F(ConnectionTest, AnUnreachableServerIsUnavailable) {
  // Port 1 on loopback: nothing listens there, and only root could.
  absl::StatusOr<std::unique_ptr<Connection>> c =
      Connection::Open("postgresql://u:p@127.0.0.1:1/x", absl::Seconds(2));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable) << c.status();
  EXPECT_TRUE(absl::StrContains(c.status().message(), "127.0.0.1:1/x as u"))
      << c.status();
  EXPECT_TRUE(absl::StrContains(c.status().message(), "cannot be reached"))
      << c.status();
}

TEST_F(ConnectionTest, AMalformedDsnIsInvalidArgument) {
  for (const std::string dsn :
       {"postgresql://u:p@127.0.0.1:notaport/x", "postgresql://u@h/x?bogus=1",
        "host=127.0.0.1 port"}) {
    absl::StatusOr<std::unique_ptr<Connection>> c = Connection::Open(dsn);
    ASSERT_FALSE(c.ok()) << dsn;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument)
        << dsn << ": " << c.status();
  }
  EXPECT_EQ(DescribeDsn("host=127.0.0.1 port").status().code(),
            absl::StatusCode::kInvalidArgument);
  // libpq's own message would quote the bad percent-encoding: the password.
  absl::StatusOr<std::string> bad =
      DescribeDsn("postgresql://u:s3cr%zzet@h/db");
  ASSERT_FALSE(bad.ok());
  EXPECT_FALSE(absl::StrContains(bad.status().message(), "s3cr"))
      << bad.status();
}

TEST_F(ConnectionTest, DescribeDsnNamesWhereButNeverThePassword) {
  absl::StatusOr<std::string> d =
      DescribeDsn("postgresql://alice:s3cret@db.example:6543/campaignd");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, "db.example:6543/campaignd as alice");
  d = DescribeDsn("host=10.0.0.5 user=bob password=s3cret dbname=c");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, "10.0.0.5:5432/c as bob");
}

TEST_F(ConnectionTest, QueriesTakeParametersAndNulls) {
  std::unique_ptr<Connection> c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Exec("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)").ok());
  absl::StatusOr<Rows> ins =
      c->Query("INSERT INTO t VALUES ($1, $2), ($3, $4)",
               {"a", "it's \"quoted\"; DROP TABLE t", "b", std::nullopt});
  ASSERT_TRUE(ins.ok()) << ins.status();
  EXPECT_EQ(ins->affected(), 2);
  absl::StatusOr<Rows> rows = c->Query("SELECT k, v FROM t ORDER BY k");
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 2);
  EXPECT_EQ(rows->Text(0, 1), "it's \"quoted\"; DROP TABLE t");
  EXPECT_EQ(rows->Get(1, 1), std::nullopt);
  EXPECT_EQ(rows->Text(1, 1), "");
  // A NUL would be cut short by libpq: refused, nothing stored.
  absl::StatusOr<Rows> nul =
      c->Query("INSERT INTO t VALUES ('n', $1)", {std::string("ab\0cd", 5)});
  EXPECT_EQ(nul.status().code(), absl::StatusCode::kInvalidArgument)
      << nul.status();
  rows = c->Query("SELECT count(*) FROM t");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->Text(0, 0), "2");
}

TEST_F(ConnectionTest, FailuresMapToCodesACallerCanActOn) {
  std::unique_ptr<Connection> c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Exec("CREATE TABLE t (k TEXT PRIMARY KEY)").ok());
  ASSERT_TRUE(c->Query("INSERT INTO t VALUES ($1)", {"a"}).ok());
  absl::StatusOr<Rows> dup = c->Query("INSERT INTO t VALUES ($1)", {"a"});
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kAlreadyExists)
      << dup.status();
  EXPECT_TRUE(absl::StrContains(dup.status().message(), "[23505]"))
      << dup.status();
  // Only the primary message: the DETAIL quotes the row's value.
  EXPECT_FALSE(absl::StrContains(dup.status().message(), "(a)"))
      << dup.status();
  // A row another needs is missing: FAILED_PRECONDITION, with its SQLSTATE.
  ASSERT_TRUE(c->Exec("CREATE TABLE child (k TEXT REFERENCES t(k))").ok());
  absl::StatusOr<Rows> orphan =
      c->Query("INSERT INTO child VALUES ($1)", {"nobody"});
  EXPECT_EQ(orphan.status().code(), absl::StatusCode::kFailedPrecondition)
      << orphan.status();
  EXPECT_EQ(SqlStateOf(orphan.status()), "23503");
  // A lock held elsewhere past lock_timeout is ABORTED: retry later.
  std::unique_ptr<Connection> other = Connect();
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(other->Exec("BEGIN; SELECT * FROM t FOR UPDATE").ok());
  ASSERT_TRUE(c->Exec("SET lock_timeout = '50ms'").ok());
  absl::Status locked = c->Exec("UPDATE t SET k = 'b'");
  EXPECT_EQ(locked.code(), absl::StatusCode::kAborted) << locked;
  ASSERT_TRUE(other->Exec("ROLLBACK").ok());
  absl::Status bad = c->Exec("SELECT * FROM no_such_table");
  EXPECT_EQ(bad.code(), absl::StatusCode::kInternal) << bad;
  EXPECT_TRUE(absl::StrContains(bad.message(), "no_such_table")) << bad;
  // A serialization failure is ABORTED: the transaction may be retried.
  absl::Status serial = c->Exec(
      "DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40001'; END $$");
  EXPECT_EQ(serial.code(), absl::StatusCode::kAborted) << serial;
  absl::Status full = c->Exec(
      "DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '53100'; END $$");
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  // The connection is still usable after errors.
  EXPECT_TRUE(c->Query("SELECT 1").ok());
}

TEST_F(ConnectionTest, ALostConnectionIsUnavailableAndANewOneWorks) {
  std::unique_ptr<Connection> c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Exec("CREATE TABLE t (k TEXT)").ok());
  ASSERT_TRUE(Server()->Restart().ok());
  absl::StatusOr<Rows> r = c->Query("SELECT count(*) FROM t");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_FALSE(c->ok());
  std::unique_ptr<Connection> again = Connect();
  ASSERT_NE(again, nullptr);
  r = again->Query("SELECT count(*) FROM t");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->Text(0, 0), "0");
}

}  // namespace
}  // namespace campaigns::storage::postgres::testing
