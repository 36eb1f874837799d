#include "server/dispatch/lease_keeper.h"

#include <utility>
#include <vector>

#include "server/log/log.h"

namespace campaigns::dispatch {
namespace {

// The longest read of the database's clock taken as a measure of it (the
// offset is known to within half of the read).
constexpr absl::Duration kClockReadAtMost = absl::Milliseconds(200);

}  // namespace

LeaseKeeper::LeaseKeeper(LeaseRepository* leases, Timer* timer, InstanceInfo me,
                         LeaseKeeperOptions options, OnLost on_lost)
    : leases_(leases),
      timer_(timer),
      me_(std::move(me)),
      options_(options),
      on_lost_(std::move(on_lost)) {}

LeaseKeeper::~LeaseKeeper() { Stop(/*leave=*/false); }

absl::Status LeaseKeeper::Start() {
  uint64_t generation;
  absl::Status status;
  std::set<std::string> lost;
  {
    MutexLock call(&call_mu_);
    {
      MutexLock lock(&mu_);
      if (running_) return absl::OkStatus();
      running_ = true;
      generation = ++generation_;
    }
    lost = HeartbeatLocked(&status);
  }
  Report(lost);
  ScheduleHeartbeat(generation);
  return status;
}

void LeaseKeeper::Stop(bool leave) {
  MutexLock call(&call_mu_);
  {
    MutexLock lock(&mu_);
    if (!running_) return;
    running_ = false;
    ++generation_;
    held_.clear();
  }
  if (leave) {
    if (absl::Status left = leases_->Leave(me_.id); !left.ok()) {
      logging::Warn(
          "leaving the database's instances failed: others take over this "
          "instance's work once its leases expire",
          {{"instance", me_.id}, {"error", left}});
    }
  }
}

absl::StatusOr<std::optional<Lease>> LeaseKeeper::Acquire(
    const std::string& resource) {
  MutexLock call(&call_mu_);
  {
    MutexLock lock(&mu_);
    if (!running_) {
      return absl::FailedPreconditionError("the lease keeper is stopped");
    }
  }
  const absl::Duration start = timer_->Steady();
  absl::StatusOr<std::optional<Lease>> lease =
      leases_->Acquire(me_.id, resource, options_.ttl);
  if (!lease.ok()) return lease.status();
  MutexLock lock(&mu_);
  if (lease->has_value()) {
    held_[resource] = HeldLease{**lease, HeldUntil(start)};
  } else {
    held_.erase(resource);
  }
  return lease;
}

absl::Status LeaseKeeper::Release(const std::string& resource) {
  MutexLock call(&call_mu_);
  {
    MutexLock lock(&mu_);
    if (held_.erase(resource) == 0) return absl::OkStatus();
  }
  // Not held any more whatever the answer: a lease not released here is
  // released by the next heartbeat (it is no longer listed), or expires.
  return leases_->Release(me_.id, resource);
}

std::optional<Lease> LeaseKeeper::Held(const std::string& resource) {
  const absl::Duration now = timer_->Steady();
  MutexLock lock(&mu_);
  auto it = held_.find(resource);
  if (it == held_.end() || it->second.until <= now) return std::nullopt;
  return it->second.lease;
}

absl::Duration LeaseKeeper::HeldUntil(absl::Duration start) const {
  return start + options_.ttl - options_.ttl / 10;
}

int LeaseKeeper::other_instances() {
  MutexLock lock(&mu_);
  return other_instances_;
}

bool LeaseKeeper::ConfiguredElsewhere(const std::string& provider) {
  MutexLock lock(&mu_);
  return providers_elsewhere_.count(provider) > 0;
}

absl::Duration LeaseKeeper::DatabaseClockOffset() {
  MutexLock lock(&mu_);
  return clock_offset_;
}

void LeaseKeeper::MeasureClock(absl::Time database_now, absl::Time wall_start,
                               absl::Duration took) {
  // The database read its clock within `took` of `wall_start`: the middle
  // of that span is at most half of it away.
  clock_offset_ = database_now - (wall_start + took / 2);
  if (absl::AbsDuration(clock_offset_ - logged_offset_) < absl::Seconds(1)) {
    return;
  }
  logged_offset_ = clock_offset_;
  if (absl::AbsDuration(clock_offset_) < absl::Seconds(1)) {
    logging::Info("this instance's clock agrees with the database's again",
                  {{"instance", me_.id}, {"offset", clock_offset_}});
    return;
  }
  logging::Warn(
      "this instance's clock differs from the database's: schedules and "
      "receipt timeouts follow the database's; timestamps this instance "
      "stores are corrected by the difference",
      {{"instance", me_.id}, {"database_minus_local", clock_offset_}});
}

void LeaseKeeper::ScheduleHeartbeat(uint64_t generation) {
  timer_->At(timer_->Now() + options_.heartbeat_every,
             [this, generation] { Beat(generation); });
}

void LeaseKeeper::Beat(uint64_t generation) {
  std::set<std::string> lost;
  {
    MutexLock call(&call_mu_);
    {
      MutexLock lock(&mu_);
      if (!running_ || generation != generation_) return;  // stopped
    }
    absl::Status status;
    lost = HeartbeatLocked(&status);
  }
  Report(lost);
  ScheduleHeartbeat(generation);
}

std::set<std::string> LeaseKeeper::HeartbeatLocked(absl::Status* status) {
  std::vector<std::string> held;
  {
    MutexLock lock(&mu_);
    for (const auto& [resource, lease] : held_) held.push_back(resource);
  }
  const absl::Time wall_start = timer_->Now();
  const absl::Duration start = timer_->Steady();
  absl::StatusOr<HeartbeatResult> beat =
      leases_->Heartbeat(me_, held, options_.ttl);
  const absl::Duration now = timer_->Steady();
  MutexLock lock(&mu_);
  if (!beat.ok()) {
    *status = beat.status();
    static logging::RateLimited limit(5, absl::Seconds(60));
    int64_t suppressed = 0;
    if (limit.Allow(&suppressed)) {
      logging::Error(
          "lease heartbeat failed: leases not renewed before they run out "
          "are given up, and their work stops",
          {{"instance", me_.id},
           {"leases", static_cast<int64_t>(held.size())},
           {"error", beat.status()},
           {"suppressed", suppressed}});
    }
    return DropExpired(now);
  }
  *status = absl::OkStatus();
  if (beat->database_now) {
    const absl::Duration within =
        beat->database_now_within > absl::ZeroDuration()
            ? beat->database_now_within
            : now - start;
    // A read that took long (the database busy) would move the offset by
    // up to half of it: the last one stands.
    if (within <= kClockReadAtMost) {
      MeasureClock(*beat->database_now, wall_start, within);
    }
  }
  other_instances_ = beat->other_instances;
  providers_elsewhere_ = std::move(beat->providers_elsewhere);
  std::set<std::string> lost(beat->lost.begin(), beat->lost.end());
  for (const std::string& resource : held) {
    auto it = held_.find(resource);
    if (it == held_.end()) continue;  // released meanwhile
    if (lost.count(resource) > 0) {
      held_.erase(it);
    } else {
      it->second.until = HeldUntil(start);
    }
  }
  for (const ProviderMismatch& m : beat->mismatches) {
    if (logged_mismatches_.insert({m.provider, m.other_instance}).second) {
      logging::Error(
          "another instance configures this provider differently: messages "
          "of one campaign may go out through different settings depending "
          "on which instance sends them",
          {{"instance", me_.id},
           {"provider", m.provider},
           {"other_instance", m.other_instance}});
    }
  }
  std::set<std::string> expired = DropExpired(now);
  lost.insert(expired.begin(), expired.end());
  return lost;
}

std::set<std::string> LeaseKeeper::DropExpired(absl::Duration now) {
  std::set<std::string> dropped;
  for (auto it = held_.begin(); it != held_.end();) {
    if (it->second.until <= now) {
      dropped.insert(it->first);
      it = held_.erase(it);
    } else {
      ++it;
    }
  }
  return dropped;
}

void LeaseKeeper::Report(const std::set<std::string>& lost) {
  for (const std::string& resource : lost) {
    logging::Warn("lease lost: its work stops here",
                  {{"instance", me_.id}, {"resource", resource}});
    if (on_lost_) on_lost_(resource);
  }
}

}  // namespace campaigns::dispatch
