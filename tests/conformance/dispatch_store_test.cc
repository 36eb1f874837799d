// DispatchStore's contract (server/domain/dispatch_store.h), on every engine
// (engines.h): every lifecycle move (a start re-checks the template,
// materialises the contact audience and reserves its cost; cancel skips what is
// queued and releases what is reserved), leases in seq order after a seq,
// outcomes (sent, failed, skipped, a retry that stays queued, suppression, a
// recipient no longer queued left alone, the ledger's debit and release),
// the in-doubt mark, receipts (older and repeated ones ignored, unmatched
// ones counted, a provider's only by its message ids), retries of failed
// recipients, and the reads the engine makes. After every write the
// counters add up: total = queued + sent + delivered + read + failed +
// skipped. Several instances at once, cancels in chunks and their
// resumption: tests/postgres/dispatch_store_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
#include "tests/conformance/engines.h"
#include "tests/storage/temp_db.h"
#include "tests/support/builders.h"

namespace campaigns::conformance {
namespace {

using storage::test_util::AwaitResult;
using storage::test_util::AwaitStatus;
using test_builders::ExpectError;
using test_builders::ExpectNotFound;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Two accounts, alpha (a_) and beta (b_), each with an SMS sender of the
// simulator.
class DispatchStoreTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    if (HasFatalFailure()) return;
    a_ = MustCreateAccount("alpha");
    b_ = MustCreateAccount("beta");
    ASSERT_FALSE(a_.empty());
    ASSERT_FALSE(b_.empty());
    sender_a_ = MustRegister(test_builders::NewSender(a_, "+15550100"));
    sender_b_ = MustRegister(test_builders::NewSender(b_, "+15550199"));
  }

  Sender MustRegister(Sender s) {
    absl::StatusOr<Sender> out = AwaitResult<Sender>([&](Done<Sender> done) {
      senders().RegisterSender(std::move(s), {}, std::move(done));
    });
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : Sender{};
  }

  // A draft campaign of `account` (its sender `sender_id`) sending to
  // `n` new contacts (+1202555xxxx from `first`).
  Campaign MustCreateDraft(const std::string& account,
                           const std::string& sender_id, int n,
                           int first = 1000,
                           const std::string& template_id = "") {
    Campaign c;
    c.id = NewId(kCampaignPrefix);
    c.account_id = account;
    c.name = "Spring sale";
    c.channel = Channel::kSms;
    c.sender_id = sender_id;
    c.body = template_id.empty() ? "Hi {{name}}" : "";
    c.template_id = template_id;
    c.created_at = c.updated_at = NowMicros();
    for (int i = 0; i < n; ++i) {
      Contact k;
      k.id = NewId(kContactPrefix);
      k.account_id = account;
      k.channel = Channel::kSms;
      k.address = absl::StrCat("+1202555", first + i);
      k.attributes = {{"name", "Ada"}};
      k.created_at = k.updated_at = NowMicros();
      absl::StatusOr<Contact> made =
          AwaitResult<Contact>([&](Done<Contact> done) {
            contacts().CreateContact(std::move(k), {}, std::move(done));
          });
      EXPECT_TRUE(made.ok()) << made.status();
      if (made.ok()) c.contact_ids.push_back(made->id);
    }
    absl::StatusOr<Campaign> out =
        AwaitResult<Campaign>([&](Done<Campaign> done) {
          campaigns().CreateCampaign(std::move(c), {}, std::move(done));
        });
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : Campaign{};
  }

  // A campaign of alpha's sending to `n` recipients.
  Campaign MustStartSending(int n, int first = 1000) {
    Campaign c = MustCreateDraft(a_, "+15550100", n, first);
    absl::StatusOr<Campaign> started = Move(a_, c.id, CampaignEvent::kStart);
    EXPECT_TRUE(started.ok()) << started.status();
    return started.ok() ? *started : Campaign{};
  }

  absl::StatusOr<Campaign> Move(const std::string& account,
                                const std::string& id, CampaignEvent event,
                                std::string reason = "",
                                std::optional<absl::Time> send_at = {},
                                absl::Time now = NowMicros()) {
    LifecycleChange change;
    change.event = event;
    change.now = now;
    change.send_at = send_at;
    change.reason = std::move(reason);
    return AwaitResult<Campaign>([&](Done<Campaign> done) {
      dispatch().TransitionCampaign(account, id, change, std::move(done));
    });
  }

  std::vector<Recipient> Lease(const Campaign& c, int64_t after = 0,
                               int limit = 100) {
    absl::StatusOr<std::vector<Recipient>> got =
        dispatch().LeaseRecipients(c, after, limit, nullptr);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? *got : std::vector<Recipient>{};
  }

  absl::StatusOr<Campaign> Record(const std::string& account,
                                  const std::string& id,
                                  std::vector<DispatchOutcome> outcomes) {
    return AwaitResult<Campaign>([&](Done<Campaign> done) {
      dispatch().RecordOutcomes(account, id, std::move(outcomes),
                                std::move(done));
    });
  }

  absl::StatusOr<ReceiptResult> Receipts(const std::string& account,
                                         std::vector<ReceiptUpdate> receipts) {
    return AwaitResult<ReceiptResult>([&](Done<ReceiptResult> done) {
      dispatch().ApplyReceipts(account, std::move(receipts), std::move(done));
    });
  }

  absl::StatusOr<ReceiptResult> ProviderReceipts(
      const std::string& provider, std::vector<ReceiptUpdate> receipts) {
    return AwaitResult<ReceiptResult>([&](Done<ReceiptResult> done) {
      dispatch().ApplyProviderReceipts(provider, std::move(receipts),
                                       std::move(done));
    });
  }

  absl::StatusOr<RetryResult> Retry(const std::string& account,
                                    const std::string& id,
                                    std::vector<std::string> codes) {
    return AwaitResult<RetryResult>([&](Done<RetryResult> done) {
      dispatch().RetryFailed(account, id, std::move(codes), std::move(done));
    });
  }

  // The campaign as stored; its counters add up.
  Campaign MustGet(const std::string& account, const std::string& id) {
    absl::StatusOr<Campaign> c = campaigns().GetCampaign(account, id);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return Campaign{};
    ExpectCountersAddUp(*c);
    return *c;
  }

