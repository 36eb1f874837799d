// The engine on a fake clock over a real store: rate limits measured in
// exact (fake) time, backoff, schedules, and pause/resume cycles, with the
// simulator's log as the record of every provider call.
#include "server/dispatch/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <mutex>
#include <random>

#include "absl/strings/str_cat.h"
#include "server/dispatch/simulator.h"
#include "server/domain/errors.h"
#include "server/domain/utf8.h"
#include "storage/sqlite/store.h"
#include "tests/dispatch/engine_fixture.h"
#include "tests/dispatch/fake_timer.h"
#include "tests/storage/temp_db.h"

namespace campaigns::dispatch {
namespace {

using storage::test_util::AwaitResult;
using testing::EngineTest;
using testing::RecordingProvider;

struct TierCase {
  SenderTier tier;
  int rate;
};

class TierTest : public EngineTest,
                 public ::testing::WithParamInterface<TierCase> {};

TEST_P(TierTest, SendsAtTheTierRateAndNeverMoreInAnySecond) {
  StartEngine();
  const TierCase t = GetParam();
  const std::string sender = NewSender(t.tier, "+15550200");
  const int n = t.rate * 20 + 1;  // 20 s of sending
  Campaign c = NewCampaign(sender, n);
  ASSERT_TRUE(Await([&](auto done) {
                engine_->Start(account_, c.id, std::nullopt, done);
              }).ok());
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kCompleted));
  std::vector<absl::Time> times = AcceptedTimes();
  ASSERT_EQ(times.size(), static_cast<size_t>(n));
  EXPECT_LE(MaxPerSecond(times), t.rate);
  const double seconds = absl::ToDoubleSeconds(times.back() - times.front());
  const double achieved = (n - 1) / seconds;
  EXPECT_NEAR(achieved, t.rate, t.rate * 0.02) << seconds << " s";
}

INSTANTIATE_TEST_SUITE_P(Tiers, TierTest,
                         ::testing::Values(TierCase{SenderTier::kTier1k, 10},
                                           TierCase{SenderTier::kTier10k, 30},
                                           TierCase{SenderTier::kTier100k,
                                                    80}));

TEST_F(EngineTest, TemplateComponentsAreRenderedForEachRecipient) {
  RecordingProvider recorder;
  provider_ = &recorder;
  StartEngine();
  Sender s;
  s.id = "snd_wa";
  s.account_id = account_;
  s.sender_id = "+15550300";
  s.channel = Channel::kWhatsapp;
  s.tier = SenderTier::kUnlimited;
  s.created_at = s.updated_at = NowMicros();
  ASSERT_TRUE(AwaitResult<Sender>([&](Done<Sender> done) {
                store_->RegisterSender(s, {}, done);
              }).ok());
  Template t;
  t.id = "tmpl_offer";
  t.account_id = account_;
  t.name = "offer";
  t.language = "en_US";
  t.channel = Channel::kWhatsapp;
  t.body = "Hi {{1}}, your code is {{2}}";
  t.status = TemplateStatus::kApproved;
  t.created_at = t.updated_at = NowMicros();
  ASSERT_TRUE(AwaitResult<Template>([&](Done<Template> done) {
                store_->CreateTemplate(t, {}, done);
              }).ok());
  Campaign c;
  c.id = "cmp_components";
  c.account_id = account_;
  c.name = "components";
  c.channel = Channel::kWhatsapp;
  c.sender_id = "snd_wa";  // by its snd_ id
  c.template_id = t.id;
  c.template_components = {
      {"body",
       "",
       "",
       {{"text", "{{first}}", ""}, {"text", "{{code}}", ""}},
       "",
       0}};
  c.created_at = c.updated_at = NowMicros();
  ASSERT_TRUE(AwaitResult<Campaign>([&](Done<Campaign> done) {
                store_->CreateCampaign(c, {}, done);
              }).ok());
  std::vector<StagedRecipient> rows = {
      {"+12024000001", "", R"({"first":"Asha","code":"A1"})", "US"},
      {"+12024000002", "", R"({"first":"Ben"})", "US"}};  // lacks code
  ImportRows(c.id, rows);
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(Await([&](auto done) {
                engine_->Start(account_, c.id, std::nullopt, done);
              }).ok());
  ASSERT_TRUE(RunUntil([&] { return Get(c.id).stats.queued == 0; }));

  std::vector<OutgoingMessage> sent = recorder.sent();
  ASSERT_EQ(sent.size(), 1u);
  const OutgoingMessage& m = sent[0];
  EXPECT_EQ(m.address, "+12024000001");
  EXPECT_EQ(m.sender_id, "+15550300");  // stored as the visible id
  EXPECT_EQ(m.text, "Hi Asha, your code is A1");
  EXPECT_EQ(m.template_name, "offer");
  EXPECT_EQ(m.template_language, "en_US");
  ASSERT_EQ(m.components.size(), 1u);
  ASSERT_EQ(m.components[0].parameters.size(), 2u);
  EXPECT_EQ(m.components[0].parameters[0].text, "Asha");
  EXPECT_EQ(m.components[0].parameters[1].text, "A1");
  Campaign after = Get(c.id);
  EXPECT_EQ(after.stats.sent + after.stats.delivered, 1);
  EXPECT_EQ(after.stats.skipped, 1);  // Ben: missing_variable "code"
}

