// The SQLite database: one writer thread that group-commits, and a pool of
// read connections.
//
// Every write is an operation run on the writer thread inside the current
// group transaction (BEGIN IMMEDIATE ... COMMIT), each in its own SAVEPOINT so
// a failing operation rolls back alone. After the COMMIT, each operation's
// completion runs on the writer thread with the operation's status (or the
// commit's error). A completion must not block: it may queue further writes.
//
//   auto db = Database::Open({.path = "campaignd.db"});
//   (*db)->Write<int64_t>(
//       [](SQLite::Database& w) -> absl::StatusOr<int64_t> { ... },
//       [](absl::StatusOr<int64_t> r) { ... });       // after COMMIT
//   int64_t n = (*db)->Read([](SQLite::Database& r) { ... });
//
// Reads that run often keep their prepared statements (ReadPrepared,
// StatementCache) instead of parsing their SQL on every call:
//
//   db->ReadPrepared([&](SQLite::Database&, StatementCache& statements) {
//     StatementCache::Use st = statements.Get("SELECT ... WHERE id=?");
//     st->bind(1, id);
//     ...
//   });
//
// Checkpoints run on a thread of their own (PASSIVE, on their own
// connection), woken by the writer's WAL hook, so a slow fsync never holds up
// the writer.
//
// Thread-safe: Write, WriteSync, Read and Flush may be called from any thread
// (WriteSync and Flush not from the writer thread itself). Exceptions thrown by
// SQLiteCpp inside operations are caught here and become statuses.
#ifndef CAMPAIGND_STORAGE_SQLITE_DATABASE_H_
#define CAMPAIGND_STORAGE_SQLITE_DATABASE_H_

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/domain/metrics.h"
#include "server/domain/mutex.h"
#include "storage/sqlite/instance_lock.h"

struct sqlite3;

namespace campaigns::storage {

struct DatabaseOptions {
  std::string path = "campaignd.db";
  // synchronous=FULL instead of NORMAL (survives power loss, slower).
  bool synchronous_full = false;
  int read_connections = 8;
  absl::Duration busy_timeout = absl::Seconds(5);
  // Group-commit bounds: at most this many operations or this much time in
  // one transaction.
  int max_ops_per_commit = 1000;
  absl::Duration max_commit_time = absl::Milliseconds(5);
  // WAL pages after which the checkpointer thread copies the WAL into the
  // database. Checkpoints (and their fsyncs) run there, never on the writer.
  int checkpoint_pages = 1000;
  // WAL pages beyond which the checkpointer also makes the next write start
  // the WAL afresh (SQLITE_CHECKPOINT_RESTART): under writes that never
  // pause, passive checkpoints never let it restart, and a WAL of gigabytes
  // makes every page lookup slower (the cost of an import grew faster than
  // its rows). The restart waits at most restart_wait for the writer and
  // readers, holding new writes back meanwhile; if they are still busy it
  // gives up until the next time.
  int restart_pages = 16384;  // 64 MiB of 4 KiB pages
  absl::Duration restart_wait = absl::Milliseconds(20);
  // Told of every transaction's duration and size; null = none. Must
  // outlive the database.
  Metrics* metrics = nullptr;
  // While writable() is false and no write is queued, the writer commits a
  // write of its own this often (it rewrites the schema version) to find
  // out when writes succeed again.
  absl::Duration writable_probe_every = absl::Seconds(2);
  // Called when writable() changes (on the writer thread, or on the thread
  // whose read found the file corrupt); may be null.
  std::function<void(bool writable)> on_writable;
  // Open runs PRAGMA quick_check and refuses a database that fails it. It
  // reads every page: seconds on a large file (see the README).
  bool check_on_open = true;
  // The SQLite VFS every connection opens through (sqlite3_vfs_register);
  // empty = SQLite's default. Tests name a fault-injecting one.
  std::string vfs;
  // Refuse to open a database file another process opened with this set
  // (InstanceLock): the server sets it, so two campaignd never dispatch
  // from one file. In-memory and URI paths are not locked.
  bool single_instance = false;
};

// How long a caller told "disk full" (errors::StorageFull) is asked to wait
// before retrying: a few of the writer's writable probes (every 2 s by
// default), time for an operator to free space.
inline constexpr absl::Duration kStorageFullRetryAfter = absl::Seconds(10);

// Converts a SQLiteCpp / std exception to a status: BUSY/LOCKED ->
// UNAVAILABLE, CONSTRAINT -> ALREADY_EXISTS, FULL -> RESOURCE_EXHAUSTED /
// STORAGE_FULL with kStorageFullRetryAfter, else INTERNAL (a corrupt file
// says so). Messages never contain SQL text.
absl::Status StatusFromException(const std::exception& e);

// The prepared statements of one connection, by SQL text, kept until the
// connection closes. Callers use fixed SQL texts (values are bound, never
// spliced in), so it stays small. Used only by whoever holds the connection
// (a read lease), so it has no lock: not thread-safe.
class StatementCache {
 public:
  // A statement in use; reset when it goes out of scope, so that the
  // connection holds no read snapshot while idle.
  class Use {
   public:
    explicit Use(SQLite::Statement* st) : st_(st) {}
    ~Use() { st_->tryReset(); }
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;
    SQLite::Statement& operator*() const { return *st_; }
    SQLite::Statement* operator->() const { return st_; }

