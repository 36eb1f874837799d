// campaignd: the campaign service. Parses flags, starts the server, waits for
// SIGINT/SIGTERM and shuts down in order (see CampaignServer::Shutdown).
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/time/time.h"
#include "server/server.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  campaigns::ServerOptions options;
  double shutdown_seconds = 10;
  CLI::App app{"campaignd: self-hosted bulk-messaging campaign service"};
  app.add_option("--listen", options.listen, "address to serve gRPC on")
      ->capture_default_str();
  app.add_option("--db", options.db_path, "SQLite database file")
      ->capture_default_str();
  app.add_option(
         "--threads", options.cq_threads,
         "completion queues (one polling thread each); 0 = one per core")
      ->capture_default_str();
  app.add_flag("--sync-full", options.synchronous_full,
               "SQLite synchronous=FULL (survives power loss; slower)");
  app.add_option("--tls-cert", options.tls_cert_file, "PEM certificate chain")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", options.tls_key_file, "PEM private key")
      ->check(CLI::ExistingFile);
  app.add_option("--shutdown-timeout", shutdown_seconds,
                 "seconds in-flight calls get to finish on SIGINT/SIGTERM")
      ->capture_default_str();
  double receipt_timeout_seconds = 3600;
  app.add_option("--receipt-timeout", receipt_timeout_seconds,
                 "seconds a sent campaign waits for receipts before it "
                 "completes")
      ->capture_default_str();
  app.add_option("--max-attempts", options.engine.max_attempts,
                 "provider calls per message before a transient failure is "
                 "final")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--error-threshold", options.engine.error_threshold,
                 "auto-pause when this share of the last 100 outcomes failed "
                 "(0 = never)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--key-rate", options.key_limit.rate,
                 "requests a second each API key may make (0 = no limit); "
                 "over it a call gets RESOURCE_EXHAUSTED with retry-after")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--key-burst", options.key_limit.burst,
                 "requests an idle API key may make at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_option("--simulator-seed", options.simulator.seed,
                 "seed of the simulator's outcomes")
      ->capture_default_str();
  app.add_option("--simulator-log", options.simulator.log_path,
                 "append every simulated send to this file as JSON lines");
  std::string simulator_config;
  app.add_option("--simulator-config", simulator_config,
                 "file of simulator settings: one CHANNEL:key=value,... or "
                 "default:key=value,... per line (# comments); --simulator "
                 "flags apply after it")
      ->check(CLI::ExistingFile);
  std::vector<std::string> simulator_specs;
  app.add_option(
      "--simulator", simulator_specs,
      "simulator settings, CHANNEL:key=value,... or default:key=value,... "
      "(keys: latency, transient, permanent, accepted_rate, delivered, read, "
      "delivered_delay, read_delay); repeatable");
  CLI11_PARSE(app, argc, argv);
  options.engine.receipt_timeout = absl::Seconds(receipt_timeout_seconds);
  if (!simulator_config.empty()) {
    std::ifstream in(simulator_config);
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

  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    std::cerr << "--tls-cert and --tls-key go together\n";
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
    spdlog::critical("cannot start: {}", server.status().ToString());
    return 1;
  }
  if (!(*server)->bootstrap_secret().empty()) {
    std::cerr << "\nNew database: created the admin account.\n"
              << "Admin API key (shown once, keep it safe):\n  "
              << (*server)->bootstrap_secret() << "\n\n";
  }
  spdlog::info("campaignd listening on {} (port {}), database {}",
               options.listen, (*server)->port(), options.db_path);

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("signal {} received: shutting down", sig);
  (*server)->Shutdown(absl::Seconds(shutdown_seconds));
  spdlog::info("shutdown complete");
  return 0;
}
