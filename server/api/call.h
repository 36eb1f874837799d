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
//   // In Api::RegisterCampaigns (campaign_api.cc):
//   r.Unary(&campaign_service_, "GetCampaign", Bind(this, &Api::GetCampaign));
//
//   void Api::GetCampaign(const RpcContext& ctx,
//                         const v1::GetCampaignRequest& req,
//                         Reply<v1::Campaign> reply) {...}
//
// Every method is "raw": gRPC hands over the request bytes and the call
// parses them, so a malformed request (bad wire format, invalid UTF-8 in a
// string field) is INVALID_ARGUMENT naming the field rather than gRPC's own
// INTERNAL "Unable to parse request".
//
// Registrar is not thread-safe (use it before the server starts); calls are
// driven by one CQ thread each, plus the one thread that calls their Reply.
#ifndef CAMPAIGND_SERVER_API_CALL_H_
#define CAMPAIGND_SERVER_API_CALL_H_

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/async_stream.h>
#include <grpcpp/support/async_unary_call.h>
#include <grpcpp/support/byte_buffer.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/api/status.h"
#include "server/dispatch/cq_tag.h"
#include "server/domain/metrics.h"
#include "server/domain/model.h"
#include "server/domain/mutex.h"

namespace campaigns::api {

// What a handler knows about its call.
struct RpcContext {
  Principal principal;
  grpc::ServerContext* server_context = nullptr;
  Metrics* metrics = Metrics::None();
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
using Tag = dispatch::CqTag;

// A tag of a call with several operations in flight (a server stream):
// routes the completion to the call's member function for that operation.
template <typename Call>
struct MemberTag final : public Tag {
  MemberTag(Call* c, void (Call::*fn)(bool)) : call(c), handler(fn) {}
  void Proceed(bool ok) override { (call->*handler)(ok); }
  Call* call;
  void (Call::*handler)(bool);
};

// Who may call a method: API-key holders (the caller is authenticated
// before the handler runs), or anyone (grpc.health.v1; the handler gets an
// empty Principal).
enum class Access { kApiKey, kPublic };

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
  // Told of every answered call; never null.
  Metrics* metrics = Metrics::None();

  // What every call does when it arrives: re-arm its method on the same
  // queue (unless the server is shutting down), then authenticate the caller
  // (unless the method is public).
  absl::StatusOr<Principal> Arrive(Method* method,
                                   grpc::ServerCompletionQueue* cq,
                                   const grpc::ServerContext& ctx,
                                   Access access = Access::kApiKey) {
    if (!shutting_down.load()) method->Arm(cq);
    if (access == Access::kPublic) return Principal();
    return authenticate(ctx);
  }

  // Calls (unary and streaming) that arrived and have not finished. Shutdown
  // waits for them: to let them finish before it closes the connections
  // (gRPC's own shutdown would also wait for idle connections), and because
  // streams' consumers may still post to the queues from other threads.
  // Counted without a lock (two per call, from every CQ thread); the lock
  // is taken only when the count reaches zero, to wake WaitForCalls (which
  // checks the count under it, so the wake cannot fall between its check
  // and its wait).
  void CallBegan() { live_calls_.fetch_add(1, std::memory_order_relaxed); }
  void CallEnded() {
    if (live_calls_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      MutexLock lock(&calls_mu_);
      calls_cv_.SignalAll();
    }
  }
  // True once no call is live; false if some still are at `deadline`.
  bool WaitForCalls(absl::Time deadline = absl::InfiniteFuture()) {
    MutexLock lock(&calls_mu_);
    while (live_calls_.load(std::memory_order_acquire) != 0) {
      const absl::Time now = absl::Now();
      if (now >= deadline) return false;
      calls_cv_.WaitWithTimeout(&calls_mu_, deadline - now);
    }
    return true;
  }

