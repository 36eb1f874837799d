#include "storage/postgres/store.h"

#include <utility>

namespace campaigns::storage::postgres {
namespace internal {

StoreParts::StoreParts(Database* db, postgres::DispatchStore::LeaseGate gate)
    : accounts(db),
      billing(db),
      catalog(db),
      suppressions(db),
      campaigns(db),
      contacts(db),
      recipients(db, &contacts),
      dispatch(db, std::move(gate)) {}

}  // namespace internal
namespace {

ComposedRepository::Parts PartsOf(internal::StoreParts& p) {
  ComposedRepository::Parts parts;
  parts.accounts = &p.accounts;
  parts.billing = &p.billing;
  parts.templates = &p.catalog;
  parts.senders = &p.catalog;
  parts.suppressions = &p.suppressions;
  parts.campaigns = &p.campaigns;
  parts.recipients = &p.recipients;
  parts.contacts = &p.contacts;
  parts.dispatch = &p.dispatch;
  return parts;
}

}  // namespace

Store::Store(Database* db, postgres::DispatchStore::LeaseGate gate)
    : internal::StoreParts(db, std::move(gate)),
      ComposedRepository(PartsOf(*this)) {}

}  // namespace campaigns::storage::postgres
