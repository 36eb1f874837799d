// Tests of storage/postgres/database.h against a real PostgreSQL: group
// commits, a failing op rolled back alone, and what happens when the
// connection or the server goes away: nothing half-written, UNAVAILABLE
// while it is away, and back without a restart.
#include "storage/postgres/database.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "server/domain/errors.h"
#include "storage/postgres/migrations.h"
#include "tests/support/pg_fixture.h"

namespace campaigns::storage::postgres::testing {
namespace {

class DatabaseTest : public PgTest {
 protected:
  std::unique_ptr<Database> OpenDb(DatabaseOptions options = {}) {
    std::unique_ptr<Database> db = OpenDatabase(std::move(options));
    if (db == nullptr) return nullptr;
    EXPECT_TRUE(db->WriteSync([](Connection& c) {
                    return c.Exec(
                        "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY)");
                  }).ok());
    return db;
  }

  // Returns once the writer runs this op in a group of its own, and keeps
  // the writer busy until `release` is notified: the ops queued meanwhile
  // form the next group, together. (Returning at once let a late writer
  // take the first ops queued into the held group.)
  static void HoldWriter(Database& db, absl::Notification* release) {
    auto held = std::make_shared<absl::Notification>();
    db.WriteRaw(
        [release, held](Connection&) {
          held->Notify();
          release->WaitForNotification();
          return absl::OkStatus();
        },
        nullptr);
    held->WaitForNotification();
  }

  static Database::WriteOp Insert(const std::string& k) {
    return [k](Connection& c) {
      return c.Query("INSERT INTO t VALUES ($1)", {k}).status();
    };
  }

  // The keys in t, from a connection of their own.
  std::string Keys() {
    std::unique_ptr<Connection> c = Connect();
    if (c == nullptr) return "?";
    absl::StatusOr<Rows> r =
        c->Query("SELECT coalesce(string_agg(k, ',' ORDER BY k), '') FROM t");
    return r.ok() ? r->Text(0, 0) : r.status().ToString();
  }
};

TEST_F(DatabaseTest, OpenMigratesAndWritesCommitBeforeTheirCompletion) {
  std::unique_ptr<Database> db = OpenDb();
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->schema_version(), LatestSchemaVersion());
  std::atomic<int> seen{0};
  for (int i = 0; i < 50; ++i) {
    db->WriteRaw(Insert(absl::StrCat("k", i)), [&, i](absl::Status s) {
      ASSERT_TRUE(s.ok()) << s;
      // Committed: another session sees it.
      std::unique_ptr<Connection> c = Connection::Open(Dsn()).value();
      absl::StatusOr<Rows> r = c->Query("SELECT count(*) FROM t WHERE k = $1",
                                        {absl::StrCat("k", i)});
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->Text(0, 0), "1") << i;
      ++seen;
    });
  }
  db->Flush();
  EXPECT_EQ(seen.load(), 50);
  absl::StatusOr<int64_t> n =
      db->Read<int64_t>([](Connection& c) -> absl::StatusOr<int64_t> {
        absl::StatusOr<Rows> r = c.Query("SELECT count(*) FROM t");
        if (!r.ok()) return r.status();
        return std::stoll(r->Text(0, 0));
      });
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 50);
}

TEST_F(DatabaseTest, AFailingOpRollsBackAloneInItsGroup) {
  std::unique_ptr<Database> db = OpenDb();
  ASSERT_NE(db, nullptr);
  absl::Notification release;
  HoldWriter(*db, &release);
  std::vector<absl::Status> results(4);
  db->WriteRaw(Insert("a"), [&](absl::Status s) { results[0] = s; });
  // Writes a row, then fails: the row must not stay.
  db->WriteRaw(
      [](Connection& c) {
        absl::Status s = c.Query("INSERT INTO t VALUES ('half')").status();
        if (!s.ok()) return s;
        return c.Exec("INSERT INTO no_such_table VALUES (1)");
      },
      [&](absl::Status s) { results[1] = s; });
  db->WriteRaw(Insert("a"), [&](absl::Status s) { results[2] = s; });  // dup
  db->WriteRaw(Insert("b"), [&](absl::Status s) { results[3] = s; });
  release.Notify();
  db->Flush();
  EXPECT_TRUE(results[0].ok()) << results[0];
  EXPECT_EQ(results[1].code(), absl::StatusCode::kInternal) << results[1];
  EXPECT_EQ(results[2].code(), absl::StatusCode::kAlreadyExists) << results[2];
  EXPECT_TRUE(results[3].ok()) << results[3];
  EXPECT_EQ(Keys(), "a,b");
}

