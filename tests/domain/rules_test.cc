// Tests of server/domain/rules.h: request shape checks, placeholders, paging
// and API.md's campaign lifecycle table.
#include "server/domain/rules.h"

#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/domain/errors.h"

namespace campaigns {
namespace {

using ::testing::_;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

using Fields = std::vector<std::pair<std::string, std::string>>;

Fields FieldsOf(const absl::Status& status) {
  Fields out;
  for (const errors::FieldViolation& v : errors::FieldViolationsOf(status)) {
    out.emplace_back(v.field, v.description);
  }
  return out;
}

// What a failing check must produce; code kOk means "no error".
struct Expected {
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string reason;
  std::string field;  // "" = no field violation expected
};

Expected Ok() { return {}; }
Expected Invalid(std::string field) {
  return {absl::StatusCode::kInvalidArgument, "INVALID_REQUEST",
          std::move(field)};
}
Expected Unprocessable(std::string field) {
  return {absl::StatusCode::kFailedPrecondition, "VALIDATION_ERROR",
          std::move(field)};
}

void ExpectStatus(const absl::Status& status, const Expected& want) {
  ASSERT_EQ(status.code(), want.code) << status;
  if (want.code == absl::StatusCode::kOk) return;
  EXPECT_EQ(errors::ReasonOf(status), want.reason) << status;
  if (want.field.empty()) {
    EXPECT_THAT(FieldsOf(status), IsEmpty()) << status;
  } else {
    // Exactly one violation, naming the field.
    EXPECT_THAT(FieldsOf(status), ElementsAre(Pair(want.field, _))) << status;
  }
}

// --- ValidateCampaignSpec ---------------------------------------------------

Campaign ValidCampaign() {
  Campaign c;
  c.name = "Spring sale";
  c.channel = Channel::kSms;
  c.sender_id = "+15550100";
  c.body = "Hi {{name}}, use code {{1}}";
  return c;
}

struct CampaignCase {
  std::string name;
  std::function<void(Campaign&)> mutate;
  Expected want;
};

// Names the case in gtest's failure messages.
void PrintTo(const CampaignCase& c, std::ostream* os) { *os << c.name; }

class ValidateCampaignSpecTest : public ::testing::TestWithParam<CampaignCase> {
};

TEST_P(ValidateCampaignSpecTest, Checks) {
  Campaign c = ValidCampaign();
  GetParam().mutate(c);
  ExpectStatus(ValidateCampaignSpec(c), GetParam().want);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ValidateCampaignSpecTest,
    ::testing::Values(
        CampaignCase{"Valid", [](Campaign&) {}, Ok()},
        CampaignCase{"NameMissing", [](Campaign& c) { c.name.clear(); },
                     Invalid("name")},
        // Text no engine can store as given: refused naming the field.
        CampaignCase{"NameWithNul",
                     [](Campaign& c) { c.name = std::string("a\0b", 3); },
                     Invalid("name")},
        CampaignCase{"BodyNotUtf8", [](Campaign& c) { c.body = "caf\xe9"; },
                     Invalid("body")},
        CampaignCase{"TagWithNul",
                     [](Campaign& c) {
                       c.body.clear();
                       c.template_id.clear();
                       c.tags = {std::string("v\0ip", 4)};
                     },
                     Invalid("tags")},
        CampaignCase{"ContactIdWithNul",
                     [](Campaign& c) {
                       c.contact_ids = {std::string("ct_\0", 4)};
                     },
                     Invalid("contact_ids")},
        CampaignCase{"RecipientVariableNotUtf8",
                     [](Campaign& c) {
                       c.tags = {"vip"};
                       c.recipient_variables = {{"ct_1", {{"1", "\xff"}}}};
                     },
                     Invalid("recipient_variables")},
        CampaignCase{"Utf8Accepted",
                     [](Campaign& c) { c.name = "Soldes d\xc3\xa9t\xc3\xa9"; },
                     Ok()},
        CampaignCase{"NameBlank", [](Campaign& c) { c.name = "  \t"; },
                     Invalid("name")},
        CampaignCase{"NameAtLimit",
                     [](Campaign& c) { c.name = std::string(200, 'n'); }, Ok()},
        CampaignCase{"NameTooLong",
                     [](Campaign& c) { c.name = std::string(201, 'n'); },
                     Invalid("name")},
        // Storage infers it from the sender or template.
        CampaignCase{"ChannelMissing",
                     [](Campaign& c) { c.channel = Channel::kUnspecified; },
                     Ok()},
        CampaignCase{"ComponentsWithoutTemplate",
                     [](Campaign& c) {
                       c.template_components = {
                           {"body", "", "", {{"text", "{{1}}", ""}}, "", 0}};
                     },
                     Invalid("template_components")},
        CampaignCase{"ComponentParameterBadPlaceholder",
                     [](Campaign& c) {
                       c.body.clear();
                       c.template_id = "tmpl_1";
                       c.template_components = {
                           {"body", "", "", {{"text", "{{a b}}", ""}}, "", 0}};
                     },
                     Invalid("template_components[0].parameters[0].text")},
        CampaignCase{"RecipientVariablesWithoutContactAudience",
                     [](Campaign& c) {
                       c.recipient_variables = {{"ct_1", {{"1", "Asha"}}}};
                     },
                     Invalid("recipient_variables")},
        CampaignCase{"RecipientVariablesKeyNotAContact",
                     [](Campaign& c) {
                       c.tags = {"vip"};
                       c.recipient_variables = {{"bob", {{"1", "Asha"}}}};
                     },
                     Invalid("recipient_variables")},
        CampaignCase{"RecipientVariablesValueTooLong",
                     [](Campaign& c) {
                       c.tags = {"vip"};
                       c.recipient_variables = {
                           {"ct_1", {{"note", std::string(1001, 'x')}}}};
                     },
                     Invalid("recipient_variables.ct_1.note")},
        CampaignCase{"RecipientVariablesOk",
                     [](Campaign& c) {
                       c.tags = {"vip"};
                       c.recipient_variables = {{"ct_1", {{"1", "Asha"}}}};
                     },
                     Ok()},
        CampaignCase{"ChannelUnknownNumber",
                     [](Campaign& c) { c.channel = static_cast<Channel>(99); },
                     Invalid("channel")},
        CampaignCase{"ChannelNegative",
                     [](Campaign& c) { c.channel = static_cast<Channel>(-1); },
                     Invalid("channel")},
        CampaignCase{"SenderMissing", [](Campaign& c) { c.sender_id.clear(); },
                     Invalid("sender_id")},
        CampaignCase{"SenderBlank", [](Campaign& c) { c.sender_id = " "; },
                     Invalid("sender_id")},
        CampaignCase{"BodyAndTemplate",
                     [](Campaign& c) { c.template_id = "tmpl_1"; },
                     Invalid("template_id")},
        CampaignCase{"TemplateOnly",
                     [](Campaign& c) {
                       c.body.clear();
                       c.template_id = "tmpl_1";
                     },
                     Ok()},
        CampaignCase{"BodyAndTemplateAbsent",
                     [](Campaign& c) { c.body.clear(); },
                     Unprocessable("body")},
        CampaignCase{"BadRequestBeatsAbsentBody",
                     [](Campaign& c) {
                       c.body.clear();
                       c.batch_size = 0;
                     },
                     Invalid("batch_size")},
        CampaignCase{"BodyTooLong",
                     [](Campaign& c) { c.body = std::string(65537, 'b'); },
                     Invalid("body")},
        CampaignCase{"BodyAtLimit",
                     [](Campaign& c) { c.body = std::string(65536, 'b'); },
                     Ok()},
        CampaignCase{"PlaceholderWithSpace",
                     [](Campaign& c) { c.body = "Hi {{a b}}"; },
                     Invalid("body")},
        CampaignCase{"PlaceholderUnclosed",
                     [](Campaign& c) { c.body = "Hi {{name"; },
                     Invalid("body")},
        CampaignCase{"PlaceholderEmpty",
                     [](Campaign& c) { c.body = "Hi {{ }}"; }, Invalid("body")},
        CampaignCase{"PlaceholderPunctuation",
                     [](Campaign& c) { c.body = "Hi {{a!}}"; },
                     Invalid("body")},
        // User text quoted in the description must not break the field
        // payload into several violations.
        CampaignCase{"PlaceholderWithNewline",
                     [](Campaign& c) { c.body = "Hi {{a\nb}}"; },
                     Invalid("body")},
        CampaignCase{
            "PlaceholderAllowedCharacters",
            [](Campaign& c) { c.body = "{{ first_name }} {{1}} {{a.b-c_D9}}"; },
            Ok()},
        CampaignCase{"VariableMappingEmptyKey",
                     [](Campaign& c) { c.variable_mapping[""] = "name"; },
                     Invalid("variable_mapping")},
        CampaignCase{"VariableMappingEmptyValue",
                     [](Campaign& c) { c.variable_mapping["1"] = ""; },
                     Invalid("variable_mapping")},
        CampaignCase{"ListAudience",
                     [](Campaign& c) { c.contact_list_id = "cl_1"; }, Ok()},
        CampaignCase{"TagsAudience", [](Campaign& c) { c.tags = {"vip"}; },
                     Ok()},
        CampaignCase{"ContactsAudience",
                     [](Campaign& c) {
                       c.contact_ids = {"ct_1", "ct_2"};
                     },
                     Ok()},
        CampaignCase{"ListAndTags",
                     [](Campaign& c) {
                       c.contact_list_id = "cl_1";
                       c.tags = {"vip"};
                     },
                     Invalid("contact_list_id")},
        CampaignCase{"TagsAndContacts",
                     [](Campaign& c) {
                       c.tags = {"vip"};
                       c.contact_ids = {"ct_1"};
                     },
                     Invalid("contact_list_id")},
        CampaignCase{"ListAndContacts",
                     [](Campaign& c) {
                       c.contact_list_id = "cl_1";
                       c.contact_ids = {"ct_1"};
                     },
                     Invalid("contact_list_id")},
        CampaignCase{"EmptyTag",
                     [](Campaign& c) {
                       c.tags = {"vip", ""};
                     },
                     Invalid("tags")},
        CampaignCase{"EmptyContactId",
                     [](Campaign& c) { c.contact_ids = {""}; },
                     Invalid("contact_ids")},
        CampaignCase{"BatchSizeZero", [](Campaign& c) { c.batch_size = 0; },
                     Invalid("batch_size")},
        CampaignCase{"BatchSizeOne", [](Campaign& c) { c.batch_size = 1; },
                     Ok()},
        CampaignCase{"BatchSizeMax", [](Campaign& c) { c.batch_size = 10000; },
                     Ok()},
        CampaignCase{"BatchSizeOverMax",
                     [](Campaign& c) { c.batch_size = 10001; },
                     Invalid("batch_size")},
        CampaignCase{"BatchDelayNegative",
                     [](Campaign& c) { c.batch_delay = absl::Seconds(-1); },
                     Invalid("batch_delay")},
        CampaignCase{"BatchDelayDay",
                     [](Campaign& c) { c.batch_delay = absl::Hours(24); },
                     Ok()},
        CampaignCase{
            "BatchDelayOverDay",
            [](Campaign&
                   c) { c.batch_delay = absl::Hours(24) + absl::Seconds(1); },
            Invalid("batch_delay")},
        CampaignCase{"RateNegative",
                     [](Campaign& c) { c.rate_limit_per_second = -1; },
                     Invalid("rate_limit_per_second")},
        CampaignCase{"RatePositive",
                     [](Campaign& c) { c.rate_limit_per_second = 50; }, Ok()},
        CampaignCase{
            "ValidityZero",
            [](Campaign& c) { c.validity_period = absl::ZeroDuration(); },
            Invalid("validity_period")},
        CampaignCase{"ValidityNegative",
                     [](Campaign& c) { c.validity_period = absl::Seconds(-5); },
                     Invalid("validity_period")},
        CampaignCase{"ValidityPositive",
                     [](Campaign& c) { c.validity_period = absl::Hours(1); },
                     Ok()},
        CampaignCase{"MaxLatenessNegative",
                     [](Campaign& c) { c.max_lateness = absl::Seconds(-1); },
                     Invalid("max_lateness")},
        CampaignCase{"MaxLatenessZero",
                     [](Campaign& c) { c.max_lateness = absl::ZeroDuration(); },
                     Ok()}),
    [](const ::testing::TestParamInfo<CampaignCase>& info) {
      return info.param.name;
    });

// Email fields: their shape here; their channel in ValidateEmailFields, once
// storage knows the channel.
INSTANTIATE_TEST_SUITE_P(
    EmailFields, ValidateCampaignSpecTest,
    ::testing::Values(
        CampaignCase{"SubjectWithPlaceholders",
                     [](Campaign& c) { c.subject = "Hi {{name}}, {{1}}"; },
                     Ok()},
        CampaignCase{"SubjectAtLimit",
                     [](Campaign& c) { c.subject = std::string(998, 's'); },
                     Ok()},
        CampaignCase{"SubjectTooLong",
                     [](Campaign& c) { c.subject = std::string(999, 's'); },
                     Invalid("subject")},
        CampaignCase{"SubjectWithLf",
                     [](Campaign& c) { c.subject = "Hi\nBcc: x@example.com"; },
                     Invalid("subject")},
        CampaignCase{"SubjectWithCr",
                     [](Campaign& c) { c.subject = "Hi\rthere"; },
                     Invalid("subject")},
        CampaignCase{"SubjectBlank", [](Campaign& c) { c.subject = " \t "; },
                     Invalid("subject")},
        CampaignCase{"SubjectBadPlaceholder",
                     [](Campaign& c) { c.subject = "Hi {{first name}}"; },
                     Invalid("subject")},
        CampaignCase{"HtmlBodyAtLimit",
                     [](Campaign& c) {
                       c.html_body = std::string(kMaxHtmlBodyLength, 'h');
                     },
                     Ok()},
        CampaignCase{"HtmlBodyTooLong",
                     [](Campaign& c) {
                       c.html_body = std::string(kMaxHtmlBodyLength + 1, 'h');
                     },
                     Invalid("html_body")},
        CampaignCase{"HtmlBodyUnclosedPlaceholder",
                     [](Campaign& c) { c.html_body = "<p>{{name</p>"; },
                     Invalid("html_body")},
        // The 400s come before the 422 of a missing body.
        CampaignCase{"BadSubjectAndNoBody",
                     [](Campaign& c) {
                       c.body.clear();
                       c.subject = "a\nb";
                     },
                     Invalid("subject")}),
    [](const ::testing::TestParamInfo<CampaignCase>& info) {
      return info.param.name;
    });

// --- EffectiveContent and ValidateEmailFields ------------------------------

Campaign EmailCampaign() {
  Campaign c = ValidCampaign();
  c.channel = Channel::kEmail;
  c.sender_id = "news@example.com";
  c.subject = "Spring sale for {{name}}";
  return c;
}

Template EmailTemplate() {
  Template t;
  t.id = "tmpl_mail";
  t.channel = Channel::kEmail;
  t.body = "Hi {{name}}";
  t.subject = "From the template";
  t.html_body = "<p>Hi {{name}}</p>";
  return t;
}

TEST(EffectiveContentTest, TheCampaignsOwnFieldsElseItsTemplates) {
  Campaign c = EmailCampaign();
  MessageContent own = EffectiveContent(c, nullptr);
  EXPECT_EQ(own.text, c.body);
  EXPECT_EQ(own.subject, "Spring sale for {{name}}");
  EXPECT_EQ(own.html, "");

  c.body.clear();
  c.template_id = "tmpl_mail";
  const Template t = EmailTemplate();
  MessageContent mixed = EffectiveContent(c, &t);
  EXPECT_EQ(mixed.text, "Hi {{name}}");
  EXPECT_EQ(mixed.subject, "Spring sale for {{name}}");  // the campaign's
  EXPECT_EQ(mixed.html, "<p>Hi {{name}}</p>");           // the template's

  c.subject.clear();
  c.html_body = "<b>own</b>";
  MessageContent other = EffectiveContent(c, &t);
  EXPECT_EQ(other.subject, "From the template");
  EXPECT_EQ(other.html, "<b>own</b>");
}

TEST(ValidateEmailFieldsTest, AnEmailCampaignNeedsItsOwnOrItsTemplatesSubject) {
  Campaign c = EmailCampaign();
  ExpectStatus(ValidateEmailFields(c, nullptr), Ok());
  c.subject.clear();
  ExpectStatus(ValidateEmailFields(c, nullptr), Unprocessable("subject"));
  EXPECT_EQ(ValidateEmailFields(c, nullptr).message(),
            "subject: is required for an email campaign");

  c.body.clear();
  c.template_id = "tmpl_mail";
  Template t = EmailTemplate();
  ExpectStatus(ValidateEmailFields(c, &t), Ok());
  t.subject.clear();
  const absl::Status none = ValidateEmailFields(c, &t);
  ExpectStatus(none, Unprocessable("subject"));
  EXPECT_EQ(none.message(),
            "subject: is required for an email campaign; neither the campaign "
            "nor its template tmpl_mail has one");
  c.subject = "Own";
  ExpectStatus(ValidateEmailFields(c, &t), Ok());
}

TEST(ValidateEmailFieldsTest, OtherChannelsRefuseSubjectAndHtmlBody) {
  Campaign c = ValidCampaign();  // sms
  ExpectStatus(ValidateEmailFields(c, nullptr), Ok());
  c.subject = "Hello";
  ExpectStatus(ValidateEmailFields(c, nullptr), Unprocessable("subject"));
  EXPECT_EQ(ValidateEmailFields(c, nullptr).message(),
            "subject: only email campaigns have a subject; this campaign is "
            "for sms");
  c.subject.clear();
  c.html_body = "<p>Hi</p>";
  c.channel = Channel::kTelegram;
  ExpectStatus(ValidateEmailFields(c, nullptr), Unprocessable("html_body"));
}

// --- ValidateTemplate -------------------------------------------------------

Template ValidTemplate() {
  Template t;
  t.name = "welcome";
  t.language = "en_US";
  t.channel = Channel::kWhatsapp;
  t.body = "Hello {{1}}";
  return t;
}

struct TemplateCase {
  std::string name;
  std::function<void(Template&)> mutate;
  Expected want;
};

// Names the case in gtest's failure messages.
void PrintTo(const TemplateCase& c, std::ostream* os) { *os << c.name; }

class ValidateTemplateTest : public ::testing::TestWithParam<TemplateCase> {};

TEST_P(ValidateTemplateTest, Checks) {
  Template t = ValidTemplate();
  GetParam().mutate(t);
  ExpectStatus(ValidateTemplate(t), GetParam().want);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ValidateTemplateTest,
    ::testing::Values(
        TemplateCase{"Valid", [](Template&) {}, Ok()},
        TemplateCase{"NameMissing", [](Template& t) { t.name.clear(); },
                     Invalid("name")},
        TemplateCase{"NameTooLong",
                     [](Template& t) { t.name = std::string(201, 'x'); },
                     Invalid("name")},
        TemplateCase{"ChannelMissing",
                     [](Template& t) { t.channel = Channel::kUnspecified; },
                     Invalid("channel")},
        TemplateCase{"ChannelUnknown",
                     [](Template& t) { t.channel = static_cast<Channel>(7); },
                     Invalid("channel")},
        TemplateCase{"LanguageMissing", [](Template& t) { t.language.clear(); },
                     Invalid("language")},
        TemplateCase{"LanguageTooLong",
                     [](Template& t) { t.language = std::string(17, 'e'); },
                     Invalid("language")},
        TemplateCase{"NoBodyNoComponents", [](Template& t) { t.body.clear(); },
                     Invalid("body")},
        TemplateCase{"ComponentsOnly",
                     [](Template& t) {
                       t.body.clear();
                       t.components = {{"BODY", "", "Hi {{1}}", {}, "", 0}};
                     },
                     Ok()},
        TemplateCase{"BodyTooLong",
                     [](Template& t) { t.body = std::string(65537, 'b'); },
                     Invalid("body")},
        TemplateCase{"BodyBadPlaceholder",
                     [](Template& t) { t.body = "Hi {{a b}}"; },
                     Invalid("body")},
        TemplateCase{"ComponentTypeMissing",
                     [](Template& t) {
                       t.components = {{"", "", "x", {}, "", 0}};
                     },
                     Invalid("components[0].type")},
        TemplateCase{"ComponentTextUnclosed",
                     [](Template& t) {
                       t.components = {{"HEADER", "", "ok", {}, "", 0},
                                       {"BODY", "", "Hi {{1", {}, "", 0}};
                     },
                     Invalid("components[1].text")},
        TemplateCase{"ComponentParameterBad",
                     [](Template& t) {
                       t.components = {
                           {"BODY", "", "x", {{"text", "ok {{1}}", ""}}, "", 0},
                           {"BUTTONS", "", "y", {{"text", "{{}}", ""}}, "", 0}};
                     },
                     Invalid("components[1].parameters[0].text")}),
    [](const ::testing::TestParamInfo<TemplateCase>& info) {
      return info.param.name;
    });

INSTANTIATE_TEST_SUITE_P(
    EmailFields, ValidateTemplateTest,
    ::testing::Values(
        TemplateCase{"EmailWithSubjectAndHtml",
                     [](Template& t) {
                       t.channel = Channel::kEmail;
                       t.subject = "Welcome, {{name}}";
                       t.html_body = "<h1>Hi {{name}}</h1>";
                     },
                     Ok()},
        // A campaign may bring its own subject.
        TemplateCase{"EmailWithoutSubject",
                     [](Template& t) { t.channel = Channel::kEmail; }, Ok()},
        TemplateCase{"SubjectOnWhatsapp",
                     [](Template& t) { t.subject = "Welcome"; },
                     Unprocessable("subject")},
        TemplateCase{"HtmlBodyOnWhatsapp",
                     [](Template& t) { t.html_body = "<p>Hi</p>"; },
                     Unprocessable("html_body")},
        TemplateCase{"SubjectWithCrLf",
                     [](Template& t) {
                       t.channel = Channel::kEmail;
                       t.subject = "Welcome\r\nX-Spam: no";
                     },
                     Invalid("subject")},
        // A malformed subject is a 400 on any channel.
        TemplateCase{"SubjectTooLongOnWhatsapp",
                     [](Template& t) { t.subject = std::string(999, 's'); },
                     Invalid("subject")},
        TemplateCase{"HtmlBodyTooLong",
                     [](Template& t) {
                       t.channel = Channel::kEmail;
                       t.html_body = std::string(kMaxHtmlBodyLength + 1, 'h');
                     },
                     Invalid("html_body")},
        TemplateCase{"HtmlBodyBadPlaceholder",
                     [](Template& t) {
                       t.channel = Channel::kEmail;
                       t.html_body = "<p>{{a/b}}</p>";
                     },
                     Invalid("html_body")}),
    [](const ::testing::TestParamInfo<TemplateCase>& info) {
      return info.param.name;
    });

// --- ValidateSender ---------------------------------------------------------

Sender ValidSender() {
  Sender s;
  s.sender_id = "ACME";
  s.channel = Channel::kSms;
  s.tier = SenderTier::kTier10k;
  s.provider = "simulator";
  return s;
}

struct SenderCase {
  std::string name;
  std::function<void(Sender&)> mutate;
  Expected want;
};

// Names the case in gtest's failure messages.
void PrintTo(const SenderCase& c, std::ostream* os) { *os << c.name; }

class ValidateSenderTest : public ::testing::TestWithParam<SenderCase> {};

TEST_P(ValidateSenderTest, Checks) {
  Sender s = ValidSender();
  GetParam().mutate(s);
  ExpectStatus(ValidateSender(s), GetParam().want);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ValidateSenderTest,
    ::testing::Values(
        SenderCase{"Valid", [](Sender&) {}, Ok()},
        SenderCase{"SenderIdMissing", [](Sender& s) { s.sender_id.clear(); },
                   Invalid("sender_id")},
        SenderCase{"SenderIdBlank", [](Sender& s) { s.sender_id = "  "; },
                   Invalid("sender_id")},
        SenderCase{"SenderIdTooLong",
                   [](Sender& s) { s.sender_id = std::string(321, 's'); },
                   Invalid("sender_id")},
        SenderCase{"ChannelMissing",
                   [](Sender& s) { s.channel = Channel::kUnspecified; },
                   Invalid("channel")},
        SenderCase{"ChannelUnknown",
                   [](Sender& s) { s.channel = static_cast<Channel>(99); },
                   Invalid("channel")},
        SenderCase{"TierMissing",
                   [](Sender& s) { s.tier = SenderTier::kUnspecified; },
                   Invalid("tier")},
        SenderCase{"TierUnknown",
                   [](Sender& s) { s.tier = static_cast<SenderTier>(5); },
                   Invalid("tier")},
        SenderCase{"Unlimited",
                   [](Sender& s) { s.tier = SenderTier::kUnlimited; }, Ok()},
        SenderCase{"ProviderMissing", [](Sender& s) { s.provider.clear(); },
                   Invalid("provider")}),
    [](const ::testing::TestParamInfo<SenderCase>& info) {
      return info.param.name;
    });

// --- Placeholders -----------------------------------------------------------

struct PlaceholderCase {
  std::string text;
  std::vector<std::string> want;
};

// Names the case in gtest's failure messages.
void PrintTo(const PlaceholderCase& c, std::ostream* os) {
  *os << "\"" << c.text << "\"";
}

class ExtractPlaceholdersTest
    : public ::testing::TestWithParam<PlaceholderCase> {};

TEST_P(ExtractPlaceholdersTest, Extracts) {
  EXPECT_EQ(ExtractPlaceholders(GetParam().text), GetParam().want)
      << GetParam().text;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ExtractPlaceholdersTest,
    ::testing::Values(
        PlaceholderCase{"", {}}, PlaceholderCase{"no placeholders", {}},
        PlaceholderCase{"{{1}}", {"1"}},
        // Order of first appearance, duplicates dropped.
        PlaceholderCase{"{{b}} {{a}} {{b}} {{1}} {{a}}", {"b", "a", "1"}},
        // Surrounding whitespace is not part of the name, so these dedupe.
        PlaceholderCase{"Hi {{ name }}, {{name}} {{\tname\t}}", {"name"}},
        PlaceholderCase{"{{1}}{{2}}", {"1", "2"}},
        PlaceholderCase{"{{}} {{  }} {{x}}", {"x"}},
        PlaceholderCase{"{{a}} and unclosed {{b", {"a"}},
        PlaceholderCase{"single { braces } {x}", {}}));

TEST(TemplatePlaceholdersTest, CollectsBodyComponentsAndParameters) {
  Template t;
  t.body = "Hi {{name}} {{1}}";
  t.components = {
      {"HEADER", "TEXT", "{{ title }} for {{name}}", {}, "", 0},
      {"BODY",
       "",
       "",
       {{"text", "{{2}} {{1}}", ""}, {"text", "{{code}}", ""}},
       "",
       0},
  };
  EXPECT_THAT(TemplatePlaceholders(t),
              ElementsAre("name", "1", "title", "2", "code"));
}

TEST(TemplatePlaceholdersTest, IncludesTheSubjectAndHtmlBody) {
  Template t;
  t.channel = Channel::kEmail;
  t.body = "Hi {{name}}";
  t.subject = "{{ name }}, your {{order}}";
  t.html_body = "<p>{{order}} ships to {{city}}</p>";
  EXPECT_THAT(TemplatePlaceholders(t), ElementsAre("name", "order", "city"));
}

TEST(TemplatePlaceholdersTest, EmptyTemplateHasNone) {
  EXPECT_THAT(TemplatePlaceholders(Template{}), IsEmpty());
}

// --- Paging -----------------------------------------------------------------

struct PageCase {
  std::string name;
  int32_t page;
  int32_t limit;
  std::string token;
  Expected want;
  int32_t want_page = 0;
  int32_t want_limit = 0;
};

// Names the case in gtest's failure messages.
void PrintTo(const PageCase& c, std::ostream* os) { *os << c.name; }

class MakePageRequestTest : public ::testing::TestWithParam<PageCase> {};

TEST_P(MakePageRequestTest, Makes) {
  const PageCase& c = GetParam();
  absl::StatusOr<PageRequest> req =
      MakePageRequest(c.page, c.limit, c.token, "query-a");
  ExpectStatus(req.status(), c.want);
  if (req.ok()) {
    EXPECT_EQ(req->page, c.want_page);
    EXPECT_EQ(req->limit, c.want_limit);
  }
}

std::string Token(const std::string& raw) {
  return absl::WebSafeBase64Escape(raw);
}

// The token for the page after `page` (limit `limit`) of `query`.
std::string TokenAfter(int32_t page, int32_t limit,
                       const std::string& query = "query-a",
                       int64_t last_key = 0) {
  PageRequest req;
  req.page = page;
  req.limit = limit;
  return EncodePageToken(req, query, last_key);
}

// A valid token with its decoded text changed by `edit`.
std::string Tampered(const std::string& token,
                     const std::function<void(std::string&)>& edit) {
  std::string raw;
  EXPECT_TRUE(absl::WebSafeBase64Unescape(token, &raw));
  edit(raw);
  return absl::WebSafeBase64Escape(raw);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MakePageRequestTest,
    ::testing::Values(
        PageCase{"Defaults", 0, 0, "", Ok(), 1, 20},
        PageCase{"Explicit", 3, 50, "", Ok(), 3, 50},
        PageCase{"MaxLimit", 1, 100, "", Ok(), 1, 100},
        PageCase{"LimitOne", 0, 1, "", Ok(), 1, 1},
        PageCase{"LimitOverMax", 0, 101, "", Invalid("limit")},
        PageCase{"LimitNegative", 0, -1, "", Invalid("limit")},
        PageCase{"PageNegative", -1, 0, "", Invalid("page")},
        PageCase{"TokenOverridesPage", 7, 10, TokenAfter(3, 10), Ok(), 4, 10},
        PageCase{"TokenGivesItsLimit", 0, 0, TokenAfter(3, 10), Ok(), 4, 10},
        PageCase{"TokenOfAnotherLimit", 0, 20, TokenAfter(3, 10),
                 Invalid("page_token")},
        PageCase{"TokenOfAnotherQuery", 0, 0, TokenAfter(3, 10, "query-b"),
                 Invalid("page_token")},
        PageCase{
            "TokenPageChanged", 0, 0,
            Tampered(TokenAfter(3, 10), [](std::string& raw) { raw[3] = '9'; }),
            Invalid("page_token")},
        PageCase{"TokenCheckChanged", 0, 0,
                 Tampered(TokenAfter(3, 10),
                          [](std::string& raw) {
                            raw.back() = raw.back() == '0' ? '1' : '0';
                          }),
                 Invalid("page_token")},
        PageCase{"TokenCheckCut", 0, 0,
                 Tampered(TokenAfter(3, 10),
                          [](std::string& raw) { raw.pop_back(); }),
                 Invalid("page_token")},
        PageCase{"TokenNotBase64", 0, 0, "!!not base64!!",
                 Invalid("page_token")},
        PageCase{"OldPageToken", 0, 0, Token("p1:4"), Invalid("page_token")},
        PageCase{"OldKeysetToken", 0, 0, Token("k1:4:99"),
                 Invalid("page_token")},
        PageCase{"TokenGarbage", 0, 0, Token("garbage"),
                 Invalid("page_token")}),
    [](const ::testing::TestParamInfo<PageCase>& info) {
      return info.param.name;
    });

TEST(PageTokenTest, RoundTripGivesNextPage) {
  PageRequest first;
  first.page = 1;
  first.limit = 25;
  std::string token = EncodePageToken(first, "q");
  EXPECT_FALSE(token.empty());
  absl::StatusOr<PageRequest> next = MakePageRequest(0, 25, token, "q");
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->page, 2);
  EXPECT_EQ(next->limit, 25);
  EXPECT_EQ(next->offset(), 25);
  EXPECT_EQ(next->after_key, 0);

