// Money and limits over gRPC: admin-only credits and prices, estimates,
// INSUFFICIENT_CREDITS at start, a paid run's ledger, statistics, and the
// per-key request limit with RetryInfo and a retry-after trailer.
#include <chrono>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "tests/integration/fixture.h"

namespace campaigns::testing {
namespace {

using ImportRequest = v1::ImportRecipientsRequest;

class BillingApiTest : public ServerTest {
 protected:
  std::string AccountIdOf(const std::string& key) {
    v1::Account a;
    EXPECT_TRUE(accounts_->GetAccount(Ctx(key).get(), {}, &a).ok());
    return a.id();
  }

  grpc::Status SetPrices(const std::string& key, const std::string& account,
                         std::vector<v1::Price> prices,
                         v1::SetPricesResponse* out = nullptr) {
    v1::SetPricesRequest req;
    req.set_account_id(account);
    for (v1::Price& p : prices) *req.add_prices() = std::move(p);
    v1::SetPricesResponse ignored;
    return accounts_->SetPrices(Ctx(key).get(), req, out ? out : &ignored);
  }

  static v1::Price MakePrice(v1::Channel channel, const std::string& country,
                             int64_t amount) {
    v1::Price p;
    p.set_channel(channel);
    p.set_country(country);
    p.set_amount(amount);
    return p;
  }

  grpc::Status AddCredits(const std::string& key, const std::string& account,
                          int64_t amount, v1::Account* out = nullptr) {
    v1::AddCreditsRequest req;
    req.set_account_id(account);
    req.set_amount(amount);
    req.set_description("test credits");
    v1::Account ignored;
    return accounts_->AddCredits(Ctx(key).get(), req, out ? out : &ignored);
  }

  // A draft campaign of `key`'s account with the given US numbers.
  std::string CampaignWith(const std::string& key, const std::string& sender,
                           int n) {
    v1::CreateCampaignRequest req = CampaignRequest(sender);
    req.set_body("Hi {{name}}");
    v1::Campaign c;
    grpc::Status s = campaigns_->CreateCampaign(Ctx(key).get(), req, &c);
    EXPECT_TRUE(s.ok()) << s.error_message();
    s = Import(key, c.id(), n, 0);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return c.id();
  }

  // Imports `n` US numbers from +1 202 310 0000 + `base`.
  grpc::Status Import(const std::string& key, const std::string& id, int n,
                      int base) {
    std::string csv = "phone,name\n";
    for (int i = 0; i < n; ++i) {
      absl::StrAppend(&csv, "+1202", 3100000 + base + i, ",n", i, "\n");
    }
    auto ctx = Ctx(key);
    v1::ImportRecipientsResponse out;
    auto writer = campaigns_->ImportRecipients(ctx.get(), &out);
    ImportRequest first;
    first.set_campaign_id(id);
    first.set_format(ImportRequest::csv);
    writer->Write(first);
    ImportRequest chunk;
    chunk.set_csv_chunk(csv);
    writer->Write(chunk);
    writer->WritesDone();
    return writer->Finish();
  }

