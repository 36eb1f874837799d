// CampaignServer: campaignd's gRPC server on completion queues, wired to its
// storage engine (storage_engine.h: SQLite or PostgreSQL).
//
//   ServerOptions options;
//   options.listen = "127.0.0.1:0";
//   options.db_path = "/tmp/x.db";
//   auto server = CampaignServer::Start(options);
//   int port = (*server)->port();
//   ...
//   (*server)->Shutdown();   // also done by the destructor
//
// Start and Shutdown are not thread-safe with each other; port() and
// bootstrap_secret() are safe from any thread once Start returned.
#ifndef CAMPAIGND_SERVER_SERVER_H_
#define CAMPAIGND_SERVER_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/api/api.h"
#include "server/api/call.h"
#include "server/api/health.h"
#include "server/config.h"
#include "server/dispatch/alarm_timer.h"
#include "server/dispatch/engine.h"
#include "server/dispatch/providers/http_client.h"
#include "server/dispatch/providers/registry.h"
#include "server/dispatch/simulator.h"
#include "server/domain/mutex.h"
#include "server/domain/repository.h"
#include "server/http/operator_http.h"
#include "server/metrics/prometheus_metrics.h"
#include "server/storage_engine.h"

namespace campaigns {

struct ServerOptions {
  // host:port; port 0 picks a free one (see port()).
  std::string listen = "127.0.0.1:50051";
  // --db: a SQLite file (a path or sqlite:PATH) or a PostgreSQL URI.
  std::string db_path = "./campaignd.db";
  // PostgreSQL: the password for a URI without one (db_password).
  std::string db_password;
  // Completion queues, each with one polling thread; 0 = one per core.
  int cq_threads = 0;
  // SQLite synchronous=FULL instead of NORMAL.
  bool synchronous_full = false;
  // Start without PRAGMA quick_check of the database (see DatabaseOptions).
  bool skip_check = false;
  // The SQLite VFS the database opens through; empty = the default (tests
  // name a fault-injecting one, see storage::DatabaseOptions::vfs).
  std::string sqlite_vfs;
  // The bootstrap admin key of a new database; empty = generate one.
  std::string bootstrap_key;
  // PEM files; both set = TLS, both empty = plaintext.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Each API key's request limit (requests a second and burst).
  api::KeyRateLimit key_limit;
  // The dispatch engine and the simulator provider.
  dispatch::EngineOptions engine;
  // PostgreSQL: the campaign leases' ttl (the longest a dead instance's
  // campaigns wait to be taken over, plus ttl / 2 for the adoption scan)
  // and heartbeat.
  dispatch::LeaseKeeperOptions leases;
  dispatch::SimulatorOptions simulator;
  // The operator's HTTP listener (webhooks, /healthz, /readyz); port 0
  // picks a free one (see http_port()); "" = none (campaignd's flag
  // defaults to 127.0.0.1:9090).
  std::string http_listen;
  // The configured providers (besides the built-in simulator), validated.
  std::vector<config::ProviderConfig> providers;
  // Prometheus metrics (served at /metrics on http_listen); off = none
  // counted. `version` and `commit` label campaignd_build_info.
  bool metrics = true;
  std::string version = "unknown";
  std::string commit = "unknown";
  // The adapters by type; types without one are listed as unusable.
  dispatch::ProviderFactories provider_factories =
      dispatch::BuiltInProviderFactories();
};

class CampaignServer {
 public:
  // Opens and migrates the database, bootstraps the admin account on a new
  // one, and starts serving.
  static absl::StatusOr<std::unique_ptr<CampaignServer>> Start(
      const ServerOptions& options);

  ~CampaignServer();

  // The port actually bound.
  int port() const { return port_; }
  // The database, for messages: the file, or "host:port/database as user".
  const std::string& storage_where() const { return storage_->where(); }
  // The HTTP listener's port (0 when http_listen is "").
  int http_port() const { return operator_http_ ? operator_http_->port() : 0; }

  // The admin key generated for a new database ("" when the database was not
  // new or the key came from ServerOptions::bootstrap_key).
  const std::string& bootstrap_secret() const { return bootstrap_secret_; }

