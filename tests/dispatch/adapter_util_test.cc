// The pieces every vendor adapter shares: form encoding both ways, secrets
// kept out of texts, clipping vendor texts, and the fan-in's ordering.
#include "server/dispatch/providers/adapter_util.h"

#include <gtest/gtest.h>

namespace campaigns::dispatch {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

TEST(FormTest, EncodesLikeABrowserForm) {
  EXPECT_EQ(FormEncode({{"To", "+14155550100"},
                        {"Body", "Hi Ann & co. 100%=ok ü"},
                        {"a b", ""}}),
            "To=%2B14155550100&Body=Hi+Ann+%26+co.+100%25%3Dok+%C3%BC&a+b=");
  EXPECT_EQ(FormEncode({}), "");
}

TEST(FormTest, DecodesWhatItEncodes) {
  const Fields fields = {{"To", "whatsapp:+14155550100"},
                         {"Body", "Hi Ann & co. 100%=ok ü\n"},
                         {"Empty", ""}};
  auto decoded = FormDecode(FormEncode(fields));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, fields);
}

TEST(FormTest, DecodesPlusPercentAndBareNames) {
  auto decoded = FormDecode("a=1+2&b=%7e%7E&&flag&c=x%3Dy&d=");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(
      *decoded,
      (Fields{
          {"a", "1 2"}, {"b", "~~"}, {"flag", ""}, {"c", "x=y"}, {"d", ""}}));
  EXPECT_TRUE(FormDecode("")->empty());
}

TEST(FormTest, RefusesBadEscapes) {
  for (const char* body : {"a=%", "a=%4", "a=%zz", "%g1=x"}) {
    EXPECT_EQ(FormDecode(body).status().code(),
              absl::StatusCode::kInvalidArgument)
        << body;
  }
}

TEST(RedactTest, ReplacesEverySecret) {
  EXPECT_EQ(
      Redact("POST /bot123:abc/sendMessage failed (123:abc)", {"123:abc", ""}),
      "POST /bot<redacted>/sendMessage failed (<redacted>)");
  EXPECT_EQ(Redact("nothing here", {"", "zz"}), "nothing here");
}

TEST(ClipTest, CutsOnACharacterBoundary) {
  EXPECT_EQ(Clip("short", 10), "short");
  EXPECT_EQ(Clip("abcdef", 3), "abc...");
  // "ü" is two bytes: a cut inside it backs off to before it.
  EXPECT_EQ(Clip("aü", 2), "a...");
}

TEST(NoAnswerTest, MapsTimeoutsAndConnectionFailures) {
  SendResult out;
  HttpResponse answered;
  answered.status = 500;
  EXPECT_FALSE(NoAnswer(answered, &out));

  HttpResponse timed_out;
  timed_out.timed_out = true;
  timed_out.error = "Operation timed out";
  ASSERT_TRUE(NoAnswer(timed_out, &out));
  EXPECT_EQ(out.status, SendStatus::kTransient);
  EXPECT_EQ(out.error_code, "timeout");

  HttpResponse refused;
  refused.error = "Connection refused";
  ASSERT_TRUE(NoAnswer(refused, &out));
  EXPECT_EQ(out.error_code, "connection_failed");
  EXPECT_EQ(out.error_desc, "Connection refused");
}

TEST(JsonTest, ReadsMembersWithoutThrowing) {
  nlohmann::json j;
  EXPECT_FALSE(ParseJsonObject("[1]", &j));
  EXPECT_FALSE(ParseJsonObject("{", &j));
  ASSERT_TRUE(ParseJsonObject(R"({"s":"x","i":7,"n":"42","f":1.5})", &j));
  EXPECT_EQ(JsonString(j, "s"), "x");
  EXPECT_EQ(JsonString(j, "i"), "");
  int64_t v = 0;
  EXPECT_TRUE(JsonInt(j, "i", &v));
  EXPECT_EQ(v, 7);
  EXPECT_TRUE(JsonInt(j, "n", &v));
  EXPECT_EQ(v, 42);
  EXPECT_FALSE(JsonInt(j, "f", &v));
  EXPECT_FALSE(JsonInt(j, "s", &v));
  EXPECT_FALSE(JsonInt(j, "missing", &v));
}

}  // namespace
}  // namespace campaigns::dispatch
