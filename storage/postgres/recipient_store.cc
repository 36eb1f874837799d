#include "storage/postgres/recipient_store.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/domain/errors.h"
#include "server/domain/rules.h"
#include "server/domain/types.h"
#include "server/log/log.h"
#include "storage/json.h"
#include "storage/postgres/ledger.h"
#include "storage/postgres/owners.h"
#include "storage/postgres/rows.h"

namespace campaigns::storage::postgres {
// Names here are distinct from the other stores' (the unity build puts
// several files' anonymous namespaces in one translation unit).
namespace {

// No import floor: every row is visible.
constexpr int64_t kNoImportFloor = std::numeric_limits<int64_t>::max();
// Staged rows deleted per write of a rollback, and addresses of the
// campaign's set examined per write when a settled import is rolled back.
constexpr int kRollbackChunkRows = 5000;
constexpr int kRollbackAddressRows = 20000;
// Bytes of COPY data sent per PQputCopyData.
constexpr size_t kCopyChunkBytes = size_t{1} << 20;
// The idempotency method of recipient imports (as SQLite records it).
constexpr char kRecipientImportMethod[] = "ImportRecipients";

bool AcceptsRecipientImports(CampaignStatus s) {
  return s == CampaignStatus::kDraft || s == CampaignStatus::kScheduled ||
         s == CampaignStatus::kPaused;
}

absl::Status RolledBack(const std::string& campaign_id) {
  return absl::AbortedError(absl::StrCat("the import into campaign ",
                                         campaign_id,
                                         " was rolled back before it could "
                                         "finish"));
}

// Locks the row of campaign `campaign_seq` (`mode`: "FOR SHARE", ...; ""
// when the transaction locked it already) and answers whether its import
// floor is still `floor` and, unless `owner` is null, whether instance
// `*owner` still runs the import (no other one took it over: owners.h).
absl::StatusOr<bool> LockImport(Connection& c, int64_t campaign_seq,
                                int64_t floor, const char* mode,
                                const std::string* owner) {
  absl::StatusOr<Rows> rows =
      c.Query(absl::StrCat("SELECT import_floor, work_owner FROM campaigns "
                           "WHERE seq = $1 ",
                           mode),
              {absl::StrCat(campaign_seq)});
  if (!rows.ok()) return rows.status();
  return rows->size() > 0 && rows->Get(0, 0).has_value() &&
         IntAt(*rows, 0, "import_floor") == floor &&
         (owner == nullptr || rows->Text(0, "work_owner") == *owner);
}

// Appends `s` to `out` as a field of COPY's text format.
void AppendCopyField(std::string& out, absl::string_view s) {
  for (char ch : s) {
    switch (ch) {
      case '\\':
        out += "\\\\";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out += ch;
    }
  }
}

int64_t CounterOf(const CampaignStats& stats, RecipientStatus status) {
  switch (status) {
    case RecipientStatus::kQueued:
      return stats.queued;
    case RecipientStatus::kSent:
      return stats.sent;
    case RecipientStatus::kDelivered:
      return stats.delivered;
    case RecipientStatus::kRead:
      return stats.read;
    case RecipientStatus::kFailed:
      return stats.failed;
    case RecipientStatus::kSkipped:
      return stats.skipped;
    case RecipientStatus::kUnspecified:
      break;
  }
  return stats.total;
}

// One chunk of SettleRecipientImport, in one statement on a connection of
// its own (autocommit): takes the next $4 staged rows of campaign $1 after
// seq $3 (in seq order, which is row order), adds the address of the first
// row of each address to the campaign's address set unless the set has it,
// and deletes the other rows, returning the first $5 of them by seq.
// Earlier chunks' rows are in the set already, so "an earlier row of this
// import" is found like "already on the campaign". A row whose address the
// set has under the row's own seq is kept: a chunk run once more finds what
// it did the first time. Nothing is done unless the campaign's import floor
// is still $2 and its import still run by instance $6 (owners.h); its row is
// share-locked while the chunk runs, so a commit or rollback of the import
// waits for it.
//
// Each row costs one descent of the address set's index (the INSERT's, ON
// CONFLICT DO NOTHING; a second only for a conflict), whatever the planner
// thinks of tables whose statistics predate the import: the rows kept are
// looked up in a hashed set, and those to delete are found by primary key
// from an array (no join that could become a nested loop over the chunk).
// Sorts are bytewise (COLLATE "C"): equality is the same, and much cheaper.
constexpr char kSettleChunk[] = R"sql(
WITH live AS (
  SELECT seq FROM campaigns WHERE seq = $1::bigint AND import_floor = $2::bigint
    AND work_owner = $6::text
  FOR SHARE
), chunk AS (
  SELECT r.seq, r.address,
         row_number() OVER (PARTITION BY r.address COLLATE "C"
                            ORDER BY r.seq) AS nth
  FROM (SELECT seq, address FROM recipients
        WHERE campaign_seq = $1::bigint AND status = 'queued'
          AND seq > $3::bigint AND EXISTS (SELECT 1 FROM live)
        ORDER BY seq LIMIT $4::bigint) r
), added AS (
  INSERT INTO recipient_addresses(campaign_seq, address, seq)
  SELECT $1::bigint, address, seq FROM chunk WHERE nth = 1
  ORDER BY address COLLATE "C"
  ON CONFLICT DO NOTHING
  RETURNING seq
), duplicates AS (
  SELECT c.seq FROM chunk c
  WHERE c.nth > 1 OR (c.seq NOT IN (SELECT seq FROM added) AND NOT EXISTS (
    SELECT 1 FROM recipient_addresses a WHERE a.campaign_seq = $1::bigint
    AND a.address = c.address AND a.seq = c.seq))
), dropped AS (
  DELETE FROM recipients
  WHERE seq = ANY ((SELECT array_agg(seq) FROM duplicates)::bigint[])
  RETURNING seq, address, import_row, import_line
), totals AS (
  SELECT (SELECT count(*) FROM live) AS live,
         (SELECT count(*) FROM chunk) AS examined,
         (SELECT max(seq) FROM chunk) AS last,
         (SELECT count(*) FROM added) AS added,
         (SELECT count(*) FROM dropped) AS dropped
)
SELECT t.live, t.examined, t.last, t.added, t.dropped, d.seq AS dup_seq,
       d.import_row, d.import_line, d.address
FROM totals t
LEFT JOIN (SELECT * FROM dropped ORDER BY seq LIMIT $5::bigint) d ON true
ORDER BY d.seq
)sql";

}  // namespace

