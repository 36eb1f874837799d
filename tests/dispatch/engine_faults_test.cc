// The engine when things go wrong or slowly: storage errors injected through
// a fake DispatchStore, providers that block in Send or hold their answers,
// and the in-flight window and rate chunks counted in messages.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "server/dispatch/engine.h"
#include "server/domain/errors.h"
#include "tests/dispatch/engine_fixture.h"

namespace campaigns::dispatch {
namespace {

using storage::test_util::AwaitResult;
using testing::EngineTest;
using testing::RecordingProvider;

// The real store, with the next N calls of a kind failing as a broken or
// busy database would answer them (nothing is written).
class FaultyStore : public DispatchStore {
 public:
  explicit FaultyStore(DispatchStore* real) : real_(real) {}

  std::atomic<int> fail_leases{0};
  std::atomic<int> fail_records{0};
  std::atomic<int> fail_sender_reads{0};
  std::atomic<int> fail_finishes{0};  // kAllDispatched transitions
  std::atomic<int> records{0};        // RecordOutcomes calls that wrote
  // The disk is full: every write fails as SQLITE_FULL answers (reads work).
  std::atomic<bool> full{false};
  // When > 0: the disk fills after this many more RecordOutcomes writes.
  std::atomic<int> records_until_full{0};
  std::atomic<int> refused_writes{0};
  std::atomic<int> fail_pauses{0};  // kPause transitions, as a full disk
  std::atomic<int> fail_schedule_alarms{0};  // kScheduleAlarm transitions
  // While set, MarkHanded writes go through but their answers wait for
  // ReleaseMarks (the mark is durable, its caller not yet told).
  std::atomic<bool> hold_marks{false};

  int HeldMarks() {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(held_marks_.size());
  }
  // Stops holding and delivers the held answers, on the caller's thread.
  void ReleaseMarks() {
    hold_marks = false;
    std::vector<std::function<void()>> held;
    {
      std::lock_guard<std::mutex> lock(mu_);
      held.swap(held_marks_);
    }
    for (auto& answer : held) answer();
  }

  void TransitionCampaign(const std::string& account_id, const std::string& id,
                          LifecycleChange change,
                          Done<Campaign> done) override {
    if (change.event == CampaignEvent::kAllDispatched && Take(fail_finishes)) {
      done(absl::InternalError("storage error (injected)"));
      return;
    }
    if (change.event == CampaignEvent::kPause && Take(fail_pauses)) {
      return done(DiskFull());
    }
    if (change.event == CampaignEvent::kScheduleAlarm &&
        Take(fail_schedule_alarms)) {
      return done(absl::UnavailableError("database is busy (injected)"));
    }
    if (Full()) return done(DiskFull());
    real_->TransitionCampaign(account_id, id, std::move(change),
                              std::move(done));
  }
  absl::StatusOr<std::vector<Recipient>> LeaseRecipients(
      const Campaign& c, int64_t after_seq, int limit,
      const Lease* fence) override {
    if (Take(fail_leases)) return absl::UnavailableError("database is busy");
    return real_->LeaseRecipients(c, after_seq, limit, fence);
  }
  void RecordOutcomes(const std::string& account_id,
                      const std::string& campaign_id,
                      std::vector<DispatchOutcome> outcomes,
                      Done<Campaign> done) override {
    if (Take(fail_records)) {
      done(absl::InternalError("disk I/O error (injected)"));
      return;
    }
    if (Full()) return done(DiskFull());
    ++records;
    real_->RecordOutcomes(account_id, campaign_id, std::move(outcomes),
                          std::move(done));
    if (Take(records_until_full) && records_until_full.load() == 0) {
      full = true;
    }
  }
  void ApplyReceipts(const std::string& account_id,
                     std::vector<ReceiptUpdate> receipts,
                     Done<ReceiptResult> done) override {
    if (Full()) return done(DiskFull());
    real_->ApplyReceipts(account_id, std::move(receipts), std::move(done));
  }
  void MarkHanded(const std::string& account_id, const std::string& campaign_id,
                  std::vector<int64_t> seqs, bool handed, const Lease* fence,
                  std::function<void(absl::Status)> done) override {
    if (Full()) return done(DiskFull());
    if (hold_marks.load()) {
      done = [this, done = std::move(done)](absl::Status s) {
        std::lock_guard<std::mutex> lock(mu_);
        held_marks_.push_back([done, s] { done(s); });
      };
    }
    real_->MarkHanded(account_id, campaign_id, std::move(seqs), handed, fence,
                      std::move(done));
  }
  void ApplyProviderReceipts(const std::string& provider,
                             std::vector<ReceiptUpdate> receipts,
                             Done<ReceiptResult> done) override {
    if (Full()) return done(DiskFull());
    real_->ApplyProviderReceipts(provider, std::move(receipts),
                                 std::move(done));
  }
  void RetryFailed(const std::string& account_id, const std::string& id,
                   std::vector<std::string> error_codes,
                   Done<RetryResult> done) override {
    if (Full()) return done(DiskFull());
    real_->RetryFailed(account_id, id, std::move(error_codes), std::move(done));
  }
  absl::StatusOr<std::vector<Campaign>> CampaignsInStatus(
      const std::vector<CampaignStatus>& statuses) override {
    return real_->CampaignsInStatus(statuses);
  }
  absl::StatusOr<Campaign> CampaignById(const std::string& id) override {
    return real_->CampaignById(id);
  }
  absl::StatusOr<std::vector<Campaign>> CutOffCancellations() override {
    return real_->CutOffCancellations();
  }
  void SkipCancelled(const std::string& account_id, const std::string& id,
                     Done<Campaign> done) override {
    real_->SkipCancelled(account_id, id, std::move(done));
  }
  absl::StatusOr<MessageContent> MessageContentOf(const Campaign& c) override {
    return real_->MessageContentOf(c);
  }
  absl::StatusOr<Sender> SenderOf(const Campaign& c) override {
    if (Take(fail_sender_reads)) {
      return absl::UnavailableError("database is busy");
    }
    return real_->SenderOf(c);
  }
  absl::StatusOr<std::vector<bool>> SuppressedAmong(
      const std::string& account_id, Channel channel,
      const std::vector<std::string>& addresses) override {
    return real_->SuppressedAmong(account_id, channel, addresses);
  }

