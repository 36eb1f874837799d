#include "storage/postgres/dispatch_store.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "server/domain/billing.h"
#include "server/domain/errors.h"
#include "server/domain/rules.h"
#include "server/domain/types.h"
#include "server/domain/utf8.h"
#include "server/log/log.h"
#include "storage/postgres/ledger.h"
#include "storage/postgres/lifecycle.h"
#include "storage/postgres/owners.h"
#include "storage/postgres/rows.h"

namespace campaigns::storage::postgres {
namespace {
// A namespace of its own: the unity build puts several files' anonymous
// namespaces in one translation unit.
namespace dispatch_detail {

std::string StatusText(RecipientStatus s) {
  return std::string(RecipientStatusName(s));
}

// The counter of `stats` that counts recipients in status `s`; null for
// kUnspecified.
int64_t* Counter(CampaignStats& stats, RecipientStatus s) {
  switch (s) {
    case RecipientStatus::kQueued:
      return &stats.queued;
    case RecipientStatus::kSent:
      return &stats.sent;
    case RecipientStatus::kDelivered:
      return &stats.delivered;
    case RecipientStatus::kRead:
      return &stats.read;
    case RecipientStatus::kFailed:
      return &stats.failed;
    case RecipientStatus::kSkipped:
      return &stats.skipped;
    case RecipientStatus::kUnspecified:
      break;
  }
  return nullptr;
}

// Adds `delta` (per-status changes; total unchanged) to the counters of
// campaign `campaign_seq`, whose row the caller has locked.
absl::Status AddToCounters(Connection& c, int64_t campaign_seq,
                           const CampaignStats& delta, const std::string& now) {
  return c
      .Query(
          "UPDATE campaigns SET queued = queued + $1, sent = sent + $2, "
          "delivered = delivered + $3, read = read + $4, failed = failed + "
          "$5, skipped = skipped + $6, updated_at = $7 WHERE seq = $8",
          {absl::StrCat(delta.queued), absl::StrCat(delta.sent),
           absl::StrCat(delta.delivered), absl::StrCat(delta.read),
           absl::StrCat(delta.failed), absl::StrCat(delta.skipped), now,
           absl::StrCat(campaign_seq)})
      .status();
}

// Moves the campaign's own money columns along with a ledger row (as
// ledger.cc does for its movements).
absl::Status AddToCampaignMoney(Connection& c, Campaign& campaign,
                                int64_t reserved, int64_t debited) {
  RETURN_IF_ERROR(
      c.Query("UPDATE campaigns SET credits_reserved = credits_reserved + $1, "
              "credits_debited = credits_debited + $2 WHERE seq = $3",
              {absl::StrCat(reserved), absl::StrCat(debited),
               absl::StrCat(campaign.seq)})
          .status());
  campaign.credits_reserved += reserved;
  campaign.credits_debited += debited;
  return absl::OkStatus();
}

// What a batch of outcomes settles: the cost of `sent` messages is
// debited, that of `released` recipients (failed before sending, skipped)
// released. As SQLite's internal::Settle (store_billing.cc).
struct Settlement {
  int64_t debit = 0;
  int64_t sent = 0;
  int64_t release = 0;
  int64_t released = 0;
  std::string why;
};

absl::Status Settle(Connection& c, Campaign& campaign, const Settlement& s) {
  if (s.debit > 0) {
    // A message costs what was reserved for it; should it ever cost more
    // than the campaign still holds, the difference is reserved first (the
    // message is already with the provider).
    if (s.debit > campaign.credits_reserved) {
      const int64_t extra = s.debit - campaign.credits_reserved;
      RETURN_IF_ERROR(
          AppendLedger(c, campaign.account_id, Transaction::Type::kReservation,
                       extra, campaign.id,
                       absl::StrCat("campaign ", campaign.id,
                                    ": sent beyond its reservation"),
                       /*allow_negative=*/true)
              .status());
      RETURN_IF_ERROR(AddToCampaignMoney(c, campaign, extra, 0));
    }
    RETURN_IF_ERROR(
        AppendLedger(
            c, campaign.account_id, Transaction::Type::kDebit, s.debit,
            campaign.id,
            absl::StrCat(s.sent, " message", s.sent == 1 ? "" : "s", " sent"),
            /*allow_negative=*/false)
            .status());
    RETURN_IF_ERROR(AddToCampaignMoney(c, campaign, -s.debit, s.debit));
  }
  const int64_t release = std::min(s.release, campaign.credits_reserved);
  if (release > 0) {
    RETURN_IF_ERROR(AppendLedger(c, campaign.account_id,
                                 Transaction::Type::kRelease, release,
                                 campaign.id,
                                 absl::StrCat(s.released, " recipient",
                                              s.released == 1 ? "" : "s",
                                              " not sent (", s.why, ")"),
                                 /*allow_negative=*/false)
                        .status());
    RETURN_IF_ERROR(AddToCampaignMoney(c, campaign, -release, 0));
  }
  return absl::OkStatus();
}

// One recipient's outcomes of a batch, merged as SQLite's one-by-one
// updates would leave the row: retries (status queued) before its first
// final outcome add their attempts and leave their error; the first final
// outcome ends it (later ones find it no longer queued).
struct MergedOutcome {
  DispatchOutcome outcome;
  int64_t attempts = 0;
  bool final = false;
};

// The batch's outcomes, one per recipient, in order of first appearance.
std::vector<MergedOutcome> MergeOutcomes(
    const std::vector<DispatchOutcome>& outcomes) {
  std::vector<MergedOutcome> merged;
  std::map<int64_t, size_t> index;
  for (const DispatchOutcome& o : outcomes) {
    auto [it, inserted] = index.emplace(o.seq, merged.size());
    if (inserted) {
      MergedOutcome m;
      m.outcome = o;
      m.attempts = o.attempted ? 1 : 0;
      m.final = o.status != RecipientStatus::kQueued;
      merged.push_back(std::move(m));
      continue;
    }
    MergedOutcome& m = merged[it->second];
    if (m.final) continue;  // no longer queued: left alone
    const std::string provider =
        o.provider.empty() ? m.outcome.provider : o.provider;
    m.attempts += o.attempted ? 1 : 0;
    m.outcome = o;
    m.outcome.provider = provider;
    m.final = o.status != RecipientStatus::kQueued;
  }
  return merged;
}

// Recipients of one campaign ($1) updated from arrays (one element per
// recipient): those still queued get their outcome ('queued' = a retry:
// only error, attempts and provider change); suppressions the outcomes ask
// for are added (the last for an address wins, as one-by-one upserts
// would); the rows changed are counted by new status and destination
// country, with their units (a row never counted as one). Each row is
// found by one index probe per element (a LATERAL subquery the planner
// cannot flatten: OFFSET 0) and updated by its ctid: a planner whose
// statistics predate the campaign's rows (one queued row, it thinks) would
// otherwise hash every queued row of the campaign for each batch, five
// times slower at 200,000 rows and worse the more there are. A row another
// transaction changed meanwhile (none should: they lock the campaign's row
// first) is left alone, its new version having another ctid: so a last row
// with status '' counts the rows targeted, and a batch that changed fewer
// is undone and written again (RecordOutcomes).
constexpr char kRecordOutcomes[] = R"sql(
WITH u AS (
  SELECT * FROM unnest($3::bigint[], $4::text[], $5::bigint[], $6::text[],
                       $7::text[], $8::text[], $9::text[], $10::text[],
                       $11::text[], $12::text[])
    WITH ORDINALITY AS u(seq, status, attempts, provider, message_id,
                         error_code, error_desc, skip_reason, suppress, note,
                         ord)
), target AS MATERIALIZED (
  SELECT t.tid, u.* FROM u CROSS JOIN LATERAL (
    SELECT r.ctid AS tid FROM recipients r
    WHERE r.seq = u.seq AND r.campaign_seq = $1::bigint
      AND r.status = 'queued' OFFSET 0) AS t
), changed AS (
  UPDATE recipients r SET
    status = u.status,
    provider_message_id = CASE WHEN u.status = 'queued'
                               THEN r.provider_message_id
                               ELSE u.message_id END,
    provider = CASE WHEN u.provider <> '' THEN u.provider ELSE r.provider END,
    error_code = u.error_code,
    error_desc = u.error_desc,
    skip_reason = CASE WHEN u.status = 'queued' THEN r.skip_reason
                       ELSE u.skip_reason END,
    attempts = r.attempts + u.attempts,
    sent_at = CASE WHEN u.status <> 'queued' AND u.message_id <> ''
                   THEN $2::bigint ELSE r.sent_at END,
    updated_at = $2::bigint,
    handed = FALSE
  FROM target u
  WHERE r.ctid = u.tid
  RETURNING r.address, r.country, r.units, u.status, u.suppress, u.note, u.ord
), suppressed AS (
  INSERT INTO suppressions(account_id, channel, address, reason, note,
                           created_at)
  SELECT DISTINCT ON (address) $13, $14, address, suppress, note, $2::bigint
  FROM changed WHERE suppress <> '' AND status <> 'queued'
  ORDER BY address, ord DESC
  ON CONFLICT (account_id, address, channel)
  DO UPDATE SET reason = excluded.reason, note = excluded.note
)
SELECT status, COALESCE(country, '') AS country, count(*) AS rows,
       sum(COALESCE(units, 1)) AS units
FROM changed GROUP BY 1, 2
UNION ALL
SELECT '', '', (SELECT count(*) FROM target), 0
)sql";

// Receipts move a recipient forward only: sent -> delivered, read or
// failed; delivered -> read. Anything else is a repeat or arrived late.
bool ReceiptApplies(RecipientStatus from, RecipientStatus to) {
  if (from == RecipientStatus::kSent) return true;
  if (from == RecipientStatus::kDelivered) return to == RecipientStatus::kRead;
  return false;
}

// The recipient a receipt matched: its seq, campaign and current status.
struct ReceiptMatch {
  int64_t seq = 0;
  int64_t campaign_seq = 0;
  RecipientStatus status = RecipientStatus::kUnspecified;
};

// Finds, for each receipt, the recipient it matches (by provider message
// id when it has one, else by recipient seq, which `seqs` holds, -1 for
// none) among those `owner` may touch, in campaigns not being deleted.
// Two set-based queries; `out` by receipt index.
absl::Status MatchReceipts(Connection& c, bool provider_scope,
                           const std::string& owner,
                           const std::vector<ReceiptUpdate>& receipts,
                           const std::vector<int64_t>& seqs,
                           std::vector<std::optional<ReceiptMatch>>& out) {
  // An account's receipts match its campaigns' recipients; a provider's,
  // those it sent (rows that name no provider: those of campaigns whose
  // sender it sends for).
  const std::string owned_by =
      provider_scope
          ? "(r.provider = $1 OR (r.provider = '' AND EXISTS (SELECT 1 FROM "
            "senders s WHERE s.id = c.sender_ref AND s.provider = $1)))"
          : "c.account_id = $1";
  out.assign(receipts.size(), std::nullopt);
  std::vector<std::string> ids;
  std::vector<int64_t> by_id;  // receipt index of each of `ids`
  std::vector<int64_t> recipient_seqs;
  std::vector<int64_t> by_seq;
  for (size_t i = 0; i < receipts.size(); ++i) {
    if (!receipts[i].provider_message_id.empty()) {
      ids.push_back(receipts[i].provider_message_id);
      by_id.push_back(static_cast<int64_t>(i));
    } else if (seqs[i] >= 0) {
      recipient_seqs.push_back(seqs[i]);
      by_seq.push_back(static_cast<int64_t>(i));
    }
  }
  auto collect = [&](const Rows& rows, const std::vector<int64_t>& index) {
    for (int i = 0; i < rows.size(); ++i) {
      const int64_t ord = IntAt(rows, i, "ord");
      ReceiptMatch m;
      m.seq = IntAt(rows, i, "seq");
      m.campaign_seq = IntAt(rows, i, "campaign_seq");
      ParseRecipientStatus(rows.Text(i, "status"), &m.status);
      out[index[ord - 1]] = m;
    }
  };
  if (!ids.empty()) {
    // One index probe per id (recipients_by_provider_id, partial on
    // provider_message_id <> ''), in a LATERAL subquery the planner cannot
    // flatten (OFFSET 0) into a join it might hash the whole table for,
    // and with nothing else to combine the probe with (its campaign is
    // joined outside: with stale statistics the planner ANDed it with
    // every row of the campaign from recipients_by_status); the first
    // recipient by seq when several have the id. Not ORDER BY seq LIMIT 1
    // inside: the planner would walk the primary key in seq order instead.
    absl::StatusOr<Rows> rows = c.Query(
        absl::StrCat("SELECT DISTINCT ON (u.ord) u.ord, r.seq, "
                     "r.campaign_seq, r.status FROM unnest($2::text[]) WITH "
                     "ORDINALITY AS u(id, ord) CROSS JOIN LATERAL (SELECT "
                     "seq, campaign_seq, status, provider FROM recipients "
                     "WHERE provider_message_id = u.id AND "
                     "provider_message_id <> '' OFFSET 0) AS r JOIN "
                     "campaigns c ON c.seq = r.campaign_seq WHERE ",
                     owned_by, " AND NOT c.deleting ORDER BY u.ord, r.seq"),
        {owner, TextArray(ids)});
    if (!rows.ok()) return rows.status();
    collect(*rows, by_id);
  }
  if (!recipient_seqs.empty()) {
    absl::StatusOr<Rows> rows = c.Query(
        absl::StrCat("SELECT u.ord, r.seq, r.campaign_seq, r.status FROM "
                     "unnest($2::bigint[]) WITH ORDINALITY AS u(seq, ord) "
                     "CROSS JOIN LATERAL (SELECT seq, campaign_seq, status, "
                     "provider FROM recipients WHERE seq = u.seq OFFSET 0) "
                     "AS r JOIN campaigns c ON c.seq = r.campaign_seq WHERE ",
                     owned_by,
                     " AND NOT c.deleting AND (c.import_floor IS NULL OR "
                     "r.seq < c.import_floor)"),
        {owner, IntArray(recipient_seqs)});
    if (!rows.ok()) return rows.status();
    collect(*rows, by_seq);
  }
  return absl::OkStatus();
}

// What the receipts of a batch leave of one recipient.
struct ReceiptEffect {
  RecipientStatus from = RecipientStatus::kUnspecified;  // before the batch
  RecipientStatus to = RecipientStatus::kUnspecified;
  int64_t campaign_seq = 0;
  std::optional<int64_t> delivered_at;  // the first delivered/read's time
  std::optional<int64_t> read_at;
  std::string error_code;
  std::string error_desc;
};

// Recipients updated from arrays ($2..$8: seq, new status, status expected,
// delivery time (kept if the row has one), read time, error code and
// description (for failed)); returns how many. Found by index probe and
// updated by ctid, as kRecordOutcomes.
constexpr char kApplyReceipts[] = R"sql(
WITH u AS (
  SELECT * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[],
                       $6::bigint[], $7::text[], $8::text[])
    AS u(seq, status, expected, delivered_at, read_at, error_code, error_desc)
), target AS MATERIALIZED (
  SELECT t.tid, u.* FROM u CROSS JOIN LATERAL (
    SELECT r.ctid AS tid FROM recipients r
    WHERE r.seq = u.seq AND r.status = u.expected OFFSET 0) AS t
)
UPDATE recipients r SET
  status = u.status,
  delivered_at = CASE WHEN u.delivered_at IS NOT NULL
                      THEN COALESCE(r.delivered_at, u.delivered_at)
                      ELSE r.delivered_at END,
  read_at = CASE WHEN u.read_at IS NOT NULL THEN u.read_at
                 ELSE r.read_at END,
  error_code = CASE WHEN u.status = 'failed' THEN u.error_code
                    ELSE r.error_code END,
  error_desc = CASE WHEN u.status = 'failed' THEN u.error_desc
                    ELSE r.error_desc END,
  updated_at = $1::bigint
FROM target u
WHERE r.ctid = u.tid
)sql";

