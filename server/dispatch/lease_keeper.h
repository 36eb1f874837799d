// LeaseKeeper: this instance's leases (server/domain/leases.h), kept by a
// heartbeat every `heartbeat_every` on the Timer. What the engine asks for
// it acquires (Acquire); what a heartbeat reports lost, or what could not be
// renewed in time (the database unreachable, or this process partitioned
// from it), it drops and reports to `on_lost` once, so that the work it
// guards stops before another instance may take it over.
//
// In time: a lease is taken as held until the start of the call that last
// took or renewed it + ttl - ttl/10, on the Timer's steady clock. The
// database expires it at its own clock's time of that call + ttl, which is
// later; a wall clock stepped back here does not lengthen it, and the tenth
// covers steady clocks that run at slightly different rates.
//
//   LeaseKeeper keeper(&leases, timer, {.id = NewId("ins")}, {},
//                      [&](const std::string& r) { engine.LeaseLost(r); });
//   keeper.Start();
//   if (auto lease = keeper.Acquire("campaign:cmp_1"); lease.ok() && *lease)
//     ...work fenced by (*lease)->epoch...
//   keeper.Stop(/*leave=*/true);  // hands everything over at once
//
// Heartbeats and Acquire block for a round trip to the database: the
// heartbeat runs on a timer thread, one of its own in the server
// (OwnQueueTimer), so that it neither holds the server's queues nor waits
// behind them (lease calls do not queue behind the writer and have a
// connection of their own, so this is short; while the server is
// unreachable, calls fail at once between reconnection attempts).
//
// The database's clock: each heartbeat reads it, and DatabaseClockOffset()
// is its difference from this process's wall clock, measured then (to
// within half the read's round trip; a read that took over 200 ms is not
// taken). An instance whose clock is ahead of or behind the
// database's by a second or more is logged, once per such difference.
//
// Thread-safe. Locks, in this order: a caller's own lock (the engine's),
// then the keeper's. Held, other_instances, ConfiguredElsewhere and
// DatabaseClockOffset take only the keeper's inner lock, which is held
// around no call out: they may be called under a caller's lock. Start,
// Stop, Acquire and Release wait for the database (call_mu_): never call
// them under a lock that `on_lost` takes. `on_lost` runs on a timer thread
// with none of the keeper's locks held, and may call the keeper.
#ifndef CAMPAIGND_SERVER_DISPATCH_LEASE_KEEPER_H_
#define CAMPAIGND_SERVER_DISPATCH_LEASE_KEEPER_H_

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/dispatch/timer.h"
#include "server/domain/leases.h"
#include "server/domain/mutex.h"

namespace campaigns::dispatch {

struct LeaseKeeperOptions {
  // How long a lease outlives this instance's last heartbeat: the longest
  // another instance waits to take over work of a dead one.
  absl::Duration ttl = absl::Seconds(10);
  // Shorter than ttl, so that one failed heartbeat loses nothing.
  absl::Duration heartbeat_every = absl::Seconds(3);
};

class LeaseKeeper {
 public:
  using OnLost = std::function<void(const std::string& resource)>;

  // `leases` and `timer` must outlive the keeper.
  LeaseKeeper(LeaseRepository* leases, Timer* timer, InstanceInfo me,
              LeaseKeeperOptions options, OnLost on_lost);
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  // Registers the instance (a first heartbeat, whose failure is returned)
  // and schedules the next ones.
  absl::Status Start() ABSL_LOCKS_EXCLUDED(mu_, call_mu_);
  // No more heartbeats; with `leave`, every lease is released and the
  // instance removed, so others take over now rather than after the ttl.
  // Leases are not reported lost. Idempotent.
  void Stop(bool leave) ABSL_LOCKS_EXCLUDED(mu_, call_mu_);

  // Takes `resource` if it is free or expired (or already ours). The lease
  // when this instance holds it now; nullopt when another live instance
  // does; an error when the database cannot say.
  absl::StatusOr<std::optional<Lease>> Acquire(const std::string& resource)
      ABSL_LOCKS_EXCLUDED(mu_, call_mu_);
  // Gives `resource` up (its work is done). Not reported lost.
  absl::Status Release(const std::string& resource)
      ABSL_LOCKS_EXCLUDED(mu_, call_mu_);

  // The lease on `resource` if this instance holds it now: acquired, not
  // reported lost, and not run out on the steady clock (see above).
  std::optional<Lease> Held(const std::string& resource)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Live instances other than this one, at the last heartbeat.
  int other_instances() ABSL_LOCKS_EXCLUDED(mu_);
  // Whether one of them configures a provider named `provider`, at the
  // last heartbeat.
  bool ConfiguredElsewhere(const std::string& provider)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The database's clock minus this process's wall clock (Timer::Now), as
  // the last heartbeat that read it measured; zero before one.
  absl::Duration DatabaseClockOffset() ABSL_LOCKS_EXCLUDED(mu_);
  const std::string& id() const { return me_.id; }

 private:
  void ScheduleHeartbeat(uint64_t generation) ABSL_LOCKS_EXCLUDED(mu_);
  // The heartbeat itself, with call_mu_ held; the leases lost.
  std::set<std::string> HeartbeatLocked(absl::Status* status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(call_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  // One heartbeat; then reports what was lost.
  void Beat(uint64_t generation) ABSL_LOCKS_EXCLUDED(mu_, call_mu_);
  // Drops every lease run out by `now` (timer_->Steady()); returns them.
  std::set<std::string> DropExpired(absl::Duration now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // When a lease taken or renewed by a call that started at `start` (on
  // timer_->Steady()) runs out here.
  absl::Duration HeldUntil(absl::Duration start) const;
  void Report(const std::set<std::string>& lost) ABSL_LOCKS_EXCLUDED(mu_);
  // Takes the offset to `database_now`, read within `took` of a call that
  // started at `wall_start` on the wall clock.
  void MeasureClock(absl::Time database_now, absl::Time wall_start,
                    absl::Duration took) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  LeaseRepository* const leases_;
  Timer* const timer_;
  const InstanceInfo me_;
  const LeaseKeeperOptions options_;
  const OnLost on_lost_;

  // Held across each call to `leases_` that changes what this instance
  // holds (heartbeat, acquire, release, leave), in that order with mu_: a
  // heartbeat releases the leases it is not told of, so an Acquire must not
  // commit between its snapshot of held_ and its call.
  Mutex call_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  Mutex mu_;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  // A generation per Start, so that the heartbeats of an earlier one stop.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  struct HeldLease {
    Lease lease;
    absl::Duration until;  // HeldUntil
  };
  std::map<std::string, HeldLease> held_ ABSL_GUARDED_BY(mu_);
  int other_instances_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::string> providers_elsewhere_ ABSL_GUARDED_BY(mu_);
  absl::Duration clock_offset_ ABSL_GUARDED_BY(mu_);
  // The offset last logged (logged again once it moved by a second).
  absl::Duration logged_offset_ ABSL_GUARDED_BY(mu_);
  // Provider mismatches already logged (provider, other instance).
  std::set<std::pair<std::string, std::string>> logged_mismatches_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_LEASE_KEEPER_H_