 private:
  bool Full() {
    if (!full.load()) return false;
    ++refused_writes;
    return true;
  }
  // What storage::Database answers for SQLITE_FULL.
  static absl::Status DiskFull() {
    return absl::ResourceExhaustedError("disk full");
  }
  static bool Take(std::atomic<int>& n) {
    int left = n.load();
    while (left > 0) {
      if (n.compare_exchange_weak(left, left - 1)) return true;
    }
    return false;
  }
  DispatchStore* const real_;
  std::mutex mu_;
  std::vector<std::function<void()>> held_marks_;
};

// Every state of a campaign WatchCampaign would have shown: the pause
// reasons of the paused ones, in order, each run of them once.
class ShownStates {
 public:
  ShownStates(Engine* engine, const std::string& id)
      : engine_(engine), id_(id) {
    subscription_ = engine->progress().Subscribe(id, [this, engine, id] {
      std::optional<Progress> p = engine->progress().Latest(id);
      if (!p) return;
      std::lock_guard<std::mutex> lock(mu_);
      const bool paused = p->status == CampaignStatus::kPaused;
      if (paused && (!last_paused_ || reasons_.back() != p->pause_reason)) {
        reasons_.push_back(p->pause_reason);
      }
      last_paused_ = paused;
    });
  }
  ~ShownStates() { engine_->progress().Unsubscribe(id_, subscription_); }
  std::vector<std::string> PauseReasons() {
    std::lock_guard<std::mutex> lock(mu_);
    return reasons_;
  }

 private:
  Engine* const engine_;
  const std::string id_;
  uint64_t subscription_ = 0;
  std::mutex mu_;
  bool last_paused_ = false;
  std::vector<std::string> reasons_;
};

class EngineFaultsTest : public EngineTest {
 protected:
  void UseFaultyStore() {
    faulty_ = std::make_unique<FaultyStore>(store_.get());
    dispatch_store_ = faulty_.get();
  }
  void StartCampaign(const Campaign& c) {
    auto started = Await(
        [&](auto done) { engine_->Start(account_, c.id, std::nullopt, done); });
    ASSERT_TRUE(started.ok()) << started.status();
  }
  // Provider calls per idempotency key, from the simulator's log.
  std::map<std::string, int> CallsPerKey() {
    std::map<std::string, int> calls;
    for (const SimulatorLogEntry& e : sim_->Log()) ++calls[e.key];
    return calls;
  }
  std::unique_ptr<FaultyStore> faulty_;
};

TEST_F(EngineFaultsTest, FailedLeasesAreRetriedAndLoseNothing) {
  UseFaultyStore();
  faulty_->fail_leases = 3;
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550401");
  Campaign c = NewCampaign(sender, 50, 0, /*batch_size=*/10);
  StartCampaign(c);
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kCompleted));
  EXPECT_EQ(faulty_->fail_leases.load(), 0);
  EXPECT_EQ(Get(c.id).stats.delivered, 50);
  const auto calls = CallsPerKey();
  EXPECT_EQ(calls.size(), 50u);
  for (const auto& [key, n] : calls) EXPECT_EQ(n, 1) << key;
}

// A batch whose outcomes failed to record is not sent again: its outcomes
// are kept, the campaign shows paused with the error meanwhile, they are
// recorded once a write succeeds, and the campaign sends on by itself.
TEST_F(EngineFaultsTest, AFailedOutcomeWritePausesAndIsRecordedNotResent) {
  UseFaultyStore();
  faulty_->fail_records = 1;
  engine_options_.max_in_flight = 10;  // one batch out at a time
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550402");
  Campaign c = NewCampaign(sender, 40, 0, /*batch_size=*/10);
  ShownStates shown(engine_.get(), c.id);
  StartCampaign(c);
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kCompleted));
  const std::vector<std::string> reasons = shown.PauseReasons();
  ASSERT_EQ(reasons.size(), 1u);
  EXPECT_EQ(reasons[0], "storage cannot write: disk I/O error (injected)");
  const Campaign done = Get(c.id);
  EXPECT_EQ(done.stats.delivered, 40);
  EXPECT_EQ(done.stats.failed + done.stats.skipped + done.stats.queued, 0);
  EXPECT_TRUE(done.pause_reason.empty());
  const auto calls = CallsPerKey();
  EXPECT_EQ(calls.size(), 40u);
  for (const auto& [key, n] : calls) EXPECT_EQ(n, 1) << key;
}

