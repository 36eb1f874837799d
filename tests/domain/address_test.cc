#include "server/domain/address.h"

#include <gtest/gtest.h>

#include "server/domain/errors.h"

namespace campaigns {
namespace {

struct Case {
  const char* name;
  Channel channel;
  const char* raw;
  const char* region;
  const char* want;  // nullptr = INVALID_ARGUMENT on field "address"
};

class NormalizeAddressTest : public ::testing::TestWithParam<Case> {};

TEST_P(NormalizeAddressTest, Normalizes) {
  const Case& c = GetParam();
  absl::StatusOr<std::string> got =
      NormalizeAddress(c.channel, c.raw, c.region);
  if (c.want == nullptr) {
    ASSERT_FALSE(got.ok()) << *got;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
    ASSERT_EQ(errors::FieldViolationsOf(got.status()).size(), 1u);
    EXPECT_EQ(errors::FieldViolationsOf(got.status())[0].field, "address");
  } else {
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, c.want);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, NormalizeAddressTest,
    ::testing::Values(
        Case{"UsNational", Channel::kSms, "(202) 555-0143", "US",
             "+12025550143"},
        Case{"UsLowercaseRegion", Channel::kSms, "202-555-0143", "us",
             "+12025550143"},
        Case{"E164Passthrough", Channel::kWhatsapp, "+44 20 7946 0018", "",
             "+442079460018"},
        Case{"GermanMobile", Channel::kRcs, "0151 23456789", "DE",
             "+4915123456789"},
        Case{"IndiaWithPlus", Channel::kSms, "+91 98765 43210", "US",
             "+919876543210"},
        Case{"NoCountryNoRegion", Channel::kSms, "2025550143", "", nullptr},
        Case{"TooShort", Channel::kSms, "+1 202", "", nullptr},
        Case{"Letters", Channel::kSms, "call me", "US", nullptr},
        Case{"InvalidForRegion", Channel::kSms, "+1 123 456 7890", "", nullptr},
        Case{"Empty", Channel::kSms, "   ", "US", nullptr},
        Case{"EmailLowercased", Channel::kEmail, " Ann.Lee@Example.COM ", "",
             "ann.lee@example.com"},
        Case{"EmailPlus", Channel::kEmail, "a+tag@mail.example.org", "",
             "a+tag@mail.example.org"},
        Case{"EmailNoAt", Channel::kEmail, "ann.example.com", "", nullptr},
        Case{"EmailNoDot", Channel::kEmail, "ann@localhost", "", nullptr},
        Case{"EmailDoubleDot", Channel::kEmail, "a..b@example.com", "",
             nullptr},
        Case{"EmailSpace", Channel::kEmail, "a b@example.com", "", nullptr},
        Case{"EmailBadDomain", Channel::kEmail, "a@-example.com", "", nullptr},
        Case{"TelegramChatId", Channel::kTelegram, "123456789", "",
             "123456789"},
        Case{"TelegramGroupId", Channel::kTelegram, "-1001234567890", "",
             "-1001234567890"},
        Case{"TelegramUsername", Channel::kTelegram, "@Campaign_Bot", "",
             "@campaign_bot"},
        Case{"TelegramShortName", Channel::kTelegram, "@abc", "", nullptr},
        Case{"TelegramZero", Channel::kTelegram, "0", "", nullptr},
        Case{"SlackMember", Channel::kSlack, "U024BE7LH", "", "U024BE7LH"},
        Case{"SlackChannelLower", Channel::kSlack, "c024be7lh", "",
             "C024BE7LH"},
        Case{"SlackBad", Channel::kSlack, "general", "", nullptr},
        Case{"AnyChannelEmail", Channel::kUnspecified, "Bob@Example.com", "",
             "bob@example.com"},
        Case{"AnyChannelPhone", Channel::kUnspecified, "202 555 0143", "US",
             "+12025550143"},
        Case{"AnyChannelTelegram", Channel::kUnspecified, "@some_user", "",
             "@some_user"},
        Case{"AnyChannelGarbage", Channel::kUnspecified, "???", "", nullptr}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST(NormalizeAddressRegionTest, UnknownDefaultRegionNamesTheField) {
  absl::StatusOr<std::string> got =
      NormalizeAddress(Channel::kSms, "2025550143", "XX");
  ASSERT_FALSE(got.ok());
  ASSERT_EQ(errors::FieldViolationsOf(got.status()).size(), 1u);
  EXPECT_EQ(errors::FieldViolationsOf(got.status())[0].field, "default_region");
}

TEST(RegionTest, KnownRegionsAndRegionOfNumbers) {
  EXPECT_TRUE(IsKnownRegion("US"));
  EXPECT_TRUE(IsKnownRegion("gb"));
  EXPECT_FALSE(IsKnownRegion("XX"));
  EXPECT_FALSE(IsKnownRegion(""));
  EXPECT_EQ(RegionOfPhoneNumber("+12025550143"), "US");
  EXPECT_EQ(RegionOfPhoneNumber("+442079460018"), "GB");
  EXPECT_EQ(RegionOfPhoneNumber("+4915123456789"), "DE");
  EXPECT_EQ(RegionOfPhoneNumber("not a number"), "");
}

}  // namespace
}  // namespace campaigns
