// The config file loader: every key, every error class naming key and line,
// flags winning over the file, env:/file: secrets, durations, and the
// example file at the repository's root.
#include "server/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace campaigns::config {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Secrets and files come from these maps, not the machine.
struct FakeWorld {
  std::map<std::string, std::string> env = {
      {"WA_TOKEN", "wa-token-value"},
      {"WA_APP_SECRET", "wa-app-secret-value"},
      {"WA_VERIFY", "wa-verify-value"},
      {"EMPTY", ""},
      {"HOOK_SECRET", "whsec_c2VjcmV0LWtleQ=="},
      {"BAD_HOOK_SECRET", "not-a-whsec-value"}};
  std::map<std::string, std::string> files = {
      {"/run/secrets/tg", "tg-token-value\n"},
      {"/run/secrets/empty", "\n"},
      {"/etc/campaignd/cert.pem", "PEM"},
      {"/etc/campaignd/key.pem", "PEM"}};

  LoadOptions Options() const {
    LoadOptions o;
    o.getenv = [this](const std::string& name) -> std::optional<std::string> {
      auto it = env.find(name);
      if (it == env.end()) return std::nullopt;
      return it->second;
    };
    o.read_file =
        [this](const std::string& path) -> absl::StatusOr<std::string> {
      auto it = files.find(path);
      if (it == files.end()) return absl::NotFoundError("no such file");
      return it->second;
    };
    o.file_exists = [this](const std::string& path) {
      return files.count(path) > 0;
    };
    o.check_simulator_spec = [](absl::string_view spec) {
      if (spec.find(':') == absl::string_view::npos) {
        return absl::InvalidArgumentError("expected CHANNEL:key=value,...");
      }
      return absl::OkStatus();
    };
    return o;
  }
};

absl::Status Load(const std::string& text, Settings* s,
                  const std::set<std::string>& given = {}) {
  static const FakeWorld* const world = new FakeWorld();
  return LoadString(text, "campaignd.toml", given, world->Options(), s);
}

TEST(ConfigTest, EmptyFileKeepsDefaults) {
  Settings s;
  ASSERT_TRUE(Load("", &s).ok());
  EXPECT_EQ(s.listen, "127.0.0.1:50051");
  EXPECT_EQ(s.http_listen, "127.0.0.1:9090");
  EXPECT_EQ(s.db, "./campaignd.db");
  EXPECT_EQ(s.shutdown_timeout, absl::Seconds(10));
  EXPECT_EQ(s.receipt_timeout, absl::Hours(1));
  EXPECT_TRUE(s.providers.empty());
}

TEST(ConfigTest, EmptyProvidersArray) {
  Settings s;
  ASSERT_TRUE(Load("providers = []\n", &s).ok());
  EXPECT_TRUE(s.providers.empty());
  EXPECT_EQ(Load("providers = [1]\n", &s).message(),
            "campaignd.toml:1: providers: expected [[providers]] tables (an "
            "array of tables)");
}

TEST(ConfigTest, EveryTopLevelKey) {
  Settings s;
  const absl::Status st = Load(R"(
listen = "0.0.0.0:50052"
db = "/var/lib/campaignd.db"
http_listen = "0.0.0.0:9091"
threads = 3
sync_full = true
skip_check = true
tls_cert = "/etc/campaignd/cert.pem"
tls_key = "/etc/campaignd/key.pem"
shutdown_timeout = "500ms"
receipt_timeout = 90
lease_ttl = "4s"
max_attempts = 7
error_threshold = 0.25
key_rate = 50
key_burst = 60
simulator_seed = 42
simulator_log = "/tmp/sim.log"
simulator = ["default:latency=5ms", "sms:permanent=0.1"]
db_password = "file:/run/secrets/tg"
)",
                               &s);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(s.db_password.source(), "file:/run/secrets/tg");
  EXPECT_EQ(s.db_password.Reveal(), "tg-token-value");
  EXPECT_EQ(s.listen, "0.0.0.0:50052");
  EXPECT_EQ(s.db, "/var/lib/campaignd.db");
  EXPECT_EQ(s.http_listen, "0.0.0.0:9091");
  EXPECT_EQ(s.threads, 3);
  EXPECT_TRUE(s.sync_full);
  EXPECT_TRUE(s.skip_check);
  EXPECT_EQ(s.tls_cert, "/etc/campaignd/cert.pem");
  EXPECT_EQ(s.tls_key, "/etc/campaignd/key.pem");
  EXPECT_EQ(s.shutdown_timeout, absl::Milliseconds(500));
  EXPECT_EQ(s.receipt_timeout, absl::Seconds(90));
  EXPECT_EQ(s.lease_ttl, absl::Seconds(4));
  EXPECT_EQ(s.max_attempts, 7);
  EXPECT_DOUBLE_EQ(s.error_threshold, 0.25);
  EXPECT_DOUBLE_EQ(s.key_rate, 50);
  EXPECT_EQ(s.key_burst, 60);
  EXPECT_EQ(s.simulator_seed, 42u);
  EXPECT_EQ(s.simulator_log, "/tmp/sim.log");
  EXPECT_THAT(s.simulator, ::testing::ElementsAre("default:latency=5ms",
                                                  "sms:permanent=0.1"));
}

