#include "server/domain/recipient_ids.h"

#include <set>

#include "gtest/gtest.h"

namespace campaigns {
namespace {

RecipientIdCodec Codec(const char* key = "00112233445566778899aabbccddeeff") {
  absl::StatusOr<RecipientIdCodec> codec = RecipientIdCodec::FromHexKey(key);
  EXPECT_TRUE(codec.ok()) << codec.status();
  return *codec;
}

TEST(RecipientIdsTest, RoundTripsAndLooksRandom) {
  RecipientIdCodec codec = Codec();
  std::set<std::string> seen;
  for (int64_t seq : {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{1000000},
                      int64_t{1} << 40, INT64_MAX}) {
    const std::string id = codec.Encode(seq);
    EXPECT_EQ(id.size(), 15u) << id;
    EXPECT_EQ(id.substr(0, 4), "rcp_");
    EXPECT_EQ(codec.Decode(id), seq) << id;
    EXPECT_TRUE(seen.insert(id).second) << id;
  }
  // Neighbouring numbers share no visible structure.
  EXPECT_NE(codec.Encode(1).substr(4, 6), codec.Encode(2).substr(4, 6));
}

TEST(RecipientIdsTest, KeyChangesEveryId) {
  RecipientIdCodec a = Codec();
  RecipientIdCodec b = Codec("ffeeddccbbaa99887766554433221100");
  EXPECT_NE(a.Encode(7), b.Encode(7));
  EXPECT_NE(b.Decode(a.Encode(7)), std::optional<int64_t>(7));
}

TEST(RecipientIdsTest, RefusesMalformedIds) {
  RecipientIdCodec codec = Codec();
  const std::string good = codec.Encode(99);
  EXPECT_EQ(codec.Decode(""), std::nullopt);
  EXPECT_EQ(codec.Decode("rcp_"), std::nullopt);
  EXPECT_EQ(codec.Decode(good.substr(0, 14)), std::nullopt);
  EXPECT_EQ(codec.Decode(good + "0"), std::nullopt);
  EXPECT_EQ(codec.Decode("cmp_" + good.substr(4)), std::nullopt);
  EXPECT_EQ(codec.Decode("rcp_0000000000-"), std::nullopt);
  EXPECT_EQ(codec.Decode("rcp_zzzzzzzzzzz"), std::nullopt);  // > 2^64
}

TEST(RecipientIdsTest, RefusesBadKeys) {
  EXPECT_FALSE(RecipientIdCodec::FromHexKey("").ok());
  EXPECT_FALSE(RecipientIdCodec::FromHexKey("0011").ok());
  EXPECT_FALSE(
      RecipientIdCodec::FromHexKey("g0112233445566778899aabbccddeeff").ok());
}

}  // namespace
}  // namespace campaigns
