#include "storage/postgres/account_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
#include "server/domain/rules.h"
#include "storage/postgres/rows.h"

namespace campaigns::storage::postgres {
namespace {

// The transaction advisory lock BootstrapAdmin holds ("bootstra"), so that
// instances starting together on an empty database make one admin.
constexpr int64_t kBootstrapLock = 0x626f6f7473747261;

absl::Status InsertAccount(Connection& c, const Account& a) {
  return c
      .Query(
          "INSERT INTO accounts(id, name, admin, currency, credits_balance, "
          "credits_reserved, created_at, updated_at) "
          "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
          {a.id, a.name, a.admin ? "true" : "false", a.currency,
           absl::StrCat(a.credits_balance), absl::StrCat(a.credits_reserved),
           Micros(a.created_at), Micros(a.updated_at)})
      .status();
}

absl::Status InsertApiKey(Connection& c, const ApiKey& k) {
  return c
      .Query(
          "INSERT INTO api_keys(id, account_id, name, prefix, key_hash, "
          "created_at) VALUES ($1, $2, $3, $4, $5, $6)",
          {k.id, k.account_id, k.name, k.prefix, k.key_hash,
           Micros(k.created_at)})
      .status();
}

absl::StatusOr<Account> LoadAccount(Connection& c, const std::string& id) {
  return LoadRow<Account>(c, "accounts", "account", std::nullopt, id,
                          &ReadAccount);
}

absl::StatusOr<ApiKey> LoadApiKey(Connection& c, const std::string& account_id,
                                  const std::string& id) {
  return LoadRow<ApiKey>(c, "api_keys", "api key", account_id, id, &ReadApiKey);
}

}  // namespace

absl::StatusOr<bool> AccountStore::BootstrapAdmin(const std::string& secret) {
  return db_->WriteSync<bool>([&](Connection& c) -> absl::StatusOr<bool> {
    absl::StatusOr<Rows> locked = c.Query(
        absl::StrCat("SELECT pg_advisory_xact_lock(", kBootstrapLock, ")"));
    if (!locked.ok()) return locked.status();
    absl::StatusOr<Rows> any =
        c.Query("SELECT EXISTS (SELECT 1 FROM accounts)");
    if (!any.ok()) return any.status();
    if (any->Text(0, 0) == "t") return false;
    const absl::Time now = NowMicros();
    Account admin;
    admin.id = NewId(kAccountPrefix);
    admin.name = "admin";
    admin.admin = true;
    admin.created_at = admin.updated_at = now;
    RETURN_IF_ERROR(InsertAccount(c, admin));
    ApiKey key;
    key.id = NewId(kApiKeyPrefix);
    key.account_id = admin.id;
    key.name = "bootstrap";
    key.prefix = secret.substr(0, std::min<size_t>(8, secret.size() / 4));
    key.key_hash = Sha256Hex(secret);
    key.created_at = now;
    RETURN_IF_ERROR(InsertApiKey(c, key));
    return true;
  });
}

absl::StatusOr<Principal> AccountStore::Authenticate(absl::string_view secret) {
  const std::string hash = Sha256Hex(secret);
  return db_->Read<Principal>([&](Connection& c) -> absl::StatusOr<Principal> {
    absl::StatusOr<Rows> rows = c.Query(
        "SELECT k.id, k.account_id, a.admin FROM api_keys k "
        "JOIN accounts a ON a.id = k.account_id "
        "WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
        {hash});
    if (!rows.ok()) return rows.status();
    if (rows->size() == 0) {
      return errors::Unauthenticated("missing, unknown or revoked API key");
    }
    Principal p;
    p.key_id = rows->Text(0, 0);
    p.account_id = rows->Text(0, 1);
    p.admin = rows->Text(0, 2) == "t";
    return p;
  });
}

absl::StatusOr<Account> AccountStore::GetAccount(
    const std::string& account_id) {
  return db_->Read<Account>(
      [&](Connection& c) { return LoadAccount(c, account_id); });
}

void AccountStore::CreateAccount(AccountWithKey created, IdempotencyKey idem,
                                 Done<AccountWithKey> done) {
  // As on SQLite: a new account has no records yet, so its idempotency
  // records are kept under account "" (the method names the caller).
  db_->Write<AccountWithKey>(
      [created = std::move(created), idem = std::move(idem)](
          Connection& c) -> absl::StatusOr<AccountWithKey> {
        return Idempotent<AccountWithKey>(
            c, "", idem,
            [&c](const std::string& id) -> absl::StatusOr<AccountWithKey> {
              ASSIGN_OR_RETURN(Account a, LoadAccount(c, id));
              return AccountWithKey{std::move(a), ApiKey{}};
            },
            [&]() -> absl::StatusOr<AccountWithKey> {
              RETURN_IF_ERROR(InsertAccount(c, created.account));
              RETURN_IF_ERROR(InsertApiKey(c, created.key));
              return created;
            },
            [](const AccountWithKey& a) { return a.account.id; });
      },
      std::move(done));
}

void AccountStore::CreateApiKey(ApiKey key, IdempotencyKey idem,
                                Done<ApiKey> done) {
  db_->Write<ApiKey>(
      [key = std::move(key),
       idem = std::move(idem)](Connection& c) -> absl::StatusOr<ApiKey> {
        RETURN_IF_ERROR(LoadAccount(c, key.account_id).status());
        return Idempotent<ApiKey>(
            c, key.account_id, idem,
            [&c, &key](const std::string& id) {
              return LoadApiKey(c, key.account_id, id);
            },
            [&]() -> absl::StatusOr<ApiKey> {
              RETURN_IF_ERROR(InsertApiKey(c, key));
              return key;
            },
            [](const ApiKey& k) { return k.id; });
      },
      std::move(done));
}

absl::StatusOr<Page<ApiKey>> AccountStore::ListApiKeys(
    const std::string& account_id, const PageRequest& page) {
  return db_->Read<Page<ApiKey>>([&](Connection& c) {
    return ListPage<ApiKey>(c, "api_keys WHERE account_id = $1",
                            "created_at DESC, id DESC", {account_id},
                            &ReadApiKey, page);
  });
}

void AccountStore::RevokeApiKey(const std::string& account_id,
                                const std::string& key_id, Done<ApiKey> done) {
  db_->Write<ApiKey>(
      [account_id, key_id](Connection& c) -> absl::StatusOr<ApiKey> {
        if (absl::StatusOr<Rows> revoked =
                c.Query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND "
                        "account_id = $3 AND revoked_at IS NULL",
                        {Micros(NowMicros()), key_id, account_id});
            !revoked.ok()) {
          return revoked.status();
        }
        return LoadApiKey(c, account_id, key_id);
      },
      std::move(done));
}

}  // namespace campaigns::storage::postgres