TEST_F(DatabaseTest, AConnectionLostMidTransactionWritesNothingAndRecovers) {
  std::unique_ptr<Database> db = OpenDb();
  ASSERT_NE(db, nullptr);
  absl::Notification release;
  HoldWriter(*db, &release);
  std::vector<absl::Status> results(3);
  db->WriteRaw(Insert("x"), [&](absl::Status s) { results[0] = s; });
  db->WriteRaw(
      [](Connection& c) {
        // The server ends this very session in the middle of the group.
        (void)c.Exec("SELECT pg_terminate_backend(pg_backend_pid())");
        return c.Exec("SELECT 1");
      },
      [&](absl::Status s) { results[1] = s; });
  db->WriteRaw(Insert("y"), [&](absl::Status s) { results[2] = s; });
  release.Notify();
  db->Flush();
  for (const absl::Status& s : results) {
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), "nothing was written")) << s;
  }
  EXPECT_EQ(Keys(), "");
  // The next write reconnects.
  EXPECT_TRUE(db->WriteSync(Insert("z")).ok());
  EXPECT_EQ(Keys(), "z");
  EXPECT_TRUE(db->available());
}

TEST_F(DatabaseTest, ACommitWithoutAnAnswerIsResolvedByAskingTheServer) {
  // The connection is cut just before COMMIT: the server never commits,
  // and the writer, once reconnected, learns so from pg_xact_status.
  DatabaseOptions options;
  std::atomic<bool> cut{false};
  options.before_commit = [&](Connection& c) {
    if (cut.exchange(false)) {
      (void)c.Exec("SELECT pg_terminate_backend(pg_backend_pid())");
    }
  };
  std::unique_ptr<Database> db = OpenDb(options);
  ASSERT_NE(db, nullptr);
  cut = true;
  absl::Status s = db->WriteSync(Insert("lost"));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "nothing was written")) << s;
  EXPECT_EQ(Keys(), "");
  EXPECT_TRUE(db->WriteSync(Insert("kept")).ok());
  EXPECT_EQ(Keys(), "kept");
}

TEST_F(DatabaseTest, ACommitWhoseAnswerIsLostIsReportedWritten) {
  // The COMMIT reaches the server and commits; its answer never reaches
  // the writer (a forwarder passes the request on, drops the answer and
  // closes). The writer, reconnected, finds the group's marker: written.
  DatabaseOptions options;
  std::atomic<bool> cut{false};
  int kept = -1;
  std::thread forwarder;
  options.before_commit = [&](Connection& c) {
    if (!cut.exchange(false)) return;
    int pair[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    kept = dup(c.socket());
    dup2(pair[0], c.socket());
    close(pair[0]);
    forwarder = std::thread([peer = pair[1], server = kept] {
      char buf[8192];
      const ssize_t n = read(peer, buf, sizeof(buf));  // the COMMIT
      if (n > 0 && write(server, buf, static_cast<size_t>(n)) == n) {
        (void)read(server, buf, sizeof(buf));  // its answer, dropped
      }
      shutdown(peer, SHUT_RDWR);
      close(peer);
    });
  };
  std::unique_ptr<Database> db = OpenDb(options);
  ASSERT_NE(db, nullptr);
  cut = true;
  absl::Status s = db->WriteSync(Insert("kept"));
  if (forwarder.joinable()) forwarder.join();
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(Keys(), "kept");
  if (kept >= 0) close(kept);
}

TEST_F(DatabaseTest, OldCommitMarkersAreCleanedUp) {
  std::unique_ptr<Database> db = OpenDb();
  ASSERT_NE(db, nullptr);
  std::unique_ptr<Connection> c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(
      c->Exec("INSERT INTO commit_markers(token, at) VALUES ('old', 0)").ok());
  // The cleanup runs once every 1000 groups.
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(
        db->WriteSync([](Connection&) { return absl::OkStatus(); }).ok());
  }
  absl::StatusOr<Rows> r = c->Query(
      "SELECT count(*) FILTER (WHERE token = 'old'), count(*) FROM "
      "commit_markers");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->Text(0, 0), "0");
  EXPECT_GE(std::stoi(r->Text(0, 1)), 1000);
}

