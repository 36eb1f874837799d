// A campaign's lifecycle moves on PostgreSQL, inside a write transaction:
// the counterpart of SQLite's internal::Transition (store_dispatch.cc), for
// CampaignStore's create-and-start and the DispatchStore to come. Internal
// to storage/postgres.
//
//   ASSIGN_OR_RETURN(Campaign c, LoadCampaign(conn, account, id,
//   /*lock=*/true)); RETURN_IF_ERROR(Transition(conn, c, change));
#ifndef CAMPAIGND_STORAGE_POSTGRES_LIFECYCLE_H_
#define CAMPAIGND_STORAGE_POSTGRES_LIFECYCLE_H_

#include "absl/status/status.h"
#include "server/domain/dispatch_store.h"
#include "server/domain/model.h"
#include "storage/postgres/connection.h"

namespace campaigns::storage::postgres {

// Sender and template as a start needs them: still registered, approved;
// and an email campaign still has a subject (its template's may have been
// cleared since the campaign was created). VALIDATION_ERROR naming the
// field otherwise.
absl::Status CheckStartable(Connection& c, const Campaign& campaign);

// Applies `change` to the stored campaign `campaign` (loaded with its row
// locked, LoadCampaign's `lock`) in the current transaction and stores it:
// a start checks it (CheckStartable), materialises a contact audience,
// refuses a campaign without recipients and reserves its cost
// (ReserveForStart); a move to sent or a final status releases what is
// still reserved. kCancel's skipping of queued recipients is not done here.
absl::Status Transition(Connection& c, Campaign& campaign,
                        const LifecycleChange& change);

}  // namespace campaigns::storage::postgres

#endif  // CAMPAIGND_STORAGE_POSTGRES_LIFECYCLE_H_
