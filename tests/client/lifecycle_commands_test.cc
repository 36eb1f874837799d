// campaignctl's lifecycle commands (start, confirm, pause, resume, cancel,
// retry) and `campaigns watch` against an in-process fake CampaignService:
// the requests they send, what they print, their exit codes.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

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

// Records the last lifecycle request; Watch streams a scripted sequence.
// Thread-safe.
class LifecycleFakeCampaigns final : public v1::CampaignService::Service {
 public:
  grpc::Status StartCampaign(grpc::ServerContext*,
                             const v1::StartCampaignRequest* req,
                             v1::Campaign* out) override {
    return Reply("start " + req->id(), v1::Campaign::sending, out);
  }
  grpc::Status ConfirmCampaign(grpc::ServerContext*,
                               const v1::ConfirmCampaignRequest* req,
                               v1::Campaign* out) override {
    return Reply(
        "confirm " + req->id() + " " + std::to_string(req->send_at().seconds()),
        v1::Campaign::scheduled, out);
  }
  grpc::Status PauseCampaign(grpc::ServerContext*,
                             const v1::PauseCampaignRequest* req,
                             v1::Campaign* out) override {
    out->set_pause_reason(req->reason());
    return Reply("pause " + req->id() + " " + req->reason(),
                 v1::Campaign::paused, out);
  }
  grpc::Status ResumeCampaign(grpc::ServerContext*,
                              const v1::ResumeCampaignRequest* req,
                              v1::Campaign* out) override {
    return Reply("resume " + req->id(), v1::Campaign::sending, out);
  }
  grpc::Status CancelCampaign(grpc::ServerContext*,
                              const v1::CancelCampaignRequest* req,
                              v1::Campaign* out) override {
    if (req->id() == "cmp_done") {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "cannot cancel a campaign that is completed");
    }
    return Reply("cancel " + req->id(), v1::Campaign::cancelled, out);
  }
  grpc::Status RetryFailed(grpc::ServerContext*,
                           const v1::RetryFailedRequest* req,
                           v1::RetryFailedResponse* out) override {
    std::string codes;
    for (const std::string& c : req->error_codes()) codes += " " + c;
    out->set_requeued(7);
    return Reply("retry " + req->id() + codes, v1::Campaign::sending,
                 out->mutable_campaign());
  }
  grpc::Status WatchCampaign(
      grpc::ServerContext*, const v1::WatchCampaignRequest* req,
      grpc::ServerWriter<v1::CampaignProgress>* writer) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_ = "watch " + req->id();
    }
    for (int i = 0; i <= 4; ++i) {
      v1::CampaignProgress p;
      p.set_campaign_id(req->id());
      p.set_status(i < 4 ? v1::Campaign::sending : v1::Campaign::completed);
      p.mutable_stats()->set_total(100);
      p.mutable_stats()->set_queued(100 - 25 * i);
      p.mutable_stats()->set_delivered(25 * i);
      p.set_rate_per_second(i < 4 ? 50 : 0);
      if (i < 4) p.mutable_eta()->set_seconds((100 - 25 * i) / 50);
      writer->Write(p);
    }
    return grpc::Status::OK;
  }

  std::string last() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_;
  }

 private:
  grpc::Status Reply(const std::string& what, v1::Campaign::Status status,
                     v1::Campaign* out) {
    std::lock_guard<std::mutex> lock(mu_);
    last_ = what;
    out->set_id("cmp_1");
    out->set_status(status);
    return grpc::Status::OK;
  }

  std::mutex mu_;
  std::string last_;
};

using test_util::HasField;
using Result = test_util::CliResult;

class LifecycleCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<test_util::FakeServer>(
        std::vector<grpc::Service*>{&campaigns_});
  }

  Result Run(std::vector<std::string> args) {
    return server_->Run(std::move(args));
  }

  LifecycleFakeCampaigns campaigns_;
  std::unique_ptr<test_util::FakeServer> server_;
};

TEST_F(LifecycleCommandsTest, EachCommandSendsItsRequest) {
  struct Case {
    std::vector<std::string> args;
    std::string sent;
    std::string printed;  // "key: value", as HasField reads it
  };
  const std::vector<Case> cases = {
      {{"campaigns", "start", "cmp_1"}, "start cmp_1", "status: sending"},
      {{"campaigns", "confirm", "cmp_1", "--send-at", "2030-01-01T00:00:00Z"},
       "confirm cmp_1 1893456000",
       "status: scheduled"},
      {{"campaigns", "pause", "cmp_1", "--reason", "typo"},
       "pause cmp_1 typo",
       "pause_reason: typo"},
      {{"campaigns", "resume", "cmp_1"}, "resume cmp_1", "status: sending"},
      {{"campaigns", "cancel", "cmp_1"}, "cancel cmp_1", "status: cancelled"},
      {{"campaigns", "retry", "cmp_1", "--error-code", "30003", "--error-code",
        "rejected"},
       "retry cmp_1 30003 rejected",
       "requeued: 7"},
  };
  for (const Case& c : cases) {
    Result r = Run(c.args);
    EXPECT_EQ(r.code, kExitOk) << c.sent << ": " << r.err;
    EXPECT_EQ(campaigns_.last(), c.sent);
    EXPECT_TRUE(HasField(r.out, c.printed)) << r.out;
  }
}

TEST_F(LifecycleCommandsTest, ARefusedTransitionIsAnRpcError) {
  Result r = Run({"campaigns", "cancel", "cmp_done"});
  EXPECT_EQ(r.code, kExitRpcError);
  EXPECT_NE(r.err.find("FAILED_PRECONDITION"), std::string::npos) << r.err;
}

TEST_F(LifecycleCommandsTest, WatchShowsProgressAndEndsWithASummary) {
  Result r = Run({"campaigns", "watch", "cmp_9"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(campaigns_.last(), "watch cmp_9");
  // Not a terminal: one progress line per update on stderr.
  EXPECT_NE(r.err.find("sending   [######"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("50/100"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("50/s"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("campaign cmp_9 completed: total 100"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("delivered 100"), std::string::npos) << r.out;

  r = Run({"--json", "campaigns", "watch", "cmp_9"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("\"status\":\"completed\""), std::string::npos) << r.out;
}

}  // namespace
}  // namespace campaigns::client
