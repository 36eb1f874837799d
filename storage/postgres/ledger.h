// The ledger on PostgreSQL, inside a write transaction: prices, the
// account's balance and reservation and their ledger rows, and what a
// campaign's start reserves. The counterpart of the money half of
// storage/sqlite/store_internal.h, for the stores that move money
// (CampaignStore's create-and-start and updates, DispatchStore,
// BillingStore, and RecipientStore's imports into started campaigns).
// Internal to storage/postgres.
//
// Every movement is one ledger row written in the same transaction as the
// account's balance and reservation it changes, with the account's row locked
// (FOR NO KEY UPDATE) while it is read and written: two instances moving one
// account's money take turns, so at every row balance + reserved = credits
// added - debited.
//
// Lock order, for every op that takes more than one of these rows: the
// campaign's first, then its sender, template and list, then recipients,
// and the account's last. (The writer groups several ops in one
// transaction, so an op's locks are held through the ops after it; an op
// that takes them in another order can deadlock with another instance's
// group. A deadlock victim runs once more on its own, see database.h.)
//
//   RETURN_IF_ERROR(ReserveForStart(conn, campaign));  // in a Write op
#ifndef CAMPAIGND_STORAGE_POSTGRES_LEDGER_H_
#define CAMPAIGND_STORAGE_POSTGRES_LEDGER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/domain/billing.h"
#include "server/domain/model.h"
#include "storage/postgres/connection.h"
#include "storage/postgres/rows.h"

namespace campaigns::storage::postgres {

// A `transactions` row (SELECT *).
Transaction ReadTransaction(const Rows& rows, int row);

// The account's price table, by channel and country.
absl::StatusOr<std::vector<Price>> LoadPrices(Connection& c,
                                              const std::string& account_id);

// The prices a started campaign reserved with; `billed` false when it sends
// for free. `units` is every recipient's billable units, or -1 when each
// recipient has its own (its message has placeholders).
struct CampaignBilling {
  bool billed = false;
  int64_t units = -1;
  ChannelPrices prices;
};
absl::StatusOr<CampaignBilling> LoadBilling(Connection& c,
                                            int64_t campaign_seq);

// Writes one ledger row and applies it to the account, in the current
// transaction, its row locked: a credit adds to the balance; a reservation
// moves balance to reserved (INSUFFICIENT_CREDITS when the balance is
// short, unless `allow_negative`); a debit spends reserved; a release
// moves reserved back to the balance. `amount` > 0.
absl::StatusOr<Transaction> AppendLedger(Connection& c,
                                         const std::string& account_id,
                                         Transaction::Type type, int64_t amount,
                                         const std::string& campaign_id,
                                         const std::string& description,
                                         bool allow_negative);

// How a campaign's recipients count: `units` for every one, or -1 when
// each has its own (stored in its row).
struct UnitsPlan {
  int64_t units = -1;
};

// Fills in, for the queued rows of `campaign`, what their cost needs: the
// destination country of phone numbers, and billable units when the message
// has placeholders (recounted for every queued row when the message changed
// since they were counted). Per-row work only for rows added since the last
// call (the campaign's units_through) or after a change of message. At
// most `max_rows` rows, in seq order; true when no row is left to do.
// `*plan` is set either way.
absl::StatusOr<bool> PrepareUnits(Connection& c, const Campaign& campaign,
                                  UnitsPlan* plan, int64_t max_rows);
// The same for every row, in chunks of bounded memory (one transaction).
absl::StatusOr<UnitsPlan> PrepareUnits(Connection& c, const Campaign& campaign);

// The plan to sum `campaign`'s queued rows by when each of them has what
// its cost needs for the campaign's current message (PrepareUnits left
// nothing to do); nullopt when they are not (or no longer) all counted.
// Reads only: for an estimate on a read connection.
absl::StatusOr<std::optional<UnitsPlan>> CountedUnits(Connection& c,
                                                      const Campaign& campaign);

// Rows of a campaign whose cost to sum: in `status`, seq in [from, to), and
// with one of `error_codes` (all when empty).
struct RowSet {
  RecipientStatus status = RecipientStatus::kQueued;
  int64_t from_seq = 0;
  int64_t to_seq = kNoFloor;
  std::vector<std::string> error_codes;
};

// The cost of `rows` per destination country (one grouped query), in
// country order (bytes).
absl::StatusOr<std::vector<CostLineValue>> CostLines(
    Connection& c, const Campaign& campaign, const UnitsPlan& plan,
    const ChannelPrices& prices, const RowSet& rows);
absl::StatusOr<int64_t> SumLines(const std::vector<CostLineValue>& lines);

// At kStart: fixes the campaign's prices (the account's, now) and reserves
// the cost of its queued recipients, or INSUFFICIENT_CREDITS. Free when the
// account has no price for the channel.
absl::Status ReserveForStart(Connection& c, Campaign& campaign);

// Reserves `amount` for `campaign` (nothing when <= 0).
absl::Status Reserve(Connection& c, Campaign& campaign, int64_t amount,
                     const std::string& what);

// Releases all the campaign still holds (it reached a state where nothing
// more is sent); `why` ends the ledger row's description.
absl::Status ReleaseAll(Connection& c, Campaign& campaign,
                        absl::string_view why);

}  // namespace campaigns::storage::postgres

#endif  // CAMPAIGND_STORAGE_POSTGRES_LEDGER_H_