// Accepts every other message under an id with a broken UTF-8 byte and a
// NUL; refuses the rest with such an error code and description.
class BrokenTextProvider : public Provider {
 public:
  static std::string IdOf(const std::string& recipient_id) {
    return std::string("pm\x80\0", 4) + recipient_id;
  }
  void Send(std::vector<OutgoingMessage> batch, SendDone done) override {
    std::vector<SendResult> results;
    for (const OutgoingMessage& m : batch) {
      SendResult r;
      if (n_++ % 2 == 0) {
        r.provider_message_id = IdOf(m.recipient_id);
      } else {
        r.status = SendStatus::kPermanent;
        r.error_code = "bad\xff";
        r.error_desc = std::string("refused \xc3(\0!", 12);
      }
      results.push_back(std::move(r));
    }
    done(std::move(results));
  }

 private:
  int n_ = 0;  // Send is called from one pump at a time here
};

TEST_F(EngineTest, ProviderTextIsStoredAsValidUtf8AndReceiptsStillMatch) {
  BrokenTextProvider provider;
  provider_ = &provider;
  StartEngine();
  Campaign c = NewCampaign(NewSender(SenderTier::kUnlimited, "+15550301"), 6);
  ASSERT_TRUE(Await([&](auto done) {
                engine_->Start(account_, c.id, std::nullopt, done);
              }).ok());
  ASSERT_TRUE(RunUntil([&] { return Get(c.id).stats.queued == 0; }));
  absl::StatusOr<Page<Recipient>> page = store_->ListRecipients(
      account_, c.id, RecipientStatus::kUnspecified, PageRequest{1, 100, 0});
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->items.size(), 6u);
  std::vector<ReceiptUpdate> receipts;
  for (const Recipient& r : page->items) {
    for (const std::string* text :
         {&r.provider_message_id, &r.error_code, &r.error_desc}) {
      EXPECT_TRUE(IsValidUtf8(*text)) << r.id;
      EXPECT_EQ(text->find('\0'), std::string::npos) << r.id;
    }
    if (r.status == RecipientStatus::kSent) {
      EXPECT_EQ(r.provider_message_id, "pm\xEF\xBF\xBD" + r.id);
      // As the provider will name it in its receipt: broken again.
      ReceiptUpdate u;
      u.provider_message_id = BrokenTextProvider::IdOf(r.id);
      u.status = RecipientStatus::kDelivered;
      u.occurred_at = NowMicros();
      receipts.push_back(std::move(u));
    } else {
      EXPECT_EQ(r.status, RecipientStatus::kFailed);
      EXPECT_EQ(r.error_code, "bad\xEF\xBF\xBD");
      EXPECT_EQ(r.error_desc, "refused \xEF\xBF\xBD(!");
    }
  }
  ASSERT_EQ(receipts.size(), 3u);
  absl::StatusOr<ReceiptResult> matched =
      AwaitResult<ReceiptResult>([&](Done<ReceiptResult> done) {
        engine_->IngestReceipts(account_, receipts, std::move(done));
      });
  ASSERT_TRUE(matched.ok()) << matched.status();
  EXPECT_EQ(matched->matched, 3);
  EXPECT_EQ(matched->unmatched, 0);
  EXPECT_EQ(Get(c.id).stats.delivered, 3);
}

