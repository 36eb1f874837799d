// Store: contact imports (staging, commit, chunked apply, abort, recovery).
#include <SQLiteCpp/Statement.h>

#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
#include "storage/sqlite/rows.h"
#include "storage/sqlite/store.h"
#include "storage/sqlite/store_internal.h"

namespace campaigns::storage {
namespace {

// Rows applied per write: small enough that one chunk never holds the
// writer for long.
constexpr int kApplyChunkRows = 4000;

constexpr char kStaging[] = "staging";
constexpr char kApplying[] = "applying";
constexpr char kMethod[] = "ImportContacts";

bool ListExists(SQLite::Database& db, const std::string& account_id,
                const std::string& list_id) {
  SQLite::Statement st(
      db, "SELECT 1 FROM contact_lists WHERE id=? AND account_id=?");
  st.bind(1, list_id);
  st.bind(2, account_id);
  return st.executeStep();
}

ContactImportLease ReadLease(SQLite::Statement& st) {
  ContactImportLease lease;
  lease.id = Col(st, "id").getInt64();
  lease.account_id = Col(st, "account_id").getString();
  ParseChannel(Col(st, "channel").getString(), &lease.channel);
  lease.list_id = Col(st, "list_id").getString();
  lease.tags = ListFromJson(Col(st, "tags").getString());
  return lease;
}

// One step of applying: the chunk's counts, and whether it was the last.
struct ApplyStep {
  ContactImportResult total;  // so far, this chunk included
  bool finished = false;
};

// Applies the next chunk of rows of `lease` (which must be applying) in the
// current transaction; the last chunk also records the idempotency record
// and deletes the import.
absl::StatusOr<ApplyStep> ApplyChunk(SQLite::Database& db,
                                     const ContactImportLease& lease,
                                     const ImportResponseFinisher& finish) {
  SQLite::Statement head(
      db,
      "SELECT state, applied_through, created, updated, request_id, "
      "body_hash, response FROM contact_imports WHERE id=?");
  head.bind(1, static_cast<int64_t>(lease.id));
  if (!head.executeStep() || head.getColumn(0).getString() != kApplying) {
    return absl::AbortedError(
        absl::StrCat("contact import ", lease.id, " is no longer applying"));
  }
  const int64_t applied_through = head.getColumn(1).getInt64();
  ApplyStep step;
  step.total.created = head.getColumn(2).getInt64();
  step.total.updated = head.getColumn(3).getInt64();
  const std::string request_id = head.getColumn(4).getString();
  const std::string body_hash = head.getColumn(5).getString();
  const std::string recorded = head.getColumn(6).getString();

  const int64_t now = ToMicros(NowMicros());
  const std::string channel(ChannelName(lease.channel));
  const bool with_list =
      !lease.list_id.empty() && ListExists(db, lease.account_id, lease.list_id);

  SQLite::Statement rows(db,
                         "SELECT row, address, attributes FROM "
                         "contact_import_rows WHERE import_id=? AND row>? "
                         "ORDER BY row LIMIT ?");
  rows.bind(1, static_cast<int64_t>(lease.id));
  rows.bind(2, static_cast<int64_t>(applied_through));
  rows.bind(3, kApplyChunkRows);
  SQLite::Statement find(db,
                         "SELECT seq, attributes FROM contacts WHERE "
                         "account_id=?1 AND channel=?2 AND address=?3");
  find.bind(1, lease.account_id);
  find.bind(2, channel);
  SQLite::Statement insert(
      db,
      "INSERT INTO contacts(id, account_id, channel, address, attributes, "
      "created_at, updated_at) VALUES(?1,?2,?3,?4,?5,?6,?6)");
  insert.bind(2, lease.account_id);
  insert.bind(3, channel);
  insert.bind(6, static_cast<int64_t>(now));
  SQLite::Statement update(
      db, "UPDATE contacts SET attributes=?1, updated_at=?2 WHERE seq=?3");
  update.bind(2, static_cast<int64_t>(now));
  SQLite::Statement tag(db,
                        "INSERT OR IGNORE INTO contact_tags(account_id, tag, "
                        "contact_seq) VALUES(?1,?2,?3)");
  tag.bind(1, lease.account_id);
  SQLite::Statement member(db,
                           "INSERT OR IGNORE INTO contact_list_members("
                           "list_id, contact_seq, added_at) VALUES(?1,?2,?3)");
  member.bind(1, lease.list_id);
  member.bind(3, static_cast<int64_t>(now));

  int64_t last_row = applied_through;
  int n = 0;
  while (rows.executeStep()) {
    ++n;
    last_row = rows.getColumn(0).getInt64();
    const std::string address = rows.getColumn(1).getString();
    const std::string attributes = rows.getColumn(2).getString();
    int64_t seq = 0;
    find.bind(3, address);
    if (find.executeStep()) {
      seq = find.getColumn(0).getInt64();
      std::map<std::string, std::string> merged =
          MapFromJson(find.getColumn(1).getString());
      const std::map<std::string, std::string> before = merged;
      for (auto& [k, v] : MapFromJson(attributes)) merged[k] = std::move(v);
      find.reset();
      if (merged != before) {
        update.bind(1, MapToJson(merged));
        update.bind(3, static_cast<int64_t>(seq));
        update.exec();
        update.reset();
      }
      ++step.total.updated;
    } else {
      find.reset();
      insert.bind(1, NewId(kContactPrefix));
      insert.bind(4, address);
      insert.bind(5, attributes);
      insert.exec();
      insert.reset();
      seq = db.getLastInsertRowid();
      ++step.total.created;
    }
    for (const std::string& t : lease.tags) {
      tag.bind(2, t);
      tag.bind(3, static_cast<int64_t>(seq));
      tag.exec();
      tag.reset();
    }
    if (with_list) {
      member.bind(2, static_cast<int64_t>(seq));
      member.exec();
      member.reset();
    }
  }

  SQLite::Statement done_rows(
      db, "DELETE FROM contact_import_rows WHERE import_id=? AND row<=?");
  done_rows.bind(1, static_cast<int64_t>(lease.id));
  done_rows.bind(2, static_cast<int64_t>(last_row));
  done_rows.exec();

  step.finished = n < kApplyChunkRows;
  if (!step.finished) {
    SQLite::Statement progress(
        db,
        "UPDATE contact_imports SET applied_through=?, created=?, updated=? "
        "WHERE id=?");
    progress.bind(1, static_cast<int64_t>(last_row));
    progress.bind(2, static_cast<int64_t>(step.total.created));
    progress.bind(3, static_cast<int64_t>(step.total.updated));
    progress.bind(4, static_cast<int64_t>(lease.id));
    progress.exec();
    return step;
  }
  if (!request_id.empty()) {
    const std::string response = finish(recorded, step.total);
    SQLite::Statement remember(
        db,
        "INSERT INTO idempotency_keys(account_id, method, request_id, "
        "body_hash, resource_id, created_at, response) VALUES(?,?,?,?,?,?,?) "
        "ON CONFLICT DO NOTHING");
    remember.bind(1, lease.account_id);
    remember.bind(2, kMethod);
    remember.bind(3, request_id);
    remember.bind(4, body_hash);
    remember.bind(5, "");
    remember.bind(6, static_cast<int64_t>(now));
    remember.bind(7, response.data(), static_cast<int>(response.size()));
    remember.exec();
  }
  SQLite::Statement drop(db, "DELETE FROM contact_imports WHERE id=?");
  drop.bind(1, static_cast<int64_t>(lease.id));
  drop.exec();
  return step;
}

}  // namespace

void Store::BeginContactImport(ContactImportLease lease,
                               Callback<ContactImportLease> done) {
  db_->Write<ContactImportLease>(
      [lease = std::move(lease)](
          SQLite::Database& db) mutable -> absl::StatusOr<ContactImportLease> {
        if (!lease.list_id.empty() &&
            !ListExists(db, lease.account_id, lease.list_id)) {
          return errors::NotFound("contact list", lease.list_id);
        }
        SQLite::Statement st(db,
                             "INSERT INTO contact_imports(account_id, channel, "
                             "list_id, tags, state, created_at) "
                             "VALUES(?,?,?,?,?,?)");
        st.bind(1, lease.account_id);
        st.bind(2, std::string(ChannelName(lease.channel)));
        st.bind(3, lease.list_id);
        st.bind(4, ListToJson(lease.tags));
        st.bind(5, kStaging);
        st.bind(6, static_cast<int64_t>(ToMicros(NowMicros())));
        st.exec();
        lease.id = db.getLastInsertRowid();
        return std::move(lease);
      },
      std::move(done));
}

void Store::StageContacts(const ContactImportLease& lease, int64_t first_row,
                          std::vector<StagedRecipient> rows,
                          Callback<std::vector<int32_t>> done) {
  db_->Write<std::vector<int32_t>>(
      [id = lease.id, first_row, rows = std::move(rows)](
          SQLite::Database& db) -> absl::StatusOr<std::vector<int32_t>> {
        SQLite::Statement st(db,
                             "INSERT OR IGNORE INTO contact_import_rows("
                             "import_id, row, address, attributes) "
                             "VALUES(?1,?2,?3,?4)");
        st.bind(1, static_cast<int64_t>(id));
        std::vector<int32_t> duplicates;
        for (size_t i = 0; i < rows.size(); ++i) {
          st.bind(2, static_cast<int64_t>(first_row + static_cast<int64_t>(i)));
          st.bindNoCopy(3, rows[i].address);
          st.bindNoCopy(4, rows[i].variables_json);
          if (st.exec() == 0) duplicates.push_back(static_cast<int32_t>(i));
          st.reset();
        }
        return duplicates;
      },
      std::move(done), /*bulk=*/true);
}

void Store::CommitContactImport(const ContactImportLease& lease,
                                const std::string& request_id,
                                const ImportRecord& record,
                                ImportResponseFinisher finish,
                                Callback<ContactImportResult> done) {
  db_->Write<bool>(
      [lease, request_id,
       record](SQLite::Database& db) -> absl::StatusOr<bool> {
        if (!request_id.empty()) {
          SQLite::Statement taken(
              db,
              "SELECT 1 FROM idempotency_keys WHERE account_id=?1 AND "
              "method=?2 AND request_id=?3 UNION ALL SELECT 1 FROM "
              "contact_imports WHERE account_id=?1 AND request_id=?3");
          taken.bind(1, lease.account_id);
          taken.bind(2, kMethod);
          taken.bind(3, request_id);
          if (taken.executeStep()) {
            return errors::IdempotencyConflict(request_id);
          }
        }
        SQLite::Statement st(
            db,
            "UPDATE contact_imports SET state=?1, request_id=?2, "
            "body_hash=?3, response=?4 WHERE id=?5 AND state=?6");
        st.bind(1, kApplying);
        st.bind(2, request_id);
        st.bind(3, record.body_hash);
        st.bind(4, record.response.data(),
                static_cast<int>(record.response.size()));
        st.bind(5, static_cast<int64_t>(lease.id));
        st.bind(6, kStaging);
        if (st.exec() == 0) {
          return absl::AbortedError(absl::StrCat(
              "contact import ", lease.id, " was rolled back before commit"));
        }
        return true;
      },
      [this, lease, finish = std::move(finish),
       done = std::move(done)](absl::StatusOr<bool> committed) mutable {
        if (!committed.ok()) return done(committed.status());
        ApplyContactChunk(std::move(lease), std::move(finish), std::move(done));
      });
}

void Store::ApplyContactChunk(ContactImportLease lease,
                              ImportResponseFinisher finish,
                              Callback<ContactImportResult> done) {
  db_->Write<ApplyStep>(
      [lease, finish](SQLite::Database& db) -> absl::StatusOr<ApplyStep> {
        return ApplyChunk(db, lease, finish);
      },
      [this, lease, finish,
       done = std::move(done)](absl::StatusOr<ApplyStep> step) mutable {
        if (!step.ok()) {
          // Committed: it must finish applying. The caller hears of the
          // failure; the rest of the import is applied once writes succeed.
          if (done) done(step.status());
          if (step.status().code() == absl::StatusCode::kAborted) return;
          AgainLater("contact import apply", step.status(),
                     [this, lease, finish] {
                       ApplyContactChunk(lease, finish, nullptr);
                     });
        } else if (!step->finished) {
          ApplyContactChunk(std::move(lease), std::move(finish),
                            std::move(done));
        } else if (done) {
          done(step->total);
        }
      },
      /*bulk=*/true);
}

void Store::AbortContactImport(const ContactImportLease& lease,
                               StatusCallback done) {
  AbortContactChunk(lease.id, std::move(done));
}

void Store::AbortContactChunk(int64_t import_id, StatusCallback done) {
  db_->Write<bool>(
      [import_id](SQLite::Database& db) -> absl::StatusOr<bool> {
        SQLite::Statement state(db,
                                "SELECT state FROM contact_imports WHERE id=?");
        state.bind(1, static_cast<int64_t>(import_id));
        if (!state.executeStep() ||
            state.getColumn(0).getString() != kStaging) {
          return true;  // gone, or committed: it will be applied
        }
        SQLite::Statement del(
            db,
            "DELETE FROM contact_import_rows WHERE import_id=?1 AND row IN "
            "(SELECT row FROM contact_import_rows WHERE import_id=?1 LIMIT "
            "?2)");
        del.bind(1, static_cast<int64_t>(import_id));
        del.bind(2, internal::kAbortChunkRows);
        if (del.exec() == internal::kAbortChunkRows) return false;
        SQLite::Statement drop(db, "DELETE FROM contact_imports WHERE id=?");
        drop.bind(1, static_cast<int64_t>(import_id));
        drop.exec();
        return true;
      },
      [this, import_id,
       done = std::move(done)](absl::StatusOr<bool> finished) mutable {
        if (!finished.ok()) {
          // Staged rows and the import's row stay until the rollback ends.
          absl::Status error = finished.status();
          AgainLater(
              "contact import rollback", error,
              [this, import_id, done] { AbortContactChunk(import_id, done); },
              [done, error] {
                if (done) done(error);
              });
        } else if (!*finished) {
          AbortContactChunk(import_id, std::move(done));
        } else if (done) {
          done(absl::OkStatus());
        }
      });
}

absl::StatusOr<int> Store::RecoverContactImports(
    ImportResponseFinisher finish) {
  struct Interrupted {
    ContactImportLease lease;
    bool applying = false;
  };
  ASSIGN_OR_RETURN(
      std::vector<Interrupted> found,
      db_->Read(
          [](SQLite::Database& db) -> absl::StatusOr<std::vector<Interrupted>> {
            SQLite::Statement st(db,
                                 "SELECT * FROM contact_imports ORDER BY id");
            std::vector<Interrupted> out;
            while (st.executeStep()) {
              Interrupted i;
              i.lease = ReadLease(st);
              i.applying = Col(st, "state").getString() == kApplying;
              out.push_back(std::move(i));
            }
            return out;
          }));
  for (Interrupted& i : found) {
    if (i.applying) {
      ApplyContactChunk(std::move(i.lease), finish, nullptr);
    } else {
      AbortContactChunk(i.lease.id, nullptr);
    }
  }
  return static_cast<int>(found.size());
}

}  // namespace campaigns::storage
