#include "storage/postgres/catalog_store.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/domain/errors.h"
#include "server/domain/rules.h"
#include "server/domain/types.h"
#include "storage/json.h"
#include "storage/postgres/rows.h"

namespace campaigns::storage::postgres {
namespace {

// The filter value of an enum: "" for unspecified (no filter).
template <typename E>
std::string FilterOf(E e, absl::string_view (*name)(E)) {
  return e == E::kUnspecified ? std::string() : std::string(name(e));
}

absl::Status WriteTemplate(Connection& c, const Template& t, bool insert) {
  return c
      .Query(insert ? "INSERT INTO templates(name, language, channel, body, "
                      "subject, html_body, components, status, "
                      "rejection_reason, updated_at, created_at, account_id, "
                      "id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
                      "$11, $12, $13)"
                    : "UPDATE templates SET name = $1, language = $2, "
                      "channel = $3, body = $4, subject = $5, html_body = $6, "
                      "components = $7, status = $8, rejection_reason = $9, "
                      "updated_at = $10 WHERE created_at = $11 AND "
                      "account_id = $12 AND id = $13",
             {t.name, t.language, std::string(ChannelName(t.channel)), t.body,
              t.subject, t.html_body, ComponentsToJson(t.components),
              std::string(TemplateStatusName(t.status)), t.rejection_reason,
              Micros(t.updated_at), Micros(t.created_at), t.account_id, t.id})
      .status();
}

// UNIQUE (account_id, name, language) as a field error instead of a bare
// constraint failure. A concurrent insert of the same name (another
// instance) still meets the constraint; WriteTemplate's caller maps it.
absl::Status CheckTemplateNameFree(Connection& c, const Template& t) {
  absl::StatusOr<Rows> rows = c.Query(
      "SELECT id FROM templates WHERE account_id = $1 AND name = $2 AND "
      "language = $3 AND id <> $4",
      {t.account_id, t.name, t.language, t.id});
  if (!rows.ok()) return rows.status();
  if (rows->size() == 0) return absl::OkStatus();
  return errors::AlreadyExists(
      "name", absl::StrCat("a template named ", t.name, " (", t.language,
                           ") already exists: ", rows->Text(0, 0)));
}

absl::Status NameTaken(const Template& t, const absl::Status& s) {
  if (s.code() != absl::StatusCode::kAlreadyExists) return s;
  return errors::AlreadyExists(
      "name", absl::StrCat("a template named ", t.name, " (", t.language,
                           ") already exists"));
}

absl::StatusOr<Template> LoadTemplate(Connection& c,
                                      const std::optional<std::string>& account,
                                      const std::string& id) {
  return LoadRow<Template>(c, "templates", "template", account, id,
                           &ReadTemplate);
}

// Locks the row `id` of `account_id` in `table` (FOR UPDATE) before a
// delete looks for the campaigns that use it: a campaign being created or
// updated on another instance holds FOR KEY SHARE on the row it refers to
// (CampaignStore), so the delete waits for it and then sees it. NOT_FOUND
// "<what> <id> not found" if there is no such row.
absl::Status LockForDelete(Connection& c, const char* table, const char* what,
                           const std::string& account_id,
                           const std::string& id) {
  if (account_id.empty()) return errors::NotFound(what, id);
  absl::StatusOr<Rows> rows =
      c.Query(absl::StrCat("SELECT 1 FROM ", table,
                           " WHERE id = $1 AND account_id = $2 FOR UPDATE"),
              {id, account_id});
  if (!rows.ok()) return rows.status();
  if (rows->size() == 0) return errors::NotFound(what, id);
  return absl::OkStatus();
}

absl::StatusOr<Sender> LoadSender(Connection& c, const std::string& account,
                                  const std::string& id) {
  return LoadRow<Sender>(c, "senders", "sender", account, id, &ReadSender);
}

absl::Status SenderTaken(const Sender& s, const std::string& existing) {
  return errors::AlreadyExists(
      "sender_id",
      absl::StrCat("sender ", s.sender_id, " is already registered for ",
                   ChannelName(s.channel),
                   existing.empty() ? "" : absl::StrCat(" as ", existing)));
}

absl::Status DeleteRow(Connection& c, const char* table, const char* what,
                       const std::string& account_id, const std::string& id) {
  absl::StatusOr<Rows> deleted = c.Query(
      absl::StrCat("DELETE FROM ", table, " WHERE id = $1 AND account_id = $2"),
      {id, account_id});
  if (!deleted.ok()) return deleted.status();
  if (deleted->affected() == 0) return errors::NotFound(what, id);
  return absl::OkStatus();
}

}  // namespace

// --- Templates ---------------------------------------------------------------

void CatalogStore::CreateTemplate(Template t, IdempotencyKey idem,
                                  Done<Template> done) {
  db_->Write<Template>(
      [t = std::move(t),
       idem = std::move(idem)](Connection& c) -> absl::StatusOr<Template> {
        return Idempotent<Template>(
            c, t.account_id, idem,
            [&c, &t](const std::string& id) {
              return LoadTemplate(c, t.account_id, id);
            },
            [&]() -> absl::StatusOr<Template> {
              RETURN_IF_ERROR(CheckTemplateNameFree(c, t));
              RETURN_IF_ERROR(NameTaken(t, WriteTemplate(c, t, true)));
              return t;
            },
            [](const Template& x) { return x.id; });
      },
      std::move(done));
}

absl::StatusOr<Template> CatalogStore::GetTemplate(
    const std::string& account_id, const std::string& id) {
  return db_->Read<Template>(
      [&](Connection& c) { return LoadTemplate(c, account_id, id); });
}

absl::StatusOr<Template> CatalogStore::GetTemplateForReview(
    const std::string& id) {
  return db_->Read<Template>(
      [&](Connection& c) { return LoadTemplate(c, std::nullopt, id); });
}

absl::StatusOr<Page<Template>> CatalogStore::ListTemplates(
    const std::string& account_id, const TemplateFilter& filter,
    const PageRequest& page) {
  return db_->Read<Page<Template>>([&](Connection& c) {
    return ListPage<Template>(
        c,
        "templates WHERE account_id = $1 AND ($2 = '' OR status = $2) AND "
        "($3 = '' OR channel = $3) AND ($4 = '' OR name = $4)",
        "created_at DESC, id DESC",
        {account_id, FilterOf(filter.status, &TemplateStatusName),
         FilterOf(filter.channel, &ChannelName), filter.name},
        &ReadTemplate, page);
  });
}

void CatalogStore::UpdateTemplate(const std::string& account_id,
                                  const std::string& id,
                                  std::function<absl::Status(Template&)> mutate,
                                  Done<Template> done) {
  db_->Write<Template>(
      [account_id, id,
       mutate = std::move(mutate)](Connection& c) -> absl::StatusOr<Template> {
        // FOR UPDATE: another instance's update of the same template waits
        // for this one and then mutates what it wrote.
        absl::StatusOr<Rows> locked = c.Query(
            "SELECT 1 FROM templates WHERE id = $1 AND account_id = $2 "
            "FOR UPDATE",
            {id, account_id});
        if (!locked.ok()) return locked.status();
        ASSIGN_OR_RETURN(Template t, LoadTemplate(c, account_id, id));
        RETURN_IF_ERROR(mutate(t));
        RETURN_IF_ERROR(ValidateTemplate(t));
        RETURN_IF_ERROR(CheckTemplateNameFree(c, t));
        t.updated_at = NowMicros();
        RETURN_IF_ERROR(NameTaken(t, WriteTemplate(c, t, false)));
        return t;
      },
      std::move(done));
}

void CatalogStore::DeleteTemplate(const std::string& account_id,
                                  const std::string& id, StatusDone done) {
  db_->WriteRaw(
      [account_id, id](Connection& c) -> absl::Status {
        RETURN_IF_ERROR(
            LockForDelete(c, "templates", "template", account_id, id));
        RETURN_IF_ERROR(CheckUnusedByLiveCampaign(c, account_id, "template_id",
                                                  id, "template"));
        return DeleteRow(c, "templates", "template", account_id, id);
      },
      std::move(done));
}

// --- Senders -----------------------------------------------------------------

void CatalogStore::RegisterSender(Sender s, IdempotencyKey idem,
                                  Done<Sender> done) {
  db_->Write<Sender>(
      [s = std::move(s),
       idem = std::move(idem)](Connection& c) -> absl::StatusOr<Sender> {
        return Idempotent<Sender>(
            c, s.account_id, idem,
            [&c, &s](const std::string& id) {
              return LoadSender(c, s.account_id, id);
            },
            [&]() -> absl::StatusOr<Sender> {
              absl::StatusOr<Rows> dup = c.Query(
                  "SELECT id FROM senders WHERE account_id = $1 AND "
                  "channel = $2 AND sender_id = $3",
                  {s.account_id, std::string(ChannelName(s.channel)),
                   s.sender_id});
              if (!dup.ok()) return dup.status();
              if (dup->size() > 0) return SenderTaken(s, dup->Text(0, 0));
              absl::Status inserted =
                  c.Query(
                       "INSERT INTO senders(id, account_id, sender_id, "
                       "channel, tier, verified, provider, created_at, "
                       "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
                       "$9)",
                       {s.id, s.account_id, s.sender_id,
                        std::string(ChannelName(s.channel)),
                        std::string(SenderTierName(s.tier)),
                        s.verified ? "true" : "false", s.provider,
                        Micros(s.created_at), Micros(s.updated_at)})
                      .status();
              if (inserted.code() == absl::StatusCode::kAlreadyExists) {
                return SenderTaken(s, "");  // by a concurrent instance
              }
              RETURN_IF_ERROR(inserted);
              return s;
            },
            [](const Sender& x) { return x.id; });
      },
      std::move(done));
}

absl::StatusOr<Sender> CatalogStore::GetSender(const std::string& account_id,
                                               const std::string& id) {
  return db_->Read<Sender>(
      [&](Connection& c) { return LoadSender(c, account_id, id); });
}

absl::StatusOr<Page<Sender>> CatalogStore::ListSenders(
    const std::string& account_id, Channel channel, const PageRequest& page) {
  return db_->Read<Page<Sender>>([&](Connection& c) {
    return ListPage<Sender>(
        c, "senders WHERE account_id = $1 AND ($2 = '' OR channel = $2)",
        "created_at DESC, id DESC",
        {account_id, FilterOf(channel, &ChannelName)}, &ReadSender, page);
  });
}

void CatalogStore::DeleteSender(const std::string& account_id,
                                const std::string& id, StatusDone done) {
  db_->WriteRaw(
      [account_id, id](Connection& c) -> absl::Status {
        RETURN_IF_ERROR(LockForDelete(c, "senders", "sender", account_id, id));
        RETURN_IF_ERROR(CheckUnusedByLiveCampaign(c, account_id, "sender_ref",
                                                  id, "sender"));
        return DeleteRow(c, "senders", "sender", account_id, id);
      },
      std::move(done));
}

}  // namespace campaigns::storage::postgres
