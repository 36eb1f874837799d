// SuppressionRepository's contract, on every engine (engines.h): adds as
// upserts, lookups by channel, removal, tenancy, list filters and paging,
// opt-outs a provider brings for every account it serves, and concurrent
// adds of one entry. (Several instances adding at once:
// tests/postgres/suppression_store_test.cc.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/domain/ids.h"
#include "tests/conformance/engines.h"
#include "tests/storage/temp_db.h"
#include "tests/support/builders.h"

namespace campaigns::conformance {
namespace {

using storage::test_util::AwaitResult;
using storage::test_util::AwaitStatus;
using test_builders::ExpectNotFound;
using test_builders::NewSender;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

// A time the engines keep exactly (microseconds).
absl::Time At(int64_t seconds) {
  return absl::FromUnixMicros(1'700'000'000'000'000 + seconds * 1'000'000);
}

Suppression NewSuppression(
    const std::string& account, const std::string& address, Channel channel,
    SuppressionReason reason = SuppressionReason::kManual,
    const std::string& note = "", absl::Time created_at = At(0)) {
  Suppression s;
  s.account_id = account;
  s.address = address;
  s.channel = channel;
  s.reason = reason;
  s.note = note;
  s.created_at = created_at;
  return s;
}

// (address, channel) of each entry, in the order given.
std::vector<std::pair<std::string, Channel>> Keys(
    const std::vector<Suppression>& entries) {
  std::vector<std::pair<std::string, Channel>> out;
  for (const Suppression& s : entries) out.emplace_back(s.address, s.channel);
  return out;
}

// Three accounts, alpha (a_), beta (b_) and gamma (c_).
class SuppressionRepositoryTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    if (HasFatalFailure()) return;
    for (std::string* id : {&a_, &b_, &c_}) {
      *id = MustCreateAccount("acme");
      ASSERT_FALSE(id->empty());
    }
  }

  absl::StatusOr<Suppression> Add(Suppression s) {
    return AwaitResult<Suppression>([&](Done<Suppression> done) {
      suppressions().AddSuppression(std::move(s), std::move(done));
    });
  }
  Suppression MustAdd(Suppression s) {
    absl::StatusOr<Suppression> out = Add(std::move(s));
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : Suppression{};
  }
  absl::StatusOr<int> AddFromProvider(const std::vector<std::string>& providers,
                                      const std::string& to, Suppression s) {
    return AwaitResult<int>([&](Done<int> done) {
      suppressions().AddProviderSuppression(providers, to, std::move(s),
                                            std::move(done));
    });
  }
  absl::Status Remove(const std::string& account, const std::string& address,
                      Channel channel) {
    return AwaitStatus([&](StatusDone done) {
      suppressions().RemoveSuppression(account, address, channel,
                                       std::move(done));
    });
  }
  std::vector<Suppression> Find(const std::string& account,
                                const std::string& address, Channel channel) {
    absl::StatusOr<std::vector<Suppression>> found =
        suppressions().FindSuppressions(account, address, channel);
    EXPECT_TRUE(found.ok()) << found.status();
    return found.ok() ? *std::move(found) : std::vector<Suppression>{};
  }
  Page<Suppression> List(const std::string& account,
                         const SuppressionFilter& filter = {}, int page = 1,
                         int limit = 100) {
    PageRequest req;
    req.page = page;
    req.limit = limit;
    absl::StatusOr<Page<Suppression>> out =
        suppressions().ListSuppressions(account, filter, req);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *std::move(out) : Page<Suppression>{};
  }
  void MustRegister(const std::string& account, const std::string& sender_id,
                    Channel channel, const std::string& provider) {
    Sender s = NewSender(account, sender_id, channel);
    s.provider = provider;
    absl::StatusOr<Sender> out = AwaitResult<Sender>([&](Done<Sender> done) {
      senders().RegisterSender(std::move(s), {}, std::move(done));
    });
    EXPECT_TRUE(out.ok()) << out.status();
  }

