// Database: SQLite with one group-committing writer and a reader pool.
#include "storage/sqlite/database.h"

#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <future>
#include <iostream>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/domain/errors.h"
#include "server/log/log.h"
#include "storage/sqlite/migrations.h"

namespace campaigns::storage {

absl::Status StatusFromException(const std::exception& e) {
  if (const auto* se = dynamic_cast<const SQLite::Exception*>(&e)) {
    int code = se->getErrorCode() & 0xff;
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED) {
      return absl::UnavailableError("database is busy, retry");
    }
    if (code == SQLITE_CONSTRAINT) {
      return absl::AlreadyExistsError(
          "a unique or foreign-key constraint failed");
    }
    if (code == SQLITE_FULL) {
      return errors::StorageFull(
          "the server's disk is full: nothing was written; retry once space "
          "is freed",
          kStorageFullRetryAfter);
    }
    if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) {
      return absl::InternalError(
          "the database file is corrupt: writes are stopped (see the log)");
    }
    return absl::InternalError(
        absl::StrCat("storage error (sqlite code ", se->getErrorCode(), ")"));
  }
  return absl::InternalError("storage error");
}

namespace {

bool IsCorruption(const std::exception& e) {
  const auto* se = dynamic_cast<const SQLite::Exception*>(&e);
  if (se == nullptr) return false;
  const int code = se->getErrorCode() & 0xff;
  return code == SQLITE_CORRUPT || code == SQLITE_NOTADB;
}

// What the writer answers once the file was found corrupt.
absl::Status CorruptStop() {
  return absl::UnavailableError(
      "storage stopped: the database file is corrupt (see the log)");
}

std::string Errno(int err) { return std::strerror(err); }

// Why `path` (and its directory, -wal and -shm files) cannot be used by a
// read-write WAL connection, or OK. As root every access() check passes:
// CheckWriterConnection's read-only test and write still catch what the
// kernel refuses (a read-only mount, an immutable file).
absl::Status CheckPath(const std::string& path) {
  if (path.empty() || path[0] == ':' || absl::StartsWith(path, "file:")) {
    return absl::OkStatus();  // in-memory or a URI: SQLite's to judge
  }
  const auto fail = [&path](const std::string& why) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open database ", path, ": ", why));
  };
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    return fail(absl::StrCat("directory ", dir, ": ", Errno(errno)));
  }
  if (!S_ISDIR(st.st_mode)) return fail(dir + " is not a directory");
  if (stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return fail("it is a directory");
    if (!S_ISREG(st.st_mode)) return fail("it is not a regular file");
    if (access(path.c_str(), R_OK | W_OK) != 0) {
      return fail(absl::StrCat("the file is not readable and writable (",
                               Errno(errno), ")"));
    }
  } else if (errno != ENOENT) {
    return fail(Errno(errno));
  }
  // WAL mode creates and writes `path`-wal and `path`-shm beside the file.
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    return fail(absl::StrCat(
        "directory ", dir, " is not writable (", Errno(errno),
        "); SQLite creates the -wal and -shm files beside the database"));
  }
  for (const char* suffix : {"-wal", "-shm"}) {
    const std::string side = path + suffix;
    if (access(side.c_str(), F_OK) == 0 &&
        access(side.c_str(), R_OK | W_OK) != 0) {
      return fail(absl::StrCat(side, " is not readable and writable (",
                               Errno(errno), ")"));
    }
  }
  return absl::OkStatus();
}

// Reads `path` from start to end, so that PRAGMA quick_check, which visits
// pages in b-tree order, finds them in the page cache: on a cold cache that
// turned a 92 s check of a 1.5 GB file into a few seconds (README).
// Best effort: an error only means the check reads from disk.
void ReadAhead(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  std::vector<char> buf(1 << 20);
  while (read(fd, buf.data(), buf.size()) > 0) {
  }
  close(fd);
}

