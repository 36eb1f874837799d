// ContactRepository's contract, on every engine (engines.h): contacts (tags
// sorted, unique addresses, idempotent creates, tenancy, list filters,
// updates, deletes), contact lists and their memberships, and contact
// imports (staging, duplicates, commit with merge, request ids, abort).
// With campaigns (CampaignRepository): a list a live campaign uses cannot
// be deleted, and MaterializeAudience's refusals. What looks at the
// recipients it inserts is tested in tests/storage/contact_store_test.cc
// until every engine has RecipientRepository; several instances at once in
// tests/postgres/contact_store_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
#include "server/domain/import_rows.h"
#include "tests/conformance/engines.h"
#include "tests/storage/temp_db.h"
#include "tests/support/builders.h"

namespace campaigns::conformance {
namespace {

using storage::test_util::AwaitResult;
using storage::test_util::AwaitStatus;
using test_builders::ExpectError;
using test_builders::ExpectNotFound;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

Contact NewContact(const std::string& account, const std::string& address,
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

// Two accounts, alpha (a_) and beta (b_), and synchronous wrappers around
// the contact writes.
class ContactRepositoryTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    if (HasFatalFailure()) return;
    for (std::string* id : {&a_, &b_}) {
      absl::StatusOr<AccountWithKey> made =
          AwaitResult<AccountWithKey>([&](Done<AccountWithKey> done) {
            accounts().CreateAccount(
                test_builders::NewAccount(
                    "acme", absl::StrCat(NewId("s"), "-secret-0123456789")),
                {}, std::move(done));
          });
      ASSERT_TRUE(made.ok()) << made.status();
      *id = made->account.id;
    }
  }