  std::string a_;
  std::string b_;
  std::string c_;
};

TEST_P(SuppressionRepositoryTest, AddReturnsTheStoredEntry) {
  Suppression added =
      MustAdd(NewSuppression(a_, "+15550001", Channel::kSms,
                             SuppressionReason::kOptOut, "said STOP", At(7)));
  EXPECT_EQ(added.account_id, a_);
  EXPECT_EQ(added.address, "+15550001");
  EXPECT_EQ(added.channel, Channel::kSms);
  EXPECT_EQ(added.reason, SuppressionReason::kOptOut);
  EXPECT_EQ(added.note, "said STOP");
  EXPECT_EQ(added.created_at, At(7));

  std::vector<Suppression> found = Find(a_, "+15550001", Channel::kSms);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].account_id, a_);
  EXPECT_EQ(found[0].reason, SuppressionReason::kOptOut);
  EXPECT_EQ(found[0].note, "said STOP");
  EXPECT_EQ(found[0].created_at, At(7));
}

TEST_P(SuppressionRepositoryTest,
       FindMatchesTheChannelAndTheEveryChannelEntry) {
  MustAdd(NewSuppression(a_, "+15550001", Channel::kSms));
  MustAdd(NewSuppression(a_, "+15550001", Channel::kWhatsapp));
  // Another address is never found.
  MustAdd(NewSuppression(a_, "+15550002", Channel::kUnspecified));

  EXPECT_THAT(Keys(Find(a_, "+15550001", Channel::kSms)),
              ElementsAre(Pair("+15550001", Channel::kSms)));
  EXPECT_THAT(Find(a_, "+15550001", Channel::kTelegram), IsEmpty());

  MustAdd(NewSuppression(a_, "+15550001", Channel::kUnspecified,
                         SuppressionReason::kComplaint));
  // The every-channel entry first (channel '' sorts first), then its own.
  EXPECT_THAT(Keys(Find(a_, "+15550001", Channel::kSms)),
              ElementsAre(Pair("+15550001", Channel::kUnspecified),
                          Pair("+15550001", Channel::kSms)));
  EXPECT_THAT(Keys(Find(a_, "+15550001", Channel::kTelegram)),
              ElementsAre(Pair("+15550001", Channel::kUnspecified)));
  // kUnspecified: every entry of the address.
  EXPECT_THAT(Keys(Find(a_, "+15550001", Channel::kUnspecified)),
              ElementsAre(Pair("+15550001", Channel::kUnspecified),
                          Pair("+15550001", Channel::kSms),
                          Pair("+15550001", Channel::kWhatsapp)));
  EXPECT_THAT(Find(a_, "+15550003", Channel::kUnspecified), IsEmpty());
}

TEST_P(SuppressionRepositoryTest, ReAddReplacesReasonAndNoteAndKeepsOneRow) {
  MustAdd(NewSuppression(a_, "bob@example.com", Channel::kEmail,
                         SuppressionReason::kManual, "first", At(1)));
  Suppression again = MustAdd(
      NewSuppression(a_, "bob@example.com", Channel::kEmail,
                     SuppressionReason::kBounce, "550 no such user", At(2)));
  EXPECT_EQ(again.reason, SuppressionReason::kBounce);
  EXPECT_EQ(again.note, "550 no such user");
  EXPECT_EQ(again.created_at, At(1));  // the entry's, not the repeat's

  std::vector<Suppression> found =
      Find(a_, "bob@example.com", Channel::kUnspecified);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].reason, SuppressionReason::kBounce);
  EXPECT_EQ(found[0].note, "550 no such user");
  EXPECT_EQ(found[0].created_at, At(1));
  EXPECT_EQ(List(a_).total, 1);
}