void RecipientStore::BeginRecipientImport(const std::string& account_id,
                                          const std::string& campaign_id,
                                          Done<ImportLease> done) {
  db_->Write<ImportLease>(
      [account_id, campaign_id,
       owner = owner_.instance](Connection& c) -> absl::StatusOr<ImportLease> {
        // FOR NO KEY UPDATE (as every read-modify-write of a campaign row,
        // rows.h): of two instances beginning imports into the campaign at
        // once, the second waits here and then sees the first's floor.
        ASSIGN_OR_RETURN(Campaign camp, LoadCampaign(c, account_id, campaign_id,
                                                     /*lock=*/true));
        if (!AcceptsRecipientImports(camp.status)) {
          return errors::IllegalTransition(absl::StrCat(
              "campaign ", campaign_id, " is ", CampaignStatusName(camp.status),
              "; recipients can be imported while it is draft, scheduled or "
              "paused"));
        }
        if (!camp.contact_list_id.empty() || !camp.tags.empty() ||
            !camp.contact_ids.empty()) {
          return errors::Validation(
              "campaign_id",
              absl::StrCat("campaign ", campaign_id,
                           " takes its audience from contacts; recipients "
                           "cannot be imported into it"));
        }
        if (camp.import_floor.has_value()) {
          return errors::Validation(
              "campaign_id",
              absl::StrCat("another import into campaign ", campaign_id,
                           " is running or being rolled back; retry when it "
                           "has finished"));
        }
        // A value of the recipients' sequence: every row staged later (its
        // seq from the same sequence) is above it, every row the campaign
        // has is below it.
        absl::StatusOr<Rows> floor = c.Query(
            "UPDATE campaigns SET import_floor = nextval(pg_get_serial_"
            "sequence('recipients', 'seq')), work_owner = $2 WHERE seq = $1 "
            "RETURNING import_floor",
            {absl::StrCat(camp.seq), owner});
        if (!floor.ok()) return floor.status();
        ImportLease lease;
        lease.floor = IntAt(*floor, 0, "import_floor");
        camp.import_floor = lease.floor;
        lease.campaign = std::move(camp);
        lease.settled = false;
        return lease;
      },
      std::move(done));
}

