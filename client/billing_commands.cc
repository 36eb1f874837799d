// Money: `estimate`, `transactions`, `stats`, and admin `credits add` and
// `prices set`. Amounts are micro-credits (1 credit = 1,000,000).
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "campaigns/v1/account.grpc.pb.h"
#include "campaigns/v1/campaign.grpc.pb.h"
#include "client/commands.h"

namespace campaigns::client {
namespace {

// "CHANNEL[:COUNTRY]=AMOUNT" or "default=AMOUNT" (every channel) as a Price.
void AddPrice(const std::string& text, v1::SetPricesRequest* request) {
  std::pair<std::string, std::string> kv =
      absl::StrSplit(text, absl::MaxSplits('=', 1));
  std::pair<std::string, std::string> where =
      absl::StrSplit(kv.first, absl::MaxSplits(':', 1));
  v1::Price* price = request->add_prices();
  int64_t amount = 0;
  if (!absl::SimpleAtoi(kv.second, &amount)) {
    throw CLI::ValidationError(
        "--price", "\"" + text +
                       "\": expected CHANNEL[:COUNTRY]=MICRO_CREDITS or "
                       "default=MICRO_CREDITS");
  }
  const std::string channel = absl::AsciiStrToLower(where.first);
  v1::Channel value = v1::channel_unspecified;
  if (channel != "default" && !v1::Channel_Parse(channel, &value)) {
    throw CLI::ValidationError("--price",
                               "\"" + where.first + "\" is not a channel");
  }
  price->set_channel(value);
  price->set_country(absl::AsciiStrToUpper(where.second));
  price->set_amount(amount);
}

// The stored price table, one row per price.
Printer PrintPrices() {
  return [](const google::protobuf::Message&,
            const google::protobuf::Message& response, std::ostream& out) {
    const auto& r = static_cast<const v1::SetPricesResponse&>(response);
    if (r.prices().empty()) {
      out << "no prices: this account sends for free\n";
      return;
    }
    out << absl::StrFormat("%-10s %-8s %s\n", "CHANNEL", "COUNTRY",
                           "MICRO-CREDITS");
    for (const v1::Price& p : r.prices()) {
      out << absl::StrFormat("%-10s %-8s %d\n",
                             p.channel() == v1::channel_unspecified
                                 ? "default"
                                 : v1::Channel_Name(p.channel()),
                             p.country().empty() ? "*" : p.country(),
                             p.amount());
    }
  };
}

}  // namespace

void AddBillingCommands(CommandSet* commands) {
  using Campaigns = v1::CampaignService::Stub;
  using Accounts = v1::AccountService::Stub;
  CLI::App* root = commands->root();

  commands
      ->AddUnary(root, "estimate",
                 "What a campaign's queued recipients cost, per channel and "
                 "country, and whether your credits cover it",
                 &Campaigns::EstimateCost, PrintObject())
      .Flag("id", "id", "Campaign id (cmp_...)")
      ->required();

  UnaryCommand& stats = commands->AddUnary(
      root, "stats",
      "Counts and cost summed over your campaigns, in total and per channel",
      &Campaigns::GetCampaignStats, PrintObject({"stats"}));
  stats.Flag("--from", "from",
             "Only campaigns created at or after this time (RFC 3339)");
  stats.Flag("--to", "to", "Only campaigns created before this time");
  stats.Flag("--channel", "channel", "Only campaigns of this channel");

  commands
      ->AddUnary(root, "transactions",
                 "Your credit ledger, newest first: credits, reservations, "
                 "debits, releases",
                 &Accounts::ListTransactions,
                 PrintList({{"ID", "id"},
                            {"TYPE", "type"},
                            {"AMOUNT", "amount"},
                            {"BALANCE AFTER", "balance_after"},
                            {"CAMPAIGN", "campaign_id"},
                            {"DESCRIPTION", "description"},
                            {"CREATED", "created_at"}}))
      .WithPaging()
      .Flag("--account", "account_id", "Another account's ledger (admin only)");

  CLI::App* credits =
      commands->AddGroup("credits", "Account credits (admin only)");
  UnaryCommand& add = commands->AddUnary(
      credits, "add", "Add credits to an account (admin only)",
      &Accounts::AddCredits, PrintObject());
  add.Flag("account", "account_id", "Account id (acct_...)")->required();
  add.Flag("--amount", "amount", "Micro-credits to add (1 credit = 1000000)")
      ->required();
  add.Flag("--description", "description", "Why, for the ledger");
  add.Flag("--request-id", "request_id", "Idempotency key");

  CLI::App* prices =
      commands->AddGroup("prices", "Account price tables (admin only)");
  UnaryCommand& set = commands->AddUnary(
      prices, "set",
      "Replace an account's prices (admin only). No price at all = sending "
      "is free",
      &Accounts::SetPrices, PrintPrices());
  set.Flag("account", "account_id", "Account id (acct_...)")->required();
  auto* request = static_cast<v1::SetPricesRequest*>(set.mutable_request());
  set.app()
      ->add_option_function<std::vector<std::string>>(
          "--price",
          [request](const std::vector<std::string>& values) {
            for (const std::string& v : values) AddPrice(v, request);
          },
          "CHANNEL[:COUNTRY]=MICRO_CREDITS per message (SMS: per segment), "
          "e.g. sms=50000 sms:US=40000 whatsapp=80000, or "
          "default=MICRO_CREDITS for every channel; repeatable. None clears "
          "the table")
      ->take_all();
}

}  // namespace campaigns::client
