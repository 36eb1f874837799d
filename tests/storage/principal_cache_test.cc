// Tests of storage/principal_cache.h: hits, revocation (also against a
// lookup that raced it), the size bound and the age bound.
#include "storage/principal_cache.h"

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/domain/model.h"

namespace campaigns::storage {
namespace {

Principal P(const std::string& key_id, const std::string& account = "acct_a",
            bool admin = false) {
  Principal p;
  p.key_id = key_id;
  p.account_id = account;
  p.admin = admin;
  return p;
}

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

TEST(PrincipalCacheTest, MissThenHitAfterPut) {
  PrincipalCache cache;
  EXPECT_FALSE(cache.Get("hash_a", kT0).has_value());
  cache.Put("hash_a", P("key_a", "acct_a", true), cache.Generation(), kT0);
  std::optional<Principal> hit = cache.Get("hash_a", kT0);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->key_id, "key_a");
  EXPECT_EQ(hit->account_id, "acct_a");
  EXPECT_TRUE(hit->admin);
  EXPECT_FALSE(cache.Get("hash_b", kT0).has_value());
  EXPECT_EQ(cache.size(), 1u);
}

TEST(PrincipalCacheTest, InvalidateKeyRefusesItAtOnceAndOnlyIt) {
  PrincipalCache cache;
  const uint64_t g = cache.Generation();
  cache.Put("hash_a", P("key_a"), g, kT0);
  cache.Put("hash_b", P("key_b"), g, kT0);
  cache.InvalidateKey("key_a");
  EXPECT_FALSE(cache.Get("hash_a", kT0).has_value());
  EXPECT_TRUE(cache.Get("hash_b", kT0).has_value());
  EXPECT_EQ(cache.size(), 1u);
}

TEST(PrincipalCacheTest, LookupThatReadBeforeARevocationCannotCacheAfterIt) {
  PrincipalCache cache;
  // A lookup reads the generation, then the database (key still valid)...
  const uint64_t before = cache.Generation();
  // ...meanwhile the revocation commits and invalidates...
  cache.InvalidateKey("key_a");
  // ...then the lookup stores what it read: ignored.
  cache.Put("hash_a", P("key_a"), before, kT0);
  EXPECT_FALSE(cache.Get("hash_a", kT0).has_value());
  EXPECT_EQ(cache.size(), 0u);
  // A lookup that began after the invalidation is cached.
  cache.Put("hash_b", P("key_b"), cache.Generation(), kT0);
  EXPECT_TRUE(cache.Get("hash_b", kT0).has_value());
}

TEST(PrincipalCacheTest, InvalidateAllForgetsEveryKey) {
  PrincipalCache cache;
  const uint64_t g = cache.Generation();
  cache.Put("hash_a", P("key_a"), g, kT0);
  cache.Put("hash_b", P("key_b"), g, kT0);
  cache.InvalidateAll();
  EXPECT_EQ(cache.size(), 0u);
  cache.Put("hash_c", P("key_c"), g, kT0);  // an older generation
  EXPECT_FALSE(cache.Get("hash_c", kT0).has_value());
}

TEST(PrincipalCacheTest, BoundedDroppingTheLeastRecentlyUsed) {
  PrincipalCache cache(/*capacity=*/3);
  for (int i = 0; i < 3; ++i) {
    cache.Put(absl::StrCat("hash_", i), P(absl::StrCat("key_", i)),
              cache.Generation(), kT0);
  }
  ASSERT_TRUE(cache.Get("hash_0", kT0).has_value());  // 0 now most recent
  cache.Put("hash_3", P("key_3"), cache.Generation(), kT0);
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_FALSE(cache.Get("hash_1", kT0).has_value());  // least recent: gone
  EXPECT_TRUE(cache.Get("hash_0", kT0).has_value());
  EXPECT_TRUE(cache.Get("hash_2", kT0).has_value());
  EXPECT_TRUE(cache.Get("hash_3", kT0).has_value());
  // Many more keys never grow it past its capacity.
  for (int i = 4; i < 1000; ++i) {
    cache.Put(absl::StrCat("hash_", i), P(absl::StrCat("key_", i)),
              cache.Generation(), kT0);
  }
  EXPECT_EQ(cache.size(), 3u);
}

TEST(PrincipalCacheTest, CapacityZeroCachesNothing) {
  PrincipalCache cache(/*capacity=*/0);
  cache.Put("hash_a", P("key_a"), cache.Generation(), kT0);
  EXPECT_FALSE(cache.Get("hash_a", kT0).has_value());
  EXPECT_EQ(cache.size(), 0u);
}

TEST(PrincipalCacheTest, EntriesOlderThanMaxAgeAreNotUsed) {
  PrincipalCache cache(/*capacity=*/10, /*max_age=*/absl::Seconds(60));
  cache.Put("hash_a", P("key_a"), cache.Generation(), kT0);
  EXPECT_TRUE(cache.Get("hash_a", kT0 + absl::Seconds(60)).has_value());
  EXPECT_FALSE(cache.Get("hash_a", kT0 + absl::Seconds(61)).has_value());
  EXPECT_EQ(cache.size(), 0u);
}

TEST(PrincipalCacheTest, PutAgainRefreshesThePrincipal) {
  PrincipalCache cache;
  cache.Put("hash_a", P("key_a", "acct_a", true), cache.Generation(), kT0);
  cache.Put("hash_a", P("key_a", "acct_a", false), cache.Generation(), kT0);
  std::optional<Principal> hit = cache.Get("hash_a", kT0);
  ASSERT_TRUE(hit.has_value());
  EXPECT_FALSE(hit->admin);
  EXPECT_EQ(cache.size(), 1u);
}

}  // namespace
}  // namespace campaigns::storage