  absl::StatusOr<PageRequest> third =
      MakePageRequest(0, 25, EncodePageToken(*next, "q"), "q");
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->page, 3);
  EXPECT_EQ(third->offset(), 50);
}

TEST(PageTokenTest, KeysetTokenRoundTrips) {
  absl::StatusOr<PageRequest> next =
      MakePageRequest(0, 0, TokenAfter(2, 100, "q", 12345), "q");
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->page, 3);
  EXPECT_EQ(next->limit, 100);
  EXPECT_EQ(next->after_key, 12345);
}

// Every single-byte change of a token's text is refused.
TEST(PageTokenTest, AnyFlippedByteIsRefused) {
  const std::string token = TokenAfter(3, 10, "q", 777);
  std::string raw;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(token, &raw));
  for (size_t i = 0; i < raw.size(); ++i) {
    std::string changed = raw;
    changed[i] ^= 0x01;
    absl::StatusOr<PageRequest> req =
        MakePageRequest(0, 0, absl::WebSafeBase64Escape(changed), "q");
    EXPECT_FALSE(req.ok()) << "byte " << i << ": " << changed;
  }
}

TEST(PageTokenTest, TokenIsUrlSafe) {
  PageRequest req;
  req.page = 123456;
  EXPECT_THAT(EncodePageToken(req, "q", 99),
              ::testing::MatchesRegex("[A-Za-z0-9_-]+"));
}

