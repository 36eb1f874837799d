// The whatsapp_cloud provider against a fake Graph API on 127.0.0.1:0 built
// from Meta's Cloud API docs (messages endpoint, error object, webhooks):
// the request byte for byte, every class of answer, timeouts, dropped
// connections, and webhook verification with an independent HMAC.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <cstdio>

#include "nlohmann/json.hpp"
#include "server/dispatch/providers/whatsapp_cloud.h"
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

constexpr char kMetaToken[] = "EAAGtestTOKEN123";
constexpr char kAppSecret[] = "meta-app-secret";
constexpr char kVerifyToken[] = "verify-me";
constexpr char kWamid[] =
    "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA";

OutgoingMessage TextMessage() {
  OutgoingMessage m;
  m.idempotency_key = "cmp_1:rcp_1";
  m.channel = Channel::kWhatsapp;
  m.sender_id = "+15550100";
  m.address = "+16505551234";
  m.text = "Hi Ann";
  return m;
}

OutgoingMessage TemplateMessage() {
  OutgoingMessage m = TextMessage();
  m.template_name = "order_update";
  m.template_language = "en_US";
  m.components = {
      {"HEADER", "TEXT", "Order 42", {{"text", "42", ""}}, "", 0},
      {"BODY",
       "",
       "Hi Ann, order 42 ships",
       {{"text", "Ann", ""}, {"text", "42", ""}},
       "",
       0},
      {"FOOTER", "", "Thanks", {}, "", 0},
      {"BUTTON", "", "", {{"payload", "", "STOP"}}, "quick_reply", 1},
  };
  return m;
}

class WhatsAppCloudTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto client = HttpClient::Create();
    ASSERT_TRUE(client.ok()) << client.status();
    http_ = *std::move(client);
  }

  WhatsAppCloudOptions Options(const std::string& base) {
    WhatsAppCloudOptions o;
    o.name = "meta";
    o.base_url = base + "/v21.0";
    o.phone_number_id = "106540352242922";
    o.access_token = kMetaToken;
    o.app_secret = kAppSecret;
    o.verify_token = kVerifyToken;
    o.max_in_flight = 4;
    o.timeout = absl::Seconds(5);
    return o;
  }

  std::unique_ptr<WhatsAppCloudProvider> Provider(
      const std::string& base, absl::Duration timeout = absl::Seconds(5)) {
    WhatsAppCloudOptions o = Options(base);
    o.timeout = timeout;
    return std::make_unique<WhatsAppCloudProvider>(o, http_.get());
  }

  std::unique_ptr<HttpClient> http_;
};

std::string Accepted() {
  return std::string(R"({"messaging_product":"whatsapp","contacts":[{"input":)"
                     R"("16505551234","wa_id":"16505551234"}],"messages":)"
                     R"([{"id":")") +
         kWamid + R"(","message_status":"accepted"}]})";
}

TEST_F(WhatsAppCloudTest, SendsATextMessage) {
  FakeVendor meta(AnswerWith(200, Accepted()));
  auto p = Provider(meta.base_url());
  const SendResult r = SendOneAndWait(*p, TextMessage());
  EXPECT_EQ(r.status, SendStatus::kAccepted) << r.error_desc;
  EXPECT_EQ(r.provider_message_id, kWamid);

  const auto requests = meta.requests();
  ASSERT_EQ(requests.size(), 1u);
  const HttpServerRequest& req = requests[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.path, "/v21.0/106540352242922/messages");
  EXPECT_EQ(req.Header("authorization"), std::string("Bearer ") + kMetaToken);
  EXPECT_EQ(req.Header("content-type"), "application/json");
  EXPECT_EQ(nlohmann::json::parse(req.body), nlohmann::json::parse(R"({
    "messaging_product": "whatsapp", "recipient_type": "individual",
    "to": "16505551234", "type": "text", "text": {"body": "Hi Ann"}})"));
}