TEST(ConfigTest, Durations) {
  struct Case {
    std::string value;
    absl::Duration want;
  } cases[] = {
      {"10", absl::Seconds(10)},      {"2.5", absl::Milliseconds(2500)},
      {"\"10s\"", absl::Seconds(10)}, {"\"500ms\"", absl::Milliseconds(500)},
      {"\"1m\"", absl::Minutes(1)},   {"\"1h30m\"", absl::Minutes(90)},
      {"\"15\"", absl::Seconds(15)}};
  for (const Case& c : cases) {
    Settings s;
    absl::Status st = Load("receipt_timeout = " + c.value, &s);
    ASSERT_TRUE(st.ok()) << c.value << ": " << st;
    EXPECT_EQ(s.receipt_timeout, c.want) << c.value;
  }
  EXPECT_EQ(ParseDurationText("1m"), absl::Minutes(1));
  EXPECT_EQ(ParseDurationText("-1s"), std::nullopt);
  EXPECT_EQ(ParseDurationText("soon"), std::nullopt);
  EXPECT_EQ(ParseDurationText("inf"), std::nullopt);
}

constexpr char kWhatsapp[] = R"(
[[providers]]
name = "meta"
type = "whatsapp_cloud"
phone_number_id = "106540352242922"
access_token = "env:WA_TOKEN"
app_secret = "env:WA_APP_SECRET"
verify_token = "env:WA_VERIFY"
max_in_flight = 64
timeout = "5s"
)";

TEST(ConfigTest, ProviderWithSecretsAndDefaults) {
  Settings s;
  const absl::Status st = Load(kWhatsapp, &s);
  ASSERT_TRUE(st.ok()) << st;
  ASSERT_EQ(s.providers.size(), 1u);
  const ProviderConfig& p = s.providers[0];
  EXPECT_EQ(p.name, "meta");
  EXPECT_EQ(p.type, "whatsapp_cloud");
  EXPECT_EQ(p.channels, std::vector<Channel>{Channel::kWhatsapp});
  EXPECT_EQ(p.Get("base_url"), "https://graph.facebook.com/v21.0");
  EXPECT_EQ(p.Get("phone_number_id"), "106540352242922");
  EXPECT_EQ(p.GetSecret("access_token").Reveal(), "wa-token-value");
  EXPECT_EQ(p.GetSecret("access_token").source(), "env:WA_TOKEN");
  EXPECT_EQ(p.max_in_flight, 64);
  EXPECT_EQ(p.timeout, absl::Seconds(5));
  EXPECT_EQ(p.circuit_failures, 20);
  EXPECT_EQ(p.circuit_probe, absl::Seconds(30));
  EXPECT_FALSE(p.resend_unknown);
  EXPECT_TRUE(p.fallback.empty());
}

