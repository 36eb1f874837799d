// campaignd's settings: the command-line flags and the TOML config file
// (`--config FILE`, see campaignd.example.toml and PROVIDERS.md).
//
// Every flag has a file key of the same name without `--` and with `_` for
// `-`; a flag given on the command line wins over the file. The file also
// declares the providers (`[[providers]]` tables). Loading validates
// everything: an unknown key, a wrong type, a literal secret, a bad value or
// a missing required key is INVALID_ARGUMENT with one message naming the
// file, line and key, e.g.
//   campaignd.toml:12: providers[1].timeout: expected a duration like "10s"
// and never a secret's value. Secrets (`env:NAME` or `file:/path`) are
// resolved while loading and kept in config::Secret, which does not print.
//
//   CLI::App app;
//   config::Settings settings;
//   std::string config_file;
//   config::AddFlags(app, &settings, &config_file);
//   app.parse(argc, argv);
//   absl::Status s = config::LoadFile(config_file, config::GivenKeys(app),
//                                     config::LoadOptions(), &settings);
//
// This library has no gRPC: plain structs in, plain structs out. Functions
// here are thread-compatible (they touch only their arguments, the process
// environment and the files named).
#ifndef CAMPAIGND_SERVER_CONFIG_H_
#define CAMPAIGND_SERVER_CONFIG_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/domain/types.h"

namespace CLI {
class App;
}

namespace campaigns::config {

// A resolved secret (an API token, a password, a signing key). Its value is
// reachable only through Reveal(); streaming it prints its source
// ("env:NAME" or "file:/path"), never the value. Copyable; immutable.
class Secret {
 public:
  Secret() = default;
  Secret(std::string source, std::string value)
      : source_(std::move(source)), value_(std::move(value)) {}

  // The secret itself: hand it to the vendor, never to a log or an error.
  const std::string& Reveal() const { return value_; }
  // Where it came from, as written in the file: "env:NAME" / "file:/path".
  const std::string& source() const { return source_; }
  bool empty() const { return value_.empty(); }

  friend std::ostream& operator<<(std::ostream& os, const Secret& s) {
    return os << "<secret " << s.source_ << ">";
  }

 private:
  std::string source_;
  std::string value_;
};

// The provider types this configuration language knows (PROVIDERS.md). A
// build may have adapters for only some of them (see the provider registry).
// Settings::lease_ttl's range: heartbeats come every 0.3 ttl, and a lease
// that outlived a dead instance by minutes would stall its campaigns.
inline constexpr absl::Duration kLeaseTtlMin = absl::Seconds(2);
inline constexpr absl::Duration kLeaseTtlMax = absl::Minutes(5);

inline constexpr const char* kProviderTypes[] = {
    "simulator", "whatsapp_cloud", "twilio", "telegram",
    "slack",     "webhook",        "smtp",   "smpp"};

// The channels a provider type can send on; empty for an unknown type.
std::vector<Channel> ChannelsOfType(absl::string_view type);

// One `[[providers]]` table, validated and with its secrets resolved.
struct ProviderConfig {
  std::string name;  // unique, [a-z0-9_-]+, what Sender.provider names
  std::string type;  // one of kProviderTypes
  std::vector<Channel> channels;  // ChannelsOfType(type)

  // Keys every type takes.
  int max_in_flight = 32;
  absl::Duration timeout = absl::Seconds(10);
  std::string fallback;  // another provider's name, "" = none
  int circuit_failures = 20;
  absl::Duration circuit_probe = absl::Seconds(30);
  bool resend_unknown = false;

  // The type's own non-secret keys (PROVIDERS.md's table), validated, with
  // their defaults filled in: strings as written, integers in decimal,
  // durations in absl::FormatDuration form, booleans "true"/"false". Read
  // them with the accessors below.
  std::map<std::string, std::string> settings;
  // The type's secret keys that were given, resolved.
  std::map<std::string, Secret> secrets;