TEST_F(WhatsAppCloudTest, SendsATemplateMessageWithItsParameters) {
  FakeVendor meta(AnswerWith(200, Accepted()));
  auto p = Provider(meta.base_url());
  const SendResult r = SendOneAndWait(*p, TemplateMessage());
  EXPECT_EQ(r.status, SendStatus::kAccepted) << r.error_desc;
  const auto requests = meta.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(requests[0].body), nlohmann::json::parse(R"({
    "messaging_product": "whatsapp", "recipient_type": "individual",
    "to": "16505551234", "type": "template",
    "template": {
      "name": "order_update", "language": {"code": "en_US"},
      "components": [
        {"type": "header", "parameters": [{"type": "text", "text": "42"}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Ann"},
                                        {"type": "text", "text": "42"}]},
        {"type": "button", "sub_type": "quick_reply", "index": "1",
         "parameters": [{"type": "payload", "payload": "STOP"}]}]}})"));
}

TEST(WhatsAppCloudBodyTest, ATemplateWithoutParametersHasNoComponents) {
  OutgoingMessage m = TextMessage();
  m.template_name = "hello_world";
  m.template_language = "en_US";
  EXPECT_EQ(nlohmann::json::parse(WhatsAppCloudBody(m)),
            nlohmann::json::parse(R"({
    "messaging_product": "whatsapp", "recipient_type": "individual",
    "to": "16505551234", "type": "template",
    "template": {"name": "hello_world", "language": {"code": "en_US"}}})"));
}

std::string MetaError(int code, const std::string& message) {
  return nlohmann::json{{"error",
                         {{"message", message},
                          {"type", "OAuthException"},
                          {"code", code},
                          {"error_subcode", 2494010},
                          {"fbtrace_id", "AbCdEf123"}}}}
      .dump();
}

class WhatsAppCloudAnswerTest
    : public WhatsAppCloudTest,
      public ::testing::WithParamInterface<AnswerCase> {};

// The pure mapping, and the same answer through a real exchange.
TEST_P(WhatsAppCloudAnswerTest, MapsTheAnswer) {
  const AnswerCase& c = GetParam();
  HttpResponse direct;
  direct.status = c.status;
  direct.body = c.body;
  for (const auto& [name, value] : c.headers) {
    if (name == "Retry-After")
      direct.retry_after = absl::Seconds(std::stoi(value));
  }
  ExpectAnswer(WhatsAppCloudResult(direct, kMetaToken), c, {kMetaToken});

  FakeVendor meta(AnswerWith(c.status, c.body, c.headers));
  auto p = Provider(meta.base_url());
  ExpectAnswer(SendOneAndWait(*p, TextMessage()), c, {kMetaToken});
}

