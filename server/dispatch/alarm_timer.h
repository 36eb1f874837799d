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
#ifndef CAMPAIGND_SERVER_DISPATCH_ALARM_TIMER_H_
#define CAMPAIGND_SERVER_DISPATCH_ALARM_TIMER_H_

#include <grpcpp/alarm.h>
#include <grpcpp/completion_queue.h>

#include <atomic>
#include <unordered_set>
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

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_ALARM_TIMER_H_