TEST_F(EngineTest, EmailMessagesCarryTheRenderedSubjectAndHtml) {
  RecordingProvider recorder;
  provider_ = &recorder;
  StartEngine();
  Sender s;
  s.id = "snd_mail";
  s.account_id = account_;
  s.sender_id = "news@example.com";
  s.channel = Channel::kEmail;
  s.tier = SenderTier::kUnlimited;
  s.created_at = s.updated_at = NowMicros();
  ASSERT_TRUE(AwaitResult<Sender>([&](Done<Sender> done) {
                store_->RegisterSender(s, {}, done);
              }).ok());
  // The template gives the HTML body; the campaign its own subject.
  Template t;
  t.id = "tmpl_mail";
  t.account_id = account_;
  t.name = "mail";
  t.language = "en";
  t.channel = Channel::kEmail;
  t.body = "Hi {{name}}, {{note}}";
  t.subject = "Template subject";
  t.html_body = "<p>Hi <b>{{name}}</b>, {{note}}</p>";
  t.status = TemplateStatus::kApproved;
  t.created_at = t.updated_at = NowMicros();
  ASSERT_TRUE(AwaitResult<Template>([&](Done<Template> done) {
                store_->CreateTemplate(t, {}, done);
              }).ok());
  Campaign c;
  c.id = "cmp_mail";
  c.account_id = account_;
  c.name = "mail";
  c.channel = Channel::kEmail;
  c.sender_id = "news@example.com";
  c.template_id = t.id;
  c.subject = "{{name}}: your {{item}}";
  c.created_at = c.updated_at = NowMicros();
  ASSERT_TRUE(AwaitResult<Campaign>([&](Done<Campaign> done) {
                store_->CreateCampaign(c, {}, done);
              }).ok());
  std::vector<StagedRecipient> rows = {
      {"ann@example.com", "",
       R"({"name":"Ann <ann@x>","note":"5 > 3 & 'yes'",)"
       R"("item":"order\r\nBcc: x@y"})",
       std::nullopt},
      // Lacks "item", which only the subject uses.
      {"bob@example.com", "", R"({"name":"Bob","note":"hi"})", std::nullopt}};
  ImportRows(c.id, rows);
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(Await([&](auto done) {
                engine_->Start(account_, c.id, std::nullopt, done);
              }).ok());
  ASSERT_TRUE(RunUntil([&] { return Get(c.id).stats.queued == 0; }));

  std::vector<OutgoingMessage> sent = recorder.sent();
  ASSERT_EQ(sent.size(), 1u);
  const OutgoingMessage& m = sent[0];
  EXPECT_EQ(m.address, "ann@example.com");
  EXPECT_EQ(m.channel, Channel::kEmail);
  EXPECT_EQ(m.text, "Hi Ann <ann@x>, 5 > 3 & 'yes'");
  EXPECT_EQ(m.subject, "Ann <ann@x>: your order Bcc: x@y");
  EXPECT_EQ(m.html,
            "<p>Hi <b>Ann &lt;ann@x&gt;</b>, 5 &gt; 3 &amp; &#39;yes&#39;</p>");
  Campaign after = Get(c.id);
  EXPECT_EQ(after.stats.sent + after.stats.delivered, 1);
  EXPECT_EQ(after.stats.skipped, 1);  // Bob: missing_variable "item"
}

