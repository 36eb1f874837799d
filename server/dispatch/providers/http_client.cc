// HttpClient: the libcurl multi engine every HTTP provider sends through.
#include "server/dispatch/providers/http_client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace campaigns::dispatch {
namespace {

// Easy handles kept for reuse once their transfer ended.
constexpr size_t kIdleHandles = 256;
// Connections the multi handle keeps open for reuse.
constexpr long kMaxConnects = 512;

// Retry-After: delay-seconds or an HTTP-date (RFC 9110 10.2.3).
absl::Duration ParseRetryAfter(absl::string_view v) {
  v = absl::StripAsciiWhitespace(v);
  int64_t seconds = 0;
  if (absl::SimpleAtoi(v, &seconds)) {
    return seconds > 0 ? absl::Seconds(std::min<int64_t>(seconds, 86400))
                       : absl::ZeroDuration();
  }
  absl::Time at;
  std::string err;
  if (absl::ParseTime("%a, %d %b %Y %H:%M:%S GMT", v, &at, &err)) {
    const absl::Duration d = at - absl::Now();
    return std::clamp(d, absl::ZeroDuration(), absl::Hours(24));
  }
  return absl::ZeroDuration();
}

}  // namespace

// libcurl's callbacks, with the exact types it calls them through; the
// user pointer is the HttpClient::Worker whose multi handle calls them.
struct CurlCallbacks {
  static int OnSocket(CURL* easy, curl_socket_t fd, int what, void* self,
                      void* socketp);
  static int OnTimer(CURLM* multi, long timeout_ms, void* self);
};

class HttpClient::Lane {
 public:
  explicit Lane(int max_in_flight)
      : max_in_flight_(std::max(1, max_in_flight)) {}

 private:
  friend class HttpClient;
  const int max_in_flight_;
  // Guarded by the client's mu_.
  std::deque<std::unique_ptr<Transfer>> queued_;
  int in_flight_ = 0;
};

struct HttpClient::Transfer {
  HttpRequest request;
  HttpDone done;
  std::shared_ptr<Lane> lane;
  HttpResponse response;
  curl_slist* headers = nullptr;
  void* easy = nullptr;  // CURL*
  absl::Time started;
  char error[CURL_ERROR_SIZE] = {0};

  ~Transfer() {
    if (headers != nullptr) curl_slist_free_all(headers);
  }

  static size_t OnBody(char* data, size_t size, size_t n, void* self) {
    auto* t = static_cast<Transfer*>(self);
    const size_t len = size * n;
    const size_t room = kMaxBody - std::min(kMaxBody, t->response.body.size());
    t->response.body.append(data, std::min(len, room));
    if (len > room) t->response.truncated = true;
    return len;
  }

  static size_t OnHeader(char* data, size_t size, size_t n, void* self) {
    auto* t = static_cast<Transfer*>(self);
    const absl::string_view line(data, size * n);
    constexpr absl::string_view kRetryAfter = "retry-after:";
    if (absl::StartsWithIgnoreCase(line, kRetryAfter)) {
      t->response.retry_after =
          ParseRetryAfter(line.substr(kRetryAfter.size()));
    }
    return size * n;
  }
};

struct HttpClient::Worker {
  int index = 0;
  bool last = true;  // takes whatever the threads before it left
  CURLM* multi = nullptr;
  int epoll_fd = -1;
  int wake_fd = -1;  // an eventfd in the epoll set
  // A wake-up is written and not yet read: later ones need not write.
  std::atomic<bool> wake_pending{false};
  // When libcurl wants CURL_SOCKET_TIMEOUT handled; InfiniteFuture = never.
  // This worker's thread only (libcurl calls OnTimer within its calls).
  absl::Time timer_due = absl::InfiniteFuture();
  std::thread thread;
  // This worker's thread only: transfers on the wire, and free easy
  // handles reused by later transfers.
  std::set<Transfer*> active;
  std::vector<CURL*> idle_easy;
  // Transfers this worker took and has not finished: read by the next
  // worker, which takes work only while this one is at kPerThread.
  std::atomic<int> on_wire{0};

