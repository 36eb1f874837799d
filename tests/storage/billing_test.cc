// The money side of the store: reservations at start (atomic, never more
// than the balance, however many starts race), estimates from grouped
// queries over stored countries and SMS segments, imports and updates of
// started campaigns, releases, idempotent credits, and statistics.
#include "server/domain/billing.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "server/domain/address.h"
#include "server/domain/errors.h"
#include "server/domain/import_rows.h"
#include "storage/sqlite/store.h"
#include "tests/storage/temp_db.h"

namespace campaigns::storage {
namespace {

using test_util::AwaitResult;
using test_util::AwaitStatus;
using test_util::TempDir;

constexpr char kBillingSecret[] = "ck_billing_test_admin_secret";

class BillingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DatabaseOptions options;
    options.path = dir_.File("billing.db");
    auto db = Database::Open(options);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
    store_ = std::make_unique<Store>(db_.get());
    ASSERT_TRUE(store_->BootstrapAdmin(kBillingSecret).ok());
    account_ = store_->Authenticate(kBillingSecret)->account_id;
    Sender s;
    s.id = "snd_billing";
    s.account_id = account_;
    s.sender_id = "+15550300";
    s.channel = Channel::kSms;
    s.created_at = s.updated_at = NowMicros();
    ASSERT_TRUE(AwaitResult<Sender>([&](auto done) {
                  store_->RegisterSender(s, {}, done);
                }).ok());
  }

  void TearDown() override {
    db_->Flush();
    db_->Close();
  }

  void SetPrices(std::vector<Price> prices) {
    auto normalized = NormalizePrices(std::move(prices));
    ASSERT_TRUE(normalized.ok()) << normalized.status();
    auto stored = AwaitResult<std::vector<Price>>(
        [&](auto done) { store_->SetPrices(account_, *normalized, done); });
    ASSERT_TRUE(stored.ok()) << stored.status();
  }

  absl::StatusOr<Account> AddCredits(int64_t amount,
                                     const std::string& request_id = "") {
    return AwaitResult<Account>([&](auto done) {
      store_->AddCredits(account_, amount, "test",
                         IdempotencyKey{"AddCredits", request_id, "h"}, done);
    });
  }

  // A draft SMS campaign with `body` and one recipient per (address, name);
  // `with_country` stores each row's country as an import does.
  Campaign NewCampaign(
      const std::string& body,
      const std::vector<std::pair<std::string, std::string>>& rows,
      bool with_country = true) {
    Campaign c;
    c.id = absl::StrCat("cmp_b", next_++);
    c.account_id = account_;
    c.name = c.id;
    c.channel = Channel::kSms;
    c.sender_id = "+15550300";
    c.body = body;
    c.created_at = c.updated_at = NowMicros();
    auto created = AwaitResult<Campaign>(
        [&](auto done) { store_->CreateCampaign(c, {}, done); });
    EXPECT_TRUE(created.ok()) << created.status();
    EXPECT_TRUE(Import(c.id, rows, with_country).ok());
    return Get(c.id);
  }

  absl::StatusOr<Campaign> Import(
      const std::string& id,
      const std::vector<std::pair<std::string, std::string>>& rows,
      bool with_country = true) {
    auto lease = AwaitResult<ImportLease>(
        [&](auto done) { store_->BeginRecipientImport(account_, id, done); });
    EXPECT_TRUE(lease.ok()) << lease.status();
    if (!lease.ok()) return lease.status();
    std::vector<StagedRecipient> staged;
    for (const auto& [address, name] : rows) {
      StagedRecipient r;
      r.address = address;
      r.variables_json =
          name.empty() ? "{}" : VariablesToJson({{"name", name}});
      if (with_country) r.country = RegionOfPhoneNumber(address);
      staged.push_back(std::move(r));
    }
    auto dup = AwaitResult<std::vector<int32_t>>(
        [&](auto done) { store_->StageRecipients(*lease, staged, done); });
    EXPECT_TRUE(dup.ok() && dup->empty());
    lease->settled = true;
    auto settled = store_->SettleRecipientImport(*lease, 0);
    EXPECT_TRUE(settled.ok() && settled->count == 0) << settled.status();
    auto committed = AwaitResult<Campaign>([&](auto done) {
      store_->CommitRecipientImport(*lease, static_cast<int64_t>(rows.size()),
                                    "", {}, done);
    });
    if (!committed.ok()) {
      EXPECT_TRUE(AwaitStatus([&](auto done) {
                    store_->AbortRecipientImport(*lease, done);
                  }).ok());
    }
    return committed;
  }