TEST_F(DatabaseTest, ACommitLostWhileTheSessionLivesOnEndsItAndWritesNothing) {
  // Just before COMMIT the client's socket is swapped for one end of a
  // socket pair whose other end reads nothing and says EOF: the COMMIT never
  // reaches the server, whose session stays idle in the transaction,
  // holding its row lock (a network cut the server has not noticed yet).
  // The writer ends that session and learns the transaction was aborted,
  // instead of answering "unknown".
  DatabaseOptions options;
  std::atomic<bool> cut{false};
  int kept = -1, peer = -1;
  options.before_commit = [&](Connection& c) {
    if (!cut.exchange(false)) return;
    int pair[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    kept = dup(c.socket());  // the server's session stays connected
    dup2(pair[0], c.socket());
    close(pair[0]);
    peer = pair[1];
    shutdown(peer, SHUT_WR);
  };
  std::unique_ptr<Database> db = OpenDb(options);
  ASSERT_NE(db, nullptr);
  cut = true;
  absl::Status s = db->WriteSync(Insert("lost"));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "nothing was written")) << s;
  EXPECT_EQ(Keys(), "");
  // The old session's lock on "lost" is gone: the same key is written.
  EXPECT_TRUE(db->WriteSync(Insert("lost")).ok());
  EXPECT_EQ(Keys(), "lost");
  if (kept >= 0) close(kept);
  if (peer >= 0) close(peer);
}

TEST_F(DatabaseTest, ADeadlockVictimRunsOnceMoreAndItsFirstTryLeavesNothing) {
  std::unique_ptr<Database> db = OpenDb();
  ASSERT_NE(db, nullptr);
  // Inserts its key, then fails as a serialization failure would on its
  // first `failures` runs.
  const auto flaky = [](const std::string& key, int failures,
                        std::shared_ptr<std::atomic<int>> runs) {
    return [key, failures, runs](Connection& c) -> absl::Status {
      absl::Status s = c.Query("INSERT INTO t VALUES ($1)", {key}).status();
      if (!s.ok()) return s;
      if (runs->fetch_add(1) < failures) {
        return c.Exec(
            "DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40001'; "
            "END $$");
      }
      return absl::OkStatus();
    };
  };
  auto alone = std::make_shared<std::atomic<int>>(0);
  EXPECT_TRUE(db->WriteSync(flaky("alone", 1, alone)).ok());
  EXPECT_EQ(alone->load(), 2);
  // In a group: undone to its savepoint, the group commits, and it runs
  // again alone; one that keeps failing gives up after that.
  absl::Notification release;
  HoldWriter(*db, &release);
  auto grouped = std::make_shared<std::atomic<int>>(0);
  auto doomed = std::make_shared<std::atomic<int>>(0);
  std::vector<absl::Status> results(3);
  db->WriteRaw(flaky("grouped", 1, grouped),
               [&](absl::Status s) { results[0] = s; });
  db->WriteRaw(flaky("doomed", 5, doomed),
               [&](absl::Status s) { results[1] = s; });
  db->WriteRaw(Insert("plain"), [&](absl::Status s) { results[2] = s; });
  release.Notify();
  db->Flush();
  EXPECT_TRUE(results[0].ok()) << results[0];
  EXPECT_EQ(grouped->load(), 2);
  EXPECT_EQ(results[1].code(), absl::StatusCode::kAborted) << results[1];
  EXPECT_EQ(doomed->load(), 3);  // in its group, then twice alone
  EXPECT_TRUE(results[2].ok()) << results[2];
  EXPECT_EQ(Keys(), "alone,grouped,plain");
}

