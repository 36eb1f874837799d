// WatchMethod: WatchCampaign, the server stream of a campaign's progress.
//
// The first message goes out at once; then, whenever the engine publishes a
// change, the newest snapshot — at most `max_rate_hz` messages a second
// (kMinRateHz to kMaxRateHz; 0 is the default, 10; else INVALID_ARGUMENT),
// and never more than one write outstanding, so a slow or stalled reader
// costs one snapshot of memory, not a queue. A final state (completed,
// cancelled, failed) is sent as soon as it is published, whatever the rate;
// the stream then ends OK. (A cancelled campaign that still counts queued
// recipients is not final yet: with several instances, the one that sent
// it skips them after the cancel.) A stream whose API key is revoked ends
// UNAUTHENTICATED (RevokeApiKey calls KeyRevoked once the revocation is
// committed).
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

#include <cstdint>
#include <set>
#include <string>

#include "server/api/call.h"
#include "server/dispatch/engine.h"
#include "server/dispatch/progress.h"
#include "server/domain/mutex.h"
#include "server/domain/repository.h"

namespace campaigns::api {

class WatchMethod final : public Method {
 public:
  WatchMethod(RawService* service, int index, CallEnv* env, Repository* store,
              dispatch::Engine* engine)
      : service_(service),
        index_(index),
        env_(env),
        store_(store),
        engine_(engine),
        hub_(&engine->progress()) {}

  void Arm(grpc::ServerCompletionQueue* cq) override;

  static constexpr double kMinRateHz = 0.1;
  static constexpr double kMaxRateHz = 50;

  // Cancels every live watch (their streams end at once). New ones are not
  // accepted once the server is shutting down.
  void CancelAll();

  // Ends the streams of the API key `key_id` with UNAUTHENTICATED, at once
  // (an idle stream hops onto its queue; one with a write outstanding ends
  // when that write completes). Call after the revocation is committed: a
  // stream authenticating meanwhile authenticates again. Any thread.
  void KeyRevoked(const std::string& key_id);

 private:
  class Call;
  friend class Call;

  RawService* const service_;
  const int index_;
  CallEnv* const env_;
  Repository* const store_;
  dispatch::Engine* const engine_;  // ShowUnstoredPause
  dispatch::ProgressHub* const hub_;
  Mutex mu_;
  std::set<Call*> live_ ABSL_GUARDED_BY(mu_);
  // KeyRevoked calls so far: a call that sees it change while it
  // authenticates authenticates again.
  uint64_t revocations_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace campaigns::api

#endif  // CAMPAIGND_SERVER_API_WATCH_H_
