#include "storage/postgres/suppression_store.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/domain/errors.h"
#include "server/domain/types.h"
#include "storage/postgres/rows.h"

namespace campaigns::storage::postgres {
namespace {

// The stored spelling of a suppression's channel: '' for every channel.
std::string ChannelColumn(Channel c) {
  return c == Channel::kUnspecified ? std::string()
                                    : std::string(ChannelName(c));
}

std::string ReasonColumn(SuppressionReason r) {
  return r == SuppressionReason::kUnspecified
             ? std::string()
             : std::string(SuppressionReasonName(r));
}

// An existing entry keeps its created_at; reason and note are replaced.
constexpr const char* kOnConflictReplace =
    " ON CONFLICT (account_id, address, channel) DO UPDATE SET "
    "reason = excluded.reason, note = excluded.note";

}  // namespace

void SuppressionStore::AddSuppression(Suppression s, Done<Suppression> done) {
  db_->Write<Suppression>(
      [s = std::move(s)](Connection& c) -> absl::StatusOr<Suppression> {
        // One statement, so an entry another instance inserts meanwhile is
        // updated rather than met as a unique violation.
        absl::StatusOr<Rows> rows = c.Query(
            absl::StrCat("INSERT INTO suppressions(account_id, channel, "
                         "address, reason, note, created_at) VALUES ($1, $2, "
                         "$3, $4, $5, $6)",
                         kOnConflictReplace, " RETURNING *"),
            {s.account_id, ChannelColumn(s.channel), s.address,
             std::string(SuppressionReasonName(s.reason)), s.note,
             Micros(s.created_at)});
        if (!rows.ok()) return rows.status();
        if (rows->size() != 1) {
          return absl::InternalError("insert returned no row");
        }
        return ReadSuppression(*rows, 0);
      },
      std::move(done));
}

void SuppressionStore::AddProviderSuppression(
    const std::vector<std::string>& providers, const std::string& to,
    Suppression s, Done<int> done) {
  db_->Write<int>(
      [providers, to, s = std::move(s)](Connection& c) -> absl::StatusOr<int> {
        if (providers.empty()) return 0;
        std::vector<std::optional<std::string>> params = {
            ChannelColumn(s.channel),
            s.address,
            std::string(SuppressionReasonName(s.reason)),
            s.note,
            Micros(s.created_at),
            to};
        std::string in;
        for (const std::string& p : providers) {
          params.push_back(p);
          absl::StrAppend(&in, in.empty() ? "$" : ", $", params.size());
        }
        // One statement for every account, rows taken in account order so
        // two instances adding the same opt-out cannot deadlock.
        absl::StatusOr<Rows> rows = c.Query(
            absl::StrCat(
                "INSERT INTO suppressions(account_id, channel, address, "
                "reason, note, created_at) SELECT account_id, $1::text, "
                "$2::text, $3::text, $4::text, $5::bigint FROM (SELECT "
                "DISTINCT account_id FROM senders WHERE provider IN (",
                in,
                ") AND channel = $1::text AND ($6::text = '' OR "
                "sender_id = $6::text)) AS matched ORDER BY account_id",
                kOnConflictReplace),
            params);
        if (!rows.ok()) return rows.status();
        return static_cast<int>(rows->affected());
      },
      std::move(done));
}

void SuppressionStore::RemoveSuppression(const std::string& account_id,
                                         const std::string& address,
                                         Channel channel, StatusDone done) {
  db_->WriteRaw(
      [account_id, address, channel](Connection& c) -> absl::Status {
        absl::StatusOr<Rows> deleted = c.Query(
            "DELETE FROM suppressions WHERE account_id = $1 AND address = $2 "
            "AND channel = $3",
            {account_id, address, ChannelColumn(channel)});
        if (!deleted.ok()) return deleted.status();
        if (deleted->affected() == 0) {
          return errors::NotFound(
              "suppression",
              absl::StrCat(address, " (",
                           channel == Channel::kUnspecified
                               ? absl::string_view("every channel")
                               : ChannelName(channel),
                           ")"));
        }
        return absl::OkStatus();
      },
      std::move(done));
}

absl::StatusOr<Page<Suppression>> SuppressionStore::ListSuppressions(
    const std::string& account_id, const SuppressionFilter& filter,
    const PageRequest& page) {
  return db_->Read<Page<Suppression>>([&](Connection& c) {
    // COLLATE "C": ties in time in byte order, as SQLite orders them,
    // whatever the database's locale.
    return ListPage<Suppression>(
        c,
        "suppressions WHERE account_id = $1 AND ($2 = '' OR channel = $2) "
        "AND ($3 = '' OR reason = $3)",
        "created_at DESC, address COLLATE \"C\", channel COLLATE \"C\"",
        {account_id, ChannelColumn(filter.channel),
         ReasonColumn(filter.reason)},
        &ReadSuppression, page);
  });
}

absl::StatusOr<std::vector<Suppression>> SuppressionStore::FindSuppressions(
    const std::string& account_id, const std::string& address,
    Channel channel) {
  return db_->Read<std::vector<Suppression>>(
      [&](Connection& c) -> absl::StatusOr<std::vector<Suppression>> {
        absl::StatusOr<Rows> rows = c.Query(
            "SELECT * FROM suppressions WHERE account_id = $1 AND "
            "address = $2 AND ($3 = '' OR channel = $3 OR channel = '') "
            "ORDER BY channel COLLATE \"C\"",
            {account_id, address, ChannelColumn(channel)});
        if (!rows.ok()) return rows.status();
        std::vector<Suppression> out;
        for (int i = 0; i < rows->size(); ++i) {
          out.push_back(ReadSuppression(*rows, i));
        }
        return out;
      });
}

}  // namespace campaigns::storage::postgres
