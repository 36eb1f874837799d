// RecipientStore: RecipientRepository (server/domain/repository.h) on
// PostgreSQL, through Database (storage/postgres/database.h): a campaign's
// recipients, their imports, and the listing of them.
//
// An import stages its rows in `recipients` at sequence numbers from the
// campaign's import_floor on (a value of the recipients' own sequence taken
// when it begins, so every row staged later is above it); readers only see
// a campaign's rows below its floor. Several instances may share the
// database: BeginRecipientImport takes the campaign's row lock before it
// looks at import_floor, so only one of two instances beginning at once
// starts an import; every later step re-checks the floor under a lock of
// the campaign's row, so a step of an import another instance rolled back
// does nothing (ABORTED). The instance that began an import owns it
// (owners.h): another one rolls it back only once that one is dead, and a
// step of an import another instance took over does nothing (ABORTED) even
// while the rollback is still under way.
//
// StageRecipients copies its rows in with COPY ... FROM STDIN (one write of
// the writer per batch). SettleRecipientImport does not go through the
// writer: it runs one set-based statement per chunk of kSettleChunkRows
// staged rows (in row order) on a pooled connection of its own, each
// committing on its own, so writes of other campaigns never wait for it. A
// write that locks the same campaign's row (a commit, a rollback, a change
// of the campaign) waits for at most the chunk running, and the writer's
// group with it: chunks are kept short for that (about 0.25 s each on a
// loaded 2-core test box).
//
//   RecipientStore recipients(db, &contacts);
//   recipients.BeginRecipientImport(account, "cmp_...",
//                                   [](absl::StatusOr<ImportLease> l) {...});
//
// Thread-safe.
#ifndef CAMPAIGND_STORAGE_POSTGRES_RECIPIENT_STORE_H_
#define CAMPAIGND_STORAGE_POSTGRES_RECIPIENT_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "server/domain/mutex.h"
#include "server/domain/recipient_ids.h"
#include "server/domain/repository.h"
#include "storage/postgres/contact_store.h"
#include "storage/postgres/database.h"
#include "storage/postgres/owners.h"
#include "storage/postgres/rows.h"

namespace campaigns::storage::postgres {

class RecipientStore : public RecipientRepository {
 public:
  // Staged rows one SettleRecipientImport statement handles.
  static constexpr int kSettleChunkRows = 20000;

  // `db` (and `contacts`, if not null) must outlive the store. `contacts`
  // is asked to take over contact imports in RecoverInterruptedImports;
  // with null, only recipient imports are recovered there. `owner`: this
  // instance, which owns the imports it begins.
  explicit RecipientStore(Database* db, ContactStore* contacts = nullptr,
                          WorkOwner owner = {})
      : db_(db), contacts_(contacts), owner_(std::move(owner)) {}

  void BeginRecipientImport(const std::string& account_id,
                            const std::string& campaign_id,
                            Done<ImportLease> done) override;
  void StageRecipients(const ImportLease& lease,
                       std::vector<StagedRecipient> rows,
                       Done<std::vector<int32_t>> done) override;
  absl::StatusOr<ImportDuplicates> SettleRecipientImport(
      const ImportLease& lease, size_t max_listed,
      const std::function<bool()>& cancelled = nullptr) override;
  void CommitRecipientImport(const ImportLease& lease, int64_t imported,
                             const std::string& request_id,
                             const ImportRecord& record,
                             Done<Campaign> done) override;
  void AbortRecipientImport(const ImportLease& lease, StatusDone done) override;
  // Takes over and rolls back (in the background) every recipient import
  // whose owner is dead (every one, for an owner with no instance id), and
  // has `contacts` (if any) take over its contact imports. Safe on several
  // instances at once, and as often as wanted: live instances' imports are
  // left alone.
  absl::StatusOr<int> RecoverInterruptedImports(
      ImportResponseFinisher finish) override;
  absl::StatusOr<std::optional<ImportRecord>> FindImportRecord(
      const std::string& account_id, const std::string& method,
      const std::string& request_id) override;
  absl::StatusOr<std::map<std::string, std::string>> ContactAddresses(
      const std::string& account_id, Channel channel,
      const std::vector<std::string>& contact_ids) override;
  absl::StatusOr<Page<Recipient>> ListRecipients(
      const std::string& account_id, const std::string& campaign_id,
      RecipientStatus status, const PageRequest& page) override;

 private:
  // The recipient id codec, from meta.recipient_id_key: read once it can
  // be (a failure, e.g. the server unreachable, is not remembered).
  absl::StatusOr<const RecipientIdCodec*> Codec() { return codec_.Get(db_); }
  // Deletes the next chunk of `lease`'s rows (its addresses first, from
  // `addresses_after` on, when it may have settled), re-queueing itself
  // until none is left, then clears the floor; then `done` (may be null).
  // A failed chunk is tried again later (Database::AgainLater); if `db`
  // closes first, `done` gets the failure and the floor stays set (the
  // rest is rolled back at the next RecoverInterruptedImports). Static, on
  // `db`: a chain may outlive the store.
  static void AbortChunk(Database* db, ImportLease lease,
                         std::optional<std::string> addresses_after,
                         StatusDone done);

  Database* const db_;
  ContactStore* const contacts_;
  const WorkOwner owner_;
  RecipientIdCodecCache codec_;
};

}  // namespace campaigns::storage::postgres

#endif  // CAMPAIGND_STORAGE_POSTGRES_RECIPIENT_STORE_H_
