#include "storage/postgres/sole_instance.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <vector>

#include "absl/time/clock.h"
#include "server/domain/mutex.h"
#include "tests/support/pg_fixture.h"

namespace campaigns::storage::postgres {
namespace {

using testing::PgTest;

// Records what on_held reported.
class HeldLog {
 public:
  std::function<void(bool)> Callback() {
    return [this](bool held) {
      MutexLock lock(&mu_);
      events_.push_back(held);
      cv_.SignalAll();
    };
  }
  // Waits up to 10 s for the event list to become `want`.
  bool WaitFor(const std::vector<bool>& want) {
    MutexLock lock(&mu_);
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (events_ != want) {
      if (!cv_.WaitWithTimeout(&mu_, deadline - absl::Now()) &&
          absl::Now() >= deadline) {
        return events_ == want;
      }
    }
    return true;
  }
  std::vector<bool> events() {
    MutexLock lock(&mu_);
    return events_;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  std::vector<bool> events_ ABSL_GUARDED_BY(mu_);
};

class SoleInstanceTest : public PgTest {
 protected:
  SoleInstanceOptions Options(HeldLog* log = nullptr) {
    SoleInstanceOptions o;
    o.dsn = Dsn();
    o.check_every = absl::Milliseconds(50);
    o.acquire_for = absl::Milliseconds(200);
    if (log != nullptr) o.on_held = log->Callback();
    return o;
  }
};

TEST_F(SoleInstanceTest, ASecondInstanceIsRefusedUntilTheFirstEnds) {
  absl::StatusOr<std::unique_ptr<SoleInstance>> first =
      SoleInstance::Acquire(Options());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE((*first)->held());
  absl::StatusOr<std::unique_ptr<SoleInstance>> second =
      SoleInstance::Acquire(Options());
  ASSERT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("another campaignd"),
            std::string::npos)
      << second.status();
  // The message names the database, never the DSN's password.
  EXPECT_EQ(second.status().message().find(Server()->password()),
            std::string::npos);
  first->reset();
  second = SoleInstance::Acquire(Options());
  EXPECT_TRUE(second.ok()) << second.status();
}

TEST_F(SoleInstanceTest, TheLockHoldsUpNoMigration) {
  absl::StatusOr<std::unique_ptr<SoleInstance>> sole =
      SoleInstance::Acquire(Options());
  ASSERT_TRUE(sole.ok()) << sole.status();
  // A second campaignd opens (and migrates) the database before it asks
  // for the instance lock: the two locks' keys must differ, or that start
  // would hang instead of being refused.
  std::future<bool> opened =
      std::async(std::launch::async, [&] { return OpenDatabase() != nullptr; });
  const bool in_time =
      opened.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
  EXPECT_TRUE(in_time) << "Database::Open waited for the instance lock";
  sole->reset();  // ends a wait, if there was one
  EXPECT_TRUE(opened.get());
}

TEST_F(SoleInstanceTest, ALostSessionIsReportedAndTheLockTakenAgain) {
  HeldLog log;
  absl::StatusOr<std::unique_ptr<SoleInstance>> sole =
      SoleInstance::Acquire(Options(&log));
  ASSERT_TRUE(sole.ok()) << sole.status();
  CutConnections();
  EXPECT_TRUE(log.WaitFor({false, true})) << "events: " << log.events().size();
  EXPECT_TRUE((*sole)->held());
  // Held again for real: another instance is refused.
  EXPECT_EQ(SoleInstance::Acquire(Options()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(SoleInstanceTest, AnInstanceThatStartedInTheGapKeepsTheLock) {
  // The second must take the lock between the cut and the first's next
  // look (every second): if the first was quicker, try again.
  for (int attempt = 0; attempt < 5; ++attempt) {
    HeldLog log;
    SoleInstanceOptions slow = Options(&log);
    slow.check_every = absl::Seconds(1);
    absl::StatusOr<std::unique_ptr<SoleInstance>> first =
        SoleInstance::Acquire(std::move(slow));
    ASSERT_TRUE(first.ok()) << first.status();
    CutConnections();
    // The cut session ends asynchronously: the lock is free once it has.
    absl::StatusOr<std::unique_ptr<SoleInstance>> second;
    const absl::Time deadline = absl::Now() + absl::Milliseconds(500);
    do {
      second = SoleInstance::Acquire(Options());
      if (!second.ok()) absl::SleepFor(absl::Milliseconds(5));
    } while (!second.ok() && absl::Now() < deadline);
    if (!second.ok()) continue;  // the first took it back first
    // The first finds its session gone and the lock taken: it does not
    // hold it, however often it looks.
    ASSERT_TRUE(log.WaitFor({false}));
    absl::SleepFor(absl::Milliseconds(2500));
    EXPECT_FALSE((*first)->held());
    EXPECT_EQ(log.events(), std::vector<bool>{false});
    // Once the second is gone, the first takes it again.
    second->reset();
    EXPECT_TRUE(log.WaitFor({false, true}));
    EXPECT_TRUE((*first)->held());
    return;
  }
  FAIL() << "the second instance never took the lock in the gap";
}

}  // namespace
}  // namespace campaigns::storage::postgres
