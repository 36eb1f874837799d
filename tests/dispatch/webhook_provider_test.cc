// The generic webhook provider and the HTTP engine under it, against a
// fake receiver on 127.0.0.1:0 built from the Standard Webhooks spec: the
// request byte for byte, every class of answer, timeouts, dropped and
// refused connections, connection reuse and the per-provider window.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "server/dispatch/providers/signatures.h"
#include "server/dispatch/providers/webhook.h"
#include "server/http/http_server.h"
#include "tests/dispatch/fake_vendor.h"

namespace campaigns::dispatch {
namespace {

using http::HttpReply;
using http::HttpServer;
using http::HttpServerRequest;
using http::HttpServerResponse;
using testing::AnswerCase;
using testing::ExpectAnswer;

// The Standard Webhooks specification's published test vector.
constexpr char kSpecSecret[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr char kSpecId[] = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr int64_t kSpecTimestamp = 1614265330;
constexpr char kSpecBody[] = R"({"test": 2432232314})";
constexpr char kSpecSignature[] =
    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

TEST(StandardWebhooksTest, SignsThePublishedVectorExactly) {
  auto key = StandardWebhookKey(kSpecSecret);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(StandardWebhookSignature(*key, kSpecId, kSpecTimestamp, kSpecBody),
            kSpecSignature);
  EXPECT_TRUE(VerifyStandardWebhook(*key, kSpecId, kSpecTimestamp, kSpecBody,
                                    kSpecSignature));
  // Several signatures (key rotation): any one may match.
  EXPECT_TRUE(
      VerifyStandardWebhook(*key, kSpecId, kSpecTimestamp, kSpecBody,
                            std::string("v1,bm9wZQ== ") + kSpecSignature));
  EXPECT_FALSE(VerifyStandardWebhook(*key, kSpecId, kSpecTimestamp,
                                     R"({"test": 2432232315})",
                                     kSpecSignature));
  EXPECT_FALSE(VerifyStandardWebhook(*key, kSpecId, kSpecTimestamp + 1,
                                     kSpecBody, kSpecSignature));
  EXPECT_FALSE(
      VerifyStandardWebhook(*key, kSpecId, kSpecTimestamp, kSpecBody, ""));
}

TEST(StandardWebhooksTest, RefusesSecretsThatAreNotBase64) {
  EXPECT_FALSE(StandardWebhookKey("whsec_").ok());
  EXPECT_FALSE(StandardWebhookKey("whsec_not base64!").ok());
  EXPECT_TRUE(StandardWebhookKey("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").ok());
}

// A receiver: records each request and answers with `answer`.
class FakeReceiver {
 public:
  using Answer = std::function<void(const HttpServerRequest&, HttpReply)>;

  explicit FakeReceiver(Answer answer) : answer_(std::move(answer)) {
    auto server = HttpServer::Start(
        "127.0.0.1:0", [this](HttpServerRequest req, HttpReply reply) {
          {
            std::lock_guard<std::mutex> lock(mu_);
            requests_.push_back(req);
            connections_.insert(req.remote);
            ++active_;
            max_active_ = std::max(max_active_, active_);
          }
          answer_(req, [this, reply = std::move(reply)](HttpServerResponse r) {
            {
              std::lock_guard<std::mutex> lock(mu_);
              --active_;
            }
            reply(std::move(r));
          });
        });
    EXPECT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + "/send";
  }
  std::vector<HttpServerRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  size_t connections() {
    std::lock_guard<std::mutex> lock(mu_);
    return connections_.size();
  }
  int max_active() {
    std::lock_guard<std::mutex> lock(mu_);
    return max_active_;
  }

 private:
  Answer answer_;
  std::mutex mu_;
  std::vector<HttpServerRequest> requests_;
  std::set<std::string> connections_;
  int active_ = 0;
  int max_active_ = 0;
  std::unique_ptr<HttpServer> server_;
};

FakeReceiver::Answer Always(
    int status, std::string body = "",
    std::vector<std::pair<std::string, std::string>> headers = {}) {
  return [=](const HttpServerRequest&, HttpReply reply) {
    HttpServerResponse r;
    r.status = status;
    r.body = body;
    r.content_type = "application/json";
    r.headers = headers;
    reply(std::move(r));
  };
}

HttpServerResponse Ok() {
  HttpServerResponse r;
  r.body = "{}";
  return r;
}

OutgoingMessage Message(int i) {
  OutgoingMessage m;
  m.idempotency_key = "cmp_1:rcp_" + std::to_string(i);
  m.account_id = "acct_1";
  m.campaign_id = "cmp_1";
  m.recipient_id = "rcp_" + std::to_string(i);
  m.channel = Channel::kSms;
  m.sender_id = "+15550100";
  m.address = "+1415555" + std::to_string(1000 + i);
  m.text = "Hi Ann";
  m.variables = {{"name", "Ann"}};
  return m;
}

class WebhookProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto client = HttpClient::Create();
    ASSERT_TRUE(client.ok()) << client.status();
    http_ = *std::move(client);
    key_ = *StandardWebhookKey(kSpecSecret);
  }

