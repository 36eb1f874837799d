// Helpers shared by the store_*.cc files. Private to storage/.
#ifndef CAMPAIGND_STORAGE_SQLITE_STORE_INTERNAL_H_
#define CAMPAIGND_STORAGE_SQLITE_STORE_INTERNAL_H_

#include <SQLiteCpp/Column.h>
#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/domain/billing.h"
#include "server/domain/errors.h"
#include "server/domain/model.h"
#include "server/domain/rules.h"
#include "storage/sqlite/rows.h"
#include "storage/sqlite/store.h"

namespace campaigns::storage::internal {

using Binder = std::function<void(SQLite::Statement&)>;

// The first of `contact_ids_json` (a JSON array of ids) that is not a
// contact of `account_id`, as NOT_FOUND naming it; OK when all are. One
// query, whatever the number of ids.
absl::Status CheckContactsExist(SQLite::Database& db,
                                const std::string& account_id,
                                const std::string& contact_ids_json);

// ListPage with statements from `prepare(sql)` (anything that dereferences
// to a SQLite::Statement).
template <typename T, typename Prepare>
absl::StatusOr<Page<T>> ListPageWith(const Prepare& prepare,
                                     const std::string& from_where,
                                     const std::string& order, int params,
                                     const Binder& bind,
                                     T (*read)(SQLite::Statement&),
                                     const PageRequest& page) {
  auto count = prepare("SELECT COUNT(*) FROM " + from_where);
  bind(*count);
  count->executeStep();
  const int64_t total = count->getColumn(0).getInt64();
  auto select = prepare("SELECT * FROM " + from_where + " ORDER BY " + order +
                        " LIMIT ? OFFSET ?");
  bind(*select);
  select->bind(params + 1, page.limit);
  select->bind(params + 2, static_cast<int64_t>(page.offset()));
  std::vector<T> items;
  while (select->executeStep()) items.push_back(read(*select));
  return MakePage(std::move(items), total, page);
}

// Runs `SELECT COUNT(*) FROM <from_where>` and
// `SELECT * FROM <from_where> ORDER BY <order> LIMIT ? OFFSET ?`, binding the
// filter parameters with `bind` (positions 1..n) in both.
template <typename T>
absl::StatusOr<Page<T>> ListPage(SQLite::Database& db,
                                 const std::string& from_where,
                                 const std::string& order, int params,
                                 const Binder& bind,
                                 T (*read)(SQLite::Statement&),
                                 const PageRequest& page) {
  return ListPageWith<T>(
      [&db](const std::string& sql) {
        return std::make_unique<SQLite::Statement>(db, sql);
      },
      from_where, order, params, bind, read, page);
}

// ListPage with the read connection's cached statements (a list served
// often; `from_where` and `order` must be fixed texts).
template <typename T>
absl::StatusOr<Page<T>> ListPage(StatementCache& statements,
                                 const std::string& from_where,
                                 const std::string& order, int params,
                                 const Binder& bind,
                                 T (*read)(SQLite::Statement&),
                                 const PageRequest& page) {
  return ListPageWith<T>(
      [&statements](const std::string& sql) { return statements.Get(sql); },
      from_where, order, params, bind, read, page);
}

// Runs a create under an idempotency key inside the current write
// transaction: a repeat with the same body returns `load(first_id)`, another
// body is IDEMPOTENCY_CONFLICT; otherwise `create()` runs and its id is
// recorded.
template <typename T>
absl::StatusOr<T> Idempotent(
    SQLite::Database& db, const std::string& account_id,
    const IdempotencyKey& idem,
    const std::function<absl::StatusOr<T>(const std::string&)>& load,
    const std::function<absl::StatusOr<T>()>& create,
    const std::function<std::string(const T&)>& id_of);

// Loads one row of `table` by id, whatever account owns it; NOT_FOUND
// "<what> <id> not found" when there is none. For the accounts table and
// documented admin paths only.
template <typename T>
absl::StatusOr<T> LoadUnscoped(SQLite::Database& db, const char* table,
                               const char* what, const std::string& id,
                               T (*read)(SQLite::Statement&)) {
  SQLite::Statement st(db,
                       std::string("SELECT * FROM ") + table + " WHERE id=?");
  st.bind(1, id);
  if (!st.executeStep()) return errors::NotFound(what, id);
  return read(st);
}

// Loads one row of `table` by id if it belongs to `account_id`; NOT_FOUND
// otherwise, and always for an empty account id.
template <typename T>
absl::StatusOr<T> LoadById(SQLite::Database& db, const char* table,
                           const char* what, const std::string& account_id,
                           const std::string& id,
                           T (*read)(SQLite::Statement&)) {
  if (account_id.empty()) return errors::NotFound(what, id);
  SQLite::Statement st(db, std::string("SELECT * FROM ") + table +
                               " WHERE id=? AND account_id=?");
  st.bind(1, id);
  st.bind(2, account_id);
  if (!st.executeStep()) return errors::NotFound(what, id);
  return read(st);
}

// The campaign `id` of `account_id`, or NOT_FOUND (also while it is being
// deleted).
// A visible campaign by id (1) and account (2).
inline constexpr char kSelectCampaign[] =
    "SELECT * FROM campaigns WHERE id=? AND account_id=? AND deleting=0";

inline absl::StatusOr<Campaign> LoadCampaign(SQLite::Database& db,
                                             const std::string& account_id,
                                             const std::string& id) {
  if (account_id.empty()) return errors::NotFound("campaign", id);
  SQLite::Statement st(db, kSelectCampaign);
  st.bind(1, id);
  st.bind(2, account_id);
  if (!st.executeStep()) return errors::NotFound("campaign", id);
  return ReadCampaign(st);
}

// Whether the campaign's audience is contacts (a list, tags or contact
// ids) rather than imported recipients.
inline bool HasContactAudience(const Campaign& c) {
  return !c.contact_list_id.empty() || !c.tags.empty() ||
         !c.contact_ids.empty();
}

// What `c` sends (EffectiveContent): its body, subject and HTML body, or
// its template's (NOT_FOUND when the template is gone).
inline absl::StatusOr<MessageContent> MessageOf(SQLite::Database& db,
                                                const Campaign& c) {
  if (c.template_id.empty()) return EffectiveContent(c, nullptr);
  SQLite::Statement t(db, "SELECT * FROM templates WHERE id=?");
  t.bind(1, c.template_id);
  if (!t.executeStep()) return errors::NotFound("template", c.template_id);
  const Template tmpl = ReadTemplate(t);
  return EffectiveContent(c, &tmpl);
}

// A `recipients` row (SELECT *), its id encoded with `codec`; campaign_id is
// left empty (the row holds the campaign's seq).
Recipient ReadRecipient(SQLite::Statement& st, const RecipientIdCodec& codec);

// Inserts the recipients of campaign `c`'s contact audience inside the
// current write (see Store::MaterializeAudience) and adds them to the
// counters of the row and of `c.stats`.
absl::StatusOr<MaterializeResult> Materialize(SQLite::Database& db,
                                              Campaign& c);

// Applies a lifecycle change to the stored campaign `c` inside the current
// write (see Store::TransitionCampaign; kCancel's skipping is not done here).
absl::Status Transition(SQLite::Database& db, Campaign& c,
                        const LifecycleChange& change);

// An import floor for "no import running": every row is below it.
inline constexpr int64_t kNoFloor = std::numeric_limits<int64_t>::max();

// Staged rows deleted per write when an import is rolled back: small enough
// that one chunk never holds the writer for long.
inline constexpr int kAbortChunkRows = 5000;

// The highest recipient seq ever given (AUTOINCREMENT: every later row gets
// a larger one), 0 before the first.
inline int64_t LastRecipientSeq(SQLite::Database& db) {
  SQLite::Statement last(
      db, "SELECT seq FROM sqlite_sequence WHERE name='recipients'");
  return last.executeStep() ? last.getColumn(0).getInt64() : 0;
}

// The counter of `stats` that counts recipients in status `s`; null for
// kUnspecified.
inline int64_t* Counter(CampaignStats& stats, RecipientStatus s) {
  switch (s) {
    case RecipientStatus::kQueued:
      return &stats.queued;
    case RecipientStatus::kSent:
      return &stats.sent;
    case RecipientStatus::kDelivered:
      return &stats.delivered;
    case RecipientStatus::kRead:
      return &stats.read;
    case RecipientStatus::kFailed:
      return &stats.failed;
    case RecipientStatus::kSkipped:
      return &stats.skipped;
    case RecipientStatus::kUnspecified:
      break;
  }
  return nullptr;
}

// Stores every column of `c` (insert: a new row with the next campaign
// seq; else the row `c.id`).
void WriteCampaign(SQLite::Database& db, const Campaign& c, bool insert);

// Deletes the row `id` of `account_id` from `table`, or NOT_FOUND.
absl::Status DeleteRow(SQLite::Database& db, const char* table,
                       const char* what, const std::string& account_id,
                       const std::string& id);

// FAILED_PRECONDITION / VALIDATION_ERROR (field "id") when a campaign of
// `account_id` that is not final (completed, cancelled, failed) has
// `column` = `id`; `what` names the referenced object in the message.
absl::Status CheckUnusedByLiveCampaign(SQLite::Database& db,
                                       const std::string& account_id,
                                       const char* column,
                                       const std::string& id,
                                       absl::string_view what);

// --- Money (store_billing.cc) ----------------------------------------------

// The account's price table.
std::vector<Price> LoadPrices(SQLite::Database& db,
                              const std::string& account_id);

// The prices a started campaign reserved with; `billed` false when it sends
// for free. `units` is every recipient's billable units, or -1 when each
// recipient has its own (its message has placeholders).
struct CampaignBilling {
  bool billed = false;
  int64_t units = -1;
  ChannelPrices prices;
};
CampaignBilling LoadBilling(SQLite::Database& db, int64_t campaign_seq);

// What one recipient costs under `billing`: its unit price by `country`
// times its units (the row's own `units` when billing.units is -1).
absl::StatusOr<int64_t> RowCost(const CampaignBilling& billing,
                                absl::string_view country,
                                std::optional<int64_t> units);

// Writes one ledger row and applies it to the account, in the current
// write: a credit adds to the balance; a reservation moves balance to
// reserved (INSUFFICIENT_CREDITS when the balance is short, unless
// `allow_negative`); a debit spends reserved; a release moves reserved back
// to the balance. `amount` > 0.
absl::StatusOr<Transaction> AppendLedger(SQLite::Database& db,
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

// Fills in, for the queued rows of `c`, what their cost needs: the
// destination country of phone numbers, and billable units when the message
// has placeholders (recounted for every queued row when the message changed
// since they were counted). Per-row work only for rows added since the last
// call (the campaign's units_through) or after a change of message.
absl::StatusOr<UnitsPlan> PrepareUnits(SQLite::Database& db, Campaign& c);
// The same for at most `max_rows` rows, in seq order; true when no row is
// left to do. `*plan` is set either way.
absl::StatusOr<bool> PrepareUnits(SQLite::Database& db, Campaign& c,
                                  UnitsPlan* plan, int64_t max_rows);

// Rows of a campaign whose cost to sum: in `status`, seq in [from, to), and
// with one of `error_codes` (all when empty).
struct RowSet {
  RecipientStatus status = RecipientStatus::kQueued;
  int64_t from_seq = 0;
  int64_t to_seq = kNoFloor;
  std::vector<std::string> error_codes;
};

// The cost of `rows` per destination country (one grouped query).
absl::StatusOr<std::vector<CostLineValue>> CostLines(
    SQLite::Database& db, const Campaign& c, const UnitsPlan& plan,
    const ChannelPrices& prices, const RowSet& rows);
absl::StatusOr<int64_t> SumLines(const std::vector<CostLineValue>& lines);

// At kStart: fixes the campaign's prices (the account's, now) and reserves
// the cost of its queued recipients, or INSUFFICIENT_CREDITS. Free when the
// account has no price for the channel.
absl::Status ReserveForStart(SQLite::Database& db, Campaign& c);

// Reserves, at the campaign's prices, the cost of more rows: an import
// committed into a started campaign (queued rows from `rows.from_seq`) or
// failed rows re-queued. INSUFFICIENT_CREDITS when the balance is short.
absl::Status ReserveRows(SQLite::Database& db, Campaign& c, const RowSet& rows,
                         absl::string_view what);

// Reserves `amount` for `c` (nothing when <= 0).
absl::Status Reserve(SQLite::Database& db, Campaign& c, int64_t amount,
                     const std::string& what);

// What a batch of outcomes settles: the cost of `sent` messages is debited,
// that of `released` recipients (failed before sending, skipped) released.
struct Settlement {
  int64_t debit = 0;
  int64_t sent = 0;
  int64_t release = 0;
  int64_t released = 0;
  std::string why;
};
absl::Status Settle(SQLite::Database& db, Campaign& c, const Settlement& s);

// Releases all the campaign still holds (it reached a state where nothing
// more is sent); `why` ends the ledger row's description.
absl::Status ReleaseAll(SQLite::Database& db, Campaign& c,
                        absl::string_view why);

}  // namespace campaigns::storage::internal

#endif  // CAMPAIGND_STORAGE_SQLITE_STORE_INTERNAL_H_
