// IsValidUtf8 against RFC 3629's edge cases, and against protobuf's own
// check on every 1- and 2-byte string and on random longer ones.
#include "server/domain/utf8.h"

#include <google/protobuf/stubs/common.h>
#include <gtest/gtest.h>

#include <random>
#include <string>

namespace campaigns {
namespace {

bool Protobuf(const std::string& s) {
  return google::protobuf::internal::IsStructurallyValidUTF8(
      s.data(), static_cast<int>(s.size()));
}

TEST(Utf8Test, AcceptsWellFormedText) {
  for (const char* s :
       {"", "plain ascii", "Caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
        "\xed\x9f\xbf", "\xee\x80\x80", "\xf4\x8f\xbf\xbf", "\xef\xbb\xbf"}) {
    EXPECT_TRUE(IsValidUtf8(s)) << s;
  }
}

TEST(Utf8Test, RefusesMalformedText) {
  for (const char* s :
       {"\x80", "\xbf", "\xc0\x80", "\xc1\xbf", "\xc3", "\xc3\x28",
        "\xe0\x80\x80", "\xe0\x9f\xbf", "\xed\xa0\x80", "\xed\xbf\xbf",
        "\xe2\x82", "\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80", "\xff", "\xfe", "ok\xff"}) {
    EXPECT_FALSE(IsValidUtf8(s)) << testing::PrintToString(std::string(s));
  }
}

TEST(Utf8Test, AgreesWithProtobuf) {
  for (int a = 0; a < 256; ++a) {
    std::string one(1, static_cast<char>(a));
    ASSERT_EQ(IsValidUtf8(one), Protobuf(one)) << a;
    for (int b = 0; b < 256; ++b) {
      std::string two = one + static_cast<char>(b);
      ASSERT_EQ(IsValidUtf8(two), Protobuf(two)) << a << " " << b;
    }
  }
  std::mt19937 rng(7);
  const unsigned char pool[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f,
                                0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed,
                                0xef, 0xf0, 0xf4, 0xf5, 0xff};
  for (int i = 0; i < 200000; ++i) {
    std::string s(1 + rng() % 6, '\0');
    for (char& c : s) c = static_cast<char>(pool[rng() % sizeof(pool)]);
    ASSERT_EQ(IsValidUtf8(s), Protobuf(s)) << testing::PrintToString(s);
  }
}

TEST(Utf8Test, SanitizeKeepsValidTextAndMendsTheRest) {
  EXPECT_EQ(SanitizeUtf8("plain"), "plain");
  EXPECT_EQ(SanitizeUtf8("h\xC3\xA9 \xF0\x9F\x98\x80"),
            "h\xC3\xA9 \xF0\x9F\x98\x80");
  EXPECT_EQ(SanitizeUtf8(std::string("a\0b", 3)), "ab");
  EXPECT_EQ(SanitizeUtf8("a\xFF"
                         "b"),
            "a\xEF\xBF\xBD"
            "b");
  // A truncated sequence: each of its bytes is replaced.
  EXPECT_EQ(SanitizeUtf8("\xE2\x82"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  // A surrogate's encoding is not UTF-8.
  EXPECT_EQ(SanitizeUtf8("\xED\xA0\x80"),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  for (const char* bad : {"\xC0\xAF", "\xF5\x80\x80\x80", "x\x80y"}) {
    EXPECT_TRUE(IsValidUtf8(SanitizeUtf8(bad))) << bad;
  }
}

TEST(Utf8Test, PrefixCutsBackToAWholeCharacter) {
  EXPECT_EQ(Utf8Prefix("short", 80), "short");
  EXPECT_EQ(Utf8Prefix("abcdef", 3), "abc");
  // "a" + U+00E9 (2 bytes) + U+1F600 (4 bytes): no cut inside either.
  const std::string text = "a\xC3\xA9\xF0\x9F\x98\x80";
  EXPECT_EQ(Utf8Prefix(text, 2), "a");
  EXPECT_EQ(Utf8Prefix(text, 3), "a\xC3\xA9");
  EXPECT_EQ(Utf8Prefix(text, 6), "a\xC3\xA9");
  EXPECT_EQ(Utf8Prefix(text, 7), text);
  EXPECT_EQ(Utf8Prefix(text, 0), "");
}

TEST(Utf8Test, MendInPlaceIsSanitize) {
  for (const std::string& text :
       {std::string("plain"), std::string("h\xC3\xA9"), std::string("a\0b", 3),
        std::string("a\xFF"), std::string("\xE2\x82"), std::string()}) {
    std::string mended = text;
    MendUtf8(&mended);
    EXPECT_EQ(mended, SanitizeUtf8(text)) << testing::PrintToString(text);
  }
}

}  // namespace
}  // namespace campaigns
