// A fixed pool of threads for CPU-bound work that must not run on a
// completion-queue thread (e.g. validating the rows of an import).
//
//   WorkerPool pool(2);
//   pool.Submit([] { ... });
//
// Tasks run in submission order as threads free up. The destructor runs the
// tasks already queued, then joins. Thread-safe.
#ifndef CAMPAIGND_SERVER_API_WORKER_POOL_H_
#define CAMPAIGND_SERVER_API_WORKER_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "server/domain/mutex.h"

namespace campaigns::api {

class WorkerPool {
 public:
  explicit WorkerPool(int threads) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this] { Run(); });
    }
  }

  ~WorkerPool() {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
    }
    cv_.SignalAll();
    for (std::thread& t : threads_) t.join();
  }

  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void Submit(std::function<void()> task) {
    {
      MutexLock lock(&mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.Signal();
  }

  int size() const { return static_cast<int>(threads_.size()); }

 private:
  void Run() {
    for (;;) {
      std::function<void()> task;
      {
        MutexLock lock(&mu_);
        while (!stopping_ && tasks_.empty()) cv_.Wait(&mu_);
        if (tasks_.empty()) return;  // stopping, and nothing left to run
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace campaigns::api

#endif  // CAMPAIGND_SERVER_API_WORKER_POOL_H_
