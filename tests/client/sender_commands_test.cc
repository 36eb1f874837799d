// campaignctl senders providers: the request it sends and the table (and
// JSON) it prints.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "campaigns/v1/sender.grpc.pb.h"
#include "tests/client/cli_test_util.h"

namespace campaigns::client {
namespace {

using test_util::CliResult;
using test_util::FakeServer;

class FakeSenders final : public v1::SenderService::Service {
 public:
  grpc::Status ListProviders(grpc::ServerContext* ctx,
                             const v1::ListProvidersRequest*,
                             v1::ListProvidersResponse* out) override {
    auto auth = ctx->client_metadata().find("authorization");
    if (auth == ctx->client_metadata().end() ||
        std::string(auth->second.data(), auth->second.size()) != "Bearer k1") {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no key");
    }
    v1::Provider* sim = out->add_providers();
    sim->set_name("simulator");
    sim->set_type("simulator");
    sim->add_channels(v1::sms);
    sim->add_channels(v1::email);
    sim->set_state("ok");
    v1::Provider* meta = out->add_providers();
    meta->set_name("meta");
    meta->set_type("whatsapp_cloud");
    meta->add_channels(v1::whatsapp);
    meta->set_fallback("backup");
    meta->set_state("unusable");
    meta->set_reason("type \"whatsapp_cloud\" is not available in this build");
    return grpc::Status::OK;
  }
};

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(SenderCommandsTest, ProvidersPrintsATable) {
  FakeSenders senders;
  FakeServer server({&senders});
  CliResult r = server.Run({"senders", "providers"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;
  EXPECT_EQ(lines[0],
            "NAME       TYPE            CHANNELS   FALLBACK  STATE     REASON");
  EXPECT_EQ(lines[1],
            "simulator  simulator       sms,email  -         ok        -");
  EXPECT_EQ(lines[2],
            "meta       whatsapp_cloud  whatsapp   backup    unusable  type "
            "\"whatsapp_cloud\" is not available in this build");
}

TEST(SenderCommandsTest, ProvidersJson) {
  FakeSenders senders;
  FakeServer server({&senders});
  CliResult r = server.Run({"--json", "senders", "providers"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"providers\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"state\":\"unusable\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"whatsapp\""), std::string::npos) << r.out;
}

}  // namespace
}  // namespace campaigns::client
