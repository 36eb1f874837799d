// campaignd's settings: command-line flags and the TOML config file.
#include "server/config.h"

#include <toml++/toml.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"

namespace campaigns::config {
namespace {

std::string LeaseTtlRange() {
  return absl::StrCat("expected a duration from ",
                      absl::FormatDuration(kLeaseTtlMin), " to ",
                      absl::FormatDuration(kLeaseTtlMax));
}

constexpr char kSimulator[] = "simulator";

// --- Provider key tables (PROVIDERS.md) -------------------------------------

enum class Kind {
  kString,    // non-empty string
  kUrl,       // http:// or https:// URL (trailing '/' removed)
  kSmtpUrl,   // smtp:// or smtps:// URL
  kSecret,    // env:NAME or file:/path, resolved
  kInt,       // integer in [min, max]
  kDuration,  // seconds or "10s"
  kEnum,      // one of `choices`
};

struct KeySpec {
  const char* key;
  Kind kind;
  bool required;
  const char* default_value;  // nullptr = none
  int64_t min = 0;
  int64_t max = 0;
  const char* choices = nullptr;  // kEnum: "a|b|c"
};

struct TypeSpec {
  const char* type;
  std::vector<Channel> channels;
  std::vector<KeySpec> keys;
};

std::vector<Channel> AllChannels() {
  return {Channel::kSms,   Channel::kWhatsapp, Channel::kTelegram,
          Channel::kEmail, Channel::kSlack,    Channel::kRcs};
}

const std::vector<TypeSpec>& TypeSpecs() {
  static const auto* const kSpecs = new std::vector<TypeSpec>{
      // The built-in simulator is configured by the top-level simulator_*
      // keys; a [[providers]] table of this type is refused (see Load).
      {"simulator", AllChannels(), {}},
      {"whatsapp_cloud",
       {Channel::kWhatsapp},
       {{"base_url", Kind::kUrl, false, "https://graph.facebook.com/v21.0"},
        {"phone_number_id", Kind::kString, true, nullptr},
        {"access_token", Kind::kSecret, true, nullptr},
        {"app_secret", Kind::kSecret, true, nullptr},
        {"verify_token", Kind::kSecret, true, nullptr}}},
      {"twilio",
       {Channel::kSms, Channel::kWhatsapp},
       {{"base_url", Kind::kUrl, false, "https://api.twilio.com"},
        {"account_sid", Kind::kString, true, nullptr},
        {"auth_token", Kind::kSecret, true, nullptr},
        {"messaging_service_sid", Kind::kString, false, nullptr},
        {"public_url", Kind::kUrl, true, nullptr}}},
      {"telegram",
       {Channel::kTelegram},
       {{"base_url", Kind::kUrl, false, "https://api.telegram.org"},
        {"bot_token", Kind::kSecret, true, nullptr},
        {"webhook_secret", Kind::kSecret, true, nullptr}}},
      {"slack",
       {Channel::kSlack},
       {{"base_url", Kind::kUrl, false, "https://slack.com"},
        {"bot_token", Kind::kSecret, true, nullptr}}},
      {"webhook",
       AllChannels(),
       {{"url", Kind::kUrl, true, nullptr},
        {"secret", Kind::kSecret, true, nullptr}}},
      {"smtp",
       {Channel::kEmail},
       {{"url", Kind::kSmtpUrl, true, nullptr},
        {"username", Kind::kString, false, nullptr},
        {"password", Kind::kSecret, false, nullptr},
        {"from", Kind::kString, true, nullptr},
        {"starttls", Kind::kEnum, false, "required", 0, 0,
         "required|try|never"},
        {"unsubscribe_url", Kind::kUrl, false, nullptr},
        {"ca_file", Kind::kString, false, nullptr}}},
      {"smpp",
       {Channel::kSms},
       {{"host", Kind::kString, true, nullptr},
        {"port", Kind::kInt, false, "2775", 1, 65535},
        {"system_id", Kind::kString, true, nullptr},
        {"password", Kind::kSecret, true, nullptr},
        {"system_type", Kind::kString, false, nullptr},
        {"window", Kind::kInt, false, "10", 1, 1000},
        {"enquire_link", Kind::kDuration, false, "30s"}}},
  };
  return *kSpecs;
}

const TypeSpec* FindType(absl::string_view type) {
  for (const TypeSpec& t : TypeSpecs()) {
    if (type == t.type) return &t;
  }
  return nullptr;
}

// Keys every provider type takes (besides its own).
constexpr const char* kCommonKeys[] = {"name",          "type",
                                       "max_in_flight", "timeout",
                                       "fallback",      "circuit_failures",
                                       "circuit_probe", "resend_unknown"};

// --- Reading values
// -----------------------------------------------------------

// Collects the first problem as file:line: key: message.
class Reader {
 public:
  Reader(absl::string_view filename, const LoadOptions& options)
      : filename_(filename), options_(options) {}

