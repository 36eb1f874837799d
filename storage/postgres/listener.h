// Listener: what other instances changed, as PostgreSQL notifications.
// A writer calls Notify in its transaction; every Listener on a channel
// receives the payload once that transaction commits (never if it rolls
// back; one notification for identical ones of one transaction, in commit
// order). Instances use it to keep caches and live views (WatchCampaign)
// current with changes made elsewhere.
//
//   auto listener = Listener::Start(
//       {.dsn = dsn, .channels = {"campaignd_api_keys"}},
//       [](const Connection::Notification& n) { cache.Invalidate(n.payload); },
//       [] { cache.Clear(); });
//   ...
//   db->WriteRaw([&](Connection& c) {
//     ...
//     return Notify(c, "campaignd_api_keys", key_id);
//   }, nullptr);
//
// Notifications sent while a Listener is not connected are lost. After
// every (re)connection, once it listens again and before any notification
// that follows, it calls `resync`: whatever the caller derived from
// notifications must be read again. While it is not listening()
// (connecting, lost, or stopped), callers that need to see every change
// must not rely on it.
//
// Callbacks run on the Listener's own thread, one at a time; they must not
// block for long (notifications queue meanwhile in the server, up to 8 GB
// for all sessions) and must not call Stop. Thread-safe.
#ifndef CAMPAIGND_STORAGE_POSTGRES_LISTENER_H_
#define CAMPAIGND_STORAGE_POSTGRES_LISTENER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/domain/mutex.h"
#include "storage/postgres/connection.h"

namespace campaigns::storage::postgres {

// What the schema itself announces (migration 4's triggers), committed
// with the change, as "ACCOUNT_ID ID": a campaign row inserted, updated
// (status, counters, settings) or deleted; an API key created or revoked.
inline constexpr char kCampaignsChanged[] = "campaignd_campaigns";
inline constexpr char kApiKeysChanged[] = "campaignd_api_keys";

// The ID of such a payload; "" when it is not one.
std::string ChangedId(const std::string& payload);

// Sends `payload` (at most 7,999 bytes) on `channel` when the transaction
// `c` is in commits; at once outside a transaction.
absl::Status Notify(Connection& c, const std::string& channel,
                    const std::string& payload);

struct ListenerOptions {
  std::string dsn;
  // For a DSN without one (see Connection::Open); never logged.
  std::string password;
  // Channel names: lower-case letters, digits and '_' (not quoted).
  std::vector<std::string> channels;
  absl::Duration connect_timeout = absl::Seconds(5);
  // Between failed connection attempts: from min, doubling up to max.
  absl::Duration min_reconnect_backoff = absl::Milliseconds(100);
  absl::Duration max_reconnect_backoff = absl::Seconds(2);
};

class Listener {
 public:
  using OnNotify = std::function<void(const Connection::Notification&)>;
  using OnResync = std::function<void()>;

  // Connects and LISTENs on every channel (the error names the server and
  // the cause; INVALID_ARGUMENT for a bad channel name), calls `resync`
  // once, then delivers notifications on a thread of its own until Stop.
  static absl::StatusOr<std::unique_ptr<Listener>> Start(
      ListenerOptions options, OnNotify notify, OnResync resync);

  // Stops.
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Returns once no callback runs and none will. Idempotent; never call it
  // from a callback.
  void Stop();

  // True while connected and listening: every notification committed from
  // now on will be delivered.
  bool listening() const { return listening_.load(); }

 private:
  Listener(ListenerOptions options, OnNotify notify, OnResync resync);
  // Connects and LISTENs on every channel.
  absl::StatusOr<std::unique_ptr<Connection>> Connect() const;
  void Loop(std::unique_ptr<Connection> conn);
  // Sleeps up to `d`; false when stopping.
  bool Sleep(absl::Duration d);

  const ListenerOptions options_;
  const OnNotify notify_;
  const OnResync resync_;
  std::atomic<bool> listening_{false};
  std::atomic<bool> stopping_{false};
  int wake_fd_ = -1;  // an eventfd: written by Stop
  Mutex stop_mu_;     // serialises Stop
  std::thread thread_ ABSL_GUARDED_BY(stop_mu_);
};

}  // namespace campaigns::storage::postgres

#endif  // CAMPAIGND_STORAGE_POSTGRES_LISTENER_H_
