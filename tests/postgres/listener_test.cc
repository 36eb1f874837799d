// Tests of storage/postgres/listener.h against a real PostgreSQL: what is
// delivered (committed notifications, once, in order), what is not (rolled
// back, not yet committed), and the resync after the connection or the
// server went away.
#include "storage/postgres/listener.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/domain/mutex.h"
#include "tests/support/pg_fixture.h"

namespace campaigns::storage::postgres::testing {
namespace {

constexpr char kChannel[] = "campaignd_test";

// What a Listener delivered, for the test thread to wait on.
class Received {
 public:
  void Add(const Connection::Notification& n) {
    MutexLock lock(&mu_);
    payloads_.push_back(n.channel == kChannel ? n.payload
                                              : n.channel + ":" + n.payload);
    cv_.SignalAll();
  }
  void Resynced() {
    MutexLock lock(&mu_);
    ++resyncs_;
    cv_.SignalAll();
  }
  // Waits (at most 30 s, then fails the caller's check) until `payload`
  // arrived; returns everything received so far, comma-separated.
  std::string Until(const std::string& payload) {
    MutexLock lock(&mu_);
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (std::find(payloads_.begin(), payloads_.end(), payload) ==
               payloads_.end() &&
           absl::Now() < deadline) {
      cv_.WaitWithTimeout(&mu_, deadline - absl::Now());
    }
    return absl::StrJoin(payloads_, ",");
  }
  // Waits (at most 30 s) for the `n`th resync; returns how many there were.
  int UntilResyncs(int n) {
    MutexLock lock(&mu_);
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (resyncs_ < n && absl::Now() < deadline) {
      cv_.WaitWithTimeout(&mu_, deadline - absl::Now());
    }
    return resyncs_;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  std::vector<std::string> payloads_ ABSL_GUARDED_BY(mu_);
  int resyncs_ ABSL_GUARDED_BY(mu_) = 0;
};

class ListenerTest : public PgTest {
 protected:
  std::unique_ptr<Listener> Listen() {
    ListenerOptions options;
    options.dsn = Dsn();
    options.channels = {kChannel, "campaignd_other"};
    absl::StatusOr<std::unique_ptr<Listener>> l = Listener::Start(
        options, [this](const Connection::Notification& n) { got_.Add(n); },
        [this] { got_.Resynced(); });
    EXPECT_TRUE(l.ok()) << l.status();
    return l.ok() ? *std::move(l) : nullptr;
  }

  void Send(Connection& c, const std::string& payload,
            const std::string& channel = kChannel) {
    ASSERT_TRUE(Notify(c, channel, payload).ok());
  }