  absl::Status Error(const toml::node& node, absl::string_view key,
                     absl::string_view message) const {
    return ErrorAt(node.source().begin.line, key, message);
  }
  absl::Status ErrorAt(int64_t line, absl::string_view key,
                       absl::string_view message) const {
    return absl::InvalidArgumentError(
        absl::StrCat(filename_, ":", line, ": ", key, ": ", message));
  }

  absl::StatusOr<std::string> String(const toml::node& node,
                                     absl::string_view key) const {
    const auto* s = node.as_string();
    if (s == nullptr) return Error(node, key, "expected a string");
    return s->get();
  }

  absl::StatusOr<std::string> NonEmptyString(const toml::node& node,
                                             absl::string_view key) const {
    absl::StatusOr<std::string> s = String(node, key);
    if (s.ok() && s->empty()) return Error(node, key, "must not be empty");
    return s;
  }

  absl::StatusOr<bool> Bool(const toml::node& node,
                            absl::string_view key) const {
    const auto* b = node.as_boolean();
    if (b == nullptr) return Error(node, key, "expected true or false");
    return b->get();
  }

  absl::StatusOr<int64_t> Int(const toml::node& node, absl::string_view key,
                              int64_t min, int64_t max) const {
    const auto* i = node.as_integer();
    if (i == nullptr) return Error(node, key, "expected an integer");
    if (i->get() < min || i->get() > max) {
      return Error(node, key,
                   absl::StrCat("must be between ", min, " and ", max));
    }
    return i->get();
  }

  absl::StatusOr<double> Number(const toml::node& node, absl::string_view key,
                                double min, double max) const {
    double v;
    if (const auto* i = node.as_integer()) {
      v = static_cast<double>(i->get());
    } else if (const auto* f = node.as_floating_point()) {
      v = f->get();
    } else {
      return Error(node, key, "expected a number");
    }
    if (!(v >= min && v <= max)) {
      return Error(node, key,
                   absl::StrCat("must be between ", min, " and ", max));
    }
    return v;
  }

  absl::StatusOr<absl::Duration> Duration(const toml::node& node,
                                          absl::string_view key) const {
    const absl::Status bad =
        Error(node, key,
              "expected a duration like \"10s\", \"500ms\", \"1m\" or a "
              "number of seconds");
    if (const auto* i = node.as_integer()) {
      if (i->get() < 0) return bad;
      return absl::Seconds(i->get());
    }
    if (const auto* f = node.as_floating_point()) {
      if (!(f->get() >= 0) || f->get() > 1e12) return bad;
      return absl::Seconds(f->get());
    }
    if (const auto* s = node.as_string()) {
      std::optional<absl::Duration> d = ParseDurationText(s->get());
      if (!d) return bad;
      return *d;
    }
    return bad;
  }

  absl::StatusOr<std::string> Url(const toml::node& node, absl::string_view key,
                                  bool smtp) const {
    absl::StatusOr<std::string> s = String(node, key);
    if (!s.ok()) return s;
    const std::vector<absl::string_view> schemes =
        smtp ? std::vector<absl::string_view>{"smtp://", "smtps://"}
             : std::vector<absl::string_view>{"http://", "https://"};
    for (absl::string_view scheme : schemes) {
      if (absl::StartsWith(*s, scheme) && s->size() > scheme.size() &&
          s->find_first_of(" \t\r\n") == std::string::npos) {
        std::string url = *s;
        while (!smtp && absl::EndsWith(url, "/") &&
               url.size() > scheme.size() + 1) {
          url.pop_back();
        }
        return url;
      }
    }
    return Error(node, key,
                 smtp ? "expected a URL like \"smtp://host:587\" or "
                        "\"smtps://host:465\""
                      : "expected an http:// or https:// URL");
  }