TEST(PageRequestTest, Offset) {
  PageRequest req;
  EXPECT_EQ(req.offset(), 0);
  req.page = 4;
  req.limit = 20;
  EXPECT_EQ(req.offset(), 60);
  req.page = 2147483647;
  req.limit = 100;
  EXPECT_EQ(req.offset(), int64_t{2147483646} * 100);
}

TEST(MakePageTest, HasMoreFromTotal) {
  PageRequest req;
  req.page = 1;
  req.limit = 2;
  Page<int> page = MakePage<int>({1, 2}, 5, req);
  EXPECT_THAT(page.items, ElementsAre(1, 2));
  EXPECT_EQ(page.total, 5);
  EXPECT_EQ(page.page, 1);
  EXPECT_EQ(page.limit, 2);
  EXPECT_TRUE(page.has_more);

  req.page = 3;
  page = MakePage<int>({5}, 5, req);
  EXPECT_FALSE(page.has_more);
  EXPECT_EQ(page.page, 3);

  req.page = 2;
  page = MakePage<int>({3, 4}, 4, req);
  EXPECT_FALSE(page.has_more);

  req.page = 9;
  page = MakePage<int>({}, 4, req);
  EXPECT_FALSE(page.has_more);
  EXPECT_THAT(page.items, IsEmpty());
}

