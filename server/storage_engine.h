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
  // file, PostgreSQL unreachable, another instance holding the database).
  virtual absl::Status Readiness() = 0;
  // Writes queued and not yet completed.
  virtual int64_t queue_depth() = 0;
  // For logs: the file, or "host:port/database as user"; never a password.
  virtual const std::string& where() const = 0;
  // Blocks until every write queued before the call has completed.
  virtual void Flush() = 0;
  // Flushes and closes; later writes answer UNAVAILABLE. Idempotent.
  virtual void Close() = 0;
};

// Opens (and migrates) the database `options.db` names, and takes it for
// this process: FAILED_PRECONDITION when another campaignd runs on it
// (storage/sqlite/instance_lock.h, storage/postgres/sole_instance.h).
absl::StatusOr<std::unique_ptr<StorageEngine>> OpenStorage(
    const StorageOptions& options);

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_STORAGE_ENGINE_H_
