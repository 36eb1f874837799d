// BillingRepository's contract, on every engine (engines.h): price tables
// stored normalised and replaced whole, idempotent credits and the ledger
// newest first with keyset pages, estimates from grouped queries over stored
// countries and SMS segments (only once every recipient is counted, and
// again after the message changed), contact audiences estimated from their
// contacts, statistics summed from stored counters, and the errors of
// unknown accounts and campaigns; what starts reserve (never more than the
// balance, however many starts race), imports into and updates of started
// campaigns, releases. Several instances at once:
// tests/postgres/billing_store_test.cc.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/domain/address.h"
#include "server/domain/billing.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
#include "server/domain/import_rows.h"
#include "tests/conformance/engines.h"
#include "tests/storage/temp_db.h"
#include "tests/support/builders.h"

namespace campaigns::conformance {
namespace {

using storage::test_util::AwaitResult;
using storage::test_util::AwaitStatus;
using test_builders::ExpectNotFound;

using RecipientRows = std::vector<std::pair<std::string, std::string>>;

// One account with an SMS sender "+15550300".
class BillingRepositoryTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    if (HasFatalFailure()) return;
    account_ = MustCreateAccount("billing");
    ASSERT_FALSE(account_.empty());
    ASSERT_TRUE(AwaitResult<Sender>([&](Done<Sender> done) {
                  senders().RegisterSender(
                      test_builders::NewSender(account_, "+15550300"), {},
                      std::move(done));
                }).ok());
  }

  absl::StatusOr<std::vector<Price>> SetPrices(std::vector<Price> prices) {
    absl::StatusOr<std::vector<Price>> normalized =
        NormalizePrices(std::move(prices));
    if (!normalized.ok()) return normalized.status();
    return AwaitResult<std::vector<Price>>([&](Done<std::vector<Price>> done) {
      billing().SetPrices(account_, *normalized, std::move(done));
    });
  }
  void MustSetPrices(std::vector<Price> prices) {
    absl::StatusOr<std::vector<Price>> stored = SetPrices(std::move(prices));
    ASSERT_TRUE(stored.ok()) << stored.status();
  }

  absl::StatusOr<Account> AddCredits(int64_t amount,
                                     const std::string& request_id = "") {
    return AwaitResult<Account>([&](Done<Account> done) {
      billing().AddCredits(account_, amount, "test",
                           IdempotencyKey{"AddCredits", request_id, "h"},
                           std::move(done));
    });
  }

  // A draft SMS campaign with `body` and one recipient per (address, name);
  // `with_country` stores each row's country as an import does.
  Campaign NewCampaign(const std::string& body, const RecipientRows& rows,
                       bool with_country = true) {
    Campaign c;
    c.id = NewId(kCampaignPrefix);
    c.account_id = account_;
    c.name = c.id;
    c.channel = Channel::kSms;
    c.sender_id = "+15550300";
    c.body = body;
    c.created_at = c.updated_at = NowMicros();
    absl::StatusOr<Campaign> created =
        AwaitResult<Campaign>([&](Done<Campaign> done) {
          campaigns().CreateCampaign(c, {}, std::move(done));
        });
    EXPECT_TRUE(created.ok()) << created.status();
    EXPECT_TRUE(Import(c.id, rows, with_country).ok());
    return Get(c.id);
  }

