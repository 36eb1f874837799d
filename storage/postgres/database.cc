#include "storage/postgres/database.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/domain/ids.h"
#include "server/log/log.h"
#include "storage/postgres/migrations.h"

namespace campaigns::storage::postgres {
namespace {

// How long the writer keeps trying to learn the outcome of a COMMIT that
// got no answer (a restart of the server, crash recovery included, fits).
constexpr absl::Duration kResolveFor = absl::Seconds(30);

// Every this many groups, one also deletes the commit markers older than
// an hour.
constexpr uint64_t kMarkerCleanupEvery = 1000;
// While the server is unreachable, the idle writer tries to connect this
// often (Connect's backoff may make an attempt a no-op).
constexpr absl::Duration kProbeEvery = absl::Milliseconds(500);

bool Lost(const absl::Status& s, const Connection& c) {
  return !c.ok() || s.code() == absl::StatusCode::kUnavailable;
}

// A failure that running the op again, in a new transaction, may not
// meet: the server chose it as a deadlock victim or found a serialization
// failure. (Not any ABORTED: stores answer ABORTED for outcomes of their
// own, and a lock wait that timed out would only wait again.)
bool Retryable(const absl::Status& s) {
  const std::string state = SqlStateOf(s);
  return state == "40P01" || state == "40001";
}

}  // namespace

absl::StatusOr<TransactionOutcome> OutcomeOf(Connection& conn,
                                             const std::string& xid) {
  absl::StatusOr<Rows> r = conn.Query("SELECT pg_xact_status($1::xid8)", {xid});
  if (!r.ok()) return r.status();
  const std::optional<std::string> status = r->Get(0, 0);
  if (!status.has_value()) return TransactionOutcome::kUnknown;  // too old
  if (*status == "committed") return TransactionOutcome::kCommitted;
  if (*status == "aborted") return TransactionOutcome::kAborted;
  if (*status == "in progress") return TransactionOutcome::kInProgress;
  return TransactionOutcome::kUnknown;
}

Database::Database(const DatabaseOptions& options) : options_(options) {}

absl::StatusOr<std::unique_ptr<Database>> Database::Open(
    const DatabaseOptions& options) {
  std::unique_ptr<Database> db(new Database(options));
  absl::StatusOr<std::unique_ptr<Connection>> conn =
      Connection::Open(options.dsn, options.connect_timeout, options.password);
  if (!conn.ok()) return conn.status();
  db->where_ = (*conn)->where();
  if (options.migrate) {
    absl::StatusOr<int> version = Migrate(**conn);
    if (!version.ok()) return version.status();
    db->schema_version_ = *version;
  } else {
    absl::StatusOr<int> version = SchemaVersion(**conn);
    if (!version.ok()) return version.status();
    db->schema_version_ = *version;
  }
  db->writer_conn_ = *std::move(conn);
  MutexLock lock(&db->close_mu_);
  db->writer_ = std::thread([raw = db.get()] { raw->WriterLoop(); });
  return db;
}

Database::~Database() { Close(); }

bool Database::SetAvailable(bool available) {
  const bool was = available_.exchange(available);
  if (was && !available) {
    // The idle writer waits without a timeout while available: wake it,
    // so that it starts looking for the server (WriterLoop).
    MutexLock lock(&mu_);
    work_cv_.Signal();
  }
  if (was != available && options_.on_available) {
    options_.on_available(available);
  }
  return was;
}

int64_t Database::queue_depth() {
  MutexLock lock(&mu_);
  return static_cast<int64_t>(enqueued_ - completed_);
}

void Database::WriteRaw(WriteOp op, WriteDone done) {
  {
    MutexLock lock(&mu_);
    if (!closing_) {
      queue_.push_back({std::move(op), std::move(done)});
      ++enqueued_;
      work_cv_.Signal();
      return;
    }
  }
  if (done) done(absl::UnavailableError("database closed"));
}

absl::Status Database::WriteSync(WriteOp op) {
  Mutex mu;
  CondVar cv;
  bool finished = false;
  absl::Status result;
  WriteRaw(std::move(op), [&](absl::Status s) {
    MutexLock lock(&mu);
    result = std::move(s);
    finished = true;
    cv.SignalAll();
  });
  MutexLock lock(&mu);
  while (!finished) cv.Wait(&mu);
  return result;
}

void Database::RetryLater(std::function<void(bool open)> retry) {
  {
    MutexLock lock(&mu_);
    if (!closing_) {
      retries_.push_back(
          {absl::Now() + options_.retry_after, std::move(retry)});
      work_cv_.Signal();
      return;
    }
  }
  retry(false);
}

void Database::AgainLater(absl::string_view chain, const absl::Status& error,
                          std::function<void()> again,
                          std::function<void()> closed) {
  // A few lines a second at most: while the server is away every attempt
  // fails.
  static logging::RateLimited limit(5, absl::Seconds(10));
  int64_t suppressed = 0;
  if (limit.Allow(&suppressed)) {
    logging::Warn("PostgreSQL write failed; trying again",
                  {{"chain", chain},
                   {"retry_in", options_.retry_after},
                   {"error", error},
                   {"suppressed", suppressed}});
  }
  RetryLater([again = std::move(again), closed = std::move(closed)](bool open) {
    if (open) {
      again();
    } else if (closed) {
      closed();
    }
  });
}

void Database::Flush() {
  MutexLock lock(&mu_);
  const uint64_t target = enqueued_;
  while (completed_ < target) done_cv_.Wait(&mu_);
}

void Database::Close() {
  MutexLock close(&close_mu_);
  {
    MutexLock lock(&mu_);
    closing_ = true;
    work_cv_.SignalAll();
  }
  if (writer_.joinable()) writer_.join();
  std::deque<Retry> retries;
  {
    MutexLock lock(&mu_);
    retries.swap(retries_);
  }
  for (Retry& retry : retries) retry.fn(false);
  {
    MutexLock pool(&pool_mu_);
    idle_readers_.clear();
  }
  MutexLock autocommit(&autocommit_mu_);
  autocommit_conn_.reset();
}

void Database::WriterLoop() {
  for (;;) {
    std::vector<Pending> batch;
    std::vector<std::function<void(bool)>> due;  // RetryLater's, to call now
    bool probe = false;
    {
      MutexLock lock(&mu_);
      const auto retry_due = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !retries_.empty() && retries_.front().due <= absl::Now();
      };
      while (!probe && queue_.empty() && !closing_ && !retry_due()) {
        absl::Duration wait = retries_.empty()
                                  ? absl::InfiniteDuration()
                                  : retries_.front().due - absl::Now();
        // Unreachable: look again now and then, so that available() (and
        // on_available) say when the server is back even if nothing writes.
        if (!available_.load()) wait = std::min(wait, kProbeEvery);
        probe = work_cv_.WaitWithTimeout(&mu_, wait) && !available_.load() &&
                queue_.empty() && !closing_ && !retry_due();
      }
      while (!probe && retry_due()) {
        due.push_back(std::move(retries_.front().fn));
        retries_.pop_front();
      }
      if (!probe && due.empty() && queue_.empty()) break;  // closing, done
      while (!queue_.empty() &&
             batch.size() < static_cast<size_t>(options_.max_ops_per_commit)) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    if (probe) {
      Probe();
      continue;
    }
    // Unlocked: they queue writes.
    for (auto& retry : due) retry(true);
    if (batch.empty()) continue;
    CommitBatch(batch);
    MutexLock lock(&mu_);
    completed_ += batch.size();
    done_cv_.SignalAll();
  }
  writer_conn_.reset();
}

void Database::ResetBackoff() {
  MutexLock lock(&retry_mu_);
  backoff_ = absl::ZeroDuration();
  retry_at_ = absl::InfinitePast();
}

void Database::Probe() {
  if (writer_conn_ != nullptr && writer_conn_->ok() &&
      writer_conn_->Exec("SELECT 1").ok()) {
    ResetBackoff();  // reads need not wait for the next attempt's time
    if (!SetAvailable(true)) {
      logging::Info("PostgreSQL reachable again", {{"db", where_}});
    }
    return;
  }
  writer_conn_.reset();
  (void)WriterConnection();  // Connect() logs and sets available_
}

absl::StatusOr<std::unique_ptr<Connection>> Database::Connect(bool now_anyway) {
  {
    MutexLock lock(&retry_mu_);
    const absl::Time now = absl::Now();
    if (now < retry_at_ && !now_anyway) {
      return absl::UnavailableError(absl::StrCat(
          "PostgreSQL at ", where_, " is unreachable; next attempt in ",
          absl::FormatDuration(
              absl::Ceil(retry_at_ - now, absl::Milliseconds(1)))));
    }
  }
  absl::StatusOr<std::unique_ptr<Connection>> conn = Connection::Open(
      options_.dsn, options_.connect_timeout, options_.password);
  if (!conn.ok()) {
    {
      MutexLock lock(&retry_mu_);
      backoff_ = std::clamp(backoff_ * 2, options_.min_reconnect_backoff,
                            options_.max_reconnect_backoff);
      retry_at_ = absl::Now() + backoff_;
    }
    // Unlocked: on_available may call back into this Database.
    if (SetAvailable(false)) {
      logging::Error("PostgreSQL unreachable: calls answer UNAVAILABLE",
                     {{"db", where_}, {"error", conn.status()}});
    }
    return absl::UnavailableError(conn.status().message());
  }
  ResetBackoff();
  if (!SetAvailable(true)) {
    logging::Info("PostgreSQL reachable again", {{"db", where_}});
  }
  return conn;
}

absl::StatusOr<Connection*> Database::WriterConnection() {
  if (writer_conn_ != nullptr && writer_conn_->ok()) return writer_conn_.get();
  writer_conn_.reset();
  absl::StatusOr<std::unique_ptr<Connection>> conn = Connect();
  if (!conn.ok()) return conn.status();
  writer_conn_ = *std::move(conn);
  return writer_conn_.get();
}

absl::StatusOr<Database::Group> Database::Begin() {
  Group group;
  group.marker = NewId("cm", 26);
  const absl::Time now = absl::Now();
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<Connection*> conn = WriterConnection();
    if (!conn.ok()) return conn.status();
    Connection& c = **conn;
    absl::StatusOr<Rows> begun = c.Query("BEGIN");
    if (begun.ok()) {
      begun = c.Query(
          "INSERT INTO commit_markers(token, at) VALUES ($1, $2) "
          "RETURNING pg_current_xact_id()::text",
          {group.marker, absl::StrCat(absl::ToUnixMicros(now))});
    }
    if (begun.ok() && ++groups_ % kMarkerCleanupEvery == 0) {
      // Markers are only read within kResolveFor of their commit.
      absl::StatusOr<Rows> old =
          c.Query("DELETE FROM commit_markers WHERE at < $1",
                  {absl::StrCat(absl::ToUnixMicros(now - absl::Hours(1)))});
      if (!old.ok()) begun = old.status();
    }
    if (begun.ok()) {
      group.xid = begun->Text(0, 0);
      return group;
    }
    (void)c.Exec("ROLLBACK");
    // A connection that went stale while idle (e.g. the server restarted)
    // is only found out here; no op has run yet, so once more on a new one.
    if (attempt > 0 || !Lost(begun.status(), c)) return begun.status();
    writer_conn_.reset();
  }
}

