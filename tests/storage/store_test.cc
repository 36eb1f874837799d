// Tests of storage/sqlite/store.h on a temporary database file: accounts and
// keys, templates, senders, campaigns, tenancy and idempotency.
#include "storage/sqlite/store.h"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
#include "server/domain/model.h"
#include "storage/sqlite/database.h"
#include "tests/storage/temp_db.h"
#include "tests/support/builders.h"

namespace campaigns::storage {
namespace {

using test_builders::ExpectError;
using test_builders::ExpectNotFound;
using test_builders::NewAccount;
using test_builders::NewKey;
using test_builders::NewSender;
using test_builders::NewTemplate;
using test_util::AwaitResult;
using test_util::AwaitStatus;
using test_util::TempDir;
using ::testing::_;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;
using ::testing::UnorderedElementsAreArray;

// A Store on a fresh database file, with synchronous wrappers around its
// asynchronous writes.
class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DatabaseOptions options;
    options.path = dir_.File("store.db");
    options.read_connections = 2;
    absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(options);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    store_ = std::make_unique<Store>(db_.get());
  }

  void TearDown() override {
    store_.reset();
    db_.reset();
  }

  // --- Synchronous wrappers -------------------------------------------------

  absl::StatusOr<AccountWithKey> CreateAccount(AccountWithKey a,
                                               IdempotencyKey idem = {}) {
    return AwaitResult<AccountWithKey>([&](Callback<AccountWithKey> done) {
      store_->CreateAccount(std::move(a), std::move(idem), std::move(done));
    });
  }
  absl::StatusOr<ApiKey> CreateApiKey(ApiKey k, IdempotencyKey idem = {}) {
    return AwaitResult<ApiKey>([&](Callback<ApiKey> done) {
      store_->CreateApiKey(std::move(k), std::move(idem), std::move(done));
    });
  }
  absl::StatusOr<ApiKey> RevokeApiKey(const std::string& account,
                                      const std::string& key_id) {
    return AwaitResult<ApiKey>([&](Callback<ApiKey> done) {
      store_->RevokeApiKey(account, key_id, std::move(done));
    });
  }
  absl::StatusOr<Template> CreateTemplate(Template t,
                                          IdempotencyKey idem = {}) {
    return AwaitResult<Template>([&](Callback<Template> done) {
      store_->CreateTemplate(std::move(t), std::move(idem), std::move(done));
    });
  }
  absl::StatusOr<Template> UpdateTemplate(
      const std::string& account, const std::string& id,
      std::function<absl::Status(Template&)> mutate) {
    return AwaitResult<Template>([&](Callback<Template> done) {
      store_->UpdateTemplate(account, id, std::move(mutate), std::move(done));
    });
  }
  absl::Status DeleteTemplate(const std::string& account,
                              const std::string& id) {
    return AwaitStatus([&](StatusCallback done) {
      store_->DeleteTemplate(account, id, std::move(done));
    });
  }
  absl::StatusOr<Sender> RegisterSender(Sender s, IdempotencyKey idem = {}) {
    return AwaitResult<Sender>([&](Callback<Sender> done) {
      store_->RegisterSender(std::move(s), std::move(idem), std::move(done));
    });
  }
  absl::Status DeleteSender(const std::string& account, const std::string& id) {
    return AwaitStatus([&](StatusCallback done) {
      store_->DeleteSender(account, id, std::move(done));
    });
  }
  absl::StatusOr<Campaign> CreateCampaign(Campaign c,
                                          IdempotencyKey idem = {}) {
    return AwaitResult<Campaign>([&](Callback<Campaign> done) {
      store_->CreateCampaign(std::move(c), std::move(idem), std::move(done));
    });
  }
  absl::StatusOr<Campaign> UpdateCampaign(
      const std::string& account, const std::string& id,
      std::function<absl::Status(Campaign&)> mutate) {
    return AwaitResult<Campaign>([&](Callback<Campaign> done) {
      store_->UpdateCampaign(account, id, std::move(mutate), std::move(done));
    });
  }
  absl::Status DeleteCampaign(const std::string& account,
                              const std::string& id) {
    return AwaitStatus([&](StatusCallback done) {
      store_->DeleteCampaign(account, id, std::move(done));
    });
  }

  // Sets a campaign's status directly (UpdateCampaign's mutate runs before
  // validation), from an editable state.
  void ForceStatus(const std::string& account, const std::string& id,
                   CampaignStatus status) {
    absl::StatusOr<Campaign> c =
        UpdateCampaign(account, id, [status](Campaign& c) {
          c.status = status;
          return absl::OkStatus();
        });
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_EQ(c->status, status);
  }

  // --- Builders -------------------------------------------------------------

