// Email fields over gRPC: a template's and a campaign's subject and
// html_body, the subject an email campaign must have (its own or its
// template's) at create, update and start, and the fields no other channel
// takes. Every refusal names its field in BadRequest and stores nothing.
#include <functional>
#include <string>
#include <vector>

#include "tests/integration/fixture.h"

namespace campaigns::testing {
namespace {

constexpr char kFrom[] = "news@example.com";

class EmailFieldsTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    v1::RegisterSenderRequest req;
    req.set_sender_id(kFrom);
    req.set_channel(v1::email);
    req.set_tier(v1::Sender::tier_10k);
    v1::Sender out;
    grpc::Status s = senders_->RegisterSender(Ctx(kAdminKey).get(), req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
    sms_sender_ = RegisterSmsSender(kAdminKey);
  }

  static v1::CreateCampaignRequest EmailRequest() {
    v1::CreateCampaignRequest req;
    req.set_name("Newsletter");
    req.set_channel(v1::email);
    req.set_sender_id(kFrom);
    req.set_body("Hi {{name}}");
    req.set_subject("News for {{name}}");
    req.set_html_body("<p>Hi <b>{{name}}</b></p>");
    return req;
  }

  static v1::CreateTemplateRequest EmailTemplateRequest(
      const std::string& name) {
    v1::CreateTemplateRequest req;
    req.set_name(name);
    req.set_language("en");
    req.set_channel(v1::email);
    req.set_body("Hello {{name}}");
    req.set_subject("Hello {{name}}, {{offer}}");
    req.set_html_body("<h1>Hello {{name}}</h1><p>{{offer}} {{until}}</p>");
    return req;
  }

  v1::Template Approve(const std::string& id) {
    v1::SetTemplateStatusRequest approve;
    approve.set_id(id);
    approve.set_status(v1::Template::approved);
    v1::Template t;
    grpc::Status s =
        templates_->SetTemplateStatus(Ctx(kAdminKey).get(), approve, &t);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return t;
  }

  v1::Template CreateTemplate(const v1::CreateTemplateRequest& req) {
    v1::Template t;
    grpc::Status s = templates_->CreateTemplate(Ctx(kAdminKey).get(), req, &t);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return t;
  }

  v1::Campaign MustCreate(const v1::CreateCampaignRequest& req) {
    v1::Campaign c;
    grpc::Status s = campaigns_->CreateCampaign(Ctx(kAdminKey).get(), req, &c);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return c;
  }

  int64_t CampaignCount() {
    v1::ListCampaignsResponse list;
    EXPECT_TRUE(
        campaigns_->ListCampaigns(Ctx(kAdminKey).get(), {}, &list).ok());
    return list.total();
  }

  // Asserts code, reason, the one BadRequest field and that the message
  // starts with it.
  static void ExpectRefused(const ErrorDetails& d, grpc::StatusCode code,
                            const std::string& field) {
    EXPECT_EQ(d.code, code) << d.message;
    EXPECT_EQ(d.reason, code == grpc::StatusCode::INVALID_ARGUMENT
                            ? "INVALID_REQUEST"
                            : "VALIDATION_ERROR");
    EXPECT_EQ(d.domain, "campaigns.v1");
    ASSERT_EQ(d.fields.size(), 1u) << d.message;
    EXPECT_EQ(d.fields[0], field);
    EXPECT_EQ(d.message.rfind(field + ": ", 0), 0u) << d.message;
  }

