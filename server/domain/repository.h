// The repositories: what campaignd keeps, as domain values, for the API
// and the dispatch engine. Each storage engine implements Repository (all of
// them, with DispatchStore); api/ and dispatch/ know only these interfaces.
//
// Reads are synchronous on the caller's thread. Writes complete
// asynchronously: `done` runs after the commit, on the storage writer
// thread, with the committed value or a status (never an exception), and
// must not block. Each write re-checks what it depends on (tenancy,
// references, state) inside its own transaction, so concurrent requests
// cannot slip past a check.
//
// Tenancy: every method takes the caller's account id, and an object of
// another account is NOT_FOUND exactly like a missing one; so is every object
// for an empty account id. Only methods named for it (GetTemplateForReview,
// GetAccount) look across accounts, for admin paths.
//
//   repo.CreateCampaign(campaign, idem, [](absl::StatusOr<Campaign> c) {...});
//   absl::StatusOr<Campaign> c = repo.GetCampaign(account_id, "cmp_...");
//
// Implementations are thread-safe.
#ifndef CAMPAIGND_SERVER_DOMAIN_REPOSITORY_H_
#define CAMPAIGND_SERVER_DOMAIN_REPOSITORY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/domain/billing.h"
#include "server/domain/dispatch_store.h"
#include "server/domain/model.h"

namespace campaigns {

using StatusDone = std::function<void(absl::Status)>;

// Idempotency of a create: the same (account, method, request_id) with the
// same body_hash returns the first result; with another body_hash it is
// ALREADY_EXISTS / IDEMPOTENCY_CONFLICT. An empty request_id disables it.
struct IdempotencyKey {
  std::string method;
  std::string request_id;
  std::string body_hash;
};

// An import in progress: its campaign and the first sequence number its
// staged rows may have.
struct ImportLease {
  Campaign campaign;
  int64_t floor = 0;
  // Whether SettleRecipientImport may have run for it (set by its caller
  // before the call): only then does a rollback look for the addresses it
  // added. BeginRecipientImport answers false; a lease found at start-up is
  // true.
  bool settled = true;
};

// One row to stage: a normalised address and its variables as a JSON object
// of strings (VariablesToJson).
struct StagedRecipient {
  std::string address;
  std::string contact_id;
  std::string variables_json;
  // Recipient imports: the destination country of a phone number
  // (RegionOfPhoneNumber), which prices it; unset = found when needed.
  std::optional<std::string> country;
  // Recipient imports: where the row was in the file (its row number, and
  // its CSV line or 0), to name it if it turns out to be a duplicate.
  int64_t row = 0;
  int64_t line = 0;
};

// What SettleRecipientImport found: how many staged rows were duplicates
// (and were deleted), and the first of them by row.
struct ImportDuplicates {
  struct Row {
    int64_t row = 0;
    int64_t line = 0;
    std::string address;
  };
  int64_t count = 0;
  std::vector<Row> first;  // by row, at most the number asked for
};

// What an import with a request id answered, kept for its repeats.
struct ImportRecord {
  std::string body_hash;
  std::string campaign_id;
  std::string response;  // opaque to storage
};

struct TemplateFilter {
  TemplateStatus status = TemplateStatus::kUnspecified;
  Channel channel = Channel::kUnspecified;
  std::string name;
};

// A new account with its first API key.
struct AccountWithKey {
  Account account;
  ApiKey key;  // key_hash set; the secret is the caller's
};

// --- Contacts and contact lists (types) ------------------------------------

// Filters of ListContacts; empty members do not filter.
struct ContactFilter {
  std::string tag;      // contacts having this tag
  std::string list_id;  // members of this contact list (NOT_FOUND if unknown)
  Channel channel = Channel::kUnspecified;
};

// What AddContactsToList / RemoveContactsFromList did.
struct ListMembershipChange {
  int64_t changed = 0;  // memberships added or removed
  ContactList list;     // the list afterwards (contact_count updated)
};

// What MaterializeAudience did. `matched` contacts are on the campaign's
// channel and in its audience; `suppressed` of them were skipped (their
// address is on the do-not-contact list); `inserted` recipients are new
// (matched - suppressed - those the campaign already had).
struct MaterializeResult {
  int64_t matched = 0;
  int64_t inserted = 0;
  int64_t suppressed = 0;
};

// A contact import: its id (0 until BeginContactImport) and what every row
// gets besides its own address and attributes.
struct ContactImportLease {
  int64_t id = 0;
  std::string account_id;
  Channel channel = Channel::kUnspecified;
  std::string list_id;            // "" = no list
  std::vector<std::string> tags;  // sorted and unique
};

// What applying a contact import did: contacts created, and existing
// contacts it matched (attributes merged, tags and list added).
struct ContactImportResult {
  int64_t created = 0;
  int64_t updated = 0;
};

// Completes the response an import recorded at commit (ImportRecord.response,
// opaque to storage) with the counts only applying knows. Must be pure: it
// may run at start-up for an import a restart interrupted.
using ImportResponseFinisher = std::function<std::string(
    const std::string& recorded, const ContactImportResult& result)>;

// Campaigns by status name over every account, and their queued recipients
// (CampaignRepository::CountCampaigns).
struct CampaignTotals {
  std::map<std::string, int64_t> by_status;
  int64_t queued = 0;
};

// Accounts and their API keys.
class AccountRepository {
 public:
  virtual ~AccountRepository() = default;