  static Campaign NewCampaign(const std::string& account,
                              const std::string& sender_id,
                              Channel channel = Channel::kSms) {
    Campaign c;
    c.id = NewId(kCampaignPrefix);
    c.account_id = account;
    c.name = "Spring sale";
    c.channel = channel;
    c.sender_id = sender_id;
    c.body = "Hi {{name}}";
    c.created_at = c.updated_at = absl::Now();
    return c;
  }

  // Registers a sender and fails the test if that does not work.
  Sender MustRegister(Sender s) {
    absl::StatusOr<Sender> out = RegisterSender(std::move(s));
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : Sender{};
  }
  Template MustCreate(Template t) {
    absl::StatusOr<Template> out = CreateTemplate(std::move(t));
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : Template{};
  }
  Campaign MustCreate(Campaign c) {
    absl::StatusOr<Campaign> out = CreateCampaign(std::move(c));
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : Campaign{};
  }

  int64_t CountCampaignRows() {
    return test_util::QueryInt(*db_, "SELECT COUNT(*) FROM campaigns");
  }

  PageRequest AllOnOnePage() {
    PageRequest page;
    page.limit = 100;
    return page;
  }

  std::vector<std::string> CampaignIds(const std::string& account,
                                       const CampaignFilter& filter) {
    absl::StatusOr<Page<Campaign>> page =
        store_->ListCampaigns(account, filter, AllOnOnePage());
    EXPECT_TRUE(page.ok()) << page.status();
    std::vector<std::string> ids;
    if (page.ok()) {
      for (const Campaign& c : page->items) ids.push_back(c.id);
    }
    return ids;
  }

  TempDir dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<Store> store_;
};

// A store with two ordinary accounts, A and B, each with an SMS sender.
class TwoAccountsTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    absl::StatusOr<AccountWithKey> a =
        CreateAccount(NewAccount("alpha", kSecretA));
    ASSERT_TRUE(a.ok()) << a.status();
    absl::StatusOr<AccountWithKey> b =
        CreateAccount(NewAccount("beta", kSecretB));
    ASSERT_TRUE(b.ok()) << b.status();
    a_ = a->account.id;
    b_ = b->account.id;
    key_a_ = a->key.id;
    sender_a_ = MustRegister(NewSender(a_, "+15550100"));
    sender_b_ = MustRegister(NewSender(b_, "+15550199"));
  }

  static constexpr const char* kSecretA = "ck_secret_of_account_alpha";
  static constexpr const char* kSecretB = "ck_secret_of_account_beta";
  std::string a_;
  std::string b_;
  std::string key_a_;
  Sender sender_a_;
  Sender sender_b_;
};

// --- Accounts and keys
// ---------------------------------------------------------

TEST_F(StoreTest, BootstrapAdminCreatesOnceThenReturnsFalse) {
  absl::StatusOr<bool> first = store_->BootstrapAdmin("ck_bootstrap_secret");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(*first);
  absl::StatusOr<bool> second = store_->BootstrapAdmin("ck_another_secret");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(*second);

  absl::StatusOr<Principal> admin = store_->Authenticate("ck_bootstrap_secret");
  ASSERT_TRUE(admin.ok()) << admin.status();
  EXPECT_TRUE(admin->admin);
  absl::StatusOr<Account> account = store_->GetAccount(admin->account_id);
  ASSERT_TRUE(account.ok()) << account.status();
  EXPECT_TRUE(account->admin);
  EXPECT_EQ(account->name, "admin");

  ExpectError(store_->Authenticate("ck_another_secret").status(),
              absl::StatusCode::kUnauthenticated, "UNAUTHORIZED");
}

