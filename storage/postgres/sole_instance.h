// SoleInstance: one dispatching campaignd per PostgreSQL database, until the
// engine leases campaigns one by one (server/domain/leases.h). Two processes
// that both dispatched every sending campaign would send each message twice,
// so the second start is refused instead, as on SQLite
// (storage/sqlite/instance_lock.h).
//
// The lock is a session advisory lock held by a connection of its own. The
// server drops it when that session ends, however campaignd ends (kill -9
// included), so no stale lock outlives its process. A PostgreSQL restart
// ends the session too: a thread of its own checks the connection every
// `check_every`, reconnects and takes the lock again. While it does not hold
// the lock (the server unreachable, or another campaignd took it in the
// gap), `on_held(false)` tells the owner to stop dispatching, and
// `on_held(true)` once it holds it again.
//
// The session asks the server to notice a vanished client within about 30 s
// (TCP keepalives and user timeout), so a crashed host's lock does not
// linger for the kernel's two hours.
//
// Thread-safe. Stop (or the destructor) stops the thread and releases the
// lock.
#ifndef CAMPAIGND_STORAGE_POSTGRES_SOLE_INSTANCE_H_
#define CAMPAIGND_STORAGE_POSTGRES_SOLE_INSTANCE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/domain/mutex.h"
#include "storage/postgres/connection.h"

namespace campaigns::storage::postgres {

struct SoleInstanceOptions {
  std::string dsn;
  std::string password;  // as DatabaseOptions::password
  absl::Duration connect_timeout = absl::Seconds(5);
  absl::Duration check_every = absl::Seconds(1);
  // At start, how long a held lock is asked for again before the start is
  // refused: a campaignd restarted at once after a kill -9 may ask before
  // the server has ended its predecessor's session.
  absl::Duration acquire_for = absl::Seconds(3);
  // Called on the instance's thread when held() changes; must not block.
  std::function<void(bool held)> on_held;
};

class SoleInstance {
 public:
  // Takes the lock. FAILED_PRECONDITION when another session holds it
  // (naming the database, never the DSN); the connection's error when the
  // server cannot be reached.
  static absl::StatusOr<std::unique_ptr<SoleInstance>> Acquire(
      SoleInstanceOptions options);

  SoleInstance(const SoleInstance&) = delete;
  SoleInstance& operator=(const SoleInstance&) = delete;
  ~SoleInstance();

  // Stops the thread and ends the session (the server releases the lock);
  // no on_held call after it returns. Idempotent.
  void Stop();

  bool held() const { return held_.load(); }

 private:
  explicit SoleInstance(SoleInstanceOptions options)
      : options_(std::move(options)) {}
  // Connects, with the session settings above.
  static absl::StatusOr<std::unique_ptr<Connection>> Connect(
      const SoleInstanceOptions& o);
  // Takes the lock on `conn`: true when taken, false when another session
  // holds it.
  static absl::StatusOr<bool> TryLock(Connection& conn);
  void Run();
  void SetHeld(bool held);

  const SoleInstanceOptions options_;
  std::unique_ptr<Connection> conn_;  // the instance's thread only
  std::atomic<bool> held_{false};
  Mutex mu_;
  CondVar cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  Mutex stop_mu_;  // serialises Stop()
  std::thread thread_ ABSL_GUARDED_BY(stop_mu_);
};

}  // namespace campaigns::storage::postgres

#endif  // CAMPAIGND_STORAGE_POSTGRES_SOLE_INSTANCE_H_
