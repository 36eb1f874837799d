// campaignctl suppressions: the SuppressionService commands.
#include "campaigns/v1/suppression.grpc.pb.h"
#include "client/commands.h"

namespace campaigns::client {

void AddSuppressionCommands(CommandSet* commands) {
  using Service = v1::SuppressionService::Stub;
  CLI::App* suppressions = commands->AddGroup(
      "suppressions", "The do-not-contact list (per channel or every channel)");

  UnaryCommand& add =
      commands->AddUnary(suppressions, "add", "Suppress an address",
                         &Service::AddSuppression, PrintObject());
  add.Flag("address", "address",
           "Phone number, email address, chat or Slack id")
      ->required();
  add.Flag("--channel", "channel",
           "Only this channel (default: every channel)");
  add.Flag("--reason", "reason",
           "manual, opt_out, bounce or complaint (server default manual)");
  add.Flag("--note", "note", "Free text kept with the entry");
  add.Flag("--region", "default_region",
           "Region for numbers without a country code, e.g. US");

  UnaryCommand& remove = commands->AddUnary(
      suppressions, "remove", "Remove an entry", &Service::RemoveSuppression,
      PrintDeleted("suppression", "address"));
  remove.Flag("address", "address", "The suppressed address")->required();
  remove.Flag("--channel", "channel",
              "The entry's channel (default: the every-channel entry)");

  UnaryCommand& list =
      commands->AddUnary(suppressions, "list", "List the do-not-contact list",
                         &Service::ListSuppressions,
                         PrintList({{"ADDRESS", "address"},
                                    {"CHANNEL", "channel"},
                                    {"REASON", "reason"},
                                    {"CREATED", "created_at"},
                                    {"NOTE", "note"}}));
  list.WithPaging();
  list.Flag("--channel", "channel", "Only entries of this channel");
  list.Flag("--reason", "reason", "Only entries with this reason");

  UnaryCommand& check = commands->AddUnary(
      suppressions, "check", "Is an address suppressed on a channel?",
      &Service::CheckSuppression, PrintObject());
  check.Flag("address", "address", "The address to check")->required();
  check.Flag("--channel", "channel", "Channel (default: any entry)");
  check.Flag("--region", "default_region",
             "Region for numbers without a country code, e.g. US");
}

}  // namespace campaigns::client
