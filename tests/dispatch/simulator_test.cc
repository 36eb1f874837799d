// The simulator as a vendor across our restarts (with --simulator-log): the
// receipts it owes are reported after a restart, a duplicate answers with
// the first message's id, and its attempt counts go on where they were.
#include "server/dispatch/simulator.h"

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <set>
#include <string>

#include "tests/dispatch/fake_timer.h"
#include "tests/storage/temp_db.h"

namespace campaigns::dispatch {
namespace {

using storage::test_util::TempDir;

OutgoingMessage Message(const std::string& key) {
  OutgoingMessage m;
  m.idempotency_key = key;
  m.account_id = "acct_1";
  m.campaign_id = "cmp_1";
  m.recipient_id = key;
  m.channel = Channel::kSms;
  m.address = "+14155550100";
  m.text = "hi";
  return m;
}

class SimulatorRestartTest : public ::testing::Test {
 protected:
  std::unique_ptr<Simulator> Start(SimulatorOptions o) {
    o.log_path = dir_.File("simulator.jsonl");
    auto sim = Simulator::Create(
        o, &timer_,
        [this](const std::string& account, std::vector<ReceiptUpdate> r,
               Done<ReceiptResult> answered) {
          ReceiptResult result;
          {
            std::lock_guard<std::mutex> lock(mu_);
            for (ReceiptUpdate& u : r) {
              if (unmatched_ids_.count(u.provider_message_id) > 0) {
                ++result.unmatched;
                result.unmatched_receipts.push_back(u);
              }
              receipts_[account].push_back(u);
            }
          }
          if (answered) answered(std::move(result));
        });
    EXPECT_TRUE(sim.ok()) << sim.status();
    return sim.ok() ? *std::move(sim) : nullptr;
  }
  static std::vector<SendResult> Send(Simulator& sim,
                                      std::vector<OutgoingMessage> batch) {
    std::vector<SendResult> out;
    sim.Send(std::move(batch), [&](std::vector<SendResult> r) { out = r; });
    return out;
  }
  std::vector<ReceiptUpdate> Receipts() {
    std::lock_guard<std::mutex> lock(mu_);
    return receipts_["acct_1"];
  }