// A vendor whose delivery callback overtakes its answer: each message's
// receipt is reported before the engine has its accepted answer, so before
// its outcome (and message id) is recorded.
class OvertakingProvider : public Provider {
 public:
  using Report = std::function<void(std::vector<ReceiptUpdate>)>;
  explicit OvertakingProvider(Report report) : report_(std::move(report)) {}
  void Send(std::vector<OutgoingMessage> batch, SendDone done) override {
    std::vector<SendResult> results;
    std::vector<ReceiptUpdate> receipts;
    for (const OutgoingMessage& m : batch) {
      const std::string id = absl::StrCat("pm_", m.recipient_id);
      results.push_back(
          {SendStatus::kAccepted, id, "", "", absl::ZeroDuration(), "", ""});
      ReceiptUpdate r;
      r.provider_message_id = id;
      r.status = RecipientStatus::kDelivered;
      r.occurred_at = absl::Now();
      receipts.push_back(std::move(r));
    }
    report_(std::move(receipts));
    done(std::move(results));
  }

 private:
  const Report report_;
};

// Such receipts match nothing when they arrive. They are held and applied
// once the outcomes are recorded: the campaign completes with every message
// delivered, instead of waiting for its receipt timeout with none.
TEST_F(EngineTest, AReceiptThatOvertakesItsMessagesOutcomeIsAppliedLater) {
  int64_t unmatched_answers = 0;
  OvertakingProvider vendor([&](std::vector<ReceiptUpdate> receipts) {
    engine_->IngestReceipts(account_, std::move(receipts),
                            [&](absl::StatusOr<ReceiptResult> r) {
                              ASSERT_TRUE(r.ok()) << r.status();
                              unmatched_answers += r->unmatched;
                            });
  });
  provider_ = &vendor;
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550299");
  Campaign c = NewCampaign(sender, 30, 0, /*batch_size=*/10);
  const absl::Time started = timer_.Now();
  ASSERT_TRUE(Await([&](auto done) {
                engine_->Start(account_, c.id, std::nullopt, done);
              }).ok());
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kCompleted));
  EXPECT_EQ(unmatched_answers, 30) << "the receipts did not overtake";
  EXPECT_LT(timer_.Now() - started, absl::Minutes(1))
      << "completed by the receipt timeout";
  EXPECT_EQ(Get(c.id).stats.delivered, 30);
  EXPECT_EQ(engine_->held_receipts(), 0u);

  // A receipt for a message that never comes is held for the hold only.
  ReceiptUpdate foreign;
  foreign.provider_message_id = "pm_of_another_system";
  foreign.status = RecipientStatus::kDelivered;
  foreign.occurred_at = absl::Now();
  ASSERT_TRUE(AwaitResult<ReceiptResult>([&](Done<ReceiptResult> done) {
                engine_->IngestReceipts(account_, {foreign}, std::move(done));
              }).ok());
  EXPECT_EQ(engine_->held_receipts(), 1u);
  RunFor(absl::Minutes(9));
  EXPECT_EQ(engine_->held_receipts(), 1u);
  RunFor(absl::Minutes(2));
  EXPECT_EQ(engine_->held_receipts(), 0u);
}

TEST_F(EngineTest, CampaignsOfOneSenderShareItsRate) {
  StartEngine();
  const std::string sender = NewSender(SenderTier::kTier10k, "+15550201");
  Campaign a = NewCampaign(sender, 150, 0);
  Campaign b = NewCampaign(sender, 150, 1000);
  for (const Campaign& c : {a, b}) {
    ASSERT_TRUE(Await([&](auto done) {
                  engine_->Start(account_, c.id, std::nullopt, done);
                }).ok());
  }
  ASSERT_TRUE(RunUntil([&] {
    return Get(a.id).status == CampaignStatus::kCompleted &&
           Get(b.id).status == CampaignStatus::kCompleted;
  }));
  std::vector<absl::Time> times = AcceptedTimes();
  ASSERT_EQ(times.size(), 300u);
  std::sort(times.begin(), times.end());
  EXPECT_LE(MaxPerSecond(times), 30);
}

