// AlarmTimer: the production Timer, grpc::Alarms on the completion queues.
#include "server/dispatch/alarm_timer.h"

namespace campaigns::dispatch {

class AlarmTimer::Pending final : public CqTag {
 public:
  Pending(AlarmTimer* owner, std::function<void()> fn)
      : owner_(owner), fn_(std::move(fn)) {}
  void Proceed(bool ok) override {
    const bool live = owner_->Fired(this);
    if (ok && live) fn_();
    delete this;
  }
  grpc::Alarm alarm;

 private:
  AlarmTimer* const owner_;
  std::function<void()> fn_;
};

void AlarmTimer::SetQueues(std::vector<grpc::CompletionQueue*> queues) {
  MutexLock lock(&mu_);
  queues_ = std::move(queues);
  if (stopped_ || queues_.empty()) return;
  for (auto& [when, fn] : early_) SetLocked(when, std::move(fn));
  early_.clear();
}

void AlarmTimer::At(absl::Time when, std::function<void()> fn) {
  MutexLock lock(&mu_);
  if (stopped_) return;
  if (queues_.empty()) {
    early_.emplace_back(when, std::move(fn));
    return;
  }
  SetLocked(when, std::move(fn));
}

void AlarmTimer::SetLocked(absl::Time when, std::function<void()> fn) {
  auto* p = new Pending(this, std::move(fn));
  pending_.insert(p);
  grpc::CompletionQueue* cq = queues_[next_queue_++ % queues_.size()];
  // Under the lock: Stop cannot cancel an alarm that is not set yet.
  p->alarm.Set(cq, absl::ToChronoTime(when), p);
}

bool AlarmTimer::Fired(Pending* p) {
  MutexLock lock(&mu_);
  pending_.erase(p);
  return !stopped_;
}

void AlarmTimer::Stop() {
  MutexLock lock(&mu_);
  if (stopped_) return;
  stopped_ = true;
  early_.clear();
  // Each cancelled alarm still delivers its tag (ok=false), which deletes
  // it; Fired waits for this lock, so none is deleted while we cancel.
  for (Pending* p : pending_) p->alarm.Cancel();
}

OwnQueueTimer::OwnQueueTimer() {
  timer_.SetQueues({&cq_});
  thread_ = std::thread([this] {
    void* tag = nullptr;
    bool ok = false;
    while (cq_.Next(&tag, &ok)) static_cast<CqTag*>(tag)->Proceed(ok);
  });
}

void OwnQueueTimer::Stop() {
  std::call_once(stop_, [this] {
    timer_.Stop();  // before the queue's shutdown, which would wait for it
    cq_.Shutdown();
    thread_.join();
  });
}

}  // namespace campaigns::dispatch
