// Tests of the contacts and MaterializeAudience parts of
// storage/sqlite/store.h on a temporary database file that look at the
// recipients MaterializeAudience inserts, or need import recovery
// (RecipientRepository), which the PostgreSQL engine has not yet. What goes
// only through ContactRepository and CampaignRepository is in the
// conformance suite, tests/conformance/contact_repository_test.cc, run on
// every engine.
#include <SQLiteCpp/Statement.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
#include "server/domain/import_rows.h"
#include "server/domain/model.h"
#include "storage/sqlite/database.h"
#include "storage/sqlite/store.h"
#include "tests/storage/temp_db.h"

namespace campaigns::storage {
namespace {

using test_util::AwaitResult;
using test_util::AwaitStatus;
using test_util::QueryInt;
using test_util::QueryText;
using test_util::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

// A Store with two accounts (A and B), each with an sms and an email sender,
// and synchronous wrappers around the contact writes. Not thread-safe.
class ContactStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DatabaseOptions options;
    options.path = dir_.File("contacts.db");
    options.read_connections = 2;
    absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(options);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    store_ = std::make_unique<Store>(db_.get());
    a_ = MustCreateAccount("alpha");
    b_ = MustCreateAccount("beta");
    for (const std::string& account : {a_, b_}) {
      MustRegister(account, "+15550100", Channel::kSms);
      MustRegister(account, "news@example.com", Channel::kEmail);
    }
  }

  void TearDown() override {
    store_.reset();
    db_.reset();
  }

  std::string MustCreateAccount(const std::string& name) {
    AccountWithKey a;
    a.account.id = NewId(kAccountPrefix);
    a.account.name = name;
    a.account.created_at = a.account.updated_at = absl::Now();
    a.key.id = NewId(kApiKeyPrefix);
    a.key.account_id = a.account.id;
    a.key.name = "test";
    a.key.prefix = "ck_";
    a.key.key_hash = Sha256Hex(NewSecret());
    a.key.created_at = absl::Now();
    absl::StatusOr<AccountWithKey> out =
        AwaitResult<AccountWithKey>([&](Callback<AccountWithKey> done) {
          store_->CreateAccount(a, {}, std::move(done));
        });
    EXPECT_TRUE(out.ok()) << out.status();
    return a.account.id;
  }

  void MustRegister(const std::string& account, const std::string& sender_id,
                    Channel channel) {
    Sender s;
    s.id = NewId(kSenderPrefix);
    s.account_id = account;
    s.sender_id = sender_id;
    s.channel = channel;
    s.created_at = s.updated_at = absl::Now();
    absl::StatusOr<Sender> out =
        AwaitResult<Sender>([&](Callback<Sender> done) {
          store_->RegisterSender(s, {}, std::move(done));
        });
    ASSERT_TRUE(out.ok()) << out.status();
  }

  static Contact NewContact(const std::string& account,
                            const std::string& address,
                            std::vector<std::string> tags = {},
                            Channel channel = Channel::kSms) {
    Contact c;
    c.id = NewId(kContactPrefix);
    c.account_id = account;
    c.channel = channel;
    c.address = address;
    c.attributes = {{"name", "N" + address}};
    c.tags = std::move(tags);
    c.created_at = c.updated_at = NowMicros();
    return c;
  }

  absl::StatusOr<Contact> CreateContact(Contact c, IdempotencyKey idem = {}) {
    return AwaitResult<Contact>([&](Callback<Contact> done) {
      store_->CreateContact(std::move(c), std::move(idem), std::move(done));
    });
  }
  Contact MustCreate(Contact c) {
    absl::StatusOr<Contact> out = CreateContact(std::move(c));
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : Contact{};
  }
  absl::StatusOr<Contact> UpdateContact(
      const std::string& account, const std::string& id,
      std::function<absl::Status(Contact&)> mutate) {
    return AwaitResult<Contact>([&](Callback<Contact> done) {
      store_->UpdateContact(account, id, std::move(mutate), std::move(done));
    });
  }
  absl::Status DeleteContact(const std::string& account,
                             const std::string& id) {
    return AwaitStatus([&](StatusCallback done) {
      store_->DeleteContact(account, id, std::move(done));
    });
  }