TEST_F(EngineTest, ACampaignOverrideBelowTheTierWins) {
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550202");
  Campaign c = NewCampaign(sender, 41);
  auto updated = Await([&](auto done) {
    store_->UpdateCampaign(
        account_, c.id,
        [](Campaign& x) {
          x.rate_limit_per_second = 5;
          return absl::OkStatus();
        },
        done);
  });
  ASSERT_TRUE(updated.ok());
  ASSERT_TRUE(Await([&](auto done) {
                engine_->Start(account_, c.id, std::nullopt, done);
              }).ok());
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kCompleted));
  std::vector<absl::Time> times = AcceptedTimes();
  EXPECT_LE(MaxPerSecond(times), 5);
  EXPECT_NEAR(absl::ToDoubleSeconds(times.back() - times.front()), 8.0, 0.01);
}

TEST_F(EngineTest, TransientFailuresBackOffExponentially) {
  sim_options_.defaults.transient_failure_rate = 1.0;
  engine_options_.max_attempts = 4;
  engine_options_.backoff_base = absl::Seconds(1);
  engine_options_.error_threshold = 0;
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550203");
  Campaign c = NewCampaign(sender, 1);
  ASSERT_TRUE(Await([&](auto done) {
                engine_->Start(account_, c.id, std::nullopt, done);
              }).ok());
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kCompleted));
  std::vector<SimulatorLogEntry> log = sim_->Log();
  ASSERT_EQ(log.size(), 4u);
  for (size_t i = 1; i < log.size(); ++i) {
    const double gap = absl::ToDoubleSeconds(log[i].time - log[i - 1].time);
    const double base = 1 << (i - 1);  // 1, 2, 4 s
    EXPECT_GE(gap, base * 0.8) << i;
    EXPECT_LE(gap, base * 1.2) << i;
    EXPECT_EQ(log[i].key, log[0].key);  // one message, one key
  }
  Campaign done = Get(c.id);
  EXPECT_EQ(done.stats.failed, 1);
}

TEST_F(EngineTest, ThrottlingHonoursTheProvidersRetryAfter) {
  sim_options_.defaults.accepted_rate = 2;
  engine_options_.backoff_base = absl::Milliseconds(1);
  engine_options_.max_attempts = 100;
  engine_options_.error_threshold = 0;
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550204");
  Campaign c = NewCampaign(sender, 10);
  ASSERT_TRUE(Await([&](auto done) {
                engine_->Start(account_, c.id, std::nullopt, done);
              }).ok());
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kCompleted));
  EXPECT_EQ(Get(c.id).stats.delivered, 10);
  // The simulator accepts 2/s (capacity 2): the retry-after spaces them.
  std::vector<absl::Time> times = AcceptedTimes();
  EXPECT_LE(MaxPerSecond(times), 4);
}

TEST_F(EngineTest, AScheduledStartFiresAtItsTimeNotBefore) {
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550205");
  Campaign c = NewCampaign(sender, 3);
  const absl::Time at = timer_.Now() + absl::Minutes(10);
  auto scheduled =
      Await([&](auto done) { engine_->Start(account_, c.id, at, done); });
  ASSERT_TRUE(scheduled.ok());
  EXPECT_EQ(scheduled->status, CampaignStatus::kScheduled);
  RunFor(absl::Minutes(9));
  EXPECT_EQ(Get(c.id).status, CampaignStatus::kScheduled);
  EXPECT_TRUE(sim_->Log().empty());
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kCompleted));
  ASSERT_EQ(sim_->Log().size(), 3u);
  EXPECT_GE(sim_->Log().front().time, at);
}