  absl::StatusOr<Campaign> Import(const std::string& id,
                                  const RecipientRows& rows,
                                  bool with_country = true) {
    absl::StatusOr<ImportLease> lease =
        AwaitResult<ImportLease>([&](Done<ImportLease> done) {
          recipients().BeginRecipientImport(account_, id, std::move(done));
        });
    EXPECT_TRUE(lease.ok()) << lease.status();
    if (!lease.ok()) return lease.status();
    std::vector<StagedRecipient> staged;
    int64_t row = 0;
    for (const auto& [address, name] : rows) {
      StagedRecipient r;
      r.address = address;
      r.variables_json =
          name.empty() ? "{}" : VariablesToJson({{"name", name}});
      if (with_country) r.country = RegionOfPhoneNumber(address);
      r.row = ++row;
      staged.push_back(std::move(r));
    }
    absl::StatusOr<std::vector<int32_t>> dup =
        AwaitResult<std::vector<int32_t>>([&](Done<std::vector<int32_t>> done) {
          recipients().StageRecipients(*lease, staged, std::move(done));
        });
    EXPECT_TRUE(dup.ok() && dup->empty());
    lease->settled = true;
    absl::StatusOr<ImportDuplicates> settled =
        recipients().SettleRecipientImport(*lease, 0);
    EXPECT_TRUE(settled.ok() && settled->count == 0) << settled.status();
    absl::StatusOr<Campaign> committed =
        AwaitResult<Campaign>([&](Done<Campaign> done) {
          recipients().CommitRecipientImport(*lease,
                                             static_cast<int64_t>(rows.size()),
                                             "", {}, std::move(done));
        });
    if (!committed.ok()) {
      EXPECT_TRUE(AwaitStatus([&](StatusDone done) {
                    recipients().AbortRecipientImport(*lease, std::move(done));
                  }).ok());
    }
    return committed;
  }

  // `n` US numbers named "n<i>" (one GSM-7 segment with a short body).
  static RecipientRows UsRows(int n, int base) {
    RecipientRows rows;
    for (int i = 0; i < n; ++i) {
      rows.emplace_back(absl::StrCat("+1202", 5000000 + base + i),
                        absl::StrCat("n", i));
    }
    return rows;
  }

  absl::StatusOr<Campaign> Start(const std::string& id,
                                 std::optional<absl::Time> send_at = {}) {
    LifecycleChange change;
    change.event = CampaignEvent::kStart;
    change.now = NowMicros();
    change.send_at = send_at;
    return AwaitResult<Campaign>([&](Done<Campaign> done) {
      dispatch().TransitionCampaign(account_, id, change, std::move(done));
    });
  }

  absl::Status Prepare(const std::string& id) {
    return AwaitStatus([&](StatusDone done) {
      billing().PrepareCosts(account_, id, /*only_if_priced=*/false,
                             std::move(done));
    });
  }

  absl::StatusOr<CostEstimateValue> Estimate(const std::string& id) {
    EXPECT_TRUE(Prepare(id).ok());
    absl::StatusOr<std::optional<CostEstimateValue>> e =
        billing().ReadEstimate(account_, id);
    if (!e.ok()) return e.status();
    EXPECT_TRUE(e->has_value()) << "prepared, yet not all counted";
    if (!e->has_value()) return absl::InternalError("not counted");
    return **e;
  }

  absl::StatusOr<Campaign> UpdateBody(const std::string& id,
                                      std::function<void(Campaign&)> edit) {
    return AwaitResult<Campaign>([&](Done<Campaign> done) {
      campaigns().UpdateCampaign(
          account_, id,
          [edit](Campaign& x) {
            edit(x);
            return absl::OkStatus();
          },
          std::move(done));
    });
  }

  Campaign Get(const std::string& id) {
    absl::StatusOr<Campaign> c = campaigns().GetCampaign(account_, id);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : Campaign();
  }

  Account GetAccount() {
    absl::StatusOr<Account> a = accounts().GetAccount(account_);
    EXPECT_TRUE(a.ok()) << a.status();
    return a.ok() ? *a : Account();
  }

  // balance + reserved = added - debited, for the account and every row.
  void ExpectLedgerIdentity() {
    absl::StatusOr<Page<Transaction>> page =
        billing().ListTransactions(account_, PageRequest{1, 100, 0});
    ASSERT_TRUE(page.ok()) << page.status();
    int64_t added = 0;
    int64_t debited = 0;
    for (auto it = page->items.rbegin(); it != page->items.rend(); ++it) {
      if (it->type == Transaction::Type::kCredit) added += it->amount;
      if (it->type == Transaction::Type::kDebit) debited += it->amount;
      EXPECT_EQ(it->balance_after + it->reserved_after, added - debited);
    }
    const Account a = GetAccount();
    EXPECT_EQ(a.credits_balance + a.credits_reserved, added - debited);
  }

