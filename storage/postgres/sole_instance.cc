#include "storage/postgres/sole_instance.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/log/log.h"

namespace campaigns::storage::postgres {
namespace {

// The session advisory lock's key ("soleinst" in ASCII). The other keys,
// which must differ: kMigrationLock (migrations.h), account_store.cc's.
constexpr int64_t kSoleInstanceLock = 0x736f6c65696e7374;

}  // namespace

absl::StatusOr<std::unique_ptr<Connection>> SoleInstance::Connect(
    const SoleInstanceOptions& o) {
  absl::StatusOr<std::unique_ptr<Connection>> conn =
      Connection::Open(o.dsn, o.connect_timeout, o.password);
  if (!conn.ok()) return conn.status();
  // The server ends a session whose client vanished (a crashed host) after
  // about 30 s instead of the kernel's two hours: the lock goes with it.
  if (absl::Status s = (*conn)->Exec(
          "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; "
          "SET tcp_keepalives_count = 3; SET tcp_user_timeout = 30000");
      !s.ok()) {
    return s;
  }
  return conn;
}

absl::StatusOr<bool> SoleInstance::TryLock(Connection& conn) {
  absl::StatusOr<Rows> rows = conn.Query(
      absl::StrCat("SELECT pg_try_advisory_lock(", kSoleInstanceLock, ")"));
  if (!rows.ok()) return rows.status();
  return rows->Text(0, 0) == "t";
}

absl::StatusOr<std::unique_ptr<SoleInstance>> SoleInstance::Acquire(
    SoleInstanceOptions options) {
  std::unique_ptr<SoleInstance> sole(new SoleInstance(std::move(options)));
  const SoleInstanceOptions& o = sole->options_;
  absl::StatusOr<std::unique_ptr<Connection>> conn = Connect(o);
  if (!conn.ok()) return conn.status();
  const absl::Time deadline = absl::Now() + o.acquire_for;
  for (;;) {
    absl::StatusOr<bool> locked = TryLock(**conn);
    if (!locked.ok()) return locked.status();
    if (*locked) break;
    if (absl::Now() >= deadline) {
      return absl::FailedPreconditionError(absl::StrCat(
          "another campaignd is running on the PostgreSQL database ",
          (*conn)->where(),
          "; this build runs one instance per database (stop the other "
          "first)"));
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  sole->conn_ = *std::move(conn);
  sole->held_ = true;
  MutexLock lock(&sole->stop_mu_);
  sole->thread_ = std::thread([raw = sole.get()] { raw->Run(); });
  return sole;
}

SoleInstance::~SoleInstance() { Stop(); }

void SoleInstance::Stop() {
  MutexLock stop(&stop_mu_);
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
  held_ = false;
  conn_.reset();  // ends the session: the server releases the lock
}

void SoleInstance::SetHeld(bool held) {
  if (held_.exchange(held) != held && options_.on_held) options_.on_held(held);
}

void SoleInstance::Run() {
  bool taken_logged = false;
  while (true) {
    {
      MutexLock lock(&mu_);
      if (!stopping_) cv_.WaitWithTimeout(&mu_, options_.check_every);
      if (stopping_) return;
    }
    if (conn_ != nullptr && conn_->ok() && conn_->Exec("SELECT 1").ok()) {
      continue;  // the session, and with it the lock, lives
    }
    if (conn_ != nullptr) {
      conn_.reset();
      SetHeld(false);
      logging::Error(
          "PostgreSQL: the instance lock's session ended; dispatch waits "
          "until it is taken again");
    }
    absl::StatusOr<std::unique_ptr<Connection>> conn = Connect(options_);
    if (!conn.ok()) continue;  // the Database logs the server's absence
    absl::StatusOr<bool> locked = TryLock(**conn);
    if (!locked.ok()) continue;
    if (!*locked) {
      // Another campaignd started while this one's session was gone. Two
      // must never dispatch together: this one waits for the lock.
      if (!taken_logged) {
        logging::Error(
            "PostgreSQL: another campaignd holds the instance lock; this "
            "one does not dispatch until it is released",
            {{"db", (*conn)->where()}});
        taken_logged = true;
      }
      continue;
    }
    taken_logged = false;
    conn_ = *std::move(conn);
    SetHeld(true);
    logging::Info("PostgreSQL: instance lock taken again",
                  {{"db", conn_->where()}});
  }
}

}  // namespace campaigns::storage::postgres
