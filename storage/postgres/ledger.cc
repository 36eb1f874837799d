#include "storage/postgres/ledger.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/domain/address.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
#include "server/domain/render.h"
#include "server/domain/types.h"
#include "storage/json.h"

namespace campaigns::storage::postgres {
namespace {

constexpr absl::string_view LedgerTypeName(Transaction::Type t) {
  switch (t) {
    case Transaction::Type::kCredit:
      return "credit";
    case Transaction::Type::kReservation:
      return "reservation";
    case Transaction::Type::kDebit:
      return "debit";
    case Transaction::Type::kRelease:
      return "release";
  }
  return "";
}

absl::Status StoreBilling(Connection& c, int64_t campaign_seq,
                          const std::string& text) {
  return c
      .Query("UPDATE campaigns SET billing = $1 WHERE seq = $2",
             {text, absl::StrCat(campaign_seq)})
      .status();
}

absl::Status AddToCampaign(Connection& c, Campaign& campaign, int64_t reserved,
                           int64_t debited) {
  RETURN_IF_ERROR(
      c.Query("UPDATE campaigns SET credits_reserved = credits_reserved + $1, "
              "credits_debited = credits_debited + $2 WHERE seq = $3",
              {absl::StrCat(reserved), absl::StrCat(debited),
               absl::StrCat(campaign.seq)})
          .status());
  campaign.credits_reserved += reserved;
  campaign.credits_debited += debited;
  return absl::OkStatus();
}

// What counting a campaign's units involves, and how far it got.
struct UnitsState {
  MessageTemplate message;
  UnitsPlan plan;
  bool per_row = false;  // units differ by recipient: the message has
                         // placeholders
  bool phone = false;    // recipients have a destination country
  std::string key;       // the message the units are counted for
  std::string stored_key;
  int64_t stored_through = 0;
};

absl::StatusOr<UnitsState> LoadUnitsState(Connection& c,
                                          const Campaign& campaign) {
  ASSIGN_OR_RETURN(const MessageContent content, MessageOf(c, campaign));
  UnitsState s;
  s.message = MessageTemplate::Parse(content, campaign.template_components,
                                     campaign.variable_mapping);
  s.per_row = !s.message.Variables().empty();
  if (!s.per_row) s.plan.units = BillableUnits(campaign.channel, s.message, {});
  s.phone = IsPhoneChannel(campaign.channel);
  if (s.per_row) {
    s.key = absl::StrCat(content.text, "\x1f",
                         MapToJson(campaign.variable_mapping));
    if (!campaign.template_components.empty()) {
      absl::StrAppend(&s.key, "\x1f",
                      ComponentsToJson(campaign.template_components));
    }
    if (!content.subject.empty() || !content.html.empty()) {
      // Their placeholders decide who is skipped too. The HTML body goes in
      // by its hash: the key is stored with every count.
      absl::StrAppend(&s.key, "\x1f", content.subject, "\x1f",
                      Sha256Hex(content.html));
    }
  }
  absl::StatusOr<Rows> rows =
      c.Query("SELECT units_key, units_through FROM campaigns WHERE seq = $1",
              {absl::StrCat(campaign.seq)});
  if (!rows.ok()) return rows.status();
  if (rows->size() == 0) return errors::NotFound("campaign", campaign.id);
  s.stored_key = rows->Text(0, "units_key");
  s.stored_through = IntAt(*rows, 0, "units_through");
  return s;
}

// The last queued recipient of the campaign (0: none); one index seek.
absl::StatusOr<int64_t> LastQueuedSeq(Connection& c, int64_t campaign_seq) {
  absl::StatusOr<Rows> rows = c.Query(
      "SELECT COALESCE(max(seq), 0) AS last FROM recipients WHERE "
      "campaign_seq = $1 AND status = 'queued'",
      {absl::StrCat(campaign_seq)});
  if (!rows.ok()) return rows.status();
  return IntAt(*rows, 0, "last");
}

}  // namespace

Transaction ReadTransaction(const Rows& rows, int row) {
  Transaction t;
  t.seq = IntAt(rows, row, "seq");
  t.account_id = rows.Text(row, "account_id");
  const std::string type = rows.Text(row, "type");
  for (Transaction::Type candidate :
       {Transaction::Type::kCredit, Transaction::Type::kReservation,
        Transaction::Type::kDebit, Transaction::Type::kRelease}) {
    if (type == LedgerTypeName(candidate)) t.type = candidate;
  }
  t.amount = IntAt(rows, row, "amount");
  t.campaign_id = rows.Text(row, "campaign_id");
  t.description = rows.Text(row, "description");
  t.balance_after = IntAt(rows, row, "balance_after");
  t.reserved_after = IntAt(rows, row, "reserved_after");
  t.created_at = TimeAt(rows, row, "created_at");
  return t;
}

absl::StatusOr<std::vector<Price>> LoadPrices(Connection& c,
                                              const std::string& account_id) {
  // COLLATE "C": in byte order, as SQLite sorts them.
  absl::StatusOr<Rows> rows = c.Query(
      "SELECT channel, country, amount FROM prices WHERE account_id = $1 "
      "ORDER BY channel COLLATE \"C\", country COLLATE \"C\"",
      {account_id});
  if (!rows.ok()) return rows.status();
  std::vector<Price> out;
  for (int i = 0; i < rows->size(); ++i) {
    Price p;
    const std::string channel = rows->Text(i, "channel");
    if (!channel.empty()) ParseChannel(channel, &p.channel);
    p.country = rows->Text(i, "country");
    p.amount = IntAt(*rows, i, "amount");
    out.push_back(std::move(p));
  }
  return out;
}

absl::StatusOr<CampaignBilling> LoadBilling(Connection& c,
                                            int64_t campaign_seq) {
  absl::StatusOr<Rows> rows =
      c.Query("SELECT billing FROM campaigns WHERE seq = $1",
              {absl::StrCat(campaign_seq)});
  if (!rows.ok()) return rows.status();
  CampaignBilling b;
  if (rows->size() == 0) return b;
  const std::string text = rows->Text(0, "billing");
  if (text.empty()) return b;
  std::pair<std::string, std::string> parts =
      absl::StrSplit(text, absl::MaxSplits('|', 1));
  b.billed = true;
  if (!absl::SimpleAtoi(parts.first, &b.units)) b.units = -1;
  b.prices = ChannelPrices::Parse(parts.second);
  return b;
}

absl::StatusOr<Transaction> AppendLedger(Connection& c,
                                         const std::string& account_id,
                                         Transaction::Type type, int64_t amount,
                                         const std::string& campaign_id,
                                         const std::string& description,
                                         bool allow_negative) {
  if (amount <= 0) return absl::InternalError("ledger amount must be > 0");
  // Locked: another instance moving this account's money waits until this
  // transaction ends, then reads what it wrote. FOR NO KEY UPDATE, not FOR
  // UPDATE: a transaction that inserted a row referring to the account (a
  // campaign, a ledger row) holds FOR KEY SHARE on it, which FOR UPDATE
  // would wait for; two such transactions then deadlock.
  absl::StatusOr<Rows> got = c.Query(
      "SELECT credits_balance, credits_reserved FROM accounts WHERE id = $1 "
      "FOR NO KEY UPDATE",
      {account_id});
  if (!got.ok()) return got.status();
  if (got->size() == 0) return errors::NotFound("account", account_id);
  int64_t balance = IntAt(*got, 0, "credits_balance");
  int64_t reserved = IntAt(*got, 0, "credits_reserved");
  bool overflow = false;
  switch (type) {
    case Transaction::Type::kCredit:
      overflow = __builtin_add_overflow(balance, amount, &balance);
      break;
    case Transaction::Type::kReservation:
      if (balance < amount && !allow_negative) {
        return errors::InsufficientCredits(absl::StrCat(
            "insufficient credits: ", description, " needs ", amount,
            " micro-credits and the balance is ", balance));
      }
      balance -= amount;
      overflow = __builtin_add_overflow(reserved, amount, &reserved);
      break;
    case Transaction::Type::kDebit:
      reserved -= amount;
      break;
    case Transaction::Type::kRelease:
      reserved -= amount;
      balance += amount;
      break;
  }
  if (overflow) {
    return absl::OutOfRangeError(
        "the balance would not fit in 64 bits of micro-credits");
  }
  const std::string now = Micros(NowMicros());
  RETURN_IF_ERROR(
      c.Query("UPDATE accounts SET credits_balance = $1, "
              "credits_reserved = $2, updated_at = $3 WHERE id = $4",
              {absl::StrCat(balance), absl::StrCat(reserved), now, account_id})
          .status());
  absl::StatusOr<Rows> row = c.Query(
      "INSERT INTO transactions(account_id, type, amount, campaign_id, "
      "description, balance_after, reserved_after, created_at) VALUES ($1, "
      "$2, $3, $4, $5, $6, $7, $8) RETURNING *",
      {account_id, std::string(LedgerTypeName(type)), absl::StrCat(amount),
       campaign_id, description, absl::StrCat(balance), absl::StrCat(reserved),
       now});
  if (!row.ok()) return row.status();
  if (row->size() != 1) return absl::InternalError("insert returned no row");
  return ReadTransaction(*row, 0);
}

absl::StatusOr<bool> PrepareUnits(Connection& c, const Campaign& campaign,
                                  UnitsPlan* plan, int64_t max_rows) {
  ASSIGN_OR_RETURN(UnitsState state, LoadUnitsState(c, campaign));
  *plan = state.plan;
  if (!state.per_row && !state.phone) return true;  // nothing per row to know
  // Queued rows up to units_through have what they need for the message
  // units_key names; later rows (imports, materialised audiences) are
  // looked at once, in seq order. Units counted for another message are
  // stale: every queued row again.
  const int64_t through =
      state.stored_key == state.key ? state.stored_through : 0;
  absl::StatusOr<Rows> todo = c.Query(
      "SELECT seq, address, variables FROM recipients WHERE campaign_seq = "
      "$1 AND status = 'queued' AND seq > $2 AND ($4 OR ($3 AND country IS "
      "NULL)) ORDER BY seq LIMIT $5",
      {absl::StrCat(campaign.seq), absl::StrCat(through),
       state.phone ? "true" : "false", state.per_row ? "true" : "false",
       absl::StrCat(max_rows)});
  if (!todo.ok()) return todo.status();
  // What each row gets, as JSON arrays for one UPDATE of them all.
  std::vector<std::string> seqs;
  std::vector<std::string> countries;
  std::vector<std::string> units;
  int64_t last_seq = through;
  for (int i = 0; i < todo->size(); ++i) {
    last_seq = IntAt(*todo, i, "seq");
    seqs.push_back(absl::StrCat(last_seq));
    countries.push_back(state.phone
                            ? RegionOfPhoneNumber(todo->Text(i, "address"))
                            : std::string());
    units.push_back(state.per_row
                        ? absl::StrCat(BillableUnits(
                              campaign.channel, state.message,
                              MapFromJson(todo->Text(i, "variables"))))
                        : "null");
  }
  if (!seqs.empty()) {
    RETURN_IF_ERROR(
        c.Query(
             "UPDATE recipients r SET country = COALESCE(r.country, "
             "u.country), units = u.units::bigint FROM ROWS FROM ("
             "jsonb_array_elements_text($1::jsonb), "
             "jsonb_array_elements_text($2::jsonb), "
             "jsonb_array_elements_text($3::jsonb)) AS u(seq, country, units) "
             "WHERE r.seq = u.seq::bigint",
             {absl::StrCat("[", absl::StrJoin(seqs, ","), "]"),
              ListToJson(countries),
              absl::StrCat("[", absl::StrJoin(units, ","), "]")})
            .status());
  }
  const bool finished = static_cast<int64_t>(seqs.size()) < max_rows;
  int64_t now_through = last_seq;
  if (finished) {
    // Every queued row there is now is done (an import's staged rows too:
    // should it be rolled back they are gone, and rows added later come
    // after).
    ASSIGN_OR_RETURN(const int64_t last, LastQueuedSeq(c, campaign.seq));
    now_through = std::max(now_through, last);
  }
  if (now_through != state.stored_through || state.key != state.stored_key) {
    RETURN_IF_ERROR(c.Query("UPDATE campaigns SET units_key = $1, "
                            "units_through = $2 WHERE seq = $3",
                            {state.key, absl::StrCat(now_through),
                             absl::StrCat(campaign.seq)})
                        .status());
  }
  return finished;
}

absl::StatusOr<UnitsPlan> PrepareUnits(Connection& c,
                                       const Campaign& campaign) {
  // In chunks, so that a million rows never sit in this process at once;
  // each chunk records how far it got, so the next goes on from there.
  constexpr int64_t kChunkRows = 10000;
  UnitsPlan plan;
  for (;;) {
    ASSIGN_OR_RETURN(const bool finished,
                     PrepareUnits(c, campaign, &plan, kChunkRows));
    if (finished) return plan;
  }
}

absl::StatusOr<std::optional<UnitsPlan>> CountedUnits(
    Connection& c, const Campaign& campaign) {
  ASSIGN_OR_RETURN(const UnitsState state, LoadUnitsState(c, campaign));
  if (state.per_row || state.phone) {
    if (state.stored_key != state.key) return std::nullopt;
    ASSIGN_OR_RETURN(const int64_t last, LastQueuedSeq(c, campaign.seq));
    if (state.stored_through < last) return std::nullopt;
  }
  return state.plan;
}

absl::StatusOr<std::vector<CostLineValue>> CostLines(
    Connection& c, const Campaign& campaign, const UnitsPlan& plan,
    const ChannelPrices& prices, const RowSet& rows) {
  const int64_t default_units = plan.units < 0 ? 1 : plan.units;
  // One line per country ('' for none), in byte order as SQLite's std::map.
  absl::StatusOr<Rows> grouped = c.Query(
      "SELECT country, count(*) AS recipients, COALESCE(sum(units), 0) AS "
      "units FROM (SELECT COALESCE(country, '') AS country, COALESCE(units, "
      "$6::bigint) AS units FROM recipients WHERE campaign_seq = $1 AND "
      "status = $2 AND seq >= $3 AND seq < $4 AND ($5::jsonb = '[]'::jsonb "
      "OR error_code IN (SELECT jsonb_array_elements_text($5::jsonb)))) AS r "
      "GROUP BY country ORDER BY country COLLATE \"C\"",
      {absl::StrCat(campaign.seq),
       std::string(RecipientStatusName(rows.status)),
       absl::StrCat(rows.from_seq), absl::StrCat(rows.to_seq),
       ListToJson(rows.error_codes), absl::StrCat(default_units)});
  if (!grouped.ok()) return grouped.status();
  std::vector<CostLineValue> out;
  for (int i = 0; i < grouped->size(); ++i) {
    CostLineValue line;
    line.channel = campaign.channel;
    line.country = grouped->Text(i, "country");
    line.recipients = IntAt(*grouped, i, "recipients");
    int64_t units = 0;
    if (!absl::SimpleAtoi(grouped->Text(i, "units"), &units)) {
      return absl::OutOfRangeError(
          "the units of a campaign do not fit in 64 bits");
    }
    line.units = units;
    line.unit_price = prices.UnitPrice(line.country);
    ASSIGN_OR_RETURN(line.amount, MulAdd(line.units, line.unit_price, 0));
    out.push_back(std::move(line));
  }
  return out;
}

absl::StatusOr<int64_t> SumLines(const std::vector<CostLineValue>& lines) {
  int64_t total = 0;
  for (const CostLineValue& l : lines) {
    ASSIGN_OR_RETURN(total, MulAdd(l.amount, 1, total));
  }
  return total;
}

absl::Status ReserveForStart(Connection& c, Campaign& campaign) {
  ASSIGN_OR_RETURN(const std::vector<Price> table,
                   LoadPrices(c, campaign.account_id));
  const ChannelPrices prices = ChannelPrices::For(table, campaign.channel);
  if (prices.free()) return StoreBilling(c, campaign.seq, "");
  ASSIGN_OR_RETURN(UnitsPlan plan, PrepareUnits(c, campaign));
  RETURN_IF_ERROR(StoreBilling(
      c, campaign.seq, absl::StrCat(plan.units, "|", prices.Serialize())));
  RowSet rows;
  rows.to_seq = campaign.import_floor.value_or(kNoFloor);
  ASSIGN_OR_RETURN(std::vector<CostLineValue> lines,
                   CostLines(c, campaign, plan, prices, rows));
  ASSIGN_OR_RETURN(int64_t total, SumLines(lines));
  return Reserve(c, campaign, total,
                 absl::StrCat("campaign ", campaign.id, " (",
                              campaign.stats.queued, " recipients)"));
}

absl::Status Reserve(Connection& c, Campaign& campaign, int64_t amount,
                     const std::string& what) {
  if (amount <= 0) return absl::OkStatus();
  RETURN_IF_ERROR(AppendLedger(c, campaign.account_id,
                               Transaction::Type::kReservation, amount,
                               campaign.id, what, /*allow_negative=*/false)
                      .status());
  return AddToCampaign(c, campaign, amount, 0);
}

absl::Status ReleaseAll(Connection& c, Campaign& campaign,
                        absl::string_view why) {
  if (campaign.credits_reserved <= 0) return absl::OkStatus();
  const int64_t amount = campaign.credits_reserved;
  RETURN_IF_ERROR(AppendLedger(c, campaign.account_id,
                               Transaction::Type::kRelease, amount, campaign.id,
                               absl::StrCat("campaign ", campaign.id, " ", why),
                               /*allow_negative=*/false)
                      .status());
  return AddToCampaign(c, campaign, -amount, 0);
}

}  // namespace campaigns::storage::postgres
