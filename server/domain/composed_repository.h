// ComposedRepository: a Repository (repository.h) made of one
// implementation per interface, each call forwarded to its part. A storage
// engine whose repositories are separate classes (storage/postgres/) is
// presented to the API and the dispatch engine through it.
//
//   ComposedRepository::Parts parts;
//   parts.accounts = &accounts; ...  // every part set
//   ComposedRepository repo(parts);
//
// Thread-safe as its parts are; the parts must outlive it.
#ifndef CAMPAIGND_SERVER_DOMAIN_COMPOSED_REPOSITORY_H_
#define CAMPAIGND_SERVER_DOMAIN_COMPOSED_REPOSITORY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/domain/dispatch_store.h"
#include "server/domain/repository.h"

namespace campaigns {

class ComposedRepository : public Repository {
 public:
  struct Parts {
    AccountRepository* accounts = nullptr;
    BillingRepository* billing = nullptr;
    TemplateRepository* templates = nullptr;
    SenderRepository* senders = nullptr;
    SuppressionRepository* suppressions = nullptr;
    CampaignRepository* campaigns = nullptr;
    RecipientRepository* recipients = nullptr;
    ContactRepository* contacts = nullptr;
    DispatchStore* dispatch = nullptr;
  };

  // Every part must be set (checked: a missing one is a programming error).
  explicit ComposedRepository(const Parts& parts);

  // AccountRepository
  absl::StatusOr<bool> BootstrapAdmin(const std::string& secret) override;
  absl::StatusOr<Principal> Authenticate(absl::string_view secret) override;
  absl::StatusOr<Account> GetAccount(const std::string& account_id) override;
  void CreateAccount(AccountWithKey created, IdempotencyKey idem,
                     Done<AccountWithKey> done) override;
  void CreateApiKey(ApiKey key, IdempotencyKey idem,
                    Done<ApiKey> done) override;
  absl::StatusOr<Page<ApiKey>> ListApiKeys(const std::string& account_id,
                                           const PageRequest& page) override;
  void RevokeApiKey(const std::string& account_id, const std::string& key_id,
                    Done<ApiKey> done) override;

  // BillingRepository
  void SetPrices(const std::string& account_id, std::vector<Price> prices,
                 Done<std::vector<Price>> done) override;
  absl::StatusOr<std::vector<Price>> GetPrices(
      const std::string& account_id) override;
  void AddCredits(const std::string& account_id, int64_t amount,
                  std::string description, IdempotencyKey idem,
                  Done<Account> done) override;
  absl::StatusOr<Page<Transaction>> ListTransactions(
      const std::string& account_id, const PageRequest& page) override;
  void PrepareCosts(const std::string& account_id,
                    const std::string& campaign_id, bool only_if_priced,
                    StatusDone then) override;
  absl::StatusOr<std::optional<CostEstimateValue>> ReadEstimate(
      const std::string& account_id, const std::string& campaign_id) override;
  absl::StatusOr<AccountStats> CampaignStatsOf(
      const std::string& account_id, const StatsFilter& filter) override;

  // TemplateRepository
  void CreateTemplate(Template t, IdempotencyKey idem,
                      Done<Template> done) override;
  absl::StatusOr<Template> GetTemplate(const std::string& account_id,
                                       const std::string& id) override;
  absl::StatusOr<Template> GetTemplateForReview(const std::string& id) override;
  absl::StatusOr<Page<Template>> ListTemplates(
      const std::string& account_id, const TemplateFilter& filter,
      const PageRequest& page) override;
  void UpdateTemplate(const std::string& account_id, const std::string& id,
                      std::function<absl::Status(Template&)> mutate,
                      Done<Template> done) override;
  void DeleteTemplate(const std::string& account_id, const std::string& id,
                      StatusDone done) override;

  // SenderRepository
  void RegisterSender(Sender s, IdempotencyKey idem,
                      Done<Sender> done) override;
  absl::StatusOr<Sender> GetSender(const std::string& account_id,
                                   const std::string& id) override;
  absl::StatusOr<Page<Sender>> ListSenders(const std::string& account_id,
                                           Channel channel,
                                           const PageRequest& page) override;
  void DeleteSender(const std::string& account_id, const std::string& id,
                    StatusDone done) override;

  // SuppressionRepository
  void AddSuppression(Suppression s, Done<Suppression> done) override;
  void AddProviderSuppression(const std::vector<std::string>& providers,
                              const std::string& to, Suppression s,
                              Done<int> done) override;
  void RemoveSuppression(const std::string& account_id,
                         const std::string& address, Channel channel,
                         StatusDone done) override;
  absl::StatusOr<Page<Suppression>> ListSuppressions(
      const std::string& account_id, const SuppressionFilter& filter,
      const PageRequest& page) override;
  absl::StatusOr<std::vector<Suppression>> FindSuppressions(
      const std::string& account_id, const std::string& address,
      Channel channel) override;

  // CampaignRepository
  void CreateCampaign(
      Campaign c, IdempotencyKey idem, Done<Campaign> done,
      std::optional<LifecycleChange> then = std::nullopt) override;
  absl::StatusOr<Campaign> GetCampaign(const std::string& account_id,
                                       const std::string& id) override;
  absl::StatusOr<Page<Campaign>> ListCampaigns(
      const std::string& account_id, const CampaignFilter& filter,
      const PageRequest& page) override;
  absl::StatusOr<CampaignTotals> CountCampaigns() override;
  void UpdateCampaign(const std::string& account_id, const std::string& id,
                      std::function<absl::Status(Campaign&)> mutate,
                      Done<Campaign> done) override;
  void DeleteCampaign(const std::string& account_id, const std::string& id,
                      StatusDone done) override;
  absl::StatusOr<int> ResumeCampaignDeletions() override;

  // RecipientRepository
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

  // ContactRepository
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

  // DispatchStore
  void TransitionCampaign(const std::string& account_id, const std::string& id,
                          LifecycleChange change, Done<Campaign> done) override;
  absl::StatusOr<std::vector<Recipient>> LeaseRecipients(
      const Campaign& c, int64_t after_seq, int limit,
      const Lease* fence) override;
  void RecordOutcomes(const std::string& account_id,
                      const std::string& campaign_id,
                      std::vector<DispatchOutcome> outcomes,
                      Done<Campaign> done) override;
  void MarkHanded(const std::string& account_id, const std::string& campaign_id,
                  std::vector<int64_t> seqs, bool handed, const Lease* fence,
                  std::function<void(absl::Status)> done) override;
  void ApplyReceipts(const std::string& account_id,
                     std::vector<ReceiptUpdate> receipts,
                     Done<ReceiptResult> done) override;
  void ApplyProviderReceipts(const std::string& provider,
                             std::vector<ReceiptUpdate> receipts,
                             Done<ReceiptResult> done) override;
  void RetryFailed(const std::string& account_id, const std::string& id,
                   std::vector<std::string> error_codes,
                   Done<RetryResult> done) override;
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
  const Parts parts_;
};

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_DOMAIN_COMPOSED_REPOSITORY_H_
