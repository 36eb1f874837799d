// Store: recipients and their imports.
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/domain/errors.h"
#include "server/domain/mutex.h"
#include "server/log/log.h"
#include "storage/rows.h"
#include "storage/store.h"
#include "storage/store_internal.h"

namespace campaigns::storage {
namespace {

using internal::kAbortChunkRows;
using internal::kNoFloor;
using internal::LoadCampaign;

bool AcceptsImports(CampaignStatus s) {
  return s == CampaignStatus::kDraft || s == CampaignStatus::kScheduled ||
         s == CampaignStatus::kPaused;
}

int64_t StatusCounter(CampaignStats stats, RecipientStatus status) {
  const int64_t* counter = internal::Counter(stats, status);
  return counter != nullptr ? *counter : stats.total;
}

}  // namespace

namespace internal {

Recipient ReadRecipient(SQLite::Statement& st, const RecipientIdCodec& codec) {
  Recipient r;
  r.seq = st.getColumn("seq").getInt64();
  r.id = codec.Encode(r.seq);
  r.contact_id = st.getColumn("contact_id").getString();
  r.address = st.getColumn("address").getString();
  r.variables = MapFromJson(st.getColumn("variables").getString());
  ParseRecipientStatus(st.getColumn("status").getString(), &r.status);
  r.skip_reason = st.getColumn("skip_reason").getString();
  r.provider_message_id = st.getColumn("provider_message_id").getString();
  r.provider = st.getColumn("provider").getString();
  r.error_code = st.getColumn("error_code").getString();
  r.error_desc = st.getColumn("error_desc").getString();
  r.attempts = st.getColumn("attempts").getInt();
  r.retries = st.getColumn("retries").getInt();
  r.in_doubt = st.getColumn("handed").getInt() != 0;
  r.sent_at = OptionalTime(st.getColumn("sent_at"));
  r.delivered_at = OptionalTime(st.getColumn("delivered_at"));
  r.read_at = OptionalTime(st.getColumn("read_at"));
  r.created_at = FromMicros(st.getColumn("created_at").getInt64());
  r.updated_at = FromMicros(st.getColumn("updated_at").getInt64());
  return r;
}

}  // namespace internal

std::string VariablesToJson(const std::map<std::string, std::string>& vars) {
  return MapToJson(vars);
}

Store::~Store() = default;

absl::StatusOr<const RecipientIdCodec*> Store::Codec() {
  std::call_once(codec_once_, [this] {
    codec_ =
        db_->Read([](SQLite::Database& db)
                      -> absl::StatusOr<std::unique_ptr<RecipientIdCodec>> {
          SQLite::Statement st(
              db, "SELECT value FROM meta WHERE key='recipient_id_key'");
          if (!st.executeStep()) {
            return absl::InternalError("recipient id key missing");
          }
          absl::StatusOr<RecipientIdCodec> codec =
              RecipientIdCodec::FromHexKey(st.getColumn(0).getString());
          if (!codec.ok()) return codec.status();
          return std::make_unique<RecipientIdCodec>(*codec);
        });
  });
  if (!codec_.ok()) return codec_.status();
  return codec_->get();
}

void Store::BeginRecipientImport(const std::string& account_id,
                                 const std::string& campaign_id,
                                 Callback<ImportLease> done) {
  db_->Write<ImportLease>(
      [account_id,
       campaign_id](SQLite::Database& db) -> absl::StatusOr<ImportLease> {
        ASSIGN_OR_RETURN(Campaign c, LoadCampaign(db, account_id, campaign_id));
        if (!AcceptsImports(c.status)) {
          return errors::IllegalTransition(absl::StrCat(
              "campaign ", campaign_id, " is ", CampaignStatusName(c.status),
              "; recipients can be imported while it is draft, scheduled or "
              "paused"));
        }
        if (!c.contact_list_id.empty() || !c.tags.empty() ||
            !c.contact_ids.empty()) {
          return errors::Validation(
              "campaign_id",
              absl::StrCat("campaign ", campaign_id,
                           " takes its audience from contacts; recipients "
                           "cannot be imported into it"));
        }
        if (c.import_floor.has_value()) {
          return errors::Validation(
              "campaign_id",
              absl::StrCat("another import into campaign ", campaign_id,
                           " is running or being rolled back; retry when it "
                           "has finished"));
        }
        // AUTOINCREMENT: every later row gets a larger seq than any so far.
        int64_t floor = 1;
        SQLite::Statement last(
            db, "SELECT seq FROM sqlite_sequence WHERE name='recipients'");
        if (last.executeStep()) floor = last.getColumn(0).getInt64() + 1;
        SQLite::Statement mark(
            db, "UPDATE campaigns SET import_floor=? WHERE id=?");
        mark.bind(1, static_cast<int64_t>(floor));
        mark.bind(2, campaign_id);
        mark.exec();
        return ImportLease{std::move(c), floor};
      },
      std::move(done));
}

void Store::StageRecipients(const ImportLease& lease,
                            std::vector<StagedRecipient> rows,
                            Callback<std::vector<int32_t>> done) {
  db_->Write<std::vector<int32_t>>(
      [campaign_seq = lease.campaign.seq, rows = std::move(rows)](
          SQLite::Database& db) -> absl::StatusOr<std::vector<int32_t>> {
        const int64_t now = ToMicros(NowMicros());
        SQLite::Statement st(
            db,
            "INSERT INTO recipients(campaign_seq, contact_id, address, "
            "variables, status, created_at, updated_at, country, import_row, "
            "import_line) VALUES(?1,?2,?3,?4,'queued',?5,?5,?6,?7,?8)");
        st.bind(1, static_cast<int64_t>(campaign_seq));
        st.bind(5, static_cast<int64_t>(now));
        for (const StagedRecipient& r : rows) {
          st.bindNoCopy(2, r.contact_id);
          st.bindNoCopy(3, r.address);
          st.bindNoCopy(4, r.variables_json);
          if (r.country.has_value()) {
            st.bindNoCopy(6, *r.country);
          } else {
            st.bind(6);
          }
          st.bind(7, static_cast<int64_t>(r.row));
          st.bind(8, static_cast<int64_t>(r.line));
          st.exec();
          st.reset();
        }
        return std::vector<int32_t>();
      },
      std::move(done), /*bulk=*/true);
}

namespace {

// SettleRecipientImport's writes: chunks of the address set to add and of
// duplicate rows to delete, each one bulk op of the writer, at most
// kMaxInFlight queued at once so that memory stays bounded while the sort
// streams. Thread-safe.
class SettleWrites {
 public:
  static constexpr size_t kChunkRows = 16384;
  static constexpr int kMaxInFlight = 2;

