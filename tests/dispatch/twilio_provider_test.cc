// The twilio provider against a fake Twilio REST API on 127.0.0.1:0 built
// from Twilio's docs (Message resource, error responses, webhook security):
// the form request byte for byte, every class of answer, timeouts, dropped
// connections, and X-Twilio-Signature with Twilio's documented example.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/escaping.h"
#include "nlohmann/json.hpp"
#include "server/dispatch/providers/twilio.h"
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
using Params = std::vector<std::pair<std::string, std::string>>;

constexpr char kSid[] = "AC0123456789abcdef0123456789abcdef";
constexpr char kTwilioToken[] = "twilio-auth-token-42";

OutgoingMessage Sms() {
  OutgoingMessage m;
  m.idempotency_key = "cmp_1:rcp_1";
  m.channel = Channel::kSms;
  m.sender_id = "+15550100";
  m.address = "+14155550100";
  m.text = "Hi Ann & co: 100% off!";
  return m;
}

class TwilioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto client = HttpClient::Create();
    ASSERT_TRUE(client.ok()) << client.status();
    http_ = *std::move(client);
  }

  TwilioOptions Options(const std::string& base) {
    TwilioOptions o;
    o.name = "twilio";
    o.base_url = base;
    o.account_sid = kSid;
    o.auth_token = kTwilioToken;
    o.public_url = "https://campaignd.example.com";
    o.max_in_flight = 4;
    o.timeout = absl::Seconds(5);
    return o;
  }

  std::unique_ptr<TwilioProvider> Provider(TwilioOptions o) {
    return std::make_unique<TwilioProvider>(o, http_.get());
  }

  std::unique_ptr<HttpClient> http_;
};

constexpr char kCreated[] =
    R"({"account_sid":"AC0123456789abcdef0123456789abcdef","body":"Hi",)"
    R"("sid":"SM1f0e8ae6ade43cb3c0ce4525424e404f","status":"queued",)"
    R"("to":"+14155550100","from":"+15550100","error_code":null})";

TEST_F(TwilioTest, SendsAFormWithBasicAuth) {
  FakeVendor twilio(AnswerWith(201, kCreated));
  auto p = Provider(Options(twilio.base_url()));
  const SendResult r = SendOneAndWait(*p, Sms());
  EXPECT_EQ(r.status, SendStatus::kAccepted) << r.error_desc;
  EXPECT_EQ(r.provider_message_id, "SM1f0e8ae6ade43cb3c0ce4525424e404f");

  const auto requests = twilio.requests();
  ASSERT_EQ(requests.size(), 1u);
  const HttpServerRequest& req = requests[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.path,
            std::string("/2010-04-01/Accounts/") + kSid + "/Messages.json");
  EXPECT_EQ(
      req.Header("authorization"),
      "Basic " + absl::Base64Escape(std::string(kSid) + ":" + kTwilioToken));
  EXPECT_EQ(req.Header("content-type"), "application/x-www-form-urlencoded");
  EXPECT_EQ(req.body,
            "To=%2B14155550100&From=%2B15550100"
            "&Body=Hi+Ann+%26+co%3A+100%25+off%21"
            "&StatusCallback=https%3A%2F%2Fcampaignd.example.com%2Fwebhooks%2F"
            "twilio");
}

TEST_F(TwilioTest, WhatsAppAndMessagingServiceVariants) {
  TwilioOptions o = Options("http://unused");
  OutgoingMessage wa = Sms();
  wa.channel = Channel::kWhatsapp;
  EXPECT_EQ(TwilioFields(o, wa),
            (Params{{"To", "whatsapp:+14155550100"},
                    {"From", "whatsapp:+15550100"},
                    {"Body", "Hi Ann & co: 100% off!"},
                    {"StatusCallback",
                     "https://campaignd.example.com/webhooks/twilio"}}));
  o.messaging_service_sid = "MG0123456789abcdef0123456789abcdef";
  o.public_url = "";
  EXPECT_EQ(
      TwilioFields(o, Sms()),
      (Params{{"To", "+14155550100"},
              {"MessagingServiceSid", "MG0123456789abcdef0123456789abcdef"},
              {"Body", "Hi Ann & co: 100% off!"}}));
}

std::string TwilioError(int code, const std::string& message, int status) {
  return nlohmann::json{{"code", code},
                        {"message", message},
                        {"more_info", "https://www.twilio.com/docs/errors/" +
                                          std::to_string(code)},
                        {"status", status}}
      .dump();
}

class TwilioAnswerTest : public TwilioTest,
                         public ::testing::WithParamInterface<AnswerCase> {};

