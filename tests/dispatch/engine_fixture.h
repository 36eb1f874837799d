// EngineTest: the engine on a fake clock over a real store, with the
// simulator (or a test's provider) sending. Shared by the engine's suites.
#ifndef CAMPAIGND_TESTS_DISPATCH_ENGINE_FIXTURE_H_
#define CAMPAIGND_TESTS_DISPATCH_ENGINE_FIXTURE_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/dispatch/engine.h"
#include "server/dispatch/simulator.h"
#include "storage/sqlite/store.h"
#include "tests/dispatch/fake_timer.h"
#include "tests/storage/temp_db.h"

namespace campaigns::dispatch::testing {

using storage::test_util::AwaitResult;
using storage::test_util::TempDir;

inline constexpr char kSecret[] = "ck_engine_test_admin_secret";

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::DatabaseOptions options;
    options.path = dir_.File("engine.db");
    ConfigureDatabase(options);
    auto db = storage::Database::Open(options);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
    store_ = std::make_unique<storage::Store>(db_.get());
    ASSERT_TRUE(store_->BootstrapAdmin(kSecret).ok());
    auto principal = store_->Authenticate(kSecret);
    ASSERT_TRUE(principal.ok());
    account_ = principal->account_id;
  }

  void TearDown() override {
    if (engine_) engine_->Stop();
    db_->Flush();
    engine_.reset();
    db_->Close();
  }

  // Adjusts the database's options before it opens (e.g. a test VFS).
  virtual void ConfigureDatabase(storage::DatabaseOptions& options) {
    (void)options;
  }

  // Builds the simulator and the engine (after the test set their options).
  void StartEngine() {
    sim_options_.keep_log = true;
    sim_options_.defaults.delivered_delay = absl::ZeroDuration();
    auto sim = Simulator::Create(
        sim_options_, &timer_,
        [this](const std::string& account, std::vector<ReceiptUpdate> r,
               Done<ReceiptResult> answered) {
          engine_->IngestReceipts(account, std::move(r), std::move(answered));
        });
    ASSERT_TRUE(sim.ok());
    sim_ = *std::move(sim);
    engine_ = std::make_unique<Engine>(
        dispatch_store_ != nullptr ? dispatch_store_ : store_.get(), &timer_,
        [this](const std::string&) -> Provider* {
          return provider_ != nullptr ? provider_ : sim_.get();
        },
        engine_options_);
  }

  std::string NewSender(SenderTier tier, const std::string& id) {
    Sender s;
    s.id = absl::StrCat("snd_", id);
    s.account_id = account_;
    s.sender_id = id;
    s.channel = Channel::kSms;
    s.tier = tier;
    s.created_at = s.updated_at = NowMicros();
    auto r = AwaitResult<Sender>(
        [&](Done<Sender> done) { store_->RegisterSender(s, {}, done); });
    EXPECT_TRUE(r.ok()) << r.status();
    return id;
  }

  // A draft campaign with `n` recipients (variable name) on `sender`.
  Campaign NewCampaign(const std::string& sender, int n, int base = 0,
                       int32_t batch_size = 100) {
    Campaign c;
    c.id = absl::StrCat("cmp_t", next_campaign_++);
    c.account_id = account_;
    c.name = c.id;
    c.channel = Channel::kSms;
    c.sender_id = sender;
    c.body = "Hi {{name}}";
    c.batch_size = batch_size;
    c.created_at = c.updated_at = NowMicros();
    auto created = AwaitResult<Campaign>(
        [&](Done<Campaign> done) { store_->CreateCampaign(c, {}, done); });
    EXPECT_TRUE(created.ok()) << created.status();
    std::vector<StagedRecipient> rows;
    for (int i = 0; i < n; ++i) {
      rows.push_back({absl::StrCat("+1202", 4000000 + base + i), "",
                      absl::StrCat("{\"name\":\"n", i, "\"}"), "US"});
    }
    return ImportRows(c.id, rows);
  }

  // Imports `rows` (none a duplicate) into draft campaign `id`; returns the
  // campaign after the commit.
  Campaign ImportRows(const std::string& id,
                      const std::vector<StagedRecipient>& rows) {
    auto lease = AwaitResult<ImportLease>(
        [&](auto done) { store_->BeginRecipientImport(account_, id, done); });
    EXPECT_TRUE(lease.ok()) << lease.status();
    auto dup = AwaitResult<std::vector<int32_t>>(
        [&](auto done) { store_->StageRecipients(*lease, rows, done); });
    EXPECT_TRUE(dup.ok() && dup->empty());
    lease->settled = true;
    auto settled = store_->SettleRecipientImport(*lease, 0);
    EXPECT_TRUE(settled.ok() && settled->count == 0) << settled.status();
    auto committed = AwaitResult<Campaign>([&](auto done) {
      store_->CommitRecipientImport(*lease, static_cast<int64_t>(rows.size()),
                                    "", {}, done);
    });
    EXPECT_TRUE(committed.ok()) << committed.status();
    return committed.ok() ? *committed : Campaign();
  }

  Campaign Get(const std::string& id) {
    auto c = store_->GetCampaign(account_, id);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : Campaign();
  }

  // Runs callbacks and storage completions, moving the fake clock to the
  // next callback when nothing is due, until `done()` or until nothing is
  // left to run or `limit` of fake time passed.
  bool RunUntil(const std::function<bool()>& done,
                absl::Duration limit = absl::Hours(2)) {
    const absl::Time end = timer_.Now() + limit;
    for (;;) {
      if (done()) return true;
      const int ran = timer_.RunDue();
      db_->Flush();
      if (ran > 0 || timer_.HasDue()) continue;
      if (done()) return true;
      if (!timer_.AdvanceToNext() || timer_.Now() > end) return done();
    }
  }

  bool RunUntilStatus(const std::string& id, CampaignStatus s) {
    return RunUntil([&] { return Get(id).status == s; });
  }

  void RunFor(absl::Duration d) {
    const absl::Time until = timer_.Now() + d;
    RunUntil([&] { return timer_.Now() >= until; }, d + absl::Seconds(1));
  }

  absl::StatusOr<Campaign> Await(
      const std::function<void(Done<Campaign>)>& call) {
    return AwaitResult<Campaign>(call);
  }

  // Times of accepted provider calls (fake clock).
  std::vector<absl::Time> AcceptedTimes() {
    std::vector<absl::Time> out;
    for (const SimulatorLogEntry& e : sim_->Log()) {
      if (e.outcome == "accepted") out.push_back(e.time);
    }
    return out;
  }

  // The most sends in any window [t, t + 1s) starting at a send.
  static int MaxPerSecond(const std::vector<absl::Time>& times) {
    int best = 0;
    size_t j = 0;
    for (size_t i = 0; i < times.size(); ++i) {
      j = std::max(j, i);
      while (j < times.size() && times[j] < times[i] + absl::Seconds(1)) ++j;
      best = std::max(best, static_cast<int>(j - i));
    }
    return best;
  }

  TempDir dir_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::Store> store_;
  std::string account_;
  testing::FakeTimer timer_;
  SimulatorOptions sim_options_;
  EngineOptions engine_options_;
  std::unique_ptr<Simulator> sim_;
  Provider* provider_ = nullptr;  // instead of the simulator when set
  // What the engine stores through instead of store_, when set.
  DispatchStore* dispatch_store_ = nullptr;
  std::unique_ptr<Engine> engine_;
  int next_campaign_ = 1;
};

// Accepts every message and keeps what the engine handed over.
class RecordingProvider : public Provider {
 public:
  void Send(std::vector<OutgoingMessage> batch, SendDone done) override {
    std::vector<SendResult> results;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (OutgoingMessage& m : batch) {
        results.push_back({SendStatus::kAccepted,
                           absl::StrCat("pm_", m.recipient_id), "", "",
                           absl::ZeroDuration(), "", ""});
        sent_.push_back(std::move(m));
      }
    }
    done(std::move(results));
  }
  std::vector<OutgoingMessage> sent() {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_;
  }

 private:
  std::mutex mu_;
  std::vector<OutgoingMessage> sent_;
};

}  // namespace campaigns::dispatch::testing

#endif  // CAMPAIGND_TESTS_DISPATCH_ENGINE_FIXTURE_H_