// Adds per-campaign deltas in one statement and returns the campaigns
// afterwards (SELECT *).
constexpr char kAddCampaignDeltas[] = R"sql(
UPDATE campaigns c SET
  queued = c.queued + d.queued, sent = c.sent + d.sent,
  delivered = c.delivered + d.delivered, read = c.read + d.read,
  failed = c.failed + d.failed, skipped = c.skipped + d.skipped,
  updated_at = $1::bigint
FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],
            $6::bigint[], $7::bigint[], $8::bigint[])
  AS d(seq, queued, sent, delivered, read, failed, skipped)
WHERE c.seq = d.seq
RETURNING c.*
)sql";

// Whether a lease row still holds for a fence (owner and epoch, unexpired
// on the server's clock): a boolean over `leases`, with $2 the owner and $3
// the epoch (and $1 the resource, for the WHERE clause).
std::string FenceHeld() {
  return absl::StrCat("owner = $2 AND epoch = $3::bigint AND expires_at > ",
                      kDatabaseNowUs);
}

// errors::LeaseLost unless `held` (a FenceHeld answer: "t", "f" or "" for
// no row) and `status` say the holder of `fence` may send campaign `id`.
absl::Status FenceStatus(const Lease& fence, const std::string& id,
                         const std::string& held, CampaignStatus status) {
  if (held != "t") {
    return errors::LeaseLost(absl::StrCat(
        "campaign ", id, ": lease ", fence.resource, " (epoch ", fence.epoch,
        ") is no longer held by ", fence.owner,
        held.empty() ? " (released)" : " (expired or taken over)"));
  }
  if (status != CampaignStatus::kSending) {
    return errors::LeaseLost(absl::StrCat(
        "campaign ", id, " is ", CampaignStatusName(status), ", not sending"));
  }
  return absl::OkStatus();
}