  std::unique_ptr<WebhookProvider> Provider(
      const std::string& url, int max_in_flight = 8,
      absl::Duration timeout = absl::Seconds(5)) {
    WebhookOptions o;
    o.name = "hooks";
    o.url = url;
    o.key = key_;
    o.max_in_flight = max_in_flight;
    o.timeout = timeout;
    return std::make_unique<WebhookProvider>(o, http_.get());
  }

  static std::vector<SendResult> SendAndWait(dispatch::Provider& p,
                                             std::vector<OutgoingMessage> b) {
    std::promise<std::vector<SendResult>> got;
    auto future = got.get_future();
    p.Send(std::move(b),
           [&](std::vector<SendResult> r) { got.set_value(std::move(r)); });
    EXPECT_EQ(future.wait_for(std::chrono::seconds(30)),
              std::future_status::ready);
    return future.get();
  }

  SendResult SendOne(const std::string& url,
                     absl::Duration timeout = absl::Seconds(5)) {
    auto p = Provider(url, 8, timeout);
    auto results = SendAndWait(*p, {Message(1)});
    EXPECT_EQ(results.size(), 1u);
    return results.empty() ? SendResult() : results[0];
  }

  std::unique_ptr<HttpClient> http_;
  std::string key_;
};

TEST_F(WebhookProviderTest, SendsASignedStandardWebhook) {
  FakeReceiver receiver(Always(200, R"({"message_id":"m-42"})"));
  const int64_t before = absl::ToUnixSeconds(absl::Now());
  const SendResult r = SendOne(receiver.url());
  EXPECT_EQ(r.status, SendStatus::kAccepted);
  EXPECT_EQ(r.provider_message_id, "m-42");

  const std::vector<HttpServerRequest> requests = receiver.requests();
  ASSERT_EQ(requests.size(), 1u);
  const HttpServerRequest& req = requests[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.path, "/send");
  EXPECT_EQ(req.Header("content-type"), "application/json");
  EXPECT_EQ(req.Header("webhook-id"), "cmp_1:rcp_1");
  int64_t ts = 0;
  ASSERT_TRUE(absl::SimpleAtoi(req.Header("webhook-timestamp"), &ts));
  EXPECT_GE(ts, before);
  EXPECT_LE(ts, absl::ToUnixSeconds(absl::Now()));
  // The receiver's check, straight from the spec: HMAC-SHA256 of
  // "{id}.{timestamp}.{body}" under the base64-decoded secret.
  std::string key;
  ASSERT_TRUE(absl::Base64Unescape("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &key));
  EXPECT_EQ(
      req.Header("webhook-signature"),
      "v1," + absl::Base64Escape(HmacSha256(
                  key, req.Header("webhook-id") + "." +
                           req.Header("webhook-timestamp") + "." + req.body)));
  const auto body = nlohmann::json::parse(req.body);
  EXPECT_EQ(body, nlohmann::json::parse(R"({
    "type": "message.send", "id": "cmp_1:rcp_1", "account_id": "acct_1",
    "campaign_id": "cmp_1", "recipient_id": "rcp_1", "channel": "sms",
    "from": "+15550100", "to": "+14155551001", "text": "Hi Ann",
    "variables": {"name": "Ann"}})"));
}

TEST_F(WebhookProviderTest, EmailAndTemplateFieldsAreInTheBody) {
  OutgoingMessage m = Message(2);
  m.channel = Channel::kEmail;
  m.address = "ann@example.com";
  m.subject = "Hello Ann";
  m.html = "<p>Hi Ann</p>";
  m.template_name = "welcome";
  m.template_language = "en_US";
  m.components = {{"body", "", "", {{"text", "Ann", ""}}, "", 0}};
  const auto body = nlohmann::json::parse(WebhookBody(m));
  EXPECT_EQ(body["channel"], "email");
  EXPECT_EQ(body["subject"], "Hello Ann");
  EXPECT_EQ(body["html"], "<p>Hi Ann</p>");
  EXPECT_EQ(body["template"], nlohmann::json::parse(R"(
    {"name": "welcome", "language": "en_US", "parameters": {"1": "Ann"}})"));
  EXPECT_FALSE(
      nlohmann::json::parse(WebhookBody(Message(3))).contains("subject"));
}

TEST_F(WebhookProviderTest, SubjectAndHtmlAreForEmailOnly) {
  // An email without an HTML body: the subject, no "html".
  OutgoingMessage text_only = Message(4);
  text_only.channel = Channel::kEmail;
  text_only.subject = "Hello Ann";
  const auto body = nlohmann::json::parse(WebhookBody(text_only));
  EXPECT_EQ(body["subject"], "Hello Ann");
  EXPECT_FALSE(body.contains("html"));
  // Another channel never carries them, whatever the message holds.
  OutgoingMessage sms = Message(5);
  sms.subject = "ignored";
  sms.html = "<p>ignored</p>";
  const auto sms_body = nlohmann::json::parse(WebhookBody(sms));
  EXPECT_FALSE(sms_body.contains("subject"));
  EXPECT_FALSE(sms_body.contains("html"));
}

class WebhookAnswerTest : public WebhookProviderTest,
                          public ::testing::WithParamInterface<AnswerCase> {};

TEST_P(WebhookAnswerTest, MapsTheAnswer) {
  const AnswerCase& c = GetParam();
  FakeReceiver receiver(Always(c.status, c.body, c.headers));
  ExpectAnswer(SendOne(receiver.url()), c, {});
}

INSTANTIATE_TEST_SUITE_P(Answers, WebhookAnswerTest,
                         ::testing::Values(AnswerCase{"accepted_with_id",
                                                      200,
                                                      R"({"message_id":"x1"})",
                                                      {},
                                                      SendStatus::kAccepted,
                                                      "",
                                                      "x1",
                                                      absl::ZeroDuration()},
                                           AnswerCase{"accepted_without_json",
                                                      202,
                                                      "thanks",
                                                      {},
                                                      SendStatus::kAccepted,
                                                      "",
                                                      "cmp_1:rcp_1",
                                                      absl::ZeroDuration()},
                                           AnswerCase{
                                               "accepted_id_not_a_string",
                                               200,
                                               R"({"message_id":7})",
                                               {},
                                               SendStatus::kAccepted,
                                               "",
                                               "cmp_1:rcp_1",
                                               absl::ZeroDuration()},
                                           AnswerCase{"no_content",
                                                      204,
                                                      "",
                                                      {},
                                                      SendStatus::kAccepted,
                                                      "",
                                                      "cmp_1:rcp_1",
                                                      absl::ZeroDuration()},
                                           AnswerCase{"throttled",
                                                      429,
                                                      "",
                                                      {{"Retry-After", "7"}},
                                                      SendStatus::kTransient,
                                                      "429",
                                                      "",
                                                      absl::Seconds(7)},
                                           AnswerCase{"server_error",
                                                      503,
                                                      "",
                                                      {},
                                                      SendStatus::kTransient,
                                                      "503",
                                                      "",
                                                      absl::ZeroDuration()},
                                           AnswerCase{"bad_request",
                                                      400,
                                                      "{}",
                                                      {},
                                                      SendStatus::kPermanent,
                                                      "400",
                                                      "",
                                                      absl::ZeroDuration()},
                                           AnswerCase{"gone",
                                                      410,
                                                      "",
                                                      {},
                                                      SendStatus::kPermanent,
                                                      "410",
                                                      "",
                                                      absl::ZeroDuration()},
                                           AnswerCase{"unauthorized",
                                                      401,
                                                      "",
                                                      {},
                                                      SendStatus::kUnusable,
                                                      "401",
                                                      "",
                                                      absl::ZeroDuration()},
                                           AnswerCase{"forbidden",
                                                      403,
                                                      "",
                                                      {},
                                                      SendStatus::kUnusable,
                                                      "403",
                                                      "",
                                                      absl::ZeroDuration()}),
                         [](const ::testing::TestParamInfo<AnswerCase>& info) {
                           return std::string(info.param.name);
                         });

TEST_F(WebhookProviderTest, AHugeAnswerIsCutAndStillAccepted) {
  FakeReceiver receiver(Always(200, std::string(10 << 20, 'x')));
  const SendResult r = SendOne(receiver.url());
  EXPECT_EQ(r.status, SendStatus::kAccepted);
  EXPECT_EQ(r.provider_message_id, "cmp_1:rcp_1");
}

TEST_F(WebhookProviderTest, ASlowAnswerPastTheTimeoutIsTransient) {
  std::vector<std::thread> late;
  std::mutex mu;
  FakeReceiver receiver([&](const HttpServerRequest&, HttpReply reply) {
    std::lock_guard<std::mutex> lock(mu);
    late.emplace_back([reply = std::move(reply)] {
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      reply(Ok());
    });
  });
  const SendResult r = SendOne(receiver.url(), absl::Milliseconds(200));
  EXPECT_EQ(r.status, SendStatus::kTransient);
  EXPECT_EQ(r.error_code, "timeout");
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu);
    threads.swap(late);
  }
  for (std::thread& t : threads) t.join();
}

TEST_F(WebhookProviderTest, ADroppedConnectionIsTransient) {
  FakeReceiver receiver([](const HttpServerRequest&, HttpReply reply) {
    HttpServerResponse r;
    r.drop = true;
    reply(std::move(r));
  });
  const SendResult r = SendOne(receiver.url());
  EXPECT_EQ(r.status, SendStatus::kTransient);
  EXPECT_EQ(r.error_code, "connection_failed");
}

TEST_F(WebhookProviderTest, ARefusedConnectionIsTransient) {
  int port = 0;
  {
    FakeReceiver gone(Always(200));
    port = std::stoi(gone.url().substr(gone.url().rfind(':') + 1));
  }
  const SendResult r =
      SendOne("http://127.0.0.1:" + std::to_string(port) + "/send");
  EXPECT_EQ(r.status, SendStatus::kTransient);
  EXPECT_EQ(r.error_code, "connection_failed");
}

// One keep-alive connection carries request after request, and results
// keep the batch's order.
TEST_F(WebhookProviderTest, ReusesOneConnectionForSequentialRequests) {
  FakeReceiver receiver([&](const HttpServerRequest& req, HttpReply reply) {
    HttpServerResponse r;
    r.body = R"({"message_id":"id-)" + req.Header("webhook-id") + R"("})";
    reply(std::move(r));
  });
  auto sequential = Provider(receiver.url(), /*max_in_flight=*/1);
  for (int round = 0; round < 3; ++round) {
    std::vector<OutgoingMessage> batch;
    for (int i = 0; i < 20; ++i) batch.push_back(Message(round * 100 + i));
    auto results = SendAndWait(*sequential, std::move(batch));
    ASSERT_EQ(results.size(), 20u);
    for (int i = 0; i < 20; ++i) {
      EXPECT_EQ(results[i].provider_message_id,
                "id-cmp_1:rcp_" + std::to_string(round * 100 + i));
    }
  }
  EXPECT_EQ(receiver.requests().size(), 60u);
  EXPECT_EQ(receiver.connections(), 1u);
}

// A lane never has more than its max_in_flight requests outstanding; the
// rest wait their turn and all are answered.
TEST_F(WebhookProviderTest, ALaneBoundsOutstandingRequests) {
  std::mutex mu;
  bool holding = true;
  std::vector<HttpReply> held;
  FakeReceiver receiver([&](const HttpServerRequest&, HttpReply reply) {
    std::lock_guard<std::mutex> lock(mu);
    if (holding) {
      held.push_back(std::move(reply));
      return;
    }
    reply(Ok());
  });
  auto wide = Provider(receiver.url(), /*max_in_flight=*/4);
  std::vector<OutgoingMessage> batch;
  for (int i = 0; i < 50; ++i) batch.push_back(Message(i));
  std::promise<std::vector<SendResult>> got;
  auto future = got.get_future();
  wide->Send(std::move(batch),
             [&](std::vector<SendResult> r) { got.set_value(std::move(r)); });
  for (int i = 0; i < 200 && receiver.requests().size() < 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(receiver.requests().size(), 4u);
  {
    std::lock_guard<std::mutex> lock(mu);
    holding = false;
    for (HttpReply& r : held) r(Ok());
    held.clear();
  }
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)),
            std::future_status::ready);
  const auto results = future.get();
  EXPECT_EQ(results.size(), 50u);
  for (const SendResult& r : results)
    EXPECT_EQ(r.status, SendStatus::kAccepted);
  EXPECT_EQ(receiver.requests().size(), 50u);
  EXPECT_LE(receiver.max_active(), 4);
}