TEST_F(StoreTest, BootstrapAdminDoesNothingWhenAnAccountExists) {
  ASSERT_TRUE(CreateAccount(NewAccount("existing", "ck_existing")).ok());
  absl::StatusOr<bool> created = store_->BootstrapAdmin("ck_bootstrap_secret");
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_FALSE(*created);
  EXPECT_EQ(store_->Authenticate("ck_bootstrap_secret").status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(StoreTest, BootstrapSurvivesReopen) {
  ASSERT_TRUE(store_->BootstrapAdmin("ck_bootstrap_secret").ok());
  const std::string path = db_->path();
  store_.reset();
  db_.reset();
  DatabaseOptions options;
  options.path = path;
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(options);
  ASSERT_TRUE(db.ok()) << db.status();
  db_ = std::move(*db);
  store_ = std::make_unique<Store>(db_.get());
  absl::StatusOr<bool> again = store_->BootstrapAdmin("ck_bootstrap_secret");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(*again);
  EXPECT_TRUE(store_->Authenticate("ck_bootstrap_secret").ok());
}

TEST_F(TwoAccountsTest, AuthenticateFindsTheKeysAccount) {
  absl::StatusOr<Principal> p = store_->Authenticate(kSecretA);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->account_id, a_);
  EXPECT_EQ(p->key_id, key_a_);
  EXPECT_FALSE(p->admin);

  absl::StatusOr<Principal> pb = store_->Authenticate(kSecretB);
  ASSERT_TRUE(pb.ok()) << pb.status();
  EXPECT_EQ(pb->account_id, b_);
}

TEST_F(TwoAccountsTest, AuthenticateRejectsUnknownSecrets) {
  for (const char* secret : {"ck_not_a_key", "", "ck_secret_of_account_alph"}) {
    ExpectError(store_->Authenticate(secret).status(),
                absl::StatusCode::kUnauthenticated, "UNAUTHORIZED");
  }
}

TEST_F(TwoAccountsTest, RevokedKeyNoLongerAuthenticates) {
  absl::StatusOr<ApiKey> revoked = RevokeApiKey(a_, key_a_);
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  EXPECT_EQ(revoked->id, key_a_);
  ASSERT_TRUE(revoked->revoked_at.has_value());
  ExpectError(store_->Authenticate(kSecretA).status(),
              absl::StatusCode::kUnauthenticated, "UNAUTHORIZED");
  // B's key is unaffected.
  EXPECT_TRUE(store_->Authenticate(kSecretB).ok());

  // Revoking again returns the key unchanged.
  absl::StatusOr<ApiKey> again = RevokeApiKey(a_, key_a_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->revoked_at, revoked->revoked_at);
}

TEST_F(TwoAccountsTest, RepeatedAuthenticationIsAnsweredFromTheCache) {
  absl::StatusOr<Principal> first = store_->Authenticate(kSecretA);
  ASSERT_TRUE(first.ok()) << first.status();
  // Revoked behind the Store's back (another connection): the Store does
  // not read the database again, so the key still authenticates...
  {
    SQLite::Database other(dir_.File("store.db"), SQLite::OPEN_READWRITE);
    other.setBusyTimeout(5000);
    SQLite::Statement st(other, "UPDATE api_keys SET revoked_at=1 WHERE id=?");
    st.bind(1, key_a_);
    ASSERT_EQ(st.exec(), 1);
  }
  absl::StatusOr<Principal> again = store_->Authenticate(kSecretA);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->key_id, first->key_id);
  EXPECT_EQ(again->account_id, a_);
  EXPECT_FALSE(again->admin);
  // ...until a revocation through the Store (here of the already revoked
  // key, which answers it unchanged) makes it forget.
  ASSERT_TRUE(RevokeApiKey(a_, key_a_).ok());
  ExpectError(store_->Authenticate(kSecretA).status(),
              absl::StatusCode::kUnauthenticated, "UNAUTHORIZED");
}

TEST_F(TwoAccountsTest, CachedKeyRefusedOnTheCallAfterItsRevocation) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(store_->Authenticate(kSecretA).ok());
  ASSERT_TRUE(store_->Authenticate(kSecretB).ok());
  // The callback is where the API answers RevokeApiKey: the key must be
  // refused already there, and on every later call.
  absl::Status inside = absl::OkStatus();
  absl::StatusOr<ApiKey> revoked =
      AwaitResult<ApiKey>([&](Callback<ApiKey> done) {
        store_->RevokeApiKey(
            a_, key_a_,
            [&, done = std::move(done)](absl::StatusOr<ApiKey> key) {
              inside = store_->Authenticate(kSecretA).status();
              done(std::move(key));
            });
      });
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  ExpectError(inside, absl::StatusCode::kUnauthenticated, "UNAUTHORIZED");
  ExpectError(store_->Authenticate(kSecretA).status(),
              absl::StatusCode::kUnauthenticated, "UNAUTHORIZED");
  // The other account's cached key is untouched.
  EXPECT_TRUE(store_->Authenticate(kSecretB).ok());
}

TEST_F(TwoAccountsTest, UnknownKeyIsNotCachedAsRefused) {
  // A secret refused once works as soon as a key with it exists.
  const std::string secret = "ck_created_after_a_refusal";
  ExpectError(store_->Authenticate(secret).status(),
              absl::StatusCode::kUnauthenticated, "UNAUTHORIZED");
  ApiKey key = NewKey(a_, secret);
  ASSERT_TRUE(CreateApiKey(key).ok());
  absl::StatusOr<Principal> p = store_->Authenticate(secret);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->key_id, key.id);
}

TEST_F(TwoAccountsTest, RevokeApiKeyOfAnotherAccountIsNotFound) {
  ExpectNotFound(RevokeApiKey(b_, key_a_).status());
  ExpectNotFound(RevokeApiKey(a_, "key_missing").status());
  EXPECT_TRUE(store_->Authenticate(kSecretA).ok());
}