  static void ExpectCountersAddUp(const Campaign& c) {
    const CampaignStats& s = c.stats;
    EXPECT_EQ(s.total,
              s.queued + s.sent + s.delivered + s.read + s.failed + s.skipped)
        << "campaign " << c.id;
  }

  // The campaign's recipients in `status` (kUnspecified: all), seq order.
  std::vector<Recipient> ListOf(
      const Campaign& c,
      RecipientStatus status = RecipientStatus::kUnspecified) {
    PageRequest all;
    all.limit = 1000;
    absl::StatusOr<Page<Recipient>> page =
        recipients().ListRecipients(c.account_id, c.id, status, all);
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? page->items : std::vector<Recipient>{};
  }

  Account MustGetAccount(const std::string& id) {
    absl::StatusOr<Account> a = accounts().GetAccount(id);
    EXPECT_TRUE(a.ok()) << a.status();
    return a.ok() ? *a : Account{};
  }

  static DispatchOutcome Sent(int64_t seq, const std::string& message_id,
                              const std::string& provider = "simulator") {
    DispatchOutcome o;
    o.seq = seq;
    o.status = RecipientStatus::kSent;
    o.provider = provider;
    o.provider_message_id = message_id;
    return o;
  }
  static DispatchOutcome Failed(int64_t seq, const std::string& code,
                                const std::string& suppress = "") {
    DispatchOutcome o;
    o.seq = seq;
    o.status = RecipientStatus::kFailed;
    o.provider = "simulator";
    o.error_code = code;
    o.error_desc = "refused";
    o.suppress = suppress;
    return o;
  }
  static ReceiptUpdate Receipt(
      const std::string& message_id, RecipientStatus status,
      absl::Time at = absl::FromUnixSeconds(1700000000),
      const std::string& recipient_id = "") {
    ReceiptUpdate r;
    r.provider_message_id = message_id;
    r.recipient_id = recipient_id;
    r.status = status;
    r.occurred_at = at;
    if (status == RecipientStatus::kFailed) {
      r.error_code = "undeliverable";
      r.error_desc = "the handset is gone";
    }
    return r;
  }

  std::string a_;
  std::string b_;
  Sender sender_a_;
  Sender sender_b_;
};

// --- Lifecycle ---------------------------------------------------------------

TEST_P(DispatchStoreTest, StartMaterialisesTheAudienceAndRefusesAnEmptyOne) {
  Campaign empty = MustCreateDraft(a_, "+15550100", 0);
  ExpectError(Move(a_, empty.id, CampaignEvent::kStart).status(),
              absl::StatusCode::kFailedPrecondition, "VALIDATION_ERROR",
              "audience");
  EXPECT_EQ(MustGet(a_, empty.id).status, CampaignStatus::kDraft);

  Campaign c = MustCreateDraft(a_, "+15550100", 3);
  const absl::Time now = NowMicros();
  absl::StatusOr<Campaign> started =
      Move(a_, c.id, CampaignEvent::kStart, "", std::nullopt, now);
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(started->status, CampaignStatus::kSending);
  EXPECT_EQ(started->started_at, now);
  EXPECT_EQ(started->stats.total, 3);
  EXPECT_EQ(started->stats.queued, 3);
  const Campaign stored = MustGet(a_, c.id);
  EXPECT_EQ(stored.stats.queued, 3);
  EXPECT_EQ(stored.started_at, now);
  // No move from sending by kStart; another account's campaign is unknown.
  ExpectError(Move(a_, c.id, CampaignEvent::kStart).status(),
              absl::StatusCode::kFailedPrecondition, "ILLEGAL_TRANSITION");
  ExpectNotFound(Move(b_, c.id, CampaignEvent::kPause).status());
}

TEST_P(DispatchStoreTest, StartRechecksTheTemplateAndSendsItsBody) {
  absl::StatusOr<Template> t = AwaitResult<Template>([&](Done<Template> done) {
    templates().CreateTemplate(test_builders::NewTemplate(a_, "welcome"), {},
                               std::move(done));
  });
  ASSERT_TRUE(t.ok()) << t.status();
  Campaign c = MustCreateDraft(a_, "+15550100", 1, 1000, t->id);
  Campaign other = MustCreateDraft(a_, "+15550100", 1, 2000, t->id);
  absl::StatusOr<Campaign> started = Move(a_, other.id, CampaignEvent::kStart);
  ASSERT_TRUE(started.ok()) << started.status();
  absl::StatusOr<MessageContent> content =
      dispatch().MessageContentOf(*started);
  ASSERT_TRUE(content.ok()) << content.status();
  EXPECT_EQ(content->text, "Hello {{name}}");
  // The approval taken back: the other draft cannot start now.
  ASSERT_TRUE(AwaitResult<Template>([&](Done<Template> done) {
                templates().UpdateTemplate(
                    a_, t->id,
                    [](Template& x) {
                      x.status = TemplateStatus::kRejected;
                      return absl::OkStatus();
                    },
                    std::move(done));
              }).ok());
  ExpectError(Move(a_, c.id, CampaignEvent::kStart).status(),
              absl::StatusCode::kFailedPrecondition, "VALIDATION_ERROR",
              "template_id");
  EXPECT_EQ(MustGet(a_, c.id).status, CampaignStatus::kDraft);
}

TEST_P(DispatchStoreTest, ScheduledStartAndItsAlarm) {
  Campaign c = MustCreateDraft(a_, "+15550100", 2);
  const absl::Time at = NowMicros() + absl::Hours(1);
  absl::StatusOr<Campaign> scheduled =
      Move(a_, c.id, CampaignEvent::kStart, "", at);
  ASSERT_TRUE(scheduled.ok()) << scheduled.status();
  EXPECT_EQ(scheduled->status, CampaignStatus::kScheduled);
  EXPECT_EQ(scheduled->schedule_at, at);
  EXPECT_FALSE(scheduled->started_at.has_value());
  // An alarm before it is due (a rescheduled start's old alarm).
  ExpectError(Move(a_, c.id, CampaignEvent::kScheduleAlarm).status(),
              absl::StatusCode::kFailedPrecondition, "VALIDATION_ERROR",
              "schedule_at");
  absl::StatusOr<Campaign> due =
      Move(a_, c.id, CampaignEvent::kScheduleAlarm, "", std::nullopt, at);
  ASSERT_TRUE(due.ok()) << due.status();
  EXPECT_EQ(due->status, CampaignStatus::kSending);
  EXPECT_EQ(due->started_at, at);
}