  std::string sms_sender_;
};

constexpr grpc::StatusCode kInvalid = grpc::StatusCode::INVALID_ARGUMENT;
constexpr grpc::StatusCode kPrecondition =
    grpc::StatusCode::FAILED_PRECONDITION;

TEST_F(EmailFieldsTest, CreateKeepsSubjectAndHtmlBodyAndRefusesBadOnes) {
  v1::Campaign c = MustCreate(EmailRequest());
  EXPECT_EQ(c.subject(), "News for {{name}}");
  EXPECT_EQ(c.html_body(), "<p>Hi <b>{{name}}</b></p>");
  v1::GetCampaignRequest get;
  get.set_id(c.id());
  v1::Campaign got;
  ASSERT_TRUE(campaigns_->GetCampaign(Ctx(kAdminKey).get(), get, &got).ok());
  EXPECT_EQ(got.subject(), "News for {{name}}");
  EXPECT_EQ(got.html_body(), "<p>Hi <b>{{name}}</b></p>");

  v1::Template no_subject_tmpl = [&] {
    v1::CreateTemplateRequest req = EmailTemplateRequest("plain");
    req.clear_subject();
    return Approve(CreateTemplate(req).id());
  }();

  using C = v1::CreateCampaignRequest;
  struct Case {
    const char* name;
    std::function<void(C&)> mutate;
    grpc::StatusCode code;
    const char* field;
    const char* message;  // "" = not checked
  };
  const std::vector<Case> cases = {
      {"email without a subject", [](C& r) { r.clear_subject(); },
       kPrecondition, "subject", "subject: is required for an email campaign"},
      {"email whose template has no subject",
       [&](C& r) {
         r.clear_subject();
         r.clear_body();
         r.clear_channel();  // the template fixes it
         r.set_template_id(no_subject_tmpl.id());
       },
       kPrecondition, "subject", ""},
      {"subject with CRLF",
       [](C& r) { r.set_subject("Hi\r\nBcc: all@example.com"); }, kInvalid,
       "subject", "subject: must be one line: CR and LF are not allowed"},
      {"subject with LF", [](C& r) { r.set_subject("Hi\nthere"); }, kInvalid,
       "subject", ""},
      {"subject too long", [](C& r) { r.set_subject(std::string(999, 's')); },
       kInvalid, "subject",
       "subject: must be at most 998 bytes (RFC 5322's line limit)"},
      {"blank subject", [](C& r) { r.set_subject("   "); }, kInvalid, "subject",
       "subject: must not be blank"},
      {"subject with a bad placeholder",
       [](C& r) { r.set_subject("Hi {{first name}}"); }, kInvalid, "subject",
       ""},
      {"html_body too long",
       [](C& r) { r.set_html_body(std::string(262145, 'h')); }, kInvalid,
       "html_body", "html_body: must be at most 262144 bytes"},
      {"html_body with an unclosed placeholder",
       [](C& r) { r.set_html_body("<p>{{name</p>"); }, kInvalid, "html_body",
       ""},
      {"subject on sms",
       [&](C& r) {
         r.set_channel(v1::sms);
         r.set_sender_id(sms_sender_);
         r.clear_html_body();
       },
       kPrecondition, "subject",
       "subject: only email campaigns have a subject; this campaign is for "
       "sms"},
      {"html_body on sms, the channel from the sender",
       [&](C& r) {
         r.clear_channel();
         r.set_sender_id(sms_sender_);
         r.clear_subject();
       },
       kPrecondition, "html_body",
       "html_body: only email campaigns have an HTML body; this campaign is "
       "for sms"},
  };
  const int64_t before = CampaignCount();
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    C req = EmailRequest();
    c.mutate(req);
    v1::Campaign out;
    ErrorDetails d =
        Details(campaigns_->CreateCampaign(Ctx(kAdminKey).get(), req, &out));
    ExpectRefused(d, c.code, c.field);
    if (*c.message) {
      EXPECT_EQ(d.message, c.message);
    }
  }
  EXPECT_EQ(CampaignCount(), before);
}

TEST_F(EmailFieldsTest, TheTemplatesSubjectServesACampaignWithoutOne) {
  v1::Template t = CreateTemplate(EmailTemplateRequest("offer"));
  EXPECT_EQ(t.subject(), "Hello {{name}}, {{offer}}");
  EXPECT_EQ(t.html_body(), "<h1>Hello {{name}}</h1><p>{{offer}} {{until}}</p>");
  // Placeholders of body, subject and html_body, in order of appearance.
  EXPECT_EQ(std::vector<std::string>(t.placeholders().begin(),
                                     t.placeholders().end()),
            (std::vector<std::string>{"name", "offer", "until"}));
  Approve(t.id());
  v1::CreateCampaignRequest req = EmailRequest();
  req.clear_body();
  req.clear_subject();
  req.clear_html_body();
  req.set_template_id(t.id());
  v1::Campaign c = MustCreate(req);
  EXPECT_EQ(c.subject(), "");  // the template's, when sent
  EXPECT_EQ(c.template_name(), "offer");
}

TEST_F(EmailFieldsTest, UpdateWithAndWithoutMaskAndTheSubjectStaysRequired) {
  v1::Campaign c = MustCreate(EmailRequest());
  v1::UpdateCampaignRequest up;
  up.set_id(c.id());
  up.set_subject("New subject");
  v1::Campaign out;
  ASSERT_TRUE(campaigns_->UpdateCampaign(Ctx(kAdminKey).get(), up, &out).ok());
  EXPECT_EQ(out.subject(), "New subject");
  EXPECT_EQ(out.html_body(), "<p>Hi <b>{{name}}</b></p>");  // unchanged

  // A mask clears what it names: the HTML body may go, the subject not.
  up.Clear();
  up.set_id(c.id());
  up.mutable_update_mask()->add_paths("html_body");
  ASSERT_TRUE(campaigns_->UpdateCampaign(Ctx(kAdminKey).get(), up, &out).ok());
  EXPECT_EQ(out.html_body(), "");
  EXPECT_EQ(out.subject(), "New subject");
  up.mutable_update_mask()->add_paths("subject");
  ExpectRefused(
      Details(campaigns_->UpdateCampaign(Ctx(kAdminKey).get(), up, &out)),
      kPrecondition, "subject");

  up.Clear();
  up.set_id(c.id());
  up.set_subject("two\nlines");
  ExpectRefused(
      Details(campaigns_->UpdateCampaign(Ctx(kAdminKey).get(), up, &out)),
      kInvalid, "subject");

  // An sms campaign takes neither.
  v1::Campaign sms = MustCreate(CampaignRequest(sms_sender_));
  up.Clear();
  up.set_id(sms.id());
  up.set_html_body("<p>hi</p>");
  ExpectRefused(
      Details(campaigns_->UpdateCampaign(Ctx(kAdminKey).get(), up, &out)),
      kPrecondition, "html_body");
  // Nor does one turned to sms keep its subject.
  up.Clear();
  up.set_id(c.id());
  up.set_channel(v1::sms);
  up.set_sender_id(sms_sender_);
  ExpectRefused(
      Details(campaigns_->UpdateCampaign(Ctx(kAdminKey).get(), up, &out)),
      kPrecondition, "subject");

  v1::GetCampaignRequest get;
  get.set_id(c.id());
  v1::Campaign now;
  ASSERT_TRUE(campaigns_->GetCampaign(Ctx(kAdminKey).get(), get, &now).ok());
  EXPECT_EQ(now.channel(), v1::email);
  EXPECT_EQ(now.subject(), "New subject");
  EXPECT_EQ(now.html_body(), "");
}