  absl::StatusOr<Contact> CreateContact(Contact c, IdempotencyKey idem = {}) {
    return AwaitResult<Contact>([&](Done<Contact> done) {
      contacts().CreateContact(std::move(c), std::move(idem), std::move(done));
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
    return AwaitResult<Contact>([&](Done<Contact> done) {
      contacts().UpdateContact(account, id, std::move(mutate), std::move(done));
    });
  }
  absl::Status DeleteContact(const std::string& account,
                             const std::string& id) {
    return AwaitStatus([&](StatusDone done) {
      contacts().DeleteContact(account, id, std::move(done));
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
    return AwaitResult<ContactList>([&](Done<ContactList> done) {
      contacts().CreateContactList(std::move(l), std::move(idem),
                                   std::move(done));
    });
  }
  ContactList MustCreateList(const std::string& account,
                             const std::string& name) {
    absl::StatusOr<ContactList> out = CreateList(account, name);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : ContactList{};
  }
  absl::Status DeleteList(const std::string& account, const std::string& id) {
    return AwaitStatus([&](StatusDone done) {
      contacts().DeleteContactList(account, id, std::move(done));
    });
  }
  absl::StatusOr<ListMembershipChange> AddToList(const std::string& account,
                                                 const std::string& list_id,
                                                 std::vector<std::string> ids) {
    return AwaitResult<ListMembershipChange>(
        [&](Done<ListMembershipChange> done) {
          contacts().AddContactsToList(account, list_id, std::move(ids),
                                       std::move(done));
        });
  }
  absl::StatusOr<ListMembershipChange> RemoveFromList(
      const std::string& account, const std::string& list_id,
      std::vector<std::string> ids) {
    return AwaitResult<ListMembershipChange>(
        [&](Done<ListMembershipChange> done) {
          contacts().RemoveContactsFromList(account, list_id, std::move(ids),
                                            std::move(done));
        });
  }
  int64_t ListCount(const std::string& account, const std::string& list_id) {
    absl::StatusOr<ContactList> l = contacts().GetContactList(account, list_id);
    EXPECT_TRUE(l.ok()) << l.status();
    return l.ok() ? l->contact_count : -1;
  }

  Page<Contact> List(const std::string& account, const ContactFilter& filter,
                     int limit = 100) {
    PageRequest page;
    page.limit = limit;
    absl::StatusOr<Page<Contact>> out =
        contacts().ListContacts(account, filter, page);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *std::move(out) : Page<Contact>{};
  }
  std::vector<std::string> ListedIds(const std::string& account,
                                     const ContactFilter& filter) {
    std::vector<std::string> ids;
    for (const Contact& c : List(account, filter).items) ids.push_back(c.id);
    return ids;
  }
  ContactFilter Tagged(const std::string& tag) {
    ContactFilter f;
    f.tag = tag;
    return f;
  }

  // --- Imports ---------------------------------------------------------------

  absl::StatusOr<ContactImportLease> BeginImport(
      const std::string& account, const std::string& list_id,
      std::vector<std::string> tags = {"imported"}) {
    ContactImportLease lease;
    lease.account_id = account;
    lease.channel = Channel::kSms;
    lease.list_id = list_id;
    lease.tags = std::move(tags);
    return AwaitResult<ContactImportLease>([&](Done<ContactImportLease> done) {
      contacts().BeginContactImport(lease, std::move(done));
    });
  }
  // Stages (address, city) rows from row `first`; the duplicates' indexes.
  std::vector<int32_t> Stage(
      const ContactImportLease& lease, int64_t first,
      const std::vector<std::pair<std::string, std::string>>& rows) {
    std::vector<StagedRecipient> staged;
    for (const auto& [address, city] : rows) {
      StagedRecipient r;
      r.address = address;
      r.variables_json = VariablesToJson({{"city", city}});
      staged.push_back(std::move(r));
    }
    absl::StatusOr<std::vector<int32_t>> dups =
        AwaitResult<std::vector<int32_t>>([&](Done<std::vector<int32_t>> done) {
          contacts().StageContacts(lease, first, std::move(staged),
                                   std::move(done));
        });
    EXPECT_TRUE(dups.ok()) << dups.status();
    return dups.ok() ? *dups : std::vector<int32_t>{-1};
  }
  absl::StatusOr<ContactImportResult> Commit(const ContactImportLease& lease,
                                             const std::string& request_id) {
    ImportRecord record;
    record.body_hash = "h";
    record.response = std::string("rec\0orded", 9);  // opaque bytes
    return AwaitResult<ContactImportResult>(
        [&](Done<ContactImportResult> done) {
          contacts().CommitContactImport(
              lease, request_id, record,
              [](const std::string& recorded, const ContactImportResult& r) {
                return absl::StrCat(recorded.size(), ":", r.created, ":",
                                    r.updated);
              },
              std::move(done));
        });
  }
  absl::Status Abort(const ContactImportLease& lease) {
    return AwaitStatus([&](StatusDone done) {
      contacts().AbortContactImport(lease, std::move(done));
    });
  }

  // A draft campaign of `account` on `channel` (its sender registered
  // first) whose audience `set_audience` sets.
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
    absl::StatusOr<Sender> registered =
        AwaitResult<Sender>([&](Done<Sender> done) {
          senders().RegisterSender(
              test_builders::NewSender(account, c.sender_id, channel), {},
              std::move(done));
        });
    EXPECT_TRUE(registered.ok() ||
                registered.status().code() == absl::StatusCode::kAlreadyExists)
        << registered.status();
    absl::StatusOr<Campaign> out =
        AwaitResult<Campaign>([&](Done<Campaign> done) {
          campaigns().CreateCampaign(c, {}, std::move(done));
        });
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : Campaign{};
  }
  absl::StatusOr<MaterializeResult> Materialize(const std::string& account,
                                                const std::string& campaign) {
    return AwaitResult<MaterializeResult>([&](Done<MaterializeResult> done) {
      contacts().MaterializeAudience(account, campaign, std::move(done));
    });
  }

  std::string a_;
  std::string b_;
};

// --- Contacts ----------------------------------------------------------------

TEST_P(ContactRepositoryTest, CreateGetSortsTagsAndKeepsAttributes) {
  Contact created =
      MustCreate(NewContact(a_, "+12025550101", {"vip", "eu", "vip", "VIP"}));
  EXPECT_THAT(created.tags, ElementsAre("VIP", "eu", "vip"));
  absl::StatusOr<Contact> got = contacts().GetContact(a_, created.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->id, created.id);
  EXPECT_EQ(got->account_id, a_);
  EXPECT_EQ(got->address, "+12025550101");
  EXPECT_EQ(got->channel, Channel::kSms);
  // Byte order, whatever the database's locale.
  EXPECT_THAT(got->tags, ElementsAre("VIP", "eu", "vip"));
  EXPECT_EQ(got->attributes.at("name"), "N+12025550101");
  EXPECT_EQ(got->created_at, created.created_at);
  EXPECT_EQ(got->updated_at, created.updated_at);
}

TEST_P(ContactRepositoryTest, DuplicateAddressOnSameChannelNamesAddress) {
  Contact first = MustCreate(NewContact(a_, "+12025550101"));
  absl::Status dup = CreateContact(NewContact(a_, "+12025550101")).status();
  ExpectError(dup, absl::StatusCode::kAlreadyExists, "ALREADY_EXISTS",
              "address");
  EXPECT_THAT(dup.message(), HasSubstr("+12025550101"));
  EXPECT_THAT(dup.message(), HasSubstr(first.id));
  // Another channel or another account may have the same address.
  EXPECT_TRUE(
      CreateContact(NewContact(a_, "+12025550101", {}, Channel::kWhatsapp))
          .ok());
  EXPECT_TRUE(CreateContact(NewContact(b_, "+12025550101")).ok());
  EXPECT_EQ(List(a_, {}).total, 2);
}

TEST_P(ContactRepositoryTest, CreateIsIdempotent) {
  IdempotencyKey idem{"CreateContact", "req-1", "hash-1"};
  absl::StatusOr<Contact> first =
      CreateContact(NewContact(a_, "+12025550101", {"vip"}), idem);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<Contact> again =
      CreateContact(NewContact(a_, "+12025550101"), idem);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->id, first->id);
  EXPECT_THAT(again->tags, ElementsAre("vip"));
  idem.body_hash = "hash-2";
  ExpectError(CreateContact(NewContact(a_, "+12025550102"), idem).status(),
              absl::StatusCode::kAlreadyExists, "IDEMPOTENCY_CONFLICT");
  EXPECT_EQ(List(a_, {}).total, 1);
}

TEST_P(ContactRepositoryTest, AnotherAccountsContactIsNotFound) {
  Contact of_b = MustCreate(NewContact(b_, "+12025550101", {"vip"}));
  ExpectNotFound(contacts().GetContact(a_, of_b.id).status());
  ExpectNotFound(contacts().GetContact("", of_b.id).status());
  ExpectNotFound(UpdateContact(a_, of_b.id, [](Contact& c) {
                   c.tags = {"mine"};
                   return absl::OkStatus();
                 }).status());
  ExpectNotFound(DeleteContact(a_, of_b.id));
  ExpectNotFound(DeleteContact("", of_b.id));
  EXPECT_THAT(ListedIds(a_, {}), IsEmpty());
  EXPECT_THAT(ListedIds(a_, Tagged("vip")), IsEmpty());
  EXPECT_THAT(ListedIds(b_, Tagged("vip")), ElementsAre(of_b.id));
  EXPECT_THAT(contacts().GetContact(b_, of_b.id)->tags, ElementsAre("vip"));
}

TEST_P(ContactRepositoryTest, ListFiltersByTagListAndChannel) {
  Contact one = MustCreate(NewContact(a_, "+12025550101", {"vip"}));
  Contact two = MustCreate(NewContact(a_, "+12025550102", {"eu", "vip"}));
  Contact mail =
      MustCreate(NewContact(a_, "ann@example.com", {"eu"}, Channel::kEmail));
  ContactList list = MustCreateList(a_, "friends");
  ASSERT_TRUE(AddToList(a_, list.id, {one.id, mail.id}).ok());

  EXPECT_THAT(ListedIds(a_, {}), ElementsAre(mail.id, two.id, one.id));
  EXPECT_THAT(ListedIds(a_, Tagged("vip")), ElementsAre(two.id, one.id));
  ContactFilter f;
  f.list_id = list.id;
  EXPECT_THAT(ListedIds(a_, f), ElementsAre(mail.id, one.id));
  f.channel = Channel::kSms;
  EXPECT_THAT(ListedIds(a_, f), ElementsAre(one.id));
  f = Tagged("eu");
  f.channel = Channel::kEmail;
  EXPECT_THAT(ListedIds(a_, f), ElementsAre(mail.id));

  PageRequest page;
  page.page = 2;
  page.limit = 2;
  absl::StatusOr<Page<Contact>> second = contacts().ListContacts(a_, {}, page);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->total, 3);
  EXPECT_FALSE(second->has_more);
  ASSERT_EQ(second->items.size(), 1u);
  EXPECT_EQ(second->items[0].id, one.id);
  EXPECT_THAT(second->items[0].tags, ElementsAre("vip"));

  // Another account's list (or none) is NOT_FOUND, not an empty page.
  ContactList of_b = MustCreateList(b_, "theirs");
  f = {};
  f.list_id = of_b.id;
  ExpectNotFound(contacts().ListContacts(a_, f, page).status());
  f.list_id = "cl_missing";
  ExpectNotFound(contacts().ListContacts(a_, f, page).status());
}

TEST_P(ContactRepositoryTest, UpdateChangesAddressAttributesAndTagsOnly) {
  Contact c = MustCreate(NewContact(a_, "+12025550101", {"old"}));
  MustCreate(NewContact(a_, "+12025550102"));
  absl::StatusOr<Contact> updated = UpdateContact(a_, c.id, [](Contact& x) {
    x.address = "+12025550199";
    x.attributes = {{"city", "Paris"}};
    x.tags = {"new", "b", "new"};
    x.channel = Channel::kEmail;  // ignored: a contact keeps its channel
    x.id = "ct_other";            // ignored
    return absl::OkStatus();
  });
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->id, c.id);
  EXPECT_EQ(updated->channel, Channel::kSms);
  EXPECT_THAT(updated->tags, ElementsAre("b", "new"));
  absl::StatusOr<Contact> got = contacts().GetContact(a_, c.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->address, "+12025550199");
  EXPECT_EQ(got->channel, Channel::kSms);
  EXPECT_EQ(got->attributes,
            (std::map<std::string, std::string>{{"city", "Paris"}}));
  EXPECT_THAT(got->tags, ElementsAre("b", "new"));
  EXPECT_GE(got->updated_at, c.updated_at);
  EXPECT_EQ(got->created_at, c.created_at);
  EXPECT_THAT(ListedIds(a_, Tagged("old")), IsEmpty());
  EXPECT_THAT(ListedIds(a_, Tagged("new")), ElementsAre(c.id));

