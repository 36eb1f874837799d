// campaignctl templates: the TemplateService commands.
#include <string>

#include "campaigns/v1/template.grpc.pb.h"
#include "client/commands.h"

namespace campaigns::client {

void AddEmailFlags(UnaryCommand& cmd, const std::string& what) {
  cmd.Flag(
      "--subject", "subject",
      "Email only: the subject line, with {{placeholders}}" +
          std::string(what == "campaign" ? " (default: the template's)" : ""));
  CLI::Option* html = cmd.Flag(
      "--html-body", "html_body",
      "Email only: the HTML alternative of the text, with {{placeholders}} "
      "(their values are HTML-escaped)" +
          std::string(what == "campaign" ? " (default: the template's)" : ""));
  cmd.FileFlag("--html-body-file", "html_body",
               "Email only: the HTML body read from this file ('-': stdin)")
      ->excludes(html);
}

void AddTemplateCommands(CommandSet* commands) {
  using Service = v1::TemplateService::Stub;
  CLI::App* templates = commands->AddGroup(
      "templates", "Message templates with {{1}} / {{name}} placeholders");

  UnaryCommand& create = commands->AddUnary(
      templates, "create", "Create a template (it starts as pending)",
      &Service::CreateTemplate, PrintObject());
  create.Flag("--name", "name", "Template name")->required();
  create.Flag("--language", "language", "Language, e.g. en_US")->required();
  create.Flag("--channel", "channel", "Channel")->required();
  create.Flag("--body", "body", "Text with {{1}} or {{name}} placeholders")
      ->required();
  AddEmailFlags(create, "template");
  create.Flag("--component-json", "components",
              "WhatsApp component as JSON, e.g. "
              "'{\"type\":\"header\",\"format\":\"text\",\"text\":\"Hi\"}' "
              "(repeatable)");
  create.Flag("--request-id", "request_id", "Idempotency key");

  commands
      ->AddUnary(templates, "get", "Show a template", &Service::GetTemplate,
                 PrintObject())
      .Flag("id", "id", "Template id (tmpl_...)")
      ->required();

  UnaryCommand& list = commands->AddUnary(
      templates, "list", "List templates", &Service::ListTemplates,
      PrintList({{"ID", "id"},
                 {"NAME", "name"},
                 {"LANGUAGE", "language"},
                 {"CHANNEL", "channel"},
                 {"STATUS", "status"},
                 {"UPDATED", "updated_at"}}));
  list.Flag("--status", "status", "Only templates with this status");
  list.Flag("--channel", "channel", "Only templates of this channel");
  list.Flag("--name", "name", "Only templates with this name");
  list.WithPaging();

  UnaryCommand& update = commands->AddUnary(
      templates, "update",
      "Change a template; exactly the given flags are changed (--body \"\" "
      "clears). New content (body, subject, HTML body) puts an approved "
      "template back to pending.",
      &Service::UpdateTemplate, PrintObject());
  update.Flag("id", "id", "Template id (tmpl_...)")->required();
  update.Flag("--name", "name", "New name");
  update.Flag("--language", "language", "New language");
  update.Flag("--body", "body", "New body");
  AddEmailFlags(update, "template");
  update.WithUpdateMask();

  commands
      ->AddUnary(templates, "delete", "Delete a template",
                 &Service::DeleteTemplate, PrintDeleted("template"))
      .Flag("id", "id", "Template id (tmpl_...)")
      ->required();

  UnaryCommand& set_status = commands->AddUnary(
      templates, "set-status",
      "Approve or reject a template (admin or provider sync only)",
      &Service::SetTemplateStatus, PrintObject());
  set_status.Flag("id", "id", "Template id (tmpl_...)")->required();
  set_status.Flag("--status", "status", "New status")->required();
  set_status.Flag("--reason", "rejection_reason", "Why it was rejected");
}

}  // namespace campaigns::client
