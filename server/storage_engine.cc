#include "server/storage_engine.h"

#include <atomic>
#include <utility>

#include "server/config.h"
#include "server/domain/mutex.h"
#include "server/log/log.h"
#include "storage/postgres/database.h"
#include "storage/postgres/lease_store.h"
#include "storage/postgres/listener.h"
#include "storage/postgres/store.h"
#include "storage/sqlite/database.h"
#include "storage/sqlite/store.h"

namespace campaigns {
namespace {

class SqliteEngine : public StorageEngine {
 public:
  static absl::StatusOr<std::unique_ptr<StorageEngine>> Open(
      const StorageOptions& options, const std::string& path) {
    std::unique_ptr<SqliteEngine> e(new SqliteEngine());
    storage::DatabaseOptions db_options;
    db_options.path = path;
    db_options.synchronous_full = options.synchronous_full;
    db_options.check_on_open = options.check_on_open;
    db_options.vfs = options.sqlite_vfs;
    db_options.single_instance = true;
    db_options.metrics = options.metrics;
    db_options.on_writable = [raw = e.get(), path,
                              on_writable =
                                  options.on_writable](bool writable) {
      if (writable) {
        logging::Info("storage writable again", {{"db", path}});
      } else if (!raw->corrupt()) {  // corrupt: logged as critical
        logging::Error("storage not writable: readiness and health say so",
                       {{"db", path}});
      }
      if (on_writable) on_writable(writable);
    };
    absl::StatusOr<std::unique_ptr<storage::Database>> db =
        storage::Database::Open(db_options);
    if (!db.ok()) return db.status();
    e->db_ = *std::move(db);
    e->store_ = std::make_unique<storage::Store>(e->db_.get());
    e->opened_ = true;
    return e;
  }

  Repository& repository() override { return *store_; }
  absl::Status Readiness() override {
    if (db_->corrupt()) {
      return absl::UnavailableError(
          "storage stopped: the database file is corrupt (see the log)");
    }
    if (!db_->writable()) {
      return absl::UnavailableError(
          "storage not writable: the last transaction failed (see the log)");
    }
    return absl::OkStatus();
  }
  int64_t queue_depth() override { return db_->queue_depth(); }
  const std::string& where() const override { return db_->path(); }
  void Flush() override { db_->Flush(); }
  void Close() override { db_->Close(); }

 private:
  SqliteEngine() = default;
  // For on_writable, which may run before Open returns.
  bool corrupt() const { return opened_.load() && db_->corrupt(); }

  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::Store> store_;
  std::atomic<bool> opened_{false};
};

class PostgresEngine : public StorageEngine {
 public:
  static absl::StatusOr<std::unique_ptr<StorageEngine>> Open(
      const StorageOptions& options, const std::string& dsn) {
    std::unique_ptr<PostgresEngine> e(new PostgresEngine());
    e->on_writable_ = options.on_writable;
    e->dsn_ = dsn;
    e->password_ = options.password;
    storage::postgres::DatabaseOptions db_options;
    db_options.dsn = dsn;
    db_options.password = options.password;
    db_options.on_available = [raw = e.get()](bool) { raw->Changed(); };
    absl::StatusOr<std::unique_ptr<storage::postgres::Database>> db =
        storage::postgres::Database::Open(db_options);
    if (!db.ok()) return db.status();
    e->db_ = *std::move(db);
    e->leases_ = std::make_unique<storage::postgres::LeaseStore>(e->db_.get());
    // Several instances may share the database: each sends the campaigns
    // it holds the lease of (server/dispatch/engine.h), and owns the
    // imports and deletions it runs.
    storage::postgres::WorkOwner owner;
    owner.instance = options.instance_id;
    owner.ttl = options.instance_ttl;
    e->store_ = std::make_unique<storage::postgres::Store>(e->db_.get(), owner);
    MutexLock l(&e->mu_);
    e->open_ = true;
    e->writable_ = e->Readiness().ok();
    return e;
  }

  ~PostgresEngine() override { Close(); }

  Repository& repository() override { return *store_; }
  LeaseRepository* leases() override { return leases_.get(); }
  absl::Status Readiness() override {
    if (!db_->available()) {
      return absl::UnavailableError(
          "storage: PostgreSQL is unreachable (see the log)");
    }
    return absl::OkStatus();
  }
  int64_t queue_depth() override { return db_->queue_depth(); }
  const std::string& where() const override { return db_->where(); }
  void Flush() override { db_->Flush(); }
  absl::Status Subscribe(std::function<void(const std::string& id)> campaign,
                         std::function<void()> resync) override {
    {
      MutexLock l(&mu_);
      if (!open_ || listener_ != nullptr) {
        return absl::FailedPreconditionError(
            "storage: subscribed already, or closed");
      }
    }
    storage::postgres::ListenerOptions options;
    options.dsn = dsn_;
    options.password = password_;
    options.channels = {storage::postgres::kCampaignsChanged};
    absl::StatusOr<std::unique_ptr<storage::postgres::Listener>> listener =
        storage::postgres::Listener::Start(
            std::move(options),
            [campaign = std::move(campaign)](
                const storage::postgres::Connection::Notification& n) {
              const std::string id = storage::postgres::ChangedId(n.payload);
              if (!id.empty()) campaign(id);
            },
            std::move(resync));
    if (!listener.ok()) return listener.status();
    MutexLock l(&mu_);
    listener_ = *std::move(listener);
    return absl::OkStatus();
  }
  void Close() override {
    std::unique_ptr<storage::postgres::Listener> listener;
    {
      // Waits for a Changed() in progress; none calls on_writable after.
      MutexLock l(&mu_);
      open_ = false;
      listener.swap(listener_);
    }
    // No notification is delivered after this.
    if (listener != nullptr) listener->Stop();
    if (db_ != nullptr) db_->Close();
  }

 private:
  PostgresEngine() = default;

  // The database's reachability changed: tell the
  // server when that changes whether writes may go on. Serialised, and
  // from the current state (calls may come in any order).
  void Changed() {
    MutexLock l(&mu_);
    if (!open_) return;  // opening (members still being set) or closed
    const bool writable = Readiness().ok();
    if (writable != writable_) {
      writable_ = writable;
      if (on_writable_) on_writable_(writable);
    }
  }

  std::function<void(bool)> on_writable_;
  std::string dsn_;
  std::string password_;  // never logged
  std::unique_ptr<storage::postgres::Database> db_;
  std::unique_ptr<storage::postgres::Store> store_;
  std::unique_ptr<storage::postgres::LeaseStore> leases_;
  Mutex mu_;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
  bool writable_ ABSL_GUARDED_BY(mu_) = true;
  std::unique_ptr<storage::postgres::Listener> listener_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<StorageEngine>> OpenStorage(
    const StorageOptions& options) {
  absl::StatusOr<config::DatabaseLocation> where =
      config::ParseDatabaseLocation(options.db);
  if (!where.ok()) return where.status();
  if (where->engine == config::DatabaseLocation::Engine::kPostgres) {
    return PostgresEngine::Open(options, where->target);
  }
  if (!options.password.empty()) {
    return absl::InvalidArgumentError(
        "db_password: only for a PostgreSQL db (postgresql://...)");
  }
  return SqliteEngine::Open(options, where->target);
}

}  // namespace campaigns