TEST_P(DispatchStoreTest, AlarmPastMaxLatenessFailsTheCampaign) {
  Campaign c = MustCreateDraft(a_, "+15550100", 1);
  ASSERT_TRUE(AwaitResult<Campaign>([&](Done<Campaign> done) {
                campaigns().UpdateCampaign(
                    a_, c.id,
                    [](Campaign& x) {
                      x.max_lateness = absl::Minutes(5);
                      return absl::OkStatus();
                    },
                    std::move(done));
              }).ok());
  const absl::Time at = NowMicros() + absl::Hours(1);
  ASSERT_TRUE(Move(a_, c.id, CampaignEvent::kStart, "", at).ok());
  absl::StatusOr<Campaign> late = Move(a_, c.id, CampaignEvent::kScheduleAlarm,
                                       "", std::nullopt, at + absl::Hours(1));
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_EQ(late->status, CampaignStatus::kFailed);
  EXPECT_THAT(late->failure_reason, HasSubstr("max_lateness exceeded"));
  EXPECT_EQ(MustGet(a_, c.id).status, CampaignStatus::kFailed);
}

TEST_P(DispatchStoreTest, PauseKeepsItsReasonResumeClearsIt) {
  Campaign c = MustStartSending(2);
  absl::StatusOr<Campaign> paused =
      Move(a_, c.id, CampaignEvent::kPause, "operator");
  ASSERT_TRUE(paused.ok()) << paused.status();
  EXPECT_EQ(paused->status, CampaignStatus::kPaused);
  EXPECT_EQ(paused->pause_reason, "operator");
  // Paused again without a reason: the first stays.
  absl::StatusOr<Campaign> again = Move(a_, c.id, CampaignEvent::kPause);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->pause_reason, "operator");
  absl::StatusOr<Campaign> resumed = Move(a_, c.id, CampaignEvent::kResume);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->status, CampaignStatus::kSending);
  EXPECT_EQ(resumed->pause_reason, "");
  EXPECT_EQ(MustGet(a_, c.id).pause_reason, "");
}

TEST_P(DispatchStoreTest, FatalFailsWithItsReason) {
  Campaign c = MustStartSending(1);
  absl::StatusOr<Campaign> failed =
      Move(a_, c.id, CampaignEvent::kFatal, "provider gone");
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(failed->status, CampaignStatus::kFailed);
  EXPECT_EQ(failed->failure_reason, "provider gone");
  EXPECT_EQ(MustGet(a_, c.id).failure_reason, "provider gone");
}

TEST_P(DispatchStoreTest, AllDispatchedThenAllFinal) {
  Campaign c = MustStartSending(2);
  std::vector<Recipient> r = Lease(c);
  ASSERT_EQ(r.size(), 2u);
  ASSERT_TRUE(Record(a_, c.id, {Sent(r[0].seq, "m-0")}).ok());
  // One still queued.
  ExpectError(Move(a_, c.id, CampaignEvent::kAllDispatched).status(),
              absl::StatusCode::kFailedPrecondition, "VALIDATION_ERROR", "id");
  ASSERT_TRUE(Record(a_, c.id, {Sent(r[1].seq, "m-1")}).ok());
  const absl::Time t = NowMicros();
  absl::StatusOr<Campaign> sent =
      Move(a_, c.id, CampaignEvent::kAllDispatched, "", std::nullopt, t);
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_EQ(sent->status, CampaignStatus::kSent);
  EXPECT_EQ(sent->sent_at, t);
  absl::StatusOr<Campaign> done =
      Move(a_, c.id, CampaignEvent::kAllFinal, "", std::nullopt, t);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->status, CampaignStatus::kCompleted);
  EXPECT_EQ(done->completed_at, t);
  EXPECT_EQ(MustGet(a_, c.id).status, CampaignStatus::kCompleted);
}

TEST_P(DispatchStoreTest, AllDispatchedWithNothingAwaitingAReceiptCompletes) {
  Campaign c = MustStartSending(1);
  std::vector<Recipient> r = Lease(c);
  ASSERT_EQ(r.size(), 1u);
  ASSERT_TRUE(Record(a_, c.id, {Failed(r[0].seq, "30003")}).ok());
  absl::StatusOr<Campaign> done = Move(a_, c.id, CampaignEvent::kAllDispatched);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->status, CampaignStatus::kCompleted);
  EXPECT_TRUE(done->sent_at.has_value());
  EXPECT_TRUE(done->completed_at.has_value());
}

// A cancelled campaign whose queued counter counts rows it does not have
// (none should) ends its chain of skips when one skips nothing, rather than
// loop for ever.
TEST_P(DispatchStoreTest, ACancelWhoseCounterOvercountsEnds) {
  Campaign c = MustStartSending(3);
  ASSERT_TRUE(ExecBehindTheStores(
                  absl::StrCat("UPDATE campaigns SET queued = queued + 5, "
                               "total = total + 5 WHERE id = '",
                               c.id, "'"))
                  .ok());
  absl::StatusOr<Campaign> cancelled = Move(a_, c.id, CampaignEvent::kCancel);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->status, CampaignStatus::kCancelled);
  EXPECT_EQ(cancelled->stats.skipped, 3);
  EXPECT_EQ(cancelled->stats.queued, 5);
}