 private:
  Mutex calls_mu_;
  CondVar calls_cv_;
  std::atomic<int64_t> live_calls_{0};
};

// The raw face of a generated async service: requests arrive as bytes.
// Thread-safe as grpc::Service is (request functions may be called from any
// CQ thread).
class RawService {
 public:
  virtual ~RawService() = default;
  virtual const google::protobuf::ServiceDescriptor* descriptor() const = 0;
  virtual grpc::Service* grpc_service() = 0;
  virtual void RequestUnary(
      int index, grpc::ServerContext* ctx, grpc::ByteBuffer* request,
      grpc::ServerAsyncResponseWriter<grpc::ByteBuffer>* responder,
      grpc::ServerCompletionQueue* cq, void* tag) = 0;
  virtual void RequestClientStream(
      int index, grpc::ServerContext* ctx,
      grpc::ServerAsyncReader<grpc::ByteBuffer, grpc::ByteBuffer>* reader,
      grpc::ServerCompletionQueue* cq, void* tag) = 0;
  virtual void RequestServerStream(
      int index, grpc::ServerContext* ctx, grpc::ByteBuffer* request,
      grpc::ServerAsyncWriter<grpc::ByteBuffer>* writer,
      grpc::ServerCompletionQueue* cq, void* tag) = 0;
};

// `Outer` is a generated service class, e.g. v1::CampaignService.
template <typename Outer>
class RawAsyncService final : public Outer::AsyncService, public RawService {
 public:
  RawAsyncService() {
    for (int i = 0; i < descriptor()->method_count(); ++i) {
      this->MarkMethodRaw(i);
    }
  }
  const google::protobuf::ServiceDescriptor* descriptor() const override {
    return google::protobuf::DescriptorPool::generated_pool()
        ->FindServiceByName(Outer::service_full_name());
  }
  grpc::Service* grpc_service() override { return this; }
  void RequestUnary(
      int index, grpc::ServerContext* ctx, grpc::ByteBuffer* request,
      grpc::ServerAsyncResponseWriter<grpc::ByteBuffer>* responder,
      grpc::ServerCompletionQueue* cq, void* tag) override {
    this->RequestAsyncUnary(index, ctx, request, responder, cq, cq, tag);
  }
  void RequestClientStream(
      int index, grpc::ServerContext* ctx,
      grpc::ServerAsyncReader<grpc::ByteBuffer, grpc::ByteBuffer>* reader,
      grpc::ServerCompletionQueue* cq, void* tag) override {
    this->RequestAsyncClientStreaming(index, ctx, reader, cq, cq, tag);
  }
  void RequestServerStream(int index, grpc::ServerContext* ctx,
                           grpc::ByteBuffer* request,
                           grpc::ServerAsyncWriter<grpc::ByteBuffer>* writer,
                           grpc::ServerCompletionQueue* cq,
                           void* tag) override {
    this->RequestAsyncServerStreaming(index, ctx, request, writer, cq, cq, tag);
  }
};

// Parses a request, or INVALID_ARGUMENT naming the first string field with
// invalid UTF-8 ("request" when the wire format itself is broken).
absl::Status ParseRequest(grpc::ByteBuffer* raw,
                          google::protobuf::Message* request);

// Serialises a response for a raw method.
grpc::ByteBuffer SerializeResponse(const google::protobuf::Message& response);

template <typename Req, typename Resp>
class UnaryMethod final : public Method {
 public:
  UnaryMethod(RawService* service, int index, std::string name,
              UnaryHandler<Req, Resp> handler, CallEnv* env, Access access)
      : service_(service),
        index_(index),
        name_(std::move(name)),
        handler_(std::move(handler)),
        env_(env),
        access_(access) {}

  void Arm(grpc::ServerCompletionQueue* cq) override { new Call(this, cq); }

 private:
  class Call final : public Tag {
   public:
    Call(UnaryMethod* method, grpc::ServerCompletionQueue* cq)
        : method_(method), cq_(cq), responder_(&ctx_) {
      method_->service_->RequestUnary(method_->index_, &ctx_, &raw_,
                                      &responder_, cq_, this);
    }
    ~Call() override {
      if (finishing_) method_->env_->CallEnded();
    }

    void Proceed(bool ok) override {
      if (finishing_ || !ok) {
        delete this;
        return;
      }
      finishing_ = true;  // the call arrived
      method_->env_->CallBegan();
      arrived_at_ = absl::Now();
      absl::StatusOr<Principal> principal =
          method_->env_->Arrive(method_, cq_, ctx_, method_->access_);
      if (!principal.ok()) {
        Finish(principal.status());
        return;
      }
      if (absl::Status parsed = ParseRequest(&raw_, &request_); !parsed.ok()) {
        Finish(parsed);
        return;
      }
      RpcContext rpc{*std::move(principal), &ctx_, method_->env_->metrics};
      // After this call `this` may already be gone: Finish may have run.
      method_->handler_(rpc, request_, [this](absl::StatusOr<Resp> r) {
        Finish(std::move(r));
      });
    }

