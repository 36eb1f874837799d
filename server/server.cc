// CampaignServer: builds campaignd from its parts (database, providers,
// engine, API, HTTP listener, metrics) and takes it down in order.
#include "server/server.h"

#include <grpc/grpc.h>
#include <pthread.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/api/contact_import.h"
#include "server/api/reflection.h"
#include "server/domain/address.h"
#include "server/domain/ids.h"
#include "server/domain/mutex.h"
#include "server/domain/rules.h"
#include "server/log/log.h"

namespace campaigns {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CampaignServer>> CampaignServer::Start(
    const ServerOptions& options) {
  std::unique_ptr<CampaignServer> s(new CampaignServer());
  Metrics* metrics = Metrics::None();
  if (options.metrics) {
    s->metrics_ = std::make_unique<metrics::PrometheusMetrics>(options.version,
                                                               options.commit);
    metrics = s->metrics_.get();
  }

  StorageOptions storage_options;
  storage_options.db = options.db_path;
  storage_options.password = options.db_password;
  storage_options.synchronous_full = options.synchronous_full;
  storage_options.check_on_open = !options.skip_check;
  storage_options.sqlite_vfs = options.sqlite_vfs;
  storage_options.metrics = metrics;
  // This process, as the other instances sharing the database know it
  // (its leases, and the imports and deletions it runs).
  const std::string instance_id = NewId("ins");
  storage_options.instance_id = instance_id;
  storage_options.instance_ttl = options.leases.ttl;
  storage_options.on_writable = [raw = s.get()](bool writable) {
    raw->UpdateHealth();
    // Campaigns waiting for storage to write try again now.
    if (dispatch::Engine* engine = raw->engine_for_storage_.load()) {
      engine->StorageWritable(writable);
    }
  };
  absl::StatusOr<std::unique_ptr<StorageEngine>> storage =
      OpenStorage(storage_options);
  if (!storage.ok()) return storage.status();
  s->storage_ = *std::move(storage);
  s->store_ = &s->storage_->repository();
  // Imports a crash or shutdown interrupted are rolled back (in the
  // background; their campaigns accept a new import once done), and
  // committed contact imports finish applying. (With other instances on the
  // database, only those of dead instances: ScheduleTakeover.)
  absl::StatusOr<int> interrupted =
      s->store_->RecoverInterruptedImports(api::FinishContactImportResponse);
  if (!interrupted.ok()) return interrupted.status();
  // Deleted campaigns whose recipients were not all deleted yet.
  absl::StatusOr<int> deletions = s->store_->ResumeCampaignDeletions();
  if (!deletions.ok()) return deletions.status();

  std::shared_ptr<grpc::ServerCredentials> creds =
      grpc::InsecureServerCredentials();
  if (!options.tls_cert_file.empty() || !options.tls_key_file.empty()) {
    absl::StatusOr<std::string> cert = ReadFile(options.tls_cert_file);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadFile(options.tls_key_file);
    if (!key.ok()) return key.status();
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    creds = grpc::SslServerCredentials(ssl);
  }

  // The engine's timer runs on the server's queues, which exist only once
  // the server is built: it gets them below, before anything is armed.
  s->timer_ = std::make_unique<dispatch::AlarmTimer>();
  absl::StatusOr<std::unique_ptr<dispatch::Simulator>> simulator =
      dispatch::Simulator::Create(
          options.simulator, s->timer_.get(),
          [s_raw = s.get()](const std::string& account,
                            std::vector<ReceiptUpdate> receipts,
                            Done<ReceiptResult> answered) {
            s_raw->engine_->IngestReceipts(account, std::move(receipts),
                                           std::move(answered));
          });
  if (!simulator.ok()) return simulator.status();
  s->simulator_ = *std::move(simulator);
  absl::StatusOr<std::unique_ptr<dispatch::HttpClient>> http_client =
      dispatch::HttpClient::Create();
  if (!http_client.ok()) return http_client.status();
  s->http_client_ = *std::move(http_client);
  dispatch::ProviderEnv provider_env;
  provider_env.timer = s->timer_.get();
  provider_env.http = s->http_client_.get();
  provider_env.receipts = [s_raw = s.get()](
                              const std::string& account,
                              std::vector<ReceiptUpdate> receipts,
                              std::function<void(absl::Status)> committed) {
    s_raw->engine_->IngestReceipts(
        account, std::move(receipts),
        [committed](absl::StatusOr<ReceiptResult> r) {
          if (committed) committed(r.status());
        });
  };
  // SMPP's receipts and inbound texts take the webhooks' path. They come
  // from a session that connects on a timer callback, so never before the
  // engine below exists (the timer's queues are set after it).
  provider_env.events = [s_raw = s.get()](
                            const std::string& provider,
                            dispatch::WebhookEvents events,
                            std::function<void(absl::Status)> done) {
    s_raw->DeliverWebhook(provider, std::move(events), std::move(done));
  };
  absl::StatusOr<std::unique_ptr<dispatch::ProviderRegistry>> providers =
      dispatch::ProviderRegistry::Create(s->simulator_.get(), options.providers,
                                         options.provider_factories,
                                         std::move(provider_env));
  if (!providers.ok()) return providers.status();
  s->providers_ = *std::move(providers);
  dispatch::ProviderRegistry* registry = s->providers_.get();
  dispatch::EngineOptions engine_options = options.engine;
  engine_options.metrics = metrics;
  engine_options.provider_state = [registry](const std::string& provider,
                                             const std::string& unusable) {
    (void)registry->SetState(provider,
                             unusable.empty()
                                 ? dispatch::ProviderState::kOk
                                 : dispatch::ProviderState::kUnusable,
                             unusable);
  };
  if (LeaseRepository* leases = s->storage_->leases(); leases != nullptr) {
    InstanceInfo me;
    me.id = instance_id;
    for (const config::ProviderConfig& p : options.providers) {
      me.provider_fingerprints[p.name] = config::ProviderFingerprint(p);
    }
    s->lease_timer_ = std::make_unique<dispatch::OwnQueueTimer>();
    s->keeper_ = std::make_unique<dispatch::LeaseKeeper>(
        leases, s->lease_timer_.get(), std::move(me), options.leases,
        [s_raw = s.get()](const std::string& resource) {
          if (dispatch::Engine* e = s_raw->engine_for_storage_.load()) {
            e->LeaseLost(resource);
          }
        });
    engine_options.leases = s->keeper_.get();
    engine_options.adopt_every = options.leases.ttl / 2;
  }
  s->engine_ = std::make_unique<dispatch::Engine>(
      s->store_, s->timer_.get(),
      [registry](const std::string& provider) -> dispatch::Provider* {
        return registry->Lookup(provider);
      },
      engine_options);
  s->engine_for_storage_ = s->engine_.get();
  s->api_ = std::make_unique<api::Api>(s->store_, s->engine_.get(),
                                       s->providers_.get(), options.key_limit);
  api::Api* api_ptr = s->api_.get();
  s->env_.metrics = metrics;
  s->env_.authenticate = [api_ptr](const grpc::ServerContext& ctx) {
    return api_ptr->Authenticate(ctx);
  };
  s->registrar_ = std::make_unique<api::Registrar>(&s->env_);
  s->api_->Register(*s->registrar_);
  // Health knows every service of ours; it also answers for "" (the server).
  s->health_service_ = std::make_unique<api::Health>(s->api_->service_names());
  s->health_service_->Register(*s->registrar_);
  s->registrar_->CheckComplete();

  // Reflection resolves what it promises: each of these names is in the
  // generated pool (a missing one is a build mistake, not a runtime state).
  for (const std::string& name : api::LinkedDescriptors()) {
    if (google::protobuf::DescriptorPool::generated_pool()
            ->FindFileContainingSymbol(name) == nullptr) {
      return absl::InternalError(
          absl::StrCat("reflection cannot resolve ", name));
    }
  }
  const std::vector<std::string> services = s->api_->service_names();
  s->reflection_.push_back(api::MakeReflectionV1(services));
  s->reflection_.push_back(api::MakeReflectionV1Alpha(services));

  grpc::ServerBuilder builder;
  // gRPC enables SO_REUSEPORT by default: a second campaignd on the same
  // port would then start and silently take part of the traffic. Fail.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options.listen, creds, &s->port_);
  for (grpc::Service* service : s->api_->services()) {
    builder.RegisterService(service);
  }
  for (auto& service : s->reflection_) builder.RegisterService(service.get());
  builder.RegisterService(s->health_service_->service());
  int threads = options.cq_threads > 0
                    ? options.cq_threads
                    : std::max(1u, std::thread::hardware_concurrency());
  for (int i = 0; i < threads; ++i) {
    s->cqs_.push_back(builder.AddCompletionQueue());
  }
  s->server_ = builder.BuildAndStart();
  if (!s->server_ || s->port_ == 0) {
    s->AbortStart();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen));
  }
  // Bootstrap only once the port is ours, so a generated admin key is never
  // committed by a start that then fails (it would be lost with the output).
  // No method is armed yet, so no call can arrive before it.
  const std::string secret =
      options.bootstrap_key.empty() ? NewSecret() : options.bootstrap_key;
  absl::StatusOr<bool> created = s->store_->BootstrapAdmin(secret);
  if (!created.ok()) {
    s->AbortStart();
    return created.status();
  }
  if (*created && options.bootstrap_key.empty()) s->bootstrap_secret_ = secret;
  std::vector<grpc::CompletionQueue*> queues;
  for (auto& cq : s->cqs_) queues.push_back(cq.get());
  s->timer_->SetQueues(std::move(queues));
  if (s->keeper_ != nullptr) {
    // Registered (a first heartbeat) before any campaign is taken.
    if (absl::Status started = s->keeper_->Start(); !started.ok()) {
      s->AbortStart();
      return started;
    }
    logging::Info("instance registered for work sharing",
                  {{"instance", s->keeper_->id()},
                   {"lease_ttl", options.leases.ttl},
                   {"other_instances",
                    static_cast<int64_t>(s->keeper_->other_instances())}});
  }
  // Sending campaigns go on, scheduled starts and receipt timeouts are
  // re-armed, cut-off cancellations finish.
  if (absl::Status recovered = s->engine_->Recover(); !recovered.ok()) {
    s->AbortStart();
    return recovered;
  }
  if (s->keeper_ != nullptr) s->ScheduleTakeover(options.leases.ttl / 2);
  // Changes other instances make (PostgreSQL) reach the engine at once:
  // pauses and cancels stop the pump that sends, watchers follow.
  dispatch::Engine* engine = s->engine_.get();
  if (absl::Status subscribed = s->storage_->Subscribe(
          [engine](const std::string& id) { engine->Changed(id); },
          [engine] { engine->Resync(); });
      !subscribed.ok()) {
    s->AbortStart();
    return subscribed;
  }
  // Like a vendor after our downtime, the simulator reports the receipts it
  // still owes for messages it accepted before the restart.
  if (const int owed = s->simulator_->DeliverOwedReceipts(); owed > 0) {
    logging::Info("simulator: receipts owed from before the restart",
                  {{"receipts", owed}});
  }
  for (auto& cq : s->cqs_) {
    for (const auto& method : s->registrar_->methods()) method->Arm(cq.get());
  }
  for (size_t i = 0; i < s->cqs_.size(); ++i) {
    // Named so that top -H and perf show which thread is busy.
    s->threads_.emplace_back([raw = s.get(), q = s->cqs_[i].get(), i] {
      pthread_setname_np(pthread_self(), absl::StrCat("cq-", i).c_str());
      raw->Poll(q);
    });
  }
  if (!options.http_listen.empty()) {
    http::OperatorHttpDeps deps;
    deps.provider = [registry](const std::string& name) {
      return registry->Lookup(name);
    };
    deps.deliver = [raw = s.get()](const std::string& provider,
                                   dispatch::WebhookEvents events,
                                   std::function<void(absl::Status)> done) {
      raw->DeliverWebhook(provider, std::move(events), std::move(done));
    };
    deps.ready = [raw = s.get()] { return raw->Readiness(); };
    if (s->metrics_) {
      deps.metrics_text = [raw = s.get()] { return raw->MetricsText(); };
      deps.metrics = metrics;
    }
    absl::StatusOr<std::unique_ptr<http::OperatorHttp>> http =
        http::OperatorHttp::Start(options.http_listen, std::move(deps));
    if (!http.ok()) {
      s->Shutdown(absl::ZeroDuration());
      return http.status();
    }
    s->operator_http_ = *std::move(http);
  }
  if (s->metrics_) {
    s->metrics_->SetScrapeSource([raw = s.get()] {
      metrics::ScrapeState state;
      for (const dispatch::ProviderInfo& p : raw->providers_->List()) {
        state.providers.emplace_back(p.name,
                                     p.state == dispatch::ProviderState::kOk);
      }
      // A read connection: never waits for the writer.
      absl::StatusOr<CampaignTotals> totals = raw->store_->CountCampaigns();
      if (totals.ok()) {
        state.campaigns_by_status = std::move(totals->by_status);
        state.recipients_queued = totals->queued;
      } else {
        static logging::RateLimited limit(1, absl::Minutes(1));
        int64_t suppressed = 0;
        if (limit.Allow(&suppressed)) {
          logging::Error("metrics: reading campaign totals failed",
                         {{"error", totals.status()}});
        }
      }
      state.storage_queue_depth = raw->storage_->queue_depth();
      return state;
    });
  }
  s->serving_ = true;
  s->health_ = s->health_service_.get();
  s->UpdateHealth();
  return s;
}