  std::string account_;
};

TEST_P(BillingRepositoryTest,
       EstimateGroupsByCountryAndCountsSegmentsOfEachMessage) {
  MustSetPrices({Price{Channel::kSms, "", 50000},
                 Price{Channel::kSms, "US", 40000},
                 Price{Channel::kWhatsapp, "", 99}});
  ASSERT_TRUE(AddCredits(200000).ok());
  // "Hi " + name: 3 + 157 = 160 GSM-7 septets is one segment, 161 two;
  // an extension character counts twice; one character outside GSM-7
  // makes it UCS-2: 70 units one segment, 71 two (67 per part).
  const std::string gsm157(157, 'a');
  const RecipientRows rows = {
      {"+12025550101", gsm157},                       // US, 1 segment
      {"+12025550102", gsm157 + "b"},                 // US, 2
      {"+12025550103", std::string(156, 'a') + "{"},  // US, 161 septets: 2
      {"+33612345678", std::string(66, 'a') + "\xc3\xab"},  // FR, UCS-2 70: 1
      {"+33612345679", std::string(67, 'a') + "\xc3\xab"},  // FR, 71: 2
      {"+33612345670", ""},  // FR, lacks {{name}}: skipped, 0
  };
  Campaign c = NewCampaign("Hi {{name}}", rows, /*with_country=*/false);
  absl::StatusOr<CostEstimateValue> e = Estimate(c.id);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->campaign_id, c.id);
  EXPECT_EQ(e->currency, "EUR");
  ASSERT_EQ(e->lines.size(), 2u);
  EXPECT_EQ(e->lines[0].channel, Channel::kSms);
  EXPECT_EQ(e->lines[0].country, "FR");
  EXPECT_EQ(e->lines[0].recipients, 3);
  EXPECT_EQ(e->lines[0].units, 3);
  EXPECT_EQ(e->lines[0].unit_price, 50000);
  EXPECT_EQ(e->lines[0].amount, 150000);
  EXPECT_EQ(e->lines[1].country, "US");
  EXPECT_EQ(e->lines[1].recipients, 3);
  EXPECT_EQ(e->lines[1].units, 5);
  EXPECT_EQ(e->lines[1].unit_price, 40000);
  EXPECT_EQ(e->lines[1].amount, 200000);
  EXPECT_EQ(e->total, 350000);
  EXPECT_EQ(e->credits_available, 200000);
  EXPECT_FALSE(e->sufficient);

  // A shorter message is recounted: every recipient one segment now.
  ASSERT_TRUE(UpdateBody(c.id, [](Campaign& x) { x.body = "{{name}}"; }).ok());
  e = Estimate(c.id);
  ASSERT_TRUE(e.ok()) << e.status();
  // FR: 67 UCS-2 units (1), 68 (1), none (0); US: 157, 158, 156 + '{'
  // (one each).
  EXPECT_EQ(e->total, 2 * 50000 + 3 * 40000);
  EXPECT_TRUE(e->sufficient == (e->total <= 200000));
}

TEST_P(BillingRepositoryTest,
       AConstantMessageIsPricedPerCountryWithoutPerRowWork) {
  MustSetPrices({Price{Channel::kUnspecified, "", 1000},
                 Price{Channel::kSms, "GB", 3000}});
  // 200 GSM-7 characters: two segments for everyone.
  Campaign c = NewCampaign(
      std::string(200, 'x'),
      {{"+12025550101", ""}, {"+442079460958", ""}, {"+442079460959", ""}});
  absl::StatusOr<CostEstimateValue> e = Estimate(c.id);
  ASSERT_TRUE(e.ok()) << e.status();
  std::map<std::string, CostLineValue> by_country;
  for (const CostLineValue& l : e->lines) by_country[l.country] = l;
  ASSERT_EQ(by_country.size(), 2u);
  EXPECT_EQ(by_country["US"].units, 2);
  EXPECT_EQ(by_country["US"].amount, 2000);  // the account-wide default
  EXPECT_EQ(by_country["GB"].recipients, 2);
  EXPECT_EQ(by_country["GB"].units, 4);
  EXPECT_EQ(by_country["GB"].unit_price, 3000);
  EXPECT_EQ(by_country["GB"].amount, 12000);
  EXPECT_EQ(e->total, 14000);
  EXPECT_EQ(e->credits_available, 0);
  EXPECT_FALSE(e->sufficient);
}