TEST_F(EngineTest, ValidityPeriodExpiresWhatIsLeft) {
  StartEngine();
  const std::string sender = NewSender(SenderTier::kTier1k, "+15550206");
  Campaign c = NewCampaign(sender, 100);
  ASSERT_TRUE(Await([&](auto done) {
                store_->UpdateCampaign(
                    account_, c.id,
                    [](Campaign& x) {
                      x.validity_period = absl::Seconds(3);
                      return absl::OkStatus();
                    },
                    done);
              }).ok());
  ASSERT_TRUE(Await([&](auto done) {
                engine_->Start(account_, c.id, std::nullopt, done);
              }).ok());
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kCompleted));
  Campaign done = Get(c.id);
  EXPECT_GT(done.stats.failed, 50);
  EXPECT_GT(done.stats.delivered, 20);
  EXPECT_EQ(done.stats.failed + done.stats.delivered, 100);
  auto failed = store_->ListRecipients(account_, c.id, RecipientStatus::kFailed,
                                       PageRequest{1, 1, 0});
  ASSERT_TRUE(failed.ok());
  ASSERT_EQ(failed->items.size(), 1u);
  EXPECT_EQ(failed->items[0].error_code, "expired");
}

// 50 pause/resume cycles at random moments: every recipient is sent exactly
// once, none is skipped, and nothing is sent while paused.
TEST_F(EngineTest, FiftyRandomPauseResumeCyclesLoseAndRepeatNothing) {
  StartEngine();
  const std::string sender = NewSender(SenderTier::kTier10k, "+15550207");
  Campaign c = NewCampaign(sender, 600, 0, /*batch_size=*/7);
  ASSERT_TRUE(Await([&](auto done) {
                engine_->Start(account_, c.id, std::nullopt, done);
              }).ok());
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> ms(0, 400);
  for (int cycle = 0; cycle < 50; ++cycle) {
    RunFor(absl::Milliseconds(ms(rng)));
    auto paused = Await(
        [&](auto done) { engine_->Pause(account_, c.id, "cycle", done); });
    ASSERT_TRUE(paused.ok()) << paused.status();
    const size_t sent = sim_->Log().size();
    RunFor(absl::Milliseconds(ms(rng)));
    EXPECT_EQ(sim_->Log().size(), sent) << "sent while paused, cycle " << cycle;
    auto resumed =
        Await([&](auto done) { engine_->Resume(account_, c.id, done); });
    ASSERT_TRUE(resumed.ok()) << resumed.status();
  }
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kCompleted));
  std::map<std::string, int> per_key;
  for (const SimulatorLogEntry& e : sim_->Log()) ++per_key[e.key];
  EXPECT_EQ(per_key.size(), 600u);
  for (const auto& [key, n] : per_key) EXPECT_EQ(n, 1) << key;
  Campaign done = Get(c.id);
  EXPECT_EQ(done.stats.delivered, 600);
  EXPECT_EQ(done.stats.skipped, 0);
}

TEST_F(EngineTest, RecoverResumesSendingCampaignsAfterARestart) {
  StartEngine();
  const std::string sender = NewSender(SenderTier::kTier1k, "+15550208");
  Campaign c = NewCampaign(sender, 30);
  ASSERT_TRUE(Await([&](auto done) {
                engine_->Start(account_, c.id, std::nullopt, done);
              }).ok());
  RunFor(absl::Seconds(1));
  // A new engine (the same simulator, which remembers its keys) on the
  // same store, as after a crash: it picks the campaign up by itself.
  engine_->Stop();
  db_->Flush();
  const size_t before = sim_->Log().size();
  EXPECT_GT(before, 0u);
  EXPECT_LT(before, 30u);
  // The stopped engine stays alive: its callbacks still pending in the fake
  // timer find it stopped and do nothing.
  std::unique_ptr<Engine> old_engine = std::move(engine_);
  engine_ = std::make_unique<Engine>(
      store_.get(), &timer_,
      [this](const std::string&) -> Provider* { return sim_.get(); },
      engine_options_);
  ASSERT_TRUE(engine_->Recover().ok());
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kCompleted));
  old_engine.reset();
  std::map<std::string, int> accepted;
  for (const SimulatorLogEntry& e : sim_->Log()) {
    if (e.outcome == "accepted") ++accepted[e.key];
  }
  EXPECT_EQ(accepted.size(), 30u);
  for (const auto& [key, n] : accepted) EXPECT_EQ(n, 1) << key;
}