absl::Status Database::RunOp(Connection& c, Pending& pending) {
  try {
    return pending.op(c);
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("storage operation failed: ", e.what()));
  }
}

absl::Status Database::RunOps(Connection& c, std::vector<Pending>& batch,
                              std::vector<absl::Status>& results) {
  const bool savepoints = batch.size() > 1;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (savepoints) {
      if (absl::Status s = c.Exec("SAVEPOINT op"); !s.ok()) return s;
    }
    results[i] = RunOp(c, batch[i]);
    if (!c.ok()) return results[i];
    if (results[i].ok()) {
      if (!savepoints) continue;
      const absl::Status released = c.Exec("RELEASE SAVEPOINT op");
      if (released.ok()) continue;
      if (Lost(released, c)) return released;
      // The op reported success over a statement that failed (the
      // transaction is aborted since): it failed, and only it is undone.
      logging::Error("PostgreSQL operation ignored a failed statement",
                     {{"db", where_}, {"error", released}});
      results[i] = absl::InternalError(
          "a statement of the operation failed; nothing of it was written");
    }
    // The op failed: undo what it did, and only that. With one op there is
    // nothing left to commit; the caller sees no savepoints and rolls back.
    if (!savepoints) return absl::OkStatus();
    if (absl::Status undo =
            c.Exec("ROLLBACK TO SAVEPOINT op; RELEASE SAVEPOINT op");
        !undo.ok()) {
      return undo;
    }
  }
  return absl::OkStatus();
}