  // Resolves "env:NAME" or "file:/path". Messages name the key and the
  // source, never the value.
  absl::StatusOr<Secret> SecretValue(const toml::node& node,
                                     absl::string_view key) const {
    const auto* s = node.as_string();
    const absl::Status literal =
        Error(node, key,
              "a secret is written \"env:NAME\" or \"file:/path\" (a literal "
              "secret is refused)");
    if (s == nullptr) return literal;
    const std::string& ref = s->get();
    if (absl::StartsWith(ref, "env:")) {
      const std::string name = ref.substr(4);
      if (name.empty()) return literal;
      std::optional<std::string> value =
          options_.getenv ? options_.getenv(name) : GetEnv(name);
      if (!value || value->empty()) {
        return Error(node, key,
                     absl::StrCat("environment variable ", name,
                                  " is not set or empty"));
      }
      return Secret(ref, *std::move(value));
    }
    if (absl::StartsWith(ref, "file:")) {
      const std::string path = ref.substr(5);
      if (path.empty()) return literal;
      absl::StatusOr<std::string> contents =
          options_.read_file ? options_.read_file(path) : ReadWholeFile(path);
      if (!contents.ok()) {
        return Error(node, key, absl::StrCat("cannot read ", path));
      }
      std::string value = *std::move(contents);
      while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) {
        value.pop_back();
      }
      if (value.empty()) {
        return Error(node, key, absl::StrCat("file ", path, " is empty"));
      }
      return Secret(ref, std::move(value));
    }
    return literal;
  }

  bool FileExists(const std::string& path) const {
    if (options_.file_exists) return options_.file_exists(path);
    return access(path.c_str(), R_OK) == 0;
  }

  static std::optional<std::string> GetEnv(const std::string& name) {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  }

  static absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  const LoadOptions& options() const { return options_; }

 private:
  const std::string filename_;
  const LoadOptions& options_;
};

bool ValidProviderName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_' ||
          c == '-')) {
      return false;
    }
  }
  return true;
}

// The string form a setting is kept in (ProviderConfig::settings).
std::string DurationSetting(absl::Duration d) {
  return absl::FormatDuration(d);
}

// Where each provider's fallback was written (for the cross checks).
struct FallbackRef {
  size_t index;
  int64_t line;
};