  // Taking another contact's address is ALREADY_EXISTS; a failed mutate
  // changes nothing.
  ExpectError(UpdateContact(a_, c.id,
                            [](Contact& x) {
                              x.address = "+12025550102";
                              return absl::OkStatus();
                            })
                  .status(),
              absl::StatusCode::kAlreadyExists, "ALREADY_EXISTS", "address");
  EXPECT_EQ(
      UpdateContact(a_, c.id,
                    [](Contact&) { return absl::InvalidArgumentError("no"); })
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(contacts().GetContact(a_, c.id)->address, "+12025550199");
  // Keeping its own address is no conflict.
  EXPECT_TRUE(
      UpdateContact(a_, c.id, [](Contact&) { return absl::OkStatus(); }).ok());
}

TEST_P(ContactRepositoryTest, DeleteCascadesTagsAndMemberships) {
  Contact c = MustCreate(NewContact(a_, "+12025550101", {"vip", "eu"}));
  Contact other = MustCreate(NewContact(a_, "+12025550102", {"vip"}));
  ContactList list = MustCreateList(a_, "friends");
  ASSERT_TRUE(AddToList(a_, list.id, {c.id, other.id}).ok());
  ASSERT_TRUE(DeleteContact(a_, c.id).ok());
  ExpectNotFound(contacts().GetContact(a_, c.id).status());
  EXPECT_THAT(ListedIds(a_, Tagged("vip")), ElementsAre(other.id));
  EXPECT_THAT(ListedIds(a_, Tagged("eu")), IsEmpty());
  EXPECT_EQ(ListCount(a_, list.id), 1);
  ExpectNotFound(DeleteContact(a_, c.id));
  // Its address is free again.
  EXPECT_TRUE(CreateContact(NewContact(a_, "+12025550101")).ok());
}

// --- Contact lists -----------------------------------------------------------

TEST_P(ContactRepositoryTest, ListsCreateGetListIdempotentAndTenancy) {
  IdempotencyKey idem{"CreateContactList", "req-1", "h"};
  absl::StatusOr<ContactList> first = CreateList(a_, "friends", idem);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->contact_count, 0);
  absl::StatusOr<ContactList> again = CreateList(a_, "friends", idem);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->id, first->id);
  ContactList second = MustCreateList(a_, "family");
  ContactList of_b = MustCreateList(b_, "theirs");

