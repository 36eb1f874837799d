// OperatorHttp: the routes of the operator's HTTP listener (webhooks,
// health, metrics) and their answers.
#include "server/http/operator_http.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "server/domain/errors.h"
#include "server/log/log.h"

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
  if (deps_.metrics == nullptr) {
    Route(std::move(req), std::move(reply));
    return;
  }
  // The route label: fixed paths, webhooks of a configured provider, else
  // "other" (a scanner's random paths must not grow the label set).
  std::string route = "other";
  absl::string_view name = req.path;
  if (req.path == "/healthz" || req.path == "/readyz" ||
      req.path == "/metrics") {
    route = req.path;
  } else if (absl::ConsumePrefix(&name, "/webhooks/") && !name.empty() &&
             !absl::StrContains(name, '/') &&
             deps_.provider(std::string(name)) != nullptr) {
    route = req.path;
  }
  Route(std::move(req), [reply = std::move(reply), route = std::move(route),
                         metrics = deps_.metrics](HttpServerResponse r) {
    metrics->HttpHandled(route, r.status);
    reply(std::move(r));
  });
}

void OperatorHttp::Route(HttpServerRequest req, HttpReply reply) {
  if (req.path == "/healthz" || req.path == "/readyz" ||
      req.path == "/metrics") {
    if (req.method != "GET" && req.method != "HEAD") {
      HttpServerResponse r = Json(
          405, absl::StrCat("{\"error\":\"method_not_allowed\",\"message\":"
                            "\"",
                            req.path, " answers GET only\"}"));
      r.headers.emplace_back("Allow", "GET, HEAD");
      reply(std::move(r));
      return;
    }
    if (req.path == "/healthz") {
      reply(Json(200, "{\"status\":\"ok\"}"));
      return;
    }
    if (req.path == "/readyz") {
      const absl::Status ready =
          deps_.ready ? deps_.ready() : absl::UnavailableError("starting");
      if (ready.ok()) {
        reply(Json(200, "{\"status\":\"ready\"}"));
      } else {
        std::string reason;
        for (char c : ready.message()) {
          if (c == '"' || c == '\\') reason.push_back('\\');
          if (static_cast<unsigned char>(c) >= 0x20) reason.push_back(c);
        }
        reply(Json(503, absl::StrCat("{\"status\":\"not ready\",\"reason\":\"",
                                     reason, "\"}")));
      }
      return;
    }
    if (!deps_.metrics_text) {
      reply(Text(404, "not found"));
      return;
    }
    HttpServerResponse r;
    r.body = deps_.metrics_text();
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    reply(std::move(r));
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
      // A forger (or a misconfigured secret) can send these without end.
      static logging::RateLimited limit(10, absl::Seconds(10));
      int64_t suppressed = 0;
      if (limit.Allow(&suppressed)) {
        logging::Warn("webhook refused: signature",
                      {{"provider", provider_name},
                       {"remote", req.remote},
                       {"error", events.status().message()},
                       {"suppressed", suppressed}});
      }
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
          logging::Error(
              "webhook not stored: answered 503, the vendor will retry",
              {{"provider", provider_name},
               {"receipts", static_cast<int64_t>(receipts)},
               {"error", committed}});
          HttpServerResponse r = Text(503, "not stored, try again");
          // The delay the refusal asked for; else storage's own retry
          // period (writable_probe_every, 2 s).
          const absl::Duration wait =
              errors::RetryAfterOf(committed).value_or(absl::Seconds(2));
          r.headers.emplace_back(
              "Retry-After",
              absl::StrCat(std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(
                                                    wait, absl::Seconds(1))))));
          reply(std::move(r));
          return;
        }
        reply(answer.empty() ? Json(200, "{}") : Exact(answer));
      });
}

}  // namespace campaigns::http