void RecipientStore::StageRecipients(const ImportLease& lease,
                                     std::vector<StagedRecipient> rows,
                                     Done<std::vector<int32_t>> done) {
  // The COPY data is made here, on the caller's thread: the writer only
  // sends it.
  const std::string campaign_seq = absl::StrCat(lease.campaign.seq);
  const std::string now = Micros(NowMicros());
  auto data = std::make_shared<std::string>();
  data->reserve(rows.size() * 96);
  absl::Status invalid;
  for (const StagedRecipient& r : rows) {
    for (const std::string* text :
         {&r.contact_id, &r.address, &r.variables_json}) {
      if (text->find('\0') != std::string::npos) {
        invalid = absl::InvalidArgumentError(absl::StrCat(
            "row ", r.row, " contains U+0000, which PostgreSQL cannot store"));
      }
    }
    if (r.country.has_value() && r.country->find('\0') != std::string::npos) {
      invalid = absl::InvalidArgumentError(absl::StrCat(
          "row ", r.row, " contains U+0000, which PostgreSQL cannot store"));
    }
    absl::StrAppend(data.get(), campaign_seq, "\t");
    AppendCopyField(*data, r.contact_id);
    data->push_back('\t');
    AppendCopyField(*data, r.address);
    data->push_back('\t');
    AppendCopyField(*data, r.variables_json);
    absl::StrAppend(data.get(), "\tqueued\t", now, "\t", now, "\t");
    if (r.country.has_value()) {
      AppendCopyField(*data, *r.country);
    } else {
      data->append("\\N");
    }
    absl::StrAppend(data.get(), "\t", r.row, "\t", r.line, "\n");
  }
  db_->Write<std::vector<int32_t>>(
      [id = lease.campaign.id, seq = lease.campaign.seq, floor = lease.floor,
       data, invalid, owner = owner_.instance](
          Connection& c) -> absl::StatusOr<std::vector<int32_t>> {
        if (!invalid.ok()) return invalid;
        // FOR SHARE: a rollback's last chunk (which clears the floor)
        // waits for these rows and deletes them.
        ASSIGN_OR_RETURN(bool live,
                         LockImport(c, seq, floor, "FOR SHARE", &owner));
        if (!live) return RolledBack(id);
        if (data->empty()) return std::vector<int32_t>();
        size_t sent = 0;
        absl::StatusOr<int64_t> copied = c.CopyIn(
            "COPY recipients(campaign_seq, contact_id, address, variables, "
            "status, created_at, updated_at, country, import_row, "
            "import_line) FROM STDIN",
            [&](std::string& chunk, absl::Status*) {
              if (sent >= data->size()) return false;
              const size_t n = std::min(kCopyChunkBytes, data->size() - sent);
              chunk.assign(*data, sent, n);
              sent += n;
              return true;
            });
        if (!copied.ok()) return copied.status();
        return std::vector<int32_t>();
      },
      std::move(done));
}

