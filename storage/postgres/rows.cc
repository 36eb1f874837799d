#include "storage/postgres/rows.h"

#include "absl/strings/numbers.h"

namespace campaigns::storage::postgres {

std::string Micros(absl::Time t) { return absl::StrCat(absl::ToUnixMicros(t)); }

int64_t IntAt(const Rows& rows, int row, const char* column) {
  int64_t v = 0;
  (void)absl::SimpleAtoi(rows.Text(row, column), &v);
  return v;
}

absl::Time TimeAt(const Rows& rows, int row, const char* column) {
  return absl::FromUnixMicros(IntAt(rows, row, column));
}

std::optional<absl::Time> OptionalTimeAt(const Rows& rows, int row,
                                         const char* column) {
  if (!rows.Get(row, column).has_value()) return std::nullopt;
  return TimeAt(rows, row, column);
}

bool BoolAt(const Rows& rows, int row, const char* column) {
  return rows.Text(row, column) == "t";
}

Account ReadAccount(const Rows& rows, int row) {
  Account a;
  a.id = rows.Text(row, "id");
  a.name = rows.Text(row, "name");
  a.admin = BoolAt(rows, row, "admin");
  a.currency = rows.Text(row, "currency");
  a.credits_balance = IntAt(rows, row, "credits_balance");
  a.credits_reserved = IntAt(rows, row, "credits_reserved");
  a.created_at = TimeAt(rows, row, "created_at");
  a.updated_at = TimeAt(rows, row, "updated_at");
  return a;
}

ApiKey ReadApiKey(const Rows& rows, int row) {
  ApiKey k;
  k.id = rows.Text(row, "id");
  k.account_id = rows.Text(row, "account_id");
  k.name = rows.Text(row, "name");
  k.prefix = rows.Text(row, "prefix");
  k.key_hash = rows.Text(row, "key_hash");
  k.created_at = TimeAt(rows, row, "created_at");
  k.revoked_at = OptionalTimeAt(rows, row, "revoked_at");
  return k;
}

}  // namespace campaigns::storage::postgres
