// Store: what the dispatch engine reads and writes — lifecycle transitions,
// leases, outcomes, receipts and retries.
#include <SQLiteCpp/Statement.h>

#include <limits>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "server/domain/errors.h"
#include "server/domain/rules.h"
#include "server/domain/utf8.h"
#include "server/log/log.h"
#include "storage/sqlite/rows.h"
#include "storage/sqlite/store.h"
#include "storage/sqlite/store_internal.h"

namespace campaigns::storage {
namespace {

using internal::Counter;
using internal::kNoFloor;
using internal::LoadCampaign;
using internal::ReleaseAll;
using internal::ReserveForStart;

// Queued recipients skipped per write when a campaign is cancelled.
constexpr int kSkipChunkRows = 10000;

std::string StatusText(RecipientStatus s) {
  return std::string(RecipientStatusName(s));
}

// Adds `delta` (per-status changes; total unchanged) to campaign `seq`.
void AddToCounters(SQLite::Database& db, int64_t campaign_seq,
                   const CampaignStats& delta, int64_t now) {
  SQLite::Statement st(db,
                       "UPDATE campaigns SET queued=queued+?, sent=sent+?, "
                       "delivered=delivered+?, read=read+?, failed=failed+?, "
                       "skipped=skipped+?, updated_at=? WHERE seq=?");
  int i = 0;
  for (int64_t n : {delta.queued, delta.sent, delta.delivered, delta.read,
                    delta.failed, delta.skipped}) {
    st.bind(++i, static_cast<int64_t>(n));
  }
  st.bind(++i, static_cast<int64_t>(now));
  st.bind(++i, static_cast<int64_t>(campaign_seq));
  st.exec();
}

// Sender and template as a start needs them: still registered, approved;
// and an email campaign still has a subject (its template's may have been
// cleared since the campaign was created).
absl::Status CheckStartable(SQLite::Database& db, const Campaign& c) {
  SQLite::Statement sender(db, "SELECT 1 FROM senders WHERE id=?");
  sender.bind(1, c.sender_ref);
  if (!sender.executeStep()) {
    return errors::Validation(
        "sender_id",
        absl::StrCat("sender ", c.sender_id, " is no longer registered"));
  }
  std::optional<Template> tmpl;
  if (!c.template_id.empty()) {
    SQLite::Statement t(db, "SELECT * FROM templates WHERE id=?");
    t.bind(1, c.template_id);
    if (!t.executeStep()) {
      return errors::Validation(
          "template_id",
          absl::StrCat("template ", c.template_id, " no longer exists"));
    }
    tmpl = ReadTemplate(t);
    if (tmpl->status != TemplateStatus::kApproved) {
      return errors::Validation(
          "template_id",
          absl::StrCat("template ", c.template_id, " is ",
                       TemplateStatusName(tmpl->status), ", not approved"));
    }
  }
  return ValidateEmailFields(c, tmpl ? &*tmpl : nullptr);
}

}  // namespace

namespace internal {

absl::Status Transition(SQLite::Database& db, Campaign& c,
                        const LifecycleChange& change) {
  const CampaignStatus from = c.status;
  std::optional<absl::Time> schedule_at = c.schedule_at;
  if (change.event == CampaignEvent::kStart && change.send_at) {
    schedule_at = change.send_at;
  }
  ASSIGN_OR_RETURN(CampaignStatus to, NextStatus(from, change.event, change.now,
                                                 schedule_at, c.max_lateness));
  switch (change.event) {
    case CampaignEvent::kStart:
      RETURN_IF_ERROR(CheckStartable(db, c));
      c.schedule_at = schedule_at;
      if (internal::HasContactAudience(c)) {
        RETURN_IF_ERROR(internal::Materialize(db, c).status());
      }
      if (c.stats.total == 0) {
        return errors::Validation(
            "audience",
            absl::StrCat("campaign ", c.id,
                         " has no recipients; import recipients or give it a "
                         "contact audience before starting it"));
      }
      RETURN_IF_ERROR(ReserveForStart(db, c));
      break;
    case CampaignEvent::kScheduleAlarm:
      if (c.schedule_at && change.now < *c.schedule_at) {
        // An alarm of an earlier schedule: the campaign was rescheduled.
        return errors::Validation("schedule_at", "the start is not due yet");
      }
      if (to == CampaignStatus::kFailed) {
        c.failure_reason = absl::StrCat(
            "max_lateness exceeded: the start was due at ",
            absl::FormatTime(absl::RFC3339_sec, *c.schedule_at,
                             absl::UTCTimeZone()),
            " and could only happen ",
            absl::FormatDuration(change.now - *c.schedule_at), " later");
      }
      break;
    case CampaignEvent::kPause:
      if (from != CampaignStatus::kPaused || !change.reason.empty()) {
        c.pause_reason = change.reason;
      }
      break;
    case CampaignEvent::kResume:
      c.pause_reason.clear();
      break;
    case CampaignEvent::kCancel:
      c.cancelled_at = change.now;
      break;
    case CampaignEvent::kAllDispatched:
      if (c.stats.queued > 0) {
        return errors::Validation(
            "id", absl::StrCat("campaign ", c.id, " still has ", c.stats.queued,
                               " queued recipients"));
      }
      c.sent_at = change.now;
      if (c.stats.sent == 0) {  // nothing awaits a receipt
        to = CampaignStatus::kCompleted;
        c.completed_at = change.now;
      }
      break;
    case CampaignEvent::kAllFinal:
      c.completed_at = change.now;
      break;
    case CampaignEvent::kFatal:
      c.failure_reason = change.reason;
      break;
  }
  if (to == CampaignStatus::kSending && !c.started_at) {
    c.started_at = change.now;
  }
  if (to != from && (to == CampaignStatus::kSent || IsFinal(to))) {
    // Nothing more will be sent: what is still reserved goes back.
    RETURN_IF_ERROR(
        ReleaseAll(db, c, absl::StrCat("ended ", CampaignStatusName(to))));
  }
  c.status = to;
  c.updated_at = change.now;
  internal::WriteCampaign(db, c, /*insert=*/false);
  return absl::OkStatus();
}

}  // namespace internal

void Store::TransitionCampaign(const std::string& account_id,
                               const std::string& id, LifecycleChange change,
                               Callback<Campaign> done) {
  if (change.event != CampaignEvent::kStart) {
    TransitionNow(account_id, id, std::move(change), std::move(done));
    return;
  }
  // Count what the reservation needs first, in chunks of their own.
  PrepareCosts(account_id, id, /*only_if_priced=*/true,
               [this, account_id, id, change = std::move(change),
                done = std::move(done)](absl::Status) mutable {
                 TransitionNow(account_id, id, std::move(change),
                               std::move(done));
               });
}

void Store::TransitionNow(const std::string& account_id, const std::string& id,
                          LifecycleChange change, Callback<Campaign> done) {
  const bool cancel =
      change.event == CampaignEvent::kCancel && change.skip_queued;
  db_->Write<Campaign>(
      [account_id, id, change = std::move(change)](
          SQLite::Database& db) -> absl::StatusOr<Campaign> {
        ASSIGN_OR_RETURN(Campaign c, LoadCampaign(db, account_id, id));
        RETURN_IF_ERROR(internal::Transition(db, c, change));
        return c;
      },
      [this, cancel, account_id, id,
       done = std::move(done)](absl::StatusOr<Campaign> c) mutable {
        if (cancel && c.ok() && c->stats.queued > 0) {
          SkipQueuedChunk(account_id, id,
                          AnswerWithTheCancel(*c, std::move(done)));
          return;
        }
        done(std::move(c));
      });
}

void Store::SkipQueuedChunk(const std::string& account_id,
                            const std::string& id, Callback<Campaign> done) {
  struct Chunk {
    Campaign campaign;
    int64_t skipped = 0;
    int64_t failed = 0;  // outcome_unknown (NextSkipChainStep)
  };
  db_->Write<Chunk>(
      [account_id, id](SQLite::Database& db) -> absl::StatusOr<Chunk> {
        Chunk chunk;
        ASSIGN_OR_RETURN(chunk.campaign, LoadCampaign(db, account_id, id));
        Campaign& c = chunk.campaign;
        const int64_t now = ToMicros(NowMicros());
        // One instance: a recipient still marked handed has no call out
        // (the engine cancels once its calls are recorded), so it was
        // handed before a restart.
        SQLite::Statement skip(
            db,
            "UPDATE recipients SET status=CASE WHEN handed THEN ?7 ELSE ?1 "
            "END, skip_reason=CASE WHEN handed THEN skip_reason ELSE "
            "'campaign_cancelled' END, error_code=CASE WHEN handed THEN "
            "'outcome_unknown' ELSE error_code END, error_desc=CASE WHEN "
            "handed THEN ?8 ELSE error_desc END, handed=0, updated_at=?2 "
            "WHERE seq IN (SELECT seq FROM recipients INDEXED BY "
            "recipients_by_status WHERE campaign_seq=?3 AND status=?4 AND "
            "seq<?5 ORDER BY seq LIMIT ?6) RETURNING status");
        skip.bind(1, StatusText(RecipientStatus::kSkipped));
        skip.bind(2, static_cast<int64_t>(now));
        skip.bind(3, static_cast<int64_t>(c.seq));
        skip.bind(4, StatusText(RecipientStatus::kQueued));
        skip.bind(5, static_cast<int64_t>(c.import_floor.value_or(kNoFloor)));
        skip.bind(6, kSkipChunkRows);
        const std::string failed = StatusText(RecipientStatus::kFailed);
        skip.bind(7, failed);
        skip.bind(8, kCancelledInDoubt);
        while (skip.executeStep()) {
          ++(skip.getColumn(0).getString() == failed ? chunk.failed
                                                     : chunk.skipped);
        }
        CampaignStats delta;
        delta.queued = -(chunk.skipped + chunk.failed);
        delta.skipped = chunk.skipped;
        delta.failed = chunk.failed;
        AddToCounters(db, c.seq, delta, now);
        c.stats.queued += delta.queued;
        c.stats.skipped += chunk.skipped;
        c.stats.failed += chunk.failed;
        return chunk;
      },
      [this, account_id, id,
       done = std::move(done)](absl::StatusOr<Chunk> chunk) mutable {
        if (chunk.ok() && chunk->failed > 0) {
          logging::Warn(
              "cancelled: recipients handed to the provider before a restart "
              "with no outcome recorded failed outcome_unknown (they may "
              "have gone out)",
              {{"campaign_id", id}, {"recipients", chunk->failed}});
        }
        switch (NextSkipChainStep(
            chunk.status(), chunk.ok() ? chunk->campaign.stats.queued : 0,
            chunk.ok() ? chunk->skipped + chunk->failed : 0,
            /*left_elsewhere=*/0)) {
          case SkipChainStep::kNext:
            SkipQueuedChunk(account_id, id, std::move(done));
            return;
          case SkipChainStep::kRetryLater:
            // Cancelled already: the rest is skipped once writes succeed.
            if (done) done(chunk.status());
            AgainLater("cancellation", chunk.status(), [this, account_id, id] {
              SkipQueuedChunk(account_id, id, nullptr);
            });
            return;
          case SkipChainStep::kGone:
            if (done) done(chunk.status());
            return;
          case SkipChainStep::kOvercounted:
          case SkipChainStep::kLeftElsewhere:  // not on one instance
            logging::Error(
                "a cancelled campaign counts queued recipients it "
                "does not have",
                {{"campaign_id", id},
                 {"queued", chunk->campaign.stats.queued}});
            break;
          case SkipChainStep::kDone:
            break;
        }
        if (done) done(std::move(chunk->campaign));
      },
      /*bulk=*/true);
}

void Store::SkipCancelled(const std::string& account_id, const std::string& id,
                          Callback<Campaign> done) {
  SkipQueuedChunk(account_id, id, std::move(done));
}

absl::StatusOr<Campaign> Store::CampaignById(const std::string& id) {
  return db_->Read([&](SQLite::Database& db) -> absl::StatusOr<Campaign> {
    SQLite::Statement st(db,
                         "SELECT * FROM campaigns WHERE id=? AND deleting=0");
    st.bind(1, id);
    if (!st.executeStep()) return errors::NotFound("campaign", id);
    return ReadCampaign(st);
  });
}

absl::StatusOr<std::vector<Campaign>> Store::CutOffCancellations() {
  // Not every campaign ever cancelled: those with queued recipients left.
  return db_->Read(
      [](SQLite::Database& db) -> absl::StatusOr<std::vector<Campaign>> {
        SQLite::Statement st(db,
                             "SELECT * FROM campaigns WHERE deleting=0 "
                             "AND status=? AND queued>0");
        st.bind(1, std::string(CampaignStatusName(CampaignStatus::kCancelled)));
        std::vector<Campaign> out;
        while (st.executeStep()) out.push_back(ReadCampaign(st));
        return out;
      });
}

// `fence` is ignored: an SQLite database has one instance, which owns
// every campaign.
absl::StatusOr<std::vector<Recipient>> Store::LeaseRecipients(
    const Campaign& c, int64_t after_seq, int limit, const Lease* /*fence*/) {
  ASSIGN_OR_RETURN(const RecipientIdCodec* codec, Codec());
  return db_->Read(
      [&](SQLite::Database& db) -> absl::StatusOr<std::vector<Recipient>> {
        SQLite::Statement st(
            db,
            "SELECT * FROM recipients INDEXED BY recipients_by_status WHERE "
            "campaign_seq=?1 AND status=?2 AND seq>?3 AND seq<?4 ORDER BY seq "
            "LIMIT ?5");
        st.bind(1, static_cast<int64_t>(c.seq));
        st.bind(2, StatusText(RecipientStatus::kQueued));
        st.bind(3, static_cast<int64_t>(after_seq));
        st.bind(4, static_cast<int64_t>(c.import_floor.value_or(kNoFloor)));
        st.bind(5, limit);
        std::vector<Recipient> out;
        while (st.executeStep()) {
          out.push_back(internal::ReadRecipient(st, *codec));
          out.back().campaign_id = c.id;
        }
        return out;
      });
}

void Store::MarkHanded(const std::string& account_id,
                       const std::string& campaign_id,
                       std::vector<int64_t> seqs, bool handed,
                       const Lease* /*fence*/, StatusCallback done) {
  db_->WriteRaw(
      [account_id, campaign_id, seqs = std::move(seqs),
       handed](SQLite::Database& db) -> absl::Status {
        ASSIGN_OR_RETURN(Campaign c, LoadCampaign(db, account_id, campaign_id));
        SQLite::Statement st(db,
                             "UPDATE recipients SET handed=?1 WHERE seq=?2 "
                             "AND campaign_seq=?3 AND status=?4");
        const std::string queued = StatusText(RecipientStatus::kQueued);
        for (int64_t seq : seqs) {
          st.bind(1, handed ? 1 : 0);
          st.bind(2, static_cast<int64_t>(seq));
          st.bind(3, static_cast<int64_t>(c.seq));
          st.bind(4, queued);
          st.exec();
          st.reset();
        }
        return absl::OkStatus();
      },
      std::move(done));
}

void Store::RecordOutcomes(const std::string& account_id,
                           const std::string& campaign_id,
                           std::vector<DispatchOutcome> outcomes,
                           Callback<Campaign> done) {
  db_->Write<Campaign>(
      [account_id, campaign_id, outcomes = std::move(outcomes)](
          SQLite::Database& db) -> absl::StatusOr<Campaign> {
        ASSIGN_OR_RETURN(Campaign c, LoadCampaign(db, account_id, campaign_id));
        const internal::CampaignBilling billing =
            internal::LoadBilling(db, c.seq);
        internal::Settlement settle;
        settle.why = "failed or skipped";
        const int64_t now = ToMicros(NowMicros());
        // ?1 status, ?2 message id, ?3 error code, ?4 error desc, ?5 skip
        // reason, ?6 attempted (0/1), ?7 now, ?8 seq, ?9 campaign, ?10 queued,
        // ?11 provider ('' = unchanged)
        SQLite::Statement final_st(
            db,
            "UPDATE recipients SET status=?1, provider_message_id=?2, "
            "provider=CASE WHEN ?11<>'' THEN ?11 ELSE provider END, "
            "error_code=?3, error_desc=?4, skip_reason=?5, "
            "attempts=attempts+?6, sent_at=CASE WHEN ?2<>'' THEN ?7 ELSE "
            "sent_at END, updated_at=?7, handed=0 WHERE seq=?8 AND "
            "campaign_seq=?9 AND status=?10");
        // What a settled recipient cost (billed campaigns only). A point
        // read after the update: far cheaper than UPDATE ... RETURNING.
        SQLite::Statement cost_st(
            db,
            "SELECT COALESCE(country, ''), units FROM recipients WHERE seq=?");
        SQLite::Statement retry_st(
            db,
            "UPDATE recipients SET error_code=?1, error_desc=?2, "
            "attempts=attempts+?7, updated_at=?3, handed=0, provider=CASE "
            "WHEN ?8<>'' THEN ?8 ELSE provider END WHERE seq=?4 AND "
            "campaign_seq=?5 AND status=?6");
        // ?1 account, ?2 channel, ?3 reason, ?4 note, ?5 now, ?6 seq
        SQLite::Statement suppress_st(
            db,
            "INSERT INTO suppressions(account_id, channel, address, reason, "
            "note, created_at) SELECT ?1, ?2, address, ?3, ?4, ?5 FROM "
            "recipients WHERE seq=?6 ON CONFLICT(account_id, address, "
            "channel) DO UPDATE SET reason=excluded.reason, "
            "note=excluded.note");
        const std::string queued = StatusText(RecipientStatus::kQueued);
        CampaignStats delta;
        for (const DispatchOutcome& o : outcomes) {
          if (o.status == RecipientStatus::kQueued) {
            retry_st.bind(1, o.error_code);
            retry_st.bind(2, o.error_desc);
            retry_st.bind(3, static_cast<int64_t>(now));
            retry_st.bind(4, static_cast<int64_t>(o.seq));
            retry_st.bind(5, static_cast<int64_t>(c.seq));
            retry_st.bind(6, queued);
            retry_st.bind(7, o.attempted ? 1 : 0);
            retry_st.bind(8, o.provider);
            retry_st.exec();
            retry_st.reset();
            continue;
          }
          int64_t* counter = Counter(delta, o.status);
          if (counter == nullptr) {
            return absl::InvalidArgumentError("outcome without a status");
          }
          final_st.bind(1, StatusText(o.status));
          final_st.bind(2, o.provider_message_id);
          final_st.bind(3, o.error_code);
          final_st.bind(4, o.error_desc);
          final_st.bind(5, o.skip_reason);
          final_st.bind(6, o.attempted ? 1 : 0);
          final_st.bind(7, static_cast<int64_t>(now));
          final_st.bind(8, static_cast<int64_t>(o.seq));
          final_st.bind(9, static_cast<int64_t>(c.seq));
          final_st.bind(10, queued);
          final_st.bind(11, o.provider);
          if (final_st.exec() == 1) {
            ++*counter;
            --delta.queued;
            if (!o.suppress.empty()) {
              // The vendor said the address refuses us: never again.
              suppress_st.bind(1, c.account_id);
              suppress_st.bind(2, std::string(ChannelName(c.channel)));
              suppress_st.bind(3, o.suppress);
              suppress_st.bind(4, absl::StrCat("provider: ", o.error_code, " ",
                                               Utf8Prefix(o.error_desc, 80)));
              suppress_st.bind(5, static_cast<int64_t>(now));
              suppress_st.bind(6, static_cast<int64_t>(o.seq));
              suppress_st.exec();
              suppress_st.reset();
            }
            if (billing.billed) {
              cost_st.bind(1, static_cast<int64_t>(o.seq));
              if (!cost_st.executeStep()) {
                return absl::InternalError("recipient row vanished");
              }
              const SQLite::Column units = cost_st.getColumn(1);
              ASSIGN_OR_RETURN(
                  const int64_t cost,
                  internal::RowCost(billing, cost_st.getColumn(0).getString(),
                                    units.isNull() ? std::nullopt
                                                   : std::optional<int64_t>(
                                                         units.getInt64())));
              cost_st.reset();
              if (o.status == RecipientStatus::kSent) {
                settle.debit += cost;
                ++settle.sent;
              } else {
                settle.release += cost;
                ++settle.released;
              }
            }
          }
          final_st.reset();
        }
        RETURN_IF_ERROR(internal::Settle(db, c, settle));
        AddToCounters(db, c.seq, delta, now);
        for (RecipientStatus s :
             {RecipientStatus::kQueued, RecipientStatus::kSent,
              RecipientStatus::kFailed, RecipientStatus::kSkipped}) {
          *Counter(c.stats, s) += *Counter(delta, s);
        }
        return c;
      },
      std::move(done));
}

namespace {

// Receipts move a recipient forward only: sent -> delivered, read or
// failed; delivered -> read. Anything else is a repeat or arrived late.
bool ReceiptApplies(RecipientStatus from, RecipientStatus to) {
  if (from == RecipientStatus::kSent) return true;
  if (from == RecipientStatus::kDelivered) return to == RecipientStatus::kRead;
  return false;
}

}  // namespace

void Store::ApplyReceipts(const std::string& account_id,
                          std::vector<ReceiptUpdate> receipts,
                          Callback<ReceiptResult> done) {
  ApplyReceiptsIn(ReceiptScope::kAccount, account_id, std::move(receipts),
                  std::move(done));
}

void Store::ApplyProviderReceipts(const std::string& provider,
                                  std::vector<ReceiptUpdate> receipts,
                                  Callback<ReceiptResult> done) {
  ApplyReceiptsIn(ReceiptScope::kProvider, provider, std::move(receipts),
                  std::move(done));
}

void Store::ApplyReceiptsIn(ReceiptScope scope, const std::string& owner,
                            std::vector<ReceiptUpdate> receipts,
                            Callback<ReceiptResult> done) {
  absl::StatusOr<const RecipientIdCodec*> codec = Codec();
  if (!codec.ok()) {
    done(codec.status());
    return;
  }
  db_->Write<ReceiptResult>(
      [scope, owner, receipts = std::move(receipts),
       codec = *codec](SQLite::Database& db) -> absl::StatusOr<ReceiptResult> {
        ReceiptResult result;
        // An account's receipts match its campaigns' recipients; a
        // provider's, those it sent (rows from before schema 12 name no
        // provider: those of campaigns whose sender it sends for).
        const std::string owned_by =
            scope == ReceiptScope::kAccount
                ? "c.account_id=?2"
                : "(r.provider=?2 OR (r.provider='' AND EXISTS (SELECT 1 "
                  "FROM senders s WHERE s.id=c.sender_ref AND "
                  "s.provider=?2)))";
        SQLite::Statement by_message(
            db,
            absl::StrCat(
                "SELECT r.seq, r.status, r.campaign_seq FROM recipients r JOIN "
                "campaigns c ON c.seq=r.campaign_seq WHERE "
                "r.provider_message_id=?1 AND r.provider_message_id<>'' AND ",
                owned_by, " AND c.deleting=0"));
        SQLite::Statement by_seq(
            db,
            absl::StrCat(
                "SELECT r.seq, r.status, r.campaign_seq FROM recipients r JOIN "
                "campaigns c ON c.seq=r.campaign_seq WHERE r.seq=?1 AND ",
                owned_by,
                " AND c.deleting=0 AND (c.import_floor IS NULL OR "
                "r.seq<c.import_floor)"));
        // ?1 status, ?2 occurred, ?3 error code, ?4 error desc, ?5 now,
        // ?6 seq, ?7 expected current status
        SQLite::Statement update(
            db,
            "UPDATE recipients SET status=?1, delivered_at=CASE WHEN ?1 IN "
            "('delivered','read') THEN COALESCE(delivered_at, ?2) ELSE "
            "delivered_at END, read_at=CASE WHEN ?1='read' THEN ?2 ELSE "
            "read_at END, error_code=CASE WHEN ?1='failed' THEN ?3 ELSE "
            "error_code END, error_desc=CASE WHEN ?1='failed' THEN ?4 ELSE "
            "error_desc END, updated_at=?5 WHERE seq=?6 AND status=?7");
        std::map<int64_t, CampaignStats> deltas;  // by campaign seq
        const int64_t now = ToMicros(NowMicros());
        for (const ReceiptUpdate& r : receipts) {
          SQLite::Statement* find = &by_message;
          if (!r.provider_message_id.empty()) {
            by_message.bind(1, r.provider_message_id);
            by_message.bind(2, owner);
          } else {
            std::optional<int64_t> seq =
                scope == ReceiptScope::kAccount
                    ? codec->Decode(r.recipient_id)
                    : std::nullopt;  // a vendor knows its own ids only
            if (!seq.has_value()) {
              ++result.unmatched;
              continue;
            }
            find = &by_seq;
            by_seq.bind(1, static_cast<int64_t>(*seq));
            by_seq.bind(2, owner);
          }
          if (!find->executeStep()) {
            find->reset();
            ++result.unmatched;
            if (!r.provider_message_id.empty()) {
              result.unmatched_receipts.push_back(r);
            }
            continue;
          }
          const int64_t seq = find->getColumn(0).getInt64();
          RecipientStatus from = RecipientStatus::kUnspecified;
          ParseRecipientStatus(find->getColumn(1).getString(), &from);
          const int64_t campaign_seq = find->getColumn(2).getInt64();
          find->reset();
          if (!ReceiptApplies(from, r.status)) {
            ++result.ignored;
            continue;
          }
          update.bind(1, StatusText(r.status));
          update.bind(2, static_cast<int64_t>(ToMicros(r.occurred_at)));
          update.bind(3, r.error_code);
          update.bind(4, r.error_desc);
          update.bind(5, static_cast<int64_t>(now));
          update.bind(6, static_cast<int64_t>(seq));
          update.bind(7, StatusText(from));
          update.exec();
          update.reset();
          CampaignStats& d = deltas[campaign_seq];
          --*Counter(d, from);
          ++*Counter(d, r.status);
          ++result.matched;
          if (r.status == RecipientStatus::kRead) {
            ++result.read;
          } else if (r.status == RecipientStatus::kFailed) {
            ++result.failed;
          } else {
            ++result.delivered;
          }
        }
        for (const auto& [campaign_seq, delta] : deltas) {
          AddToCounters(db, campaign_seq, delta, now);
          SQLite::Statement st(db, "SELECT * FROM campaigns WHERE seq=?");
          st.bind(1, static_cast<int64_t>(campaign_seq));
          if (st.executeStep()) result.campaigns.push_back(ReadCampaign(st));
        }
        return result;
      },
      std::move(done));
}

void Store::RetryFailed(const std::string& account_id, const std::string& id,
                        std::vector<std::string> error_codes,
                        Callback<RetryResult> done) {
  db_->Write<RetryResult>(
      [account_id, id, error_codes = std::move(error_codes)](
          SQLite::Database& db) -> absl::StatusOr<RetryResult> {
        ASSIGN_OR_RETURN(Campaign c, LoadCampaign(db, account_id, id));
        using S = CampaignStatus;
        if (c.status != S::kSending && c.status != S::kPaused &&
            c.status != S::kSent && c.status != S::kCompleted) {
          return errors::IllegalTransition(absl::StrCat(
              "cannot retry the failed recipients of a campaign that is ",
              CampaignStatusName(c.status)));
        }
        internal::RowSet failed;
        failed.status = RecipientStatus::kFailed;
        failed.error_codes = error_codes;
        RETURN_IF_ERROR(
            internal::ReserveRows(db, c, failed, "failed recipients retried"));
        const int64_t now = ToMicros(NowMicros());
        SQLite::Statement requeue(
            db,
            "UPDATE recipients SET status=?1, retries=retries+1, "
            "error_code='', error_desc='', provider_message_id='', "
            "updated_at=?2 WHERE campaign_seq=?3 AND status=?4 AND (?5='[]' OR "
            "error_code IN (SELECT value FROM json_each(?5)))");
        requeue.bind(1, StatusText(RecipientStatus::kQueued));
        requeue.bind(2, static_cast<int64_t>(now));
        requeue.bind(3, static_cast<int64_t>(c.seq));
        requeue.bind(4, StatusText(RecipientStatus::kFailed));
        requeue.bind(5, ListToJson(error_codes));
        RetryResult result;
        result.requeued = requeue.exec();
        if (result.requeued > 0) {
          CampaignStats delta;
          delta.failed = -result.requeued;
          delta.queued = result.requeued;
          AddToCounters(db, c.seq, delta, now);
          c.stats.failed -= result.requeued;
          c.stats.queued += result.requeued;
          if (c.status == S::kSent || c.status == S::kCompleted) {
            c.status = S::kSending;
            c.sent_at.reset();
            c.completed_at.reset();
            c.updated_at = FromMicros(now);
            internal::WriteCampaign(db, c, /*insert=*/false);
          }
        }
        result.campaign = std::move(c);
        return result;
      },
      std::move(done));
}

absl::StatusOr<std::vector<Campaign>> Store::CampaignsInStatus(
    const std::vector<CampaignStatus>& statuses) {
  std::vector<std::string> names;
  for (CampaignStatus s : statuses) {
    names.emplace_back(CampaignStatusName(s));
  }
  const std::string json = ListToJson(names);
  return db_->Read(
      [&](SQLite::Database& db) -> absl::StatusOr<std::vector<Campaign>> {
        SQLite::Statement st(db,
                             "SELECT * FROM campaigns WHERE deleting=0 AND "
                             "status IN (SELECT value FROM json_each(?)) "
                             "ORDER BY seq");
        st.bind(1, json);
        std::vector<Campaign> out;
        while (st.executeStep()) out.push_back(ReadCampaign(st));
        return out;
      });
}

absl::StatusOr<MessageContent> Store::MessageContentOf(const Campaign& c) {
  return db_->Read([&](SQLite::Database& db) -> absl::StatusOr<MessageContent> {
    return internal::MessageOf(db, c);
  });
}

absl::StatusOr<Sender> Store::SenderOf(const Campaign& c) {
  return GetSender(c.account_id, c.sender_ref);
}

}  // namespace campaigns::storage