void Database::CommitBatch(std::vector<Pending>& batch) {
  std::vector<absl::Status> results(batch.size());
  // Deadlock victims of a committed group run again alone (below), not
  // in this group, whose locks are what they were waiting for.
  std::vector<bool> again(batch.size(), false);
  const auto finish = [&](const absl::Status& all) {
    for (size_t i = 0; i < batch.size(); ++i) {
      if (all.ok() && again[i]) continue;
      if (batch[i].done) batch[i].done(all.ok() ? results[i] : all);
    }
  };
  const auto not_written = [&](const absl::Status& why) {
    // writer_conn_, not the group's connection: after a lost COMMIT it is
    // another one.
    if (writer_conn_ == nullptr || !writer_conn_->ok()) SetAvailable(false);
    logging::Warn("PostgreSQL transaction lost before its commit",
                  {{"db", where_},
                   {"ops", static_cast<int64_t>(batch.size())},
                   {"error", why}});
    finish(absl::UnavailableError(absl::StrCat(
        "PostgreSQL connection lost; nothing was written: ", why.message())));
  };
  absl::StatusOr<Group> xid;
  for (int attempt = 0;; ++attempt) {
    xid = Begin();
    if (!xid.ok()) {
      if (writer_conn_ != nullptr && Lost(xid.status(), *writer_conn_)) {
        not_written(xid.status());
      } else {  // not connected (Connect's UNAVAILABLE), or BEGIN refused
        finish(xid.status());
      }
      return;
    }
    Connection& c = *writer_conn_;
    if (absl::Status ran = RunOps(c, batch, results); !ran.ok()) {
      (void)c.Exec("ROLLBACK");
      if (Lost(ran, c)) {
        not_written(ran);
      } else {
        finish(ran);
      }
      return;
    }
    if (batch.size() > 1 || results[0].ok()) break;
    // The only op failed: nothing to commit. A deadlock victim runs once
    // more in a new transaction; otherwise its status stands.
    (void)c.Exec("ROLLBACK");
    if (attempt == 0 && Retryable(results[0]) && c.ok()) continue;
    finish(absl::OkStatus());
    return;
  }
  Connection& c = *writer_conn_;
  if (options_.before_commit) options_.before_commit(c);
  const int backend = c.backend_pid();
  absl::StatusOr<Rows> committed = c.Query("COMMIT");
  if (committed.ok() && committed->command() == "COMMIT") {
    if (batch.size() > 1) {
      for (size_t i = 0; i < batch.size(); ++i)
        again[i] = Retryable(results[i]);
    }
    finish(absl::OkStatus());
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!again[i]) continue;
      std::vector<Pending> alone;
      alone.push_back(std::move(batch[i]));
      CommitBatch(alone);  // one op: retried once more if a victim again
    }
    return;
  }
  if (committed.ok()) {
    // The server answered ROLLBACK: a statement failed inside an op that
    // still reported success. Nothing of the group was written.
    logging::Error("PostgreSQL rolled back a group at its COMMIT",
                   {{"db", where_},
                    {"ops", static_cast<int64_t>(batch.size())},
                    {"answer", committed->command()}});
    finish(absl::InternalError(
        "the transaction was rolled back at its commit (a statement in it "
        "failed); nothing was written"));
    return;
  }
  if (!Lost(committed.status(), c)) {  // e.g. a deferred constraint
    finish(committed.status());
    return;
  }
  ResolveLostCommit(*xid, backend, committed.status(), finish, not_written);
}