TEST_F(DatabaseTest, AnOpThatIgnoresAFailedStatementIsNotReportedWritten) {
  std::unique_ptr<Database> db = OpenDb();
  ASSERT_NE(db, nullptr);
  const Database::WriteOp sloppy = [](Connection& c) {
    (void)c.Query("INSERT INTO t VALUES ('sloppy')").status();
    (void)c.Exec("INSERT INTO no_such_table VALUES (1)");
    return absl::OkStatus();
  };
  // Alone in its group: the server answers the COMMIT with ROLLBACK.
  absl::Status alone = db->WriteSync(sloppy);
  EXPECT_EQ(alone.code(), absl::StatusCode::kInternal) << alone;
  // In a group: it alone fails, the others are written.
  absl::Notification release;
  HoldWriter(*db, &release);
  std::vector<absl::Status> results(3);
  db->WriteRaw(Insert("a"), [&](absl::Status s) { results[0] = s; });
  db->WriteRaw(sloppy, [&](absl::Status s) { results[1] = s; });
  db->WriteRaw(Insert("b"), [&](absl::Status s) { results[2] = s; });
  release.Notify();
  db->Flush();
  EXPECT_TRUE(results[0].ok()) << results[0];
  EXPECT_EQ(results[1].code(), absl::StatusCode::kInternal) << results[1];
  EXPECT_TRUE(results[2].ok()) << results[2];
  EXPECT_EQ(Keys(), "a,b");
}

TEST_F(DatabaseTest, AConnectionGoneStaleWhileIdleIsReplacedBeforeTheWrite) {
  std::unique_ptr<Database> db = OpenDb();
  ASSERT_NE(db, nullptr);
  CutConnections();  // the writer's idle session ends; it does not know yet
  EXPECT_TRUE(db->WriteSync(Insert("fresh")).ok());
  EXPECT_EQ(Keys(), "fresh");
  EXPECT_TRUE(db->available());
}

TEST_F(DatabaseTest, WhileUnreachableCallsFailAtOnceUntilTheNextAttemptIsDue) {
  DatabaseOptions options;
  options.min_reconnect_backoff = absl::Hours(1);
  std::unique_ptr<Database> db = OpenDb(options);
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(Server()->Stop().ok());
  absl::Status first = db->WriteSync(Insert("a"));
  EXPECT_EQ(first.code(), absl::StatusCode::kUnavailable) << first;
  // The server is back, but the next attempt is not due: no new attempt.
  ASSERT_TRUE(Server()->StartAgain().ok());
  absl::Status second = db->WriteSync(Insert("b"));
  EXPECT_EQ(second.code(), absl::StatusCode::kUnavailable) << second;
  EXPECT_TRUE(absl::StrContains(second.message(), "next attempt in")) << second;
  absl::StatusOr<int64_t> r = db->Read<int64_t>(
      [](Connection&) -> absl::StatusOr<int64_t> { return 1; });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_EQ(Keys(), "");
}

