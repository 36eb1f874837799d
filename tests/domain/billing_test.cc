#include "server/domain/billing.h"

#include <gtest/gtest.h>

#include <limits>

#include "server/domain/errors.h"
#include "server/domain/render.h"

namespace campaigns {
namespace {

TEST(NormalizePricesTest, SortsUppercasesAndKeepsValidTables) {
  absl::StatusOr<std::vector<Price>> p = NormalizePrices(
      {Price{Channel::kSms, "us", 40000}, Price{Channel::kSms, "", 50000},
       Price{Channel::kUnspecified, "", 1}});
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->size(), 3u);
  EXPECT_EQ((*p)[0].channel, Channel::kUnspecified);
  EXPECT_EQ((*p)[1].country, "");
  EXPECT_EQ((*p)[2].country, "US");
  EXPECT_TRUE(NormalizePrices({}).ok());
}

TEST(NormalizePricesTest, BadEntriesNameTheirField) {
  struct Case {
    std::vector<Price> prices;
    std::string field;
  };
  const Case cases[] = {
      {{Price{Channel::kSms, "", -1}}, "prices[0].amount"},
      {{Price{Channel::kSms, "", kMaxUnitPrice + 1}}, "prices[0].amount"},
      {{Price{Channel::kSms, "", 1}, Price{Channel::kSms, "XX", 1}},
       "prices[1].country"},
      {{Price{Channel::kUnspecified, "US", 1}}, "prices[0].country"},
      {{Price{Channel::kSms, "US", 1}, Price{Channel::kSms, "us", 2}},
       "prices[1].country"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<Price>> p = NormalizePrices(c.prices);
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    ASSERT_FALSE(errors::FieldViolationsOf(p.status()).empty());
    EXPECT_EQ(errors::FieldViolationsOf(p.status())[0].field, c.field)
        << p.status();
  }
}

TEST(ChannelPricesTest, CountryThenChannelDefaultThenAccountDefault) {
  const std::vector<Price> table = {
      Price{Channel::kUnspecified, "", 5}, Price{Channel::kSms, "", 50},
      Price{Channel::kSms, "US", 40}, Price{Channel::kWhatsapp, "DE", 90}};
  ChannelPrices sms = ChannelPrices::For(table, Channel::kSms);
  EXPECT_EQ(sms.UnitPrice("US"), 40);
  EXPECT_EQ(sms.UnitPrice("FR"), 50);
  EXPECT_EQ(sms.UnitPrice(""), 50);
  ChannelPrices wa = ChannelPrices::For(table, Channel::kWhatsapp);
  EXPECT_EQ(wa.UnitPrice("DE"), 90);
  EXPECT_EQ(wa.UnitPrice("US"), 5);
  ChannelPrices email = ChannelPrices::For(table, Channel::kEmail);
  EXPECT_EQ(email.UnitPrice(""), 5);
  EXPECT_FALSE(email.free());
  // A round trip through the text a campaign keeps.
  ChannelPrices again = ChannelPrices::Parse(sms.Serialize());
  EXPECT_EQ(again.UnitPrice("US"), 40);
  EXPECT_EQ(again.UnitPrice("FR"), 50);
  ChannelPrices no_default = ChannelPrices::Parse(wa.Serialize());
  EXPECT_EQ(no_default.UnitPrice("DE"), 90);
}

TEST(ChannelPricesTest, NoPricesMeansFree) {
  EXPECT_TRUE(ChannelPrices::For({}, Channel::kSms).free());
  EXPECT_EQ(ChannelPrices::For({}, Channel::kSms).Serialize(), "");
  EXPECT_TRUE(ChannelPrices::Parse("").free());
  // Only another channel priced: this one is free.
  EXPECT_TRUE(ChannelPrices::For({Price{Channel::kEmail, "", 1}}, Channel::kSms)
                  .free());
  // A price of zero is a price (sending is free, but billed).
  EXPECT_FALSE(
      ChannelPrices::For({Price{Channel::kSms, "", 0}}, Channel::kSms).free());
}

TEST(BillableUnitsTest, SmsSegmentsOfTheRenderedMessage) {
  const MessageTemplate t = MessageTemplate::Parse("Hi {{name}}", {});
  EXPECT_EQ(BillableUnits(Channel::kSms, t, {{"name", "Ann"}}), 1);
  // GSM-7: 160 septets in one segment, 153 per part beyond.
  EXPECT_EQ(BillableUnits(Channel::kSms, t, {{"name", std::string(157, 'a')}}),
            1);
  EXPECT_EQ(BillableUnits(Channel::kSms, t, {{"name", std::string(158, 'a')}}),
            2);
  EXPECT_EQ(BillableUnits(Channel::kSms, t, {{"name", std::string(303, 'a')}}),
            2);
  EXPECT_EQ(BillableUnits(Channel::kSms, t, {{"name", std::string(304, 'a')}}),
            3);
  // Extension-table characters take two septets.
  EXPECT_EQ(BillableUnits(Channel::kSms, t,
                          {{"name", std::string(156, 'a') + "\xe2\x82\xac"}}),
            2);  // 3 + 156 + 2 (euro sign) = 161
  // UCS-2: 70 units in one segment, 67 per part beyond.
  EXPECT_EQ(BillableUnits(Channel::kSms, t,
                          {{"name", std::string(66, 'a') + "\xc5\x82"}}),
            1);  // 70
  EXPECT_EQ(BillableUnits(Channel::kSms, t,
                          {{"name", std::string(67, 'a') + "\xc5\x82"}}),
            2);  // 71
  // A recipient lacking a variable is skipped, not sent: nothing to pay.
  EXPECT_EQ(BillableUnits(Channel::kSms, t, {}), 0);
}

TEST(BillableUnitsTest, OtherChannelsCountMessages) {
  const MessageTemplate t =
      MessageTemplate::Parse(std::string(500, 'x') + "{{name}}", {});
  EXPECT_EQ(BillableUnits(Channel::kWhatsapp, t, {{"name", "Ann"}}), 1);
  EXPECT_EQ(BillableUnits(Channel::kEmail, t, {{"name", "Ann"}}), 1);
  EXPECT_EQ(BillableUnits(Channel::kEmail, t, {}), 0);
}

TEST(MulAddTest, DetectsOverflow) {
  EXPECT_EQ(*MulAdd(3, 4, 5), 17);
  EXPECT_FALSE(MulAdd(std::numeric_limits<int64_t>::max(), 2, 0).ok());
  EXPECT_FALSE(MulAdd(1, 1, std::numeric_limits<int64_t>::max()).ok());
}

}  // namespace
}  // namespace campaigns
