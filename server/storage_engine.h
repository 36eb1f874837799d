// StorageEngine: the database campaignd runs on, as the server sees it: the
// Repository, whether it takes writes now, and its shutdown. OpenStorage
// picks SQLite or PostgreSQL from what --db names (config::
// ParseDatabaseLocation); nothing else in the server names an engine.
//
//   StorageOptions options;
//   options.db = "postgresql://campaignd@db/campaignd";
//   auto storage = OpenStorage(options);
//   api::Api api(&(*storage)->repository(), ...);
//
// Thread-safe.
#ifndef CAMPAIGND_SERVER_STORAGE_ENGINE_H_
#define CAMPAIGND_SERVER_STORAGE_ENGINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/domain/leases.h"
#include "server/domain/metrics.h"
#include "server/domain/repository.h"

namespace campaigns {

struct StorageOptions {
  // A SQLite file (a path or sqlite:PATH) or a PostgreSQL libpq URI.
  std::string db = "./campaignd.db";
  // PostgreSQL: the password for a URI without one (db_password).
  std::string password;
  // SQLite: synchronous=FULL; PRAGMA quick_check at open; the VFS ("" =
  // the default).
  bool synchronous_full = false;
  bool check_on_open = true;
  std::string sqlite_vfs;
  Metrics* metrics = Metrics::None();
  // PostgreSQL: this process's instance id (InstanceInfo::id), which owns
  // the imports and deletions it begins, and how long after its last
  // heartbeat an instance counts as dead (the lease ttl): other instances
  // take its work over after that. "" for a process alone on the database
  // (it takes every unfinished import and deletion at start-up).
  std::string instance_id;
  absl::Duration instance_ttl = absl::Seconds(10);
  // Called when writable() changes, on a storage thread; must not block.
  std::function<void(bool writable)> on_writable;
};

class StorageEngine {
 public:
  virtual ~StorageEngine() = default;

  virtual Repository& repository() = 0;
  // Where several instances may share the database (PostgreSQL): their
  // leases (server/domain/leases.h). Null (SQLite): this instance owns all.
  virtual LeaseRepository* leases() { return nullptr; }
  // OK, or UNAVAILABLE saying why writes fail now (a full disk, a corrupt
  // file, PostgreSQL unreachable).
  virtual absl::Status Readiness() = 0;
  // Writes queued and not yet completed.
  virtual int64_t queue_depth() = 0;
  // For logs: the file, or "host:port/database as user"; never a password.
  virtual const std::string& where() const = 0;
  // Blocks until every write queued before the call has completed.
  virtual void Flush() = 0;
  // What is changed in the database, by this instance or another one, as
  // the database announces it (PostgreSQL's notifications): `campaign` with
  // a campaign's id once a change of its row (status, counters, settings,
  // deletion) committed; `resync` when changes may have been missed, after
  // every connection of the listener (the first one too, before this
  // returns). Calls come one at a time from a thread of the storage's until
  // Close, and must not block. Once per engine. SQLite has nothing to
  // announce (one instance makes every change) and returns OK; the error
  // says why the listener could not start.
  virtual absl::Status Subscribe(
      std::function<void(const std::string& id)> campaign,
      std::function<void()> resync) {
    (void)campaign;
    (void)resync;
    return absl::OkStatus();
  }
  // Flushes and closes; later writes answer UNAVAILABLE. Idempotent.
  virtual void Close() = 0;
};

// Opens (and migrates) the database `options.db` names. An SQLite file is
// taken for this process: FAILED_PRECONDITION when another campaignd runs
// on it (storage/sqlite/instance_lock.h). A PostgreSQL database is shared
// with the other instances on it (leases()); the schema is migrated once
// whichever starts first.
absl::StatusOr<std::unique_ptr<StorageEngine>> OpenStorage(
    const StorageOptions& options);

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_STORAGE_ENGINE_H_
