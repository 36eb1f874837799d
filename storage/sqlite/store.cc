// Store: campaignd's data as domain values; the shared parts (store.h).
#include "storage/sqlite/store.h"

#include <SQLiteCpp/Statement.h>

#include "absl/strings/str_cat.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
#include "server/domain/rules.h"
#include "storage/sqlite/rows.h"
#include "storage/sqlite/store_internal.h"

namespace campaigns::storage {
namespace internal {

absl::Status DeleteRow(SQLite::Database& db, const char* table,
                       const char* what, const std::string& account_id,
                       const std::string& id) {
  SQLite::Statement st(
      db, absl::StrCat("DELETE FROM ", table, " WHERE id=? AND account_id=?"));
  st.bind(1, id);
  st.bind(2, account_id);
  if (st.exec() == 0) return errors::NotFound(what, id);
  return absl::OkStatus();
}

// Is `column` = `id` used by a campaign of `account_id` that is not final?
absl::Status CheckUnusedByLiveCampaign(SQLite::Database& db,
                                       const std::string& account_id,
                                       const char* column,
                                       const std::string& id,
                                       absl::string_view what) {
  SQLite::Statement st(
      db,
      absl::StrCat("SELECT id FROM campaigns WHERE account_id=? AND ", column,
                   "=? AND deleting=0 AND status NOT IN "
                   "('completed','cancelled','failed') LIMIT 1"));
  st.bind(1, account_id);
  st.bind(2, id);
  if (st.executeStep()) {
    return errors::Validation(
        "id",
        absl::StrCat(what, " ", id, " is used by campaign ",
                     st.getColumn(0).getString(), ", which is not finished"));
  }
  return absl::OkStatus();
}

template <typename T>
absl::StatusOr<T> Idempotent(
    SQLite::Database& db, const std::string& account_id,
    const IdempotencyKey& idem,
    const std::function<absl::StatusOr<T>(const std::string&)>& load,
    const std::function<absl::StatusOr<T>()>& create,
    const std::function<std::string(const T&)>& id_of) {
  if (idem.request_id.empty()) return create();
  SQLite::Statement find(db,
                         "SELECT body_hash, resource_id FROM idempotency_keys "
                         "WHERE account_id=? AND method=? AND request_id=?");
  find.bind(1, account_id);
  find.bind(2, idem.method);
  find.bind(3, idem.request_id);
  if (find.executeStep()) {
    if (find.getColumn(0).getString() != idem.body_hash) {
      return errors::IdempotencyConflict(idem.request_id);
    }
    return load(find.getColumn(1).getString());
  }
  absl::StatusOr<T> created = create();
  if (!created.ok()) return created;
  SQLite::Statement insert(db,
                           "INSERT INTO idempotency_keys(account_id, method, "
                           "request_id, body_hash, resource_id, created_at) "
                           "VALUES(?,?,?,?,?,?)");
  insert.bind(1, account_id);
  insert.bind(2, idem.method);
  insert.bind(3, idem.request_id);
  insert.bind(4, idem.body_hash);
  insert.bind(5, id_of(*created));
  insert.bind(6, static_cast<int64_t>(ToMicros(NowMicros())));
  insert.exec();
  return created;
}

template absl::StatusOr<AccountWithKey> Idempotent(
    SQLite::Database&, const std::string&, const IdempotencyKey&,
    const std::function<absl::StatusOr<AccountWithKey>(const std::string&)>&,
    const std::function<absl::StatusOr<AccountWithKey>()>&,
    const std::function<std::string(const AccountWithKey&)>&);
template absl::StatusOr<Account> Idempotent(
    SQLite::Database&, const std::string&, const IdempotencyKey&,
    const std::function<absl::StatusOr<Account>(const std::string&)>&,
    const std::function<absl::StatusOr<Account>()>&,
    const std::function<std::string(const Account&)>&);
template absl::StatusOr<ApiKey> Idempotent(
    SQLite::Database&, const std::string&, const IdempotencyKey&,
    const std::function<absl::StatusOr<ApiKey>(const std::string&)>&,
    const std::function<absl::StatusOr<ApiKey>()>&,
    const std::function<std::string(const ApiKey&)>&);
template absl::StatusOr<Template> Idempotent(
    SQLite::Database&, const std::string&, const IdempotencyKey&,
    const std::function<absl::StatusOr<Template>(const std::string&)>&,
    const std::function<absl::StatusOr<Template>()>&,
    const std::function<std::string(const Template&)>&);
template absl::StatusOr<Sender> Idempotent(
    SQLite::Database&, const std::string&, const IdempotencyKey&,
    const std::function<absl::StatusOr<Sender>(const std::string&)>&,
    const std::function<absl::StatusOr<Sender>()>&,
    const std::function<std::string(const Sender&)>&);
template absl::StatusOr<Campaign> Idempotent(
    SQLite::Database&, const std::string&, const IdempotencyKey&,
    const std::function<absl::StatusOr<Campaign>(const std::string&)>&,
    const std::function<absl::StatusOr<Campaign>()>&,
    const std::function<std::string(const Campaign&)>&);

template absl::StatusOr<Contact> Idempotent(
    SQLite::Database&, const std::string&, const IdempotencyKey&,
    const std::function<absl::StatusOr<Contact>(const std::string&)>&,
    const std::function<absl::StatusOr<Contact>()>&,
    const std::function<std::string(const Contact&)>&);
template absl::StatusOr<ContactList> Idempotent(
    SQLite::Database&, const std::string&, const IdempotencyKey&,
    const std::function<absl::StatusOr<ContactList>(const std::string&)>&,
    const std::function<absl::StatusOr<ContactList>()>&,
    const std::function<std::string(const ContactList&)>&);

}  // namespace internal

namespace {

using internal::CheckUnusedByLiveCampaign;
using internal::DeleteRow;
using internal::LoadById;
using internal::LoadUnscoped;

void InsertApiKey(SQLite::Database& db, const ApiKey& k) {
  SQLite::Statement st(db,
                       "INSERT INTO api_keys(id, account_id, name, prefix, "
                       "key_hash, created_at) VALUES(?,?,?,?,?,?)");
  st.bind(1, k.id);
  st.bind(2, k.account_id);
  st.bind(3, k.name);
  st.bind(4, k.prefix);
  st.bind(5, k.key_hash);
  st.bind(6, static_cast<int64_t>(ToMicros(k.created_at)));
  st.exec();
}

void InsertAccount(SQLite::Database& db, const Account& a) {
  SQLite::Statement st(db,
                       "INSERT INTO accounts(id, name, admin, currency, "
                       "credits_balance, credits_reserved, created_at, "
                       "updated_at) VALUES(?,?,?,?,?,?,?,?)");
  st.bind(1, a.id);
  st.bind(2, a.name);
  st.bind(3, a.admin ? 1 : 0);
  st.bind(4, a.currency);
  st.bind(5, static_cast<int64_t>(a.credits_balance));
  st.bind(6, static_cast<int64_t>(a.credits_reserved));
  st.bind(7, static_cast<int64_t>(ToMicros(a.created_at)));
  st.bind(8, static_cast<int64_t>(ToMicros(a.updated_at)));
  st.exec();
}

}  // namespace

// --- Accounts and keys -----------------------------------------------------

absl::StatusOr<bool> Store::BootstrapAdmin(const std::string& secret) {
  return db_->WriteSync<bool>(
      [&](SQLite::Database& db) -> absl::StatusOr<bool> {
        if (db.execAndGet("SELECT COUNT(*) FROM accounts").getInt64() > 0) {
          return false;
        }
        const absl::Time now = NowMicros();
        Account admin;
        admin.id = NewId(kAccountPrefix);
        admin.name = "admin";
        admin.admin = true;
        admin.created_at = admin.updated_at = now;
        InsertAccount(db, admin);
        ApiKey key;
        key.id = NewId(kApiKeyPrefix);
        key.account_id = admin.id;
        key.name = "bootstrap";
        key.prefix = secret.substr(0, std::min<size_t>(8, secret.size() / 4));
        key.key_hash = Sha256Hex(secret);
        key.created_at = now;
        InsertApiKey(db, key);
        return true;
      });
}

absl::StatusOr<Principal> Store::Authenticate(absl::string_view secret) {
  const std::string hash = Sha256Hex(secret);
  if (std::optional<Principal> cached = principals_.Get(hash)) return *cached;
  // Read before the database: if a revocation invalidates the cache after
  // this point, what we read may predate it and Put will not cache it.
  const uint64_t generation = principals_.Generation();
  absl::StatusOr<Principal> principal = db_->ReadPrepared(
      [&](SQLite::Database&,
          StatementCache& statements) -> absl::StatusOr<Principal> {
        StatementCache::Use st = statements.Get(
            "SELECT k.id, k.account_id, a.admin FROM api_keys k "
            "JOIN accounts a ON a.id = k.account_id "
            "WHERE k.key_hash=? AND k.revoked_at IS NULL");
        st->bind(1, hash);
        if (!st->executeStep()) {
          return errors::Unauthenticated("missing, unknown or revoked API key");
        }
        Principal p;
        p.key_id = st->getColumn(0).getString();
        p.account_id = st->getColumn(1).getString();
        p.admin = st->getColumn(2).getInt() != 0;
        return p;
      });
  if (principal.ok()) principals_.Put(hash, *principal, generation);
  return principal;
}

absl::StatusOr<Account> Store::GetAccount(const std::string& account_id) {
  return db_->Read([&](SQLite::Database& db) {
    return LoadUnscoped<Account>(db, "accounts", "account", account_id,
                                 &ReadAccount);
  });
}

void Store::CreateAccount(AccountWithKey created, IdempotencyKey idem,
                          Callback<AccountWithKey> done) {
  // A new account has no records yet: CreateAccount's idempotency records
  // are kept under account "", keyed by a method name that includes the
  // calling admin's account (see IdempotencyKey::method).
  db_->Write<AccountWithKey>(
      [created = std::move(created), idem = std::move(idem)](
          SQLite::Database& db) -> absl::StatusOr<AccountWithKey> {
        return internal::Idempotent<AccountWithKey>(
            db, "", idem,
            [&db](const std::string& id) -> absl::StatusOr<AccountWithKey> {
              ASSIGN_OR_RETURN(Account a,
                               LoadUnscoped<Account>(db, "accounts", "account",
                                                     id, &ReadAccount));
              return AccountWithKey{std::move(a), ApiKey{}};
            },
            [&]() -> absl::StatusOr<AccountWithKey> {
              InsertAccount(db, created.account);
              InsertApiKey(db, created.key);
              return created;
            },
            [](const AccountWithKey& a) { return a.account.id; });
      },
      std::move(done));
}

void Store::CreateApiKey(ApiKey key, IdempotencyKey idem,
                         Callback<ApiKey> done) {
  db_->Write<ApiKey>(
      [key = std::move(key),
       idem = std::move(idem)](SQLite::Database& db) -> absl::StatusOr<ApiKey> {
        RETURN_IF_ERROR(LoadUnscoped<Account>(db, "accounts", "account",
                                              key.account_id, &ReadAccount)
                            .status());
        return internal::Idempotent<ApiKey>(
            db, key.account_id, idem,
            [&db, &key](const std::string& id) {
              return LoadById<ApiKey>(db, "api_keys", "api key", key.account_id,
                                      id, &ReadApiKey);
            },
            [&]() -> absl::StatusOr<ApiKey> {
              InsertApiKey(db, key);
              return key;
            },
            [](const ApiKey& k) { return k.id; });
      },
      std::move(done));
}

absl::StatusOr<Page<ApiKey>> Store::ListApiKeys(const std::string& account_id,
                                                const PageRequest& page) {
  return db_->Read([&](SQLite::Database& db) {
    return internal::ListPage<ApiKey>(
        db, "api_keys WHERE account_id=?1", "created_at DESC, id DESC", 1,
        [&](SQLite::Statement& st) { st.bind(1, account_id); }, &ReadApiKey,
        page);
  });
}

void Store::RevokeApiKey(const std::string& account_id,
                         const std::string& key_id, Callback<ApiKey> done) {
  db_->Write<ApiKey>(
      [account_id, key_id](SQLite::Database& db) -> absl::StatusOr<ApiKey> {
        SQLite::Statement st(db,
                             "UPDATE api_keys SET revoked_at=? WHERE id=? AND "
                             "account_id=? AND revoked_at IS NULL");
        st.bind(1, static_cast<int64_t>(ToMicros(NowMicros())));
        st.bind(2, key_id);
        st.bind(3, account_id);
        st.exec();
        return LoadById<ApiKey>(db, "api_keys", "api key", account_id, key_id,
                                &ReadApiKey);
      },
      [this, key_id, done = std::move(done)](absl::StatusOr<ApiKey> key) {
        // Committed (or failed; forgetting is harmless then): from here on
        // Authenticate reads the database, which has the revocation, and
        // no lookup that read it earlier can cache it again. Before anyone
        // is told.
        principals_.InvalidateKey(key_id);
        done(std::move(key));
      });
}

// --- Templates ---------------------------------------------------------------

namespace {

void WriteTemplate(SQLite::Database& db, const Template& t, bool insert) {
  SQLite::Statement st(
      db, insert ? "INSERT INTO templates(name, language, channel, body, "
                   "subject, html_body, components, status, rejection_reason, "
                   "updated_at, created_at, account_id, id) "
                   "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)"
                 : "UPDATE templates SET name=?, language=?, channel=?, "
                   "body=?, subject=?, html_body=?, components=?, status=?, "
                   "rejection_reason=?, updated_at=? "
                   "WHERE created_at=? AND account_id=? AND id=?");
  int i = 0;
  st.bind(++i, t.name);
  st.bind(++i, t.language);
  st.bind(++i, std::string(ChannelName(t.channel)));
  st.bind(++i, t.body);
  st.bind(++i, t.subject);
  st.bind(++i, t.html_body);
  st.bind(++i, ComponentsToJson(t.components));
  st.bind(++i, std::string(TemplateStatusName(t.status)));
  st.bind(++i, t.rejection_reason);
  st.bind(++i, static_cast<int64_t>(ToMicros(t.updated_at)));
  st.bind(++i, static_cast<int64_t>(ToMicros(t.created_at)));
  st.bind(++i, t.account_id);
  st.bind(++i, t.id);
  st.exec();
}

// UNIQUE(account_id, name, language) as a field error instead of a bare
// constraint failure.
absl::Status CheckTemplateNameFree(SQLite::Database& db, const Template& t) {
  SQLite::Statement st(db,
                       "SELECT id FROM templates WHERE account_id=? AND "
                       "name=? AND language=? AND id<>?");
  st.bind(1, t.account_id);
  st.bind(2, t.name);
  st.bind(3, t.language);
  st.bind(4, t.id);
  if (st.executeStep()) {
    return errors::AlreadyExists(
        "name",
        absl::StrCat("a template named ", t.name, " (", t.language,
                     ") already exists: ", st.getColumn(0).getString()));
  }
  return absl::OkStatus();
}

}  // namespace

void Store::CreateTemplate(Template t, IdempotencyKey idem,
                           Callback<Template> done) {
  db_->Write<Template>(
      [t = std::move(t), idem = std::move(idem)](
          SQLite::Database& db) -> absl::StatusOr<Template> {
        return internal::Idempotent<Template>(
            db, t.account_id, idem,
            [&db, &t](const std::string& id) {
              return LoadById<Template>(db, "templates", "template",
                                        t.account_id, id, &ReadTemplate);
            },
            [&]() -> absl::StatusOr<Template> {
              RETURN_IF_ERROR(CheckTemplateNameFree(db, t));
              WriteTemplate(db, t, /*insert=*/true);
              return t;
            },
            [](const Template& x) { return x.id; });
      },
      std::move(done));
}

absl::StatusOr<Template> Store::GetTemplateForReview(const std::string& id) {
  return db_->Read([&](SQLite::Database& db) {
    return LoadUnscoped<Template>(db, "templates", "template", id,
                                  &ReadTemplate);
  });
}

absl::StatusOr<Template> Store::GetTemplate(const std::string& account_id,
                                            const std::string& id) {
  return db_->Read([&](SQLite::Database& db) {
    return LoadById<Template>(db, "templates", "template", account_id, id,
                              &ReadTemplate);
  });
}

absl::StatusOr<Page<Template>> Store::ListTemplates(
    const std::string& account_id, const TemplateFilter& filter,
    const PageRequest& page) {
  return db_->Read([&](SQLite::Database& db) {
    return internal::ListPage<Template>(
        db,
        "templates WHERE account_id=?1 AND (?2='' OR status=?2) AND "
        "(?3='' OR channel=?3) AND (?4='' OR name=?4)",
        "created_at DESC, id DESC", 4,
        [&](SQLite::Statement& st) {
          st.bind(1, account_id);
          st.bind(2, filter.status == TemplateStatus::kUnspecified
                         ? std::string()
                         : std::string(TemplateStatusName(filter.status)));
          st.bind(3, filter.channel == Channel::kUnspecified
                         ? std::string()
                         : std::string(ChannelName(filter.channel)));
          st.bind(4, filter.name);
        },
        &ReadTemplate, page);
  });
}

void Store::UpdateTemplate(const std::string& account_id, const std::string& id,
                           std::function<absl::Status(Template&)> mutate,
                           Callback<Template> done) {
  db_->Write<Template>(
      [account_id, id, mutate = std::move(mutate)](
          SQLite::Database& db) -> absl::StatusOr<Template> {
        ASSIGN_OR_RETURN(Template t,
                         LoadById<Template>(db, "templates", "template",
                                            account_id, id, &ReadTemplate));
        RETURN_IF_ERROR(mutate(t));
        RETURN_IF_ERROR(ValidateTemplate(t));
        RETURN_IF_ERROR(CheckTemplateNameFree(db, t));
        t.updated_at = NowMicros();
        WriteTemplate(db, t, /*insert=*/false);
        return t;
      },
      std::move(done));
}

void Store::DeleteTemplate(const std::string& account_id, const std::string& id,
                           StatusCallback done) {
  db_->WriteRaw(
      [account_id, id](SQLite::Database& db) -> absl::Status {
        RETURN_IF_ERROR(LoadById<Template>(db, "templates", "template",
                                           account_id, id, &ReadTemplate)
                            .status());
        RETURN_IF_ERROR(CheckUnusedByLiveCampaign(db, account_id, "template_id",
                                                  id, "template"));
        return DeleteRow(db, "templates", "template", account_id, id);
      },
      std::move(done));
}

// --- Senders
// -------------------------------------------------------------------

void Store::RegisterSender(Sender s, IdempotencyKey idem,
                           Callback<Sender> done) {
  db_->Write<Sender>(
      [s = std::move(s),
       idem = std::move(idem)](SQLite::Database& db) -> absl::StatusOr<Sender> {
        return internal::Idempotent<Sender>(
            db, s.account_id, idem,
            [&db, &s](const std::string& id) {
              return LoadById<Sender>(db, "senders", "sender", s.account_id, id,
                                      &ReadSender);
            },
            [&]() -> absl::StatusOr<Sender> {
              SQLite::Statement dup(db,
                                    "SELECT id FROM senders WHERE account_id=? "
                                    "AND channel=? AND sender_id=?");
              dup.bind(1, s.account_id);
              dup.bind(2, std::string(ChannelName(s.channel)));
              dup.bind(3, s.sender_id);
              if (dup.executeStep()) {
                return errors::AlreadyExists(
                    "sender_id", absl::StrCat("sender ", s.sender_id,
                                              " is already registered for ",
                                              ChannelName(s.channel), " as ",
                                              dup.getColumn(0).getString()));
              }
              SQLite::Statement st(
                  db,
                  "INSERT INTO senders(id, account_id, sender_id, channel, "
                  "tier, verified, provider, created_at, updated_at) "
                  "VALUES(?,?,?,?,?,?,?,?,?)");
              st.bind(1, s.id);
              st.bind(2, s.account_id);
              st.bind(3, s.sender_id);
              st.bind(4, std::string(ChannelName(s.channel)));
              st.bind(5, std::string(SenderTierName(s.tier)));
              st.bind(6, s.verified ? 1 : 0);
              st.bind(7, s.provider);
              st.bind(8, static_cast<int64_t>(ToMicros(s.created_at)));
              st.bind(9, static_cast<int64_t>(ToMicros(s.updated_at)));
              st.exec();
              return s;
            },
            [](const Sender& x) { return x.id; });
      },
      std::move(done));
}

absl::StatusOr<Sender> Store::GetSender(const std::string& account_id,
                                        const std::string& id) {
  return db_->Read([&](SQLite::Database& db) {
    return LoadById<Sender>(db, "senders", "sender", account_id, id,
                            &ReadSender);
  });
}

absl::StatusOr<Page<Sender>> Store::ListSenders(const std::string& account_id,
                                                Channel channel,
                                                const PageRequest& page) {
  return db_->Read([&](SQLite::Database& db) {
    return internal::ListPage<Sender>(
        db, "senders WHERE account_id=?1 AND (?2='' OR channel=?2)",
        "created_at DESC, id DESC", 2,
        [&](SQLite::Statement& st) {
          st.bind(1, account_id);
          st.bind(2, channel == Channel::kUnspecified
                         ? std::string()
                         : std::string(ChannelName(channel)));
        },
        &ReadSender, page);
  });
}

void Store::DeleteSender(const std::string& account_id, const std::string& id,
                         StatusCallback done) {
  db_->WriteRaw(
      [account_id, id](SQLite::Database& db) -> absl::Status {
        RETURN_IF_ERROR(LoadById<Sender>(db, "senders", "sender", account_id,
                                         id, &ReadSender)
                            .status());
        RETURN_IF_ERROR(CheckUnusedByLiveCampaign(db, account_id, "sender_ref",
                                                  id, "sender"));
        return DeleteRow(db, "senders", "sender", account_id, id);
      },
      std::move(done));
}

}  // namespace campaigns::storage
