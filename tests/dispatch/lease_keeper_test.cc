// Tests of server/dispatch/lease_keeper.h on a fake clock and an in-memory
// LeaseRepository: heartbeats keep what was acquired; what a heartbeat
// reports lost, or what could not be renewed in time, is reported once and
// no longer held; a heartbeat never releases a lease acquired while it ran;
// Stop with leave hands everything over.
#include "server/dispatch/lease_keeper.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/dispatch/fake_timer.h"

namespace campaigns::dispatch {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// One database's leases, on the test's clock. Thread-safe.
class MemoryLeases : public LeaseRepository {
 public:
  explicit MemoryLeases(Timer* clock) : clock_(clock) {}

  absl::StatusOr<HeartbeatResult> Heartbeat(
      const InstanceInfo& me, const std::vector<std::string>& held,
      absl::Duration ttl) override {
    std::unique_lock<std::mutex> lock(mu_);
    ++heartbeats_;
    // Once, unlocked: what other calls do while this one is on its way.
    std::function<void()> during = std::move(during_heartbeat_);
    during_heartbeat_ = nullptr;
    if (during) {
      lock.unlock();
      during();
      lock.lock();
    }
    if (!reachable_) return absl::UnavailableError("database unreachable");
    const absl::Time now = DbNow();
    HeartbeatResult out;
    for (const std::string& r : held) {
      auto it = leases_.find(r);
      if (it == leases_.end() || it->second.owner != me.id ||
          it->second.expires_at <= now) {
        out.lost.push_back(r);
      } else {
        it->second.expires_at = now + ttl;
      }
    }
    for (auto& [r, lease] : leases_) {
      if (lease.owner == me.id &&
          std::find(held.begin(), held.end(), r) == held.end()) {
        lease.owner.clear();  // a stray lease of the caller: released
        released_.push_back(r);
      }
    }
    out.other_instances = others_;
    if (db_ahead_) {
      out.database_now = clock_->Now() + *db_ahead_;
      out.database_now_within = db_read_within_;
    }
    if (mismatch_) out.mismatches.push_back({"meta", "ins_other"});
    return out;
  }
  absl::StatusOr<std::optional<Lease>> Acquire(const std::string& owner,
                                               const std::string& resource,
                                               absl::Duration ttl) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!reachable_) return absl::UnavailableError("database unreachable");
    const absl::Time now = DbNow();
    Lease& lease = leases_[resource];
    if (!lease.owner.empty() && lease.owner != owner &&
        lease.expires_at > now) {
      return std::optional<Lease>();
    }
    if (lease.owner != owner) ++lease.epoch;
    lease.resource = resource;
    lease.owner = owner;
    lease.expires_at = now + ttl;
    return std::optional<Lease>(lease);
  }
  absl::Status Release(const std::string& owner,
                       const std::string& resource) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = leases_.find(resource);
    if (it != leases_.end() && it->second.owner == owner) {
      it->second.owner.clear();
      released_.push_back(resource);
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::optional<Lease>> Holder(
      const std::string& resource) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = leases_.find(resource);
    if (it == leases_.end() || it->second.owner.empty()) {
      return std::optional<Lease>();
    }
    return std::optional<Lease>(it->second);
  }
  absl::Status Leave(const std::string& owner) override {
    std::lock_guard<std::mutex> lock(mu_);
    left_.push_back(owner);
    for (auto& [r, lease] : leases_) {
      if (lease.owner == owner) lease.owner.clear();
    }
    return absl::OkStatus();
  }

  // Another instance takes `resource` (as after this one's lease expired).
  void TakeOver(const std::string& resource) {
    std::lock_guard<std::mutex> lock(mu_);
    leases_[resource].owner = "ins_other";
    ++leases_[resource].epoch;
  }

  // The database's clock: the test's steady one (a step of this process's
  // wall clock does not move it).
  absl::Time DbNow() { return absl::UnixEpoch() + clock_->Steady(); }

  std::mutex mu_;
  Timer* const clock_;
  std::map<std::string, Lease> leases_;
  bool reachable_ = true;
  bool mismatch_ = false;
  int others_ = 0;
  // The database's clock as Heartbeat reports it: this far ahead of the
  // test's wall clock (nullopt: not reported).
  std::optional<absl::Duration> db_ahead_;
  absl::Duration db_read_within_;  // how long reading it took
  int heartbeats_ = 0;
  std::vector<std::string> released_;
  std::vector<std::string> left_;
  std::function<void()> during_heartbeat_;
};

class LeaseKeeperTest : public ::testing::Test {
 protected:
  LeaseKeeperTest() : leases_(&timer_) {}

  std::unique_ptr<LeaseKeeper> Keeper() {
    LeaseKeeperOptions options;
    options.ttl = absl::Seconds(10);
    options.heartbeat_every = absl::Seconds(3);
    return std::make_unique<LeaseKeeper>(
        &leases_, &timer_, InstanceInfo{"ins_me", {}}, options,
        [this](const std::string& r) { lost_.push_back(r); });
  }

