// DispatchStore: what the dispatch engine needs of storage, in domain
// values: lifecycle transitions, leases of queued recipients in seq order,
// and outcomes and receipts recorded together with the campaign counters
// they change (total = queued + sent + delivered + read + failed + skipped
// holds after every commit). storage::Store implements it.
//
// Writes complete asynchronously: `done` runs after the commit, on the
// storage writer thread, and must not block. Reads are synchronous.
// Implementations are thread-safe.
#ifndef CAMPAIGND_SERVER_DOMAIN_DISPATCH_STORE_H_
#define CAMPAIGND_SERVER_DOMAIN_DISPATCH_STORE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/domain/leases.h"
#include "server/domain/model.h"
#include "server/domain/rules.h"

namespace campaigns {

// A lifecycle event for TransitionCampaign.
struct LifecycleChange {
  CampaignEvent event = CampaignEvent::kStart;
  absl::Time now;
  // kStart (ConfirmCampaign's send_at): the campaign's new schedule_at.
  std::optional<absl::Time> send_at;
  // kPause: the pause_reason; kFatal: the failure_reason.
  std::string reason;
  // kCancel: false leaves the queued recipients queued for SkipCancelled
  // (another instance is sending the campaign: it skips them once the
  // outcomes of its messages out are recorded).
  bool skip_queued = true;
};

// What a provider call (or the engine, without one) made of a recipient.
struct DispatchOutcome {
  int64_t seq = 0;
  // kSent (accepted), kFailed, kSkipped; kQueued = a transient failure: the
  // recipient stays queued for a retry.
  RecipientStatus status = RecipientStatus::kSent;
  bool attempted = true;  // a provider call was made: attempts + 1
  // The provider that answered (recorded on the row when not ""): its
  // receipts match the recipient.
  std::string provider;
  std::string provider_message_id;
  std::string error_code;
  std::string error_desc;
  std::string skip_reason;
  // kFailed: also suppress the recipient's address on the campaign's
  // channel with this reason ("opt_out", "bounce"), "" = no.
  std::string suppress;
};

// A delivery receipt, matched by provider message id or by recipient id.
struct ReceiptUpdate {
  std::string provider_message_id;
  std::string recipient_id;  // rcp_...
  RecipientStatus status =
      RecipientStatus::kDelivered;  // delivered, read, failed
  std::string error_code;
  std::string error_desc;
  absl::Time occurred_at;
};

struct ReceiptResult {
  int64_t matched = 0;    // changed a recipient
  int64_t unmatched = 0;  // no recipient of the account has that id
  int64_t ignored = 0;    // matched, but not newer than what is recorded
  // Of `unmatched`, those that name a provider message id, in batch order:
  // their message's outcome may not be recorded yet (the engine holds them
  // and tries again).
  std::vector<ReceiptUpdate> unmatched_receipts;
  // The matched ones by the status they set.
  int64_t delivered = 0;
  int64_t read = 0;
  int64_t failed = 0;
  // The campaigns whose recipients changed, as they are afterwards.
  std::vector<Campaign> campaigns;
};

struct RetryResult {
  int64_t requeued = 0;
  Campaign campaign;
};

template <typename T>
using Done = std::function<void(absl::StatusOr<T>)>;

// For TransitionCampaign's kCancel on every engine: `done` of the skip
// chain that follows cancellation `cancelled`, answered with the chain's
// campaign, or with `cancelled` when a chunk failed (NOT_FOUND passes).
inline Done<Campaign> AnswerWithTheCancel(Campaign cancelled,
                                          Done<Campaign> done) {
  return [cancelled = std::move(cancelled),
          done = std::move(done)](absl::StatusOr<Campaign> c) mutable {
    if (!c.ok() && c.status().code() != absl::StatusCode::kNotFound) {
      c = std::move(cancelled);
    }
    if (done) done(std::move(c));
  };
}

class DispatchStore {
 public:
  virtual ~DispatchStore() = default;

  // Applies `change` to the stored campaign (NextStatus; ILLEGAL_TRANSITION
  // when the table has no such move) with what the new state brings:
  // kStart re-checks sender and template, materialises a contact audience
  // and refuses an empty one (VALIDATION_ERROR); entering sending sets
  // started_at; kPause stores the reason, kResume clears it; a schedule
  // alarm past max_lateness fails the campaign with a reason; kAllDispatched
  // needs no queued recipient and sets sent_at, and goes on to completed
  // when no recipient awaits a receipt; kAllFinal sets completed_at.
  // kCancel sets cancelled_at and (unless !skip_queued) turns every queued
  // recipient into skipped as SkipCancelled does; `done` runs after the
  // last chunk, or with the stored cancellation (queued recipients still
  // counted) when a chunk fails: the cancel stands, and the rest is skipped
  // once writes succeed.
  virtual void TransitionCampaign(const std::string& account_id,
                                  const std::string& id, LifecycleChange change,
                                  Done<Campaign> done) = 0;

