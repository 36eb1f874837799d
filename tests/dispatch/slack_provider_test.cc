// The slack provider against a fake Web API on 127.0.0.1:0 built from
// api.slack.com/methods/chat.postMessage and Slack's rate-limit docs: the
// request byte for byte, every class of answer, timeouts and dropped
// connections.
#include <gtest/gtest.h>

#include <chrono>

#include "nlohmann/json.hpp"
#include "server/dispatch/providers/slack.h"
#include "tests/dispatch/fake_vendor.h"

namespace campaigns::dispatch {
namespace {

using testing::AnswerCase;
using testing::AnswerWith;
using testing::Dropping;
using testing::ExpectAnswer;
using testing::FakeVendor;
using testing::HttpServerRequest;
using testing::SendOneAndWait;
using testing::Slowly;

constexpr char kSlackToken[] = "xoxb-1234-5678-abcdefSECRET";

OutgoingMessage ToChannel() {
  OutgoingMessage m;
  m.idempotency_key = "cmp_1:rcp_1";
  m.channel = Channel::kSlack;
  m.address = "C123ABC456";
  m.text = "Hi team";
  return m;
}

class SlackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto client = HttpClient::Create();
    ASSERT_TRUE(client.ok()) << client.status();
    http_ = *std::move(client);
  }
  std::unique_ptr<SlackProvider> Provider(
      const std::string& base, absl::Duration timeout = absl::Seconds(5)) {
    SlackOptions o;
    o.name = "slack";
    o.base_url = base;
    o.bot_token = kSlackToken;
    o.max_in_flight = 4;
    o.timeout = timeout;
    return std::make_unique<SlackProvider>(o, http_.get());
  }
  std::unique_ptr<HttpClient> http_;
};

constexpr char kPosted[] =
    R"({"ok":true,"channel":"C123ABC456","ts":"1503435956.000247",)"
    R"("message":{"text":"Hi team","type":"message","ts":"1503435956.000247"}})";

TEST_F(SlackTest, PostsChatPostMessage) {
  FakeVendor slack(AnswerWith(200, kPosted));
  auto p = Provider(slack.base_url());
  const SendResult r = SendOneAndWait(*p, ToChannel());
  EXPECT_EQ(r.status, SendStatus::kAccepted) << r.error_desc;
  EXPECT_EQ(r.provider_message_id, "C123ABC456:1503435956.000247");
  const auto requests = slack.requests();
  ASSERT_EQ(requests.size(), 1u);
  const HttpServerRequest& req = requests[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.path, "/api/chat.postMessage");
  EXPECT_EQ(req.Header("authorization"), std::string("Bearer ") + kSlackToken);
  EXPECT_EQ(req.Header("content-type"), "application/json; charset=utf-8");
  EXPECT_EQ(
      nlohmann::json::parse(req.body),
      nlohmann::json::parse(R"({"channel": "C123ABC456", "text": "Hi team"})"));
}

class SlackAnswerTest : public SlackTest,
                        public ::testing::WithParamInterface<AnswerCase> {};

TEST_P(SlackAnswerTest, MapsTheAnswer) {
  const AnswerCase& c = GetParam();
  HttpResponse direct;
  direct.status = c.status;
  direct.body = c.body;
  for (const auto& [name, value] : c.headers) {
    if (name == "Retry-After") {
      direct.retry_after = absl::Seconds(std::stoi(value));
    }
  }
  ExpectAnswer(SlackResult(direct, kSlackToken), c, {kSlackToken});

  FakeVendor slack(AnswerWith(c.status, c.body, c.headers));
  auto p = Provider(slack.base_url());
  ExpectAnswer(SendOneAndWait(*p, ToChannel()), c, {kSlackToken});
}

INSTANTIATE_TEST_SUITE_P(
    Answers, SlackAnswerTest,
    ::testing::Values(
        AnswerCase{"posted",
                   200,
                   kPosted,
                   {},
                   SendStatus::kAccepted,
                   "",
                   "C123ABC456:1503435956.000247"},
        AnswerCase{"ok_without_ts",
                   200,
                   R"({"ok":true,"channel":"C1"})",
                   {},
                   SendStatus::kPermanent,
                   "outcome_unknown"},
        AnswerCase{"not_json",
                   200,
                   "<html>",
                   {},
                   SendStatus::kPermanent,
                   "outcome_unknown"},
        AnswerCase{"channel_not_found",
                   200,
                   R"({"ok":false,"error":"channel_not_found"})",
                   {},
                   SendStatus::kPermanent,
                   "channel_not_found"},
        AnswerCase{"not_in_channel",
                   200,
                   R"({"ok":false,"error":"not_in_channel"})",
                   {},
                   SendStatus::kPermanent,
                   "not_in_channel"},
        AnswerCase{"http_429",
                   429,
                   "",
                   {{"Retry-After", "30"}},
                   SendStatus::kTransient,
                   "ratelimited",
                   "",
                   absl::Seconds(30)},
        AnswerCase{"ratelimited_ok_false",
                   200,
                   R"({"ok":false,"error":"ratelimited"})",
                   {{"Retry-After", "4"}},
                   SendStatus::kTransient,
                   "ratelimited",
                   "",
                   absl::Seconds(4)},
        AnswerCase{"invalid_auth",
                   200,
                   R"({"ok":false,"error":"invalid_auth"})",
                   {},
                   SendStatus::kUnusable,
                   "invalid_auth"},
        AnswerCase{"not_authed",
                   200,
                   R"({"ok":false,"error":"not_authed"})",
                   {},
                   SendStatus::kUnusable,
                   "not_authed"},
        AnswerCase{"account_inactive",
                   200,
                   R"({"ok":false,"error":"account_inactive"})",
                   {},
                   SendStatus::kUnusable,
                   "account_inactive"},
        AnswerCase{"token_revoked",
                   200,
                   R"({"ok":false,"error":"token_revoked"})",
                   {},
                   SendStatus::kUnusable,
                   "token_revoked"},
        AnswerCase{"server_error", 503, "", {}, SendStatus::kTransient, "503"},
        AnswerCase{
            "unauthorized_http", 401, "", {}, SendStatus::kUnusable, "401"}),
    [](const ::testing::TestParamInfo<AnswerCase>& info) {
      return std::string(info.param.name);
    });

TEST_F(SlackTest, SlowAndDroppedAreTransient) {
  {
    FakeVendor slack(Slowly(std::chrono::milliseconds(1500), 200, kPosted));
    auto p = Provider(slack.base_url(), absl::Milliseconds(200));
    const SendResult r = SendOneAndWait(*p, ToChannel());
    EXPECT_EQ(r.status, SendStatus::kTransient);
    EXPECT_EQ(r.error_code, "timeout");
  }
  FakeVendor slack(Dropping());
  auto p = Provider(slack.base_url());
  const SendResult r = SendOneAndWait(*p, ToChannel());
  EXPECT_EQ(r.status, SendStatus::kTransient);
  EXPECT_EQ(r.error_code, "connection_failed");
}

TEST_F(SlackTest, TakesNoWebhooks) {
  auto p = Provider("http://127.0.0.1:1");
  WebhookRequest r;
  r.method = "POST";
  EXPECT_EQ(p->ParseWebhook(r).status().code(),
            absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace campaigns::dispatch