   private:
    void Finish(absl::StatusOr<Resp> result) {
      method_->env_->metrics->RpcHandled(method_->name_, result.status().code(),
                                         absl::Now() - arrived_at_);
      if (result.ok()) {
        responder_.Finish(SerializeResponse(*result), grpc::Status::OK, this);
      } else {
        responder_.FinishWithError(ToGrpcStatus(result.status(), &ctx_), this);
      }
    }

    UnaryMethod* const method_;
    grpc::ServerCompletionQueue* const cq_;
    grpc::ServerContext ctx_;
    grpc::ByteBuffer raw_;
    Req request_;
    grpc::ServerAsyncResponseWriter<grpc::ByteBuffer> responder_;
    bool finishing_ = false;
    absl::Time arrived_at_;
  };

  RawService* const service_;
  const int index_;
  const std::string name_;
  const UnaryHandler<Req, Resp> handler_;
  CallEnv* const env_;
  const Access access_;
};

// The consumer of one client-streaming call. The call hands it messages one
// at a time and reads the next only after `next(OkStatus())`, so a slow
// consumer slows the client down (flow control) instead of buffering.
//
// Exactly one of these ends the call: `next(error)` (the call fails with it),
// OnEnd's reply (the client half-closed and is still there), or OnAbort (the
// client cancelled or the call broke; nothing will be sent). After
// `next(error)` the call also calls OnAbort, from inside `next`. The call's
// callbacks run on CQ threads, one at a time per call; the consumer's own
// threads may call `next` and the reply.
template <typename Req, typename Resp>
class StreamConsumer {
 public:
  using Next = std::function<void(absl::Status)>;
  virtual ~StreamConsumer() = default;
  // One message; call `next` exactly once when ready for the next.
  virtual void OnMessage(const Req& message, Next next) = 0;
  // The client finished sending; reply exactly once.
  virtual void OnEnd(Reply<Resp> reply) = 0;
  // The call ended without a reply: undo what OnMessage did.
  virtual void OnAbort() = 0;
};

template <typename Req, typename Resp>
using StreamFactory = std::function<std::shared_ptr<StreamConsumer<Req, Resp>>(
    const RpcContext&)>;

// A client-streaming method. A half-close (Read fails) is told apart from a
// cancellation by then sending the initial metadata: that succeeds only
// while the client still waits for the answer, so a stream the client
// abandoned is never committed.
template <typename Req, typename Resp>
class ClientStreamMethod final : public Method {
 public:
  ClientStreamMethod(RawService* service, int index, std::string name,
                     StreamFactory<Req, Resp> factory, CallEnv* env)
      : service_(service),
        index_(index),
        name_(std::move(name)),
        factory_(std::move(factory)),
        env_(env) {}

  void Arm(grpc::ServerCompletionQueue* cq) override { new Call(this, cq); }

 private:
  class Call final : public Tag {
   public:
    Call(ClientStreamMethod* method, grpc::ServerCompletionQueue* cq)
        : method_(method), cq_(cq), reader_(&ctx_) {
      method_->service_->RequestClientStream(method_->index_, &ctx_, &reader_,
                                             cq_, this);
    }
    ~Call() override {
      if (arrived_) method_->env_->CallEnded();
    }

    void Proceed(bool ok) override {
      switch (state_) {
        case State::kRequested: {
          if (!ok) {
            delete this;
            return;
          }
          arrived_ = true;
          arrived_at_ = absl::Now();
          method_->env_->CallBegan();
          absl::StatusOr<Principal> principal =
              method_->env_->Arrive(method_, cq_, ctx_);
          if (!principal.ok()) {
            FinishError(principal.status());
            return;
          }
          rpc_ =
              RpcContext{*std::move(principal), &ctx_, method_->env_->metrics};
          consumer_ = method_->factory_(rpc_);
          Read();
          return;
        }
        case State::kReading: {
          if (!ok) {
            // Half-close or cancellation: find out which.
            state_ = State::kCheckingAlive;
            reader_.SendInitialMetadata(this);
            return;
          }
          Req message;
          if (absl::Status parsed = ParseRequest(&raw_, &message);
              !parsed.ok()) {
            FailAndAbort(parsed);
            return;
          }
          state_ = State::kConsuming;
          consumer_->OnMessage(message, [this](absl::Status status) {
            if (status.ok()) {
              Read();
            } else {
              FailAndAbort(status);
            }
          });
          return;
        }
        case State::kCheckingAlive:
          if (!ok) {
            consumer_->OnAbort();
            FinishError(absl::CancelledError("the client cancelled the call"));
            return;
          }
          state_ = State::kEnding;
          consumer_->OnEnd([this](absl::StatusOr<Resp> result) {
            state_ = State::kFinishing;
            Record(result.status().code());
            if (result.ok()) {
              reader_.Finish(SerializeResponse(*result), grpc::Status::OK,
                             this);
            } else {
              reader_.FinishWithError(ToGrpcStatus(result.status(), &ctx_),
                                      this);
            }
          });
          return;
        case State::kConsuming:
        case State::kEnding:
          return;  // not waiting on the queue
        case State::kFinishing:
          delete this;
          return;
      }
    }

