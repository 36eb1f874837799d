// Store: money. Prices, the ledger (credits, reservations, debits,
// releases), cost estimates and aggregated statistics.
//
// Every movement of money is one ledger row written in the same transaction
// as the account's balance and reservation it changes, so at every row
// balance + reserved = credits added - debited. A campaign holds the
// reservation of its queued recipients (credits_reserved) and keeps the
// prices it reserved with (`billing`); each recipient's cost is its unit
// price (by destination country) times its billable units (SMS segments).
#include <SQLiteCpp/Statement.h>
#include <sqlite3.h>

#include <map>
#include <memory>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/domain/address.h"
#include "server/domain/billing.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
#include "server/domain/render.h"
#include "storage/sqlite/rows.h"
#include "storage/sqlite/store.h"
#include "storage/sqlite/store_internal.h"

namespace campaigns::storage {
namespace internal {
namespace {

constexpr absl::string_view TypeName(Transaction::Type t) {
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

Transaction ReadTransaction(SQLite::Statement& st) {
  Transaction t;
  t.seq = Col(st, "seq").getInt64();
  t.account_id = Col(st, "account_id").getString();
  const std::string type = Col(st, "type").getString();
  for (Transaction::Type candidate :
       {Transaction::Type::kCredit, Transaction::Type::kReservation,
        Transaction::Type::kDebit, Transaction::Type::kRelease}) {
    if (type == TypeName(candidate)) t.type = candidate;
  }
  t.amount = Col(st, "amount").getInt64();
  t.campaign_id = Col(st, "campaign_id").getString();
  t.description = Col(st, "description").getString();
  t.balance_after = Col(st, "balance_after").getInt64();
  t.reserved_after = Col(st, "reserved_after").getInt64();
  t.created_at = FromMicros(Col(st, "created_at").getInt64());
  return t;
}

void StoreBilling(SQLite::Database& db, int64_t campaign_seq,
                  const std::string& text) {
  SQLite::Statement st(db, "UPDATE campaigns SET billing=? WHERE seq=?");
  st.bind(1, text);
  st.bind(2, static_cast<int64_t>(campaign_seq));
  st.exec();
}

void AddToCampaign(SQLite::Database& db, Campaign& c, int64_t reserved,
                   int64_t debited) {
  SQLite::Statement st(db,
                       "UPDATE campaigns SET credits_reserved=credits_reserved"
                       "+?, credits_debited=credits_debited+? WHERE seq=?");
  st.bind(1, static_cast<int64_t>(reserved));
  st.bind(2, static_cast<int64_t>(debited));
  st.bind(3, static_cast<int64_t>(c.seq));
  st.exec();
  c.credits_reserved += reserved;
  c.credits_debited += debited;
}

}  // namespace

CampaignBilling LoadBilling(SQLite::Database& db, int64_t campaign_seq) {
  SQLite::Statement st(db, "SELECT billing FROM campaigns WHERE seq=?");
  st.bind(1, static_cast<int64_t>(campaign_seq));
  CampaignBilling b;
  if (!st.executeStep()) return b;
  const std::string text = st.getColumn(0).getString();
  if (text.empty()) return b;
  std::pair<std::string, std::string> parts =
      absl::StrSplit(text, absl::MaxSplits('|', 1));
  b.billed = true;
  if (!absl::SimpleAtoi(parts.first, &b.units)) b.units = -1;
  b.prices = ChannelPrices::Parse(parts.second);
  return b;
}

std::vector<Price> LoadPrices(SQLite::Database& db,
                              const std::string& account_id) {
  SQLite::Statement st(db,
                       "SELECT channel, country, amount FROM prices WHERE "
                       "account_id=? ORDER BY channel, country");
  st.bind(1, account_id);
  std::vector<Price> out;
  while (st.executeStep()) {
    Price p;
    const std::string channel = st.getColumn(0).getString();
    if (!channel.empty()) ParseChannel(channel, &p.channel);
    p.country = st.getColumn(1).getString();
    p.amount = st.getColumn(2).getInt64();
    out.push_back(std::move(p));
  }
  return out;
}

absl::StatusOr<Transaction> AppendLedger(SQLite::Database& db,
                                         const std::string& account_id,
                                         Transaction::Type type, int64_t amount,
                                         const std::string& campaign_id,
                                         const std::string& description,
                                         bool allow_negative) {
  if (amount <= 0) return absl::InternalError("ledger amount must be > 0");
  SQLite::Statement get(
      db, "SELECT credits_balance, credits_reserved FROM accounts WHERE id=?");
  get.bind(1, account_id);
  if (!get.executeStep()) return errors::NotFound("account", account_id);
  int64_t balance = get.getColumn(0).getInt64();
  int64_t reserved = get.getColumn(1).getInt64();
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
  const int64_t now = ToMicros(NowMicros());
  SQLite::Statement set(db,
                        "UPDATE accounts SET credits_balance=?, "
                        "credits_reserved=?, updated_at=? WHERE id=?");
  set.bind(1, static_cast<int64_t>(balance));
  set.bind(2, static_cast<int64_t>(reserved));
  set.bind(3, static_cast<int64_t>(now));
  set.bind(4, account_id);
  set.exec();
  SQLite::Statement row(
      db,
      "INSERT INTO transactions(account_id, type, amount, campaign_id, "
      "description, balance_after, reserved_after, created_at) "
      "VALUES(?,?,?,?,?,?,?,?) RETURNING *");
  row.bind(1, account_id);
  row.bind(2, std::string(TypeName(type)));
  row.bind(3, static_cast<int64_t>(amount));
  row.bind(4, campaign_id);
  row.bind(5, description);
  row.bind(6, static_cast<int64_t>(balance));
  row.bind(7, static_cast<int64_t>(reserved));
  row.bind(8, static_cast<int64_t>(now));
  row.executeStep();
  Transaction t = ReadTransaction(row);
  row.reset();
  return t;
}

namespace {

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

absl::StatusOr<UnitsState> LoadUnitsState(SQLite::Database& db,
                                          const Campaign& c) {
  ASSIGN_OR_RETURN(const MessageContent content, MessageOf(db, c));
  UnitsState s;
  s.message = MessageTemplate::Parse(content, c.template_components,
                                     c.variable_mapping);
  s.per_row = !s.message.Variables().empty();
  if (!s.per_row) s.plan.units = BillableUnits(c.channel, s.message, {});
  s.phone = IsPhoneChannel(c.channel);
  if (s.per_row) {
    s.key = absl::StrCat(content.text, "\x1f", MapToJson(c.variable_mapping));
    if (!c.template_components.empty()) {
      absl::StrAppend(&s.key, "\x1f", ComponentsToJson(c.template_components));
    }
    if (!content.subject.empty() || !content.html.empty()) {
      // Their placeholders decide who is skipped too. The HTML body (up to
      // kMaxHtmlBodyLength) goes in by its hash: the key is stored with
      // every count.
      absl::StrAppend(&s.key, "\x1f", content.subject, "\x1f",
                      Sha256Hex(content.html));
    }
  }
  SQLite::Statement get(
      db, "SELECT units_key, units_through FROM campaigns WHERE seq=?");
  get.bind(1, static_cast<int64_t>(c.seq));
  if (!get.executeStep()) return errors::NotFound("campaign", c.id);
  s.stored_key = get.getColumn(0).getString();
  s.stored_through = get.getColumn(1).getInt64();
  return s;
}

// The last queued recipient of the campaign (0: none); one index seek.
int64_t LastQueuedSeq(SQLite::Database& db, int64_t campaign_seq) {
  SQLite::Statement last(db,
                         "SELECT MAX(seq) FROM recipients INDEXED BY "
                         "recipients_by_status WHERE campaign_seq=? AND "
                         "status='queued'");
  last.bind(1, static_cast<int64_t>(campaign_seq));
  last.executeStep();
  return last.getColumn(0).isNull() ? 0 : last.getColumn(0).getInt64();
}

}  // namespace

absl::StatusOr<bool> PrepareUnits(SQLite::Database& db, Campaign& c,
                                  UnitsPlan* plan, int64_t max_rows) {
  ASSIGN_OR_RETURN(UnitsState state, LoadUnitsState(db, c));
  *plan = state.plan;
  const bool per_row = state.per_row;
  const bool phone = state.phone;
  const MessageTemplate& message = state.message;
  const std::string& key = state.key;
  const std::string& stored_key = state.stored_key;
  const int64_t stored_through = state.stored_through;
  if (!per_row && !phone) return true;  // nothing per row to know
  // Queued rows up to units_through have what they need for the message
  // units_key names; later rows (imports, materialised audiences) are
  // looked at once, in seq order. Units counted for another message are
  // stale: every queued row again.
  const int64_t through = stored_key == key ? stored_through : 0;
  SQLite::Statement todo(
      db,
      "SELECT seq, address, variables FROM recipients INDEXED BY "
      "recipients_by_status WHERE campaign_seq=?1 AND status='queued' AND "
      "seq>?2 AND (?4 OR (?3 AND country IS NULL)) ORDER BY seq LIMIT ?5");
  todo.bind(1, static_cast<int64_t>(c.seq));
  todo.bind(2, static_cast<int64_t>(through));
  todo.bind(3, phone ? 1 : 0);
  todo.bind(4, per_row ? 1 : 0);
  todo.bind(5, static_cast<int64_t>(max_rows));
  SQLite::Statement set(db,
                        "UPDATE recipients SET country=COALESCE(country, ?1), "
                        "units=?2 WHERE seq=?3");
  int64_t done_rows = 0;
  int64_t last_seq = through;
  while (todo.executeStep()) {
    last_seq = todo.getColumn(0).getInt64();
    ++done_rows;
    set.bind(1, phone ? RegionOfPhoneNumber(todo.getColumn(1).getString())
                      : std::string());
    if (per_row) {
      set.bind(2, static_cast<int64_t>(BillableUnits(
                      c.channel, message,
                      MapFromJson(todo.getColumn(2).getString()))));
    } else {
      set.bind(2);
    }
    set.bind(3, static_cast<int64_t>(last_seq));
    set.exec();
    set.reset();
  }
  const bool finished = done_rows < max_rows;
  int64_t now_through = last_seq;
  if (finished) {
    // Every queued row there is now is done (an import's staged rows too:
    // should it be rolled back they are gone, and rows added later come
    // after).
    now_through = std::max(now_through, LastQueuedSeq(db, c.seq));
  }
  if (now_through != stored_through || key != stored_key) {
    SQLite::Statement done(
        db, "UPDATE campaigns SET units_key=?, units_through=? WHERE seq=?");
    done.bind(1, key);
    done.bind(2, static_cast<int64_t>(now_through));
    done.bind(3, static_cast<int64_t>(c.seq));
    done.exec();
  }
  return finished;
}

absl::StatusOr<UnitsPlan> PrepareUnits(SQLite::Database& db, Campaign& c) {
  UnitsPlan plan;
  RETURN_IF_ERROR(PrepareUnits(db, c, &plan, kNoFloor).status());
  return plan;
}

absl::StatusOr<std::vector<CostLineValue>> CostLines(
    SQLite::Database& db, const Campaign& c, const UnitsPlan& plan,
    const ChannelPrices& prices, const RowSet& rows) {
  // Aggregated here rather than with GROUP BY, which would sort every row
  // in a temporary b-tree: one pass in seq order over a handful of groups,
  // on the raw statement (a million rows through SQLite::Column's shared
  // pointers would cost as much again as the query itself).
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(
          db.getHandle(),
          "SELECT country, units FROM recipients INDEXED BY "
          "recipients_by_status WHERE campaign_seq=?1 AND status=?2 AND "
          "seq>=?3 AND seq<?4 AND (?5='[]' OR error_code IN (SELECT value "
          "FROM json_each(?5)))",
          -1, &raw, nullptr) != SQLITE_OK) {
    return absl::InternalError(sqlite3_errmsg(db.getHandle()));
  }
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> st(raw,
                                                           &sqlite3_finalize);
  const std::string status(RecipientStatusName(rows.status));
  const std::string codes = ListToJson(rows.error_codes);
  sqlite3_bind_int64(raw, 1, c.seq);
  sqlite3_bind_text(raw, 2, status.data(), static_cast<int>(status.size()),
                    SQLITE_STATIC);
  sqlite3_bind_int64(raw, 3, rows.from_seq);
  sqlite3_bind_int64(raw, 4, rows.to_seq);
  sqlite3_bind_text(raw, 5, codes.data(), static_cast<int>(codes.size()),
                    SQLITE_STATIC);
  const int64_t default_units = plan.units < 0 ? 1 : plan.units;
  // One line per country; consecutive rows mostly share one.
  std::map<std::string, CostLineValue, std::less<>> lines;
  std::string last_country = "\x01";  // no country is this
  CostLineValue* last = nullptr;
  int rc;
  while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
    const unsigned char* text = sqlite3_column_text(raw, 0);
    const absl::string_view country =
        text == nullptr ? absl::string_view()
                        : absl::string_view(reinterpret_cast<const char*>(text),
                                            sqlite3_column_bytes(raw, 0));
    if (last == nullptr || last_country != country) {
      last_country = std::string(country);
      last = &lines[last_country];
    }
    ++last->recipients;
    last->units += sqlite3_column_type(raw, 1) == SQLITE_NULL
                       ? default_units
                       : sqlite3_column_int64(raw, 1);
  }
  if (rc != SQLITE_DONE) {
    return absl::InternalError(sqlite3_errmsg(db.getHandle()));
  }
  std::vector<CostLineValue> out;
  for (auto& [country, line] : lines) {
    line.channel = c.channel;
    line.country = country;
    line.unit_price = prices.UnitPrice(country);
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

absl::Status ReserveForStart(SQLite::Database& db, Campaign& c) {
  const ChannelPrices prices =
      ChannelPrices::For(LoadPrices(db, c.account_id), c.channel);
  if (prices.free()) {
    StoreBilling(db, c.seq, "");
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(UnitsPlan plan, PrepareUnits(db, c));
  StoreBilling(db, c.seq, absl::StrCat(plan.units, "|", prices.Serialize()));
  RowSet rows;
  rows.to_seq = c.import_floor.value_or(kNoFloor);
  ASSIGN_OR_RETURN(std::vector<CostLineValue> lines,
                   CostLines(db, c, plan, prices, rows));
  ASSIGN_OR_RETURN(int64_t total, SumLines(lines));
  return Reserve(
      db, c, total,
      absl::StrCat("campaign ", c.id, " (", c.stats.queued, " recipients)"));
}

absl::Status ReserveRows(SQLite::Database& db, Campaign& c, const RowSet& rows,
                         absl::string_view what) {
  const CampaignBilling billing = LoadBilling(db, c.seq);
  if (!billing.billed) return absl::OkStatus();
  UnitsPlan plan;
  plan.units = billing.units;
  if (rows.status == RecipientStatus::kQueued) {
    // New rows (an import): count what they need first.
    ASSIGN_OR_RETURN(UnitsPlan fresh, PrepareUnits(db, c));
    plan = fresh;
  }
  ASSIGN_OR_RETURN(std::vector<CostLineValue> lines,
                   CostLines(db, c, plan, billing.prices, rows));
  ASSIGN_OR_RETURN(int64_t total, SumLines(lines));
  return Reserve(db, c, total, absl::StrCat(what, " of campaign ", c.id));
}

absl::Status Reserve(SQLite::Database& db, Campaign& c, int64_t amount,
                     const std::string& what) {
  if (amount <= 0) return absl::OkStatus();
  RETURN_IF_ERROR(AppendLedger(db, c.account_id,
                               Transaction::Type::kReservation, amount, c.id,
                               what, /*allow_negative=*/false)
                      .status());
  AddToCampaign(db, c, amount, 0);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> RowCost(const CampaignBilling& billing,
                                absl::string_view country,
                                std::optional<int64_t> units) {
  if (!billing.billed) return 0;
  // A row never counted (none should be, once reserved) counts as one.
  const int64_t u = billing.units >= 0 ? billing.units : units.value_or(1);
  return MulAdd(billing.prices.UnitPrice(country), u, 0);
}

absl::Status Settle(SQLite::Database& db, Campaign& c, const Settlement& s) {
  if (s.debit > 0) {
    // A message costs what was reserved for it; should it ever cost more
    // than the campaign still holds, the difference is reserved first (the
    // message is already with the provider).
    if (s.debit > c.credits_reserved) {
      const int64_t extra = s.debit - c.credits_reserved;
      RETURN_IF_ERROR(
          AppendLedger(
              db, c.account_id, Transaction::Type::kReservation, extra, c.id,
              absl::StrCat("campaign ", c.id, ": sent beyond its reservation"),
              /*allow_negative=*/true)
              .status());
      AddToCampaign(db, c, extra, 0);
    }
    RETURN_IF_ERROR(
        AppendLedger(
            db, c.account_id, Transaction::Type::kDebit, s.debit, c.id,
            absl::StrCat(s.sent, " message", s.sent == 1 ? "" : "s", " sent"),
            false)
            .status());
    AddToCampaign(db, c, -s.debit, s.debit);
  }
  const int64_t release = std::min(s.release, c.credits_reserved);
  if (release > 0) {
    RETURN_IF_ERROR(AppendLedger(db, c.account_id, Transaction::Type::kRelease,
                                 release, c.id,
                                 absl::StrCat(s.released, " recipient",
                                              s.released == 1 ? "" : "s",
                                              " not sent (", s.why, ")"),
                                 false)
                        .status());
    AddToCampaign(db, c, -release, 0);
  }
  return absl::OkStatus();
}

absl::Status ReleaseAll(SQLite::Database& db, Campaign& c,
                        absl::string_view why) {
  if (c.credits_reserved <= 0) return absl::OkStatus();
  const int64_t amount = c.credits_reserved;
  RETURN_IF_ERROR(AppendLedger(db, c.account_id, Transaction::Type::kRelease,
                               amount, c.id,
                               absl::StrCat("campaign ", c.id, " ", why), false)
                      .status());
  AddToCampaign(db, c, -amount, 0);
  return absl::OkStatus();
}

}  // namespace internal

using internal::LoadCampaign;

// Recipients whose cost is prepared per write when a campaign's recipients
// are looked at before an estimate or a start.
constexpr int64_t kPrepareChunkRows = 20000;

void Store::SetPrices(const std::string& account_id, std::vector<Price> prices,
                      Callback<std::vector<Price>> done) {
  db_->Write<std::vector<Price>>(
      [account_id, prices = std::move(prices)](
          SQLite::Database& db) -> absl::StatusOr<std::vector<Price>> {
        RETURN_IF_ERROR(internal::LoadUnscoped<Account>(
                            db, "accounts", "account", account_id, &ReadAccount)
                            .status());
        SQLite::Statement clear(db, "DELETE FROM prices WHERE account_id=?");
        clear.bind(1, account_id);
        clear.exec();
        SQLite::Statement add(db,
                              "INSERT INTO prices(account_id, channel, "
                              "country, amount) VALUES(?,?,?,?)");
        for (const Price& p : prices) {
          add.bind(1, account_id);
          add.bind(2, p.channel == Channel::kUnspecified
                          ? std::string()
                          : std::string(ChannelName(p.channel)));
          add.bind(3, p.country);
          add.bind(4, static_cast<int64_t>(p.amount));
          add.exec();
          add.reset();
        }
        return internal::LoadPrices(db, account_id);
      },
      std::move(done));
}

absl::StatusOr<std::vector<Price>> Store::GetPrices(
    const std::string& account_id) {
  return db_->Read(
      [&](SQLite::Database& db) -> absl::StatusOr<std::vector<Price>> {
        return internal::LoadPrices(db, account_id);
      });
}

void Store::AddCredits(const std::string& account_id, int64_t amount,
                       std::string description, IdempotencyKey idem,
                       Callback<Account> done) {
  db_->Write<Account>(
      [account_id, amount, description = std::move(description),
       idem =
           std::move(idem)](SQLite::Database& db) -> absl::StatusOr<Account> {
        auto load = [&db, &account_id](const std::string&) {
          return internal::LoadUnscoped<Account>(db, "accounts", "account",
                                                 account_id, &ReadAccount);
        };
        RETURN_IF_ERROR(load("").status());
        return internal::Idempotent<Account>(
            db, account_id, idem, load,
            [&]() -> absl::StatusOr<Account> {
              RETURN_IF_ERROR(
                  internal::AppendLedger(
                      db, account_id, Transaction::Type::kCredit, amount, "",
                      description.empty() ? "credits added" : description,
                      false)
                      .status());
              return load("");
            },
            [](const Account& a) { return a.id; });
      },
      std::move(done));
}

absl::StatusOr<Page<Transaction>> Store::ListTransactions(
    const std::string& account_id, const PageRequest& page) {
  return db_->Read(
      [&](SQLite::Database& db) -> absl::StatusOr<Page<Transaction>> {
        SQLite::Statement count(
            db, "SELECT COUNT(*) FROM transactions WHERE account_id=?");
        count.bind(1, account_id);
        count.executeStep();
        const int64_t total = count.getColumn(0).getInt64();
        const bool keyset = page.after_key > 0;
        SQLite::Statement st(
            db,
            std::string("SELECT * FROM transactions WHERE account_id=?1 AND "
                        "seq<?2 ORDER BY seq DESC LIMIT ?3") +
                (keyset ? "" : " OFFSET ?4"));
        st.bind(1, account_id);
        st.bind(2, static_cast<int64_t>(keyset ? page.after_key
                                               : internal::kNoFloor));
        st.bind(3, page.limit + 1);
        if (!keyset) st.bind(4, static_cast<int64_t>(page.offset()));
        Page<Transaction> out;
        while (st.executeStep())
          out.items.push_back(internal::ReadTransaction(st));
        out.total = total;
        out.page = page.page;
        out.limit = page.limit;
        if (static_cast<int>(out.items.size()) > page.limit) {
          out.items.pop_back();
          out.has_more = true;
          out.next_key = out.items.back().seq;
        }
        return out;
      });
}

void Store::PrepareCosts(const std::string& account_id,
                         const std::string& campaign_id, bool only_if_priced,
                         StatusCallback then) {
  PrepareCostsChunk(account_id, campaign_id, only_if_priced, /*first=*/true,
                    std::move(then));
}

void Store::PrepareCostsChunk(const std::string& account_id,
                              const std::string& campaign_id,
                              bool only_if_priced, bool first,
                              StatusCallback then) {
  db_->Write<bool>(
      [account_id, campaign_id, only_if_priced,
       first](SQLite::Database& db) -> absl::StatusOr<bool> {
        ASSIGN_OR_RETURN(Campaign c, LoadCampaign(db, account_id, campaign_id));
        if (only_if_priced &&
            ChannelPrices::For(internal::LoadPrices(db, account_id), c.channel)
                .free()) {
          return true;
        }
        if (first && c.status == CampaignStatus::kDraft &&
            internal::HasContactAudience(c)) {
          // A contact audience costs what its recipients will: turn it into
          // them now, as Start would (Start adds contacts that join later).
          RETURN_IF_ERROR(internal::Materialize(db, c).status());
        }
        internal::UnitsPlan plan;
        return internal::PrepareUnits(db, c, &plan, kPrepareChunkRows);
      },
      [this, account_id, campaign_id, only_if_priced,
       then = std::move(then)](absl::StatusOr<bool> finished) mutable {
        if (finished.ok() && !*finished) {
          PrepareCostsChunk(account_id, campaign_id, only_if_priced,
                            /*first=*/false, std::move(then));
          return;
        }
        // A failure here (e.g. NOT_FOUND) is the next call's to report.
        then(absl::OkStatus());
      },
      /*bulk=*/true);
}

absl::StatusOr<std::optional<CostEstimateValue>> Store::ReadEstimate(
    const std::string& account_id, const std::string& campaign_id) {
  return db_->Read([&](SQLite::Database& db)
                       -> absl::StatusOr<std::optional<CostEstimateValue>> {
    ASSIGN_OR_RETURN(Campaign c, LoadCampaign(db, account_id, campaign_id));
    ASSIGN_OR_RETURN(Account a,
                     internal::LoadUnscoped<Account>(db, "accounts", "account",
                                                     account_id, &ReadAccount));
    ASSIGN_OR_RETURN(internal::UnitsState state,
                     internal::LoadUnitsState(db, c));
    if ((state.per_row || state.phone) &&
        (state.stored_key != state.key ||
         state.stored_through < internal::LastQueuedSeq(db, c.seq))) {
      return std::nullopt;  // not (or no longer) all counted
    }
    ChannelPrices prices;
    internal::UnitsPlan plan = state.plan;
    const internal::CampaignBilling billing = internal::LoadBilling(db, c.seq);
    if (billing.billed) {
      // Started: at the prices it reserved with.
      prices = billing.prices;
      if (billing.units >= 0) plan.units = billing.units;
    } else if (c.status != CampaignStatus::kDraft) {
      // Started while the account had no prices: it sends for free, at
      // whatever prices the account has since.
      prices = ChannelPrices();
    } else {
      prices =
          ChannelPrices::For(internal::LoadPrices(db, account_id), c.channel);
    }
    internal::RowSet rows;
    rows.to_seq = c.import_floor.value_or(internal::kNoFloor);
    CostEstimateValue out;
    out.campaign_id = c.id;
    out.currency = a.currency;
    ASSIGN_OR_RETURN(out.lines, internal::CostLines(db, c, plan, prices, rows));
    ASSIGN_OR_RETURN(out.total, internal::SumLines(out.lines));
    out.credits_available = a.credits_balance + c.credits_reserved;
    out.sufficient = out.total <= out.credits_available;
    return out;
  });
}

absl::StatusOr<AccountStats> Store::CampaignStatsOf(
    const std::string& account_id, const StatsFilter& filter) {
  return db_->Read([&](SQLite::Database& db) -> absl::StatusOr<AccountStats> {
    ASSIGN_OR_RETURN(Account a,
                     internal::LoadUnscoped<Account>(db, "accounts", "account",
                                                     account_id, &ReadAccount));
    SQLite::Statement st(
        db,
        "SELECT channel, COUNT(*), SUM(total), SUM(queued), SUM(sent), "
        "SUM(delivered), SUM(read), SUM(failed), SUM(skipped), "
        "SUM(credits_debited) FROM campaigns WHERE account_id=?1 AND "
        "deleting=0 AND created_at>=?2 AND created_at<?3 AND (?4='' OR "
        "channel=?4) GROUP BY channel ORDER BY channel");
    st.bind(1, account_id);
    st.bind(2, static_cast<int64_t>(filter.from ? ToMicros(*filter.from)
                                                : INT64_MIN));
    st.bind(3,
            static_cast<int64_t>(filter.to ? ToMicros(*filter.to) : INT64_MAX));
    st.bind(4, filter.channel == Channel::kUnspecified
                   ? std::string()
                   : std::string(ChannelName(filter.channel)));
    AccountStats out;
    out.currency = a.currency;
    while (st.executeStep()) {
      ChannelStatsValue v;
      ParseChannel(st.getColumn(0).getString(), &v.channel);
      v.campaigns = st.getColumn(1).getInt64();
      int i = 2;
      for (int64_t* n :
           {&v.stats.total, &v.stats.queued, &v.stats.sent, &v.stats.delivered,
            &v.stats.read, &v.stats.failed, &v.stats.skipped}) {
        *n = st.getColumn(i++).getInt64();
      }
      v.cost = st.getColumn(i).getInt64();
      out.campaigns += v.campaigns;
      for (RecipientStatus s :
           {RecipientStatus::kQueued, RecipientStatus::kSent,
            RecipientStatus::kDelivered, RecipientStatus::kRead,
            RecipientStatus::kFailed, RecipientStatus::kSkipped}) {
        *internal::Counter(out.stats, s) += *internal::Counter(v.stats, s);
      }
      out.stats.total += v.stats.total;
      out.cost += v.cost;
      out.by_channel.push_back(std::move(v));
    }
    return out;
  });
}

}  // namespace campaigns::storage
