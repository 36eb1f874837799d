// FakeTimer: a Timer whose clock moves only when the test says so.
// Callbacks run on the test's thread, in time order, from RunDue. Its wall
// clock (Now) may also be stepped (StepWallClock) while its steady clock is
// not; a callback then comes after the delay it was set for, as
// AlarmTimer's do.
//
//   FakeTimer timer;
//   engine.Start(...);
//   timer.RunDue();              // whatever is due now
//   timer.AdvanceToNext();       // jump to the next pending callback
//
// Thread-safe (At may be called from the storage writer thread).
#ifndef CAMPAIGND_TESTS_DISPATCH_FAKE_TIMER_H_
#define CAMPAIGND_TESTS_DISPATCH_FAKE_TIMER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <utility>

#include "server/dispatch/timer.h"

namespace campaigns::dispatch::testing {

class FakeTimer final : public Timer {
 public:
  explicit FakeTimer(absl::Time start = absl::FromUnixSeconds(1800000000))
      : now_(start) {}

  absl::Time Now() override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_ + wall_step_;
  }
  absl::Duration Steady() override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_ - absl::UnixEpoch();
  }

  void At(absl::Time when, std::function<void()> fn) override {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.emplace(std::make_pair(when - wall_step_, next_++), std::move(fn));
  }

  // Steps the wall clock by `d` (either way); the steady clock and what is
  // pending do not move.
  void StepWallClock(absl::Duration d) {
    std::lock_guard<std::mutex> lock(mu_);
    wall_step_ += d;
  }

  // Runs every callback due now (including ones they add that are due);
  // returns how many ran.
  int RunDue() {
    int ran = 0;
    for (;;) {
      std::function<void()> fn;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (pending_.empty() || pending_.begin()->first.first > now_) {
          return ran;
        }
        fn = std::move(pending_.begin()->second);
        pending_.erase(pending_.begin());
      }
      fn();
      ++ran;
    }
  }

  // Moves the clock to the earliest pending callback (never backwards);
  // false when nothing is pending.
  bool AdvanceToNext() {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_.empty()) return false;
    now_ = std::max(now_, pending_.begin()->first.first);
    return true;
  }

  void Advance(absl::Duration d) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += d;
  }

  bool HasDue() {
    std::lock_guard<std::mutex> lock(mu_);
    return !pending_.empty() && pending_.begin()->first.first <= now_;
  }

 private:
  std::mutex mu_;
  absl::Time now_;  // the steady clock (+ the epoch); pending_ is on it
  absl::Duration wall_step_;  // Now() - now_
  uint64_t next_ = 0;         // keeps callbacks set for the same time in order
  std::map<std::pair<absl::Time, uint64_t>, std::function<void()>> pending_;
};

}  // namespace campaigns::dispatch::testing

#endif  // CAMPAIGND_TESTS_DISPATCH_FAKE_TIMER_H_