// Two instances configuring one provider name: alike whatever the order of
// keys, different when any setting differs; a secret counts by its source,
// never its value.
TEST(ConfigTest, ProviderFingerprintTellsConfigurationsApart) {
  Settings s;
  ASSERT_TRUE(Load(kWhatsapp, &s).ok());
  const ProviderConfig p = s.providers[0];
  const std::string f = ProviderFingerprint(p);
  EXPECT_EQ(f.size(), 16u);
  EXPECT_EQ(ProviderFingerprint(p), f);
  ProviderConfig other = p;
  other.settings["phone_number_id"] = "999";
  EXPECT_NE(ProviderFingerprint(other), f);
  other = p;
  other.timeout = absl::Seconds(6);
  EXPECT_NE(ProviderFingerprint(other), f);
  other = p;
  other.secrets["access_token"] = Secret("env:WA_TOKEN", "another-value");
  EXPECT_EQ(ProviderFingerprint(other), f);
  other.secrets["access_token"] = Secret("env:OTHER", "wa-token-value");
  EXPECT_NE(ProviderFingerprint(other), f);
  // A value cannot pass for a key: length-prefixed.
  other = p;
  other.settings.clear();
  other.settings["a"] = "1\nsetting.b=1:2";
  ProviderConfig forged = p;
  forged.settings.clear();
  forged.settings["a"] = "1";
  forged.settings["b"] = "2";
  EXPECT_NE(ProviderFingerprint(other), ProviderFingerprint(forged));
  EXPECT_EQ(f.find("wa-token-value"), std::string::npos);
}

TEST(ConfigTest, SecretNeverPrints) {
  Settings s;
  ASSERT_TRUE(Load(kWhatsapp, &s).ok());
  std::ostringstream out;
  out << s.providers[0].GetSecret("access_token");
  EXPECT_EQ(out.str(), "<secret env:WA_TOKEN>");
}

TEST(ConfigTest, FileSecretLosesTrailingNewline) {
  Settings s;
  const absl::Status st = Load(R"(
[[providers]]
name = "tg"
type = "telegram"
bot_token = "file:/run/secrets/tg"
webhook_secret = "env:WA_VERIFY"
)",
                               &s);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(s.providers[0].GetSecret("bot_token").Reveal(), "tg-token-value");
  EXPECT_EQ(s.providers[0].Get("base_url"), "https://api.telegram.org");
}

// Default LoadOptions: the real environment and file system.
TEST(ConfigTest, RealEnvironmentAndFiles) {
  ASSERT_EQ(setenv("CAMPAIGND_CONFIG_TEST_TOKEN", "real-env-token", 1), 0);
  char path[] = "/tmp/campaignd-config-test-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "real-file-token\r\n", 17), 17);
  close(fd);
  Settings s;
  const absl::Status st = LoadString(
      absl::StrCat("[[providers]]\nname = \"tg\"\ntype = \"telegram\"\n",
                   "bot_token = \"env:CAMPAIGND_CONFIG_TEST_TOKEN\"\n",
                   "webhook_secret = \"file:", path, "\"\n"),
      "real.toml", {}, LoadOptions(), &s);
  unlink(path);
  unsetenv("CAMPAIGND_CONFIG_TEST_TOKEN");
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(s.providers[0].GetSecret("bot_token").Reveal(), "real-env-token");
  EXPECT_EQ(s.providers[0].GetSecret("webhook_secret").Reveal(),
            "real-file-token");
  Settings missing;
  EXPECT_EQ(LoadString("tls_cert = \"/nonexistent/cert.pem\"\n", "real.toml",
                       {}, LoadOptions(), &missing)
                .message(),
            "real.toml:1: tls_cert: cannot read file /nonexistent/cert.pem");
}

TEST(ConfigTest, TypesDefaultsAndChannels) {
  Settings s;
  const absl::Status st = Load(R"(
[[providers]]
name = "smpp-1"
type = "smpp"
host = "smsc.example.com"
system_id = "acme"
password = "env:WA_TOKEN"
enquire_link = 15

[[providers]]
name = "mail"
type = "smtp"
url = "smtps://mail.example.com:465"
from = "news@example.com"
ca_file = "/etc/ssl/private-ca.pem"

[[providers]]
name = "tw"
type = "twilio"
account_sid = "AC123"
auth_token = "env:WA_TOKEN"
public_url = "https://hooks.example.com/"
fallback = "smpp-1"
)",
                               &s);
  ASSERT_TRUE(st.ok()) << st;
  ASSERT_EQ(s.providers.size(), 3u);
  EXPECT_EQ(s.providers[0].GetInt("port"), 2775);
  EXPECT_EQ(s.providers[0].GetInt("window"), 10);
  EXPECT_EQ(s.providers[0].GetDuration("enquire_link"), absl::Seconds(15));
  EXPECT_EQ(s.providers[1].Get("starttls"), "required");
  EXPECT_EQ(s.providers[1].Get("ca_file"), "/etc/ssl/private-ca.pem");
  EXPECT_EQ(s.providers[1].channels, std::vector<Channel>{Channel::kEmail});
  EXPECT_EQ(s.providers[2].Get("base_url"), "https://api.twilio.com");
  EXPECT_EQ(s.providers[2].Get("public_url"), "https://hooks.example.com");
  EXPECT_EQ(s.providers[2].channels,
            (std::vector<Channel>{Channel::kSms, Channel::kWhatsapp}));
  EXPECT_EQ(s.providers[2].fallback, "smpp-1");
}