  absl::StatusOr<ContactList> CreateList(const std::string& account,
                                         const std::string& name,
                                         IdempotencyKey idem = {}) {
    ContactList l;
    l.id = NewId(kContactListPrefix);
    l.account_id = account;
    l.name = name;
    l.description = "about " + name;
    l.created_at = l.updated_at = NowMicros();
    return AwaitResult<ContactList>([&](Callback<ContactList> done) {
      store_->CreateContactList(std::move(l), std::move(idem), std::move(done));
    });
  }
  ContactList MustCreateList(const std::string& account,
                             const std::string& name) {
    absl::StatusOr<ContactList> out = CreateList(account, name);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : ContactList{};
  }
  absl::Status DeleteList(const std::string& account, const std::string& id) {
    return AwaitStatus([&](StatusCallback done) {
      store_->DeleteContactList(account, id, std::move(done));
    });
  }
  absl::StatusOr<ListMembershipChange> AddToList(const std::string& account,
                                                 const std::string& list_id,
                                                 std::vector<std::string> ids) {
    return AwaitResult<ListMembershipChange>(
        [&](Callback<ListMembershipChange> done) {
          store_->AddContactsToList(account, list_id, std::move(ids),
                                    std::move(done));
        });
  }
  absl::StatusOr<ListMembershipChange> RemoveFromList(
      const std::string& account, const std::string& list_id,
      std::vector<std::string> ids) {
    return AwaitResult<ListMembershipChange>(
        [&](Callback<ListMembershipChange> done) {
          store_->RemoveContactsFromList(account, list_id, std::move(ids),
                                         std::move(done));
        });
  }

  void Suppress(const std::string& account, const std::string& address,
                Channel channel) {
    Suppression s;
    s.account_id = account;
    s.address = address;
    s.channel = channel;
    s.created_at = NowMicros();
    absl::StatusOr<Suppression> out =
        AwaitResult<Suppression>([&](Callback<Suppression> done) {
          store_->AddSuppression(s, std::move(done));
        });
    ASSERT_TRUE(out.ok()) << out.status();
  }

  // A draft campaign of `account` on `channel` whose audience `set_audience`
  // fills.
  Campaign MustCreateCampaign(const std::string& account, Channel channel,
                              std::function<void(Campaign&)> set_audience) {
    Campaign c;
    c.id = NewId(kCampaignPrefix);
    c.account_id = account;
    c.name = "audience";
    c.channel = channel;
    c.sender_id = channel == Channel::kEmail ? "news@example.com" : "+15550100";
    c.body = "Hi {{name}}";
    if (channel == Channel::kEmail) c.subject = "News for {{name}}";
    c.created_at = c.updated_at = NowMicros();
    set_audience(c);
    absl::StatusOr<Campaign> out =
        AwaitResult<Campaign>([&](Callback<Campaign> done) {
          store_->CreateCampaign(c, {}, std::move(done));
        });
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : Campaign{};
  }

  absl::StatusOr<MaterializeResult> Materialize(const std::string& account,
                                                const std::string& campaign) {
    return AwaitResult<MaterializeResult>(
        [&](Callback<MaterializeResult> done) {
          store_->MaterializeAudience(account, campaign, std::move(done));
        });
  }

  // The addresses of the campaign's recipients, in insertion order.
  std::vector<std::string> RecipientAddresses(const std::string& campaign) {
    absl::StatusOr<std::vector<std::string>> out = db_->Read(
        [&](SQLite::Database& db) -> absl::StatusOr<std::vector<std::string>> {
          SQLite::Statement st(db,
                               "SELECT address FROM recipients WHERE "
                               "campaign_seq=(SELECT seq FROM campaigns WHERE "
                               "id=?) ORDER BY seq");
          st.bind(1, campaign);
          std::vector<std::string> v;
          while (st.executeStep()) v.push_back(st.getColumn(0).getString());
          return v;
        });
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : std::vector<std::string>{};
  }

  std::vector<std::string> ListedIds(const std::string& account,
                                     const ContactFilter& filter) {
    PageRequest page;
    page.limit = 100;
    absl::StatusOr<Page<Contact>> out =
        store_->ListContacts(account, filter, page);
    EXPECT_TRUE(out.ok()) << out.status();
    std::vector<std::string> ids;
    if (out.ok()) {
      for (const Contact& c : out->items) ids.push_back(c.id);
    }
    return ids;
  }

  TempDir dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<Store> store_;
  std::string a_;
  std::string b_;
};

// --- MaterializeAudience
// ---------------------------------------------------------

