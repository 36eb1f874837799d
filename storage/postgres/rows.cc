#include "storage/postgres/rows.h"

#include "absl/strings/numbers.h"
#include "server/domain/types.h"
#include "storage/json.h"

namespace campaigns::storage::postgres {

std::string Micros(absl::Time t) { return absl::StrCat(absl::ToUnixMicros(t)); }

int64_t IntAt(const Rows& rows, int row, const char* column) {
  int64_t v = 0;
  (void)absl::SimpleAtoi(rows.Text(row, column), &v);
  return v;
}

absl::Time TimeAt(const Rows& rows, int row, const char* column) {
  return absl::FromUnixMicros(IntAt(rows, row, column));
}

std::optional<absl::Time> OptionalTimeAt(const Rows& rows, int row,
                                         const char* column) {
  if (!rows.Get(row, column).has_value()) return std::nullopt;
  return TimeAt(rows, row, column);
}

bool BoolAt(const Rows& rows, int row, const char* column) {
  return rows.Text(row, column) == "t";
}

Account ReadAccount(const Rows& rows, int row) {
  Account a;
  a.id = rows.Text(row, "id");
  a.name = rows.Text(row, "name");
  a.admin = BoolAt(rows, row, "admin");
  a.currency = rows.Text(row, "currency");
  a.credits_balance = IntAt(rows, row, "credits_balance");
  a.credits_reserved = IntAt(rows, row, "credits_reserved");
  a.created_at = TimeAt(rows, row, "created_at");
  a.updated_at = TimeAt(rows, row, "updated_at");
  return a;
}

ApiKey ReadApiKey(const Rows& rows, int row) {
  ApiKey k;
  k.id = rows.Text(row, "id");
  k.account_id = rows.Text(row, "account_id");
  k.name = rows.Text(row, "name");
  k.prefix = rows.Text(row, "prefix");
  k.key_hash = rows.Text(row, "key_hash");
  k.created_at = TimeAt(rows, row, "created_at");
  k.revoked_at = OptionalTimeAt(rows, row, "revoked_at");
  return k;
}

namespace {

template <typename E>
E EnumAt(const Rows& rows, int row, const char* column,
         bool (*parse)(absl::string_view, E*)) {
  E e{};
  parse(rows.Text(row, column), &e);
  return e;
}

}  // namespace

Template ReadTemplate(const Rows& rows, int row) {
  Template t;
  t.id = rows.Text(row, "id");
  t.account_id = rows.Text(row, "account_id");
  t.name = rows.Text(row, "name");
  t.language = rows.Text(row, "language");
  t.channel = EnumAt(rows, row, "channel", &ParseChannel);
  t.body = rows.Text(row, "body");
  t.subject = rows.Text(row, "subject");
  t.html_body = rows.Text(row, "html_body");
  t.components = ComponentsFromJson(rows.Text(row, "components"));
  t.status = EnumAt(rows, row, "status", &ParseTemplateStatus);
  t.rejection_reason = rows.Text(row, "rejection_reason");
  t.created_at = TimeAt(rows, row, "created_at");
  t.updated_at = TimeAt(rows, row, "updated_at");
  return t;
}

Sender ReadSender(const Rows& rows, int row) {
  Sender s;
  s.id = rows.Text(row, "id");
  s.account_id = rows.Text(row, "account_id");
  s.sender_id = rows.Text(row, "sender_id");
  s.channel = EnumAt(rows, row, "channel", &ParseChannel);
  s.tier = EnumAt(rows, row, "tier", &ParseSenderTier);
  s.verified = BoolAt(rows, row, "verified");
  s.provider = rows.Text(row, "provider");
  s.created_at = TimeAt(rows, row, "created_at");
  s.updated_at = TimeAt(rows, row, "updated_at");
  return s;
}

Suppression ReadSuppression(const Rows& rows, int row) {
  Suppression s;
  s.account_id = rows.Text(row, "account_id");
  s.address = rows.Text(row, "address");
  const std::string channel = rows.Text(row, "channel");
  if (!channel.empty()) ParseChannel(channel, &s.channel);
  s.reason = EnumAt(rows, row, "reason", &ParseSuppressionReason);
  s.note = rows.Text(row, "note");
  s.created_at = TimeAt(rows, row, "created_at");
  return s;
}

absl::Status CheckUnusedByLiveCampaign(Connection& c,
                                       const std::string& account_id,
                                       const char* column,
                                       const std::string& id,
                                       absl::string_view what) {
  absl::StatusOr<Rows> rows =
      c.Query(absl::StrCat(
                  "SELECT id FROM campaigns WHERE account_id = $1 AND ", column,
                  " = $2 AND NOT deleting AND status NOT IN "
                  "('completed', 'cancelled', 'failed') LIMIT 1"),
              {account_id, id});
  if (!rows.ok()) return rows.status();
  if (rows->size() > 0) {
    return errors::Validation(
        "id", absl::StrCat(what, " ", id, " is used by campaign ",
                           rows->Text(0, 0), ", which is not finished"));
  }
  return absl::OkStatus();
}

}  // namespace campaigns::storage::postgres