// Each bad file: the message names the file, the line and the key, and
// never a secret's value.
TEST(ConfigTest, ErrorsNameKeyAndLine) {
  struct Case {
    std::string name;
    std::string text;
    std::string want;  // the message starts with this
  } cases[] = {
      {"unknown top-level key", "listen = \"a:1\"\nlisen = \"b:2\"\n",
       "campaignd.toml:2: lisen: unknown key"},
      {"wrong type", "\n\nthreads = \"four\"\n",
       "campaignd.toml:3: threads: expected an integer"},
      {"out of range", "max_attempts = 0\n",
       "campaignd.toml:1: max_attempts: must be between 1 and 100"},
      {"bad duration", "shutdown_timeout = \"soon\"\n",
       "campaignd.toml:1: shutdown_timeout: expected a duration like \"10s\""},
      {"negative duration", "receipt_timeout = -5\n",
       "campaignd.toml:1: receipt_timeout: expected a duration"},
      {"lease ttl too short", "lease_ttl = \"500ms\"\n",
       "campaignd.toml:1: lease_ttl: expected a duration from 2s to 5m"},
      {"bool", "sync_full = \"yes\"\n",
       "campaignd.toml:1: sync_full: expected true or false"},
      {"db with an unknown scheme", "db = \"mysql://u:pw@h/db\"\n",
       "campaignd.toml:1: db: unknown scheme \"mysql\""},
      {"empty sqlite: path", "db = \"sqlite:\"\n",
       "campaignd.toml:1: db: empty SQLite file path"},
      {"literal db_password", "db_password = \"hunter2\"\n",
       "campaignd.toml:1: db_password: a secret is written \"env:NAME\" or "
       "\"file:/path\""},
      {"unset db_password", "db_password = \"env:NOT_SET\"\n",
       "campaignd.toml:1: db_password: environment variable NOT_SET is not "
       "set or empty"},
      {"missing tls file", "tls_cert = \"/nope.pem\"\n",
       "campaignd.toml:1: tls_cert: cannot read file /nope.pem"},
      {"simulator spec", "simulator = [\"sms:latency=1ms\", \"bogus\"]\n",
       "campaignd.toml:1: simulator[1]: expected CHANNEL:key=value"},
      {"providers not an array", "[providers]\nname = \"x\"\n",
       "campaignd.toml:1: providers: expected [[providers]] tables"},
      {"missing name", "[[providers]]\ntype = \"slack\"\n",
       "campaignd.toml:1: providers[0].name: required"},
      {"missing type", "[[providers]]\nname = \"x\"\n",
       "campaignd.toml:1: providers[0].type: required"},
      {"unknown type", "[[providers]]\nname = \"x\"\ntype = \"fax\"\n",
       "campaignd.toml:3: providers[0].type: expected one of simulator, "
       "whatsapp_cloud"},
      {"bad name",
       "[[providers]]\nname = \"Big Name\"\ntype = \"slack\"\nbot_token = "
       "\"env:WA_TOKEN\"\n",
       "campaignd.toml:2: providers[0].name: must be 1 to 64 of a-z"},
      {"simulator name",
       "[[providers]]\nname = \"simulator\"\ntype = \"webhook\"\n",
       "campaignd.toml:2: providers[0].name: \"simulator\" is the built-in"},
      {"simulator type",
       "[[providers]]\nname = \"sim2\"\ntype = \"simulator\"\n",
       "campaignd.toml:3: providers[0].type: the simulator is built in"},
      {"unknown provider key",
       "[[providers]]\nname = \"s\"\ntype = \"slack\"\nbot_token = "
       "\"env:WA_TOKEN\"\nchannel = \"general\"\n",
       "campaignd.toml:5: providers[0].channel: unknown key for type slack"},
      {"missing required key",
       "[[providers]]\nname = \"s\"\ntype = \"slack\"\n",
       "campaignd.toml:1: providers[0].bot_token: required for type slack"},
      {"literal secret",
       "[[providers]]\nname = \"s\"\ntype = \"slack\"\nbot_token = "
       "\"xoxb-literal-token\"\n",
       "campaignd.toml:4: providers[0].bot_token: a secret is written "
       "\"env:NAME\" or \"file:/path\""},
      {"unset env secret",
       "[[providers]]\nname = \"s\"\ntype = \"slack\"\nbot_token = "
       "\"env:NOT_SET\"\n",
       "campaignd.toml:4: providers[0].bot_token: environment variable "
       "NOT_SET is not set or empty"},
      {"empty env secret",
       "[[providers]]\nname = \"s\"\ntype = \"slack\"\nbot_token = "
       "\"env:EMPTY\"\n",
       "campaignd.toml:4: providers[0].bot_token: environment variable EMPTY"},
      {"unreadable file secret",
       "[[providers]]\nname = \"s\"\ntype = \"slack\"\nbot_token = "
       "\"file:/run/secrets/none\"\n",
       "campaignd.toml:4: providers[0].bot_token: cannot read "
       "/run/secrets/none"},
      {"empty file secret",
       "[[providers]]\nname = \"s\"\ntype = \"slack\"\nbot_token = "
       "\"file:/run/secrets/empty\"\n",
       "campaignd.toml:4: providers[0].bot_token: file /run/secrets/empty is "
       "empty"},
      {"provider duration",
       "[[providers]]\nname = \"s\"\ntype = \"slack\"\nbot_token = "
       "\"env:WA_TOKEN\"\ntimeout = \"fast\"\n",
       "campaignd.toml:5: providers[0].timeout: expected a duration like "
       "\"10s\""},
      {"provider int type",
       "[[providers]]\nname = \"s\"\ntype = \"slack\"\nbot_token = "
       "\"env:WA_TOKEN\"\nmax_in_flight = 2.5\n",
       "campaignd.toml:5: providers[0].max_in_flight: expected an integer"},
      {"bad url",
       "[[providers]]\nname = \"s\"\ntype = \"slack\"\nbot_token = "
       "\"env:WA_TOKEN\"\nbase_url = \"slack.com\"\n",
       "campaignd.toml:5: providers[0].base_url: expected an http:// or "
       "https:// URL"},
      {"bad enum",
       "[[providers]]\nname = \"m\"\ntype = \"smtp\"\nurl = "
       "\"smtp://h:587\"\nfrom = \"a@b.c\"\nstarttls = \"maybe\"\n",
       "campaignd.toml:6: providers[0].starttls: expected one of required, "
       "try, never"},
      {"duplicate name",
       "[[providers]]\nname = \"s\"\ntype = \"slack\"\nbot_token = "
       "\"env:WA_TOKEN\"\n[[providers]]\nname = \"s\"\ntype = "
       "\"slack\"\nbot_token = \"env:WA_TOKEN\"\n",
       "campaignd.toml:6: providers[1].name: \"s\" is already the name of "
       "providers[0]"},
      {"unknown fallback",
       "[[providers]]\nname = \"s\"\ntype = \"slack\"\nbot_token = "
       "\"env:WA_TOKEN\"\nfallback = \"other\"\n",
       "campaignd.toml:5: providers[0].fallback: no provider is named "
       "\"other\""},
      {"fallback of another channel",
       "[[providers]]\nname = \"s\"\ntype = \"slack\"\nbot_token = "
       "\"env:WA_TOKEN\"\nfallback = \"t\"\n[[providers]]\nname = \"t\"\ntype "
       "= \"telegram\"\nbot_token = \"env:WA_TOKEN\"\nwebhook_secret = "
       "\"env:WA_TOKEN\"\n",
       "campaignd.toml:5: providers[0].fallback: provider \"t\" sends none "
       "of the channels \"s\" sends"},
      {"fallback circle",
       "[[providers]]\nname = \"a\"\ntype = \"slack\"\nbot_token = "
       "\"env:WA_TOKEN\"\nfallback = \"b\"\n[[providers]]\nname = \"b\"\ntype "
       "= \"slack\"\nbot_token = \"env:WA_TOKEN\"\nfallback = \"a\"\n",
       "campaignd.toml:5: providers[0].fallback: the fallbacks of \"a\" go "
       "round in a circle"},
      {"webhook secret format",
       "[[providers]]\nname = \"h\"\ntype = \"webhook\"\nurl = "
       "\"https://x.example\"\nsecret = \"env:BAD_HOOK_SECRET\"\n",
       "campaignd.toml:5: providers[0].secret: the secret from "
       "env:BAD_HOOK_SECRET must be \"whsec_\""},
      {"syntax error", "listen = \"a:1\"\ndb = \n", "campaignd.toml:2:"},
      {"duplicate key", "listen = \"a:1\"\nlisten = \"b:1\"\n",
       "campaignd.toml:2:"},
  };
  for (const Case& c : cases) {
    Settings s;
    const absl::Status st = Load(c.text, &s);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(std::string(st.message()), ::testing::StartsWith(c.want))
        << c.name;
    for (const char* secret :
         {"wa-token-value", "not-a-whsec-value", "xoxb-literal-token"}) {
      EXPECT_THAT(std::string(st.message()), Not(HasSubstr(secret))) << c.name;
    }
  }
}

