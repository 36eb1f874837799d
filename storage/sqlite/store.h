// Store: the Repository (server/domain/repository.h) on SQLite, on top of
// Database.
//
// Reads run synchronously on the caller's thread with a pooled read
// connection. Writes are queued to the writer thread; their callback runs on
// the writer thread after the commit.
//
// Caches: keys that authenticated are remembered (PrincipalCache, by the
// secret's SHA-256) so that their next calls read no database; RevokeApiKey
// forgets the key before it calls back. Unknown keys are read every time.
// Small campaigns GetCampaign read are remembered until the next write of
// the campaigns table (see campaigns_).
//
// Thread-safe.
#ifndef CAMPAIGND_STORAGE_SQLITE_STORE_H_
#define CAMPAIGND_STORAGE_SQLITE_STORE_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/domain/billing.h"
#include "server/domain/dispatch_store.h"
#include "server/domain/model.h"
#include "server/domain/recipient_ids.h"
#include "server/domain/repository.h"
#include "storage/principal_cache.h"
#include "storage/row_cache.h"
#include "storage/sqlite/database.h"

namespace campaigns::storage {

// The names the storage code used before the repositories moved to domain/.
template <typename T>
using Callback = Done<T>;
using StatusCallback = StatusDone;

class Store : public Repository {
 public:
  // `db` must outlive the Store.
  // Observes `db`'s campaigns table for the campaign cache (GetCampaign)
  // until destroyed.
  explicit Store(Database* db);
  ~Store();

  // Repository (see server/domain/repository.h for the contracts).

  absl::StatusOr<bool> BootstrapAdmin(const std::string& secret) override;
  absl::StatusOr<Principal> Authenticate(absl::string_view secret) override;
  absl::StatusOr<Account> GetAccount(const std::string& account_id) override;
  void CreateAccount(AccountWithKey created, IdempotencyKey idem,
                     Callback<AccountWithKey> done) override;
  void CreateApiKey(ApiKey key, IdempotencyKey idem,
                    Callback<ApiKey> done) override;
  absl::StatusOr<Page<ApiKey>> ListApiKeys(const std::string& account_id,
                                           const PageRequest& page) override;
  void RevokeApiKey(const std::string& account_id, const std::string& key_id,
                    Callback<ApiKey> done) override;

  void SetPrices(const std::string& account_id, std::vector<Price> prices,
                 Callback<std::vector<Price>> done) override;
  absl::StatusOr<std::vector<Price>> GetPrices(
      const std::string& account_id) override;
  void AddCredits(const std::string& account_id, int64_t amount,
                  std::string description, IdempotencyKey idem,
                  Callback<Account> done) override;
  absl::StatusOr<Page<Transaction>> ListTransactions(
      const std::string& account_id, const PageRequest& page) override;
  void PrepareCosts(const std::string& account_id,
                    const std::string& campaign_id, bool only_if_priced,
                    StatusCallback then) override;
  absl::StatusOr<std::optional<CostEstimateValue>> ReadEstimate(
      const std::string& account_id, const std::string& campaign_id) override;
  absl::StatusOr<AccountStats> CampaignStatsOf(
      const std::string& account_id, const StatsFilter& filter) override;

  void CreateTemplate(Template t, IdempotencyKey idem,
                      Callback<Template> done) override;
  absl::StatusOr<Template> GetTemplate(const std::string& account_id,
                                       const std::string& id) override;
  absl::StatusOr<Template> GetTemplateForReview(const std::string& id) override;
  absl::StatusOr<Page<Template>> ListTemplates(
      const std::string& account_id, const TemplateFilter& filter,
      const PageRequest& page) override;
  void UpdateTemplate(const std::string& account_id, const std::string& id,
                      std::function<absl::Status(Template&)> mutate,
                      Callback<Template> done) override;
  void DeleteTemplate(const std::string& account_id, const std::string& id,
                      StatusCallback done) override;

  void RegisterSender(Sender s, IdempotencyKey idem,
                      Callback<Sender> done) override;
  absl::StatusOr<Sender> GetSender(const std::string& account_id,
                                   const std::string& id) override;
  absl::StatusOr<Page<Sender>> ListSenders(const std::string& account_id,
                                           Channel channel,
                                           const PageRequest& page) override;
  void DeleteSender(const std::string& account_id, const std::string& id,
                    StatusCallback done) override;

  void AddSuppression(Suppression s, Callback<Suppression> done) override;
  void AddProviderSuppression(const std::vector<std::string>& providers,
                              const std::string& to, Suppression s,
                              Callback<int> done) override;
  void RemoveSuppression(const std::string& account_id,
                         const std::string& address, Channel channel,
                         StatusCallback done) override;
  absl::StatusOr<Page<Suppression>> ListSuppressions(
      const std::string& account_id, const SuppressionFilter& filter,
      const PageRequest& page) override;
  absl::StatusOr<std::vector<Suppression>> FindSuppressions(
      const std::string& account_id, const std::string& address,
      Channel channel) override;

