// The plumbing of campaignctl's commands: global options, Env, CommandSet.
#include "client/command.h"

#include <google/protobuf/descriptor.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/proto_flags.h"

namespace campaigns::client {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

const Client* Env::client() {
  if (client_ != nullptr) return client_.get();
  absl::StatusOr<std::unique_ptr<Client>> client =
      Client::Connect(options_.client);
  if (!client.ok()) {
    ReportUsage(std::string(client.status().message()));
    return nullptr;
  }
  client_ = *std::move(client);
  return client_.get();
}

int Env::ReportFailure(const RpcStatus& status) {
  // Hints for failures that did not come from campaignd's own handlers (which
  // always attach an ErrorInfo reason).
  std::vector<std::string> hints;
  if (status.reason.empty()) {
    if (status.code == grpc::StatusCode::UNAVAILABLE) {
      hints.push_back(
          absl::StrCat("cannot reach campaignd at ", options_.client.server,
                       "; is it running? (--server or CAMPAIGND_ADDR)"));
    } else if (status.code == grpc::StatusCode::DEADLINE_EXCEEDED) {
      hints.push_back(absl::StrCat(
          "no answer from ", options_.client.server, " within ",
          absl::FormatDuration(options_.client.timeout), " (--timeout)"));
    }
  }
  if (status.code == grpc::StatusCode::UNAUTHENTICATED &&
      options_.client.api_key.empty()) {
    hints.push_back("no API key given (--api-key or CAMPAIGND_API_KEY)");
  }
  if (options_.json) {
    err_ << RpcStatusToJson(status, hints) << "\n";
  } else {
    err_ << FormatRpcStatus(status);
    for (const std::string& hint : hints) err_ << "  " << hint << "\n";
  }
  return status.unreachable() ? kExitUnreachable : kExitRpcError;
}

int Env::ReportUsage(const std::string& message) {
  if (options_.json) {
    err_ << UsageErrorJson(message) << "\n";
  } else {
    err_ << "error: " << message << "\nRun with --help for more information.\n";
  }
  return kExitUsage;
}

Printer PrintObject(std::vector<std::string> always) {
  return [always = std::move(always)](const Message&, const Message& response,
                                      std::ostream& out) {
    if (always.empty()) return PrintFields(response, out);
    std::unique_ptr<Message> copy(response.New());
    copy->CopyFrom(response);
    for (const std::string& name : always) {
      const FieldDescriptor* field =
          copy->GetDescriptor()->FindFieldByName(name);
      if (field != nullptr && !field->is_repeated() &&
          field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        copy->GetReflection()->MutableMessage(copy.get(), field);
      }
    }
    PrintFields(*copy, out);
  };
}

Printer PrintWithSecret(bool fields) {
  return [fields](const Message&, const Message& response, std::ostream& out) {
    if (fields) PrintFields(response, out);
    std::string secret = FormatPath(response, "secret");
    if (secret == "?") secret = FormatPath(response, "api_key.secret");
    if (secret == "-" || secret == "?") return;
    out << "\nAPI key secret (shown only once; store it now, it cannot be "
           "retrieved later):\n\n    "
        << secret << "\n\n";
  };
}

Printer PrintList(std::vector<Column> columns) {
  return [columns = std::move(columns)](const Message&, const Message& response,
                                        std::ostream& out) {
    PrintTable(response, columns, out);
  };
}

Printer PrintDeleted(std::string what, std::string key_field) {
  return [what = std::move(what), key_field = std::move(key_field)](
             const Message& request, const Message&, std::ostream& out) {
    out << "deleted " << what << " " << FormatPath(request, key_field) << "\n";
  };
}

UnaryCommand::UnaryCommand(CLI::App* app, std::unique_ptr<Message> request)
    : app_(app), request_(std::move(request)) {}

CLI::Option* UnaryCommand::Flag(const std::string& name,
                                const std::string& field_name,
                                const std::string& help, CLI::App* group) {
  const FieldDescriptor* field =
      request_->GetDescriptor()->FindFieldByName(field_name);
  if (field == nullptr) {
    std::fprintf(stderr, "campaignctl: internal error: %s has no field %s\n",
                 request_->GetTypeName().c_str(), field_name.c_str());
    std::abort();
  }
  CLI::App* target = group != nullptr ? group : app_;
  Message* request = request_.get();
  const bool is_flag = !name.empty() && name[0] == '-';
  CLI::Option* option;
  if (is_flag && !field->is_repeated() &&
      field->cpp_type() == FieldDescriptor::CPPTYPE_BOOL) {
    option = target->add_flag_callback(
        name,
        [request, field] {
          request->GetReflection()->SetBool(request, field, true);
        },
        help);
  } else {
    CLI::callback_t set = [request, field, name](const CLI::results_t& values) {
      for (const std::string& value : values) {
        absl::Status s = SetFieldFromString(request, field, value);
        if (!s.ok()) throw CLI::ValidationError(name, std::string(s.message()));
      }
      return true;
    };
    option = target->add_option(name, std::move(set), help);
    option->type_name(FieldValueHint(field));
    if (field->is_repeated()) {
      option->type_size(1)->expected(1)->multi_option_policy(
          CLI::MultiOptionPolicy::TakeAll);
    }
  }
  if (is_flag) flags_.emplace_back(option, field->name());
  return option;
}

CLI::Option* UnaryCommand::FileFlag(const std::string& name,
                                    const std::string& field_name,
                                    const std::string& help, CLI::App* group) {
  const FieldDescriptor* field =
      request_->GetDescriptor()->FindFieldByName(field_name);
  if (field == nullptr || field->is_repeated() ||
      field->type() != FieldDescriptor::TYPE_STRING) {
    std::fprintf(stderr,
                 "campaignctl: internal error: %s has no string field %s\n",
                 request_->GetTypeName().c_str(), field_name.c_str());
    std::abort();
  }
  CLI::App* target = group != nullptr ? group : app_;
  Message* request = request_.get();
  CLI::callback_t set = [request, field, name](const CLI::results_t& values) {
    for (const std::string& path : values) {
      std::string contents;
      if (path == "-") {
        contents.assign(std::istreambuf_iterator<char>(std::cin),
                        std::istreambuf_iterator<char>());
      } else {
        std::ifstream in(path, std::ios::binary);
        if (!in) {
          throw CLI::ValidationError(
              name,
              absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
        }
        contents.assign(std::istreambuf_iterator<char>(in),
                        std::istreambuf_iterator<char>());
        if (in.bad()) {
          throw CLI::ValidationError(name, absl::StrCat("cannot read ", path));
        }
      }
      request->GetReflection()->SetString(request, field, std::move(contents));
    }
    return true;
  };
  CLI::Option* option = target->add_option(name, std::move(set), help);
  option->type_name("FILE");
  flags_.emplace_back(option, field->name());
  return option;
}

CLI::App* UnaryCommand::Group(const std::string& name,
                              const std::string& description) {
  return app_->add_option_group(name, description);
}

UnaryCommand& UnaryCommand::WithPaging() {
  Flag("--page", "page", "Page number, 1-based (default 1)");
  Flag("--limit", "limit", "Items per page (default 20, at most 100)");
  Flag("--page-token", "page_token",
       "Continue after a previous page (its `next page token`)");
  return *this;
}

UnaryCommand& UnaryCommand::WithUpdateMask() {
  update_mask_ = true;
  return *this;
}

std::string UnaryCommand::Finish() {
  if (!update_mask_) return "";
  const FieldDescriptor* mask_field =
      request_->GetDescriptor()->FindFieldByName("update_mask");
  Message* mask =
      request_->GetReflection()->MutableMessage(request_.get(), mask_field);
  const FieldDescriptor* paths =
      mask->GetDescriptor()->FindFieldByName("paths");
  mask->GetReflection()->ClearField(mask, paths);
  std::vector<std::string> given;
  std::vector<std::string> names;
  for (const auto& [option, field] : flags_) {
    names.push_back(option->get_name());
    if (option->count() == 0) continue;
    if (std::find(given.begin(), given.end(), field) != given.end()) continue;
    given.push_back(field);
    mask->GetReflection()->AddString(mask, paths, field);
  }
  if (given.empty()) {
    return absl::StrCat("nothing to update; give at least one of ",
                        absl::StrJoin(names, ", "));
  }
  return "";
}

CLI::App* CommandSet::AddGroup(const std::string& name,
                               const std::string& description) {
  CLI::App* group = root_->add_subcommand(name, description);
  group->require_subcommand(1);
  return group;
}

void CommandSet::SetDefault(CLI::App* group, CLI::App* leaf) {
  group->require_subcommand(0, 1);
  actions_[group] = actions_.at(leaf);
}

CLI::App* CommandSet::AddCommand(CLI::App* parent, const std::string& name,
                                 const std::string& description,
                                 Action action) {
  CLI::App* app = parent->add_subcommand(name, description);
  actions_[app] = std::move(action);
  return app;
}

const Action* CommandSet::Selected() const {
  const CLI::App* app = root_;
  while (!app->get_subcommands().empty()) app = app->get_subcommands().front();
  auto it = actions_.find(app);
  return it == actions_.end() ? nullptr : &it->second;
}

}  // namespace campaigns::client
