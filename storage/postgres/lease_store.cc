#include "storage/postgres/lease_store.h"

#include <chrono>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "storage/json.h"
#include "storage/postgres/owners.h"
#include "storage/postgres/rows.h"

namespace campaigns::storage::postgres {
namespace {

// The server's clock now, in the schema's microseconds, as a FROM item
// with one column `n`.
const std::string& Now() {
  static const std::string* const now = new std::string(
      absl::StrCat("(SELECT ", kDatabaseNowUs, " AS n) AS now"));
  return *now;
}

// Dead instances' rows are kept this long (for an operator looking at
// the table), then removed by any heartbeat.
constexpr absl::Duration kForgetInstancesAfter = absl::Hours(24);

std::string Us(absl::Duration d) {
  return absl::StrCat(absl::ToInt64Microseconds(d));
}

Lease ReadLease(const Rows& rows, int row) {
  Lease l;
  l.resource = rows.Text(row, "resource");
  l.owner = rows.Text(row, "owner");
  l.epoch = IntAt(rows, row, "epoch");
  l.expires_at = TimeAt(rows, row, "expires_at");
  return l;
}

}  // namespace

absl::StatusOr<HeartbeatResult> LeaseStore::Heartbeat(
    const InstanceInfo& me, const std::vector<std::string>& held,
    absl::Duration ttl) {
  const auto start = std::chrono::steady_clock::now();
  return db_->Autocommit<HeartbeatResult>(
      [&](Connection& c) -> absl::StatusOr<HeartbeatResult> {
        absl::StatusOr<Rows> rows = c.Query(
            absl::StrCat(
                "INSERT INTO instances(id, started_at, heartbeat_at, "
                "providers, ttl_us) SELECT $1, n, n, $2, $3::bigint "
                "FROM ",
                Now(),
                " ON CONFLICT (id) DO UPDATE SET heartbeat_at = "
                "EXCLUDED.heartbeat_at, providers = EXCLUDED.providers, "
                "ttl_us = EXCLUDED.ttl_us RETURNING heartbeat_at"),
            {me.id, MapToJson(me.provider_fingerprints), Us(ttl)});
        if (!rows.ok()) return rows.status();
        const absl::Duration read_within =
            absl::FromChrono(std::chrono::steady_clock::now() - start);
        const std::string now = rows->Text(0, 0);
        // Every lease of `held` still ours, whether or not it expired
        // meanwhile: no one took it (that would have made it theirs).
        const std::string held_array = TextArray(held);
        rows = c.Query(
            "UPDATE leases SET expires_at = $2::bigint + $3::bigint "
            "WHERE owner = $1 AND resource = ANY($4::text[]) "
            "RETURNING resource",
            {me.id, now, Us(ttl), held_array});
        if (!rows.ok()) return rows.status();
        std::set<std::string> kept;
        for (int i = 0; i < rows->size(); ++i) kept.insert(rows->Text(i, 0));
        // Ours but unknown to the caller: no one works on it, so no one
        // should hold it.
        absl::StatusOr<Rows> stray = c.Query(
            "UPDATE leases SET owner = '', expires_at = 0 WHERE owner = $1 "
            "AND NOT (resource = ANY($2::text[]))",
            {me.id, held_array});
        if (!stray.ok()) return stray.status();
        HeartbeatResult result;
        if (int64_t us; absl::SimpleAtoi(now, &us)) {
          result.database_now = absl::FromUnixMicros(us);
          result.database_now_within = read_within;
        }
        for (const std::string& r : held) {
          if (kept.count(r) == 0) result.lost.push_back(r);
        }
        rows = c.Query(
            "SELECT id, providers FROM instances WHERE id <> $1 AND "
            "heartbeat_at > $2::bigint - GREATEST(ttl_us, $3::bigint) "
            "ORDER BY id",
            {me.id, now, Us(ttl)});
        if (!rows.ok()) return rows.status();
        result.other_instances = rows->size();
        for (int i = 0; i < rows->size(); ++i) {
          for (const auto& [name, fingerprint] :
               MapFromJson(rows->Text(i, "providers"))) {
            result.providers_elsewhere.insert(name);
            auto mine = me.provider_fingerprints.find(name);
            if (mine != me.provider_fingerprints.end() &&
                mine->second != fingerprint) {
              result.mismatches.push_back({name, rows->Text(i, "id")});
            }
          }
        }
        absl::StatusOr<Rows> forgot = c.Query(
            "DELETE FROM instances WHERE heartbeat_at < "
            "$1::bigint - $2::bigint",
            {now, Us(kForgetInstancesAfter)});
        if (!forgot.ok()) return forgot.status();
        return result;
      });
}

absl::StatusOr<std::optional<Lease>> LeaseStore::Acquire(
    const std::string& owner, const std::string& resource, absl::Duration ttl) {
  // One statement: the row lock ON CONFLICT takes makes two instances'
  // attempts on one resource apply one after the other, and the second
  // sees the first's unexpired lease.
  return db_->Autocommit<std::optional<Lease>>(
      [&](Connection& c) -> absl::StatusOr<std::optional<Lease>> {
        absl::StatusOr<Rows> rows = c.Query(
            absl::StrCat(
                "INSERT INTO leases(resource, owner, expires_at, epoch) "
                "SELECT $1, $2, n + $3::bigint, 1 FROM ",
                Now(),
                " ON CONFLICT (resource) DO UPDATE SET "
                "owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at, "
                "epoch = CASE WHEN leases.owner = EXCLUDED.owner THEN "
                "leases.epoch ELSE leases.epoch + 1 END "
                "WHERE leases.owner = EXCLUDED.owner OR leases.expires_at <= "
                "EXCLUDED.expires_at - $3::bigint "
                "RETURNING resource, owner, epoch, expires_at"),
            {resource, owner, Us(ttl)});
        if (!rows.ok()) return rows.status();
        if (rows->size() == 0) return std::nullopt;
        return ReadLease(*rows, 0);
      });
}

absl::Status LeaseStore::Release(const std::string& owner,
                                 const std::string& resource) {
  // The row stays (ownerless, expired), so the next owner's epoch is
  // higher than every earlier one.
  return db_
      ->Autocommit<bool>([&](Connection& c) -> absl::StatusOr<bool> {
        absl::StatusOr<Rows> rows = c.Query(
            "UPDATE leases SET owner = '', expires_at = 0 "
            "WHERE resource = $1 AND owner = $2",
            {resource, owner});
        if (!rows.ok()) return rows.status();
        return true;
      })
      .status();
}

absl::StatusOr<std::optional<Lease>> LeaseStore::Holder(
    const std::string& resource) {
  return db_->Read<std::optional<Lease>>(
      [&](Connection& c) -> absl::StatusOr<std::optional<Lease>> {
        absl::StatusOr<Rows> rows = c.Query(
            "SELECT resource, owner, epoch, expires_at FROM leases "
            "WHERE resource = $1",
            {resource});
        if (!rows.ok()) return rows.status();
        if (rows->size() == 0) return std::nullopt;
        return ReadLease(*rows, 0);
      });
}

absl::Status LeaseStore::Leave(const std::string& owner) {
  return db_
      ->Autocommit<bool>([&](Connection& c) -> absl::StatusOr<bool> {
        absl::Status s = c.Query(
                              "UPDATE leases SET owner = '', expires_at = 0 "
                              "WHERE owner = $1",
                              {owner})
                             .status();
        if (s.ok()) {
          s = c.Query("DELETE FROM instances WHERE id = $1", {owner}).status();
        }
        if (!s.ok()) return s;
        return true;
      })
      .status();
}

}  // namespace campaigns::storage::postgres
