// SuppressionStore: SuppressionRepository (server/domain/repository.h) on
// PostgreSQL, through Database. Adds are upserts on the primary key
// (account_id, address, channel), so instances adding the same entry at the
// same time leave one row.
//
// Thread-safe.
#ifndef CAMPAIGND_STORAGE_POSTGRES_SUPPRESSION_STORE_H_
#define CAMPAIGND_STORAGE_POSTGRES_SUPPRESSION_STORE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/domain/repository.h"
#include "storage/postgres/database.h"

namespace campaigns::storage::postgres {

class SuppressionStore : public SuppressionRepository {
 public:
  // `db` must outlive the store.
  explicit SuppressionStore(Database* db) : db_(db) {}

  void AddSuppression(Suppression s, Done<Suppression> done) override;
  void AddProviderSuppression(const std::vector<std::string>& providers,
                              const std::string& to, Suppression s,
                              Done<int> done) override;
  void RemoveSuppression(const std::string& account_id,
                         const std::string& address, Channel channel,
                         StatusDone done) override;
  absl::StatusOr<Page<Suppression>> ListSuppressions(
      const std::string& account_id, const SuppressionFilter& filter,
      const PageRequest& page) override;
  absl::StatusOr<std::vector<Suppression>> FindSuppressions(
      const std::string& account_id, const std::string& address,
      Channel channel) override;

 private:
  Database* const db_;
};

}  // namespace campaigns::storage::postgres

#endif  // CAMPAIGND_STORAGE_POSTGRES_SUPPRESSION_STORE_H_
