#include "storage/postgres/owners.h"

#include "absl/strings/str_cat.h"

namespace campaigns::storage::postgres {

std::string TakeableBy(absl::string_view column, int me, int ttl_us) {
  return absl::StrCat(
      "($", me, "::text = '' OR (", column, " <> $", me,
      "::text AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = ", column,
      " AND i.heartbeat_at > (extract(epoch FROM clock_timestamp()) * "
      "1000000)::bigint - $",
      ttl_us, "::bigint)))");
}

std::string TtlParam(const WorkOwner& owner) {
  return absl::StrCat(absl::ToInt64Microseconds(owner.ttl));
}

}  // namespace campaigns::storage::postgres