absl::StatusOr<ImportDuplicates> RecipientStore::SettleRecipientImport(
    const ImportLease& lease, size_t max_listed,
    const std::function<bool()>& cancelled) {
  const absl::Time start = absl::Now();
  ImportDuplicates out;
  int64_t kept = 0;
  int64_t after = lease.floor - 1;
  for (;;) {
    if (cancelled && cancelled()) {
      return absl::CancelledError(
          "the import was cancelled while its duplicates were looked for");
    }
    struct Chunk {
      int64_t examined = 0;
      int64_t last = 0;
      int64_t added = 0;
      int64_t dropped = 0;
      std::vector<ImportDuplicates::Row> listed;
    };
    const size_t listing = max_listed - out.first.size();
    int runs = 0;
    // A pooled connection of its own, not the writer: the statement
    // commits on its own and no other write queues behind it.
    absl::StatusOr<Chunk> chunk =
        db_->Read<Chunk>([&](Connection& c) -> absl::StatusOr<Chunk> {
          if (runs++ > 0) {
            // Read's second try after a lost connection: whether the first
            // chunk committed is unknown, so its counts would be too.
            return absl::UnavailableError(
                "connection lost while the import's duplicates were looked "
                "for");
          }
          absl::StatusOr<Rows> rows = c.Query(
              kSettleChunk,
              {absl::StrCat(lease.campaign.seq), absl::StrCat(lease.floor),
               absl::StrCat(after), absl::StrCat(kSettleChunkRows),
               absl::StrCat(listing), owner_.instance});
          if (!rows.ok()) return rows.status();
          if (rows->size() == 0 || IntAt(*rows, 0, "live") == 0) {
            return RolledBack(lease.campaign.id);
          }
          Chunk ch;
          ch.examined = IntAt(*rows, 0, "examined");
          ch.last = IntAt(*rows, 0, "last");
          ch.added = IntAt(*rows, 0, "added");
          ch.dropped = IntAt(*rows, 0, "dropped");
          for (int i = 0; i < rows->size(); ++i) {
            if (!rows->Get(i, "dup_seq").has_value()) continue;
            ImportDuplicates::Row row;
            row.row = IntAt(*rows, i, "import_row");
            row.line = IntAt(*rows, i, "import_line");
            row.address = rows->Text(i, "address");
            ch.listed.push_back(std::move(row));
          }
          return ch;
        });
    if (!chunk.ok()) return chunk.status();
    out.count += chunk->dropped;
    kept += chunk->examined - chunk->dropped;
    for (ImportDuplicates::Row& row : chunk->listed) {
      if (out.first.size() < max_listed) out.first.push_back(std::move(row));
    }
    if (chunk->examined < kSettleChunkRows) break;
    after = chunk->last;
  }
  logging::Info("import settled",
                {{"campaign_id", lease.campaign.id},
                 {"rows", kept + out.count},
                 {"duplicates", out.count},
                 {"seconds", absl::ToDoubleSeconds(absl::Now() - start)}});
  return out;
}

void RecipientStore::CommitRecipientImport(const ImportLease& lease,
                                           int64_t imported,
                                           const std::string& request_id,
                                           const ImportRecord& record,
                                           Done<Campaign> done) {
  db_->Write<Campaign>(
      [lease, imported, request_id, record,
       owner = owner_.instance](Connection& c) -> absl::StatusOr<Campaign> {
        const Campaign& before = lease.campaign;
        // FOR NO KEY UPDATE: a rollback (from any instance) either finished
        // before (the floor is gone) or waits and then finds it gone.
        ASSIGN_OR_RETURN(Campaign camp, LoadCampaign(c, before.account_id,
                                                     before.id, /*lock=*/true));
        // Taken over by another instance (this one was thought dead): it
        // may be rolling the rows back right now.
        ASSIGN_OR_RETURN(bool ours,
                         LockImport(c, camp.seq, lease.floor, "", &owner));
        if (!ours) return RolledBack(camp.id);
        if (!AcceptsRecipientImports(camp.status)) {
          return errors::IllegalTransition(absl::StrCat(
              "campaign ", camp.id, " became ", CampaignStatusName(camp.status),
              " during the import; nothing was imported"));
        }
        if (camp.status != CampaignStatus::kDraft) {
          // A started campaign reserves what the new rows will cost at the
          // prices it started with, or the import is refused
          // (INSUFFICIENT_CREDITS) and adds nothing. The account's row is
          // locked last, after the campaign's (ledger.h).
          ASSIGN_OR_RETURN(const CampaignBilling billing,
                           LoadBilling(c, camp.seq));
          if (billing.billed) {
            ASSIGN_OR_RETURN(const UnitsPlan plan, PrepareUnits(c, camp));
            RowSet rows;
            rows.from_seq = lease.floor;
            ASSIGN_OR_RETURN(const std::vector<CostLineValue> lines,
                             CostLines(c, camp, plan, billing.prices, rows));
            ASSIGN_OR_RETURN(const int64_t cost, SumLines(lines));
            RETURN_IF_ERROR(Reserve(
                c, camp, cost,
                absl::StrCat(imported, " imported recipients of campaign ",
                             camp.id)));
          }
        }
        const std::string now = Micros(NowMicros());
        RETURN_IF_ERROR(
            c.Query("UPDATE campaigns SET total = total + $1, "
                    "queued = queued + $1, import_floor = NULL, "
                    "updated_at = $2 WHERE seq = $3",
                    {absl::StrCat(imported), now, absl::StrCat(camp.seq)})
                .status());
        if (!request_id.empty()) {
          absl::StatusOr<Rows> remembered = c.Query(
              "INSERT INTO idempotency_keys(account_id, method, request_id, "
              "body_hash, resource_id, created_at, response) VALUES ($1, $2, "
              "$3, $4, $5, $6, decode($7, 'hex')) ON CONFLICT DO NOTHING",
              {camp.account_id, kRecipientImportMethod, request_id,
               record.body_hash, camp.id, now,
               absl::BytesToHexString(record.response)});
          if (!remembered.ok()) return remembered.status();
          if (remembered->affected() == 0) {
            // Used meanwhile by a concurrent import into another campaign.
            return errors::IdempotencyConflict(request_id);
          }
        }
        return LoadCampaign(c, camp.account_id, camp.id, /*lock=*/false);
      },
      std::move(done));
}

