// The dispatch engine end to end through the API: start, pause, resume,
// cancel, schedules, retries and restarts, checked against the simulator's
// log of provider calls.
#include <chrono>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/integration/fixture.h"

namespace campaigns::testing {
namespace {

using Request = v1::ImportRecipientsRequest;

class DispatchTest : public ServerTest {
 protected:
  void Configure(ServerOptions& options) override {
    options.simulator.keep_log = true;
    options.simulator.log_path = db_dir_ + "/simulator.jsonl";
    options.simulator.defaults.delivered_delay = absl::ZeroDuration();
    options.engine.backoff_base = absl::Milliseconds(10);
    options.engine.receipt_timeout = absl::Seconds(30);
    configure_(options);
  }

  // A sender of `tier` for the admin account.
  std::string Sender(v1::Sender::Tier tier, const std::string& id) {
    v1::RegisterSenderRequest req;
    req.set_sender_id(id);
    req.set_channel(v1::sms);
    req.set_tier(tier);
    v1::Sender sender;
    grpc::Status s =
        senders_->RegisterSender(Ctx(kAdminKey).get(), req, &sender);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return sender.sender_id();
  }

  // A draft campaign with `n` imported recipients (variables name, code).
  std::string CampaignWith(int n, const std::string& sender,
                           const std::string& body = "Hi {{name}}, {{code}}") {
    v1::CreateCampaignRequest req = CampaignRequest(sender);
    req.set_body(body);
    v1::Campaign c;
    grpc::Status s = campaigns_->CreateCampaign(Ctx(kAdminKey).get(), req, &c);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::string csv = "phone,name,code\n";
    for (int i = 0; i < n; ++i) {
      absl::StrAppend(&csv, "+1202", 3000000 + i, ",n", i, ",c", i, "\n");
    }
    auto ctx = Ctx(kAdminKey);
    v1::ImportRecipientsResponse out;
    auto writer = campaigns_->ImportRecipients(ctx.get(), &out);
    Request first;
    first.set_campaign_id(c.id());
    first.set_format(Request::csv);
    first.set_default_region("US");
    writer->Write(first);
    Request chunk;
    chunk.set_csv_chunk(csv);
    writer->Write(chunk);
    writer->WritesDone();
    s = writer->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(out.imported(), n);
    return c.id();
  }

  v1::Campaign Get(const std::string& id) {
    v1::GetCampaignRequest req;
    req.set_id(id);
    v1::Campaign c;
    grpc::Status s = campaigns_->GetCampaign(Ctx(kAdminKey).get(), req, &c);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return c;
  }

  grpc::Status Start(const std::string& id, v1::Campaign* out = nullptr) {
    v1::StartCampaignRequest req;
    req.set_id(id);
    v1::Campaign c;
    return campaigns_->StartCampaign(Ctx(kAdminKey).get(), req, out ? out : &c);
  }