  void CreateCampaign(
      Campaign c, IdempotencyKey idem, Callback<Campaign> done,
      std::optional<LifecycleChange> then = std::nullopt) override;
  absl::StatusOr<Campaign> GetCampaign(const std::string& account_id,
                                       const std::string& id) override;
  absl::StatusOr<Page<Campaign>> ListCampaigns(
      const std::string& account_id, const CampaignFilter& filter,
      const PageRequest& page) override;
  absl::StatusOr<CampaignTotals> CountCampaigns() override;
  void UpdateCampaign(const std::string& account_id, const std::string& id,
                      std::function<absl::Status(Campaign&)> mutate,
                      Callback<Campaign> done) override;
  void DeleteCampaign(const std::string& account_id, const std::string& id,
                      StatusCallback done) override;
  absl::StatusOr<int> ResumeCampaignDeletions() override;

  void BeginRecipientImport(const std::string& account_id,
                            const std::string& campaign_id,
                            Callback<ImportLease> done) override;
  void StageRecipients(const ImportLease& lease,
                       std::vector<StagedRecipient> rows,
                       Callback<std::vector<int32_t>> done) override;
  absl::StatusOr<ImportDuplicates> SettleRecipientImport(
      const ImportLease& lease, size_t max_listed,
      const std::function<bool()>& cancelled = nullptr) override;
  void CommitRecipientImport(const ImportLease& lease, int64_t imported,
                             const std::string& request_id,
                             const ImportRecord& record,
                             Callback<Campaign> done) override;
  void AbortRecipientImport(const ImportLease& lease,
                            StatusCallback done) override;
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

  void CreateContact(Contact c, IdempotencyKey idem,
                     Callback<Contact> done) override;
  absl::StatusOr<Contact> GetContact(const std::string& account_id,
                                     const std::string& id) override;
  absl::StatusOr<Page<Contact>> ListContacts(const std::string& account_id,
                                             const ContactFilter& filter,
                                             const PageRequest& page) override;
  void UpdateContact(const std::string& account_id, const std::string& id,
                     std::function<absl::Status(Contact&)> mutate,
                     Callback<Contact> done) override;
  void DeleteContact(const std::string& account_id, const std::string& id,
                     StatusCallback done) override;
  void CreateContactList(ContactList l, IdempotencyKey idem,
                         Callback<ContactList> done) override;
  absl::StatusOr<ContactList> GetContactList(const std::string& account_id,
                                             const std::string& id) override;
  absl::StatusOr<Page<ContactList>> ListContactLists(
      const std::string& account_id, const PageRequest& page) override;
  void DeleteContactList(const std::string& account_id, const std::string& id,
                         StatusCallback done) override;
  void AddContactsToList(const std::string& account_id,
                         const std::string& list_id,
                         std::vector<std::string> contact_ids,
                         Callback<ListMembershipChange> done) override;
  void RemoveContactsFromList(const std::string& account_id,
                              const std::string& list_id,
                              std::vector<std::string> contact_ids,
                              Callback<ListMembershipChange> done) override;
  void MaterializeAudience(const std::string& account_id,
                           const std::string& campaign_id,
                           Callback<MaterializeResult> done) override;
  void BeginContactImport(ContactImportLease lease,
                          Callback<ContactImportLease> done) override;
  void StageContacts(const ContactImportLease& lease, int64_t first_row,
                     std::vector<StagedRecipient> rows,
                     Callback<std::vector<int32_t>> done) override;
  void CommitContactImport(const ContactImportLease& lease,
                           const std::string& request_id,
                           const ImportRecord& record,
                           ImportResponseFinisher finish,
                           Callback<ContactImportResult> done) override;
  void AbortContactImport(const ContactImportLease& lease,
                          StatusCallback done) override;

  // --- Dispatch (DispatchStore; see there) ---------------------------------

  void TransitionCampaign(const std::string& account_id, const std::string& id,
                          LifecycleChange change,
                          Callback<Campaign> done) override;
  absl::StatusOr<std::vector<Recipient>> LeaseRecipients(
      const Campaign& c, int64_t after_seq, int limit,
      const Lease* fence) override;
  void RecordOutcomes(const std::string& account_id,
                      const std::string& campaign_id,
                      std::vector<DispatchOutcome> outcomes,
                      Callback<Campaign> done) override;
  void MarkHanded(const std::string& account_id, const std::string& campaign_id,
                  std::vector<int64_t> seqs, bool handed, const Lease* fence,
                  StatusCallback done) override;
  void ApplyReceipts(const std::string& account_id,
                     std::vector<ReceiptUpdate> receipts,
                     Callback<ReceiptResult> done) override;
  void ApplyProviderReceipts(const std::string& provider,
                             std::vector<ReceiptUpdate> receipts,
                             Callback<ReceiptResult> done) override;
  void RetryFailed(const std::string& account_id, const std::string& id,
                   std::vector<std::string> error_codes,
                   Callback<RetryResult> done) override;
  absl::StatusOr<std::vector<Campaign>> CampaignsInStatus(
      const std::vector<CampaignStatus>& statuses) override;
  absl::StatusOr<Campaign> CampaignById(const std::string& id) override;
  absl::StatusOr<std::vector<Campaign>> CutOffCancellations() override;
  void SkipCancelled(const std::string& account_id, const std::string& id,
                     Done<Campaign> done) override;
  absl::StatusOr<MessageContent> MessageContentOf(const Campaign& c) override;
  absl::StatusOr<Sender> SenderOf(const Campaign& c) override;
  absl::StatusOr<std::vector<bool>> SuppressedAmong(
      const std::string& account_id, Channel channel,
      const std::vector<std::string>& addresses) override;

