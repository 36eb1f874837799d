// The operator's HTTP listener: health, readiness, and webhooks answered
// only after what they carry is committed, 401 on a bad signature.
#include "server/http/operator_http.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <mutex>

#include "server/dispatch/providers/http_client.h"

namespace campaigns::http {
namespace {

using dispatch::HttpClient;
using dispatch::HttpRequest;
using dispatch::HttpResponse;
using dispatch::WebhookEvents;
using dispatch::WebhookRequest;

// Accepts webhooks whose body is "good" (one receipt), refuses "forged".
class FakeProvider : public dispatch::Provider {
 public:
  void Send(std::vector<dispatch::OutgoingMessage>,
            dispatch::SendDone done) override {
    done({});
  }
  absl::StatusOr<WebhookEvents> ParseWebhook(const WebhookRequest& r) override {
    if (r.method == "GET") {
      WebhookEvents e;
      e.answer = r.query.count("challenge") ? r.query.at("challenge") : "";
      return e;
    }
    if (r.body == "forged") return absl::UnauthenticatedError("bad signature");
    if (r.body != "good") return absl::InvalidArgumentError("bad body");
    WebhookEvents e;
    ReceiptUpdate u;
    u.provider_message_id = "m-1";
    e.receipts.push_back(u);
    return e;
  }
};

class OperatorHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    OperatorHttpDeps deps;
    deps.provider = [this](const std::string& name) -> dispatch::Provider* {
      return name == "fake" ? &provider_ : nullptr;
    };
    deps.deliver = [this](const std::string& provider, WebhookEvents e,
                          std::function<void(absl::Status)> done) {
      std::lock_guard<std::mutex> lock(mu_);
      delivered_.emplace_back(provider, e.receipts.size());
      pending_.push_back(std::move(done));
    };
    deps.ready = [this] {
      return ready_.load() ? absl::OkStatus()
                           : absl::UnavailableError("shutting down");
    };
    auto http = OperatorHttp::Start("127.0.0.1:0", deps);
    ASSERT_TRUE(http.ok()) << http.status();
    http_ = *std::move(http);
    auto client = HttpClient::Create();
    ASSERT_TRUE(client.ok());
    client_ = *std::move(client);
    lane_ = client_->NewLane(4);
  }

  std::future<HttpResponse> Call(const std::string& method,
                                 const std::string& path,
                                 const std::string& body = "") {
    auto promise = std::make_shared<std::promise<HttpResponse>>();
    HttpRequest r;
    r.method = method;
    r.url = "http://127.0.0.1:" + std::to_string(http_->port()) + path;
    r.body = body;
    client_->Send(lane_, std::move(r),
                  [promise](HttpResponse resp) { promise->set_value(resp); });
    return promise->get_future();
  }
  HttpResponse Get(const std::string& method, const std::string& path,
                   const std::string& body = "") {
    auto f = Call(method, path, body);
    EXPECT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    return f.get();
  }
  // Commits whatever waits.
  void CommitAll(absl::Status s) {
    std::vector<std::function<void(absl::Status)>> pending;
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending.swap(pending_);
    }
    for (auto& done : pending) done(s);
  }
  size_t delivered() {
    std::lock_guard<std::mutex> lock(mu_);
    return delivered_.size();
  }

  FakeProvider provider_;
  std::atomic<bool> ready_{true};
  std::mutex mu_;
  std::vector<std::pair<std::string, size_t>> delivered_;
  std::vector<std::function<void(absl::Status)>> pending_;
  std::unique_ptr<OperatorHttp> http_;
  std::unique_ptr<HttpClient> client_;
  std::shared_ptr<HttpClient::Lane> lane_;
};

TEST_F(OperatorHttpTest, HealthAndReadiness) {
  EXPECT_EQ(Get("GET", "/healthz").status, 200);
  EXPECT_EQ(Get("GET", "/healthz").body, "{\"status\":\"ok\"}");
  EXPECT_EQ(Get("GET", "/readyz").status, 200);
  EXPECT_EQ(Get("GET", "/readyz").body, "{\"status\":\"ready\"}");
  ready_ = false;
  HttpResponse not_ready = Get("GET", "/readyz?verbose=1");
  EXPECT_EQ(not_ready.status, 503);
  EXPECT_EQ(not_ready.body,
            "{\"status\":\"not ready\",\"reason\":\"shutting down\"}");
  EXPECT_EQ(Get("GET", "/healthz").status, 200);
  EXPECT_EQ(Get("GET", "/nothing").status, 404);
  // Health answers GET only; /metrics is not served without a source.
  HttpResponse post = Get("POST", "/healthz", "x");
  EXPECT_EQ(post.status, 405);
  EXPECT_NE(post.body.find("method_not_allowed"), std::string::npos);
  EXPECT_EQ(Get("GET", "/metrics").status, 404);
}

TEST_F(OperatorHttpTest, AWebhookIsAnsweredOnlyOnceCommitted) {
  auto answer = Call("POST", "/webhooks/fake", "good");
  for (int i = 0; i < 500 && delivered() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(delivered(), 1u);
  EXPECT_EQ(answer.wait_for(std::chrono::milliseconds(200)),
            std::future_status::timeout);
  CommitAll(absl::OkStatus());
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(10)),
            std::future_status::ready);
  EXPECT_EQ(answer.get().status, 200);
}

TEST_F(OperatorHttpTest, AFailedCommitAsksTheVendorToRetry) {
  auto answer = Call("POST", "/webhooks/fake", "good");
  for (int i = 0; i < 500 && delivered() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CommitAll(absl::UnavailableError("disk full"));
  const HttpResponse r = answer.get();
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.retry_after, absl::Seconds(2));  // when storage tries again
}

TEST_F(OperatorHttpTest, RefusedWebhooksChangeNothing) {
  EXPECT_EQ(Get("POST", "/webhooks/fake", "forged").status, 401);
  EXPECT_EQ(Get("POST", "/webhooks/fake", "garbage").status, 400);
  EXPECT_EQ(Get("POST", "/webhooks/nobody", "good").status, 404);
  EXPECT_EQ(Get("PUT", "/webhooks/fake", "good").status, 405);
  EXPECT_EQ(delivered(), 0u);
  // A subscription check answers the vendor's challenge.
  HttpResponse check = Get("GET", "/webhooks/fake?challenge=1158201444");
  EXPECT_EQ(check.status, 200);
  EXPECT_EQ(check.body, "1158201444");
}

}  // namespace
}  // namespace campaigns::http