  Received got_;
};

TEST_F(ListenerTest, CommittedNotificationsArriveOnceInOrderRolledBackNever) {
  std::unique_ptr<Listener> listener = Listen();
  ASSERT_NE(listener, nullptr);
  EXPECT_TRUE(listener->listening());
  EXPECT_EQ(got_.UntilResyncs(1), 1);
  std::unique_ptr<Connection> c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Exec("BEGIN").ok());
  Send(*c, "rolled back");
  ASSERT_TRUE(c->Exec("ROLLBACK").ok());
  ASSERT_TRUE(c->Exec("BEGIN").ok());
  Send(*c, "a");
  Send(*c, "b");
  Send(*c, "a");  // the same as one already sent in this transaction
  Send(*c, "x", "campaignd_other");
  ASSERT_TRUE(c->Exec("COMMIT").ok());
  Send(*c, "end");  // outside a transaction: at once
  EXPECT_EQ(got_.Until("end"), "a,b,campaignd_other:x,end");
}

TEST_F(ListenerTest, ANotificationWaitsForItsTransactionToCommit) {
  std::unique_ptr<Listener> listener = Listen();
  ASSERT_NE(listener, nullptr);
  std::unique_ptr<Connection> writer = Connect();
  std::unique_ptr<Connection> other = Connect();
  ASSERT_NE(writer, nullptr);
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(writer->Exec("BEGIN").ok());
  Send(*writer, "pending");
  Send(*other, "probe");  // committed after "pending" was sent
  EXPECT_EQ(got_.Until("probe"), "probe");
  ASSERT_TRUE(writer->Exec("COMMIT").ok());
  EXPECT_EQ(got_.Until("pending"), "probe,pending");
}

TEST_F(ListenerTest, ACutConnectionIsReplacedAndTheCallerResyncs) {
  std::unique_ptr<Listener> listener = Listen();
  ASSERT_NE(listener, nullptr);
  CutConnections();
  EXPECT_EQ(got_.UntilResyncs(2), 2);
  std::unique_ptr<Connection> c = Connect();
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(listener->listening());
  Send(*c, "after");
  EXPECT_EQ(got_.Until("after"), "after");
}

TEST_F(ListenerTest, AfterTheServerRestartsItListensAgain) {
  std::unique_ptr<Listener> listener = Listen();
  ASSERT_NE(listener, nullptr);
  ASSERT_TRUE(Server()->Stop().ok());
  ASSERT_TRUE(Server()->StartAgain().ok());
  EXPECT_EQ(got_.UntilResyncs(2), 2);
  EXPECT_TRUE(listener->listening());
  std::unique_ptr<Connection> c = Connect();
  ASSERT_NE(c, nullptr);
  Send(*c, "back");
  EXPECT_EQ(got_.Until("back"), "back");
  listener->Stop();
  EXPECT_FALSE(listener->listening());
  listener->Stop();  // idempotent
}

// The schema announces campaign and API key changes itself, whichever
// statement makes them; identical announcements of one transaction arrive
// once.
TEST_F(ListenerTest, CampaignAndApiKeyChangesAreAnnounced) {
  ASSERT_NE(OpenDatabase(), nullptr);  // migrated
  ListenerOptions options;
  options.dsn = Dsn();
  options.channels = {kCampaignsChanged, kApiKeysChanged, kChannel};
  absl::StatusOr<std::unique_ptr<Listener>> listener = Listener::Start(
      options, [this](const Connection::Notification& n) { got_.Add(n); },
      nullptr);
  ASSERT_TRUE(listener.ok()) << listener.status();
  std::unique_ptr<Connection> c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Exec("INSERT INTO accounts(id, name, currency, created_at, "
                      "updated_at) VALUES ('acc_1', 'a', 'USD', 0, 0)")
                  .ok());
  ASSERT_TRUE(c->Exec("INSERT INTO campaigns(id, account_id, name, channel, "
                      "sender_id, sender_ref, status, batch_size, created_at, "
                      "updated_at) VALUES ('cmp_1', 'acc_1', 'c', 'sms', "
                      "'+15550100', 'snd_1', 'draft', 100, 0, 0)")
                  .ok());
  ASSERT_TRUE(c->Exec("BEGIN; UPDATE campaigns SET queued = 5; UPDATE "
                      "campaigns SET queued = 6; COMMIT")
                  .ok());
  ASSERT_TRUE(c->Exec("INSERT INTO api_keys(id, account_id, name, prefix, "
                      "key_hash, created_at) VALUES ('key_1', 'acc_1', 'k', "
                      "'p', 'h', 0)")
                  .ok());
  ASSERT_TRUE(c->Exec("UPDATE api_keys SET revoked_at = 1").ok());
  ASSERT_TRUE(c->Exec("DELETE FROM campaigns").ok());
  Send(*c, "end");
  EXPECT_EQ(got_.Until("end"),
            "campaignd_campaigns:acc_1 cmp_1,campaignd_campaigns:acc_1 cmp_1,"
            "campaignd_api_keys:acc_1 key_1,campaignd_api_keys:acc_1 key_1,"
            "campaignd_campaigns:acc_1 cmp_1,end");
}

TEST(ChangedIdTest, TheIdOfAnAnnouncedChange) {
  EXPECT_EQ(ChangedId("acc_1 cmp_1"), "cmp_1");
  EXPECT_EQ(ChangedId("cmp_1"), "");
  EXPECT_EQ(ChangedId(" cmp_1"), "");
  EXPECT_EQ(ChangedId(""), "");
}

TEST_F(ListenerTest, BadChannelsAndUnreachableServersAreRefused) {
  ListenerOptions options;
  options.dsn = Dsn();
  options.channels = {"Campaigns; DROP TABLE x"};
  absl::StatusOr<std::unique_ptr<Listener>> l =
      Listener::Start(options, nullptr, nullptr);
  EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument);
  options.channels = {};
  l = Listener::Start(options, nullptr, nullptr);
  EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument);
  options.channels = {kChannel};
  options.dsn = "postgresql://campaignd@127.0.0.1:1/none";
  l = Listener::Start(options, nullptr, nullptr);
  EXPECT_EQ(l.status().code(), absl::StatusCode::kUnavailable) << l.status();
  std::unique_ptr<Connection> c = Connect();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(Notify(*c, kChannel, std::string(8000, 'x')).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace campaigns::storage::postgres::testing
