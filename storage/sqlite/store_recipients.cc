// Store: recipients and their imports.
#include <SQLiteCpp/Column.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/domain/errors.h"
#include "server/domain/mutex.h"
#include "server/log/log.h"
#include "storage/sqlite/rows.h"
#include "storage/sqlite/store.h"
#include "storage/sqlite/store_internal.h"

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
  r.seq = Col(st, "seq").getInt64();
  r.id = codec.Encode(r.seq);
  r.contact_id = Col(st, "contact_id").getString();
  r.address = Col(st, "address").getString();
  r.variables = MapFromJson(Col(st, "variables").getString());
  ParseRecipientStatus(Col(st, "status").getString(), &r.status);
  r.skip_reason = Col(st, "skip_reason").getString();
  r.provider_message_id = Col(st, "provider_message_id").getString();
  r.provider = Col(st, "provider").getString();
  r.error_code = Col(st, "error_code").getString();
  r.error_desc = Col(st, "error_desc").getString();
  r.attempts = Col(st, "attempts").getInt();
  r.retries = Col(st, "retries").getInt();
  r.in_doubt = Col(st, "handed").getInt() != 0;
  r.sent_at = OptionalTime(Col(st, "sent_at"));
  r.delivered_at = OptionalTime(Col(st, "delivered_at"));
  r.read_at = OptionalTime(Col(st, "read_at"));
  r.created_at = FromMicros(Col(st, "created_at").getInt64());
  r.updated_at = FromMicros(Col(st, "updated_at").getInt64());
  return r;
}

}  // namespace internal

Store::Store(Database* db) : db_(db) {
  db_->ObserveTable("campaigns", [this](bool ended) {
    if (!ended) campaigns_changing_.store(true, std::memory_order_release);
    campaigns_.InvalidateAll();
    if (ended) campaigns_changing_.store(false, std::memory_order_release);
  });
}

Store::~Store() { db_->ObserveTable("campaigns", nullptr); }

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
        const int64_t floor = internal::LastRecipientSeq(db) + 1;
        SQLite::Statement mark(
            db, "UPDATE campaigns SET import_floor=? WHERE id=?");
        mark.bind(1, static_cast<int64_t>(floor));
        mark.bind(2, campaign_id);
        mark.exec();
        return ImportLease{std::move(c), floor, /*settled=*/false};
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

// A text column's bytes, valid until the statement steps or resets.
absl::string_view TextOf(const SQLite::Column& column) {
  return absl::string_view(column.getText(),
                           static_cast<size_t>(column.getBytes()));
}

// SettleRecipientImport's writes, each one bulk op of the writer, at most
// kMaxInFlight queued at once so that memory stays bounded while the sort
// streams: the new addresses, in address order as they come; the
// duplicates to delete, kept back (up to kMaxKeptDrops) and deleted in seq
// order, so that a page holding several is written once rather than once
// per chunk that met one. Not thread-safe (one settle's thread); the
// writes' completions share only State.
class SettleWrites {
 public:
  // Rows per write: addresses are added in order (a few pages each), but
  // each deleted duplicate rewrites a page of its own, so its chunks are
  // smaller to keep other writes' wait behind one short.
  static constexpr size_t kAddRows = 8192;
  static constexpr size_t kDropRows = 1024;
  static constexpr size_t kMaxKeptDrops = size_t{1} << 20;  // 8 MiB
  static constexpr int kMaxInFlight = 2;

  SettleWrites(Database* db, int64_t campaign_seq)
      : db_(db), campaign_seq_(campaign_seq) {}
  // Waits for the writes still queued (they hold only shared state).
  ~SettleWrites() { Wait(0); }

