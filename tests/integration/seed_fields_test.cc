// The seeds' campaign fields over gRPC: a channel inferred from the sender or
// template, a sender named by its snd_ id, seed 003's template_components
// and recipient_variables, and seed 003's X-Auth-Token / X-Auth-ID headers.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/message_differencer.h>

#include "tests/integration/fixture.h"

namespace campaigns::testing {
namespace {

class SeedFieldsTest : public ServerTest {
 protected:
  v1::Sender Register(const std::string& sender_id, v1::Channel channel) {
    v1::RegisterSenderRequest req;
    req.set_sender_id(sender_id);
    req.set_channel(channel);
    req.set_tier(v1::Sender::tier_10k);
    v1::Sender out;
    grpc::Status s = senders_->RegisterSender(Ctx(kAdminKey).get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  v1::Contact Contact(const std::string& address,
                      std::map<std::string, std::string> attributes) {
    v1::CreateContactRequest req;
    req.set_address(address);
    req.set_channel(v1::sms);
    req.add_tags("vip");
    req.mutable_attributes()->insert(attributes.begin(), attributes.end());
    v1::Contact out;
    grpc::Status s = contacts_->CreateContact(Ctx(kAdminKey).get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  static void SetVariable(v1::CreateCampaignRequest& req,
                          const std::string& contact, const std::string& key,
                          const std::string& value) {
    (*(*req.mutable_recipient_variables())[contact].mutable_fields())[key]
        .set_string_value(value);
  }
};

TEST_F(SeedFieldsTest, TheSenderOrTemplateFixesAnOmittedChannel) {
  const v1::Sender sms = Register("+15550001", v1::sms);
  const v1::Sender wa = Register("+15550002", v1::whatsapp);
  for (const std::string& sender :
       {sms.sender_id(), sms.id(), wa.sender_id(), wa.id()}) {
    SCOPED_TRACE(sender);
    v1::CreateCampaignRequest req = CampaignRequest(sender);
    req.clear_channel();
    v1::Campaign c;
    grpc::Status s = campaigns_->CreateCampaign(Ctx(kAdminKey).get(), req, &c);
    ASSERT_TRUE(s.ok()) << s.error_message();
    const bool is_sms = sender == sms.sender_id() || sender == sms.id();
    EXPECT_EQ(c.channel(), is_sms ? v1::sms : v1::whatsapp);
    // A snd_ id is stored and returned as the visible id.
    EXPECT_EQ(c.sender_id(), is_sms ? sms.sender_id() : wa.sender_id());
  }
  // The template decides when the sender alone cannot.
  Register("+15550001", v1::whatsapp);
  v1::Template t = ApprovedTemplate(kAdminKey);  // sms
  v1::CreateCampaignRequest req = CampaignRequest("+15550001");
  req.clear_channel();
  req.clear_body();
  req.set_template_id(t.id());
  v1::Campaign c;
  grpc::Status s = campaigns_->CreateCampaign(Ctx(kAdminKey).get(), req, &c);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(c.channel(), v1::sms);
}

TEST_F(SeedFieldsTest, AVisibleIdOnTwoChannelsNeedsTheChannel) {
  Register("+15550001", v1::sms);
  Register("+15550001", v1::whatsapp);
  v1::CreateCampaignRequest req = CampaignRequest("+15550001");
  req.clear_channel();
  v1::Campaign c;
  ErrorDetails d =
      Details(campaigns_->CreateCampaign(Ctx(kAdminKey).get(), req, &c));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT) << d.message;
  ASSERT_EQ(d.fields.size(), 1u);
  EXPECT_EQ(d.fields[0], "channel");
  EXPECT_NE(d.message.find("sms and whatsapp"), std::string::npos) << d.message;
}

TEST_F(SeedFieldsTest, TemplateComponentsAndRecipientVariablesRoundTrip) {
  const std::string sender = RegisterSmsSender(kAdminKey);
  v1::Template t = ApprovedTemplate(kAdminKey);
  const v1::Contact asha = Contact("+12025550101", {{"first_name", "A"}});
  v1::CreateCampaignRequest req = CampaignRequest(sender);
  req.clear_body();
  req.set_template_id(t.id());
  req.add_tags("vip");
  auto* body = req.add_template_components();
  body->set_type("body");
  auto* param = body->add_parameters();
  param->set_type("text");
  param->set_text("{{1}}");
  SetVariable(req, asha.id(), "1", "Asha");
  (*(*req.mutable_recipient_variables())[asha.id()].mutable_fields())["n"]
      .set_number_value(42);
  v1::Campaign c;
  grpc::Status s = campaigns_->CreateCampaign(Ctx(kAdminKey).get(), req, &c);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(c.template_components_size(), 1);
  EXPECT_EQ(c.template_components(0).parameters(0).text(), "{{1}}");
  const auto& vars = c.recipient_variables().at(asha.id()).fields();
  EXPECT_EQ(vars.at("1").string_value(), "Asha");
  EXPECT_EQ(vars.at("n").string_value(), "42");  // numbers as their text

  v1::GetCampaignRequest get;
  get.set_id(c.id());
  v1::Campaign stored;
  ASSERT_TRUE(campaigns_->GetCampaign(Ctx(kAdminKey).get(), get, &stored).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(stored, c))
      << stored.DebugString();
}

TEST_F(SeedFieldsTest, RecipientVariablesOverrideContactAttributesAtStart) {
  const std::string sender = RegisterSmsSender(kAdminKey);
  const v1::Contact asha =
      Contact("+12025550101", {{"name", "A."}, {"code", "C1"}});
  const v1::Contact ben =
      Contact("+12025550102", {{"name", "Ben"}, {"code", "C2"}});
  v1::CreateCampaignRequest req = CampaignRequest(sender);
  req.add_tags("vip");
  SetVariable(req, asha.id(), "name", "Asha");
  v1::Campaign c;
  grpc::Status s = campaigns_->CreateCampaign(Ctx(kAdminKey).get(), req, &c);
  ASSERT_TRUE(s.ok()) << s.error_message();
  v1::StartCampaignRequest start;
  start.set_id(c.id());
  s = campaigns_->StartCampaign(Ctx(kAdminKey).get(), start, &c);
  ASSERT_TRUE(s.ok()) << s.error_message();
  std::map<std::string, std::map<std::string, std::string>> by_contact;
  for (const v1::Recipient& r : ListAllRecipients(c.id())) {
    by_contact[r.contact_id()] = {r.variables().begin(), r.variables().end()};
  }
  ASSERT_EQ(by_contact.size(), 2u);
  EXPECT_EQ(by_contact[asha.id()], (std::map<std::string, std::string>{
                                       {"name", "Asha"}, {"code", "C1"}}));
  EXPECT_EQ(by_contact[ben.id()], (std::map<std::string, std::string>{
                                      {"name", "Ben"}, {"code", "C2"}}));
}

TEST_F(SeedFieldsTest, RecipientVariablesMustNameTheAccountsContacts) {
  const std::string sender = RegisterSmsSender(kAdminKey);
  const v1::Contact asha = Contact("+12025550101", {});
  const std::string other_key = NewAccount("other");
  v1::CreateCampaignRequest req = CampaignRequest(sender);
  req.add_tags("vip");
  v1::Campaign c;

  v1::CreateCampaignRequest unknown = req;
  SetVariable(unknown, "ct_nope", "1", "x");
  ErrorDetails d =
      Details(campaigns_->CreateCampaign(Ctx(kAdminKey).get(), unknown, &c));
  EXPECT_EQ(d.code, grpc::StatusCode::NOT_FOUND) << d.message;
  EXPECT_NE(d.message.find("recipient_variables"), std::string::npos);

  v1::CreateCampaignRequest nested = req;
  (*(*nested.mutable_recipient_variables())[asha.id()].mutable_fields())["x"]
      .mutable_struct_value();
  d = Details(campaigns_->CreateCampaign(Ctx(kAdminKey).get(), nested, &c));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT) << d.message;
  ASSERT_EQ(d.fields.size(), 1u);
  EXPECT_EQ(d.fields[0], "recipient_variables." + asha.id() + ".x");

  // Another account's contact is as unknown as one that does not exist.
  const std::string other_sender = RegisterSmsSender(other_key, "+15550009");
  v1::CreateCampaignRequest foreign = CampaignRequest(other_sender);
  foreign.add_tags("vip");
  SetVariable(foreign, asha.id(), "1", "x");
  d = Details(campaigns_->CreateCampaign(Ctx(other_key).get(), foreign, &c));
  EXPECT_EQ(d.code, grpc::StatusCode::NOT_FOUND) << d.message;

  v1::ListCampaignsResponse list;
  ASSERT_TRUE(campaigns_->ListCampaigns(Ctx(kAdminKey).get(), {}, &list).ok());
  EXPECT_EQ(list.total(), 0);
}

TEST_F(SeedFieldsTest, XAuthTokenWithAnOptionalMatchingXAuthId) {
  v1::GetAccountRequest req;
  v1::Account account;
  grpc::ClientContext ok_ctx;
  ok_ctx.AddMetadata("x-auth-token", kAdminKey);
  ASSERT_TRUE(accounts_->GetAccount(&ok_ctx, req, &account).ok());

  grpc::ClientContext matching;
  matching.AddMetadata("x-auth-token", kAdminKey);
  matching.AddMetadata("x-auth-id", account.id());
  v1::Account again;
  EXPECT_TRUE(accounts_->GetAccount(&matching, req, &again).ok());

  grpc::ClientContext other;
  other.AddMetadata("x-auth-token", kAdminKey);
  other.AddMetadata("x-auth-id", "acct_someone_else");
  ErrorDetails d = Details(accounts_->GetAccount(&other, req, &again));
  EXPECT_EQ(d.code, grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext unknown;
  unknown.AddMetadata("x-auth-token", "ck_no_such_key_0123456789");
  ErrorDetails u = Details(accounts_->GetAccount(&unknown, req, &again));
  EXPECT_EQ(u.code, grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(d.message, u.message);  // one message for every refusal
}

}  // namespace
}  // namespace campaigns::testing