// --- States -----------------------------------------------------------------

TEST(StatesTest, EditableAndFinal) {
  using S = CampaignStatus;
  struct Row {
    S status;
    bool editable;
    bool final;
  };
  const Row kRows[] = {
      {S::kDraft, true, false},     {S::kScheduled, true, false},
      {S::kSending, false, false},  {S::kPaused, false, false},
      {S::kSent, false, false},     {S::kCompleted, false, true},
      {S::kCancelled, false, true}, {S::kFailed, false, true},
  };
  for (const Row& r : kRows) {
    EXPECT_EQ(IsEditable(r.status), r.editable) << CampaignStatusName(r.status);
    EXPECT_EQ(IsFinal(r.status), r.final) << CampaignStatusName(r.status);
  }
}

// --- Lifecycle: API.md's table ----------------------------------------------

using S = CampaignStatus;
using E = CampaignEvent;

constexpr E kEvents[] = {E::kStart,    E::kScheduleAlarm, E::kPause,
                         E::kResume,   E::kCancel,        E::kAllDispatched,
                         E::kAllFinal, E::kFatal};
constexpr S kStates[] = {S::kDraft, S::kScheduled, S::kSending,   S::kPaused,
                         S::kSent,  S::kCompleted, S::kCancelled, S::kFailed};