  TempDir dir_;
  testing::FakeTimer timer_;
  std::mutex mu_;
  std::map<std::string, std::vector<ReceiptUpdate>> receipts_;
  // Message ids whose receipts the sink answers as unmatched.
  std::set<std::string> unmatched_ids_;
};

TEST_F(SimulatorRestartTest, OwedReceiptsAreReportedAfterARestart) {
  SimulatorOptions o;
  o.defaults.delivered_delay = absl::Minutes(1);
  std::map<std::string, std::string> ids;  // key -> message id
  {
    auto a = Start(o);
    for (const SendResult& r :
         Send(*a, {Message("k1"), Message("k2"), Message("k3")})) {
      ASSERT_EQ(r.status, SendStatus::kAccepted);
    }
    // Killed before the receipts were due: none reported.
    EXPECT_TRUE(Receipts().empty());
  }
  {
    auto b = Start(o);
    EXPECT_EQ(b->DeliverOwedReceipts(), 3);
    std::vector<ReceiptUpdate> got = Receipts();
    ASSERT_EQ(got.size(), 3u);
    for (const ReceiptUpdate& u : got) {
      EXPECT_EQ(u.status, RecipientStatus::kDelivered);
      EXPECT_FALSE(u.provider_message_id.empty());
    }
    // A resend of k1 is a duplicate with the first id.
    auto again = Send(*b, {Message("k1")});
    ASSERT_EQ(again.size(), 1u);
    EXPECT_EQ(again[0].status, SendStatus::kAccepted);
    bool known = false;
    for (const ReceiptUpdate& u : got) {
      known = known || u.provider_message_id == again[0].provider_message_id;
    }
    EXPECT_TRUE(known) << again[0].provider_message_id;
  }
  // Reported and stored: nothing is owed any more.
  auto c = Start(o);
  EXPECT_EQ(c->DeliverOwedReceipts(), 0);
}

// A receipt answered unmatched (its message's outcome not recorded yet; the
// process holds it in memory only) stays owed: the next start reports it
// again, until one answers it matched.
TEST_F(SimulatorRestartTest, ReceiptsAnsweredUnmatchedStayOwed) {
  SimulatorOptions o;
  o.defaults.delivered_delay = absl::Minutes(1);
  std::string k1;
  {
    auto a = Start(o);
    std::vector<SendResult> sent = Send(*a, {Message("k1"), Message("k2")});
    ASSERT_EQ(sent.size(), 2u);
    k1 = sent[0].provider_message_id;
  }
  unmatched_ids_.insert(k1);
  {
    auto b = Start(o);
    EXPECT_EQ(b->DeliverOwedReceipts(), 2);
  }
  {
    auto c = Start(o);
    EXPECT_EQ(c->DeliverOwedReceipts(), 1);  // k1's, answered unmatched
    EXPECT_EQ(Receipts().back().provider_message_id, k1);
    unmatched_ids_.clear();
  }
  {
    auto d = Start(o);
    EXPECT_EQ(d->DeliverOwedReceipts(), 1);  // matched at last
  }
  auto e = Start(o);
  EXPECT_EQ(e->DeliverOwedReceipts(), 0);
}

TEST_F(SimulatorRestartTest, AttemptCountsSurviveARestart) {
  SimulatorOptions o;
  o.defaults.transient_failure_rate = 0.6;
  o.defaults.delivered_rate = 0;
  // Without a restart: the outcomes of eight attempts of each key.
  std::vector<SendStatus> straight;
  {
    SimulatorOptions plain = o;
    auto x = Simulator::Create(plain, &timer_, nullptr);
    ASSERT_TRUE(x.ok());
    for (int i = 0; i < 8; ++i) {
      for (const SendResult& r :
           Send(**x, {Message("a"), Message("b"), Message("c")})) {
        straight.push_back(r.status);
      }
    }
  }
  std::vector<SendStatus> restarted;
  for (int life = 0; life < 4; ++life) {  // a restart every two attempts
    auto sim = Start(o);
    for (int i = 0; i < 2; ++i) {
      for (const SendResult& r :
           Send(*sim, {Message("a"), Message("b"), Message("c")})) {
        restarted.push_back(r.status);
      }
    }
  }
  EXPECT_EQ(restarted, straight);
}

// Memory stays bounded: only the last remembered_keys accepted keys are
// de-duplicated, in this life and when loaded back from the log.
TEST_F(SimulatorRestartTest, RemembersOnlyTheLastAcceptedKeys) {
  SimulatorOptions o;
  o.defaults.delivered_rate = 0;
  o.remembered_keys = 2;
  std::map<std::string, std::string> first;  // key -> first message id
  for (int life = 0; life < 2; ++life) {
    auto sim = Start(o);
    if (life == 0) {
      for (const char* key : {"k1", "k2", "k3"}) {
        auto r = Send(*sim, {Message(key)});
        ASSERT_EQ(r.size(), 1u);
        ASSERT_EQ(r[0].status, SendStatus::kAccepted);
        EXPECT_FALSE(r[0].duplicate);
        first[key] = r[0].provider_message_id;
      }
    }
    // k2 and k3 are remembered (a duplicate with the first id); k1, the
    // oldest, is forgotten and accepted again as a new message.
    for (const char* key : {"k3", "k2"}) {
      auto r = Send(*sim, {Message(key)});
      ASSERT_EQ(r.size(), 1u);
      EXPECT_TRUE(r[0].duplicate) << key << " in life " << life;
      EXPECT_EQ(r[0].provider_message_id, first[key]);
    }
    if (life == 1) {
      auto r = Send(*sim, {Message("k1")});
      ASSERT_EQ(r.size(), 1u);
      EXPECT_EQ(r[0].status, SendStatus::kAccepted);
      EXPECT_FALSE(r[0].duplicate);
      EXPECT_NE(r[0].provider_message_id, first["k1"]);
    }
  }
}

}  // namespace
}  // namespace campaigns::dispatch