// A copy of `status` sharing nothing with it (its payloads copied flat): the
// writer thread hands each caller a status of its own.
absl::Status DeepCopy(const absl::Status& status) {
  absl::Status out(status.code(), status.message());
  status.ForEachPayload(
      [&out](absl::string_view url, const absl::Cord& payload) {
        out.SetPayload(url, absl::Cord(std::string(payload)));
      });
  return out;
}

void ConfigureConnection(SQLite::Database& db, const DatabaseOptions& options) {
  db.setBusyTimeout(
      static_cast<int>(absl::ToInt64Milliseconds(options.busy_timeout)));
  db.exec("PRAGMA foreign_keys=ON");
  db.exec(options.synchronous_full ? "PRAGMA synchronous=FULL"
                                   : "PRAGMA synchronous=NORMAL");
  // Statement journals and temporary tables in memory: a multi-row UPDATE
  // inside a transaction otherwise creates, writes and unlinks a file in
  // /var/tmp each time (about a hundred a second while dispatching).
  db.exec("PRAGMA temp_store=MEMORY");
}

}  // namespace

Database::Database(const DatabaseOptions& options)
    : options_(options),
      metrics_(options.metrics ? options.metrics : Metrics::None()) {}

int64_t Database::queue_depth() {
  MutexLock lock(&mu_);
  return static_cast<int64_t>(enqueued_ - completed_);
}

absl::StatusOr<std::unique_ptr<Database>> Database::Open(
    const DatabaseOptions& options) {
  std::unique_ptr<Database> db(new Database(options));
  absl::Status status = db->Init();
  if (!status.ok()) return status;
  MutexLock lock(&db->close_mu_);
  // Named so that top -H and perf show which thread is busy.
  db->writer_ = std::thread([raw = db.get()] {
    pthread_setname_np(pthread_self(), "db-writer");
    raw->WriterLoop();
  });
  db->checkpointer_ = std::thread([raw = db.get()] {
    pthread_setname_np(pthread_self(), "db-checkpoint");
    raw->CheckpointLoop();
  });
  return db;
}

absl::Status Database::Init() {
  // No global memory statistics: they take a process-wide mutex on every
  // SQLite allocation. Only possible before SQLite initialises; a later
  // call is refused (SQLITE_MISUSE) and changes nothing.
  static std::once_flag memstatus;
  std::call_once(memstatus, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  if (absl::Status path_ok = CheckPath(options_.path); !path_ok.ok()) {
    return path_ok;
  }
  const std::string& path = options_.path;
  if (options_.single_instance && !path.empty() && path[0] != ':' &&
      !absl::StartsWith(path, "file:")) {
    absl::StatusOr<InstanceLock> lock = InstanceLock::Acquire(path);
    if (!lock.ok()) return lock.status();
    instance_lock_ = *std::move(lock);
  }
  try {
    // The writer connection is used by one thread at a time (this one, then
    // the writer thread): no per-call mutex (OPEN_NOMUTEX).
    writer_db_ = std::make_unique<SQLite::Database>(
        options_.path,
        SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_NOMUTEX, 0,
        options_.vfs);
    writer_db_->exec("PRAGMA journal_mode=WAL");
    ConfigureConnection(*writer_db_, options_);
    if (absl::Status usable = CheckFile(); !usable.ok()) return usable;
    absl::StatusOr<int> version = Migrate(*writer_db_);
    if (!version.ok()) return version.status();
    schema_version_ = *version;
    if (absl::Status usable = TestWrite(); !usable.ok()) return usable;
    // Checkpoints move to the checkpointer thread (see CheckpointLoop).
    writer_db_->exec("PRAGMA wal_autocheckpoint=0");
    writer_db_->exec("PRAGMA cache_size=-65536");
    sqlite3_wal_hook(writer_db_->getHandle(), &Database::OnWalCommit, this);
    sqlite3_update_hook(writer_db_->getHandle(), &Database::OnRowChange, this);
    checkpoint_db_ = std::make_unique<SQLite::Database>(
        options_.path, SQLite::OPEN_READWRITE | SQLite::OPEN_FULLMUTEX, 0,
        options_.vfs);
    ConfigureConnection(*checkpoint_db_, options_);
    // A reader serves one thread at a time (a ReadLease; the pool's mutex
    // orders the hand-overs): no per-call mutex either.
    for (int i = 0; i < options_.read_connections; ++i) {
      auto reader = std::make_unique<SQLite::Database>(
          options_.path, SQLite::OPEN_READONLY | SQLite::OPEN_NOMUTEX, 0,
          options_.vfs);
      ConfigureConnection(*reader, options_);
      MutexLock lock(&pool_mu_);
      free_readers_.push_back(all_readers_.size());
      reader_statements_.push_back(
          std::make_unique<StatementCache>(reader.get()));
      all_readers_.push_back(std::move(reader));
    }
  } catch (const std::exception& e) {
    if (IsCorruption(e)) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot open database ", options_.path,
                       ": it is not a SQLite database or is damaged (",
                       e.what(), "); restore it from a backup"));
    }
    return absl::UnavailableError(
        absl::StrCat("cannot open database ", options_.path, ": ", e.what()));
  }
  return absl::OkStatus();
}