  // On a database with no account: creates the admin account and a key whose
  // secret is `secret` and returns true. Otherwise does nothing and returns
  // false. Synchronous; call once at start-up.
  virtual absl::StatusOr<bool> BootstrapAdmin(const std::string& secret) = 0;

  // The principal of a non-revoked key with this secret, or UNAUTHENTICATED.
  // An implementation may remember keys that authenticated, but once
  // RevokeApiKey has answered, the key is refused here at once.
  virtual absl::StatusOr<Principal> Authenticate(absl::string_view secret) = 0;

  virtual absl::StatusOr<Account> GetAccount(const std::string& account_id) = 0;

  virtual void CreateAccount(AccountWithKey created, IdempotencyKey idem,
                             Done<AccountWithKey> done) = 0;
  // `key.account_id` must exist (else NOT_FOUND).
  virtual void CreateApiKey(ApiKey key, IdempotencyKey idem,
                            Done<ApiKey> done) = 0;
  virtual absl::StatusOr<Page<ApiKey>> ListApiKeys(
      const std::string& account_id, const PageRequest& page) = 0;
  // Revoking a revoked key returns it unchanged. Once `done` runs, the key
  // no longer authenticates (Authenticate's cache has forgotten it).
  virtual void RevokeApiKey(const std::string& account_id,
                            const std::string& key_id, Done<ApiKey> done) = 0;
};

// Prices, credits, the ledger and cost estimates.
class BillingRepository {
 public:
  virtual ~BillingRepository() = default;

  // Amounts are micro-credits. Every change of a balance or reservation is a
  // ledger row (ListTransactions), written with it: at every row
  // balance + reserved = credits added - debited. Start reserves a
  // campaign's cost (see DispatchStore::TransitionCampaign), outcomes turn
  // it into debits or release it.

  // Replaces the account's price table with `prices` (NormalizePrices'd);
  // returns what is stored. NOT_FOUND for an unknown account. Campaigns
  // already started keep the prices they reserved with.
  virtual void SetPrices(const std::string& account_id,
                         std::vector<Price> prices,
                         Done<std::vector<Price>> done) = 0;
  virtual absl::StatusOr<std::vector<Price>> GetPrices(
      const std::string& account_id) = 0;
  // Adds `amount` (> 0) to the account's balance with a credit row.
  // Idempotent under `idem`. NOT_FOUND for an unknown account.
  virtual void AddCredits(const std::string& account_id, int64_t amount,
                          std::string description, IdempotencyKey idem,
                          Done<Account> done) = 0;
  // The account's ledger, newest first; keyset paging by `after_key`.
  virtual absl::StatusOr<Page<Transaction>> ListTransactions(
      const std::string& account_id, const PageRequest& page) = 0;
  // Counts what the cost of campaign `campaign_id`'s queued recipients
  // needs: their destination countries and, when the message has
  // placeholders, the SMS segments of each one's rendered message. A draft
  // with a contact audience has it materialised first (as Start would). Per-row
  // work once per recipient and message, in bulk-lane chunks, so that a
  // million recipients never hold the writer for long. Then `then` (always
  // OK: a problem is the next call's to report). With `only_if_priced`,
  // nothing for a campaign its account sends for free.
  virtual void PrepareCosts(const std::string& account_id,
                            const std::string& campaign_id, bool only_if_priced,
                            StatusDone then) = 0;
  // What the campaign's queued recipients cost: at the account's prices, or
  // at the campaign's own once started. One pass over the campaign's queued
  // rows on a read connection, aggregated per destination country; nullopt
  // when the rows are not all counted (PrepareCosts, then ask again).
  virtual absl::StatusOr<std::optional<CostEstimateValue>> ReadEstimate(
      const std::string& account_id, const std::string& campaign_id) = 0;
  // Counters (and cost) summed over the account's campaigns created in
  // [filter.from, filter.to) on filter.channel, per channel.
  virtual absl::StatusOr<AccountStats> CampaignStatsOf(
      const std::string& account_id, const StatsFilter& filter) = 0;
};

// Message templates.
class TemplateRepository {
 public:
  virtual ~TemplateRepository() = default;

