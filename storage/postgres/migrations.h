// Forward-only schema migrations for PostgreSQL, versioned as SQLite's are
// (storage/sqlite/migrations.h): migration N takes the schema from version
// N-1 to N, in one transaction with its row in campaignd_schema, so a crash
// leaves the database at a whole version.
//
// Several instances may start together on one database: Migrate holds a
// session advisory lock (kMigrationLock) while it reads the version and
// applies what is missing, so exactly one applies each migration and the
// others, once they get the lock, find nothing left to do.
#ifndef CAMPAIGND_STORAGE_POSTGRES_MIGRATIONS_H_
#define CAMPAIGND_STORAGE_POSTGRES_MIGRATIONS_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "storage/postgres/connection.h"

namespace campaigns::storage::postgres {

// The advisory lock key Migrate holds ("campaign" in ASCII).
inline constexpr int64_t kMigrationLock = 0x63616d706169676e;
// The session advisory lock ("soleinst" in ASCII) that builds before
// several instances could share a database held exclusively while they ran:
// Migrate refuses (FAILED_PRECONDITION) while one holds it.
inline constexpr int64_t kSoleInstanceLock = 0x736f6c65696e7374;

// The schema version this build migrates to.
int LatestSchemaVersion();

// The database's schema version: 0 for a database campaignd never touched.
absl::StatusOr<int> SchemaVersion(Connection& conn);

// Applies every migration above the database's version and returns the
// resulting version. A database newer than this build is
// FAILED_PRECONDITION naming both versions.
absl::StatusOr<int> Migrate(Connection& conn);

// Migrate, but only up to version `target` (1..LatestSchemaVersion()).
absl::StatusOr<int> MigrateTo(Connection& conn, int target);

}  // namespace campaigns::storage::postgres

#endif  // CAMPAIGND_STORAGE_POSTGRES_MIGRATIONS_H_