absl::Status Database::CheckFile() {
  const auto fail = [this](const std::string& why) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open database ", options_.path, ": ", why));
  };
  // SQLite falls back to read-only, silently, when it may not write the
  // file; every write would then fail with SQLITE_READONLY.
  if (sqlite3_db_readonly(writer_db_->getHandle(), "main") == 1) {
    return fail(
        "SQLite could open it only read-only (check the file's permissions, "
        "its owner and its filesystem)");
  }
  if (options_.check_on_open) {
    std::vector<std::string> problems;
    ReadAhead(options_.path);
    try {
      SQLite::Statement check(*writer_db_, "PRAGMA quick_check(5)");
      while (check.executeStep()) {
        problems.push_back(check.getColumn(0).getString());
      }
    } catch (const std::exception& e) {
      problems.push_back(e.what());
    }
    if (problems.size() != 1 || problems[0] != "ok") {
      return fail(absl::StrCat(
          "it failed its integrity check (PRAGMA quick_check: ",
          absl::StrJoin(problems, "; "),
          "); restore it from a backup (--skip-check starts without the "
          "check)"));
    }
  }
  return absl::OkStatus();
}

absl::Status Database::TestWrite() {
  // A write of the page the schema version lives on, as the probe does:
  // the directory, the lock and the disk must all take one.
  try {
    SQLite::Transaction txn(*writer_db_,
                            SQLite::TransactionBehavior::IMMEDIATE);
    writer_db_->exec(absl::StrCat("PRAGMA user_version=", schema_version_));
    txn.commit();
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open database ", options_.path,
                     ": a test write failed (", e.what(), ")"));
  }
  return absl::OkStatus();
}

absl::Status Database::StatusOf(const std::exception& e) {
  if (IsCorruption(e)) MarkCorrupt(e.what());
  return StatusFromException(e);
}

void Database::MarkCorrupt(const std::string& what) {
  if (corrupt_.exchange(true)) return;
  logging::Critical(
      "database file is corrupt: writes stopped; readiness and health say "
      "so until a restart. Restore the file from a backup",
      {{"db", options_.path}, {"error", what}});
  if (writable_.exchange(false) && options_.on_writable) {
    options_.on_writable(false);
  }
}

Database::~Database() {
  Close();
  MutexLock lock(&pool_mu_);
  free_readers_.clear();
}

StatementCache::Use StatementCache::Get(const std::string& sql) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    it =
        statements_.emplace(sql, std::make_unique<SQLite::Statement>(*db_, sql))
            .first;
  } else {
    it->second->tryReset();
    it->second->clearBindings();
  }
  return Use(it->second.get());
}

Database::ReadLease::ReadLease(Database* o)
    : owner(o), index(0), db(nullptr), statements(nullptr) {
  MutexLock lock(&owner->pool_mu_);
  while (owner->free_readers_.empty()) owner->pool_cv_.Wait(&owner->pool_mu_);
  index = owner->free_readers_.back();
  owner->free_readers_.pop_back();
  db = owner->all_readers_[index].get();
  statements = owner->reader_statements_[index].get();
}