  v1::Campaign WaitFor(const std::string& key, const std::string& id,
                       v1::Campaign::Status status) {
    v1::GetCampaignRequest req;
    req.set_id(id);
    v1::Campaign c;
    for (int i = 0; i < 6000; ++i) {
      EXPECT_TRUE(campaigns_->GetCampaign(Ctx(key).get(), req, &c).ok());
      if (c.status() == status) return c;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << id << " is " << v1::Campaign::Status_Name(c.status());
    return c;
  }
};

TEST_F(BillingApiTest, CreditsAndPricesAreForAdminsAndCheckTheirFields) {
  const std::string user = NewAccount("user");
  const std::string user_id = AccountIdOf(user);
  EXPECT_EQ(Details(AddCredits(user, user_id, 100)).code,
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Details(SetPrices(user, user_id, {})).code,
            grpc::StatusCode::PERMISSION_DENIED);

  ErrorDetails zero = Details(AddCredits(kAdminKey, user_id, 0));
  EXPECT_EQ(zero.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(zero.fields, std::vector<std::string>{"amount"});
  EXPECT_EQ(Details(AddCredits(kAdminKey, "acct_nope", 5)).code,
            grpc::StatusCode::NOT_FOUND);

  ErrorDetails country = Details(
      SetPrices(kAdminKey, user_id,
                {MakePrice(v1::sms, "", 1), MakePrice(v1::sms, "ZZZ", 1)}));
  EXPECT_EQ(country.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(country.fields, std::vector<std::string>{"prices[1].country"});
  ErrorDetails negative =
      Details(SetPrices(kAdminKey, user_id, {MakePrice(v1::sms, "", -5)}));
  EXPECT_EQ(negative.fields, std::vector<std::string>{"prices[0].amount"});

  v1::SetPricesResponse stored;
  ASSERT_TRUE(
      SetPrices(kAdminKey, user_id,
                {MakePrice(v1::sms, "us", 7), MakePrice(v1::sms, "", 9)},
                &stored)
          .ok());
  ASSERT_EQ(stored.prices_size(), 2);
  EXPECT_EQ(stored.prices(1).country(), "US");

  v1::Account after;
  ASSERT_TRUE(AddCredits(kAdminKey, user_id, 1500000, &after).ok());
  EXPECT_EQ(after.credits_balance(), 1500000);
  EXPECT_EQ(after.credit_unit(), "micro");
  // The user sees the credit in its ledger; another account's is NOT_FOUND.
  v1::ListTransactionsResponse ledger;
  ASSERT_TRUE(accounts_->ListTransactions(Ctx(user).get(), {}, &ledger).ok());
  ASSERT_EQ(ledger.items_size(), 1);
  EXPECT_EQ(ledger.items(0).type(), v1::Transaction::credit);
  EXPECT_EQ(ledger.items(0).amount(), 1500000);
  EXPECT_EQ(ledger.items(0).balance_after(), 1500000);
  v1::ListTransactionsRequest other;
  other.set_account_id(AccountIdOf(kAdminKey));
  EXPECT_EQ(
      Details(accounts_->ListTransactions(Ctx(user).get(), other, &ledger))
          .code,
      grpc::StatusCode::NOT_FOUND);
}

TEST_F(BillingApiTest, EstimateStartAndRunAreBilledExactly) {
  const std::string user = NewAccount("payer");
  const std::string user_id = AccountIdOf(user);
  const std::string sender = RegisterSmsSender(user);
  ASSERT_TRUE(SetPrices(kAdminKey, user_id,
                        {MakePrice(v1::sms, "", 20000),
                         MakePrice(v1::sms, "US", 10000)})
                  .ok());
  ASSERT_TRUE(AddCredits(kAdminKey, user_id, 25000).ok());
  const std::string id = CampaignWith(user, sender, 3);

  v1::EstimateCostRequest ereq;
  ereq.set_id(id);
  v1::CostEstimate estimate;
  ASSERT_TRUE(campaigns_->EstimateCost(Ctx(user).get(), ereq, &estimate).ok());
  EXPECT_EQ(estimate.total(), 30000);
  EXPECT_EQ(estimate.currency(), "EUR");
  EXPECT_EQ(estimate.credit_unit(), "micro");
  EXPECT_EQ(estimate.credits_available(), 25000);
  EXPECT_FALSE(estimate.sufficient());
  ASSERT_EQ(estimate.lines_size(), 1);
  EXPECT_EQ(estimate.lines(0).channel(), v1::sms);
  EXPECT_EQ(estimate.lines(0).country(), "US");
  EXPECT_EQ(estimate.lines(0).recipients(), 3);
  EXPECT_EQ(estimate.lines(0).segments(), 3);
  EXPECT_EQ(estimate.lines(0).unit_price(), 10000);
  // Another account's campaign is NOT_FOUND.
  EXPECT_EQ(
      Details(campaigns_->EstimateCost(Ctx(kAdminKey).get(), ereq, &estimate))
          .code,
      grpc::StatusCode::NOT_FOUND);

  v1::StartCampaignRequest start;
  start.set_id(id);
  v1::Campaign c;
  ErrorDetails refused =
      Details(campaigns_->StartCampaign(Ctx(user).get(), start, &c));
  EXPECT_EQ(refused.code, grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(refused.reason, "INSUFFICIENT_CREDITS");

  ASSERT_TRUE(AddCredits(kAdminKey, user_id, 5000).ok());
  ASSERT_TRUE(campaigns_->StartCampaign(Ctx(user).get(), start, &c).ok());
  WaitFor(user, id, v1::Campaign::completed);

  v1::Account account;
  ASSERT_TRUE(accounts_->GetAccount(Ctx(user).get(), {}, &account).ok());
  EXPECT_EQ(account.credits_balance(), 0);
  EXPECT_EQ(account.credits_reserved(), 0);
  v1::ListTransactionsResponse ledger;
  ASSERT_TRUE(accounts_->ListTransactions(Ctx(user).get(), {}, &ledger).ok());
  std::map<int, int64_t> by_type;
  for (const v1::Transaction& t : ledger.items()) {
    by_type[t.type()] += t.amount();
    EXPECT_EQ(t.account_id(), user_id);
  }
  EXPECT_EQ(by_type[v1::Transaction::credit], 30000);
  EXPECT_EQ(by_type[v1::Transaction::reservation], 30000);
  EXPECT_EQ(by_type[v1::Transaction::debit], 30000);
  EXPECT_EQ(by_type[v1::Transaction::release], 0);

  v1::GetCampaignStatsRequest sreq;
  sreq.set_channel(v1::sms);
  v1::GetCampaignStatsResponse stats;
  ASSERT_TRUE(campaigns_->GetCampaignStats(Ctx(user).get(), sreq, &stats).ok());
  EXPECT_EQ(stats.campaigns(), 1);
  EXPECT_EQ(stats.stats().total(), 3);
  EXPECT_EQ(stats.cost(), 30000);
  EXPECT_EQ(stats.currency(), "EUR");
  ASSERT_EQ(stats.by_channel_size(), 1);
  EXPECT_EQ(stats.by_channel(0).cost(), 30000);
  sreq.set_channel(v1::email);
  ASSERT_TRUE(campaigns_->GetCampaignStats(Ctx(user).get(), sreq, &stats).ok());
  EXPECT_EQ(stats.campaigns(), 0);
  // The admin account's own statistics do not include the user's.
  ASSERT_TRUE(
      campaigns_->GetCampaignStats(Ctx(kAdminKey).get(), {}, &stats).ok());
  EXPECT_EQ(stats.campaigns(), 0);
}

TEST_F(BillingApiTest, AnImportIntoAScheduledCampaignReservesOrIsRefused) {
  const std::string user = NewAccount("scheduler");
  const std::string user_id = AccountIdOf(user);
  const std::string sender = RegisterSmsSender(user);
  ASSERT_TRUE(
      SetPrices(kAdminKey, user_id, {MakePrice(v1::sms, "", 1000)}).ok());
  ASSERT_TRUE(AddCredits(kAdminKey, user_id, 10000).ok());
  const std::string id = CampaignWith(user, sender, 4);
  v1::ConfirmCampaignRequest confirm;
  confirm.set_id(id);
  confirm.mutable_send_at()->set_seconds(absl::ToUnixSeconds(absl::Now()) +
                                         3600);
  v1::Campaign c;
  ASSERT_TRUE(campaigns_->ConfirmCampaign(Ctx(user).get(), confirm, &c).ok());
  EXPECT_EQ(c.status(), v1::Campaign::scheduled);
  ASSERT_TRUE(Import(user, id, 5, 100).ok());
  v1::Account a;
  ASSERT_TRUE(accounts_->GetAccount(Ctx(user).get(), {}, &a).ok());
  EXPECT_EQ(a.credits_reserved(), 9000);
  EXPECT_EQ(a.credits_balance(), 1000);
  // Two more do not fit: the import is refused and imports nothing.
  ErrorDetails refused = Details(Import(user, id, 2, 200));
  EXPECT_EQ(refused.reason, "INSUFFICIENT_CREDITS");
  v1::GetCampaignRequest get;
  get.set_id(id);
  ASSERT_TRUE(campaigns_->GetCampaign(Ctx(user).get(), get, &c).ok());
  EXPECT_EQ(c.stats().total(), 9);
  // Cancelling gives it all back.
  v1::CancelCampaignRequest cancel;
  cancel.set_id(id);
  ASSERT_TRUE(campaigns_->CancelCampaign(Ctx(user).get(), cancel, &c).ok());
  ASSERT_TRUE(accounts_->GetAccount(Ctx(user).get(), {}, &a).ok());
  EXPECT_EQ(a.credits_reserved(), 0);
  EXPECT_EQ(a.credits_balance(), 10000);
}

TEST_F(BillingApiTest, ACampaignStartedFreeIsEstimatedFreeAfterPricesCome) {
  const std::string user = NewAccount("early");
  const std::string user_id = AccountIdOf(user);
  const std::string sender = RegisterSmsSender(user);
  const std::string id = CampaignWith(user, sender, 3);
  v1::ConfirmCampaignRequest confirm;  // scheduled: its recipients stay queued
  confirm.set_id(id);
  confirm.mutable_send_at()->set_seconds(absl::ToUnixSeconds(absl::Now()) +
                                         3600);
  v1::Campaign c;
  ASSERT_TRUE(campaigns_->ConfirmCampaign(Ctx(user).get(), confirm, &c).ok());
  ASSERT_TRUE(
      SetPrices(kAdminKey, user_id, {MakePrice(v1::sms, "", 1000)}).ok());
  v1::EstimateCostRequest req;
  req.set_id(id);
  v1::CostEstimate e;
  ASSERT_TRUE(campaigns_->EstimateCost(Ctx(user).get(), req, &e).ok());
  EXPECT_EQ(e.total(), 0) << e.DebugString();
  EXPECT_TRUE(e.sufficient()) << e.DebugString();
  // A draft of the same account is priced now.
  const std::string draft = CampaignWith(user, sender, 3);
  req.set_id(draft);
  ASSERT_TRUE(campaigns_->EstimateCost(Ctx(user).get(), req, &e).ok());
  EXPECT_EQ(e.total(), 3000);
  EXPECT_FALSE(e.sufficient());
}

TEST_F(BillingApiTest, StatsRefuseAWindowThatEndsBeforeItStarts) {
  v1::GetCampaignStatsRequest req;
  req.mutable_from()->set_seconds(2000000000);
  req.mutable_to()->set_seconds(1000000000);
  v1::GetCampaignStatsResponse out;
  ErrorDetails d =
      Details(campaigns_->GetCampaignStats(Ctx(kAdminKey).get(), req, &out));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(d.fields, std::vector<std::string>{"to"});
}

class KeyLimitTest : public ServerTest {
 protected:
  void Configure(ServerOptions& options) override {
    options.key_limit.rate = 0.5;
    options.key_limit.burst = 5;
  }
};

TEST_F(KeyLimitTest, AKeyOverItsLimitIsToldWhenToRetryAndOthersGoOn) {
  const std::string other = NewAccount("other");  // one admin call
  grpc::Status refused;
  std::string retry_after;
  int ok_calls = 0;
  for (int i = 0; i < 20 && refused.ok(); ++i) {
    auto ctx = Ctx(kAdminKey);
    v1::Account a;
    grpc::Status s = accounts_->GetAccount(ctx.get(), {}, &a);
    if (s.ok()) {
      ++ok_calls;
      continue;
    }
    refused = s;
    for (const auto& [k, v] : ctx->GetServerTrailingMetadata()) {
      if (std::string(k.data(), k.size()) == "retry-after") {
        retry_after = std::string(v.data(), v.size());
      }
    }
  }
  ASSERT_FALSE(refused.ok());
  EXPECT_LE(ok_calls, 5);
  ErrorDetails d = Details(refused);
  EXPECT_EQ(d.code, grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(d.reason, "RATE_LIMIT_EXCEEDED");
  EXPECT_GE(std::stoi(retry_after), 1) << retry_after;
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(refused.error_details()));
  bool has_retry_info = false;
  for (const google::protobuf::Any& any : details.details()) {
    google::rpc::RetryInfo info;
    if (any.UnpackTo(&info)) {
      has_retry_info = true;
      const int64_t ms = info.retry_delay().seconds() * 1000 +
                         info.retry_delay().nanos() / 1000000;
      EXPECT_GT(ms, 0);
      EXPECT_LE(ms, 2000);  // one request at 0.5/s
    }
  }
  EXPECT_TRUE(has_retry_info);
  // Another key is unaffected.
  v1::Account a;
  EXPECT_TRUE(accounts_->GetAccount(Ctx(other).get(), {}, &a).ok());
  // And streams count too.
  v1::WatchCampaignRequest watch;
  watch.set_id("cmp_x");
  auto ctx = Ctx(kAdminKey);
  auto reader = campaigns_->WatchCampaign(ctx.get(), watch);
  v1::CampaignProgress p;
  EXPECT_FALSE(reader->Read(&p));
  EXPECT_EQ(Details(reader->Finish()).reason, "RATE_LIMIT_EXCEEDED");
}

}  // namespace
}  // namespace campaigns::testing