void RecipientStore::AbortRecipientImport(const ImportLease& lease,
                                          StatusDone done) {
  AbortChunk(
      db_, lease,
      lease.settled ? std::optional<std::string>(std::string()) : std::nullopt,
      std::move(done));
}

void RecipientStore::AbortChunk(Database* db, ImportLease lease,
                                std::optional<std::string> addresses_after,
                                StatusDone done) {
  struct Next {
    std::optional<std::string> addresses_after;
    bool finished = false;
  };
  const int64_t campaign_seq = lease.campaign.seq;
  const int64_t floor = lease.floor;
  // Not a bulk write: an import that failed early is rolled back in this
  // one write, queued before the client hears of the failure, so its retry
  // finds the campaign free.
  db->Write<Next>(
      [campaign_seq, floor,
       addresses_after](Connection& c) -> absl::StatusOr<Next> {
        Next next;
        // FOR NO KEY UPDATE: a commit of the import (or a stage into it,
        // FOR SHARE) waits for this chunk; and nothing is deleted once the
        // floor is gone (the import committed, or another instance rolled it
        // back).
        // Whoever runs the import: a rollback goes on wherever it began.
        ASSIGN_OR_RETURN(bool live, LockImport(c, campaign_seq, floor,
                                               "FOR NO KEY UPDATE", nullptr));
        if (!live) {
          next.finished = true;
          return next;
        }
        const std::string seq = absl::StrCat(campaign_seq);
        const std::string from = absl::StrCat(floor);
        if (addresses_after.has_value()) {
          // The addresses a settled import added (seq >= floor). The set is
          // indexed by address only, so a chunk examines the next
          // kRollbackAddressRows of it in address order, whatever it finds:
          // one pass over the set in all, and no chunk longer than that.
          absl::StatusOr<Rows> scanned = c.Query(
              "WITH scan AS (SELECT address, seq FROM recipient_addresses "
              "WHERE campaign_seq = $1 AND address > $2 ORDER BY address "
              "LIMIT $3), gone AS (DELETE FROM recipient_addresses a USING "
              "scan s WHERE a.campaign_seq = $1 AND a.address = s.address "
              "AND s.seq >= $4 RETURNING 1) SELECT (SELECT count(*) FROM "
              "scan) AS examined, (SELECT address FROM scan ORDER BY address "
              "DESC LIMIT 1) AS last, (SELECT count(*) FROM gone) AS gone",
              {seq, *addresses_after, absl::StrCat(kRollbackAddressRows),
               from});
          if (!scanned.ok()) return scanned.status();
          if (IntAt(*scanned, 0, "examined") == kRollbackAddressRows) {
            next.addresses_after = scanned->Text(0, "last");
            return next;
          }
        }
        // Then the staged rows.
        absl::StatusOr<Rows> deleted = c.Query(
            "DELETE FROM recipients WHERE seq IN (SELECT seq FROM recipients "
            "WHERE campaign_seq = $1 AND status = 'queued' AND seq >= $2 "
            "ORDER BY seq LIMIT $3)",
            {seq, from, absl::StrCat(kRollbackChunkRows)});
        if (!deleted.ok()) return deleted.status();
        if (deleted->affected() == kRollbackChunkRows) return next;
        RETURN_IF_ERROR(c.Query("UPDATE campaigns SET import_floor = NULL "
                                "WHERE seq = $1 AND import_floor = $2",
                                {seq, from})
                            .status());
        next.finished = true;
        return next;
      },
      [db, lease = std::move(lease), addresses_after,
       done = std::move(done)](absl::StatusOr<Next> next) mutable {
        if (!next.ok()) {
          // The floor stays set until the rollback ends: try again later
          // rather than leave the campaign refusing imports until the next
          // recovery.
          absl::Status error = next.status();
          db->AgainLater(
              "recipient import rollback", error,
              [db, lease, addresses_after, done] {
                AbortChunk(db, lease, addresses_after, done);
              },
              [done, error] {
                if (done) done(error);
              });
        } else if (!next->finished) {
          AbortChunk(db, std::move(lease), std::move(next->addresses_after),
                     std::move(done));
        } else if (done) {
          done(absl::OkStatus());
        }
      });
}

