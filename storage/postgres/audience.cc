#include "storage/postgres/audience.h"

#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/domain/errors.h"
#include "server/domain/rules.h"
#include "server/domain/types.h"
#include "storage/json.h"
#include "storage/postgres/rows.h"

namespace campaigns::storage::postgres {
namespace {

// What MaterializeAudience needs of a campaign.
struct AudienceOf {
  int64_t seq = 0;
  Channel channel = Channel::kUnspecified;
  CampaignStatus status = CampaignStatus::kUnspecified;
  std::string contact_list_id;
  std::vector<std::string> tags;
  std::vector<std::string> contact_ids;
  std::string recipient_variables;  // JSON: contact id -> variables
  bool importing = false;
};

}  // namespace

absl::Status LockList(Connection& c, const std::string& account_id,
                      const std::string& id, const char* mode) {
  if (account_id.empty()) return errors::NotFound("contact list", id);
  absl::StatusOr<Rows> rows =
      c.Query(absl::StrCat("SELECT 1 FROM contact_lists WHERE id = $1 AND "
                           "account_id = $2 ",
                           mode),
              {id, account_id});
  if (!rows.ok()) return rows.status();
  if (rows->size() == 0) return errors::NotFound("contact list", id);
  return absl::OkStatus();
}

absl::StatusOr<MaterializeResult> MaterializeAudienceIn(
    Connection& c, const std::string& account_id,
    const std::string& campaign_id) {
  if (account_id.empty()) return errors::NotFound("campaign", campaign_id);
  // Locked: materialisations of one campaign (from any instance) run one
  // after the other, each seeing the recipients the last one added. FOR NO
  // KEY UPDATE, as LoadCampaign locks it: a start that locked the row so
  // and then materialises would otherwise wait for the FOR KEY SHARE of
  // another transaction's recipient insert (and deadlock with it, should
  // that one then update the row).
  absl::StatusOr<Rows> rows = c.Query(
      "SELECT seq, channel, status, contact_list_id, tags, contact_ids, "
      "recipient_variables, import_floor IS NOT NULL AS importing FROM "
      "campaigns WHERE id = $1 AND account_id = $2 AND NOT deleting "
      "FOR NO KEY UPDATE",
      {campaign_id, account_id});
  if (!rows.ok()) return rows.status();
  if (rows->size() == 0) return errors::NotFound("campaign", campaign_id);
  AudienceOf a;
  a.seq = IntAt(*rows, 0, "seq");
  ParseChannel(rows->Text(0, "channel"), &a.channel);
  ParseCampaignStatus(rows->Text(0, "status"), &a.status);
  a.contact_list_id = rows->Text(0, "contact_list_id");
  a.tags = ListFromJson(rows->Text(0, "tags"));
  a.contact_ids = ListFromJson(rows->Text(0, "contact_ids"));
  a.recipient_variables = rows->Text(0, "recipient_variables");
  a.importing = BoolAt(*rows, 0, "importing");

  if (IsFinal(a.status)) {
    return errors::IllegalTransition(absl::StrCat(
        "campaign ", campaign_id, " is ", CampaignStatusName(a.status),
        "; its audience can no longer change"));
  }
  std::vector<std::optional<std::string>> params = {
      account_id, std::string(ChannelName(a.channel))};
  auto param = [&params](std::string value) {
    params.push_back(std::move(value));
    return absl::StrCat("$", params.size());
  };
  std::vector<std::string> audience;
  if (!a.contact_list_id.empty()) {
    RETURN_IF_ERROR(
        LockList(c, account_id, a.contact_list_id, "FOR KEY SHARE"));
    audience.push_back(absl::StrCat(
        "c.seq IN (SELECT contact_seq FROM contact_list_members WHERE "
        "list_id = ",
        param(a.contact_list_id), ")"));
  }
  if (!a.tags.empty()) {
    audience.push_back(absl::StrCat(
        "c.seq IN (SELECT contact_seq FROM contact_tags WHERE account_id = $1 "
        "AND tag IN (SELECT jsonb_array_elements_text(",
        param(ListToJson(a.tags)), "::jsonb)))"));
  }
  if (!a.contact_ids.empty()) {
    audience.push_back(
        absl::StrCat("c.id IN (SELECT jsonb_array_elements_text(",
                     param(ListToJson(a.contact_ids)), "::jsonb))"));
  }
  if (audience.empty()) {
    return errors::Validation("audience",
                              absl::StrCat("campaign ", campaign_id,
                                           " has no contact audience (contact "
                                           "list, tags or contact ids)"));
  }
  if (a.importing) {
    return errors::Validation(
        "audience",
        absl::StrCat("an import into campaign ", campaign_id, " is running"));
  }
  const std::string campaign_seq = param(absl::StrCat(a.seq));
  const std::string now_micros = Micros(NowMicros());
  const std::string now = param(now_micros);
  // A contact's recipient_variables override its attributes of the same
  // name (a shallow merge, as SQLite's json_patch of string maps).
  const bool overrides = NestedMapFromJson(a.recipient_variables).size() > 0;
  const std::string variables =
      overrides ? absl::StrCat("COALESCE((e.attributes::jsonb || (",
                               param(a.recipient_variables),
                               "::jsonb -> e.id))::text, e.attributes)")
                : "e.attributes";
  // One statement: what it counts is what it inserts from. The new rows'
  // addresses are distinct (contacts are unique by address on a channel);
  // they join the campaign's address set in address order.
  absl::StatusOr<Rows> done = c.Query(
      absl::StrCat(
          "WITH matched AS (SELECT c.seq, c.id, c.address, c.attributes FROM "
          "contacts c WHERE c.account_id = $1 AND c.channel = $2 AND (",
          absl::StrJoin(audience, " OR "),
          ")), eligible AS (SELECT * FROM matched m WHERE NOT EXISTS (SELECT "
          "1 FROM suppressions s WHERE s.account_id = $1 AND s.address = "
          "m.address AND s.channel IN ($2, ''))), added AS (INSERT INTO "
          "recipients(campaign_seq, contact_id, address, variables, status, "
          "created_at, updated_at) SELECT ",
          campaign_seq, "::bigint, e.id, e.address, ", variables,
          ", 'queued', ", now, "::bigint, ", now,
          "::bigint FROM eligible e WHERE NOT EXISTS (SELECT 1 FROM "
          "recipient_addresses a WHERE a.campaign_seq = ",
          campaign_seq,
          "::bigint AND a.address = e.address) ORDER BY e.seq RETURNING seq, "
          "address), indexed AS (INSERT INTO recipient_addresses("
          "campaign_seq, address, seq) SELECT ",
          campaign_seq,
          "::bigint, address, seq FROM added ORDER BY address COLLATE \"C\" "
          "RETURNING 1) SELECT (SELECT count(*) FROM matched) AS matched, "
          "(SELECT count(*) FROM eligible) AS eligible, (SELECT count(*) FROM "
          "indexed) AS inserted"),
      params);
  if (!done.ok()) return done.status();
  MaterializeResult result;
  result.matched = IntAt(*done, 0, "matched");
  result.suppressed = result.matched - IntAt(*done, 0, "eligible");
  result.inserted = IntAt(*done, 0, "inserted");
  if (result.inserted > 0) {
    RETURN_IF_ERROR(c.Query("UPDATE campaigns SET total = total + $1, "
                            "queued = queued + $1, updated_at = $2 WHERE "
                            "seq = $3",
                            {absl::StrCat(result.inserted), now_micros,
                             absl::StrCat(a.seq)})
                        .status());
  }
  return result;
}

}  // namespace campaigns::storage::postgres