TEST_F(ContactStoreTest, MaterializesAListSkippingSuppressedAddresses) {
  Contact one = MustCreate(NewContact(a_, "+12025550101"));
  Contact two = MustCreate(NewContact(a_, "+12025550102"));
  Contact three = MustCreate(NewContact(a_, "+12025550103"));
  Contact four = MustCreate(NewContact(a_, "+12025550104"));
  Contact mail =
      MustCreate(NewContact(a_, "ann@example.com", {}, Channel::kEmail));
  MustCreate(NewContact(a_, "+12025550105"));  // not in the list
  ContactList list = MustCreateList(a_, "friends");
  ASSERT_TRUE(
      AddToList(a_, list.id, {one.id, two.id, three.id, four.id, mail.id})
          .ok());
  Suppress(a_, "+12025550102", Channel::kSms);          // this channel
  Suppress(a_, "+12025550103", Channel::kUnspecified);  // every channel
  Suppress(a_, "+12025550104", Channel::kWhatsapp);     // another channel
  Suppress(b_, "+12025550101", Channel::kUnspecified);  // another account
  Campaign campaign = MustCreateCampaign(
      a_, Channel::kSms, [&](Campaign& x) { x.contact_list_id = list.id; });

  absl::StatusOr<MaterializeResult> r = Materialize(a_, campaign.id);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->matched, 4);  // the email contact is on another channel
  EXPECT_EQ(r->suppressed, 2);
  EXPECT_EQ(r->inserted, 2);
  EXPECT_THAT(RecipientAddresses(campaign.id),
              ElementsAre("+12025550101", "+12025550104"));
  EXPECT_EQ(QueryText(*db_,
                      "SELECT variables FROM recipients WHERE "
                      "address='+12025550101'"),
            "{\"name\":\"N+12025550101\"}");
  EXPECT_EQ(QueryText(*db_,
                      "SELECT contact_id || ' ' || status FROM "
                      "recipients WHERE address='+12025550101'"),
            one.id + " queued");
  absl::StatusOr<Campaign> after = store_->GetCampaign(a_, campaign.id);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->stats.total, 2);
  EXPECT_EQ(after->stats.queued, 2);

  // A re-run inserts nothing new and leaves the counters alone.
  r = Materialize(a_, campaign.id);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->matched, 4);
  EXPECT_EQ(r->inserted, 0);
  EXPECT_EQ(store_->GetCampaign(a_, campaign.id)->stats.total, 2);
  EXPECT_EQ(store_->GetCampaign(a_, campaign.id)->stats.queued, 2);

  // A contact added later is picked up by the next run.
  Contact six = MustCreate(NewContact(a_, "+12025550106"));
  ASSERT_TRUE(AddToList(a_, list.id, {six.id}).ok());
  r = Materialize(a_, campaign.id);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->inserted, 1);
  EXPECT_EQ(store_->GetCampaign(a_, campaign.id)->stats.total, 3);
  EXPECT_EQ(store_->GetCampaign(a_, campaign.id)->stats.queued, 3);
}

TEST_F(ContactStoreTest, MaterializesContactsWithAnyTagOfTheAccountOnly) {
  MustCreate(NewContact(a_, "+12025550101", {"vip"}));
  MustCreate(NewContact(a_, "+12025550102", {"eu", "vip"}));
  MustCreate(NewContact(a_, "+12025550103", {"eu"}));
  MustCreate(NewContact(a_, "+12025550104", {"other"}));
  MustCreate(NewContact(a_, "bob@example.com", {"vip"}, Channel::kEmail));
  MustCreate(NewContact(b_, "+12025550105", {"vip"}));  // another account
  Campaign campaign = MustCreateCampaign(a_, Channel::kSms, [](Campaign& x) {
    x.tags = {"vip", "eu"};
  });

  absl::StatusOr<MaterializeResult> r = Materialize(a_, campaign.id);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->matched, 3);
  EXPECT_EQ(r->inserted, 3);
  EXPECT_EQ(r->suppressed, 0);
  EXPECT_THAT(RecipientAddresses(campaign.id),
              ElementsAre("+12025550101", "+12025550102", "+12025550103"));

  // An email campaign with the same tags gets the email contact.
  Campaign mail = MustCreateCampaign(a_, Channel::kEmail,
                                     [](Campaign& x) { x.tags = {"vip"}; });
  r = Materialize(a_, mail.id);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->inserted, 1);
  EXPECT_THAT(RecipientAddresses(mail.id), ElementsAre("bob@example.com"));
}

TEST_F(ContactStoreTest, MaterializesContactIdsAndRefusesOtherAccounts) {
  Contact one = MustCreate(NewContact(a_, "+12025550101"));
  Contact two = MustCreate(NewContact(a_, "+12025550102"));
  Contact of_b = MustCreate(NewContact(b_, "+12025550103"));
  Suppress(a_, "+12025550102", Channel::kUnspecified);
  // Another account's contact is NOT_FOUND at create, naming it.
  Campaign foreign;
  foreign.id = NewId(kCampaignPrefix);
  foreign.account_id = a_;
  foreign.name = "foreign";
  foreign.channel = Channel::kSms;
  foreign.sender_id = "+15550100";
  foreign.body = "Hi";
  foreign.created_at = foreign.updated_at = NowMicros();
  foreign.contact_ids = {one.id, of_b.id};
  absl::StatusOr<Campaign> refused =
      AwaitResult<Campaign>([&](Callback<Campaign> done) {
        store_->CreateCampaign(foreign, {}, std::move(done));
      });
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(refused.status().message(), HasSubstr(of_b.id));

  Campaign campaign = MustCreateCampaign(a_, Channel::kSms, [&](Campaign& x) {
    x.contact_ids = {one.id, two.id};
  });

  absl::StatusOr<MaterializeResult> r = Materialize(a_, campaign.id);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->matched, 2);
  EXPECT_EQ(r->suppressed, 1);
  EXPECT_EQ(r->inserted, 1);
  EXPECT_THAT(RecipientAddresses(campaign.id), ElementsAre("+12025550101"));
  EXPECT_EQ(QueryInt(*db_,
                     "SELECT COUNT(*) FROM recipients WHERE "
                     "address='+12025550103'"),
            0);
}