   private:
    enum class State {
      kRequested,
      kReading,
      kConsuming,
      kCheckingAlive,
      kEnding,
      kFinishing,
    };

    void Read() {
      state_ = State::kReading;
      reader_.Read(&raw_, this);
    }
    void Record(absl::StatusCode code) {
      method_->env_->metrics->RpcHandled(method_->name_, code,
                                         absl::Now() - arrived_at_);
    }
    void FinishError(const absl::Status& status) {
      state_ = State::kFinishing;
      Record(status.code());
      reader_.FinishWithError(ToGrpcStatus(status, &ctx_), this);
    }
    void FailAndAbort(const absl::Status& status) {
      std::shared_ptr<StreamConsumer<Req, Resp>> consumer = consumer_;
      FinishError(status);  // `this` may be gone after this line
      consumer->OnAbort();
    }

    ClientStreamMethod* const method_;
    grpc::ServerCompletionQueue* const cq_;
    grpc::ServerContext ctx_;
    grpc::ServerAsyncReader<grpc::ByteBuffer, grpc::ByteBuffer> reader_;
    grpc::ByteBuffer raw_;
    RpcContext rpc_;
    std::shared_ptr<StreamConsumer<Req, Resp>> consumer_;
    State state_ = State::kRequested;
    bool arrived_ = false;
    absl::Time arrived_at_;
  };

  RawService* const service_;
  const int index_;
  const std::string name_;
  const StreamFactory<Req, Resp> factory_;
  CallEnv* const env_;
};

// Collects the methods of every service; the server arms them on each queue.
// Registration errors (an unknown method name, a handler of the wrong types,
// a method registered twice) are programming errors and abort at start-up.
class Registrar {
 public:
  explicit Registrar(CallEnv* env) : env_(env) {}

  template <typename Req, typename Resp>
  void Unary(RawService* service, const std::string& name,
             UnaryHandler<Req, Resp> handler, Access access = Access::kApiKey) {
    const google::protobuf::MethodDescriptor* m =
        Find(service, name, Req::descriptor(), Resp::descriptor());
    methods_.push_back(std::make_unique<UnaryMethod<Req, Resp>>(
        service, m->index(), m->name(), std::move(handler), env_, access));
  }

  template <typename Req, typename Resp>
  void ClientStream(RawService* service, const std::string& name,
                    StreamFactory<Req, Resp> factory) {
    const google::protobuf::MethodDescriptor* m =
        Find(service, name, Req::descriptor(), Resp::descriptor(),
             /*client_streaming=*/true);
    methods_.push_back(std::make_unique<ClientStreamMethod<Req, Resp>>(
        service, m->index(), m->name(), std::move(factory), env_));
  }

  // A method with a hand-written call state machine (a server stream):
  // `make` builds it from the method's index.
  void Custom(RawService* service, const std::string& name,
              const std::function<std::unique_ptr<Method>(int index)>& make) {
    const google::protobuf::MethodDescriptor* m =
        Find(service, name, nullptr, nullptr);
    methods_.push_back(make(m->index()));
  }

  // Aborts unless every method of every service seen was registered (an
  // unregistered raw method would leave its calls waiting forever).
  void CheckComplete() const;

  CallEnv* env() const { return env_; }

  const std::vector<std::unique_ptr<Method>>& methods() const {
    return methods_;
  }

 private:
  // The method `name` of `service`, checked: it exists, is not registered
  // yet, and (when given) takes `in` and returns `out` unary.
  const google::protobuf::MethodDescriptor* Find(
      RawService* service, const std::string& name,
      const google::protobuf::Descriptor* in,
      const google::protobuf::Descriptor* out, bool client_streaming = false);

  CallEnv* const env_;
  std::vector<std::unique_ptr<Method>> methods_;
  std::vector<std::pair<RawService*, std::string>> registered_;
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

}  // namespace campaigns::api

#endif  // CAMPAIGND_SERVER_API_CALL_H_