   private:
    SQLite::Statement* const st_;
  };

  explicit StatementCache(SQLite::Database* db) : db_(db) {}

  // The statement of `sql`, prepared on first use, reset and with no
  // bindings. Throws as SQLite::Statement's constructor does.
  Use Get(const std::string& sql);

 private:
  SQLite::Database* const db_;
  std::unordered_map<std::string, std::unique_ptr<SQLite::Statement>>
      statements_;
};

class Database {
 public:
  using WriteOp = std::function<absl::Status(SQLite::Database&)>;
  using WriteDone = std::function<void(absl::Status)>;

  // Opens (creating if needed) and migrates the database, then starts the
  // writer thread. Refuses (FAILED_PRECONDITION, the message naming the
  // cause) what it cannot safely run: a missing or unwritable directory, an
  // unwritable file or -wal/-shm file, a file SQLite opens read-only or
  // cannot write, one that fails PRAGMA quick_check (unless
  // !check_on_open), and a schema newer than this build.
  static absl::StatusOr<std::unique_ptr<Database>> Open(
      const DatabaseOptions& options);

  // Flushes and stops the writer; closes every connection.
  ~Database();

  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Queues `op`; `done` (may be null) runs on the writer thread after the
  // transaction holding `op` committed or rolled back. After Close(), `done`
  // is called at once with UNAVAILABLE.
  //
  // A `bulk` op (a large chunk of an import) runs in a transaction of its
  // own, alternating with batches of ordinary ops, so an ordinary write
  // waits for at most one bulk op however many are queued.
  void WriteRaw(WriteOp op, WriteDone done, bool bulk = false);

  // Typed form of WriteRaw: `done` receives the value `op` returned, or the
  // status that stopped it (its own error, an exception, a failed commit, a
  // closed database).
  template <typename T>
  void Write(std::function<absl::StatusOr<T>(SQLite::Database&)> op,
             std::function<void(absl::StatusOr<T>)> done, bool bulk = false) {
    // The result is moved, never copied, to `done`: the writer thread keeps
    // no reference to a status it hands to another thread (absl's reference
    // counts are invisible to TSan, and sharing is needless anyway). The op's
    // own failure reaches WriteRaw as a message-less sentinel, which no
    // exception, commit failure or closed database ever produces.
    auto result = std::make_shared<std::optional<absl::StatusOr<T>>>();
    WriteRaw(
        [op = std::move(op), result](SQLite::Database& db) {
          *result = op(db);
          return (*result)->ok() ? absl::OkStatus() : OpFailedSentinel();
        },
        [done = std::move(done), result](absl::Status status) {
          if ((status.ok() || status == OpFailedSentinel()) &&
              result->has_value()) {
            absl::StatusOr<T> out = std::move(**result);
            result->reset();
            done(std::move(out));
            return;
          }
          result->reset();
          done(std::move(status));
        },
        bulk);
  }

