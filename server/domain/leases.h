// LeaseRepository: work sharing between campaignd instances on one database
// (PostgreSQL; an SQLite database has one instance, which owns everything).
// A lease names a piece of work ("campaign:cmp_...", "sender:snd_...") and
// the live instance that owns it until when. Times are the database's
// clock, so the instances' clocks need not agree.
//
// An owner keeps its leases by heartbeats more often than their ttl. A lease
// whose owner stopped (crash, kill -9, network cut) expires ttl after the
// last heartbeat and may then be acquired by any instance; each change of
// owner raises the lease's epoch. Work guarded by a lease must still be
// fenced where it is written (a recipient is claimed in the database before
// it is sent), because an owner may learn it lost a lease only at its next
// heartbeat.
//
// Every call blocks for a round trip to the database. Calls are not queued
// behind the writer's group commits (a long import cannot starve
// heartbeats), nor wait for a read connection: they have one of their own.
// server/dispatch/lease_keeper.h keeps an instance's leases.
// Implementations are thread-safe.
#ifndef CAMPAIGND_SERVER_DOMAIN_LEASES_H_
#define CAMPAIGND_SERVER_DOMAIN_LEASES_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace campaigns {

// A sending campaign's lease: this + its id. Its holder sends it.
inline constexpr absl::string_view kCampaignLeasePrefix = "campaign:";
// A rate-limited sender's lease: this + its snd_ id. Its holder paces it.
inline constexpr absl::string_view kSenderLeasePrefix = "sender:";

// One running campaignd process.
struct InstanceInfo {
  // Unique per process start ("ins_..."): a restarted process is a new
  // instance, and takes its old leases only as any instance would.
  std::string id;
  // Provider name -> a fingerprint of its configuration (a hash: never the
  // secrets themselves).
  std::map<std::string, std::string> provider_fingerprints;
};

struct Lease {
  std::string resource;
  std::string owner;
  // 1 for the first owner; +1 at each change of owner.
  int64_t epoch = 0;
  // On the database's clock: for reading, not for comparing with
  // absl::Now(). The holder treats the lease as gone sooner, by its own
  // steady clock, unless a later Heartbeat succeeded (a partitioned owner
  // cannot learn that another took it over): LeaseKeeper.
  absl::Time expires_at;
};

// A provider name that two live instances configure differently.
struct ProviderMismatch {
  std::string provider;
  std::string other_instance;
};

struct HeartbeatResult {
  // Of the resources the caller said it holds, those it no longer does
  // (another instance acquired them after they expired, or they were
  // released): the caller must stop that work now.
  std::vector<std::string> lost;
  // Live instances other than the caller (heartbeat within the ttl).
  int other_instances = 0;
  std::vector<ProviderMismatch> mismatches;
  // The provider names those instances configure.
  std::set<std::string> providers_elsewhere;
  // The database's clock during the call (nullopt: the repository does not
  // read one): what schedules and receipt timeouts are due by.
  std::optional<absl::Time> database_now;
  // It was read within this long of the call's start (by the steady
  // clock; zero: within the whole call).
  absl::Duration database_now_within;
};

class LeaseRepository {
 public:
  virtual ~LeaseRepository() = default;

  // Records that `me` is alive, extends the leases of `held` (the resources
  // the caller believes it owns) that it still owns to now + ttl, releases
  // any other lease it owns (e.g. one whose Acquire committed but whose
  // answer was lost), and compares its provider fingerprints with the other
  // live instances'.
  virtual absl::StatusOr<HeartbeatResult> Heartbeat(
      const InstanceInfo& me, const std::vector<std::string>& held,
      absl::Duration ttl) = 0;
  // Takes `resource` for `owner` until now + ttl if it is free, expired, or
  // already `owner`'s (then extended, same epoch). The lease when `owner`
  // holds it after the call; nullopt when another live owner does.
  virtual absl::StatusOr<std::optional<Lease>> Acquire(
      const std::string& owner, const std::string& resource,
      absl::Duration ttl) = 0;
  // Gives `resource` up if `owner` holds it (e.g. the campaign completed).
  virtual absl::Status Release(const std::string& owner,
                               const std::string& resource) = 0;
  // The lease on `resource`, expired or not; nullopt if there is none.
  virtual absl::StatusOr<std::optional<Lease>> Holder(
      const std::string& resource) = 0;
  // A clean shutdown: releases every lease of `owner` and removes the
  // instance, so others take over at once instead of after the ttl.
  virtual absl::Status Leave(const std::string& owner) = 0;
};

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_DOMAIN_LEASES_H_