  // Runs the heartbeats due over `d`, in steps of a second.
  void RunFor(absl::Duration d) {
    for (absl::Duration t; t < d; t += absl::Seconds(1)) {
      timer_.Advance(absl::Seconds(1));
      timer_.RunDue();
    }
  }

  testing::FakeTimer timer_;
  MemoryLeases leases_;
  std::vector<std::string> lost_;
};

// Each heartbeat that reads the database's clock measures its difference
// from this process's; one that cannot reach the database, or whose read
// took too long to tell, keeps the last.
TEST_F(LeaseKeeperTest, EachHeartbeatMeasuresTheDatabasesClock) {
  std::unique_ptr<LeaseKeeper> keeper = Keeper();
  ASSERT_TRUE(keeper->Start().ok());
  EXPECT_EQ(keeper->DatabaseClockOffset(), absl::ZeroDuration());
  leases_.db_ahead_ = absl::Minutes(5);
  RunFor(absl::Seconds(3));
  EXPECT_EQ(keeper->DatabaseClockOffset(), absl::Minutes(5));
  leases_.db_ahead_ = -absl::Minutes(2);
  RunFor(absl::Seconds(3));
  EXPECT_EQ(keeper->DatabaseClockOffset(), -absl::Minutes(2));
  leases_.db_read_within_ = absl::Seconds(1);
  leases_.db_ahead_ = absl::Hours(2);
  RunFor(absl::Seconds(3));
  EXPECT_EQ(keeper->DatabaseClockOffset(), -absl::Minutes(2));
  leases_.db_read_within_ = absl::Milliseconds(10);
  RunFor(absl::Seconds(3));
  EXPECT_EQ(keeper->DatabaseClockOffset(),
            absl::Hours(2) - absl::Milliseconds(5));
  leases_.db_read_within_ = absl::ZeroDuration();
  leases_.db_ahead_ = -absl::Minutes(2);
  RunFor(absl::Seconds(3));
  leases_.reachable_ = false;
  leases_.db_ahead_ = absl::Hours(1);
  RunFor(absl::Seconds(3));
  EXPECT_EQ(keeper->DatabaseClockOffset(), -absl::Minutes(2));
  keeper->Stop(/*leave=*/false);
}

TEST_F(LeaseKeeperTest, HeartbeatsKeepWhatWasAcquired) {
  auto keeper = Keeper();
  ASSERT_TRUE(keeper->Start().ok());
  auto lease = keeper->Acquire("campaign:cmp_1");
  ASSERT_TRUE(lease.ok()) << lease.status();
  ASSERT_TRUE(lease->has_value());
  EXPECT_EQ((*lease)->epoch, 1);
  RunFor(absl::Minutes(1));  // six ttls
  ASSERT_TRUE(keeper->Held("campaign:cmp_1").has_value());
  EXPECT_EQ(keeper->Held("campaign:cmp_1")->epoch, 1);
  EXPECT_THAT(lost_, IsEmpty());
  EXPECT_GE(leases_.heartbeats_, 20);
}

TEST_F(LeaseKeeperTest, ALeaseAnotherInstanceTookIsReportedLostOnce) {
  auto keeper = Keeper();
  ASSERT_TRUE(keeper->Start().ok());
  ASSERT_TRUE(keeper->Acquire("campaign:cmp_1").ok());
  ASSERT_TRUE(keeper->Acquire("campaign:cmp_2").ok());
  leases_.TakeOver("campaign:cmp_1");
  RunFor(absl::Seconds(10));
  EXPECT_THAT(lost_, ElementsAre("campaign:cmp_1"));
  EXPECT_FALSE(keeper->Held("campaign:cmp_1").has_value());
  EXPECT_TRUE(keeper->Held("campaign:cmp_2").has_value());
}

// A partitioned instance cannot renew: it stops treating its leases as held
// a tenth of the ttl before they expire on the database (the ttl after the
// start of the last renewal), and reports them lost.
TEST_F(LeaseKeeperTest, LeasesNotRenewedInTimeAreGivenUp) {
  auto keeper = Keeper();
  ASSERT_TRUE(keeper->Start().ok());
  ASSERT_TRUE(keeper->Acquire("campaign:cmp_1").ok());
  RunFor(absl::Seconds(3));  // renewed once
  leases_.reachable_ = false;
  RunFor(absl::Seconds(8));
  EXPECT_THAT(lost_, IsEmpty());  // renewed at 3 s: held until 12 s
  EXPECT_TRUE(keeper->Held("campaign:cmp_1").has_value());
  timer_.Advance(absl::Seconds(1));  // 12 s: no longer held
  EXPECT_FALSE(keeper->Held("campaign:cmp_1").has_value());
  RunFor(absl::Seconds(3));
  EXPECT_THAT(lost_, ElementsAre("campaign:cmp_1"));
  leases_.reachable_ = true;
  RunFor(absl::Seconds(10));
  EXPECT_THAT(lost_, ElementsAre("campaign:cmp_1"));  // once
}

