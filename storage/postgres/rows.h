// Helpers of the PostgreSQL stores: times as the schema keeps them, domain
// values from rows, and idempotent creates. Internal to storage/postgres.
#ifndef CAMPAIGND_STORAGE_POSTGRES_ROWS_H_
#define CAMPAIGND_STORAGE_POSTGRES_ROWS_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/domain/errors.h"
#include "server/domain/model.h"
#include "server/domain/mutex.h"
#include "server/domain/recipient_ids.h"
#include "server/domain/repository.h"
#include "server/domain/rules.h"
#include "storage/postgres/connection.h"
#include "storage/postgres/database.h"

namespace campaigns::storage::postgres {

// Times are BIGINT microseconds since the Unix epoch, as text parameters.
std::string Micros(absl::Time t);
absl::Time TimeAt(const Rows& rows, int row, const char* column);
std::optional<absl::Time> OptionalTimeAt(const Rows& rows, int row,
                                         const char* column);
int64_t IntAt(const Rows& rows, int row, const char* column);
bool BoolAt(const Rows& rows, int row, const char* column);

// Row readers for `SELECT * FROM <table>` results.
Account ReadAccount(const Rows& rows, int row);
ApiKey ReadApiKey(const Rows& rows, int row);
Template ReadTemplate(const Rows& rows, int row);
Sender ReadSender(const Rows& rows, int row);
// channel '' (every channel) reads as Channel::kUnspecified.
Suppression ReadSuppression(const Rows& rows, int row);
Campaign ReadCampaign(const Rows& rows, int row);

// A `recipients` row (SELECT *), its id encoded with `codec`.
Recipient ReadRecipient(const Rows& rows, int row,
                        const RecipientIdCodec& codec);

// An import floor for "no import running": every recipient is below it.
inline constexpr int64_t kNoFloor = std::numeric_limits<int64_t>::max();

// The campaign `id` of `account_id`, or NOT_FOUND (also while it is being
// deleted, and always for an empty account id). With `lock`, its row is
// locked until the transaction ends: what a read-modify-write of the row
// needs, so that another instance's write of it waits rather than being
// lost. FOR NO KEY UPDATE: it excludes every other writer of the row, but
// not the FOR KEY SHARE an insert of one of its recipients takes (which
// FOR UPDATE would wait for, and deadlock with).
absl::StatusOr<Campaign> LoadCampaign(Connection& c,
                                      const std::string& account_id,
                                      const std::string& id, bool lock);

// Stores every column of `campaign` that its owner edits and its lifecycle
// moves (not its money, import floor, units or deleting flag): insert, a new
// row (its seq, given by the database, is set in `campaign`); else the row
// `campaign.id`, which the caller has locked (LoadCampaign with lock).
absl::Status WriteCampaign(Connection& c, Campaign& campaign, bool insert);

// Whether the campaign's audience is contacts (a list, tags or contact
// ids) rather than imported recipients.
inline bool HasContactAudience(const Campaign& c) {
  return !c.contact_list_id.empty() || !c.tags.empty() ||
         !c.contact_ids.empty();
}

// What `campaign` sends (EffectiveContent): its body, subject and HTML body,
// or its template's (NOT_FOUND when the template is gone).
absl::StatusOr<MessageContent> MessageOf(Connection& c,
                                         const Campaign& campaign);

// Loads the row `id` of `table` if it belongs to `account_id` (NOT_FOUND
// "<what> <id> not found" otherwise, and always for an empty account id),
// or whatever its account with `account_id` nullopt (admin paths only).
template <typename T>
absl::StatusOr<T> LoadRow(Connection& c, const char* table, const char* what,
                          const std::optional<std::string>& account_id,
                          const std::string& id, T (*read)(const Rows&, int)) {
  if (account_id.has_value() && account_id->empty()) {
    return errors::NotFound(what, id);
  }
  absl::StatusOr<Rows> rows =
      account_id.has_value()
          ? c.Query(absl::StrCat("SELECT * FROM ", table,
                                 " WHERE id = $1 AND account_id = $2"),
                    {id, *account_id})
          : c.Query(absl::StrCat("SELECT * FROM ", table, " WHERE id = $1"),
                    {id});
  if (!rows.ok()) return rows.status();
  if (rows->size() == 0) return errors::NotFound(what, id);
  return read(*rows, 0);
}

// `SELECT count(*) FROM <from_where>` and `SELECT * FROM <from_where> ORDER
// BY <order> LIMIT .. OFFSET ..` with `params` as $1..$n, as a page.
template <typename T>
absl::StatusOr<Page<T>> ListPage(Connection& c, const std::string& from_where,
                                 const std::string& order,
                                 std::vector<std::optional<std::string>> params,
                                 T (*read)(const Rows&, int),
                                 const PageRequest& page) {
  absl::StatusOr<Rows> total =
      c.Query(absl::StrCat("SELECT count(*) FROM ", from_where), params);
  if (!total.ok()) return total.status();
  const size_t n = params.size();
  params.push_back(absl::StrCat(page.limit));
  params.push_back(absl::StrCat(page.offset()));
  absl::StatusOr<Rows> rows =
      c.Query(absl::StrCat("SELECT * FROM ", from_where, " ORDER BY ", order,
                           " LIMIT $", n + 1, " OFFSET $", n + 2),
              params);
  if (!rows.ok()) return rows.status();
  std::vector<T> items;
  for (int i = 0; i < rows->size(); ++i) items.push_back(read(*rows, i));
  return MakePage(std::move(items), IntAt(*total, 0, "count"), page);
}

// FAILED_PRECONDITION / VALIDATION_ERROR naming the campaign when `column`
// = `id` is used by a campaign of the account that is not final.
absl::Status CheckUnusedByLiveCampaign(Connection& c,
                                       const std::string& account_id,
                                       const char* column,
                                       const std::string& id,
                                       absl::string_view what);

// Runs a create under an idempotency key inside the current transaction:
// a repeat with the same body returns `load(first_id)`, another body is
// IDEMPOTENCY_CONFLICT; otherwise `create()` runs and its id is recorded.
// Holds a transaction advisory lock on the key, so concurrent repeats (from
// any instance) wait for the first and then load its result.
template <typename T>
absl::StatusOr<T> Idempotent(
    Connection& c, const std::string& account_id, const IdempotencyKey& idem,
    const std::function<absl::StatusOr<T>(const std::string&)>& load,
    const std::function<absl::StatusOr<T>()>& create,
    const std::function<std::string(const T&)>& id_of) {
  if (idem.request_id.empty()) return create();
  if (absl::StatusOr<Rows> locked = c.Query(
          "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
          {absl::StrCat(account_id, "\n", idem.method, "\n", idem.request_id)});
      !locked.ok()) {
    return locked.status();
  }
  absl::StatusOr<Rows> found = c.Query(
      "SELECT body_hash, resource_id FROM idempotency_keys "
      "WHERE account_id = $1 AND method = $2 AND request_id = $3",
      {account_id, idem.method, idem.request_id});
  if (!found.ok()) return found.status();
  if (found->size() > 0) {
    if (found->Text(0, 0) != idem.body_hash) {
      return errors::IdempotencyConflict(idem.request_id);
    }
    return load(found->Text(0, 1));
  }
  absl::StatusOr<T> created = create();
  if (!created.ok()) return created;
  absl::StatusOr<Rows> recorded = c.Query(
      "INSERT INTO idempotency_keys(account_id, method, request_id, "
      "body_hash, resource_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
      {account_id, idem.method, idem.request_id, idem.body_hash,
       id_of(*created), Micros(NowMicros())});
  if (!recorded.ok()) return recorded.status();
  return created;
}

// PostgreSQL array literals, for `$n::text[]` and `$n::bigint[]`
// parameters (unnest, = ANY). Text values are quoted; a NUL or broken
// UTF-8, which PostgreSQL's text refuses (failing the whole statement), is
// mended first (SanitizeUtf8), so text from outside (a provider's error or
// message id) is stored, and looked up, mended alike. nullopt is NULL.
std::string TextArray(const std::vector<std::string>& values);
std::string IntArray(const std::vector<int64_t>& values);
std::string IntArray(const std::vector<std::optional<int64_t>>& values);

// The database's recipient id codec (meta.recipient_id_key), read on a
// read connection the first time it can be (a failure, e.g. the server
// unreachable, is not remembered). Thread-safe.
class RecipientIdCodecCache {
 public:
  absl::StatusOr<const RecipientIdCodec*> Get(Database* db);

 private:
  Mutex mu_;
  std::unique_ptr<const RecipientIdCodec> codec_ ABSL_GUARDED_BY(mu_);
};

}  // namespace campaigns::storage::postgres

#endif  // CAMPAIGND_STORAGE_POSTGRES_ROWS_H_