TEST_F(TwoAccountsTest, CreateApiKeyAddsAWorkingKey) {
  ApiKey second = NewKey(a_, "ck_second_key_of_alpha");
  absl::StatusOr<ApiKey> created = CreateApiKey(second);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->id, second.id);
  absl::StatusOr<Principal> p = store_->Authenticate("ck_second_key_of_alpha");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->account_id, a_);
  EXPECT_EQ(p->key_id, second.id);

  absl::StatusOr<Page<ApiKey>> keys = store_->ListApiKeys(a_, AllOnOnePage());
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->total, 2);
  std::vector<std::string> ids;
  for (const ApiKey& k : keys->items) ids.push_back(k.id);
  EXPECT_THAT(ids, UnorderedElementsAre(key_a_, second.id));

  absl::StatusOr<Page<ApiKey>> b_keys = store_->ListApiKeys(b_, AllOnOnePage());
  ASSERT_TRUE(b_keys.ok()) << b_keys.status();
  EXPECT_EQ(b_keys->total, 1);
}

TEST_F(TwoAccountsTest, CreateApiKeyForUnknownAccountIsNotFound) {
  ExpectNotFound(CreateApiKey(NewKey("acct_missing", "ck_orphan")).status());
  EXPECT_FALSE(store_->Authenticate("ck_orphan").ok());
}

TEST_F(TwoAccountsTest, CreateApiKeyIsIdempotent) {
  IdempotencyKey idem{"CreateApiKey", "req-1", "hash-1"};
  absl::StatusOr<ApiKey> first = CreateApiKey(NewKey(a_, "ck_idem_1"), idem);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<ApiKey> repeat = CreateApiKey(NewKey(a_, "ck_idem_2"), idem);
  ASSERT_TRUE(repeat.ok()) << repeat.status();
  EXPECT_EQ(repeat->id, first->id);
  EXPECT_FALSE(store_->Authenticate("ck_idem_2").ok());
  absl::StatusOr<Page<ApiKey>> keys = store_->ListApiKeys(a_, AllOnOnePage());
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(keys->total, 2);  // the account's first key and this one
}

TEST_F(TwoAccountsTest, GetAccount) {
  absl::StatusOr<Account> a = store_->GetAccount(a_);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->name, "alpha");
  EXPECT_FALSE(a->admin);
  EXPECT_EQ(a->currency, "EUR");
  ExpectNotFound(store_->GetAccount("acct_missing").status());
}

TEST_F(StoreTest, CreateAccountIsIdempotent) {
  IdempotencyKey idem{"CreateAccount", "req-acct", "h"};
  absl::StatusOr<AccountWithKey> first =
      CreateAccount(NewAccount("one", "ck_one"), idem);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<AccountWithKey> repeat =
      CreateAccount(NewAccount("one", "ck_one_again"), idem);
  ASSERT_TRUE(repeat.ok()) << repeat.status();
  EXPECT_EQ(repeat->account.id, first->account.id);
  IdempotencyKey other = idem;
  other.body_hash = "other";
  ExpectError(CreateAccount(NewAccount("two", "ck_two"), other).status(),
              absl::StatusCode::kAlreadyExists, "IDEMPOTENCY_CONFLICT");
}

TEST_F(TwoAccountsTest, WritesAfterCloseAreUnavailable) {
  // At shutdown a write is refused with UNAVAILABLE (retryable), not
  // INTERNAL.
  db_->Close();
  ExpectError(CreateCampaign(NewCampaign(a_, "+15550100")).status(),
              absl::StatusCode::kUnavailable, "UNAVAILABLE");
  ExpectError(DeleteSender(a_, sender_a_.id), absl::StatusCode::kUnavailable,
              "UNAVAILABLE");
  // Reads still work.
  EXPECT_TRUE(store_->GetSender(a_, sender_a_.id).ok());
}

// Templates and senders: tests/conformance/catalog_repository_test.cc (on
// every engine).

// Campaigns' contract (references, idempotency, tenancy, updates, deletes,
// listing): tests/conformance/campaign_repository_test.cc (on every
// engine). Here what is SQLite's own: the campaign cache, the email
// content DispatchStore reads, and the chunked purge of a deletion.