absl::Status CampaignServer::Readiness() const {
  if (!serving_.load()) {
    return absl::UnavailableError("not serving: starting or shutting down");
  }
  return storage_->Readiness();
}

std::string CampaignServer::MetricsText() const {
  return metrics_ ? metrics_->Exposition() : std::string();
}

void CampaignServer::UpdateHealth() {
  // One at a time: the start thread and the writer thread may both call
  // this, and a stale answer must not land after a newer one.
  MutexLock lock(&health_mu_);
  api::Health* health = health_.load();
  if (health == nullptr) return;
  health->Set(Readiness().ok());
}

void CampaignServer::DeliverWebhook(const std::string& provider,
                                    dispatch::WebhookEvents events,
                                    std::function<void(absl::Status)> done) {
  // One answer once every write is committed: the first failure wins.
  struct Pending {
    Mutex mu;
    int left ABSL_GUARDED_BY(mu) = 0;
    absl::Status status ABSL_GUARDED_BY(mu);
    std::function<void(absl::Status)> done ABSL_GUARDED_BY(mu);
  };
  auto pending = std::make_shared<Pending>();
  {
    MutexLock lock(&pending->mu);  // not shared yet: for the analysis
    pending->done = std::move(done);
  }
  auto finish = [pending](absl::Status s) {
    std::function<void(absl::Status)> done;
    absl::Status status;
    {
      MutexLock lock(&pending->mu);
      if (!s.ok() && pending->status.ok()) pending->status = s;
      if (--pending->left > 0) return;
      done = std::move(pending->done);
      status = pending->status;
    }
    done(status);
  };
  std::vector<Suppression> opt_outs;
  std::vector<std::string> to;
  for (const dispatch::InboundText& m : events.inbound) {
    if (!IsOptOutText(m.text)) continue;
    absl::StatusOr<std::string> address =
        NormalizeAddress(m.channel, m.from, "");
    if (!address.ok()) continue;  // not an address we could have sent to
    Suppression s;
    s.address = *std::move(address);
    s.channel = m.channel;
    s.reason = SuppressionReason::kOptOut;
    s.note = absl::StrCat("inbound \"",
                          absl::StripAsciiWhitespace(m.text).substr(0, 50),
                          "\" via ", provider);
    s.created_at = NowMicros();
    opt_outs.push_back(std::move(s));
    to.push_back(m.to);
  }
  {
    MutexLock lock(&pending->mu);  // before the first write starts
    pending->left = 1 + static_cast<int>(opt_outs.size());  // +1: receipts
  }
  for (size_t i = 0; i < opt_outs.size(); ++i) {
    store_->AddProviderSuppression(
        providers_->SendingThrough(provider), to[i], std::move(opt_outs[i]),
        [finish](absl::StatusOr<int> added) { finish(added.status()); });
  }
  if (events.receipts.empty()) {
    finish(absl::OkStatus());
    return;
  }
  engine_->IngestProviderReceipts(
      provider, std::move(events.receipts),
      [finish](absl::StatusOr<ReceiptResult> r) { finish(r.status()); });
}