// A wall clock stepped back (an NTP correction, an operator) does not
// lengthen how long a partitioned instance takes its leases as held: that
// is measured on the steady clock, from the start of the last renewal.
TEST_F(LeaseKeeperTest, AWallClockSteppedBackDoesNotLengthenALease) {
  auto keeper = Keeper();
  ASSERT_TRUE(keeper->Start().ok());
  ASSERT_TRUE(keeper->Acquire("campaign:cmp_1").ok());
  RunFor(absl::Seconds(3));  // renewed at 3 s: held until 12 s
  leases_.reachable_ = false;
  timer_.StepWallClock(-absl::Hours(1));
  RunFor(absl::Seconds(8));
  EXPECT_TRUE(keeper->Held("campaign:cmp_1").has_value());
  RunFor(absl::Seconds(1));  // 12 s
  EXPECT_FALSE(keeper->Held("campaign:cmp_1").has_value());
  EXPECT_THAT(lost_, ElementsAre("campaign:cmp_1"));
}

// A heartbeat releases the caller's leases it was not told of; one acquired
// while the heartbeat runs must not be among them.
TEST_F(LeaseKeeperTest, AnAcquireDuringAHeartbeatIsNotReleasedByIt) {
  auto keeper = Keeper();
  ASSERT_TRUE(keeper->Start().ok());
  std::thread acquirer;
  std::promise<void> acquired;
  std::future<void> acquired_future = acquired.get_future();
  leases_.during_heartbeat_ = [&] {
    acquirer = std::thread([&] {
      auto lease = keeper->Acquire("campaign:cmp_9");
      EXPECT_TRUE(lease.ok() && lease->has_value());
      acquired.set_value();
    });
    // Gives the Acquire the chance to commit between the heartbeat's
    // snapshot and its release of strays: the keeper must not let it.
    (void)acquired_future.wait_for(std::chrono::milliseconds(300));
  };
  RunFor(absl::Seconds(3));
  acquirer.join();
  RunFor(absl::Seconds(6));
  EXPECT_TRUE(keeper->Held("campaign:cmp_9").has_value());
  EXPECT_THAT(leases_.released_, IsEmpty());
  EXPECT_THAT(lost_, IsEmpty());
}

TEST_F(LeaseKeeperTest, ReleaseAndLeaveHandWorkOverWithoutReportingItLost) {
  auto keeper = Keeper();
  ASSERT_TRUE(keeper->Start().ok());
  ASSERT_TRUE(keeper->Acquire("campaign:cmp_1").ok());
  ASSERT_TRUE(keeper->Acquire("campaign:cmp_2").ok());
  ASSERT_TRUE(keeper->Release("campaign:cmp_1").ok());
  EXPECT_THAT(leases_.released_, ElementsAre("campaign:cmp_1"));
  EXPECT_FALSE(keeper->Held("campaign:cmp_1").has_value());
  keeper->Stop(/*leave=*/true);
  EXPECT_THAT(leases_.left_, ElementsAre("ins_me"));
  EXPECT_FALSE(keeper->Held("campaign:cmp_2").has_value());
  const int beats = leases_.heartbeats_;
  RunFor(absl::Seconds(30));
  EXPECT_EQ(leases_.heartbeats_, beats);  // stopped
  EXPECT_THAT(lost_, IsEmpty());
  EXPECT_EQ(keeper->Acquire("campaign:cmp_3").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(LeaseKeeperTest, AResourceAnotherLiveInstanceHoldsIsNotAcquired) {
  auto keeper = Keeper();
  ASSERT_TRUE(keeper->Start().ok());
  leases_.TakeOver("sender:snd_1");
  leases_.leases_["sender:snd_1"].expires_at = timer_.Now() + absl::Seconds(5);
  auto lease = keeper->Acquire("sender:snd_1");
  ASSERT_TRUE(lease.ok());
  EXPECT_FALSE(lease->has_value());
  EXPECT_FALSE(keeper->Held("sender:snd_1").has_value());
  timer_.Advance(absl::Seconds(6));  // expired: taken over, epoch + 1
  lease = keeper->Acquire("sender:snd_1");
  ASSERT_TRUE(lease.ok() && lease->has_value());
  EXPECT_EQ((*lease)->epoch, 2);
}

TEST_F(LeaseKeeperTest, AStartWithoutTheDatabaseFailsButKeepsTrying) {
  leases_.reachable_ = false;
  leases_.others_ = 2;
  auto keeper = Keeper();
  EXPECT_EQ(keeper->Start().code(), absl::StatusCode::kUnavailable);
  leases_.reachable_ = true;
  RunFor(absl::Seconds(3));
  EXPECT_EQ(keeper->other_instances(), 2);
}

}  // namespace
}  // namespace campaigns::dispatch
