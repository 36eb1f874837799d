// WatchMethod: the WatchCampaign server stream of a campaign's progress.
#include "server/api/watch.h"

#include <grpcpp/alarm.h>

#include <cmath>
#include <memory>

#include "server/api/convert.h"
#include "server/api/handler_util.h"
#include "server/domain/errors.h"
#include "server/domain/rules.h"

namespace campaigns::api {
namespace {

constexpr double kDefaultRateHz = 10;

// The last message a stream sends: a final state whose counters will not
// move any more. A campaign cancelled on an instance that does not send it
// is cancelled at once, but still counts queued recipients until its
// sender has recorded its messages out and skipped them: its stream goes
// on to that end.
bool Settled(const dispatch::Progress& p) {
  return IsFinal(p.status) &&
         !(p.status == CampaignStatus::kCancelled && p.stats.queued > 0);
}

}  // namespace

class WatchMethod::Call {
 public:
  Call(WatchMethod* method, grpc::ServerCompletionQueue* cq)
      : method_(method), cq_(cq), writer_(&ctx_) {
    ctx_.AsyncNotifyWhenDone(&done_tag_);
    method_->service_->RequestServerStream(method_->index_, &ctx_, &raw_,
                                           &writer_, cq_, &request_tag_);
  }

 private:
  // The hub's handle on a call: cleared when the call is done, so a wake that
  // races with the call's end finds nothing.
  struct Waker {
    Mutex mu;
    std::function<void()> wake ABSL_GUARDED_BY(mu);  // empty once done
  };

  // One tag per kind of operation; each routes to its handler.
  using OpTag = MemberTag<Call>;

  void OnRequest(bool ok) {
    if (!ok) {  // the server is shutting down; the call never started
      delete this;
      return;
    }
    method_->env_->CallBegan();
    method_->env_->metrics->WatchStreams(1);
    arrived_at_ = absl::Now();
    uint64_t revocations;
    {
      MutexLock lock(&method_->mu_);
      method_->live_.insert(this);
      revocations = method_->revocations_;
    }
    absl::StatusOr<Principal> principal =
        method_->env_->Arrive(method_, cq_, ctx_);
    if (principal.ok()) {
      {
        MutexLock lock(&mu_);
        key_id_ = principal->key_id;
      }
      // A key revoked between the authentication and the line above was
      // not seen by KeyRevoked: authenticate again.
      bool again;
      {
        MutexLock lock(&method_->mu_);
        again = method_->revocations_ != revocations;
      }
      if (again) principal = method_->env_->authenticate(ctx_);
    }
    absl::Status status = principal.status();
    v1::WatchCampaignRequest req;
    if (status.ok()) status = ParseRequest(&raw_, &req);
    if (status.ok()) status = RequireId(req.id());
    if (status.ok()) {
      const double hz = req.max_rate_hz();
      // `!(a <= hz && hz <= b)` also refuses NaN.
      if (hz != 0 && !(kMinRateHz <= hz && hz <= kMaxRateHz)) {
        status = errors::InvalidField(
            "max_rate_hz",
            absl::StrCat("must be between ", kMinRateHz, " and ", kMaxRateHz,
                         " (or 0 for the default, ", kDefaultRateHz, ")"));
      } else {
        min_interval_ = absl::Seconds(1.0 / (hz == 0 ? kDefaultRateHz : hz));
      }
    }
    absl::StatusOr<Campaign> c = absl::InternalError("unset");
    if (status.ok()) {
      c = method_->store_->GetCampaign(principal->account_id, req.id());
      status = c.status();
      // Waiting for storage to write: shown paused from the first message.
      if (c.ok()) method_->engine_->ShowUnstoredPause(&*c);
    }
    MutexLock lock(&mu_);
    if (!status.ok()) {
      FinishLocked(ToGrpcStatus(status, &ctx_));
      return;
    }
    campaign_id_ = c->id;
    waker_ = std::make_shared<Waker>();
    {
      MutexLock wl(&waker_->mu);  // not shared yet: for the analysis
      waker_->wake = [this] { Wake(); };
    }
    subscription_ = method_->hub_->Subscribe(campaign_id_, [w = waker_] {
      MutexLock wl(&w->mu);
      if (w->wake) w->wake();
    });
    method_->hub_->PublishIfNew(*c, absl::Now());
    SendLocked();
  }