std::vector<std::optional<std::string>> FenceParams(const Lease& fence) {
  return {fence.resource, fence.owner, absl::StrCat(fence.epoch)};
}

}  // namespace dispatch_detail
}  // namespace

void DispatchStore::TransitionCampaign(const std::string& account_id,
                                       const std::string& id,
                                       LifecycleChange change,
                                       Done<Campaign> done) {
  const bool cancel =
      change.event == CampaignEvent::kCancel && change.skip_queued;
  db_->Write<Campaign>(
      [account_id, id,
       change = std::move(change)](Connection& c) -> absl::StatusOr<Campaign> {
        // Locked until the commit (campaign first, ledger.h's order): a
        // write of it on another instance (outcomes, receipts, a retry)
        // waits, so the counters this writes back are current.
        ASSIGN_OR_RETURN(Campaign camp,
                         LoadCampaign(c, account_id, id, /*lock=*/true));
        RETURN_IF_ERROR(Transition(c, camp, change));
        return camp;
      },
      [db = db_, owner = owner_, cancel, account_id, id,
       done = std::move(done)](absl::StatusOr<Campaign> c) mutable {
        if (cancel && c.ok() && c->stats.queued > 0) {
          SkipQueuedChunk(db, owner, account_id, id,
                          AnswerWithTheCancel(*c, std::move(done)));
          return;
        }
        done(std::move(c));
      });
}

