// campaignctl's `recipients import` and `recipients list` against an
// in-process fake CampaignService: what is streamed, formats, the summary.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "campaigns/v1/campaign.grpc.pb.h"
#include "client/campaignctl.h"
#include "client/command.h"
#include "tests/client/cli_test_util.h"

namespace campaigns::client {
namespace {

// Keeps what an import streamed; answers with counts. Thread-safe.
class RecipientFakeCampaigns final : public v1::CampaignService::Service {
 public:
  grpc::Status ImportRecipients(
      grpc::ServerContext*,
      grpc::ServerReader<v1::ImportRecipientsRequest>* reader,
      v1::ImportRecipientsResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    messages_.clear();
    v1::ImportRecipientsRequest m;
    int64_t rows = 0;
    while (reader->Read(&m)) {
      rows += m.rows_size();
      messages_.push_back(m);
    }
    if (!messages_.empty() && messages_[0].campaign_id() == "cmp_bad") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "campaign cmp_bad not found");
    }
    response->set_received(rows);
    response->set_imported(rows);
    v1::ImportError* e = response->add_errors();
    e->set_row(2);
    e->set_reason("line 3: not a phone number");
    return grpc::Status::OK;
  }
  grpc::Status ListRecipients(grpc::ServerContext*,
                              const v1::ListRecipientsRequest* request,
                              v1::ListRecipientsResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    list_ = *request;
    v1::Recipient* r = response->add_items();
    r->set_id("rcp_abc");
    r->set_address("+12025550143");
    r->set_status(v1::Recipient::queued);
    response->set_total(1);
    response->set_page(1);
    response->set_limit(20);
    return grpc::Status::OK;
  }

  std::vector<v1::ImportRecipientsRequest> messages() {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }
  v1::ListRecipientsRequest list() {
    std::lock_guard<std::mutex> lock(mu_);
    return list_;
  }

 private:
  std::mutex mu_;
  std::vector<v1::ImportRecipientsRequest> messages_;
  v1::ListRecipientsRequest list_;
};

using Result = test_util::CliResult;

class RecipientCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<test_util::FakeServer>(
        std::vector<grpc::Service*>{&campaigns_});
    dir_ = std::filesystem::temp_directory_path() /
           ("campaignctl-rcp-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string File(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  Result Run(std::vector<std::string> args) {
    return server_->Run(std::move(args));
  }

  RecipientFakeCampaigns campaigns_;
  std::unique_ptr<test_util::FakeServer> server_;
  std::filesystem::path dir_;
};

TEST_F(RecipientCommandsTest, CsvIsStreamedByteForByteAfterTheSettings) {
  std::string csv = "phone,name\n";
  for (int i = 0; i < 20000; ++i)
    csv += "+1202555" + std::to_string(i) + ",x\n";
  Result r = Run({"recipients", "import", File("a.csv", csv), "--campaign",
                  "cmp_1", "--region", "US", "--request-id", "r1"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  std::vector<v1::ImportRecipientsRequest> m = campaigns_.messages();
  ASSERT_GE(m.size(), 3u);  // settings, then several chunks
  EXPECT_EQ(m[0].campaign_id(), "cmp_1");
  EXPECT_EQ(m[0].format(), v1::ImportRecipientsRequest::csv);
  EXPECT_EQ(m[0].default_region(), "US");
  EXPECT_EQ(m[0].request_id(), "r1");
  std::string sent;
  for (size_t i = 1; i < m.size(); ++i) sent += m[i].csv_chunk();
  EXPECT_EQ(sent, csv);
  EXPECT_NE(r.out.find("not a phone number"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rows/s"), std::string::npos) << r.out;
}

TEST_F(RecipientCommandsTest, JsonInSeedShapeArraysAndLines) {
  for (
      const auto& [name, text] :
      std::vector<std::pair<std::string, std::string>>{
          {"seed.json",
           R"({"recipients": [{"phone_number": "+12025550143", "name": "Ann", "discount_code": "S20"},
                               {"phone_number": "+12025550144", "name": "Bob", "n": 7}]})"},
          {"array.json",
           R"([{"phone": "+12025550143", "variables": {"name": "Ann"}},
                {"address": "+12025550144", "contact_id": "ct_1"}])"},
          {"lines.jsonl",
           "{\"email\": \"a@b.c\", \"name\": \"Ann\"}\n\n{\"email\": "
           "\"d@e.f\"}\n"}}) {
    SCOPED_TRACE(name);
    Result r = Run({"recipients", "import", File(name, text), "--campaign",
                    "cmp_1", "--json"});
    ASSERT_EQ(r.code, kExitOk) << r.err;
    std::vector<v1::ImportRecipientsRequest> m = campaigns_.messages();
    ASSERT_EQ(m.size(), 2u);
    EXPECT_EQ(m[0].format(), v1::ImportRecipientsRequest::json_rows);
    ASSERT_EQ(m[1].rows_size(), 2);
    EXPECT_FALSE(m[1].rows(0).address().empty());
    EXPECT_NE(r.out.find("\"received\""), std::string::npos) << r.out;
  }
  std::vector<v1::ImportRecipientsRequest> seed;
  Run({"recipients", "import",
       File(
           "s2.json",
           R"({"recipients": [{"phone_number": "+1", "name": "Ann", "n": 7}]})"),
       "--campaign", "cmp_1"});
  seed = campaigns_.messages();
  ASSERT_EQ(seed.size(), 2u);
  EXPECT_EQ(seed[1].rows(0).address(), "+1");
  EXPECT_EQ(seed[1].rows(0).variables().at("name"), "Ann");
  EXPECT_EQ(seed[1].rows(0).variables().at("n"), "7");
}

TEST_F(RecipientCommandsTest, BadJsonAndServerErrorsExitNonZero) {
  Result r = Run({"recipients", "import", File("bad.json", "{not json\n"),
                  "--campaign", "cmp_1"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("line 1"), std::string::npos) << r.err;

  r = Run({"recipients", "import", File("x.csv", "phone\n+12025550143\n"),
           "--campaign", "cmp_bad"});
  EXPECT_EQ(r.code, kExitRpcError);
  EXPECT_NE(r.err.find("not found"), std::string::npos) << r.err;

  r = Run({"recipients", "import", (dir_ / "missing.csv").string(),
           "--campaign", "cmp_1"});
  EXPECT_EQ(r.code, kExitUsage);
}

TEST_F(RecipientCommandsTest, ListSendsFiltersAndPrintsATable) {
  Result r = Run({"recipients", "list", "--campaign", "cmp_1", "--status",
                  "queued", "--limit", "50", "--page-token", "tok"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  v1::ListRecipientsRequest sent = campaigns_.list();
  EXPECT_EQ(sent.campaign_id(), "cmp_1");
  EXPECT_EQ(sent.status(), v1::Recipient::queued);
  EXPECT_EQ(sent.limit(), 50);
  EXPECT_EQ(sent.page_token(), "tok");
  EXPECT_NE(r.out.find("rcp_abc"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("+12025550143"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace campaigns::client