  ~Worker() {
    for (CURL* easy : idle_easy) curl_easy_cleanup(easy);
    if (multi != nullptr) curl_multi_cleanup(multi);
    if (wake_fd >= 0) close(wake_fd);
    if (epoll_fd >= 0) close(epoll_fd);
  }

  absl::Status Init() {
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (epoll_fd < 0 || wake_fd < 0) {
      return absl::InternalError(
          absl::StrCat("HTTP client: epoll/eventfd: ", std::strerror(errno)));
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_fd;
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev) != 0) {
      return absl::InternalError(
          absl::StrCat("HTTP client: epoll_ctl: ", std::strerror(errno)));
    }
    multi = curl_multi_init();
    if (multi == nullptr) {
      return absl::InternalError("libcurl: no multi handle");
    }
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, kMaxConnects);
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &CurlCallbacks::OnSocket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &CurlCallbacks::OnTimer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
    return absl::OkStatus();
  }
};

// CURLMOPT_SOCKETFUNCTION: keeps the epoll set in step with what libcurl
// waits for on each socket. A closed socket leaves the set by itself, and
// its number may come back for a new one: add and modify fall back on
// each other rather than trusting bookkeeping.
int CurlCallbacks::OnSocket(CURL* /*easy*/, curl_socket_t fd, int what,
                            void* self, void* /*socketp*/) {
  const int epoll_fd = static_cast<HttpClient::Worker*>(self)->epoll_fd;
  if (what == CURL_POLL_REMOVE) {
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
    return 0;
  }
  epoll_event ev{};
  ev.data.fd = fd;
  if ((what & CURL_POLL_IN) != 0) ev.events |= EPOLLIN;
  if ((what & CURL_POLL_OUT) != 0) ev.events |= EPOLLOUT;
  if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, fd, &ev) != 0 &&
      epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    return -1;
  }
  return 0;
}

// CURLMOPT_TIMERFUNCTION: when libcurl next wants CURL_SOCKET_TIMEOUT;
// -1 = no timer.
int CurlCallbacks::OnTimer(CURLM* /*multi*/, long timeout_ms, void* self) {
  static_cast<HttpClient::Worker*>(self)->timer_due =
      timeout_ms < 0 ? absl::InfiniteFuture()
                     : absl::Now() + absl::Milliseconds(timeout_ms);
  return 0;
}