TEST_P(DispatchStoreTest, CancelSkipsTheQueuedAndReleasesTheReservation) {
  SeedMoney(a_, {Price{Channel::kSms, "", 10000}}, 1000000);
  if (HasFatalFailure()) return;
  Campaign c = MustStartSending(4);
  ASSERT_EQ(c.credits_reserved, 40000);
  std::vector<Recipient> r = Lease(c);
  ASSERT_EQ(r.size(), 4u);
  ASSERT_TRUE(Record(a_, c.id, {Sent(r[0].seq, "m-0")}).ok());
  const absl::Time t = NowMicros();
  absl::StatusOr<Campaign> cancelled =
      Move(a_, c.id, CampaignEvent::kCancel, "", std::nullopt, t);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->status, CampaignStatus::kCancelled);
  EXPECT_EQ(cancelled->cancelled_at, t);
  EXPECT_EQ(cancelled->stats.queued, 0);
  EXPECT_EQ(cancelled->stats.skipped, 3);
  EXPECT_EQ(cancelled->stats.sent, 1);
  ExpectCountersAddUp(*cancelled);
  const Campaign stored = MustGet(a_, c.id);
  EXPECT_EQ(stored.stats.skipped, 3);
  EXPECT_EQ(stored.credits_reserved, 0);
  EXPECT_EQ(stored.credits_debited, 10000);
  for (const Recipient& x : ListOf(c, RecipientStatus::kSkipped)) {
    EXPECT_EQ(x.skip_reason, "campaign_cancelled");
  }
  EXPECT_TRUE(Lease(c).empty());
  const Account a = MustGetAccount(a_);
  EXPECT_EQ(a.credits_reserved, 0);
  EXPECT_EQ(a.credits_balance, 990000);
  // Nothing was cut off.
  absl::StatusOr<std::vector<Campaign>> cut_off =
      dispatch().CutOffCancellations();
  ASSERT_TRUE(cut_off.ok()) << cut_off.status();
  EXPECT_TRUE(cut_off->empty());
  // Cancelled is final.
  ExpectError(Move(a_, c.id, CampaignEvent::kResume).status(),
              absl::StatusCode::kFailedPrecondition, "ILLEGAL_TRANSITION");
}

// A cancel that leaves the queued recipients to the instance sending the
// campaign (skip_queued false): cancelled at once, its queued recipients
// still queued (their outcomes are recorded as they come), found by
// CutOffCancellations and skipped by SkipCancelled.
TEST_P(DispatchStoreTest, ACancelMayLeaveTheQueuedToSkipLater) {
  Campaign c = MustStartSending(4);
  std::vector<Recipient> r = Lease(c);
  ASSERT_EQ(r.size(), 4u);
  LifecycleChange change;
  change.event = CampaignEvent::kCancel;
  change.now = NowMicros();
  change.skip_queued = false;
  absl::StatusOr<Campaign> cancelled =
      AwaitResult<Campaign>([&](Done<Campaign> done) {
        dispatch().TransitionCampaign(a_, c.id, change, std::move(done));
      });
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->status, CampaignStatus::kCancelled);
  EXPECT_EQ(cancelled->stats.queued, 4);
  // A message that was out when the cancel came keeps its real outcome.
  ASSERT_TRUE(Record(a_, c.id, {Sent(r[0].seq, "m-0")}).ok());
  absl::StatusOr<std::vector<Campaign>> cut_off =
      dispatch().CutOffCancellations();
  ASSERT_TRUE(cut_off.ok()) << cut_off.status();
  ASSERT_EQ(cut_off->size(), 1u);
  EXPECT_EQ((*cut_off)[0].id, c.id);
  EXPECT_EQ((*cut_off)[0].stats.queued, 3);
  absl::StatusOr<Campaign> skipped =
      AwaitResult<Campaign>([&](Done<Campaign> done) {
        dispatch().SkipCancelled(a_, c.id, std::move(done));
      });
  ASSERT_TRUE(skipped.ok()) << skipped.status();
  EXPECT_EQ(skipped->stats.queued, 0);
  EXPECT_EQ(skipped->stats.skipped, 3);
  EXPECT_EQ(skipped->stats.sent, 1);
  ExpectCountersAddUp(*skipped);
  for (const Recipient& x : ListOf(c, RecipientStatus::kSkipped)) {
    EXPECT_EQ(x.skip_reason, "campaign_cancelled");
  }
  cut_off = dispatch().CutOffCancellations();
  ASSERT_TRUE(cut_off.ok()) << cut_off.status();
  EXPECT_TRUE(cut_off->empty());
  // A campaign deleted meanwhile: NOT_FOUND.
  ExpectNotFound(AwaitResult<Campaign>([&](Done<Campaign> done) {
                   dispatch().SkipCancelled(a_, "cmp_gone", std::move(done));
                 }).status());
}

// A cancel settles a recipient marked handed with no outcome recorded
// (handed before a restart: on one instance the engine cancels once its
// calls are recorded) as failed outcome_unknown, not skipped: it may have
// gone out.
TEST_P(DispatchStoreTest, ACancelFailsInDoubtWhatWasHandedBeforeARestart) {
  Campaign c = MustStartSending(4);
  std::vector<Recipient> r = Lease(c);
  ASSERT_EQ(r.size(), 4u);
  ASSERT_TRUE(AwaitStatus([&](StatusDone done) {
                dispatch().MarkHanded(a_, c.id, {r[1].seq, r[2].seq}, true,
                                      nullptr, std::move(done));
              }).ok());
  absl::StatusOr<Campaign> cancelled = Move(a_, c.id, CampaignEvent::kCancel);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->status, CampaignStatus::kCancelled);
  EXPECT_EQ(cancelled->stats.queued, 0);
  EXPECT_EQ(cancelled->stats.skipped, 2);
  EXPECT_EQ(cancelled->stats.failed, 2);
  ExpectCountersAddUp(*cancelled);
  const std::vector<Recipient> failed = ListOf(c, RecipientStatus::kFailed);
  ASSERT_EQ(failed.size(), 2u);
  for (const Recipient& x : failed) {
    EXPECT_EQ(x.error_code, "outcome_unknown");
    EXPECT_EQ(x.skip_reason, "");
    EXPECT_FALSE(x.in_doubt);
  }
  EXPECT_EQ(failed[0].seq, r[1].seq);
  for (const Recipient& x : ListOf(c, RecipientStatus::kSkipped)) {
    EXPECT_EQ(x.skip_reason, "campaign_cancelled");
    EXPECT_EQ(x.error_code, "");
  }
}

// --- Leases --------------------------------------------------------------

