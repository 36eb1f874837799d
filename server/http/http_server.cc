// HttpServer: a small HTTP/1.1 server on GNU libmicrohttpd.
#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <optional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/domain/mutex.h"

namespace campaigns::http {
// Outside the anonymous namespace: HttpServer::Impl holds them.
namespace server_internal {

// One request and its answer, shared by the connection and the reply.
struct Exchange {
  MHD_Connection* conn = nullptr;
  HttpServerRequest request;
  bool too_large = false;
  bool dispatched = false;  // the handler has it
  bool suspended = false;
  bool closed = false;  // MHD is done with the connection
  std::optional<HttpServerResponse> response;
};

using ExchangePtr = std::shared_ptr<Exchange>;

}  // namespace server_internal

namespace {

using server_internal::Exchange;
using server_internal::ExchangePtr;

MHD_Result AddHeader(void* cls, MHD_ValueKind, const char* key,
                     const char* value) {
  auto* req = static_cast<HttpServerRequest*>(cls);
  req->headers[absl::AsciiStrToLower(key)] = value != nullptr ? value : "";
  return MHD_YES;
}

MHD_Result AddQuery(void* cls, MHD_ValueKind, const char* key,
                    const char* value) {
  auto* req = static_cast<HttpServerRequest*>(cls);
  req->query[key] = value != nullptr ? value : "";
  return MHD_YES;
}

}  // namespace

const std::string& HttpServerRequest::Header(const std::string& name) const {
  static const std::string* const kEmpty = new std::string();
  auto it = headers.find(name);
  return it == headers.end() ? *kEmpty : it->second;
}

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  HttpHandler handler;
  HttpServerOptions options;
  MHD_Daemon* daemon = nullptr;

  Mutex mu;  // guards every Exchange's state and the fields below
  bool stopped ABSL_GUARDED_BY(mu) = false;
  std::set<Exchange*> live ABSL_GUARDED_BY(mu);

  static MHD_Result OnRequest(void* cls, MHD_Connection* conn, const char* url,
                              const char* method, const char* /*version*/,
                              const char* data, size_t* size, void** con_cls) {
    return static_cast<Impl*>(cls)->Handle(conn, url, method, data, size,
                                           con_cls);
  }

  static void OnCompleted(void* cls, MHD_Connection*, void** con_cls,
                          MHD_RequestTerminationCode) {
    auto* holder = static_cast<ExchangePtr*>(*con_cls);
    if (holder == nullptr) return;
    Impl* impl = static_cast<Impl*>(cls);
    {
      MutexLock lock(&impl->mu);
      (*holder)->closed = true;
      impl->live.erase(holder->get());
    }
    delete holder;
    *con_cls = nullptr;
  }