// The disk fills while a campaign sends. The pause cannot be stored (that is
// a write too): it is shown from memory by WatchCampaign and GetCampaign.
// Nothing is sent meanwhile and nothing twice; once there is room again the
// outcomes kept in memory are recorded and the campaign resumes by itself.
TEST_F(EngineFaultsTest, ADiskFullPausesWithTheReasonAndResumesWhenWritesWork) {
  UseFaultyStore();
  faulty_->records_until_full = 1;     // the first batch's outcomes are stored
  engine_options_.max_in_flight = 10;  // one batch out at a time
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550406");
  Campaign c = NewCampaign(sender, 100, 0, /*batch_size=*/10);
  // Watched, as WatchCampaign does (unwatched, only sending ones are kept).
  engine_->progress().Subscribe(c.id, [] {});
  StartCampaign(c);
  auto shown_paused = [&] {
    std::optional<Progress> p = engine_->progress().Latest(c.id);
    return p && p->status == CampaignStatus::kPaused;
  };
  ASSERT_TRUE(RunUntil(shown_paused));
  const std::string reason = engine_->progress().Latest(c.id)->pause_reason;
  EXPECT_EQ(reason, "storage cannot write: disk full");
  Campaign read = Get(c.id);
  EXPECT_EQ(read.status, CampaignStatus::kSending);  // not stored
  EXPECT_EQ(read.stats.queued, 90);  // the second batch is not recorded
  engine_->ShowUnstoredPause(&read);
  EXPECT_EQ(read.status, CampaignStatus::kPaused);
  EXPECT_EQ(read.pause_reason, reason);

  // Receipts of this account wait (one could be for the batch whose
  // outcomes are kept, and would match nothing yet); its sender retries.
  ReceiptUpdate early;
  early.provider_message_id = "sim_early";
  early.status = RecipientStatus::kDelivered;
  early.occurred_at = timer_.Now();
  auto waits = AwaitResult<ReceiptResult>(
      [&](auto done) { engine_->IngestReceipts(account_, {early}, done); });
  EXPECT_EQ(waits.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(waits.status().message().find("not recorded yet"),
            std::string::npos)
      << waits.status();
  EXPECT_EQ(errors::RetryAfterOf(waits.status()), absl::Seconds(2));

  const size_t calls_when_paused = sim_->Log().size();
  EXPECT_EQ(calls_when_paused, 20u);
  const int refused = faulty_->refused_writes.load();
  RunFor(absl::Seconds(30));
  EXPECT_EQ(sim_->Log().size(), calls_when_paused) << "sent while paused";
  EXPECT_GT(faulty_->refused_writes.load(), refused) << "never tried again";
  EXPECT_TRUE(shown_paused());

  faulty_->full = false;
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kCompleted));
  const Campaign done = Get(c.id);
  EXPECT_EQ(done.stats.delivered, 100);
  EXPECT_EQ(done.stats.failed + done.stats.skipped + done.stats.queued, 0);
  EXPECT_TRUE(done.pause_reason.empty());
  const auto calls = CallsPerKey();
  EXPECT_EQ(calls.size(), 100u);
  for (const auto& [key, n] : calls) EXPECT_EQ(n, 1) << key;
}

// For a provider that does not de-duplicate, the mark written before each
// call is the write that fails: the batch goes back unsent, the campaign
// pauses, and resumes once the mark can be written.
TEST_F(EngineFaultsTest, AMarkThatCannotBeWrittenPausesAndSendsNothing) {
  RecordingProvider recording;  // marked: no idempotency keys
  provider_ = &recording;
  UseFaultyStore();
  faulty_->records_until_full = 1;
  engine_options_.max_in_flight = 10;
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550407");
  Campaign c = NewCampaign(sender, 30, 0, /*batch_size=*/10);
  engine_->progress().Subscribe(c.id, [] {});
  StartCampaign(c);
  ASSERT_TRUE(RunUntil([&] {
    std::optional<Progress> p = engine_->progress().Latest(c.id);
    return p && p->status == CampaignStatus::kPaused;
  }));
  EXPECT_EQ(engine_->progress().Latest(c.id)->pause_reason,
            "storage cannot write: disk full");
  EXPECT_EQ(recording.sent().size(), 10u);
  RunFor(absl::Seconds(20));
  EXPECT_EQ(recording.sent().size(), 10u) << "sent while paused";
  faulty_->full = false;
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kSent));
  EXPECT_EQ(Get(c.id).stats.sent, 30);
  std::map<std::string, int> per_recipient;
  for (const OutgoingMessage& m : recording.sent())
    ++per_recipient[m.recipient_id];
  EXPECT_EQ(per_recipient.size(), 30u);
  for (const auto& [id, n] : per_recipient) EXPECT_EQ(n, 1) << id;
}

// Receipts that cannot be committed are refused as UNAVAILABLE with a retry
// delay (never acknowledged and dropped), and taken once writes work.
TEST_F(EngineFaultsTest, ReceiptsAreRefusedWhileStorageCannotWrite) {
  RecordingProvider recording;
  provider_ = &recording;
  UseFaultyStore();
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550408");
  Campaign c = NewCampaign(sender, 2, 0, /*batch_size=*/10);
  StartCampaign(c);
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kSent));
  ASSERT_EQ(recording.sent().size(), 2u);
  ReceiptUpdate r;
  r.provider_message_id = "pm_" + recording.sent()[0].recipient_id;
  r.status = RecipientStatus::kDelivered;
  r.occurred_at = timer_.Now();
  ReceiptUpdate by_provider = r;
  by_provider.provider_message_id = "pm_" + recording.sent()[1].recipient_id;

  faulty_->full = true;
  auto refused = AwaitResult<ReceiptResult>(
      [&](auto done) { engine_->IngestReceipts(account_, {r}, done); });
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable)
      << refused.status();
  EXPECT_TRUE(errors::RetryAfterOf(refused.status()).has_value());
  auto refused_webhook = AwaitResult<ReceiptResult>([&](auto done) {
    engine_->IngestProviderReceipts("sim", {by_provider}, done);
  });
  EXPECT_EQ(refused_webhook.status().code(), absl::StatusCode::kUnavailable)
      << refused_webhook.status();
  EXPECT_EQ(Get(c.id).stats.delivered, 0);

  faulty_->full = false;
  auto taken = AwaitResult<ReceiptResult>(
      [&](auto done) { engine_->IngestReceipts(account_, {r}, done); });
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_EQ(taken->matched, 1);
  EXPECT_EQ(Get(c.id).stats.delivered, 1);
}