  // Polls until the campaign is in `status` (or 60 s pass: then fails).
  v1::Campaign WaitFor(const std::string& id, v1::Campaign::Status status) {
    v1::Campaign c;
    for (int i = 0; i < 6000; ++i) {
      c = Get(id);
      if (c.status() == status) return c;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "campaign " << id << " never became "
                  << v1::Campaign::Status_Name(status) << "; it is "
                  << v1::Campaign::Status_Name(c.status());
    return c;
  }

  static void ExpectCountersAddUp(const v1::Campaign& c) {
    const v1::CampaignStats& s = c.stats();
    EXPECT_EQ(s.total(), s.queued() + s.sent() + s.delivered() + s.read() +
                             s.failed() + s.skipped())
        << c.DebugString();
  }

  // Accepted sends per idempotency key in the simulator's log file.
  std::map<std::string, int> AcceptedPerKey() {
    std::map<std::string, int> out;
    std::ifstream in(db_dir_ + "/simulator.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      nlohmann::json j = nlohmann::json::parse(line);
      if (j["outcome"] == "accepted") ++out[j["key"].get<std::string>()];
    }
    return out;
  }

  size_t LogSize() { return server_->simulator()->Log().size(); }

  std::vector<v1::Recipient> Recipients(const std::string& id) {
    return ListAllRecipients(id);
  }

  std::function<void(ServerOptions&)> configure_ = [](ServerOptions&) {};
};

TEST_F(DispatchTest, StartSendsEveryRecipientOnceAndCompletes) {
  const std::string id =
      CampaignWith(250, Sender(v1::Sender::unlimited, "+15550100"));
  v1::Campaign started;
  ASSERT_TRUE(Start(id, &started).ok());
  EXPECT_EQ(started.status(), v1::Campaign::sending);
  EXPECT_TRUE(started.has_started_at());
  v1::Campaign done = WaitFor(id, v1::Campaign::completed);
  EXPECT_EQ(done.stats().total(), 250);
  EXPECT_EQ(done.stats().delivered(), 250);
  ExpectCountersAddUp(done);
  EXPECT_TRUE(done.has_sent_at());
  EXPECT_TRUE(done.has_completed_at());
  std::map<std::string, int> accepted = AcceptedPerKey();
  EXPECT_EQ(accepted.size(), 250u);
  for (const auto& [key, n] : accepted) EXPECT_EQ(n, 1) << key;
  for (const v1::Recipient& r : Recipients(id)) {
    EXPECT_EQ(r.status(), v1::Recipient::delivered);
    EXPECT_FALSE(r.provider_message_id().empty());
    EXPECT_EQ(r.attempts(), 1);
    EXPECT_TRUE(accepted.count(id + ":" + r.id()) == 1) << r.id();
  }
  // Rendered per recipient.
  std::vector<dispatch::SimulatorLogEntry> log = server_->simulator()->Log();
  ASSERT_FALSE(log.empty());
}

TEST_F(DispatchTest, MissingVariableSkipsThatRecipient) {
  const std::string id = CampaignWith(
      5, Sender(v1::Sender::unlimited, "+15550101"), "Hi {{name}} {{nope}}");
  ASSERT_TRUE(Start(id).ok());
  v1::Campaign done = WaitFor(id, v1::Campaign::completed);
  EXPECT_EQ(done.stats().skipped(), 5);
  for (const v1::Recipient& r : Recipients(id)) {
    EXPECT_EQ(r.status(), v1::Recipient::skipped);
    EXPECT_EQ(r.skip_reason(), "missing_variable");
  }
  EXPECT_EQ(LogSize(), 0u);
}

TEST_F(DispatchTest, SuppressedSinceImportIsSkipped) {
  const std::string id =
      CampaignWith(3, Sender(v1::Sender::unlimited, "+15550102"));
  v1::AddSuppressionRequest add;
  add.set_address("+12023000001");
  add.set_channel(v1::sms);
  v1::Suppression sup;
  ASSERT_TRUE(
      suppressions_->AddSuppression(Ctx(kAdminKey).get(), add, &sup).ok());
  ASSERT_TRUE(Start(id).ok());
  v1::Campaign done = WaitFor(id, v1::Campaign::completed);
  EXPECT_EQ(done.stats().skipped(), 1);
  EXPECT_EQ(done.stats().delivered(), 2);
  for (const v1::Recipient& r : Recipients(id)) {
    if (r.address() == "+12023000001") {
      EXPECT_EQ(r.skip_reason(), "suppressed");
    }
  }
}

TEST_F(DispatchTest, IllegalTransitionsAndEmptyAudienceAreRefused) {
  const std::string sender = Sender(v1::Sender::unlimited, "+15550103");
  v1::Campaign empty;
  ASSERT_TRUE(campaigns_
                  ->CreateCampaign(Ctx(kAdminKey).get(),
                                   CampaignRequest(sender), &empty)
                  .ok());
  ErrorDetails d = Details(Start(empty.id()));
  EXPECT_EQ(d.code, grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(d.reason, "VALIDATION_ERROR");
  EXPECT_EQ(Get(empty.id()).status(), v1::Campaign::draft);

  v1::ResumeCampaignRequest resume;
  resume.set_id(empty.id());
  v1::Campaign c;
  d = Details(campaigns_->ResumeCampaign(Ctx(kAdminKey).get(), resume, &c));
  EXPECT_EQ(d.code, grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(d.reason, "ILLEGAL_TRANSITION");

  v1::PauseCampaignRequest pause;
  pause.set_id(empty.id());
  d = Details(campaigns_->PauseCampaign(Ctx(kAdminKey).get(), pause, &c));
  EXPECT_EQ(d.reason, "ILLEGAL_TRANSITION");

  v1::CancelCampaignRequest cancel;
  cancel.set_id(empty.id());
  ASSERT_TRUE(
      campaigns_->CancelCampaign(Ctx(kAdminKey).get(), cancel, &c).ok());
  EXPECT_EQ(c.status(), v1::Campaign::cancelled);
  EXPECT_TRUE(c.has_cancelled_at());
  d = Details(Start(empty.id()));
  EXPECT_EQ(d.reason, "ILLEGAL_TRANSITION");
  d = Details(campaigns_->CancelCampaign(Ctx(kAdminKey).get(), cancel, &c));
  EXPECT_EQ(d.reason, "ILLEGAL_TRANSITION");

  // Another account's campaign does not exist for the caller.
  const std::string other = NewAccount("other");
  v1::StartCampaignRequest start;
  start.set_id(empty.id());
  d = Details(campaigns_->StartCampaign(Ctx(other).get(), start, &c));
  EXPECT_EQ(d.code, grpc::StatusCode::NOT_FOUND);
}

TEST_F(DispatchTest, PauseStopsProviderCallsAndResumeContinues) {
  // tier_1k: 10 messages a second, so the campaign is mid-way for a while.
  const std::string id =
      CampaignWith(30, Sender(v1::Sender::tier_1k, "+15550104"));
  ASSERT_TRUE(Start(id).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  v1::PauseCampaignRequest pause;
  pause.set_id(id);
  pause.set_reason("checking the copy");
  v1::Campaign paused;
  ASSERT_TRUE(
      campaigns_->PauseCampaign(Ctx(kAdminKey).get(), pause, &paused).ok());
  EXPECT_EQ(paused.status(), v1::Campaign::paused);
  EXPECT_EQ(paused.pause_reason(), "checking the copy");
  const size_t at_pause = LogSize();
  EXPECT_GT(at_pause, 0u);
  EXPECT_LT(at_pause, 30u);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(LogSize(), at_pause) << "a provider call started after the pause";
  // Pausing again is allowed and changes nothing.
  ASSERT_TRUE(
      campaigns_->PauseCampaign(Ctx(kAdminKey).get(), pause, &paused).ok());

  v1::ResumeCampaignRequest resume;
  resume.set_id(id);
  v1::Campaign resumed;
  ASSERT_TRUE(
      campaigns_->ResumeCampaign(Ctx(kAdminKey).get(), resume, &resumed).ok());
  EXPECT_EQ(resumed.status(), v1::Campaign::sending);
  EXPECT_EQ(resumed.pause_reason(), "");
  v1::Campaign done = WaitFor(id, v1::Campaign::completed);
  EXPECT_EQ(done.stats().delivered(), 30);
  std::map<std::string, int> accepted = AcceptedPerKey();
  EXPECT_EQ(accepted.size(), 30u);
  for (const auto& [key, n] : accepted) EXPECT_EQ(n, 1) << key;
  EXPECT_EQ(LogSize(), 30u);
}

TEST_F(DispatchTest, CancelSkipsWhatIsQueuedAndSendsNothingMore) {
  const std::string id =
      CampaignWith(40, Sender(v1::Sender::tier_1k, "+15550105"));
  ASSERT_TRUE(Start(id).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  v1::CancelCampaignRequest cancel;
  cancel.set_id(id);
  v1::Campaign c;
  ASSERT_TRUE(
      campaigns_->CancelCampaign(Ctx(kAdminKey).get(), cancel, &c).ok());
  EXPECT_EQ(c.status(), v1::Campaign::cancelled);
  EXPECT_EQ(c.stats().queued(), 0);
  ExpectCountersAddUp(c);
  const size_t at_cancel = LogSize();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(LogSize(), at_cancel);
  int skipped = 0;
  for (const v1::Recipient& r : Recipients(id)) {
    if (r.status() == v1::Recipient::skipped) {
      EXPECT_EQ(r.skip_reason(), "campaign_cancelled");
      ++skipped;
    }
  }
  EXPECT_EQ(skipped, 40 - static_cast<int>(at_cancel));
  EXPECT_EQ(c.stats().skipped(), skipped);
}

TEST_F(DispatchTest, ConfirmWithSendAtSchedulesAndTheAlarmStarts) {
  const std::string id =
      CampaignWith(5, Sender(v1::Sender::unlimited, "+15550106"));
  v1::ConfirmCampaignRequest confirm;
  confirm.set_id(id);
  confirm.mutable_send_at()->set_seconds(
      absl::ToUnixSeconds(absl::Now() + absl::Seconds(2)));
  v1::Campaign c;
  ASSERT_TRUE(
      campaigns_->ConfirmCampaign(Ctx(kAdminKey).get(), confirm, &c).ok());
  EXPECT_EQ(c.status(), v1::Campaign::scheduled);
  EXPECT_EQ(LogSize(), 0u);
  v1::Campaign done = WaitFor(id, v1::Campaign::completed);
  EXPECT_EQ(done.stats().delivered(), 5);
  EXPECT_GE(done.started_at().seconds(), confirm.send_at().seconds());
}

TEST_F(DispatchTest, AScheduleMissedByMoreThanMaxLatenessFails) {
  const std::string sender = Sender(v1::Sender::unlimited, "+15550107");
  const std::string id = CampaignWith(5, sender);
  v1::UpdateCampaignRequest update;
  update.set_id(id);
  update.mutable_max_lateness()->set_seconds(1);
  update.mutable_update_mask()->add_paths("max_lateness");
  v1::Campaign c;
  ASSERT_TRUE(
      campaigns_->UpdateCampaign(Ctx(kAdminKey).get(), update, &c).ok());
  v1::ConfirmCampaignRequest confirm;
  confirm.set_id(id);
  // Whole seconds, rounded down: at least 1 s from now, so the server is
  // down before the start is due (with + 1 s it could be due at once).
  const int64_t due = absl::ToUnixSeconds(absl::Now() + absl::Seconds(2));
  confirm.mutable_send_at()->set_seconds(due);
  ASSERT_TRUE(
      campaigns_->ConfirmCampaign(Ctx(kAdminKey).get(), confirm, &c).ok());
  // The server is down when the start is due, and comes back too late:
  // 3 s after it was due, max_lateness being 1 s.
  server_->Shutdown();
  server_.reset();
  absl::SleepFor(absl::FromUnixSeconds(due) + absl::Seconds(3) - absl::Now());
  Restart();
  v1::Campaign failed = WaitFor(id, v1::Campaign::failed);
  EXPECT_NE(failed.failure_reason().find("max_lateness"), std::string::npos)
      << failed.failure_reason();
  EXPECT_EQ(LogSize(), 0u);
}

TEST_F(DispatchTest, TransientFailuresAreRetriedWithTheSameKey) {
  configure_ = [](ServerOptions& o) {
    o.simulator.defaults.transient_failure_rate = 0.5;
    o.engine.max_attempts = 20;
    o.engine.error_threshold = 0;
  };
  Restart();
  const std::string id =
      CampaignWith(40, Sender(v1::Sender::unlimited, "+15550108"));
  ASSERT_TRUE(Start(id).ok());
  v1::Campaign done = WaitFor(id, v1::Campaign::completed);
  EXPECT_EQ(done.stats().delivered(), 40);
  int retried = 0;
  for (const v1::Recipient& r : Recipients(id)) {
    EXPECT_GE(r.attempts(), 1);
    if (r.attempts() > 1) ++retried;
  }
  EXPECT_GT(retried, 0);
  std::map<std::string, int> accepted = AcceptedPerKey();
  EXPECT_EQ(accepted.size(), 40u);
  for (const auto& [key, n] : accepted) EXPECT_EQ(n, 1) << key;
}

TEST_F(DispatchTest, PermanentFailuresAreRecordedAndRetryFailedSendsThemAgain) {
  configure_ = [](ServerOptions& o) {
    o.simulator.defaults.permanent_failure_rate = 0.3;
    o.engine.error_threshold = 0;
  };
  Restart();
  const std::string id =
      CampaignWith(50, Sender(v1::Sender::unlimited, "+15550109"));
  ASSERT_TRUE(Start(id).ok());
  v1::Campaign done = WaitFor(id, v1::Campaign::completed);
  const int64_t failed = done.stats().failed();
  EXPECT_GT(failed, 0);
  EXPECT_EQ(done.stats().delivered() + failed, 50);
  for (const v1::Recipient& r : Recipients(id)) {
    if (r.status() == v1::Recipient::failed) {
      EXPECT_EQ(r.error_code(), "rejected");
      EXPECT_FALSE(r.error_desc().empty());
    }
  }
  v1::RetryFailedRequest retry;
  retry.set_id(id);
  v1::RetryFailedResponse resp;
  ASSERT_TRUE(campaigns_->RetryFailed(Ctx(kAdminKey).get(), retry, &resp).ok());
  EXPECT_EQ(resp.requeued(), failed);
  EXPECT_EQ(resp.campaign().status(), v1::Campaign::sending);
  done = WaitFor(id, v1::Campaign::completed);
  ExpectCountersAddUp(done);
  // A retried message is a new one (key suffix :1): some now go through.
  EXPECT_LT(done.stats().failed(), failed);
}

TEST_F(DispatchTest, AnErrorThresholdAutoPausesWithAReason) {
  configure_ = [](ServerOptions& o) {
    o.simulator.defaults.permanent_failure_rate = 1.0;
    o.engine.error_window = 20;
  };
  Restart();
  const std::string id =
      CampaignWith(300, Sender(v1::Sender::unlimited, "+15550110"));
  v1::UpdateCampaignRequest update;
  update.set_id(id);
  update.set_batch_size(10);
  v1::Campaign c;
  ASSERT_TRUE(
      campaigns_->UpdateCampaign(Ctx(kAdminKey).get(), update, &c).ok());
  ASSERT_TRUE(Start(id).ok());
  v1::Campaign paused = WaitFor(id, v1::Campaign::paused);
  EXPECT_NE(paused.pause_reason().find("auto-paused"), std::string::npos);
  EXPECT_GT(paused.stats().queued(), 0);
  ExpectCountersAddUp(paused);
}

TEST_F(DispatchTest, ARestartMidCampaignResumesAndSendsNoKeyTwice) {
  const std::string id =
      CampaignWith(60, Sender(v1::Sender::tier_10k, "+15550111"));
  ASSERT_TRUE(Start(id).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  Restart();
  v1::Campaign done = WaitFor(id, v1::Campaign::completed);
  EXPECT_EQ(done.stats().delivered(), 60);
  std::map<std::string, int> accepted = AcceptedPerKey();
  EXPECT_EQ(accepted.size(), 60u);
  for (const auto& [key, n] : accepted) EXPECT_EQ(n, 1) << key;
}

TEST_F(DispatchTest, CreateWithStartSendsAtOnceWhenItHasAnAudience) {
  const std::string sender = Sender(v1::Sender::unlimited, "+15550112");
  v1::CreateContactRequest contact;
  contact.set_channel(v1::sms);
  contact.set_address("+12025550123");
  (*contact.mutable_attributes())["name"] = "Ada";
  (*contact.mutable_attributes())["code"] = "X1";
  contact.add_tags("vip");
  v1::Contact ct;
  ASSERT_TRUE(
      contacts_->CreateContact(Ctx(kAdminKey).get(), contact, &ct).ok());
  v1::CreateCampaignRequest req = CampaignRequest(sender);
  req.add_tags("vip");
  req.set_start(true);
  v1::Campaign c;
  grpc::Status s = campaigns_->CreateCampaign(Ctx(kAdminKey).get(), req, &c);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(c.status(), v1::Campaign::sending);
  EXPECT_EQ(c.stats().total(), 1);
  v1::Campaign done = WaitFor(c.id(), v1::Campaign::completed);
  EXPECT_EQ(done.stats().delivered(), 1);
}

// Receipts from outside (DeliveryService): no simulated receipts here.
class ReceiptTest : public DispatchTest {
 protected:
  void SetUp() override {
    configure_ = [](ServerOptions& o) {
      o.simulator.defaults.delivered_rate = 0;
    };
    DispatchTest::SetUp();
  }

  grpc::Status Report(const std::vector<v1::DeliveryReceipt>& receipts,
                      v1::ReportDeliveryReceiptsResponse* out,
                      const std::string& key = kAdminKey) {
    auto ctx = Ctx(key);
    auto writer = delivery_->ReportDeliveryReceipts(ctx.get(), out);
    for (const v1::DeliveryReceipt& r : receipts) {
      if (!writer->Write(r)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  static v1::DeliveryReceipt ByMessage(const std::string& id,
                                       v1::Recipient::Status status) {
    v1::DeliveryReceipt r;
    r.set_provider_message_id(id);
    r.set_status(status);
    return r;
  }
};

TEST_F(ReceiptTest, ReceiptsMoveRecipientsOnAndCompleteTheCampaign) {
  const std::string id =
      CampaignWith(4, Sender(v1::Sender::unlimited, "+15550120"));
  ASSERT_TRUE(Start(id).ok());
  v1::Campaign sent = WaitFor(id, v1::Campaign::sent);
  EXPECT_EQ(sent.stats().sent(), 4);
  std::vector<v1::Recipient> rs = Recipients(id);
  ASSERT_EQ(rs.size(), 4u);

  std::vector<v1::DeliveryReceipt> receipts = {
      ByMessage(rs[0].provider_message_id(), v1::Recipient::delivered),
      // a repeat, and a delivered after read: both ignored
      ByMessage(rs[0].provider_message_id(), v1::Recipient::delivered),
      ByMessage(rs[1].provider_message_id(), v1::Recipient::read),
      ByMessage(rs[1].provider_message_id(), v1::Recipient::delivered),
      ByMessage("sim_unknown", v1::Recipient::delivered),
  };
  v1::DeliveryReceipt failed;
  failed.set_recipient_id(rs[2].id());
  failed.set_status(v1::Recipient::failed);
  failed.set_error_code("30003");
  failed.set_error_desc("unreachable handset");
  receipts.push_back(failed);
  v1::ReportDeliveryReceiptsResponse out;
  grpc::Status s = Report(receipts, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.received(), 6);
  EXPECT_EQ(out.matched(), 3);
  EXPECT_EQ(out.ignored(), 2);
  EXPECT_EQ(out.unmatched(), 1);
  v1::Campaign c = Get(id);
  EXPECT_EQ(c.status(), v1::Campaign::sent);  // rs[3] still awaits one
  EXPECT_EQ(c.stats().delivered(), 1);
  EXPECT_EQ(c.stats().read(), 1);
  EXPECT_EQ(c.stats().failed(), 1);
  EXPECT_EQ(c.stats().sent(), 1);
  ExpectCountersAddUp(c);

  // Another account cannot touch these recipients.
  const std::string other = NewAccount("other");
  ASSERT_TRUE(
      Report({ByMessage(rs[3].provider_message_id(), v1::Recipient::delivered)},
             &out, other)
          .ok());
  EXPECT_EQ(out.unmatched(), 1);

  ASSERT_TRUE(
      Report({ByMessage(rs[3].provider_message_id(), v1::Recipient::delivered)},
             &out)
          .ok());
  EXPECT_EQ(out.matched(), 1);
  v1::Campaign done = WaitFor(id, v1::Campaign::completed);
  EXPECT_EQ(done.stats().delivered(), 2);
  for (const v1::Recipient& r : Recipients(id)) {
    if (r.id() == rs[1].id()) {
      EXPECT_TRUE(r.has_read_at());
      EXPECT_TRUE(r.has_delivered_at());
    }
    if (r.id() == rs[2].id()) {
      EXPECT_EQ(r.error_code(), "30003");
    }
  }
}

TEST_F(ReceiptTest, AReceiptWithoutAnIdOrWithAnotherStatusIsInvalid) {
  v1::ReportDeliveryReceiptsResponse out;
  v1::DeliveryReceipt none;
  none.set_status(v1::Recipient::delivered);
  ErrorDetails d = Details(Report({none}, &out));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_EQ(d.fields.size(), 1u);
  EXPECT_EQ(d.fields[0], "provider_message_id");
  d = Details(Report({ByMessage("x", v1::Recipient::queued)}, &out));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_EQ(d.fields.size(), 1u);
  EXPECT_EQ(d.fields[0], "status");
}

TEST_F(ReceiptTest, TheReceiptTimeoutCompletesASentCampaign) {
  configure_ = [](ServerOptions& o) {
    o.simulator.defaults.delivered_rate = 0;
    o.engine.receipt_timeout = absl::Milliseconds(300);
  };
  Restart();
  const std::string id =
      CampaignWith(3, Sender(v1::Sender::unlimited, "+15550121"));
  ASSERT_TRUE(Start(id).ok());
  v1::Campaign done = WaitFor(id, v1::Campaign::completed);
  EXPECT_EQ(done.stats().sent(), 3);
}

TEST_F(ReceiptTest, InboundStopKeywordsAddOptOutSuppressions) {
  auto ctx = Ctx(kAdminKey);
  v1::ReportInboundMessagesResponse out;
  auto writer = delivery_->ReportInboundMessages(ctx.get(), &out);
  for (const char* text : {" stop ", "Hello there", "UNSUBSCRIBE"}) {
    v1::InboundMessage m;
    m.set_channel(v1::sms);
    m.set_from(std::string(text) == "UNSUBSCRIBE" ? "+12025550199"
                                                  : "(202) 555-0198");
    m.set_default_region("US");
    m.set_text(text);
    ASSERT_TRUE(writer->Write(m));
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.received(), 3);
  EXPECT_EQ(out.opt_outs(), 2);
  v1::CheckSuppressionRequest check;
  check.set_address("+12025550198");
  check.set_channel(v1::sms);
  v1::CheckSuppressionResponse checked;
  ASSERT_TRUE(
      suppressions_->CheckSuppression(Ctx(kAdminKey).get(), check, &checked)
          .ok());
  EXPECT_TRUE(checked.suppressed());
}

using WatchTest = DispatchTest;

TEST_F(WatchTest, FirstSnapshotAtOnceThenUpdatesUntilAFinalState) {
  const std::string id =
      CampaignWith(30, Sender(v1::Sender::tier_1k, "+15550130"));
  auto ctx = Ctx(kAdminKey);
  v1::WatchCampaignRequest req;
  req.set_id(id);
  req.set_max_rate_hz(20);
  auto reader = campaigns_->WatchCampaign(ctx.get(), req);
  v1::CampaignProgress p;
  ASSERT_TRUE(reader->Read(&p));
  EXPECT_EQ(p.campaign_id(), id);
  EXPECT_EQ(p.status(), v1::Campaign::draft);
  EXPECT_EQ(p.stats().total(), 30);
  ASSERT_TRUE(Start(id).ok());
  std::vector<v1::CampaignProgress> seen;
  while (reader->Read(&p)) seen.push_back(p);
  grpc::Status s = reader->Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().status(), v1::Campaign::completed);
  EXPECT_EQ(seen.back().stats().delivered(), 30);
  bool rate = false;
  bool eta = false;
  int64_t settled = 0;
  for (const v1::CampaignProgress& m : seen) {
    const v1::CampaignStats& st = m.stats();
    EXPECT_EQ(st.total(), st.queued() + st.sent() + st.delivered() + st.read() +
                              st.failed() + st.skipped());
    EXPECT_GE(st.total() - st.queued(), settled);
    settled = st.total() - st.queued();
    rate |= m.rate_per_second() > 0;
    eta |= m.has_eta();
  }
  EXPECT_TRUE(rate);
  EXPECT_TRUE(eta);
}

TEST_F(WatchTest, AFinalCampaignGivesOneMessageAndEnds) {
  const std::string sender = Sender(v1::Sender::unlimited, "+15550131");
  v1::Campaign c;
  ASSERT_TRUE(
      campaigns_
          ->CreateCampaign(Ctx(kAdminKey).get(), CampaignRequest(sender), &c)
          .ok());
  v1::CancelCampaignRequest cancel;
  cancel.set_id(c.id());
  ASSERT_TRUE(
      campaigns_->CancelCampaign(Ctx(kAdminKey).get(), cancel, &c).ok());
  auto ctx = Ctx(kAdminKey);
  v1::WatchCampaignRequest req;
  req.set_id(c.id());
  auto reader = campaigns_->WatchCampaign(ctx.get(), req);
  v1::CampaignProgress p;
  ASSERT_TRUE(reader->Read(&p));
  EXPECT_EQ(p.status(), v1::Campaign::cancelled);
  EXPECT_FALSE(reader->Read(&p));
  EXPECT_TRUE(reader->Finish().ok());
}

TEST_F(WatchTest, UnknownIdsAndBadRatesAreRefused) {
  auto ctx = Ctx(kAdminKey);
  v1::WatchCampaignRequest req;
  req.set_id("cmp_nope");
  auto reader = campaigns_->WatchCampaign(ctx.get(), req);
  v1::CampaignProgress p;
  EXPECT_FALSE(reader->Read(&p));
  EXPECT_EQ(Details(reader->Finish()).code, grpc::StatusCode::NOT_FOUND);
  auto ctx2 = Ctx(kAdminKey);
  req.set_max_rate_hz(-1);
  reader = campaigns_->WatchCampaign(ctx2.get(), req);
  EXPECT_FALSE(reader->Read(&p));
  ErrorDetails d = Details(reader->Finish());
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_EQ(d.fields.size(), 1u);
  EXPECT_EQ(d.fields[0], "max_rate_hz");
  auto ctx3 = Ctx("");
  req.set_max_rate_hz(0);
  reader = campaigns_->WatchCampaign(ctx3.get(), req);
  EXPECT_FALSE(reader->Read(&p));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

// The documented range is 0.1 to 50 a second (0: the default); the rest,
// including tiny positive rates, NaN and infinity, is refused.
TEST_F(WatchTest, RatesOutsideTheRangeAreRefused) {
  const std::string sender = Sender(v1::Sender::unlimited, "+15550133");
  v1::Campaign c;
  ASSERT_TRUE(
      campaigns_
          ->CreateCampaign(Ctx(kAdminKey).get(), CampaignRequest(sender), &c)
          .ok());
  for (double hz :
       {0.09, 1e-300, 50.5, 1e9, -0.1, std::numeric_limits<double>::quiet_NaN(),
        std::numeric_limits<double>::infinity()}) {
    auto ctx = Ctx(kAdminKey);
    v1::WatchCampaignRequest req;
    req.set_id(c.id());
    req.set_max_rate_hz(hz);
    auto reader = campaigns_->WatchCampaign(ctx.get(), req);
    v1::CampaignProgress p;
    EXPECT_FALSE(reader->Read(&p)) << hz;
    ErrorDetails d = Details(reader->Finish());
    EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT) << hz;
    EXPECT_EQ(d.fields, std::vector<std::string>{"max_rate_hz"}) << hz;
  }
  for (double hz : {0.0, 0.1, 50.0}) {
    auto ctx = Ctx(kAdminKey);
    v1::WatchCampaignRequest req;
    req.set_id(c.id());
    req.set_max_rate_hz(hz);
    auto reader = campaigns_->WatchCampaign(ctx.get(), req);
    v1::CampaignProgress p;
    ASSERT_TRUE(reader->Read(&p)) << hz;
    EXPECT_EQ(p.status(), v1::Campaign::draft);
    ctx->TryCancel();
  }
}

// At the slowest rate a stream may wait 10 s between messages; a final
// state does not wait. The reference event is the rate limit's next slot:
// the final message must come before it (the call's deadline, well before
// 10 s after the first message, stands for it).
TEST_F(WatchTest, TheFinalStateIsSentAtOnceWhateverTheRate) {
  const std::string sender = Sender(v1::Sender::unlimited, "+15550134");
  v1::Campaign c;
  ASSERT_TRUE(
      campaigns_
          ->CreateCampaign(Ctx(kAdminKey).get(), CampaignRequest(sender), &c)
          .ok());
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", std::string("Bearer ") + kAdminKey);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(7));
  v1::WatchCampaignRequest req;
  req.set_id(c.id());
  req.set_max_rate_hz(0.1);
  auto reader = campaigns_->WatchCampaign(&ctx, req);
  v1::CampaignProgress p;
  ASSERT_TRUE(reader->Read(&p));
  EXPECT_EQ(p.status(), v1::Campaign::draft);
  v1::CancelCampaignRequest cancel;
  cancel.set_id(c.id());
  ASSERT_TRUE(
      campaigns_->CancelCampaign(Ctx(kAdminKey).get(), cancel, &c).ok());
  ASSERT_TRUE(reader->Read(&p)) << reader->Finish().error_message();
  EXPECT_EQ(p.status(), v1::Campaign::cancelled);
  EXPECT_FALSE(reader->Read(&p));
  grpc::Status s = reader->Finish();
  EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
}

// Revoking a key ends its open streams UNAUTHENTICATED, whether the stream
// is idle or waiting out its rate limit; other keys' streams go on.
TEST_F(WatchTest, RevokingTheKeyEndsItsStreams) {
  v1::Campaign c;
  c.set_id(CampaignWith(2, Sender(v1::Sender::unlimited, "+15550135")));
  {
    // Scheduled an hour ahead: starting it is a news that is not final.
    v1::UpdateCampaignRequest update;
    update.set_id(c.id());
    update.mutable_schedule_at()->set_seconds(
        absl::ToUnixSeconds(absl::Now() + absl::Hours(1)));
    update.mutable_update_mask()->add_paths("schedule_at");
    grpc::Status s =
        campaigns_->UpdateCampaign(Ctx(kAdminKey).get(), update, &c);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  v1::ApiKey key;
  v1::CreateApiKeyRequest create;
  create.set_name("watcher");
  ASSERT_TRUE(accounts_->CreateApiKey(Ctx(kAdminKey).get(), create, &key).ok());
  // The deadlines only keep a failing test from hanging.
  auto open = [&](const std::string& secret, double hz,
                  std::unique_ptr<grpc::ClientContext>* ctx) {
    *ctx = Ctx(secret);
    (*ctx)->set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(60));
    v1::WatchCampaignRequest req;
    req.set_id(c.id());
    req.set_max_rate_hz(hz);
    auto reader = campaigns_->WatchCampaign(ctx->get(), req);
    v1::CampaignProgress p;
    EXPECT_TRUE(reader->Read(&p));
    return reader;
  };
  std::unique_ptr<grpc::ClientContext> idle_ctx, slow_ctx, other_ctx;
  auto idle = open(key.secret(), 0, &idle_ctx);
  auto slow = open(key.secret(), 0.1, &slow_ctx);
  auto other = open(kAdminKey, 0, &other_ctx);
  // News the slow stream must wait 10 s to send: it waits on its rate
  // limit when the key is revoked. The idle one sends it and is idle again.
  v1::StartCampaignRequest start;
  start.set_id(c.id());
  v1::Campaign started;
  ASSERT_TRUE(
      campaigns_->StartCampaign(Ctx(kAdminKey).get(), start, &started).ok());
  ASSERT_EQ(started.status(), v1::Campaign::scheduled);
  {
    v1::CampaignProgress p;
    ASSERT_TRUE(idle->Read(&p));
    EXPECT_EQ(p.status(), v1::Campaign::scheduled);
  }
  v1::RevokeApiKeyRequest revoke;
  revoke.set_id(key.id());
  v1::ApiKey revoked;
  ASSERT_TRUE(
      accounts_->RevokeApiKey(Ctx(kAdminKey).get(), revoke, &revoked).ok());
  v1::CampaignProgress p;
  for (auto* reader : {idle.get(), slow.get()}) {
    while (reader->Read(&p)) {
    }
    ErrorDetails d = Details(reader->Finish());
    EXPECT_EQ(d.code, grpc::StatusCode::UNAUTHENTICATED);
  }
  // The admin's stream is still open: it sees the cancellation and ends OK.
  v1::CancelCampaignRequest cancel;
  cancel.set_id(c.id());
  ASSERT_TRUE(
      campaigns_->CancelCampaign(Ctx(kAdminKey).get(), cancel, &c).ok());
  v1::Campaign::Status last = v1::Campaign::draft;
  while (other->Read(&p)) last = p.status();
  EXPECT_EQ(last, v1::Campaign::cancelled);
  EXPECT_TRUE(other->Finish().ok());
}

// 1,000 watchers on one campaign, 200 of which never read: the campaign is
// sent completely, every reader sees the end, and once the streams are gone
// the server keeps no state for them.
TEST_F(WatchTest, AThousandWatchersIncludingStalledOnes) {
  const std::string id =
      CampaignWith(2000, Sender(v1::Sender::unlimited, "+15550132"));
  constexpr int kWatchers = 1000;
  constexpr int kStalled = 200;
  struct Watcher {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientAsyncReader<v1::CampaignProgress>> reader;
    v1::CampaignProgress last;
    v1::CampaignProgress msg;
    grpc::Status status;
    bool finished = false;
  };
  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<Watcher>> watchers;
  v1::WatchCampaignRequest req;
  req.set_id(id);
  for (int i = 0; i < kWatchers; ++i) {
    auto w = std::make_unique<Watcher>();
    w->ctx.AddMetadata("authorization", std::string("Bearer ") + kAdminKey);
    // Tags: 2i = started / read, 2i+1 = finished.
    w->reader = campaigns_->AsyncWatchCampaign(
        &w->ctx, req, &cq, reinterpret_cast<void*>(intptr_t{2} * i));
    watchers.push_back(std::move(w));
  }
  ASSERT_TRUE(Start(id).ok());
  int open = kWatchers - kStalled;
  void* tag;
  bool ok;
  while (open > 0 && cq.Next(&tag, &ok)) {
    const intptr_t t = reinterpret_cast<intptr_t>(tag);
    Watcher& w = *watchers[t / 2];
    const bool stalled = t / 2 >= kWatchers - kStalled;
    if (t % 2 == 1) {
      w.finished = true;
      --open;
      continue;
    }
    if (stalled) continue;  // started; never reads
    if (ok) {
      if (w.msg.campaign_id() == id) w.last = w.msg;
      w.reader->Read(&w.msg, tag);
    } else {
      w.reader->Finish(&w.status, reinterpret_cast<void*>(t + 1));
    }
  }
  v1::Campaign done = WaitFor(id, v1::Campaign::completed);
  EXPECT_EQ(done.stats().delivered(), 2000);
  for (int i = 0; i < kWatchers - kStalled; ++i) {
    EXPECT_TRUE(watchers[i]->status.ok()) << i;
    EXPECT_EQ(watchers[i]->last.status(), v1::Campaign::completed) << i;
  }
  for (int i = kWatchers - kStalled; i < kWatchers; ++i) {
    watchers[i]->ctx.TryCancel();
  }
  // Drain the stalled ones' events (their starts, and cancelled finishes).
  for (int i = kWatchers - kStalled; i < kWatchers; ++i) {
    watchers[i]->reader->Finish(&watchers[i]->status,
                                reinterpret_cast<void*>(intptr_t{2} * i + 1));
  }
  int finishing = kStalled;
  while (finishing > 0 && cq.Next(&tag, &ok)) {
    if (reinterpret_cast<intptr_t>(tag) % 2 == 1) --finishing;
  }
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  // The server lets go of every stream.
  for (int i = 0; i < 500 && server_->progress_campaigns() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(server_->progress_campaigns(), 0u);
}

using PageTokenTest = DispatchTest;

// A page token continues the query that returned it and no other: another
// campaign's list, another filter, another limit, another account, an
// altered token or one of the old format is INVALID_ARGUMENT naming
// page_token.
TEST_F(PageTokenTest, ATokenServesOnlyTheQueryThatIssuedIt) {
  const std::string sender = Sender(v1::Sender::unlimited, "+15550140");
  const std::string a = CampaignWith(3, sender);
  const std::string b = CampaignWith(3, sender);
  v1::ListRecipientsRequest req;
  req.set_campaign_id(a);
  req.set_limit(2);
  v1::ListRecipientsResponse page;
  ASSERT_TRUE(
      campaigns_->ListRecipients(Ctx(kAdminKey).get(), req, &page).ok());
  ASSERT_TRUE(page.has_more());
  const std::string token = page.next_page_token();
  ASSERT_FALSE(token.empty());

  auto list = [&](v1::ListRecipientsRequest r, const std::string& key) {
    v1::ListRecipientsResponse out;
    return Details(campaigns_->ListRecipients(Ctx(key).get(), r, &out));
  };
  auto refused = [&](v1::ListRecipientsRequest r, const std::string& why,
                     const std::string& key = kAdminKey) {
    ErrorDetails d = list(std::move(r), key);
    EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT) << why;
    EXPECT_EQ(d.fields, std::vector<std::string>{"page_token"}) << why;
  };
  // The same query (with or without its limit) takes the next page.
  v1::ListRecipientsRequest next = req;
  next.set_page_token(token);
  v1::ListRecipientsResponse page2;
  ASSERT_TRUE(
      campaigns_->ListRecipients(Ctx(kAdminKey).get(), next, &page2).ok());
  EXPECT_EQ(page2.items_size(), 1);
  next.clear_limit();
  EXPECT_EQ(list(next, kAdminKey).code, grpc::StatusCode::OK);

  v1::ListRecipientsRequest other = next;
  other.set_campaign_id(b);
  refused(other, "another campaign");
  other = next;
  other.set_status(v1::Recipient::queued);
  refused(other, "another filter");
  other = next;
  other.set_limit(1);
  refused(other, "another limit");
  other = next;
  std::string changed = token;
  changed[changed.size() / 2] = changed[changed.size() / 2] == 'A' ? 'B' : 'A';
  other.set_page_token(changed);
  refused(other, "an altered token");
  other.set_page_token("cDE6Mg");  // base64url("p1:2"), the old format
  refused(other, "an old token");

  // Another account's query, though the same request.
  const std::string tenant = NewAccount("tenant");
  v1::ListCampaignsRequest campaigns;
  campaigns.set_limit(1);
  v1::ListCampaignsResponse mine;
  ASSERT_TRUE(
      campaigns_->ListCampaigns(Ctx(kAdminKey).get(), campaigns, &mine).ok());
  ASSERT_TRUE(mine.has_more());
  campaigns.set_page_token(mine.next_page_token());
  v1::ListCampaignsResponse theirs;
  ErrorDetails d =
      Details(campaigns_->ListCampaigns(Ctx(tenant).get(), campaigns, &theirs));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(d.fields, std::vector<std::string>{"page_token"});
}

}  // namespace
}  // namespace campaigns::testing
