// Owners of work that outlives a request: a campaign's recipient import
// (campaigns.work_owner while import_floor is set), a campaign's deletion
// being purged (the same column while `deleting`), and a contact import
// (contact_imports.owner). The owner is the instance that runs it (its
// `instances` id, registered by its lease keeper's heartbeats); another
// instance takes the work over (rolls the import back, finishes applying
// it, purges the rest) only once the owner is dead: no heartbeat within the
// lease ttl, on the database's clock. Taking it over makes the taker the
// owner, in the same statement, so two survivors never both do it and the
// dead owner's late steps find the work no longer theirs.
//
// Values; thread-compatible.
#ifndef CAMPAIGND_STORAGE_POSTGRES_OWNERS_H_
#define CAMPAIGND_STORAGE_POSTGRES_OWNERS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "storage/postgres/connection.h"

namespace campaigns::storage::postgres {

struct WorkOwner {
  // This instance's id (InstanceInfo::id). "" for a store that is alone on
  // its database (a tool, a test): it takes over all unfinished work, as
  // SQLite's recovery does.
  std::string instance;
  // How long after its last heartbeat an instance counts as dead.
  absl::Duration ttl = absl::Seconds(10);
};

// SQL (a boolean expression): whether the work whose owner is in `column`
// may be taken over by instance `$<me>` (a text parameter), the dead being
// those with no heartbeat within their own ttl or the last `$<ttl_us>`
// microseconds (a bigint parameter), whichever is longer: instances
// configured with different ttls never judge a live one dead. Every owner
// when $me is ''; never $me itself.
std::string TakeableBy(absl::string_view column, int me, int ttl_us);

// The database's clock now, in the schema's microseconds: a bigint SQL
// expression.
inline constexpr absl::string_view kDatabaseNowUs =
    "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint";

// `owner.ttl` as TakeableBy's parameter.
std::string TtlParam(const WorkOwner& owner);

// Whether recipient `r` (the alias) is marked handed by another instance
// that is alive, its provider call possibly still out: a boolean, with
// $`me` this instance (WorkOwner::instance) and $`ttl_us` TtlParam.
std::string MarkedByALiveOther(int me, int ttl_us);

// What TakeOver claims: every row of `table` matching `where` (SQL, may be
// empty) whose `owner_column` is TakeableBy this instance, locked `lock`
// ("FOR UPDATE", "FOR NO KEY UPDATE") in `key` order; it returns
// `returning` (columns of `table`, alias c).
struct Claim {
  absl::string_view table;
  absl::string_view key;
  absl::string_view owner_column;
  absl::string_view where;
  absl::string_view lock;
  absl::string_view returning;
};

// The one statement that takes work over, on `c`: makes `owner` the owner
// of the rows `claim` names; returns them, each with its former owner as
// `was`.
absl::StatusOr<Rows> TakeOver(Connection& c, const Claim& claim,
                              const WorkOwner& owner);

}  // namespace campaigns::storage::postgres

#endif  // CAMPAIGND_STORAGE_POSTGRES_OWNERS_H_