  SettleWrites(Database* db, int64_t campaign_seq)
      : db_(db), campaign_seq_(campaign_seq) {}
  // Waits for the writes still queued (they hold only shared state).
  ~SettleWrites() { Wait(0); }

  // False once a write failed: stop reading, the import is aborted.
  bool Add(std::string address, int64_t seq) {
    adds_.emplace_back(std::move(address), seq);
    return adds_.size() < kChunkRows || Flush();
  }
  bool Drop(int64_t seq) {
    drops_.push_back(seq);
    return drops_.size() < kChunkRows || Flush();
  }
  // Queues what is buffered; false once a write failed.
  bool Flush() {
    if (!adds_.empty() || !drops_.empty()) {
      Wait(kMaxInFlight - 1);
      {
        MutexLock lock(&state_->mu);
        if (!state_->error.ok()) return false;
        ++state_->in_flight;
      }
      std::sort(drops_.begin(), drops_.end());
      db_->WriteRaw(
          [campaign_seq = campaign_seq_, adds = std::move(adds_),
           drops = std::move(drops_)](SQLite::Database& db) -> absl::Status {
            SQLite::Statement add(db,
                                  "INSERT INTO recipient_addresses("
                                  "campaign_seq, address, seq) VALUES(?,?,?)");
            add.bind(1, static_cast<int64_t>(campaign_seq));
            for (const auto& [address, seq] : adds) {
              add.bindNoCopy(2, address);
              add.bind(3, static_cast<int64_t>(seq));
              add.exec();
              add.reset();
            }
            SQLite::Statement drop(db, "DELETE FROM recipients WHERE seq=?");
            for (int64_t seq : drops) {
              drop.bind(1, static_cast<int64_t>(seq));
              drop.exec();
              drop.reset();
            }
            return absl::OkStatus();
          },
          [state = state_](absl::Status status) {
            MutexLock lock(&state->mu);
            if (state->error.ok()) state->error = std::move(status);
            --state->in_flight;
            state->cv.SignalAll();
          },
          /*bulk=*/true);
      adds_.clear();
      drops_.clear();
    }
    MutexLock lock(&state_->mu);
    return state_->error.ok();
  }
  // Flushes and waits for every write; the first failure, if any.
  absl::Status Finish() {
    Flush();
    Wait(0);
    MutexLock lock(&state_->mu);
    return state_->error;
  }