  // Each returns false once a write failed: stop reading, the import is
  // aborted.
  bool Add(std::string address, int64_t seq) {
    adds_.emplace_back(std::move(address), seq);
    return adds_.size() < kAddRows || FlushAdds();
  }
  bool Drop(int64_t seq) {
    drops_.push_back(seq);
    return drops_.size() < kMaxKeptDrops || FlushDrops();
  }
  // Queues what is buffered (unless !flush) and waits for every write; the
  // first failure.
  absl::Status Finish(bool flush) {
    if (flush && FlushAdds()) FlushDrops();
    Wait(0);
    MutexLock lock(&state_->mu);
    return state_->error;
  }
  // Time spent waiting for the writer (it was the bottleneck then).
  absl::Duration waited() const { return waited_; }

 private:
  struct State {
    Mutex mu;
    CondVar cv;
    int in_flight ABSL_GUARDED_BY(mu) = 0;
    absl::Status error ABSL_GUARDED_BY(mu);
  };

  bool FlushAdds() {
    if (adds_.empty()) return Ok();
    std::vector<std::pair<std::string, int64_t>> adds;
    adds.swap(adds_);
    adds_.reserve(kAddRows);
    return Queue([campaign_seq = campaign_seq_, adds = std::move(adds)](
                     SQLite::Database& db) -> absl::Status {
      SQLite::Statement add(db,
                            "INSERT INTO recipient_addresses(campaign_seq, "
                            "address, seq) VALUES(?,?,?)");
      add.bind(1, static_cast<int64_t>(campaign_seq));
      for (const auto& [address, seq] : adds) {
        add.bindNoCopy(2, address);
        add.bind(3, static_cast<int64_t>(seq));
        add.exec();
        add.reset();
      }
      return absl::OkStatus();
    });
  }
  bool FlushDrops() {
    std::sort(drops_.begin(), drops_.end());
    for (size_t i = 0; i < drops_.size(); i += kDropRows) {
      std::vector<int64_t> chunk(
          drops_.begin() + i,
          drops_.begin() + std::min(drops_.size(), i + kDropRows));
      const bool queued =
          Queue([chunk = std::move(chunk)](SQLite::Database& db) {
            SQLite::Statement drop(db, "DELETE FROM recipients WHERE seq=?");
            for (int64_t seq : chunk) {
              drop.bind(1, static_cast<int64_t>(seq));
              drop.exec();
              drop.reset();
            }
            return absl::OkStatus();
          });
      if (!queued) return false;
    }
    drops_.clear();
    return Ok();
  }
  bool Queue(Database::WriteOp op) {
    const absl::Time start = absl::Now();
    Wait(kMaxInFlight - 1);
    waited_ += absl::Now() - start;
    {
      MutexLock lock(&state_->mu);
      if (!state_->error.ok()) return false;
      ++state_->in_flight;
    }
    db_->WriteRaw(
        std::move(op),
        [state = state_](absl::Status status) {
          MutexLock lock(&state->mu);
          if (state->error.ok()) state->error = std::move(status);
          --state->in_flight;
          state->cv.SignalAll();
        },
        /*bulk=*/true);
    return true;
  }
  bool Ok() {
    MutexLock lock(&state_->mu);
    return state_->error.ok();
  }
  void Wait(int at_most) {
    MutexLock lock(&state_->mu);
    while (state_->in_flight > at_most) state_->cv.Wait(&state_->mu);
  }

  Database* const db_;
  const int64_t campaign_seq_;
  const std::shared_ptr<State> state_ = std::make_shared<State>();
  std::vector<std::pair<std::string, int64_t>> adds_;
  std::vector<int64_t> drops_;
  absl::Duration waited_;
};

}  // namespace