// A busy database while a pump sets up is not the campaign's fault: it is
// retried, not failed.
TEST_F(EngineFaultsTest, AStorageErrorWhileSettingUpIsRetriedNotFatal) {
  UseFaultyStore();
  faulty_->fail_sender_reads = 2;
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550403");
  Campaign c = NewCampaign(sender, 5);
  StartCampaign(c);
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kCompleted));
  EXPECT_EQ(Get(c.id).stats.delivered, 5);
  EXPECT_TRUE(Get(c.id).failure_reason.empty());
}

// A scheduled start whose write fails is tried again (not left scheduled
// until a restart), and starts once storage writes.
TEST_F(EngineFaultsTest, AFailedScheduledStartIsRetried) {
  UseFaultyStore();
  faulty_->fail_schedule_alarms = 2;
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550407");
  Campaign c = NewCampaign(sender, 4);
  const absl::Time at = timer_.Now() + absl::Minutes(10);
  absl::StatusOr<Campaign> scheduled = AwaitResult<Campaign>(
      [&](Done<Campaign> done) { engine_->Start(account_, c.id, at, done); });
  ASSERT_TRUE(scheduled.ok()) << scheduled.status();
  ASSERT_EQ(scheduled->status, CampaignStatus::kScheduled);
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kCompleted));
  EXPECT_EQ(faulty_->fail_schedule_alarms.load(), 0);
  EXPECT_EQ(Get(c.id).stats.delivered, 4);
  EXPECT_GE(*Get(c.id).started_at, at + absl::Seconds(4));
}

TEST_F(EngineFaultsTest, AFailedEndOfDispatchWriteIsRetried) {
  UseFaultyStore();
  faulty_->fail_finishes = 2;
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550404");
  Campaign c = NewCampaign(sender, 12, 0, /*batch_size=*/5);
  StartCampaign(c);
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kCompleted));
  EXPECT_EQ(faulty_->fail_finishes.load(), 0);
  EXPECT_EQ(Get(c.id).stats.delivered, 12);
  EXPECT_EQ(CallsPerKey().size(), 12u);
}