absl::Status LoadProvider(const Reader& r, const toml::table& table,
                          const std::string& path, ProviderConfig* out) {
  const int64_t table_line = table.source().begin.line;
  // name and type first: the other keys depend on the type.
  const toml::node* name = table.get("name");
  if (name == nullptr) return r.ErrorAt(table_line, path + ".name", "required");
  ASSIGN_OR_RETURN(out->name, r.String(*name, path + ".name"));
  if (!ValidProviderName(out->name)) {
    return r.Error(*name, path + ".name",
                   "must be 1 to 64 of a-z, 0-9, _ and -");
  }
  if (out->name == kSimulator) {
    return r.Error(*name, path + ".name",
                   "\"simulator\" is the built-in provider; set it up with "
                   "the top-level simulator_* keys");
  }
  const toml::node* type = table.get("type");
  if (type == nullptr) return r.ErrorAt(table_line, path + ".type", "required");
  ASSIGN_OR_RETURN(out->type, r.String(*type, path + ".type"));
  const TypeSpec* spec = FindType(out->type);
  if (spec == nullptr) {
    std::vector<std::string> names(std::begin(kProviderTypes),
                                   std::end(kProviderTypes));
    return r.Error(
        *type, path + ".type",
        absl::StrCat("expected one of ", absl::StrJoin(names, ", ")));
  }
  if (out->type == kSimulator) {
    return r.Error(*type, path + ".type",
                   "the simulator is built in (provider \"simulator\"); set "
                   "it up with the top-level simulator_* keys");
  }
  out->channels = spec->channels;

  for (auto&& [k, v] : table) {
    const std::string key(k.str());
    const std::string field = absl::StrCat(path, ".", key);
    if (key == "name" || key == "type") continue;
    if (key == "max_in_flight") {
      ASSIGN_OR_RETURN(out->max_in_flight, r.Int(v, field, 1, 100000));
    } else if (key == "timeout") {
      ASSIGN_OR_RETURN(out->timeout, r.Duration(v, field));
      if (out->timeout <= absl::ZeroDuration()) {
        return r.Error(v, field, "must be more than 0");
      }
    } else if (key == "fallback") {
      ASSIGN_OR_RETURN(out->fallback, r.NonEmptyString(v, field));
    } else if (key == "circuit_failures") {
      ASSIGN_OR_RETURN(out->circuit_failures, r.Int(v, field, 1, 1000000));
    } else if (key == "circuit_probe") {
      ASSIGN_OR_RETURN(out->circuit_probe, r.Duration(v, field));
      if (out->circuit_probe <= absl::ZeroDuration()) {
        return r.Error(v, field, "must be more than 0");
      }
    } else if (key == "resend_unknown") {
      ASSIGN_OR_RETURN(out->resend_unknown, r.Bool(v, field));
    } else {
      const KeySpec* ks = nullptr;
      for (const KeySpec& candidate : spec->keys) {
        if (key == candidate.key) ks = &candidate;
      }
      if (ks == nullptr) {
        std::vector<std::string> known(std::begin(kCommonKeys),
                                       std::end(kCommonKeys));
        for (const KeySpec& s : spec->keys) known.push_back(s.key);
        return r.Error(
            v, field,
            absl::StrCat("unknown key for type ", out->type,
                         " (known: ", absl::StrJoin(known, ", "), ")"));
      }
      switch (ks->kind) {
        case Kind::kString: {
          ASSIGN_OR_RETURN(out->settings[key], r.NonEmptyString(v, field));
          break;
        }
        case Kind::kUrl:
        case Kind::kSmtpUrl: {
          ASSIGN_OR_RETURN(out->settings[key],
                           r.Url(v, field, ks->kind == Kind::kSmtpUrl));
          break;
        }
        case Kind::kSecret: {
          ASSIGN_OR_RETURN(Secret s, r.SecretValue(v, field));
          out->secrets[key] = std::move(s);
          break;
        }
        case Kind::kInt: {
          ASSIGN_OR_RETURN(int64_t i, r.Int(v, field, ks->min, ks->max));
          out->settings[key] = absl::StrCat(i);
          break;
        }
        case Kind::kDuration: {
          ASSIGN_OR_RETURN(absl::Duration d, r.Duration(v, field));
          if (d <= absl::ZeroDuration()) {
            return r.Error(v, field, "must be more than 0");
          }
          out->settings[key] = DurationSetting(d);
          break;
        }
        case Kind::kEnum: {
          ASSIGN_OR_RETURN(std::string s, r.String(v, field));
          const std::vector<std::string> choices =
              absl::StrSplit(ks->choices, '|');
          if (std::find(choices.begin(), choices.end(), s) == choices.end()) {
            return r.Error(
                v, field,
                absl::StrCat("expected one of ", absl::StrJoin(choices, ", ")));
          }
          out->settings[key] = s;
          break;
        }
      }
    }
  }
  // Required keys and defaults.
  for (const KeySpec& ks : spec->keys) {
    const bool present = ks.kind == Kind::kSecret
                             ? out->secrets.count(ks.key) > 0
                             : out->settings.count(ks.key) > 0;
    if (present) continue;
    if (ks.required) {
      return r.ErrorAt(table_line, absl::StrCat(path, ".", ks.key),
                       absl::StrCat("required for type ", out->type));
    }
    if (ks.default_value != nullptr) out->settings[ks.key] = ks.default_value;
  }
  // Per-type rules beyond single keys.
  if (out->type == "webhook") {
    const Secret& secret = out->secrets["secret"];
    std::string key;
    if (!absl::StartsWith(secret.Reveal(), "whsec_") ||
        !absl::Base64Unescape(absl::string_view(secret.Reveal()).substr(6),
                              &key) ||
        key.empty()) {
      return r.Error(*table.get("secret"), path + ".secret",
                     absl::StrCat("the secret from ", secret.source(),
                                  " must be \"whsec_\" followed by a base64 "
                                  "key"));
    }
  }
  if (out->type == "smtp") {
    if (out->settings.count("username") != out->secrets.count("password")) {
      return r.ErrorAt(table_line, path + ".password",
                       "username and password go together");
    }
    if (out->settings["from"].find('@') == std::string::npos) {
      return r.Error(*table.get("from"), path + ".from",
                     "expected an email address");
    }
  }
  return absl::OkStatus();
}