Database::ReadLease::~ReadLease() {
  {
    MutexLock lock(&owner->pool_mu_);
    owner->free_readers_.push_back(index);
  }
  owner->pool_cv_.Signal();
}

void Database::WriteRaw(WriteOp op, WriteDone done, bool bulk) {
  {
    MutexLock lock(&mu_);
    if (!closing_) {
      (bulk ? bulk_queue_ : queue_)
          .push_back({std::move(op), std::move(done), bulk});
      ++enqueued_;
      work_cv_.Signal();
      return;
    }
  }
  if (done) done(absl::UnavailableError("database is closed"));
}

absl::Status Database::WriteSync(WriteOp op) {
  std::promise<absl::Status> result;
  std::future<absl::Status> future = result.get_future();
  WriteRaw(std::move(op), [&result](absl::Status status) {
    result.set_value(std::move(status));
  });
  return future.get();
}

void Database::RetryLater(std::function<void(bool open)> retry) {
  {
    MutexLock lock(&mu_);
    if (!closing_) {
      retries_.push_back(
          {absl::Now() + options_.writable_probe_every, std::move(retry)});
      work_cv_.Signal();
      return;
    }
  }
  retry(false);
}

void Database::Flush() {
  MutexLock lock(&mu_);
  const uint64_t target = enqueued_;
  while (completed_ < target) done_cv_.Wait(&mu_);
}

void Database::Close() {
  MutexLock close_lock(&close_mu_);
  {
    MutexLock lock(&mu_);
    closing_ = true;
  }
  work_cv_.SignalAll();
  if (writer_.joinable()) writer_.join();
  {
    MutexLock lock(&checkpoint_mu_);
    checkpoint_stop_ = true;
  }
  checkpoint_cv_.SignalAll();
  if (checkpointer_.joinable()) checkpointer_.join();
  // Retries not yet due give up: what they would have written (an import's
  // rollback, a deletion) is resumed at the next start-up.
  std::deque<Retry> retries;
  {
    MutexLock lock(&mu_);
    retries.swap(retries_);
  }
  for (Retry& r : retries) r.fn(false);
}

int Database::OnWalCommit(void* self, sqlite3* /*db*/, const char* /*name*/,
                          int pages) {
  auto* d = static_cast<Database*>(self);
  if (pages >= d->options_.checkpoint_pages) {
    {
      MutexLock lock(&d->checkpoint_mu_);
      d->checkpoint_wanted_ = true;
    }
    d->checkpoint_cv_.Signal();
  }
  return SQLITE_OK;
}

void Database::CheckpointLoop() {
  for (;;) {
    {
      MutexLock lock(&checkpoint_mu_);
      while (!checkpoint_wanted_ && !checkpoint_stop_) {
        checkpoint_cv_.Wait(&checkpoint_mu_);
      }
      if (checkpoint_stop_) return;
      checkpoint_wanted_ = false;
    }
    // PASSIVE: copies what it can without waiting for readers or the
    // writer; the writer restarts the WAL from its start once all of it is
    // in the database. Failures (e.g. BUSY) only mean "try next time".
    int wal_pages = 0;
    sqlite3_wal_checkpoint_v2(checkpoint_db_->getHandle(), nullptr,
                              SQLITE_CHECKPOINT_PASSIVE, &wal_pages, nullptr);
    if (wal_pages >= options_.restart_pages) {
      // What the passive pass left is small; the restart copies it with
      // writes held back, then lets the next write start the WAL afresh.
      // Its wait is short (restart_wait): when the writer or a long read
      // stays busy it ends as a passive checkpoint, and the next one tries
      // again.
      sqlite3_busy_timeout(
          checkpoint_db_->getHandle(),
          static_cast<int>(absl::ToInt64Milliseconds(options_.restart_wait)));
      sqlite3_wal_checkpoint_v2(checkpoint_db_->getHandle(), nullptr,
                                SQLITE_CHECKPOINT_RESTART, nullptr, nullptr);
      sqlite3_busy_timeout(
          checkpoint_db_->getHandle(),
          static_cast<int>(absl::ToInt64Milliseconds(options_.busy_timeout)));
    }
  }
}