 private:
  struct State {
    Mutex mu;
    CondVar cv;
    int in_flight ABSL_GUARDED_BY(mu) = 0;
    absl::Status error ABSL_GUARDED_BY(mu);
  };
  void Wait(int at_most) {
    MutexLock lock(&state_->mu);
    while (state_->in_flight > at_most) state_->cv.Wait(&state_->mu);
  }

  Database* const db_;
  const int64_t campaign_seq_;
  const std::shared_ptr<State> state_ = std::make_shared<State>();
  std::vector<std::pair<std::string, int64_t>> adds_;
  std::vector<int64_t> drops_;
};

}  // namespace

absl::StatusOr<ImportDuplicates> Store::SettleRecipientImport(
    const ImportLease& lease, size_t max_listed) {
  const int64_t campaign_seq = lease.campaign.seq;
  ImportDuplicates out;
  // The first duplicates by row: a max-heap of at most max_listed.
  auto later_row = [](const ImportDuplicates::Row& a,
                      const ImportDuplicates::Row& b) { return a.row < b.row; };
  SettleWrites writes(db_, campaign_seq);
  absl::Status read = db_->Read([&](SQLite::Database& db) -> absl::Status {
    // One snapshot for both cursors: the address set as it was before this
    // import added to it (its own additions come after, in the writer).
    SQLite::Transaction snapshot(db, SQLite::TransactionBehavior::DEFERRED);
    SQLite::Statement known(db,
                            "SELECT address FROM recipient_addresses WHERE "
                            "campaign_seq=? ORDER BY address");
    known.bind(1, static_cast<int64_t>(campaign_seq));
    bool more_known = known.executeStep();
    SQLite::Statement staged(
        db,
        "SELECT address, seq, import_row, import_line FROM recipients WHERE "
        "seq>=?2 AND campaign_seq=?1 ORDER BY address, seq");
    staged.bind(1, static_cast<int64_t>(campaign_seq));
    staged.bind(2, static_cast<int64_t>(lease.floor));
    std::string previous;
    bool first = true;
    while (staged.executeStep()) {
      const char* text = staged.getColumn(0).getText();
      const size_t size = static_cast<size_t>(staged.getColumn(0).getBytes());
      absl::string_view address(text, size);
      const int64_t seq = staged.getColumn(1).getInt64();
      while (more_known &&
             absl::string_view(known.getColumn(0).getText(),
                               static_cast<size_t>(
                                   known.getColumn(0).getBytes())) < address) {
        more_known = known.executeStep();
      }
      const bool duplicate =
          (!first && address == previous) ||
          (more_known &&
           absl::string_view(
               known.getColumn(0).getText(),
               static_cast<size_t>(known.getColumn(0).getBytes())) == address);
      first = false;
      if (address != previous) previous.assign(address.data(), address.size());
      if (!duplicate) {
        if (!writes.Add(std::string(address), seq)) break;
        continue;
      }
      ++out.count;
      if (max_listed > 0) {
        ImportDuplicates::Row row;
        row.row = staged.getColumn(2).getInt64();
        row.line = staged.getColumn(3).getInt64();
        if (out.first.size() < max_listed || row.row < out.first.front().row) {
          row.address = std::string(address);
          out.first.push_back(std::move(row));
          std::push_heap(out.first.begin(), out.first.end(), later_row);
          if (out.first.size() > max_listed) {
            std::pop_heap(out.first.begin(), out.first.end(), later_row);
            out.first.pop_back();
          }
        }
      }
      if (!writes.Drop(seq)) break;
    }
    return absl::OkStatus();
  });
  absl::Status written = writes.Finish();
  if (!read.ok()) return read;
  if (!written.ok()) return written;
  std::sort_heap(out.first.begin(), out.first.end(), later_row);
  return out;
}

void Store::CommitRecipientImport(const ImportLease& lease, int64_t imported,
                                  const std::string& request_id,
                                  const ImportRecord& record,
                                  Callback<Campaign> done) {
  db_->Write<Campaign>(
      [lease, imported, request_id,
       record](SQLite::Database& db) -> absl::StatusOr<Campaign> {
        const Campaign& before = lease.campaign;
        ASSIGN_OR_RETURN(Campaign c,
                         LoadCampaign(db, before.account_id, before.id));
        if (c.import_floor != lease.floor) {
          return absl::AbortedError(
              absl::StrCat("the import into campaign ", c.id,
                           " was rolled back before it could finish"));
        }
        if (!AcceptsImports(c.status)) {
          return errors::IllegalTransition(absl::StrCat(
              "campaign ", c.id, " became ", CampaignStatusName(c.status),
              " during the import; nothing was imported"));
        }
        if (c.status != CampaignStatus::kDraft) {
          // A started campaign reserves what the new rows will cost.
          internal::RowSet rows;
          rows.from_seq = lease.floor;
          RETURN_IF_ERROR(internal::ReserveRows(
              db, c, rows, absl::StrCat(imported, " imported recipients")));
        }
        const int64_t now = ToMicros(NowMicros());
        SQLite::Statement update(
            db,
            "UPDATE campaigns SET total=total+?1, queued=queued+?1, "
            "import_floor=NULL, updated_at=?2 WHERE id=?3");
        update.bind(1, static_cast<int64_t>(imported));
        update.bind(2, static_cast<int64_t>(now));
        update.bind(3, c.id);
        update.exec();
        if (!request_id.empty()) {
          SQLite::Statement remember(
              db,
              "INSERT INTO idempotency_keys(account_id, method, request_id, "
              "body_hash, resource_id, created_at, response) "
              "VALUES(?,?,?,?,?,?,?) ON CONFLICT DO NOTHING");
          remember.bind(1, c.account_id);
          remember.bind(2, "ImportRecipients");
          remember.bind(3, request_id);
          remember.bind(4, record.body_hash);
          remember.bind(5, c.id);
          remember.bind(6, static_cast<int64_t>(now));
          remember.bind(7, record.response.data(),
                        static_cast<int>(record.response.size()));
          if (remember.exec() == 0) {
            // Used meanwhile by a concurrent import into another campaign.
            return errors::IdempotencyConflict(request_id);
          }
        }
        return LoadCampaign(db, c.account_id, c.id);
      },
      std::move(done));
}

void Store::AbortRecipientImport(const ImportLease& lease,
                                 StatusCallback done) {
  AbortAddressChunk(lease, std::string(), std::move(done));
}

void Store::AbortAddressChunk(ImportLease lease, std::string after,
                              StatusCallback done) {
  const int64_t campaign_seq = lease.campaign.seq;
  const int64_t floor = lease.floor;
  // The addresses a settled import added (seq >= floor), in address order
  // after `after`: a chunk never scans what an earlier one passed.
  db_->Write<std::optional<std::string>>(
      [campaign_seq, floor, after](
          SQLite::Database& db) -> absl::StatusOr<std::optional<std::string>> {
        SQLite::Statement find(
            db,
            "SELECT address FROM recipient_addresses WHERE campaign_seq=?1 "
            "AND address>?2 AND seq>=?3 ORDER BY address LIMIT ?4");
        find.bind(1, static_cast<int64_t>(campaign_seq));
        find.bind(2, after);
        find.bind(3, static_cast<int64_t>(floor));
        find.bind(4, kAbortChunkRows);
        std::vector<std::string> found;
        while (find.executeStep())
          found.push_back(find.getColumn(0).getString());
        SQLite::Statement del(db,
                              "DELETE FROM recipient_addresses WHERE "
                              "campaign_seq=? AND address=?");
        del.bind(1, static_cast<int64_t>(campaign_seq));
        for (const std::string& address : found) {
          del.bindNoCopy(2, address);
          del.exec();
          del.reset();
        }
        if (found.size() < static_cast<size_t>(kAbortChunkRows)) {
          return std::optional<std::string>();
        }
        return std::optional<std::string>(found.back());
      },
      [this, lease = std::move(lease), after, done = std::move(done)](
          absl::StatusOr<std::optional<std::string>> next) mutable {
        if (!next.ok()) {
          absl::Status error = next.status();
          AgainLater(
              "import rollback", error,
              [this, lease, after, done] {
                AbortAddressChunk(lease, after, done);
              },
              [done, error] {
                if (done) done(error);
              });
        } else if (next->has_value()) {
          AbortAddressChunk(std::move(lease), **next, std::move(done));
        } else {
          AbortChunk(std::move(lease), std::move(done));
        }
      },
      /*bulk=*/true);
}

void Store::AbortChunk(ImportLease lease, StatusCallback done) {
  const std::string campaign_id = lease.campaign.id;
  const int64_t campaign_seq = lease.campaign.seq;
  const int64_t floor = lease.floor;
  db_->Write<bool>(
      [campaign_id, campaign_seq,
       floor](SQLite::Database& db) -> absl::StatusOr<bool> {
        SQLite::Statement del(
            db,
            "DELETE FROM recipients WHERE seq IN (SELECT seq FROM recipients "
            "INDEXED BY recipients_by_status WHERE campaign_seq=?1 AND "
            "status='queued' AND seq>=?2 LIMIT ?3)");
        del.bind(1, static_cast<int64_t>(campaign_seq));
        del.bind(2, static_cast<int64_t>(floor));
        del.bind(3, kAbortChunkRows);
        if (del.exec() == kAbortChunkRows) return false;
        SQLite::Statement clear(
            db,
            "UPDATE campaigns SET import_floor=NULL WHERE id=? AND "
            "import_floor=?");
        clear.bind(1, campaign_id);
        clear.bind(2, static_cast<int64_t>(floor));
        clear.exec();
        return true;
      },
      [this, lease = std::move(lease),
       done = std::move(done)](absl::StatusOr<bool> finished) mutable {
        if (!finished.ok()) {
          // The import floor stays set until the rollback ends: try again
          // rather than leave the campaign refusing imports until a restart.
          absl::Status error = finished.status();
          AgainLater(
              "import rollback", error,
              [this, lease, done] { AbortChunk(lease, done); },
              [done, error] {
                if (done) done(error);
              });
        } else if (!*finished) {
          AbortChunk(std::move(lease), std::move(done));
        } else if (done) {
          done(absl::OkStatus());
        }
      });
}

void Store::AgainLater(const char* chain, const absl::Status& error,
                       std::function<void()> again,
                       std::function<void()> closed) {
  // At most a few lines a second: a full disk fails every attempt.
  static logging::RateLimited limit(5, absl::Seconds(10));
  int64_t suppressed = 0;
  if (limit.Allow(&suppressed)) {
    logging::Warn("storage write failed; trying again",
                  {{"chain", chain},
                   {"error", error.ToString()},
                   {"suppressed", suppressed}});
  }
  db_->RetryLater(
      [again = std::move(again), closed = std::move(closed)](bool open) {
        if (open) {
          again();
        } else if (closed) {
          closed();
        }
      });
}

absl::StatusOr<int> Store::RecoverInterruptedImports(
    ImportResponseFinisher finish) {
  absl::StatusOr<std::vector<ImportLease>> leases = db_->Read(
      [](SQLite::Database& db) -> absl::StatusOr<std::vector<ImportLease>> {
        SQLite::Statement st(
            db, "SELECT * FROM campaigns WHERE import_floor IS NOT NULL");
        std::vector<ImportLease> out;
        while (st.executeStep()) {
          ImportLease lease;
          lease.campaign = ReadCampaign(st);
          lease.floor = *lease.campaign.import_floor;
          out.push_back(std::move(lease));
        }
        return out;
      });
  if (!leases.ok()) return leases.status();
  for (const ImportLease& lease : *leases) {
    AbortRecipientImport(lease, nullptr);
  }
  ASSIGN_OR_RETURN(int contact_imports,
                   RecoverContactImports(std::move(finish)));
  return static_cast<int>(leases->size()) + contact_imports;
}

absl::StatusOr<std::optional<ImportRecord>> Store::FindImportRecord(
    const std::string& account_id, const std::string& method,
    const std::string& request_id) {
  return db_->Read(
      [&](SQLite::Database& db) -> absl::StatusOr<std::optional<ImportRecord>> {
        SQLite::Statement st(db,
                             "SELECT body_hash, resource_id, response FROM "
                             "idempotency_keys WHERE account_id=? AND method=? "
                             "AND request_id=?");
        st.bind(1, account_id);
        st.bind(2, method);
        st.bind(3, request_id);
        if (!st.executeStep()) return std::optional<ImportRecord>();
        ImportRecord record;
        record.body_hash = st.getColumn(0).getString();
        record.campaign_id = st.getColumn(1).getString();
        record.response = st.getColumn(2).getString();
        return std::optional<ImportRecord>(std::move(record));
      });
}

absl::StatusOr<std::vector<bool>> Store::SuppressedAmong(
    const std::string& account_id, Channel channel,
    const std::vector<std::string>& addresses) {
  return db_->Read(
      [&](SQLite::Database& db) -> absl::StatusOr<std::vector<bool>> {
        std::vector<bool> out(addresses.size(), false);
        SQLite::Statement any(
            db, "SELECT EXISTS(SELECT 1 FROM suppressions WHERE account_id=?)");
        any.bind(1, account_id);
        if (!any.executeStep() || any.getColumn(0).getInt() == 0) return out;
        SQLite::Statement st(db,
                             "SELECT 1 FROM suppressions WHERE account_id=?1 "
                             "AND address=?2 AND channel IN (?3, '') LIMIT 1");
        st.bind(1, account_id);
        st.bind(3, std::string(ChannelName(channel)));
        for (size_t i = 0; i < addresses.size(); ++i) {
          st.bindNoCopy(2, addresses[i]);
          out[i] = st.executeStep();
          st.reset();
        }
        return out;
      });
}

absl::StatusOr<std::map<std::string, std::string>> Store::ContactAddresses(
    const std::string& account_id, Channel channel,
    const std::vector<std::string>& contact_ids) {
  return db_->Read([&](SQLite::Database& db)
                       -> absl::StatusOr<std::map<std::string, std::string>> {
    std::map<std::string, std::string> out;
    SQLite::Statement st(db,
                         "SELECT address FROM contacts WHERE id=?1 AND "
                         "account_id=?2 AND channel=?3");
    st.bind(2, account_id);
    st.bind(3, std::string(ChannelName(channel)));
    for (const std::string& id : contact_ids) {
      if (out.count(id) > 0) continue;
      st.bindNoCopy(1, id);
      if (st.executeStep()) out.emplace(id, st.getColumn(0).getString());
      st.reset();
    }
    return out;
  });
}

absl::StatusOr<Page<Recipient>> Store::ListRecipients(
    const std::string& account_id, const std::string& campaign_id,
    RecipientStatus status, const PageRequest& page) {
  ASSIGN_OR_RETURN(const RecipientIdCodec* codec, Codec());
  return db_->Read([&](SQLite::Database& db)
                       -> absl::StatusOr<Page<Recipient>> {
    ASSIGN_OR_RETURN(Campaign c, LoadCampaign(db, account_id, campaign_id));
    const int64_t floor = c.import_floor.value_or(kNoFloor);
    int64_t after = page.after_key;
    const bool keyset = after > 0;
    std::string sql;
    if (status != RecipientStatus::kUnspecified) {
      sql =
          "SELECT * FROM recipients INDEXED BY recipients_by_status WHERE "
          "campaign_seq=?1 AND status=?2 AND seq>?3 AND seq<?4 ORDER BY seq";
    } else {
      // In seq order along the table itself, from the campaign's first row
      // (found through the status index): no sort, however many rows.
      if (!keyset) {
        SQLite::Statement first(
            db,
            "SELECT MIN(seq) FROM recipients INDEXED BY recipients_by_status "
            "WHERE campaign_seq=?1 AND status=?2");
        first.bind(1, static_cast<int64_t>(c.seq));
        int64_t min_seq = kNoFloor;
        for (int s = 1; s <= kRecipientStatusMax; ++s) {
          first.bind(2, std::string(RecipientStatusName(
                            static_cast<RecipientStatus>(s))));
          if (first.executeStep() && !first.getColumn(0).isNull()) {
            min_seq = std::min(min_seq, first.getColumn(0).getInt64());
          }
          first.reset();
        }
        after = min_seq == kNoFloor ? kNoFloor - 1 : min_seq - 1;
      }
      sql =
          "SELECT * FROM recipients NOT INDEXED WHERE seq>?3 AND seq<?4 AND "
          "campaign_seq=?1 AND ?2=?2 ORDER BY seq";
    }
    sql += keyset ? " LIMIT ?5" : " LIMIT ?5 OFFSET ?6";
    SQLite::Statement st(db, sql);
    st.bind(1, static_cast<int64_t>(c.seq));
    st.bind(2, std::string(RecipientStatusName(status)));
    st.bind(3, static_cast<int64_t>(after));
    st.bind(4, static_cast<int64_t>(floor));
    st.bind(5, page.limit + 1);
    if (!keyset) st.bind(6, static_cast<int64_t>(page.offset()));
    Page<Recipient> out;
    while (st.executeStep()) {
      out.items.push_back(internal::ReadRecipient(st, *codec));
      out.items.back().campaign_id = c.id;
    }
    out.has_more = out.items.size() > static_cast<size_t>(page.limit);
    if (out.has_more) {
      out.items.pop_back();
      out.next_key = out.items.back().seq;
    }
    out.total = StatusCounter(c.stats, status);
    out.page = page.page;
    out.limit = page.limit;
    return out;
  });
}

}  // namespace campaigns::storage