  // Campaigns whose progress the server keeps (watched, or not final).
  size_t progress_campaigns() const { return engine_->progress().campaigns(); }

  // The simulator provider (tests read its log).
  dispatch::Simulator* simulator() const { return simulator_.get(); }

  // Every provider by name (the simulator and the configured ones).
  dispatch::ProviderRegistry* providers() const { return providers_.get(); }

  // Ready to serve: started, not shutting down, and the database's last
  // transaction committed (else UNAVAILABLE saying why). The gRPC health
  // service follows it.
  absl::Status Readiness() const;

  // The metrics exposition (empty when metrics are off).
  std::string MetricsText() const;

  // Health -> NOT_SERVING; stop the engine (no provider call starts after
  // this); stop accepting; let in-flight calls finish until `deadline`
  // (then cancel them), and close client connections as soon as no call is
  // in flight (an idle connection does not hold the shutdown); flush the
  // writer; shut down and drain the completion queues; close the database.
  // Idempotent.
  void Shutdown(absl::Duration deadline = absl::Seconds(10));

 private:
  CampaignServer() = default;
  void Poll(grpc::ServerCompletionQueue* cq);
  // Commits what a verified webhook of `provider` carried: receipts through
  // the engine, STOP words as opt-out suppressions.
  void DeliverWebhook(const std::string& provider,
                      dispatch::WebhookEvents events,
                      std::function<void(absl::Status)> done);
  // Undoes a Start that failed before any method was armed.
  void AbortStart();
  // Sets the gRPC health service to Readiness().
  void UpdateHealth();
  // Where several instances share the database: every `every`, the work
  // that dead instances left (imports to roll back or finish applying,
  // deletions to purge) is taken over here, as at start-up.
  void ScheduleTakeover(absl::Duration every);

  // First: everything below reports to it.
  std::unique_ptr<metrics::PrometheusMetrics> metrics_;
  std::unique_ptr<StorageEngine> storage_;
  Repository* store_ = nullptr;  // storage_'s
  std::unique_ptr<dispatch::AlarmTimer> timer_;
  std::unique_ptr<dispatch::Simulator> simulator_;
  std::unique_ptr<dispatch::HttpClient> http_client_;
  std::unique_ptr<dispatch::ProviderRegistry> providers_;
  // PostgreSQL: the heartbeat's timer, a queue and thread of its own (a
  // heartbeat neither holds the server's queues while it waits for the
  // database nor waits behind them), and this instance's leases (before
  // the engine, which uses them). Null on SQLite.
  std::unique_ptr<dispatch::OwnQueueTimer> lease_timer_;
  std::unique_ptr<dispatch::LeaseKeeper> keeper_;
  std::unique_ptr<dispatch::Engine> engine_;
  // engine_ once built, for DatabaseOptions::on_writable (the writer's
  // thread); the database is closed before engine_ is destroyed.
  std::atomic<dispatch::Engine*> engine_for_storage_{nullptr};
  std::unique_ptr<http::OperatorHttp> operator_http_;
  std::atomic<bool> serving_{false};
  // Set at Shutdown: ScheduleTakeover's scans stop.
  std::atomic<bool> stopping_{false};
  // grpc.health.v1 (on the CQs, registered like the API's methods).
  std::unique_ptr<api::Health> health_service_;
  // health_service_ once the server serves; UpdateHealth does nothing
  // before, nor after Shutdown.
  std::atomic<api::Health*> health_{nullptr};
  Mutex health_mu_;  // serialises UpdateHealth
  std::unique_ptr<api::Api> api_;
  api::CallEnv env_;
  std::unique_ptr<api::Registrar> registrar_;
  // Reflection v1 and v1alpha (synchronous services): outlive server_.
  std::vector<std::unique_ptr<grpc::Service>> reflection_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs_;
  std::vector<std::thread> threads_;
  int port_ = 0;
  std::string bootstrap_secret_;
  bool shut_down_ = false;
};

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_SERVER_H_
