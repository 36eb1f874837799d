// Store: the whole Repository (server/domain/repository.h) on PostgreSQL:
// one store per interface (account_store.h ... dispatch_store.h) on one
// Database, presented together through ComposedRepository.
//
//   auto db = Database::Open(options);
//   Store store(db->get());
//   api::Api api(&store, ...);
//
// Thread-safe (each part is). `db` must outlive the Store.
#ifndef CAMPAIGND_STORAGE_POSTGRES_STORE_H_
#define CAMPAIGND_STORAGE_POSTGRES_STORE_H_

#include <memory>

#include "server/domain/composed_repository.h"
#include "storage/postgres/account_store.h"
#include "storage/postgres/billing_store.h"
#include "storage/postgres/campaign_store.h"
#include "storage/postgres/catalog_store.h"
#include "storage/postgres/contact_store.h"
#include "storage/postgres/database.h"
#include "storage/postgres/dispatch_store.h"
#include "storage/postgres/owners.h"
#include "storage/postgres/recipient_store.h"
#include "storage/postgres/suppression_store.h"

namespace campaigns::storage::postgres {

namespace internal {
// The parts, built before the ComposedRepository that points at them.
struct StoreParts {
  StoreParts(Database* db, const WorkOwner& owner);
  AccountStore accounts;
  BillingStore billing;
  CatalogStore catalog;
  SuppressionStore suppressions;
  CampaignStore campaigns;
  ContactStore contacts;
  RecipientStore recipients;
  DispatchStore dispatch;
};
}  // namespace internal

class Store : private internal::StoreParts, public ComposedRepository {
 public:
  // `owner`: this instance, which owns the imports and deletions it begins
  // (owners.h).
  explicit Store(Database* db, const WorkOwner& owner = {});
};

}  // namespace campaigns::storage::postgres

#endif  // CAMPAIGND_STORAGE_POSTGRES_STORE_H_
