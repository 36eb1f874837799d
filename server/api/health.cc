// Health: grpc.health.v1.Health on the server's completion queues.
#include "server/api/health.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"

namespace campaigns::api {

namespace hv1 = grpc::health::v1;

class Health::WatchMethod final : public Method {
 public:
  WatchMethod(Health* health, int index) : health_(health), index_(index) {}
  void Arm(grpc::ServerCompletionQueue* cq) override;

 private:
  friend class WatchCall;
  Health* const health_;
  const int index_;
};

// One Watch stream. Its tags run on its CQ thread, one at a time; Changed
// may come from any thread (with Health::mu_ held).
class Health::WatchCall {
 public:
  WatchCall(WatchMethod* method, grpc::ServerCompletionQueue* cq)
      : method_(method), health_(method->health_), cq_(cq), writer_(&ctx_) {
    ctx_.AsyncNotifyWhenDone(&done_tag_);
    health_->service_.RequestServerStream(method_->index_, &ctx_, &raw_,
                                          &writer_, cq_, &request_tag_);
  }

  // The status may have changed: send it unless a write is outstanding
  // (OnWritten sends the newest then).
  void Changed() {
    MutexLock lock(&mu_);
    SendLocked();
  }

  // The watcher has been sent the current status (or is gone, or never
  // started watching).
  bool Delivered() {
    MutexLock lock(&mu_);
    return done_ || !watching_ ||
           (!write_pending_ && sent_any_ && sent_ == health_->StatusOf(name_));
  }

 private:
  using OpTag = MemberTag<WatchCall>;

  void OnRequest(bool ok) {
    if (!ok) {  // the server is shutting down; the call never started
      delete this;
      return;
    }
    // Counted while it arrives (not while it streams): a shutdown waits for
    // this to finish before it shuts the queues down.
    CallEnv* const env = health_->env_;
    env->CallBegan();
    Arrived();
    env->CallEnded();
  }

  void Arrived() {
    // Re-arms the method; a public method has no caller to authenticate.
    static_cast<void>(
        health_->env_->Arrive(method_, cq_, ctx_, Access::kPublic));
    hv1::HealthCheckRequest req;
    const absl::Status parsed = ParseRequest(&raw_, &req);
    if (!parsed.ok()) {
      MutexLock lock(&mu_);
      finish_pending_ = true;
      writer_.Finish(ToGrpcStatus(parsed, &ctx_), &finish_tag_);
      return;
    }
    {
      MutexLock lock(&mu_);
      name_ = req.service();
    }
    // Registered before the first send: a change from here on is seen.
    MutexLock hl(&health_->mu_);
    health_->watchers_.insert(this);
    MutexLock lock(&mu_);
    watching_ = true;
    SendLocked();
  }

  void SendLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!watching_ || done_ || write_pending_) return;
    const Status now = health_->StatusOf(name_);
    if (sent_any_ && now == sent_) return;
    hv1::HealthCheckResponse out;
    out.set_status(now);
    sent_ = now;
    sent_any_ = true;
    write_pending_ = true;
    writer_.Write(SerializeResponse(out), &write_tag_);
  }

  void OnWritten(bool ok) {
    bool finished;
    {
      MutexLock lock(&mu_);
      write_pending_ = false;
      if (ok) SendLocked();  // else the client is gone; the done tag follows
      finished = FinishedLocked();
    }
    health_->Delivering();
    if (finished) Delete();
  }

  void OnFinished(bool) {
    bool finished;
    {
      MutexLock lock(&mu_);
      finish_pending_ = false;
      finished = FinishedLocked();
    }
    if (finished) Delete();
  }

  void OnDone(bool) {
    bool finished;
    {
      MutexLock lock(&mu_);
      done_ = true;
      finished = FinishedLocked();
    }
    health_->Delivering();
    if (finished) Delete();
  }

  bool FinishedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return done_ && !write_pending_ && !finish_pending_;
  }

  // Nothing more will come for this call. Changed calls that start after
  // `done_` was set do nothing; none can start once it is unregistered.
  void Delete() {
    {
      MutexLock hl(&health_->mu_);
      health_->watchers_.erase(this);
    }
    delete this;
  }

  WatchMethod* const method_;
  Health* const health_;
  grpc::ServerCompletionQueue* const cq_;
  grpc::ServerContext ctx_;
  grpc::ByteBuffer raw_;
  grpc::ServerAsyncWriter<grpc::ByteBuffer> writer_;
  OpTag request_tag_{this, &WatchCall::OnRequest};
  OpTag write_tag_{this, &WatchCall::OnWritten};
  OpTag finish_tag_{this, &WatchCall::OnFinished};
  OpTag done_tag_{this, &WatchCall::OnDone};

  Mutex mu_;
  std::string name_ ABSL_GUARDED_BY(mu_);
  bool watching_ ABSL_GUARDED_BY(mu_) = false;
  bool sent_any_ ABSL_GUARDED_BY(mu_) = false;
  Status sent_ ABSL_GUARDED_BY(mu_) = hv1::HealthCheckResponse::UNKNOWN;
  bool write_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

void Health::WatchMethod::Arm(grpc::ServerCompletionQueue* cq) {
  new WatchCall(this, cq);
}

Health::Health(std::vector<std::string> services)
    : services_(services.begin(), services.end()) {}

void Health::Register(Registrar& r) {
  env_ = r.env();
  r.Unary<hv1::HealthCheckRequest, hv1::HealthCheckResponse>(
      &service_, "Check",
      [this](const RpcContext&, const hv1::HealthCheckRequest& req,
             Reply<hv1::HealthCheckResponse> reply) {
        const Status s = StatusOf(req.service());
        if (s == hv1::HealthCheckResponse::SERVICE_UNKNOWN) {
          return reply(absl::NotFoundError(
              absl::StrCat("service \"", req.service(), "\" is unknown")));
        }
        hv1::HealthCheckResponse out;
        out.set_status(s);
        reply(std::move(out));
      },
      Access::kPublic);
  r.Custom(&service_, "Watch", [this](int index) {
    return std::make_unique<WatchMethod>(this, index);
  });
}

Health::Status Health::StatusOf(const std::string& service) const {
  if (!service.empty() && services_.count(service) == 0) {
    return hv1::HealthCheckResponse::SERVICE_UNKNOWN;
  }
  return serving_.load() && !shut_down_.load()
             ? hv1::HealthCheckResponse::SERVING
             : hv1::HealthCheckResponse::NOT_SERVING;
}

void Health::Set(bool serving) {
  if (shut_down_.load()) return;
  if (serving_.exchange(serving) != serving) Changed();
}

void Health::Shutdown() {
  if (!shut_down_.exchange(true)) Changed();
}

void Health::Changed() {
  MutexLock lock(&mu_);
  for (WatchCall* w : watchers_) w->Changed();
}

void Health::Delivering() {
  MutexLock lock(&mu_);
  delivered_.SignalAll();
}

bool Health::AwaitDelivered(absl::Time deadline) {
  MutexLock lock(&mu_);
  for (;;) {
    bool all = true;
    for (WatchCall* w : watchers_) all = all && w->Delivered();
    if (all) return true;
    const absl::Time now = absl::Now();
    if (now >= deadline) return false;
    delivered_.WaitWithTimeout(&mu_, deadline - now);
  }
}

}  // namespace campaigns::api