// Accepts everything, but its first Send does not return until the test
// opens the gate (a provider doing slow work, e.g. a DNS lookup, inline).
class GateProvider : public Provider {
 public:
  void Send(std::vector<OutgoingMessage> batch, SendDone done) override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      ++calls_;
      entered_.notify_all();
      if (calls_ == 1) opened_.wait(lock, [this] { return open_; });
    }
    inner_.Send(std::move(batch), std::move(done));
  }
  void WaitEntered() {
    std::unique_lock<std::mutex> lock(mu_);
    entered_.wait(lock, [this] { return calls_ > 0; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    opened_.notify_all();
  }
  int calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  std::condition_variable entered_, opened_;
  int calls_ = 0;
  bool open_ = false;
  RecordingProvider inner_;
};

// Pause never blocks a thread on a provider call being started, and still
// answers only once that call returned: nothing starts after its answer.
TEST_F(EngineFaultsTest, PauseDoesNotWaitOnAThreadForASlowSend) {
  GateProvider gate;
  provider_ = &gate;
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550405");
  Campaign c = NewCampaign(sender, 30, 0, /*batch_size=*/10);
  StartCampaign(c);
  // Steps until the first call, which blocks inside Send.
  std::thread stepper([&] {
    while (gate.calls() == 0) {
      timer_.RunDue();
      db_->Flush();
    }
  });
  gate.WaitEntered();

  std::promise<absl::StatusOr<Campaign>> answer;
  auto answered = answer.get_future();
  auto pause = std::async(std::launch::async, [&] {
    engine_->Pause(account_, c.id, "by hand", [&](absl::StatusOr<Campaign> r) {
      answer.set_value(std::move(r));
    });
  });
  const bool returned =
      pause.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  EXPECT_TRUE(returned) << "Pause blocked on the provider call";
  db_->Flush();  // the writer is free: the pause is stored meanwhile
  EXPECT_EQ(Get(c.id).status, CampaignStatus::kPaused);
  EXPECT_EQ(answered.wait_for(std::chrono::milliseconds(50)),
            std::future_status::timeout)
      << "answered while a call was still being started";

  gate.Open();
  stepper.join();
  pause.wait();
  ASSERT_EQ(answered.wait_for(std::chrono::seconds(10)),
            std::future_status::ready);
  EXPECT_TRUE(answered.get().ok());
  RunFor(absl::Seconds(5));
  EXPECT_EQ(gate.calls(), 1) << "a call started after the pause";
  db_->Flush();
  // The call that had started keeps its real outcome.
  EXPECT_EQ(Get(c.id).stats.sent + Get(c.id).stats.delivered, 10);
  EXPECT_EQ(Get(c.id).stats.queued, 20);
}

// Holds every answer until the test releases it.
class HoldingProvider : public Provider {
 public:
  void Send(std::vector<OutgoingMessage> batch, SendDone done) override {
    std::lock_guard<std::mutex> lock(mu_);
    held_messages_ += static_cast<int>(batch.size());
    held_.emplace_back(std::move(batch), std::move(done));
  }
  int held_messages() {
    std::lock_guard<std::mutex> lock(mu_);
    return held_messages_;
  }
  // Accepts everything held so far.
  void ReleaseAll() {
    std::vector<std::pair<std::vector<OutgoingMessage>, SendDone>> held;
    {
      std::lock_guard<std::mutex> lock(mu_);
      held.swap(held_);
      held_messages_ = 0;
    }
    for (auto& [batch, done] : held) {
      std::vector<SendResult> results;
      for (const OutgoingMessage& m : batch) {
        results.push_back({SendStatus::kAccepted, "pm_" + m.recipient_id, "",
                           "", absl::ZeroDuration(), "", ""});
      }
      done(std::move(results));
    }
  }

 private:
  std::mutex mu_;
  int held_messages_ = 0;
  std::vector<std::pair<std::vector<OutgoingMessage>, SendDone>> held_;
};

TEST_F(EngineFaultsTest, TheInFlightWindowCountsMessages) {
  HoldingProvider holding;
  provider_ = &holding;
  engine_options_.max_in_flight = 12;
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550406");
  Campaign c = NewCampaign(sender, 60, 0, /*batch_size=*/4);
  StartCampaign(c);
  RunFor(absl::Seconds(1));
  EXPECT_EQ(holding.held_messages(), 12);  // three calls of 4
  int released = 0;
  while (holding.held_messages() > 0) {
    released += holding.held_messages();
    holding.ReleaseAll();
    RunFor(absl::Seconds(1));
    EXPECT_LE(holding.held_messages(), 12);
  }
  EXPECT_EQ(released, 60);
  ASSERT_TRUE(RunUntil([&] { return Get(c.id).stats.queued == 0; }));
}

// A batch smaller than the rate chunk does not cap the rate: the chunk goes
// out in several calls (tier_100k is 80/s in chunks of 8; batches of 5).
TEST_F(EngineFaultsTest, ASmallBatchStillSendsAtTheTierRate) {
  StartEngine();
  const std::string sender = NewSender(SenderTier::kTier100k, "+15550407");
  Campaign c = NewCampaign(sender, 400, 0, /*batch_size=*/5);
  StartCampaign(c);
  ASSERT_TRUE(RunUntil([&] { return Get(c.id).stats.queued == 0; }));
  const std::vector<absl::Time> times = AcceptedTimes();
  ASSERT_EQ(times.size(), 400u);
  EXPECT_LE(MaxPerSecond(times), 80);
  // 400 at 80/s: five seconds (at the old cap of 10 batches a second, 8).
  EXPECT_LT(times.back() - times.front(), absl::Seconds(5));
}

// A campaign paused while messages are with the provider, then deleted:
// WhenCallsRecorded (which DeleteCampaign waits on) runs only once their
// outcomes are recorded, so what they cost is not lost with the campaign.
TEST_F(EngineFaultsTest, WhenCallsRecordedWaitsForAPausedCampaignsCallsOut) {
  HoldingProvider holding;
  provider_ = &holding;
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550411");
  Campaign c = NewCampaign(sender, 20, 0, /*batch_size=*/5);
  StartCampaign(c);
  RunFor(absl::Seconds(1));
  const int out = holding.held_messages();
  ASSERT_GT(out, 0);
  ASSERT_TRUE(AwaitResult<Campaign>([&](auto d) {
                engine_->Pause(account_, c.id, "by hand", d);
              }).ok());
  std::promise<absl::Status> recorded;
  engine_->WhenCallsRecorded(account_, c.id, [&](absl::Status go) {
    EXPECT_EQ(Get(c.id).stats.sent, out);  // recorded before
    recorded.set_value(std::move(go));
  });
  std::future<absl::Status> answer = recorded.get_future();
  RunFor(absl::Seconds(2));
  EXPECT_EQ(answer.wait_for(std::chrono::milliseconds(0)),
            std::future_status::timeout);
  holding.ReleaseAll();
  RunFor(absl::Seconds(1));
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(10)),
            std::future_status::ready);
  EXPECT_TRUE(answer.get().ok());
  // Nothing out: at once.
  std::promise<absl::Status> again;
  engine_->WhenCallsRecorded(account_, c.id,
                             [&](absl::Status go) { again.set_value(go); });
  EXPECT_TRUE(again.get_future().get().ok());
}

// A vendor that does not de-duplicate and has 4 requests on the wire at a
// time (its max_in_flight): the engine hands it little more than that, so a
// crash leaves few marked messages that never left (not the whole window).
class NarrowHoldingProvider : public HoldingProvider {
 public:
  int MaxInFlight() const override { return 4; }
};

TEST_F(EngineFaultsTest, AMarkedProviderGetsLittleMoreThanItsOwnWindow) {
  NarrowHoldingProvider vendor;
  provider_ = &vendor;
  engine_options_.max_in_flight = 2000;
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550410");
  Campaign c = NewCampaign(sender, 100, 0, /*batch_size=*/5);
  StartCampaign(c);
  RunFor(absl::Seconds(1));
  // Its 4 plus two batches of 5 (one being marked, one waiting), rounded up
  // to whole batches: 15, not the engine's 2000.
  EXPECT_EQ(vendor.held_messages(), 15);
  int released = 0;
  while (vendor.held_messages() > 0) {
    released += vendor.held_messages();
    vendor.ReleaseAll();
    RunFor(absl::Seconds(1));
    EXPECT_LE(vendor.held_messages(), 15);
  }
  EXPECT_EQ(released, 100);
  ASSERT_TRUE(RunUntil([&] { return Get(c.id).stats.queued == 0; }));
  EXPECT_EQ(Get(c.id).stats.sent, 100);
}

// A RecordingProvider that may say it sends in-doubt messages again.
class ResendingProvider : public RecordingProvider {
 public:
  explicit ResendingProvider(bool resend) : resend_(resend) {}
  bool ResendsUnknown() const override { return resend_; }

 private:
  const bool resend_;
};

