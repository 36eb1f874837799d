// campaignctl senders and providers: the SenderService commands.
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "campaigns/v1/sender.grpc.pb.h"
#include "client/commands.h"

namespace campaigns::client {
namespace {

// The providers as a table: name, type, channels, fallback, state and why
// it is not ok.
void PrintProviders(const google::protobuf::Message& /*request*/,
                    const google::protobuf::Message& response,
                    std::ostream& out) {
  const auto& list = static_cast<const v1::ListProvidersResponse&>(response);
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "TYPE", "CHANNELS", "FALLBACK", "STATE", "REASON"}};
  for (const v1::Provider& p : list.providers()) {
    std::vector<std::string> channels;
    for (int c : p.channels()) {
      channels.push_back(v1::Channel_Name(static_cast<v1::Channel>(c)));
    }
    rows.push_back({p.name(), p.type(), absl::StrJoin(channels, ","),
                    p.fallback().empty() ? "-" : p.fallback(), p.state(),
                    p.reason().empty() ? "-" : p.reason()});
  }
  std::vector<size_t> widths(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) {
      widths[c] = std::max(widths[c], row[c].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) {
        line += std::string(widths[c] - row[c].size() + 2, ' ');
      }
    }
    out << line << "\n";
  }
}

}  // namespace

void AddSenderCommands(CommandSet* commands) {
  using Service = v1::SenderService::Stub;
  CLI::App* senders = commands->AddGroup(
      "senders", "Registered sender ids with their throughput tier");

  UnaryCommand& reg = commands->AddUnary(
      senders, "register", "Register a sender id for a channel",
      &Service::RegisterSender, PrintObject());
  reg.Flag("--sender-id", "sender_id",
           "The visible id: phone number, alphanumeric id, email address, "
           "bot name")
      ->required();
  reg.Flag("--channel", "channel", "Channel")->required();
  reg.Flag("--tier", "tier",
           "Throughput: tier_1k 10/s, tier_10k 30/s, tier_100k 80/s "
           "(server default tier_1k)");
  reg.Flag("--verified", "verified", "Mark the sender as verified");
  reg.Flag("--provider", "provider",
           "Provider adapter that sends for it (server default simulator)");
  reg.Flag("--request-id", "request_id", "Idempotency key");

  commands
      ->AddUnary(senders, "get", "Show a sender", &Service::GetSender,
                 PrintObject())
      .Flag("id", "id", "Sender id (snd_...)")
      ->required();

  commands
      ->AddUnary(senders, "list", "List senders", &Service::ListSenders,
                 PrintList({{"ID", "id"},
                            {"SENDER ID", "sender_id"},
                            {"CHANNEL", "channel"},
                            {"TIER", "tier"},
                            {"RATE/S", "rate_per_second"},
                            {"VERIFIED", "verified"},
                            {"PROVIDER", "provider"}}))
      .WithPaging()
      .Flag("--channel", "channel", "Only senders of this channel");

  commands->AddUnary(senders, "providers",
                     "List the providers a sender may name (--provider), "
                     "with their channels and state",
                     &Service::ListProviders, PrintProviders);

  commands
      ->AddUnary(senders, "delete", "Delete a sender", &Service::DeleteSender,
                 PrintDeleted("sender"))
      .Flag("id", "id", "Sender id (snd_...)")
      ->required();
}

}  // namespace campaigns::client