  virtual void CreateTemplate(Template t, IdempotencyKey idem,
                              Done<Template> done) = 0;
  virtual absl::StatusOr<Template> GetTemplate(const std::string& account_id,
                                               const std::string& id) = 0;
  // Any account's template: for admins (and provider sync) reviewing it.
  virtual absl::StatusOr<Template> GetTemplateForReview(
      const std::string& id) = 0;
  virtual absl::StatusOr<Page<Template>> ListTemplates(
      const std::string& account_id, const TemplateFilter& filter,
      const PageRequest& page) = 0;
  // Applies `mutate` to the stored template inside the write transaction and
  // stores the result (after ValidateTemplate).
  virtual void UpdateTemplate(const std::string& account_id,
                              const std::string& id,
                              std::function<absl::Status(Template&)> mutate,
                              Done<Template> done) = 0;
  // Refused (FAILED_PRECONDITION) while a campaign that is not final uses it.
  virtual void DeleteTemplate(const std::string& account_id,
                              const std::string& id, StatusDone done) = 0;
};

// Registered senders.
class SenderRepository {
 public:
  virtual ~SenderRepository() = default;

  virtual void RegisterSender(Sender s, IdempotencyKey idem,
                              Done<Sender> done) = 0;
  virtual absl::StatusOr<Sender> GetSender(const std::string& account_id,
                                           const std::string& id) = 0;
  virtual absl::StatusOr<Page<Sender>> ListSenders(
      const std::string& account_id, Channel channel,
      const PageRequest& page) = 0;
  // Refused (FAILED_PRECONDITION) while a campaign that is not final uses it.
  virtual void DeleteSender(const std::string& account_id,
                            const std::string& id, StatusDone done) = 0;
};

// The do-not-contact list.
class SuppressionRepository {
 public:
  virtual ~SuppressionRepository() = default;

  // Adds the entry, or replaces reason and note of an existing one (same
  // account, address and channel); returns what is stored.
  virtual void AddSuppression(Suppression s, Done<Suppression> done) = 0;
  // An opt-out a provider's webhook brought: adds (or replaces) the
  // suppression of `s.address` on `s.channel` in every account that has a
  // sender with sender_id `to` on that channel whose provider is one of
  // `providers` (the one that received it, and those it is a fallback of);
  // every such sender when `to` is empty. `s.account_id` is ignored.
  // Returns how many accounts it was added to.
  virtual void AddProviderSuppression(const std::vector<std::string>& providers,
                                      const std::string& to, Suppression s,
                                      Done<int> done) = 0;
  // NOT_FOUND when there is no such entry.
  virtual void RemoveSuppression(const std::string& account_id,
                                 const std::string& address, Channel channel,
                                 StatusDone done) = 0;
  virtual absl::StatusOr<Page<Suppression>> ListSuppressions(
      const std::string& account_id, const SuppressionFilter& filter,
      const PageRequest& page) = 0;
  // The entries that suppress `address` on `channel`: its own and the
  // every-channel one. With Channel::kUnspecified, every entry of the address.
  virtual absl::StatusOr<std::vector<Suppression>> FindSuppressions(
      const std::string& account_id, const std::string& address,
      Channel channel) = 0;
};

// Campaigns (their lifecycle moves are DispatchStore's).
class CampaignRepository {
 public:
  virtual ~CampaignRepository() = default;