TEST_P(SuppressionRepositoryTest, RemoveDeletesExactlyThatEntry) {
  MustAdd(NewSuppression(a_, "+15550001", Channel::kSms));
  MustAdd(NewSuppression(a_, "+15550001", Channel::kUnspecified));

  EXPECT_TRUE(Remove(a_, "+15550001", Channel::kSms).ok());
  ExpectNotFound(Remove(a_, "+15550001", Channel::kSms));
  EXPECT_THAT(Keys(Find(a_, "+15550001", Channel::kUnspecified)),
              ElementsAre(Pair("+15550001", Channel::kUnspecified)));
  // The channel must match: an every-channel entry is not removed as SMS.
  ExpectNotFound(Remove(a_, "+15550001", Channel::kWhatsapp));
  EXPECT_TRUE(Remove(a_, "+15550001", Channel::kUnspecified).ok());
  ExpectNotFound(Remove(a_, "+15550001", Channel::kUnspecified));
  EXPECT_THAT(Find(a_, "+15550001", Channel::kUnspecified), IsEmpty());
  EXPECT_EQ(List(a_).total, 0);
}

TEST_P(SuppressionRepositoryTest, AnotherAccountNeverSeesTheEntries) {
  MustAdd(NewSuppression(a_, "+15550001", Channel::kSms,
                         SuppressionReason::kOptOut, "alpha's"));
  MustAdd(NewSuppression(a_, "+15550001", Channel::kUnspecified));

  EXPECT_THAT(Find(b_, "+15550001", Channel::kSms), IsEmpty());
  EXPECT_THAT(Find(b_, "+15550001", Channel::kUnspecified), IsEmpty());
  Page<Suppression> b_list = List(b_);
  EXPECT_THAT(b_list.items, IsEmpty());
  EXPECT_EQ(b_list.total, 0);
  ExpectNotFound(Remove(b_, "+15550001", Channel::kSms));
  ExpectNotFound(Remove("", "+15550001", Channel::kSms));

  // B's own entry for the same address is its own row; A's is untouched.
  MustAdd(NewSuppression(b_, "+15550001", Channel::kSms,
                         SuppressionReason::kManual, "beta's"));
  std::vector<Suppression> a_found = Find(a_, "+15550001", Channel::kSms);
  ASSERT_EQ(a_found.size(), 2u);
  EXPECT_EQ(a_found[1].note, "alpha's");
  EXPECT_EQ(a_found[1].account_id, a_);
  std::vector<Suppression> b_found = Find(b_, "+15550001", Channel::kSms);
  ASSERT_EQ(b_found.size(), 1u);
  EXPECT_EQ(b_found[0].note, "beta's");
  EXPECT_EQ(List(a_).total, 2);
  EXPECT_EQ(List(b_).total, 1);
}

TEST_P(SuppressionRepositoryTest, ListFiltersByChannelAndReason) {
  MustAdd(NewSuppression(a_, "+15550001", Channel::kSms,
                         SuppressionReason::kOptOut, "", At(1)));
  MustAdd(NewSuppression(a_, "+15550002", Channel::kSms,
                         SuppressionReason::kManual, "", At(2)));
  MustAdd(NewSuppression(a_, "bob@example.com", Channel::kEmail,
                         SuppressionReason::kBounce, "", At(3)));
  MustAdd(NewSuppression(a_, "+15550003", Channel::kUnspecified,
                         SuppressionReason::kOptOut, "", At(4)));
  MustAdd(NewSuppression(b_, "+15550009", Channel::kSms,
                         SuppressionReason::kOptOut, "", At(5)));

  Page<Suppression> all = List(a_);
  EXPECT_EQ(all.total, 4);
  EXPECT_FALSE(all.has_more);
  EXPECT_THAT(Keys(all.items),
              ElementsAre(Pair("+15550003", Channel::kUnspecified),
                          Pair("bob@example.com", Channel::kEmail),
                          Pair("+15550002", Channel::kSms),
                          Pair("+15550001", Channel::kSms)));

  Page<Suppression> sms = List(a_, {Channel::kSms, {}});
  EXPECT_EQ(sms.total, 2);
  EXPECT_THAT(Keys(sms.items), ElementsAre(Pair("+15550002", Channel::kSms),
                                           Pair("+15550001", Channel::kSms)));
  Page<Suppression> opt_out =
      List(a_, {Channel::kUnspecified, SuppressionReason::kOptOut});
  EXPECT_EQ(opt_out.total, 2);
  EXPECT_THAT(Keys(opt_out.items),
              ElementsAre(Pair("+15550003", Channel::kUnspecified),
                          Pair("+15550001", Channel::kSms)));
  Page<Suppression> both =
      List(a_, {Channel::kSms, SuppressionReason::kOptOut});
  EXPECT_EQ(both.total, 1);
  EXPECT_THAT(Keys(both.items), ElementsAre(Pair("+15550001", Channel::kSms)));
  Page<Suppression> none =
      List(a_, {Channel::kEmail, SuppressionReason::kComplaint});
  EXPECT_EQ(none.total, 0);
  EXPECT_THAT(none.items, IsEmpty());
}

