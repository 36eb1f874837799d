// Conversions between SQLite rows and domain values, private to storage/.
#include "storage/sqlite/rows.h"

#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "server/domain/import_rows.h"

namespace campaigns::storage {

SQLite::Column Col(SQLite::Statement& st, const char* name) {
  thread_local absl::flat_hash_map<const char*, int> last_found;
  auto [it, added] = last_found.try_emplace(name, -1);
  const int i = it->second;
  if (i >= 0 && i < st.getColumnCount()) {
    const char* actual = st.getColumnName(i);
    if (actual != nullptr && std::strcmp(actual, name) == 0) {
      return st.getColumn(i);
    }
  }
  it->second = st.getColumnIndex(name);  // throws for an unknown name
  return st.getColumn(it->second);
}

int64_t ToMicros(absl::Time t) { return absl::ToUnixMicros(t); }
absl::Time FromMicros(int64_t us) { return absl::FromUnixMicros(us); }

void BindOptional(SQLite::Statement& st, int index,
                  const std::optional<absl::Time>& t) {
  if (t) {
    st.bind(index, static_cast<int64_t>(ToMicros(*t)));
  } else {
    st.bind(index);
  }
}

void BindOptional(SQLite::Statement& st, int index,
                  const std::optional<absl::Duration>& d) {
  if (d) {
    st.bind(index, static_cast<int64_t>(absl::ToInt64Microseconds(*d)));
  } else {
    st.bind(index);
  }
}

std::optional<absl::Time> OptionalTime(const SQLite::Column& c) {
  if (c.isNull()) return std::nullopt;
  return FromMicros(c.getInt64());
}

std::optional<absl::Duration> OptionalDuration(const SQLite::Column& c) {
  if (c.isNull()) return std::nullopt;
  return absl::Microseconds(c.getInt64());
}

namespace {

std::string Text(SQLite::Statement& st, const char* name) {
  return Col(st, name).getString();
}
int64_t Int(SQLite::Statement& st, const char* name) {
  return Col(st, name).getInt64();
}
absl::Time Time(SQLite::Statement& st, const char* name) {
  return FromMicros(Col(st, name).getInt64());
}
template <typename E>
E Enum(SQLite::Statement& st, const char* name,
       bool (*parse)(absl::string_view, E*)) {
  E e{};
  parse(Col(st, name).getString(), &e);
  return e;
}

}  // namespace

Account ReadAccount(SQLite::Statement& st) {
  Account a;
  a.id = Text(st, "id");
  a.name = Text(st, "name");
  a.admin = Int(st, "admin") != 0;
  a.currency = Text(st, "currency");
  a.credits_balance = Int(st, "credits_balance");
  a.credits_reserved = Int(st, "credits_reserved");
  a.created_at = Time(st, "created_at");
  a.updated_at = Time(st, "updated_at");
  return a;
}

ApiKey ReadApiKey(SQLite::Statement& st) {
  ApiKey k;
  k.id = Text(st, "id");
  k.account_id = Text(st, "account_id");
  k.name = Text(st, "name");
  k.prefix = Text(st, "prefix");
  k.key_hash = Text(st, "key_hash");
  k.created_at = Time(st, "created_at");
  k.revoked_at = OptionalTime(Col(st, "revoked_at"));
  return k;
}

Template ReadTemplate(SQLite::Statement& st) {
  Template t;
  t.id = Text(st, "id");
  t.account_id = Text(st, "account_id");
  t.name = Text(st, "name");
  t.language = Text(st, "language");
  t.channel = Enum(st, "channel", &ParseChannel);
  t.body = Text(st, "body");
  t.subject = Text(st, "subject");
  t.html_body = Text(st, "html_body");
  t.components = ComponentsFromJson(Text(st, "components"));
  t.status = Enum(st, "status", &ParseTemplateStatus);
  t.rejection_reason = Text(st, "rejection_reason");
  t.created_at = Time(st, "created_at");
  t.updated_at = Time(st, "updated_at");
  return t;
}

Sender ReadSender(SQLite::Statement& st) {
  Sender s;
  s.id = Text(st, "id");
  s.account_id = Text(st, "account_id");
  s.sender_id = Text(st, "sender_id");
  s.channel = Enum(st, "channel", &ParseChannel);
  s.tier = Enum(st, "tier", &ParseSenderTier);
  s.verified = Int(st, "verified") != 0;
  s.provider = Text(st, "provider");
  s.created_at = Time(st, "created_at");
  s.updated_at = Time(st, "updated_at");
  return s;
}

Campaign ReadCampaign(SQLite::Statement& st) {
  Campaign c;
  c.id = Text(st, "id");
  c.account_id = Text(st, "account_id");
  c.name = Text(st, "name");
  c.channel = Enum(st, "channel", &ParseChannel);
  c.sender_id = Text(st, "sender_id");
  c.sender_ref = Text(st, "sender_ref");
  c.body = Text(st, "body");
  c.subject = Text(st, "subject");
  c.html_body = Text(st, "html_body");
  c.template_id = Text(st, "template_id");
  c.template_name = Text(st, "template_name");
  c.template_lang = Text(st, "template_lang");
  c.variable_mapping = MapFromJson(Text(st, "variable_mapping"));
  c.template_components = ComponentsFromJson(Text(st, "template_components"));
  c.recipient_variables = NestedMapFromJson(Text(st, "recipient_variables"));
  c.contact_list_id = Text(st, "contact_list_id");
  c.tags = ListFromJson(Text(st, "tags"));
  c.contact_ids = ListFromJson(Text(st, "contact_ids"));
  c.status = Enum(st, "status", &ParseCampaignStatus);
  c.pause_reason = Text(st, "pause_reason");
  c.failure_reason = Text(st, "failure_reason");
  c.stats.total = Int(st, "total");
  c.stats.queued = Int(st, "queued");
  c.stats.sent = Int(st, "sent");
  c.stats.delivered = Int(st, "delivered");
  c.stats.read = Int(st, "read");
  c.stats.failed = Int(st, "failed");
  c.stats.skipped = Int(st, "skipped");
  c.batch_size = static_cast<int32_t>(Int(st, "batch_size"));
  c.batch_delay = absl::Microseconds(Int(st, "batch_delay_us"));
  c.rate_limit_per_second =
      static_cast<int32_t>(Int(st, "rate_limit_per_second"));
  c.validity_period = OptionalDuration(Col(st, "validity_period_us"));
  c.max_lateness = OptionalDuration(Col(st, "max_lateness_us"));
  c.schedule_at = OptionalTime(Col(st, "schedule_at"));
  c.started_at = OptionalTime(Col(st, "started_at"));
  c.sent_at = OptionalTime(Col(st, "sent_at"));
  c.completed_at = OptionalTime(Col(st, "completed_at"));
  c.cancelled_at = OptionalTime(Col(st, "cancelled_at"));
  if (!Col(st, "import_floor").isNull()) {
    c.import_floor = Col(st, "import_floor").getInt64();
  }
  c.seq = Col(st, "seq").getInt64();
  c.credits_reserved = Int(st, "credits_reserved");
  c.credits_debited = Int(st, "credits_debited");
  c.created_at = Time(st, "created_at");
  c.updated_at = Time(st, "updated_at");
  return c;
}

Suppression ReadSuppression(SQLite::Statement& st) {
  Suppression s;
  s.account_id = Text(st, "account_id");
  s.address = Text(st, "address");
  const std::string channel = Text(st, "channel");
  if (!channel.empty()) ParseChannel(channel, &s.channel);
  s.reason = Enum(st, "reason", &ParseSuppressionReason);
  s.note = Text(st, "note");
  s.created_at = Time(st, "created_at");
  return s;
}

Contact ReadContact(SQLite::Statement& st) {
  Contact c;
  c.id = Text(st, "id");
  c.account_id = Text(st, "account_id");
  c.channel = Enum(st, "channel", &ParseChannel);
  c.address = Text(st, "address");
  c.attributes = MapFromJson(Text(st, "attributes"));
  c.tags = ListFromJson(Text(st, "tags"));
  c.created_at = Time(st, "created_at");
  c.updated_at = Time(st, "updated_at");
  return c;
}

ContactList ReadContactList(SQLite::Statement& st) {
  ContactList l;
  l.id = Text(st, "id");
  l.account_id = Text(st, "account_id");
  l.name = Text(st, "name");
  l.description = Text(st, "description");
  l.contact_count = Int(st, "contact_count");
  l.created_at = Time(st, "created_at");
  l.updated_at = Time(st, "updated_at");
  return l;
}

}  // namespace campaigns::storage