  absl::StatusOr<ContactList> got = contacts().GetContactList(a_, first->id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->name, "friends");
  EXPECT_EQ(got->description, "about friends");
  EXPECT_EQ(got->created_at, first->created_at);
  ExpectNotFound(contacts().GetContactList(a_, of_b.id).status());
  ExpectNotFound(contacts().GetContactList("", of_b.id).status());
  ExpectNotFound(DeleteList(a_, of_b.id));

  PageRequest page;
  absl::StatusOr<Page<ContactList>> lists =
      contacts().ListContactLists(a_, page);
  ASSERT_TRUE(lists.ok()) << lists.status();
  EXPECT_EQ(lists->total, 2);
  std::vector<std::string> ids;
  for (const ContactList& l : lists->items) ids.push_back(l.id);
  EXPECT_THAT(ids, UnorderedElementsAre(first->id, second.id));
}

TEST_P(ContactRepositoryTest, ListsAreNewestFirstTiesByIdDescending) {
  // Lists created in one microsecond, with ids that differ in case: byte
  // order puts "cl_B" before "cl_a", so descending is a, B.
  const absl::Time at = absl::FromUnixMicros(1'700'000'000'000'000);
  for (const char* id : {"cl_a", "cl_B", "cl_0"}) {
    ContactList l;
    l.id = id;
    l.account_id = a_;
    l.name = id;
    l.created_at = l.updated_at = at;
    ASSERT_TRUE(AwaitResult<ContactList>([&](Done<ContactList> done) {
                  contacts().CreateContactList(l, {}, std::move(done));
                }).ok());
  }
  ContactList newer = MustCreateList(a_, "newer");
  absl::StatusOr<Page<ContactList>> lists =
      contacts().ListContactLists(a_, PageRequest{});
  ASSERT_TRUE(lists.ok()) << lists.status();
  std::vector<std::string> ids;
  for (const ContactList& l : lists->items) ids.push_back(l.id);
  EXPECT_THAT(ids, ElementsAre(newer.id, "cl_a", "cl_B", "cl_0"));
}

TEST_P(ContactRepositoryTest, MembershipCountsOnlyChangesAndChecksIds) {
  Contact one = MustCreate(NewContact(a_, "+12025550101"));
  Contact two = MustCreate(NewContact(a_, "+12025550102"));
  Contact of_b = MustCreate(NewContact(b_, "+12025550103"));
  ContactList list = MustCreateList(a_, "friends");

  absl::StatusOr<ListMembershipChange> added =
      AddToList(a_, list.id, {one.id, one.id});
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(added->changed, 1);
  EXPECT_EQ(added->list.contact_count, 1);
  EXPECT_EQ(added->list.id, list.id);
  EXPECT_GE(added->list.updated_at, list.updated_at);
  added = AddToList(a_, list.id, {one.id, two.id});
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(added->changed, 1);
  EXPECT_EQ(added->list.contact_count, 2);

  // An unknown id (or another account's) is NOT_FOUND naming the first of
  // them, and nothing changes.
  Contact three = MustCreate(NewContact(a_, "+12025550104"));
  absl::Status unknown =
      AddToList(a_, list.id, {three.id, of_b.id, "ct_missing"}).status();
  ExpectNotFound(unknown);
  EXPECT_THAT(unknown.message(), HasSubstr(of_b.id));
  EXPECT_EQ(ListCount(a_, list.id), 2);
  ExpectNotFound(AddToList(a_, "cl_missing", {one.id}).status());
  ExpectNotFound(AddToList(b_, list.id, {of_b.id}).status());

  absl::StatusOr<ListMembershipChange> removed =
      RemoveFromList(a_, list.id, {one.id, three.id});
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(removed->changed, 1);
  EXPECT_EQ(removed->list.contact_count, 1);
  ExpectNotFound(RemoveFromList(a_, list.id, {"ct_missing"}).status());
  ExpectNotFound(RemoveFromList(b_, list.id, {two.id}).status());
  EXPECT_EQ(ListCount(a_, list.id), 1);
}

TEST_P(ContactRepositoryTest, DeleteListKeepsItsContacts) {
  Contact c = MustCreate(NewContact(a_, "+12025550101"));
  ContactList list = MustCreateList(a_, "friends");
  ASSERT_TRUE(AddToList(a_, list.id, {c.id}).ok());
  ASSERT_TRUE(DeleteList(a_, list.id).ok());
  ExpectNotFound(contacts().GetContactList(a_, list.id).status());
  ExpectNotFound(DeleteList(a_, list.id));
  EXPECT_TRUE(contacts().GetContact(a_, c.id).ok());
  ContactFilter f;
  f.list_id = list.id;
  ExpectNotFound(contacts().ListContacts(a_, f, PageRequest{}).status());
}

TEST_P(ContactRepositoryTest, DeleteListRefusedWhileALiveCampaignUsesIt) {
  Contact c = MustCreate(NewContact(a_, "+12025550101"));
  ContactList list = MustCreateList(a_, "friends");
  ASSERT_TRUE(AddToList(a_, list.id, {c.id}).ok());
  Campaign campaign = MustCreateCampaign(
      a_, Channel::kSms, [&](Campaign& x) { x.contact_list_id = list.id; });
  absl::Status refused = DeleteList(a_, list.id);
  ExpectError(refused, absl::StatusCode::kFailedPrecondition,
              "VALIDATION_ERROR");
  EXPECT_THAT(refused.message(), HasSubstr(campaign.id));

  ASSERT_TRUE(AwaitStatus([&](StatusDone done) {
                campaigns().DeleteCampaign(a_, campaign.id, std::move(done));
              }).ok());
  ASSERT_TRUE(DeleteList(a_, list.id).ok());
  ExpectNotFound(contacts().GetContactList(a_, list.id).status());
  EXPECT_TRUE(contacts().GetContact(a_, c.id).ok());
}

// --- MaterializeAudience
// ------------------------------------------------------

TEST_P(ContactRepositoryTest,
       MaterializeRefusesWithoutAudienceAndAcrossAccounts) {
  Campaign imported = MustCreateCampaign(a_, Channel::kSms, [](Campaign&) {});
  absl::Status none = Materialize(a_, imported.id).status();
  ExpectError(none, absl::StatusCode::kFailedPrecondition, "VALIDATION_ERROR");
  EXPECT_THAT(none.message(), HasSubstr("no contact audience"));

  MustCreate(NewContact(a_, "+12025550101", {"vip"}));
  Campaign tagged = MustCreateCampaign(a_, Channel::kSms,
                                       [](Campaign& x) { x.tags = {"vip"}; });
  ExpectNotFound(Materialize(b_, tagged.id).status());
  ExpectNotFound(Materialize(a_, "cmp_missing").status());
  absl::StatusOr<Campaign> untouched = campaigns().GetCampaign(a_, tagged.id);
  ASSERT_TRUE(untouched.ok()) << untouched.status();
  EXPECT_EQ(untouched->stats.total, 0);

  // A final campaign's audience can no longer change.
  ASSERT_TRUE(AwaitResult<Campaign>([&](Done<Campaign> done) {
                campaigns().UpdateCampaign(
                    a_, tagged.id,
                    [](Campaign& x) {
                      x.status = CampaignStatus::kCancelled;
                      return absl::OkStatus();
                    },
                    std::move(done));
              }).ok());
  ExpectError(Materialize(a_, tagged.id).status(),
              absl::StatusCode::kFailedPrecondition, "ILLEGAL_TRANSITION");
}

TEST_P(ContactRepositoryTest, MaterializeCountsWhatItInsertsOnce) {
  Contact one = MustCreate(NewContact(a_, "+12025550101"));
  Contact two = MustCreate(NewContact(a_, "+12025550102"));
  Contact mail =
      MustCreate(NewContact(a_, "ann@example.com", {}, Channel::kEmail));
  ContactList list = MustCreateList(a_, "friends");
  ASSERT_TRUE(AddToList(a_, list.id, {one.id, two.id, mail.id}).ok());
  Suppression stop;
  stop.account_id = a_;
  stop.address = "+12025550102";
  stop.channel = Channel::kUnspecified;  // every channel
  stop.reason = SuppressionReason::kManual;
  stop.created_at = NowMicros();
  ASSERT_TRUE(AwaitResult<Suppression>([&](Done<Suppression> done) {
                suppressions().AddSuppression(stop, std::move(done));
              }).ok());
  Campaign campaign = MustCreateCampaign(
      a_, Channel::kSms, [&](Campaign& x) { x.contact_list_id = list.id; });

  absl::StatusOr<MaterializeResult> r = Materialize(a_, campaign.id);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->matched, 2);  // the email contact is on another channel
  EXPECT_EQ(r->suppressed, 1);
  EXPECT_EQ(r->inserted, 1);
  absl::StatusOr<Campaign> after = campaigns().GetCampaign(a_, campaign.id);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->stats.total, 1);
  EXPECT_EQ(after->stats.queued, 1);

  // A re-run inserts nothing new; a contact added since is picked up.
  r = Materialize(a_, campaign.id);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->inserted, 0);
  Contact three = MustCreate(NewContact(a_, "+12025550103"));
  ASSERT_TRUE(AddToList(a_, list.id, {three.id}).ok());
  r = Materialize(a_, campaign.id);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->inserted, 1);
  after = campaigns().GetCampaign(a_, campaign.id);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->stats.total, 2);
  EXPECT_EQ(after->stats.queued, 2);
}