void DispatchStore::SkipQueuedChunk(Database* db, WorkOwner owner,
                                    const std::string& account_id,
                                    const std::string& id,
                                    Done<Campaign> done) {
  struct Chunk {
    Campaign campaign;
    int64_t skipped = 0;
    int64_t failed = 0;          // outcome_unknown
    int64_t left_elsewhere = 0;  // counted when none were settled
  };
  db->Write<Chunk>(
      [account_id, id, owner](Connection& c) -> absl::StatusOr<Chunk> {
        Chunk chunk;
        ASSIGN_OR_RETURN(chunk.campaign,
                         LoadCampaign(c, account_id, id, /*lock=*/true));
        Campaign& camp = chunk.campaign;
        const std::string now = Micros(NowMicros());
        // The chain runs once this instance's calls of the campaign are
        // recorded (or on a start): a recipient it marked handed, or a dead
        // instance did, has no call out that can still answer; one another
        // live instance marked is left queued for that call's outcome.
        absl::StatusOr<Rows> settled = c.Query(
            absl::StrCat(
                "WITH picked AS (SELECT seq, handed FROM recipients r WHERE "
                "campaign_seq = $2 AND status = 'queued' AND seq < $3 AND "
                "NOT ",
                MarkedByALiveOther(5, 6),
                " ORDER BY seq LIMIT $4), changed AS (UPDATE recipients r SET "
                "status = CASE WHEN p.handed THEN 'failed' ELSE 'skipped' "
                "END, skip_reason = CASE WHEN p.handed THEN r.skip_reason "
                "ELSE 'campaign_cancelled' END, error_code = CASE WHEN "
                "p.handed THEN 'outcome_unknown' ELSE r.error_code END, "
                "error_desc = CASE WHEN p.handed THEN $7 ELSE r.error_desc "
                "END, handed = FALSE, updated_at = $1 FROM picked p WHERE "
                "r.seq = p.seq RETURNING p.handed) SELECT count(*) FILTER "
                "(WHERE NOT handed) AS skipped, count(*) FILTER (WHERE "
                "handed) AS failed FROM changed"),
            {now, absl::StrCat(camp.seq),
             absl::StrCat(camp.import_floor.value_or(kNoFloor)),
             absl::StrCat(kSkipChunkRows), owner.instance, TtlParam(owner),
             kCancelledInDoubt});
        if (!settled.ok()) return settled.status();
        chunk.skipped = IntAt(*settled, 0, "skipped");
        chunk.failed = IntAt(*settled, 0, "failed");
        CampaignStats delta;
        delta.queued = -(chunk.skipped + chunk.failed);
        delta.skipped = chunk.skipped;
        delta.failed = chunk.failed;
        RETURN_IF_ERROR(
            dispatch_detail::AddToCounters(c, camp.seq, delta, now));
        camp.stats.queued += delta.queued;
        camp.stats.skipped += chunk.skipped;
        camp.stats.failed += chunk.failed;
        if (delta.queued == 0 && camp.stats.queued > 0) {
          absl::StatusOr<Rows> left = c.Query(
              absl::StrCat("SELECT count(*) FROM recipients r WHERE "
                           "campaign_seq = $1 AND status = 'queued' AND seq "
                           "< $2 AND ",
                           MarkedByALiveOther(3, 4)),
              {absl::StrCat(camp.seq),
               absl::StrCat(camp.import_floor.value_or(kNoFloor)),
               owner.instance, TtlParam(owner)});
          if (!left.ok()) return left.status();
          chunk.left_elsewhere = IntAt(*left, 0, "count");
        }
        return chunk;
      },
      [db, owner, account_id, id,
       done = std::move(done)](absl::StatusOr<Chunk> chunk) mutable {
        if (chunk.ok() && chunk->failed > 0) {
          logging::Warn(
              "cancelled: recipients handed to the provider by an instance "
              "that stopped (or before a restart) with no outcome recorded "
              "failed outcome_unknown (they may have gone out)",
              {{"campaign_id", id}, {"recipients", chunk->failed}});
        }
        switch (NextSkipChainStep(
            chunk.status(), chunk.ok() ? chunk->campaign.stats.queued : 0,
            chunk.ok() ? chunk->skipped + chunk->failed : 0,
            chunk.ok() ? chunk->left_elsewhere : 0)) {
          case SkipChainStep::kNext:
            SkipQueuedChunk(db, std::move(owner), account_id, id,
                            std::move(done));
            return;
          case SkipChainStep::kRetryLater:
            // Cancelled already: the rest is skipped once writes succeed
            // (by this instance, or whichever resumes cancellations first).
            if (done) done(chunk.status());
            db->AgainLater(
                "cancellation", chunk.status(), [db, owner, account_id, id] {
                  SkipQueuedChunk(db, owner, account_id, id, nullptr);
                });
            return;
          case SkipChainStep::kGone:
            if (done) done(chunk.status());
            return;
          case SkipChainStep::kLeftElsewhere:
            // The engine's next scan of cancellations (CutOffCancellations)
            // settles them once that instance's outcomes are recorded or
            // it is dead.
            logging::Info(
                "cancelled: recipients another live instance handed to the "
                "provider are left queued for their outcomes",
                {{"campaign_id", id}, {"recipients", chunk->left_elsewhere}});
            break;
          case SkipChainStep::kOvercounted:
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
      });
}

void DispatchStore::SkipCancelled(const std::string& account_id,
                                  const std::string& id, Done<Campaign> done) {
  SkipQueuedChunk(db_, owner_, account_id, id, std::move(done));
}

absl::StatusOr<Campaign> DispatchStore::CampaignById(const std::string& id) {
  return db_->Read<Campaign>([&](Connection& c) -> absl::StatusOr<Campaign> {
    absl::StatusOr<Rows> rows =
        c.Query("SELECT * FROM campaigns WHERE id = $1 AND NOT deleting", {id});
    if (!rows.ok()) return rows.status();
    if (rows->size() == 0) return errors::NotFound("campaign", id);
    return ReadCampaign(*rows, 0);
  });
}

absl::StatusOr<std::vector<Campaign>> DispatchStore::CutOffCancellations() {
  // Not every campaign ever cancelled: those with queued recipients left.
  return db_->Read<std::vector<Campaign>>(
      [](Connection& c) -> absl::StatusOr<std::vector<Campaign>> {
        absl::StatusOr<Rows> rows = c.Query(
            "SELECT * FROM campaigns WHERE NOT deleting AND status = "
            "'cancelled' AND queued > 0 ORDER BY seq");
        if (!rows.ok()) return rows.status();
        std::vector<Campaign> out;
        for (int i = 0; i < rows->size(); ++i) {
          out.push_back(ReadCampaign(*rows, i));
        }
        return out;
      });
}

absl::StatusOr<std::vector<Recipient>> DispatchStore::LeaseRecipients(
    const Campaign& c, int64_t after_seq, int limit, const Lease* fence) {
  ASSIGN_OR_RETURN(const RecipientIdCodec* codec, Codec());
  return db_->Read<std::vector<Recipient>>(
      [&](Connection& conn) -> absl::StatusOr<std::vector<Recipient>> {
        if (fence != nullptr) {
          // Checked before the read: a lease that ends after it ends for
          // its holder too, sooner (LeaseKeeper), and a pause or cancel
          // after it is seen at the next lease.
          std::vector<std::optional<std::string>> params =
              dispatch_detail::FenceParams(*fence);
          params.push_back(absl::StrCat(c.seq));
          absl::StatusOr<Rows> check = conn.Query(
              absl::StrCat("SELECT (SELECT ", dispatch_detail::FenceHeld(),
                           " FROM leases WHERE resource = $1) AS held, "
                           "(SELECT status FROM campaigns WHERE seq = $4 AND "
                           "NOT deleting) AS status"),
              params);
          if (!check.ok()) return check.status();
          CampaignStatus status = CampaignStatus::kUnspecified;
          ParseCampaignStatus(check->Text(0, "status"), &status);
          RETURN_IF_ERROR(dispatch_detail::FenceStatus(
              *fence, c.id, check->Text(0, "held"), status));
        }
        // With a fence, not a recipient another live instance marked
        // handed: its call may still answer, and its outcome then lands on
        // the row still queued. Once that instance is dead (TakeableBy,
        // owners.h), the row is leased in doubt.
        std::vector<std::optional<std::string>> params = {
            absl::StrCat(c.seq), absl::StrCat(after_seq),
            absl::StrCat(c.import_floor.value_or(kNoFloor)),
            absl::StrCat(limit)};
        std::string not_elsewhere;
        if (fence != nullptr) {
          not_elsewhere = absl::StrCat(" AND NOT ", MarkedByALiveOther(5, 6));
          params.push_back(fence->owner);
          params.push_back(TtlParam(owner_));
        }
        absl::StatusOr<Rows> rows = conn.Query(
            absl::StrCat("SELECT * FROM recipients r WHERE campaign_seq = $1 "
                         "AND status = 'queued' AND seq > $2 AND seq < $3",
                         not_elsewhere, " ORDER BY seq LIMIT $4"),
            params);
        if (!rows.ok()) return rows.status();
        std::vector<Recipient> out;
        for (int i = 0; i < rows->size(); ++i) {
          out.push_back(ReadRecipient(*rows, i, *codec));
          out.back().campaign_id = c.id;
        }
        return out;
      });
}

void DispatchStore::MarkHanded(const std::string& account_id,
                               const std::string& campaign_id,
                               std::vector<int64_t> seqs, bool handed,
                               const Lease* fence,
                               std::function<void(absl::Status)> done) {
  std::optional<Lease> fenced;
  if (handed && fence != nullptr) fenced = *fence;
  db_->WriteRaw(
      [account_id, campaign_id, seqs = std::move(seqs), handed,
       fenced = std::move(fenced)](Connection& c) -> absl::Status {
        // The campaign's row first, as every write here (ledger.h's order).
        ASSIGN_OR_RETURN(Campaign camp, LoadCampaign(c, account_id, campaign_id,
                                                     /*lock=*/true));
        if (fenced) {
          // Share-locked to the commit: an Acquire by another instance
          // (which updates the row) waits, and then finds these marked.
          absl::StatusOr<Rows> held =
              c.Query(absl::StrCat("SELECT ", dispatch_detail::FenceHeld(),
                                   " AS held FROM leases WHERE resource = $1 "
                                   "FOR SHARE"),
                      dispatch_detail::FenceParams(*fenced));
          if (!held.ok()) return held.status();
          RETURN_IF_ERROR(dispatch_detail::FenceStatus(
              *fenced, campaign_id, held->size() == 0 ? "" : held->Text(0, 0),
              camp.status));
        }
        if (seqs.empty()) return absl::OkStatus();
        // The marker: whose call may still answer (LeaseRecipients).
        return c
            .Query(
                "UPDATE recipients SET handed = $1, handed_by = $4 WHERE seq "
                "= ANY($2::bigint[]) AND (campaign_seq, status) IS NOT "
                "DISTINCT FROM ($3::bigint, 'queued')",
                {handed ? "true" : "false", IntArray(seqs),
                 absl::StrCat(camp.seq), handed && fenced ? fenced->owner : ""})
            .status();
      },
      std::move(done));
}

void DispatchStore::RecordOutcomes(const std::string& account_id,
                                   const std::string& campaign_id,
                                   std::vector<DispatchOutcome> outcomes,
                                   Done<Campaign> done) {
  db_->Write<Campaign>(
      [account_id, campaign_id, outcomes = std::move(outcomes)](
          Connection& c) -> absl::StatusOr<Campaign> {
        // Locked first: the counters and money this reads and adds to are
        // this campaign's until the commit (another instance's outcomes
        // for other recipients of it wait here).
        ASSIGN_OR_RETURN(Campaign camp, LoadCampaign(c, account_id, campaign_id,
                                                     /*lock=*/true));
        for (const DispatchOutcome& o : outcomes) {
          if (o.status != RecipientStatus::kQueued &&
              dispatch_detail::Counter(camp.stats, o.status) == nullptr) {
            return absl::InvalidArgumentError("outcome without a status");
          }
        }
        ASSIGN_OR_RETURN(const CampaignBilling billing,
                         LoadBilling(c, camp.seq));
        dispatch_detail::Settlement settle;
        settle.why = "failed or skipped";
        const std::string now = Micros(NowMicros());
        CampaignStats delta;
        const std::vector<dispatch_detail::MergedOutcome> merged =
            dispatch_detail::MergeOutcomes(outcomes);
        if (!merged.empty()) {
          std::vector<int64_t> seqs, attempts;
          std::vector<std::string> statuses, providers, message_ids, codes,
              descs, skip_reasons, suppress, notes;
          for (const dispatch_detail::MergedOutcome& m : merged) {
            const DispatchOutcome& o = m.outcome;
            seqs.push_back(o.seq);
            statuses.push_back(dispatch_detail::StatusText(o.status));
            attempts.push_back(m.attempts);
            providers.push_back(o.provider);
            message_ids.push_back(o.provider_message_id);
            codes.push_back(o.error_code);
            descs.push_back(o.error_desc);
            skip_reasons.push_back(o.skip_reason);
            suppress.push_back(m.final ? o.suppress : std::string());
            notes.push_back(o.suppress.empty()
                                ? std::string()
                                : absl::StrCat("provider: ", o.error_code, " ",
                                               Utf8Prefix(o.error_desc, 80)));
          }
          absl::StatusOr<Rows> changed = c.Query(
              dispatch_detail::kRecordOutcomes,
              {absl::StrCat(camp.seq), now, IntArray(seqs), TextArray(statuses),
               IntArray(attempts), TextArray(providers), TextArray(message_ids),
               TextArray(codes), TextArray(descs), TextArray(skip_reasons),
               TextArray(suppress), TextArray(notes), camp.account_id,
               std::string(ChannelName(camp.channel))});
          if (!changed.ok()) return changed.status();
          int64_t targeted = 0;
          int64_t updated = 0;
          for (int i = 0; i < changed->size(); ++i) {
            const int64_t rows = IntAt(*changed, i, "rows");
            if (changed->Text(i, "status").empty()) {
              targeted = rows;
              continue;
            }
            updated += rows;
            RecipientStatus status = RecipientStatus::kUnspecified;
            ParseRecipientStatus(changed->Text(i, "status"), &status);
            if (status == RecipientStatus::kQueued) continue;  // a retry
            *dispatch_detail::Counter(delta, status) += rows;
            delta.queued -= rows;
            if (!billing.billed) continue;
            int64_t units = rows * billing.units;
            if (billing.units < 0 &&
                !absl::SimpleAtoi(changed->Text(i, "units"), &units)) {
              return absl::OutOfRangeError(
                  "the units of a campaign do not fit in 64 bits");
            }
            ASSIGN_OR_RETURN(
                const int64_t cost,
                MulAdd(billing.prices.UnitPrice(changed->Text(i, "country")),
                       units, 0));
            if (status == RecipientStatus::kSent) {
              settle.debit += cost;
              settle.sent += rows;
            } else {
              settle.release += cost;
              settle.released += rows;
            }
          }
          if (updated != targeted) {
            // A writer that changed recipients without the campaign's lock.
            return SerializationFailure(absl::StrCat(
                "outcomes of campaign ", camp.id, ": ", targeted - updated,
                " of ", targeted,
                " recipients changed during the write; written again"));
          }
          if (targeted < static_cast<int64_t>(merged.size())) {
            // Settled already: cancelled, or failed outcome_unknown by a
            // new lease holder that judged this instance dead.
            int64_t sent = 0;
            for (const dispatch_detail::MergedOutcome& m : merged) {
              if (m.outcome.status == RecipientStatus::kSent) ++sent;
            }
            static logging::RateLimited limit(5, absl::Seconds(10));
            int64_t suppressed = 0;
            if (limit.Allow(&suppressed)) {
              logging::Error(
                  "outcomes not recorded: their recipients were no longer "
                  "queued (settled by a cancel, or by another instance that "
                  "judged this one dead)",
                  {{"campaign_id", camp.id},
                   {"outcomes", static_cast<int64_t>(merged.size())},
                   {"recorded", targeted},
                   {"sent_in_batch", sent},
                   {"suppressed", suppressed}});
            }
          }
        }
        RETURN_IF_ERROR(dispatch_detail::Settle(c, camp, settle));
        RETURN_IF_ERROR(
            dispatch_detail::AddToCounters(c, camp.seq, delta, now));
        for (RecipientStatus s :
             {RecipientStatus::kQueued, RecipientStatus::kSent,
              RecipientStatus::kDelivered, RecipientStatus::kRead,
              RecipientStatus::kFailed, RecipientStatus::kSkipped}) {
          *dispatch_detail::Counter(camp.stats, s) +=
              *dispatch_detail::Counter(delta, s);
        }
        return camp;
      },
      std::move(done));
}

void DispatchStore::ApplyReceipts(const std::string& account_id,
                                  std::vector<ReceiptUpdate> receipts,
                                  Done<ReceiptResult> done) {
  ApplyReceiptsIn(ReceiptScope::kAccount, account_id, std::move(receipts),
                  std::move(done));
}

void DispatchStore::ApplyProviderReceipts(const std::string& provider,
                                          std::vector<ReceiptUpdate> receipts,
                                          Done<ReceiptResult> done) {
  ApplyReceiptsIn(ReceiptScope::kProvider, provider, std::move(receipts),
                  std::move(done));
}

void DispatchStore::ApplyReceiptsIn(ReceiptScope scope,
                                    const std::string& owner,
                                    std::vector<ReceiptUpdate> receipts,
                                    Done<ReceiptResult> done) {
  absl::StatusOr<const RecipientIdCodec*> codec = Codec();
  if (!codec.ok()) {
    done(codec.status());
    return;
  }
  // The recipient seq each receipt without a message id names (-1: none; a
  // vendor knows its own ids only).
  std::vector<int64_t> seqs;
  seqs.reserve(receipts.size());
  for (const ReceiptUpdate& r : receipts) {
    std::optional<int64_t> seq;
    if (r.provider_message_id.empty() && scope == ReceiptScope::kAccount) {
      seq = (*codec)->Decode(r.recipient_id);
    }
    seqs.push_back(seq.value_or(-1));
  }
  const bool provider_scope = scope == ReceiptScope::kProvider;
  db_->Write<ReceiptResult>(
      [provider_scope, owner, receipts = std::move(receipts),
       seqs = std::move(seqs)](Connection& c) -> absl::StatusOr<ReceiptResult> {
        using dispatch_detail::ReceiptMatch;
        // Match, lock the campaigns matched (in seq order, before any of
        // their recipients: ledger.h's order), and match again under the
        // locks: a recipient's status and message id change only with its
        // campaign's row locked, so what the second match finds holds
        // until the commit. A campaign the second match adds is locked
        // too, and the match repeated.
        std::set<int64_t> locked;
        std::vector<std::optional<ReceiptMatch>> matches;
        for (;;) {
          RETURN_IF_ERROR(dispatch_detail::MatchReceipts(
              c, provider_scope, owner, receipts, seqs, matches));
          std::set<int64_t> wanted;
          for (const std::optional<ReceiptMatch>& m : matches) {
            if (m.has_value() && locked.count(m->campaign_seq) == 0) {
              wanted.insert(m->campaign_seq);
            }
          }
          if (wanted.empty()) break;
          std::vector<int64_t> lock(wanted.begin(), wanted.end());
          RETURN_IF_ERROR(
              c.Query("SELECT seq FROM campaigns WHERE seq = ANY($1::bigint[]) "
                      "ORDER BY seq FOR NO KEY UPDATE",
                      {IntArray(lock)})
                  .status());
          locked.insert(lock.begin(), lock.end());
        }
        // The receipts in order, as one-by-one updates would apply them.
        ReceiptResult result;
        std::map<int64_t, dispatch_detail::ReceiptEffect> effects;  // by seq
        for (size_t i = 0; i < receipts.size(); ++i) {
          const ReceiptUpdate& r = receipts[i];
          if (!matches[i].has_value()) {
            ++result.unmatched;
            if (!r.provider_message_id.empty()) {
              result.unmatched_receipts.push_back(r);
            }
            continue;
          }
          const ReceiptMatch& m = *matches[i];
          auto [it, inserted] = effects.try_emplace(m.seq);
          dispatch_detail::ReceiptEffect& e = it->second;
          if (inserted) {
            e.from = e.to = m.status;
            e.campaign_seq = m.campaign_seq;
          }
          if (!dispatch_detail::ReceiptApplies(e.to, r.status)) {
            ++result.ignored;
            continue;
          }
          e.to = r.status;
          const int64_t at = absl::ToUnixMicros(r.occurred_at);
          if ((r.status == RecipientStatus::kDelivered ||
               r.status == RecipientStatus::kRead) &&
              !e.delivered_at.has_value()) {
            e.delivered_at = at;
          }
          if (r.status == RecipientStatus::kRead) e.read_at = at;
          if (r.status == RecipientStatus::kFailed) {
            e.error_code = r.error_code;
            e.error_desc = r.error_desc;
          }
          ++result.matched;
          if (r.status == RecipientStatus::kRead) {
            ++result.read;
          } else if (r.status == RecipientStatus::kFailed) {
            ++result.failed;
          } else {
            ++result.delivered;
          }
        }
        std::vector<int64_t> upd_seqs;
        std::vector<std::string> statuses, expected, codes, descs;
        std::vector<std::optional<int64_t>> delivered, read;
        std::map<int64_t, CampaignStats> deltas;  // by campaign seq
        for (const auto& [seq, e] : effects) {
          if (e.to == e.from) continue;
          upd_seqs.push_back(seq);
          statuses.push_back(dispatch_detail::StatusText(e.to));
          expected.push_back(dispatch_detail::StatusText(e.from));
          delivered.push_back(e.delivered_at);
          read.push_back(e.read_at);
          codes.push_back(e.error_code);
          descs.push_back(e.error_desc);
          CampaignStats& d = deltas[e.campaign_seq];
          --*dispatch_detail::Counter(d, e.from);
          ++*dispatch_detail::Counter(d, e.to);
        }
        if (upd_seqs.empty()) return result;
        const std::string now = Micros(NowMicros());
        absl::StatusOr<Rows> updated =
            c.Query(dispatch_detail::kApplyReceipts,
                    {now, IntArray(upd_seqs), TextArray(statuses),
                     TextArray(expected), IntArray(delivered), IntArray(read),
                     TextArray(codes), TextArray(descs)});
        if (!updated.ok()) return updated.status();
        if (updated->affected() != static_cast<int64_t>(upd_seqs.size())) {
          // Cannot happen while every change of a recipient's status locks
          // its campaign's row first; should one not, nothing is counted
          // wrong: the whole batch is undone.
          return absl::AbortedError(
              "recipients changed while their receipts were applied");
        }
        std::vector<int64_t> campaign_seqs;
        std::vector<int64_t> dq, ds, dd, dr, df, dk;
        for (const auto& [campaign_seq, d] : deltas) {
          campaign_seqs.push_back(campaign_seq);
          dq.push_back(d.queued);
          ds.push_back(d.sent);
          dd.push_back(d.delivered);
          dr.push_back(d.read);
          df.push_back(d.failed);
          dk.push_back(d.skipped);
        }
        absl::StatusOr<Rows> campaigns =
            c.Query(dispatch_detail::kAddCampaignDeltas,
                    {now, IntArray(campaign_seqs), IntArray(dq), IntArray(ds),
                     IntArray(dd), IntArray(dr), IntArray(df), IntArray(dk)});
        if (!campaigns.ok()) return campaigns.status();
        for (int i = 0; i < campaigns->size(); ++i) {
          result.campaigns.push_back(ReadCampaign(*campaigns, i));
        }
        std::sort(
            result.campaigns.begin(), result.campaigns.end(),
            [](const Campaign& a, const Campaign& b) { return a.seq < b.seq; });
        return result;
      },
      std::move(done));
}

void DispatchStore::RetryFailed(const std::string& account_id,
                                const std::string& id,
                                std::vector<std::string> error_codes,
                                Done<RetryResult> done) {
  db_->Write<RetryResult>(
      [account_id, id, error_codes = std::move(error_codes)](
          Connection& c) -> absl::StatusOr<RetryResult> {
        ASSIGN_OR_RETURN(Campaign camp,
                         LoadCampaign(c, account_id, id, /*lock=*/true));
        using S = CampaignStatus;
        if (camp.status != S::kSending && camp.status != S::kPaused &&
            camp.status != S::kSent && camp.status != S::kCompleted) {
          return errors::IllegalTransition(absl::StrCat(
              "cannot retry the failed recipients of a campaign that is ",
              CampaignStatusName(camp.status)));
        }
        // What the failed rows cost at the campaign's prices, counted before
        // they are re-queued; reserved after (the account's row last).
        ASSIGN_OR_RETURN(const CampaignBilling billing,
                         LoadBilling(c, camp.seq));
        int64_t cost = 0;
        if (billing.billed) {
          UnitsPlan plan;
          plan.units = billing.units;
          RowSet failed;
          failed.status = RecipientStatus::kFailed;
          failed.error_codes = error_codes;
          ASSIGN_OR_RETURN(const std::vector<CostLineValue> lines,
                           CostLines(c, camp, plan, billing.prices, failed));
          ASSIGN_OR_RETURN(cost, SumLines(lines));
        }
        const absl::Time now_time = NowMicros();
        const std::string now = Micros(now_time);
        absl::StatusOr<Rows> requeued = c.Query(
            "UPDATE recipients SET status = 'queued', retries = retries + 1, "
            "error_code = '', error_desc = '', provider_message_id = '', "
            "updated_at = $1 WHERE campaign_seq = $2 AND status = 'failed' "
            "AND (cardinality($3::text[]) = 0 OR error_code = ANY($3::text[]))",
            {now, absl::StrCat(camp.seq), TextArray(error_codes)});
        if (!requeued.ok()) return requeued.status();
        RETURN_IF_ERROR(Reserve(
            c, camp, cost,
            absl::StrCat("failed recipients retried of campaign ", camp.id)));
        RetryResult result;
        result.requeued = requeued->affected();
        if (result.requeued > 0) {
          CampaignStats delta;
          delta.failed = -result.requeued;
          delta.queued = result.requeued;
          RETURN_IF_ERROR(
              dispatch_detail::AddToCounters(c, camp.seq, delta, now));
          camp.stats.failed -= result.requeued;
          camp.stats.queued += result.requeued;
          if (camp.status == S::kSent || camp.status == S::kCompleted) {
            camp.status = S::kSending;
            camp.sent_at.reset();
            camp.completed_at.reset();
            camp.updated_at = now_time;
            RETURN_IF_ERROR(WriteCampaign(c, camp, /*insert=*/false));
          }
        }
        result.campaign = std::move(camp);
        return result;
      },
      std::move(done));
}

absl::StatusOr<std::vector<Campaign>> DispatchStore::CampaignsInStatus(
    const std::vector<CampaignStatus>& statuses) {
  std::vector<std::string> names;
  for (CampaignStatus s : statuses) {
    names.emplace_back(CampaignStatusName(s));
  }
  return db_->Read<std::vector<Campaign>>(
      [&](Connection& c) -> absl::StatusOr<std::vector<Campaign>> {
        absl::StatusOr<Rows> rows = c.Query(
            "SELECT * FROM campaigns WHERE NOT deleting AND status = "
            "ANY($1::text[]) ORDER BY seq",
            {TextArray(names)});
        if (!rows.ok()) return rows.status();
        std::vector<Campaign> out;
        for (int i = 0; i < rows->size(); ++i) {
          out.push_back(ReadCampaign(*rows, i));
        }
        return out;
      });
}

absl::StatusOr<MessageContent> DispatchStore::MessageContentOf(
    const Campaign& c) {
  return db_->Read<MessageContent>(
      [&](Connection& conn) { return MessageOf(conn, c); });
}

absl::StatusOr<Sender> DispatchStore::SenderOf(const Campaign& c) {
  return db_->Read<Sender>([&](Connection& conn) {
    return LoadRow<Sender>(conn, "senders", "sender", c.account_id,
                           c.sender_ref, &ReadSender);
  });
}

absl::StatusOr<std::vector<bool>> DispatchStore::SuppressedAmong(
    const std::string& account_id, Channel channel,
    const std::vector<std::string>& addresses) {
  std::vector<bool> out(addresses.size(), false);
  if (addresses.empty()) return out;
  absl::StatusOr<std::vector<int64_t>> hits = db_->Read<std::vector<int64_t>>(
      [&](Connection& c) -> absl::StatusOr<std::vector<int64_t>> {
        absl::StatusOr<Rows> rows = c.Query(
            "SELECT a.ord FROM unnest($2::text[]) WITH ORDINALITY AS "
            "a(address, ord) WHERE EXISTS (SELECT 1 FROM suppressions s "
            "WHERE s.account_id = $1 AND s.address = a.address AND "
            "s.channel IN ($3, ''))",
            {account_id, TextArray(addresses),
             std::string(ChannelName(channel))});
        if (!rows.ok()) return rows.status();
        std::vector<int64_t> ords;
        for (int i = 0; i < rows->size(); ++i) {
          ords.push_back(IntAt(*rows, i, "ord"));
        }
        return ords;
      });
  if (!hits.ok()) return hits.status();
  for (int64_t ord : *hits) out[ord - 1] = true;
  return out;
}

}  // namespace campaigns::storage::postgres