absl::StatusOr<std::unique_ptr<HttpClient>> HttpClient::Create(int threads) {
  static std::once_flag once;
  static CURLcode global = CURLE_OK;
  std::call_once(once, [] { global = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (global != CURLE_OK) {
    return absl::InternalError(
        absl::StrCat("libcurl: ", curl_easy_strerror(global)));
  }
  std::unique_ptr<HttpClient> client(new HttpClient());
  threads = std::max(1, threads);
  for (int i = 0; i < threads; ++i) {
    auto w = std::make_unique<Worker>();
    w->index = i;
    w->last = i == threads - 1;
    if (absl::Status s = w->Init(); !s.ok()) return s;
    client->workers_.push_back(std::move(w));
  }
  for (auto& w : client->workers_) {
    w->thread = std::thread([c = client.get(), raw = w.get()] {
      pthread_setname_np(pthread_self(),
                         absl::StrCat("http-client-", raw->index).c_str());
      c->Run(raw);
    });
  }
  return client;
}

HttpClient::~HttpClient() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (auto& w : workers_) {
    const uint64_t one = 1;
    (void)!write(w->wake_fd, &one, sizeof one);
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

void HttpClient::Wake(Worker* w) {
  if (w->wake_pending.exchange(true)) return;
  const uint64_t one = 1;
  // EAGAIN means the counter is already non-zero: the thread wakes anyway.
  (void)!write(w->wake_fd, &one, sizeof one);
}

std::shared_ptr<HttpClient::Lane> HttpClient::NewLane(int max_in_flight) {
  auto lane = std::make_shared<Lane>(max_in_flight);
  MutexLock lock(&mu_);
  lanes_.push_back(lane);
  return lane;
}

size_t HttpClient::pending() {
  MutexLock lock(&mu_);
  return pending_;
}

void HttpClient::Send(const std::shared_ptr<Lane>& lane, HttpRequest request,
                      HttpDone done) {
  auto t = std::make_unique<Transfer>();
  t->request = std::move(request);
  t->done = std::move(done);
  t->lane = lane;
  {
    MutexLock lock(&mu_);
    ++pending_;
    lane->queued_.push_back(std::move(t));
  }
  Wake(workers_.front().get());
}

void HttpClient::Run(Worker* w) {
  CURLM* multi = w->multi;
  constexpr int kEvents = 256;
  epoll_event events[kEvents];
  int running = 0;
  for (;;) {
    {
      MutexLock lock(&mu_);
      if (stopping_) break;
    }
    // Adding a transfer sets libcurl's timer to "now": it is started by the
    // timeout action below, without waiting.
    StartQueued(w);
    const absl::Duration until = w->timer_due - absl::Now();
    const int wait_ms = until <= absl::ZeroDuration()
                            ? 0
                            : static_cast<int>(std::min<int64_t>(
                                  1000, absl::ToInt64Milliseconds(absl::Ceil(
                                            until, absl::Milliseconds(1)))));
    const int n = epoll_wait(w->epoll_fd, events, kEvents, wait_ms);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == w->wake_fd) {
        // Cleared before the next StartQueued reads the lanes: a Send that
        // queues after this point writes a new wake-up.
        w->wake_pending.store(false);
        uint64_t count = 0;
        (void)!read(w->wake_fd, &count, sizeof count);
        continue;
      }
      int flags = 0;
      if ((events[i].events & EPOLLIN) != 0) flags |= CURL_CSELECT_IN;
      if ((events[i].events & EPOLLOUT) != 0) flags |= CURL_CSELECT_OUT;
      if ((events[i].events & (EPOLLERR | EPOLLHUP)) != 0) {
        flags |= CURL_CSELECT_ERR;
      }
      curl_multi_socket_action(multi, fd, flags, &running);
    }
    if (w->timer_due <= absl::Now()) {
      w->timer_due = absl::InfiniteFuture();
      curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    CollectFinished(w);
  }
  // Stopping: whatever was not answered gets an error, once.
  std::vector<std::unique_ptr<Transfer>> abandoned;
  {
    MutexLock lock(&mu_);
    for (auto& lane : lanes_) {
      for (auto& t : lane->queued_) abandoned.push_back(std::move(t));
      lane->queued_.clear();
    }
  }
  for (Transfer* t : w->active) {
    curl_multi_remove_handle(multi, static_cast<CURL*>(t->easy));
    curl_easy_cleanup(static_cast<CURL*>(t->easy));
    t->easy = nullptr;
    abandoned.emplace_back(t);
  }
  w->active.clear();
  for (auto& t : abandoned) {
    t->response.status = 0;
    t->response.error = "the HTTP client is shutting down";
    if (t->done) t->done(std::move(t->response));
  }
}

void HttpClient::CollectFinished(Worker* w) {
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(w->multi, &left)) {
    if (msg->msg == CURLMSG_DONE) {
      Finish(w, msg->easy_handle, msg->data.result);
    }
  }
}

void HttpClient::StartQueued(Worker* w) {
  // A thread other than the first takes work only while the one before it
  // carries its full share (kPerThread): light traffic stays on one thread
  // and its kept-alive connections. A thread other than the last takes up
  // to kPerThread and wakes the next for what is left.
  if (w->index > 0 && workers_[w->index - 1]->on_wire.load() < kPerThread) {
    return;
  }
  std::vector<std::unique_ptr<Transfer>> ready;
  bool left_over = false;
  {
    MutexLock lock(&mu_);
    for (auto& lane : lanes_) {
      while (!lane->queued_.empty() &&
             lane->in_flight_ < lane->max_in_flight_) {
        if (!w->last && w->on_wire.load() >= kPerThread) {
          left_over = true;
          break;
        }
        ready.push_back(std::move(lane->queued_.front()));
        lane->queued_.pop_front();
        ++lane->in_flight_;
        ++w->on_wire;
      }
    }
  }
  for (auto& t : ready) Start(w, std::move(t));
  if (left_over) Wake(workers_[w->index + 1].get());
}

void HttpClient::Start(Worker* w, std::unique_ptr<Transfer> t) {
  // A reused handle keeps its connection cache links and buffers; every
  // option a request may set is set below on each use, to its value or its
  // default, so nothing of the previous request carries over (and the
  // costly curl_easy_reset is not needed).
  CURL* easy = nullptr;
  if (!w->idle_easy.empty()) {
    easy = w->idle_easy.back();
    w->idle_easy.pop_back();
  } else {
    easy = curl_easy_init();
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Transfer::OnBody);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &Transfer::OnHeader);
    // Requests are small: the smallest upload buffer libcurl allows spares
    // a 64 KiB allocation (and malloc's consolidation) per transfer.
    curl_easy_setopt(easy, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
  }
  const HttpRequest& r = t->request;
  t->easy = easy;
  t->started = absl::Now();
  for (const std::string& h : r.headers) {
    t->headers = curl_slist_append(t->headers, h.c_str());
  }
  // No "Expect: 100-continue" round trip before a body.
  t->headers = curl_slist_append(t->headers, "Expect:");
  curl_easy_setopt(easy, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->headers);
  if (r.method == "GET") {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, nullptr);
  } else {
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r.body.data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(r.body.size()));
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST,
                     r.method == "POST" ? nullptr : r.method.c_str());
  }
  if (!r.basic_auth.empty()) {
    curl_easy_setopt(easy, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(easy, CURLOPT_USERPWD, r.basic_auth.c_str());
  } else {
    curl_easy_setopt(easy, CURLOPT_USERPWD, nullptr);
  }
  const long timeout_ms = static_cast<long>(
      std::max<int64_t>(1, absl::ToInt64Milliseconds(r.timeout)));
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
  // Over TLS, wait for ALPN to say whether a connection multiplexes (HTTP/2)
  // rather than open one per request; plain HTTP/1.1 never multiplexes, and
  // waiting there would queue requests behind a slow answer.
  curl_easy_setopt(easy, CURLOPT_PIPEWAIT,
                   absl::StartsWithIgnoreCase(r.url, "https:") ? 1L : 0L);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, t.get());
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, t.get());
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t->error);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, t.get());
  const CURLMcode added = curl_multi_add_handle(w->multi, easy);
  Transfer* raw = t.release();
  w->active.insert(raw);
  if (added != CURLM_OK) {
    raw->response.error = curl_multi_strerror(added);
    Finish(w, easy, -1);
  }
}

