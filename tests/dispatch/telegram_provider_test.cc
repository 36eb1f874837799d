// The telegram provider against a fake Bot API on 127.0.0.1:0 built from
// core.telegram.org/bots/api (sendMessage, error answers with
// ResponseParameters, setWebhook's secret_token header): the request byte
// for byte, every class of answer, timeouts, dropped connections, and the
// bot token kept out of every text.
#include <gtest/gtest.h>

#include <chrono>

#include "nlohmann/json.hpp"
#include "server/dispatch/providers/telegram.h"
#include "tests/dispatch/fake_vendor.h"

namespace campaigns::dispatch {
namespace {

using testing::AnswerCase;
using testing::AnswerWith;
using testing::ClosedPort;
using testing::Dropping;
using testing::ExpectAnswer;
using testing::FakeVendor;
using testing::HttpServerRequest;
using testing::SendOneAndWait;
using testing::Slowly;

constexpr char kBotToken[] = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11";
constexpr char kSecret[] = "tg_webhook-Secret_1";

OutgoingMessage ToChat(const std::string& chat) {
  OutgoingMessage m;
  m.idempotency_key = "cmp_1:rcp_1";
  m.channel = Channel::kTelegram;
  m.address = chat;
  m.text = "Hi Ann";
  return m;
}

class TelegramTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto client = HttpClient::Create();
    ASSERT_TRUE(client.ok()) << client.status();
    http_ = *std::move(client);
  }
  std::unique_ptr<TelegramProvider> Provider(
      const std::string& base, absl::Duration timeout = absl::Seconds(5)) {
    TelegramOptions o;
    o.name = "tg";
    o.base_url = base;
    o.bot_token = kBotToken;
    o.webhook_secret = kSecret;
    o.max_in_flight = 4;
    o.timeout = timeout;
    return std::make_unique<TelegramProvider>(o, http_.get());
  }
  std::unique_ptr<HttpClient> http_;
};

constexpr char kSent[] =
    R"({"ok":true,"result":{"message_id":4711,"from":{"id":123456,)"
    R"("is_bot":true,"first_name":"Shop"},"chat":{"id":987654321,)"
    R"("type":"private"},"date":1750263773,"text":"Hi Ann"}})";

TEST_F(TelegramTest, SendsSendMessage) {
  FakeVendor tg(AnswerWith(200, kSent));
  auto p = Provider(tg.base_url());
  const SendResult r = SendOneAndWait(*p, ToChat("987654321"));
  EXPECT_EQ(r.status, SendStatus::kAccepted) << r.error_desc;
  EXPECT_EQ(r.provider_message_id, "987654321:4711");
  const auto requests = tg.requests();
  ASSERT_EQ(requests.size(), 1u);
  const HttpServerRequest& req = requests[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.path, std::string("/bot") + kBotToken + "/sendMessage");
  EXPECT_EQ(req.Header("content-type"), "application/json");
  EXPECT_EQ(
      nlohmann::json::parse(req.body),
      nlohmann::json::parse(R"({"chat_id": 987654321, "text": "Hi Ann"})"));
  // A channel username stays a string.
  EXPECT_EQ(
      nlohmann::json::parse(TelegramBody(ToChat("@shopnews"))),
      nlohmann::json::parse(R"({"chat_id": "@shopnews", "text": "Hi Ann"})"));
  EXPECT_EQ(nlohmann::json::parse(TelegramBody(ToChat("-1001234567890"))),
            nlohmann::json::parse(
                R"({"chat_id": -1001234567890, "text": "Hi Ann"})"));
}

std::string BotError(int code, const std::string& description,
                     int retry_after = 0) {
  nlohmann::json j{
      {"ok", false}, {"error_code", code}, {"description", description}};
  if (retry_after > 0) j["parameters"] = {{"retry_after", retry_after}};
  return j.dump();
}

class TelegramAnswerTest : public TelegramTest,
                           public ::testing::WithParamInterface<AnswerCase> {};

TEST_P(TelegramAnswerTest, MapsTheAnswer) {
  const AnswerCase& c = GetParam();
  HttpResponse direct;
  direct.status = c.status;
  direct.body = c.body;
  ExpectAnswer(TelegramResult(direct, "987654321", kBotToken), c,
               {kBotToken, "ABC-DEF"});

  FakeVendor tg(AnswerWith(c.status, c.body, c.headers));
  auto p = Provider(tg.base_url());
  ExpectAnswer(SendOneAndWait(*p, ToChat("987654321")), c,
               {kBotToken, "ABC-DEF"});
}

INSTANTIATE_TEST_SUITE_P(
    Answers, TelegramAnswerTest,
    ::testing::Values(
        AnswerCase{"sent",
                   200,
                   kSent,
                   {},
                   SendStatus::kAccepted,
                   "",
                   "987654321:4711"},
        AnswerCase{"ok_not_json",
                   200,
                   "ok",
                   {},
                   SendStatus::kPermanent,
                   "outcome_unknown"},
        AnswerCase{"ok_without_message_id",
                   200,
                   R"({"ok":true,"result":{}})",
                   {},
                   SendStatus::kPermanent,
                   "outcome_unknown"},
        AnswerCase{"flood",
                   429,
                   BotError(429, "Too Many Requests: retry after 34", 34),
                   {},
                   SendStatus::kTransient,
                   "429",
                   "",
                   absl::Seconds(34)},
        AnswerCase{"chat_not_found",
                   400,
                   BotError(400, "Bad Request: chat not found"),
                   {},
                   SendStatus::kPermanent,
                   "400"},
        AnswerCase{"blocked",
                   403,
                   BotError(403, "Forbidden: bot was blocked by the user"),
                   {},
                   SendStatus::kPermanent,
                   "403",
                   "",
                   absl::ZeroDuration(),
                   "opt_out"},
        AnswerCase{"deactivated",
                   403,
                   BotError(403, "Forbidden: user is deactivated"),
                   {},
                   SendStatus::kPermanent,
                   "403"},
        AnswerCase{"bad_token",
                   401,
                   BotError(401, "Unauthorized"),
                   {},
                   SendStatus::kUnusable,
                   "401"},
        AnswerCase{"malformed_token",
                   404,
                   BotError(404, "Not Found"),
                   {},
                   SendStatus::kUnusable,
                   "404"},
        AnswerCase{"gateway",
                   502,
                   "<html>Bad Gateway</html>",
                   {},
                   SendStatus::kTransient,
                   "502"}),
    [](const ::testing::TestParamInfo<AnswerCase>& info) {
      return std::string(info.param.name);
    });