const char* EventName(E e) {
  switch (e) {
    case E::kStart:
      return "start";
    case E::kScheduleAlarm:
      return "alarm";
    case E::kPause:
      return "pause";
    case E::kResume:
      return "resume";
    case E::kCancel:
      return "cancel";
    case E::kAllDispatched:
      return "all_dispatched";
    case E::kAllFinal:
      return "all_final";
    case E::kFatal:
      return "fatal";
  }
  return "unknown";
}

// Where schedule_at lies relative to now.
enum class When { kUnset, kPast, kFuture };

const char* WhenName(When w) {
  switch (w) {
    case When::kUnset:
      return "unscheduled";
    case When::kPast:
      return "past";
    case When::kFuture:
      return "future";
  }
  return "unknown";
}

// API.md's table; nullopt = ✗ (FAILED_PRECONDITION / ILLEGAL_TRANSITION).
// Blank cells (events that cannot happen in a state) are ✗ too.
std::optional<S> Expect(S from, E event, When when) {
  const bool future = when == When::kFuture;
  switch (from) {
    case S::kDraft:
      if (event == E::kStart) return future ? S::kScheduled : S::kSending;
      if (event == E::kCancel) return S::kCancelled;
      return std::nullopt;
    case S::kScheduled:
      if (event == E::kScheduleAlarm) return S::kSending;
      if (event == E::kPause) return S::kPaused;
      if (event == E::kCancel) return S::kCancelled;
      return std::nullopt;
    case S::kSending:
      if (event == E::kPause) return S::kPaused;
      if (event == E::kCancel) return S::kCancelled;
      if (event == E::kAllDispatched) return S::kSent;
      if (event == E::kFatal) return S::kFailed;
      return std::nullopt;
    case S::kPaused:
      if (event == E::kPause) return S::kPaused;  // idempotent
      if (event == E::kResume) return future ? S::kScheduled : S::kSending;
      if (event == E::kCancel) return S::kCancelled;
      return std::nullopt;
    case S::kSent:
      if (event == E::kAllFinal) return S::kCompleted;
      return std::nullopt;
    default:  // completed, cancelled, failed
      return std::nullopt;
  }
}

