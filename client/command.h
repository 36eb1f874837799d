// The plumbing of campaignctl's commands: global options, the run-time
// environment a command gets, and CommandSet, which turns
// "a stub method + flags bound to request fields + a printer" into a
// subcommand. A new RPC command is a few lines:
//
//   UnaryCommand& get = commands.AddUnary(
//       templates, "get", "Show one template",
//       &v1::TemplateService::Stub::GetTemplate, PrintObject());
//   get.Flag("id", "id", "Template id")->required();
//
// Flags are bound to request fields by name (see proto_flags.h for the
// accepted spellings); parse errors are CLI11 usage errors.

#ifndef CAMPAIGND_CLIENT_COMMAND_H_
#define CAMPAIGND_CLIENT_COMMAND_H_

#include <google/protobuf/message.h>

#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "client/client.h"
#include "client/output.h"
#include "client/rpc_status.h"

namespace campaigns::client {

// campaignctl's exit codes.
enum ExitCode : int {
  kExitOk = 0,
  kExitRpcError = 1,     // the server answered with an error
  kExitUsage = 2,        // bad command line (CLI11 parse errors included)
  kExitUnreachable = 3,  // cannot connect, UNAVAILABLE or DEADLINE_EXCEEDED
};

// Options shared by every command. A plain value.
struct GlobalOptions {
  ClientOptions client;
  // --json / -o json: responses as JSON, and every error as one JSON object
  // on stderr (nothing else there).
  bool json = false;
  // -q / -o id: only the id of what was made or named (PrintIds).
  bool ids_only = false;
};

// What a running command may use: the options, output streams and a lazily
// created Client. Not thread-safe; one per command run.
class Env {
 public:
  Env(GlobalOptions options, std::ostream& out, std::ostream& err)
      : options_(std::move(options)), out_(out), err_(err) {}

  const GlobalOptions& options() const { return options_; }
  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }

  // Creates the client on first use. On failure prints the error and returns
  // nullptr; the command should then exit with kExitUsage.
  const Client* client();

  // Prints a failed call to stderr (text with hints, or with --json one JSON
  // object) and returns its exit code.
  int ReportFailure(const RpcStatus& status);

  // Prints a usage problem found after parsing (with --json as one JSON
  // object, code "USAGE") and returns kExitUsage.
  int ReportUsage(const std::string& message);

 private:
  const GlobalOptions options_;
  std::ostream& out_;
  std::ostream& err_;
  std::unique_ptr<Client> client_;
};

// Prints a successful response for humans (--json bypasses it).
using Printer = std::function<void(const google::protobuf::Message& request,
                                   const google::protobuf::Message& response,
                                   std::ostream& out)>;

// `field: value` lines of the response. Message fields named in `always`
// (e.g. "stats") are shown even when unset, with zero values.
Printer PrintObject(std::vector<std::string> always = {});
// The response's fields (unless `fields` is false), then its API key secret
// (field `secret` or `api_key.secret`) in a banner saying it is shown only
// once.
Printer PrintWithSecret(bool fields = true);
// A table of the list response's items, then the paging footer.
Printer PrintList(std::vector<Column> columns);
// "deleted <what> <the request's key_field>".
Printer PrintDeleted(std::string what, std::string key_field = "id");

// A command's run-time body; returns the process exit code.
using Action = std::function<int(Env& env)>;

// One subcommand that sends a unary RPC. Owns the request message that its
// options fill while parsing. Not thread-safe.
class UnaryCommand {
 public:
  UnaryCommand(CLI::App* app,
               std::unique_ptr<google::protobuf::Message> request);

  CLI::App* app() const { return app_; }
  const google::protobuf::Message& request() const { return *request_; }
  // For options parsed by hand (their callbacks run while parsing).
  google::protobuf::Message* mutable_request() { return request_.get(); }

  // Adds an option that sets request field `field`: a flag when `name`
  // starts with '-' ("--batch-size"), else a positional ("id"). Bool fields
  // become value-less flags; repeated and map fields may be given several
  // times. The option goes into `group` when given (see Group()). `field`
  // must exist in the request (checked; a typo aborts at start-up).
  CLI::Option* Flag(const std::string& name, const std::string& field,
                    const std::string& help, CLI::App* group = nullptr);

