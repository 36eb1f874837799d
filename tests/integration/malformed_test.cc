// Requests that are not valid protobuf for their method (bad wire format,
// invalid UTF-8 in a string field) are INVALID_ARGUMENT naming the field,
// never gRPC's INTERNAL "Unable to parse request"; nothing is stored.
#include <grpcpp/generic/generic_stub.h>

#include "tests/integration/fixture.h"

namespace campaigns::testing {
namespace {

class MalformedTest : public ServerTest {
 protected:
  // Sends `bytes` as the request of `method` and returns the status.
  grpc::Status CallRaw(const std::string& method, const std::string& bytes) {
    grpc::GenericStub stub(channel_);
    std::unique_ptr<grpc::ClientContext> ctx = Ctx(kAdminKey);
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1);
    grpc::CompletionQueue cq;
    auto call = stub.PrepareUnaryCall(ctx.get(), method, request, &cq);
    call->StartCall();
    grpc::ByteBuffer response;
    grpc::Status status;
    call->Finish(&response, &status, this);
    void* tag;
    bool ok;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    return status;
  }
};

TEST_F(MalformedTest, InvalidUtf8NamesTheField) {
  // GetCampaignRequest{id: "\xff\xfe"}
  ErrorDetails d = Details(CallRaw("/campaigns.v1.CampaignService/GetCampaign",
                                   std::string("\x0a\x02\xff\xfe", 4)));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(d.reason, "INVALID_REQUEST");
  ASSERT_EQ(d.fields.size(), 1u);
  EXPECT_EQ(d.fields[0], "id");

  // CreateCampaignRequest{variable_mapping: {"a": "\xff"}}: a nested field.
  d = Details(CallRaw("/campaigns.v1.CampaignService/CreateCampaign",
                      std::string("\x32\x06\x0a\x01\x61\x12\x01\xff", 8)));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_EQ(d.fields.size(), 1u);
  EXPECT_EQ(d.fields[0], "variable_mapping.value");

  v1::ListCampaignsResponse list;
  ASSERT_TRUE(campaigns_->ListCampaigns(Ctx(kAdminKey).get(), {}, &list).ok());
  EXPECT_EQ(list.total(), 0);
}

TEST_F(MalformedTest, BrokenWireFormatIsInvalidArgument) {
  // A length prefix longer than the message.
  ErrorDetails d = Details(CallRaw("/campaigns.v1.TemplateService/GetTemplate",
                                   std::string("\x0a\x80\x01yyyy", 7)));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_EQ(d.fields.size(), 1u);
  EXPECT_EQ(d.fields[0], "request");
}

TEST_F(MalformedTest, AuthenticationComesFirst) {
  grpc::GenericStub stub(channel_);
  grpc::ClientContext ctx;
  grpc::Slice slice(std::string("\x0a\x02\xff\xfe", 4));
  grpc::ByteBuffer request(&slice, 1);
  grpc::CompletionQueue cq;
  auto call = stub.PrepareUnaryCall(
      &ctx, "/campaigns.v1.CampaignService/GetCampaign", request, &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, nullptr);
  void* tag;
  bool ok;
  ASSERT_TRUE(cq.Next(&tag, &ok));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

}  // namespace
}  // namespace campaigns::testing