// The ledger of an account: every row, oldest first.
std::vector<Transaction> Ledger(storage::Store& store,
                                const std::string& account) {
  std::vector<Transaction> rows;
  PageRequest page{1, 100, 0};
  for (;;) {
    auto p = store.ListTransactions(account, page);
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) break;
    rows.insert(rows.end(), p->items.begin(), p->items.end());
    if (!p->has_more) break;
    page.after_key = p->next_key;
    ++page.page;
  }
  std::reverse(rows.begin(), rows.end());
  return rows;
}

// balance + reserved = credits added - debited, at every ledger row and for
// the account now; returns what was debited.
int64_t ExpectLedgerIdentity(storage::Store& store,
                             const std::string& account) {
  int64_t added = 0;
  int64_t debited = 0;
  int64_t last_seq = 0;
  for (const Transaction& t : Ledger(store, account)) {
    EXPECT_GT(t.seq, last_seq);
    last_seq = t.seq;
    EXPECT_GT(t.amount, 0) << t.description;
    if (t.type == Transaction::Type::kCredit) added += t.amount;
    if (t.type == Transaction::Type::kDebit) debited += t.amount;
    EXPECT_EQ(t.balance_after + t.reserved_after, added - debited)
        << "at ledger row " << t.seq << " (" << t.description << ")";
    EXPECT_GE(t.reserved_after, 0) << t.description;
  }
  auto a = store.GetAccount(account);
  EXPECT_TRUE(a.ok());
  if (a.ok()) {
    EXPECT_EQ(a->credits_balance + a->credits_reserved, added - debited);
  }
  return debited;
}

