// campaignctl account and keys: the AccountService commands.
#include "campaigns/v1/account.grpc.pb.h"
#include "client/commands.h"

namespace campaigns::client {

void AddAccountCommands(CommandSet* commands) {
  using Service = v1::AccountService::Stub;

  CLI::App* account = commands->AddGroup(
      "account", "Accounts (tenants); alone: your balance, as `account get`");
  UnaryCommand& get = commands->AddUnary(
      account, "get",
      "Show an account: credits balance and reserved (micro-credits), "
      "currency",
      &Service::GetAccount, PrintObject());
  get.Flag("--id", "id", "Another account's id (admin only); default: yours");
  commands->SetDefault(account, get.app());

  UnaryCommand& create = commands->AddUnary(
      account, "create",
      "Create an account and its first API key (admin only; the key's secret "
      "is shown once)",
      &Service::CreateAccount, PrintWithSecret());
  create.Flag("--name", "name", "Account name")->required();
  create.Flag("--currency", "currency", "Currency code (server default EUR)");
  create.Flag("--admin", "admin", "Make it an admin account");
  create.Flag("--request-id", "request_id", "Idempotency key");

  CLI::App* keys = commands->AddGroup("keys", "API keys of your account");
  UnaryCommand& create_key = commands->AddUnary(
      keys, "create", "Create an API key (its secret is shown once)",
      &Service::CreateApiKey, PrintWithSecret());
  create_key.Flag("--name", "name", "Label to tell keys apart");
  create_key.Flag("--account", "account_id",
                  "Create it for this account instead (admin only)");
  create_key.Flag("--request-id", "request_id", "Idempotency key");

  commands
      ->AddUnary(keys, "list", "List API keys", &Service::ListApiKeys,
                 PrintList({{"ID", "id"},
                            {"NAME", "name"},
                            {"PREFIX", "prefix"},
                            {"REVOKED", "revoked"},
                            {"CREATED", "created_at"},
                            {"REVOKED AT", "revoked_at"}}))
      .WithPaging();

  commands
      ->AddUnary(keys, "revoke", "Revoke an API key", &Service::RevokeApiKey,
                 PrintObject())
      .Flag("id", "id", "Key id (key_...)")
      ->required();
}

}  // namespace campaigns::client