  // settings[key], or "" when absent.
  std::string Get(absl::string_view key) const;
  // settings[key] as an integer / duration (0 / zero when absent).
  int64_t GetInt(absl::string_view key) const;
  absl::Duration GetDuration(absl::string_view key) const;
  // secrets[key], or an empty Secret when absent.
  const Secret& GetSecret(absl::string_view key) const;
};

// A fingerprint of what `p` configures (16 hex digits of a SHA-256): equal
// for two instances that configure the provider alike, whatever the order
// of keys in their files. Secrets count by where they come from (`env:NAME`,
// `file:/path`), never by their value, so the fingerprint, which instances
// share through the database, says nothing about a secret.
std::string ProviderFingerprint(const ProviderConfig& p);

// Everything the flags and the file set. Defaults are campaignd's.
struct Settings {
  std::string listen = "127.0.0.1:50051";
  std::string db = "./campaignd.db";
  // The operator's HTTP listener (webhooks, /metrics, /healthz, /readyz).
  std::string http_listen = "127.0.0.1:9090";
  int threads = 0;
  bool sync_full = false;
  // Start without checking the database (PRAGMA quick_check).
  bool skip_check = false;
  // Log lines: "text" or "json"; the lowest level written.
  std::string log_format = "text";
  std::string log_level = "info";
  // Prometheus metrics at /metrics (off: nothing is counted).
  bool metrics = true;
  std::string tls_cert;
  std::string tls_key;
  absl::Duration shutdown_timeout = absl::Seconds(10);
  absl::Duration receipt_timeout = absl::Hours(1);
  // PostgreSQL: how long a lease outlives its instance's last heartbeat
  // (kLeaseTtlMin..kLeaseTtlMax): the longest another instance waits to
  // take over the work of a dead one.
  absl::Duration lease_ttl = absl::Seconds(10);
  int max_attempts = 5;
  double error_threshold = 0.5;
  double key_rate = 100;
  int key_burst = 200;
  uint64_t simulator_seed = 1;
  std::string simulator_log;
  std::string simulator_config;
  std::vector<std::string> simulator;
  // Only from the file.
  std::vector<ProviderConfig> providers;
  // The PostgreSQL password, for a `db` URI without one (a secret:
  // "env:NAME" or "file:/path"). Empty: the URI's, else PGPASSWORD or
  // ~/.pgpass.
  Secret db_password;
};

// Defines every campaignd flag on `app`, parsing into `settings` (which
// must outlive the parse); `--config FILE` goes to `config_file`. Duration
// flags take seconds ("10", "0.5") or a duration ("10s", "500ms", "1m").
void AddFlags(CLI::App& app, Settings* settings, std::string* config_file);

// The file keys of the flags given on `app`'s parsed command line (e.g.
// {"listen", "simulator"}): the file does not override these.
std::set<std::string> GivenKeys(const CLI::App& app);

// How secrets are looked up (tests swap these). Defaults: the process
// environment and the file system.
struct LoadOptions {
  // The value of environment variable `name`, nullopt if unset.
  std::function<std::optional<std::string>(const std::string& name)> getenv;
  // The contents of file `path`.
  std::function<absl::StatusOr<std::string>(const std::string& path)> read_file;
  // Checks one `simulator` setting ("CHANNEL:key=value,..."); null = any.
  // (The simulator lives in the dispatch library, which this one does not
  // link.)
  std::function<absl::Status(absl::string_view spec)> check_simulator_spec;
  // Checks that a path key (tls_cert, tls_key, simulator_config) names a
  // readable file; null = the file system.
  std::function<bool(const std::string& path)> file_exists;
};

// Applies the TOML document `text` (named `filename` in messages) to
// `settings`: every key not in `given` overrides the flag's value;
// `[[providers]]` replace settings->providers. INVALID_ARGUMENT naming
// file:line and the key on any problem (file:line:col for a syntax
// error); `settings` may be partly updated then.
absl::Status LoadString(absl::string_view text, absl::string_view filename,
                        const std::set<std::string>& given,
                        const LoadOptions& options, Settings* settings);

// LoadString on the contents of file `path` (NOT_FOUND if unreadable).
absl::Status LoadFile(const std::string& path,
                      const std::set<std::string>& given,
                      const LoadOptions& options, Settings* settings);

// What --db (the file's `db`) names: a SQLite file, as a path or
// `sqlite:PATH`, or a PostgreSQL server, as a libpq URI (`postgresql://...`
// or `postgres://...`).
struct DatabaseLocation {
  enum class Engine { kSqlite, kPostgres };
  Engine engine = Engine::kSqlite;
  std::string target;  // the path, or the whole URI
};

// INVALID_ARGUMENT for an empty path or an unknown scheme (`name://...`);
// the caller names the flag or key. Messages never repeat a URI (it may
// hold a password).
absl::StatusOr<DatabaseLocation> ParseDatabaseLocation(absl::string_view db);

// Parses a duration as the flags and the file take it: a number of seconds
// ("10", "0.5") or an absl duration ("10s", "500ms", "1m30s"); not negative.
std::optional<absl::Duration> ParseDurationText(absl::string_view text);

}  // namespace campaigns::config

#endif  // CAMPAIGND_SERVER_CONFIG_H_