// A crash while messages are with a vendor that does not de-duplicate:
// after the restart they are failed as outcome_unknown, never sent again
// silently; RetryFailed sends them on request.
TEST_F(EngineFaultsTest, InDoubtMessagesAreNotResentAfterACrash) {
  HoldingProvider vendor;  // takes the first batches, never answers
  provider_ = &vendor;
  engine_options_.max_in_flight = 10;
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550408");
  Campaign c = NewCampaign(sender, 20, 0, /*batch_size=*/5);
  StartCampaign(c);
  RunFor(absl::Seconds(1));
  ASSERT_EQ(vendor.held_messages(), 10);  // two batches with the vendor

  // "kill -9": the engine is gone, the vendor never answered.
  engine_->Stop();
  db_->Flush();
  std::unique_ptr<Engine> old_engine = std::move(engine_);
  RecordingProvider after;
  engine_ = std::make_unique<Engine>(
      store_.get(), &timer_,
      [&](const std::string&) -> Provider* { return &after; }, engine_options_);
  ASSERT_TRUE(engine_->Recover().ok());
  ASSERT_TRUE(RunUntil([&] { return Get(c.id).stats.queued == 0; }));
  Campaign done = Get(c.id);
  EXPECT_EQ(done.stats.failed, 10);
  EXPECT_EQ(after.sent().size(), 10u);  // only the never-handed ones
  auto failed = store_->ListRecipients(account_, c.id, RecipientStatus::kFailed,
                                       PageRequest{1, 100, 0});
  ASSERT_TRUE(failed.ok());
  ASSERT_EQ(failed->items.size(), 10u);
  for (const Recipient& r : failed->items) {
    EXPECT_EQ(r.error_code, "outcome_unknown");
    for (const OutgoingMessage& m : after.sent()) {
      EXPECT_NE(m.recipient_id, r.id) << "sent again after the crash";
    }
  }
  auto retried = AwaitResult<RetryResult>([&](auto d) {
    engine_->RetryFailed(account_, c.id, {"outcome_unknown"}, d);
  });
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->requeued, 10);
  ASSERT_TRUE(RunUntil([&] { return Get(c.id).stats.queued == 0; }));
  EXPECT_EQ(after.sent().size(), 20u);
  EXPECT_EQ(Get(c.id).stats.failed, 0);
  old_engine.reset();
}

TEST_F(EngineFaultsTest, ResendUnknownSendsInDoubtMessagesAgain) {
  HoldingProvider vendor;
  provider_ = &vendor;
  engine_options_.max_in_flight = 5;
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550409");
  Campaign c = NewCampaign(sender, 10, 0, /*batch_size=*/5);
  StartCampaign(c);
  RunFor(absl::Seconds(1));
  ASSERT_EQ(vendor.held_messages(), 5);
  engine_->Stop();
  db_->Flush();
  std::unique_ptr<Engine> old_engine = std::move(engine_);
  ResendingProvider after(/*resend=*/true);
  engine_ = std::make_unique<Engine>(
      store_.get(), &timer_,
      [&](const std::string&) -> Provider* { return &after; }, engine_options_);
  ASSERT_TRUE(engine_->Recover().ok());
  ASSERT_TRUE(RunUntil([&] { return Get(c.id).stats.queued == 0; }));
  EXPECT_EQ(after.sent().size(), 10u);
  EXPECT_EQ(Get(c.id).stats.failed, 0);
  old_engine.reset();
}

// Paused between the durable mark and the call: nothing is sent, and the
// mark is taken back (a crash now would not make them outcome_unknown).
TEST_F(EngineFaultsTest, APauseBetweenMarkAndCallSendsNothing) {
  RecordingProvider vendor;
  provider_ = &vendor;
  UseFaultyStore();
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550410");
  Campaign c = NewCampaign(sender, 5, 0, /*batch_size=*/5);
  StartCampaign(c);
  faulty_->hold_marks = true;
  timer_.RunDue();  // set up, lease, mark
  db_->Flush();     // the mark is durable; the engine is not yet told
  ASSERT_EQ(faulty_->HeldMarks(), 1);
  std::promise<absl::StatusOr<Campaign>> answer;
  engine_->Pause(account_, c.id, "now", [&](absl::StatusOr<Campaign> r) {
    answer.set_value(std::move(r));
  });
  faulty_->ReleaseMarks();  // after the pause halted the pump
  absl::StatusOr<Campaign> paused = answer.get_future().get();
  ASSERT_TRUE(paused.ok()) << paused.status();
  RunFor(absl::Seconds(2));
  EXPECT_EQ(vendor.sent().size(), 0u);
  auto queued = store_->LeaseRecipients(Get(c.id), 0, 10, nullptr);
  ASSERT_TRUE(queued.ok());
  ASSERT_EQ(queued->size(), 5u);
  for (const Recipient& r : *queued) EXPECT_FALSE(r.in_doubt) << r.id;
  ASSERT_TRUE(AwaitResult<Campaign>([&](auto d) {
                engine_->Resume(account_, c.id, d);
              }).ok());
  ASSERT_TRUE(RunUntil([&] { return Get(c.id).stats.queued == 0; }));
  EXPECT_EQ(vendor.sent().size(), 5u);
}