TEST_P(SuppressionRepositoryTest, ListPagesNewestFirstThenByAddressAndChannel) {
  // Five at one time (ordered by address, then channel, bytewise), two later.
  MustAdd(NewSuppression(a_, "carol@example.com", Channel::kEmail,
                         SuppressionReason::kManual, "", At(10)));
  MustAdd(NewSuppression(a_, "+15550002", Channel::kWhatsapp,
                         SuppressionReason::kManual, "", At(10)));
  MustAdd(NewSuppression(a_, "Zed@example.com", Channel::kEmail,
                         SuppressionReason::kManual, "", At(10)));
  MustAdd(NewSuppression(a_, "+15550002", Channel::kSms,
                         SuppressionReason::kManual, "", At(10)));
  MustAdd(NewSuppression(a_, "+15550002", Channel::kUnspecified,
                         SuppressionReason::kManual, "", At(10)));
  MustAdd(NewSuppression(a_, "+15550001", Channel::kSms,
                         SuppressionReason::kManual, "", At(20)));
  MustAdd(NewSuppression(a_, "+15550003", Channel::kSms,
                         SuppressionReason::kManual, "", At(30)));

  const std::vector<std::pair<std::string, Channel>> expected = {
      {"+15550003", Channel::kSms},
      {"+15550001", Channel::kSms},
      {"+15550002", Channel::kUnspecified},
      {"+15550002", Channel::kSms},
      {"+15550002", Channel::kWhatsapp},
      {"Zed@example.com", Channel::kEmail},
      {"carol@example.com", Channel::kEmail},
  };
  std::vector<std::pair<std::string, Channel>> seen;
  for (int page = 1; page <= 3; ++page) {
    Page<Suppression> p = List(a_, {}, page, 3);
    EXPECT_EQ(p.total, 7);
    EXPECT_EQ(p.items.size(), page < 3 ? 3u : 1u) << "page " << page;
    EXPECT_EQ(p.has_more, page < 3) << "page " << page;
    for (auto& key : Keys(p.items)) seen.push_back(std::move(key));
  }
  EXPECT_EQ(seen, expected);
  Page<Suppression> past = List(a_, {}, 4, 3);
  EXPECT_THAT(past.items, IsEmpty());
  EXPECT_EQ(past.total, 7);
  EXPECT_FALSE(past.has_more);
}

