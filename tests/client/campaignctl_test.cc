// campaignctl and its client library against an in-process fake server:
// metadata, request building from flags, update masks, output formats,
// error decoding and exit codes.

#include "client/campaignctl.h"

#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "campaigns/v1/account.grpc.pb.h"
#include "campaigns/v1/campaign.grpc.pb.h"
#include "campaigns/v1/suppression.pb.h"
#include "campaigns/v1/template.grpc.pb.h"
#include "client/command.h"
#include "client/output.h"
#include "client/proto_flags.h"
#include "client/rpc_status.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/error_info.pb.h"
#include "google/rpc/status.pb.h"
#include "tests/client/cli_test_util.h"

namespace campaigns::client {
namespace {

// What the fake server last saw. Thread-safe.
class Recorder {
 public:
  void Record(grpc::ServerContext* context,
              const google::protobuf::Message& request) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = context->client_metadata().find("authorization");
    authorization_ = it == context->client_metadata().end()
                         ? ""
                         : std::string(it->second.data(), it->second.size());
    request_.reset(request.New());
    request_->CopyFrom(request);
  }
  std::string authorization() {
    std::lock_guard<std::mutex> lock(mu_);
    return authorization_;
  }
  template <typename T>
  T request() {
    std::lock_guard<std::mutex> lock(mu_);
    T out;
    if (request_ != nullptr) out.CopyFrom(*request_);
    return out;
  }

 private:
  std::mutex mu_;
  std::string authorization_;
  std::unique_ptr<google::protobuf::Message> request_;
};

// INVALID_ARGUMENT with ErrorInfo and a BadRequest, as the server sends.
grpc::Status InvalidLimit() {
  google::rpc::Status status;
  status.set_code(grpc::StatusCode::INVALID_ARGUMENT);
  status.set_message("limit: must be at most 100");
  google::rpc::ErrorInfo info;
  info.set_reason("INVALID_REQUEST");
  info.set_domain("campaigns.v1");
  (*info.mutable_metadata())["field"] = "limit";
  status.add_details()->PackFrom(info);
  google::rpc::BadRequest bad;
  auto* violation = bad.add_field_violations();
  violation->set_field("limit");
  violation->set_description("must be at most 100");
  status.add_details()->PackFrom(bad);
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, status.message(),
                      status.SerializeAsString());
}

v1::Template SampleTemplate(const std::string& id) {
  v1::Template t;
  t.set_id(id);
  t.set_name("welcome");
  t.set_language("en_US");
  t.set_channel(v1::sms);
  t.set_body("Hi {{1}}");
  t.set_status(v1::Template::approved);
  t.mutable_created_at()->set_seconds(1714554000);  // 2024-05-01T09:00:00Z
  return t;
}

// The fakes below record each call and answer from fixed data; thread-safe
// (state lives in the Recorder).
class FakeTemplates final : public v1::TemplateService::Service {
 public:
  explicit FakeTemplates(Recorder* recorder) : recorder_(recorder) {}
  grpc::Status CreateTemplate(grpc::ServerContext* context,
                              const v1::CreateTemplateRequest* request,
                              v1::Template* response) override {
    recorder_->Record(context, *request);
    *response = SampleTemplate("tmpl_new");
    return grpc::Status::OK;
  }
  grpc::Status GetTemplate(grpc::ServerContext* context,
                           const v1::GetTemplateRequest* request,
                           v1::Template* response) override {
    recorder_->Record(context, *request);
    *response = SampleTemplate(request->id());
    return grpc::Status::OK;
  }
  grpc::Status ListTemplates(grpc::ServerContext* context,
                             const v1::ListTemplatesRequest* request,
                             v1::ListTemplatesResponse* response) override {
    recorder_->Record(context, *request);
    if (request->limit() > 100) return InvalidLimit();
    *response->add_items() = SampleTemplate("tmpl_1");
    *response->add_items() = SampleTemplate("tmpl_22");
    response->set_total(42);
    response->set_page(request->page());
    response->set_limit(request->limit());
    response->set_has_more(true);
    return grpc::Status::OK;
  }
  grpc::Status UpdateTemplate(grpc::ServerContext* context,
                              const v1::UpdateTemplateRequest* request,
                              v1::Template* response) override {
    recorder_->Record(context, *request);
    *response = SampleTemplate(request->id());
    return grpc::Status::OK;
  }
  grpc::Status DeleteTemplate(grpc::ServerContext* context,
                              const v1::DeleteTemplateRequest* request,
                              google::protobuf::Empty*) override {
    recorder_->Record(context, *request);
    return grpc::Status::OK;
  }

