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
    Instance i;
    i.db = OpenDatabase();
    if (i.db == nullptr) return i;
    i.leases = std::make_unique<LeaseStore>(i.db.get());
    i.info.id = id;
    i.info.provider_fingerprints = std::move(providers);
    return i;
  }

  // Ends the lease on `resource` now, on the database's clock, as if its
  // owner had stopped heartbeating a ttl ago.
  void Expire(const std::string& resource) {
    std::unique_ptr<Connection> c = Connect();
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(c->Query("UPDATE leases SET expires_at = 0 WHERE resource = "
                         "$1",
                         {resource})
                    .ok());
  }

  // The owner of `resource` ("" when released, "?" when there is no row).
  std::string Owner(const std::string& resource) {
    std::unique_ptr<Connection> c = Connect();
    if (c == nullptr) return "?";
    absl::StatusOr<Rows> r =
        c->Query("SELECT owner FROM leases WHERE resource = $1", {resource});
    if (!r.ok() || r->size() == 0) return "?";
    return r->Text(0, 0);
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

// A lease row locked by another transaction for longer than
// kAutocommitLockTimeout (a mark's fence check waiting for its group's
// commit) fails the heartbeat ABORTED, to be tried at the next beat; it
// does not hang the keeper until the lock goes (kLockTimeout, 10 s).
TEST_F(LeaseStoreTest, AHeartbeatDoesNotWaitLongForALockedLeaseRow) {
  Instance a = Start("ins_a");
  ASSERT_NE(a.leases, nullptr);
  ASSERT_EQ(Take(a, "campaign:c1", absl::Minutes(1)), "ins_a/1");
  std::unique_ptr<Connection> holder = Connect();
  ASSERT_NE(holder, nullptr);
  ASSERT_TRUE(holder
                  ->Exec("BEGIN; SELECT 1 FROM leases WHERE resource = "
                         "'campaign:c1' FOR SHARE")
                  .ok());
  // Released well after the autocommit timeout, well before kLockTimeout.
  std::thread release([&] {
    absl::SleepFor(kAutocommitLockTimeout * 3);
    EXPECT_TRUE(holder->Exec("COMMIT").ok());
  });
  absl::StatusOr<HeartbeatResult> hb =
      a.leases->Heartbeat(a.info, {"campaign:c1"}, absl::Minutes(1));
  release.join();
  EXPECT_EQ(hb.status().code(), absl::StatusCode::kAborted) << hb.status();
  // The next beat goes through.
  hb = a.leases->Heartbeat(a.info, {"campaign:c1"}, absl::Minutes(1));
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_TRUE(hb->lost.empty());
}

TEST_F(LeaseStoreTest, OneOwnerAtATimeAndAnExpiredLeaseIsTakenOver) {
  Instance a = Start("ins_a");
  Instance b = Start("ins_b");
  ASSERT_NE(a.leases, nullptr);
  ASSERT_NE(b.leases, nullptr);
  const absl::Duration ttl = absl::Hours(1);
  EXPECT_EQ(Take(a, "campaign:c1", ttl), "ins_a/1");
  EXPECT_EQ(Take(b, "campaign:c1", ttl), "-");
  // Its owner may take it again: extended, same epoch.
  EXPECT_EQ(Take(a, "campaign:c1", ttl), "ins_a/1");
  // A stops heartbeating and the lease runs out (on the database's clock):
  // B takes it, one epoch up.
  Expire("campaign:c1");
  EXPECT_EQ(Take(b, "campaign:c1", ttl), "ins_b/2");
  // A's next heartbeat tells it the lease is gone, and leaves it to B.
  absl::StatusOr<HeartbeatResult> hb =
      a.leases->Heartbeat(a.info, {"campaign:c1"}, ttl);
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_EQ(hb->lost, std::vector<std::string>{"campaign:c1"});
  EXPECT_EQ(Take(a, "campaign:c1", ttl), "-");
  EXPECT_EQ(Owner("campaign:c1"), "ins_b");
}

TEST_F(LeaseStoreTest, HeartbeatsExtendTheLeasesHeldAndReleaseStrayOnes) {
  Instance a = Start("ins_a");
  ASSERT_NE(a.leases, nullptr);
  const absl::Duration ttl = absl::Seconds(30);
  const absl::Time before = absl::Now();
  absl::StatusOr<std::optional<Lease>> l1 =
      a.leases->Acquire("ins_a", "campaign:c1", ttl);
  ASSERT_TRUE(l1.ok() && l1->has_value());
  // On the database's clock (this machine's here, give or take a second).
  EXPECT_GE((*l1)->expires_at, before + ttl - absl::Seconds(1));
  EXPECT_LE((*l1)->expires_at, absl::Now() + ttl + absl::Seconds(1));
  // c2's Acquire committed, but the caller never learned it (a lost
  // answer): it is not in `held`.
  ASSERT_EQ(Take(a, "campaign:c2", ttl), "ins_a/1");
  Expire("campaign:c1");
  absl::StatusOr<HeartbeatResult> hb =
      a.leases->Heartbeat(a.info, {"campaign:c1"}, absl::Hours(1));
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_TRUE(hb->lost.empty());
  // It reports the database's clock (what schedules are due by).
  ASSERT_TRUE(hb->database_now.has_value());
  EXPECT_GE(*hb->database_now, before - absl::Seconds(1));
  EXPECT_LE(*hb->database_now, absl::Now() + absl::Seconds(1));
  // The instance's ttl is recorded: others judge it dead by it (owners.h).
  EXPECT_EQ(Count("SELECT ttl_us FROM instances WHERE id = 'ins_a'"),
            absl::ToInt64Microseconds(absl::Hours(1)));
  // c1 runs for another hour on the database's clock; c2 is free again.
  absl::StatusOr<std::optional<Lease>> c1 = a.leases->Holder("campaign:c1");
  ASSERT_TRUE(c1.ok() && c1->has_value());
  EXPECT_EQ((*c1)->owner, "ins_a");
  EXPECT_GT((*c1)->expires_at, (*l1)->expires_at + absl::Minutes(30));
  EXPECT_EQ(Owner("campaign:c2"), "");
  Instance b = Start("ins_b");
  ASSERT_NE(b.leases, nullptr);
  EXPECT_EQ(Take(b, "campaign:c1", ttl), "-");
  EXPECT_EQ(Take(b, "campaign:c2", ttl), "ins_b/2");
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
  ASSERT_TRUE(a.leases
                  ->Heartbeat(a.info,
                              {"campaign:c1", "campaign:c2", "campaign:c3"},
                              ttl)
                  .ok());
  // B cannot release what it does not hold.
  ASSERT_TRUE(b.leases->Release("ins_b", "campaign:c1").ok());
  EXPECT_EQ(Take(b, "campaign:c1", ttl), "-");
  ASSERT_TRUE(a.leases->Release("ins_a", "campaign:c1").ok());
  EXPECT_EQ(Take(b, "campaign:c1", ttl), "ins_b/2");
  // A heartbeat does not bring back a lease released with no one taking
  // it over, even one the caller still lists.
  ASSERT_TRUE(a.leases->Release("ins_a", "campaign:c3").ok());
  absl::StatusOr<HeartbeatResult> hb =
      a.leases->Heartbeat(a.info, {"campaign:c2", "campaign:c3"}, ttl);
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_EQ(hb->lost, std::vector<std::string>{"campaign:c3"});
  EXPECT_EQ(Owner("campaign:c3"), "");
  ASSERT_EQ(Take(a, "campaign:c3", ttl), "ins_a/2");
  EXPECT_EQ(hb->other_instances, 0);  // B has not heartbeaten
  ASSERT_TRUE(a.leases->Leave("ins_a").ok());
  EXPECT_EQ(Take(b, "campaign:c2", ttl), "ins_b/2");
  EXPECT_EQ(Take(b, "campaign:c3", ttl), "ins_b/3");
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
  std::unique_ptr<Connection> c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Query("UPDATE instances SET heartbeat_at = heartbeat_at - "
                       "60000000 WHERE id = 'ins_b'")
                  .ok());
  hb = a.leases->Heartbeat(a.info, {}, absl::Seconds(30));
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_EQ(hb->other_instances, 0);
  EXPECT_TRUE(hb->mismatches.empty());
}

}  // namespace
}  // namespace campaigns::storage::postgres::testing