TEST_P(DispatchStoreTest, LeasesQueuedRecipientsInSeqOrderAfterASeq) {
  Campaign c = MustStartSending(5);
  std::vector<Recipient> first = Lease(c, 0, 2);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_LT(first[0].seq, first[1].seq);
  for (const Recipient& r : first) {
    EXPECT_EQ(r.campaign_id, c.id);
    EXPECT_EQ(r.status, RecipientStatus::kQueued);
    EXPECT_TRUE(absl::StartsWith(r.id, "rcp_")) << r.id;
    EXPECT_FALSE(r.in_doubt);
  }
  std::vector<Recipient> rest = Lease(c, first[1].seq, 10);
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_GT(rest[0].seq, first[1].seq);
  EXPECT_LT(rest[0].seq, rest[1].seq);
  EXPECT_LT(rest[1].seq, rest[2].seq);
  // Recorded ones are not leased again.
  ASSERT_TRUE(Record(a_, c.id, {Sent(first[0].seq, "m")}).ok());
  std::vector<Recipient> now = Lease(c, 0, 10);
  ASSERT_EQ(now.size(), 4u);
  EXPECT_EQ(now[0].seq, first[1].seq);
}

// --- Outcomes ------------------------------------------------------------

TEST_P(DispatchStoreTest, RecordsEveryKindOfOutcome) {
  Campaign c = MustStartSending(5);
  std::vector<Recipient> r = Lease(c);
  ASSERT_EQ(r.size(), 5u);
  DispatchOutcome skipped;
  skipped.seq = r[2].seq;
  skipped.status = RecipientStatus::kSkipped;
  skipped.attempted = false;
  skipped.skip_reason = "missing_variable";
  DispatchOutcome retry;
  retry.seq = r[3].seq;
  retry.status = RecipientStatus::kQueued;
  retry.provider = "simulator";
  retry.error_code = "throttled";
  retry.error_desc = "try later";
  absl::StatusOr<Campaign> after =
      Record(a_, c.id,
             {Sent(r[0].seq, "m-0"), Failed(r[1].seq, "21610", "opt_out"),
              skipped, retry});
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->stats.sent, 1);
  EXPECT_EQ(after->stats.failed, 1);
  EXPECT_EQ(after->stats.skipped, 1);
  EXPECT_EQ(after->stats.queued, 2);
  ExpectCountersAddUp(*after);
  const Campaign stored = MustGet(a_, c.id);
  EXPECT_EQ(stored.stats.sent, 1);
  EXPECT_EQ(stored.stats.queued, 2);

  std::vector<Recipient> all = ListOf(c);
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all[0].status, RecipientStatus::kSent);
  EXPECT_EQ(all[0].provider_message_id, "m-0");
  EXPECT_EQ(all[0].provider, "simulator");
  EXPECT_EQ(all[0].attempts, 1);
  EXPECT_TRUE(all[0].sent_at.has_value());
  EXPECT_EQ(all[1].status, RecipientStatus::kFailed);
  EXPECT_EQ(all[1].error_code, "21610");
  EXPECT_EQ(all[1].error_desc, "refused");
  EXPECT_FALSE(all[1].sent_at.has_value());
  EXPECT_EQ(all[2].status, RecipientStatus::kSkipped);
  EXPECT_EQ(all[2].skip_reason, "missing_variable");
  EXPECT_EQ(all[2].attempts, 0);
  EXPECT_EQ(all[3].status, RecipientStatus::kQueued);
  EXPECT_EQ(all[3].error_code, "throttled");
  EXPECT_EQ(all[3].attempts, 1);
  EXPECT_EQ(all[4].status, RecipientStatus::kQueued);
  EXPECT_EQ(all[4].attempts, 0);

  // The refusal suppressed the address on SMS.
  absl::StatusOr<std::vector<bool>> suppressed = dispatch().SuppressedAmong(
      a_, Channel::kSms, {r[0].address, r[1].address});
  ASSERT_TRUE(suppressed.ok()) << suppressed.status();
  EXPECT_THAT(*suppressed, ElementsAre(false, true));
  absl::StatusOr<std::vector<Suppression>> found =
      suppressions().FindSuppressions(a_, r[1].address, Channel::kSms);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].reason, SuppressionReason::kOptOut);
  EXPECT_EQ((*found)[0].note, "provider: 21610 refused");

  // The retried one is leased again.
  std::vector<Recipient> queued = Lease(c);
  ASSERT_EQ(queued.size(), 2u);
  EXPECT_EQ(queued[0].seq, r[3].seq);
}

TEST_P(DispatchStoreTest, AProvidersBrokenTextIsRecordedNotRefused) {
  // A provider's error text and message id are bytes from outside: NULs and
  // broken UTF-8 must not make the outcome (and so the campaign) stick.
  Campaign c = MustStartSending(3);
  std::vector<Recipient> r = Lease(c);
  ASSERT_EQ(r.size(), 3u);
  DispatchOutcome failed = Failed(r[0].seq, std::string("E\0\xFF", 3));
  static constexpr char kBroken[] = "bad \xC3 byte and a \0 NUL";
  failed.error_desc = std::string(kBroken, sizeof(kBroken) - 1);
  failed.suppress = "bounce";
  const std::string odd_id("m-\xFE\0-1", 6);
  absl::StatusOr<Campaign> after =
      Record(a_, c.id, {failed, Sent(r[1].seq, odd_id)});
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->stats.failed, 1);
  EXPECT_EQ(after->stats.sent, 1);
  ExpectCountersAddUp(*after);
  std::vector<Recipient> all = ListOf(c);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].status, RecipientStatus::kFailed);
  EXPECT_TRUE(absl::StartsWith(all[0].error_desc, "bad ")) << all[0].error_desc;
  // The receipt for the odd message id finds its recipient.
  absl::StatusOr<ReceiptResult> got =
      Receipts(a_, {Receipt(odd_id, RecipientStatus::kDelivered)});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->matched, 1);
}

