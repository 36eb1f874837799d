// A fixed pool of threads for CPU-bound work that must not run on a
// completion-queue thread (e.g. parsing and validating the rows of an
// import), and SerialQueue: tasks that share state run on it one at a time.
//
//   WorkerPool pool(2);
//   pool.Submit([] { ... });
//   SerialQueue queue(&pool);        // e.g. one per import stream
//   queue.Submit([] { ... });        // runs after the previous one ended
//
// Tasks run in submission order as threads free up. The destructor runs the
// tasks already queued, then joins. Thread-safe.
//
// The threads may run at a lower CPU priority (`nice`, added to the
// process's nice value): bulk work then takes what the completion-queue
// threads leave, and runs at full speed on an otherwise idle machine.
#ifndef CAMPAIGND_SERVER_API_WORKER_POOL_H_
#define CAMPAIGND_SERVER_API_WORKER_POOL_H_

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "server/domain/mutex.h"

namespace campaigns::api {

class WorkerPool {
 public:
  explicit WorkerPool(int threads, int nice = 0) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this, i, nice] {
        // Named so that top -H and perf show which thread is busy.
        pthread_setname_np(pthread_self(),
                           ("worker-" + std::to_string(i)).c_str());
        // Linux: PRIO_PROCESS with a thread id sets that thread's nice.
        // Failure (a sandbox refusing it) only leaves the priority as is.
        if (nice > 0) {
          errno = 0;
          const int current = getpriority(PRIO_PROCESS, 0);
          if (errno == 0) {
            static_cast<void>(
                setpriority(PRIO_PROCESS, gettid(), current + nice));
          }
        }
        Run();
      });
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

// Runs its tasks on a WorkerPool one at a time, in submission order, each
// after the previous one returned: work on state of its own (a stream's
// parser) needs no lock, and other work on the pool interleaves between the
// tasks. The tasks must not block on each other. Thread-safe; its tasks may
// outlive it (their bookkeeping is shared with them), the pool must not.
class SerialQueue {
 public:
  explicit SerialQueue(WorkerPool* pool) : state_(std::make_shared<State>()) {
    state_->pool = pool;
  }

  SerialQueue(const SerialQueue&) = delete;
  SerialQueue& operator=(const SerialQueue&) = delete;

  void Submit(std::function<void()> task) {
    bool start = false;
    {
      MutexLock lock(&state_->mu);
      state_->tasks.push_back(std::move(task));
      start = !state_->running;
      state_->running = true;
    }
    if (start) RunNext(state_);
  }

 private:
  struct State {
    WorkerPool* pool = nullptr;
    Mutex mu;
    std::deque<std::function<void()>> tasks ABSL_GUARDED_BY(mu);
    bool running ABSL_GUARDED_BY(mu) = false;  // a task is on the pool
  };

  // Puts the first task on the pool; it puts the next one there when done.
  static void RunNext(std::shared_ptr<State> state) {
    WorkerPool* pool = state->pool;
    pool->Submit([state = std::move(state)] {
      std::function<void()> task;
      {
        MutexLock lock(&state->mu);
        task = std::move(state->tasks.front());
        state->tasks.pop_front();
      }
      task();
      task = nullptr;  // what it holds goes before the next task starts
      bool more = false;
      {
        MutexLock lock(&state->mu);
        more = !state->tasks.empty();
        if (!more) state->running = false;
      }
      if (more) RunNext(state);
    });
  }

  const std::shared_ptr<State> state_;
};

}  // namespace campaigns::api

#endif  // CAMPAIGND_SERVER_API_WORKER_POOL_H_
