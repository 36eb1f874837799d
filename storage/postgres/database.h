// The PostgreSQL database: one writer thread that group-commits, and a pool
// of read connections; the counterpart of storage/sqlite/database.h with
// the same contract for writes.
//
// Every write is an operation run on the writer thread inside the current
// group transaction (BEGIN ... COMMIT), each in its own SAVEPOINT when the
// group has several, so a failing operation rolls back alone. After the
// COMMIT, each operation's completion runs on the writer thread with the
// operation's status (or the commit's error). A completion must not block:
// it may queue further writes.
//
//   auto db = Database::Open({.dsn = "postgresql://..."});
//   (*db)->Write<int64_t>(
//       [](Connection& c) -> absl::StatusOr<int64_t> { ... },
//       [](absl::StatusOr<int64_t> r) { ... });      // after COMMIT
//   absl::StatusOr<int64_t> n = (*db)->Read(
//       [](Connection& c) -> absl::StatusOr<int64_t> { ... });
//
// When the server goes away: nothing is half-written (a transaction the
// server did not commit is rolled back by it). The operations of a group
// whose connection was lost before its COMMIT get UNAVAILABLE ("not
// written"); they are never run twice. If the connection is lost during the
// COMMIT itself, the writer reconnects and asks the server what became of
// the transaction: once no session holds it (pg_xact_status of its id), the
// marker row each group writes (commit_markers) decides; committed groups
// complete as committed, the others with UNAVAILABLE. Only if the server cannot
// be reached to ask does an operation get UNAVAILABLE saying the outcome is
// unknown (logged as an error; the writer tries for up to 30 s, long enough
// for a server restart); a session the server still thinks alive
// holding it is ended first. Meanwhile writes and reads answer UNAVAILABLE
// at once (one connection attempt per backoff interval), and the first
// write or read after the server is back reconnects: no restart of
// campaignd is needed. A stale connection found at BEGIN is replaced before
// any op runs.
//
// An op the server picks as a deadlock victim or fails with a
// serialization failure is undone and run once more, alone in a new
// transaction after its group's COMMIT (whose locks it may have waited
// for), before its ABORTED is reported: an op may therefore run twice and
// must not consume what it captured. A lock wait past kLockTimeout is
// reported as ABORTED at once.
//
// A group whose COMMIT is answered ROLLBACK (an op swallowed a failed
// statement) completes with INTERNAL for every op: nothing was written.
//
// Thread-safe: Write, WriteSync, Read, Autocommit and Flush may be called
// from any thread (WriteSync and Flush not from the writer thread itself).
#ifndef CAMPAIGND_STORAGE_POSTGRES_DATABASE_H_
#define CAMPAIGND_STORAGE_POSTGRES_DATABASE_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/domain/mutex.h"
#include "storage/postgres/connection.h"

namespace campaigns::storage::postgres {

struct DatabaseOptions {
  std::string dsn;
  // For a DSN without one (see Connection::Open); never logged.
  std::string password;
  int read_connections = 8;
  absl::Duration connect_timeout = absl::Seconds(5);
  // Group-commit bound: at most this many operations in one transaction
  // (each in a savepoint; PostgreSQL keeps 64 subtransactions per backend in
  // shared memory and slows down past that).
  int max_ops_per_commit = 64;
  // After a failed connection attempt, calls answer UNAVAILABLE at once
  // until the next attempt is due: min_reconnect_backoff after the first
  // failure, doubling up to max_reconnect_backoff.
  absl::Duration min_reconnect_backoff = absl::Milliseconds(100);
  absl::Duration max_reconnect_backoff = absl::Seconds(2);
  // How long RetryLater waits before calling back.
  absl::Duration retry_after = absl::Seconds(2);
  // Open migrates the schema (migrations.h) unless false.
  bool migrate = true;
  // Called when available() changes (the server became unreachable, or
  // reachable again), on the thread that found out, with no lock of the
  // Database held; must not block. Calls from two threads may arrive out
  // of order: read available() for the current state.
  std::function<void(bool available)> on_available;
  // Tests only: called on the writer thread with the writer's connection
  // just before each COMMIT (e.g. to cut the connection there).
  std::function<void(Connection&)> before_commit;
};

// The longest an Autocommit statement (a lease call) waits for a lock.
inline constexpr absl::Duration kAutocommitLockTimeout = absl::Seconds(2);

// What became of a transaction whose COMMIT got no answer.
enum class TransactionOutcome { kCommitted, kAborted, kInProgress, kUnknown };

// Asks the server (on `conn`, another session) about transaction `xid`
// (pg_current_xact_id() of that transaction, as text).
absl::StatusOr<TransactionOutcome> OutcomeOf(Connection& conn,
                                             const std::string& xid);

class Database {
 public:
  using WriteOp = std::function<absl::Status(Connection&)>;
  using WriteDone = std::function<void(absl::Status)>;