// GetCampaign answers from a cache that every write of the campaigns table
// invalidates, whoever makes it: a raw UPDATE through the writer; a read
// made between a change and its commit (it sees, and would cache, the old
// row); a change rolled back.
TEST_F(TwoAccountsTest, GetCampaignNeverServesARowOlderThanTheLastCommit) {
  Campaign c = MustCreate(NewCampaign(a_, "+15550100"));
  auto name_of = [&] {
    absl::StatusOr<Campaign> got = store_->GetCampaign(a_, c.id);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? got->name : std::string("(none)");
  };
  EXPECT_EQ(name_of(), "Spring sale");
  EXPECT_EQ(name_of(), "Spring sale");  // cached
  ExpectError(store_->GetCampaign(b_, c.id).status(),
              absl::StatusCode::kNotFound, "NOT_FOUND");

  // Not through the Store at all.
  ASSERT_TRUE(AwaitStatus([&](StatusCallback done) {
                db_->WriteRaw(
                    [&](SQLite::Database& db) {
                      SQLite::Statement st(
                          db, "UPDATE campaigns SET name='raw' WHERE id=?");
                      st.bind(1, c.id);
                      st.exec();
                      return absl::OkStatus();
                    },
                    done);
              }).ok());
  EXPECT_EQ(name_of(), "raw");

  // Read between the change and the commit: the old row, and not kept.
  std::string seen_inside;
  ASSERT_TRUE(AwaitStatus([&](StatusCallback done) {
                db_->WriteRaw(
                    [&](SQLite::Database& db) {
                      SQLite::Statement st(
                          db, "UPDATE campaigns SET name='mid' WHERE id=?");
                      st.bind(1, c.id);
                      st.exec();
                      seen_inside = name_of();
                      return absl::OkStatus();
                    },
                    done);
              }).ok());
  EXPECT_EQ(seen_inside, "raw");
  EXPECT_EQ(name_of(), "mid");

  // Rolled back: the committed row stays what is served.
  absl::Status failed = AwaitStatus([&](StatusCallback done) {
    db_->WriteRaw(
        [&](SQLite::Database& db) {
          SQLite::Statement st(db,
                               "UPDATE campaigns SET name='never' WHERE id=?");
          st.bind(1, c.id);
          st.exec();
          EXPECT_EQ(name_of(), "mid");
          return absl::AbortedError("changed my mind");
        },
        done);
  });
  EXPECT_EQ(failed.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(name_of(), "mid");

  // Deleted: gone at once.
  ASSERT_TRUE(AwaitStatus([&](StatusCallback done) {
                store_->DeleteCampaign(a_, c.id, done);
              }).ok());
  ExpectError(store_->GetCampaign(a_, c.id).status(),
              absl::StatusCode::kNotFound, "NOT_FOUND");
}

// --- Email: subject and HTML body ------------------------------------------

TEST_F(TwoAccountsTest, EmailTemplatesKeepSubjectAndHtmlBody) {
  Template t = NewTemplate(a_, "newsletter", Channel::kEmail);
  t.subject = "News for {{name}}";
  t.html_body = "<h1>Hello {{name}}</h1>";
  MustCreate(t);
  absl::StatusOr<Template> got = store_->GetTemplate(a_, t.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->subject, "News for {{name}}");
  EXPECT_EQ(got->html_body, "<h1>Hello {{name}}</h1>");

  absl::StatusOr<Template> updated = UpdateTemplate(a_, t.id, [](Template& x) {
    x.subject = "Weekly news";
    x.html_body.clear();
    return absl::OkStatus();
  });
  ASSERT_TRUE(updated.ok()) << updated.status();
  got = store_->GetTemplate(a_, t.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->subject, "Weekly news");
  EXPECT_EQ(got->html_body, "");

  // An sms template cannot take one: it would never be sent.
  Template sms = MustCreate(NewTemplate(a_, "sms"));
  ExpectError(UpdateTemplate(a_, sms.id,
                             [](Template& x) {
                               x.subject = "Hello";
                               return absl::OkStatus();
                             })
                  .status(),
              absl::StatusCode::kFailedPrecondition, "VALIDATION_ERROR",
              "subject");
}

TEST_F(TwoAccountsTest, EmailCampaignsNeedASubjectOfTheirOwnOrTheirTemplates) {
  MustRegister(NewSender(a_, "news@example.com", Channel::kEmail));
  Template with = NewTemplate(a_, "with subject", Channel::kEmail);
  with.subject = "Hello {{name}}";
  with.html_body = "<p>Hello {{name}}</p>";
  with = MustCreate(with);
  Template without =
      MustCreate(NewTemplate(a_, "without subject", Channel::kEmail));

  // A body and no subject, or a template without one (the channel inferred
  // from the template, as seeds 003 and 004 do).
  Campaign bare = NewCampaign(a_, "news@example.com", Channel::kEmail);
  ExpectError(CreateCampaign(bare).status(),
              absl::StatusCode::kFailedPrecondition, "VALIDATION_ERROR",
              "subject");
  Campaign no_subject = NewCampaign(a_, "news@example.com");
  no_subject.channel = Channel::kUnspecified;
  no_subject.body.clear();
  no_subject.template_id = without.id;
  ExpectError(CreateCampaign(no_subject).status(),
              absl::StatusCode::kFailedPrecondition, "VALIDATION_ERROR",
              "subject");
  EXPECT_EQ(CountCampaignRows(), 0);

  // Its own subject and HTML body, kept and sent.
  Campaign own = bare;
  own.subject = "Spring sale for {{name}}";
  own.html_body = "<b>Spring</b>";
  MustCreate(own);
  absl::StatusOr<Campaign> got = store_->GetCampaign(a_, own.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->subject, "Spring sale for {{name}}");
  EXPECT_EQ(got->html_body, "<b>Spring</b>");
  absl::StatusOr<MessageContent> content = store_->MessageContentOf(*got);
  ASSERT_TRUE(content.ok()) << content.status();
  EXPECT_EQ(content->text, "Hi {{name}}");
  EXPECT_EQ(content->subject, "Spring sale for {{name}}");
  EXPECT_EQ(content->html, "<b>Spring</b>");

  // The template's, field by field where the campaign has none.
  Campaign templated = no_subject;
  templated.id = NewId(kCampaignPrefix);
  templated.template_id = with.id;
  Campaign created = MustCreate(templated);
  EXPECT_EQ(created.channel, Channel::kEmail);
  EXPECT_EQ(created.subject, "");
  content = store_->MessageContentOf(created);
  ASSERT_TRUE(content.ok()) << content.status();
  EXPECT_EQ(content->text, "Hello {{name}}");
  EXPECT_EQ(content->subject, "Hello {{name}}");
  EXPECT_EQ(content->html, "<p>Hello {{name}}</p>");
  absl::StatusOr<Campaign> overridden =
      UpdateCampaign(a_, created.id, [](Campaign& c) {
        c.subject = "Own subject";
        return absl::OkStatus();
      });
  ASSERT_TRUE(overridden.ok()) << overridden.status();
  content = store_->MessageContentOf(*overridden);
  ASSERT_TRUE(content.ok()) << content.status();
  EXPECT_EQ(content->subject, "Own subject");
  EXPECT_EQ(content->html, "<p>Hello {{name}}</p>");

  // Clearing the subject of a campaign without a template's is refused.
  ExpectError(UpdateCampaign(a_, own.id,
                             [](Campaign& c) {
                               c.subject.clear();
                               return absl::OkStatus();
                             })
                  .status(),
              absl::StatusCode::kFailedPrecondition, "VALIDATION_ERROR",
              "subject");
  got = store_->GetCampaign(a_, own.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->subject, "Spring sale for {{name}}");
}

// --- Campaigns: delete
// -------------------------------------------------------

// A deleted campaign is gone for every read at once; its recipients go in
// chunks behind it, and a restart finishes a deletion it cut off.
TEST_F(TwoAccountsTest, DeleteHidesAtOncePurgesInChunksAndResumes) {
  auto add_recipients = [&](const std::string& campaign_id, int n) {
    absl::StatusOr<bool> added = AwaitResult<bool>([&](Callback<bool> done) {
      db_->Write<bool>(
          [campaign_id, n](SQLite::Database& db) -> absl::StatusOr<bool> {
            SQLite::Statement st(
                db,
                "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM k "
                "WHERE i<?2) INSERT INTO recipients(campaign_seq, address, "
                "status, created_at, updated_at) SELECT (SELECT seq FROM "
                "campaigns WHERE id=?1), '+1555' || "
                "(1000000+i), 'queued', 0, 0 FROM k");
            st.bind(1, campaign_id);
            st.bind(2, n);
            return st.exec() == n;
          },
          std::move(done));
    });
    ASSERT_TRUE(added.ok() && *added) << added.status();
  };
  auto seq_of = [&](const std::string& campaign_id) {
    return test_util::QueryInt(
        *db_, "SELECT seq FROM campaigns WHERE id='" + campaign_id + "'");
  };
  auto recipients_of = [&](int64_t campaign_seq) {
    return test_util::QueryInt(
        *db_, "SELECT COUNT(*) FROM recipients WHERE campaign_seq=" +
                  std::to_string(campaign_seq));
  };
  auto await_no_rows_of = [&](const std::string& campaign_id) {
    const std::string sql =
        "SELECT COUNT(*) FROM campaigns WHERE id='" + campaign_id + "'";
    for (int i = 0; i < 500 && test_util::QueryInt(*db_, sql) > 0; ++i) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    EXPECT_EQ(test_util::QueryInt(*db_, sql), 0);
  };

  Campaign big = MustCreate(NewCampaign(a_, "+15550100"));
  Campaign kept = MustCreate(NewCampaign(a_, "+15550100"));
  add_recipients(big.id, 12001);
  add_recipients(kept.id, 10);
  const int64_t big_seq = seq_of(big.id);
  const int64_t kept_seq = seq_of(kept.id);
  ASSERT_NE(big_seq, kept_seq);
  EXPECT_EQ(recipients_of(big_seq), 12001);
  ASSERT_TRUE(DeleteCampaign(a_, big.id).ok());
  ExpectNotFound(store_->GetCampaign(a_, big.id).status());
  EXPECT_THAT(CampaignIds(a_, {}), ElementsAre(kept.id));
  ExpectNotFound(DeleteCampaign(a_, big.id));
  ExpectNotFound(UpdateCampaign(a_, big.id, [](Campaign&) {
                   return absl::OkStatus();
                 }).status());
  await_no_rows_of(big.id);
  EXPECT_EQ(recipients_of(big_seq), 0);
  EXPECT_EQ(recipients_of(kept_seq), 10);

  // As if the server stopped right after hiding it.
  Campaign cut = MustCreate(NewCampaign(a_, "+15550100"));
  add_recipients(cut.id, 7000);
  const int64_t cut_seq = seq_of(cut.id);
  // A new campaign never takes the key of one whose deletion is pending.
  EXPECT_GT(cut_seq, kept_seq);
  ASSERT_TRUE(
      AwaitResult<bool>([&](Callback<bool> done) {
        db_->Write<bool>(
            [id = cut.id](SQLite::Database& db) -> absl::StatusOr<bool> {
              SQLite::Statement st(
                  db, "UPDATE campaigns SET deleting=1 WHERE id=?");
              st.bind(1, id);
              return st.exec() == 1;
            },
            std::move(done));
      }).value());
  ExpectNotFound(store_->GetCampaign(a_, cut.id).status());
  absl::StatusOr<int> resumed = store_->ResumeCampaignDeletions();
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(*resumed, 1);
  await_no_rows_of(cut.id);
  EXPECT_EQ(recipients_of(cut_seq), 0);
  EXPECT_EQ(recipients_of(kept_seq), 10);
  EXPECT_TRUE(store_->GetCampaign(a_, kept.id).ok());
}

// Imports stage rows in file order with no address index; settling finds
// the duplicates in address order (within the import and against the
// campaign's earlier rows), lists the first by row and deletes them; a
// rollback forgets the addresses it added; deletion removes the rest.
TEST_F(TwoAccountsTest, SettledImportsKeepFileOrderAndOneRowPerAddress) {
  Campaign c = MustCreate(NewCampaign(a_, "+15550100"));
  const int64_t campaign_seq = test_util::QueryInt(
      *db_, "SELECT seq FROM campaigns WHERE id='" + c.id + "'");
  auto addresses_of = [&](int64_t seq) {
    return test_util::QueryInt(
        *db_, "SELECT COUNT(*) FROM recipient_addresses WHERE campaign_seq=" +
                  std::to_string(seq));
  };
  // Begins an import and stages `batches` (addresses, rows numbered from 1
  // across them, CSV lines one below).
  auto stage = [&](const std::vector<std::vector<std::string>>& batches) {
    absl::StatusOr<ImportLease> lease =
        AwaitResult<ImportLease>([&](Callback<ImportLease> done) {
          store_->BeginRecipientImport(a_, c.id, std::move(done));
        });
    EXPECT_TRUE(lease.ok()) << lease.status();
    int64_t row = 0;
    for (const std::vector<std::string>& batch : batches) {
      std::vector<StagedRecipient> rows;
      for (const std::string& address : batch) {
        StagedRecipient r;
        r.address = address;
        r.variables_json = "{}";
        r.row = ++row;
        r.line = row + 1;
        rows.push_back(std::move(r));
      }
      absl::StatusOr<std::vector<int32_t>> staged =
          AwaitResult<std::vector<int32_t>>(
              [&](Callback<std::vector<int32_t>> done) {
                store_->StageRecipients(*lease, rows, std::move(done));
              });
      EXPECT_TRUE(staged.ok() && staged->empty()) << staged.status();
    }
    return *lease;
  };
  auto commit = [&](const ImportLease& lease, int64_t imported) {
    absl::StatusOr<Campaign> done =
        AwaitResult<Campaign>([&](Callback<Campaign> cb) {
          store_->CommitRecipientImport(lease, imported, "", {}, std::move(cb));
        });
    EXPECT_TRUE(done.ok()) << done.status();
    return done.ok() ? done->stats.total : -1;
  };

  ImportLease first =
      stage({{"+15551000001", "+15551000002", "+15551000001", "+15551000003"},
             {"+15551000002", "+15551000004"}});
  absl::StatusOr<ImportDuplicates> dups =
      store_->SettleRecipientImport(first, 1);
  ASSERT_TRUE(dups.ok()) << dups.status();
  EXPECT_EQ(dups->count, 2);  // rows 3 and 5
  ASSERT_EQ(dups->first.size(), 1u);
  EXPECT_EQ(dups->first[0].row, 3);
  EXPECT_EQ(dups->first[0].line, 4);
  EXPECT_EQ(dups->first[0].address, "+15551000001");
  EXPECT_EQ(commit(first, 4), 4);
  absl::StatusOr<Page<Recipient>> listed =
      store_->ListRecipients(a_, c.id, RecipientStatus::kUnspecified, {});
  ASSERT_TRUE(listed.ok()) << listed.status();
  std::vector<std::string> order;
  for (const Recipient& r : listed->items) order.push_back(r.address);
  EXPECT_THAT(order, ElementsAre("+15551000001", "+15551000002", "+15551000003",
                                 "+15551000004"));
  EXPECT_EQ(addresses_of(campaign_seq), 4);

  // Against the campaign's rows; rolled back: its new address is forgotten.
  ImportLease second =
      stage({{"+15551000004", "+15551000005", "+15551000001"}});
  second.settled = true;
  dups = store_->SettleRecipientImport(second, 10);
  ASSERT_TRUE(dups.ok()) << dups.status();
  EXPECT_EQ(dups->count, 2);
  ASSERT_EQ(dups->first.size(), 2u);
  EXPECT_EQ(dups->first[0].row, 1);
  EXPECT_EQ(dups->first[1].row, 3);
  EXPECT_EQ(addresses_of(campaign_seq), 5);
  ASSERT_TRUE(AwaitStatus([&](StatusCallback done) {
                store_->AbortRecipientImport(second, std::move(done));
              }).ok());
  EXPECT_EQ(addresses_of(campaign_seq), 4);
  EXPECT_EQ(test_util::QueryInt(*db_, "SELECT COUNT(*) FROM recipients"), 4);

  ImportLease third = stage({{"+15551000005"}});
  dups = store_->SettleRecipientImport(third, 10);
  ASSERT_TRUE(dups.ok()) << dups.status();
  EXPECT_EQ(dups->count, 0);
  EXPECT_EQ(commit(third, 1), 5);

  // Cancelled while settling: stops with CANCELLED, then rolls back.
  ImportLease fourth = stage({{"+15551000006", "+15551000001"}});
  fourth.settled = true;
  EXPECT_EQ(store_->SettleRecipientImport(fourth, 10, [] { return true; })
                .status()
                .code(),
            absl::StatusCode::kCancelled);
  ASSERT_TRUE(AwaitStatus([&](StatusCallback done) {
                store_->AbortRecipientImport(fourth, std::move(done));
              }).ok());
  EXPECT_EQ(addresses_of(campaign_seq), 5);

  // Settled but never committed (the server stopped): the next start rolls
  // it back, its addresses with it, and the campaign takes imports again.
  ImportLease fifth = stage({{"+15551000007"}});
  ASSERT_TRUE(store_->SettleRecipientImport(fifth, 10).ok());
  EXPECT_EQ(addresses_of(campaign_seq), 6);
  absl::StatusOr<int> recovered = store_->RecoverInterruptedImports(
      [](const std::string&, const ContactImportResult&) {
        return std::string();
      });
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  EXPECT_EQ(*recovered, 1);
  const std::string floor_set = "SELECT COUNT(*) FROM campaigns WHERE id='" +
                                c.id + "' AND import_floor IS NOT NULL";
  for (int i = 0; i < 500 && test_util::QueryInt(*db_, floor_set) > 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(test_util::QueryInt(*db_, floor_set), 0);
  EXPECT_EQ(addresses_of(campaign_seq), 5);
  EXPECT_EQ(test_util::QueryInt(*db_, "SELECT COUNT(*) FROM recipients"), 5);

  // Against a larger set, where the merge seeks past what it need not read.
  std::vector<std::string> many;
  for (int i = 0; i < 200; ++i)
    many.push_back(absl::StrCat("+1555300", 1000 + i));
  ImportLease sixth = stage({many});
  ASSERT_TRUE(store_->SettleRecipientImport(sixth, 0).ok());
  EXPECT_EQ(commit(sixth, 200), 205);
  ImportLease seventh =
      stage({{"+15553001150", "+15553001199", "+15559999999", "+15553001000"}});
  dups = store_->SettleRecipientImport(seventh, 10);
  ASSERT_TRUE(dups.ok()) << dups.status();
  EXPECT_EQ(dups->count, 3);
  ASSERT_EQ(dups->first.size(), 3u);
  EXPECT_EQ(dups->first[0].row, 1);
  EXPECT_EQ(dups->first[1].row, 2);
  EXPECT_EQ(dups->first[2].row, 4);
  EXPECT_EQ(commit(seventh, 1), 206);
  EXPECT_EQ(addresses_of(campaign_seq), 206);

  ASSERT_TRUE(DeleteCampaign(a_, c.id).ok());
  const std::string rows_left =
      "SELECT COUNT(*) FROM campaigns WHERE id='" + c.id + "'";
  for (int i = 0; i < 500 && test_util::QueryInt(*db_, rows_left) > 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(test_util::QueryInt(*db_, rows_left), 0);
  EXPECT_EQ(addresses_of(campaign_seq), 0);
  EXPECT_EQ(test_util::QueryInt(*db_, "SELECT COUNT(*) FROM recipients"), 0);
}

}  // namespace
}  // namespace campaigns::storage
