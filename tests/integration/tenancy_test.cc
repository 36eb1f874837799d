// Tenancy: another account's ids behave exactly like ids that do not exist.
#include "tests/integration/fixture.h"

namespace campaigns::testing {
namespace {

class TenancyTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    owner_ = NewAccount("owner");
    other_ = NewAccount("other");
    sender_ = RegisterSmsSender(owner_);
    tmpl_ = ApprovedTemplate(owner_);
    v1::CreateCampaignRequest req = CampaignRequest(sender_);
    ASSERT_TRUE(
        campaigns_->CreateCampaign(Ctx(owner_).get(), req, &campaign_).ok());
    v1::ListSendersResponse senders;
    ASSERT_TRUE(senders_->ListSenders(Ctx(owner_).get(), {}, &senders).ok());
    ASSERT_EQ(senders.items_size(), 1);
    sender_ref_ = senders.items(0).id();
  }

  std::string owner_, other_, sender_, sender_ref_;
  v1::Template tmpl_;
  v1::Campaign campaign_;
};

void ExpectNotFound(const grpc::Status& s, const char* what) {
  ErrorDetails d = Details(s);
  EXPECT_EQ(d.code, grpc::StatusCode::NOT_FOUND) << what << ": " << d.message;
  EXPECT_EQ(d.reason, "NOT_FOUND") << what;
}

TEST_F(TenancyTest, CampaignsOfAnotherAccountAreNotFound) {
  v1::Campaign c;
  v1::GetCampaignRequest get;
  get.set_id(campaign_.id());
  ExpectNotFound(campaigns_->GetCampaign(Ctx(other_).get(), get, &c), "get");
  v1::UpdateCampaignRequest update;
  update.set_id(campaign_.id());
  update.set_name("hijacked");
  ExpectNotFound(campaigns_->UpdateCampaign(Ctx(other_).get(), update, &c),
                 "update");
  v1::DeleteCampaignRequest del;
  del.set_id(campaign_.id());
  google::protobuf::Empty empty;
  ExpectNotFound(campaigns_->DeleteCampaign(Ctx(other_).get(), del, &empty),
                 "delete");
  v1::ListCampaignsResponse list;
  ASSERT_TRUE(campaigns_->ListCampaigns(Ctx(other_).get(), {}, &list).ok());
  EXPECT_EQ(list.total(), 0);
  EXPECT_EQ(list.items_size(), 0);

  // The owner still sees it unchanged.
  ASSERT_TRUE(campaigns_->GetCampaign(Ctx(owner_).get(), get, &c).ok());
  EXPECT_EQ(c.name(), campaign_.name());
}

TEST_F(TenancyTest, TemplatesSendersAndKeysOfAnotherAccountAreNotFound) {
  v1::Template t;
  v1::GetTemplateRequest get_t;
  get_t.set_id(tmpl_.id());
  ExpectNotFound(templates_->GetTemplate(Ctx(other_).get(), get_t, &t),
                 "template get");
  v1::UpdateTemplateRequest upd_t;
  upd_t.set_id(tmpl_.id());
  upd_t.set_body("x");
  ExpectNotFound(templates_->UpdateTemplate(Ctx(other_).get(), upd_t, &t),
                 "template update");
  v1::DeleteTemplateRequest del_t;
  del_t.set_id(tmpl_.id());
  google::protobuf::Empty empty;
  ExpectNotFound(templates_->DeleteTemplate(Ctx(other_).get(), del_t, &empty),
                 "template delete");
  v1::ListTemplatesResponse templates;
  ASSERT_TRUE(
      templates_->ListTemplates(Ctx(other_).get(), {}, &templates).ok());
  EXPECT_EQ(templates.total(), 0);

  v1::Sender s;
  v1::GetSenderRequest get_s;
  get_s.set_id(sender_ref_);
  ExpectNotFound(senders_->GetSender(Ctx(other_).get(), get_s, &s),
                 "sender get");
  v1::DeleteSenderRequest del_s;
  del_s.set_id(sender_ref_);
  ExpectNotFound(senders_->DeleteSender(Ctx(other_).get(), del_s, &empty),
                 "sender delete");

  v1::ListApiKeysResponse keys;
  ASSERT_TRUE(accounts_->ListApiKeys(Ctx(owner_).get(), {}, &keys).ok());
  ASSERT_EQ(keys.items_size(), 1);
  v1::RevokeApiKeyRequest revoke;
  revoke.set_id(keys.items(0).id());
  v1::ApiKey key;
  ExpectNotFound(accounts_->RevokeApiKey(Ctx(other_).get(), revoke, &key),
                 "key revoke");
  v1::Account account;
  ASSERT_TRUE(accounts_->GetAccount(Ctx(owner_).get(), {}, &account).ok());
  v1::GetAccountRequest get_a;
  get_a.set_id(account.id());
  ExpectNotFound(accounts_->GetAccount(Ctx(other_).get(), get_a, &account),
                 "account get");
  v1::CreateApiKeyRequest create_key;
  create_key.set_account_id(account.id());
  ExpectNotFound(accounts_->CreateApiKey(Ctx(other_).get(), create_key, &key),
                 "key create for another account");
}

TEST_F(TenancyTest, CampaignsCannotUseAnotherAccountsSenderOrTemplate) {
  v1::Campaign c;
  v1::CreateCampaignRequest req = CampaignRequest(sender_);
  ErrorDetails d =
      Details(campaigns_->CreateCampaign(Ctx(other_).get(), req, &c));
  EXPECT_EQ(d.code, grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(d.reason, "VALIDATION_ERROR");
  ASSERT_EQ(d.fields.size(), 1u);
  EXPECT_EQ(d.fields[0], "sender_id");

  const std::string other_sender = RegisterSmsSender(other_);
  req = CampaignRequest(other_sender);
  req.clear_body();
  req.set_template_id(tmpl_.id());
  ExpectNotFound(campaigns_->CreateCampaign(Ctx(other_).get(), req, &c),
                 "another account's template");
}

TEST_F(TenancyTest, AdminSeesOnlyItsOwnCampaigns) {
  v1::ListCampaignsResponse list;
  ASSERT_TRUE(campaigns_->ListCampaigns(Ctx(kAdminKey).get(), {}, &list).ok());
  EXPECT_EQ(list.total(), 0);
}

}  // namespace
}  // namespace campaigns::testing