TEST_P(BillingRepositoryTest, AnEstimateIsOnlyReadOnceEveryRecipientIsCounted) {
  MustSetPrices({Price{Channel::kSms, "", 1000}});
  Campaign c = NewCampaign("Hi {{name}}", UsRows(5, 0));
  // Not counted yet: the read says so rather than guess.
  absl::StatusOr<std::optional<CostEstimateValue>> early =
      billing().ReadEstimate(account_, c.id);
  ASSERT_TRUE(early.ok()) << early.status();
  EXPECT_FALSE(early->has_value());
  ASSERT_TRUE(Estimate(c.id).ok());
  // New recipients are not counted until prepared.
  ASSERT_TRUE(Import(c.id, UsRows(3, 100)).ok());
  absl::StatusOr<std::optional<CostEstimateValue>> stale =
      billing().ReadEstimate(account_, c.id);
  ASSERT_TRUE(stale.ok()) << stale.status();
  EXPECT_FALSE(stale->has_value());
  absl::StatusOr<CostEstimateValue> e = Estimate(c.id);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->total, 8000);
  // Nor after the message changed.
  ASSERT_TRUE(
      UpdateBody(c.id, [](Campaign& x) { x.body = "Hello {{name}}"; }).ok());
  absl::StatusOr<std::optional<CostEstimateValue>> changed =
      billing().ReadEstimate(account_, c.id);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_FALSE(changed->has_value());
}

TEST_P(BillingRepositoryTest,
       AnEmailCostsNothingForWhomItsSubjectOrHtmlWouldSkip) {
  MustSetPrices({Price{Channel::kEmail, "", 700}});
  ASSERT_TRUE(AwaitResult<Sender>([&](Done<Sender> done) {
                senders().RegisterSender(
                    test_builders::NewSender(account_, "news@example.com",
                                             Channel::kEmail),
                    {}, std::move(done));
              }).ok());
  Campaign c;
  c.id = NewId(kCampaignPrefix);
  c.account_id = account_;
  c.name = "mail";
  c.channel = Channel::kEmail;
  c.sender_id = "news@example.com";
  c.body = "Hello";  // no placeholder: the subject decides
  c.subject = "News for {{name}}";
  c.created_at = c.updated_at = NowMicros();
  ASSERT_TRUE(AwaitResult<Campaign>([&](Done<Campaign> done) {
                campaigns().CreateCampaign(c, {}, std::move(done));
              }).ok());
  ASSERT_TRUE(Import(c.id,
                     {{"ann@example.com", "Ann"},
                      {"bob@example.com", "Bob"},
                      {"eve@example.com", ""}},  // lacks {{name}}: skipped
                     /*with_country=*/false)
                  .ok());
  absl::StatusOr<CostEstimateValue> e = Estimate(c.id);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->total, 2 * 700);

  // A new HTML body is a new message: counted again, now for nobody (no
  // recipient has "code").
  ASSERT_TRUE(UpdateBody(c.id, [](Campaign& x) {
                x.html_body = "<p>{{code}}</p>";
              }).ok());
  absl::StatusOr<std::optional<CostEstimateValue>> changed =
      billing().ReadEstimate(account_, c.id);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_FALSE(changed->has_value());
  e = Estimate(c.id);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->total, 0);
}

