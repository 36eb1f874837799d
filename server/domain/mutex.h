// Mutex, MutexLock, ReleasableMutexLock, CondVar: std::mutex and
// std::condition_variable with the annotations clang's thread safety
// analysis (-Wthread-safety, scripts/thread_safety.sh) checks, so that every
// ABSL_GUARDED_BY and ABSL_EXCLUSIVE_LOCKS_REQUIRED is verified by the
// compiler. Modelled on LevelDB's port::Mutex and MutexLock.
//
// Not absl::Mutex on purpose: Debian's Abseil is a shared library not built
// for ThreadSanitizer, so TSan would not see those locks; std::mutex it does.
//
//   class Counter {
//    public:
//     void Add() ABSL_LOCKS_EXCLUDED(mu_) {
//       MutexLock lock(&mu_);
//       ++n_;
//     }
//    private:
//     Mutex mu_;
//     int n_ ABSL_GUARDED_BY(mu_) = 0;
//   };
//
// A function that drops the lock around a slow call and takes it back says
// so in its contract, is annotated ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) and
// calls mu_.Unlock() / mu_.Lock() itself (as LevelDB's DBImpl does): clang
// 14 cannot follow a scoped lock passed by reference, so lock objects never
// travel between functions. ReleasableMutexLock is for a function that drops
// and retakes its own lock.
//
// All of these are thread-safe in the sense of their std counterparts.
#ifndef CAMPAIGND_SERVER_DOMAIN_MUTEX_H_
#define CAMPAIGND_SERVER_DOMAIN_MUTEX_H_

#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"

namespace campaigns {

// A non-recursive exclusive lock (a std::mutex) the analysis knows as a
// capability.
class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  // Tells the analysis the caller holds the lock; checks nothing at run time.
  void AssertHeld() ABSL_ASSERT_EXCLUSIVE_LOCK() {}

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds `mu` for its scope.
//
//   MutexLock lock(&mu_);
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// Holds `mu` from construction; Unlock() and Lock() drop and retake it
// within the scope; released at the end of the scope if held.
//
//   ReleasableMutexLock lock(&mu_);
//   std::vector<Job> jobs = std::move(jobs_);
//   lock.Unlock();
//   for (Job& job : jobs) job();  // without the lock
class ABSL_SCOPED_LOCKABLE ReleasableMutexLock {
 public:
  explicit ReleasableMutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu)
      : mu_(mu) {
    mu_->Lock();
  }
  ~ReleasableMutexLock() ABSL_UNLOCK_FUNCTION() {
    if (held_) mu_->Unlock();
  }
  ReleasableMutexLock(const ReleasableMutexLock&) = delete;
  ReleasableMutexLock& operator=(const ReleasableMutexLock&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    mu_->Lock();
    held_ = true;
  }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    held_ = false;
    mu_->Unlock();
  }

 private:
  Mutex* const mu_;
  bool held_ = true;
};

// A condition variable used with a Mutex the caller holds.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // Releases `mu`, waits for a signal (or a spurious wake-up), retakes it.
  void Wait(Mutex* mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // As Wait, for at most `timeout` (an infinite one waits as Wait does);
  // true if it timed out.
  bool WaitWithTimeout(Mutex* mu, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    // now + an infinite (or huge) timeout overflows steady_clock.
    if (timeout > absl::Hours(24 * 365)) {
      Wait(mu);
      return false;
    }
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const bool timed_out =
        cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout)) ==
        std::cv_status::timeout;
    lock.release();
    return timed_out;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_DOMAIN_MUTEX_H_