// A user's pause stored before the disk filled stays: the outcomes that
// failed to record meanwhile are recorded once writes work, and the
// campaign is neither shown as paused for storage nor resumed by itself.
TEST_F(EngineFaultsTest, AUsersPauseIsNeitherOverriddenNorResumedByStorage) {
  HoldingProvider vendor;
  provider_ = &vendor;
  UseFaultyStore();
  engine_options_.max_in_flight = 10;
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550411");
  Campaign c = NewCampaign(sender, 30, 0, /*batch_size=*/10);
  ShownStates shown(engine_.get(), c.id);
  StartCampaign(c);
  ASSERT_TRUE(RunUntil([&] { return vendor.held_messages() == 10; }));
  ASSERT_TRUE(AwaitResult<Campaign>([&](auto d) {
                engine_->Pause(account_, c.id, "by hand", d);
              }).ok());
  faulty_->full = true;
  vendor.ReleaseAll();  // their outcomes cannot be written
  RunFor(absl::Seconds(10));
  Campaign read = Get(c.id);
  engine_->ShowUnstoredPause(&read);
  EXPECT_EQ(read.status, CampaignStatus::kPaused);
  EXPECT_EQ(read.pause_reason, "by hand");
  EXPECT_EQ(read.stats.queued, 30);  // not recorded yet

  faulty_->full = false;
  ASSERT_TRUE(RunUntil([&] { return Get(c.id).stats.queued == 20; }));
  RunFor(absl::Seconds(10));
  read = Get(c.id);
  EXPECT_EQ(read.status, CampaignStatus::kPaused);
  EXPECT_EQ(read.pause_reason, "by hand");
  EXPECT_EQ(read.stats.sent, 10);
  EXPECT_EQ(vendor.held_messages(), 0) << "sent while paused";
  for (const std::string& r : shown.PauseReasons()) EXPECT_EQ(r, "by hand");
}

// A cancel waits for outcomes storage could not record yet; once they are,
// it goes ahead and those messages keep their real outcome.
TEST_F(EngineFaultsTest, ACancelWaitsForOutcomesKeptThroughADiskFull) {
  HoldingProvider vendor;
  provider_ = &vendor;
  UseFaultyStore();
  engine_options_.max_in_flight = 10;
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550412");
  Campaign c = NewCampaign(sender, 30, 0, /*batch_size=*/10);
  StartCampaign(c);
  ASSERT_TRUE(RunUntil([&] { return vendor.held_messages() == 10; }));
  faulty_->full = true;
  vendor.ReleaseAll();
  RunFor(absl::Seconds(5));
  // Answered on the storage writer's thread.
  std::promise<absl::StatusOr<Campaign>> answer;
  std::future<absl::StatusOr<Campaign>> cancelled = answer.get_future();
  engine_->Cancel(account_, c.id, [&](absl::StatusOr<Campaign> r) {
    answer.set_value(std::move(r));
  });
  RunFor(absl::Seconds(10));
  EXPECT_EQ(cancelled.wait_for(std::chrono::milliseconds(0)),
            std::future_status::timeout)
      << "cancelled before they were recorded";
  faulty_->full = false;
  // The cancel is written from the callback of the outcomes' write: step
  // until it is answered (the fake clock has nothing due meanwhile).
  for (int i = 0;
       i < 1000 && cancelled.wait_for(std::chrono::milliseconds(1)) ==
                       std::future_status::timeout;
       ++i) {
    RunFor(absl::Seconds(1));
  }
  ASSERT_EQ(cancelled.wait_for(std::chrono::seconds(5)),
            std::future_status::ready);
  const absl::StatusOr<Campaign> result = cancelled.get();
  ASSERT_TRUE(result.ok()) << result.status();
  const Campaign done = Get(c.id);
  EXPECT_EQ(done.status, CampaignStatus::kCancelled);
  EXPECT_EQ(done.stats.sent, 10);
  EXPECT_EQ(done.stats.skipped, 20);
}

// Stopping while a cancel waits for outcomes storage cannot record answers
// the cancel (UNAVAILABLE, not cancelled) rather than leaving it hanging.
TEST_F(EngineFaultsTest, StopAnswersACancelWaitingForUnrecordedOutcomes) {
  HoldingProvider vendor;
  provider_ = &vendor;
  UseFaultyStore();
  engine_options_.max_in_flight = 10;
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550413");
  Campaign c = NewCampaign(sender, 30, 0, /*batch_size=*/10);
  StartCampaign(c);
  ASSERT_TRUE(RunUntil([&] { return vendor.held_messages() == 10; }));
  faulty_->full = true;
  vendor.ReleaseAll();
  RunFor(absl::Seconds(5));
  std::promise<absl::StatusOr<Campaign>> answer;
  std::future<absl::StatusOr<Campaign>> cancelled = answer.get_future();
  engine_->Cancel(account_, c.id, [&](absl::StatusOr<Campaign> r) {
    answer.set_value(std::move(r));
  });
  RunFor(absl::Seconds(5));
  ASSERT_EQ(cancelled.wait_for(std::chrono::milliseconds(0)),
            std::future_status::timeout);
  engine_->Stop();
  ASSERT_EQ(cancelled.wait_for(std::chrono::seconds(0)),
            std::future_status::ready)
      << "Stop left the cancel unanswered";
  const absl::Status status = cancelled.get().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  faulty_->full = false;
  db_->Flush();
  EXPECT_EQ(Get(c.id).status, CampaignStatus::kSending);  // nothing changed
}