TEST_F(DatabaseTest, OutcomeOfTellsCommittedFromAborted) {
  std::unique_ptr<Connection> a = Connect();
  std::unique_ptr<Connection> b = Connect();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(a->Exec("CREATE TABLE t (k TEXT)").ok());
  const auto xid_of = [&](const char* end) {
    EXPECT_TRUE(a->Exec("BEGIN").ok());
    absl::StatusOr<Rows> x = a->Query("SELECT pg_current_xact_id()::text");
    EXPECT_TRUE(a->Exec("INSERT INTO t VALUES ('v')").ok());
    EXPECT_TRUE(a->Exec(end).ok());
    return x.ok() ? x->Text(0, 0) : "";
  };
  const std::string committed = xid_of("COMMIT");
  const std::string aborted = xid_of("ROLLBACK");
  EXPECT_EQ(OutcomeOf(*b, committed).value(), TransactionOutcome::kCommitted);
  EXPECT_EQ(OutcomeOf(*b, aborted).value(), TransactionOutcome::kAborted);
  ASSERT_TRUE(a->Exec("BEGIN").ok());
  absl::StatusOr<Rows> open = a->Query("SELECT pg_current_xact_id()::text");
  ASSERT_TRUE(open.ok());
  EXPECT_EQ(OutcomeOf(*b, open->Text(0, 0)).value(),
            TransactionOutcome::kInProgress);
  ASSERT_TRUE(a->Exec("ROLLBACK").ok());
}

TEST_F(DatabaseTest, WhileTheServerIsAwayCallsAreUnavailableAndThenWorkAgain) {
  // No backoff between connection attempts: the first call after the
  // server is back reconnects, however soon it comes (with one, a call
  // before the next attempt is due answers UNAVAILABLE at once, by design).
  DatabaseOptions options;
  options.min_reconnect_backoff = absl::ZeroDuration();
  options.max_reconnect_backoff = absl::ZeroDuration();
  std::unique_ptr<Database> db = OpenDb(options);
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->WriteSync(Insert("before")).ok());
  ASSERT_TRUE(Server()->Stop().ok());
  const absl::Time start = absl::Now();
  absl::Status w = db->WriteSync(Insert("during"));
  EXPECT_EQ(w.code(), absl::StatusCode::kUnavailable) << w;
  EXPECT_FALSE(db->available());
  absl::StatusOr<int64_t> r =
      db->Read<int64_t>([](Connection& c) -> absl::StatusOr<int64_t> {
        return c.Query("SELECT 1").status();
      });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  // Refused, not hung: well within the connect timeout of each attempt.
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  ASSERT_TRUE(Server()->StartAgain().ok());
  EXPECT_TRUE(db->WriteSync(Insert("after")).ok());
  EXPECT_TRUE(db->available());
  r = db->Read<int64_t>([](Connection& c) -> absl::StatusOr<int64_t> {
    absl::StatusOr<Rows> rows = c.Query("SELECT count(*) FROM t");
    if (!rows.ok()) return rows.status();
    return std::stoll(rows->Text(0, 0));
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, 2);
  EXPECT_EQ(Keys(), "after,before");
}