void CampaignServer::Poll(grpc::ServerCompletionQueue* cq) {
  void* tag = nullptr;
  bool ok = false;
  while (cq->Next(&tag, &ok)) static_cast<api::Tag*>(tag)->Proceed(ok);
}

void CampaignServer::ScheduleTakeover(absl::Duration every) {
  timer_->At(timer_->Now() + every, [this, every] {
    if (stopping_.load()) return;
    absl::StatusOr<int> imports =
        store_->RecoverInterruptedImports(api::FinishContactImportResponse);
    absl::StatusOr<int> deletions = store_->ResumeCampaignDeletions();
    for (const absl::Status& s : {imports.status(), deletions.status()}) {
      if (s.ok()) continue;
      static logging::RateLimited limit(5, absl::Seconds(60));
      int64_t suppressed = 0;
      if (limit.Allow(&suppressed)) {
        logging::Error(
            "taking over the imports and deletions of stopped instances "
            "failed: tried again later",
            {{"retry_in", every}, {"error", s}, {"suppressed", suppressed}});
      }
    }
    ScheduleTakeover(every);
  });
}

void CampaignServer::AbortStart() {
  stopping_ = true;
  shut_down_ = true;
  if (operator_http_) operator_http_->Stop();
  if (engine_) engine_->Stop();
  if (timer_) timer_->Stop();
  if (server_) server_->Shutdown();
  // Nothing was armed: the queues only need shutting down and draining.
  for (auto& cq : cqs_) {
    cq->Shutdown();
    void* tag;
    bool ok;
    while (cq->Next(&tag, &ok)) {
    }
  }
  server_.reset();
  cqs_.clear();
  if (keeper_) keeper_->Stop(/*leave=*/true);
  if (lease_timer_) lease_timer_->Stop();
  if (storage_) storage_->Close();
}

