// Timer: how the dispatch engine sees time. Production runs callbacks from
// grpc::Alarm on the server's completion queues (AlarmTimer); tests use a
// fake clock they advance by hand. No engine thread ever sleeps.
//
//   timer->At(timer->Now() + absl::Milliseconds(100), [this] { Step(); });
//
// Implementations are thread-safe.
#ifndef CAMPAIGND_SERVER_DISPATCH_TIMER_H_
#define CAMPAIGND_SERVER_DISPATCH_TIMER_H_

#include <functional>

#include "absl/time/time.h"

namespace campaigns::dispatch {

class Timer {
 public:
  virtual ~Timer() = default;
  // The wall clock: for dates, and for At. It may be stepped (NTP, an
  // operator); what must not be lengthened by a step uses Steady.
  virtual absl::Time Now() = 0;
  // A steady clock, never stepped, from an arbitrary origin: for how long
  // something lasts (e.g. how long a lease may still be taken as held).
  virtual absl::Duration Steady() = 0;
  // Runs `fn` once, at or after `when`, on a timer thread (never inline).
  // There is no cancel: callers make stale callbacks harmless. After the
  // timer is stopped, nothing more runs and At does nothing.
  virtual void At(absl::Time when, std::function<void()> fn) = 0;
};

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_TIMER_H_