  // Adds a flag that takes a path and sets string field `field` to the
  // file's contents ("-" reads stdin), e.g. --html-body-file news.html. A
  // file that cannot be read is a usage error. Like Flag() otherwise.
  CLI::Option* FileFlag(const std::string& name, const std::string& field,
                        const std::string& help, CLI::App* group = nullptr);

  // An option group, e.g. for "exactly one of --body, --template":
  //   CLI::App* g = cmd.Group("message", "What to send");
  //   g->require_option(1);
  CLI::App* Group(const std::string& name, const std::string& description);

  // Adds --page, --limit and --page-token.
  UnaryCommand& WithPaging();

  // Fills the request's `update_mask` with exactly the fields whose flags
  // were given (positionals excluded). Giving none is a usage error.
  UnaryCommand& WithUpdateMask();

  // Completes the request after parsing. Returns an error message for a
  // usage error, else "".
  std::string Finish();

 private:
  CLI::App* const app_;
  const std::unique_ptr<google::protobuf::Message> request_;
  // Flag options (not positionals) and the fields they set.
  std::vector<std::pair<const CLI::Option*, std::string>> flags_;
  bool update_mask_ = false;
};

// The tree of subcommands and their actions. Not thread-safe.
class CommandSet {
 public:
  explicit CommandSet(CLI::App* root) : root_(root) {}
  CommandSet(const CommandSet&) = delete;
  CommandSet& operator=(const CommandSet&) = delete;

  CLI::App* root() const { return root_; }

  // A command that only holds subcommands ("campaigns"); one is required.
  CLI::App* AddGroup(const std::string& name, const std::string& description);

  // Lets `group` run without a subcommand, as its subcommand `leaf` would
  // with no options ("campaignctl account" = "campaignctl account get").
  void SetDefault(CLI::App* group, CLI::App* leaf);

  // A leaf command with a hand-written action.
  CLI::App* AddCommand(CLI::App* parent, const std::string& name,
                       const std::string& description, Action action);

  // A leaf command sending the unary RPC `method` (a generated
  // Service::Stub member) with a request filled from its options, printing
  // the response with `printer`, or as JSON under --json.
  template <typename Stub, typename Request, typename Response>
  UnaryCommand& AddUnary(CLI::App* parent, const std::string& name,
                         const std::string& description,
                         grpc::Status (Stub::*method)(grpc::ClientContext*,
                                                      const Request&,
                                                      Response*),
                         Printer printer) {
    CLI::App* app = parent->add_subcommand(name, description);
    unary_.push_back(
        std::make_unique<UnaryCommand>(app, std::make_unique<Request>()));
    UnaryCommand* cmd = unary_.back().get();
    actions_[app] = [cmd, method, printer](Env& env) {
      std::string usage = cmd->Finish();
      if (!usage.empty()) return env.ReportUsage(usage);
      const Client* client = env.client();
      if (client == nullptr) return static_cast<int>(kExitUsage);
      const auto& request = static_cast<const Request&>(cmd->request());
      Response response;
      RpcStatus status = client->Call(method, request, &response);
      if (!status.ok()) return env.ReportFailure(status);
      if (env.options().json) {
        PrintJson(response, env.out());
      } else if (env.options().ids_only) {
        PrintIds(request, response, env.out());
        // A secret is shown once: to the terminal, not into $(...).
        PrintWithSecret(/*fields=*/false)(request, response, env.err());
      } else {
        printer(request, response, env.out());
      }
      return static_cast<int>(kExitOk);
    };
    return *cmd;
  }

  // The action of the leaf command the parsed command line selected, or
  // nullptr when none (only possible if the root requires no subcommand).
  const Action* Selected() const;

 private:
  CLI::App* const root_;
  std::vector<std::unique_ptr<UnaryCommand>> unary_;
  std::map<const CLI::App*, Action> actions_;
};

}  // namespace campaigns::client

#endif  // CAMPAIGND_CLIENT_COMMAND_H_
