#include "storage/postgres/rows.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "server/domain/types.h"
#include "server/domain/utf8.h"
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

namespace {

std::optional<absl::Duration> OptionalDurationAt(const Rows& rows, int row,
                                                 const char* column) {
  if (!rows.Get(row, column).has_value()) return std::nullopt;
  return absl::Microseconds(IntAt(rows, row, column));
}

std::optional<std::string> OptionalMicros(std::optional<absl::Time> t) {
  if (!t.has_value()) return std::nullopt;
  return Micros(*t);
}

std::optional<std::string> OptionalMicros(std::optional<absl::Duration> d) {
  if (!d.has_value()) return std::nullopt;
  return absl::StrCat(absl::ToInt64Microseconds(*d));
}

}  // namespace

Recipient ReadRecipient(const Rows& rows, int row,
                        const RecipientIdCodec& codec) {
  Recipient r;
  r.seq = IntAt(rows, row, "seq");
  r.id = codec.Encode(r.seq);
  r.contact_id = rows.Text(row, "contact_id");
  r.address = rows.Text(row, "address");
  r.variables = MapFromJson(rows.Text(row, "variables"));
  ParseRecipientStatus(rows.Text(row, "status"), &r.status);
  r.skip_reason = rows.Text(row, "skip_reason");
  r.provider_message_id = rows.Text(row, "provider_message_id");
  r.provider = rows.Text(row, "provider");
  r.error_code = rows.Text(row, "error_code");
  r.error_desc = rows.Text(row, "error_desc");
  r.attempts = static_cast<int32_t>(IntAt(rows, row, "attempts"));
  r.retries = static_cast<int32_t>(IntAt(rows, row, "retries"));
  r.in_doubt = BoolAt(rows, row, "handed");
  r.sent_at = OptionalTimeAt(rows, row, "sent_at");
  r.delivered_at = OptionalTimeAt(rows, row, "delivered_at");
  r.read_at = OptionalTimeAt(rows, row, "read_at");
  r.created_at = TimeAt(rows, row, "created_at");
  r.updated_at = TimeAt(rows, row, "updated_at");
  return r;
}

Campaign ReadCampaign(const Rows& rows, int row) {
  Campaign c;
  c.id = rows.Text(row, "id");
  c.account_id = rows.Text(row, "account_id");
  c.name = rows.Text(row, "name");
  c.channel = EnumAt(rows, row, "channel", &ParseChannel);
  c.sender_id = rows.Text(row, "sender_id");
  c.sender_ref = rows.Text(row, "sender_ref");
  c.body = rows.Text(row, "body");
  c.subject = rows.Text(row, "subject");
  c.html_body = rows.Text(row, "html_body");
  c.template_id = rows.Text(row, "template_id");
  c.template_name = rows.Text(row, "template_name");
  c.template_lang = rows.Text(row, "template_lang");
  c.variable_mapping = MapFromJson(rows.Text(row, "variable_mapping"));
  c.template_components =
      ComponentsFromJson(rows.Text(row, "template_components"));
  c.recipient_variables =
      NestedMapFromJson(rows.Text(row, "recipient_variables"));
  c.contact_list_id = rows.Text(row, "contact_list_id");
  c.tags = ListFromJson(rows.Text(row, "tags"));
  c.contact_ids = ListFromJson(rows.Text(row, "contact_ids"));
  c.status = EnumAt(rows, row, "status", &ParseCampaignStatus);
  c.pause_reason = rows.Text(row, "pause_reason");
  c.failure_reason = rows.Text(row, "failure_reason");
  c.stats.total = IntAt(rows, row, "total");
  c.stats.queued = IntAt(rows, row, "queued");
  c.stats.sent = IntAt(rows, row, "sent");
  c.stats.delivered = IntAt(rows, row, "delivered");
  c.stats.read = IntAt(rows, row, "read");
  c.stats.failed = IntAt(rows, row, "failed");
  c.stats.skipped = IntAt(rows, row, "skipped");
  c.batch_size = static_cast<int32_t>(IntAt(rows, row, "batch_size"));
  c.batch_delay = absl::Microseconds(IntAt(rows, row, "batch_delay_us"));
  c.rate_limit_per_second =
      static_cast<int32_t>(IntAt(rows, row, "rate_limit_per_second"));
  c.validity_period = OptionalDurationAt(rows, row, "validity_period_us");
  c.max_lateness = OptionalDurationAt(rows, row, "max_lateness_us");
  c.schedule_at = OptionalTimeAt(rows, row, "schedule_at");
  c.started_at = OptionalTimeAt(rows, row, "started_at");
  c.sent_at = OptionalTimeAt(rows, row, "sent_at");
  c.completed_at = OptionalTimeAt(rows, row, "completed_at");
  c.cancelled_at = OptionalTimeAt(rows, row, "cancelled_at");
  if (rows.Get(row, "import_floor").has_value()) {
    c.import_floor = IntAt(rows, row, "import_floor");
  }
  c.seq = IntAt(rows, row, "seq");
  if (rows.Column("version") >= 0) c.version = IntAt(rows, row, "version");
  c.credits_reserved = IntAt(rows, row, "credits_reserved");
  c.credits_debited = IntAt(rows, row, "credits_debited");
  c.created_at = TimeAt(rows, row, "created_at");
  c.updated_at = TimeAt(rows, row, "updated_at");
  return c;
}

