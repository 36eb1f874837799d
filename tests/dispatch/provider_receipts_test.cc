// Receipts and opt-outs that arrive through a provider's webhook: matched by
// provider and provider message id, never by another provider's ids or by a
// recipient id alone.
#include <SQLiteCpp/Database.h>
#include <gtest/gtest.h>

#include "server/dispatch/engine.h"
#include "tests/dispatch/engine_fixture.h"

namespace campaigns::dispatch {
namespace {

using storage::test_util::AwaitResult;
using testing::EngineTest;
using testing::RecordingProvider;

class ProviderReceiptsTest : public EngineTest {
 protected:
  // A sender sent through provider `provider`.
  std::string NewProviderSender(const std::string& id,
                                const std::string& provider) {
    Sender s;
    s.id = "snd_" + id;
    s.account_id = account_;
    s.sender_id = id;
    s.channel = Channel::kSms;
    s.tier = SenderTier::kUnlimited;
    s.provider = provider;
    s.created_at = s.updated_at = NowMicros();
    auto r = AwaitResult<Sender>(
        [&](Done<Sender> done) { store_->RegisterSender(s, {}, done); });
    EXPECT_TRUE(r.ok()) << r.status();
    return id;
  }

  absl::StatusOr<ReceiptResult> Ingest(const std::string& provider,
                                       std::vector<ReceiptUpdate> receipts) {
    return AwaitResult<ReceiptResult>([&](auto done) {
      engine_->IngestProviderReceipts(provider, receipts, done);
    });
  }
};

ReceiptUpdate Delivered(const std::string& message_id,
                        const std::string& recipient_id = "") {
  ReceiptUpdate u;
  u.provider_message_id = message_id;
  u.recipient_id = recipient_id;
  u.status = RecipientStatus::kDelivered;
  u.occurred_at = absl::Now();
  return u;
}

TEST_F(ProviderReceiptsTest, MatchOnlyTheProvidersOwnMessages) {
  RecordingProvider recorder;  // answers pm_<recipient id>
  provider_ = &recorder;
  StartEngine();
  const std::string sender = NewProviderSender("+15550501", "hooks");
  Campaign c = NewCampaign(sender, 3);
  ASSERT_TRUE(Await([&](auto done) {
                engine_->Start(account_, c.id, std::nullopt, done);
              }).ok());
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kSent));
  const std::vector<OutgoingMessage> sent = recorder.sent();
  ASSERT_EQ(sent.size(), 3u);

  // Another provider's webhook cannot touch these recipients.
  auto other = Ingest("other", {Delivered("pm_" + sent[0].recipient_id)});
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->matched, 0);
  EXPECT_EQ(other->unmatched, 1);
  // Nor can a recipient id without the vendor's message id.
  auto by_recipient = Ingest("hooks", {Delivered("", sent[0].recipient_id)});
  ASSERT_TRUE(by_recipient.ok());
  EXPECT_EQ(by_recipient->unmatched, 1);

  std::vector<ReceiptUpdate> all;
  for (const OutgoingMessage& m : sent) {
    all.push_back(Delivered("pm_" + m.recipient_id));
  }
  all.push_back(Delivered("pm_unknown"));
  auto mine = Ingest("hooks", all);
  ASSERT_TRUE(mine.ok()) << mine.status();
  EXPECT_EQ(mine->matched, 3);
  EXPECT_EQ(mine->unmatched, 1);
  // The last awaited receipt completes the campaign.
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kCompleted));
  EXPECT_EQ(Get(c.id).stats.delivered, 3);
  // A vendor's retry of the same webhook changes nothing.
  auto again = Ingest("hooks", all);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->matched, 0);
  EXPECT_EQ(again->ignored, 3);
}

TEST_F(ProviderReceiptsTest, OptOutsReachTheAccountsOfTheSenderWrittenTo) {
  StartEngine();
  NewProviderSender("+15550502", "hooks");
  Suppression s;
  s.address = "+14155550123";
  s.channel = Channel::kSms;
  s.reason = SuppressionReason::kOptOut;
  s.note = "inbound \"STOP\"";
  s.created_at = NowMicros();
  auto wrong_provider = AwaitResult<int>([&](auto done) {
    store_->AddProviderSuppression({"other"}, "+15550502", s, done);
  });
  ASSERT_TRUE(wrong_provider.ok());
  EXPECT_EQ(*wrong_provider, 0);
  auto wrong_sender = AwaitResult<int>([&](auto done) {
    store_->AddProviderSuppression({"hooks"}, "+15559999", s, done);
  });
  ASSERT_TRUE(wrong_sender.ok());
  EXPECT_EQ(*wrong_sender, 0);
  auto added = AwaitResult<int>([&](auto done) {
    store_->AddProviderSuppression({"hooks"}, "+15550502", s, done);
  });
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(*added, 1);
  // Through a fallback of "hooks": the senders of "hooks" too.
  auto via_fallback = AwaitResult<int>([&](auto done) {
    store_->AddProviderSuppression({"backup", "hooks"}, "+15550502", s, done);
  });
  ASSERT_TRUE(via_fallback.ok()) << via_fallback.status();
  EXPECT_EQ(*via_fallback, 1);
  auto suppressed = store_->SuppressedAmong(account_, Channel::kSms,
                                            {"+14155550123", "+14155550124"});
  ASSERT_TRUE(suppressed.ok());
  EXPECT_EQ(*suppressed, (std::vector<bool>{true, false}));
}

