// AlarmTimer: the production Timer, one grpc::Alarm per pending callback on
// the server's completion queues (round robin), so callbacks run on the
// queues' polling threads.
//
//   AlarmTimer timer({cq1, cq2});
//   timer.At(when, fn);
//   ...
//   timer.Stop();   // before the queues shut down: cancels what is pending
//
// Thread-safe. Stop must come before the queues are shut down
// (cq->Shutdown() does not cancel alarms, and would wait for them).
//
// OwnQueueTimer: an AlarmTimer on a completion queue and a thread of its
// own, for work that blocks (the lease heartbeat's round trip to the
// database) and must neither hold the server's queues nor wait behind
// them.
#ifndef CAMPAIGND_SERVER_DISPATCH_ALARM_TIMER_H_
#define CAMPAIGND_SERVER_DISPATCH_ALARM_TIMER_H_

#include <grpcpp/alarm.h>
#include <grpcpp/completion_queue.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "server/dispatch/cq_tag.h"
#include "server/dispatch/timer.h"
#include "server/domain/mutex.h"

namespace campaigns::dispatch {

class AlarmTimer final : public Timer {
 public:
  // Callbacks set before SetQueues wait until it is called.
  AlarmTimer() = default;
  ~AlarmTimer() override { Stop(); }

  // The queues the alarms go on; they must outlive Stop(). Call once.
  void SetQueues(std::vector<grpc::CompletionQueue*> queues);

  absl::Time Now() override { return absl::Now(); }
  absl::Duration Steady() override {
    return absl::FromChrono(
        std::chrono::steady_clock::now().time_since_epoch());
  }
  void At(absl::Time when, std::function<void()> fn) override;

  // Cancels every pending alarm (their callbacks do not run) and refuses new
  // ones. Idempotent.
  void Stop();

 private:
  class Pending;
  // Forgets `p`; false once stopped (its callback must not run).
  bool Fired(Pending* p);

  void SetLocked(absl::Time when, std::function<void()> fn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Mutex mu_;
  std::vector<grpc::CompletionQueue*> queues_ ABSL_GUARDED_BY(mu_);
  size_t next_queue_ ABSL_GUARDED_BY(mu_) = 0;
  // Callbacks set before the queues were known.
  std::vector<std::pair<absl::Time, std::function<void()>>> early_
      ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::unordered_set<Pending*> pending_ ABSL_GUARDED_BY(mu_);
};

// Thread-safe; callbacks run one at a time, on its thread.
class OwnQueueTimer final : public Timer {
 public:
  OwnQueueTimer();
  ~OwnQueueTimer() override { Stop(); }
  OwnQueueTimer(const OwnQueueTimer&) = delete;
  OwnQueueTimer& operator=(const OwnQueueTimer&) = delete;

  absl::Time Now() override { return timer_.Now(); }
  absl::Duration Steady() override { return timer_.Steady(); }
  void At(absl::Time when, std::function<void()> fn) override {
    timer_.At(when, std::move(fn));
  }

  // Cancels what is pending and ends the thread, once a callback running
  // now returns. Idempotent; not from a callback.
  void Stop();

 private:
  grpc::CompletionQueue cq_;
  AlarmTimer timer_;  // on cq_
  std::once_flag stop_;
  std::thread thread_;  // polls cq_
};

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_ALARM_TIMER_H_