TEST_P(DispatchStoreTest, ARecipientNoLongerQueuedIsLeftAlone) {
  Campaign c = MustStartSending(2);
  std::vector<Recipient> r = Lease(c);
  ASSERT_EQ(r.size(), 2u);
  ASSERT_TRUE(Record(a_, c.id, {Failed(r[0].seq, "30003")}).ok());
  // A late outcome for the failed one, and the same recipient twice in a
  // batch: only the first counts.
  absl::StatusOr<Campaign> after =
      Record(a_, c.id,
             {Sent(r[0].seq, "late"), Sent(r[1].seq, "m-1"),
              Failed(r[1].seq, "again")});
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->stats.sent, 1);
  EXPECT_EQ(after->stats.failed, 1);
  EXPECT_EQ(after->stats.queued, 0);
  ExpectCountersAddUp(*after);
  std::vector<Recipient> all = ListOf(c);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].status, RecipientStatus::kFailed);
  EXPECT_EQ(all[0].provider_message_id, "");
  EXPECT_EQ(all[1].status, RecipientStatus::kSent);
  EXPECT_EQ(all[1].provider_message_id, "m-1");
  EXPECT_EQ(all[1].error_code, "");

  // Nor does a cancelled campaign's skipped recipient change.
  Campaign other = MustStartSending(1, 2000);
  std::vector<Recipient> o = Lease(other);
  ASSERT_EQ(o.size(), 1u);
  ASSERT_TRUE(Move(a_, other.id, CampaignEvent::kCancel).ok());
  absl::StatusOr<Campaign> late = Record(a_, other.id, {Sent(o[0].seq, "x")});
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_EQ(late->stats.skipped, 1);
  EXPECT_EQ(late->stats.sent, 0);
  ExpectCountersAddUp(MustGet(a_, other.id));
}

TEST_P(DispatchStoreTest, OutcomesOfABilledCampaignDebitAndRelease) {
  // 10,000 per SMS segment: 30,000 reserved for three.
  SeedMoney(a_, {Price{Channel::kSms, "", 10000}}, 1000000);
  if (HasFatalFailure()) return;
  Campaign c = MustStartSending(3);
  ASSERT_EQ(c.credits_reserved, 30000);
  std::vector<Recipient> r = Lease(c);
  ASSERT_EQ(r.size(), 3u);
  absl::StatusOr<Campaign> after =
      Record(a_, c.id, {Sent(r[0].seq, "m-0"), Failed(r[1].seq, "30003")});
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->credits_reserved, 10000);
  EXPECT_EQ(after->credits_debited, 10000);
  const Campaign stored = MustGet(a_, c.id);
  EXPECT_EQ(stored.credits_reserved, 10000);
  EXPECT_EQ(stored.credits_debited, 10000);
  Account a = MustGetAccount(a_);
  EXPECT_EQ(a.credits_reserved, 10000);
  EXPECT_EQ(a.credits_balance, 980000);
  // balance + reserved = credits - debited
  EXPECT_EQ(a.credits_balance + a.credits_reserved, 1000000 - 10000);

  // The last one sent: debited; nothing reserved is left.
  ASSERT_TRUE(Record(a_, c.id, {Sent(r[2].seq, "m-2")}).ok());
  a = MustGetAccount(a_);
  EXPECT_EQ(a.credits_reserved, 0);
  EXPECT_EQ(a.credits_balance, 980000);
  EXPECT_EQ(MustGet(a_, c.id).credits_debited, 20000);
}

TEST_P(DispatchStoreTest, HandedRecipientsAreInDoubtUntilRecorded) {
  Campaign c = MustStartSending(3);
  std::vector<Recipient> r = Lease(c);
  ASSERT_EQ(r.size(), 3u);
  auto mark = [&](std::vector<int64_t> seqs, bool handed) {
    return AwaitStatus([&](StatusDone done) {
      dispatch().MarkHanded(a_, c.id, std::move(seqs), handed, nullptr,
                            std::move(done));
    });
  };
  ASSERT_TRUE(mark({r[0].seq, r[1].seq, r[2].seq}, true).ok());
  std::vector<Recipient> leased = Lease(c);
  ASSERT_EQ(leased.size(), 3u);
  for (const Recipient& x : leased) EXPECT_TRUE(x.in_doubt);
  ASSERT_TRUE(mark({r[2].seq}, false).ok());
  ASSERT_TRUE(Record(a_, c.id, {Sent(r[0].seq, "m-0")}).ok());
  leased = Lease(c);
  ASSERT_EQ(leased.size(), 2u);
  EXPECT_TRUE(leased[0].in_doubt);   // r[1]
  EXPECT_FALSE(leased[1].in_doubt);  // r[2], unmarked
  EXPECT_FALSE(ListOf(c, RecipientStatus::kSent)[0].in_doubt);
  // Another account's campaign is not found.
  ExpectNotFound(AwaitStatus([&](StatusDone done) {
    dispatch().MarkHanded(b_, c.id, {r[1].seq}, true, nullptr, std::move(done));
  }));
}

// --- Receipts --------------------------------------------------------------

