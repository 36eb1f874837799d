// The money side of the SQLite store that needs a start (DispatchStore,
// not on PostgreSQL yet): reservations at start (atomic, never more than
// the balance, however many starts race), a start its estimate exceeds,
// imports and updates of started campaigns, releases. The rest of
// BillingRepository's contract, on every engine:
// tests/conformance/billing_repository_test.cc.
#include "server/domain/billing.h"

#include <gtest/gtest.h>

#include <atomic>
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

TEST_F(BillingTest, AStartItsEstimateExceedsIsRefusedAndChangesNothing) {
  SetPrices(
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

}  // namespace
}  // namespace campaigns::storage
