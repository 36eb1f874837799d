// campaignctl campaigns: create, get, list, update, delete and the lifecycle.
#include "campaigns/v1/campaign.grpc.pb.h"
#include "client/commands.h"

namespace campaigns::client {
namespace {

// The campaign fields shared by `create` and `update`. For create, --name,
// --channel and --sender are required, exactly one of --body/--template and
// at most one audience flag; update takes any subset.
void AddCampaignFlags(UnaryCommand& cmd, bool create) {
  CLI::Option* name = cmd.Flag("--name", "name", "Campaign name");
  CLI::Option* channel = cmd.Flag("--channel", "channel", "Channel");
  CLI::Option* sender = cmd.Flag(
      "--sender", "sender_id",
      "Registered sender of the same channel: its sender id or snd_ id");
  if (create) {
    name->required();
    channel->required();
    sender->required();
  }

  CLI::App* message = cmd.Group("Message", "What to send");
  cmd.Flag("--body", "body", "Text with optional {{placeholders}}", message);
  cmd.Flag("--template", "template_id", "Template id (tmpl_...)", message);
  if (create) message->require_option(1);
  AddEmailFlags(cmd, "campaign");
  cmd.Flag("--var", "variable_mapping",
           "Template placeholder to recipient variable or contact field, "
           "e.g. 1=first_name (repeatable)");

  CLI::App* audience = cmd.Group(
      "Audience", "Who gets it (none: recipients are imported later)");
  cmd.Flag("--list", "contact_list_id", "Contact list id (cl_...)", audience);
  cmd.Flag("--tag", "tags", "Contacts with this tag (repeatable)", audience);
  cmd.Flag("--contact", "contact_ids", "Contact id (ct_...) (repeatable)",
           audience);
  if (create) audience->require_option(0, 1);

  CLI::App* pacing = cmd.Group("Pacing and timing", "");
  cmd.Flag("--batch-size", "batch_size",
           "Recipients per batch (default 100, 1..10000)", pacing);
  cmd.Flag("--batch-delay", "batch_delay", "Wait between batches, e.g. 500ms",
           pacing);
  cmd.Flag("--rate", "rate_limit_per_second",
           "Messages per second (0: the sender's tier)", pacing);
  cmd.Flag("--validity", "validity_period",
           "Messages not handed to a provider within this time after the "
           "start expire, e.g. 2h",
           pacing);
  cmd.Flag("--max-lateness", "max_lateness",
           "Fail a scheduled start that fires later than this, e.g. 10m",
           pacing);
  cmd.Flag("--schedule-at", "schedule_at",
           "Start time, RFC 3339, e.g. 2024-05-01T09:00:00Z", pacing);
}

}  // namespace

void AddCampaignCommands(CommandSet* commands) {
  using Service = v1::CampaignService::Stub;
  CLI::App* campaigns =
      commands->AddGroup("campaigns", "Bulk-message campaigns");

  UnaryCommand& create = commands->AddUnary(
      campaigns, "create", "Create a campaign (as draft unless --start)",
      &Service::CreateCampaign, PrintObject({"stats"}));
  AddCampaignFlags(create, /*create=*/true);
  create.Flag("--start", "start",
              "Start at once: sending now, or scheduled if --schedule-at is "
              "in the future");
  create.Flag("--request-id", "request_id", "Idempotency key");

  commands
      ->AddUnary(campaigns, "get", "Show a campaign and its counters",
                 &Service::GetCampaign, PrintObject({"stats"}))
      .Flag("id", "id", "Campaign id (cmp_...)")
      ->required();

  UnaryCommand& list = commands->AddUnary(
      campaigns, "list", "List campaigns", &Service::ListCampaigns,
      PrintList({{"ID", "id"},
                 {"NAME", "name"},
                 {"STATUS", "status"},
                 {"CHANNEL", "channel"},
                 {"SENDER", "sender_id"},
                 {"TOTAL", "stats.total"},
                 {"QUEUED", "stats.queued"},
                 {"DELIVERED", "stats.delivered"},
                 {"FAILED", "stats.failed"},
                 {"CREATED", "created_at"}}));
  list.Flag("--status", "status", "Only campaigns with this status");
  list.Flag("--channel", "channel", "Only campaigns of this channel");
  list.Flag("--sender", "sender_id", "Only campaigns of this sender");
  list.WithPaging();

  UnaryCommand& update = commands->AddUnary(
      campaigns, "update",
      "Change a draft or scheduled campaign; exactly the given flags are "
      "changed, and an empty value clears (--body \"\", --schedule-at \"\")",
      &Service::UpdateCampaign, PrintObject({"stats"}));
  update.Flag("id", "id", "Campaign id (cmp_...)")->required();
  AddCampaignFlags(update, /*create=*/false);
  update.WithUpdateMask();

  commands
      ->AddUnary(campaigns, "delete", "Delete a campaign (not while sending)",
                 &Service::DeleteCampaign, PrintDeleted("campaign"))
      .Flag("id", "id", "Campaign id (cmp_...)")
      ->required();

  // The lifecycle.
  commands
      ->AddUnary(campaigns, "start",
                 "Send a draft campaign now (or at its schedule_at if that is "
                 "in the future)",
                 &Service::StartCampaign, PrintObject({"stats"}))
      .Flag("id", "id", "Campaign id (cmp_...)")
      ->required();
  UnaryCommand& confirm =
      commands->AddUnary(campaigns, "confirm",
                         "Confirm a draft campaign: send now, or at --send-at",
                         &Service::ConfirmCampaign, PrintObject({"stats"}));
  confirm.Flag("id", "id", "Campaign id (cmp_...)")->required();
  confirm.Flag("--send-at", "send_at",
               "When to send, RFC 3339, e.g. 2024-05-01T09:00:00Z");
  UnaryCommand& pause = commands->AddUnary(
      campaigns, "pause",
      "Pause a scheduled or sending campaign; no message starts after this "
      "returns",
      &Service::PauseCampaign, PrintObject({"stats"}));
  pause.Flag("id", "id", "Campaign id (cmp_...)")->required();
  pause.Flag("--reason", "reason", "Why (shown as pause_reason)");
  commands
      ->AddUnary(campaigns, "resume",
                 "Resume a paused campaign with the next unsent recipient",
                 &Service::ResumeCampaign, PrintObject({"stats"}))
      .Flag("id", "id", "Campaign id (cmp_...)")
      ->required();
  commands
      ->AddUnary(campaigns, "cancel",
                 "Cancel a campaign for good: queued recipients are skipped",
                 &Service::CancelCampaign, PrintObject({"stats"}))
      .Flag("id", "id", "Campaign id (cmp_...)")
      ->required();
  UnaryCommand& retry =
      commands->AddUnary(campaigns, "retry", "Send the failed recipients again",
                         &Service::RetryFailed, PrintObject());
  retry.Flag("id", "id", "Campaign id (cmp_...)")->required();
  retry.Flag("--error-code", "error_codes",
             "Only recipients that failed with this code (repeatable)");
  AddWatchCommand(commands, campaigns);
}

}  // namespace campaigns::client