void Database::ResolveLostCommit(
    const Group& group, int backend, const absl::Status& committed,
    const std::function<void(const absl::Status&)>& finish,
    const std::function<void(const absl::Status&)>& not_written) {
  // No answer to the COMMIT: ask the server what became of it, on a new
  // connection. Whatever the reconnect backoff says (a reader's failed
  // attempt must not leave the group unresolved), and for as long as a
  // server restart takes (kResolveFor), since the answer decides whether
  // callers retry.
  writer_conn_.reset();
  const absl::Time give_up = absl::Now() + kResolveFor;
  absl::StatusOr<std::unique_ptr<Connection>> fresh = Connect(true);
  while (!fresh.ok() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(250));
    fresh = Connect(true);
  }
  absl::StatusOr<Connection*> again = absl::UnavailableError("not reconnected");
  if (fresh.ok()) {
    writer_conn_ = *std::move(fresh);
    again = writer_conn_.get();
  } else {
    again = fresh.status();
  }
  const std::string& xid = group.xid;
  absl::StatusOr<TransactionOutcome> outcome =
      again.ok() ? OutcomeOf(**again, xid)
                 : absl::StatusOr<TransactionOutcome>(again.status());
  if (outcome.ok() && *outcome == TransactionOutcome::kInProgress) {
    // The old session lives on (a network cut the server has not noticed):
    // end it, which aborts the transaction unless its COMMIT is under way,
    // and ask again once it is gone.
    absl::StatusOr<Rows> ended = (*again)->Query(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
        "WHERE pid = $1 AND backend_xid = "
        "(($2::xid8)::text::numeric % 4294967296)::text::xid",
        {absl::StrCat(backend), xid});
    outcome = ended.ok() ? OutcomeOf(**again, xid)
                         : absl::StatusOr<TransactionOutcome>(ended.status());
  }
  // Once no session holds the transaction any more, its marker row says
  // what became of it, even if the server reused its id after a crash
  // (then pg_xact_status describes another transaction, or fails with "in
  // the future").
  const bool over = again.ok() && (!outcome.ok() ||
                                   *outcome != TransactionOutcome::kInProgress);
  absl::StatusOr<Rows> marked =
      over ? (*again)->Query(
                 "SELECT count(*) FROM commit_markers WHERE token = $1",
                 {group.marker})
           : absl::StatusOr<Rows>(absl::UnavailableError("not asked"));
  if (marked.ok() && marked->Text(0, 0) != "0") {
    logging::Warn("PostgreSQL commit confirmed after its connection was lost",
                  {{"db", where_}, {"xid", xid}});
    finish(absl::OkStatus());
    return;
  }
  if (marked.ok()) {
    if (outcome.ok() && *outcome == TransactionOutcome::kCommitted) {
      logging::Warn(
          "PostgreSQL reused the id of a lost transaction: judged by its "
          "marker, not written",
          {{"db", where_}, {"xid", xid}});
    }
    not_written(committed);
    return;
  }
  logging::Error("PostgreSQL commit outcome unknown",
                 {{"db", where_},
                  {"xid", xid},
                  {"error", !marked.ok() && over ? marked.status()
                            : outcome.ok()       ? committed
                                                 : outcome.status()}});
  finish(absl::UnavailableError(absl::StrCat(
      "PostgreSQL connection lost during the commit of transaction ", xid,
      "; whether it was written is unknown")));
}