  // Sends the newest snapshot if there is one the client has not seen and
  // nothing is outstanding; else waits (rate limit) or stays idle.
  // A final state goes out at once, whatever the rate; a revoked key ends
  // the stream UNAUTHENTICATED instead.
  void SendLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finishing_ || done_ || write_pending_ || alarm_pending_) return;
    if (revoked_) {
      FinishLocked(ToGrpcStatus(
          errors::Unauthenticated("the API key was revoked"), &ctx_));
      return;
    }
    // Nothing follows a final state, even a re-publication of it.
    if (sent_final_) {
      FinishLocked(grpc::Status::OK);
      return;
    }
    std::optional<dispatch::Progress> p = method_->hub_->Latest(campaign_id_);
    if (!p || p->version == sent_version_) return;
    const absl::Time now = absl::Now();
    if (!Settled(*p) && now < last_write_ + min_interval_) {
      SetAlarmLocked(last_write_ + min_interval_);
      return;
    }
    v1::CampaignProgress out;
    out.set_campaign_id(p->campaign_id);
    out.set_status(static_cast<v1::Campaign::Status>(p->status));
    ToProto(p->stats, out.mutable_stats());
    out.set_rate_per_second(p->rate_per_second);
    if (p->eta) *out.mutable_eta() = ToProto(*p->eta);
    *out.mutable_updated_at() = ToProto(p->updated_at);
    out.set_pause_reason(p->pause_reason);
    out.set_failure_reason(p->failure_reason);
    pending_version_ = p->version;
    pending_final_ = Settled(*p);
    write_pending_ = true;
    last_write_ = now;
    writer_.Write(SerializeResponse(out), &write_tag_);
  }

  void SetAlarmLocked(absl::Time when) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    alarm_pending_ = true;
    alarm_ = std::make_unique<grpc::Alarm>();
    alarm_->Set(cq_, absl::ToChronoTime(when), &alarm_tag_);
  }

  void FinishLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    finish_code_ = static_cast<absl::StatusCode>(status.error_code());
    finishing_ = true;
    finish_pending_ = true;
    writer_.Finish(status, &finish_tag_);
  }

  // From the hub, any thread: an idle call hops onto its queue. A call
  // waiting out its rate limit cuts the wait short when the news is a final
  // state (the cancelled alarm comes back at once, see OnAlarm).
  void Wake() {
    MutexLock lock(&mu_);
    if (finishing_ || done_ || write_pending_) return;
    if (alarm_pending_) {
      std::optional<dispatch::Progress> p = method_->hub_->Latest(campaign_id_);
      if (p && Settled(*p)) alarm_->Cancel();
      return;
    }
    SetAlarmLocked(absl::Now());
  }

 public:
  // Any thread: ends the stream UNAUTHENTICATED if its key is `key_id`.
  void KeyRevoked(const std::string& key_id) {
    MutexLock lock(&mu_);
    if (key_id != key_id_ || revoked_) return;
    revoked_ = true;
    if (finishing_ || done_ || write_pending_) return;  // OnWritten ends it
    if (alarm_pending_) {
      alarm_->Cancel();
    } else if (!campaign_id_.empty()) {  // else OnRequest has yet to send
      SetAlarmLocked(absl::Now());
    }
  }

 private:
  void OnWritten(bool ok) {
    ReleasableMutexLock lock(&mu_);
    write_pending_ = false;
    if (ok) {
      sent_version_ = pending_version_;
      sent_final_ = pending_final_;
      SendLocked();
    }
    // A failed write: the client is gone; the done tag follows.
    if (!Finished()) return;
    lock.Unlock();
    Delete();
  }

  // `ok` is false for a cancelled alarm: by OnDone (SendLocked then does
  // nothing), or by Wake or KeyRevoked to send or end now.
  void OnAlarm(bool) {
    ReleasableMutexLock lock(&mu_);
    alarm_pending_ = false;
    SendLocked();
    if (!Finished()) return;
    lock.Unlock();
    Delete();
  }

  void OnFinished(bool) {
    ReleasableMutexLock lock(&mu_);
    finish_pending_ = false;
    if (!Finished()) return;
    lock.Unlock();
    Delete();
  }

  void OnDone(bool) {
    if (waker_) {
      MutexLock wl(&waker_->mu);
      waker_->wake = nullptr;
    }
    if (!campaign_id_.empty()) {
      method_->hub_->Unsubscribe(campaign_id_, subscription_);
    }
    ReleasableMutexLock lock(&mu_);
    done_ = true;
    if (alarm_pending_) alarm_->Cancel();
    if (!Finished()) return;
    lock.Unlock();
    Delete();
  }

  // Nothing more will come for this call: Delete() it (without the lock).
  bool Finished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return done_ && !write_pending_ && !alarm_pending_ && !finish_pending_;
  }
  void Delete() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::StatusCode code;
    {
      MutexLock l(&mu_);
      code = finish_code_;
    }
    {
      MutexLock l(&method_->mu_);
      method_->live_.erase(this);
    }
    CallEnv* env = method_->env_;
    // A stream the client left (or the server cancelled) never finished.
    env->metrics->RpcHandled("WatchCampaign", code, absl::Now() - arrived_at_);
    env->metrics->WatchStreams(-1);
    delete this;
    env->CallEnded();
  }

 public:
  void Cancel() { ctx_.TryCancel(); }

 private:
  WatchMethod* const method_;
  grpc::ServerCompletionQueue* const cq_;
  grpc::ServerContext ctx_;
  grpc::ByteBuffer raw_;
  grpc::ServerAsyncWriter<grpc::ByteBuffer> writer_;
  OpTag request_tag_{this, &Call::OnRequest};
  OpTag write_tag_{this, &Call::OnWritten};
  OpTag alarm_tag_{this, &Call::OnAlarm};
  OpTag finish_tag_{this, &Call::OnFinished};
  OpTag done_tag_{this, &Call::OnDone};

  Mutex mu_;
  // The answer's code for the metrics; a call the client left ends
  // cancelled.
  absl::StatusCode finish_code_ ABSL_GUARDED_BY(mu_) =
      absl::StatusCode::kCancelled;
  // Not guarded: written by OnRequest before the call subscribes to the
  // hub (so before Wake can run), then only read; OnDone reads them on the
  // call's CQ thread, which runs its tags one at a time.
  absl::Time arrived_at_;
  std::string campaign_id_;
  uint64_t subscription_ = 0;
  std::shared_ptr<Waker> waker_;
  absl::Duration min_interval_ = absl::Seconds(1.0 / kDefaultRateHz);
  std::unique_ptr<grpc::Alarm> alarm_ ABSL_GUARDED_BY(mu_);
  // The caller's key ("" until authenticated), and whether it was revoked.
  std::string key_id_ ABSL_GUARDED_BY(mu_);
  bool revoked_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_write_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t sent_version_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t pending_version_ ABSL_GUARDED_BY(mu_) = 0;
  bool sent_final_ ABSL_GUARDED_BY(mu_) = false;
  bool pending_final_ ABSL_GUARDED_BY(mu_) = false;
  bool write_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool alarm_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

void WatchMethod::Arm(grpc::ServerCompletionQueue* cq) { new Call(this, cq); }

void WatchMethod::CancelAll() {
  MutexLock lock(&mu_);
  for (Call* c : live_) c->Cancel();
}

void WatchMethod::KeyRevoked(const std::string& key_id) {
  MutexLock lock(&mu_);
  ++revocations_;
  for (Call* c : live_) c->KeyRevoked(key_id);
}

}  // namespace campaigns::api
