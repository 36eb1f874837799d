// AccountRepository's contract, on every engine (engines.h): the admin
// bootstrap, authentication and revocation, idempotent creates, tenancy of
// keys, paging.
#include <gtest/gtest.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
#include "tests/conformance/engines.h"
#include "tests/storage/temp_db.h"
#include "tests/support/builders.h"

namespace campaigns::conformance {
namespace {

using storage::test_util::AwaitResult;
using test_builders::NewAccount;
using test_builders::NewKey;

class AccountRepositoryTest : public EngineTest {
 protected:
  absl::StatusOr<AccountWithKey> Create(AccountWithKey a,
                                        IdempotencyKey idem = {}) {
    return AwaitResult<AccountWithKey>([&](Done<AccountWithKey> done) {
      accounts().CreateAccount(std::move(a), std::move(idem), std::move(done));
    });
  }

  absl::StatusOr<ApiKey> AddKey(ApiKey k, IdempotencyKey idem = {}) {
    return AwaitResult<ApiKey>([&](Done<ApiKey> done) {
      accounts().CreateApiKey(std::move(k), std::move(idem), std::move(done));
    });
  }

  absl::StatusOr<ApiKey> Revoke(const std::string& account,
                                const std::string& key) {
    return AwaitResult<ApiKey>([&](Done<ApiKey> done) {
      accounts().RevokeApiKey(account, key, std::move(done));
    });
  }
};

TEST_P(AccountRepositoryTest, BootstrapAdminCreatesOnceThenReturnsFalse) {
  const std::string secret = "bootstrap-secret-0123456789";
  absl::StatusOr<bool> made = accounts().BootstrapAdmin(secret);
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_TRUE(*made);
  absl::StatusOr<Principal> p = accounts().Authenticate(secret);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->admin);
  absl::StatusOr<Account> admin = accounts().GetAccount(p->account_id);
  ASSERT_TRUE(admin.ok()) << admin.status();
  EXPECT_EQ(admin->name, "admin");
  EXPECT_TRUE(admin->admin);
  made = accounts().BootstrapAdmin("another-secret-0123456789");
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_FALSE(*made);
  EXPECT_EQ(
      accounts().Authenticate("another-secret-0123456789").status().code(),
      absl::StatusCode::kUnauthenticated);
}

TEST_P(AccountRepositoryTest, UnknownKeysAndAccountsAreRefused) {
  EXPECT_EQ(accounts().Authenticate("no-such-key-0123456789").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(accounts().Authenticate("").status().code(),
            absl::StatusCode::kUnauthenticated);
  absl::StatusOr<Account> a = accounts().GetAccount("acc_nosuch");
  EXPECT_EQ(a.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(a.status().message(),
            errors::NotFound("account", "acc_nosuch").message());
}

TEST_P(AccountRepositoryTest, CreatedAccountsAuthenticateWithTheirKey) {
  absl::StatusOr<AccountWithKey> a =
      Create(NewAccount("Acme", "acme-secret-0123456789"));
  ASSERT_TRUE(a.ok()) << a.status();
  absl::StatusOr<Principal> p =
      accounts().Authenticate("acme-secret-0123456789");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->account_id, a->account.id);
  EXPECT_EQ(p->key_id, a->key.id);
  EXPECT_FALSE(p->admin);
  absl::StatusOr<Account> read = accounts().GetAccount(a->account.id);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->name, "Acme");
  EXPECT_EQ(read->currency, a->account.currency);
  EXPECT_EQ(read->credits_balance, 0);
  EXPECT_EQ(absl::ToUnixMicros(read->created_at),
            absl::ToUnixMicros(a->account.created_at));
}

TEST_P(AccountRepositoryTest, CreateAccountIsIdempotent) {
  const IdempotencyKey idem{"CreateAccount/acc_admin", "req-1", "hash-1"};
  absl::StatusOr<AccountWithKey> first =
      Create(NewAccount("One", "one-secret-0123456789"), idem);
  ASSERT_TRUE(first.ok()) << first.status();
  // The same request again: the first account, and no second one.
  absl::StatusOr<AccountWithKey> again =
      Create(NewAccount("One", "one-secret-other-012345"), idem);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->account.id, first->account.id);
  EXPECT_EQ(accounts().Authenticate("one-secret-other-012345").status().code(),
            absl::StatusCode::kUnauthenticated);
  // The same request id with another body: a conflict.
  absl::StatusOr<AccountWithKey> other =
      Create(NewAccount("Two", "two-secret-0123456789"),
             IdempotencyKey{"CreateAccount/acc_admin", "req-1", "hash-2"});
  EXPECT_EQ(other.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(errors::ReasonOf(other.status()), errors::kIdempotencyConflict);
}

TEST_P(AccountRepositoryTest, KeysBelongToTheirAccount) {
  absl::StatusOr<AccountWithKey> a =
      Create(NewAccount("A", "a-secret-0123456789"));
  absl::StatusOr<AccountWithKey> b =
      Create(NewAccount("B", "b-secret-0123456789"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(AddKey(NewKey("acc_nosuch", "x-secret-0123456789")).status().code(),
            absl::StatusCode::kNotFound);
  const IdempotencyKey idem{"CreateApiKey", "key-req", "h"};
  absl::StatusOr<ApiKey> k1 =
      AddKey(NewKey(a->account.id, "a2-secret-0123456789"), idem);
  ASSERT_TRUE(k1.ok()) << k1.status();
  absl::StatusOr<ApiKey> k1_again =
      AddKey(NewKey(a->account.id, "a3-secret-0123456789"), idem);
  ASSERT_TRUE(k1_again.ok()) << k1_again.status();
  EXPECT_EQ(k1_again->id, k1->id);
  // B cannot see or revoke A's key.
  EXPECT_EQ(Revoke(b->account.id, k1->id).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Revoke("", k1->id).status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<Page<ApiKey>> listed =
      accounts().ListApiKeys(b->account.id, PageRequest{});
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->items.size(), 1u);
  EXPECT_EQ(listed->items[0].id, b->key.id);
  EXPECT_TRUE(accounts().Authenticate("a2-secret-0123456789").ok());
}

TEST_P(AccountRepositoryTest, ListApiKeysPagesNewestFirst) {
  absl::StatusOr<AccountWithKey> a =
      Create(NewAccount("A", "a-secret-0123456789"));
  ASSERT_TRUE(a.ok()) << a.status();
  for (int i = 0; i < 4; ++i) {
    ApiKey k =
        NewKey(a->account.id, absl::StrCat("k", i, "-secret-0123456789"));
    k.created_at = a->key.created_at + absl::Seconds(i + 1);
    k.name = absl::StrCat("key", i);
    ASSERT_TRUE(AddKey(k).ok());
  }
  PageRequest page;
  page.limit = 2;
  absl::StatusOr<Page<ApiKey>> p1 = accounts().ListApiKeys(a->account.id, page);
  ASSERT_TRUE(p1.ok()) << p1.status();
  EXPECT_EQ(p1->total, 5);
  EXPECT_TRUE(p1->has_more);
  ASSERT_EQ(p1->items.size(), 2u);
  EXPECT_EQ(p1->items[0].name, "key3");
  EXPECT_EQ(p1->items[1].name, "key2");
  page.page = 3;
  absl::StatusOr<Page<ApiKey>> p3 = accounts().ListApiKeys(a->account.id, page);
  ASSERT_TRUE(p3.ok()) << p3.status();
  EXPECT_FALSE(p3->has_more);
  ASSERT_EQ(p3->items.size(), 1u);
  EXPECT_EQ(p3->items[0].id, a->key.id);
}

TEST_P(AccountRepositoryTest, ARevokedKeyIsRefusedFromTheAnswerOn) {
  absl::StatusOr<AccountWithKey> a =
      Create(NewAccount("A", "a-secret-0123456789"));
  ASSERT_TRUE(a.ok()) << a.status();
  // Authenticated once (a cache, if the engine has one, now holds it).
  ASSERT_TRUE(accounts().Authenticate("a-secret-0123456789").ok());
  absl::StatusOr<ApiKey> revoked = Revoke(a->account.id, a->key.id);
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  ASSERT_TRUE(revoked->revoked_at.has_value());
  EXPECT_EQ(accounts().Authenticate("a-secret-0123456789").status().code(),
            absl::StatusCode::kUnauthenticated);
  // Revoking again returns it unchanged.
  absl::StatusOr<ApiKey> again = Revoke(a->account.id, a->key.id);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->revoked_at, revoked->revoked_at);
}

INSTANTIATE_TEST_SUITE_P(Engines, AccountRepositoryTest,
                         ::testing::ValuesIn(kEngines), EngineName);

}  // namespace
}  // namespace campaigns::conformance
