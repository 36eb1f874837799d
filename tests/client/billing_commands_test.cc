// campaignctl's money commands (estimate, stats, transactions, account,
// credits add, prices set) against in-process fake services: the requests
// they send and what they print.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "campaigns/v1/account.grpc.pb.h"
#include "campaigns/v1/campaign.grpc.pb.h"
#include "client/campaignctl.h"
#include "client/command.h"
#include "tests/client/cli_test_util.h"

namespace campaigns::client {
namespace {

// Keeps the last request of each kind as text. Thread-safe.
class BillingRecorder {
 public:
  void Set(const google::protobuf::Message& m) {
    std::lock_guard<std::mutex> lock(mu_);
    last_ = m.GetTypeName() + " " + m.ShortDebugString();
  }
  std::string last() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_;
  }

 private:
  std::mutex mu_;
  std::string last_;
};

class BillingFakeCampaigns final : public v1::CampaignService::Service {
 public:
  explicit BillingFakeCampaigns(BillingRecorder* r) : r_(r) {}
  grpc::Status EstimateCost(grpc::ServerContext*,
                            const v1::EstimateCostRequest* req,
                            v1::CostEstimate* out) override {
    r_->Set(*req);
    out->set_campaign_id(req->id());
    out->set_total(150000);
    out->set_currency("EUR");
    out->set_credit_unit("micro");
    v1::CostLine* line = out->add_lines();
    line->set_channel(v1::sms);
    line->set_country("US");
    line->set_recipients(3);
    line->set_segments(5);
    line->set_unit_price(30000);
    line->set_amount(150000);
    out->set_credits_available(100000);
    out->set_sufficient(false);
    return grpc::Status::OK;
  }
  grpc::Status GetCampaignStats(grpc::ServerContext*,
                                const v1::GetCampaignStatsRequest* req,
                                v1::GetCampaignStatsResponse* out) override {
    r_->Set(*req);
    out->set_campaigns(2);
    out->mutable_stats()->set_total(10);
    out->set_cost(42);
    out->set_currency("EUR");
    return grpc::Status::OK;
  }

 private:
  BillingRecorder* r_;
};

class BillingFakeAccounts final : public v1::AccountService::Service {
 public:
  explicit BillingFakeAccounts(BillingRecorder* r) : r_(r) {}
  grpc::Status GetAccount(grpc::ServerContext*,
                          const v1::GetAccountRequest* req,
                          v1::Account* out) override {
    r_->Set(*req);
    out->set_id("acct_me");
    out->set_credits_balance(123456);
    out->set_credit_unit("micro");
    return grpc::Status::OK;
  }
  grpc::Status ListTransactions(grpc::ServerContext*,
                                const v1::ListTransactionsRequest* req,
                                v1::ListTransactionsResponse* out) override {
    r_->Set(*req);
    v1::Transaction* t = out->add_items();
    t->set_id("txn_7");
    t->set_type(v1::Transaction::debit);
    t->set_amount(30000);
    t->set_balance_after(70000);
    t->set_description("3 messages sent");
    out->set_total(1);
    out->set_page(1);
    out->set_limit(20);
    return grpc::Status::OK;
  }
  grpc::Status AddCredits(grpc::ServerContext*,
                          const v1::AddCreditsRequest* req,
                          v1::Account* out) override {
    r_->Set(*req);
    out->set_id(req->account_id());
    out->set_credits_balance(req->amount());
    return grpc::Status::OK;
  }
  grpc::Status SetPrices(grpc::ServerContext*, const v1::SetPricesRequest* req,
                         v1::SetPricesResponse* out) override {
    r_->Set(*req);
    *out->mutable_prices() = req->prices();
    return grpc::Status::OK;
  }

 private:
  BillingRecorder* r_;
};

using Result = test_util::CliResult;

class BillingCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<test_util::FakeServer>(
        std::vector<grpc::Service*>{&campaigns_, &accounts_});
  }

  Result Run(std::vector<std::string> args) {
    return server_->Run(std::move(args));
  }

  static bool Has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
  }

  BillingRecorder recorder_;
  BillingFakeCampaigns campaigns_{&recorder_};
  BillingFakeAccounts accounts_{&recorder_};
  std::unique_ptr<test_util::FakeServer> server_;
};