 private:
  Recorder* recorder_;
};

class FakeAccounts final : public v1::AccountService::Service {
 public:
  explicit FakeAccounts(Recorder* recorder) : recorder_(recorder) {}
  grpc::Status CreateApiKey(grpc::ServerContext* context,
                            const v1::CreateApiKeyRequest* request,
                            v1::ApiKey* response) override {
    recorder_->Record(context, *request);
    response->set_id("key_1");
    response->set_name(request->name());
    response->set_prefix("ck_abc");
    response->set_secret("ck_abcdefSECRET");
    return grpc::Status::OK;
  }
  grpc::Status GetAccount(grpc::ServerContext* context,
                          const v1::GetAccountRequest* request,
                          v1::Account*) override {
    recorder_->Record(context, *request);
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "invalid API key");
  }

 private:
  Recorder* recorder_;
};

class FakeCampaigns final : public v1::CampaignService::Service {
 public:
  explicit FakeCampaigns(Recorder* recorder) : recorder_(recorder) {}
  grpc::Status CreateCampaign(grpc::ServerContext* context,
                              const v1::CreateCampaignRequest* request,
                              v1::Campaign* response) override {
    recorder_->Record(context, *request);
    response->set_id("cmp_1");
    response->set_name(request->name());
    response->set_status(v1::Campaign::draft);
    return grpc::Status::OK;
  }
  grpc::Status UpdateCampaign(grpc::ServerContext* context,
                              const v1::UpdateCampaignRequest* request,
                              v1::Campaign* response) override {
    recorder_->Record(context, *request);
    response->set_id(request->id());
    return grpc::Status::OK;
  }

 private:
  Recorder* recorder_;
};

using Result = test_util::CliResult;
using test_util::RunRaw;

// Starts the fakes on 127.0.0.1:0. Not thread-safe (one test at a time).
class CampaignctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<test_util::FakeServer>(
        std::vector<grpc::Service*>{&templates_, &accounts_, &campaigns_});
  }

  // Runs campaignctl against the fake server with API key "k1".
  Result Run(std::vector<std::string> args) {
    return server_->Run(std::move(args));
  }

  Recorder recorder_;
  FakeTemplates templates_{&recorder_};
  FakeAccounts accounts_{&recorder_};
  FakeCampaigns campaigns_{&recorder_};
  std::unique_ptr<test_util::FakeServer> server_;
};