  // Connects (the error names the server and the cause; see Connection::
  // Open), migrates unless !options.migrate, and starts the writer thread.
  static absl::StatusOr<std::unique_ptr<Database>> Open(
      const DatabaseOptions& options);

  // Flushes and stops the writer; closes every connection.
  ~Database();

  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Queues `op`; `done` (may be null) runs on the writer thread after the
  // transaction holding `op` committed or rolled back. After Close(), `done`
  // is called at once with UNAVAILABLE.
  void WriteRaw(WriteOp op, WriteDone done);

  // Typed form of WriteRaw: `done` receives the value `op` returned, or the
  // status that stopped it.
  template <typename T>
  void Write(std::function<absl::StatusOr<T>(Connection&)> op,
             std::function<void(absl::StatusOr<T>)> done) {
    auto result = std::make_shared<std::optional<absl::StatusOr<T>>>();
    WriteRaw(
        [op = std::move(op), result](Connection& c) {
          *result = op(c);
          return (*result)->status();
        },
        [done = std::move(done), result](absl::Status status) {
          if (status.ok() && result->has_value()) {
            absl::StatusOr<T> out = std::move(**result);
            result->reset();
            done(std::move(out));
            return;
          }
          result->reset();
          done(std::move(status));
        });
  }

  // Runs `op` on the writer and waits for its commit.
  absl::Status WriteSync(WriteOp op);
  template <typename T>
  absl::StatusOr<T> WriteSync(
      std::function<absl::StatusOr<T>(Connection&)> op) {
    absl::StatusOr<T> result = absl::InternalError("write did not run");
    absl::Status status = WriteSync([&](Connection& c) {
      result = op(c);
      return result.status();
    });
    if (!status.ok()) return status;
    return result;
  }

  // Runs `fn(connection)` on a pooled read connection on the calling thread
  // and returns its status or value. A connection found lost is replaced and
  // `fn` run once more on the new one (reads change nothing); if the server
  // cannot be reached, UNAVAILABLE.
  template <typename T>
  absl::StatusOr<T> Read(
      const std::function<absl::StatusOr<T>(Connection&)>& fn) {
    std::optional<absl::StatusOr<T>> out;
    absl::Status leased = WithReader([&](Connection& c) {
      out = fn(c);
      return out->status();
    });
    if (!out.has_value()) return leased;
    return *std::move(out);
  }

  // Runs `fn(connection)` like Read, but for small writes that must not
  // queue behind the writer's group commits nor wait for a read connection
  // (lease heartbeats: a busy read pool must not cost an instance its
  // leases). It has a connection of its own, one call at a time; each
  // statement commits on its own (autocommit), and waits for a lock at most
  // kAutocommitLockTimeout (then ABORTED). `fn` must be idempotent: it
  // runs once more on a new connection if the first turned out lost.
  template <typename T>
  absl::StatusOr<T> Autocommit(
      const std::function<absl::StatusOr<T>(Connection&)>& fn) {
    std::optional<absl::StatusOr<T>> out;
    absl::Status ran = WithAutocommit([&](Connection& c) {
      out = fn(c);
      return out->status();
    });
    if (!out.has_value()) return ran;
    return *std::move(out);
  }

  // Calls `retry(true)` on the writer thread once options.retry_after has
  // passed, so that a chain of writes (an import's apply, a rollback in
  // chunks) that failed can try again later without spinning; or
  // `retry(false)` once, on the closing thread, if the database closes
  // first.
  void RetryLater(std::function<void(bool open)> retry);
  // RetryLater for a chain of writes named `chain` that failed with
  // `error`: logs it (a few lines a second at most), then calls `again`
  // later, or `closed` (may be null) if the database closes first.
  void AgainLater(absl::string_view chain, const absl::Status& error,
                  std::function<void()> again,
                  std::function<void()> closed = nullptr);

  // Blocks until every write queued before the call has completed.
  void Flush();

  // Flushes, stops the writer thread and refuses further writes. Idempotent.
  void Close();

  // False from a write that found the server unreachable until one reaches
  // it again.
  bool available() const { return available_.load(); }
  // Writes queued and not yet completed.
  int64_t queue_depth();
  int schema_version() const { return schema_version_; }
  // "host:port/database as user", for messages.
  const std::string& where() const { return where_; }

