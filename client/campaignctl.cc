// campaignctl's command line (campaignctl.h): parses and runs one command.
#include "client/campaignctl.h"

#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "client/command.h"
#include "client/commands.h"
#include "client/proto_flags.h"
#include "client/rpc_status.h"
#include "version.h"

namespace campaigns::client {
namespace {

// What --version and the version command print, e.g.
// "campaignctl 0.1.0 (commit 2b73bcb1f0aa, API campaigns.v1)".
std::string VersionLine() {
  return std::string("campaignctl ") + kVersion + " (commit " + kGitCommit +
         ", API campaigns.v1)";
}

constexpr char kCommandFooter[] =
    "Global options (--server, --api-key, --json, --timeout, --tls, "
    "--ca-file) may also follow the command; see campaignctl --help.";

constexpr char kRootFooter[] =
    "Environment:\n"
    "  CAMPAIGND_ADDR     default for --server\n"
    "  CAMPAIGND_API_KEY  default for --api-key\n"
    "\n"
    "Exit codes:\n"
    "  0  success\n"
    "  1  the server answered with an error (printed to stderr)\n"
    "  2  usage error: bad flags or values\n"
    "  3  cannot connect, server unavailable, or deadline exceeded\n"
    "\n"
    "Run 'campaignctl COMMAND --help' (or 'campaignctl COMMAND SUBCOMMAND "
    "--help') for its flags, 'campaignctl --help-all' for everything.";

// Accepts a positive duration such as "500ms", "30s", "2m" or "45".
CLI::Validator TimeoutValidator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        absl::StatusOr<google::protobuf::Duration> d = ParseDurationArg(text);
        if (!d.ok()) return std::string(d.status().message());
        if (d->seconds() == 0 && d->nanos() == 0) return "must be positive";
        return "";
      },
      "");
}

// CLI11's failure message, prefixed "error: ", with clearer words for two
// cases: an unknown word where a command was expected, and a command group
// given without its subcommand.
std::string DescribeParseError(const CLI::App* failed, const CLI::Error& e) {
  std::string message = e.what();
  if (e.get_name() == "RequiredError") {
    std::vector<std::string> extra = failed->remaining(true);
    const CLI::App* group = failed;
    while (!group->get_subcommands().empty()) {
      group = group->get_subcommands().front();
    }
    std::vector<std::string> names;
    for (const CLI::App* sub : group->get_subcommands(
             [](const CLI::App* a) { return !a->get_name().empty(); })) {
      names.push_back(sub->get_name());
    }
    if (!extra.empty()) {
      message = "unknown command or argument: " + extra.front();
    } else if (!names.empty() &&
               message.find("subcommand") != std::string::npos) {
      message = "missing command; use one of: " + absl::StrJoin(names, ", ");
    }
  }
  return "error: " + message + "\nRun with --help for more information.\n";
}

// Whether the command line asks for JSON output (for errors found before it
// is fully parsed).
bool WantsJson(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json" || arg == "--output=json" || arg == "-ojson") {
      return true;
    }
    if ((arg == "-o" || arg == "--output") && i + 1 < argc &&
        std::string(argv[i + 1]) == "json") {
      return true;
    }
  }
  return false;
}

}  // namespace

int RunCampaignctl(int argc, const char* const* argv, std::ostream& out,
                   std::ostream& err) {
  CLI::App app(
      "campaignctl: command-line client of campaignd, the bulk "
      "messaging campaign service.",
      "campaignctl");
  app.fallthrough();
  app.require_subcommand(1);
  // Both are inherited by every subcommand.
  app.footer(kCommandFooter);
  app.failure_message(DescribeParseError);

  GlobalOptions globals;
  std::string timeout = "30s";
  app.add_option("--server", globals.client.server,
                 "campaignd gRPC address, host:port")
      ->envname("CAMPAIGND_ADDR")
      ->capture_default_str();
  app.add_option("--api-key", globals.client.api_key,
                 "API key, sent as 'authorization: Bearer KEY'")
      ->envname("CAMPAIGND_API_KEY")
      ->type_name("KEY");
  app.add_option("--timeout", timeout, "Deadline of each call, e.g. 500ms, 2m")
      ->type_name("DURATION")
      ->check(TimeoutValidator())
      ->capture_default_str();
  app.add_flag("--json", globals.json,
               "Print the response as JSON, and an error as one JSON object "
               "on stderr (same as -o json)");
  std::string output = "text";
  app.add_option("-o,--output", output,
                 "text (default), json, or id: only the id of what was made "
                 "or named, one a line (a list: its items' ids), e.g. "
                 "id=$(campaignctl -o id campaigns create ...)")
      ->check(CLI::IsMember({"text", "json", "id"}))
      ->capture_default_str();
  bool quiet = false;
  app.add_flag("-q,--quiet", quiet, "Same as -o id");
  CLI::Option* tls =
      app.add_flag("--tls", globals.client.tls, "Use TLS instead of plaintext");
  app.add_option("--ca-file", globals.client.ca_file,
                 "PEM root certificates to trust with --tls (default: the "
                 "system's)")
      ->needs(tls)
      ->check(CLI::Validator(CLI::ExistingFile).description(""))
      ->type_name("FILE");
  app.set_version_flag("--version", VersionLine());
  app.set_help_all_flag("--help-all", "Print help for every command and exit");

  CommandSet commands(&app);
  commands.AddCommand(&app, "version", "Print campaignctl's version",
                      [](Env& env) {
                        env.out() << VersionLine() << "\n";
                        return static_cast<int>(kExitOk);
                      });
  AddAccountCommands(&commands);
  AddTemplateCommands(&commands);
  AddSenderCommands(&commands);
  AddCampaignCommands(&commands);
  AddSuppressionCommands(&commands);
  AddRecipientCommands(&commands);
  AddBillingCommands(&commands);
  AddContactCommands(&commands);
  app.footer(kRootFooter);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() != 0 && WantsJson(argc, argv)) {
      // Whatever stopped the parse, a JSON caller gets one JSON object.
      err << UsageErrorJson(e.what()) << "\n";
      return kExitUsage;
    }
    return app.exit(e, out, err) == 0 ? kExitOk : kExitUsage;
  }
  if (output == "json") globals.json = true;
  if (output == "id" || quiet) globals.ids_only = true;
  if (globals.json && globals.ids_only) {
    Env env(std::move(globals), out, err);
    return env.ReportUsage("--json and -o id / --quiet exclude each other");
  }
  absl::StatusOr<google::protobuf::Duration> d = ParseDurationArg(timeout);
  globals.client.timeout =
      absl::Seconds(d->seconds()) + absl::Nanoseconds(d->nanos());

  const Action* action = commands.Selected();
  if (action == nullptr) {
    err << app.help();
    return kExitUsage;
  }
  Env env(std::move(globals), out, err);
  return (*action)(env);
}

}  // namespace campaigns::client
