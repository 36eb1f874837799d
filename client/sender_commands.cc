#include "campaigns/v1/sender.grpc.pb.h"
#include "client/commands.h"

namespace campaigns::client {

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

  commands
      ->AddUnary(senders, "delete", "Delete a sender", &Service::DeleteSender,
                 PrintDeleted("sender"))
      .Flag("id", "id", "Sender id (snd_...)")
      ->required();
}

}  // namespace campaigns::client