absl::Status LoadProviders(const Reader& r, const toml::node& node,
                           std::vector<ProviderConfig>* out) {
  const toml::array* array = node.as_array();
  if (array != nullptr && array->empty()) {  // providers = []: none
    out->clear();
    return absl::OkStatus();
  }
  if (array == nullptr || !array->is_array_of_tables()) {
    return r.Error(node, "providers",
                   "expected [[providers]] tables (an array of tables)");
  }
  std::vector<ProviderConfig> providers;
  std::vector<FallbackRef> fallbacks;
  std::map<std::string, size_t> by_name;
  for (size_t i = 0; i < array->size(); ++i) {
    const toml::table& table = *array->get(i)->as_table();
    const std::string path = absl::StrCat("providers[", i, "]");
    ProviderConfig p;
    RETURN_IF_ERROR(LoadProvider(r, table, path, &p));
    if (!by_name.emplace(p.name, i).second) {
      return r.Error(*table.get("name"), path + ".name",
                     absl::StrCat("\"", p.name,
                                  "\" is already the name of "
                                  "providers[",
                                  by_name[p.name], "]"));
    }
    if (const toml::node* f = table.get("fallback")) {
      fallbacks.push_back({i, f->source().begin.line});
    }
    providers.push_back(std::move(p));
  }
  // Fallbacks name another provider that shares a channel with this one
  // (messages of channels it cannot send do not fall back), and never lead
  // back to it.
  for (const FallbackRef& ref : fallbacks) {
    const ProviderConfig& p = providers[ref.index];
    const std::string field =
        absl::StrCat("providers[", ref.index, "].fallback");
    if (p.fallback == p.name) {
      return r.ErrorAt(ref.line, field,
                       "a provider cannot fall back to itself");
    }
    std::vector<Channel> channels;
    if (p.fallback == kSimulator) {
      channels = AllChannels();
    } else if (auto it = by_name.find(p.fallback); it != by_name.end()) {
      channels = providers[it->second].channels;
    } else {
      return r.ErrorAt(
          ref.line, field,
          absl::StrCat("no provider is named \"", p.fallback, "\""));
    }
    bool shared = false;
    for (Channel c : p.channels) {
      shared = shared ||
               std::find(channels.begin(), channels.end(), c) != channels.end();
    }
    if (!shared) {
      return r.ErrorAt(
          ref.line, field,
          absl::StrCat("provider \"", p.fallback,
                       "\" sends none of the channels \"", p.name, "\" sends"));
    }
    std::set<std::string> seen = {p.name};
    std::string next = p.fallback;
    while (!next.empty() && next != kSimulator) {
      if (!seen.insert(next).second) {
        return r.ErrorAt(ref.line, field,
                         absl::StrCat("the fallbacks of \"", p.name,
                                      "\" go round in a circle"));
      }
      next = providers[by_name[next]].fallback;
    }
  }
  *out = std::move(providers);
  return absl::OkStatus();
}

// The top-level keys, by name. Each applies its value to `s`.
using Apply = std::function<absl::Status(const Reader&, const toml::node&,
                                         const std::string&, Settings*)>;

absl::Status ExistingFile(const Reader& r, const toml::node& node,
                          const std::string& key, const std::string& path) {
  if (!r.FileExists(path)) {
    return r.Error(node, key, absl::StrCat("cannot read file ", path));
  }
  return absl::OkStatus();
}

