#include "server/log/log.h"

#include <gtest/gtest.h>

#include "absl/time/civil_time.h"
#include "nlohmann/json.hpp"

namespace campaigns::logging {
namespace {

const absl::Time kAt =
    absl::FromCivil(absl::CivilSecond(2026, 12, 1, 20, 31, 2),
                    absl::UTCTimeZone()) +
    absl::Milliseconds(123);

TEST(LogFormatTest, JsonIsOneObjectWithTsLevelMsgAndFields) {
  const std::string line =
      FormatLine(Format::kJson, Level::kError, kAt, "storing outcomes failed",
                 {{"campaign_id", "cmp_1"},
                  {"messages", int64_t{50}},
                  {"error", absl::UnavailableError("database is busy")}});
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j["ts"], "2026-12-01T20:31:02.123Z");
  EXPECT_EQ(j["level"], "error");
  EXPECT_EQ(j["msg"], "storing outcomes failed");
  EXPECT_EQ(j["campaign_id"], "cmp_1");
  EXPECT_EQ(j["messages"], 50);
  EXPECT_EQ(j["error"], "UNAVAILABLE: database is busy");
}

TEST(LogFormatTest, HostileBytesCannotBreakOrForgeALine) {
  const std::string evil =
      "a\"b\\c\nd\r{\"level\":\"critical\"}\x01\xff\xc3(\xe2\x82\xac";
  for (Format f : {Format::kJson, Format::kText}) {
    const std::string line =
        FormatLine(f, Level::kWarn, kAt, evil, {{"error", evil}});
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
    EXPECT_EQ(line.find('\r'), std::string::npos) << line;
    EXPECT_EQ(line.find('\x01'), std::string::npos) << line;
    if (f == Format::kJson) {
      const nlohmann::json j = nlohmann::json::parse(line);  // valid UTF-8
      EXPECT_EQ(j["level"], "warn");
      const std::string msg = j["msg"];
      EXPECT_EQ(msg.substr(0, 4), "a\"b\\");
      // The invalid bytes became U+FFFD; the valid euro sign stayed.
      EXPECT_NE(msg.find("\xEF\xBF\xBD"), std::string::npos);
      EXPECT_NE(msg.find("\xe2\x82\xac"), std::string::npos);
    }
  }
}

TEST(LogFormatTest, TextIsTimeLevelMessageThenKeyValues) {
  EXPECT_EQ(FormatLine(Format::kText, Level::kInfo, kAt, "provider ok",
                       {{"provider", "meta"},
                        {"error", "two words"},
                        {"empty", ""},
                        {"n", 3}}),
            "2026-12-01T20:31:02.123Z info provider ok provider=meta "
            "error=\"two words\" empty=\"\" n=3");
}

TEST(LogFormatTest, ParsesFlagValues) {
  EXPECT_EQ(*ParseFormat("json"), Format::kJson);
  EXPECT_EQ(*ParseFormat("TEXT"), Format::kText);
  EXPECT_EQ(ParseFormat("xml").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*ParseLevel("warning"), Level::kWarn);
  EXPECT_EQ(*ParseLevel("critical"), Level::kCritical);
  EXPECT_FALSE(ParseLevel("loud").ok());
}

TEST(MaskAddressTest, KeepsEnoughToTellApartNotToContact) {
  EXPECT_EQ(MaskAddress("+14155552323"), "+1415*****23");
  EXPECT_EQ(MaskAddress("jane@example.com"), "j***@example.com");
  EXPECT_EQ(MaskAddress("j@example.com"), "*@example.com");
  EXPECT_EQ(MaskAddress("123456789"), "12*****89");
  EXPECT_EQ(MaskAddress("C0123"), "C0*23");
  EXPECT_EQ(MaskAddress("abcd"), "****");
  EXPECT_EQ(MaskAddress(""), "");
  for (const char* a : {"+14155552323", "jane@example.com", "123456789"}) {
    EXPECT_EQ(MaskAddress(a).size(), std::string(a).size());
  }
}

TEST(RateLimitedTest, AllowsABurstThenCountsWhatItDropped) {
  RateLimited limit(3, absl::Hours(1));
  int64_t suppressed = -1;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(limit.Allow(&suppressed));
    EXPECT_EQ(suppressed, 0);
  }
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(limit.Allow(&suppressed));
  RateLimited fast(1, absl::ZeroDuration());  // every call a new window
  ASSERT_TRUE(fast.Allow(&suppressed));
  ASSERT_TRUE(fast.Allow(&suppressed));
  EXPECT_EQ(suppressed, 0);
}

}  // namespace
}  // namespace campaigns::logging
