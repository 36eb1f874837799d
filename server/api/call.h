// The per-call state machines of the async (completion-queue) server.
//
// Each RPC is registered once with a Registrar; the server then keeps one
// pending request per method per completion queue. When a call arrives, the
// call object re-arms its method on the same queue, authenticates the caller
// and hands the request to the handler together with a Reply. The handler (or
// whatever it hands the Reply to, e.g. the storage writer thread) calls the
// Reply exactly once, from any thread; the call then finishes and deletes
// itself when its completion tag comes back. `this` is the tag.
//
//   registrar.Unary(&campaign_service, &S::RequestGetCampaign,
//                   Bind(this, &CampaignApi::GetCampaign));
//
//   void CampaignApi::GetCampaign(const RpcContext& ctx,
//                                 const v1::GetCampaignRequest& req,
//                                 Reply<v1::Campaign> reply) {...}
//
// Registrar is not thread-safe (use it before the server starts); calls are
// driven by one CQ thread each, plus the one thread that calls their Reply.
#ifndef CAMPAIGND_SERVER_API_CALL_H_
#define CAMPAIGND_SERVER_API_CALL_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/statusor.h"
#include "server/api/status.h"
#include "server/domain/model.h"

namespace campaigns::api {

// What a handler knows about its call.
struct RpcContext {
  Principal principal;
  grpc::ServerContext* server_context = nullptr;
};

// Completes a call: an OK value or a status. Call exactly once.
template <typename Resp>
using Reply = std::function<void(absl::StatusOr<Resp>)>;

template <typename Req, typename Resp>
using UnaryHandler =
    std::function<void(const RpcContext&, const Req&, Reply<Resp>)>;

// Resolves the caller of a call from its metadata; UNAUTHENTICATED if none.
using Authenticator =
    std::function<absl::StatusOr<Principal>(const grpc::ServerContext&)>;

// A completion-queue tag.
class Tag {
 public:
  virtual ~Tag() = default;
  virtual void Proceed(bool ok) = 0;
};

// A method that can post a request for its next call on a queue.
class Method {
 public:
  virtual ~Method() = default;
  virtual void Arm(grpc::ServerCompletionQueue* cq) = 0;
};

// Shared by every call: authentication and the shutdown flag.
struct CallEnv {
  Authenticator authenticate;
  std::atomic<bool> shutting_down{false};

  // What every call does when it arrives: re-arm its method on the same
  // queue (unless the server is shutting down), then authenticate the caller.
  absl::StatusOr<Principal> Arrive(Method* method,
                                   grpc::ServerCompletionQueue* cq,
                                   const grpc::ServerContext& ctx) {
    if (!shutting_down.load()) method->Arm(cq);
    return authenticate(ctx);
  }
};

template <typename Base, typename Req, typename Resp>
class UnaryMethod final : public Method {
 public:
  using RequestFn = void (Base::*)(grpc::ServerContext*, Req*,
                                   grpc::ServerAsyncResponseWriter<Resp>*,
                                   grpc::CompletionQueue*,
                                   grpc::ServerCompletionQueue*, void*);

  UnaryMethod(Base* service, RequestFn request, UnaryHandler<Req, Resp> handler,
              CallEnv* env)
      : service_(service),
        request_(request),
        handler_(std::move(handler)),
        env_(env) {}

  void Arm(grpc::ServerCompletionQueue* cq) override { new Call(this, cq); }

 private:
  class Call final : public Tag {
   public:
    Call(UnaryMethod* method, grpc::ServerCompletionQueue* cq)
        : method_(method), cq_(cq), responder_(&ctx_) {
      (method_->service_->*method_->request_)(&ctx_, &request_, &responder_,
                                              cq_, cq_, this);
    }

    void Proceed(bool ok) override {
      if (finishing_ || !ok) {
        delete this;
        return;
      }
      finishing_ = true;
      absl::StatusOr<Principal> principal =
          method_->env_->Arrive(method_, cq_, ctx_);
      if (!principal.ok()) {
        Finish(principal.status());
        return;
      }
      RpcContext rpc{*std::move(principal), &ctx_};
      // After this call `this` may already be gone: Finish may have run.
      method_->handler_(rpc, request_, [this](absl::StatusOr<Resp> r) {
        Finish(std::move(r));
      });
    }

   private:
    void Finish(absl::StatusOr<Resp> result) {
      if (result.ok()) {
        responder_.Finish(*result, grpc::Status::OK, this);
      } else {
        responder_.FinishWithError(ToGrpcStatus(result.status()), this);
      }
    }

    UnaryMethod* const method_;
    grpc::ServerCompletionQueue* const cq_;
    grpc::ServerContext ctx_;
    Req request_;
    grpc::ServerAsyncResponseWriter<Resp> responder_;
    bool finishing_ = false;
  };

  Base* const service_;
  const RequestFn request_;
  const UnaryHandler<Req, Resp> handler_;
  CallEnv* const env_;
};

// The request type of a server-streaming request function; unused (char)
// for client streaming, whose request function takes no request.
template <typename Fn>
struct StreamRequest {
  using type = char;
};
template <typename B, typename Req, typename W>
struct StreamRequest<void (B::*)(grpc::ServerContext*, Req*, W*,
                                 grpc::CompletionQueue*,
                                 grpc::ServerCompletionQueue*, void*)> {
  using type = Req;
};

// Blocks template argument deduction for a parameter.
template <typename T>
struct NonDeduced {
  using type = T;
};

// A streaming method whose behaviour arrives with later work: it
// authenticates, then answers UNIMPLEMENTED with `message`. `Stream` is
// grpc::ServerAsyncReader<Resp, Req> (client streaming) or
// grpc::ServerAsyncWriter<Resp> (server streaming).
template <typename Base, typename Stream, typename RequestFn>
class UnimplementedStreamMethod final : public Method {
 public:
  UnimplementedStreamMethod(Base* service, RequestFn request,
                            std::string message, CallEnv* env)
      : service_(service),
        request_(request),
        message_(std::move(message)),
        env_(env) {}

