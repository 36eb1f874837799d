// Forward-only schema migrations keyed on PRAGMA user_version.
//
// Migration N (1-based) takes the schema from version N-1 to N. Each runs in
// its own transaction together with the user_version bump, so a crash leaves
// the database at a whole version.
#ifndef CAMPAIGND_STORAGE_SQLITE_MIGRATIONS_H_
#define CAMPAIGND_STORAGE_SQLITE_MIGRATIONS_H_

#include <SQLiteCpp/Database.h>

#include "absl/status/statusor.h"

namespace campaigns::storage {

// The schema version this build migrates to.
int LatestSchemaVersion();

// Applies every migration above the database's user_version and returns the
// resulting version. A database newer than this build is FAILED_PRECONDITION.
absl::StatusOr<int> Migrate(SQLite::Database& db);

// Migrate, but only up to version `target` (1..LatestSchemaVersion()): a
// database as an older build left it, for tests of the migrations.
absl::StatusOr<int> MigrateTo(SQLite::Database& db, int target);

}  // namespace campaigns::storage

#endif  // CAMPAIGND_STORAGE_SQLITE_MIGRATIONS_H_
