// LeaseStore against a real PostgreSQL, with each instance on a Database of
// its own (as separate processes would be): a lease has one owner at a time,
// heartbeats keep it, an expired one is taken over with a higher epoch, a
// release or a clean leave hands over at once, and instances that configure
// one provider differently see each other.
#include "storage/postgres/lease_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "tests/support/pg_fixture.h"

namespace campaigns::storage::postgres::testing {
namespace {

// One campaignd instance: its own Database and LeaseStore.
struct Instance {
  std::unique_ptr<Database> db;
  std::unique_ptr<LeaseStore> leases;
  InstanceInfo info;
};

class LeaseStoreTest : public PgTest {
 protected:
  Instance Start(const std::string& id,
                 std::map<std::string, std::string> providers = {}) {
    DatabaseOptions options;
    options.dsn = Dsn();
    absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(options);
    EXPECT_TRUE(db.ok()) << db.status();
    Instance i;
    if (!db.ok()) return i;
    i.db = *std::move(db);
    i.leases = std::make_unique<LeaseStore>(i.db.get());
    i.info.id = id;
    i.info.provider_fingerprints = std::move(providers);
    return i;
  }

  // Acquires `resource` for `who` with `ttl`; the lease's owner and epoch as
  // "owner/epoch", or "-" when someone else holds it.
  static std::string Take(Instance& who, const std::string& resource,
                          absl::Duration ttl) {
    absl::StatusOr<std::optional<Lease>> l =
        who.leases->Acquire(who.info.id, resource, ttl);
    if (!l.ok()) return l.status().ToString();
    if (!l->has_value()) return "-";
    return absl::StrCat((*l)->owner, "/", (*l)->epoch);
  }
};

TEST_F(LeaseStoreTest, OneOwnerAtATimeAndAnExpiredLeaseIsTakenOver) {
  Instance a = Start("ins_a");
  Instance b = Start("ins_b");
  ASSERT_NE(a.leases, nullptr);
  ASSERT_NE(b.leases, nullptr);
  EXPECT_EQ(Take(a, "campaign:c1", absl::Milliseconds(300)), "ins_a/1");
  EXPECT_EQ(Take(b, "campaign:c1", absl::Milliseconds(300)), "-");
  // Its owner may take it again: extended, same epoch.
  EXPECT_EQ(Take(a, "campaign:c1", absl::Milliseconds(300)), "ins_a/1");
  // A stops heartbeating: once the lease expires, B takes it.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  std::string got = "-";
  while (got == "-" && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
    got = Take(b, "campaign:c1", absl::Milliseconds(300));
  }
  EXPECT_EQ(got, "ins_b/2");
  // A's next heartbeat tells it the lease is gone.
  absl::StatusOr<HeartbeatResult> hb =
      a.leases->Heartbeat(a.info, {"campaign:c1"}, absl::Seconds(10));
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_EQ(hb->lost, std::vector<std::string>{"campaign:c1"});
  EXPECT_EQ(Take(a, "campaign:c1", absl::Seconds(10)), "-");
}

TEST_F(LeaseStoreTest, HeartbeatsKeepTheLeases) {
  Instance a = Start("ins_a");
  Instance b = Start("ins_b");
  ASSERT_NE(a.leases, nullptr);
  ASSERT_NE(b.leases, nullptr);
  const absl::Duration ttl = absl::Seconds(1);
  ASSERT_EQ(Take(a, "campaign:c1", ttl), "ins_a/1");
  ASSERT_EQ(Take(a, "campaign:c2", ttl), "ins_a/1");
  // For three ttls, A heartbeats every 100 ms and B keeps trying.
  const absl::Time until = absl::Now() + 3 * ttl;
  while (absl::Now() < until) {
    absl::StatusOr<HeartbeatResult> hb =
        a.leases->Heartbeat(a.info, {"campaign:c1", "campaign:c2"}, ttl);
    ASSERT_TRUE(hb.ok()) << hb.status();
    EXPECT_TRUE(hb->lost.empty());
    EXPECT_EQ(Take(b, "campaign:c1", ttl), "-");
    EXPECT_EQ(Take(b, "campaign:c2", ttl), "-");
    absl::SleepFor(absl::Milliseconds(100));
  }
  absl::StatusOr<std::optional<Lease>> held = b.leases->Holder("campaign:c2");
  ASSERT_TRUE(held.ok()) << held.status();
  ASSERT_TRUE(held->has_value());
  EXPECT_EQ((*held)->owner, "ins_a");
  EXPECT_EQ((*held)->epoch, 1);
}

TEST_F(LeaseStoreTest, InstancesRacingForOneResourceLeaveExactlyOneOwner) {
  constexpr int kInstances = 6;
  constexpr int kResources = 20;
  std::vector<Instance> instances;
  for (int i = 0; i < kInstances; ++i) {
    instances.push_back(Start(absl::StrCat("ins_", i)));
    ASSERT_NE(instances.back().leases, nullptr);
  }
  std::vector<std::vector<std::string>> won(kInstances);
  std::vector<std::thread> threads;
  for (int i = 0; i < kInstances; ++i) {
    threads.emplace_back([&, i] {
      for (int r = 0; r < kResources; ++r) {
        const std::string resource = absl::StrCat("campaign:c", r);
        if (Take(instances[i], resource, absl::Seconds(30)) ==
            absl::StrCat("ins_", i, "/1")) {
          won[i].push_back(resource);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::map<std::string, int> owners;
  for (const auto& list : won) {
    for (const std::string& r : list) ++owners[r];
  }
  EXPECT_EQ(owners.size(), static_cast<size_t>(kResources));
  for (const auto& [resource, n] : owners) EXPECT_EQ(n, 1) << resource;
}

TEST_F(LeaseStoreTest, AReleaseOrACleanLeaveHandsOverAtOnce) {
  Instance a = Start("ins_a");
  Instance b = Start("ins_b");
  ASSERT_NE(a.leases, nullptr);
  ASSERT_NE(b.leases, nullptr);
  const absl::Duration ttl = absl::Hours(1);
  ASSERT_EQ(Take(a, "campaign:c1", ttl), "ins_a/1");
  ASSERT_EQ(Take(a, "campaign:c2", ttl), "ins_a/1");
  ASSERT_EQ(Take(a, "campaign:c3", ttl), "ins_a/1");
  ASSERT_TRUE(a.leases->Heartbeat(a.info, {}, ttl).ok());
  // B cannot release what it does not hold.
  ASSERT_TRUE(b.leases->Release("ins_b", "campaign:c1").ok());
  EXPECT_EQ(Take(b, "campaign:c1", ttl), "-");
  ASSERT_TRUE(a.leases->Release("ins_a", "campaign:c1").ok());
  EXPECT_EQ(Take(b, "campaign:c1", ttl), "ins_b/2");
  // A heartbeat does not bring a released lease back.
  absl::StatusOr<HeartbeatResult> hb =
      a.leases->Heartbeat(a.info, {"campaign:c2", "campaign:c3"}, ttl);
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_TRUE(hb->lost.empty());
  EXPECT_EQ(hb->other_instances, 0);  // B has not heartbeaten
  ASSERT_TRUE(a.leases->Leave("ins_a").ok());
  EXPECT_EQ(Take(b, "campaign:c2", ttl), "ins_b/2");
  EXPECT_EQ(Take(b, "campaign:c3", ttl), "ins_b/2");
  // And A's instance row is gone.
  hb = b.leases->Heartbeat(b.info, {}, ttl);
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_EQ(hb->other_instances, 0);
}

TEST_F(LeaseStoreTest, InstancesConfiguringAProviderDifferentlySeeEachOther) {
  Instance a = Start("ins_a", {{"sms", "f1"}, {"email", "e1"}});
  Instance b = Start("ins_b", {{"sms", "f2"}, {"email", "e1"}, {"tg", "t"}});
  ASSERT_NE(a.leases, nullptr);
  ASSERT_NE(b.leases, nullptr);
  const absl::Duration ttl = absl::Seconds(30);
  absl::StatusOr<HeartbeatResult> hb = a.leases->Heartbeat(a.info, {}, ttl);
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_TRUE(hb->mismatches.empty());  // alone so far
  hb = b.leases->Heartbeat(b.info, {}, ttl);
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_EQ(hb->other_instances, 1);
  ASSERT_EQ(hb->mismatches.size(), 1u);
  EXPECT_EQ(hb->mismatches[0].provider, "sms");
  EXPECT_EQ(hb->mismatches[0].other_instance, "ins_a");
  hb = a.leases->Heartbeat(a.info, {}, ttl);
  ASSERT_TRUE(hb.ok()) << hb.status();
  ASSERT_EQ(hb->mismatches.size(), 1u);
  EXPECT_EQ(hb->mismatches[0].other_instance, "ins_b");
  // An instance whose heartbeat is older than the ttl is not live.
  absl::SleepFor(absl::Milliseconds(300));
  hb = a.leases->Heartbeat(a.info, {}, absl::Milliseconds(200));
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_EQ(hb->other_instances, 0);
  EXPECT_TRUE(hb->mismatches.empty());
}

}  // namespace
}  // namespace campaigns::storage::postgres::testing