// More requests on the wire than one of the client's threads takes
// (kPerThread): the next thread takes the rest, and all are outstanding at
// once (the receiver answers none until it has them all).
TEST_F(WebhookProviderTest, RequestsBeyondOneThreadsShareGoOutAtOnce) {
  constexpr int kWide = HttpClient::kPerThread + 24;
  std::mutex mu;
  std::vector<HttpReply> held;
  FakeReceiver receiver([&](const HttpServerRequest&, HttpReply reply) {
    std::lock_guard<std::mutex> lock(mu);
    held.push_back(std::move(reply));
    if (static_cast<int>(held.size()) < kWide) return;
    for (HttpReply& r : held) r(Ok());
    held.clear();
  });
  auto wide = Provider(receiver.url(), /*max_in_flight=*/kWide);
  std::vector<OutgoingMessage> batch;
  for (int i = 0; i < kWide; ++i) batch.push_back(Message(i));
  const auto results = SendAndWait(*wide, std::move(batch));
  ASSERT_EQ(results.size(), static_cast<size_t>(kWide));
  for (const SendResult& r : results) {
    EXPECT_EQ(r.status, SendStatus::kAccepted) << r.error_desc;
  }
  EXPECT_EQ(receiver.max_active(), kWide);
}

// What the receiver posts back: verified exactly as it is sent.
class WebhookInTest : public WebhookProviderTest {
 protected:
  WebhookRequest Signed(const std::string& body, absl::Time at,
                        absl::Time now) {
    WebhookRequest r;
    r.method = "POST";
    r.path = "/webhooks/hooks";
    r.body = body;
    r.now = now;
    const int64_t ts = absl::ToUnixSeconds(at);
    r.headers["webhook-id"] = "evt_1";
    r.headers["webhook-timestamp"] = std::to_string(ts);
    r.headers["webhook-signature"] =
        StandardWebhookSignature(key_, "evt_1", ts, body);
    return r;
  }
  const absl::Time now_ = absl::FromUnixSeconds(1800000000);
};

