// ThreadTimer: a Timer on real time with a thread of its own, for tests
// that run the engine or a lease keeper against real peers. (The production
// AlarmTimer needs gRPC's completion queues, which TSan, running these
// suites, cannot see into.) Callbacks run one at a time on its thread;
// destroying it drops those not yet due, after the running one returns.
// Its wall clock may be set apart from the system's (a host whose clock is
// ahead or behind); the steady clock is the system's.
//
// Thread-safe.
#ifndef CAMPAIGND_TESTS_DISPATCH_THREAD_TIMER_H_
#define CAMPAIGND_TESTS_DISPATCH_THREAD_TIMER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/dispatch/timer.h"

namespace campaigns::dispatch::testing {

class ThreadTimer final : public Timer {
 public:
  // `ahead`: how far Now() is ahead of the system's wall clock.
  explicit ThreadTimer(absl::Duration ahead = absl::ZeroDuration())
      : ahead_(ahead), thread_([this] { Loop(); }) {}
  ~ThreadTimer() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopped_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  absl::Time Now() override { return absl::Now() + ahead_; }
  absl::Duration Steady() override {
    return absl::FromChrono(
        std::chrono::steady_clock::now().time_since_epoch());
  }
  void At(absl::Time when, std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
      pending_.emplace(std::make_pair(when, next_++), std::move(fn));
    }
    cv_.notify_all();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopped_) {
      if (pending_.empty()) {
        cv_.wait(lock);
        continue;
      }
      const absl::Time due = pending_.begin()->first.first;
      const absl::Time now = Now();
      if (due > now) {
        cv_.wait_for(lock, absl::ToChronoNanoseconds(due - now));
        continue;
      }
      std::function<void()> fn = std::move(pending_.begin()->second);
      pending_.erase(pending_.begin());
      lock.unlock();
      fn();
      lock.lock();
    }
  }

  const absl::Duration ahead_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
  uint64_t next_ = 0;
  std::map<std::pair<absl::Time, uint64_t>, std::function<void()>> pending_;
  std::thread thread_;  // last: starts once the rest is built
};

}  // namespace campaigns::dispatch::testing

#endif  // CAMPAIGND_TESTS_DISPATCH_THREAD_TIMER_H_
