// grpc.health.v1.Health as campaignd serves it on its own queues: no API
// key needed; Check and Watch for the server (""), for each of our services
// and for an unknown name; a Watch sees the shutdown's NOT_SERVING and does
// not hold the shutdown.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <string>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/integration/fixture.h"

namespace campaigns::testing {
namespace {

namespace hv1 = grpc::health::v1;

class HealthTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    health_ = hv1::Health::NewStub(channel_);
  }
  grpc::Status Check(const std::string& service,
                     hv1::HealthCheckResponse* out) {
    grpc::ClientContext ctx;  // no API key
    hv1::HealthCheckRequest req;
    req.set_service(service);
    return health_->Check(&ctx, req, out);
  }
  std::unique_ptr<hv1::Health::Stub> health_;
};

TEST_F(HealthTest, CheckNeedsNoKeyAndKnowsEveryServiceOfOurs) {
  for (const std::string service :
       {"", "campaigns.v1.CampaignService", "campaigns.v1.AccountService",
        "campaigns.v1.DeliveryService"}) {
    hv1::HealthCheckResponse out;
    grpc::Status s = Check(service, &out);
    ASSERT_TRUE(s.ok()) << service << ": " << s.error_message();
    EXPECT_EQ(out.status(), hv1::HealthCheckResponse::SERVING) << service;
  }
  hv1::HealthCheckResponse out;
  grpc::Status unknown = Check("campaigns.v1.NoSuchService", &out);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(unknown.error_message().find("campaigns.v1.NoSuchService"),
            std::string::npos)
      << unknown.error_message();
}

TEST_F(HealthTest, WatchOfAnUnknownServiceSaysSoAndStaysOpen) {
  grpc::ClientContext ctx;
  hv1::HealthCheckRequest req;
  req.set_service("campaigns.v1.NoSuchService");
  auto reader = health_->Watch(&ctx, req);
  hv1::HealthCheckResponse first;
  ASSERT_TRUE(reader->Read(&first));
  EXPECT_EQ(first.status(), hv1::HealthCheckResponse::SERVICE_UNKNOWN);
  ctx.TryCancel();
  hv1::HealthCheckResponse more;
  EXPECT_FALSE(reader->Read(&more));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

// The watch stays open across the shutdown's start, sees NOT_SERVING, and
// is then ended by the server: the shutdown (whose deadline is an hour)
// returns without the client doing anything.
TEST_F(HealthTest, AWatchSeesTheShutdownAndDoesNotHoldIt) {
  grpc::ClientContext ctx;
  hv1::HealthCheckRequest req;
  req.set_service("campaigns.v1.CampaignService");
  auto reader = health_->Watch(&ctx, req);
  hv1::HealthCheckResponse seen;
  ASSERT_TRUE(reader->Read(&seen));
  EXPECT_EQ(seen.status(), hv1::HealthCheckResponse::SERVING);

  std::future<void> shutdown = std::async(
      std::launch::async, [this] { server_->Shutdown(absl::Hours(1)); });
  ASSERT_TRUE(reader->Read(&seen));
  EXPECT_EQ(seen.status(), hv1::HealthCheckResponse::NOT_SERVING);
  hv1::HealthCheckResponse more;
  EXPECT_FALSE(reader->Read(&more));  // ended by the server, not by us
  EXPECT_FALSE(reader->Finish().ok());
  shutdown.get();
}

TEST_F(HealthTest, AMalformedRequestIsInvalidArgument) {
  // service: a string of 5 bytes of which 1 arrives.
  grpc::GenericStub stub(channel_);
  grpc::ClientContext ctx;
  grpc::Slice slice(
      std::string("\x0a\x05"
                  "a",
                  3));
  grpc::ByteBuffer request(&slice, 1);
  grpc::CompletionQueue cq;
  auto call =
      stub.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", request, &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, this);
  void* tag;
  bool ok;
  ASSERT_TRUE(cq.Next(&tag, &ok));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << status.error_message();
}

}  // namespace
}  // namespace campaigns::testing
