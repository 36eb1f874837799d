// Helpers of the PostgreSQL stores: times as the schema keeps them, domain
// values from rows, and idempotent creates. Internal to storage/postgres.
#ifndef CAMPAIGND_STORAGE_POSTGRES_ROWS_H_
#define CAMPAIGND_STORAGE_POSTGRES_ROWS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/domain/errors.h"
#include "server/domain/model.h"
#include "server/domain/repository.h"
#include "storage/postgres/connection.h"

namespace campaigns::storage::postgres {

// Times are BIGINT microseconds since the Unix epoch, as text parameters.
std::string Micros(absl::Time t);
absl::Time TimeAt(const Rows& rows, int row, const char* column);
std::optional<absl::Time> OptionalTimeAt(const Rows& rows, int row,
                                         const char* column);
int64_t IntAt(const Rows& rows, int row, const char* column);
bool BoolAt(const Rows& rows, int row, const char* column);

Account ReadAccount(const Rows& rows, int row);
ApiKey ReadApiKey(const Rows& rows, int row);

// Runs a create under an idempotency key inside the current transaction:
// a repeat with the same body returns `load(first_id)`, another body is
// IDEMPOTENCY_CONFLICT; otherwise `create()` runs and its id is recorded.
// Holds a transaction advisory lock on the key, so concurrent repeats (from
// any instance) wait for the first and then load its result.
template <typename T>
absl::StatusOr<T> Idempotent(
    Connection& c, const std::string& account_id, const IdempotencyKey& idem,
    const std::function<absl::StatusOr<T>(const std::string&)>& load,
    const std::function<absl::StatusOr<T>()>& create,
    const std::function<std::string(const T&)>& id_of) {
  if (idem.request_id.empty()) return create();
  if (absl::StatusOr<Rows> locked = c.Query(
          "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
          {absl::StrCat(account_id, "\n", idem.method, "\n", idem.request_id)});
      !locked.ok()) {
    return locked.status();
  }
  absl::StatusOr<Rows> found = c.Query(
      "SELECT body_hash, resource_id FROM idempotency_keys "
      "WHERE account_id = $1 AND method = $2 AND request_id = $3",
      {account_id, idem.method, idem.request_id});
  if (!found.ok()) return found.status();
  if (found->size() > 0) {
    if (found->Text(0, 0) != idem.body_hash) {
      return errors::IdempotencyConflict(idem.request_id);
    }
    return load(found->Text(0, 1));
  }
  absl::StatusOr<T> created = create();
  if (!created.ok()) return created;
  absl::StatusOr<Rows> recorded = c.Query(
      "INSERT INTO idempotency_keys(account_id, method, request_id, "
      "body_hash, resource_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
      {account_id, idem.method, idem.request_id, idem.body_hash,
       id_of(*created), Micros(NowMicros())});
  if (!recorded.ok()) return recorded.status();
  return created;
}

}  // namespace campaigns::storage::postgres

#endif  // CAMPAIGND_STORAGE_POSTGRES_ROWS_H_
