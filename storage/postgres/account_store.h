// AccountStore: AccountRepository (server/domain/repository.h) on
// PostgreSQL, through Database (storage/postgres/database.h).
//
// Several instances may share the database: Authenticate reads the database
// on every call (no cache), so a key revoked through any instance is refused
// by every instance from the revocation's commit on. Idempotent creates take
// a transaction advisory lock on their (account, method, request id), so two
// instances given the same request at once create once and both answer
// with the first result.
//
// Thread-safe.
#ifndef CAMPAIGND_STORAGE_POSTGRES_ACCOUNT_STORE_H_
#define CAMPAIGND_STORAGE_POSTGRES_ACCOUNT_STORE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/domain/repository.h"
#include "storage/postgres/database.h"

namespace campaigns::storage::postgres {

class AccountStore : public AccountRepository {
 public:
  // `db` must outlive the store.
  explicit AccountStore(Database* db) : db_(db) {}

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

 private:
  Database* const db_;
};

}  // namespace campaigns::storage::postgres

#endif  // CAMPAIGND_STORAGE_POSTGRES_ACCOUNT_STORE_H_