TEST_P(DispatchStoreTest, ReceiptsMoveForwardOnly) {
  Campaign c = MustStartSending(4);
  std::vector<Recipient> r = Lease(c);
  ASSERT_EQ(r.size(), 4u);
  ASSERT_TRUE(Record(a_, c.id,
                     {Sent(r[0].seq, "m-0"), Sent(r[1].seq, "m-1"),
                      Sent(r[2].seq, "m-2")})
                  .ok());
  const absl::Time t1 = absl::FromUnixSeconds(1700000000);
  const absl::Time t2 = t1 + absl::Minutes(1);
  absl::StatusOr<ReceiptResult> first = Receipts(
      a_, {Receipt("m-0", RecipientStatus::kDelivered, t1),
           Receipt("m-0", RecipientStatus::kDelivered, t2),   // repeated
           Receipt("", RecipientStatus::kRead, t2, r[1].id),  // by id
           Receipt("m-2", RecipientStatus::kFailed, t1),
           Receipt("nope", RecipientStatus::kDelivered, t1),
           Receipt("", RecipientStatus::kDelivered, t1, "rcp_bogus"),
           Receipt("", RecipientStatus::kDelivered, t1, r[3].id)});  // queued
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->matched, 3);
  EXPECT_EQ(first->ignored, 2);
  EXPECT_EQ(first->unmatched, 2);
  // Only a receipt naming a message id may match later (the engine holds it).
  ASSERT_EQ(first->unmatched_receipts.size(), 1u);
  EXPECT_EQ(first->unmatched_receipts[0].provider_message_id, "nope");
  EXPECT_EQ(first->unmatched_receipts[0].occurred_at, t1);
  EXPECT_EQ(first->delivered, 1);
  EXPECT_EQ(first->read, 1);
  EXPECT_EQ(first->failed, 1);
  ASSERT_EQ(first->campaigns.size(), 1u);
  const Campaign& seen = first->campaigns[0];
  EXPECT_EQ(seen.id, c.id);
  EXPECT_EQ(seen.stats.delivered, 1);
  EXPECT_EQ(seen.stats.read, 1);
  EXPECT_EQ(seen.stats.failed, 1);
  EXPECT_EQ(seen.stats.sent, 0);
  EXPECT_EQ(seen.stats.queued, 1);
  ExpectCountersAddUp(seen);

  // Older news: delivered after read, sent's failure after delivery.
  absl::StatusOr<ReceiptResult> late =
      Receipts(a_, {Receipt("m-1", RecipientStatus::kDelivered, t1),
                    Receipt("m-0", RecipientStatus::kFailed, t1),
                    Receipt("m-0", RecipientStatus::kRead, t2)});
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_EQ(late->matched, 1);
  EXPECT_EQ(late->ignored, 2);
  EXPECT_EQ(late->read, 1);

  std::vector<Recipient> all = ListOf(c);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].status, RecipientStatus::kRead);
  EXPECT_EQ(all[0].delivered_at, t1);
  EXPECT_EQ(all[0].read_at, t2);
  EXPECT_EQ(all[1].status, RecipientStatus::kRead);
  EXPECT_EQ(all[1].delivered_at, t2);
  EXPECT_EQ(all[2].status, RecipientStatus::kFailed);
  EXPECT_EQ(all[2].error_code, "undeliverable");
  EXPECT_EQ(all[2].error_desc, "the handset is gone");
  const Campaign stored = MustGet(a_, c.id);
  EXPECT_EQ(stored.stats.read, 2);
  EXPECT_EQ(stored.stats.delivered, 0);
  EXPECT_EQ(stored.stats.failed, 1);

  // Another account's receipts never match these recipients.
  absl::StatusOr<ReceiptResult> other =
      Receipts(b_, {Receipt("m-1", RecipientStatus::kRead, t2),
                    Receipt("", RecipientStatus::kRead, t2, r[3].id)});
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->unmatched, 2);
  EXPECT_EQ(other->matched, 0);
  EXPECT_TRUE(other->campaigns.empty());
}

TEST_P(DispatchStoreTest, ProviderReceiptsMatchOnlyThatProvidersMessages) {
  Campaign c = MustStartSending(3);
  std::vector<Recipient> r = Lease(c);
  ASSERT_EQ(r.size(), 3u);
  // r0: sent by the campaign's sender's provider (the row names none);
  // r1: answered by another provider (a failover).
  ASSERT_TRUE(
      Record(a_, c.id,
             {Sent(r[0].seq, "m-0", ""), Sent(r[1].seq, "m-1", "other")})
          .ok());
  absl::StatusOr<ReceiptResult> sim = ProviderReceipts(
      "simulator",
      {Receipt("m-0", RecipientStatus::kDelivered),
       Receipt("m-1", RecipientStatus::kDelivered),
       Receipt("", RecipientStatus::kDelivered, absl::Now(), r[2].id)});
  ASSERT_TRUE(sim.ok()) << sim.status();
  EXPECT_EQ(sim->matched, 1);
  EXPECT_EQ(sim->unmatched, 2);
  ASSERT_EQ(sim->unmatched_receipts.size(), 1u);
  EXPECT_EQ(sim->unmatched_receipts[0].provider_message_id, "m-1");
  absl::StatusOr<ReceiptResult> other =
      ProviderReceipts("other", {Receipt("m-0", RecipientStatus::kRead),
                                 Receipt("m-1", RecipientStatus::kRead)});
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->matched, 1);
  EXPECT_EQ(other->unmatched, 1);
  EXPECT_EQ(other->read, 1);
  ASSERT_EQ(other->campaigns.size(), 1u);
  EXPECT_EQ(other->campaigns[0].stats.read, 1);
  EXPECT_EQ(other->campaigns[0].stats.delivered, 1);
  ExpectCountersAddUp(MustGet(a_, c.id));
}

// --- Retries -------------------------------------------------------------

TEST_P(DispatchStoreTest, RetryFailedRequeuesByErrorCode) {
  Campaign draft = MustCreateDraft(a_, "+15550100", 1, 3000);
  ExpectError(Retry(a_, draft.id, {}).status(),
              absl::StatusCode::kFailedPrecondition, "ILLEGAL_TRANSITION");

  Campaign c = MustStartSending(4);
  std::vector<Recipient> r = Lease(c);
  ASSERT_EQ(r.size(), 4u);
  ASSERT_TRUE(Record(a_, c.id,
                     {Failed(r[0].seq, "30003"), Failed(r[1].seq, "30005"),
                      Failed(r[2].seq, "30003"), Sent(r[3].seq, "m-3")})
                  .ok());
  ASSERT_TRUE(Move(a_, c.id, CampaignEvent::kAllDispatched).ok());
  EXPECT_EQ(MustGet(a_, c.id).status, CampaignStatus::kSent);

  absl::StatusOr<RetryResult> some = Retry(a_, c.id, {"30003"});
  ASSERT_TRUE(some.ok()) << some.status();
  EXPECT_EQ(some->requeued, 2);
  EXPECT_EQ(some->campaign.status, CampaignStatus::kSending);
  EXPECT_FALSE(some->campaign.sent_at.has_value());
  EXPECT_EQ(some->campaign.stats.queued, 2);
  EXPECT_EQ(some->campaign.stats.failed, 1);
  ExpectCountersAddUp(some->campaign);
  const Campaign stored = MustGet(a_, c.id);
  EXPECT_EQ(stored.status, CampaignStatus::kSending);
  EXPECT_FALSE(stored.sent_at.has_value());
  EXPECT_EQ(stored.stats.queued, 2);
  std::vector<Recipient> again = Lease(c);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].seq, r[0].seq);
  EXPECT_EQ(again[0].retries, 1);
  EXPECT_EQ(again[0].error_code, "");

  absl::StatusOr<RetryResult> rest = Retry(a_, c.id, {});
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(rest->requeued, 1);
  EXPECT_EQ(rest->campaign.stats.queued, 3);
  EXPECT_EQ(rest->campaign.stats.failed, 0);
  absl::StatusOr<RetryResult> none = Retry(a_, c.id, {"nothing"});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->requeued, 0);
  ExpectNotFound(Retry(b_, c.id, {}).status());
}

