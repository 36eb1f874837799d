// AccountService handlers.
#include "absl/strings/ascii.h"
#include "server/api/api.h"
#include "server/api/handler_util.h"
#include "server/api/watch.h"
#include "server/domain/ids.h"

namespace campaigns::api {
namespace {

// The longest AddCredits description.
constexpr size_t kMaxCreditDescriptionLength = 500;

absl::Status RequireAdmin(const RpcContext& ctx, absl::string_view what) {
  if (!ctx.principal.admin) {
    return errors::PermissionDenied(
        absl::StrCat(what, " needs an admin account's API key"));
  }
  return absl::OkStatus();
}

// The account an admin-only call acts on: `account_id`, or the caller's
// own when empty. PERMISSION_DENIED for a tenant's key.
absl::StatusOr<std::string> AdminTarget(const RpcContext& ctx,
                                        absl::string_view what,
                                        const std::string& account_id) {
  RETURN_IF_ERROR(RequireAdmin(ctx, what));
  const std::string& id =
      account_id.empty() ? ctx.principal.account_id : account_id;
  RETURN_IF_ERROR(CheckIdLength("account_id", id));
  return id;
}

// The account a read names: `id`, or the caller's own when empty. Another
// account's is NOT_FOUND unless the caller is an admin.
absl::StatusOr<std::string> ReadableAccount(const RpcContext& ctx,
                                            const std::string& id) {
  if (id.empty() || id == ctx.principal.account_id) {
    return ctx.principal.account_id;
  }
  if (!ctx.principal.admin) return errors::NotFound("account", id);
  return id;
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
  r.Unary(s, "ListTransactions", Bind(this, &Api::ListTransactions));
  r.Unary(s, "CreateApiKey", Bind(this, &Api::CreateApiKey));
  r.Unary(s, "ListApiKeys", Bind(this, &Api::ListApiKeys));
  r.Unary(s, "RevokeApiKey", Bind(this, &Api::RevokeApiKey));
  r.Unary(s, "CreateAccount", Bind(this, &Api::CreateAccount));
  r.Unary(s, "AddCredits", Bind(this, &Api::AddCredits));
  r.Unary(s, "SetPrices", Bind(this, &Api::SetPrices));
}

void Api::GetAccount(const RpcContext& ctx, const v1::GetAccountRequest& req,
                     Reply<v1::Account> reply) {
  absl::StatusOr<std::string> id = ReadableAccount(ctx, req.id());
  if (!id.ok()) return reply(id.status());
  ReplyWith(store_->GetAccount(*id), reply);
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
  AccountWithKey created;
  created.account.id = NewId(kAccountPrefix);
  created.account.name = req.name();
  created.account.admin = req.admin();
  created.account.currency = currency;
  created.account.created_at = created.account.updated_at = NowMicros();
  std::string secret;
  created.key = NewKey(created.account.id, "initial", &secret);
  absl::StatusOr<IdempotencyKey> idem =
      IdempotencyOf("CreateAccount:" + ctx.principal.account_id, req);
  if (!idem.ok()) return reply(idem.status());
  store_->CreateAccount(std::move(created), *std::move(idem),
                        [reply = std::move(reply),
                         secret](absl::StatusOr<AccountWithKey> result) {
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
  absl::StatusOr<IdempotencyKey> idem = IdempotencyOf("CreateApiKey", req);
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
  std::string query;
  absl::StatusOr<PageRequest> page = PageOf(ctx, req, &query);
  if (!page.ok()) return reply(page.status());
  ReplyPage(store_->ListApiKeys(ctx.principal.account_id, *page), query, reply,
            [](v1::ListApiKeysResponse& r) { return r.add_items(); });
}

void Api::RevokeApiKey(const RpcContext& ctx,
                       const v1::RevokeApiKeyRequest& req,
                       Reply<v1::ApiKey> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  // Once committed, the key's open Watch streams end (its unary calls are
  // refused from then on by Authenticate, which reads the store).
  store_->RevokeApiKey(ctx.principal.account_id, req.id(),
                       [this, reply = Convert<v1::ApiKey, ApiKey>(std::move(
                                  reply))](absl::StatusOr<ApiKey> key) {
                         if (key.ok() && key->revoked_at && watch_ != nullptr) {
                           watch_->KeyRevoked(key->id);
                         }
                         reply(std::move(key));
                       });
}

void Api::AddCredits(const RpcContext& ctx, const v1::AddCreditsRequest& req,
                     Reply<v1::Account> reply) {
  absl::StatusOr<std::string> account_id =
      AdminTarget(ctx, "AddCredits", req.account_id());
  if (!account_id.ok()) return reply(account_id.status());
  if (req.amount() <= 0 || req.amount() > kMaxCreditAmount) {
    return reply(errors::InvalidField(
        "amount", absl::StrCat("must be between 1 and ", kMaxCreditAmount,
                               " micro-credits (1 credit = 1000000)")));
  }
  if (req.description().size() > kMaxCreditDescriptionLength) {
    return reply(errors::InvalidField(
        "description", absl::StrCat("is longer than ",
                                    kMaxCreditDescriptionLength, " bytes")));
  }
  absl::StatusOr<IdempotencyKey> idem = IdempotencyOf("AddCredits", req);
  if (!idem.ok()) return reply(idem.status());
  store_->AddCredits(*account_id, req.amount(), req.description(),
                     *std::move(idem),
                     Convert<v1::Account, Account>(std::move(reply)));
}

void Api::SetPrices(const RpcContext& ctx, const v1::SetPricesRequest& req,
                    Reply<v1::SetPricesResponse> reply) {
  absl::StatusOr<std::string> account_id =
      AdminTarget(ctx, "SetPrices", req.account_id());
  if (!account_id.ok()) return reply(account_id.status());
  std::vector<Price> prices;
  for (int i = 0; i < req.prices_size(); ++i) {
    const v1::Price& p = req.prices(i);
    const std::string field = absl::StrCat("prices[", i, "].channel");
    absl::StatusOr<Channel> channel =
        ChannelFromProto(p.channel(), field.c_str());
    if (!channel.ok()) return reply(channel.status());
    if (p.country().size() > 8) {
      return reply(errors::InvalidField(absl::StrCat("prices[", i, "].country"),
                                        "must be an ISO 3166 region code"));
    }
    prices.push_back(Price{*channel, p.country(), p.amount()});
  }
  absl::StatusOr<std::vector<Price>> normalized =
      NormalizePrices(std::move(prices));
  if (!normalized.ok()) return reply(normalized.status());
  store_->SetPrices(
      *account_id, *std::move(normalized),
      [reply = std::move(reply)](absl::StatusOr<std::vector<Price>> stored) {
        if (!stored.ok()) return reply(stored.status());
        v1::SetPricesResponse out;
        for (const Price& p : *stored) ToProto(p, out.add_prices());
        reply(std::move(out));
      });
}

void Api::ListTransactions(const RpcContext& ctx,
                           const v1::ListTransactionsRequest& req,
                           Reply<v1::ListTransactionsResponse> reply) {
  absl::StatusOr<std::string> id = ReadableAccount(ctx, req.account_id());
  if (!id.ok()) return reply(id.status());
  std::string query;
  absl::StatusOr<PageRequest> page = PageOf(ctx, req, &query);
  if (!page.ok()) return reply(page.status());
  ReplyPage(store_->ListTransactions(*id, *page), query, reply,
            [](v1::ListTransactionsResponse& r) { return r.add_items(); });
}

}  // namespace campaigns::api