  MHD_Result Handle(MHD_Connection* conn, const char* url, const char* method,
                    const char* data, size_t* size, void** con_cls) {
    auto* holder = static_cast<ExchangePtr*>(*con_cls);
    if (holder == nullptr) {  // the headers are in
      auto ex = std::make_shared<Exchange>();
      ex->conn = conn;
      ex->request.method = method;
      ex->request.path = url;
      MHD_get_connection_values(conn, MHD_HEADER_KIND, &AddHeader,
                                &ex->request);
      MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, &AddQuery,
                                &ex->request);
      const MHD_ConnectionInfo* peer =
          MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
      if (peer != nullptr && peer->client_addr != nullptr &&
          peer->client_addr->sa_family == AF_INET) {
        const auto* in =
            reinterpret_cast<const sockaddr_in*>(peer->client_addr);
        char ip[INET_ADDRSTRLEN] = {0};
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        ex->request.remote = absl::StrCat(ip, ":", ntohs(in->sin_port));
      }
      size_t declared = 0;
      if (absl::SimpleAtoi(ex->request.Header("content-length"), &declared) &&
          declared > options.max_body) {
        ex->too_large = true;
      }
      {
        MutexLock lock(&mu);
        live.insert(ex.get());
      }
      *con_cls = new ExchangePtr(std::move(ex));
      return MHD_YES;
    }
    const ExchangePtr ex = *holder;
    if (*size > 0) {  // more of the body
      if (ex->too_large || ex->request.body.size() + *size > options.max_body) {
        ex->too_large = true;
        ex->request.body.clear();
      } else {
        ex->request.body.append(data, *size);
      }
      *size = 0;
      return MHD_YES;
    }
    ReleasableMutexLock lock(&mu);
    if (!ex->response && (ex->too_large || stopped)) {
      HttpServerResponse r;
      r.status = ex->too_large ? 413 : 503;
      r.body = ex->too_large ? "request body too large\n" : "shutting down\n";
      ex->response = std::move(r);
    }
    if (ex->response) {
      const HttpServerResponse r = std::move(*ex->response);
      ex->response.reset();
      lock.Unlock();
      return Queue(conn, r);
    }
    if (ex->dispatched) {  // resumed early: wait for the answer
      ex->suspended = true;
      MHD_suspend_connection(conn);
      return MHD_YES;
    }
    ex->dispatched = true;
    HttpServerRequest request = std::move(ex->request);
    lock.Unlock();
    // The reply keeps the server's state (not the connection) alive: it may
    // come after the server stopped, and then does nothing.
    std::weak_ptr<Exchange> weak = ex;
    handler(std::move(request),
            [self = shared_from_this(), weak](HttpServerResponse r) {
              ExchangePtr ex = weak.lock();
              if (!ex) return;
              MutexLock lock(&self->mu);
              if (ex->closed || self->stopped) return;
              ex->response = std::move(r);
              if (ex->suspended) {
                ex->suspended = false;
                MHD_resume_connection(ex->conn);
              }
            });
    // Answered already (inline): no suspend/resume round trip. Otherwise
    // the connection waits, suspended, for the reply from any thread.
    lock.Lock();
    if (ex->response) {
      const HttpServerResponse r = std::move(*ex->response);
      ex->response.reset();
      lock.Unlock();
      return Queue(conn, r);
    }
    if (stopped) {  // Stop() resumed the suspended already: do not wait
      lock.Unlock();
      HttpServerResponse r;
      r.status = 503;
      r.body = "shutting down\n";
      return Queue(conn, r);
    }
    ex->suspended = true;
    MHD_suspend_connection(conn);
    return MHD_YES;
  }

  static MHD_Result Queue(MHD_Connection* conn, const HttpServerResponse& r) {
    if (r.drop) return MHD_NO;  // MHD closes the connection
    MHD_Response* resp = MHD_create_response_from_buffer(
        r.body.size(), const_cast<char*>(r.body.data()), MHD_RESPMEM_MUST_COPY);
    if (resp == nullptr) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r.content_type.c_str());
    for (const auto& [name, value] : r.headers) {
      MHD_add_response_header(resp, name.c_str(), value.c_str());
    }
    const MHD_Result ok =
        MHD_queue_response(conn, static_cast<unsigned>(r.status), resp);
    MHD_destroy_response(resp);
    return ok;
  }
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& listen, HttpHandler handler, HttpServerOptions options) {
  const size_t colon = listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("http_listen: expected host:port, got \"", listen, "\""));
  }
  std::string host = listen.substr(0, colon);
  if (host.empty() || host == "localhost") host = "127.0.0.1";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "http_listen: \"", host, "\" is not an IPv4 address (e.g. 0.0.0.0)"));
  }
  std::unique_ptr<HttpServer> server(new HttpServer());
  server->impl_ = std::make_shared<Impl>();
  Impl* impl = server->impl_.get();
  impl->handler = std::move(handler);
  impl->options = options;
  unsigned flags =
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME;
  impl->daemon = MHD_start_daemon(
      flags, 0, nullptr, nullptr, &Impl::OnRequest, impl, MHD_OPTION_SOCK_ADDR,
      reinterpret_cast<const sockaddr*>(&addr), MHD_OPTION_NOTIFY_COMPLETED,
      &Impl::OnCompleted, impl, MHD_OPTION_CONNECTION_TIMEOUT,
      options.connection_timeout, MHD_OPTION_THREAD_POOL_SIZE,
      std::max(1u, options.threads), MHD_OPTION_END);
  if (impl->daemon == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "http_listen: cannot listen on ", listen, " (in use or not allowed)"));
  }
  const MHD_DaemonInfo* info =
      MHD_get_daemon_info(impl->daemon, MHD_DAEMON_INFO_BIND_PORT);
  server->port_ = info != nullptr ? info->port : port;
  return server;
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (!impl_ || impl_->daemon == nullptr) return;
  {
    MutexLock lock(&impl_->mu);
    impl_->stopped = true;
    // MHD must not be stopped with suspended connections: wake them; they
    // are answered 503 or simply closed.
    for (Exchange* ex : impl_->live) {
      if (ex->suspended) {
        ex->suspended = false;
        MHD_resume_connection(ex->conn);
      }
    }
  }
  MHD_stop_daemon(impl_->daemon);
  impl_->daemon = nullptr;
}

}  // namespace campaigns::http