// Sends odd recipients itself and hands even ones to "backup" (as a
// Failover does once its circuit is open).
class HalfFallbackProvider : public Provider {
 public:
  void Send(std::vector<OutgoingMessage> batch, SendDone done) override {
    std::vector<SendResult> results;
    for (const OutgoingMessage& m : batch) {
      SendResult r;
      r.provider_message_id = "id-" + m.recipient_id;
      if ((m.address.back() - '0') % 2 == 0) r.provider = "backup";
      results.push_back(std::move(r));
    }
    done(std::move(results));
  }
};

TEST_F(ProviderReceiptsTest, RowsNameTheFallbackThatSentAndItsReceiptsMatch) {
  HalfFallbackProvider half;
  provider_ = &half;
  StartEngine();
  const std::string sender = NewProviderSender("+15550503", "hooks");
  Campaign c = NewCampaign(sender, 4);
  ASSERT_TRUE(Await([&](auto done) {
                engine_->Start(account_, c.id, std::nullopt, done);
              }).ok());
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kSent));
  auto rows = store_->ListRecipients(
      account_, c.id, RecipientStatus::kUnspecified, PageRequest{1, 10, 0});
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->items.size(), 4u);
  std::vector<ReceiptUpdate> hooks;
  std::vector<ReceiptUpdate> backup;
  for (const Recipient& r : rows->items) {
    const bool even = (r.address.back() - '0') % 2 == 0;
    EXPECT_EQ(r.provider, even ? "backup" : "hooks") << r.address;
    (even ? backup : hooks).push_back(Delivered(r.provider_message_id));
  }
  // Each provider's webhook matches what it sent, and only that.
  auto crossed = Ingest("hooks", backup);
  ASSERT_TRUE(crossed.ok());
  EXPECT_EQ(crossed->matched, 0);
  EXPECT_EQ(crossed->unmatched, 2);
  auto by_backup = Ingest("backup", backup);
  ASSERT_TRUE(by_backup.ok()) << by_backup.status();
  EXPECT_EQ(by_backup->matched, 2);
  auto by_hooks = Ingest("hooks", hooks);
  ASSERT_TRUE(by_hooks.ok());
  EXPECT_EQ(by_hooks->matched, 2);
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kCompleted));
  const Campaign done = Get(c.id);
  EXPECT_EQ(done.stats.delivered, 4);  // each counted once
}

TEST_F(ProviderReceiptsTest, RowsSentBeforeSchema12MatchBySendersProvider) {
  RecordingProvider recorder;  // answers pm_<recipient id>
  provider_ = &recorder;
  StartEngine();
  const std::string sender = NewProviderSender("+15550504", "hooks");
  Campaign c = NewCampaign(sender, 2);
  ASSERT_TRUE(Await([&](auto done) {
                engine_->Start(account_, c.id, std::nullopt, done);
              }).ok());
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kSent));
  db_->Flush();
  {
    // As an older campaignd left them: no provider recorded.
    SQLite::Database raw(dir_.File("engine.db"), SQLite::OPEN_READWRITE);
    EXPECT_EQ(raw.exec("UPDATE recipients SET provider=''"), 2);
  }
  std::vector<ReceiptUpdate> all;
  for (const OutgoingMessage& m : recorder.sent()) {
    all.push_back(Delivered("pm_" + m.recipient_id));
  }
  auto other = Ingest("backup", all);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->matched, 0);
  auto mine = Ingest("hooks", all);
  ASSERT_TRUE(mine.ok()) << mine.status();
  EXPECT_EQ(mine->matched, 2);
}

// Refuses every message as a vendor does an unsubscribed number (Twilio
// 21610), and has no receipts (as Telegram and Slack).
class RefusingProvider : public Provider {
 public:
  void Send(std::vector<OutgoingMessage> batch, SendDone done) override {
    std::vector<SendResult> results;
    for (const OutgoingMessage& m : batch) {
      SendResult r;
      if (m.address.back() == '0') {  // every tenth: unsubscribed
        r.status = SendStatus::kPermanent;
        r.error_code = "21610";
        r.error_desc = "Attempt to send to unsubscribed recipient";
        r.suppress = "opt_out";
      } else {
        r.provider_message_id = "x" + m.recipient_id;
      }
      results.push_back(std::move(r));
    }
    done(std::move(results));
  }
  bool SendsReceipts() const override { return false; }
};

TEST_F(ProviderReceiptsTest, RefusedAddressesAreSuppressedAndSentIsFinal) {
  RefusingProvider vendor;
  provider_ = &vendor;
  StartEngine();
  const std::string sender = NewProviderSender("+15550503", "chat");
  Campaign c = NewCampaign(sender, 20);
  ASSERT_TRUE(Await([&](auto done) {
                engine_->Start(account_, c.id, std::nullopt, done);
              }).ok());
  // No receipts to wait for: completed as soon as everything is sent.
  ASSERT_TRUE(RunUntilStatus(c.id, CampaignStatus::kCompleted));
  const Campaign done = Get(c.id);
  EXPECT_EQ(done.stats.failed, 2);
  EXPECT_EQ(done.stats.sent, 18);
  EXPECT_LT(*done.completed_at - *done.sent_at, absl::Minutes(1));
  auto suppressed =
      store_->SuppressedAmong(account_, Channel::kSms,
                              {"+12024000000", "+12024000010", "+12024000001"});
  ASSERT_TRUE(suppressed.ok());
  EXPECT_EQ(*suppressed, (std::vector<bool>{true, true, false}));
}

}  // namespace
}  // namespace campaigns::dispatch