absl::StatusOr<int> RecipientStore::RecoverInterruptedImports(
    ImportResponseFinisher finish) {
  // Taken over (this instance their owner now) in one statement: of two
  // instances recovering at once, one rolls each import back. Each import,
  // and the instance that ran it:
  using Taken = std::vector<std::pair<ImportLease, std::string>>;
  ASSIGN_OR_RETURN(
      Taken leases,
      db_->WriteSync<Taken>(
          [owner = owner_](Connection& c) -> absl::StatusOr<Taken> {
            absl::StatusOr<Rows> rows =
                TakeOver(c,
                         {.table = "campaigns",
                          .key = "seq",
                          .owner_column = "work_owner",
                          .where = "import_floor IS NOT NULL",
                          .lock = "FOR NO KEY UPDATE",
                          .returning = "c.*"},
                         owner);
            if (!rows.ok()) return rows.status();
            Taken out;
            for (int i = 0; i < rows->size(); ++i) {
              ImportLease lease;
              lease.campaign = ReadCampaign(*rows, i);
              lease.floor = *lease.campaign.import_floor;
              lease.settled = true;  // it may have added addresses
              out.emplace_back(std::move(lease), rows->Text(i, "was"));
            }
            return out;
          }));
  for (const auto& [lease, was] : leases) {
    logging::Warn(
        "rolling back a recipient import that its instance left unfinished "
        "(stopped, or no heartbeat within the lease ttl)",
        {{"campaign_id", lease.campaign.id}, {"owner", was}});
    AbortRecipientImport(lease, nullptr);
  }
  int contact_imports = 0;
  if (contacts_ != nullptr) {
    ASSIGN_OR_RETURN(contact_imports,
                     contacts_->ResumeContactImports(std::move(finish)));
  }
  return static_cast<int>(leases.size()) + contact_imports;
}

absl::StatusOr<std::optional<ImportRecord>> RecipientStore::FindImportRecord(
    const std::string& account_id, const std::string& method,
    const std::string& request_id) {
  return db_->Read<std::optional<ImportRecord>>(
      [&](Connection& c) -> absl::StatusOr<std::optional<ImportRecord>> {
        absl::StatusOr<Rows> rows = c.Query(
            "SELECT body_hash, resource_id, encode(response, 'hex') AS "
            "response FROM idempotency_keys WHERE account_id = $1 AND "
            "method = $2 AND request_id = $3",
            {account_id, method, request_id});
        if (!rows.ok()) return rows.status();
        if (rows->size() == 0) return std::optional<ImportRecord>();
        ImportRecord record;
        record.body_hash = rows->Text(0, "body_hash");
        record.campaign_id = rows->Text(0, "resource_id");
        record.response = absl::HexStringToBytes(rows->Text(0, "response"));
        return std::optional<ImportRecord>(std::move(record));
      });
}