const std::map<std::string, Apply>& TopLevelKeys() {
  static const auto* const kKeys = new std::map<std::string, Apply>{
      {"listen",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(s->listen, r.NonEmptyString(n, k));
         return absl::OkStatus();
       }},
      {"db",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(s->db, r.NonEmptyString(n, k));
         if (absl::StatusOr<DatabaseLocation> where =
                 ParseDatabaseLocation(s->db);
             !where.ok()) {
           return r.Error(n, k, where.status().message());
         }
         return absl::OkStatus();
       }},
      {"db_password",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(s->db_password, r.SecretValue(n, k));
         return absl::OkStatus();
       }},
      {"http_listen",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(s->http_listen, r.NonEmptyString(n, k));
         return absl::OkStatus();
       }},
      {"threads",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(s->threads, r.Int(n, k, 0, 1024));
         return absl::OkStatus();
       }},
      {"sync_full",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(s->sync_full, r.Bool(n, k));
         return absl::OkStatus();
       }},
      {"skip_check",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(s->skip_check, r.Bool(n, k));
         return absl::OkStatus();
       }},
      {"log_format",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(s->log_format, r.NonEmptyString(n, k));
         if (s->log_format != "text" && s->log_format != "json") {
           return r.Error(n, k, "expected \"text\" or \"json\"");
         }
         return absl::OkStatus();
       }},
      {"log_level",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(s->log_level, r.NonEmptyString(n, k));
         static const std::set<std::string> kLevels = {"debug", "info", "warn",
                                                       "error", "critical"};
         if (kLevels.count(s->log_level) == 0) {
           return r.Error(n, k,
                          "expected debug, info, warn, error or critical");
         }
         return absl::OkStatus();
       }},
      {"metrics",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(s->metrics, r.Bool(n, k));
         return absl::OkStatus();
       }},
      {"tls_cert",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(s->tls_cert, r.NonEmptyString(n, k));
         return ExistingFile(r, n, k, s->tls_cert);
       }},
      {"tls_key",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(s->tls_key, r.NonEmptyString(n, k));
         return ExistingFile(r, n, k, s->tls_key);
       }},
      {"shutdown_timeout",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(s->shutdown_timeout, r.Duration(n, k));
         return absl::OkStatus();
       }},
      {"receipt_timeout",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(s->receipt_timeout, r.Duration(n, k));
         return absl::OkStatus();
       }},
      {"lease_ttl",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(s->lease_ttl, r.Duration(n, k));
         if (s->lease_ttl < kLeaseTtlMin || s->lease_ttl > kLeaseTtlMax) {
           return r.Error(n, k, LeaseTtlRange());
         }
         return absl::OkStatus();
       }},
      {"max_attempts",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(s->max_attempts, r.Int(n, k, 1, 100));
         return absl::OkStatus();
       }},
      {"error_threshold",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(s->error_threshold, r.Number(n, k, 0, 1));
         return absl::OkStatus();
       }},
      {"key_rate",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(s->key_rate, r.Number(n, k, 0, 1e9));
         return absl::OkStatus();
       }},
      {"key_burst",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(s->key_burst, r.Int(n, k, 1, 1000000));
         return absl::OkStatus();
       }},
      {"simulator_seed",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(int64_t seed,
                          r.Int(n, k, 0, std::numeric_limits<int64_t>::max()));
         s->simulator_seed = static_cast<uint64_t>(seed);
         return absl::OkStatus();
       }},
      {"simulator_log",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(s->simulator_log, r.NonEmptyString(n, k));
         return absl::OkStatus();
       }},
      {"simulator_config",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         ASSIGN_OR_RETURN(s->simulator_config, r.NonEmptyString(n, k));
         return ExistingFile(r, n, k, s->simulator_config);
       }},
      {"simulator",
       [](const Reader& r, const toml::node& n, const std::string& k,
          Settings* s) -> absl::Status {
         const toml::array* a = n.as_array();
         if (a == nullptr) return r.Error(n, k, "expected an array of strings");
         std::vector<std::string> specs;
         for (size_t i = 0; i < a->size(); ++i) {
           const toml::node& item = *a->get(i);
           const std::string field = absl::StrCat(k, "[", i, "]");
           ASSIGN_OR_RETURN(std::string spec, r.NonEmptyString(item, field));
           if (r.options().check_simulator_spec) {
             if (absl::Status st = r.options().check_simulator_spec(spec);
                 !st.ok()) {
               return r.Error(item, field, st.message());
             }
           }
           specs.push_back(std::move(spec));
         }
         s->simulator = std::move(specs);
         return absl::OkStatus();
       }},
  };
  return *kKeys;
}

// libpq's keyword/value form ("host=db dbname=c"): a keyword, then '='
// (perhaps after blanks), at the start.
bool LooksLikeConninfo(absl::string_view db) {
  db = absl::StripLeadingAsciiWhitespace(db);
  size_t i = 0;
  while (i < db.size() && (absl::ascii_isalpha(db[i]) || db[i] == '_')) ++i;
  if (i == 0) return false;
  db.remove_prefix(i);
  db = absl::StripLeadingAsciiWhitespace(db);
  return absl::StartsWith(db, "=");
}

}  // namespace

std::vector<Channel> ChannelsOfType(absl::string_view type) {
  const TypeSpec* spec = FindType(type);
  return spec == nullptr ? std::vector<Channel>() : spec->channels;
}

std::string ProviderConfig::Get(absl::string_view key) const {
  auto it = settings.find(std::string(key));
  return it == settings.end() ? std::string() : it->second;
}

int64_t ProviderConfig::GetInt(absl::string_view key) const {
  int64_t v = 0;
  if (!absl::SimpleAtoi(Get(key), &v)) return 0;
  return v;
}

absl::Duration ProviderConfig::GetDuration(absl::string_view key) const {
  absl::Duration d;
  if (!absl::ParseDuration(Get(key), &d)) return absl::ZeroDuration();
  return d;
}

const Secret& ProviderConfig::GetSecret(absl::string_view key) const {
  static const Secret* const kEmpty = new Secret();
  auto it = secrets.find(std::string(key));
  return it == secrets.end() ? *kEmpty : it->second;
}

