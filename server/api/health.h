// Health: grpc.health.v1.Health, served on the server's own completion
// queues like every other method.
//
// gRPC's default health service is a callback service; on this polling
// engine that brings a second set of threads polling the same connections,
// which took about a quarter of campaignd's CPU per cheap call (rpc_bench).
//
// Check answers the status of a service ("" is the server as a whole):
// SERVING or NOT_SERVING; an unknown name is NOT_FOUND. Watch sends the
// status at once (SERVICE_UNKNOWN for an unknown name), then every change
// (the newest only, one write outstanding); it ends only when the client
// leaves or the server cancels its calls, so it does not hold a shutdown.
// Neither needs an API key.
//
//   Health health({"campaigns.v1.CampaignService", ...});
//   health.Register(registrar);            // before the server starts
//   builder.RegisterService(health.service());
//   health.Set(true);
//   health.Shutdown();                     // NOT_SERVING for good
//
// Thread-safe.
#ifndef CAMPAIGND_SERVER_API_HEALTH_H_
#define CAMPAIGND_SERVER_API_HEALTH_H_

#include <atomic>
#include <set>
#include <string>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "server/api/call.h"
#include "server/domain/mutex.h"

namespace campaigns::api {

class Health {
 public:
  using Status = grpc::health::v1::HealthCheckResponse::ServingStatus;

  // `services`: the names known besides "". Starts NOT_SERVING.
  explicit Health(std::vector<std::string> services);
  Health(const Health&) = delete;
  Health& operator=(const Health&) = delete;

  // Registers Check and Watch with `r` (whose CallEnv must outlive this).
  void Register(Registrar& r);
  grpc::Service* service() { return &service_; }

  // Every known service SERVING (true) or NOT_SERVING; ignored after
  // Shutdown. Watchers are told at once.
  void Set(bool serving);
  // NOT_SERVING from now on; watchers are told.
  void Shutdown();

  // Waits until every watcher has been sent the current status (its write
  // completed) or has gone, or until `deadline`; false at the deadline. At
  // shutdown: before the server cancels its calls, so that the NOT_SERVING
  // is not dropped with them.
  bool AwaitDelivered(absl::Time deadline);

  // What Check and Watch answer for `service` now.
  Status StatusOf(const std::string& service) const;

 private:
  class WatchMethod;
  class WatchCall;

  // Tells every live watcher that the status may have changed.
  void Changed();
  // A watcher's write completed or it ended: wakes AwaitDelivered.
  void Delivering();

  const std::set<std::string> services_;
  std::atomic<bool> serving_{false};
  std::atomic<bool> shut_down_{false};
  RawAsyncService<grpc::health::v1::Health> service_;
  CallEnv* env_ = nullptr;  // set by Register
  Mutex mu_;                // before any WatchCall's own
  std::set<WatchCall*> watchers_ ABSL_GUARDED_BY(mu_);
  CondVar delivered_;  // with mu_: see Delivering
};

}  // namespace campaigns::api

#endif  // CAMPAIGND_SERVER_API_HEALTH_H_
