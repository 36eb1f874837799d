#include "server/domain/composed_repository.h"

#include <cstdlib>
#include <iostream>
#include <utility>

namespace campaigns {

ComposedRepository::ComposedRepository(const Parts& parts) : parts_(parts) {
  if (parts.accounts == nullptr || parts.billing == nullptr ||
      parts.templates == nullptr || parts.senders == nullptr ||
      parts.suppressions == nullptr || parts.campaigns == nullptr ||
      parts.recipients == nullptr || parts.contacts == nullptr ||
      parts.dispatch == nullptr) {
    std::cerr << "ComposedRepository: a part is missing\n";
    std::abort();
  }
}

absl::StatusOr<bool> ComposedRepository::BootstrapAdmin(
    const std::string& secret) {
  return parts_.accounts->BootstrapAdmin(secret);
}

absl::StatusOr<Principal> ComposedRepository::Authenticate(
    absl::string_view secret) {
  return parts_.accounts->Authenticate(secret);
}

absl::StatusOr<Account> ComposedRepository::GetAccount(
    const std::string& account_id) {
  return parts_.accounts->GetAccount(account_id);
}

void ComposedRepository::CreateAccount(AccountWithKey created,
                                       IdempotencyKey idem,
                                       Done<AccountWithKey> done) {
  parts_.accounts->CreateAccount(std::move(created), std::move(idem),
                                 std::move(done));
}

void ComposedRepository::CreateApiKey(ApiKey key, IdempotencyKey idem,
                                      Done<ApiKey> done) {
  parts_.accounts->CreateApiKey(std::move(key), std::move(idem),
                                std::move(done));
}

absl::StatusOr<Page<ApiKey>> ComposedRepository::ListApiKeys(
    const std::string& account_id, const PageRequest& page) {
  return parts_.accounts->ListApiKeys(account_id, page);
}

void ComposedRepository::RevokeApiKey(const std::string& account_id,
                                      const std::string& key_id,
                                      Done<ApiKey> done) {
  parts_.accounts->RevokeApiKey(account_id, key_id, std::move(done));
}

void ComposedRepository::SetPrices(const std::string& account_id,
                                   std::vector<Price> prices,
                                   Done<std::vector<Price>> done) {
  parts_.billing->SetPrices(account_id, std::move(prices), std::move(done));
}

absl::StatusOr<std::vector<Price>> ComposedRepository::GetPrices(
    const std::string& account_id) {
  return parts_.billing->GetPrices(account_id);
}

void ComposedRepository::AddCredits(const std::string& account_id,
                                    int64_t amount, std::string description,
                                    IdempotencyKey idem, Done<Account> done) {
  parts_.billing->AddCredits(account_id, amount, std::move(description),
                             std::move(idem), std::move(done));
}

absl::StatusOr<Page<Transaction>> ComposedRepository::ListTransactions(
    const std::string& account_id, const PageRequest& page) {
  return parts_.billing->ListTransactions(account_id, page);
}

void ComposedRepository::PrepareCosts(const std::string& account_id,
                                      const std::string& campaign_id,
                                      bool only_if_priced, StatusDone then) {
  parts_.billing->PrepareCosts(account_id, campaign_id, only_if_priced,
                               std::move(then));
}

absl::StatusOr<std::optional<CostEstimateValue>>
ComposedRepository::ReadEstimate(const std::string& account_id,
                                 const std::string& campaign_id) {
  return parts_.billing->ReadEstimate(account_id, campaign_id);
}

absl::StatusOr<AccountStats> ComposedRepository::CampaignStatsOf(
    const std::string& account_id, const StatsFilter& filter) {
  return parts_.billing->CampaignStatsOf(account_id, filter);
}

void ComposedRepository::CreateTemplate(Template t, IdempotencyKey idem,
                                        Done<Template> done) {
  parts_.templates->CreateTemplate(std::move(t), std::move(idem),
                                   std::move(done));
}

absl::StatusOr<Template> ComposedRepository::GetTemplate(
    const std::string& account_id, const std::string& id) {
  return parts_.templates->GetTemplate(account_id, id);
}

absl::StatusOr<Template> ComposedRepository::GetTemplateForReview(
    const std::string& id) {
  return parts_.templates->GetTemplateForReview(id);
}

absl::StatusOr<Page<Template>> ComposedRepository::ListTemplates(
    const std::string& account_id, const TemplateFilter& filter,
    const PageRequest& page) {
  return parts_.templates->ListTemplates(account_id, filter, page);
}

void ComposedRepository::UpdateTemplate(
    const std::string& account_id, const std::string& id,
    std::function<absl::Status(Template&)> mutate, Done<Template> done) {
  parts_.templates->UpdateTemplate(account_id, id, std::move(mutate),
                                   std::move(done));
}

void ComposedRepository::DeleteTemplate(const std::string& account_id,
                                        const std::string& id,
                                        StatusDone done) {
  parts_.templates->DeleteTemplate(account_id, id, std::move(done));
}

void ComposedRepository::RegisterSender(Sender s, IdempotencyKey idem,
                                        Done<Sender> done) {
  parts_.senders->RegisterSender(std::move(s), std::move(idem),
                                 std::move(done));
}

absl::StatusOr<Sender> ComposedRepository::GetSender(
    const std::string& account_id, const std::string& id) {
  return parts_.senders->GetSender(account_id, id);
}

absl::StatusOr<Page<Sender>> ComposedRepository::ListSenders(
    const std::string& account_id, Channel channel, const PageRequest& page) {
  return parts_.senders->ListSenders(account_id, channel, page);
}

void ComposedRepository::DeleteSender(const std::string& account_id,
                                      const std::string& id, StatusDone done) {
  parts_.senders->DeleteSender(account_id, id, std::move(done));
}

void ComposedRepository::AddSuppression(Suppression s, Done<Suppression> done) {
  parts_.suppressions->AddSuppression(std::move(s), std::move(done));
}

void ComposedRepository::AddProviderSuppression(
    const std::vector<std::string>& providers, const std::string& to,
    Suppression s, Done<int> done) {
  parts_.suppressions->AddProviderSuppression(providers, to, std::move(s),
                                              std::move(done));
}

void ComposedRepository::RemoveSuppression(const std::string& account_id,
                                           const std::string& address,
                                           Channel channel, StatusDone done) {
  parts_.suppressions->RemoveSuppression(account_id, address, channel,
                                         std::move(done));
}

absl::StatusOr<Page<Suppression>> ComposedRepository::ListSuppressions(
    const std::string& account_id, const SuppressionFilter& filter,
    const PageRequest& page) {
  return parts_.suppressions->ListSuppressions(account_id, filter, page);
}

absl::StatusOr<std::vector<Suppression>> ComposedRepository::FindSuppressions(
    const std::string& account_id, const std::string& address,
    Channel channel) {
  return parts_.suppressions->FindSuppressions(account_id, address, channel);
}

void ComposedRepository::CreateCampaign(Campaign c, IdempotencyKey idem,
                                        Done<Campaign> done,
                                        std::optional<LifecycleChange> then) {
  parts_.campaigns->CreateCampaign(std::move(c), std::move(idem),
                                   std::move(done), std::move(then));
}

absl::StatusOr<Campaign> ComposedRepository::GetCampaign(
    const std::string& account_id, const std::string& id) {
  return parts_.campaigns->GetCampaign(account_id, id);
}

absl::StatusOr<Page<Campaign>> ComposedRepository::ListCampaigns(
    const std::string& account_id, const CampaignFilter& filter,
    const PageRequest& page) {
  return parts_.campaigns->ListCampaigns(account_id, filter, page);
}

absl::StatusOr<CampaignTotals> ComposedRepository::CountCampaigns() {
  return parts_.campaigns->CountCampaigns();
}

void ComposedRepository::UpdateCampaign(
    const std::string& account_id, const std::string& id,
    std::function<absl::Status(Campaign&)> mutate, Done<Campaign> done) {
  parts_.campaigns->UpdateCampaign(account_id, id, std::move(mutate),
                                   std::move(done));
}

void ComposedRepository::DeleteCampaign(const std::string& account_id,
                                        const std::string& id,
                                        StatusDone done) {
  parts_.campaigns->DeleteCampaign(account_id, id, std::move(done));
}

absl::StatusOr<int> ComposedRepository::ResumeCampaignDeletions() {
  return parts_.campaigns->ResumeCampaignDeletions();
}

void ComposedRepository::BeginRecipientImport(const std::string& account_id,
                                              const std::string& campaign_id,
                                              Done<ImportLease> done) {
  parts_.recipients->BeginRecipientImport(account_id, campaign_id,
                                          std::move(done));
}

void ComposedRepository::StageRecipients(const ImportLease& lease,
                                         std::vector<StagedRecipient> rows,
                                         Done<std::vector<int32_t>> done) {
  parts_.recipients->StageRecipients(lease, std::move(rows), std::move(done));
}

absl::StatusOr<ImportDuplicates> ComposedRepository::SettleRecipientImport(
    const ImportLease& lease, size_t max_listed,
    const std::function<bool()>& cancelled) {
  return parts_.recipients->SettleRecipientImport(lease, max_listed, cancelled);
}

void ComposedRepository::CommitRecipientImport(const ImportLease& lease,
                                               int64_t imported,
                                               const std::string& request_id,
                                               const ImportRecord& record,
                                               Done<Campaign> done) {
  parts_.recipients->CommitRecipientImport(lease, imported, request_id, record,
                                           std::move(done));
}

void ComposedRepository::AbortRecipientImport(const ImportLease& lease,
                                              StatusDone done) {
  parts_.recipients->AbortRecipientImport(lease, std::move(done));
}

absl::StatusOr<int> ComposedRepository::RecoverInterruptedImports(
    ImportResponseFinisher finish) {
  return parts_.recipients->RecoverInterruptedImports(std::move(finish));
}

absl::StatusOr<std::optional<ImportRecord>>
ComposedRepository::FindImportRecord(const std::string& account_id,
                                     const std::string& method,
                                     const std::string& request_id) {
  return parts_.recipients->FindImportRecord(account_id, method, request_id);
}

absl::StatusOr<std::map<std::string, std::string>>
ComposedRepository::ContactAddresses(
    const std::string& account_id, Channel channel,
    const std::vector<std::string>& contact_ids) {
  return parts_.recipients->ContactAddresses(account_id, channel, contact_ids);
}

absl::StatusOr<Page<Recipient>> ComposedRepository::ListRecipients(
    const std::string& account_id, const std::string& campaign_id,
    RecipientStatus status, const PageRequest& page) {
  return parts_.recipients->ListRecipients(account_id, campaign_id, status,
                                           page);
}

void ComposedRepository::CreateContact(Contact c, IdempotencyKey idem,
                                       Done<Contact> done) {
  parts_.contacts->CreateContact(std::move(c), std::move(idem),
                                 std::move(done));
}

absl::StatusOr<Contact> ComposedRepository::GetContact(
    const std::string& account_id, const std::string& id) {
  return parts_.contacts->GetContact(account_id, id);
}

absl::StatusOr<Page<Contact>> ComposedRepository::ListContacts(
    const std::string& account_id, const ContactFilter& filter,
    const PageRequest& page) {
  return parts_.contacts->ListContacts(account_id, filter, page);
}

void ComposedRepository::UpdateContact(
    const std::string& account_id, const std::string& id,
    std::function<absl::Status(Contact&)> mutate, Done<Contact> done) {
  parts_.contacts->UpdateContact(account_id, id, std::move(mutate),
                                 std::move(done));
}

void ComposedRepository::DeleteContact(const std::string& account_id,
                                       const std::string& id, StatusDone done) {
  parts_.contacts->DeleteContact(account_id, id, std::move(done));
}

void ComposedRepository::CreateContactList(ContactList l, IdempotencyKey idem,
                                           Done<ContactList> done) {
  parts_.contacts->CreateContactList(std::move(l), std::move(idem),
                                     std::move(done));
}

absl::StatusOr<ContactList> ComposedRepository::GetContactList(
    const std::string& account_id, const std::string& id) {
  return parts_.contacts->GetContactList(account_id, id);
}

absl::StatusOr<Page<ContactList>> ComposedRepository::ListContactLists(
    const std::string& account_id, const PageRequest& page) {
  return parts_.contacts->ListContactLists(account_id, page);
}

void ComposedRepository::DeleteContactList(const std::string& account_id,
                                           const std::string& id,
                                           StatusDone done) {
  parts_.contacts->DeleteContactList(account_id, id, std::move(done));
}

void ComposedRepository::AddContactsToList(const std::string& account_id,
                                           const std::string& list_id,
                                           std::vector<std::string> contact_ids,
                                           Done<ListMembershipChange> done) {
  parts_.contacts->AddContactsToList(account_id, list_id,
                                     std::move(contact_ids), std::move(done));
}

void ComposedRepository::RemoveContactsFromList(
    const std::string& account_id, const std::string& list_id,
    std::vector<std::string> contact_ids, Done<ListMembershipChange> done) {
  parts_.contacts->RemoveContactsFromList(
      account_id, list_id, std::move(contact_ids), std::move(done));
}

void ComposedRepository::MaterializeAudience(const std::string& account_id,
                                             const std::string& campaign_id,
                                             Done<MaterializeResult> done) {
  parts_.contacts->MaterializeAudience(account_id, campaign_id,
                                       std::move(done));
}

void ComposedRepository::BeginContactImport(ContactImportLease lease,
                                            Done<ContactImportLease> done) {
  parts_.contacts->BeginContactImport(std::move(lease), std::move(done));
}

void ComposedRepository::StageContacts(const ContactImportLease& lease,
                                       int64_t first_row,
                                       std::vector<StagedRecipient> rows,
                                       Done<std::vector<int32_t>> done) {
  parts_.contacts->StageContacts(lease, first_row, std::move(rows),
                                 std::move(done));
}

void ComposedRepository::CommitContactImport(const ContactImportLease& lease,
                                             const std::string& request_id,
                                             const ImportRecord& record,
                                             ImportResponseFinisher finish,
                                             Done<ContactImportResult> done) {
  parts_.contacts->CommitContactImport(lease, request_id, record,
                                       std::move(finish), std::move(done));
}

void ComposedRepository::AbortContactImport(const ContactImportLease& lease,
                                            StatusDone done) {
  parts_.contacts->AbortContactImport(lease, std::move(done));
}

void ComposedRepository::TransitionCampaign(const std::string& account_id,
                                            const std::string& id,
                                            LifecycleChange change,
                                            Done<Campaign> done) {
  parts_.dispatch->TransitionCampaign(account_id, id, std::move(change),
                                      std::move(done));
}

absl::StatusOr<std::vector<Recipient>> ComposedRepository::LeaseRecipients(
    const Campaign& c, int64_t after_seq, int limit, const Lease* fence) {
  return parts_.dispatch->LeaseRecipients(c, after_seq, limit, fence);
}

void ComposedRepository::RecordOutcomes(const std::string& account_id,
                                        const std::string& campaign_id,
                                        std::vector<DispatchOutcome> outcomes,
                                        Done<Campaign> done) {
  parts_.dispatch->RecordOutcomes(account_id, campaign_id, std::move(outcomes),
                                  std::move(done));
}

void ComposedRepository::MarkHanded(const std::string& account_id,
                                    const std::string& campaign_id,
                                    std::vector<int64_t> seqs, bool handed,
                                    const Lease* fence,
                                    std::function<void(absl::Status)> done) {
  parts_.dispatch->MarkHanded(account_id, campaign_id, std::move(seqs), handed,
                              fence, std::move(done));
}

void ComposedRepository::ApplyReceipts(const std::string& account_id,
                                       std::vector<ReceiptUpdate> receipts,
                                       Done<ReceiptResult> done) {
  parts_.dispatch->ApplyReceipts(account_id, std::move(receipts),
                                 std::move(done));
}

void ComposedRepository::ApplyProviderReceipts(
    const std::string& provider, std::vector<ReceiptUpdate> receipts,
    Done<ReceiptResult> done) {
  parts_.dispatch->ApplyProviderReceipts(provider, std::move(receipts),
                                         std::move(done));
}

void ComposedRepository::RetryFailed(const std::string& account_id,
                                     const std::string& id,
                                     std::vector<std::string> error_codes,
                                     Done<RetryResult> done) {
  parts_.dispatch->RetryFailed(account_id, id, std::move(error_codes),
                               std::move(done));
}

absl::StatusOr<std::vector<Campaign>> ComposedRepository::CampaignsInStatus(
    const std::vector<CampaignStatus>& statuses) {
  return parts_.dispatch->CampaignsInStatus(statuses);
}

absl::StatusOr<Campaign> ComposedRepository::CampaignById(
    const std::string& id) {
  return parts_.dispatch->CampaignById(id);
}

absl::StatusOr<std::vector<Campaign>>
ComposedRepository::CutOffCancellations() {
  return parts_.dispatch->CutOffCancellations();
}
void ComposedRepository::SkipCancelled(const std::string& account_id,
                                       const std::string& id,
                                       Done<Campaign> done) {
  parts_.dispatch->SkipCancelled(account_id, id, std::move(done));
}

absl::StatusOr<MessageContent> ComposedRepository::MessageContentOf(
    const Campaign& c) {
  return parts_.dispatch->MessageContentOf(c);
}

absl::StatusOr<Sender> ComposedRepository::SenderOf(const Campaign& c) {
  return parts_.dispatch->SenderOf(c);
}

absl::StatusOr<std::vector<bool>> ComposedRepository::SuppressedAmong(
    const std::string& account_id, Channel channel,
    const std::vector<std::string>& addresses) {
  return parts_.dispatch->SuppressedAmong(account_id, channel, addresses);
}
}  // namespace campaigns