TEST_F(BillingCommandsTest, EstimatePrintsLinesAndWhetherCreditsSuffice) {
  Result r = Run({"estimate", "cmp_1"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(recorder_.last(), "campaigns.v1.EstimateCostRequest id: \"cmp_1\"");
  EXPECT_TRUE(Has(r.out, "total:")) << r.out;
  EXPECT_TRUE(Has(r.out, "150000")) << r.out;
  EXPECT_TRUE(Has(r.out, "country:")) << r.out;
  EXPECT_TRUE(Has(r.out, "sufficient:")) << r.out;
  EXPECT_TRUE(Has(r.out, "false")) << r.out;
  Result json = Run({"--json", "estimate", "cmp_1"});
  ASSERT_EQ(json.code, kExitOk);
  EXPECT_TRUE(Has(json.out, "\"creditUnit\":\"micro\"") ||
              Has(json.out, "\"credit_unit\":\"micro\""))
      << json.out;
}

TEST_F(BillingCommandsTest, StatsSendsItsFilters) {
  Result r = Run({"stats", "--from", "2026-01-01T00:00:00Z", "--to",
                  "2026-02-01T00:00:00Z", "--channel", "sms"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(recorder_.last(),
            "campaigns.v1.GetCampaignStatsRequest from { seconds: 1767225600 } "
            "to { seconds: 1769904000 } channel: sms");
  EXPECT_TRUE(Has(r.out, "campaigns:")) << r.out;
  EXPECT_TRUE(Has(r.out, "cost:")) << r.out;
}

TEST_F(BillingCommandsTest, StatsTakeADateOrSayWhatTheyWant) {
  Result r = Run({"stats", "--from", "2026-11-01"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(recorder_.last(),
            "campaigns.v1.GetCampaignStatsRequest from { seconds: 1793491200 "
            "}");  // 2026-11-01T00:00:00Z
  Result bad = Run({"stats", "--from", "1 Nov"});
  EXPECT_EQ(bad.code, kExitUsage);
  EXPECT_TRUE(Has(bad.err, "--from")) << bad.err;
  EXPECT_TRUE(Has(bad.err, "or a date (e.g. 2024-05-01)")) << bad.err;
}

TEST_F(BillingCommandsTest, AccountAloneShowsTheBalance) {
  Result r = Run({"account"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(recorder_.last(), "campaigns.v1.GetAccountRequest ");
  EXPECT_TRUE(Has(r.out, "123456")) << r.out;
}

TEST_F(BillingCommandsTest, TransactionsListTheLedger) {
  Result r = Run({"transactions", "--limit", "5"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(recorder_.last(), "campaigns.v1.ListTransactionsRequest limit: 5");
  EXPECT_TRUE(Has(r.out, "txn_7")) << r.out;
  EXPECT_TRUE(Has(r.out, "debit")) << r.out;
  EXPECT_TRUE(Has(r.out, "3 messages sent")) << r.out;
}

TEST_F(BillingCommandsTest, CreditsAddSendsMicroCredits) {
  Result r = Run({"credits", "add", "acct_x", "--amount", "2500000",
                  "--description", "invoice 12", "--request-id", "inv-12"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(recorder_.last(),
            "campaigns.v1.AddCreditsRequest account_id: \"acct_x\" amount: "
            "2500000 description: \"invoice 12\" request_id: \"inv-12\"");
  EXPECT_TRUE(Has(r.out, "2500000")) << r.out;
}

TEST_F(BillingCommandsTest, PricesSetParsesChannelCountryAndDefault) {
  Result r = Run({"prices", "set", "acct_x", "--price", "sms=50000", "--price",
                  "sms:us=40000", "--price", "default=10"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(recorder_.last(),
            "campaigns.v1.SetPricesRequest account_id: \"acct_x\" prices { "
            "channel: sms amount: 50000 } prices { channel: sms country: "
            "\"US\" amount: 40000 } prices { amount: 10 }");
  EXPECT_TRUE(Has(r.out, "default")) << r.out;
  EXPECT_TRUE(Has(r.out, "40000")) << r.out;
  // A malformed price is a usage error naming the flag; nothing is sent.
  Result bad = Run({"prices", "set", "acct_y", "--price", "pigeon=5"});
  EXPECT_EQ(bad.code, kExitUsage);
  EXPECT_TRUE(Has(bad.err, "--price")) << bad.err;
  Result bad_amount = Run({"prices", "set", "acct_y", "--price", "sms=lots"});
  EXPECT_EQ(bad_amount.code, kExitUsage);
  EXPECT_NE(recorder_.last().find("acct_x"), std::string::npos);
  // No price at all clears the table.
  Result clear = Run({"prices", "set", "acct_z"});
  ASSERT_EQ(clear.code, kExitOk) << clear.err;
  EXPECT_TRUE(Has(clear.out, "free")) << clear.out;
}

}  // namespace
}  // namespace campaigns::client
