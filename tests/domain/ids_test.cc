// Tests of server/domain/ids.h: id shape, alphabet, uniqueness and the
// SHA-256 hex digest.
#include "server/domain/ids.h"

#include <string>
#include <unordered_set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace campaigns {
namespace {

using ::testing::MatchesRegex;
using ::testing::StartsWith;

TEST(NewIdTest, HasPrefixAndDefaultLength) {
  for (absl::string_view prefix :
       {kCampaignPrefix, kRecipientPrefix, kTemplatePrefix, kSenderPrefix,
        kContactPrefix, kContactListPrefix, kApiKeyPrefix, kAccountPrefix}) {
    std::string id = NewId(prefix);
    EXPECT_THAT(id, StartsWith(std::string(prefix)));
    EXPECT_EQ(id.size(), prefix.size() + 22) << id;
  }
}

TEST(NewIdTest, HonoursLength) {
  EXPECT_EQ(NewId("x_", 1).size(), 3u);
  EXPECT_EQ(NewId("x_", 100).size(), 102u);
  EXPECT_EQ(NewId("x_", 0), "x_");
}

TEST(NewIdTest, UsesOnlyUrlSafeAlphanumerics) {
  for (int i = 0; i < 200; ++i) {
    EXPECT_THAT(NewId("cmp_", 64), MatchesRegex("cmp_[0-9A-Za-z]{64}"));
  }
}

TEST(NewIdTest, TenThousandIdsAreUnique) {
  std::unordered_set<std::string> seen;
  for (int i = 0; i < 10000; ++i) {
    EXPECT_TRUE(seen.insert(NewId(kCampaignPrefix)).second);
  }
  EXPECT_EQ(seen.size(), 10000u);
}

TEST(NewIdTest, UsesTheWholeAlphabet) {
  // 62 symbols; 2000 * 22 draws leave a missing symbol essentially
  // impossible for a uniform generator.
  std::unordered_set<char> chars;
  for (int i = 0; i < 2000; ++i) {
    std::string id = NewId("", 22);
    chars.insert(id.begin(), id.end());
  }
  EXPECT_EQ(chars.size(), 62u);
}

TEST(NewSecretTest, HasSecretPrefixAnd40Characters) {
  std::string secret = NewSecret();
  EXPECT_THAT(secret, MatchesRegex("ck_[0-9A-Za-z]{40}"));
  EXPECT_NE(NewSecret(), secret);
}

TEST(Sha256HexTest, KnownVectors) {
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256HexTest, LowercaseHexOf64Characters) {
  EXPECT_THAT(Sha256Hex(NewSecret()), MatchesRegex("[0-9a-f]{64}"));
}

TEST(Sha256HexTest, HashesEmbeddedNulBytes) {
  EXPECT_NE(Sha256Hex(absl::string_view("a\0b", 3)), Sha256Hex("a"));
}

}  // namespace
}  // namespace campaigns