TEST_F(WebhookInTest, StatusesBecomeReceiptsAndInboundTextsInbound) {
  auto p = Provider("http://127.0.0.1:1/");
  auto events = p->ParseWebhook(Signed(R"([
    {"type": "message.status", "message_id": "m-1", "status": "delivered",
     "occurred_at": "2027-01-15T08:00:00Z"},
    {"type": "message.status", "message_id": "m-2", "status": "failed",
     "error_code": "30003", "error_desc": "unreachable"},
    {"type": "message.inbound", "from": "+14155550100", "to": "+15550100",
     "channel": "sms", "text": "STOP"}])",
                                       now_, now_));
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->receipts.size(), 2u);
  EXPECT_EQ(events->receipts[0].provider_message_id, "m-1");
  EXPECT_EQ(events->receipts[0].status, RecipientStatus::kDelivered);
  EXPECT_EQ(events->receipts[0].occurred_at,
            absl::FromCivil(absl::CivilSecond(2027, 1, 15, 8, 0, 0),
                            absl::UTCTimeZone()));
  EXPECT_EQ(events->receipts[1].status, RecipientStatus::kFailed);
  EXPECT_EQ(events->receipts[1].error_code, "30003");
  EXPECT_EQ(events->receipts[1].occurred_at, now_);
  ASSERT_EQ(events->inbound.size(), 1u);
  EXPECT_EQ(events->inbound[0].channel, Channel::kSms);
  EXPECT_EQ(events->inbound[0].from, "+14155550100");
  EXPECT_EQ(events->inbound[0].to, "+15550100");
  EXPECT_EQ(events->inbound[0].text, "STOP");
}