absl::StatusOr<ImportDuplicates> Store::SettleRecipientImport(
    const ImportLease& lease, size_t max_listed,
    const std::function<bool()>& cancelled) {
  const int64_t campaign_seq = lease.campaign.seq;
  ImportDuplicates out;
  // The first duplicates: a max-heap by seq (staged in row order, so seq
  // order is row order) of at most max_listed.
  std::vector<std::pair<int64_t, std::string>> first;
  SettleWrites writes(db_, campaign_seq);
  const absl::Time start = absl::Now();
  absl::Duration sorting;
  int64_t kept = 0;
  absl::Status read = db_->Read([&](SQLite::Database& db) -> absl::Status {
    // The sort spills to temporary files: with the connections' usual
    // temp_store=MEMORY it would hold every staged address in memory.
    db.exec("PRAGMA temp_store=FILE");
    struct Restore {
      SQLite::Database& db;
      ~Restore() { db.tryExec("PRAGMA temp_store=MEMORY"); }
    } restore{db};
    // One snapshot throughout: the address set as it was before this
    // import added to it, and the staged rows before any was deleted.
    SQLite::Transaction snapshot(db, SQLite::TransactionBehavior::DEFERRED);
    // The campaign's addresses from ?2 on, in order. The merge steps along
    // them, and seeks (a B-tree descent) when the next staged address is
    // far ahead, so a small import into a large campaign reads only around
    // its own addresses.
    SQLite::Statement known(db,
                            "SELECT address FROM recipient_addresses WHERE "
                            "campaign_seq=?1 AND address>=?2 ORDER BY address");
    known.bind(1, static_cast<int64_t>(campaign_seq));
    known.bind(2, "");
    bool more_known = known.executeStep();
    auto known_address = [&known] { return TextOf(known.getColumn(0)); };
    auto advance_known_to = [&](absl::string_view address) {
      constexpr int kStepsBeforeSeek = 16;
      for (int steps = 0; more_known && known_address() < address; ++steps) {
        if (steps == kStepsBeforeSeek) {
          known.reset();
          known.bind(2, std::string(address));
          more_known = known.executeStep();
          return;
        }
        more_known = known.executeStep();
      }
    };
    // Staged rows are queued and at seq >= floor: a range of the status
    // index, whatever the campaign held before.
    SQLite::Statement staged(db,
                             "SELECT address, seq FROM recipients INDEXED BY "
                             "recipients_by_status WHERE campaign_seq=?1 AND "
                             "status='queued' AND seq>=?2 ORDER BY address, "
                             "seq");
    staged.bind(1, static_cast<int64_t>(campaign_seq));
    staged.bind(2, static_cast<int64_t>(lease.floor));
    std::string previous;
    bool any = false;
    const absl::Time sort_start = absl::Now();
    while (staged.executeStep()) {
      if (!any) sorting = absl::Now() - sort_start;
      const absl::string_view address = TextOf(staged.getColumn(0));
      const int64_t seq = staged.getColumn(1).getInt64();
      if ((kept + out.count) % 4096 == 0 && cancelled && cancelled()) {
        return absl::CancelledError(
            "the import was cancelled while its duplicates were looked for");
      }
      advance_known_to(address);
      const bool duplicate = (any && address == previous) ||
                             (more_known && known_address() == address);
      any = true;
      if (address != previous) previous.assign(address.data(), address.size());
      if (!duplicate) {
        ++kept;
        if (!writes.Add(std::string(address), seq)) break;
        continue;
      }
      ++out.count;
      if (max_listed > 0 &&
          (first.size() < max_listed || seq < first.front().first)) {
        first.emplace_back(seq, std::string(address));
        std::push_heap(first.begin(), first.end());
        if (first.size() > max_listed) {
          std::pop_heap(first.begin(), first.end());
          first.pop_back();
        }
      }
      if (!writes.Drop(seq)) break;
    }
    // Where the listed ones were in the file (still there in this snapshot).
    std::sort(first.begin(), first.end());
    SQLite::Statement where(
        db, "SELECT import_row, import_line FROM recipients WHERE seq=?");
    for (auto& [seq, address] : first) {
      where.bind(1, static_cast<int64_t>(seq));
      ImportDuplicates::Row row;
      if (where.executeStep()) {
        row.row = where.getColumn(0).getInt64();
        row.line = where.getColumn(1).getInt64();
      }
      where.reset();
      row.address = std::move(address);
      out.first.push_back(std::move(row));
    }
    return absl::OkStatus();
  });
  // Nothing more is queued after a failure (the import is rolled back).
  absl::Status written = writes.Finish(/*flush=*/read.ok());
  if (!read.ok()) return read;
  if (!written.ok()) return written;
  logging::Info(
      "import settled",
      {{"campaign_id", lease.campaign.id},
       {"rows", kept + out.count},
       {"duplicates", out.count},
       {"seconds", absl::ToDoubleSeconds(absl::Now() - start)},
       {"sort_seconds", absl::ToDoubleSeconds(sorting)},
       {"writer_wait_seconds", absl::ToDoubleSeconds(writes.waited())}});
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
  AbortChunk(
      lease,
      lease.settled ? std::optional<std::string>(std::string()) : std::nullopt,
      std::move(done));
}

