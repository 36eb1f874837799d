// Store: campaignd's data, as domain values, on top of Database.
//
// Reads run synchronously on the caller's thread with a pooled read
// connection. Writes are queued to the writer thread; their callback runs on
// the writer thread after the commit, with the committed value or a status
// (never an exception). Each write re-checks what it depends on (tenancy,
// references, state) inside its own transaction, so concurrent requests
// cannot slip past a check.
//
// Tenancy: every method takes the caller's account id, and an object of
// another account is NOT_FOUND exactly like a missing one; so is every object
// for an empty account id. Only methods named for it (GetTemplateForReview,
// GetAccount) look across accounts, for admin paths.
//
//   store.CreateCampaign(campaign, idem, [](absl::StatusOr<Campaign> c) {...});
//   absl::StatusOr<Campaign> c = store.GetCampaign(account_id, "cmp_...");
//
// Thread-safe.
#ifndef CAMPAIGND_STORAGE_STORE_H_
#define CAMPAIGND_STORAGE_STORE_H_

#include <functional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/domain/model.h"
#include "storage/database.h"

namespace campaigns::storage {

template <typename T>
using Callback = std::function<void(absl::StatusOr<T>)>;
using StatusCallback = std::function<void(absl::Status)>;

// Idempotency of a create: the same (account, method, request_id) with the
// same body_hash returns the first result; with another body_hash it is
// ALREADY_EXISTS / IDEMPOTENCY_CONFLICT. An empty request_id disables it.
struct IdempotencyKey {
  std::string method;
  std::string request_id;
  std::string body_hash;
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

class Store {
 public:
  // `db` must outlive the Store.
  explicit Store(Database* db) : db_(db) {}

  // --- Accounts and keys -------------------------------------------------

  // On a database with no account: creates the admin account and a key whose
  // secret is `secret` and returns true. Otherwise does nothing and returns
  // false. Synchronous; call once at start-up.
  absl::StatusOr<bool> BootstrapAdmin(const std::string& secret);

  // The principal of a non-revoked key with this secret, or UNAUTHENTICATED.
  absl::StatusOr<Principal> Authenticate(absl::string_view secret);

  absl::StatusOr<Account> GetAccount(const std::string& account_id);

  void CreateAccount(AccountWithKey created, IdempotencyKey idem,
                     Callback<AccountWithKey> done);
  // `key.account_id` must exist (else NOT_FOUND).
  void CreateApiKey(ApiKey key, IdempotencyKey idem, Callback<ApiKey> done);
  absl::StatusOr<Page<ApiKey>> ListApiKeys(const std::string& account_id,
                                           const PageRequest& page);
  // Revoking a revoked key returns it unchanged.
  void RevokeApiKey(const std::string& account_id, const std::string& key_id,
                    Callback<ApiKey> done);

  // --- Templates ---------------------------------------------------------

  void CreateTemplate(Template t, IdempotencyKey idem, Callback<Template> done);
  absl::StatusOr<Template> GetTemplate(const std::string& account_id,
                                       const std::string& id);
  // Any account's template: for admins (and provider sync) reviewing it.
  absl::StatusOr<Template> GetTemplateForReview(const std::string& id);
  absl::StatusOr<Page<Template>> ListTemplates(const std::string& account_id,
                                               const TemplateFilter& filter,
                                               const PageRequest& page);
  // Applies `mutate` to the stored template inside the write transaction and
  // stores the result (after ValidateTemplate).
  void UpdateTemplate(const std::string& account_id, const std::string& id,
                      std::function<absl::Status(Template&)> mutate,
                      Callback<Template> done);
  // Refused (FAILED_PRECONDITION) while a campaign that is not final uses it.
  void DeleteTemplate(const std::string& account_id, const std::string& id,
                      StatusCallback done);

  // --- Senders -----------------------------------------------------------

  void RegisterSender(Sender s, IdempotencyKey idem, Callback<Sender> done);
  absl::StatusOr<Sender> GetSender(const std::string& account_id,
                                   const std::string& id);
  absl::StatusOr<Page<Sender>> ListSenders(const std::string& account_id,
                                           Channel channel,
                                           const PageRequest& page);
  // Refused (FAILED_PRECONDITION) while a campaign that is not final uses it.
  void DeleteSender(const std::string& account_id, const std::string& id,
                    StatusCallback done);

  // --- Suppressions (do-not-contact list) -------------------------------

  // Adds the entry, or replaces reason and note of an existing one (same
  // account, address and channel); returns what is stored.
  void AddSuppression(Suppression s, Callback<Suppression> done);
  // NOT_FOUND when there is no such entry.
  void RemoveSuppression(const std::string& account_id,
                         const std::string& address, Channel channel,
                         StatusCallback done);
  absl::StatusOr<Page<Suppression>> ListSuppressions(
      const std::string& account_id, const SuppressionFilter& filter,
      const PageRequest& page);
  // The entries that suppress `address` on `channel`: its own and the
  // every-channel one. With Channel::kUnspecified, every entry of the address.
  absl::StatusOr<std::vector<Suppression>> FindSuppressions(
      const std::string& account_id, const std::string& address,
      Channel channel);

  // --- Campaigns ---------------------------------------------------------

  // Validates the campaign (ValidateCampaignSpec), resolves the sender
  // (registered for the campaign's channel, by visible id or snd_ id) and
  // template (exists, same channel, approved) and stores it with the status
  // the caller set (draft for a new campaign).
  void CreateCampaign(Campaign c, IdempotencyKey idem, Callback<Campaign> done);
  absl::StatusOr<Campaign> GetCampaign(const std::string& account_id,
                                       const std::string& id);
  absl::StatusOr<Page<Campaign>> ListCampaigns(const std::string& account_id,
                                               const CampaignFilter& filter,
                                               const PageRequest& page);
  // Draft or scheduled campaigns only (else ILLEGAL_TRANSITION). Applies
  // `mutate`, validates, re-resolves sender and template, stores.
  void UpdateCampaign(const std::string& account_id, const std::string& id,
                      std::function<absl::Status(Campaign&)> mutate,
                      Callback<Campaign> done);
  // Refused (ILLEGAL_TRANSITION) while sending.
  void DeleteCampaign(const std::string& account_id, const std::string& id,
                      StatusCallback done);

 private:
  Database* const db_;
};

}  // namespace campaigns::storage

#endif  // CAMPAIGND_STORAGE_STORE_H_