  // Runs `op` on the writer and waits for its commit.
  absl::Status WriteSync(WriteOp op);
  template <typename T>
  absl::StatusOr<T> WriteSync(
      std::function<absl::StatusOr<T>(SQLite::Database&)> op) {
    absl::StatusOr<T> result = absl::InternalError("write did not run");
    absl::Status status = WriteSync([&](SQLite::Database& db) {
      result = op(db);
      return result.status();
    });
    if (!status.ok()) return status;
    return result;
  }

  // Runs `fn(connection)` on a pooled read connection on the calling thread
  // and returns what it returns. Exceptions become INTERNAL / UNAVAILABLE for
  // functions returning absl::Status or absl::StatusOr.
  template <typename Fn>
  auto Read(Fn&& fn) -> decltype(fn(std::declval<SQLite::Database&>())) {
    ReadLease lease(this);
    try {
      return fn(*lease.db);
    } catch (const std::exception& e) {
      return StatusOf(e);
    }
  }

  // Read, with `fn(connection, statements)`: `statements` are the
  // connection's cached prepared statements (StatementCache).
  template <typename Fn>
  auto ReadPrepared(Fn&& fn) -> decltype(fn(std::declval<SQLite::Database&>(),
                                            std::declval<StatementCache&>())) {
    ReadLease lease(this);
    try {
      return fn(*lease.db, *lease.statements);
    } catch (const std::exception& e) {
      return StatusOf(e);
    }
  }

  // Calls `retry(true)` on the writer thread once a writable probe period
  // (writable_probe_every) has passed, so that a chain of writes that failed
  // on storage (a full disk, an I/O error) can try again later without
  // spinning; or `retry(false)` once if the database closes first (on the
  // thread closing it). `retry(true)` runs even while writes still fail: it
  // decides itself whether to wait again.
  void RetryLater(std::function<void(bool open)> retry);

  // Blocks until every write queued before the call has committed and its
  // completion has run.
  void Flush();

  // Flushes, stops the writer thread and refuses further writes. Idempotent.
  void Close();

  // Calls `changed` on the writer thread when a row of `table` changes:
  // changed(false) at the first change inside a transaction, and
  // changed(true) once that transaction has committed or rolled back,
  // before its ops' callbacks run. A cache of that table's rows (RowCache)
  // invalidates both times, and serves nothing in between: a read between
  // the change and the commit sees the old row, and what it would store is
  // voided by the second call. One observer per Database (a second while
  // one is set is a programming error and aborts); `changed` null stops the
  // calls (returning once none is running). Any thread; the table cannot
  // change once set.
  void ObserveTable(const std::string& table,
                    std::function<void(bool ended)> changed);

  // Writes queued and not yet committed.
  int64_t queue_depth();

  // False from a transaction that failed to commit (a full disk, an I/O
  // error, a read-only or corrupt file) until the next one commits (the
  // writer probes while idle; see writable_probe_every).
  bool writable() const { return writable_.load(); }

  // True from the first read or write that found the file corrupt
  // (SQLITE_CORRUPT / SQLITE_NOTADB), for the life of this object: from then
  // on writable() is false, no write is attempted (each fails with
  // UNAVAILABLE) and no probe runs. Reads still run.
  bool corrupt() const { return corrupt_.load(); }

  // Schema version after migrations (PRAGMA user_version).
  int schema_version() const { return schema_version_; }
  const std::string& path() const { return options_.path; }

 private:
  struct Pending {
    WriteOp op;
    WriteDone done;
    bool bulk = false;
  };

  // A read connection borrowed from the pool for one scope.
  struct ReadLease {
    explicit ReadLease(Database* owner);
    ~ReadLease();
    Database* owner;
    size_t index;  // into all_readers_ and reader_statements_
    SQLite::Database* db;
    StatementCache* statements;
  };