TEST_P(BillingRepositoryTest, AContactAudienceIsEstimatedFromItsContacts) {
  MustSetPrices({Price{Channel::kSms, "", 1000}});
  for (int i = 0; i < 4; ++i) {
    Contact ct;
    ct.id = NewId(kContactPrefix);
    ct.account_id = account_;
    ct.channel = Channel::kSms;
    ct.address = absl::StrCat("+1202555010", i);
    ct.attributes = {{"name", "A"}};
    ct.tags = {i < 3 ? "vip" : "other"};
    ct.created_at = ct.updated_at = NowMicros();
    ASSERT_TRUE(AwaitResult<Contact>([&](Done<Contact> done) {
                  contacts().CreateContact(ct, {}, std::move(done));
                }).ok());
  }
  Campaign c;
  c.id = NewId(kCampaignPrefix);
  c.account_id = account_;
  c.name = c.id;
  c.channel = Channel::kSms;
  c.sender_id = "+15550300";
  c.body = "Hi {{name}}";
  c.tags = {"vip"};
  c.created_at = c.updated_at = NowMicros();
  ASSERT_TRUE(AwaitResult<Campaign>([&](Done<Campaign> done) {
                campaigns().CreateCampaign(c, {}, std::move(done));
              }).ok());
  absl::StatusOr<CostEstimateValue> e = Estimate(c.id);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->total, 3000);
  ASSERT_EQ(e->lines.size(), 1u);
  EXPECT_EQ(e->lines[0].country, "US");
  EXPECT_EQ(e->lines[0].recipients, 3);
  EXPECT_EQ(Get(c.id).stats.queued, 3);
}

TEST_P(BillingRepositoryTest, OnlyIfPricedPreparesNothingForAFreeAccount) {
  Campaign c = NewCampaign("Hi {{name}}", UsRows(3, 0));
  ASSERT_TRUE(AwaitStatus([&](StatusDone done) {
                billing().PrepareCosts(account_, c.id, /*only_if_priced=*/true,
                                       std::move(done));
              }).ok());
  absl::StatusOr<std::optional<CostEstimateValue>> e =
      billing().ReadEstimate(account_, c.id);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_FALSE(e->has_value());
  // Without: counted, and free.
  absl::StatusOr<CostEstimateValue> free = Estimate(c.id);
  ASSERT_TRUE(free.ok()) << free.status();
  EXPECT_EQ(free->total, 0);
  EXPECT_TRUE(free->sufficient);
}

TEST_P(BillingRepositoryTest, CreditsAreIdempotentUnderARequestId) {
  absl::StatusOr<Account> first = AddCredits(5000, "topup-1");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->credits_balance, 5000);
  absl::StatusOr<Account> again = AddCredits(5000, "topup-1");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->credits_balance, 5000);
  ASSERT_TRUE(AddCredits(7000).ok());
  EXPECT_EQ(GetAccount().credits_balance, 12000);
  // The same request id with another body is a conflict.
  absl::StatusOr<Account> conflict = AwaitResult<Account>([&](Done<Account> d) {
    billing().AddCredits(account_, 9000, "test",
                         IdempotencyKey{"AddCredits", "topup-1", "other"},
                         std::move(d));
  });
  EXPECT_EQ(errors::ReasonOf(conflict.status()), "IDEMPOTENCY_CONFLICT")
      << conflict.status();
  absl::StatusOr<Page<Transaction>> page =
      billing().ListTransactions(account_, PageRequest{1, 1, 0});
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->total, 2);
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_EQ(page->items[0].amount, 7000);  // newest first
  EXPECT_EQ(page->items[0].type, Transaction::Type::kCredit);
  EXPECT_EQ(page->items[0].description, "test");
  EXPECT_EQ(page->items[0].balance_after, 12000);
  EXPECT_TRUE(page->has_more);
  absl::StatusOr<Page<Transaction>> next =
      billing().ListTransactions(account_, PageRequest{2, 1, page->next_key});
  ASSERT_TRUE(next.ok()) << next.status();
  ASSERT_EQ(next->items.size(), 1u);
  EXPECT_EQ(next->items[0].amount, 5000);
  EXPECT_FALSE(next->has_more);
  EXPECT_EQ(next->next_key, 0);
  // Numbered pages too.
  absl::StatusOr<Page<Transaction>> second =
      billing().ListTransactions(account_, PageRequest{2, 1, 0});
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->items.size(), 1u);
  EXPECT_EQ(second->items[0].amount, 5000);
  ExpectLedgerIdentity();
}