TEST_F(CampaignctlTest, SendsBearerKeyAndPrintsFields) {
  Result r = Run({"templates", "get", "tmpl_9"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(recorder_.authorization(), "Bearer k1");
  EXPECT_EQ(recorder_.request<v1::GetTemplateRequest>().id(), "tmpl_9");
  EXPECT_NE(r.out.find("id:         tmpl_9\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("channel:    sms\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("status:     approved\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("created_at: 2024-05-01T09:00:00Z\n"), std::string::npos)
      << r.out;
}

TEST_F(CampaignctlTest, JsonPrintsDefaultsWithCamelCaseNames) {
  Result r = Run({"templates", "get", "tmpl_9", "--json"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("\"channel\":\"sms\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"rejectionReason\":\"\""), std::string::npos) << r.out;
}

TEST_F(CampaignctlTest, ListPrintsTableAndFooter) {
  Result r = Run({"templates", "list", "--page", "2", "--limit", "2",
                  "--channel", "sms", "--status", "approved"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  v1::ListTemplatesRequest sent = recorder_.request<v1::ListTemplatesRequest>();
  EXPECT_EQ(sent.page(), 2);
  EXPECT_EQ(sent.limit(), 2);
  EXPECT_EQ(sent.channel(), v1::sms);
  EXPECT_EQ(sent.status(), v1::Template::approved);
  EXPECT_EQ(r.out,
            "ID       NAME     LANGUAGE  CHANNEL  STATUS    UPDATED\n"
            "tmpl_1   welcome  en_US     sms      approved  -\n"
            "tmpl_22  welcome  en_US     sms      approved  -\n"
            "page 2, 2 of 42, more: yes\n");
}

TEST_F(CampaignctlTest, UpdateMaskHasExactlyTheGivenFlags) {
  Result r = Run({"templates", "update", "tmpl_1", "--body", ""});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  v1::UpdateTemplateRequest sent =
      recorder_.request<v1::UpdateTemplateRequest>();
  EXPECT_EQ(sent.id(), "tmpl_1");
  EXPECT_EQ(sent.body(), "");
  ASSERT_EQ(sent.update_mask().paths_size(), 1);
  EXPECT_EQ(sent.update_mask().paths(0), "body");
}

TEST_F(CampaignctlTest, UpdateWithoutFlagsIsUsageError) {
  Result r = Run({"campaigns", "update", "cmp_1"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("nothing to update"), std::string::npos) << r.err;
}

TEST_F(CampaignctlTest, CampaignCreateMapsEveryFlag) {
  Result r = Run({"campaigns",
                  "create",
                  "--name",
                  "spring",
                  "--channel",
                  "whatsapp",
                  "--sender",
                  "+15550001",
                  "--template",
                  "tmpl_1",
                  "--var",
                  "1=first_name",
                  "--var",
                  "code=promo",
                  "--tag",
                  "vip",
                  "--tag",
                  "eu",
                  "--batch-size",
                  "50",
                  "--batch-delay",
                  "1h30m",
                  "--rate",
                  "5",
                  "--validity",
                  "500ms",
                  "--max-lateness",
                  "10m",
                  "--schedule-at",
                  "2024-05-01T09:00:00Z",
                  "--start",
                  "--request-id",
                  "r1"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  v1::CreateCampaignRequest sent =
      recorder_.request<v1::CreateCampaignRequest>();
  EXPECT_EQ(sent.name(), "spring");
  EXPECT_EQ(sent.channel(), v1::whatsapp);
  EXPECT_EQ(sent.sender_id(), "+15550001");
  EXPECT_EQ(sent.template_id(), "tmpl_1");
  EXPECT_EQ(sent.variable_mapping().at("1"), "first_name");
  EXPECT_EQ(sent.variable_mapping().at("code"), "promo");
  ASSERT_EQ(sent.tags_size(), 2);
  EXPECT_EQ(sent.tags(0), "vip");
  EXPECT_EQ(sent.tags(1), "eu");
  EXPECT_EQ(sent.batch_size(), 50);
  EXPECT_EQ(sent.batch_delay().seconds(), 5400);
  EXPECT_EQ(sent.rate_limit_per_second(), 5);
  EXPECT_EQ(sent.validity_period().nanos(), 500000000);
  EXPECT_EQ(sent.max_lateness().seconds(), 600);
  EXPECT_EQ(sent.schedule_at().seconds(), 1714554000);
  EXPECT_TRUE(sent.start());
  EXPECT_EQ(sent.request_id(), "r1");
  // Unset counters are still shown.
  EXPECT_NE(r.out.find("stats:\n  total:"), std::string::npos) << r.out;
}

TEST_F(CampaignctlTest, CampaignUpdateClearsScheduleWithEmptyValue) {
  Result r =
      Run({"campaigns", "update", "cmp_1", "--schedule-at", "", "--tag", "a"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  v1::UpdateCampaignRequest sent =
      recorder_.request<v1::UpdateCampaignRequest>();
  EXPECT_FALSE(sent.has_schedule_at());
  ASSERT_EQ(sent.update_mask().paths_size(), 2);
  EXPECT_EQ(sent.update_mask().paths(0), "tags");
  EXPECT_EQ(sent.update_mask().paths(1), "schedule_at");
}

// A file in gtest's temporary directory holding `contents`.
std::string WriteTempFile(const std::string& name,
                          const std::string& contents) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

TEST_F(CampaignctlTest, EmailFlagsOnTemplateAndCampaignCreate) {
  const std::string html =
      WriteTempFile("campaignctl_news.html", "<h1>Hi {{name}}</h1>\n");
  Result r = Run({"templates", "create", "--name", "news", "--language", "en",
                  "--channel", "email", "--body", "Hi {{name}}", "--subject",
                  "News for {{name}}", "--html-body-file", html});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  v1::CreateTemplateRequest tmpl =
      recorder_.request<v1::CreateTemplateRequest>();
  EXPECT_EQ(tmpl.channel(), v1::email);
  EXPECT_EQ(tmpl.subject(), "News for {{name}}");
  EXPECT_EQ(tmpl.html_body(), "<h1>Hi {{name}}</h1>\n");

  r = Run({"campaigns", "create", "--name", "n", "--channel", "email",
           "--sender", "news@example.com", "--body", "Hi", "--subject",
           "Spring", "--html-body", "<p>Hi</p>"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  v1::CreateCampaignRequest cmp =
      recorder_.request<v1::CreateCampaignRequest>();
  EXPECT_EQ(cmp.subject(), "Spring");
  EXPECT_EQ(cmp.html_body(), "<p>Hi</p>");
  EXPECT_EQ(cmp.body(), "Hi");
}

TEST_F(CampaignctlTest, EmailFlagsOnUpdateGoIntoTheMask) {
  const std::string html = WriteTempFile("campaignctl_update.html", "<p/>");
  Result r = Run({"campaigns", "update", "cmp_1", "--subject", "",
                  "--html-body-file", html});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  v1::UpdateCampaignRequest sent =
      recorder_.request<v1::UpdateCampaignRequest>();
  EXPECT_EQ(sent.subject(), "");
  EXPECT_EQ(sent.html_body(), "<p/>");
  ASSERT_EQ(sent.update_mask().paths_size(), 2);
  EXPECT_EQ(sent.update_mask().paths(0), "subject");
  EXPECT_EQ(sent.update_mask().paths(1), "html_body");

  r = Run({"templates", "update", "tmpl_1", "--html-body", ""});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  v1::UpdateTemplateRequest t = recorder_.request<v1::UpdateTemplateRequest>();
  ASSERT_EQ(t.update_mask().paths_size(), 1);
  EXPECT_EQ(t.update_mask().paths(0), "html_body");
}

TEST_F(CampaignctlTest, SecretIsShownOnceProminently) {
  Result r = Run({"keys", "create", "--name", "ci"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(recorder_.request<v1::CreateApiKeyRequest>().name(), "ci");
  EXPECT_NE(r.out.find("shown only once"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n    ck_abcdefSECRET\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("secret:"), std::string::npos) << r.out;
}

TEST_F(CampaignctlTest, DeletePrintsWhatWasDeleted) {
  Result r = Run({"templates", "delete", "tmpl_5"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "deleted template tmpl_5\n");
}

TEST_F(CampaignctlTest, ServerErrorPrintsDetailsAndExits1) {
  Result r = Run({"templates", "list", "--limit", "500"});
  EXPECT_EQ(r.code, kExitRpcError);
  EXPECT_EQ(r.err,
            "error: INVALID_ARGUMENT (INVALID_REQUEST): limit: must be at most "
            "100\n"
            "  field limit: must be at most 100\n"
            "  field: limit\n");
  EXPECT_EQ(r.out, "");
}

TEST_F(CampaignctlTest, ServerErrorWithJsonAddsJsonObject) {
  Result r = Run({"--json", "templates", "list", "--limit", "500"});
  EXPECT_EQ(r.code, kExitRpcError);
  EXPECT_NE(r.err.find("{\"error\":{\"code\":\"INVALID_ARGUMENT\""),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("\"fieldViolations\":[{\"field\":\"limit\""),
            std::string::npos)
      << r.err;
}

// With --json, stderr holds exactly one JSON object, whatever failed.
TEST_F(CampaignctlTest, JsonErrorsAreOneObjectOnStderr) {
  const std::vector<std::vector<std::string>> cases = {
      // the server's error
      {"--api-key", "k1", "--json", "templates", "list", "--limit", "500"},
      // a usage error found after parsing
      {"--api-key", "k1", "-o", "json", "campaigns", "update", "cmp_1"},
      // parse errors
      {"--api-key", "k1", "--json", "templates", "list", "--limit", "ten"},
      {"--api-key", "k1", "--json", "campaigns", "frobnicate"},
      // with a hint (no key)
      {"--api-key", "", "--json", "account", "get"},
  };
  for (const std::vector<std::string>& args : cases) {
    std::vector<std::string> full = {"campaignctl", "--server",
                                     server_->address()};
    full.insert(full.end(), args.begin(), args.end());
    Result r = RunRaw(full);
    SCOPED_TRACE(r.err);
    EXPECT_NE(r.code, kExitOk);
    ASSERT_FALSE(r.err.empty());
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line";
    nlohmann::json j = nlohmann::json::parse(r.err, nullptr, false);
    ASSERT_TRUE(j.is_object());
    EXPECT_TRUE(j["error"]["code"].is_string());
    EXPECT_FALSE(j["error"]["message"].get<std::string>().empty());
  }
}

TEST_F(CampaignctlTest, QuietPrintsOnlyTheIds) {
  Result r = Run({"-q", "campaigns", "create", "--name", "n", "--channel",
                  "sms", "--sender", "+15550001", "--body", "Hi"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "cmp_1\n");
  r = Run({"templates", "list", "-o", "id"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "tmpl_1\ntmpl_22\n");
  r = Run({"templates", "delete", "tmpl_5", "--quiet"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "tmpl_5\n");
  r = Run({"-q", "--json", "templates", "get", "tmpl_5"});
  EXPECT_EQ(r.code, kExitUsage);
}

TEST_F(CampaignctlTest, QuietKeepsASecretOnTheTerminal) {
  Result r = Run({"-q", "keys", "create", "--name", "ci"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "key_1\n");
  EXPECT_NE(r.err.find("ck_abcdefSECRET"), std::string::npos) << r.err;
}

TEST_F(CampaignctlTest, MissingKeyGetsAHint) {
  Result r = RunRaw({"campaignctl", "--server", server_->address(), "--api-key",
                     "", "account", "get"});
  EXPECT_EQ(r.code, kExitRpcError);
  EXPECT_EQ(recorder_.authorization(), "");
  EXPECT_NE(r.err.find("error: UNAUTHENTICATED: invalid API key\n"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("--api-key or CAMPAIGND_API_KEY"), std::string::npos);
}

TEST_F(CampaignctlTest, UnreachableServerExits3) {
  std::string address = server_->address();
  server_->server()->Shutdown();
  server_->server()->Wait();
  Result r = RunRaw({"campaignctl", "--server", address, "--timeout", "5s",
                     "templates", "get", "tmpl_1"});
  EXPECT_EQ(r.code, kExitUnreachable);
  EXPECT_NE(r.err.find("error: UNAVAILABLE"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cannot reach campaignd at " + address),
            std::string::npos)
      << r.err;
}

// A command line that must fail with exit 2, and a piece of its message.
struct UsageCase {
  std::vector<std::string> args;
  std::string expected_error;
};

// Names the test case after its arguments, e.g. "campaigns list --channel fax".
void PrintTo(const UsageCase& c, std::ostream* os) {
  for (const std::string& a : c.args) *os << a << ' ';
}

// Not thread-safe (parameterized gtest fixture).
class UsageTest : public ::testing::TestWithParam<UsageCase> {};

TEST_P(UsageTest, Exits2WithMessage) {
  std::vector<std::string> args = {"campaignctl", "--server", "127.0.0.1:1"};
  args.insert(args.end(), GetParam().args.begin(), GetParam().args.end());
  Result r = RunRaw(args);
  EXPECT_EQ(r.code, kExitUsage) << r.out;
  EXPECT_NE(r.err.find(GetParam().expected_error), std::string::npos) << r.err;
}

INSTANTIATE_TEST_SUITE_P(
    Flags, UsageTest,
    ::testing::Values(
        UsageCase{{"campaigns", "list", "--channel", "fax"},
                  "use one of: sms, whatsapp, telegram, email, slack, rcs"},
        UsageCase{{"campaigns", "list", "--status", "status_unspecified"},
                  "use one of: draft, scheduled"},
        UsageCase{{"senders", "register", "--sender-id", "X", "--channel",
                   "sms", "--tier", "tier_5"},
                  "use one of: tier_1k, tier_10k, tier_100k, unlimited"},
        UsageCase{{"campaigns", "create", "--name", "n", "--channel", "sms",
                   "--sender", "s"},
                  "[--body,--template]"},
        UsageCase{
            {"campaigns", "create", "--name", "n", "--channel", "sms",
             "--sender", "s", "--body", "b", "--list", "cl_1", "--tag", "t"},
            "[--list,--tag,--contact]"},
        UsageCase{{"campaigns", "update", "cmp_1", "--batch-delay", "soon"},
                  "is not a duration"},
        UsageCase{{"campaigns", "update", "cmp_1", "--schedule-at", "May 1"},
                  "is not an RFC 3339 timestamp"},
        UsageCase{{"campaigns", "update", "cmp_1", "--var", "novalue"},
                  "is not KEY=VALUE"},
        UsageCase{{"templates", "list", "--limit", "ten"},
                  "is not a valid integer"},
        UsageCase{
            {"templates", "create", "--name", "n", "--language", "en",
             "--channel", "whatsapp", "--body", "b", "--component-json", "{"},
            "not a valid TemplateComponent JSON object"},
        UsageCase{{"campaigns", "get"}, "id is required"},
        UsageCase{{"campaigns", "update", "cmp_1", "--html-body", "<p/>",
                   "--html-body-file", "/dev/null"},
                  "excludes"},
        UsageCase{{"templates", "update", "tmpl_1", "--html-body-file",
                   "/nonexistent/news.html"},
                  "cannot read /nonexistent/news.html"},
        UsageCase{{"campaigns"}, "use one of: create, get, list"},
        UsageCase{{"campaigns", "frobnicate"},
                  "unknown command or argument: frobnicate"},
        UsageCase{{"--timeout", "0s", "version"}, "must be positive"}),
    [](const ::testing::TestParamInfo<UsageCase>& info) {
      std::string name = std::to_string(info.index);
      for (const std::string& a : info.param.args) {
        name += '_';
        for (char ch : a)
          name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
      }
      return name;
    });

TEST(HelpTest, HelpExits0) {
  for (std::vector<std::string> args :
       {std::vector<std::string>{"campaignctl", "--help"},
        {"campaignctl", "campaigns", "create", "--help"},
        {"campaignctl", "--help-all"}}) {
    Result r = RunRaw(args);
    EXPECT_EQ(r.code, kExitOk);
    EXPECT_NE(r.out.find("Usage: campaignctl"), std::string::npos) << r.out;
  }
}

TEST(RpcStatusTest, DecodesRetryInfoAndTrailer) {
  google::rpc::Status status;
  google::rpc::RetryInfo retry;
  retry.mutable_retry_delay()->set_seconds(2);
  status.add_details()->PackFrom(retry);
  RpcStatus decoded =
      DecodeRpcStatus(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                   "slow down", status.SerializeAsString()));
  ASSERT_TRUE(decoded.retry_delay.has_value());
  EXPECT_EQ(*decoded.retry_delay, absl::Seconds(2));
  EXPECT_EQ(RpcStatusToJson(decoded),
            "{\"error\":{\"code\":\"RESOURCE_EXHAUSTED\",\"message\":\"slow "
            "down\",\"reason\":\"\",\"domain\":\"\",\"metadata\":{},"
            "\"fieldViolations\":[],\"retryDelay\":\"2s\"}}");

  std::string key = "retry-after", value = "7";
  std::multimap<grpc::string_ref, grpc::string_ref> trailers = {
      {grpc::string_ref(key), grpc::string_ref(value)}};
  decoded = DecodeRpcStatus(
      grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "slow down"),
      trailers);
  ASSERT_TRUE(decoded.retry_delay.has_value());
  EXPECT_EQ(*decoded.retry_delay, absl::Seconds(7));
  EXPECT_EQ(FormatRpcStatus(decoded),
            "error: RESOURCE_EXHAUSTED: slow down\n  retry after 7s\n");
}

TEST(ProtoFlagsTest, DurationsAndClearing) {
  v1::UpdateCampaignRequest request;
  ASSERT_TRUE(SetFieldFromString(&request, "batch_delay", "1h30m").ok());
  EXPECT_EQ(request.batch_delay().seconds(), 5400);
  ASSERT_TRUE(SetFieldFromString(&request, "batch_delay", "45").ok());
  EXPECT_EQ(request.batch_delay().seconds(), 45);
  ASSERT_TRUE(SetFieldFromString(&request, "batch_delay", "").ok());
  EXPECT_FALSE(request.has_batch_delay());
  EXPECT_FALSE(SetFieldFromString(&request, "batch_delay", "-1s").ok());
  EXPECT_EQ(SetFieldFromString(&request, "nope", "x").code(),
            absl::StatusCode::kNotFound);
}

TEST(OutputTest, AnAllChannelSuppressionPrintsAsAll) {
  v1::Suppression all;
  all.set_address("+12025550143");
  v1::Suppression sms = all;
  sms.set_channel(v1::sms);
  EXPECT_EQ(FormatPath(all, "channel"), "all");
  EXPECT_EQ(FormatPath(sms, "channel"), "sms");
  std::ostringstream out;
  PrintFields(all, out);
  EXPECT_NE(out.str().find("channel: all"), std::string::npos) << out.str();
  // Elsewhere an unset enum is its name.
  v1::Campaign c;
  EXPECT_EQ(FormatPath(c, "channel"), "channel_unspecified");
}

TEST(OutputTest, FormatPathFollowsNestedFields) {
  v1::Campaign campaign;
  campaign.mutable_stats()->set_delivered(3);
  campaign.mutable_batch_delay()->set_seconds(90);
  EXPECT_EQ(FormatPath(campaign, "stats.delivered"), "3");
  EXPECT_EQ(FormatPath(campaign, "batch_delay"), "1m30s");
  EXPECT_EQ(FormatPath(campaign, "schedule_at"), "-");
  EXPECT_EQ(FormatPath(campaign, "name"), "-");
}

}  // namespace
}  // namespace campaigns::client