TEST_P(ContactRepositoryTest, MaterializeOfAnUnknownCampaignIsNotFound) {
  ExpectNotFound(AwaitResult<MaterializeResult>([&](Done<MaterializeResult> d) {
                   contacts().MaterializeAudience(a_, "cmp_missing",
                                                  std::move(d));
                 }).status());
  ExpectNotFound(AwaitResult<MaterializeResult>([&](Done<MaterializeResult> d) {
                   contacts().MaterializeAudience("", "cmp_missing",
                                                  std::move(d));
                 }).status());
}

// --- Contact imports ---------------------------------------------------------

TEST_P(ContactRepositoryTest, ImportCreatesAndMergesWithTagsAndList) {
  ContactList list = MustCreateList(a_, "imported");
  Contact existing = MustCreate(NewContact(a_, "+15550000000", {"old"}));
  Contact of_b = MustCreate(NewContact(b_, "+15550000001"));

  absl::StatusOr<ContactImportLease> lease =
      BeginImport(a_, list.id, {"imported", "spring"});
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_GT(lease->id, 0);
  // Duplicates are addresses earlier in the import, in this batch or an
  // earlier one.
  EXPECT_THAT(Stage(*lease, 1,
                    {{"+15550000000", "Lyon"},
                     {"+15550000001", "Oslo"},
                     {"+15550000001", "Rome"}}),
              ElementsAre(2));
  EXPECT_THAT(Stage(*lease, 4,
                    {{"+15550000002", "Kyiv"},
                     {"+15550000000", "Nice"},
                     {"+15550000003", "Bern"}}),
              ElementsAre(1));
  // Staged rows are out of every reader's sight.
  EXPECT_EQ(List(a_, {}).total, 1);
  EXPECT_EQ(ListCount(a_, list.id), 0);

  absl::StatusOr<ContactImportResult> result = Commit(*lease, "req-1");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->created, 3);
  EXPECT_EQ(result->updated, 1);

  EXPECT_EQ(List(a_, {}).total, 4);
  EXPECT_EQ(ListCount(a_, list.id), 4);
  EXPECT_EQ(List(a_, Tagged("spring")).total, 4);
  absl::StatusOr<Contact> merged = contacts().GetContact(a_, existing.id);
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(merged->attributes,
            (std::map<std::string, std::string>{{"city", "Lyon"},
                                                {"name", "N+15550000000"}}));
  EXPECT_THAT(merged->tags, ElementsAre("imported", "old", "spring"));
  // The first row of an address wins; the other account is untouched.
  int found = 0;
  for (const Contact& c : List(a_, Tagged("imported")).items) {
    if (c.address == "+15550000001") {
      ++found;
      EXPECT_EQ(c.attributes.at("city"), "Oslo");
      EXPECT_EQ(c.channel, Channel::kSms);
      EXPECT_THAT(c.id, HasSubstr(std::string(kContactPrefix)));
    }
  }
  EXPECT_EQ(found, 1);
  EXPECT_EQ(contacts().GetContact(b_, of_b.id)->attributes.count("city"), 0u);

  // Another import under the same request id commits nothing.
  absl::StatusOr<ContactImportLease> repeat = BeginImport(a_, "");
  ASSERT_TRUE(repeat.ok()) << repeat.status();
  EXPECT_THAT(Stage(*repeat, 1, {{"+15550000009", "Riga"}}), IsEmpty());
  ExpectError(Commit(*repeat, "req-1").status(),
              absl::StatusCode::kAlreadyExists, "IDEMPOTENCY_CONFLICT");
  EXPECT_EQ(List(a_, {}).total, 4);
  EXPECT_TRUE(Abort(*repeat).ok());
}

