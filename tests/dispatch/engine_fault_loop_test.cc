// Storage faults under dispatch, injected the way SQLite tests itself
// (tests/support/fault_vfs.h): a campaign is sent once counting the
// database operations it costs (its start, outcomes, receipts, the end of
// dispatch and its completion), then once per injection point N with the
// Nth one failing. After each run, once the fault clears: the campaign
// completes by itself, every recipient went to the provider exactly once and
// is delivered, its counters match, and nothing is left waiting.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/dispatch/engine_fixture.h"
#include "tests/support/fault_vfs.h"

namespace campaigns::dispatch {
namespace {

using campaigns::testing::FaultKind;
using campaigns::testing::FaultOp;
using campaigns::testing::FaultVfs;
using storage::test_util::AwaitResult;

constexpr int kRecipients = 30;
constexpr int32_t kBatch = 10;

struct LoopCase {
  const char* name;
  FaultOp op;
  FaultKind kind;
  bool persistent;  // the disk stays full (until cleared) or one op fails
};

class DispatchFaultLoop : public testing::EngineTest,
                          public ::testing::WithParamInterface<LoopCase> {
 protected:
  void ConfigureDatabase(storage::DatabaseOptions& options) override {
    FaultVfs::Get();  // registered before the database opens
    options.vfs = FaultVfs::kName;
    options.check_on_open = false;
  }
  void TearDown() override {
    FaultVfs::Get().Reset();
    EngineTest::TearDown();
  }

  // Starts `c` (again after a refused start, once the fault clears).
  absl::Status Start(const Campaign& c) {
    return AwaitResult<Campaign>([&](auto done) {
             engine_->Start(account_, c.id, std::nullopt, done);
           })
        .status();
  }

  // Accepted provider calls per recipient of campaign `id`.
  std::map<std::string, int> Accepted(const std::string& id) {
    std::map<std::string, int> calls;
    for (const SimulatorLogEntry& e : sim_->Log()) {
      if (absl::StartsWith(e.key, id + ":") &&
          (e.outcome == "accepted" || e.outcome == "duplicate")) {
        ++calls[e.key];
      }
    }
    return calls;
  }
};

TEST_P(DispatchFaultLoop, EveryInjectionPointLosesAndRepeatsNothing) {
  const LoopCase& lc = GetParam();
  engine_options_.max_in_flight = kBatch;  // a batch at a time: more points
  StartEngine();
  // A clean run: how many operations of the kind dispatch costs.
  const std::string counted_sender =
      NewSender(SenderTier::kUnlimited, "+15550500");  // every campaign's
  const Campaign counted = NewCampaign(counted_sender, kRecipients, 0, kBatch);
  FaultVfs::Get().Reset();
  ASSERT_TRUE(Start(counted).ok());
  ASSERT_TRUE(RunUntilStatus(counted.id, CampaignStatus::kCompleted));
  const int64_t ops = FaultVfs::Get().Count(lc.op);
  ASSERT_GT(ops, 0);
  // At most ~25 points, spread over every operation of the run.
  const int64_t stride = (ops + 24) / 25;
  int injected_runs = 0;
  int n_campaign = 0;
  for (int64_t n = 1; n <= ops; n += stride) {
    SCOPED_TRACE(absl::StrCat(lc.name, ": operation ", n, " of ", ops));
    const Campaign c =
        NewCampaign(counted_sender, kRecipients, 1000 * ++n_campaign, kBatch);
    FaultVfs::Get().Arm(
        {.op = lc.op, .nth = n, .kind = lc.kind, .persistent = lc.persistent});
    const absl::Status started = Start(c);
    RunFor(absl::Seconds(10));  // meets the fault, waits, retries
    const bool injected = FaultVfs::Get().injected() > 0;
    injected_runs += injected ? 1 : 0;
    FaultVfs::Get().Clear();
    if (!started.ok()) {
      // Refused at once: nothing happened; the same start now succeeds.
      EXPECT_EQ(Get(c.id).status, CampaignStatus::kDraft) << started;
      ASSERT_TRUE(Start(c).ok());
    }
    ASSERT_TRUE(
        RunUntil([&] { return Get(c.id).status == CampaignStatus::kCompleted; },
                 absl::Minutes(10)))
        << "status " << static_cast<int>(Get(c.id).status);
    const Campaign done = Get(c.id);
    EXPECT_TRUE(done.pause_reason.empty()) << done.pause_reason;
    EXPECT_EQ(done.stats.delivered, kRecipients);
    EXPECT_EQ(done.stats.total, kRecipients);
    EXPECT_EQ(done.stats.queued + done.stats.sent + done.stats.failed +
                  done.stats.skipped,
              0);
    const std::map<std::string, int> calls = Accepted(c.id);
    EXPECT_EQ(calls.size(), static_cast<size_t>(kRecipients));
    for (const auto& [key, times] : calls) EXPECT_EQ(times, 1) << key;
    Campaign shown = done;
    engine_->ShowUnstoredPause(&shown);
    EXPECT_EQ(shown.status, CampaignStatus::kCompleted);
  }
  EXPECT_GT(injected_runs, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Faults, DispatchFaultLoop,
    ::testing::Values(
        LoopCase{"DiskFullWrite", FaultOp::kWrite, FaultKind::kFull, true},
        LoopCase{"IoErrorWriteOnce", FaultOp::kWrite, FaultKind::kIoError,
                 false},
        LoopCase{"ReadOnlyFile", FaultOp::kWrite, FaultKind::kReadOnly, true},
        LoopCase{"IoErrorRead", FaultOp::kRead, FaultKind::kIoError, false}),
    [](const ::testing::TestParamInfo<LoopCase>& info) {
      return info.param.name;
    });

}  // namespace
}  // namespace campaigns::dispatch
