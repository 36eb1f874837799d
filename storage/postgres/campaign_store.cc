#include "storage/postgres/campaign_store.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/domain/errors.h"
#include "server/domain/leases.h"
#include "server/domain/rules.h"
#include "server/domain/types.h"
#include "server/log/log.h"
#include "storage/json.h"
#include "storage/postgres/ledger.h"
#include "storage/postgres/lifecycle.h"
#include "storage/postgres/owners.h"
#include "storage/postgres/rows.h"

namespace campaigns::storage::postgres {
namespace {

// Address-set entries, then recipients, deleted per write when a campaign
// is deleted: tens of ms per write.
constexpr int kPurgeChunkRows = 10000;

absl::StatusOr<Template> LoadTemplateOf(Connection& c,
                                        const std::string& account_id,
                                        const std::string& id) {
  return LoadRow<Template>(c, "templates", "template", account_id, id,
                           &ReadTemplate);
}

// A campaign without a channel takes its template's, else its sender's
// (matched by visible id or snd_ id): seeds 003 and 004 name a sender or a
// template and no channel. A visible id registered on several channels
// cannot decide: the channel is then required.
absl::Status InferChannel(Connection& conn, Campaign& c) {
  if (c.channel != Channel::kUnspecified) return absl::OkStatus();
  if (!c.template_id.empty()) {
    ASSIGN_OR_RETURN(Template t,
                     LoadTemplateOf(conn, c.account_id, c.template_id));
    c.channel = t.channel;
    return absl::OkStatus();
  }
  // COLLATE "C": the channels named in byte order, as SQLite sorts them.
  absl::StatusOr<Rows> rows = conn.Query(
      "SELECT DISTINCT channel COLLATE \"C\" AS channel FROM senders WHERE "
      "account_id = $1 AND (sender_id = $2 OR id = $2) ORDER BY 1",
      {c.account_id, c.sender_id});
  if (!rows.ok()) return rows.status();
  std::vector<std::string> channels;
  for (int i = 0; i < rows->size(); ++i) channels.push_back(rows->Text(i, 0));
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
// be used. NOT_FOUND naming the first that is not, in key order.
absl::Status CheckRecipientVariableContacts(Connection& conn,
                                            const Campaign& c) {
  if (c.recipient_variables.empty()) return absl::OkStatus();
  std::vector<std::string> ids;
  for (const auto& [contact, vars] : c.recipient_variables) {
    ids.push_back(contact);
  }
  absl::StatusOr<Rows> missing = conn.Query(
      "SELECT j.id FROM jsonb_array_elements_text($3::jsonb) WITH ORDINALITY "
      "AS j(id, n) WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.id = "
      "j.id AND c.account_id = $1 AND c.channel = $2) ORDER BY j.n LIMIT 1",
      {c.account_id, std::string(ChannelName(c.channel)), ListToJson(ids)});
  if (!missing.ok()) return missing.status();
  if (missing->size() > 0) {
    return errors::NotFound(absl::StrCat("recipient_variables: ",
                                         ChannelName(c.channel), " contact"),
                            missing->Text(0, 0));
  }
  return absl::OkStatus();
}

// The first of `contact_ids` that is not a contact of `account_id`, as
// NOT_FOUND naming it; OK when all are. One query, whatever the number.
absl::Status CheckContactsExist(Connection& conn, const std::string& account_id,
                                const std::vector<std::string>& contact_ids) {
  absl::StatusOr<Rows> missing = conn.Query(
      "SELECT j.id FROM jsonb_array_elements_text($2::jsonb) WITH ORDINALITY "
      "AS j(id, n) WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE "
      "c.account_id = $1 AND c.id = j.id) ORDER BY j.n LIMIT 1",
      {account_id, ListToJson(contact_ids)});
  if (!missing.ok()) return missing.status();
  if (missing->size() > 0) {
    return errors::NotFound("contact", missing->Text(0, 0));
  }
  return absl::OkStatus();
}

// Resolves and checks what a campaign refers to, inside the write
// transaction: the channel when it is unset (InferChannel), the sender must
// be registered for the campaign's channel (matched by visible id or snd_
// id), the template must exist, be of the same channel and be approved, the
// email fields must suit the channel (ValidateEmailFields), a contact list
// must exist, contact_ids must be the account's contacts and
// recipient_variables must name its contacts. The sender's and list's rows
// are locked FOR KEY SHARE: their deletes (which lock the row FOR UPDATE
// before they look for campaigns using it) wait for this transaction, then
// see the campaign; a delete that came first leaves nothing to find. The
// template's is locked FOR SHARE, which also holds off any change of its
// status (an approval taken back) until this transaction ends.
absl::Status ResolveReferences(Connection& conn, Campaign& c) {
  RETURN_IF_ERROR(InferChannel(conn, c));
  absl::StatusOr<Rows> sender = conn.Query(
      "SELECT * FROM senders WHERE account_id = $1 AND channel = $2 AND "
      "(sender_id = $3 OR id = $3) ORDER BY id COLLATE \"C\" LIMIT 1 FOR KEY "
      "SHARE",
      {c.account_id, std::string(ChannelName(c.channel)), c.sender_id});
  if (!sender.ok()) return sender.status();
  if (sender->size() == 0) {
    return errors::Validation(
        "sender_id",
        absl::StrCat("sender ", c.sender_id, " is not registered for channel ",
                     ChannelName(c.channel)));
  }
  const Sender s = ReadSender(*sender, 0);
  c.sender_id = s.sender_id;
  c.sender_ref = s.id;

  c.template_name.clear();
  c.template_lang.clear();
  std::optional<Template> tmpl;
  if (!c.template_id.empty()) {
    absl::StatusOr<Rows> locked = conn.Query(
        "SELECT * FROM templates WHERE id = $1 AND account_id = $2 "
        "FOR SHARE",
        {c.template_id, c.account_id});
    if (!locked.ok()) return locked.status();
    if (locked->size() == 0) {
      return errors::NotFound("template", c.template_id);
    }
    tmpl = ReadTemplate(*locked, 0);
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
    absl::StatusOr<Rows> list = conn.Query(
        "SELECT 1 FROM contact_lists WHERE id = $1 AND account_id = $2 FOR "
        "KEY SHARE",
        {c.contact_list_id, c.account_id});
    if (!list.ok()) return list.status();
    if (list->size() == 0) {
      return errors::NotFound("contact list", c.contact_list_id);
    }
  }
  if (!c.contact_ids.empty()) {
    RETURN_IF_ERROR(CheckContactsExist(conn, c.account_id, c.contact_ids));
  }
  return CheckRecipientVariableContacts(conn, c);
}

std::string CampaignStatusColumn(CampaignStatus s) {
  return s == CampaignStatus::kUnspecified ? std::string()
                                           : std::string(CampaignStatusName(s));
}

std::string CampaignChannelColumn(Channel c) {
  return c == Channel::kUnspecified ? std::string()
                                    : std::string(ChannelName(c));
}

}  // namespace

void CampaignStore::CreateCampaign(Campaign c, IdempotencyKey idem,
                                   Done<Campaign> done,
                                   std::optional<LifecycleChange> then) {
  db_->Write<Campaign>(
      [c = std::move(c), idem = std::move(idem),
       then = std::move(then)](Connection& conn) -> absl::StatusOr<Campaign> {
        // Not moved from: the op may run twice (Database's retry).
        return Idempotent<Campaign>(
            conn, c.account_id, idem,
            [&conn, &c](const std::string& id) {
              return LoadCampaign(conn, c.account_id, id, /*lock=*/false);
            },
            [&]() -> absl::StatusOr<Campaign> {
              Campaign out = c;
              RETURN_IF_ERROR(ValidateCampaignSpec(out));
              RETURN_IF_ERROR(ResolveReferences(conn, out));
              RETURN_IF_ERROR(WriteCampaign(conn, out, /*insert=*/true));
              if (then) {
                ASSIGN_OR_RETURN(out, LoadCampaign(conn, out.account_id, out.id,
                                                   /*lock=*/true));
                RETURN_IF_ERROR(Transition(conn, out, *then));
              }
              return out;
            },
            [](const Campaign& x) { return x.id; });
      },
      std::move(done));
}

absl::StatusOr<Campaign> CampaignStore::GetCampaign(
    const std::string& account_id, const std::string& id) {
  // No cache, unlike SQLite's: another instance may have written the row.
  return db_->Read<Campaign>([&](Connection& c) {
    return LoadCampaign(c, account_id, id, /*lock=*/false);
  });
}

absl::StatusOr<Page<Campaign>> CampaignStore::ListCampaigns(
    const std::string& account_id, const CampaignFilter& filter,
    const PageRequest& page) {
  return db_->Read<Page<Campaign>>([&](Connection& c) {
    // COLLATE "C": ties in time in byte order, as SQLite orders them.
    return ListPage<Campaign>(
        c,
        "campaigns WHERE account_id = $1 AND NOT deleting AND ($2 = '' OR "
        "status = $2) AND ($3 = '' OR channel = $3) AND ($4 = '' OR "
        "sender_id = $4 OR sender_ref = $4)",
        "created_at DESC, id COLLATE \"C\" DESC",
        {account_id, CampaignStatusColumn(filter.status),
         CampaignChannelColumn(filter.channel), filter.sender_id},
        &ReadCampaign, page);
  });
}

absl::StatusOr<CampaignTotals> CampaignStore::CountCampaigns() {
  return db_->Read<CampaignTotals>(
      [](Connection& c) -> absl::StatusOr<CampaignTotals> {
        absl::StatusOr<Rows> rows = c.Query(
            "SELECT status, count(*) AS campaigns, COALESCE(sum(queued), 0) "
            "AS queued FROM campaigns WHERE NOT deleting GROUP BY status");
        if (!rows.ok()) return rows.status();
        CampaignTotals totals;
        for (int i = 0; i < rows->size(); ++i) {
          totals.by_status[rows->Text(i, "status")] =
              IntAt(*rows, i, "campaigns");
          totals.queued += IntAt(*rows, i, "queued");
        }
        return totals;
      });
}

void CampaignStore::UpdateCampaign(
    const std::string& account_id, const std::string& id,
    std::function<absl::Status(Campaign&)> mutate, Done<Campaign> done) {
  db_->Write<Campaign>(
      [account_id, id, mutate = std::move(mutate)](
          Connection& conn) -> absl::StatusOr<Campaign> {
        // Locked until the commit: an update of it on another instance
        // waits, then reads this one's result.
        ASSIGN_OR_RETURN(Campaign c,
                         LoadCampaign(conn, account_id, id, /*lock=*/true));
        if (!IsEditable(c.status)) {
          return errors::IllegalTransition(absl::StrCat(
              "campaign ", id, " is ", CampaignStatusName(c.status),
              "; only draft or scheduled campaigns can be updated"));
        }
        RETURN_IF_ERROR(mutate(c));
        RETURN_IF_ERROR(ValidateCampaignSpec(c));
        RETURN_IF_ERROR(ResolveReferences(conn, c));
        c.updated_at = NowMicros();
        RETURN_IF_ERROR(WriteCampaign(conn, c, /*insert=*/false));
        if (c.status == CampaignStatus::kScheduled) {
          ASSIGN_OR_RETURN(const CampaignBilling billing,
                           LoadBilling(conn, c.seq));
          if (billing.billed) {
            // The message or audience may cost otherwise now: reserve anew,
            // or refuse the update (INSUFFICIENT_CREDITS).
            RETURN_IF_ERROR(ReleaseAll(conn, c, "updated"));
            RETURN_IF_ERROR(ReserveForStart(conn, c));
          }
        }
        return c;
      },
      std::move(done));
}

void CampaignStore::DeleteCampaign(const std::string& account_id,
                                   const std::string& id, StatusDone done) {
  db_->WriteRaw(
      [account_id, id, owner = owner_](Connection& conn) -> absl::Status {
        ASSIGN_OR_RETURN(Campaign c,
                         LoadCampaign(conn, account_id, id, /*lock=*/true));
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
        // Held by another live instance: paused or scheduled there while
        // messages were with the provider, it gives the lease up once their
        // outcomes (and what they cost) are recorded. Whatever the
        // provider: a de-duplicating one's calls are not marked. (This
        // instance's own: the engine deletes once they are.)
        absl::StatusOr<Rows> holder = conn.Query(
            absl::StrCat("SELECT l.owner FROM leases l WHERE l.resource = $1 "
                         "AND l.owner <> '' AND l.owner <> $2 AND "
                         "l.expires_at > ",
                         kDatabaseNowUs, " AND NOT ",
                         TakeableBy("l.owner", 2, 3)),
            {absl::StrCat(kCampaignLeasePrefix, id), owner.instance,
             TtlParam(owner)});
        if (!holder.ok()) return holder.status();
        if (holder->size() > 0) {
          return errors::IllegalTransition(absl::StrCat(
              "campaign ", id, " is held by instance ", holder->Text(0, 0),
              ", which may still have messages with the provider; delete it "
              "once their outcomes are recorded (seconds)"));
        }
        // Marked by a live former holder (it lost the lease while its calls
        // were out): the same.
        absl::StatusOr<Rows> out = conn.Query(
            absl::StrCat("SELECT r.handed_by FROM recipients r WHERE "
                         "campaign_seq = $1 AND status = 'queued' AND ",
                         MarkedByALiveOther(2, 3), " LIMIT 1"),
            {absl::StrCat(c.seq), owner.instance, TtlParam(owner)});
        if (!out.ok()) return out.status();
        if (out->size() > 0) {
          return errors::IllegalTransition(absl::StrCat(
              "campaign ", id, " has messages with the provider on instance ",
              out->Text(0, 0),
              "; delete it once their outcomes are recorded (seconds)"));
        }
        RETURN_IF_ERROR(ReleaseAll(conn, c, "deleted"));
        return conn
            .Query(
                "UPDATE campaigns SET deleting = TRUE, updated_at = $1, "
                "work_owner = $3 WHERE id = $2",
                {Micros(NowMicros()), id, owner.instance})
            .status();
      },
      [db = db_, id, done = std::move(done)](absl::Status hidden) {
        if (hidden.ok()) PurgeChunk(db, id);
        if (done) done(std::move(hidden));
      });
}

void CampaignStore::PurgeChunk(Database* db, const std::string& id) {
  db->Write<bool>(
      [id](Connection& c) -> absl::StatusOr<bool> {
        // FOR UPDATE: instances resuming the same deletion take turns; one
        // that finds the row gone has nothing left to do.
        absl::StatusOr<Rows> row = c.Query(
            "SELECT seq FROM campaigns WHERE id = $1 AND deleting FOR UPDATE",
            {id});
        if (!row.ok()) return row.status();
        if (row->size() == 0) return true;
        const std::string seq = row->Text(0, "seq");
        const std::string chunk = absl::StrCat(kPurgeChunkRows);
        // The campaign's address set first: what a chunk deleted is gone, so
        // each one reads only what it deletes.
        absl::StatusOr<Rows> addresses = c.Query(
            "DELETE FROM recipient_addresses WHERE campaign_seq = $1 AND "
            "address IN (SELECT address FROM recipient_addresses WHERE "
            "campaign_seq = $1 ORDER BY address LIMIT $2)",
            {seq, chunk});
        if (!addresses.ok()) return addresses.status();
        if (addresses->affected() == kPurgeChunkRows) return false;
        absl::StatusOr<Rows> recipients = c.Query(
            "DELETE FROM recipients WHERE seq IN (SELECT seq FROM recipients "
            "WHERE campaign_seq = $1 LIMIT $2)",
            {seq, chunk});
        if (!recipients.ok()) return recipients.status();
        if (recipients->affected() == kPurgeChunkRows) return false;
        RETURN_IF_ERROR(
            c.Query("DELETE FROM campaigns WHERE id = $1 AND deleting", {id})
                .status());
        return true;
      },
      [db, id](absl::StatusOr<bool> finished) {
        if (!finished.ok()) {
          // Hidden already: the rest goes once writes succeed again (or,
          // if this process stops first, at the next start).
          db->AgainLater(absl::StrCat("campaign deletion ", id),
                         finished.status(), [db, id] { PurgeChunk(db, id); });
        } else if (!*finished) {
          PurgeChunk(db, id);
        }
      });
}

absl::StatusOr<int> CampaignStore::ResumeCampaignDeletions() {
  // Taken over (this instance their owner now) in one statement: of two
  // instances resuming at once, one purges each campaign. Each campaign's
  // id, and the instance that was deleting it:
  using Taken = std::vector<std::pair<std::string, std::string>>;
  ASSIGN_OR_RETURN(
      Taken taken,
      db_->WriteSync<Taken>(
          [owner = owner_](Connection& c) -> absl::StatusOr<Taken> {
            absl::StatusOr<Rows> rows = TakeOver(c,
                                                 {.table = "campaigns",
                                                  .key = "seq",
                                                  .owner_column = "work_owner",
                                                  .where = "deleting",
                                                  .lock = "FOR NO KEY UPDATE",
                                                  .returning = "c.id"},
                                                 owner);
            if (!rows.ok()) return rows.status();
            Taken out;
            for (int i = 0; i < rows->size(); ++i) {
              out.emplace_back(rows->Text(i, "id"), rows->Text(i, "was"));
            }
            return out;
          }));
  for (const auto& [id, was] : taken) {
    logging::Info(
        "purging a deleted campaign that its instance left "
        "unpurged (stopped, or no heartbeat within the lease ttl)",
        {{"campaign_id", id}, {"owner", was}});
    PurgeChunk(db_, id);
  }
  return static_cast<int>(taken.size());
}

}  // namespace campaigns::storage::postgres
