// Tests of server/domain/types.h: canonical names, parsing and tier rates.
#include "server/domain/types.h"

#include <string>

#include "gtest/gtest.h"

namespace campaigns {
namespace {

TEST(TypesTest, ChannelNamesRoundTrip) {
  const char* const kNames[] = {"channel_unspecified",
                                "sms",
                                "whatsapp",
                                "telegram",
                                "email",
                                "slack",
                                "rcs"};
  for (int i = 0; i <= kChannelMax; ++i) {
    Channel c = static_cast<Channel>(i);
    EXPECT_EQ(ChannelName(c), kNames[i]);
    Channel parsed = Channel::kUnspecified;
    ASSERT_TRUE(ParseChannel(kNames[i], &parsed)) << kNames[i];
    EXPECT_EQ(parsed, c);
  }
}

TEST(TypesTest, CampaignStatusNamesRoundTrip) {
  const char* const kNames[] = {"status_unspecified",
                                "draft",
                                "scheduled",
                                "sending",
                                "paused",
                                "sent",
                                "completed",
                                "cancelled",
                                "failed"};
  for (int i = 0; i <= kCampaignStatusMax; ++i) {
    CampaignStatus s = static_cast<CampaignStatus>(i);
    EXPECT_EQ(CampaignStatusName(s), kNames[i]);
    CampaignStatus parsed = CampaignStatus::kUnspecified;
    ASSERT_TRUE(ParseCampaignStatus(kNames[i], &parsed)) << kNames[i];
    EXPECT_EQ(parsed, s);
  }
}

TEST(TypesTest, RecipientStatusNamesRoundTrip) {
  const char* const kNames[] = {"status_unspecified",
                                "queued",
                                "sent",
                                "delivered",
                                "read",
                                "failed",
                                "skipped"};
  for (int i = 0; i <= kRecipientStatusMax; ++i) {
    RecipientStatus s = static_cast<RecipientStatus>(i);
    EXPECT_EQ(RecipientStatusName(s), kNames[i]);
    RecipientStatus parsed = RecipientStatus::kUnspecified;
    ASSERT_TRUE(ParseRecipientStatus(kNames[i], &parsed)) << kNames[i];
    EXPECT_EQ(parsed, s);
  }
}

TEST(TypesTest, TemplateStatusNamesRoundTrip) {
  const char* const kNames[] = {"status_unspecified", "pending", "approved",
                                "rejected"};
  for (int i = 0; i <= kTemplateStatusMax; ++i) {
    TemplateStatus s = static_cast<TemplateStatus>(i);
    EXPECT_EQ(TemplateStatusName(s), kNames[i]);
    TemplateStatus parsed = TemplateStatus::kUnspecified;
    ASSERT_TRUE(ParseTemplateStatus(kNames[i], &parsed)) << kNames[i];
    EXPECT_EQ(parsed, s);
  }
}

TEST(TypesTest, SenderTierNamesRoundTrip) {
  const char* const kNames[] = {"tier_unspecified", "tier_1k", "tier_10k",
                                "tier_100k", "unlimited"};
  for (int i = 0; i <= kSenderTierMax; ++i) {
    SenderTier t = static_cast<SenderTier>(i);
    EXPECT_EQ(SenderTierName(t), kNames[i]);
    SenderTier parsed = SenderTier::kUnspecified;
    ASSERT_TRUE(ParseSenderTier(kNames[i], &parsed)) << kNames[i];
    EXPECT_EQ(parsed, t);
  }
}

TEST(TypesTest, OutOfRangeValuesNameUnknown) {
  EXPECT_EQ(ChannelName(static_cast<Channel>(99)), "unknown");
  EXPECT_EQ(CampaignStatusName(static_cast<CampaignStatus>(99)), "unknown");
  EXPECT_EQ(SenderTierName(static_cast<SenderTier>(-1)), "unknown");
}

TEST(TypesTest, ParseRejectsUnknownAndLeavesOutputUntouched) {
  Channel c = Channel::kEmail;
  EXPECT_FALSE(ParseChannel("SMS", &c));  // names are lowercase only
  EXPECT_FALSE(ParseChannel("", &c));
  EXPECT_FALSE(ParseChannel("fax", &c));
  EXPECT_EQ(c, Channel::kEmail);
  CampaignStatus s = CampaignStatus::kPaused;
  EXPECT_FALSE(ParseCampaignStatus("running", &s));
  EXPECT_EQ(s, CampaignStatus::kPaused);
  RecipientStatus r = RecipientStatus::kRead;
  EXPECT_FALSE(ParseRecipientStatus("bounced", &r));
  EXPECT_EQ(r, RecipientStatus::kRead);
  TemplateStatus t = TemplateStatus::kApproved;
  EXPECT_FALSE(ParseTemplateStatus("draft", &t));
  EXPECT_EQ(t, TemplateStatus::kApproved);
  SenderTier tier = SenderTier::kTier10k;
  EXPECT_FALSE(ParseSenderTier("tier_1m", &tier));
  EXPECT_EQ(tier, SenderTier::kTier10k);
}

TEST(TypesTest, TierRatesOfSeed004) {
  EXPECT_EQ(TierRatePerSecond(SenderTier::kTier1k), 10);
  EXPECT_EQ(TierRatePerSecond(SenderTier::kTier10k), 30);
  EXPECT_EQ(TierRatePerSecond(SenderTier::kTier100k), 80);
  EXPECT_EQ(TierRatePerSecond(SenderTier::kUnlimited), 0);
  EXPECT_EQ(TierRatePerSecond(SenderTier::kUnspecified), 0);
}

TEST(TypesTest, PhoneChannels) {
  EXPECT_TRUE(IsPhoneChannel(Channel::kSms));
  EXPECT_TRUE(IsPhoneChannel(Channel::kWhatsapp));
  EXPECT_TRUE(IsPhoneChannel(Channel::kRcs));
  EXPECT_FALSE(IsPhoneChannel(Channel::kTelegram));
  EXPECT_FALSE(IsPhoneChannel(Channel::kEmail));
  EXPECT_FALSE(IsPhoneChannel(Channel::kSlack));
  EXPECT_FALSE(IsPhoneChannel(Channel::kUnspecified));
}

}  // namespace
}  // namespace campaigns
