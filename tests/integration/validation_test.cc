// Every validation of CreateCampaign / UpdateCampaign answers with its code,
// ErrorInfo reason and BadRequest field, and stores nothing.
#include <functional>

#include "tests/integration/fixture.h"

namespace campaigns::testing {
namespace {

struct Case {
  const char* name;
  std::function<void(v1::CreateCampaignRequest&)> mutate;
  grpc::StatusCode code;
  const char* reason;
  const char* field;  // "" = no BadRequest expected
};

class CampaignValidationTest : public ServerTest {};

TEST_F(CampaignValidationTest, CreateRefusesBadInputWithCodeReasonAndField) {
  const std::string sender = RegisterSmsSender(kAdminKey);
  v1::CreateTemplateRequest pending;
  pending.set_name("unapproved");
  pending.set_language("en");
  pending.set_channel(v1::sms);
  pending.set_body("Hi {{1}}");
  v1::Template pending_tmpl;
  ASSERT_TRUE(
      templates_->CreateTemplate(Ctx(kAdminKey).get(), pending, &pending_tmpl)
          .ok());
  v1::CreateTemplateRequest wa = pending;
  wa.set_name("whatsapp");
  wa.set_channel(v1::whatsapp);
  v1::Template wa_tmpl;
  ASSERT_TRUE(
      templates_->CreateTemplate(Ctx(kAdminKey).get(), wa, &wa_tmpl).ok());
  v1::SetTemplateStatusRequest approve;
  approve.set_id(wa_tmpl.id());
  approve.set_status(v1::Template::approved);
  ASSERT_TRUE(
      templates_->SetTemplateStatus(Ctx(kAdminKey).get(), approve, &wa_tmpl)
          .ok());

  using C = v1::CreateCampaignRequest;
  const grpc::StatusCode kInvalid = grpc::StatusCode::INVALID_ARGUMENT;
  const grpc::StatusCode kPrecondition = grpc::StatusCode::FAILED_PRECONDITION;
  const std::vector<Case> cases = {
      {"missing name", [](C& r) { r.clear_name(); }, kInvalid,
       "INVALID_REQUEST", "name"},
      {"blank name", [](C& r) { r.set_name("   "); }, kInvalid,
       "INVALID_REQUEST", "name"},
      {"long name", [](C& r) { r.set_name(std::string(201, 'x')); }, kInvalid,
       "INVALID_REQUEST", "name"},
      {"missing channel, unknown sender",
       [](C& r) {
         r.clear_channel();
         r.set_sender_id("+19999999");
       },
       kPrecondition, "VALIDATION_ERROR", "sender_id"},
      {"unknown channel",
       [](C& r) { r.set_channel(static_cast<v1::Channel>(42)); }, kInvalid,
       "INVALID_REQUEST", "channel"},
      {"missing sender", [](C& r) { r.clear_sender_id(); }, kInvalid,
       "INVALID_REQUEST", "sender_id"},
      {"unregistered sender", [](C& r) { r.set_sender_id("+19999999"); },
       kPrecondition, "VALIDATION_ERROR", "sender_id"},
      {"sender of another channel", [](C& r) { r.set_channel(v1::whatsapp); },
       kPrecondition, "VALIDATION_ERROR", "sender_id"},
      {"body and template both absent", [](C& r) { r.clear_body(); },
       kPrecondition, "VALIDATION_ERROR", "body"},
      {"body and template both set", [](C& r) { r.set_template_id("tmpl_x"); },
       kInvalid, "INVALID_REQUEST", "template_id"},
      {"unapproved template",
       [&](C& r) {
         r.clear_body();
         r.set_template_id(pending_tmpl.id());
       },
       kPrecondition, "VALIDATION_ERROR", "template_id"},
      {"template of another channel",
       [&](C& r) {
         r.clear_body();
         r.set_template_id(wa_tmpl.id());
       },
       kPrecondition, "VALIDATION_ERROR", "template_id"},
      {"unknown template",
       [](C& r) {
         r.clear_body();
         r.set_template_id("tmpl_nope");
       },
       grpc::StatusCode::NOT_FOUND, "NOT_FOUND", ""},
      {"unknown contact list", [](C& r) { r.set_contact_list_id("cl_nope"); },
       grpc::StatusCode::NOT_FOUND, "NOT_FOUND", ""},
      {"two audiences",
       [](C& r) {
         r.set_contact_list_id("cl_x");
         r.add_tags("vip");
       },
       kInvalid, "INVALID_REQUEST", "contact_list_id"},
      {"empty tag", [](C& r) { r.add_tags(""); }, kInvalid, "INVALID_REQUEST",
       "tags"},
      {"unclosed placeholder", [](C& r) { r.set_body("Hi {{name"); }, kInvalid,
       "INVALID_REQUEST", "body"},
      {"bad placeholder", [](C& r) { r.set_body("Hi {{first name}}"); },
       kInvalid, "INVALID_REQUEST", "body"},
      {"negative batch size", [](C& r) { r.set_batch_size(-1); }, kInvalid,
       "INVALID_REQUEST", "batch_size"},
      {"huge batch size", [](C& r) { r.set_batch_size(10001); }, kInvalid,
       "INVALID_REQUEST", "batch_size"},
      {"negative batch delay",
       [](C& r) { r.mutable_batch_delay()->set_seconds(-1); }, kInvalid,
       "INVALID_REQUEST", "batch_delay"},
      {"malformed batch delay",
       [](C& r) {
         r.mutable_batch_delay()->set_seconds(1);
         r.mutable_batch_delay()->set_nanos(-5);
       },
       kInvalid, "INVALID_REQUEST", "batch_delay"},
      {"negative rate", [](C& r) { r.set_rate_limit_per_second(-5); }, kInvalid,
       "INVALID_REQUEST", "rate_limit_per_second"},
      {"zero validity period",
       [](C& r) { r.mutable_validity_period()->set_seconds(0); }, kInvalid,
       "INVALID_REQUEST", "validity_period"},
      {"negative max lateness",
       [](C& r) { r.mutable_max_lateness()->set_seconds(-3); }, kInvalid,
       "INVALID_REQUEST", "max_lateness"},
      {"malformed schedule",
       [](C& r) { r.mutable_schedule_at()->set_nanos(2000000000); }, kInvalid,
       "INVALID_REQUEST", "schedule_at"},
      {"empty variable mapping value",
       [](C& r) { (*r.mutable_variable_mapping())["1"] = ""; }, kInvalid,
       "INVALID_REQUEST", "variable_mapping"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    v1::CreateCampaignRequest req = CampaignRequest(sender);
    c.mutate(req);
    v1::Campaign out;
    ErrorDetails d =
        Details(campaigns_->CreateCampaign(Ctx(kAdminKey).get(), req, &out));
    EXPECT_EQ(d.code, c.code) << d.message;
    EXPECT_EQ(d.reason, c.reason);
    EXPECT_EQ(d.domain, "campaigns.v1");
    if (*c.field) {
      ASSERT_FALSE(d.fields.empty());
      EXPECT_EQ(d.fields[0], c.field);
      EXPECT_NE(d.message.find(c.field), std::string::npos) << d.message;
    }
  }
  // Nothing was stored.
  v1::ListCampaignsResponse list;
  ASSERT_TRUE(campaigns_->ListCampaigns(Ctx(kAdminKey).get(), {}, &list).ok());
  EXPECT_EQ(list.total(), 0);
}

TEST_F(CampaignValidationTest, UpdateRefusesBadInputAndKeepsTheStoredCampaign) {
  const std::string sender = RegisterSmsSender(kAdminKey);
  v1::Campaign created;
  ASSERT_TRUE(campaigns_
                  ->CreateCampaign(Ctx(kAdminKey).get(),
                                   CampaignRequest(sender), &created)
                  .ok());
  struct UpdateCase {
    const char* name;
    std::function<void(v1::UpdateCampaignRequest&)> mutate;
    grpc::StatusCode code;
    const char* field;
  };
  const std::vector<UpdateCase> cases = {
      {"missing id", [](v1::UpdateCampaignRequest& r) { r.clear_id(); },
       grpc::StatusCode::INVALID_ARGUMENT, "id"},
      {"unknown mask path",
       [](v1::UpdateCampaignRequest& r) {
         r.mutable_update_mask()->add_paths("status");
       },
       grpc::StatusCode::INVALID_ARGUMENT, "update_mask"},
      {"mask clears the name",
       [](v1::UpdateCampaignRequest& r) {
         r.mutable_update_mask()->add_paths("name");
       },
       grpc::StatusCode::INVALID_ARGUMENT, "name"},
      {"mask clears body with no template",
       [](v1::UpdateCampaignRequest& r) {
         r.mutable_update_mask()->add_paths("body");
       },
       grpc::StatusCode::FAILED_PRECONDITION, "body"},
      {"unregistered sender",
       [](v1::UpdateCampaignRequest& r) { r.set_sender_id("+1000"); },
       grpc::StatusCode::FAILED_PRECONDITION, "sender_id"},
      {"bad batch size",
       [](v1::UpdateCampaignRequest& r) { r.set_batch_size(20000); },
       grpc::StatusCode::INVALID_ARGUMENT, "batch_size"},
      {"unknown channel number",
       [](v1::UpdateCampaignRequest& r) {
         r.set_channel(static_cast<v1::Channel>(77));
       },
       grpc::StatusCode::INVALID_ARGUMENT, "channel"},
  };
  for (const UpdateCase& c : cases) {
    SCOPED_TRACE(c.name);
    v1::UpdateCampaignRequest req;
    req.set_id(created.id());
    c.mutate(req);
    v1::Campaign out;
    ErrorDetails d =
        Details(campaigns_->UpdateCampaign(Ctx(kAdminKey).get(), req, &out));
    EXPECT_EQ(d.code, c.code) << d.message;
    ASSERT_FALSE(d.fields.empty());
    EXPECT_EQ(d.fields[0], c.field);
  }
  v1::GetCampaignRequest get;
  get.set_id(created.id());
  v1::Campaign now;
  ASSERT_TRUE(campaigns_->GetCampaign(Ctx(kAdminKey).get(), get, &now).ok());
  EXPECT_EQ(now.SerializeAsString(), created.SerializeAsString());
}

TEST_F(CampaignValidationTest, ListRefusesBadPagingAndFilters) {
  v1::ListCampaignsResponse list;
  v1::ListCampaignsRequest req;
  req.set_limit(101);
  ErrorDetails d =
      Details(campaigns_->ListCampaigns(Ctx(kAdminKey).get(), req, &list));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(d.reason, "INVALID_REQUEST");
  ASSERT_EQ(d.fields.size(), 1u);
  EXPECT_EQ(d.fields[0], "limit");

  req.set_limit(10);
  req.set_page(-1);
  d = Details(campaigns_->ListCampaigns(Ctx(kAdminKey).get(), req, &list));
  ASSERT_EQ(d.fields.size(), 1u);
  EXPECT_EQ(d.fields[0], "page");

  req.set_page(1);
  req.set_page_token("!!not-a-token");
  d = Details(campaigns_->ListCampaigns(Ctx(kAdminKey).get(), req, &list));
  ASSERT_EQ(d.fields.size(), 1u);
  EXPECT_EQ(d.fields[0], "page_token");

  req.clear_page_token();
  req.set_status(static_cast<v1::Campaign::Status>(99));
  d = Details(campaigns_->ListCampaigns(Ctx(kAdminKey).get(), req, &list));
  ASSERT_EQ(d.fields.size(), 1u);
  EXPECT_EQ(d.fields[0], "status");

  v1::ListTemplatesRequest tl;
  tl.set_limit(1000);
  v1::ListTemplatesResponse tlist;
  EXPECT_EQ(
      templates_->ListTemplates(Ctx(kAdminKey).get(), tl, &tlist).error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListSendersRequest sl;
  sl.set_limit(101);
  v1::ListSendersResponse slist;
  EXPECT_EQ(
      senders_->ListSenders(Ctx(kAdminKey).get(), sl, &slist).error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(CampaignValidationTest, TemplateAndSenderValidation) {
  v1::CreateTemplateRequest t;
  t.set_language("en");
  t.set_channel(v1::sms);
  t.set_body("hi");
  v1::Template out;
  ErrorDetails d =
      Details(templates_->CreateTemplate(Ctx(kAdminKey).get(), t, &out));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_FALSE(d.fields.empty());
  EXPECT_EQ(d.fields[0], "name");

  t.set_name("n");
  t.clear_channel();
  d = Details(templates_->CreateTemplate(Ctx(kAdminKey).get(), t, &out));
  ASSERT_FALSE(d.fields.empty());
  EXPECT_EQ(d.fields[0], "channel");

  t.set_channel(v1::sms);
  ASSERT_TRUE(templates_->CreateTemplate(Ctx(kAdminKey).get(), t, &out).ok());
  d = Details(templates_->CreateTemplate(Ctx(kAdminKey).get(), t, &out));
  EXPECT_EQ(d.code, grpc::StatusCode::ALREADY_EXISTS);
  ASSERT_FALSE(d.fields.empty());
  EXPECT_EQ(d.fields[0], "name");

  v1::RegisterSenderRequest s;
  s.set_channel(v1::sms);
  v1::Sender sender;
  d = Details(senders_->RegisterSender(Ctx(kAdminKey).get(), s, &sender));
  ASSERT_FALSE(d.fields.empty());
  EXPECT_EQ(d.fields[0], "sender_id");
  s.set_sender_id("+15550009");
  s.set_tier(static_cast<v1::Sender::Tier>(9));
  d = Details(senders_->RegisterSender(Ctx(kAdminKey).get(), s, &sender));
  ASSERT_FALSE(d.fields.empty());
  EXPECT_EQ(d.fields[0], "tier");
  s.clear_tier();
  s.set_provider("carrier-pigeon");
  d = Details(senders_->RegisterSender(Ctx(kAdminKey).get(), s, &sender));
  ASSERT_FALSE(d.fields.empty());
  EXPECT_EQ(d.fields[0], "provider");
  s.clear_provider();
  ASSERT_TRUE(senders_->RegisterSender(Ctx(kAdminKey).get(), s, &sender).ok());
  EXPECT_EQ(sender.tier(), v1::Sender::tier_1k);
  EXPECT_EQ(sender.rate_per_second(), 10);
  d = Details(senders_->RegisterSender(Ctx(kAdminKey).get(), s, &sender));
  EXPECT_EQ(d.code, grpc::StatusCode::ALREADY_EXISTS);
  v1::RegisterSenderRequest email;
  email.set_channel(v1::email);
  email.set_sender_id("not-an-address");
  d = Details(senders_->RegisterSender(Ctx(kAdminKey).get(), email, &sender));
  ASSERT_FALSE(d.fields.empty());
  EXPECT_EQ(d.fields[0], "sender_id");
}

}  // namespace
}  // namespace campaigns::testing
