#include "server/domain/sms_segments.h"

#include <gtest/gtest.h>

#include <string>

namespace campaigns {
namespace {

std::string Repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

struct SegmentCase {
  const char* name;
  std::string text;
  SmsEncoding encoding;
  int64_t units;
  int64_t segments;
};

class SmsSegmentsTest : public ::testing::TestWithParam<SegmentCase> {};

TEST_P(SmsSegmentsTest, CountsLikeACarrier) {
  const SegmentCase& c = GetParam();
  SmsSegments s = CountSmsSegments(c.text);
  EXPECT_EQ(s.encoding, c.encoding) << c.name;
  EXPECT_EQ(s.units, c.units) << c.name;
  EXPECT_EQ(s.segments, c.segments) << c.name;
}

INSTANTIATE_TEST_SUITE_P(
    Texts, SmsSegmentsTest,
    ::testing::Values(
        SegmentCase{"empty", "", SmsEncoding::kGsm7, 0, 1},
        SegmentCase{"short", "Hi Ann, your code is 1234", SmsEncoding::kGsm7,
                    25, 1},
        SegmentCase{"gsm 160", Repeat("a", 160), SmsEncoding::kGsm7, 160, 1},
        SegmentCase{"gsm 161", Repeat("a", 161), SmsEncoding::kGsm7, 161, 2},
        SegmentCase{"gsm 306", Repeat("a", 306), SmsEncoding::kGsm7, 306, 2},
        SegmentCase{"gsm 307", Repeat("a", 307), SmsEncoding::kGsm7, 307, 3},
        SegmentCase{"gsm accents", "Ça coûte 5£? Ñandú é ü", SmsEncoding::kUcs2,
                    22, 1},  // û is not in GSM-7
        SegmentCase{"gsm letters", "Åsa, Øl & Ñoño: ¿già?", SmsEncoding::kGsm7,
                    21, 1},
        SegmentCase{"extension counts twice", "Price: 5€ [x] {y} ~z|^\\",
                    SmsEncoding::kGsm7, 32, 1},
        SegmentCase{"extension at 160", Repeat("a", 158) + "€",
                    SmsEncoding::kGsm7, 160, 1},
        SegmentCase{"extension past 160", Repeat("a", 159) + "€",
                    SmsEncoding::kGsm7, 161, 2},
        // 152 septets then an escaped character: it may not straddle the
        // first part's end, so it starts the second.
        SegmentCase{"escape never split",
                    Repeat("a", 152) + "€" + Repeat("a", 10),
                    SmsEncoding::kGsm7, 164, 2},
        SegmentCase{"escape split forces a third",
                    Repeat("a", 152) + "€" + Repeat("a", 152),
                    SmsEncoding::kGsm7, 306, 3},
        SegmentCase{"ucs2 70", Repeat("ж", 70), SmsEncoding::kUcs2, 70, 1},
        SegmentCase{"ucs2 71", Repeat("ж", 71), SmsEncoding::kUcs2, 71, 2},
        SegmentCase{"ucs2 134", Repeat("ж", 134), SmsEncoding::kUcs2, 134, 2},
        SegmentCase{"ucs2 135", Repeat("ж", 135), SmsEncoding::kUcs2, 135, 3},
        SegmentCase{"one emoji makes it ucs2", Repeat("a", 69) + "😀",
                    SmsEncoding::kUcs2, 71, 2},
        // A surrogate pair never straddles two parts.
        SegmentCase{"pair never split", Repeat("a", 66) + "😀" + Repeat("a", 10),
                    SmsEncoding::kUcs2, 78, 2},
        SegmentCase{"invalid utf8", std::string("ab\xff"), SmsEncoding::kUcs2,
                    3, 1}));

}  // namespace
}  // namespace campaigns