std::string ProviderFingerprint(const ProviderConfig& p) {
  // One "key=value" line each, in a fixed order (maps are ordered); values
  // are length-prefixed so no choice of values can forge another's lines.
  std::string canonical;
  const auto add = [&canonical](absl::string_view key, absl::string_view v) {
    absl::StrAppend(&canonical, key, "=", v.size(), ":", v, "\n");
  };
  add("name", p.name);
  add("type", p.type);
  std::vector<std::string> channels;
  for (Channel c : p.channels) channels.emplace_back(ChannelName(c));
  add("channels", absl::StrJoin(channels, ","));
  add("max_in_flight", absl::StrCat(p.max_in_flight));
  add("timeout", absl::FormatDuration(p.timeout));
  add("fallback", p.fallback);
  add("circuit_failures", absl::StrCat(p.circuit_failures));
  add("circuit_probe", absl::FormatDuration(p.circuit_probe));
  add("resend_unknown", p.resend_unknown ? "true" : "false");
  for (const auto& [key, value] : p.settings) add("setting." + key, value);
  for (const auto& [key, secret] : p.secrets) {
    add("secret." + key, secret.source());
  }
  return Sha256Hex(canonical).substr(0, 16);
}

absl::StatusOr<DatabaseLocation> ParseDatabaseLocation(absl::string_view db) {
  DatabaseLocation where;
  if (absl::StartsWith(db, "postgresql://") ||
      absl::StartsWith(db, "postgres://")) {
    where.engine = DatabaseLocation::Engine::kPostgres;
    where.target = std::string(db);
    return where;
  }
  absl::string_view path = db;
  if (absl::ConsumePrefix(&path, "sqlite:")) {
    // sqlite:PATH; PATH as given (relative, or absolute).
  } else if (LooksLikeConninfo(db)) {
    // Not repeated: it may hold a password.
    return absl::InvalidArgumentError(
        "a keyword=value connection string (host=... dbname=...) is not "
        "taken: give PostgreSQL as a postgresql://... URI (or a file of "
        "that name as sqlite:PATH)");
  } else if (const size_t scheme = db.find("://");
             scheme != absl::string_view::npos && scheme > 0 &&
             std::all_of(db.begin(), db.begin() + scheme, [](char c) {
               return absl::ascii_isalnum(c) || c == '+' || c == '-' ||
                      c == '.';
             })) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown scheme \"", db.substr(0, scheme),
                     "\": give a file path, sqlite:PATH or postgresql://..."));
  }
  if (path.empty()) {
    return absl::InvalidArgumentError("empty SQLite file path");
  }
  where.target = std::string(path);
  return where;
}

std::optional<absl::Duration> ParseDurationText(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (text.empty()) return std::nullopt;
  double seconds;
  if (absl::SimpleAtod(text, &seconds)) {
    if (!(seconds >= 0) || seconds > 1e12) return std::nullopt;
    return absl::Seconds(seconds);
  }
  absl::Duration d;
  if (!absl::ParseDuration(text, &d) || d < absl::ZeroDuration() ||
      d == absl::InfiniteDuration()) {
    return std::nullopt;
  }
  return d;
}

