// Helpers of campaignctl's tests: in-process runs, and fake services served
// on 127.0.0.1:0.
//
//   FakeCampaigns campaigns;                   // a grpc::Service
//   auto server = std::make_unique<FakeServer>(
//       std::vector<grpc::Service*>{&campaigns});
//   CliResult r = server->Run({"campaigns", "start", "cmp_1"});
//   EXPECT_TRUE(HasField(r.out, "status: sending"));
//
// Not thread-safe (one test at a time).
#ifndef CAMPAIGND_TESTS_CLIENT_CLI_TEST_UTIL_H_
#define CAMPAIGND_TESTS_CLIENT_CLI_TEST_UTIL_H_

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "client/campaignctl.h"

namespace campaigns::client::test_util {

// One campaignctl run. A plain value.
struct CliResult {
  int code;
  std::string out;
  std::string err;
};

// Runs campaignctl in-process with exactly `args` (argv[0] included).
inline CliResult RunRaw(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  int code =
      RunCampaignctl(static_cast<int>(argv.size()), argv.data(), out, err);
  return {code, out.str(), err.str()};
}

// Serves `services` (which must outlive it) on 127.0.0.1:0 until destroyed.
class FakeServer {
 public:
  explicit FakeServer(const std::vector<grpc::Service*>& services) {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    for (grpc::Service* s : services) builder.RegisterService(s);
    server_ = builder.BuildAndStart();
    EXPECT_NE(server_, nullptr);
    address_ = "127.0.0.1:" + std::to_string(port);
  }
  ~FakeServer() {
    if (server_ != nullptr) server_->Shutdown();
  }
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;

  const std::string& address() const { return address_; }
  grpc::Server* server() const { return server_.get(); }

  // Runs campaignctl against this server with API key "k1".
  CliResult Run(std::vector<std::string> args) const {
    args.insert(args.begin(),
                {"campaignctl", "--server", address_, "--api-key", "k1"});
    return RunRaw(args);
  }

 private:
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

// Whether `out` has a line "key:   value" (any run of spaces) for
// `key_value` = "key: value".
inline bool HasField(const std::string& out, const std::string& key_value) {
  const size_t colon = key_value.find(": ");
  const std::string key = key_value.substr(0, colon + 1);
  const std::string value = key_value.substr(colon + 2);
  size_t pos = 0;
  while ((pos = out.find(key, pos)) != std::string::npos) {
    if (pos == 0 || out[pos - 1] == '\n') {
      size_t v = pos + key.size();
      while (v < out.size() && out[v] == ' ') ++v;
      if (out.compare(v, value.size(), value) == 0 &&
          (v + value.size() == out.size() || out[v + value.size()] == '\n')) {
        return true;
      }
    }
    pos += key.size();
  }
  return false;
}

}  // namespace campaigns::client::test_util

#endif  // CAMPAIGND_TESTS_CLIENT_CLI_TEST_UTIL_H_
