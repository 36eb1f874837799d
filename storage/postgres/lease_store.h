// LeaseStore: LeaseRepository (server/domain/leases.h) on PostgreSQL, in
// the `instances` and `leases` tables. Every statement commits on its own
// through Database::Autocommit, so heartbeats never wait behind the
// writer's group commits nor for a read connection. Times are the server's
// clock_timestamp().
//
// Thread-safe.
#ifndef CAMPAIGND_STORAGE_POSTGRES_LEASE_STORE_H_
#define CAMPAIGND_STORAGE_POSTGRES_LEASE_STORE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/domain/leases.h"
#include "storage/postgres/database.h"

namespace campaigns::storage::postgres {

class LeaseStore : public LeaseRepository {
 public:
  // `db` must outlive the store.
  explicit LeaseStore(Database* db) : db_(db) {}

  absl::StatusOr<HeartbeatResult> Heartbeat(
      const InstanceInfo& me, const std::vector<std::string>& held,
      absl::Duration ttl) override;
  absl::StatusOr<std::optional<Lease>> Acquire(const std::string& owner,
                                               const std::string& resource,
                                               absl::Duration ttl) override;
  absl::Status Release(const std::string& owner,
                       const std::string& resource) override;
  absl::StatusOr<std::optional<Lease>> Holder(
      const std::string& resource) override;
  absl::Status Leave(const std::string& owner) override;

 private:
  Database* const db_;
};

}  // namespace campaigns::storage::postgres

#endif  // CAMPAIGND_STORAGE_POSTGRES_LEASE_STORE_H_
