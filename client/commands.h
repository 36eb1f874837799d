// campaignctl's subcommands, one function per API area. Each adds its
// commands to the CommandSet; see command.h for the building blocks.

#ifndef CAMPAIGND_CLIENT_COMMANDS_H_
#define CAMPAIGND_CLIENT_COMMANDS_H_

#include <string>

#include "client/command.h"

namespace campaigns::client {

// `account get|create` and `keys create|list|revoke` (AccountService).
void AddAccountCommands(CommandSet* commands);
// `templates create|get|list|update|delete|set-status` (TemplateService).
void AddTemplateCommands(CommandSet* commands);
// `senders register|get|list|delete` (SenderService).
void AddSenderCommands(CommandSet* commands);
// `campaigns create|get|list|update|delete|start|confirm|pause|resume|
// cancel|retry|watch` (CampaignService).
void AddCampaignCommands(CommandSet* commands);
// `campaigns watch`: a live progress bar until the campaign is final.
void AddWatchCommand(CommandSet* commands, CLI::App* campaigns);
// `suppressions add|remove|list|check` (SuppressionService).
void AddSuppressionCommands(CommandSet* commands);
// `contacts create|get|list|update|import|delete` and
// `lists create|get|list|delete|add|remove` (ContactService).
void AddContactCommands(CommandSet* commands);
// `estimate`, `stats`, `transactions`, `credits add`, `prices set`.
void AddBillingCommands(CommandSet* commands);
// `recipients import|list` (CampaignService).
void AddRecipientCommands(CommandSet* commands);

// The email fields of a template's or campaign's create or update request
// (`what`: "template", "campaign"): --subject, --html-body, and
// --html-body-file (the HTML body read from a file; not with --html-body).
void AddEmailFlags(UnaryCommand& cmd, const std::string& what);

}  // namespace campaigns::client

#endif  // CAMPAIGND_CLIENT_COMMANDS_H_