 private:
  // The codec of recipient ids, loaded on first use from the database's key.
  absl::StatusOr<const RecipientIdCodec*> Codec();
  // Whose recipients receipts may match: an account's, or those of the
  // campaigns whose sender a provider sends for.
  enum class ReceiptScope { kAccount, kProvider };
  void ApplyReceiptsIn(ReceiptScope scope, const std::string& owner,
                       std::vector<ReceiptUpdate> receipts,
                       Callback<ReceiptResult> done);
  // Calls `again` after the database's probe period: a background chain of
  // writes (a rollback, a deletion, an import being applied) whose write
  // failed on storage tries again rather than stopping, so that what it
  // holds (an import floor, a deleting campaign) is released once writes
  // succeed again, without a restart. If the database closes first,
  // `closed` is called instead (the next start-up resumes the chain).
  void AgainLater(const char* chain, const absl::Status& error,
                  std::function<void()> again,
                  std::function<void()> closed = nullptr);
  // Deletes one chunk of what `lease`'s import left, and re-queues itself
  // until nothing is left: first (while `addresses_after` is set) the
  // addresses a settled import added to its campaign's set, passing over
  // the set in address order after `addresses_after`; then the staged rows;
  // then the floor is cleared. A small import takes one write. A failed
  // write is tried again (AgainLater).
  void AbortChunk(ImportLease lease, std::optional<std::string> addresses_after,
                  StatusCallback done);
  // Applies the next chunk of a committed contact import, re-queueing itself
  // until all is applied.
  void ApplyContactChunk(ContactImportLease lease,
                         ImportResponseFinisher finish,
                         Callback<ContactImportResult> done);
  // Deletes the next chunk of a staging contact import's rows, re-queueing
  // itself until none is left, then the import.
  void AbortContactChunk(int64_t import_id, StatusCallback done);
  // One write of PrepareCosts (the first also materialises a draft's
  // contact audience); re-queues itself until done.
  void PrepareCostsChunk(const std::string& account_id,
                         const std::string& campaign_id, bool only_if_priced,
                         bool first, StatusCallback then);
  // TransitionCampaign's write (for kStart, once its costs are prepared).
  void TransitionNow(const std::string& account_id, const std::string& id,
                     LifecycleChange change, Callback<Campaign> done);
  // Deletes the next chunk of a deleted campaign's recipients, re-queueing
  // itself until none is left, then the campaign row.
  void PurgeCampaignChunk(const std::string& id);
  // Skips the next chunk of cancelled campaign `id`'s queued recipients,
  // re-queueing itself until none is left; then `done` with the campaign.
  void SkipQueuedChunk(const std::string& account_id, const std::string& id,
                       Callback<Campaign> done);
  // RecoverInterruptedImports for contact imports.
  absl::StatusOr<int> RecoverContactImports(ImportResponseFinisher finish);

  Database* const db_;
  // The principals of keys that authenticated (see Authenticate).
  PrincipalCache principals_;
  // Campaigns GetCampaign read, by account and id; every write of the
  // campaigns table invalidates them all (Database::ObserveTable), so what
  // is served is what a read would see. Small campaigns only (their texts
  // up to kCachedCampaignText bytes), so the cache stays within a few MB.
  static constexpr size_t kCachedCampaigns = 1024;
  static constexpr size_t kCachedCampaignText = 16 * 1024;
  RowCache<Campaign> campaigns_{kCachedCampaigns, absl::Seconds(1)};
  // A transaction changed the campaigns table and has not ended: the cache
  // is bypassed, so that nothing older than what a read sees is served
  // between its commit and the invalidation after it.
  std::atomic<bool> campaigns_changing_{false};
  std::once_flag codec_once_;
  absl::StatusOr<std::unique_ptr<RecipientIdCodec>> codec_ =
      absl::InternalError("recipient id key not loaded");
};

}  // namespace campaigns::storage

#endif  // CAMPAIGND_STORAGE_SQLITE_STORE_H_
