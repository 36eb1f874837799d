// CampaignStore: CampaignRepository (server/domain/repository.h) on
// PostgreSQL, through Database (storage/postgres/database.h), with the
// semantics of the SQLite store's campaigns (storage/sqlite/
// store_campaigns.cc): the same validation, references, errors and
// listing order.
//
// Several instances may share the database. A read-modify-write of a campaign
// (UpdateCampaign, DeleteCampaign, a start) locks the campaign's row first
// (SELECT ... FOR NO KEY UPDATE), so an instance's write of it waits for
// another's rather than overwriting it; money moves with the account's row
// locked (ledger.h); a create's request id is held by a transaction advisory
// lock (Idempotent, rows.h); and a deletion's chunks lock the campaign's row,
// so two instances resuming one deletion take turns. The instance that
// deletes a campaign owns the deletion (owners.h): another one resumes it
// only once that one is dead.
//
//   CampaignStore campaigns(db);
//   campaigns.CreateCampaign(c, idem, [](absl::StatusOr<Campaign> c) {...});
//
// Thread-safe.
#ifndef CAMPAIGND_STORAGE_POSTGRES_CAMPAIGN_STORE_H_
#define CAMPAIGND_STORAGE_POSTGRES_CAMPAIGN_STORE_H_

#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "server/domain/repository.h"
#include "storage/postgres/database.h"
#include "storage/postgres/owners.h"

namespace campaigns::storage::postgres {

class CampaignStore : public CampaignRepository {
 public:
  // `db` must outlive the store.
  // `db` must outlive the store. `owner`: this instance, which owns the
  // deletions it begins.
  explicit CampaignStore(Database* db, WorkOwner owner = {})
      : db_(db), owner_(std::move(owner)) {}

  void CreateCampaign(
      Campaign c, IdempotencyKey idem, Done<Campaign> done,
      std::optional<LifecycleChange> then = std::nullopt) override;
  absl::StatusOr<Campaign> GetCampaign(const std::string& account_id,
                                       const std::string& id) override;
  absl::StatusOr<Page<Campaign>> ListCampaigns(
      const std::string& account_id, const CampaignFilter& filter,
      const PageRequest& page) override;
  absl::StatusOr<CampaignTotals> CountCampaigns() override;
  void UpdateCampaign(const std::string& account_id, const std::string& id,
                      std::function<absl::Status(Campaign&)> mutate,
                      Done<Campaign> done) override;
  void DeleteCampaign(const std::string& account_id, const std::string& id,
                      StatusDone done) override;
  // Safe on several instances at once: each chunk is deleted once.
  absl::StatusOr<int> ResumeCampaignDeletions() override;

 private:
  // Deletes the next chunk of campaign `id`'s address set and recipients,
  // re-queueing itself until none is left, then the campaign's row. A failed
  // chunk is tried again later (Database::AgainLater); the campaign stays
  // hidden meanwhile, and if the process stops first,
  // ResumeCampaignDeletions finishes it. Static, on `db`: a chain may
  // outlive the store (it ends when `db` closes).
  static void PurgeChunk(Database* db, const std::string& id);

  Database* const db_;
  const WorkOwner owner_;
};

}  // namespace campaigns::storage::postgres

#endif  // CAMPAIGND_STORAGE_POSTGRES_CAMPAIGN_STORE_H_