  // Validates the campaign (ValidateCampaignSpec), resolves the sender
  // (registered for the campaign's channel, by visible id or snd_ id) and
  // template (exists, same channel, approved) and stores it with the status
  // the caller set (draft for a new campaign).
  // With `then` (a kStart), the new campaign is also started in the same
  // transaction: if the start is refused, nothing is stored.
  virtual void CreateCampaign(
      Campaign c, IdempotencyKey idem, Done<Campaign> done,
      std::optional<LifecycleChange> then = std::nullopt) = 0;
  virtual absl::StatusOr<Campaign> GetCampaign(const std::string& account_id,
                                               const std::string& id) = 0;
  virtual absl::StatusOr<Page<Campaign>> ListCampaigns(
      const std::string& account_id, const CampaignFilter& filter,
      const PageRequest& page) = 0;
  // Every account's campaigns by status name, and their queued recipients,
  // from the campaigns' own counters (one pass over campaigns, none over
  // recipients). For metrics.
  virtual absl::StatusOr<CampaignTotals> CountCampaigns() = 0;
  // Draft or scheduled campaigns only (else ILLEGAL_TRANSITION). Applies
  // `mutate`, validates, re-resolves sender and template, stores.
  virtual void UpdateCampaign(const std::string& account_id,
                              const std::string& id,
                              std::function<absl::Status(Campaign&)> mutate,
                              Done<Campaign> done) = 0;
  // Refused (ILLEGAL_TRANSITION) while sending, and (VALIDATION_ERROR) while
  // an import into it runs. Once `done` is called with OK the campaign is
  // gone for every read; its recipients, then its row, are deleted in the
  // background in chunks (no write waits for a large campaign's delete).
  virtual void DeleteCampaign(const std::string& account_id,
                              const std::string& id, StatusDone done) = 0;
  // At start-up: resumes the deletions a crash or shutdown cut off. Returns
  // how many there were. Where several instances share the database, only
  // the deletions of dead instances are taken (a live one finishes its
  // own), and it is called periodically so that they are taken while the
  // others run.
  virtual absl::StatusOr<int> ResumeCampaignDeletions() = 0;
};

// A campaign's recipients and their imports.
class RecipientRepository {
 public:
  virtual ~RecipientRepository() = default;

  // An import stages its rows in the recipients table at sequence numbers
  // from the campaign's import floor on. Staged rows are invisible: lists,
  // counters and leases only see a campaign's rows below its floor. Commit
  // clears the floor and adds the rows to the counters in one small write;
  // abort deletes the staged rows in bounded chunks, so neither stalls other
  // writes however large the import. One import per campaign at a time.