TEST_F(DatabaseTest, AvailabilityComesBackWithoutAWriteOnceTheServerIsBack) {
  Mutex mu;
  std::vector<bool> changes;
  DatabaseOptions options;
  options.on_available = [&](bool available) {
    MutexLock lock(&mu);
    changes.push_back(available);
  };
  std::unique_ptr<Database> db = OpenDb(options);
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(Server()->Stop().ok());
  EXPECT_EQ(db->WriteSync(Insert("during")).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_FALSE(db->available());
  ASSERT_TRUE(Server()->StartAgain().ok());
  // Nothing writes or reads: the idle writer finds the server by itself.
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  while (!db->available() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(db->available());
  // Again, found out by a read this time: the idle writer, which waited
  // without a timeout while available, is woken to look.
  ASSERT_TRUE(Server()->Stop().ok());
  EXPECT_EQ(db->Read<int64_t>([](Connection& c) -> absl::StatusOr<int64_t> {
                return c.Query("SELECT 1").status();
              })
                .status()
                .code(),
            absl::StatusCode::kUnavailable);
  EXPECT_FALSE(db->available());
  ASSERT_TRUE(Server()->StartAgain().ok());
  const absl::Time again = absl::Now() + absl::Seconds(15);
  while (!db->available() && absl::Now() < again) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(db->available());
  MutexLock lock(&mu);
  EXPECT_EQ(changes, (std::vector<bool>{false, true, false, true}));
}

TEST_F(DatabaseTest, AReadOnALostConnectionRetriesOnANewOne) {
  std::unique_ptr<Database> db = OpenDb();
  ASSERT_NE(db, nullptr);
  const auto count = [&] {
    return db->Read<int64_t>([](Connection& c) -> absl::StatusOr<int64_t> {
      absl::StatusOr<Rows> rows = c.Query("SELECT count(*) FROM t");
      if (!rows.ok()) return rows.status();
      return std::stoll(rows->Text(0, 0));
    });
  };
  ASSERT_TRUE(count().ok());  // a pooled reader now exists
  CutConnections();
  absl::StatusOr<int64_t> n = count();
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 0);
}

// Heartbeats go through Autocommit: with every read connection out (slow
// reports), they still run at once on a connection of their own.
TEST_F(DatabaseTest, AutocommitDoesNotWaitForABusyReadPool) {
  DatabaseOptions options;
  options.read_connections = 1;
  std::unique_ptr<Database> db = OpenDb(options);
  ASSERT_NE(db, nullptr);
  absl::Notification reading, release;
  std::thread reader([&] {
    (void)db->Read<int>([&](Connection&) -> absl::StatusOr<int> {
      reading.Notify();
      release.WaitForNotification();
      return 0;
    });
  });
  reading.WaitForNotification();
  auto wrote = std::async(std::launch::async, [&] {
    return db->Autocommit<int>([](Connection& c) -> absl::StatusOr<int> {
      RETURN_IF_ERROR(c.Query("INSERT INTO t VALUES ('beat')").status());
      return 1;
    });
  });
  const bool in_time =
      wrote.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  release.Notify();
  reader.join();
  ASSERT_TRUE(in_time) << "Autocommit waited for the read pool";
  EXPECT_TRUE(wrote.get().ok());
  EXPECT_EQ(Keys(), "beat");
}

// The autocommit connection is replaced when found lost, like a reader.
TEST_F(DatabaseTest, AnAutocommitOnALostConnectionRetriesOnANewOne) {
  std::unique_ptr<Database> db = OpenDb();
  ASSERT_NE(db, nullptr);
  const auto insert = [&](const std::string& k) {
    return db->Autocommit<int>([k](Connection& c) -> absl::StatusOr<int> {
      RETURN_IF_ERROR(
          c.Query("INSERT INTO t VALUES ($1) ON CONFLICT DO NOTHING", {k})
              .status());
      return 1;
    });
  };
  ASSERT_TRUE(insert("a").ok());
  CutConnections();
  absl::StatusOr<int> again = insert("b");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(Keys(), "a,b");
}

TEST_F(DatabaseTest, RetryLaterCallsBackOnTheWriterOrOnceAtClose) {
  DatabaseOptions options;
  options.retry_after = absl::Milliseconds(20);
  std::unique_ptr<Database> db = OpenDb(options);
  ASSERT_NE(db, nullptr);
  std::promise<bool> first;
  db->RetryLater([&](bool open) {
    // On the writer thread: a write queued from here is not waited for.
    db->WriteRaw(Insert("again"), nullptr);
    first.set_value(open);
  });
  EXPECT_TRUE(first.get_future().get());
  db->Flush();
  EXPECT_EQ(Keys(), "again");

  options.retry_after = absl::Hours(1);
  std::unique_ptr<Database> slow = OpenDb(options);
  ASSERT_NE(slow, nullptr);
  std::vector<bool> calls;
  slow->RetryLater([&](bool open) { calls.push_back(open); });
  slow->Close();
  EXPECT_EQ(calls, std::vector<bool>{false});
  slow->RetryLater([&](bool open) { calls.push_back(open); });
  EXPECT_EQ(calls, (std::vector<bool>{false, false}));
}

TEST_F(DatabaseTest, AfterCloseWritesAreUnavailable) {
  std::unique_ptr<Database> db = OpenDb();
  ASSERT_NE(db, nullptr);
  db->Close();
  EXPECT_EQ(db->WriteSync(Insert("late")).code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace campaigns::storage::postgres::testing