TEST_F(TelegramTest, HonoursRetryAfterHeaderWithoutParameters) {
  FakeVendor tg(AnswerWith(429, BotError(429, "Too Many Requests"),
                           {{"Retry-After", "5"}}));
  auto p = Provider(tg.base_url());
  const SendResult r = SendOneAndWait(*p, ToChat("1"));
  EXPECT_EQ(r.status, SendStatus::kTransient);
  EXPECT_EQ(r.retry_after, absl::Seconds(5));
}

TEST_F(TelegramTest, SlowDroppedAndRefusedAreTransientAndNeverShowTheToken) {
  {
    FakeVendor tg(Slowly(std::chrono::milliseconds(1500), 200, kSent));
    auto p = Provider(tg.base_url(), absl::Milliseconds(200));
    const SendResult r = SendOneAndWait(*p, ToChat("1"));
    EXPECT_EQ(r.status, SendStatus::kTransient);
    EXPECT_EQ(r.error_code, "timeout");
    EXPECT_EQ(r.error_desc.find("ABC-DEF"), std::string::npos);
  }
  {
    FakeVendor tg(Dropping());
    auto p = Provider(tg.base_url());
    const SendResult r = SendOneAndWait(*p, ToChat("1"));
    EXPECT_EQ(r.status, SendStatus::kTransient);
    EXPECT_EQ(r.error_code, "connection_failed");
    EXPECT_EQ(r.error_desc.find("ABC-DEF"), std::string::npos);
  }
  auto p = Provider("http://127.0.0.1:" + std::to_string(ClosedPort()));
  const SendResult r = SendOneAndWait(*p, ToChat("1"));
  EXPECT_EQ(r.status, SendStatus::kTransient);
  EXPECT_EQ(r.error_desc.find("ABC-DEF"), std::string::npos);
}

class TelegramWebhookTest : public TelegramTest {
 protected:
  void SetUp() override {
    TelegramTest::SetUp();
    provider_ = Provider("http://127.0.0.1:1");
  }
  WebhookRequest Update(const std::string& body,
                        const std::string& secret = kSecret) {
    WebhookRequest r;
    r.method = "POST";
    r.path = "/webhooks/tg";
    r.body = body;
    r.now = absl::FromUnixSeconds(1800000000);
    if (!secret.empty()) r.headers["x-telegram-bot-api-secret-token"] = secret;
    return r;
  }
  std::unique_ptr<TelegramProvider> provider_;
};

// Shaped as the Bot API's Update with a Message.
constexpr char kTextUpdate[] = R"({
  "update_id": 10000,
  "message": {"message_id": 1365, "date": 1441645532,
              "from": {"id": 1111111, "is_bot": false, "first_name": "Ann"},
              "chat": {"id": 1111111, "type": "private", "first_name": "Ann"},
              "text": "/stop"}})";

TEST_F(TelegramWebhookTest, TextMessagesBecomeInbound) {
  auto events = provider_->ParseWebhook(Update(kTextUpdate));
  ASSERT_TRUE(events.ok()) << events.status();
  EXPECT_TRUE(events->receipts.empty());
  ASSERT_EQ(events->inbound.size(), 1u);
  EXPECT_EQ(events->inbound[0].channel, Channel::kTelegram);
  EXPECT_EQ(events->inbound[0].from, "1111111");
  EXPECT_EQ(events->inbound[0].text, "/stop");

  for (const char* nothing : {
           R"({"update_id": 1, "edited_message": {"chat": {"id": 1},
               "text": "x"}})",
           R"({"update_id": 2, "message": {"chat": {"id": 1},
               "photo": []}})",
       }) {
    auto e = provider_->ParseWebhook(Update(nothing));
    ASSERT_TRUE(e.ok()) << e.status();
    EXPECT_TRUE(e->inbound.empty());
  }
}

TEST_F(TelegramWebhookTest, RefusesAWrongOrMissingSecret) {
  EXPECT_EQ(provider_->ParseWebhook(Update(kTextUpdate, "")).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(provider_->ParseWebhook(Update(kTextUpdate, "tg_webhook-Secret_2"))
                .status()
                .code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(provider_->ParseWebhook(Update(kTextUpdate, "tg_webhook"))
                .status()
                .code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(TelegramWebhookTest, RefusesMalformedUpdates) {
  for (const char* body :
       {"nope", "[]", R"({"message": 5})", R"({"message": {"text": "hi"}})",
        R"({"message": {"chat": {"id": "x"}, "text": "hi"}})",
        R"({"message": {"chat": {"id": 1}, "text": 7}})"}) {
    EXPECT_EQ(provider_->ParseWebhook(Update(body)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << body;
  }
}

}  // namespace
}  // namespace campaigns::dispatch