TEST_P(ContactRepositoryTest, ImportAppliesInChunksWithoutARequestId) {
  absl::StatusOr<ContactImportLease> lease = BeginImport(a_, "");
  ASSERT_TRUE(lease.ok()) << lease.status();
  constexpr int kRows = 4500;  // more than one chunk on every engine
  for (int first = 1; first <= kRows; first += 1500) {
    std::vector<std::pair<std::string, std::string>> rows;
    for (int i = first; i < first + 1500; ++i) {
      rows.emplace_back(absl::StrCat("+1555", 1000000 + i), "c");
    }
    ASSERT_THAT(Stage(*lease, first, rows), IsEmpty());
  }
  absl::StatusOr<ContactImportResult> result = Commit(*lease, "");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->created, kRows);
  EXPECT_EQ(result->updated, 0);
  EXPECT_EQ(List(a_, {}, 1).total, kRows);
  EXPECT_EQ(List(a_, Tagged("imported"), 1).total, kRows);
}

TEST_P(ContactRepositoryTest, ImportIntoAnUnknownListIsNotFound) {
  ContactList of_b = MustCreateList(b_, "theirs");
  absl::Status missing = BeginImport(a_, "cl_missing").status();
  ExpectNotFound(missing);
  EXPECT_THAT(missing.message(), HasSubstr("cl_missing"));
  ExpectNotFound(BeginImport(a_, of_b.id).status());
}