  // Marks the start of an import into a draft, scheduled or paused campaign
  // whose audience is imported recipients. FAILED_PRECONDITION
  // (ILLEGAL_TRANSITION) in another status; VALIDATION_ERROR when the
  // campaign's audience is contacts, or another import is running or being
  // rolled back.
  virtual void BeginRecipientImport(const std::string& account_id,
                                    const std::string& campaign_id,
                                    Done<ImportLease> done) = 0;
  // Appends `rows` in order as staged recipients of `lease`'s campaign.
  // Duplicates are not looked for here (the result is always empty): an
  // address index filled in file order costs a page write per row once it
  // outgrows the cache. SettleRecipientImport finds them, in address order.
  virtual void StageRecipients(const ImportLease& lease,
                               std::vector<StagedRecipient> rows,
                               Done<std::vector<int32_t>> done) = 0;
  // After the last StageRecipients and before the commit: sorts the staged
  // rows by address (on a read connection, an external sort: memory
  // bounded whatever their number), deletes every staged row whose address
  // is already on the campaign or on an earlier row of this import, and
  // records the others' addresses in the campaign's address set, in
  // address order and in bounded bulk writes, so the cost is linear in the
  // rows and no other write waits behind more than one chunk. Returns the
  // duplicates, the first `max_listed` by row. Rows that remain are still
  // staged (invisible) until CommitRecipientImport. Blocks for as long as
  // that takes: call it from a worker thread, never from a completion-queue
  // thread or the writer. `cancelled` (may be null) is asked now and then;
  // true stops it with CANCELLED. Holds one read snapshot throughout, so
  // the WAL grows until it returns. On failure the import must be aborted.
  virtual absl::StatusOr<ImportDuplicates> SettleRecipientImport(
      const ImportLease& lease, size_t max_listed,
      const std::function<bool()>& cancelled = nullptr) = 0;
  // Makes the staged rows part of the campaign: `imported` (the number
  // staged, less the duplicates) is added to its total and queued counters.
  // The campaign must
  // still be draft, scheduled or paused with this lease's floor; otherwise
  // the import is refused and the caller must abort it. With a request id,
  // `record` is remembered for repeats (see FindImportRecord).
  virtual void CommitRecipientImport(const ImportLease& lease, int64_t imported,
                                     const std::string& request_id,
                                     const ImportRecord& record,
                                     Done<Campaign> done) = 0;
  // Deletes the staged rows of `lease` in chunks, then clears the floor.
  // `done` (may be null) runs after the last chunk.
  virtual void AbortRecipientImport(const ImportLease& lease,
                                    StatusDone done) = 0;
  // At start-up: aborts every recipient import and every contact import
  // still staging that a crash or shutdown left behind (their rows are
  // deleted in the background), and finishes applying committed contact
  // imports (their idempotency records completed by `finish`). Returns how
  // many imports there were. Where several instances share the database,
  // only the imports of dead instances are taken (a live one's stream may
  // still be running), and it is called periodically so that they are
  // taken while the others run.
  virtual absl::StatusOr<int> RecoverInterruptedImports(
      ImportResponseFinisher finish) = 0;

  // The import remembered under `request_id`, if any.
  virtual absl::StatusOr<std::optional<ImportRecord>> FindImportRecord(
      const std::string& account_id, const std::string& method,
      const std::string& request_id) = 0;

  // SuppressedAmong: see DispatchStore.

  // The addresses of those of `contact_ids` that are contacts of the
  // account on `channel`, by id. Runs on a read connection.
  virtual absl::StatusOr<std::map<std::string, std::string>> ContactAddresses(
      const std::string& account_id, Channel channel,
      const std::vector<std::string>& contact_ids) = 0;

  // A campaign's recipients in storage order; `status` kUnspecified lists
  // all. A page request with `after_key` (a keyset token) continues after
  // that recipient at index speed, whatever the page number.
  virtual absl::StatusOr<Page<Recipient>> ListRecipients(
      const std::string& account_id, const std::string& campaign_id,
      RecipientStatus status, const PageRequest& page) = 0;
};

// Contacts, contact lists and contact imports.
class ContactRepository {
 public:
  virtual ~ContactRepository() = default;

  // A contact is unique per (account, channel, address); its tags are kept
  // sorted and unique. Contact lists hold contacts of their own account only.

  // Stores `c` (address already normalised, tags sorted and unique).
  // ALREADY_EXISTS naming `address` when the account has a contact with the
  // same channel and address.
  virtual void CreateContact(Contact c, IdempotencyKey idem,
                             Done<Contact> done) = 0;
  virtual absl::StatusOr<Contact> GetContact(const std::string& account_id,
                                             const std::string& id) = 0;
  // Newest first. A `filter.list_id` that is not a list of the account is
  // NOT_FOUND.
  virtual absl::StatusOr<Page<Contact>> ListContacts(
      const std::string& account_id, const ContactFilter& filter,
      const PageRequest& page) = 0;
  // Applies `mutate` to the stored contact inside the write transaction and
  // stores address, attributes and tags (id, account and channel are kept).
  // ALREADY_EXISTS naming `address` if the new address is taken.
  virtual void UpdateContact(const std::string& account_id,
                             const std::string& id,
                             std::function<absl::Status(Contact&)> mutate,
                             Done<Contact> done) = 0;
  // Deletes the contact with its tags and list memberships. Recipients
  // already materialised from it stay.
  virtual void DeleteContact(const std::string& account_id,
                             const std::string& id, StatusDone done) = 0;