TEST_P(BillingRepositoryTest, PricesAreStoredInOrderAndReplacedWhole) {
  absl::StatusOr<std::vector<Price>> stored = SetPrices(
      {Price{Channel::kSms, "us", 40000}, Price{Channel::kEmail, "", 700},
       Price{Channel::kSms, "", 50000}, Price{Channel::kUnspecified, "", 1}});
  ASSERT_TRUE(stored.ok()) << stored.status();
  absl::StatusOr<std::vector<Price>> got = billing().GetPrices(account_);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 4u);
  EXPECT_EQ(got->size(), stored->size());
  // By channel name ("" first), then country.
  EXPECT_EQ((*got)[0].channel, Channel::kUnspecified);
  EXPECT_EQ((*got)[1].channel, Channel::kEmail);
  EXPECT_EQ((*got)[2].channel, Channel::kSms);
  EXPECT_EQ((*got)[2].country, "");
  EXPECT_EQ((*got)[3].country, "US");
  EXPECT_EQ((*got)[3].amount, 40000);
  for (size_t i = 0; i < got->size(); ++i) {
    EXPECT_EQ((*got)[i].channel, (*stored)[i].channel);
    EXPECT_EQ((*got)[i].country, (*stored)[i].country);
    EXPECT_EQ((*got)[i].amount, (*stored)[i].amount);
  }
  ASSERT_TRUE(SetPrices({Price{Channel::kSms, "", 5}}).ok());
  got = billing().GetPrices(account_);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].amount, 5);
  ASSERT_TRUE(SetPrices({}).ok());
  got = billing().GetPrices(account_);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->empty());
}

TEST_P(BillingRepositoryTest, UnknownAccountsAndCampaignsAreNotFound) {
  const std::string nobody = NewId(kAccountPrefix);
  ExpectNotFound(
      AwaitResult<std::vector<Price>>([&](Done<std::vector<Price>> done) {
        billing().SetPrices(nobody, {}, std::move(done));
      }).status());
  ExpectNotFound(AwaitResult<Account>([&](Done<Account> done) {
                   billing().AddCredits(nobody, 5, "", {}, std::move(done));
                 }).status());
  ExpectNotFound(billing().CampaignStatsOf(nobody, StatsFilter{}).status());
  ExpectNotFound(billing().ReadEstimate(account_, "cmp_nope").status());
  ExpectNotFound(billing().ReadEstimate("", "cmp_nope").status());
  // Another account's campaign is as unknown; PrepareCosts says nothing.
  const std::string other = MustCreateAccount("other");
  Campaign c = NewCampaign("Hi", UsRows(2, 0));
  ExpectNotFound(billing().ReadEstimate(other, c.id).status());
  EXPECT_TRUE(AwaitStatus([&](StatusDone done) {
                billing().PrepareCosts(other, c.id, false, std::move(done));
              }).ok());
  EXPECT_TRUE(AwaitStatus([&](StatusDone done) {
                billing().PrepareCosts(account_, "cmp_nope", false,
                                       std::move(done));
              }).ok());
  // An account without a ledger lists nothing.
  absl::StatusOr<Page<Transaction>> none =
      billing().ListTransactions(other, PageRequest{});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->total, 0);
  EXPECT_TRUE(none->items.empty());
  absl::StatusOr<std::vector<Price>> no_prices = billing().GetPrices(other);
  ASSERT_TRUE(no_prices.ok()) << no_prices.status();
  EXPECT_TRUE(no_prices->empty());
}