TEST_P(TwilioAnswerTest, MapsTheAnswer) {
  const AnswerCase& c = GetParam();
  HttpResponse direct;
  direct.status = c.status;
  direct.body = c.body;
  for (const auto& [name, value] : c.headers) {
    if (name == "Retry-After") {
      direct.retry_after = absl::Seconds(std::stoi(value));
    }
  }
  ExpectAnswer(TwilioResult(direct, kTwilioToken), c, {kTwilioToken});

  FakeVendor twilio(AnswerWith(c.status, c.body, c.headers));
  auto p = Provider(Options(twilio.base_url()));
  ExpectAnswer(SendOneAndWait(*p, Sms()), c, {kTwilioToken});
}

INSTANTIATE_TEST_SUITE_P(
    Answers, TwilioAnswerTest,
    ::testing::Values(
        AnswerCase{"created",
                   201,
                   kCreated,
                   {},
                   SendStatus::kAccepted,
                   "",
                   "SM1f0e8ae6ade43cb3c0ce4525424e404f"},
        AnswerCase{"created_not_json",
                   201,
                   "<Response/>",
                   {},
                   SendStatus::kPermanent,
                   "outcome_unknown"},
        AnswerCase{"created_without_sid",
                   201,
                   R"({"status":"queued"})",
                   {},
                   SendStatus::kPermanent,
                   "outcome_unknown"},
        AnswerCase{"invalid_to_21211",
                   400,
                   TwilioError(21211, "Invalid 'To' Phone Number", 400),
                   {},
                   SendStatus::kPermanent,
                   "21211"},
        AnswerCase{"not_mobile_21614",
                   400,
                   TwilioError(21614,
                               "'To' number is not a valid mobile "
                               "number",
                               400),
                   {},
                   SendStatus::kPermanent,
                   "21614"},
        AnswerCase{"unsubscribed_21610",
                   400,
                   TwilioError(21610,
                               "Attempt to send to unsubscribed "
                               "recipient",
                               400),
                   {},
                   SendStatus::kPermanent,
                   "21610",
                   "",
                   absl::ZeroDuration(),
                   "opt_out"},
        AnswerCase{"too_many_20429",
                   429,
                   TwilioError(20429, "Too Many Requests", 429),
                   {{"Retry-After", "9"}},
                   SendStatus::kTransient,
                   "20429",
                   "",
                   absl::Seconds(9)},
        AnswerCase{"http_429_no_body",
                   429,
                   "",
                   {{"Retry-After", "2"}},
                   SendStatus::kTransient,
                   "429",
                   "",
                   absl::Seconds(2)},
        AnswerCase{"server_error", 503, "", {}, SendStatus::kTransient, "503"},
        AnswerCase{
            "auth_20003",
            401,
            TwilioError(20003, std::string("Authenticate ") + kTwilioToken,
                        401),
            {},
            SendStatus::kUnusable,
            "20003"},
        AnswerCase{
            "unauthorized_no_body", 401, "", {}, SendStatus::kUnusable, "401"},
        AnswerCase{
            "not_found_20404",
            404,
            TwilioError(20404, "The requested resource was not found", 404),
            {},
            SendStatus::kPermanent,
            "20404"}),
    [](const ::testing::TestParamInfo<AnswerCase>& info) {
      return std::string(info.param.name);
    });

TEST_F(TwilioTest, SlowDroppedAndHugeAnswers) {
  {
    FakeVendor twilio(Slowly(std::chrono::milliseconds(1500), 201, kCreated));
    TwilioOptions o = Options(twilio.base_url());
    o.timeout = absl::Milliseconds(200);
    auto p = Provider(o);
    const SendResult r = SendOneAndWait(*p, Sms());
    EXPECT_EQ(r.status, SendStatus::kTransient);
    EXPECT_EQ(r.error_code, "timeout");
  }
  {
    FakeVendor twilio(Dropping());
    auto p = Provider(Options(twilio.base_url()));
    const SendResult r = SendOneAndWait(*p, Sms());
    EXPECT_EQ(r.status, SendStatus::kTransient);
    EXPECT_EQ(r.error_code, "connection_failed");
  }
  {
    FakeVendor twilio(AnswerWith(400, std::string(2 << 20, '[')));
    auto p = Provider(Options(twilio.base_url()));
    const SendResult r = SendOneAndWait(*p, Sms());
    EXPECT_EQ(r.status, SendStatus::kPermanent);
    EXPECT_EQ(r.error_code, "400");
  }
}

