// ContactStore: ContactRepository (server/domain/repository.h) on
// PostgreSQL, through Database (storage/postgres/database.h): contacts,
// contact lists, contact imports and MaterializeAudience.
//
// Several instances may share the database. What two of them could race on
// is settled by the database, not by a check before a write: a contact's
// (account, channel, address) by INSERT ... ON CONFLICT, list memberships by
// ON CONFLICT DO NOTHING under a lock of the list's row, an import's request
// id by a transaction advisory lock on it, the application of an import by
// a lock of its row (so two instances resuming it apply each chunk once),
// and MaterializeAudience by a lock of the campaign's row. The instance
// that begins an import owns it (owners.h): another one takes it over (rolls
// it back while it stages, finishes applying it once committed) only once
// that one is dead, and a stage or commit of an import another instance took
// over is refused (ABORTED).
//
//   ContactStore contacts(db);
//   contacts.CreateContact(c, {}, [](absl::StatusOr<Contact> c) {...});
//
// Thread-safe.
#ifndef CAMPAIGND_STORAGE_POSTGRES_CONTACT_STORE_H_
#define CAMPAIGND_STORAGE_POSTGRES_CONTACT_STORE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/domain/repository.h"
#include "storage/postgres/database.h"
#include "storage/postgres/owners.h"

namespace campaigns::storage::postgres {

class ContactStore : public ContactRepository {
 public:
  // `db` must outlive the store.
  // `db` must outlive the store. `owner`: this instance, which owns the
  // imports it begins.
  explicit ContactStore(Database* db, WorkOwner owner = {})
      : db_(db), owner_(std::move(owner)) {}

  void CreateContact(Contact c, IdempotencyKey idem,
                     Done<Contact> done) override;
  absl::StatusOr<Contact> GetContact(const std::string& account_id,
                                     const std::string& id) override;
  absl::StatusOr<Page<Contact>> ListContacts(const std::string& account_id,
                                             const ContactFilter& filter,
                                             const PageRequest& page) override;
  void UpdateContact(const std::string& account_id, const std::string& id,
                     std::function<absl::Status(Contact&)> mutate,
                     Done<Contact> done) override;
  void DeleteContact(const std::string& account_id, const std::string& id,
                     StatusDone done) override;

  void CreateContactList(ContactList l, IdempotencyKey idem,
                         Done<ContactList> done) override;
  absl::StatusOr<ContactList> GetContactList(const std::string& account_id,
                                             const std::string& id) override;
  absl::StatusOr<Page<ContactList>> ListContactLists(
      const std::string& account_id, const PageRequest& page) override;
  void DeleteContactList(const std::string& account_id, const std::string& id,
                         StatusDone done) override;
  void AddContactsToList(const std::string& account_id,
                         const std::string& list_id,
                         std::vector<std::string> contact_ids,
                         Done<ListMembershipChange> done) override;
  void RemoveContactsFromList(const std::string& account_id,
                              const std::string& list_id,
                              std::vector<std::string> contact_ids,
                              Done<ListMembershipChange> done) override;

  void MaterializeAudience(const std::string& account_id,
                           const std::string& campaign_id,
                           Done<MaterializeResult> done) override;

  void BeginContactImport(ContactImportLease lease,
                          Done<ContactImportLease> done) override;
  void StageContacts(const ContactImportLease& lease, int64_t first_row,
                     std::vector<StagedRecipient> rows,
                     Done<std::vector<int32_t>> done) override;
  void CommitContactImport(const ContactImportLease& lease,
                           const std::string& request_id,
                           const ImportRecord& record,
                           ImportResponseFinisher finish,
                           Done<ContactImportResult> done) override;
  void AbortContactImport(const ContactImportLease& lease,
                          StatusDone done) override;

  // Takes over every contact import whose owner is dead (every one, for an
  // owner with no instance id) and, in the background, finishes applying
  // those committed (their idempotency records completed by `finish`) and
  // rolls back those still staging; returns how many it took. Safe on
  // several instances at once, and as often as wanted: live instances'
  // imports are left alone.
  // The PostgreSQL half of RecipientRepository::RecoverInterruptedImports's
  // contact imports.
  absl::StatusOr<int> ResumeContactImports(ImportResponseFinisher finish);

 private:
  // Applies the next chunk of a committed import, re-queueing itself until
  // all is applied; then `done` (may be null) with the counts. A failed
  // chunk is reported to `done` and leaves the import applying (the rest is
  // applied when the import is resumed). Static, on `db`: a chain may
  // outlive the store (it ends when `db` closes).
  static void ApplyChunk(Database* db, ContactImportLease lease,
                         ImportResponseFinisher finish,
                         Done<ContactImportResult> done);
  // After a large import: ANALYZE of the contact tables, so that audiences
  // resolved next are planned on statistics that count its rows (a table
  // another ANALYZE or autovacuum holds is skipped: this instance's writer
  // waits for no one; it waits while the tables are sampled); then
  // `done` (may be null) with `total`, whether or not it succeeded.
  static void Analyze(Database* db, const ContactImportLease& lease,
                      ContactImportResult total,
                      Done<ContactImportResult> done);
  // Deletes the next chunk of a staging import's rows, re-queueing itself
  // until none is left, then the import.
  static void AbortChunk(Database* db, int64_t import_id, StatusDone done);

  Database* const db_;
  const WorkOwner owner_;
};

}  // namespace campaigns::storage::postgres

#endif  // CAMPAIGND_STORAGE_POSTGRES_CONTACT_STORE_H_
