// campaignctl recipients: stream a CSV or JSON file into a campaign with a
// live progress line, and list a campaign's recipients.
#include <memory>
#include <string>

#include "campaigns/v1/campaign.grpc.pb.h"
#include "client/commands.h"
#include "client/import_file.h"

namespace campaigns::client {
namespace {

struct RecipientImportOptions : ImportOptions {
  std::string campaign_id;
};

}  // namespace

void AddRecipientCommands(CommandSet* commands) {
  using Service = v1::CampaignService::Stub;
  CLI::App* recipients = commands->AddGroup(
      "recipients", "A campaign's recipients: import a file, list them");

  auto opts = std::make_shared<RecipientImportOptions>();
  opts->list_key = "recipients";
  CLI::App* import = commands->AddCommand(
      recipients, "import",
      "Stream a CSV or JSON file of recipients into a campaign (all or "
      "nothing)",
      [opts](Env& env) {
        v1::ImportRecipientsRequest first;
        first.set_campaign_id(opts->campaign_id);
        return RunImport<v1::ImportRecipientsRequest,
                         v1::ImportRecipientsResponse>(
            env, *opts, std::move(first),
            [](const std::shared_ptr<grpc::Channel>& channel,
               grpc::ClientContext* ctx, v1::ImportRecipientsResponse* out) {
              return v1::CampaignService::Stub(channel).ImportRecipients(ctx,
                                                                         out);
            });
      });
  AddImportFileOptions(import, opts.get(), "variables");
  import->add_option("--campaign", opts->campaign_id, "Campaign id")
      ->required();

  UnaryCommand& list =
      commands->AddUnary(recipients, "list", "List a campaign's recipients",
                         &Service::ListRecipients,
                         PrintList({{"ID", "id"},
                                    {"ADDRESS", "address"},
                                    {"STATUS", "status"},
                                    {"ATTEMPTS", "attempts"},
                                    {"PROVIDER", "provider"},
                                    {"REASON", "skip_reason"},
                                    {"ERROR", "error_code"},
                                    {"UPDATED", "updated_at"}}));
  list.Flag("--campaign", "campaign_id", "Campaign id")->required();
  list.Flag("--status", "status",
            "Only this status: queued, sent, delivered, read, failed, "
            "skipped");
  list.WithPaging();
}

}  // namespace campaigns::client