TEST_P(SuppressionRepositoryTest, ProviderOptOutReachesTheAccountsItServes) {
  // alpha: two SMS senders on twilio and a WhatsApp one with the same id.
  MustRegister(a_, "+15550100", Channel::kSms, "twilio");
  MustRegister(a_, "+15550101", Channel::kSms, "twilio");
  MustRegister(a_, "+15550100", Channel::kWhatsapp, "twilio");
  // beta: the same number on another provider.
  MustRegister(b_, "+15550100", Channel::kSms, "vonage");
  // gamma: another number on twilio.
  MustRegister(c_, "+15550200", Channel::kSms, "twilio");
  auto suppressed = [&](const std::string& account, Channel channel) {
    return !Find(account, "+15559999", channel).empty();
  };
  const Suppression stop = NewSuppression("ignored", "+15559999", Channel::kSms,
                                          SuppressionReason::kOptOut,
                                          "inbound \"STOP\" via twilio", At(5));

  // To one number through one provider: alpha only.
  absl::StatusOr<int> added = AddFromProvider({"twilio"}, "+15550100", stop);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(*added, 1);
  EXPECT_TRUE(suppressed(a_, Channel::kSms));
  EXPECT_FALSE(suppressed(a_, Channel::kWhatsapp));
  EXPECT_FALSE(suppressed(b_, Channel::kSms));
  EXPECT_FALSE(suppressed(c_, Channel::kSms));
  std::vector<Suppression> alpha = Find(a_, "+15559999", Channel::kSms);
  ASSERT_EQ(alpha.size(), 1u);
  EXPECT_EQ(alpha[0].account_id, a_);
  EXPECT_EQ(alpha[0].reason, SuppressionReason::kOptOut);
  EXPECT_EQ(alpha[0].note, "inbound \"STOP\" via twilio");

  // No sender of that number on those providers: nobody.
  added = AddFromProvider({"twilio"}, "+15550300", stop);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(*added, 0);
  added = AddFromProvider({}, "+15550100", stop);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(*added, 0);
  EXPECT_FALSE(suppressed(b_, Channel::kSms));

  // A provider and the one it is a fallback of: alpha (again) and beta.
  added = AddFromProvider({"vonage", "twilio"}, "+15550100", stop);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(*added, 2);
  EXPECT_TRUE(suppressed(b_, Channel::kSms));
  EXPECT_FALSE(suppressed(c_, Channel::kSms));

  // No `to`: every account with an SMS sender on twilio, each once although
  // alpha has two; the repeat in alpha replaces reason and note.
  Suppression manual = stop;
  manual.reason = SuppressionReason::kComplaint;
  manual.note = "again";
  added = AddFromProvider({"twilio"}, "", manual);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(*added, 2);
  EXPECT_TRUE(suppressed(c_, Channel::kSms));
  alpha = Find(a_, "+15559999", Channel::kSms);
  ASSERT_EQ(alpha.size(), 1u);
  EXPECT_EQ(alpha[0].reason, SuppressionReason::kComplaint);
  EXPECT_EQ(alpha[0].note, "again");
  EXPECT_EQ(List(a_).total, 1);
  std::vector<Suppression> beta = Find(b_, "+15559999", Channel::kSms);
  ASSERT_EQ(beta.size(), 1u);
  EXPECT_EQ(beta[0].reason, SuppressionReason::kOptOut);  // not twilio's

  // The channel must match the sender's.
  Suppression wa = stop;
  wa.channel = Channel::kWhatsapp;
  added = AddFromProvider({"twilio"}, "", wa);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(*added, 1);
  EXPECT_TRUE(suppressed(a_, Channel::kWhatsapp));
  EXPECT_THAT(Keys(Find(c_, "+15559999", Channel::kUnspecified)),
              ElementsAre(Pair("+15559999", Channel::kSms)));
}

TEST_P(SuppressionRepositoryTest, ConcurrentAddsOfOneEntryLeaveOneRow) {
  constexpr int kThreads = 8;
  constexpr int kAddsPerThread = 10;
  std::vector<absl::Status> statuses(kThreads * kAddsPerThread);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kAddsPerThread; ++i) {
        statuses[t * kAddsPerThread + i] =
            Add(NewSuppression(a_, "+15550001", Channel::kSms,
                               SuppressionReason::kOptOut,
                               absl::StrCat("t", t, "-", i)))
                .status();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : statuses) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(Find(a_, "+15550001", Channel::kUnspecified).size(), 1u);
  EXPECT_EQ(List(a_).total, 1);
}

INSTANTIATE_TEST_SUITE_P(Engines, SuppressionRepositoryTest,
                         ::testing::ValuesIn(kEngines), EngineName);

}  // namespace
}  // namespace campaigns::conformance