void Database::WriterLoop() {
  std::vector<Pending> batch;
  std::vector<std::function<void(bool)>> due;  // RetryLater's, to call now
  for (;;) {
    {
      MutexLock lock(&mu_);
      bool probe = false;
      auto retry_due = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !retries_.empty() && retries_.front().due <= absl::Now();
      };
      while (queue_.empty() && bulk_queue_.empty() && !closing_ &&
             !retry_due()) {
        absl::Duration wait = writable_.load() || corrupt_.load()
                                  ? absl::InfiniteDuration()
                                  : options_.writable_probe_every;
        if (!retries_.empty()) {
          wait = std::min(wait, retries_.front().due - absl::Now());
        }
        if (wait == absl::InfiniteDuration()) {
          work_cv_.Wait(&mu_);
        } else if (work_cv_.WaitWithTimeout(&mu_, wait) && !writable_.load() &&
                   !corrupt_.load() && queue_.empty() && bulk_queue_.empty() &&
                   !closing_ && !retry_due()) {
          // Idle after a failed commit: a write of our own finds out when
          // the disk is back, so readiness returns without client traffic.
          probe = true;
          break;
        }
      }
      while (retry_due()) {
        due.push_back(std::move(retries_.front().fn));
        retries_.pop_front();
      }
      if (!due.empty()) {
        // Called below, unlocked: they queue writes.
      } else if (probe) {
        batch.push_back(Pending{[this](SQLite::Database& db) {
                                  db.exec(absl::StrCat("PRAGMA user_version=",
                                                       schema_version_));
                                  return absl::OkStatus();
                                },
                                nullptr, false});
        ++enqueued_;
      } else if (queue_.empty() && bulk_queue_.empty() && closing_) {
        return;
      } else if (!bulk_queue_.empty() && (bulk_turn_ || queue_.empty())) {
        // Alternate: a batch of ordinary ops, then one bulk op alone.
        batch.push_back(std::move(bulk_queue_.front()));
        bulk_queue_.pop_front();
        bulk_turn_ = false;
      } else {
        size_t n = std::min<size_t>(queue_.size(), options_.max_ops_per_commit);
        for (size_t i = 0; i < n; ++i) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        bulk_turn_ = true;
      }
    }
    if (!due.empty()) {
      for (auto& fn : due) fn(true);
      due.clear();
      continue;
    }
    CommitBatch(batch);
    {
      MutexLock lock(&mu_);
      completed_ += batch.size();
    }
    done_cv_.SignalAll();
    batch.clear();
  }
}

void Database::ObserveTable(const std::string& table,
                            std::function<void(bool ended)> changed) {
  MutexLock lock(&observer_mu_);
  if (changed && observer_) {
    std::cerr << "campaignd: a second observer of table " << table << "\n";
    std::abort();
  }
  if (!observing_.load(std::memory_order_acquire)) {
    observed_table_ = table;
    observing_.store(true, std::memory_order_release);
  }
  observer_ = std::move(changed);
}

void Database::OnRowChange(void* self, int, const char*, const char* table,
                           long long) {  // NOLINT
  auto* d = static_cast<Database*>(self);
  if (d->table_touched_ || !d->observing_.load(std::memory_order_acquire) ||
      d->observed_table_ != table) {
    return;
  }
  d->table_touched_ = true;
  d->TableChanged(/*ended=*/false);
}

void Database::TableChanged(bool ended) {
  MutexLock lock(&observer_mu_);
  if (observer_) observer_(ended);
}

