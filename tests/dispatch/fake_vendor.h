// A fake vendor for adapter tests: an HttpServer on 127.0.0.1:0 that records
// every request and answers through a test's function (now, later from a
// thread, or by dropping the connection), and helpers to send a batch
// through a provider and wait for its results.
//
//   FakeVendor vendor(AnswerWith(200, R"({"sid":"SM1"})"));
//   auto p = MakeProvider(vendor.base_url());
//   std::vector<SendResult> r = SendAndWait(*p, {m});
//   HttpServerRequest req = vendor.requests()[0];
#ifndef CAMPAIGND_TESTS_DISPATCH_FAKE_VENDOR_H_
#define CAMPAIGND_TESTS_DISPATCH_FAKE_VENDOR_H_

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "server/dispatch/provider.h"
#include "server/http/http_server.h"

namespace campaigns::dispatch::testing {

using http::HttpReply;
using http::HttpServer;
using http::HttpServerRequest;
using http::HttpServerResponse;

class FakeVendor {
 public:
  using Answer = std::function<void(const HttpServerRequest&, HttpReply)>;

  explicit FakeVendor(Answer answer) : answer_(std::move(answer)) {
    auto server = HttpServer::Start(
        "127.0.0.1:0", [this](HttpServerRequest req, HttpReply reply) {
          {
            std::lock_guard<std::mutex> lock(mu_);
            requests_.push_back(req);
          }
          answer_(req, std::move(reply));
        });
    EXPECT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  ~FakeVendor() { server_->Stop(); }

  std::string base_url() const {
    return "http://127.0.0.1:" + std::to_string(server_->port());
  }
  std::vector<HttpServerRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  Answer answer_;
  std::mutex mu_;
  std::vector<HttpServerRequest> requests_;
  std::unique_ptr<HttpServer> server_;
};

inline FakeVendor::Answer AnswerWith(
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

inline FakeVendor::Answer Dropping() {
  return [](const HttpServerRequest&, HttpReply reply) {
    HttpServerResponse r;
    r.drop = true;
    reply(std::move(r));
  };
}

// Answers `status`/`body` after `delay`, from a thread of its own (joined
// when the vendor, and with it this answer, goes away).
inline FakeVendor::Answer Slowly(std::chrono::milliseconds delay, int status,
                                 std::string body) {
  struct Threads {
    std::mutex mu;
    std::vector<std::thread> threads;
    ~Threads() {
      for (std::thread& t : threads) t.join();
    }
  };
  auto threads = std::make_shared<Threads>();
  return [=](const HttpServerRequest&, HttpReply reply) {
    std::lock_guard<std::mutex> lock(threads->mu);
    threads->threads.emplace_back([=, reply = std::move(reply)] {
      std::this_thread::sleep_for(delay);
      HttpServerResponse r;
      r.status = status;
      r.body = body;
      reply(std::move(r));
    });
  };
}

inline std::vector<SendResult> SendAndWait(Provider& p,
                                           std::vector<OutgoingMessage> batch) {
  std::promise<std::vector<SendResult>> got;
  auto future = got.get_future();
  p.Send(std::move(batch),
         [&](std::vector<SendResult> r) { got.set_value(std::move(r)); });
  EXPECT_EQ(future.wait_for(std::chrono::seconds(30)),
            std::future_status::ready);
  return future.get();
}

inline SendResult SendOneAndWait(Provider& p, OutgoingMessage m) {
  std::vector<OutgoingMessage> batch;
  batch.push_back(std::move(m));
  auto results = SendAndWait(p, std::move(batch));
  EXPECT_EQ(results.size(), 1u);
  return results.empty() ? SendResult() : results[0];
}

// A port nothing listens on (a server was there a moment ago).
inline int ClosedPort() {
  auto server = HttpServer::Start(
      "127.0.0.1:0", [](HttpServerRequest, HttpReply reply) { reply({}); });
  EXPECT_TRUE(server.ok());
  return (*server)->port();
}

// One vendor answer and the SendResult an adapter must make of it, for the
// adapters' table-driven answer tests (TEST_P over AnswerCase values).
struct AnswerCase {
  const char* name;
  int status;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  SendStatus want;
  std::string want_code;
  std::string want_id = "";
  absl::Duration want_retry_after = absl::ZeroDuration();
  std::string want_suppress = "";
};

inline void PrintTo(const AnswerCase& c, std::ostream* os) { *os << c.name; }

// Expects `r` to be what `c` wants, with an error_desc on every failure that
// shows none of `secrets` (the credentials the adapter sent).
inline void ExpectAnswer(const SendResult& r, const AnswerCase& c,
                         const std::vector<std::string>& secrets) {
  EXPECT_EQ(r.status, c.want) << r.error_desc;
  EXPECT_EQ(r.error_code, c.want_code);
  EXPECT_EQ(r.provider_message_id, c.want_id);
  EXPECT_EQ(r.retry_after, c.want_retry_after);
  EXPECT_EQ(r.suppress, c.want_suppress);
  if (c.want != SendStatus::kAccepted) {
    EXPECT_FALSE(r.error_desc.empty());
  }
  for (const std::string& secret : secrets) {
    EXPECT_EQ(r.error_desc.find(secret), std::string::npos) << r.error_desc;
  }
}

}  // namespace campaigns::dispatch::testing

#endif  // CAMPAIGND_TESTS_DISPATCH_FAKE_VENDOR_H_
