// Copies an SQLite campaignd database into an empty PostgreSQL one: every
// row of every table the PostgreSQL schema shares with SQLite's, in one
// PostgreSQL transaction (all or nothing), then checks each table's row
// count on both sides. Recipient ids keep working: the recipient id key
// (meta) comes along, and identity sequences continue after the copied rows.
//
//   absl::StatusOr<MigrationReport> r = MigrateSqliteToPostgres(
//       "campaignd.db", "postgresql://campaignd@db/campaignd");
//
// Refused (FAILED_PRECONDITION) when a campaignd is running on the SQLite
// file (its instance lock), when the PostgreSQL database already holds
// campaignd rows, or when a table or column of one side is missing on the
// other. The SQLite database is migrated to its latest schema first and is
// otherwise only read.
//
// Stateless; thread-safe.
#ifndef CAMPAIGND_STORAGE_MIGRATE_SQLITE_TO_POSTGRES_H_
#define CAMPAIGND_STORAGE_MIGRATE_SQLITE_TO_POSTGRES_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace campaigns::storage {

struct MigrationReport {
  // (table, rows copied), in the order they were copied.
  std::vector<std::pair<std::string, int64_t>> tables;
  int64_t total_rows = 0;
};

absl::StatusOr<MigrationReport> MigrateSqliteToPostgres(
    const std::string& sqlite_path, const std::string& postgres_dsn);

}  // namespace campaigns::storage

#endif  // CAMPAIGND_STORAGE_MIGRATE_SQLITE_TO_POSTGRES_H_
