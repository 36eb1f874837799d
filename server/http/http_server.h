// HttpServer: a small HTTP/1.1 server on GNU libmicrohttpd (Debian's
// libmicrohttpd-dev): a well-kept, widely deployed C library that parses
// requests itself, bounds memory per connection, times idle connections out
// and lets a handler answer later (suspend/resume) without holding a
// thread. campaignd serves its operator endpoints on it (webhooks in,
// /healthz, /readyz), and tests build their fake vendors on it.
//
//   auto server = HttpServer::Start("127.0.0.1:0", [](HttpServerRequest req,
//                                                      HttpReply reply) {
//     reply({200, "ok"});          // now, or later from any thread
//   });
//   int port = (*server)->port();
//
// The handler runs on the server's thread and must not block; it calls
// `reply` exactly once (from any thread). Thread-safe.
#ifndef CAMPAIGND_SERVER_HTTP_HTTP_SERVER_H_
#define CAMPAIGND_SERVER_HTTP_HTTP_SERVER_H_

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace campaigns::http {

struct HttpServerRequest {
  std::string method;
  std::string path;  // without the query
  // Header names in lower case.
  std::map<std::string, std::string> headers;
  // Decoded query parameters.
  std::map<std::string, std::string> query;
  std::string body;  // raw bytes, as received
  // The peer, "ip:port" (one TCP connection keeps its port).
  std::string remote;

  // A header's value, or "" when absent (`name` in lower case).
  const std::string& Header(const std::string& name) const;
};

struct HttpServerResponse {
  int status = 200;
  std::string body;
  std::string content_type = "text/plain; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;
  // Close the connection without an answer (tests of clients' error paths).
  bool drop = false;
};

using HttpReply = std::function<void(HttpServerResponse)>;
using HttpHandler = std::function<void(HttpServerRequest, HttpReply)>;

struct HttpServerOptions {
  // Larger bodies are answered 413 without reaching the handler.
  size_t max_body = 1 << 20;
  // Seconds an idle connection is kept.
  unsigned connection_timeout = 30;
  // Threads polling connections (each runs handlers).
  unsigned threads = 1;
};

class HttpServer {
 public:
  // Binds `listen` ("host:port"; port 0 picks a free one) and serves.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& listen, HttpHandler handler,
      HttpServerOptions options = HttpServerOptions());
  // Stops serving (Stop()).
  ~HttpServer();

  int port() const { return port_; }

  // Stops accepting and closes every connection; replies arriving later
  // are dropped. Idempotent.
  void Stop();

 private:
  struct Impl;
  HttpServer() = default;
  std::shared_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace campaigns::http

#endif  // CAMPAIGND_SERVER_HTTP_HTTP_SERVER_H_