 private:
  struct Pending {
    WriteOp op;
    WriteDone done;
  };

  explicit Database(const DatabaseOptions& options);
  // Sets available_, and tells options_.on_available of a change. Returns
  // the previous value.
  bool SetAvailable(bool available);
  void WriterLoop();
  // While unavailable: one attempt to reach the server on the writer's
  // connection (writer thread).
  void Probe();
  // After a connection succeeded: the next attempt need not wait.
  void ResetBackoff();
  // Runs `batch` in one transaction and calls each op's done.
  void CommitBatch(std::vector<Pending>& batch);
  // A group's transaction: its id, and the token of the marker row it
  // writes (commit_markers), by which a lost COMMIT is judged.
  struct Group {
    std::string xid;
    std::string marker;
  };
  // BEGIN on the writer's connection (reconnecting once if it turns out
  // stale), and the group's marker row.
  absl::StatusOr<Group> Begin();
  // Runs one op, an exception becoming INTERNAL.
  static absl::Status RunOp(Connection& c, Pending& pending);
  // Runs the ops of `batch` into `results`, each in a savepoint when there
  // are several. Not OK when the transaction cannot go on (it must be
  // rolled back; lost if the connection is).
  absl::Status RunOps(Connection& c, std::vector<Pending>& batch,
                      std::vector<absl::Status>& results);
  // After a COMMIT without an answer (`committed`): asks the server what
  // became of transaction `xid` of session `backend`, and completes the
  // group by `finish` (committed, or unknown) or `not_written` (aborted).
  void ResolveLostCommit(
      const Group& group, int backend, const absl::Status& committed,
      const std::function<void(const absl::Status&)>& finish,
      const std::function<void(const absl::Status&)>& not_written);
  // A new connection, unless the last attempt failed and the next is not
  // due yet (then UNAVAILABLE at once; `now_anyway` tries regardless). Keeps
  // available_ and logs its changes.
  absl::StatusOr<std::unique_ptr<Connection>> Connect(bool now_anyway = false);
  // The writer's connection, reconnecting if it is lost; UNAVAILABLE (and
  // available_ false) when the server cannot be reached.
  absl::StatusOr<Connection*> WriterConnection();
  // Leases a read connection for `fn`, with Read's retry.
  absl::Status WithReader(const std::function<absl::Status(Connection&)>& fn);
  // Runs `fn` on the autocommit connection, with Read's retry.
  absl::Status WithAutocommit(
      const std::function<absl::Status(Connection&)>& fn);
  // fn(conn), an exception becoming INTERNAL.
  static absl::Status RunRead(
      Connection& conn, const std::function<absl::Status(Connection&)>& fn);

  const DatabaseOptions options_;
  std::string where_;
  int schema_version_ = 0;
  std::atomic<bool> available_{true};
  std::unique_ptr<Connection> writer_conn_;  // writer thread only
  uint64_t groups_ = 0;                      // writer thread only

  Mutex mu_;
  CondVar work_cv_;  // queue_ non-empty or closing_
  CondVar done_cv_;  // completed_ advanced
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  struct Retry {
    absl::Time due;
    std::function<void(bool open)> fn;
  };
  std::deque<Retry> retries_ ABSL_GUARDED_BY(mu_);  // by due time
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t enqueued_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t completed_ ABSL_GUARDED_BY(mu_) = 0;
  Mutex close_mu_;  // serialises Close()
  std::thread writer_ ABSL_GUARDED_BY(close_mu_);

  Mutex retry_mu_;
  absl::Time retry_at_ ABSL_GUARDED_BY(retry_mu_) = absl::InfinitePast();
  absl::Duration backoff_ ABSL_GUARDED_BY(retry_mu_) = absl::ZeroDuration();

  Mutex pool_mu_;
  CondVar pool_cv_;  // a reader slot was returned
  // Idle read connections; `readers_out_` are leased.
  std::vector<std::unique_ptr<Connection>> idle_readers_
      ABSL_GUARDED_BY(pool_mu_);
  int readers_out_ ABSL_GUARDED_BY(pool_mu_) = 0;

  Mutex autocommit_mu_;  // held for a whole Autocommit call
  std::unique_ptr<Connection> autocommit_conn_ ABSL_GUARDED_BY(autocommit_mu_);
};

}  // namespace campaigns::storage::postgres

#endif  // CAMPAIGND_STORAGE_POSTGRES_DATABASE_H_