TEST(ConfigTest, SyntaxErrorNamesLineAndColumn) {
  Settings s;
  const absl::Status st = Load("listen = \"a:1\"\ndb = \n", &s);
  EXPECT_THAT(std::string(st.message()),
              ::testing::MatchesRegex("campaignd\\.toml:2:[0-9]+: .+"));
}

TEST(ConfigTest, FallbackToSimulatorAndSameChannel) {
  Settings s;
  const absl::Status st = Load(R"(
[[providers]]
name = "a"
type = "slack"
bot_token = "env:WA_TOKEN"
fallback = "b"

[[providers]]
name = "b"
type = "webhook"
url = "https://hooks.example.com/in"
secret = "env:HOOK_SECRET"
fallback = "simulator"
)",
                               &s);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(s.providers[1].GetSecret("secret").Reveal(),
            "whsec_c2VjcmV0LWtleQ==");
}

// Flags given on the command line win over the file; the file still must
// be valid for them.
TEST(ConfigTest, FlagsWin) {
  Settings s;
  std::string config_file;
  CLI::App app;
  AddFlags(app, &s, &config_file);
  std::vector<std::string> args = {"--simulator",       "email:latency=1ms",
                                   "--listen",          "127.0.0.1:7000",
                                   "--receipt-timeout", "2m",
                                   "--sync-full"};
  std::reverse(args.begin(), args.end());  // CLI11 takes them reversed
  app.parse(args);
  const std::set<std::string> given = GivenKeys(app);
  EXPECT_EQ(given, (std::set<std::string>{"listen", "receipt_timeout",
                                          "simulator", "sync_full"}));
  const absl::Status st = Load(R"(
listen = "0.0.0.0:1"
db = "/from/file.db"
receipt_timeout = "5s"
sync_full = false
simulator = ["sms:latency=9ms"]
)",
                               &s, given);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(s.listen, "127.0.0.1:7000");
  EXPECT_EQ(s.db, "/from/file.db");
  EXPECT_EQ(s.receipt_timeout, absl::Minutes(2));
  EXPECT_TRUE(s.sync_full);
  EXPECT_THAT(s.simulator, ::testing::ElementsAre("email:latency=1ms"));

  Settings bad;
  EXPECT_FALSE(Load("listen = 5\n", &bad, given).ok());
}