absl::Status Database::WithReader(
    const std::function<absl::Status(Connection&)>& fn) {
  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<Connection> conn;
    {
      MutexLock lock(&pool_mu_);
      while (idle_readers_.empty() &&
             readers_out_ >= options_.read_connections) {
        pool_cv_.Wait(&pool_mu_);
      }
      if (!idle_readers_.empty()) {
        conn = std::move(idle_readers_.back());
        idle_readers_.pop_back();
      }
      ++readers_out_;
    }
    const auto give_back = [&] {
      MutexLock lock(&pool_mu_);
      --readers_out_;
      if (conn != nullptr && conn->ok()) {
        idle_readers_.push_back(std::move(conn));
      }
      pool_cv_.Signal();
    };
    if (conn == nullptr) {
      absl::StatusOr<std::unique_ptr<Connection>> opened = Connect();
      if (!opened.ok()) {
        give_back();
        return opened.status();
      }
      conn = *std::move(opened);
    }
    const absl::Status s = RunRead(*conn, fn);
    const bool lost = !conn->ok();
    give_back();
    if (!lost || attempt > 0) {
      return lost ? absl::UnavailableError(s.message()) : s;
    }
    // The connection was lost (e.g. the server restarted since it was
    // last used): once more, on a new one.
  }
}

absl::Status Database::WithAutocommit(
    const std::function<absl::Status(Connection&)>& fn) {
  MutexLock lock(&autocommit_mu_);
  for (int attempt = 0;; ++attempt) {
    if (autocommit_conn_ == nullptr || !autocommit_conn_->ok()) {
      autocommit_conn_.reset();
      absl::StatusOr<std::unique_ptr<Connection>> opened = Connect();
      if (!opened.ok()) return opened.status();
      // A lease row locked by a transaction in the writer's group (a
      // mark's fence check) is waited for this long at most, not
      // kLockTimeout: a heartbeat that hangs holds up the keeper, and
      // one that fails is tried again at the next beat.
      if (absl::Status set = (*opened)->Exec(
              absl::StrCat("SET lock_timeout = ",
                           absl::ToInt64Milliseconds(kAutocommitLockTimeout)));
          !set.ok()) {
        return set;
      }
      autocommit_conn_ = *std::move(opened);
    }
    const absl::Status s = RunRead(*autocommit_conn_, fn);
    const bool lost = !autocommit_conn_->ok();
    if (!lost || attempt > 0) {
      return lost ? absl::UnavailableError(s.message()) : s;
    }
    // Lost: once more, on a new one (fn is idempotent).
  }
}

absl::Status Database::RunRead(
    Connection& conn, const std::function<absl::Status(Connection&)>& fn) {
  try {
    return fn(conn);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("storage read failed: ", e.what()));
  }
}

}  // namespace campaigns::storage::postgres