  void Arm(grpc::ServerCompletionQueue* cq) override { new Call(this, cq); }

 private:
  class Call final : public Tag {
   public:
    Call(UnimplementedStreamMethod* method, grpc::ServerCompletionQueue* cq)
        : method_(method), cq_(cq), stream_(&ctx_) {
      RequestOn(cq);
    }

    void Proceed(bool ok) override {
      if (finishing_ || !ok) {
        delete this;
        return;
      }
      finishing_ = true;
      absl::StatusOr<Principal> principal =
          method_->env_->Arrive(method_, cq_, ctx_);
      absl::Status status = principal.ok()
                                ? absl::UnimplementedError(method_->message_)
                                : principal.status();
      if constexpr (std::is_invocable_v<RequestFn, Base*, grpc::ServerContext*,
                                        Stream*, grpc::CompletionQueue*,
                                        grpc::ServerCompletionQueue*, void*>) {
        stream_.FinishWithError(ToGrpcStatus(status), this);
      } else {
        stream_.Finish(ToGrpcStatus(status), this);
      }
    }

   private:
    // Client-streaming request functions take (ctx, reader, cq, cq, tag);
    // server-streaming ones take (ctx, request, writer, cq, cq, tag).
    void RequestOn(grpc::ServerCompletionQueue* cq) {
      if constexpr (std::is_invocable_v<RequestFn, Base*, grpc::ServerContext*,
                                        Stream*, grpc::CompletionQueue*,
                                        grpc::ServerCompletionQueue*, void*>) {
        (method_->service_->*method_->request_)(&ctx_, &stream_, cq, cq, this);
      } else {
        (method_->service_->*method_->request_)(&ctx_, &request_, &stream_, cq,
                                                cq, this);
      }
    }

    UnimplementedStreamMethod* const method_;
    grpc::ServerCompletionQueue* const cq_;
    grpc::ServerContext ctx_;
    typename StreamRequest<RequestFn>::type request_;
    Stream stream_;
    bool finishing_ = false;
  };

  Base* const service_;
  const RequestFn request_;
  const std::string message_;
  CallEnv* const env_;
};

// Collects the methods of every service; the server arms them on each queue.
class Registrar {
 public:
  explicit Registrar(CallEnv* env) : env_(env) {}

  template <typename Service, typename Base, typename Req, typename Resp>
  void Unary(Service* service,
             void (Base::*request)(grpc::ServerContext*, Req*,
                                   grpc::ServerAsyncResponseWriter<Resp>*,
                                   grpc::CompletionQueue*,
                                   grpc::ServerCompletionQueue*, void*),
             typename NonDeduced<UnaryHandler<Req, Resp>>::type handler) {
    methods_.push_back(std::make_unique<UnaryMethod<Base, Req, Resp>>(
        static_cast<Base*>(service), request, std::move(handler), env_));
  }

  // Client streaming, answered UNIMPLEMENTED.
  template <typename Service, typename Base, typename Req, typename Resp>
  void UnimplementedClientStream(
      Service* service,
      void (Base::*request)(grpc::ServerContext*,
                            grpc::ServerAsyncReader<Resp, Req>*,
                            grpc::CompletionQueue*,
                            grpc::ServerCompletionQueue*, void*),
      std::string message) {
    using Fn = decltype(request);
    methods_.push_back(std::make_unique<UnimplementedStreamMethod<
                           Base, grpc::ServerAsyncReader<Resp, Req>, Fn>>(
        static_cast<Base*>(service), request, std::move(message), env_));
  }

  // Server streaming, answered UNIMPLEMENTED.
  template <typename Service, typename Base, typename Req, typename Resp>
  void UnimplementedServerStream(
      Service* service,
      void (Base::*request)(grpc::ServerContext*, Req*,
                            grpc::ServerAsyncWriter<Resp>*,
                            grpc::CompletionQueue*,
                            grpc::ServerCompletionQueue*, void*),
      std::string message) {
    using Fn = decltype(request);
    methods_.push_back(
        std::make_unique<
            UnimplementedStreamMethod<Base, grpc::ServerAsyncWriter<Resp>, Fn>>(
            static_cast<Base*>(service), request, std::move(message), env_));
  }

  const std::vector<std::unique_ptr<Method>>& methods() const {
    return methods_;
  }

 private:
  CallEnv* const env_;
  std::vector<std::unique_ptr<Method>> methods_;
};

// Adapts a member function to a UnaryHandler.
template <typename Obj, typename Req, typename Resp>
UnaryHandler<Req, Resp> Bind(Obj* obj,
                             void (Obj::*fn)(const RpcContext&, const Req&,
                                             Reply<Resp>)) {
  return [obj, fn](const RpcContext& ctx, const Req& req, Reply<Resp> reply) {
    (obj->*fn)(ctx, req, std::move(reply));
  };
}

// A handler answering UNIMPLEMENTED with `message` (behaviour of later work).
inline auto NotYet(std::string message) {
  return [message](const RpcContext&, const auto&, auto reply) {
    reply(absl::UnimplementedError(message));
  };
}

}  // namespace campaigns::api

#endif  // CAMPAIGND_SERVER_API_CALL_H_