TEST_P(ContactRepositoryTest, AbortedImportChangesNothingAndCannotCommit) {
  ContactList list = MustCreateList(a_, "imported");
  absl::StatusOr<ContactImportLease> lease = BeginImport(a_, list.id);
  ASSERT_TRUE(lease.ok()) << lease.status();
  std::vector<std::pair<std::string, std::string>> rows;
  for (int i = 0; i < 6000; ++i) {  // more than one rollback chunk
    rows.emplace_back(absl::StrCat("+1555", 2000000 + i), "c");
  }
  ASSERT_THAT(Stage(*lease, 1, rows), IsEmpty());
  ASSERT_TRUE(Abort(*lease).ok());
  absl::Status late = Commit(*lease, "req-late").status();
  EXPECT_EQ(late.code(), absl::StatusCode::kAborted) << late;
  EXPECT_EQ(List(a_, {}).total, 0);
  EXPECT_EQ(ListCount(a_, list.id), 0);
  // Aborting again (or a committed import) is no error.
  EXPECT_TRUE(Abort(*lease).ok());
  // The request id was not taken.
  absl::StatusOr<ContactImportLease> next = BeginImport(a_, list.id);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_THAT(Stage(*next, 1, {{"+15559999999", "c"}}), IsEmpty());
  absl::StatusOr<ContactImportResult> result = Commit(*next, "req-late");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->created, 1);
  EXPECT_TRUE(Abort(*next).ok());
  EXPECT_EQ(List(a_, {}).total, 1);
}

INSTANTIATE_TEST_SUITE_P(Engines, ContactRepositoryTest,
                         ::testing::ValuesIn(kEngines), EngineName);

}  // namespace
}  // namespace campaigns::conformance