INSTANTIATE_TEST_SUITE_P(
    Answers, WhatsAppCloudAnswerTest,
    ::testing::Values(
        AnswerCase{
            "accepted", 200, Accepted(), {}, SendStatus::kAccepted, "", kWamid},
        AnswerCase{"ok_not_json",
                   200,
                   "<html>ok</html>",
                   {},
                   SendStatus::kPermanent,
                   "outcome_unknown"},
        AnswerCase{"ok_without_id",
                   200,
                   R"({"messages":[{}]})",
                   {},
                   SendStatus::kPermanent,
                   "outcome_unknown"},
        AnswerCase{"ok_empty_messages",
                   200,
                   R"({"messages":[]})",
                   {},
                   SendStatus::kPermanent,
                   "outcome_unknown"},
        AnswerCase{"truncated_json",
                   200,
                   R"({"messages":[{"id":"wam)",
                   {},
                   SendStatus::kPermanent,
                   "outcome_unknown"},
        AnswerCase{"http_429_retry_after",
                   429,
                   "",
                   {{"Retry-After", "7"}},
                   SendStatus::kTransient,
                   "429",
                   "",
                   absl::Seconds(7)},
        AnswerCase{"throughput_130429",
                   400,
                   MetaError(130429, "(#130429) Rate limit hit"),
                   {{"Retry-After", "3"}},
                   SendStatus::kTransient,
                   "130429",
                   "",
                   absl::Seconds(3)},
        AnswerCase{"pair_rate_131056",
                   400,
                   MetaError(131056, "(#131056) Pair rate limit hit"),
                   {},
                   SendStatus::kTransient,
                   "131056"},
        AnswerCase{"app_rate_4",
                   400,
                   MetaError(4, "(#4) Too many calls"),
                   {},
                   SendStatus::kTransient,
                   "4"},
        AnswerCase{"waba_rate_80007",
                   400,
                   MetaError(80007, "(#80007) Rate limit issues"),
                   {},
                   SendStatus::kTransient,
                   "80007"},
        AnswerCase{"server_error", 500, "", {}, SendStatus::kTransient, "500"},
        AnswerCase{"server_error_json",
                   503,
                   MetaError(131000, "Something went wrong"),
                   {},
                   SendStatus::kTransient,
                   "131000"},
        AnswerCase{"undeliverable_131026",
                   400,
                   MetaError(131026, "Message undeliverable"),
                   {},
                   SendStatus::kPermanent,
                   "131026"},
        AnswerCase{"reengagement_131047",
                   400,
                   MetaError(131047, "Re-engagement message"),
                   {},
                   SendStatus::kPermanent,
                   "131047"},
        AnswerCase{"template_132001",
                   404,
                   MetaError(132001, "Template name does not exist"),
                   {},
                   SendStatus::kPermanent,
                   "132001"},
        AnswerCase{"invalid_parameter_100",
                   400,
                   MetaError(100, "Invalid parameter"),
                   {},
                   SendStatus::kPermanent,
                   "100"},
        AnswerCase{"marketing_stopped_131050",
                   400,
                   MetaError(131050, "User stopped marketing messages"),
                   {},
                   SendStatus::kPermanent,
                   "131050",
                   "",
                   absl::ZeroDuration(),
                   "opt_out"},
        AnswerCase{"other_4xx_not_json",
                   400,
                   "bad",
                   {},
                   SendStatus::kPermanent,
                   "400"},
        AnswerCase{"token_expired_190",
                   401,
                   MetaError(190, std::string("Error validating access "
                                              "token ") +
                                      kMetaToken),
                   {},
                   SendStatus::kUnusable,
                   "190"},
        AnswerCase{
            "unauthorized_no_body", 401, "", {}, SendStatus::kUnusable, "401"},
        AnswerCase{"permission_denied_10",
                   403,
                   MetaError(10, "Permission denied"),
                   {},
                   SendStatus::kUnusable,
                   "10"}),
    [](const ::testing::TestParamInfo<AnswerCase>& info) {
      return std::string(info.param.name);
    });

TEST_F(WhatsAppCloudTest, AHugeAnswerIsAClearResult) {
  FakeVendor meta(AnswerWith(200, std::string(3 << 20, '{')));
  auto p = Provider(meta.base_url());
  const SendResult r = SendOneAndWait(*p, TextMessage());
  EXPECT_EQ(r.status, SendStatus::kPermanent);
  EXPECT_EQ(r.error_code, "outcome_unknown");
}

TEST_F(WhatsAppCloudTest, ASlowAnswerPastTheTimeoutIsTransient) {
  FakeVendor meta(Slowly(std::chrono::milliseconds(1500), 200, Accepted()));
  auto p = Provider(meta.base_url(), absl::Milliseconds(200));
  const SendResult r = SendOneAndWait(*p, TextMessage());
  EXPECT_EQ(r.status, SendStatus::kTransient);
  EXPECT_EQ(r.error_code, "timeout");
}

TEST_F(WhatsAppCloudTest, DroppedAndRefusedConnectionsAreTransient) {
  FakeVendor meta(Dropping());
  auto p = Provider(meta.base_url());
  SendResult r = SendOneAndWait(*p, TextMessage());
  EXPECT_EQ(r.status, SendStatus::kTransient);
  EXPECT_EQ(r.error_code, "connection_failed");

  auto gone = Provider("http://127.0.0.1:" + std::to_string(ClosedPort()));
  r = SendOneAndWait(*gone, TextMessage());
  EXPECT_EQ(r.status, SendStatus::kTransient);
  EXPECT_EQ(r.error_code, "connection_failed");
}

