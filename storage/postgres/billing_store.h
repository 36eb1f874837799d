// BillingStore: BillingRepository (server/domain/repository.h) on
// PostgreSQL, through Database (storage/postgres/database.h), with the
// semantics of the SQLite store's money (storage/sqlite/store_billing.cc):
// the same checks, errors, ledger rows and listing order.
//
// Several instances may share the database. Every movement of money is a
// ledger row written by ledger.h's AppendLedger with the account's row
// locked (FOR NO KEY UPDATE), so credits added on every instance at once
// all land and at every row balance + reserved = credits added - debited.
// SetPrices locks the account's row too, so two replacements of one price
// table take turns. AddCredits' request id is held by a transaction
// advisory lock (Idempotent, rows.h): the same request on two instances
// credits once. PrepareCosts locks the campaign's row for each of its
// chunks (the campaign first, as ledger.h's lock order says), and
// ReadEstimate and ListTransactions read one snapshot (REPEATABLE READ),
// so an estimate read while costs are being prepared is either not ready
// (nullopt) or right, never half of each.
//
//   BillingStore billing(db);
//   billing.AddCredits(account_id, 5000000, "top-up", idem,
//                      [](absl::StatusOr<Account> a) {...});
//
// Thread-safe.
#ifndef CAMPAIGND_STORAGE_POSTGRES_BILLING_STORE_H_
#define CAMPAIGND_STORAGE_POSTGRES_BILLING_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/domain/repository.h"
#include "storage/postgres/database.h"

namespace campaigns::storage::postgres {

class BillingStore : public BillingRepository {
 public:
  // Queued recipients whose cost one PrepareCosts write prepares: one
  // write of the writer never holds it (nor the campaign's row) for long.
  static constexpr int64_t kPrepareChunkRows = 20000;

  // `db` must outlive the store.
  explicit BillingStore(Database* db) : db_(db) {}

  void SetPrices(const std::string& account_id, std::vector<Price> prices,
                 Done<std::vector<Price>> done) override;
  absl::StatusOr<std::vector<Price>> GetPrices(
      const std::string& account_id) override;
  void AddCredits(const std::string& account_id, int64_t amount,
                  std::string description, IdempotencyKey idem,
                  Done<Account> done) override;
  absl::StatusOr<Page<Transaction>> ListTransactions(
      const std::string& account_id, const PageRequest& page) override;
  void PrepareCosts(const std::string& account_id,
                    const std::string& campaign_id, bool only_if_priced,
                    StatusDone then) override;
  absl::StatusOr<std::optional<CostEstimateValue>> ReadEstimate(
      const std::string& account_id, const std::string& campaign_id) override;
  absl::StatusOr<AccountStats> CampaignStatsOf(
      const std::string& account_id, const StatsFilter& filter) override;

 private:
  // Prepares the next chunk of the campaign's costs (materialising a
  // draft's contact audience first when `first`), re-queueing itself until
  // none is left; then `then(OK)`. Static, on `db`: a chain may outlive
  // the store (it ends when `db` closes).
  static void PrepareCostsChunk(Database* db, const std::string& account_id,
                                const std::string& campaign_id,
                                bool only_if_priced, bool first,
                                StatusDone then);

  Database* const db_;
};

}  // namespace campaigns::storage::postgres

#endif  // CAMPAIGND_STORAGE_POSTGRES_BILLING_STORE_H_