void CampaignServer::Shutdown(absl::Duration deadline) {
  if (shut_down_) return;
  if (!server_) {  // Start failed before the server was built
    AbortStart();
    return;
  }
  shut_down_ = true;
  stopping_ = true;
  serving_ = false;
  health_ = nullptr;
  health_service_->Shutdown();
  // Watchers see NOT_SERVING before their streams are cancelled below
  // (bounded: a watcher that does not read cannot hold the shutdown).
  if (!health_service_->AwaitDelivered(absl::Now() + absl::Seconds(1))) {
    logging::Warn("shutdown: a health watcher was not sent NOT_SERVING");
  }
  env_.shutting_down.store(true);
  logging::Info("shutdown: health NOT_SERVING, no new calls");
  // Vendors' webhooks stop first: they would reach the engine. A vendor
  // retries what was not answered.
  if (operator_http_) operator_http_->Stop();
  // No provider call starts from here on; what is with the provider is
  // recorded by the writes below (or sent again, same key, after restart).
  engine_->Stop();
  logging::Info("shutdown: webhooks and dispatch stopped");
  // Requests still with vendors end now (as transient failures, recorded
  // below; marked ones become outcome_unknown only after a crash).
  http_client_.reset();
  // Adapters with sessions of their own (SMPP) unbind; their pending sends
  // end the same way, and no receipt reaches the store after it closes.
  providers_->StopAdapters();
  // Watch streams would otherwise hold the shutdown until its deadline.
  api_->CancelWatches();
  // gRPC's Server::Shutdown returns only once every connection is gone, so
  // one idle client connection (or one that never sent a byte) would hold
  // it until the deadline. Hence: begin gRPC's shutdown (listeners closed,
  // GOAWAY sent, no new call), wait for the calls in flight (until the
  // deadline), then close what is left: idle connections, and calls still
  // running at the deadline (cancelled).
  // Core API, core queue: a grpc::CompletionQueue would take the tag for a
  // C++ CompletionQueueTag.
  grpc_completion_queue* shutdown_cq =
      grpc_completion_queue_create_for_next(nullptr);
  grpc_server_shutdown_and_notify(server_->c_server(), shutdown_cq, nullptr);
  if (!env_.WaitForCalls(absl::Now() + deadline)) {
    logging::Warn("shutdown: calls still running at the deadline are cancelled",
                  {{"deadline", absl::FormatDuration(deadline)}});
  }
  grpc_server_cancel_all_calls(server_->c_server());
  server_->Shutdown();
  // Streams cancelled above finish once their consumers settle (e.g. an
  // import rolling back); they need the queues until then.
  env_.WaitForCalls();
  // Its one event (the shutdown done) came when server_->Shutdown did.
  grpc_completion_queue_shutdown(shutdown_cq);
  while (grpc_completion_queue_next(shutdown_cq,
                                    gpr_inf_future(GPR_CLOCK_REALTIME), nullptr)
             .type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(shutdown_cq);
  logging::Info("shutdown: calls and streams finished");
  // Writes of finished calls have completed; later ones would post to queues
  // that are about to close.
  storage_->Flush();
  // Pending alarms would keep the queues from draining.
  timer_->Stop();
  storage_->Flush();
  for (auto& cq : cqs_) cq->Shutdown();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  // Every outcome is recorded: the campaigns this instance sent may go to
  // another one now, rather than once their leases expire. Then no lease
  // is reported lost to the engine any more.
  if (keeper_) keeper_->Stop(/*leave=*/true);
  if (lease_timer_) lease_timer_->Stop();
  storage_->Close();
  logging::Info("shutdown: writes flushed, database closed");
}

CampaignServer::~CampaignServer() { Shutdown(); }

}  // namespace campaigns