  virtual void CreateContactList(ContactList l, IdempotencyKey idem,
                                 Done<ContactList> done) = 0;
  // With contact_count.
  virtual absl::StatusOr<ContactList> GetContactList(
      const std::string& account_id, const std::string& id) = 0;
  virtual absl::StatusOr<Page<ContactList>> ListContactLists(
      const std::string& account_id, const PageRequest& page) = 0;
  // Deletes the list and its memberships (not the contacts). Refused
  // (FAILED_PRECONDITION / VALIDATION_ERROR) while a campaign that is not
  // final uses it as its audience.
  virtual void DeleteContactList(const std::string& account_id,
                                 const std::string& id, StatusDone done) = 0;
  // Adds the contacts (ids of the account's contacts; duplicates allowed) to
  // the list; `changed` counts only new memberships. An unknown contact id is
  // NOT_FOUND naming it, and nothing changes.
  virtual void AddContactsToList(const std::string& account_id,
                                 const std::string& list_id,
                                 std::vector<std::string> contact_ids,
                                 Done<ListMembershipChange> done) = 0;
  // Removes the contacts from the list; `changed` counts memberships that
  // existed. Unknown contact ids as for AddContactsToList.
  virtual void RemoveContactsFromList(const std::string& account_id,
                                      const std::string& list_id,
                                      std::vector<std::string> contact_ids,
                                      Done<ListMembershipChange> done) = 0;

  // Turns a campaign's contact audience (contact_list_id, tags: contacts with
  // any of them, or contact_ids) into recipients, in one write: one queued
  // recipient per matching contact of the account on the campaign's channel
  // (variables = the contact's attributes), except contacts whose address is
  // suppressed on that channel or on every channel, and except addresses the
  // campaign already has (so a re-run inserts nothing new). Adds the number
  // inserted to the campaign's total and queued counters in the same
  // transaction. FAILED_PRECONDITION / VALIDATION_ERROR for a campaign
  // without a contact audience or while an import into it is running;
  // ILLEGAL_TRANSITION for a final campaign.
  virtual void MaterializeAudience(const std::string& account_id,
                                   const std::string& campaign_id,
                                   Done<MaterializeResult> done) = 0;

  // Contact imports stage rows (normalised address, attributes JSON) out of
  // every reader's sight, then commit: from then on the import is certain
  // to take effect and is applied in chunks of bounded size, so a large
  // import never stalls other writes. A stream that fails before commit
  // leaves the contacts exactly as they were. Applying a row creates the
  // contact or merges its attributes into the existing one (the row's keys
  // win), and adds the lease's tags and list.

  // Opens an import of `lease` (id ignored). NOT_FOUND naming the list if
  // `lease.list_id` is not a contact list of the account.
  virtual void BeginContactImport(ContactImportLease lease,
                                  Done<ContactImportLease> done) = 0;
  // Stages `rows` (numbered from `first_row`, in order). The result lists
  // the indexes of duplicates: addresses earlier in this import.
  virtual void StageContacts(const ContactImportLease& lease, int64_t first_row,
                             std::vector<StagedRecipient> rows,
                             Done<std::vector<int32_t>> done) = 0;
  // Commits the import and applies it; `done` after the last chunk. With a
  // request id, the record (its response completed by `finish`) is kept
  // for repeats; IDEMPOTENCY_CONFLICT (and nothing committed) if another
  // import holds that request id.
  virtual void CommitContactImport(const ContactImportLease& lease,
                                   const std::string& request_id,
                                   const ImportRecord& record,
                                   ImportResponseFinisher finish,
                                   Done<ContactImportResult> done) = 0;
  // Deletes a staging import's rows in chunks; nothing for an import
  // already committed. `done` may be null.
  virtual void AbortContactImport(const ContactImportLease& lease,
                                  StatusDone done) = 0;
};

// Everything a storage engine provides.
class Repository : public DispatchStore,
                   public AccountRepository,
                   public BillingRepository,
                   public TemplateRepository,
                   public SenderRepository,
                   public SuppressionRepository,
                   public CampaignRepository,
                   public RecipientRepository,
                   public ContactRepository {};

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_DOMAIN_REPOSITORY_H_