// Receipts for one account wait while another account's outcomes are kept
// unrecorded only if they are its own: other accounts are not held up.
TEST_F(EngineFaultsTest, OnlyTheAccountWithUnrecordedOutcomesWaitsForReceipts) {
  HoldingProvider vendor;
  provider_ = &vendor;
  UseFaultyStore();
  engine_options_.max_in_flight = 10;
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550414");
  Campaign c = NewCampaign(sender, 20, 0, /*batch_size=*/10);
  StartCampaign(c);
  ASSERT_TRUE(RunUntil([&] { return vendor.held_messages() == 10; }));
  faulty_->full = true;
  vendor.ReleaseAll();
  RunFor(absl::Seconds(1));
  faulty_->full = false;  // writes work; the retry is up to 2 s away
  ReceiptUpdate r;
  r.provider_message_id = "pm_unknown";
  r.status = RecipientStatus::kDelivered;
  r.occurred_at = timer_.Now();
  auto other = AwaitResult<ReceiptResult>(
      [&](auto done) { engine_->IngestReceipts("acc_other", {r}, done); });
  EXPECT_TRUE(other.ok()) << other.status();
  auto own = AwaitResult<ReceiptResult>(
      [&](auto done) { engine_->IngestReceipts(account_, {r}, done); });
  EXPECT_EQ(own.status().code(), absl::StatusCode::kUnavailable);
  auto by_provider = AwaitResult<ReceiptResult>([&](auto done) {
    engine_->IngestProviderReceipts("simulator", {r}, done);
  });
  EXPECT_EQ(by_provider.status().code(), absl::StatusCode::kUnavailable);
  auto other_provider = AwaitResult<ReceiptResult>(
      [&](auto done) { engine_->IngestProviderReceipts("smpp1", {r}, done); });
  EXPECT_TRUE(other_provider.ok()) << other_provider.status();
  ASSERT_TRUE(RunUntil([&] { return Get(c.id).stats.queued == 10; }));
  own = AwaitResult<ReceiptResult>(
      [&](auto done) { engine_->IngestReceipts(account_, {r}, done); });
  EXPECT_TRUE(own.ok()) << own.status();
}

// Paused by hand, outcomes kept through a disk full, then resumed by hand
// once writes work but before the storage retry came: the pump records them
// and sends on (it does not wait for a storage pause it never showed).
TEST_F(EngineFaultsTest, AResumeWhileOutcomesAreOwedSendsOnOnceRecorded) {
  HoldingProvider vendor;
  provider_ = &vendor;
  UseFaultyStore();
  engine_options_.max_in_flight = 10;
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550415");
  Campaign c = NewCampaign(sender, 30, 0, /*batch_size=*/10);
  StartCampaign(c);
  ASSERT_TRUE(RunUntil([&] { return vendor.held_messages() == 10; }));
  ASSERT_TRUE(AwaitResult<Campaign>([&](auto d) {
                engine_->Pause(account_, c.id, "by hand", d);
              }).ok());
  faulty_->full = true;
  vendor.ReleaseAll();
  db_->Flush();
  faulty_->full = false;
  auto resumed = AwaitResult<Campaign>(
      [&](auto d) { engine_->Resume(account_, c.id, d); });
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  for (int i = 0; i < 100 && Get(c.id).stats.queued > 0; ++i) {
    RunFor(absl::Seconds(1));
    vendor.ReleaseAll();
  }
  const Campaign done = Get(c.id);
  EXPECT_EQ(done.stats.queued, 0);
  EXPECT_EQ(done.stats.sent, 30);
}

// A campaign paused by hand whose cancel cannot be written (the disk is
// full) stays paused: the failed cancel does not set it sending.
TEST_F(EngineFaultsTest, AFailedCancelOfAPausedCampaignSendsNothing) {
  // Answers are held so the campaign cannot finish before it is paused.
  HoldingProvider vendor;
  provider_ = &vendor;
  UseFaultyStore();
  engine_options_.max_in_flight = 10;
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550416");
  Campaign c = NewCampaign(sender, 30, 0, /*batch_size=*/10);
  StartCampaign(c);
  ASSERT_TRUE(RunUntil([&] { return vendor.held_messages() == 10; }));
  auto paused = AwaitResult<Campaign>(
      [&](auto d) { engine_->Pause(account_, c.id, "by hand", d); });
  ASSERT_TRUE(paused.ok()) << paused.status();
  vendor.ReleaseAll();
  RunFor(absl::Seconds(2));
  ASSERT_EQ(vendor.held_messages(), 0) << "sent while paused";
  faulty_->full = true;
  auto cancelled = AwaitResult<Campaign>(
      [&](auto d) { engine_->Cancel(account_, c.id, d); });
  EXPECT_FALSE(cancelled.ok());
  faulty_->full = false;
  RunFor(absl::Seconds(30));
  EXPECT_EQ(vendor.held_messages(), 0) << "sent while paused";
  EXPECT_EQ(Get(c.id).status, CampaignStatus::kPaused);
}

// The error threshold's pause cannot be written: the campaign stays halted,
// shown paused with that reason, and the pause is stored once it can be.
TEST_F(EngineFaultsTest, AnAutoPauseThatCannotBeStoredIsStoredLater) {
  UseFaultyStore();
  faulty_->fail_pauses = 3;
  sim_options_.defaults.permanent_failure_rate = 1.0;
  engine_options_.error_window = 10;
  engine_options_.max_in_flight = 10;
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550417");
  Campaign c = NewCampaign(sender, 50, 0, /*batch_size=*/10);
  StartCampaign(c);
  ASSERT_TRUE(RunUntil([&] {
    Campaign shown = Get(c.id);
    engine_->ShowUnstoredPause(&shown);
    return shown.status == CampaignStatus::kPaused;
  }));
  Campaign shown = Get(c.id);
  EXPECT_EQ(shown.status, CampaignStatus::kSending);  // not stored yet
  engine_->ShowUnstoredPause(&shown);
  EXPECT_NE(shown.pause_reason.find("auto-paused"), std::string::npos)
      << shown.pause_reason;
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kPaused));
  EXPECT_EQ(faulty_->fail_pauses.load(), 0);
  EXPECT_NE(Get(c.id).pause_reason.find("auto-paused"), std::string::npos);
  EXPECT_EQ(Get(c.id).stats.failed, 10);  // nothing sent meanwhile
}

}  // namespace
}  // namespace campaigns::dispatch
