// campaignd: the campaign service. Reads its flags and, with --config, its
// TOML config file (server/config.h; a flag given on the command line wins),
// starts the server, waits for SIGINT/SIGTERM and shuts down in order (see
// CampaignServer::Shutdown). A bad flag or config file exits 2 with one
// message naming the key (and the file's line); a failed start exits 1.
// --version prints "campaignd 0.1.0 (commit 2b73bcb1f0aa)" and exits 0.
// `campaignd migrate --from sqlite:PATH --to postgresql://...` copies a
// database and exits (RunMigrate).
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/config.h"
#include "server/log/log.h"
#include "server/server.h"
#include "storage/migrate/sqlite_to_postgres.h"
#include "version.h"

namespace {

// `campaignd migrate --from sqlite:PATH --to postgresql://...`: exit 0 once
// every row is copied, 2 for a bad argument, 1 when the copy is refused or
// fails (then nothing was kept in PostgreSQL).
int RunMigrate(const std::string& from, const std::string& to) {
  using campaigns::config::DatabaseLocation;
  absl::StatusOr<DatabaseLocation> source =
      campaigns::config::ParseDatabaseLocation(from);
  if (!source.ok() || source->engine != DatabaseLocation::Engine::kSqlite) {
    std::cerr << "--from: "
              << (source.ok() ? "give the SQLite database (sqlite:PATH or a "
                                "path)"
                              : source.status().message())
              << "\n";
    return 2;
  }
  absl::StatusOr<DatabaseLocation> target =
      campaigns::config::ParseDatabaseLocation(to);
  if (!target.ok() || target->engine != DatabaseLocation::Engine::kPostgres) {
    std::cerr << "--to: "
              << (target.ok() ? "give the PostgreSQL database "
                                "(postgresql://...)"
                              : target.status().message())
              << "\n";
    return 2;
  }
  absl::StatusOr<campaigns::storage::MigrationReport> report =
      campaigns::storage::MigrateSqliteToPostgres(source->target,
                                                  target->target);
  if (!report.ok()) {
    std::cerr << "campaignd migrate: " << report.status().message() << "\n";
    return 1;
  }
  for (const auto& [table, rows] : report->tables) {
    std::cout << table << "\t" << rows << "\n";
  }
  std::cout << "migrated " << report->total_rows << " rows from "
            << source->target << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil is built without NDEBUG, so every Mutex::Lock would
  // also update a global lock-order graph (about 4 % of the CPU of a cheap
  // call). The tests keep that check; the server runs as a release build.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  campaigns::config::Settings settings;
  std::string config_file;
  CLI::App app{"campaignd: self-hosted bulk-messaging campaign service"};
  campaigns::config::AddFlags(app, &settings, &config_file);
  app.set_version_flag("--version", std::string("campaignd ") +
                                        campaigns::kVersion + " (commit " +
                                        campaigns::kGitCommit + ")");
  std::string migrate_from, migrate_to;
  CLI::App* migrate = app.add_subcommand(
      "migrate",
      "copy an SQLite database into an empty PostgreSQL one, then exit "
      "(campaignd must not be running on the SQLite file)");
  migrate
      ->add_option("--from", migrate_from,
                   "the SQLite database (sqlite:PATH or a path)")
      ->required();
  migrate
      ->add_option("--to", migrate_to,
                   "the PostgreSQL database (postgresql://...)")
      ->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every bad flag exits 2.
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (migrate->parsed()) return RunMigrate(migrate_from, migrate_to);
  if (!config_file.empty()) {
    campaigns::config::LoadOptions load;
    load.check_simulator_spec = [](absl::string_view spec) {
      campaigns::dispatch::SimulatorOptions scratch;
      return campaigns::dispatch::ApplySimulatorSpec(spec, &scratch);
    };
    if (absl::Status s = campaigns::config::LoadFile(
            config_file, campaigns::config::GivenKeys(app), load, &settings);
        !s.ok()) {
      std::cerr << s.message() << "\n";
      return 2;
    }
  }

  namespace logging = campaigns::logging;
  logging::Configure(*logging::ParseFormat(settings.log_format),
                     *logging::ParseLevel(settings.log_level));
  logging::RouteLibraryLogs();

  campaigns::ServerOptions options;
  options.metrics = settings.metrics;
  options.version = campaigns::kVersion;
  options.commit = campaigns::kGitCommit;
  options.listen = settings.listen;
  options.http_listen = settings.http_listen;
  options.cq_threads = settings.threads;
  options.synchronous_full = settings.sync_full;
  options.skip_check = settings.skip_check;
  options.tls_cert_file = settings.tls_cert;
  options.tls_key_file = settings.tls_key;
  options.engine.receipt_timeout = settings.receipt_timeout;
  options.leases.ttl = settings.lease_ttl;
  // Three heartbeats per ttl: one failed heartbeat loses nothing.
  options.leases.heartbeat_every = settings.lease_ttl * 3 / 10;
  options.engine.max_attempts = settings.max_attempts;
  options.engine.error_threshold = settings.error_threshold;
  options.key_limit.rate = settings.key_rate;
  options.key_limit.burst = settings.key_burst;
  options.simulator.seed = settings.simulator_seed;
  options.simulator.log_path = settings.simulator_log;
  options.providers = settings.providers;

  std::vector<std::string> simulator_specs = settings.simulator;
  if (!settings.simulator_config.empty()) {
    std::ifstream in(settings.simulator_config);
    std::vector<std::string> from_file;
    std::string line;
    while (std::getline(in, line)) {
      const std::string spec(absl::StripAsciiWhitespace(
          line.substr(0, std::min(line.find('#'), line.size()))));
      if (!spec.empty()) from_file.push_back(spec);
    }
    simulator_specs.insert(simulator_specs.begin(), from_file.begin(),
                           from_file.end());
  }
  for (const std::string& spec : simulator_specs) {
    if (absl::Status s =
            campaigns::dispatch::ApplySimulatorSpec(spec, &options.simulator);
        !s.ok()) {
      std::cerr << "--simulator " << spec << ": " << s.message() << "\n";
      return 2;
    }
  }

  absl::StatusOr<campaigns::config::DatabaseLocation> db =
      campaigns::config::ParseDatabaseLocation(settings.db);
  if (!db.ok()) {
    std::cerr << "--db: " << db.status().message() << "\n";
    return 2;
  }
  if (db->engine != campaigns::config::DatabaseLocation::Engine::kPostgres &&
      !settings.db_password.empty()) {
    std::cerr << "db_password: only for a PostgreSQL db (postgresql://...); "
                 "the db is the SQLite file "
              << db->target << "\n";
    return 2;
  }
  // The whole --db value: the server opens the engine it names.
  options.db_path = settings.db;
  options.db_password = settings.db_password.Reveal();
  // For messages: the file, or PostgreSQL's host and database (a URI may
  // hold a password, so it is never repeated).
  const std::string db_for_logs =
      db->engine == campaigns::config::DatabaseLocation::Engine::kPostgres
          ? "PostgreSQL (--db postgresql://...)"
          : db->target;
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    std::cerr << "--tls-cert and --tls-key (tls_cert and tls_key) go "
                 "together\n";
    return 2;
  }
  if (const char* key = std::getenv("CAMPAIGND_BOOTSTRAP_KEY")) {
    options.bootstrap_key = key;
    if (options.bootstrap_key.size() < 16) {
      std::cerr << "CAMPAIGND_BOOTSTRAP_KEY must be at least 16 characters\n";
      return 2;
    }
  }