// Twilio's "Webhooks security" example: auth token 12345, this URL and
// these POST parameters. The page has carried two versions of the numbers
// and signature over time; both are Twilio's own published vectors.
TEST(TwilioSignatureTest, MatchesTwiliosDocumentedExamples) {
  const std::string url = "https://mycompany.com/myapp.php?foo=1&bar=2";
  EXPECT_EQ(TwilioSignature("12345", url,
                            {{"To", "+18005551212"},
                             {"From", "+14158675310"},
                             {"Digits", "1234"},
                             {"CallSid", "CA1234567890ABCDE"},
                             {"Caller", "+14158675310"}}),
            "GvWf1cFY/Q7PnoempGyD5oXAezc=");
  EXPECT_EQ(TwilioSignature("12345", url,
                            {{"CallSid", "CA1234567890ABCDE"},
                             {"Caller", "+14158675309"},
                             {"Digits", "1234"},
                             {"From", "+14158675309"},
                             {"To", "+18005551212"}}),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
  EXPECT_NE(TwilioSignature("12345", url, {{"Digits", "9999"}}),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
}

// An independent signer, straight from the documented steps.
std::string ReferenceSignature(const std::string& token, const std::string& url,
                               Params params) {
  std::sort(params.begin(), params.end());
  std::string data = url;
  for (const auto& [k, v] : params) data += k + v;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha1(), token.data(), static_cast<int>(token.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac,
       &len);
  return absl::Base64Escape(
      absl::string_view(reinterpret_cast<const char*>(mac), len));
}

class TwilioWebhookTest : public TwilioTest {
 protected:
  void SetUp() override {
    TwilioTest::SetUp();
    provider_ = Provider(Options("http://127.0.0.1:1"));
  }
  // A form POST to /webhooks/twilio signed as Twilio signs it. `body` is
  // the raw form; `params` the same decoded.
  WebhookRequest Signed(const std::string& body, const Params& params) {
    WebhookRequest r;
    r.method = "POST";
    r.path = "/webhooks/twilio";
    r.body = body;
    r.now = now_;
    r.headers["content-type"] = "application/x-www-form-urlencoded";
    r.headers["x-twilio-signature"] = ReferenceSignature(
        kTwilioToken, "https://campaignd.example.com/webhooks/twilio", params);
    return r;
  }
  const absl::Time now_ = absl::FromUnixSeconds(1800000000);
  std::unique_ptr<TwilioProvider> provider_;
};

TEST_F(TwilioWebhookTest, StatusCallbacksBecomeReceipts) {
  auto delivered = provider_->ParseWebhook(
      Signed("SmsSid=SM1&SmsStatus=delivered&MessageStatus=delivered"
             "&To=%2B14155550100&MessageSid=SM1&AccountSid=AC1&From=%2B15550100"
             "&ApiVersion=2010-04-01",
             {{"SmsSid", "SM1"},
              {"SmsStatus", "delivered"},
              {"MessageStatus", "delivered"},
              {"To", "+14155550100"},
              {"MessageSid", "SM1"},
              {"AccountSid", "AC1"},
              {"From", "+15550100"},
              {"ApiVersion", "2010-04-01"}}));
  ASSERT_TRUE(delivered.ok()) << delivered.status();
  ASSERT_EQ(delivered->receipts.size(), 1u);
  EXPECT_EQ(delivered->receipts[0].provider_message_id, "SM1");
  EXPECT_EQ(delivered->receipts[0].status, RecipientStatus::kDelivered);
  EXPECT_EQ(delivered->receipts[0].occurred_at, now_);

  auto undelivered = provider_->ParseWebhook(
      Signed("MessageSid=SM2&MessageStatus=undelivered&ErrorCode=30003",
             {{"MessageSid", "SM2"},
              {"MessageStatus", "undelivered"},
              {"ErrorCode", "30003"}}));
  ASSERT_TRUE(undelivered.ok()) << undelivered.status();
  ASSERT_EQ(undelivered->receipts.size(), 1u);
  EXPECT_EQ(undelivered->receipts[0].status, RecipientStatus::kFailed);
  EXPECT_EQ(undelivered->receipts[0].error_code, "30003");

  auto read = provider_->ParseWebhook(
      Signed("MessageSid=SM3&MessageStatus=read",
             {{"MessageSid", "SM3"}, {"MessageStatus", "read"}}));
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->receipts.size(), 1u);
  EXPECT_EQ(read->receipts[0].status, RecipientStatus::kRead);

  auto sent = provider_->ParseWebhook(
      Signed("MessageSid=SM4&MessageStatus=sent",
             {{"MessageSid", "SM4"}, {"MessageStatus", "sent"}}));
  ASSERT_TRUE(sent.ok());
  EXPECT_TRUE(sent->receipts.empty());
}

TEST_F(TwilioWebhookTest, IncomingMessagesBecomeInbound) {
  auto sms = provider_->ParseWebhook(
      Signed("MessageSid=SM9&From=%2B14155550100&To=%2B15550100&Body=STOP+now",
             {{"MessageSid", "SM9"},
              {"From", "+14155550100"},
              {"To", "+15550100"},
              {"Body", "STOP now"}}));
  ASSERT_TRUE(sms.ok()) << sms.status();
  ASSERT_EQ(sms->inbound.size(), 1u);
  EXPECT_EQ(sms->inbound[0].channel, Channel::kSms);
  EXPECT_EQ(sms->inbound[0].from, "+14155550100");
  EXPECT_EQ(sms->inbound[0].to, "+15550100");
  EXPECT_EQ(sms->inbound[0].text, "STOP now");

  auto wa = provider_->ParseWebhook(Signed(
      "From=whatsapp%3A%2B14155550100&To=whatsapp%3A%2B15550100&Body=Stop",
      {{"From", "whatsapp:+14155550100"},
       {"To", "whatsapp:+15550100"},
       {"Body", "Stop"}}));
  ASSERT_TRUE(wa.ok()) << wa.status();
  ASSERT_EQ(wa->inbound.size(), 1u);
  EXPECT_EQ(wa->inbound[0].channel, Channel::kWhatsapp);
  EXPECT_EQ(wa->inbound[0].from, "+14155550100");
  EXPECT_EQ(wa->inbound[0].to, "+15550100");
}

TEST_F(TwilioWebhookTest, RefusesWhatTwilioDidNotSign) {
  const Params params = {{"MessageSid", "SM1"}, {"MessageStatus", "failed"}};
  const std::string body = "MessageSid=SM1&MessageStatus=failed";
  WebhookRequest tampered = Signed(body, params);
  tampered.body = "MessageSid=SM7&MessageStatus=failed";
  WebhookRequest missing = Signed(body, params);
  missing.headers.erase("x-twilio-signature");
  WebhookRequest wrong_token = Signed(body, params);
  wrong_token.headers["x-twilio-signature"] = ReferenceSignature(
      "another token", "https://campaignd.example.com/webhooks/twilio", params);
  WebhookRequest wrong_path = Signed(body, params);
  wrong_path.path = "/webhooks/other";
  WebhookRequest not_a_form = Signed("a=%zz", {{"a", "?"}});
  for (const WebhookRequest& r :
       {tampered, missing, wrong_token, wrong_path, not_a_form}) {
    EXPECT_EQ(provider_->ParseWebhook(r).status().code(),
              absl::StatusCode::kUnauthenticated)
        << r.body;
  }
  EXPECT_TRUE(provider_->ParseWebhook(Signed(body, params)).ok());
}

TEST_F(TwilioWebhookTest, SignsTheQueryStringToo) {
  const Params params = {{"MessageSid", "SM1"}, {"MessageStatus", "read"}};
  WebhookRequest r = Signed("MessageSid=SM1&MessageStatus=read", params);
  r.query = {{"a", "1"}, {"b", "x y"}};
  r.headers["x-twilio-signature"] = ReferenceSignature(
      kTwilioToken, "https://campaignd.example.com/webhooks/twilio?a=1&b=x+y",
      params);
  EXPECT_TRUE(provider_->ParseWebhook(r).ok());
}

TEST_F(TwilioWebhookTest, RefusesSignedNonsense) {
  EXPECT_EQ(provider_->ParseWebhook(Signed("Foo=bar", {{"Foo", "bar"}}))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(provider_
                ->ParseWebhook(Signed("MessageStatus=delivered",
                                      {{"MessageStatus", "delivered"}}))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// Found by tools/fuzz/webhook_fuzzer: bytes that are not UTF-8 (raw or
// %-escaped) went into receipts and inbound texts, and from there into
// protos that no client could parse.
TEST_F(TwilioWebhookTest, RefusesAFormThatIsNotUtf8) {
  const std::string bad = "\xC2";
  const std::vector<std::pair<std::string, Params>> cases = {
      {"MessageSid=SM1&MessageStatus=failed&ErrorMessage=%C2",
       {{"MessageSid", "SM1"},
        {"MessageStatus", "failed"},
        {"ErrorMessage", bad}}},
      {"From=%2B14155550100&To=w\xC2x&Body=STOP",
       {{"From", "+14155550100"}, {"To", "w" + bad + "x"}, {"Body", "STOP"}}},
      {"From=%2B14155550100&Body=%FF%FE",
       {{"From", "+14155550100"}, {"Body", "\xFF\xFE"}}},
      {"From=%2B14155550100&Body=hi&%C0%80=x",
       {{"From", "+14155550100"}, {"Body", "hi"}, {"\xC0\x80", "x"}}},
  };
  for (const auto& [body, params] : cases) {
    EXPECT_EQ(provider_->ParseWebhook(Signed(body, params)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << body;
  }
  auto ok = provider_->ParseWebhook(
      Signed("From=%2B14155550100&Body=%C3%A9t%C3%A9",
             {{"From", "+14155550100"}, {"Body", "\xC3\xA9t\xC3\xA9"}}));
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_EQ(ok->inbound.size(), 1u);
  EXPECT_EQ(ok->inbound[0].text, "\xC3\xA9t\xC3\xA9");
}

}  // namespace
}  // namespace campaigns::dispatch