TEST_F(WhatsAppCloudTest, ABatchKeepsItsOrder) {
  FakeVendor meta([](const HttpServerRequest& req, testing::HttpReply reply) {
    const auto body = nlohmann::json::parse(req.body);
    testing::HttpServerResponse r;
    r.body = R"({"messages":[{"id":"wamid.)" + body["to"].get<std::string>() +
             R"("}]})";
    reply(std::move(r));
  });
  auto p = Provider(meta.base_url());
  std::vector<OutgoingMessage> batch;
  for (int i = 0; i < 12; ++i) {
    OutgoingMessage m = TextMessage();
    m.address = "+1650555" + std::to_string(1000 + i);
    batch.push_back(m);
  }
  const auto results = testing::SendAndWait(*p, batch);
  ASSERT_EQ(results.size(), 12u);
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(results[i].provider_message_id,
              "wamid.1650555" + std::to_string(1000 + i));
  }
}

// Webhooks in: Meta signs with HMAC-SHA256 under the app secret; the
// expected header is computed here straight with OpenSSL, not with the
// code under test.
std::string ReferenceSignature(const std::string& key,
                               const std::string& body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac,
       &len);
  std::string hex = "sha256=";
  char buf[3];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof(buf), "%02x", mac[i]);
    hex += buf;
  }
  return hex;
}

// Shaped as Meta's webhook examples for the `messages` field.
constexpr char kStatusesAndMessages[] = R"({
  "object": "whatsapp_business_account",
  "entry": [{
    "id": "102290129340398",
    "changes": [{
      "field": "messages",
      "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881",
                     "phone_number_id": "106540352242922"},
        "statuses": [
          {"id": "wamid.SENT", "status": "sent", "timestamp": "1750263773",
           "recipient_id": "16505551234"},
          {"id": "wamid.DELIVERED", "status": "delivered",
           "timestamp": "1750263774", "recipient_id": "16505551234"},
          {"id": "wamid.READ", "status": "read", "timestamp": "1750263780",
           "recipient_id": "16505551234"},
          {"id": "wamid.FAILED", "status": "failed", "timestamp": "1750263790",
           "recipient_id": "16505551234",
           "errors": [{"code": 131050,
                       "title": "User stopped marketing messages",
                       "message": "User stopped marketing messages"}]}
        ],
        "contacts": [{"profile": {"name": "Ann"}, "wa_id": "16505551234"}],
        "messages": [
          {"from": "16505551234", "id": "wamid.IN1", "timestamp": "1750263800",
           "type": "text", "text": {"body": "STOP"}},
          {"from": "16505551234", "id": "wamid.IN2", "timestamp": "1750263801",
           "type": "button",
           "button": {"payload": "STOP", "text": "Stop promotions"}},
          {"from": "16505551234", "id": "wamid.IN3", "timestamp": "1750263802",
           "type": "image", "image": {"id": "1234"}}
        ]
      }
    }]
  }]
})";

class WhatsAppCloudWebhookTest : public WhatsAppCloudTest {
 protected:
  void SetUp() override {
    WhatsAppCloudTest::SetUp();
    provider_ = Provider("http://127.0.0.1:1");
  }
  WebhookRequest Post(const std::string& body) {
    WebhookRequest r;
    r.method = "POST";
    r.path = "/webhooks/meta";
    r.body = body;
    r.now = now_;
    r.headers["x-hub-signature-256"] = ReferenceSignature(kAppSecret, body);
    return r;
  }
  WebhookRequest Get(const std::string& mode, const std::string& token) {
    WebhookRequest r;
    r.method = "GET";
    r.path = "/webhooks/meta";
    r.query = {{"hub.mode", mode},
               {"hub.verify_token", token},
               {"hub.challenge", "1158201444"}};
    r.now = now_;
    return r;
  }
  const absl::Time now_ = absl::FromUnixSeconds(1800000000);
  std::unique_ptr<WhatsAppCloudProvider> provider_;
};

TEST_F(WhatsAppCloudWebhookTest, SignaturesMatchAnIndependentHmac) {
  EXPECT_EQ(WhatsAppCloudSignature(kAppSecret, kStatusesAndMessages),
            ReferenceSignature(kAppSecret, kStatusesAndMessages));
}

