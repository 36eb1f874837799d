// OperatorHttp: campaignd's HTTP listener (`http_listen`), for vendors and
// operators rather than API clients:
//   POST /webhooks/{provider}   a vendor's receipts and inbound messages,
//                               verified by the provider's adapter; 200 only
//                               once what they carry is committed
//   GET  /webhooks/{provider}   a vendor's subscription check (Meta)
//   GET  /healthz               the process is up: 200 {"status":"ok"}
//   GET  /readyz                it serves: 200 {"status":"ready"}, or 503
//                               {"status":"not ready","reason":"..."}
//   GET  /metrics               Prometheus' text exposition
// A bad or missing signature is 401 and changes nothing; a malformed body
// 400; an unknown provider 404; a failed commit 503 (the vendor retries).
// /healthz, /readyz and /metrics answer GET (and HEAD) only, 405 with a JSON
// error otherwise, and ignore query strings. Every answer is counted in
// campaignd_http_requests_total by route (webhooks by configured provider,
// anything else as "other", so the label set stays bounded).
//
//   OperatorHttpDeps deps{lookup, deliver, ready};
//   auto http = OperatorHttp::Start("127.0.0.1:9090", deps);
//
// Thread-safe.
#ifndef CAMPAIGND_SERVER_HTTP_OPERATOR_HTTP_H_
#define CAMPAIGND_SERVER_HTTP_OPERATOR_HTTP_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/dispatch/provider.h"
#include "server/domain/metrics.h"
#include "server/http/http_server.h"

namespace campaigns::http {

struct OperatorHttpDeps {
  // The adapter of provider `name`; null when none is configured.
  std::function<dispatch::Provider*(const std::string& name)> provider;
  // Commits what a verified webhook of `provider` carried, then calls
  // `done` (from any thread) with the outcome.
  std::function<void(const std::string& provider, dispatch::WebhookEvents,
                     std::function<void(absl::Status)> done)>
      deliver;
  // Whether campaignd serves (readiness): OK, or why not.
  std::function<absl::Status()> ready;
  // The metrics exposition; null = /metrics is 404.
  std::function<std::string()> metrics_text;
  // Told of every answer; null = none.
  Metrics* metrics = nullptr;
};

class OperatorHttp {
 public:
  static absl::StatusOr<std::unique_ptr<OperatorHttp>> Start(
      const std::string& listen, OperatorHttpDeps deps);

  int port() const { return server_->port(); }
  // Stops serving; webhooks being committed are not answered. Idempotent.
  void Stop() { server_->Stop(); }

 private:
  OperatorHttp() = default;
  void Handle(HttpServerRequest req, HttpReply reply);
  void Route(HttpServerRequest req, HttpReply reply);

  OperatorHttpDeps deps_;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace campaigns::http

#endif  // CAMPAIGND_SERVER_HTTP_OPERATOR_HTTP_H_