void Database::CommitBatch(std::vector<Pending>& batch) {
  if (corrupt_.load()) {
    for (Pending& p : batch) {
      if (p.done) p.done(CorruptStop());
    }
    return;
  }
  std::vector<absl::Status> results(batch.size());
  absl::Status commit_status;
  SQLite::Database& db = *writer_db_;
  const absl::Time began = absl::Now();
  const absl::Time deadline = began + options_.max_commit_time;
  size_t ran = 0;         // ops that finished inside the transaction
  bool in_op = false;     // an op (or its savepoint handling) was running
  absl::Status op_error;  // the running op's failure, while rolling it back
  try {
    db.exec("BEGIN IMMEDIATE");
    for (; ran < batch.size(); ++ran) {
      // Past the time bound, the rest goes into the next transaction.
      if (ran > 0 && absl::Now() > deadline) break;
      in_op = true;
      db.exec("SAVEPOINT op");
      absl::Status status;
      try {
        status = batch[ran].op(db);
      } catch (const std::exception& e) {
        status = StatusOf(e);
      }
      if (!status.ok()) {
        // SQLite may have rolled the whole transaction back itself (a full
        // disk, an I/O error): then ROLLBACK TO throws, and the op's own
        // error is the cause to report.
        op_error = status;
        db.exec("ROLLBACK TO op");
        op_error = absl::OkStatus();
      }
      db.exec("RELEASE op");
      in_op = false;
      results[ran] = std::move(status);
    }
    db.exec("COMMIT");
  } catch (const std::exception& e) {
    commit_status = StatusOf(e);
    if (in_op && !op_error.ok() &&
        sqlite3_get_autocommit(db.getHandle()) != 0) {
      commit_status = op_error;
    }
    try {
      if (sqlite3_get_autocommit(db.getHandle()) == 0) db.exec("ROLLBACK");
    } catch (const std::exception&) {
      // The transaction is gone already.
    }
  }
  if (table_touched_) {  // committed or rolled back: caches drop again
    table_touched_ = false;
    TableChanged(/*ended=*/true);
  }
  metrics_->StorageCommit(absl::Now() - began, static_cast<int64_t>(ran));
  const bool now_writable = commit_status.ok() && !corrupt_.load();
  if (writable_.exchange(now_writable) != now_writable &&
      options_.on_writable) {
    options_.on_writable(now_writable);
  }
  // A reader's MarkCorrupt between the load and the exchange above: once
  // corrupt, writable() stays false (readiness reads corrupt() first).
  if (now_writable && corrupt_.load()) writable_.store(false);
  if (!commit_status.ok()) {
    // Once per failure of the writer, at most a few a second: a full disk
    // fails every transaction until space is freed.
    static logging::RateLimited limit(5, absl::Seconds(10));
    int64_t suppressed = 0;
    if (limit.Allow(&suppressed)) {
      logging::Error("storage transaction failed",
                     {{"ops", static_cast<int64_t>(batch.size())},
                      {"in_op", in_op},
                      {"error", commit_status},
                      {"db", options_.path},
                      {"suppressed", suppressed}});
    }
  }
  // Which ops this attempt settles: all that ran, plus the one whose failure
  // broke the transaction (never retried, so it cannot fail forever); if the
  // transaction never began, the whole batch fails and its callers may retry.
  size_t settled = ran;
  if (!commit_status.ok()) {
    settled = in_op ? ran + 1 : (ran == 0 ? batch.size() : ran);
  }
  if (settled < batch.size()) {
    // Re-queue what did not fit, at the front and in order.
    MutexLock lock(&mu_);
    for (size_t i = batch.size(); i-- > settled;) {
      (batch[i].bulk ? bulk_queue_ : queue_).push_front(std::move(batch[i]));
    }
  }
  for (size_t i = 0; i < settled; ++i) {
    if (batch[i].done) {
      // A fresh status per caller: none shares a reference with this thread.
      batch[i].done(commit_status.ok() ? std::move(results[i])
                                       : DeepCopy(commit_status));
    }
  }
  batch.resize(settled);
}

}  // namespace campaigns::storage