struct LifecycleCase {
  S from;
  E event;
  When when;
  std::optional<S> want;
};

// Names the case in gtest's failure messages.
void PrintTo(const LifecycleCase& c, std::ostream* os) {
  *os << CampaignStatusName(c.from) << " + " << EventName(c.event) << " ("
      << WhenName(c.when) << ")";
}

std::vector<LifecycleCase> AllLifecycleCases() {
  std::vector<LifecycleCase> cases;
  for (S from : kStates) {
    for (E event : kEvents) {
      for (When when : {When::kUnset, When::kPast, When::kFuture}) {
        cases.push_back({from, event, when, Expect(from, event, when)});
      }
    }
  }
  return cases;
}

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

std::optional<absl::Time> ScheduleAt(When when) {
  switch (when) {
    case When::kUnset:
      return std::nullopt;
    case When::kPast:
      return kNow - absl::Minutes(1);
    case When::kFuture:
      return kNow + absl::Hours(1);
  }
  return std::nullopt;
}

class LifecycleTest : public ::testing::TestWithParam<LifecycleCase> {};

TEST_P(LifecycleTest, FollowsApiTable) {
  const LifecycleCase& c = GetParam();
  absl::StatusOr<S> next =
      NextStatus(c.from, c.event, kNow, ScheduleAt(c.when), std::nullopt);
  if (c.want.has_value()) {
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_EQ(CampaignStatusName(*next), CampaignStatusName(*c.want));
  } else {
    ASSERT_FALSE(next.ok()) << "got " << CampaignStatusName(*next);
    EXPECT_EQ(next.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(errors::ReasonOf(next.status()), "ILLEGAL_TRANSITION");
  }
}

INSTANTIATE_TEST_SUITE_P(
    ApiTable, LifecycleTest, ::testing::ValuesIn(AllLifecycleCases()),
    [](const ::testing::TestParamInfo<LifecycleCase>& info) {
      return absl::StrCat(CampaignStatusName(info.param.from), "_",
                          EventName(info.param.event), "_",
                          WhenName(info.param.when));
    });

TEST(LifecycleEdgeTest, TableCoversEveryStateAndEvent) {
  EXPECT_EQ(AllLifecycleCases().size(), 8u * 8u * 3u);
}

TEST(LifecycleEdgeTest, StartExactlyAtScheduleSendsNow) {
  absl::StatusOr<S> next =
      NextStatus(S::kDraft, E::kStart, kNow, kNow, std::nullopt);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(*next, S::kSending);
}

struct LatenessCase {
  std::string name;
  absl::Duration late_by;  // now - schedule_at
  std::optional<absl::Duration> max_lateness;
  S want;
};

// Names the case in gtest's failure messages.
void PrintTo(const LatenessCase& c, std::ostream* os) { *os << c.name; }

class ScheduleAlarmLatenessTest
    : public ::testing::TestWithParam<LatenessCase> {};

TEST_P(ScheduleAlarmLatenessTest, SendsOrFails) {
  const LatenessCase& c = GetParam();
  absl::StatusOr<S> next = NextStatus(S::kScheduled, E::kScheduleAlarm, kNow,
                                      kNow - c.late_by, c.max_lateness);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(CampaignStatusName(*next), CampaignStatusName(c.want));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ScheduleAlarmLatenessTest,
    ::testing::Values(LatenessCase{"OnTime", absl::ZeroDuration(),
                                   absl::Minutes(5), S::kSending},
                      LatenessCase{"WithinLateness", absl::Minutes(4),
                                   absl::Minutes(5), S::kSending},
                      LatenessCase{"AtLateness", absl::Minutes(5),
                                   absl::Minutes(5), S::kSending},
                      LatenessCase{"PastLateness",
                                   absl::Minutes(5) + absl::Seconds(1),
                                   absl::Minutes(5), S::kFailed},
                      LatenessCase{"ZeroLatenessLate", absl::Seconds(1),
                                   absl::ZeroDuration(), S::kFailed},
                      LatenessCase{"NoLatenessLimit", absl::Hours(48),
                                   std::nullopt, S::kSending}),
    [](const ::testing::TestParamInfo<LatenessCase>& info) {
      return info.param.name;
    });

TEST(LifecycleEdgeTest, MaxLatenessOnlyMattersForTheAlarm) {
  // A paused campaign resumed long after schedule_at sends; lateness is the
  // alarm's rule only.
  absl::StatusOr<S> next = NextStatus(S::kPaused, E::kResume, kNow,
                                      kNow - absl::Hours(5), absl::Minutes(1));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(*next, S::kSending);
}

}  // namespace
}  // namespace campaigns