absl::StatusOr<std::map<std::string, std::string>>
RecipientStore::ContactAddresses(const std::string& account_id, Channel channel,
                                 const std::vector<std::string>& contact_ids) {
  using Addresses = std::map<std::string, std::string>;
  if (contact_ids.empty()) return Addresses();
  return db_->Read<Addresses>([&](Connection& c) -> absl::StatusOr<Addresses> {
    absl::StatusOr<Rows> rows = c.Query(
        "SELECT id, address FROM contacts WHERE account_id = $1 AND "
        "channel = $2 AND id IN (SELECT jsonb_array_elements_text($3::jsonb))",
        {account_id, std::string(ChannelName(channel)),
         ListToJson(contact_ids)});
    if (!rows.ok()) return rows.status();
    Addresses out;
    for (int i = 0; i < rows->size(); ++i) {
      out.emplace(rows->Text(i, "id"), rows->Text(i, "address"));
    }
    return out;
  });
}

absl::StatusOr<Page<Recipient>> RecipientStore::ListRecipients(
    const std::string& account_id, const std::string& campaign_id,
    RecipientStatus status, const PageRequest& page) {
  ASSIGN_OR_RETURN(const RecipientIdCodec* codec, Codec());
  return db_->Read<Page<Recipient>>([&](Connection& c)
                                        -> absl::StatusOr<Page<Recipient>> {
    ASSIGN_OR_RETURN(Campaign camp,
                     LoadCampaign(c, account_id, campaign_id, /*lock=*/false));
    const int64_t floor = camp.import_floor.value_or(kNoImportFloor);
    const bool keyset = page.after_key > 0;
    const int64_t offset = keyset ? 0 : page.offset();
    // Every query walks recipients_by_status (campaign_seq, status, seq) in
    // seq order, one status at a time, and stops after the page: no sort
    // of the campaign's rows, whatever the planner's statistics say.
    std::vector<std::string> statuses;
    if (status != RecipientStatus::kUnspecified) {
      statuses.emplace_back(RecipientStatusName(status));
    } else {
      for (int s = 1; s <= kRecipientStatusMax; ++s) {
        statuses.emplace_back(
            RecipientStatusName(static_cast<RecipientStatus>(s)));
      }
    }
    // Each status gives at most the rows the page could need; the page is
    // then cut from their merge.
    const std::string sql =
        "SELECT r.* FROM unnest($2::text[]) AS s(status) CROSS JOIN LATERAL "
        "(SELECT * FROM recipients WHERE campaign_seq = $1 AND status = "
        "s.status AND seq > $3 AND seq < $4 ORDER BY seq LIMIT $5) AS r "
        "ORDER BY r.seq LIMIT $6 OFFSET $7";
    const std::vector<std::optional<std::string>> params = {
        absl::StrCat(camp.seq),
        absl::StrCat("{", absl::StrJoin(statuses, ","), "}"),
        absl::StrCat(page.after_key),
        absl::StrCat(floor),
        absl::StrCat(offset + page.limit + 1),
        absl::StrCat(page.limit + 1),
        absl::StrCat(offset)};
    absl::StatusOr<Rows> rows = c.Query(sql, params);
    if (!rows.ok()) return rows.status();
    Page<Recipient> out;
    for (int i = 0; i < rows->size(); ++i) {
      out.items.push_back(ReadRecipient(*rows, i, *codec));
      out.items.back().campaign_id = camp.id;
    }
    out.has_more = out.items.size() > static_cast<size_t>(page.limit);
    if (out.has_more) {
      out.items.pop_back();
      out.next_key = out.items.back().seq;
    }
    out.total = CounterOf(camp.stats, status);
    out.page = page.page;
    out.limit = page.limit;
    return out;
  });
}

}  // namespace campaigns::storage::postgres