// A run with starts, a refused start, failures, a retry and a cancel: the
// ledger identity holds at every row and at every pause in between, each
// accepted message is debited exactly its price, and nothing stays
// reserved once every campaign has ended.
TEST_F(EngineTest, LedgerBalancesThroughStartsFailuresRetriesAndCancels) {
  sim_options_.defaults.transient_failure_rate = 0.2;
  sim_options_.defaults.permanent_failure_rate = 0.1;
  engine_options_.max_attempts = 2;
  StartEngine();
  constexpr int64_t kPrice = 7000;  // per segment, US numbers
  ASSERT_TRUE(AwaitResult<std::vector<Price>>([&](auto done) {
                store_->SetPrices(account_,
                                  {Price{Channel::kSms, "", 9000},
                                   Price{Channel::kSms, "US", kPrice}},
                                  done);
              }).ok());
  ASSERT_TRUE(AwaitResult<Account>([&](auto done) {
                store_->AddCredits(account_, 5000000, "top up", {}, done);
              }).ok());
  const std::string sender = NewSender(SenderTier::kTier100k, "+15550209");
  Campaign a = NewCampaign(sender, 300, 0);
  Campaign b = NewCampaign(sender, 200, 1000);
  Campaign too_big = NewCampaign(sender, 500, 2000);

  ASSERT_TRUE(Await([&](auto done) {
                engine_->Start(account_, a.id, std::nullopt, done);
              }).ok());
  EXPECT_EQ(Get(a.id).credits_reserved, 300 * kPrice);
  ASSERT_TRUE(Await([&](auto done) {
                engine_->Start(account_, b.id, std::nullopt, done);
              }).ok());
  // 5,000,000 - 500 * 7,000 = 1,500,000 left: 500 more do not fit.
  auto refused = Await([&](auto done) {
    engine_->Start(account_, too_big.id, std::nullopt, done);
  });
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(errors::ReasonOf(refused.status()), "INSUFFICIENT_CREDITS");
  EXPECT_EQ(Get(too_big.id).status, CampaignStatus::kDraft);
  EXPECT_EQ(Get(too_big.id).credits_reserved, 0);

  for (int i = 0; i < 5; ++i) {
    RunFor(absl::Milliseconds(300));
    ExpectLedgerIdentity(*store_, account_);
  }
  auto cancelled =
      Await([&](auto done) { engine_->Cancel(account_, b.id, done); });
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  ASSERT_TRUE(RunUntil([&] {
    const CampaignStatus s = Get(a.id).status;
    return s == CampaignStatus::kCompleted && Get(b.id).stats.queued == 0;
  }));
  ExpectLedgerIdentity(*store_, account_);
  EXPECT_EQ(Get(a.id).credits_reserved, 0);
  EXPECT_EQ(Get(b.id).credits_reserved, 0);
  ASSERT_GT(Get(a.id).stats.failed, 0);

  auto retried = AwaitResult<RetryResult>(
      [&](auto done) { engine_->RetryFailed(account_, a.id, {}, done); });
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(Get(a.id).credits_reserved, retried->requeued * kPrice);
  ExpectLedgerIdentity(*store_, account_);
  ASSERT_TRUE(RunUntilStatus(a.id, CampaignStatus::kCompleted));

  const int64_t debited = ExpectLedgerIdentity(*store_, account_);
  // Each accepted message costs its price once; nothing else is debited.
  int64_t accepted = 0;
  for (const SimulatorLogEntry& e : sim_->Log()) {
    if (e.outcome == "accepted") ++accepted;
  }
  EXPECT_GT(accepted, 0);
  EXPECT_EQ(debited, accepted * kPrice);
  EXPECT_EQ(Get(a.id).credits_debited + Get(b.id).credits_debited, debited);
  auto account = store_->GetAccount(account_);
  ASSERT_TRUE(account.ok());
  EXPECT_EQ(account->credits_reserved, 0);
  EXPECT_EQ(account->credits_balance, 5000000 - debited);
  // The run went through every kind of ledger row.
  const Campaign cancelled_b = Get(b.id);
  EXPECT_EQ(cancelled_b.status, CampaignStatus::kCancelled);
  EXPECT_GT(cancelled_b.stats.skipped, 0);
  std::map<Transaction::Type, int> kinds;
  for (const Transaction& t : Ledger(*store_, account_)) ++kinds[t.type];
  EXPECT_EQ(kinds[Transaction::Type::kCredit], 1);
  EXPECT_EQ(kinds[Transaction::Type::kReservation], 3);  // a, b, the retry
  EXPECT_GT(kinds[Transaction::Type::kDebit], 3);
  EXPECT_GT(kinds[Transaction::Type::kRelease], 2);
}

// With no prices set, nothing is reserved or debited and no ledger row is
// written: billing is opt-in.
TEST_F(EngineTest, AnAccountWithoutPricesSendsForFree) {
  StartEngine();
  const std::string sender = NewSender(SenderTier::kUnlimited, "+15550210");
  Campaign c = NewCampaign(sender, 50);
  ASSERT_TRUE(Await([&](auto done) {
                engine_->Start(account_, c.id, std::nullopt, done);
              }).ok());
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kCompleted));
  EXPECT_EQ(Get(c.id).stats.delivered, 50);
  EXPECT_TRUE(Ledger(*store_, account_).empty());
  auto account = store_->GetAccount(account_);
  ASSERT_TRUE(account.ok());
  EXPECT_EQ(account->credits_balance, 0);
  EXPECT_EQ(account->credits_reserved, 0);
}

}  // namespace
}  // namespace campaigns::dispatch
