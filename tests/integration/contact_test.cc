// ContactService: contacts (normalised addresses, attributes, tags), contact
// lists and their members, validation naming fields, tenancy.
#include "gmock/gmock.h"
#include "tests/integration/fixture.h"

namespace campaigns::testing {
namespace {

class ContactTest : public ServerTest {
 protected:
  grpc::Status Create(const std::string& key, const std::string& address,
                      v1::Channel channel, v1::Contact* out,
                      std::vector<std::string> tags = {},
                      const std::string& region = "") {
    v1::CreateContactRequest req;
    req.set_address(address);
    req.set_channel(channel);
    req.set_default_region(region);
    for (const std::string& t : tags) req.add_tags(t);
    (*req.mutable_attributes())["first_name"] = "Ann";
    return contacts_->CreateContact(Ctx(key).get(), req, out);
  }
  v1::Contact MustCreate(const std::string& key, const std::string& address,
                         std::vector<std::string> tags = {}) {
    v1::Contact c;
    grpc::Status s = Create(key, address, v1::sms, &c, std::move(tags));
    EXPECT_TRUE(s.ok()) << s.error_message();
    return c;
  }
  v1::ContactList MustCreateList(const std::string& key,
                                 const std::string& name) {
    v1::CreateContactListRequest req;
    req.set_name(name);
    v1::ContactList l;
    grpc::Status s = contacts_->CreateContactList(Ctx(key).get(), req, &l);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return l;
  }
  grpc::Status Membership(const std::string& key, bool add,
                          const std::string& list_id,
                          const std::vector<std::string>& ids,
                          v1::ContactListMembershipResponse* out) {
    v1::ContactListMembershipRequest req;
    req.set_list_id(list_id);
    for (const std::string& id : ids) req.add_contact_ids(id);
    return add ? contacts_->AddContactsToList(Ctx(key).get(), req, out)
               : contacts_->RemoveContactsFromList(Ctx(key).get(), req, out);
  }
  std::vector<std::string> ListedIds(const std::string& key,
                                     const v1::ListContactsRequest& req) {
    v1::ListContactsResponse list;
    grpc::Status s = contacts_->ListContacts(Ctx(key).get(), req, &list);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<std::string> ids;
    for (const v1::Contact& c : list.items()) ids.push_back(c.id());
    return ids;
  }
};

void ExpectFieldError(const grpc::Status& status, grpc::StatusCode code,
                      const std::string& reason, const std::string& field) {
  ErrorDetails d = Details(status);
  EXPECT_EQ(d.code, code) << d.message;
  EXPECT_EQ(d.reason, reason) << d.message;
  EXPECT_EQ(d.fields, std::vector<std::string>{field}) << d.message;
}

TEST_F(ContactTest, CreateNormalisesGetUpdateDelete) {
  v1::Contact c;
  ASSERT_TRUE(
      Create(kAdminKey, "(202) 555-0143", v1::sms, &c, {"vip", "eu"}, "US")
          .ok());
  EXPECT_EQ(c.id().rfind("ct_", 0), 0u) << c.id();
  EXPECT_EQ(c.address(), "+12025550143");
  EXPECT_EQ(c.channel(), v1::sms);
  EXPECT_EQ(c.attributes().at("first_name"), "Ann");
  EXPECT_EQ(std::vector<std::string>(c.tags().begin(), c.tags().end()),
            (std::vector<std::string>{"eu", "vip"}));
  EXPECT_TRUE(c.has_created_at());

  v1::GetContactRequest get;
  get.set_id(c.id());
  v1::Contact got;
  ASSERT_TRUE(contacts_->GetContact(Ctx(kAdminKey).get(), get, &got).ok());
  EXPECT_EQ(got.address(), "+12025550143");

  // PATCH with a mask: exactly the masked fields change; tags may be cleared.
  v1::UpdateContactRequest update;
  update.set_id(c.id());
  update.set_address("+44 20 7946 0018");
  (*update.mutable_attributes())["first_name"] = "Bea";
  update.mutable_update_mask()->add_paths("address");
  update.mutable_update_mask()->add_paths("tags");
  v1::Contact updated;
  grpc::Status s =
      contacts_->UpdateContact(Ctx(kAdminKey).get(), update, &updated);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(updated.address(), "+442079460018");
  EXPECT_EQ(updated.attributes().at("first_name"), "Ann");
  EXPECT_EQ(updated.tags_size(), 0);

  // PUT without a mask: the fields given change.
  update.clear_update_mask();
  update.clear_address();
  update.add_tags("late");
  ASSERT_TRUE(
      contacts_->UpdateContact(Ctx(kAdminKey).get(), update, &updated).ok());
  EXPECT_EQ(updated.address(), "+442079460018");
  EXPECT_EQ(updated.attributes().at("first_name"), "Bea");
  ASSERT_EQ(updated.tags_size(), 1);
  EXPECT_EQ(updated.tags(0), "late");

  v1::DeleteContactRequest del;
  del.set_id(c.id());
  google::protobuf::Empty empty;
  ASSERT_TRUE(contacts_->DeleteContact(Ctx(kAdminKey).get(), del, &empty).ok());
  EXPECT_EQ(contacts_->GetContact(Ctx(kAdminKey).get(), get, &got).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(ContactTest, DuplicateAddressAndIdempotentCreate) {
  v1::CreateContactRequest req;
  req.set_address("ann@example.com");
  req.set_channel(v1::email);
  req.set_request_id("create-ann");
  v1::Contact first, again;
  ASSERT_TRUE(contacts_->CreateContact(Ctx(kAdminKey).get(), req, &first).ok());
  ASSERT_TRUE(contacts_->CreateContact(Ctx(kAdminKey).get(), req, &again).ok());
  EXPECT_EQ(again.id(), first.id());

  req.clear_request_id();
  req.set_address("ANN@example.com");
  ExpectFieldError(contacts_->CreateContact(Ctx(kAdminKey).get(), req, &again),
                   grpc::StatusCode::ALREADY_EXISTS, "ALREADY_EXISTS",
                   "address");
  req.set_request_id("create-ann");
  req.set_address("bob@example.com");
  EXPECT_EQ(Details(contacts_->CreateContact(Ctx(kAdminKey).get(), req, &again))
                .reason,
            "IDEMPOTENCY_CONFLICT");
}

TEST_F(ContactTest, ValidationErrorsNameTheField) {
  v1::Contact c;
  const grpc::StatusCode kInvalid = grpc::StatusCode::INVALID_ARGUMENT;
  ExpectFieldError(
      Create(kAdminKey, "+12025550143", v1::channel_unspecified, &c), kInvalid,
      "INVALID_REQUEST", "channel");
  ExpectFieldError(Create(kAdminKey, "not a number", v1::sms, &c), kInvalid,
                   "INVALID_REQUEST", "address");
  ExpectFieldError(Create(kAdminKey, "2025550143", v1::sms, &c, {}, "ZZ"),
                   kInvalid, "INVALID_REQUEST", "default_region");
  ExpectFieldError(Create(kAdminKey, "+12025550143", v1::sms, &c, {""}),
                   kInvalid, "INVALID_REQUEST", "tags");
  ExpectFieldError(
      Create(kAdminKey, "+12025550143", v1::sms, &c, {std::string(65, 't')}),
      kInvalid, "INVALID_REQUEST", "tags");
  v1::CreateContactRequest bad_attr;
  bad_attr.set_address("+12025550143");
  bad_attr.set_channel(v1::sms);
  (*bad_attr.mutable_attributes())[""] = "x";
  ExpectFieldError(contacts_->CreateContact(Ctx(kAdminKey).get(), bad_attr, &c),
                   kInvalid, "INVALID_REQUEST", "attributes");

  v1::UpdateContactRequest update;
  update.set_id("ct_x");
  update.mutable_update_mask()->add_paths("channel");
  ExpectFieldError(contacts_->UpdateContact(Ctx(kAdminKey).get(), update, &c),
                   kInvalid, "INVALID_REQUEST", "update_mask");
  v1::ListContactsRequest list;
  list.set_limit(101);
  v1::ListContactsResponse resp;
  ExpectFieldError(contacts_->ListContacts(Ctx(kAdminKey).get(), list, &resp),
                   kInvalid, "INVALID_REQUEST", "limit");
  v1::CreateContactListRequest no_name;
  v1::ContactList l;
  ExpectFieldError(
      contacts_->CreateContactList(Ctx(kAdminKey).get(), no_name, &l), kInvalid,
      "INVALID_REQUEST", "name");
  v1::ContactListMembershipResponse m;
  ExpectFieldError(Membership(kAdminKey, true, "cl_x", {}, &m), kInvalid,
                   "INVALID_REQUEST", "contact_ids");
  ExpectFieldError(Membership(kAdminKey, true, "", {"ct_x"}, &m), kInvalid,
                   "INVALID_REQUEST", "list_id");

  // A new address is normalised for the contact's channel.
  v1::Contact stored = MustCreate(kAdminKey, "+12025550143");
  update.set_id(stored.id());
  update.mutable_update_mask()->Clear();
  update.mutable_update_mask()->add_paths("address");
  update.set_address("nope");
  ExpectFieldError(contacts_->UpdateContact(Ctx(kAdminKey).get(), update, &c),
                   kInvalid, "INVALID_REQUEST", "address");
}

TEST_F(ContactTest, ListsAndMembership) {
  v1::Contact one = MustCreate(kAdminKey, "+12025550101", {"vip"});
  v1::Contact two = MustCreate(kAdminKey, "+12025550102");
  v1::ContactList list = MustCreateList(kAdminKey, "friends");
  EXPECT_EQ(list.id().rfind("cl_", 0), 0u) << list.id();
  EXPECT_EQ(list.contact_count(), 0);

  v1::ContactListMembershipResponse m;
  ASSERT_TRUE(
      Membership(kAdminKey, true, list.id(), {one.id(), two.id()}, &m).ok());
  EXPECT_EQ(m.changed(), 2);
  EXPECT_EQ(m.list().contact_count(), 2);
  ASSERT_TRUE(Membership(kAdminKey, true, list.id(), {one.id()}, &m).ok());
  EXPECT_EQ(m.changed(), 0);
  grpc::Status unknown =
      Membership(kAdminKey, true, list.id(), {"ct_nope"}, &m);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(unknown.error_message().find("ct_nope"), std::string::npos)
      << unknown.error_message();

  v1::ListContactsRequest members;
  members.set_list_id(list.id());
  EXPECT_EQ(ListedIds(kAdminKey, members),
            (std::vector<std::string>{two.id(), one.id()}));
  v1::ListContactsRequest tagged;
  tagged.set_tag("vip");
  EXPECT_EQ(ListedIds(kAdminKey, tagged), std::vector<std::string>{one.id()});

  ASSERT_TRUE(Membership(kAdminKey, false, list.id(), {two.id()}, &m).ok());
  EXPECT_EQ(m.changed(), 1);
  EXPECT_EQ(m.list().contact_count(), 1);

  v1::GetContactListRequest get;
  get.set_id(list.id());
  v1::ContactList got;
  ASSERT_TRUE(contacts_->GetContactList(Ctx(kAdminKey).get(), get, &got).ok());
  EXPECT_EQ(got.name(), "friends");
  EXPECT_EQ(got.contact_count(), 1);
  v1::ListContactListsResponse lists;
  ASSERT_TRUE(
      contacts_->ListContactLists(Ctx(kAdminKey).get(), {}, &lists).ok());
  EXPECT_EQ(lists.total(), 1);

  // A draft campaign using the list keeps it from being deleted.
  v1::CreateCampaignRequest creq =
      CampaignRequest(RegisterSmsSender(kAdminKey));
  creq.set_contact_list_id(list.id());
  v1::Campaign campaign;
  ASSERT_TRUE(
      campaigns_->CreateCampaign(Ctx(kAdminKey).get(), creq, &campaign).ok());
  v1::DeleteContactListRequest del;
  del.set_id(list.id());
  google::protobuf::Empty empty;
  ErrorDetails refused =
      Details(contacts_->DeleteContactList(Ctx(kAdminKey).get(), del, &empty));
  EXPECT_EQ(refused.code, grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(refused.reason, "VALIDATION_ERROR");
  v1::DeleteCampaignRequest del_campaign;
  del_campaign.set_id(campaign.id());
  ASSERT_TRUE(
      campaigns_->DeleteCampaign(Ctx(kAdminKey).get(), del_campaign, &empty)
          .ok());
  ASSERT_TRUE(
      contacts_->DeleteContactList(Ctx(kAdminKey).get(), del, &empty).ok());
  EXPECT_EQ(
      contacts_->GetContactList(Ctx(kAdminKey).get(), get, &got).error_code(),
      grpc::StatusCode::NOT_FOUND);
}

TEST_F(ContactTest, AnotherAccountsContactsAndListsAreNotFound) {
  const std::string other = NewAccount("other");
  v1::Contact mine = MustCreate(kAdminKey, "+12025550101", {"vip"});
  v1::ContactList my_list = MustCreateList(kAdminKey, "mine");
  // The same address is free in another account.
  v1::Contact theirs = MustCreate(other, "+12025550101", {"vip"});

  v1::GetContactRequest get;
  get.set_id(mine.id());
  v1::Contact c;
  EXPECT_EQ(contacts_->GetContact(Ctx(other).get(), get, &c).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::UpdateContactRequest update;
  update.set_id(mine.id());
  update.add_tags("stolen");
  EXPECT_EQ(contacts_->UpdateContact(Ctx(other).get(), update, &c).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::DeleteContactRequest del;
  del.set_id(mine.id());
  google::protobuf::Empty empty;
  EXPECT_EQ(
      contacts_->DeleteContact(Ctx(other).get(), del, &empty).error_code(),
      grpc::StatusCode::NOT_FOUND);

  v1::GetContactListRequest get_list;
  get_list.set_id(my_list.id());
  v1::ContactList l;
  EXPECT_EQ(
      contacts_->GetContactList(Ctx(other).get(), get_list, &l).error_code(),
      grpc::StatusCode::NOT_FOUND);
  v1::ContactListMembershipResponse m;
  EXPECT_EQ(
      Membership(other, true, my_list.id(), {theirs.id()}, &m).error_code(),
      grpc::StatusCode::NOT_FOUND);
  // Their own list cannot take my contact either.
  v1::ContactList their_list = MustCreateList(other, "theirs");
  EXPECT_EQ(
      Membership(other, true, their_list.id(), {mine.id()}, &m).error_code(),
      grpc::StatusCode::NOT_FOUND);
  v1::ListContactsRequest by_my_list;
  by_my_list.set_list_id(my_list.id());
  v1::ListContactsResponse resp;
  EXPECT_EQ(
      contacts_->ListContacts(Ctx(other).get(), by_my_list, &resp).error_code(),
      grpc::StatusCode::NOT_FOUND);

  v1::ListContactsRequest tagged;
  tagged.set_tag("vip");
  EXPECT_EQ(ListedIds(other, tagged), std::vector<std::string>{theirs.id()});
  EXPECT_EQ(ListedIds(kAdminKey, tagged), std::vector<std::string>{mine.id()});
}

// A campaign's contact_ids are checked when it is created or updated, as
// every other id is: an unknown id or another account's contact is
// NOT_FOUND naming it, and nothing is stored.
TEST_F(ContactTest, CampaignContactIdsMustBeTheAccountsContacts) {
  const std::string other = NewAccount("other");
  v1::Contact mine = MustCreate(kAdminKey, "+12025550111");
  v1::Contact theirs = MustCreate(other, "+12025550112");
  const std::string sender = RegisterSmsSender(kAdminKey);
  for (const std::string& bad : {theirs.id(), std::string("ct_nope")}) {
    v1::CreateCampaignRequest req = CampaignRequest(sender);
    req.add_contact_ids(mine.id());
    req.add_contact_ids(bad);
    v1::Campaign c;
    ErrorDetails d =
        Details(campaigns_->CreateCampaign(Ctx(kAdminKey).get(), req, &c));
    EXPECT_EQ(d.code, grpc::StatusCode::NOT_FOUND) << d.message;
    EXPECT_EQ(d.reason, "NOT_FOUND") << d.message;
    EXPECT_THAT(d.message, ::testing::HasSubstr(bad));
  }
  v1::ListCampaignsResponse listed;
  ASSERT_TRUE(
      campaigns_->ListCampaigns(Ctx(kAdminKey).get(), {}, &listed).ok());
  EXPECT_EQ(listed.total(), 0);

  v1::CreateCampaignRequest req = CampaignRequest(sender);
  req.add_contact_ids(mine.id());
  v1::Campaign c;
  ASSERT_TRUE(campaigns_->CreateCampaign(Ctx(kAdminKey).get(), req, &c).ok());
  v1::UpdateCampaignRequest update;
  update.set_id(c.id());
  update.add_contact_ids(mine.id());
  update.add_contact_ids(theirs.id());
  update.mutable_update_mask()->add_paths("contact_ids");
  v1::Campaign updated;
  ErrorDetails d = Details(
      campaigns_->UpdateCampaign(Ctx(kAdminKey).get(), update, &updated));
  EXPECT_EQ(d.code, grpc::StatusCode::NOT_FOUND) << d.message;
  EXPECT_THAT(d.message, ::testing::HasSubstr(theirs.id()));
  v1::GetCampaignRequest get;
  get.set_id(c.id());
  v1::Campaign got;
  ASSERT_TRUE(campaigns_->GetCampaign(Ctx(kAdminKey).get(), get, &got).ok());
  EXPECT_EQ(std::vector<std::string>(got.contact_ids().begin(),
                                     got.contact_ids().end()),
            std::vector<std::string>{mine.id()});
}

}  // namespace
}  // namespace campaigns::testing