  // `n` US numbers named "n<i>" (one GSM-7 segment with a short body).
  static std::vector<std::pair<std::string, std::string>> UsRows(int n,
                                                                 int base) {
    std::vector<std::pair<std::string, std::string>> rows;
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
    return AwaitResult<Campaign>([&](auto done) {
      store_->TransitionCampaign(account_, id, change, done);
    });
  }

  absl::StatusOr<CostEstimateValue> Estimate(const std::string& id) {
    EXPECT_TRUE(AwaitStatus([&](auto done) {
                  store_->PrepareCosts(account_, id, false, done);
                }).ok());
    absl::StatusOr<std::optional<CostEstimateValue>> e =
        store_->ReadEstimate(account_, id);
    if (!e.ok()) return e.status();
    EXPECT_TRUE(e->has_value()) << "prepared, yet not all counted";
    if (!e->has_value()) return absl::InternalError("not counted");
    return **e;
  }

  Campaign Get(const std::string& id) {
    auto c = store_->GetCampaign(account_, id);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : Campaign();
  }

  Account GetAccount() { return *store_->GetAccount(account_); }

  // balance + reserved = added - debited, for the account and every row.
  void ExpectLedgerIdentity() {
    auto page = store_->ListTransactions(account_, PageRequest{1, 100, 0});
    ASSERT_TRUE(page.ok());
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

  TempDir dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<Store> store_;
  std::string account_;
  int next_ = 0;
};

TEST_F(BillingTest, ConcurrentStartsNeverReserveMoreThanTheBalance) {
  SetPrices({Price{Channel::kSms, "", 10000}});
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

TEST_F(BillingTest, EstimateGroupsByCountryAndCountsSegmentsOfEachMessage) {
  SetPrices({Price{Channel::kSms, "", 50000}, Price{Channel::kSms, "US", 40000},
             Price{Channel::kWhatsapp, "", 99}});
  ASSERT_TRUE(AddCredits(200000).ok());
  // "Hi " + name: 3 + 157 = 160 GSM-7 septets is one segment, 161 two;
  // an extension character counts twice; one character outside GSM-7
  // makes it UCS-2: 70 units one segment, 71 two (67 per part).
  const std::string gsm157(157, 'a');
  const std::vector<std::pair<std::string, std::string>> rows = {
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
  EXPECT_EQ(e->currency, "EUR");
  ASSERT_EQ(e->lines.size(), 2u);
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
  // Refused at start, with nothing reserved or changed.
  absl::StatusOr<Campaign> refused = Start(c.id);
  EXPECT_EQ(errors::ReasonOf(refused.status()), "INSUFFICIENT_CREDITS");
  EXPECT_EQ(Get(c.id).status, CampaignStatus::kDraft);
  EXPECT_EQ(GetAccount().credits_balance, 200000);
  EXPECT_EQ(GetAccount().credits_reserved, 0);

  // A shorter message is recounted: every recipient one segment now.
  ASSERT_TRUE(AwaitResult<Campaign>([&](auto done) {
                store_->UpdateCampaign(
                    account_, c.id,
                    [](Campaign& x) {
                      x.body = "{{name}}";
                      return absl::OkStatus();
                    },
                    done);
              }).ok());
  e = Estimate(c.id);
  ASSERT_TRUE(e.ok()) << e.status();
  // FR: 67 UCS-2 units (1), 68 (1), none (0); US: 157, 158, 156 + '{'
  // (one each).
  EXPECT_EQ(e->total, 2 * 50000 + 3 * 40000);
  EXPECT_TRUE(e->sufficient == (e->total <= 200000));
}

TEST_F(BillingTest, AConstantMessageIsPricedPerCountryWithoutPerRowWork) {
  SetPrices({Price{Channel::kUnspecified, "", 1000},
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

TEST_F(BillingTest, AnEstimateIsOnlyReadOnceEveryRecipientIsCounted) {
  SetPrices({Price{Channel::kSms, "", 1000}});
  Campaign c = NewCampaign("Hi {{name}}", UsRows(5, 0));
  // Not counted yet: the read says so rather than guess.
  auto early = store_->ReadEstimate(account_, c.id);
  ASSERT_TRUE(early.ok()) << early.status();
  EXPECT_FALSE(early->has_value());
  ASSERT_TRUE(Estimate(c.id).ok());
  // New recipients are not counted until prepared.
  ASSERT_TRUE(Import(c.id, UsRows(3, 100)).ok());
  auto stale = store_->ReadEstimate(account_, c.id);
  ASSERT_TRUE(stale.ok());
  EXPECT_FALSE(stale->has_value());
  absl::StatusOr<CostEstimateValue> e = Estimate(c.id);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->total, 8000);
  // Nor after the message changed.
  ASSERT_TRUE(AwaitResult<Campaign>([&](auto done) {
                store_->UpdateCampaign(
                    account_, c.id,
                    [](Campaign& x) {
                      x.body = "Hello {{name}}";
                      return absl::OkStatus();
                    },
                    done);
              }).ok());
  auto changed = store_->ReadEstimate(account_, c.id);
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(changed->has_value());
}

TEST_F(BillingTest, AnEmailCostsNothingForWhomItsSubjectOrHtmlWouldSkip) {
  SetPrices({Price{Channel::kEmail, "", 700}});
  Sender s;
  s.id = "snd_mail";
  s.account_id = account_;
  s.sender_id = "news@example.com";
  s.channel = Channel::kEmail;
  s.created_at = s.updated_at = NowMicros();
  ASSERT_TRUE(AwaitResult<Sender>([&](auto done) {
                store_->RegisterSender(s, {}, done);
              }).ok());
  Campaign c;
  c.id = "cmp_mail";
  c.account_id = account_;
  c.name = "mail";
  c.channel = Channel::kEmail;
  c.sender_id = "news@example.com";
  c.body = "Hello";  // no placeholder: the subject decides
  c.subject = "News for {{name}}";
  c.created_at = c.updated_at = NowMicros();
  ASSERT_TRUE(AwaitResult<Campaign>([&](auto done) {
                store_->CreateCampaign(c, {}, done);
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
  ASSERT_TRUE(AwaitResult<Campaign>([&](auto done) {
                store_->UpdateCampaign(
                    account_, c.id,
                    [](Campaign& x) {
                      x.html_body = "<p>{{code}}</p>";
                      return absl::OkStatus();
                    },
                    done);
              }).ok());
  auto changed = store_->ReadEstimate(account_, c.id);
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(changed->has_value());
  e = Estimate(c.id);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->total, 0);
}

TEST_F(BillingTest, AContactAudienceIsEstimatedFromItsContacts) {
  SetPrices({Price{Channel::kSms, "", 1000}});
  for (int i = 0; i < 4; ++i) {
    Contact ct;
    ct.id = absl::StrCat("ct_b", i);
    ct.account_id = account_;
    ct.channel = Channel::kSms;
    ct.address = absl::StrCat("+1202555010", i);
    ct.attributes = {{"name", "A"}};
    ct.tags = {i < 3 ? "vip" : "other"};
    ct.created_at = ct.updated_at = NowMicros();
    ASSERT_TRUE(AwaitResult<Contact>([&](auto done) {
                  store_->CreateContact(ct, {}, done);
                }).ok());
  }
  Campaign c;
  c.id = "cmp_tags";
  c.account_id = account_;
  c.name = c.id;
  c.channel = Channel::kSms;
  c.sender_id = "+15550300";
  c.body = "Hi {{name}}";
  c.tags = {"vip"};
  c.created_at = c.updated_at = NowMicros();
  ASSERT_TRUE(AwaitResult<Campaign>([&](auto done) {
                store_->CreateCampaign(c, {}, done);
              }).ok());
  absl::StatusOr<CostEstimateValue> e = Estimate(c.id);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->total, 3000);
  ASSERT_EQ(e->lines.size(), 1u);
  EXPECT_EQ(e->lines[0].country, "US");
  EXPECT_EQ(e->lines[0].recipients, 3);
}

TEST_F(BillingTest, ImportsIntoAStartedCampaignReserveTheirCost) {
  SetPrices({Price{Channel::kSms, "", 10000}});
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
  db_->Flush();
  EXPECT_EQ(Get(c.id).stats.total, 30);
  EXPECT_EQ(GetAccount().credits_balance, 200000);
  ExpectLedgerIdentity();
}

TEST_F(BillingTest, UpdatingAScheduledCampaignReservesAnewAndDeleteReleases) {
  SetPrices({Price{Channel::kSms, "", 10000}});
  ASSERT_TRUE(AddCredits(1000000).ok());
  Campaign c = NewCampaign("Hi {{name}}", UsRows(10, 0));
  ASSERT_TRUE(Start(c.id, NowMicros() + absl::Hours(1)).ok());
  EXPECT_EQ(GetAccount().credits_reserved, 100000);
  // 315 GSM-7 characters: three segments (153 each) for everyone.
  ASSERT_TRUE(AwaitResult<Campaign>([&](auto done) {
                store_->UpdateCampaign(
                    account_, c.id,
                    [](Campaign& x) {
                      x.body = "Hi {{name}}" + std::string(310, '.');
                      return absl::OkStatus();
                    },
                    done);
              }).ok());
  EXPECT_EQ(Get(c.id).credits_reserved, 300000);
  EXPECT_EQ(GetAccount().credits_reserved, 300000);
  ASSERT_TRUE(AwaitStatus([&](auto done) {
                store_->DeleteCampaign(account_, c.id, done);
              }).ok());
  EXPECT_EQ(GetAccount().credits_reserved, 0);
  EXPECT_EQ(GetAccount().credits_balance, 1000000);
  ExpectLedgerIdentity();
}

TEST_F(BillingTest, CreditsAreIdempotentUnderARequestId) {
  ASSERT_TRUE(AddCredits(5000, "topup-1").ok());
  ASSERT_TRUE(AddCredits(5000, "topup-1").ok());
  ASSERT_TRUE(AddCredits(7000).ok());
  EXPECT_EQ(GetAccount().credits_balance, 12000);
  auto page = store_->ListTransactions(account_, PageRequest{1, 1, 0});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->total, 2);
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_EQ(page->items[0].amount, 7000);  // newest first
  EXPECT_TRUE(page->has_more);
  auto next =
      store_->ListTransactions(account_, PageRequest{2, 1, page->next_key});
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(next->items.size(), 1u);
  EXPECT_EQ(next->items[0].amount, 5000);
  EXPECT_FALSE(next->has_more);
}

TEST_F(BillingTest, StatsSumStoredCountersByDateAndChannel) {
  const absl::Time before = NowMicros();
  Campaign a = NewCampaign("Hi", UsRows(3, 0));
  Campaign b = NewCampaign("Hi", UsRows(5, 100));
  const absl::Time after = NowMicros() + absl::Microseconds(1);
  auto all = store_->CampaignStatsOf(account_, StatsFilter{});
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->campaigns, 2);
  EXPECT_EQ(all->stats.total, 8);
  EXPECT_EQ(all->stats.queued, 8);
  ASSERT_EQ(all->by_channel.size(), 1u);
  EXPECT_EQ(all->by_channel[0].channel, Channel::kSms);
  StatsFilter window;
  window.from = b.created_at;
  window.to = after;
  auto recent = store_->CampaignStatsOf(account_, window);
  ASSERT_TRUE(recent.ok());
  EXPECT_EQ(recent->campaigns, 1);
  EXPECT_EQ(recent->stats.total, 5);
  StatsFilter none;
  none.to = before;
  EXPECT_EQ(store_->CampaignStatsOf(account_, none)->campaigns, 0);
  StatsFilter email;
  email.channel = Channel::kEmail;
  EXPECT_EQ(store_->CampaignStatsOf(account_, email)->campaigns, 0);
  (void)a;
}

}  // namespace
}  // namespace campaigns::storage
