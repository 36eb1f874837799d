// OperatorHttp: the operator's HTTP listener (webhooks, health endpoints).
#include "server/http/operator_http.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "spdlog/spdlog.h"

namespace campaigns::http {
namespace {

HttpServerResponse Text(int status, std::string body) {
  HttpServerResponse r;
  r.status = status;
  r.body = std::move(body);
  r.body += "\n";
  return r;
}

// A vendor's expected answer, byte for byte (Meta echoes hub.challenge).
HttpServerResponse Exact(std::string body) {
  HttpServerResponse r;
  r.body = std::move(body);
  return r;
}

HttpServerResponse Json(int status, std::string body) {
  HttpServerResponse r;
  r.status = status;
  r.body = std::move(body);
  r.content_type = "application/json";
  return r;
}

int HttpStatusOf(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kUnimplemented:
      return 404;
    default:
      return 503;
  }
}

// A webhook body is a vendor's few events; a bulk status export is not.
constexpr size_t kMaxWebhookBody = 4 << 20;

}  // namespace

absl::StatusOr<std::unique_ptr<OperatorHttp>> OperatorHttp::Start(
    const std::string& listen, OperatorHttpDeps deps) {
  std::unique_ptr<OperatorHttp> http(new OperatorHttp());
  http->deps_ = std::move(deps);
  HttpServerOptions options;
  options.max_body = kMaxWebhookBody;
  options.threads = 2;
  auto server = HttpServer::Start(
      listen,
      [h = http.get()](HttpServerRequest req, HttpReply reply) {
        h->Handle(std::move(req), std::move(reply));
      },
      options);
  if (!server.ok()) return server.status();
  http->server_ = *std::move(server);
  return http;
}

void OperatorHttp::Handle(HttpServerRequest req, HttpReply reply) {
  if (req.path == "/healthz") {
    reply(Text(200, "ok"));
    return;
  }
  if (req.path == "/readyz") {
    const bool ready = deps_.ready && deps_.ready();
    reply(Text(ready ? 200 : 503, ready ? "ready" : "not ready"));
    return;
  }
  absl::string_view name = req.path;
  if (!absl::ConsumePrefix(&name, "/webhooks/") || name.empty() ||
      absl::StrContains(name, '/')) {
    reply(Text(404, "not found"));
    return;
  }
  if (req.method != "POST" && req.method != "GET") {
    HttpServerResponse r = Text(405, "method not allowed");
    r.headers.emplace_back("Allow", "GET, POST");
    reply(std::move(r));
    return;
  }
  const std::string provider_name(name);
  dispatch::Provider* provider = deps_.provider(provider_name);
  if (provider == nullptr) {
    reply(Text(404, absl::StrCat("no provider \"", provider_name, "\"")));
    return;
  }
  dispatch::WebhookRequest w;
  w.method = std::move(req.method);
  w.path = std::move(req.path);
  w.query = std::move(req.query);
  w.headers = std::move(req.headers);
  w.body = std::move(req.body);
  w.now = absl::Now();
  absl::StatusOr<dispatch::WebhookEvents> events = provider->ParseWebhook(w);
  if (!events.ok()) {
    const int status = HttpStatusOf(events.status());
    if (status == 401) {
      spdlog::warn("webhook for provider {} from {} refused: {}", provider_name,
                   req.remote, std::string(events.status().message()));
    }
    reply(Text(status, std::string(events.status().message())));
    return;
  }
  std::string answer = std::move(events->answer);
  if (events->receipts.empty() && events->inbound.empty()) {
    reply(answer.empty() ? Json(200, "{}") : Exact(std::move(answer)));
    return;
  }
  const size_t receipts = events->receipts.size();
  deps_.deliver(
      provider_name, *std::move(events),
      [reply = std::move(reply), answer = std::move(answer), provider_name,
       receipts](absl::Status committed) {
        if (!committed.ok()) {
          spdlog::error(
              "webhook for provider {}: storing {} receipts failed (the "
              "vendor will retry): {}",
              provider_name, receipts, committed.ToString());
          reply(Text(503, "not stored, try again"));
          return;
        }
        reply(answer.empty() ? Json(200, "{}") : Exact(answer));
      });
}

}  // namespace campaigns::http