TEST_F(WhatsAppCloudWebhookTest, AnswersTheSubscriptionCheck) {
  auto ok = provider_->ParseWebhook(Get("subscribe", kVerifyToken));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->answer, "1158201444");
  EXPECT_TRUE(ok->receipts.empty());
  EXPECT_EQ(provider_->ParseWebhook(Get("subscribe", "wrong")).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(
      provider_->ParseWebhook(Get("unsubscribe", kVerifyToken)).status().code(),
      absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(provider_->ParseWebhook(Get("subscribe", "")).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(WhatsAppCloudWebhookTest, StatusesBecomeReceiptsAndMessagesInbound) {
  auto events = provider_->ParseWebhook(Post(kStatusesAndMessages));
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->receipts.size(), 3u);  // `sent` is skipped
  EXPECT_EQ(events->receipts[0].provider_message_id, "wamid.DELIVERED");
  EXPECT_EQ(events->receipts[0].status, RecipientStatus::kDelivered);
  EXPECT_EQ(events->receipts[0].occurred_at, absl::FromUnixSeconds(1750263774));
  EXPECT_EQ(events->receipts[1].provider_message_id, "wamid.READ");
  EXPECT_EQ(events->receipts[1].status, RecipientStatus::kRead);
  EXPECT_EQ(events->receipts[2].provider_message_id, "wamid.FAILED");
  EXPECT_EQ(events->receipts[2].status, RecipientStatus::kFailed);
  EXPECT_EQ(events->receipts[2].error_code, "131050");
  EXPECT_EQ(events->receipts[2].error_desc, "User stopped marketing messages");
  ASSERT_EQ(events->inbound.size(), 2u);  // the image carries no text
  EXPECT_EQ(events->inbound[0].channel, Channel::kWhatsapp);
  EXPECT_EQ(events->inbound[0].from, "+16505551234");
  EXPECT_EQ(events->inbound[0].to, "+15550783881");
  EXPECT_EQ(events->inbound[0].text, "STOP");
  EXPECT_EQ(events->inbound[1].text, "Stop promotions");
  EXPECT_TRUE(events->answer.empty());
}

TEST_F(WhatsAppCloudWebhookTest, RefusesWhatIsNotSignedByTheAppSecret) {
  WebhookRequest tampered = Post(kStatusesAndMessages);
  tampered.body.replace(tampered.body.find("wamid.READ"), 10, "wamid.RXAD");
  WebhookRequest missing = Post(kStatusesAndMessages);
  missing.headers.clear();
  WebhookRequest wrong_key = Post(kStatusesAndMessages);
  wrong_key.headers["x-hub-signature-256"] =
      ReferenceSignature("another secret", kStatusesAndMessages);
  WebhookRequest bare_hex = Post(kStatusesAndMessages);
  bare_hex.headers["x-hub-signature-256"] =
      bare_hex.headers["x-hub-signature-256"].substr(7);
  for (const WebhookRequest& r : {tampered, missing, wrong_key, bare_hex}) {
    EXPECT_EQ(provider_->ParseWebhook(r).status().code(),
              absl::StatusCode::kUnauthenticated);
  }
}

TEST_F(WhatsAppCloudWebhookTest, RefusesMalformedBodies) {
  for (const char* body : {
           "not json",
           "[]",
           R"({"entry": 5})",
           R"({"entry": [{"changes": [{"value": {"statuses": {}}}]}]})",
           R"({"entry": [{"changes": [{"value": {"statuses": [
               {"status": "read"}]}}]}]})",
           R"({"entry": [{"changes": [{"value": {"messages": [
               {"type": "text", "text": {"body": "hi"}}]}}]}]})",
       }) {
    EXPECT_EQ(provider_->ParseWebhook(Post(body)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << body;
  }
  // Other fields (e.g. template status updates) carry nothing for us.
  auto other = provider_->ParseWebhook(Post(
      R"({"entry": [{"changes": [{"field": "message_template_status_update",
          "value": {"event": "APPROVED"}}]}]})"));
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_TRUE(other->receipts.empty());
  EXPECT_TRUE(other->inbound.empty());
}

}  // namespace
}  // namespace campaigns::dispatch