TEST(ConfigTest, DatabaseLocations) {
  using Engine = DatabaseLocation::Engine;
  struct Case {
    std::string db;
    Engine engine;
    std::string target;
  } cases[] = {
      {"./campaignd.db", Engine::kSqlite, "./campaignd.db"},
      {"/var/lib/campaignd/c.db", Engine::kSqlite, "/var/lib/campaignd/c.db"},
      {"sqlite:/var/lib/c.db", Engine::kSqlite, "/var/lib/c.db"},
      {"sqlite:rel/c.db", Engine::kSqlite, "rel/c.db"},
      {"dir:with/colon.db", Engine::kSqlite, "dir:with/colon.db"},
      {"sqlite:host=x.db", Engine::kSqlite, "host=x.db"},
      {"./host=x.db", Engine::kSqlite, "./host=x.db"},
      {"postgresql://u:pw@db:5432/c", Engine::kPostgres,
       "postgresql://u:pw@db:5432/c"},
      {"postgres://db/c", Engine::kPostgres, "postgres://db/c"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<DatabaseLocation> where = ParseDatabaseLocation(c.db);
    ASSERT_TRUE(where.ok()) << c.db << ": " << where.status();
    EXPECT_EQ(where->engine, c.engine) << c.db;
    EXPECT_EQ(where->target, c.target) << c.db;
  }
  for (const std::string bad : {"", "sqlite:", "mysql://u:secret@h/db",
                                "host=db dbname=c user=u password=secret",
                                " password = secret host=db", "dbname=c"}) {
    absl::StatusOr<DatabaseLocation> where = ParseDatabaseLocation(bad);
    ASSERT_FALSE(where.ok()) << bad;
    EXPECT_EQ(where.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_FALSE(absl::StrContains(where.status().message(), "secret"));
  }

  Settings s;
  std::string config_file;
  CLI::App app;
  AddFlags(app, &s, &config_file);
  std::vector<std::string> args = {"--db", "redis://h/0"};
  std::reverse(args.begin(), args.end());
  EXPECT_THROW(app.parse(args), CLI::ValidationError);
}

TEST(ConfigTest, DurationFlags) {
  Settings s;
  std::string config_file;
  CLI::App app;
  AddFlags(app, &s, &config_file);
  std::vector<std::string> args = {"--shutdown-timeout", "2.5",
                                   "--receipt-timeout", "1h"};
  std::reverse(args.begin(), args.end());
  app.parse(args);
  EXPECT_EQ(s.shutdown_timeout, absl::Milliseconds(2500));
  EXPECT_EQ(s.receipt_timeout, absl::Hours(1));

  Settings s2;
  CLI::App app2;
  AddFlags(app2, &s2, &config_file);
  std::vector<std::string> bad = {"--shutdown-timeout", "later"};
  std::reverse(bad.begin(), bad.end());
  EXPECT_THROW(app2.parse(bad), CLI::ValidationError);
}

TEST(ConfigTest, ChannelsOfType) {
  EXPECT_EQ(ChannelsOfType("webhook").size(), 6u);
  EXPECT_EQ(ChannelsOfType("smpp"), std::vector<Channel>{Channel::kSms});
  EXPECT_TRUE(ChannelsOfType("fax").empty());
}

// The example file at the repository's root loads (with the environment
// variables it names set), so it cannot rot.
TEST(ConfigTest, ExampleFileLoads) {
  const std::string path =
      std::string(CAMPAIGND_SOURCE_DIR) + "/campaignd.example.toml";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  std::stringstream text;
  text << in.rdbuf();
  // Uncomment every commented-out provider too: "#! " marks the lines.
  const std::string all =
      absl::StrReplaceAll(text.str(), {{"\n#! ", "\n"}, {"\n#!\n", "\n\n"}});
  LoadOptions options;
  options.getenv = [](const std::string& name) -> std::optional<std::string> {
    if (name == "WEBHOOK_SECRET") return "whsec_c2VjcmV0LWtleQ==";
    return "value-of-" + name;
  };
  options.read_file = [](const std::string&) -> absl::StatusOr<std::string> {
    return std::string("from-a-file\n");
  };
  options.file_exists = [](const std::string&) { return true; };
  const std::string docs[] = {text.str(), all};
  for (int i = 0; i < 2; ++i) {
    Settings s;
    const absl::Status st =
        LoadString(docs[i], "campaignd.example.toml", {}, options, &s);
    ASSERT_TRUE(st.ok()) << (i == 0 ? "as shipped: " : "uncommented: ") << st;
    if (i == 1) {
      std::set<std::string> types;
      for (const ProviderConfig& p : s.providers) types.insert(p.type);
      EXPECT_EQ(types,
                (std::set<std::string>{"whatsapp_cloud", "twilio", "telegram",
                                       "slack", "webhook", "smtp", "smpp"}));
    }
  }
}

}  // namespace
}  // namespace campaigns::config