absl::StatusOr<Campaign> LoadCampaign(Connection& c,
                                      const std::string& account_id,
                                      const std::string& id, bool lock) {
  if (account_id.empty()) return errors::NotFound("campaign", id);
  absl::StatusOr<Rows> rows =
      c.Query(absl::StrCat("SELECT * FROM campaigns WHERE id = $1 AND "
                           "account_id = $2 AND NOT deleting",
                           lock ? " FOR NO KEY UPDATE" : ""),
              {id, account_id});
  if (!rows.ok()) return rows.status();
  if (rows->size() == 0) return errors::NotFound("campaign", id);
  return ReadCampaign(*rows, 0);
}

absl::Status WriteCampaign(Connection& c, Campaign& campaign, bool insert) {
  // $1..$37 the columns both statements write; then created_at, account_id
  // and id (the key of an update).
  static constexpr const char* kColumns[] = {
      "name",
      "channel",
      "sender_id",
      "sender_ref",
      "body",
      "subject",
      "html_body",
      "template_id",
      "template_name",
      "template_lang",
      "variable_mapping",
      "template_components",
      "recipient_variables",
      "contact_list_id",
      "tags",
      "contact_ids",
      "status",
      "pause_reason",
      "failure_reason",
      "total",
      "queued",
      "sent",
      "delivered",
      "read",
      "failed",
      "skipped",
      "batch_size",
      "batch_delay_us",
      "rate_limit_per_second",
      "validity_period_us",
      "max_lateness_us",
      "schedule_at",
      "started_at",
      "sent_at",
      "completed_at",
      "cancelled_at",
      "updated_at",
  };
  const Campaign& x = campaign;
  std::vector<std::optional<std::string>> params = {
      x.name,
      std::string(ChannelName(x.channel)),
      x.sender_id,
      x.sender_ref,
      x.body,
      x.subject,
      x.html_body,
      x.template_id,
      x.template_name,
      x.template_lang,
      MapToJson(x.variable_mapping),
      ComponentsToJson(x.template_components),
      NestedMapToJson(x.recipient_variables),
      x.contact_list_id,
      ListToJson(x.tags),
      ListToJson(x.contact_ids),
      std::string(CampaignStatusName(x.status)),
      // The engine's words, which may quote a provider's.
      SanitizeUtf8(x.pause_reason),
      SanitizeUtf8(x.failure_reason),
      absl::StrCat(x.stats.total),
      absl::StrCat(x.stats.queued),
      absl::StrCat(x.stats.sent),
      absl::StrCat(x.stats.delivered),
      absl::StrCat(x.stats.read),
      absl::StrCat(x.stats.failed),
      absl::StrCat(x.stats.skipped),
      absl::StrCat(x.batch_size),
      absl::StrCat(absl::ToInt64Microseconds(x.batch_delay)),
      absl::StrCat(x.rate_limit_per_second),
      OptionalMicros(x.validity_period),
      OptionalMicros(x.max_lateness),
      OptionalMicros(x.schedule_at),
      OptionalMicros(x.started_at),
      OptionalMicros(x.sent_at),
      OptionalMicros(x.completed_at),
      OptionalMicros(x.cancelled_at),
      Micros(x.updated_at),
      Micros(x.created_at),
      x.account_id,
      x.id,
  };
  constexpr int kSet = sizeof(kColumns) / sizeof(kColumns[0]);
  std::string sql;
  if (insert) {
    std::string names;
    std::string values;
    for (int i = 0; i < kSet; ++i) {
      absl::StrAppend(&names, kColumns[i], ", ");
      absl::StrAppend(&values, "$", i + 1, ", ");
    }
    sql = absl::StrCat("INSERT INTO campaigns(", names,
                       "created_at, account_id, id) VALUES (", values, "$",
                       kSet + 1, ", $", kSet + 2, ", $", kSet + 3,
                       ") RETURNING seq");
  } else {
    std::string sets;
    for (int i = 0; i < kSet; ++i) {
      absl::StrAppend(&sets, i == 0 ? "" : ", ", kColumns[i], " = $", i + 1);
    }
    sql = absl::StrCat("UPDATE campaigns SET ", sets, " WHERE created_at = $",
                       kSet + 1, " AND account_id = $", kSet + 2, " AND id = $",
                       kSet + 3);
  }
  absl::StatusOr<Rows> rows = c.Query(sql, params);
  if (!rows.ok()) return rows.status();
  if (insert) {
    if (rows->size() != 1) {
      return absl::InternalError("a campaign insert returned no seq");
    }
    campaign.seq = IntAt(*rows, 0, "seq");
  } else if (rows->affected() != 1) {
    // The key columns were changed, or the row is gone: nothing stored.
    return absl::InternalError(
        absl::StrCat("campaign ", campaign.id, " was not stored (",
                     rows->affected(), " rows matched its key)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<MessageContent> MessageOf(Connection& c,
                                         const Campaign& campaign) {
  if (campaign.template_id.empty()) return EffectiveContent(campaign, nullptr);
  absl::StatusOr<Rows> rows =
      c.Query("SELECT * FROM templates WHERE id = $1", {campaign.template_id});
  if (!rows.ok()) return rows.status();
  if (rows->size() == 0) {
    return errors::NotFound("template", campaign.template_id);
  }
  const Template t = ReadTemplate(*rows, 0);
  return EffectiveContent(campaign, &t);
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

std::string TextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('"');
    for (char ch : SanitizeUtf8(values[i])) {
      if (ch == '"' || ch == '\\') out.push_back('\\');
      out.push_back(ch);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

std::string IntArray(const std::vector<int64_t>& values) {
  return absl::StrCat("{", absl::StrJoin(values, ","), "}");
}

std::string IntArray(const std::vector<std::optional<int64_t>>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    if (values[i].has_value()) {
      absl::StrAppend(&out, *values[i]);
    } else {
      out.append("NULL");
    }
  }
  out.push_back('}');
  return out;
}

absl::StatusOr<const RecipientIdCodec*> RecipientIdCodecCache::Get(
    Database* db) {
  MutexLock lock(&mu_);
  if (codec_ != nullptr) return codec_.get();
  absl::StatusOr<RecipientIdCodec> codec = db->Read<RecipientIdCodec>(
      [](Connection& c) -> absl::StatusOr<RecipientIdCodec> {
        absl::StatusOr<Rows> rows =
            c.Query("SELECT value FROM meta WHERE key = 'recipient_id_key'");
        if (!rows.ok()) return rows.status();
        if (rows->size() == 0) {
          return absl::InternalError("recipient id key missing");
        }
        return RecipientIdCodec::FromHexKey(rows->Text(0, 0));
      });
  if (!codec.ok()) return codec.status();
  codec_ = std::make_unique<const RecipientIdCodec>(*std::move(codec));
  return codec_.get();
}

}  // namespace campaigns::storage::postgres
