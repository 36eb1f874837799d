#include "storage/postgres/billing_store.h"

#include <functional>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/domain/errors.h"
#include "server/domain/types.h"
#include "storage/json.h"
#include "storage/postgres/audience.h"
#include "storage/postgres/ledger.h"
#include "storage/postgres/rows.h"

namespace campaigns::storage::postgres {
namespace {

// Runs `fn` on the read connection `c` inside one REPEATABLE READ READ ONLY
// transaction, so that all its statements see the same committed state.
template <typename T>
absl::StatusOr<T> BillingSnapshot(
    Connection& c, const std::function<absl::StatusOr<T>(Connection&)>& fn) {
  RETURN_IF_ERROR(c.Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  absl::StatusOr<T> out = fn(c);
  if (!out.ok()) {
    (void)c.Exec("ROLLBACK");
    return out;
  }
  RETURN_IF_ERROR(c.Exec("COMMIT"));
  return out;
}

absl::StatusOr<Account> LoadBillingAccount(Connection& c,
                                           const std::string& account_id) {
  return LoadRow<Account>(c, "accounts", "account", std::nullopt, account_id,
                          &ReadAccount);
}

std::string BillingChannelColumn(Channel channel) {
  return channel == Channel::kUnspecified ? std::string()
                                          : std::string(ChannelName(channel));
}

}  // namespace

void BillingStore::SetPrices(const std::string& account_id,
                             std::vector<Price> prices,
                             Done<std::vector<Price>> done) {
  db_->Write<std::vector<Price>>(
      [account_id, prices = std::move(prices)](
          Connection& c) -> absl::StatusOr<std::vector<Price>> {
        // The account's row locked: another instance replacing the same
        // table waits, then replaces this one's.
        absl::StatusOr<Rows> account =
            c.Query("SELECT id FROM accounts WHERE id = $1 FOR NO KEY UPDATE",
                    {account_id});
        if (!account.ok()) return account.status();
        if (account->size() == 0)
          return errors::NotFound("account", account_id);
        RETURN_IF_ERROR(
            c.Query("DELETE FROM prices WHERE account_id = $1", {account_id})
                .status());
        if (!prices.empty()) {
          std::vector<std::string> channels;
          std::vector<std::string> countries;
          std::vector<std::string> amounts;
          for (const Price& p : prices) {
            channels.push_back(BillingChannelColumn(p.channel));
            countries.push_back(p.country);
            amounts.push_back(absl::StrCat(p.amount));
          }
          RETURN_IF_ERROR(
              c.Query("INSERT INTO prices(account_id, channel, country, "
                      "amount) SELECT $1, p.channel, p.country, "
                      "p.amount::bigint FROM ROWS FROM ("
                      "jsonb_array_elements_text($2::jsonb), "
                      "jsonb_array_elements_text($3::jsonb), "
                      "jsonb_array_elements_text($4::jsonb)) AS p(channel, "
                      "country, amount)",
                      {account_id, ListToJson(channels), ListToJson(countries),
                       ListToJson(amounts)})
                  .status());
        }
        return LoadPrices(c, account_id);
      },
      std::move(done));
}

absl::StatusOr<std::vector<Price>> BillingStore::GetPrices(
    const std::string& account_id) {
  return db_->Read<std::vector<Price>>(
      [&](Connection& c) { return LoadPrices(c, account_id); });
}

void BillingStore::AddCredits(const std::string& account_id, int64_t amount,
                              std::string description, IdempotencyKey idem,
                              Done<Account> done) {
  db_->Write<Account>(
      [account_id, amount, description = std::move(description),
       idem = std::move(idem)](Connection& c) -> absl::StatusOr<Account> {
        // Not moved from: the op may run twice (Database's retry).
        RETURN_IF_ERROR(LoadBillingAccount(c, account_id).status());
        return Idempotent<Account>(
            c, account_id, idem,
            [&c, &account_id](const std::string&) {
              return LoadBillingAccount(c, account_id);
            },
            [&]() -> absl::StatusOr<Account> {
              RETURN_IF_ERROR(
                  AppendLedger(
                      c, account_id, Transaction::Type::kCredit, amount, "",
                      description.empty() ? "credits added" : description,
                      /*allow_negative=*/false)
                      .status());
              return LoadBillingAccount(c, account_id);
            },
            [](const Account& a) { return a.id; });
      },
      std::move(done));
}

absl::StatusOr<Page<Transaction>> BillingStore::ListTransactions(
    const std::string& account_id, const PageRequest& page) {
  return db_->Read<Page<Transaction>>([&](Connection& conn) {
    return BillingSnapshot<Page<Transaction>>(
        conn, [&](Connection& c) -> absl::StatusOr<Page<Transaction>> {
          absl::StatusOr<Rows> count =
              c.Query("SELECT count(*) FROM transactions WHERE account_id = $1",
                      {account_id});
          if (!count.ok()) return count.status();
          const bool keyset = page.after_key > 0;
          std::vector<std::optional<std::string>> params = {
              account_id,
              absl::StrCat(keyset ? page.after_key
                                  : std::numeric_limits<int64_t>::max()),
              absl::StrCat(page.limit + 1)};
          if (!keyset) params.push_back(absl::StrCat(page.offset()));
          absl::StatusOr<Rows> rows = c.Query(
              absl::StrCat("SELECT * FROM transactions WHERE account_id = $1 "
                           "AND seq < $2 ORDER BY seq DESC LIMIT $3",
                           keyset ? "" : " OFFSET $4"),
              params);
          if (!rows.ok()) return rows.status();
          Page<Transaction> out;
          for (int i = 0; i < rows->size(); ++i) {
            out.items.push_back(ReadTransaction(*rows, i));
          }
          out.total = IntAt(*count, 0, "count");
          out.page = page.page;
          out.limit = page.limit;
          if (static_cast<int>(out.items.size()) > page.limit) {
            out.items.pop_back();
            out.has_more = true;
            out.next_key = out.items.back().seq;
          }
          return out;
        });
  });
}

void BillingStore::PrepareCosts(const std::string& account_id,
                                const std::string& campaign_id,
                                bool only_if_priced, StatusDone then) {
  PrepareCostsChunk(db_, account_id, campaign_id, only_if_priced,
                    /*first=*/true, std::move(then));
}

void BillingStore::PrepareCostsChunk(Database* db,
                                     const std::string& account_id,
                                     const std::string& campaign_id,
                                     bool only_if_priced, bool first,
                                     StatusDone then) {
  db->Write<bool>(
      [account_id, campaign_id, only_if_priced,
       first](Connection& c) -> absl::StatusOr<bool> {
        // The campaign's row first (ledger.h's lock order): a start or
        // another instance's chunk of the same campaign waits for this one.
        ASSIGN_OR_RETURN(Campaign campaign,
                         LoadCampaign(c, account_id, campaign_id,
                                      /*lock=*/true));
        if (only_if_priced) {
          ASSIGN_OR_RETURN(const std::vector<Price> table,
                           LoadPrices(c, account_id));
          if (ChannelPrices::For(table, campaign.channel).free()) return true;
        }
        if (first && campaign.status == CampaignStatus::kDraft &&
            HasContactAudience(campaign)) {
          // A contact audience costs what its recipients will: turn it into
          // them now, as Start would (Start adds contacts that join later).
          RETURN_IF_ERROR(
              MaterializeAudienceIn(c, account_id, campaign_id).status());
        }
        UnitsPlan plan;
        return PrepareUnits(c, campaign, &plan, kPrepareChunkRows);
      },
      [db, account_id, campaign_id, only_if_priced,
       then = std::move(then)](absl::StatusOr<bool> finished) mutable {
        if (finished.ok() && !*finished) {
          PrepareCostsChunk(db, account_id, campaign_id, only_if_priced,
                            /*first=*/false, std::move(then));
          return;
        }
        // A failure here (e.g. NOT_FOUND) is the next call's to report.
        if (then) then(absl::OkStatus());
      });
}

absl::StatusOr<std::optional<CostEstimateValue>> BillingStore::ReadEstimate(
    const std::string& account_id, const std::string& campaign_id) {
  using Estimate = std::optional<CostEstimateValue>;
  return db_->Read<Estimate>([&](Connection& conn) {
    // One snapshot: the rows summed are the rows found counted, even while
    // PrepareCosts (or an import) commits between two statements.
    return BillingSnapshot<Estimate>(
        conn, [&](Connection& c) -> absl::StatusOr<Estimate> {
          ASSIGN_OR_RETURN(
              const Campaign campaign,
              LoadCampaign(c, account_id, campaign_id, /*lock=*/false));
          ASSIGN_OR_RETURN(const Account a, LoadBillingAccount(c, account_id));
          ASSIGN_OR_RETURN(std::optional<UnitsPlan> counted,
                           CountedUnits(c, campaign));
          if (!counted.has_value()) return Estimate();  // not all counted
          UnitsPlan plan = *counted;
          ChannelPrices prices;
          ASSIGN_OR_RETURN(const CampaignBilling billing,
                           LoadBilling(c, campaign.seq));
          if (billing.billed) {
            // Started: at the prices it reserved with.
            prices = billing.prices;
            if (billing.units >= 0) plan.units = billing.units;
          } else if (campaign.status != CampaignStatus::kDraft) {
            // Started while the account had no prices: it sends for free,
            // at whatever prices the account has since.
            prices = ChannelPrices();
          } else {
            ASSIGN_OR_RETURN(const std::vector<Price> table,
                             LoadPrices(c, account_id));
            prices = ChannelPrices::For(table, campaign.channel);
          }
          RowSet rows;
          rows.to_seq = campaign.import_floor.value_or(kNoFloor);
          CostEstimateValue out;
          out.campaign_id = campaign.id;
          out.currency = a.currency;
          ASSIGN_OR_RETURN(out.lines,
                           CostLines(c, campaign, plan, prices, rows));
          ASSIGN_OR_RETURN(out.total, SumLines(out.lines));
          out.credits_available = a.credits_balance + campaign.credits_reserved;
          out.sufficient = out.total <= out.credits_available;
          return Estimate(std::move(out));
        });
  });
}

absl::StatusOr<AccountStats> BillingStore::CampaignStatsOf(
    const std::string& account_id, const StatsFilter& filter) {
  return db_->Read<AccountStats>(
      [&](Connection& c) -> absl::StatusOr<AccountStats> {
        ASSIGN_OR_RETURN(const Account a, LoadBillingAccount(c, account_id));
        // COLLATE "C": channels in byte order, as SQLite orders them.
        absl::StatusOr<Rows> rows = c.Query(
            "SELECT channel, count(*) AS campaigns, sum(total) AS total, "
            "sum(queued) AS queued, sum(sent) AS sent, sum(delivered) AS "
            "delivered, sum(\"read\") AS \"read\", sum(failed) AS failed, "
            "sum(skipped) AS skipped, sum(credits_debited) AS cost FROM "
            "campaigns WHERE account_id = $1 AND NOT deleting AND created_at "
            ">= $2 AND created_at < $3 AND ($4 = '' OR channel = $4) GROUP BY "
            "channel ORDER BY channel COLLATE \"C\"",
            {account_id,
             filter.from ? Micros(*filter.from)
                         : absl::StrCat(std::numeric_limits<int64_t>::min()),
             filter.to ? Micros(*filter.to)
                       : absl::StrCat(std::numeric_limits<int64_t>::max()),
             BillingChannelColumn(filter.channel)});
        if (!rows.ok()) return rows.status();
        AccountStats out;
        out.currency = a.currency;
        for (int i = 0; i < rows->size(); ++i) {
          ChannelStatsValue v;
          ParseChannel(rows->Text(i, "channel"), &v.channel);
          v.campaigns = IntAt(*rows, i, "campaigns");
          v.stats.total = IntAt(*rows, i, "total");
          v.stats.queued = IntAt(*rows, i, "queued");
          v.stats.sent = IntAt(*rows, i, "sent");
          v.stats.delivered = IntAt(*rows, i, "delivered");
          v.stats.read = IntAt(*rows, i, "read");
          v.stats.failed = IntAt(*rows, i, "failed");
          v.stats.skipped = IntAt(*rows, i, "skipped");
          v.cost = IntAt(*rows, i, "cost");
          out.campaigns += v.campaigns;
          out.stats.total += v.stats.total;
          out.stats.queued += v.stats.queued;
          out.stats.sent += v.stats.sent;
          out.stats.delivered += v.stats.delivered;
          out.stats.read += v.stats.read;
          out.stats.failed += v.stats.failed;
          out.stats.skipped += v.stats.skipped;
          out.cost += v.cost;
          out.by_channel.push_back(std::move(v));
        }
        return out;
      });
}

}  // namespace campaigns::storage::postgres