void AddFlags(CLI::App& app, Settings* s, std::string* config_file) {
  app.add_option("--config", *config_file,
                 "TOML config file: every flag as a key (listen, db, ...) "
                 "and the [[providers]]; flags given here win over it")
      ->check(CLI::ExistingFile);
  app.add_option("--listen", s->listen, "address to serve gRPC on")
      ->capture_default_str();
  app.add_option("--http-listen", s->http_listen,
                 "address of the HTTP listener (webhooks, /metrics, "
                 "/healthz, /readyz)")
      ->capture_default_str();
  app.add_option("--db", s->db,
                 "the database: a SQLite file (a path or sqlite:PATH), or a "
                 "PostgreSQL server (postgresql://...)")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            absl::StatusOr<DatabaseLocation> where =
                ParseDatabaseLocation(text);
            return where.ok() ? std::string()
                              : std::string(where.status().message());
          },
          "DB"));
  app.add_option(
         "--threads", s->threads,
         "completion queues (one polling thread each); 0 = one per core")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  app.add_flag("--sync-full", s->sync_full,
               "SQLite synchronous=FULL (survives power loss; slower)");
  app.add_flag("--skip-check", s->skip_check,
               "start without checking the database (PRAGMA quick_check)");
  app.add_option("--log-format", s->log_format,
                 "log lines as text or json (one object per line)")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--log-level", s->log_level,
                 "lowest level logged: debug, info, warn, error, critical")
      ->capture_default_str()
      ->check(CLI::IsMember({"debug", "info", "warn", "error", "critical"}));
  app.add_flag("--metrics,!--no-metrics", s->metrics,
               "count and serve Prometheus metrics at /metrics (default on)");
  app.add_option("--tls-cert", s->tls_cert, "PEM certificate chain")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", s->tls_key, "PEM private key")
      ->check(CLI::ExistingFile);
  const CLI::Validator duration(
      [](std::string& text) -> std::string {
        return ParseDurationText(text)
                   ? std::string()
                   : "expected seconds or a duration like 10s, 500ms, 1m";
      },
      "DURATION");
  app.add_option_function<std::string>(
         "--shutdown-timeout",
         [s](const std::string& v) {
           s->shutdown_timeout = *ParseDurationText(v);
         },
         "seconds (or a duration like 10s) in-flight calls get to finish on "
         "SIGINT/SIGTERM")
      ->default_str("10")
      ->check(duration);
  app.add_option_function<std::string>(
         "--receipt-timeout",
         [s](const std::string& v) {
           s->receipt_timeout = *ParseDurationText(v);
         },
         "seconds (or a duration like 1h) a sent campaign waits for "
         "receipts before it completes")
      ->default_str("3600")
      ->check(duration);
  app.add_option_function<std::string>(
         "--lease-ttl",
         [s](const std::string& v) { s->lease_ttl = *ParseDurationText(v); },
         "PostgreSQL: seconds (or a duration like 10s) a dead instance's "
         "leases outlive its last heartbeat; others take its work over then")
      ->default_str("10")
      ->check(duration)
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            const std::optional<absl::Duration> d = ParseDurationText(text);
            return d && (*d < kLeaseTtlMin || *d > kLeaseTtlMax)
                       ? LeaseTtlRange()
                       : std::string();
          },
          "LEASE_TTL"));
  app.add_option("--max-attempts", s->max_attempts,
                 "provider calls per message before a transient failure is "
                 "final")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--error-threshold", s->error_threshold,
                 "auto-pause when this share of the last 100 outcomes failed "
                 "(0 = never)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--key-rate", s->key_rate,
                 "requests a second each API key may make (0 = no limit); "
                 "over it a call gets RESOURCE_EXHAUSTED with retry-after")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--key-burst", s->key_burst,
                 "requests an idle API key may make at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_option("--simulator-seed", s->simulator_seed,
                 "seed of the simulator's outcomes")
      ->capture_default_str();
  app.add_option("--simulator-log", s->simulator_log,
                 "append every simulated send to this file as JSON lines");
  app.add_option("--simulator-config", s->simulator_config,
                 "file of simulator settings: one CHANNEL:key=value,... or "
                 "default:key=value,... per line (# comments); --simulator "
                 "flags apply after it")
      ->check(CLI::ExistingFile);
  app.add_option(
      "--simulator", s->simulator,
      "simulator settings, CHANNEL:key=value,... or default:key=value,... "
      "(keys: latency, transient, permanent, accepted_rate, delivered, read, "
      "delivered_delay, read_delay); repeatable");
}

std::set<std::string> GivenKeys(const CLI::App& app) {
  std::set<std::string> keys;
  for (const CLI::Option* option : app.get_options()) {
    if (option->count() == 0 || option->get_lnames().empty()) continue;
    const std::string& name = option->get_lnames().front();
    if (name == "config" || name == "help") continue;
    keys.insert(absl::StrReplaceAll(name, {{"-", "_"}}));
  }
  return keys;
}

absl::Status LoadString(absl::string_view text, absl::string_view filename,
                        const std::set<std::string>& given,
                        const LoadOptions& options, Settings* settings) {
  toml::table root;
  try {
    root = toml::parse(std::string_view(text.data(), text.size()),
                       std::string_view(filename.data(), filename.size()));
  } catch (const toml::parse_error& e) {
    const std::string_view description = e.description();
    return absl::InvalidArgumentError(absl::StrCat(
        filename, ":", e.source().begin.line, ":", e.source().begin.column,
        ": ", absl::string_view(description.data(), description.size())));
  }
  const Reader r(filename, options);
  for (auto&& [k, v] : root) {
    const std::string key(k.str());
    if (key == "providers") {
      RETURN_IF_ERROR(LoadProviders(r, v, &settings->providers));
      continue;
    }
    auto it = TopLevelKeys().find(key);
    if (it == TopLevelKeys().end()) {
      const absl::string_view hint =
          v.is_table() ? " (providers are [[providers]] tables)" : "";
      return r.Error(v, key, absl::StrCat("unknown key", hint));
    }
    // Checked even when a flag overrides it: the file must be valid.
    Settings scratch;
    Settings* target = given.count(key) > 0 ? &scratch : settings;
    RETURN_IF_ERROR(it->second(r, v, key, target));
  }
  return absl::OkStatus();
}

absl::Status LoadFile(const std::string& path,
                      const std::set<std::string>& given,
                      const LoadOptions& options, Settings* settings) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return LoadString(ss.str(), path, given, options, settings);
}

}  // namespace campaigns::config