TEST_F(WebhookInTest, RefusesWhatIsNotSignedOrTooOld) {
  auto p = Provider("http://127.0.0.1:1/");
  const std::string body =
      R"({"type": "message.status", "message_id": "m-1", "status": "read"})";
  WebhookRequest tampered = Signed(body, now_, now_);
  tampered.body = R"({"type": "message.status", "message_id": "m-9",
                      "status": "read"})";
  WebhookRequest unsigned_request = Signed(body, now_, now_);
  unsigned_request.headers.erase("webhook-signature");
  WebhookRequest wrong_key = Signed(body, now_, now_);
  wrong_key.headers["webhook-signature"] = StandardWebhookSignature(
      "another key", "evt_1", absl::ToUnixSeconds(now_), body);
  for (const WebhookRequest& r :
       {tampered, unsigned_request, wrong_key,
        Signed(body, now_ - absl::Minutes(6), now_),
        Signed(body, now_ + absl::Minutes(6), now_)}) {
    EXPECT_EQ(p->ParseWebhook(r).status().code(),
              absl::StatusCode::kUnauthenticated);
  }
  EXPECT_TRUE(
      p->ParseWebhook(Signed(body, now_ - absl::Minutes(4), now_)).ok());
}

TEST_F(WebhookInTest, RefusesMalformedBodies) {
  auto p = Provider("http://127.0.0.1:1/");
  for (const char* body : {
           "not json",
           R"({"type": "message.status", "status": "delivered"})",
           R"({"type": "message.status", "message_id": "m", "status": "lost"})",
           R"({"type": "message.status", "message_id": 7, "status": "read"})",
           R"({"type": "message.status", "message_id": "m", "status": "read",
               "occurred_at": "yesterday"})",
           R"({"type": "message.inbound", "from": "+1415", "channel": "fax"})",
           R"({"type": "message.send"})",
           R"([1, 2])",
       }) {
    EXPECT_EQ(p->ParseWebhook(Signed(body, now_, now_)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << body;
  }
}

}  // namespace
}  // namespace campaigns::dispatch