TEST_P(DispatchStoreTest, RetryOfABilledCampaignReservesAgain) {
  SeedMoney(a_, {Price{Channel::kSms, "", 10000}}, 1000000);
  if (HasFatalFailure()) return;
  Campaign c = MustStartSending(2);
  std::vector<Recipient> r = Lease(c);
  ASSERT_EQ(r.size(), 2u);
  ASSERT_TRUE(
      Record(a_, c.id, {Failed(r[0].seq, "30003"), Failed(r[1].seq, "30003")})
          .ok());
  EXPECT_EQ(MustGetAccount(a_).credits_reserved, 0);
  absl::StatusOr<RetryResult> retried = Retry(a_, c.id, {});
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->campaign.credits_reserved, 20000);
  const Account a = MustGetAccount(a_);
  EXPECT_EQ(a.credits_reserved, 20000);
  EXPECT_EQ(a.credits_balance, 980000);
}

// --- Reads ---------------------------------------------------------------

TEST_P(DispatchStoreTest, CampaignsInStatusOfEveryAccount) {
  Campaign one = MustStartSending(1);
  Campaign two = MustStartSending(1, 2000);
  Campaign draft = MustCreateDraft(a_, "+15550100", 1, 3000);
  Campaign beta = MustCreateDraft(b_, "+15550199", 1, 4000);
  ASSERT_TRUE(Move(b_, beta.id, CampaignEvent::kStart).ok());
  ASSERT_TRUE(Move(b_, beta.id, CampaignEvent::kPause).ok());
  ASSERT_TRUE(Move(a_, two.id, CampaignEvent::kCancel).ok());
  absl::StatusOr<std::vector<Campaign>> live = dispatch().CampaignsInStatus(
      {CampaignStatus::kSending, CampaignStatus::kPaused});
  ASSERT_TRUE(live.ok()) << live.status();
  std::vector<std::string> ids;
  for (const Campaign& c : *live) ids.push_back(c.id);
  EXPECT_THAT(ids, ElementsAre(one.id, beta.id));
  absl::StatusOr<std::vector<Campaign>> none = dispatch().CampaignsInStatus({});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
}

TEST_P(DispatchStoreTest, CampaignByIdOfAnyAccountUntilItIsDeleted) {
  Campaign mine = MustStartSending(1);
  Campaign theirs = MustCreateDraft(b_, "+15550199", 1, 4000);
  absl::StatusOr<Campaign> read = dispatch().CampaignById(mine.id);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->account_id, a_);
  EXPECT_EQ(read->status, CampaignStatus::kSending);
  EXPECT_EQ(read->stats.queued, 1);
  read = dispatch().CampaignById(theirs.id);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->account_id, b_);
  EXPECT_EQ(read->status, CampaignStatus::kDraft);
  EXPECT_EQ(dispatch().CampaignById("cmp_none").status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(AwaitStatus([&](StatusDone done) {
                campaigns().DeleteCampaign(b_, theirs.id, std::move(done));
              }).ok());
  EXPECT_EQ(dispatch().CampaignById(theirs.id).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(DispatchStoreTest, MessageContentAndSenderOfACampaign) {
  Campaign c = MustStartSending(1);
  absl::StatusOr<MessageContent> content = dispatch().MessageContentOf(c);
  ASSERT_TRUE(content.ok()) << content.status();
  EXPECT_EQ(content->text, "Hi {{name}}");
  absl::StatusOr<Sender> sender = dispatch().SenderOf(c);
  ASSERT_TRUE(sender.ok()) << sender.status();
  EXPECT_EQ(sender->id, sender_a_.id);
  EXPECT_EQ(sender->provider, "simulator");
  EXPECT_EQ(sender->tier, SenderTier::kTier10k);
  Campaign gone = c;
  gone.sender_ref = "snd_gone";
  ExpectNotFound(dispatch().SenderOf(gone).status());
  Campaign templated = c;
  templated.template_id = "tpl_gone";
  ExpectNotFound(dispatch().MessageContentOf(templated).status());
}

TEST_P(DispatchStoreTest, SuppressedAmongOneChannelOrEvery) {
  auto add = [&](const std::string& account, const std::string& address,
                 Channel channel) {
    Suppression s;
    s.account_id = account;
    s.address = address;
    s.channel = channel;
    s.reason = SuppressionReason::kManual;
    s.created_at = NowMicros();
    ASSERT_TRUE(AwaitResult<Suppression>([&](Done<Suppression> done) {
                  suppressions().AddSuppression(s, std::move(done));
                }).ok());
  };
  add(a_, "+12025550001", Channel::kSms);
  add(a_, "+12025550002", Channel::kUnspecified);  // every channel
  add(a_, "+12025550003", Channel::kWhatsapp);
  add(b_, "+12025550004", Channel::kSms);
  absl::StatusOr<std::vector<bool>> got = dispatch().SuppressedAmong(
      a_, Channel::kSms,
      {"+12025550001", "+12025550002", "+12025550003", "+12025550004",
       "+12025550001"});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, ElementsAre(true, true, false, false, true));
  absl::StatusOr<std::vector<bool>> empty =
      dispatch().SuppressedAmong(a_, Channel::kSms, {});
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->empty());
}

INSTANTIATE_TEST_SUITE_P(Engines, DispatchStoreTest,
                         ::testing::ValuesIn(kEngines), EngineName);

}  // namespace
}  // namespace campaigns::conformance