  explicit Database(const DatabaseOptions& options);
  absl::Status Init();
  // Init's checks of the opened file before migrating (read-only,
  // quick_check) and after (one committed write).
  absl::Status CheckFile();
  absl::Status TestWrite();
  // StatusFromException, noting a corrupt file first (see corrupt()).
  absl::Status StatusOf(const std::exception& e);
  void MarkCorrupt(const std::string& what);
  void WriterLoop();
  void CheckpointLoop();
  static int OnWalCommit(void* self, sqlite3* db, const char* name, int pages);
  // sqlite3_update_hook of the writer connection (`rowid` is sqlite3_int64).
  static void OnRowChange(void* self, int op, const char* db, const char* table,
                          long long rowid);  // NOLINT
  // Calls the ObserveTable observer, if any.
  void TableChanged(bool ended) ABSL_LOCKS_EXCLUDED(observer_mu_);
  void CommitBatch(std::vector<Pending>& batch);
  // What Write<T>'s wrapper returns to WriteRaw when its op failed; the error
  // itself travels in the wrapper's result.
  static absl::Status OpFailedSentinel() {
    return absl::Status(absl::StatusCode::kAborted, "");
  }

  const DatabaseOptions options_;
  std::optional<InstanceLock> instance_lock_;  // with single_instance
  int schema_version_ = 0;
  std::unique_ptr<SQLite::Database> writer_db_;  // writer thread only
  Metrics* const metrics_;
  std::atomic<bool> writable_{true};
  std::atomic<bool> corrupt_{false};
  // ObserveTable: the table (set once, before observing_ turns true) and
  // the observer. table_touched_: a row of it changed in the transaction
  // now running (writer thread only).
  std::atomic<bool> observing_{false};
  std::string observed_table_;
  Mutex observer_mu_;
  std::function<void(bool ended)> observer_ ABSL_GUARDED_BY(observer_mu_);
  bool table_touched_ = false;

  // campaigns::Mutex (a std::mutex) rather than absl::Mutex: Debian's
  // Abseil is a shared library built without ThreadSanitizer, which then
  // cannot see its locking.
  Mutex mu_;
  CondVar work_cv_;  // queue_ non-empty or closing_
  CondVar done_cv_;  // completed_ advanced
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  std::deque<Pending> bulk_queue_ ABSL_GUARDED_BY(mu_);
  bool bulk_turn_ ABSL_GUARDED_BY(mu_) = false;  // next batch: a bulk op
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  // RetryLater's callbacks and when each is due.
  struct Retry {
    absl::Time due;
    std::function<void(bool)> fn;
  };
  std::deque<Retry> retries_ ABSL_GUARDED_BY(mu_);
  uint64_t enqueued_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t completed_ ABSL_GUARDED_BY(mu_) = 0;
  Mutex close_mu_;  // serialises Close()
  std::thread writer_ ABSL_GUARDED_BY(close_mu_);

  // The checkpointer: woken when the WAL grew past checkpoint_pages.
  std::unique_ptr<SQLite::Database> checkpoint_db_;
  Mutex checkpoint_mu_;
  CondVar checkpoint_cv_;
  bool checkpoint_wanted_ ABSL_GUARDED_BY(checkpoint_mu_) = false;
  bool checkpoint_stop_ ABSL_GUARDED_BY(checkpoint_mu_) = false;
  std::thread checkpointer_ ABSL_GUARDED_BY(close_mu_);

  Mutex pool_mu_;
  CondVar pool_cv_;  // a reader was returned
  std::vector<std::unique_ptr<SQLite::Database>> all_readers_;
  // Each reader's statements; declared after all_readers_ so that they are
  // finalized before their connections close.
  std::vector<std::unique_ptr<StatementCache>> reader_statements_;
  std::vector<size_t> free_readers_ ABSL_GUARDED_BY(pool_mu_);
};

}  // namespace campaigns::storage

#endif  // CAMPAIGND_STORAGE_SQLITE_DATABASE_H_
