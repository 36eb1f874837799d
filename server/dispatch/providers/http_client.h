// HttpClient: the HTTP engine every HTTP provider sends through. Each of its
// threads drives a libcurl multi handle through curl_multi_socket_action on
// an epoll set, so each turn touches only the connections that are ready (not
// every transfer, as curl_multi_perform does): connections are kept alive and
// reused across requests (HTTP/2 multiplexed where the server offers it), TLS
// peers are verified, and each provider's requests go through its own lane,
// which bounds how many are outstanding at once and queues the rest.
//
//   auto client = HttpClient::Create();
//   auto lane = (*client)->NewLane(/*max_in_flight=*/32);
//   HttpRequest req;
//   req.url = "https://example.com/hook";
//   req.body = "{}";
//   (*client)->Send(lane, std::move(req), [](HttpResponse r) { ... });
//
// Send never blocks and never calls `done` inline: `done` runs once, on one
// of the client's threads, and must not block (it hands work on). Thread-safe.
#ifndef CAMPAIGND_SERVER_DISPATCH_PROVIDERS_HTTP_CLIENT_H_
#define CAMPAIGND_SERVER_DISPATCH_PROVIDERS_HTTP_CLIENT_H_

#include <atomic>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/domain/mutex.h"

namespace campaigns::dispatch {

struct HttpRequest {
  std::string method = "POST";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  // "user:password" for HTTP basic authentication; empty = none.
  std::string basic_auth;
  absl::Duration timeout = absl::Seconds(10);
};

struct HttpResponse {
  // The HTTP status; 0 when no answer came (`error` says why).
  int status = 0;
  std::string body;  // at most HttpClient::kMaxBody bytes
  // The answer was longer than kMaxBody (the rest was dropped).
  bool truncated = false;
  // Why there was no (complete) answer: a timeout, a refused or reset
  // connection, a TLS failure, a name that did not resolve.
  std::string error;
  bool timed_out = false;
  // The answer's Retry-After (seconds or an HTTP date); zero when absent.
  absl::Duration retry_after = absl::ZeroDuration();
  absl::Duration elapsed = absl::ZeroDuration();
};

using HttpDone = std::function<void(HttpResponse)>;

class HttpClient {
 public:
  // Answers longer than this are cut (and marked truncated): a vendor's
  // answer is a few hundred bytes; nobody gets to fill our memory.
  static constexpr size_t kMaxBody = 1 << 20;

  // A provider's share of the client: at most `max_in_flight` of its
  // requests are outstanding at once; the rest wait in order.
  class Lane;

  // `threads` threads each drive their own libcurl multi handle (and keep
  // their own connections): the first takes requests until it has
  // kPerThread on the wire, the next takes what is left over, and so on;
  // the last takes the rest. Light traffic stays on one thread and its
  // kept-alive connections; heavy traffic uses more cores.
  static absl::StatusOr<std::unique_ptr<HttpClient>> Create(int threads = 2);
  // Stops the threads; requests not answered yet complete with an error.
  ~HttpClient();

  std::shared_ptr<Lane> NewLane(int max_in_flight);

  void Send(const std::shared_ptr<Lane>& lane, HttpRequest request,
            HttpDone done);

  // Requests sent and not yet answered (queued in lanes or on the wire).
  size_t pending();

  // How many requests one thread (other than the last) has on the wire
  // before the next thread takes the rest.
  static constexpr int kPerThread = 32;

 private:
  struct Transfer;
  // One thread, its multi handle, epoll set and transfers.
  struct Worker;
  HttpClient() = default;
  void Run(Worker* w);
  // On w's thread: starts what lanes (and w's share) allow.
  void StartQueued(Worker* w);
  void Start(Worker* w, std::unique_ptr<Transfer> t);
  void Finish(Worker* w, void* easy, int curl_code);
  // Hands every finished transfer of w to Finish; w's thread only.
  void CollectFinished(Worker* w);
  // Wakes w's thread (to start queued requests, or to stop).
  static void Wake(Worker* w);
  // libcurl's CURLMOPT_SOCKETFUNCTION and CURLMOPT_TIMERFUNCTION.
  friend struct CurlCallbacks;

  std::vector<std::unique_ptr<Worker>> workers_;  // fixed once created

  Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::shared_ptr<Lane>> lanes_ ABSL_GUARDED_BY(mu_);
  size_t pending_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_PROVIDERS_HTTP_CLIENT_H_
