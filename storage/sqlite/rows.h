// Conversions between SQLite rows and domain values, private to storage/.
//
// Times are stored as INTEGER microseconds since the epoch; optional times
// and durations as NULL when unset; maps, lists and components as JSON text
// (storage/json.h).
// All functions are stateless and thread-safe.
#ifndef CAMPAIGND_STORAGE_SQLITE_ROWS_H_
#define CAMPAIGND_STORAGE_SQLITE_ROWS_H_

#include <SQLiteCpp/Column.h>
#include <SQLiteCpp/Statement.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/domain/model.h"
#include "storage/json.h"

namespace campaigns::storage {

int64_t ToMicros(absl::Time t);
absl::Time FromMicros(int64_t us);

// Binds an optional time/duration (NULL when unset) to parameter `index`.
void BindOptional(SQLite::Statement& st, int index,
                  const std::optional<absl::Time>& t);
void BindOptional(SQLite::Statement& st, int index,
                  const std::optional<absl::Duration>& d);

// The column `name` of `st`'s current row. `name` must be a string literal
// (or outlive the program): where it was last found is remembered by its
// address, per thread, and checked against the statement's column name
// before use, so only a column that moved is searched for. SQLiteCpp's
// getColumn(name) builds a std::string and searches a std::map every time,
// which cost several microseconds per campaign read. Throws as
// getColumn(name) does for an unknown name.
SQLite::Column Col(SQLite::Statement& st, const char* name);

std::optional<absl::Time> OptionalTime(const SQLite::Column& c);
std::optional<absl::Duration> OptionalDuration(const SQLite::Column& c);

// Row readers for `SELECT * FROM <table>` statements.
Account ReadAccount(SQLite::Statement& st);
ApiKey ReadApiKey(SQLite::Statement& st);
Template ReadTemplate(SQLite::Statement& st);
Sender ReadSender(SQLite::Statement& st);
Campaign ReadCampaign(SQLite::Statement& st);
Suppression ReadSuppression(SQLite::Statement& st);
// A `contacts` row with an extra column `tags` (JSON array of the contact's
// tags, sorted).
Contact ReadContact(SQLite::Statement& st);
// A `contact_lists` row with an extra column `contact_count`.
ContactList ReadContactList(SQLite::Statement& st);

}  // namespace campaigns::storage

#endif  // CAMPAIGND_STORAGE_SQLITE_ROWS_H_