  // Block the shutdown signals in every thread; main waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto server = campaigns::CampaignServer::Start(options);
  if (!server.ok()) {
    logging::Critical("cannot start", {{"error", server.status()},
                                       {"db", db_for_logs},
                                       {"listen", options.listen}});
    return 1;
  }
  if (!(*server)->bootstrap_secret().empty()) {
    std::cerr << "\nNew database: created the admin account.\n"
              << "Admin API key (shown once, keep it safe):\n  "
              << (*server)->bootstrap_secret() << "\n\n";
  }
  // Tests and scripts find the ports in these two messages.
  logging::Info(absl::StrCat("campaignd listening on ", options.listen,
                             " (port ", (*server)->port(), ")"),
                {{"port", (*server)->port()},
                 {"db", (*server)->storage_where()},
                 {"log_format", settings.log_format},
                 {"metrics", settings.metrics}});
  if ((*server)->http_port() > 0) {
    logging::Info(
        absl::StrCat("http (webhooks, /metrics, /healthz, /readyz) on ",
                     options.http_listen, " (port ", (*server)->http_port(),
                     ")"),
        {{"port", (*server)->http_port()}});
  }
  for (const campaigns::dispatch::ProviderInfo& p :
       (*server)->providers()->List()) {
    if (p.state == campaigns::dispatch::ProviderState::kOk) {
      logging::Info("provider ok", {{"provider", p.name}, {"type", p.type}});
    } else {
      logging::Warn("provider unusable at start",
                    {{"provider", p.name},
                     {"type", p.type},
                     {"state", campaigns::dispatch::ProviderStateName(p.state)},
                     {"error", p.reason}});
    }
  }

  int sig = 0;
  sigwait(&signals, &sig);
  logging::Info("shutdown: signal received", {{"signal", sig}});
  (*server)->Shutdown(settings.shutdown_timeout);
  logging::Info("shutdown complete");
  return 0;
}