TEST_F(EmailFieldsTest, StartChecksTheSubjectAgain) {
  v1::Template t = Approve(CreateTemplate(EmailTemplateRequest("weekly")).id());
  v1::CreateCampaignRequest req = EmailRequest();
  req.clear_body();
  req.clear_subject();
  req.set_template_id(t.id());
  v1::Campaign c = MustCreate(req);

  // The template loses its subject (and its approval with it; approved
  // again as it is).
  v1::UpdateTemplateRequest up;
  up.set_id(t.id());
  up.mutable_update_mask()->add_paths("subject");
  v1::Template changed;
  ASSERT_TRUE(
      templates_->UpdateTemplate(Ctx(kAdminKey).get(), up, &changed).ok());
  EXPECT_EQ(changed.subject(), "");
  EXPECT_EQ(changed.status(), v1::Template::pending);
  Approve(t.id());

  v1::StartCampaignRequest start;
  start.set_id(c.id());
  v1::Campaign out;
  ErrorDetails d =
      Details(campaigns_->StartCampaign(Ctx(kAdminKey).get(), start, &out));
  ExpectRefused(d, kPrecondition, "subject");
  EXPECT_NE(d.message.find(t.id()), std::string::npos) << d.message;
  v1::GetCampaignRequest get;
  get.set_id(c.id());
  ASSERT_TRUE(campaigns_->GetCampaign(Ctx(kAdminKey).get(), get, &out).ok());
  EXPECT_EQ(out.status(), v1::Campaign::draft);
}

TEST_F(EmailFieldsTest, TemplatesTakeThemOnEmailOnly) {
  v1::CreateTemplateRequest sms = EmailTemplateRequest("sms");
  sms.set_channel(v1::sms);
  sms.clear_html_body();
  v1::Template out;
  ErrorDetails d =
      Details(templates_->CreateTemplate(Ctx(kAdminKey).get(), sms, &out));
  ExpectRefused(d, kPrecondition, "subject");
  EXPECT_EQ(d.message,
            "subject: only email templates have a subject; this template is "
            "for sms");
  sms.clear_subject();
  sms.set_html_body("<p>x</p>");
  ExpectRefused(
      Details(templates_->CreateTemplate(Ctx(kAdminKey).get(), sms, &out)),
      kPrecondition, "html_body");

  v1::CreateTemplateRequest bad = EmailTemplateRequest("bad");
  bad.set_subject("a\r\nb");
  ExpectRefused(
      Details(templates_->CreateTemplate(Ctx(kAdminKey).get(), bad, &out)),
      kInvalid, "subject");

  // Update: new content puts an approved template back to pending; the
  // rules hold as on create.
  v1::Template t = Approve(CreateTemplate(EmailTemplateRequest("ok")).id());
  v1::UpdateTemplateRequest up;
  up.set_id(t.id());
  up.set_html_body("<p>New {{name}}</p>");
  ASSERT_TRUE(templates_->UpdateTemplate(Ctx(kAdminKey).get(), up, &out).ok());
  EXPECT_EQ(out.html_body(), "<p>New {{name}}</p>");
  EXPECT_EQ(out.subject(), "Hello {{name}}, {{offer}}");
  EXPECT_EQ(out.status(), v1::Template::pending);
  up.clear_html_body();
  up.set_subject(std::string(999, 's'));
  ExpectRefused(
      Details(templates_->UpdateTemplate(Ctx(kAdminKey).get(), up, &out)),
      kInvalid, "subject");
  v1::UpdateTemplateRequest unknown;
  unknown.set_id(t.id());
  unknown.mutable_update_mask()->add_paths("html");
  ExpectRefused(
      Details(templates_->UpdateTemplate(Ctx(kAdminKey).get(), unknown, &out)),
      kInvalid, "update_mask");
}

}  // namespace
}  // namespace campaigns::testing
