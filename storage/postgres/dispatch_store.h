// DispatchStore: what the dispatch engine needs of storage
// (server/domain/dispatch_store.h) on PostgreSQL, through Database
// (storage/postgres/database.h), with the semantics of the SQLite store's
// (storage/sqlite/store_dispatch.cc): the same lifecycle moves, errors,
// counters and ledger rows.
//
// Outcomes and receipts are written set-based: a batch is one UPDATE of
// recipients FROM unnest(arrays) (plus its suppressions and, for
// receipts, a lookup of the recipients), and the campaign's counters
// change once per batch, in the same transaction.
//
// Several instances may share the database. Every write locks the rows it
// reads and then writes in the order ledger.h sets: the campaign's row
// first (LoadCampaign with lock: SELECT ... FOR NO KEY UPDATE; receipts,
// which may span campaigns, lock theirs in seq order), then its sender and
// template (a start, CheckStartable), then recipients (the UPDATEs), and
// the account's row last (money, ledger.h). So two instances' writes of
// one campaign take turns and neither loses the other's counters, and
// outcomes or receipts on one instance never deadlock with a cancel or a
// retry on another. A cancel skips its queued recipients in chunks of
// kSkipChunkRows, each its own write (campaign row locked); a chain cut
// off by a crash is finished by SkipCancelled (on any instance: each chunk
// locks the row, so two instances skipping one take turns).
//
//   DispatchStore dispatch(db);
//   dispatch.RecordOutcomes(account, "cmp_...", outcomes,
//                           [](absl::StatusOr<Campaign> c) {...});
//
// Thread-safe.
#ifndef CAMPAIGND_STORAGE_POSTGRES_DISPATCH_STORE_H_
#define CAMPAIGND_STORAGE_POSTGRES_DISPATCH_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/domain/dispatch_store.h"
#include "server/domain/mutex.h"
#include "server/domain/recipient_ids.h"
#include "storage/postgres/database.h"
#include "storage/postgres/owners.h"
#include "storage/postgres/rows.h"

namespace campaigns::storage::postgres {

class DispatchStore : public campaigns::DispatchStore {
 public:
  // Queued recipients a cancelled campaign skips per write.
  static constexpr int kSkipChunkRows = 10000;

  // `db` must outlive the store. `owner.ttl`: how long after its last
  // heartbeat an instance counts as dead (LeaseRecipients).
  explicit DispatchStore(Database* db, WorkOwner owner = {})
      : db_(db), owner_(std::move(owner)) {}

  void TransitionCampaign(const std::string& account_id, const std::string& id,
                          LifecycleChange change, Done<Campaign> done) override;
  absl::StatusOr<std::vector<Recipient>> LeaseRecipients(
      const Campaign& c, int64_t after_seq, int limit,
      const Lease* fence) override;
  void RecordOutcomes(const std::string& account_id,
                      const std::string& campaign_id,
                      std::vector<DispatchOutcome> outcomes,
                      Done<Campaign> done) override;
  void MarkHanded(const std::string& account_id, const std::string& campaign_id,
                  std::vector<int64_t> seqs, bool handed, const Lease* fence,
                  std::function<void(absl::Status)> done) override;
  void ApplyReceipts(const std::string& account_id,
                     std::vector<ReceiptUpdate> receipts,
                     Done<ReceiptResult> done) override;
  void ApplyProviderReceipts(const std::string& provider,
                             std::vector<ReceiptUpdate> receipts,
                             Done<ReceiptResult> done) override;
  void RetryFailed(const std::string& account_id, const std::string& id,
                   std::vector<std::string> error_codes,
                   Done<RetryResult> done) override;
  absl::StatusOr<std::vector<Campaign>> CampaignsInStatus(
      const std::vector<CampaignStatus>& statuses) override;
  absl::StatusOr<Campaign> CampaignById(const std::string& id) override;
  absl::StatusOr<std::vector<Campaign>> CutOffCancellations() override;
  void SkipCancelled(const std::string& account_id, const std::string& id,
                     Done<Campaign> done) override;
  absl::StatusOr<MessageContent> MessageContentOf(const Campaign& c) override;
  absl::StatusOr<Sender> SenderOf(const Campaign& c) override;
  absl::StatusOr<std::vector<bool>> SuppressedAmong(
      const std::string& account_id, Channel channel,
      const std::vector<std::string>& addresses) override;

 private:
  // Whose receipts: an account's (matched by provider message id or
  // recipient id) or a provider's (by provider message id only).
  enum class ReceiptScope { kAccount, kProvider };

  // The recipient id codec, from meta.recipient_id_key: read once it can
  // be (a failure, e.g. the server unreachable, is not remembered).
  absl::StatusOr<const RecipientIdCodec*> Codec() { return codec_.Get(db_); }

  void ApplyReceiptsIn(ReceiptScope scope, const std::string& owner,
                       std::vector<ReceiptUpdate> receipts,
                       Done<ReceiptResult> done);

  // Skips the next kSkipChunkRows queued recipients of cancelled campaign
  // `id`, re-queueing itself while some are left; then `done` (may be
  // null) gets the campaign, or the error that stopped the chain. Static,
  // on `db`: a chain may outlive the store (it ends when `db` closes).
  // `owner` judges whose marks are a live instance's (NextSkipChainStep).
  static void SkipQueuedChunk(Database* db, WorkOwner owner,
                              const std::string& account_id,
                              const std::string& id, Done<Campaign> done);

  Database* const db_;
  const WorkOwner owner_;
  RecipientIdCodecCache codec_;
};

}  // namespace campaigns::storage::postgres

#endif  // CAMPAIGND_STORAGE_POSTGRES_DISPATCH_STORE_H_
