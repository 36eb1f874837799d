// Store: campaigns.
#include <SQLiteCpp/Statement.h>

#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/domain/errors.h"
#include "server/domain/rules.h"
#include "storage/sqlite/rows.h"
#include "storage/sqlite/store.h"
#include "storage/sqlite/store_internal.h"

namespace campaigns::storage {
namespace {

using internal::LoadById;
using internal::LoadCampaign;

// Recipients deleted per write when a campaign is deleted, in seq order
// within each status (the table and the status index are then deleted
// from contiguously): tens of ms per write.
constexpr int kPurgeChunkRows = 10000;

// A campaign without a channel takes its template's, else its sender's
// (matched by visible id or snd_ id): seeds 003 and 004 name a sender or a
// template and no channel. A visible id registered on several channels
// cannot decide: the channel is then required.
absl::Status InferChannel(SQLite::Database& db, Campaign& c) {
  if (c.channel != Channel::kUnspecified) return absl::OkStatus();
  if (!c.template_id.empty()) {
    ASSIGN_OR_RETURN(Template t, LoadById<Template>(db, "templates", "template",
                                                    c.account_id, c.template_id,
                                                    &ReadTemplate));
    c.channel = t.channel;
    return absl::OkStatus();
  }
  SQLite::Statement st(db,
                       "SELECT DISTINCT channel FROM senders WHERE "
                       "account_id=? AND (sender_id=? OR id=?) ORDER BY 1");
  st.bind(1, c.account_id);
  st.bind(2, c.sender_id);
  st.bind(3, c.sender_id);
  std::vector<std::string> channels;
  while (st.executeStep()) channels.push_back(st.getColumn(0).getString());
  if (channels.empty()) {
    return errors::Validation(
        "sender_id", absl::StrCat("sender ", errors::Quote(c.sender_id),
                                  " is not registered"));
  }
  if (channels.size() > 1) {
    return errors::InvalidField(
        "channel",
        absl::StrCat("is required: sender ", errors::Quote(c.sender_id),
                     " is registered on ", absl::StrJoin(channels, " and ")));
  }
  if (!ParseChannel(channels[0], &c.channel)) {
    return absl::InternalError("a stored sender has an unknown channel");
  }
  return absl::OkStatus();
}

// Every contact that recipient_variables names must be one of the account's
// contacts on the campaign's channel: variables for anyone else would never
// be used.
absl::Status CheckRecipientVariableContacts(SQLite::Database& db,
                                            const Campaign& c) {
  if (c.recipient_variables.empty()) return absl::OkStatus();
  SQLite::Statement st(db,
                       "SELECT 1 FROM contacts WHERE id=?3 AND account_id=?1 "
                       "AND channel=?2");
  st.bind(1, c.account_id);
  st.bind(2, std::string(ChannelName(c.channel)));
  for (const auto& [contact, vars] : c.recipient_variables) {
    st.reset();  // keeps the bindings: only the contact changes
    st.bind(3, contact);
    if (!st.executeStep()) {
      return errors::NotFound(absl::StrCat("recipient_variables: ",
                                           ChannelName(c.channel), " contact"),
                              contact);
    }
  }
  return absl::OkStatus();
}

// Resolves and checks what a campaign refers to, inside the write
// transaction: the channel when it is unset (InferChannel), the sender must
// be registered for the campaign's channel (matched by visible id or snd_
// id), the template must exist, be of the same channel and be approved, the
// email fields must suit the channel (ValidateEmailFields: a subject, its own
// or the template's, for email; none elsewhere), a contact list must exist,
// contact_ids must be the account's contacts (NOT_FOUND naming the first
// that is not; one query for up to kMaxListEntries ids) and
// recipient_variables must name its contacts.
absl::Status ResolveReferences(SQLite::Database& db, Campaign& c) {
  RETURN_IF_ERROR(InferChannel(db, c));
  SQLite::Statement sender(db,
                           "SELECT * FROM senders WHERE account_id=? AND "
                           "channel=? AND (sender_id=? OR id=?) LIMIT 1");
  sender.bind(1, c.account_id);
  sender.bind(2, std::string(ChannelName(c.channel)));
  sender.bind(3, c.sender_id);
  sender.bind(4, c.sender_id);
  if (!sender.executeStep()) {
    return errors::Validation(
        "sender_id",
        absl::StrCat("sender ", c.sender_id, " is not registered for channel ",
                     ChannelName(c.channel)));
  }
  Sender s = ReadSender(sender);
  c.sender_id = s.sender_id;
  c.sender_ref = s.id;

  c.template_name.clear();
  c.template_lang.clear();
  std::optional<Template> tmpl;
  if (!c.template_id.empty()) {
    ASSIGN_OR_RETURN(
        tmpl, LoadById<Template>(db, "templates", "template", c.account_id,
                                 c.template_id, &ReadTemplate));
    const Template& t = *tmpl;
    if (t.channel != c.channel) {
      return errors::Validation(
          "template_id", absl::StrCat("template ", t.id, " is for channel ",
                                      ChannelName(t.channel), ", not ",
                                      ChannelName(c.channel)));
    }
    if (t.status != TemplateStatus::kApproved) {
      return errors::Validation(
          "template_id",
          absl::StrCat("template ", t.id, " is ", TemplateStatusName(t.status),
                       ", not approved"));
    }
    c.template_name = t.name;
    c.template_lang = t.language;
  }
  RETURN_IF_ERROR(ValidateEmailFields(c, tmpl ? &*tmpl : nullptr));
  if (!c.contact_list_id.empty()) {
    SQLite::Statement list(
        db, "SELECT 1 FROM contact_lists WHERE id=? AND account_id=?");
    list.bind(1, c.contact_list_id);
    list.bind(2, c.account_id);
    if (!list.executeStep()) {
      return errors::NotFound("contact list", c.contact_list_id);
    }
  }
  if (!c.contact_ids.empty()) {
    RETURN_IF_ERROR(internal::CheckContactsExist(db, c.account_id,
                                                 ListToJson(c.contact_ids)));
  }
  return CheckRecipientVariableContacts(db, c);
}

}  // namespace

namespace internal {

void WriteCampaign(SQLite::Database& db, const Campaign& c, bool insert) {
  static constexpr const char* kInsert =
      "INSERT INTO campaigns(name, channel, sender_id, sender_ref, body, "
      "subject, html_body, "
      "template_id, template_name, template_lang, variable_mapping, "
      "template_components, recipient_variables, "
      "contact_list_id, tags, contact_ids, status, pause_reason, "
      "failure_reason, total, queued, sent, delivered, read, failed, skipped, "
      "batch_size, batch_delay_us, rate_limit_per_second, validity_period_us, "
      "max_lateness_us, schedule_at, started_at, sent_at, completed_at, "
      "cancelled_at, updated_at, created_at, account_id, id, seq) "
      "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
      "?,?,?,?,?,?,?,?,(SELECT COALESCE(MAX(seq), 0) + 1 FROM campaigns))";
  static constexpr const char* kUpdate =
      "UPDATE campaigns SET name=?, channel=?, sender_id=?, sender_ref=?, "
      "body=?, subject=?, html_body=?, "
      "template_id=?, template_name=?, template_lang=?, "
      "variable_mapping=?, template_components=?, recipient_variables=?, "
      "contact_list_id=?, tags=?, contact_ids=?, "
      "status=?, pause_reason=?, failure_reason=?, total=?, queued=?, sent=?, "
      "delivered=?, read=?, failed=?, skipped=?, batch_size=?, "
      "batch_delay_us=?, rate_limit_per_second=?, validity_period_us=?, "
      "max_lateness_us=?, schedule_at=?, started_at=?, sent_at=?, "
      "completed_at=?, cancelled_at=?, updated_at=? "
      "WHERE created_at=? AND account_id=? AND id=?";
  SQLite::Statement st(db, insert ? kInsert : kUpdate);
  int i = 0;
  st.bind(++i, c.name);
  st.bind(++i, std::string(ChannelName(c.channel)));
  st.bind(++i, c.sender_id);
  st.bind(++i, c.sender_ref);
  st.bind(++i, c.body);
  st.bind(++i, c.subject);
  st.bind(++i, c.html_body);
  st.bind(++i, c.template_id);
  st.bind(++i, c.template_name);
  st.bind(++i, c.template_lang);
  st.bind(++i, MapToJson(c.variable_mapping));
  st.bind(++i, ComponentsToJson(c.template_components));
  st.bind(++i, NestedMapToJson(c.recipient_variables));
  st.bind(++i, c.contact_list_id);
  st.bind(++i, ListToJson(c.tags));
  st.bind(++i, ListToJson(c.contact_ids));
  st.bind(++i, std::string(CampaignStatusName(c.status)));
  st.bind(++i, c.pause_reason);
  st.bind(++i, c.failure_reason);
  for (int64_t n :
       {c.stats.total, c.stats.queued, c.stats.sent, c.stats.delivered,
        c.stats.read, c.stats.failed, c.stats.skipped}) {
    st.bind(++i, static_cast<int64_t>(n));
  }
  st.bind(++i, c.batch_size);
  st.bind(++i, static_cast<int64_t>(absl::ToInt64Microseconds(c.batch_delay)));
  st.bind(++i, c.rate_limit_per_second);
  BindOptional(st, ++i, c.validity_period);
  BindOptional(st, ++i, c.max_lateness);
  BindOptional(st, ++i, c.schedule_at);
  BindOptional(st, ++i, c.started_at);
  BindOptional(st, ++i, c.sent_at);
  BindOptional(st, ++i, c.completed_at);
  BindOptional(st, ++i, c.cancelled_at);
  st.bind(++i, static_cast<int64_t>(ToMicros(c.updated_at)));
  st.bind(++i, static_cast<int64_t>(ToMicros(c.created_at)));
  st.bind(++i, c.account_id);
  st.bind(++i, c.id);
  st.exec();
}

}  // namespace internal

void Store::CreateCampaign(Campaign c, IdempotencyKey idem,
                           Callback<Campaign> done,
                           std::optional<LifecycleChange> then) {
  db_->Write<Campaign>(
      [c = std::move(c), idem = std::move(idem), then = std::move(then)](
          SQLite::Database& db) mutable -> absl::StatusOr<Campaign> {
        return internal::Idempotent<Campaign>(
            db, c.account_id, idem,
            [&db, &c](const std::string& id) {
              return LoadCampaign(db, c.account_id, id);
            },
            [&]() -> absl::StatusOr<Campaign> {
              RETURN_IF_ERROR(ValidateCampaignSpec(c));
              RETURN_IF_ERROR(ResolveReferences(db, c));
              internal::WriteCampaign(db, c, /*insert=*/true);
              if (then) {
                ASSIGN_OR_RETURN(c, LoadCampaign(db, c.account_id, c.id));
                RETURN_IF_ERROR(internal::Transition(db, c, *then));
              }
              return c;
            },
            [](const Campaign& x) { return x.id; });
      },
      std::move(done));
}

namespace {

// About how many bytes a campaign's variable-size fields hold: what the
// campaign cache bounds.
size_t CampaignBytes(const Campaign& c) {
  size_t n =
      c.name.size() + c.body.size() + c.subject.size() + c.html_body.size();
  for (const auto& [k, v] : c.variable_mapping) n += k.size() + v.size();
  for (const TemplateComponent& t : c.template_components) {
    n += t.text.size() + 64 * (1 + t.parameters.size());
  }
  for (const auto& [name, vars] : c.recipient_variables) {
    n += name.size();
    for (const auto& [k, v] : vars) n += k.size() + v.size();
  }
  for (const std::string& t : c.tags) n += t.size();
  for (const std::string& id : c.contact_ids) n += id.size();
  return n;
}

}  // namespace

absl::StatusOr<Campaign> Store::GetCampaign(const std::string& account_id,
                                            const std::string& id) {
  if (account_id.empty()) return errors::NotFound("campaign", id);
  // The generation before the read: a write committed meanwhile voids the
  // Put below (RowCache).
  const uint64_t generation = campaigns_.Generation();
  const std::string key = absl::StrCat(account_id, "\n", id);
  if (!campaigns_changing_.load(std::memory_order_acquire)) {
    if (std::optional<Campaign> cached = campaigns_.Get(key)) return *cached;
  }
  // LoadCampaign with the read connection's prepared statement (served
  // often: its parse cost more than its run).
  absl::StatusOr<Campaign> c = db_->ReadPrepared(
      [&](SQLite::Database&,
          StatementCache& statements) -> absl::StatusOr<Campaign> {
        StatementCache::Use st = statements.Get(internal::kSelectCampaign);
        st->bind(1, id);
        st->bind(2, account_id);
        if (!st->executeStep()) return errors::NotFound("campaign", id);
        return ReadCampaign(*st);
      });
  if (c.ok() && CampaignBytes(*c) <= kCachedCampaignText) {
    campaigns_.Put(key, *c, generation);
  }
  return c;
}

absl::StatusOr<CampaignTotals> Store::CountCampaigns() {
  return db_->Read([](SQLite::Database& db) -> absl::StatusOr<CampaignTotals> {
    CampaignTotals totals;
    SQLite::Statement st(db,
                         "SELECT status, COUNT(*), TOTAL(queued) FROM "
                         "campaigns WHERE deleting=0 GROUP BY status");
    while (st.executeStep()) {
      totals.by_status[st.getColumn(0).getString()] =
          st.getColumn(1).getInt64();
      totals.queued += static_cast<int64_t>(st.getColumn(2).getDouble());
    }
    return totals;
  });
}

absl::StatusOr<Page<Campaign>> Store::ListCampaigns(
    const std::string& account_id, const CampaignFilter& filter,
    const PageRequest& page) {
  return db_->ReadPrepared([&](SQLite::Database&, StatementCache& statements) {
    return internal::ListPage<Campaign>(
        statements,
        "campaigns WHERE account_id=?1 AND deleting=0 AND "
        "(?2='' OR status=?2) AND "
        "(?3='' OR channel=?3) AND (?4='' OR sender_id=?4 OR sender_ref=?4)",
        "created_at DESC, id DESC", 4,
        [&](SQLite::Statement& st) {
          st.bind(1, account_id);
          st.bind(2, filter.status == CampaignStatus::kUnspecified
                         ? std::string()
                         : std::string(CampaignStatusName(filter.status)));
          st.bind(3, filter.channel == Channel::kUnspecified
                         ? std::string()
                         : std::string(ChannelName(filter.channel)));
          st.bind(4, filter.sender_id);
        },
        &ReadCampaign, page);
  });
}

void Store::UpdateCampaign(const std::string& account_id, const std::string& id,
                           std::function<absl::Status(Campaign&)> mutate,
                           Callback<Campaign> done) {
  db_->Write<Campaign>(
      [account_id, id, mutate = std::move(mutate)](
          SQLite::Database& db) -> absl::StatusOr<Campaign> {
        ASSIGN_OR_RETURN(Campaign c, LoadCampaign(db, account_id, id));
        if (!IsEditable(c.status)) {
          return errors::IllegalTransition(absl::StrCat(
              "campaign ", id, " is ", CampaignStatusName(c.status),
              "; only draft or scheduled campaigns can be updated"));
        }
        RETURN_IF_ERROR(mutate(c));
        RETURN_IF_ERROR(ValidateCampaignSpec(c));
        RETURN_IF_ERROR(ResolveReferences(db, c));
        c.updated_at = NowMicros();
        internal::WriteCampaign(db, c, /*insert=*/false);
        if (c.status == CampaignStatus::kScheduled &&
            internal::LoadBilling(db, c.seq).billed) {
          // The message or audience may cost otherwise now: reserve anew,
          // or refuse the update (INSUFFICIENT_CREDITS).
          RETURN_IF_ERROR(internal::ReleaseAll(db, c, "updated"));
          RETURN_IF_ERROR(internal::ReserveForStart(db, c));
        }
        return c;
      },
      std::move(done));
}

void Store::DeleteCampaign(const std::string& account_id, const std::string& id,
                           StatusCallback done) {
  db_->WriteRaw(
      [account_id, id](SQLite::Database& db) -> absl::Status {
        ASSIGN_OR_RETURN(Campaign c, LoadCampaign(db, account_id, id));
        if (c.status == CampaignStatus::kSending) {
          return errors::IllegalTransition(
              absl::StrCat("campaign ", id,
                           " is sending; pause or cancel it before deleting"));
        }
        if (c.import_floor.has_value()) {
          return errors::Validation(
              "id", absl::StrCat("an import into campaign ", id,
                                 " is running; delete it when it has ended"));
        }
        RETURN_IF_ERROR(internal::ReleaseAll(db, c, "deleted"));
        SQLite::Statement hide(
            db, "UPDATE campaigns SET deleting=1, updated_at=? WHERE id=?");
        hide.bind(1, static_cast<int64_t>(ToMicros(NowMicros())));
        hide.bind(2, id);
        hide.exec();
        return absl::OkStatus();
      },
      [this, id, done = std::move(done)](absl::Status hidden) {
        if (hidden.ok()) PurgeCampaignChunk(id);
        if (done) done(std::move(hidden));
      });
}

void Store::PurgeCampaignChunk(const std::string& id) {
  db_->Write<bool>(
      [id](SQLite::Database& db) -> absl::StatusOr<bool> {
        // The campaign's address set first, from its start: what a chunk
        // deleted is gone, so each one reads only what it deletes.
        SQLite::Statement addresses(
            db,
            "DELETE FROM recipient_addresses WHERE campaign_seq=(SELECT seq "
            "FROM campaigns WHERE id=?1) AND address IN (SELECT address FROM "
            "recipient_addresses WHERE campaign_seq=(SELECT seq FROM "
            "campaigns WHERE id=?1) ORDER BY address LIMIT ?2)");
        addresses.bind(1, id);
        addresses.bind(2, kPurgeChunkRows);
        if (addresses.exec() == kPurgeChunkRows) return false;
        SQLite::Statement del(
            db,
            "DELETE FROM recipients WHERE seq IN (SELECT seq FROM recipients "
            "INDEXED BY recipients_by_status WHERE campaign_seq=(SELECT seq "
            "FROM campaigns WHERE id=?1) LIMIT ?2)");
        del.bind(1, id);
        del.bind(2, kPurgeChunkRows);
        if (del.exec() == kPurgeChunkRows) return false;
        SQLite::Statement drop(
            db, "DELETE FROM campaigns WHERE id=? AND deleting=1");
        drop.bind(1, id);
        drop.exec();
        return true;
      },
      [this, id](absl::StatusOr<bool> finished) {
        if (!finished.ok()) {
          AgainLater("campaign deletion", finished.status(),
                     [this, id] { PurgeCampaignChunk(id); });
        } else if (!*finished) {
          PurgeCampaignChunk(id);
        }
      },
      /*bulk=*/true);
}

absl::StatusOr<int> Store::ResumeCampaignDeletions() {
  ASSIGN_OR_RETURN(
      std::vector<std::string> ids,
      db_->Read(
          [](SQLite::Database& db) -> absl::StatusOr<std::vector<std::string>> {
            SQLite::Statement st(db,
                                 "SELECT id FROM campaigns WHERE deleting=1");
            std::vector<std::string> out;
            while (st.executeStep()) out.push_back(st.getColumn(0).getString());
            return out;
          }));
  for (const std::string& id : ids) PurgeCampaignChunk(id);
  return static_cast<int>(ids.size());
}

}  // namespace campaigns::storage