TEST_P(BillingRepositoryTest, StatsSumStoredCountersByDateAndChannel) {
  const absl::Time before = NowMicros();
  Campaign a = NewCampaign("Hi", UsRows(3, 0));
  Campaign b = NewCampaign("Hi", UsRows(5, 100));
  const absl::Time after = NowMicros() + absl::Microseconds(1);
  absl::StatusOr<AccountStats> all =
      billing().CampaignStatsOf(account_, StatsFilter{});
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->currency, "EUR");
  EXPECT_EQ(all->campaigns, 2);
  EXPECT_EQ(all->stats.total, 8);
  EXPECT_EQ(all->stats.queued, 8);
  EXPECT_EQ(all->cost, 0);
  ASSERT_EQ(all->by_channel.size(), 1u);
  EXPECT_EQ(all->by_channel[0].channel, Channel::kSms);
  EXPECT_EQ(all->by_channel[0].campaigns, 2);
  StatsFilter window;
  window.from = b.created_at;
  window.to = after;
  absl::StatusOr<AccountStats> recent =
      billing().CampaignStatsOf(account_, window);
  ASSERT_TRUE(recent.ok()) << recent.status();
  EXPECT_EQ(recent->campaigns, 1);
  EXPECT_EQ(recent->stats.total, 5);
  StatsFilter none;
  none.to = before;
  EXPECT_EQ(billing().CampaignStatsOf(account_, none)->campaigns, 0);
  StatsFilter email;
  email.channel = Channel::kEmail;
  EXPECT_EQ(billing().CampaignStatsOf(account_, email)->campaigns, 0);
  // A deleted campaign no longer counts.
  ASSERT_TRUE(AwaitStatus([&](StatusDone done) {
                campaigns().DeleteCampaign(account_, a.id, std::move(done));
              }).ok());
  all = billing().CampaignStatsOf(account_, StatsFilter{});
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->campaigns, 1);
  EXPECT_EQ(all->stats.total, 5);
}

