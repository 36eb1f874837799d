#include "storage/postgres/store.h"

#include <utility>

namespace campaigns::storage::postgres {
namespace internal {

StoreParts::StoreParts(Database* db, const WorkOwner& owner)
    : accounts(db),
      billing(db),
      catalog(db),
      suppressions(db),
      campaigns(db, owner),
      contacts(db, owner),
      recipients(db, &contacts, owner),
      dispatch(db, owner) {}

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

Store::Store(Database* db, const WorkOwner& owner)
    : internal::StoreParts(db, owner), ComposedRepository(PartsOf(*this)) {}

}  // namespace campaigns::storage::postgres
