// Store: the do-not-contact list.
#include <SQLiteCpp/Statement.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "server/domain/errors.h"
#include "storage/sqlite/rows.h"
#include "storage/sqlite/store.h"
#include "storage/sqlite/store_internal.h"

namespace campaigns::storage {
namespace {

// The stored spelling of a suppression's channel: '' for every channel.
std::string ChannelColumn(Channel c) {
  return c == Channel::kUnspecified ? std::string()
                                    : std::string(ChannelName(c));
}

}  // namespace

void Store::AddSuppression(Suppression s, Callback<Suppression> done) {
  db_->Write<Suppression>(
      [s = std::move(s)](SQLite::Database& db) -> absl::StatusOr<Suppression> {
        SQLite::Statement st(
            db,
            "INSERT INTO suppressions(account_id, channel, address, reason, "
            "note, created_at) VALUES(?,?,?,?,?,?) "
            "ON CONFLICT(account_id, address, channel) DO UPDATE SET "
            "reason=excluded.reason, note=excluded.note "
            "RETURNING *");
        st.bind(1, s.account_id);
        st.bind(2, ChannelColumn(s.channel));
        st.bind(3, s.address);
        st.bind(4, std::string(SuppressionReasonName(s.reason)));
        st.bind(5, s.note);
        st.bind(6, static_cast<int64_t>(ToMicros(s.created_at)));
        if (!st.executeStep())
          return absl::InternalError("insert returned no row");
        return ReadSuppression(st);
      },
      std::move(done));
}

void Store::AddProviderSuppression(const std::vector<std::string>& providers,
                                   const std::string& to, Suppression s,
                                   Callback<int> done) {
  db_->Write<int>(
      [providers = nlohmann::json(providers).dump(), to,
       s = std::move(s)](SQLite::Database& db) -> absl::StatusOr<int> {
        SQLite::Statement st(
            db,
            "INSERT INTO suppressions(account_id, channel, address, reason, "
            "note, created_at) SELECT DISTINCT account_id, ?1, ?2, ?3, ?4, ?5 "
            "FROM senders WHERE provider IN (SELECT value FROM json_each(?6)) "
            "AND channel=?1 AND "
            "(?7='' OR sender_id=?7) "
            "ON CONFLICT(account_id, address, channel) DO UPDATE SET "
            "reason=excluded.reason, note=excluded.note");
        st.bind(1, ChannelColumn(s.channel));
        st.bind(2, s.address);
        st.bind(3, std::string(SuppressionReasonName(s.reason)));
        st.bind(4, s.note);
        st.bind(5, static_cast<int64_t>(ToMicros(s.created_at)));
        st.bind(6, providers);
        st.bind(7, to);
        return st.exec();
      },
      std::move(done));
}

void Store::RemoveSuppression(const std::string& account_id,
                              const std::string& address, Channel channel,
                              StatusCallback done) {
  db_->WriteRaw(
      [account_id, address, channel](SQLite::Database& db) -> absl::Status {
        SQLite::Statement st(db,
                             "DELETE FROM suppressions WHERE account_id=? AND "
                             "address=? AND channel=?");
        st.bind(1, account_id);
        st.bind(2, address);
        st.bind(3, ChannelColumn(channel));
        if (st.exec() == 0) {
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

absl::StatusOr<Page<Suppression>> Store::ListSuppressions(
    const std::string& account_id, const SuppressionFilter& filter,
    const PageRequest& page) {
  return db_->Read([&](SQLite::Database& db) {
    return internal::ListPage<Suppression>(
        db,
        "suppressions WHERE account_id=?1 AND (?2='' OR channel=?2) AND "
        "(?3='' OR reason=?3)",
        "created_at DESC, address, channel", 3,
        [&](SQLite::Statement& st) {
          st.bind(1, account_id);
          st.bind(2, ChannelColumn(filter.channel));
          st.bind(3, filter.reason == SuppressionReason::kUnspecified
                         ? std::string()
                         : std::string(SuppressionReasonName(filter.reason)));
        },
        &ReadSuppression, page);
  });
}

absl::StatusOr<std::vector<Suppression>> Store::FindSuppressions(
    const std::string& account_id, const std::string& address,
    Channel channel) {
  return db_->Read(
      [&](SQLite::Database& db) -> absl::StatusOr<std::vector<Suppression>> {
        SQLite::Statement st(
            db,
            "SELECT * FROM suppressions WHERE account_id=?1 AND address=?2 "
            "AND (?3='' OR channel=?3 OR channel='') ORDER BY channel");
        st.bind(1, account_id);
        st.bind(2, address);
        st.bind(3, ChannelColumn(channel));
        std::vector<Suppression> out;
        while (st.executeStep()) out.push_back(ReadSuppression(st));
        return out;
      });
}

}  // namespace campaigns::storage