TEST_P(BillingRepositoryTest, ConcurrentStartsNeverReserveMoreThanTheBalance) {
  MustSetPrices({Price{Channel::kSms, "", 10000}});
  ASSERT_TRUE(AddCredits(1000000).ok());
  // Eight campaigns of 300,000 each against a balance of 1,000,000.
  std::vector<std::string> ids;
  for (int i = 0; i < 8; ++i)
    ids.push_back(NewCampaign("Hi {{name}}", UsRows(30, i * 100)).id);
  std::atomic<int> started{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (const std::string& id : ids) {
    threads.emplace_back([&, id] {
      absl::StatusOr<Campaign> c = Start(id);
      if (c.ok()) {
        ++started;
      } else {
        EXPECT_EQ(errors::ReasonOf(c.status()), "INSUFFICIENT_CREDITS")
            << c.status();
        EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
        ++refused;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(started.load(), 3);
  EXPECT_EQ(refused.load(), 5);
  const Account a = GetAccount();
  EXPECT_EQ(a.credits_reserved, 900000);
  EXPECT_EQ(a.credits_balance, 100000);
  int drafts = 0;
  for (const std::string& id : ids) {
    const Campaign c = Get(id);
    if (c.status == CampaignStatus::kDraft) {
      ++drafts;
      EXPECT_EQ(c.credits_reserved, 0);
    } else {
      EXPECT_EQ(c.credits_reserved, 300000);
    }
  }
  EXPECT_EQ(drafts, 5);
  ExpectLedgerIdentity();
}

TEST_P(BillingRepositoryTest,
       AStartItsEstimateExceedsIsRefusedAndChangesNothing) {
  MustSetPrices(
      {Price{Channel::kSms, "", 50000}, Price{Channel::kSms, "US", 40000}});
  ASSERT_TRUE(AddCredits(200000).ok());
  // 1 + 2 segments in the US, 1 + 2 in France: 120,000 + 150,000.
  const std::string gsm157(157, 'a');
  Campaign c =
      NewCampaign("Hi {{name}}",
                  {{"+12025550101", gsm157},
                   {"+12025550102", gsm157 + "b"},
                   {"+33612345678", std::string(66, 'a') + "\xc3\xab"},
                   {"+33612345679", std::string(67, 'a') + "\xc3\xab"}},
                  /*with_country=*/false);
  absl::StatusOr<CostEstimateValue> e = Estimate(c.id);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->total, 270000);
  EXPECT_FALSE(e->sufficient);
  // Refused at start, with nothing reserved or changed.
  absl::StatusOr<Campaign> refused = Start(c.id);
  EXPECT_EQ(errors::ReasonOf(refused.status()), "INSUFFICIENT_CREDITS");
  EXPECT_EQ(Get(c.id).status, CampaignStatus::kDraft);
  EXPECT_EQ(GetAccount().credits_balance, 200000);
  EXPECT_EQ(GetAccount().credits_reserved, 0);
  ExpectLedgerIdentity();
}

TEST_P(BillingRepositoryTest, ImportsIntoAStartedCampaignReserveTheirCost) {
  MustSetPrices({Price{Channel::kSms, "", 10000}});
  ASSERT_TRUE(AddCredits(500000).ok());
  Campaign c = NewCampaign("Hi {{name}}", UsRows(10, 0));
  ASSERT_TRUE(Start(c.id, NowMicros() + absl::Hours(1)).ok());
  EXPECT_EQ(Get(c.id).status, CampaignStatus::kScheduled);
  EXPECT_EQ(GetAccount().credits_reserved, 100000);
  ASSERT_TRUE(Import(c.id, UsRows(20, 100)).ok());
  EXPECT_EQ(Get(c.id).credits_reserved, 300000);
  EXPECT_EQ(GetAccount().credits_balance, 200000);
  // 30 more do not fit: the import is refused and nothing is added.
  absl::StatusOr<Campaign> refused = Import(c.id, UsRows(30, 200));
  EXPECT_EQ(errors::ReasonOf(refused.status()), "INSUFFICIENT_CREDITS");
  const Campaign after = Get(c.id);
  EXPECT_EQ(after.stats.total, 30);
  EXPECT_EQ(after.stats.queued, 30);
  EXPECT_EQ(after.credits_reserved, 300000);
  EXPECT_EQ(GetAccount().credits_balance, 200000);
  ExpectLedgerIdentity();
  // The refused rows are gone: a later import that fits adds only its own.
  ASSERT_TRUE(Import(c.id, UsRows(5, 300)).ok());
  EXPECT_EQ(Get(c.id).stats.total, 35);
  EXPECT_EQ(Get(c.id).credits_reserved, 350000);
  ExpectLedgerIdentity();
}

TEST_P(BillingRepositoryTest,
       UpdatingAScheduledCampaignReservesAnewAndDeleteReleases) {
  MustSetPrices({Price{Channel::kSms, "", 10000}});
  ASSERT_TRUE(AddCredits(1000000).ok());
  Campaign c = NewCampaign("Hi {{name}}", UsRows(10, 0));
  ASSERT_TRUE(Start(c.id, NowMicros() + absl::Hours(1)).ok());
  EXPECT_EQ(GetAccount().credits_reserved, 100000);
  // 315 GSM-7 characters: three segments (153 each) for everyone.
  ASSERT_TRUE(UpdateBody(c.id, [](Campaign& x) {
                x.body = "Hi {{name}}" + std::string(310, '.');
              }).ok());
  EXPECT_EQ(Get(c.id).credits_reserved, 300000);
  EXPECT_EQ(GetAccount().credits_reserved, 300000);
  ASSERT_TRUE(AwaitStatus([&](StatusDone done) {
                campaigns().DeleteCampaign(account_, c.id, std::move(done));
              }).ok());
  EXPECT_EQ(GetAccount().credits_reserved, 0);
  EXPECT_EQ(GetAccount().credits_balance, 1000000);
  ExpectLedgerIdentity();
}

INSTANTIATE_TEST_SUITE_P(Engines, BillingRepositoryTest,
                         ::testing::ValuesIn(kEngines), EngineName);

}  // namespace
}  // namespace campaigns::conformance
