// WatchMethod: WatchCampaign, the server stream of a campaign's progress.
//
// The first message goes out at once; then, whenever the engine publishes a
// change, the newest snapshot — at most `max_rate_hz` messages a second
// (default 10), and never more than one write outstanding, so a slow or
// stalled reader costs one snapshot of memory, not a queue. The stream ends
// (OK) after the message that shows a final state (completed, cancelled,
// failed).
//
//   auto watch = std::make_unique<WatchMethod>(service, index, env, store,
//                                              &engine->progress());
//   ...
//   watch->CancelAll();   // at shutdown, before the server shuts down
//
// Thread-safe: calls run on the CQ threads; the hub wakes them from any
// thread.
#ifndef CAMPAIGND_SERVER_API_WATCH_H_
#define CAMPAIGND_SERVER_API_WATCH_H_

#include <set>

#include "server/api/call.h"
#include "server/dispatch/progress.h"
#include "server/domain/mutex.h"
#include "storage/store.h"

namespace campaigns::api {

class WatchMethod final : public Method {
 public:
  WatchMethod(RawService* service, int index, CallEnv* env,
              storage::Store* store, dispatch::ProgressHub* hub)
      : service_(service), index_(index), env_(env), store_(store), hub_(hub) {}

  void Arm(grpc::ServerCompletionQueue* cq) override;

  // Cancels every live watch (their streams end at once). New ones are not
  // accepted once the server is shutting down.
  void CancelAll();

 private:
  class Call;
  friend class Call;

  RawService* const service_;
  const int index_;
  CallEnv* const env_;
  storage::Store* const store_;
  dispatch::ProgressHub* const hub_;
  Mutex mu_;
  std::set<Call*> live_ ABSL_GUARDED_BY(mu_);
};

}  // namespace campaigns::api

#endif  // CAMPAIGND_SERVER_API_WATCH_H_
