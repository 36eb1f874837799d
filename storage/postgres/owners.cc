#include "storage/postgres/owners.h"

#include "absl/strings/str_cat.h"

namespace campaigns::storage::postgres {

std::string TakeableBy(absl::string_view column, int me, int ttl_us) {
  return absl::StrCat(
      "($", me, "::text = '' OR (", column, " <> $", me,
      "::text AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = ", column,
      " AND i.heartbeat_at > ", kDatabaseNowUs, " - GREATEST(i.ttl_us, $",
      ttl_us, "::bigint))))");
}

std::string TtlParam(const WorkOwner& owner) {
  return absl::StrCat(absl::ToInt64Microseconds(owner.ttl));
}

std::string MarkedByALiveOther(int me, int ttl_us) {
  return absl::StrCat("(r.handed AND r.handed_by <> '' AND r.handed_by <> $",
                      me, "::text AND NOT ",
                      TakeableBy("r.handed_by", me, ttl_us), ")");
}

namespace {

// TakeOver's statement; parameters {owner.instance, TtlParam(owner)}.
std::string ClaimSql(const Claim& claim) {
  return absl::StrCat(
      "UPDATE ", claim.table, " c SET ", claim.owner_column, " = $1 FROM (",
      "SELECT ", claim.key, ", ", claim.owner_column, " AS was FROM ",
      claim.table, " WHERE ", claim.where, claim.where.empty() ? "" : " AND ",
      TakeableBy(claim.owner_column, 1, 2), " ORDER BY ", claim.key, " ",
      claim.lock, ") o WHERE c.", claim.key, " = o.", claim.key, " RETURNING ",
      claim.returning, ", o.was");
}

}  // namespace

absl::StatusOr<Rows> TakeOver(Connection& c, const Claim& claim,
                              const WorkOwner& owner) {
  return c.Query(ClaimSql(claim), {owner.instance, TtlParam(owner)});
}

}  // namespace campaigns::storage::postgres
