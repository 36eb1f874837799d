// The contact audience of a campaign inside a write transaction: what
// ContactStore::MaterializeAudience does, and what a campaign's start
// (lifecycle.h) does before it reserves. Internal to storage/postgres.
//
//   ASSIGN_OR_RETURN(MaterializeResult r,
//                    MaterializeAudienceIn(conn, account_id, campaign_id));
#ifndef CAMPAIGND_STORAGE_POSTGRES_AUDIENCE_H_
#define CAMPAIGND_STORAGE_POSTGRES_AUDIENCE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/domain/repository.h"
#include "storage/postgres/connection.h"

namespace campaigns::storage::postgres {

// Locks the row of list `id` of the account (`mode`: "FOR UPDATE", "FOR
// KEY SHARE", ...); NOT_FOUND if there is none.
absl::Status LockList(Connection& c, const std::string& account_id,
                      const std::string& id, const char* mode);

// Inserts the recipients of campaign `campaign_id`'s contact audience in
// the current transaction and adds them to its row's total and queued
// counters (see ContactRepository::MaterializeAudience for what is
// inserted and refused). Locks the campaign's row (FOR NO KEY UPDATE)
// first, so materialisations of one campaign from any instance run one
// after the other.
absl::StatusOr<MaterializeResult> MaterializeAudienceIn(
    Connection& c, const std::string& account_id,
    const std::string& campaign_id);

}  // namespace campaigns::storage::postgres

#endif  // CAMPAIGND_STORAGE_POSTGRES_AUDIENCE_H_