  // Up to `limit` queued recipients of `c` (not staged by an import) with
  // seq > `after_seq`, in seq order; campaign_id is set. Read connection.
  //
  // `fence`: where several instances share the database, the lease
  // ("campaign:<id>", leases.h) under which the caller sends `c`; null
  // where one instance owns everything (SQLite ignores it). With a fence,
  // nothing is leased (errors::LeaseLost) unless the lease is still the
  // fence's owner's at its epoch, unexpired on the database's clock, and
  // the campaign is sending.
  virtual absl::StatusOr<std::vector<Recipient>> LeaseRecipients(
      const Campaign& c, int64_t after_seq, int limit, const Lease* fence) = 0;

  // Records what happened to queued recipients of campaign `campaign_id`.
  // A recipient no longer queued (e.g. cancelled meanwhile) is left alone.
  // Returns the campaign afterwards.
  virtual void RecordOutcomes(const std::string& account_id,
                              const std::string& campaign_id,
                              std::vector<DispatchOutcome> outcomes,
                              Done<Campaign> done) = 0;

  // Marks (or unmarks) queued recipients of the campaign as handed to a
  // provider that does not de-duplicate, in one write, before the call:
  // after a crash, a recipient still queued and marked is in doubt
  // (Recipient::in_doubt). RecordOutcomes clears the mark.
  //
  // `fence` (null = none), when `handed`: as LeaseRecipients's, checked in
  // the mark's transaction with the lease row share-locked, so that an
  // instance taking the lease over commits after the mark, and finds the
  // recipients in doubt. Clearing a mark is never fenced.
  virtual void MarkHanded(const std::string& account_id,
                          const std::string& campaign_id,
                          std::vector<int64_t> seqs, bool handed,
                          const Lease* fence,
                          std::function<void(absl::Status)> done) = 0;

  // Applies receipts to the account's recipients: sent -> delivered, read or
  // failed; delivered -> read. Older or repeated receipts are ignored.
  virtual void ApplyReceipts(const std::string& account_id,
                             std::vector<ReceiptUpdate> receipts,
                             Done<ReceiptResult> done) = 0;

  // The same for receipts a provider's webhook brought: they match by
  // provider message id the recipients of campaigns (of any account) whose
  // sender `provider` sends for; a recipient id alone never matches.
  virtual void ApplyProviderReceipts(const std::string& provider,
                                     std::vector<ReceiptUpdate> receipts,
                                     Done<ReceiptResult> done) = 0;

  // Re-queues the campaign's failed recipients (those with one of
  // `error_codes`, or all when empty). Sending, paused, sent or completed
  // campaigns only; a sent or completed one goes back to sending.
  virtual void RetryFailed(const std::string& account_id, const std::string& id,
                           std::vector<std::string> error_codes,
                           Done<RetryResult> done) = 0;

  // Every campaign (of any account) in one of `statuses`: what the engine
  // picks up at start-up.
  virtual absl::StatusOr<std::vector<Campaign>> CampaignsInStatus(
      const std::vector<CampaignStatus>& statuses) = 0;

  // Campaign `id` of any account as stored now; NOT_FOUND when there is
  // none, or it is being deleted. What the engine reads when told that a
  // campaign changed elsewhere (another instance).
  virtual absl::StatusOr<Campaign> CampaignById(const std::string& id) = 0;

  // Cancelled campaigns (not being deleted) that still count queued
  // recipients: a skipping cut off by a crash or a failed write, or left to
  // the instance that was sending them (LifecycleChange::skip_queued).
  virtual absl::StatusOr<std::vector<Campaign>> CutOffCancellations() = 0;

  // Turns the queued recipients of cancelled campaign `id` into skipped
  // (campaign_cancelled), in chunks of a write each; `done` (may be null)
  // runs after the last chunk with the campaign, or with the first failed
  // chunk's error (NOT_FOUND: deleted meanwhile). After a failed write the
  // rest is skipped once writes succeed again.
  virtual void SkipCancelled(const std::string& account_id,
                             const std::string& id, Done<Campaign> done) = 0;

  // What `c` sends (EffectiveContent in rules.h): its body, or its
  // template's, and for email the subject and HTML body, each its own or
  // else its template's; NOT_FOUND when the template is gone. Read
  // connection.
  virtual absl::StatusOr<MessageContent> MessageContentOf(
      const Campaign& c) = 0;

  // The registered sender `c` sends from (tier, provider); NOT_FOUND when
  // it was deleted. Read connection.
  virtual absl::StatusOr<Sender> SenderOf(const Campaign& c) = 0;

  // For each of `addresses` (normalised), whether the account suppresses it
  // on `channel` or on every channel. Read connection.
  virtual absl::StatusOr<std::vector<bool>> SuppressedAmong(
      const std::string& account_id, Channel channel,
      const std::vector<std::string>& addresses) = 0;
};

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_DOMAIN_DISPATCH_STORE_H_