// Contact imports: a staged import a restart finds is dropped; one that was
// committed (applying) is finished, chunk by chunk, with its idempotency
// record written by the finisher.
TEST_F(ContactStoreTest, RecoveryFinishesCommittedImportsAndDropsStagedOnes) {
  ContactList list = MustCreateList(a_, "imported");
  Contact existing = MustCreate(NewContact(a_, "+15550000000", {"old"}));

  auto begin = [&](const std::string& list_id) {
    ContactImportLease lease;
    lease.account_id = a_;
    lease.channel = Channel::kSms;
    lease.list_id = list_id;
    lease.tags = {"imported"};
    absl::StatusOr<ContactImportLease> out =
        AwaitResult<ContactImportLease>([&](Callback<ContactImportLease> done) {
          store_->BeginContactImport(lease, std::move(done));
        });
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : lease;
  };
  auto stage = [&](const ContactImportLease& lease, int first, int n) {
    std::vector<StagedRecipient> rows;
    for (int i = first; i < first + n; ++i) {
      StagedRecipient r;
      r.address = absl::StrCat("+1555", 1000000 + i);
      if (i == first) r.address = "+15550000000";
      r.variables_json = VariablesToJson({{"city", absl::StrCat("c", i)}});
      rows.push_back(std::move(r));
    }
    absl::StatusOr<std::vector<int32_t>> dups =
        AwaitResult<std::vector<int32_t>>(
            [&](Callback<std::vector<int32_t>> done) {
              store_->StageContacts(lease, first, std::move(rows),
                                    std::move(done));
            });
    ASSERT_TRUE(dups.ok()) << dups.status();
    EXPECT_THAT(*dups, IsEmpty());
  };

  ContactImportLease committed = begin(list.id);
  stage(committed, 1, 9000);
  ContactImportLease staged = begin("");
  stage(staged, 1, 50);
  // As if the server died just after committing: applying, nothing applied.
  ASSERT_TRUE(
      AwaitResult<bool>([&](Callback<bool> done) {
        db_->Write<bool>(
            [id = committed.id](SQLite::Database& db) -> absl::StatusOr<bool> {
              SQLite::Statement st(
                  db,
                  "UPDATE contact_imports SET state='applying', "
                  "request_id='req-1', body_hash='h', response=X'00' "
                  "WHERE id=?");
              st.bind(1, static_cast<int64_t>(id));
              return st.exec() == 1;
            },
            std::move(done));
      }).value());

  absl::StatusOr<int> recovered = store_->RecoverInterruptedImports(
      [](const std::string& recorded, const ContactImportResult& r) {
        return absl::StrCat(recorded.size(), ":", r.created, ":", r.updated);
      });
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  EXPECT_EQ(*recovered, 2);
  for (int i = 0; i < 500 && QueryInt(*db_,
                                      "SELECT COUNT(*) FROM "
                                      "contact_imports") > 0;
       ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(QueryInt(*db_, "SELECT COUNT(*) FROM contact_imports"), 0);
  EXPECT_EQ(QueryInt(*db_, "SELECT COUNT(*) FROM contact_import_rows"), 0);

  EXPECT_EQ(QueryInt(*db_, "SELECT COUNT(*) FROM contacts"), 9000);
  EXPECT_EQ(QueryInt(*db_, "SELECT COUNT(*) FROM contact_list_members"), 9000);
  EXPECT_EQ(QueryInt(*db_,
                     "SELECT COUNT(*) FROM contact_tags WHERE "
                     "tag='imported'"),
            9000);
  EXPECT_EQ(QueryText(*db_,
                      "SELECT response FROM idempotency_keys WHERE "
                      "method='ImportContacts' AND request_id='req-1'"),
            "1:8999:1");
  absl::StatusOr<Contact> merged = store_->GetContact(a_, existing.id);
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(merged->attributes.at("name"), "N+15550000000");
  EXPECT_EQ(merged->attributes.at("city"), "c1");
  EXPECT_THAT(merged->tags, UnorderedElementsAre("imported", "old"));
}

}  // namespace
}  // namespace campaigns::storage
