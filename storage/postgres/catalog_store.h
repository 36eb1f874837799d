// CatalogStore: TemplateRepository and SenderRepository
// (server/domain/repository.h) on PostgreSQL, through Database.
//
// Thread-safe.
#ifndef CAMPAIGND_STORAGE_POSTGRES_CATALOG_STORE_H_
#define CAMPAIGND_STORAGE_POSTGRES_CATALOG_STORE_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "server/domain/repository.h"
#include "storage/postgres/database.h"

namespace campaigns::storage::postgres {

class CatalogStore : public TemplateRepository, public SenderRepository {
 public:
  // `db` must outlive the store.
  explicit CatalogStore(Database* db) : db_(db) {}

  void CreateTemplate(Template t, IdempotencyKey idem,
                      Done<Template> done) override;
  absl::StatusOr<Template> GetTemplate(const std::string& account_id,
                                       const std::string& id) override;
  absl::StatusOr<Template> GetTemplateForReview(const std::string& id) override;
  absl::StatusOr<Page<Template>> ListTemplates(
      const std::string& account_id, const TemplateFilter& filter,
      const PageRequest& page) override;
  void UpdateTemplate(const std::string& account_id, const std::string& id,
                      std::function<absl::Status(Template&)> mutate,
                      Done<Template> done) override;
  void DeleteTemplate(const std::string& account_id, const std::string& id,
                      StatusDone done) override;

  void RegisterSender(Sender s, IdempotencyKey idem,
                      Done<Sender> done) override;
  absl::StatusOr<Sender> GetSender(const std::string& account_id,
                                   const std::string& id) override;
  absl::StatusOr<Page<Sender>> ListSenders(const std::string& account_id,
                                           Channel channel,
                                           const PageRequest& page) override;
  void DeleteSender(const std::string& account_id, const std::string& id,
                    StatusDone done) override;

 private:
  Database* const db_;
};

}  // namespace campaigns::storage::postgres

#endif  // CAMPAIGND_STORAGE_POSTGRES_CATALOG_STORE_H_
