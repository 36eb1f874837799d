// AccountService handlers.
#include "absl/strings/ascii.h"
#include "server/api/api.h"
#include "server/api/handler_util.h"
#include "server/domain/ids.h"

namespace campaigns::api {
namespace {

constexpr char kCreditsLater[] =
    "credits, prices and the transaction ledger arrive with billing "
    "(issue: money and limits)";

absl::Status RequireAdmin(const RpcContext& ctx, absl::string_view what) {
  if (!ctx.principal.admin) {
    return errors::PermissionDenied(
        absl::StrCat(what, " needs an admin account's API key"));
  }
  return absl::OkStatus();
}

// A new key for `account_id`; `secret` receives the plain secret.
ApiKey NewKey(const std::string& account_id, const std::string& name,
              std::string* secret) {
  *secret = NewSecret();
  ApiKey key;
  key.id = NewId(kApiKeyPrefix);
  key.account_id = account_id;
  key.name = name;
  key.prefix = secret->substr(0, 8);
  key.key_hash = Sha256Hex(*secret);
  key.created_at = NowMicros();
  return key;
}

}  // namespace

void Api::RegisterAccounts(Registrar& r) {
  RawService* s = &account_service_;
  r.Unary(s, "GetAccount", Bind(this, &Api::GetAccount));
  r.NotYet(s, "ListTransactions", kCreditsLater);
  r.Unary(s, "CreateApiKey", Bind(this, &Api::CreateApiKey));
  r.Unary(s, "ListApiKeys", Bind(this, &Api::ListApiKeys));
  r.Unary(s, "RevokeApiKey", Bind(this, &Api::RevokeApiKey));
  r.Unary(s, "CreateAccount", Bind(this, &Api::CreateAccount));
  r.NotYet(s, "AddCredits", kCreditsLater);
  r.NotYet(s, "SetPrices", kCreditsLater);
}

void Api::GetAccount(const RpcContext& ctx, const v1::GetAccountRequest& req,
                     Reply<v1::Account> reply) {
  const std::string& id =
      req.id().empty() ? ctx.principal.account_id : req.id();
  if (id != ctx.principal.account_id && !ctx.principal.admin) {
    return reply(errors::NotFound("account", id));
  }
  ReplyWith(store_->GetAccount(id), reply);
}

void Api::CreateAccount(const RpcContext& ctx,
                        const v1::CreateAccountRequest& req,
                        Reply<v1::Account> reply) {
  if (absl::Status s = RequireAdmin(ctx, "CreateAccount"); !s.ok()) {
    return reply(s);
  }
  if (absl::StripAsciiWhitespace(req.name()).empty()) {
    return reply(errors::InvalidField("name", "is required"));
  }
  if (req.name().size() > kMaxNameLength) {
    return reply(errors::InvalidField("name", "is too long"));
  }
  std::string currency = req.currency().empty() ? "EUR" : req.currency();
  if (currency.size() != 3 ||
      !std::all_of(currency.begin(), currency.end(), absl::ascii_isupper)) {
    return reply(errors::InvalidField(
        "currency", "must be a three-letter upper-case code like EUR"));
  }
  storage::AccountWithKey created;
  created.account.id = NewId(kAccountPrefix);
  created.account.name = req.name();
  created.account.admin = req.admin();
  created.account.currency = currency;
  created.account.created_at = created.account.updated_at = NowMicros();
  std::string secret;
  created.key = NewKey(created.account.id, "initial", &secret);
  absl::StatusOr<storage::IdempotencyKey> idem =
      IdempotencyOf("CreateAccount:" + ctx.principal.account_id, req);
  if (!idem.ok()) return reply(idem.status());
  store_->CreateAccount(std::move(created), *std::move(idem),
                        [reply = std::move(reply), secret](
                            absl::StatusOr<storage::AccountWithKey> result) {
                          if (!result.ok()) return reply(result.status());
                          v1::Account out;
                          ToProto(result->account, &out);
                          // A repeat of the request returns the account without
                          // a secret: the secret is shown once.
                          if (!result->key.id.empty()) {
                            ToProto(result->key, out.mutable_api_key());
                            out.mutable_api_key()->set_secret(secret);
                          }
                          reply(std::move(out));
                        });
}

void Api::CreateApiKey(const RpcContext& ctx,
                       const v1::CreateApiKeyRequest& req,
                       Reply<v1::ApiKey> reply) {
  std::string account_id = ctx.principal.account_id;
  if (!req.account_id().empty() && req.account_id() != account_id) {
    if (!ctx.principal.admin) {
      return reply(errors::NotFound("account", req.account_id()));
    }
    account_id = req.account_id();
  }
  if (req.name().size() > kMaxNameLength) {
    return reply(errors::InvalidField("name", "is too long"));
  }
  std::string secret;
  ApiKey key = NewKey(account_id, req.name(), &secret);
  // Copied before the call: argument evaluation order is unspecified.
  std::string key_id = key.id;
  absl::StatusOr<storage::IdempotencyKey> idem =
      IdempotencyOf("CreateApiKey", req);
  if (!idem.ok()) return reply(idem.status());
  store_->CreateApiKey(
      std::move(key), *std::move(idem),
      [reply = std::move(reply), secret,
       key_id = std::move(key_id)](absl::StatusOr<ApiKey> result) {
        if (!result.ok()) return reply(result.status());
        v1::ApiKey out;
        ToProto(*result, &out);
        if (result->id == key_id) out.set_secret(secret);
        reply(std::move(out));
      });
}

void Api::ListApiKeys(const RpcContext& ctx, const v1::ListApiKeysRequest& req,
                      Reply<v1::ListApiKeysResponse> reply) {
  absl::StatusOr<PageRequest> page =
      MakePageRequest(req.page(), req.limit(), req.page_token());
  if (!page.ok()) return reply(page.status());
  ReplyPage(store_->ListApiKeys(ctx.principal.account_id, *page), reply,
            [](v1::ListApiKeysResponse& r) { return r.add_items(); });
}

void Api::RevokeApiKey(const RpcContext& ctx,
                       const v1::RevokeApiKeyRequest& req,
                       Reply<v1::ApiKey> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  store_->RevokeApiKey(ctx.principal.account_id, req.id(),
                       Convert<v1::ApiKey, ApiKey>(std::move(reply)));
}

}  // namespace campaigns::api