void HttpClient::Finish(Worker* w, void* handle, int curl_code) {
  CURL* easy = static_cast<CURL*>(handle);
  Transfer* raw = nullptr;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, reinterpret_cast<char**>(&raw));
  std::unique_ptr<Transfer> t(raw);
  w->active.erase(raw);
  --w->on_wire;
  curl_multi_remove_handle(w->multi, easy);
  HttpResponse& resp = t->response;
  resp.elapsed = absl::Now() - t->started;
  if (curl_code == CURLE_OK) {
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    resp.status = static_cast<int>(status);
  } else if (curl_code > 0) {
    const CURLcode code = static_cast<CURLcode>(curl_code);
    resp.status = 0;
    resp.timed_out = code == CURLE_OPERATION_TIMEDOUT;
    resp.error = t->error[0] != '\0' ? std::string(t->error)
                                     : std::string(curl_easy_strerror(code));
  }
  if (w->idle_easy.size() < kIdleHandles) {
    w->idle_easy.push_back(easy);
  } else {
    curl_easy_cleanup(easy);
  }
  t->easy = nullptr;
  {
    MutexLock lock(&mu_);
    --t->lane->in_flight_;
    --pending_;
  }
  if (t->done) t->done(std::move(resp));
}

}  // namespace campaigns::dispatch