void Store::AbortChunk(ImportLease lease,
                       std::optional<std::string> addresses_after,
                       StatusCallback done) {
  const std::string campaign_id = lease.campaign.id;
  const int64_t campaign_seq = lease.campaign.seq;
  const int64_t floor = lease.floor;
  // Not a bulk write: an import that failed early is rolled back in this
  // one write, queued before the client hears of the failure, so its retry
  // finds the campaign free.
  struct Next {
    std::optional<std::string> addresses_after;
    bool finished = false;
  };
  db_->Write<Next>(
      [campaign_id, campaign_seq, floor,
       addresses_after](SQLite::Database& db) -> absl::StatusOr<Next> {
        Next next;
        if (addresses_after.has_value()) {
          // The addresses a settled import added (seq >= floor). seq is not
          // indexed, so a chunk examines the next kAbortAddressRows of the
          // set in address order, whatever it finds: one pass over the set
          // in all, and no chunk longer than that.
          constexpr int kAbortAddressRows = 20000;
          SQLite::Statement find(
              db,
              "SELECT address, seq FROM recipient_addresses WHERE "
              "campaign_seq=?1 AND address>?2 ORDER BY address LIMIT ?3");
          find.bind(1, static_cast<int64_t>(campaign_seq));
          find.bind(2, *addresses_after);
          find.bind(3, kAbortAddressRows);
          std::vector<std::string> found;
          std::string last;
          int examined = 0;
          while (find.executeStep()) {
            ++examined;
            last = find.getColumn(0).getString();
            if (find.getColumn(1).getInt64() >= floor) found.push_back(last);
          }
          SQLite::Statement del(db,
                                "DELETE FROM recipient_addresses WHERE "
                                "campaign_seq=? AND address=?");
          del.bind(1, static_cast<int64_t>(campaign_seq));
          for (const std::string& address : found) {
            del.bindNoCopy(2, address);
            del.exec();
            del.reset();
          }
          if (examined == kAbortAddressRows) {
            next.addresses_after = std::move(last);
            return next;
          }
        }
        // Then the staged rows.
        SQLite::Statement del(
            db,
            "DELETE FROM recipients WHERE seq IN (SELECT seq FROM recipients "
            "INDEXED BY recipients_by_status WHERE campaign_seq=?1 AND "
            "status='queued' AND seq>=?2 LIMIT ?3)");
        del.bind(1, static_cast<int64_t>(campaign_seq));
        del.bind(2, static_cast<int64_t>(floor));
        del.bind(3, kAbortChunkRows);
        if (del.exec() == kAbortChunkRows) return next;
        SQLite::Statement clear(
            db,
            "UPDATE campaigns SET import_floor=NULL WHERE id=? AND "
            "import_floor=?");
        clear.bind(1, campaign_id);
        clear.bind(2, static_cast<int64_t>(floor));
        clear.exec();
        next.finished = true;
        return next;
      },
      [this, lease = std::move(lease), addresses_after,
       done = std::move(done)](absl::StatusOr<Next> next) mutable {
        if (!next.ok()) {
          // The import floor stays set until the rollback ends: try again
          // rather than leave the campaign refusing imports until a restart.
          absl::Status error = next.status();
          AgainLater(
              "import rollback", error,
              [this, lease, addresses_after, done] {
                AbortChunk(lease, addresses_after, done);
              },
              [done, error] {
                if (done) done(error);
              });
        } else if (!next->finished) {
          AbortChunk(std::move(lease), std::move(next->addresses_after),
                     std::move(done));
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
