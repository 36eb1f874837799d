// Validation and lifecycle rules that need no storage.
#include "server/domain/rules.h"

#include <algorithm>
#include <initializer_list>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
#include "server/domain/utf8.h"

namespace campaigns {
namespace {

// Page tokens are "p2:<page>:<limit>:<after_key>:<check>", URL-safe base64.
// Earlier prefixes ("p1:", "k1:") were not bound to their query and are
// refused.
constexpr absl::string_view kPageTokenPrefix = "p2:";
constexpr size_t kPageTokenCheckLength = 32;  // hex digits: 128 bits

// The check of a page token: an unkeyed digest over (query, cursor). It
// binds the token to the query that issued it and refuses a token altered
// in transit or by hand. It is not a secret (a keyed MAC would need a key
// kept across restarts, or tokens would break at each one): a caller who
// computes a check for a cursor of their choosing reaches only what the
// query returns to them anyway, since every listing is scoped to the
// caller's account.
std::string PageTokenCheck(absl::string_view query, absl::string_view cursor) {
  Sha256Hasher hasher;
  hasher.UpdateField(query);
  hasher.UpdateField(cursor);
  return hasher.HexDigest().substr(0, kPageTokenCheckLength);
}

bool IsValidEnum(int value, int max) { return value > 0 && value <= max; }

}  // namespace

absl::Status CheckIdLength(absl::string_view field, absl::string_view id) {
  if (id.size() > kMaxIdLength) {
    return errors::InvalidField(
        field, absl::StrCat("must be at most ", kMaxIdLength, " bytes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<PageRequest> MakePageRequest(int32_t page, int32_t limit,
                                            const std::string& page_token,
                                            absl::string_view query) {
  PageRequest req;
  if (limit < 0) return errors::InvalidField("limit", "must not be negative");
  if (limit > kMaxPageLimit) {
    return errors::InvalidField(
        "limit", absl::StrCat("must be at most ", kMaxPageLimit));
  }
  if (page < 0) return errors::InvalidField("page", "must not be negative");
  req.limit = limit == 0 ? kDefaultPageLimit : limit;
  req.page = page == 0 ? 1 : page;
  if (!page_token.empty()) {
    const absl::Status invalid =
        errors::InvalidField("page_token",
                             "is not a page token of this query (a token is "
                             "valid only for the listing and filters that "
                             "returned it)");
    std::string decoded;
    if (!absl::WebSafeBase64Unescape(page_token, &decoded)) return invalid;
    absl::string_view body(decoded);
    const size_t colon = body.rfind(':');
    if (!absl::StartsWith(body, kPageTokenPrefix) ||
        colon == absl::string_view::npos ||
        body.substr(colon + 1) !=
            PageTokenCheck(query, body.substr(0, colon))) {
      return invalid;
    }
    // "<page>:<limit>:<after_key>", checked above: malformed only if issued
    // so, but parsed with care all the same.
    std::vector<absl::string_view> parts = absl::StrSplit(
        body.substr(kPageTokenPrefix.size(), colon - kPageTokenPrefix.size()),
        ':');
    int32_t token_page = 0;
    int32_t token_limit = 0;
    int64_t key = 0;
    if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &token_page) ||
        token_page < 1 || !absl::SimpleAtoi(parts[1], &token_limit) ||
        token_limit < 1 || token_limit > kMaxPageLimit ||
        !absl::SimpleAtoi(parts[2], &key) || key < 0) {
      return invalid;
    }
    if (limit != 0 && limit != token_limit) {
      return errors::InvalidField(
          "page_token", absl::StrCat("was issued for limit ", token_limit,
                                     "; send that limit or none"));
    }
    req.page = token_page;
    req.limit = token_limit;
    req.after_key = key;
  }
  if (req.offset() > int64_t{1} << 40) {
    return errors::InvalidField("page", "is too large");
  }
  return req;
}

std::string EncodePageToken(const PageRequest& page, absl::string_view query,
                            int64_t last_key) {
  const std::string cursor = absl::StrCat(kPageTokenPrefix, page.page + 1, ":",
                                          page.limit, ":", last_key);
  return absl::WebSafeBase64Escape(
      absl::StrCat(cursor, ":", PageTokenCheck(query, cursor)));
}

std::vector<std::string> ExtractPlaceholders(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = text.find("{{", pos)) != std::string::npos) {
    size_t end = text.find("}}", pos + 2);
    if (end == std::string::npos) break;
    std::string name(
        absl::StripAsciiWhitespace(text.substr(pos + 2, end - pos - 2)));
    if (!name.empty() && std::find(out.begin(), out.end(), name) == out.end()) {
      out.push_back(std::move(name));
    }
    pos = end + 2;
  }
  return out;
}

std::vector<std::string> TemplatePlaceholders(const Template& t) {
  std::vector<std::string> out = ExtractPlaceholders(t.body);
  auto add = [&out](const std::string& text) {
    for (std::string& p : ExtractPlaceholders(text)) {
      if (std::find(out.begin(), out.end(), p) == out.end()) {
        out.push_back(std::move(p));
      }
    }
  };
  add(t.subject);
  add(t.html_body);
  for (const TemplateComponent& c : t.components) {
    add(c.text);
    for (const TemplateParameter& p : c.parameters) add(p.text);
  }
  return out;
}

namespace {

// Placeholder names: digits, or letters/digits/underscore/dot/hyphen.
absl::Status CheckPlaceholders(absl::string_view field,
                               const std::string& text) {
  size_t pos = 0;
  while ((pos = text.find("{{", pos)) != std::string::npos) {
    size_t end = text.find("}}", pos + 2);
    if (end == std::string::npos) {
      return errors::InvalidField(field, "has an unclosed {{ placeholder");
    }
    absl::string_view name = absl::StripAsciiWhitespace(
        absl::string_view(text).substr(pos + 2, end - pos - 2));
    if (name.empty()) {
      return errors::InvalidField(field, "has an empty {{}} placeholder");
    }
    for (char ch : name) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(ch)) && ch != '_' &&
          ch != '.' && ch != '-') {
        return errors::InvalidField(
            field, absl::StrCat("placeholder {{", errors::Quote(name),
                                "}} may contain only letters, digits, _ . -"));
      }
    }
    pos = end + 2;
  }
  return absl::OkStatus();
}

// Text every engine stores as given: valid UTF-8 without U+0000 (which
// PostgreSQL's text cannot hold, and C strings end at).
absl::Status CheckStoredText(absl::string_view field, absl::string_view text) {
  if (text.find('\0') != absl::string_view::npos) {
    return errors::InvalidField(field, "must not contain U+0000 (NUL)");
  }
  if (!IsValidUtf8(text)) {
    return errors::InvalidField(field, "is not valid UTF-8");
  }
  return absl::OkStatus();
}

// CheckStoredText over every text a campaign's owner gives it.
absl::Status CheckCampaignText(const Campaign& c) {
  for (const auto& [field, text] :
       std::initializer_list<std::pair<absl::string_view, absl::string_view>>{
           {"name", c.name},
           {"sender_id", c.sender_id},
           {"body", c.body},
           {"subject", c.subject},
           {"html_body", c.html_body},
           {"template_id", c.template_id},
           {"contact_list_id", c.contact_list_id}}) {
    RETURN_IF_ERROR(CheckStoredText(field, text));
  }
  for (const std::string& tag : c.tags) {
    RETURN_IF_ERROR(CheckStoredText("tags", tag));
  }
  for (const std::string& id : c.contact_ids) {
    RETURN_IF_ERROR(CheckStoredText("contact_ids", id));
  }
  for (const auto& [key, value] : c.variable_mapping) {
    RETURN_IF_ERROR(CheckStoredText("variable_mapping", key));
    RETURN_IF_ERROR(CheckStoredText("variable_mapping", value));
  }
  for (const auto& [contact, vars] : c.recipient_variables) {
    RETURN_IF_ERROR(CheckStoredText("recipient_variables", contact));
    for (const auto& [key, value] : vars) {
      RETURN_IF_ERROR(CheckStoredText("recipient_variables", key));
      RETURN_IF_ERROR(CheckStoredText("recipient_variables", value));
    }
  }
  for (const TemplateComponent& component : c.template_components) {
    for (absl::string_view text : {absl::string_view(component.type),
                                   absl::string_view(component.format),
                                   absl::string_view(component.text),
                                   absl::string_view(component.sub_type)}) {
      RETURN_IF_ERROR(CheckStoredText("template_components", text));
    }
    for (const TemplateParameter& parameter : component.parameters) {
      for (absl::string_view text : {absl::string_view(parameter.type),
                                     absl::string_view(parameter.text),
                                     absl::string_view(parameter.payload)}) {
        RETURN_IF_ERROR(CheckStoredText("template_components", text));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckName(absl::string_view field, const std::string& name) {
  if (absl::StripAsciiWhitespace(name).empty()) {
    return errors::InvalidField(field, "is required");
  }
  if (name.size() > kMaxNameLength) {
    return errors::InvalidField(
        field, absl::StrCat("must be at most ", kMaxNameLength, " bytes"));
  }
  return absl::OkStatus();
}

// Shape of template components (a template's or a campaign's), `base`
// naming the list ("components", "template_components").
absl::Status CheckComponents(absl::string_view base,
                             const std::vector<TemplateComponent>& components) {
  if (components.size() > kMaxComponents) {
    return errors::InvalidField(
        base, absl::StrCat("must have at most ", kMaxComponents, " entries"));
  }
  for (size_t i = 0; i < components.size(); ++i) {
    const TemplateComponent& c = components[i];
    std::string at = absl::StrCat(base, "[", i, "]");
    if (c.type.empty()) {
      return errors::InvalidField(absl::StrCat(at, ".type"), "is required");
    }
    RETURN_IF_ERROR(CheckPlaceholders(absl::StrCat(at, ".text"), c.text));
    if (c.parameters.size() > kMaxListEntries) {
      return errors::InvalidField(absl::StrCat(at, ".parameters"),
                                  "has too many entries");
    }
    if (c.index < 0) {
      return errors::InvalidField(absl::StrCat(at, ".index"),
                                  "must not be negative");
    }
    for (size_t j = 0; j < c.parameters.size(); ++j) {
      RETURN_IF_ERROR(CheckPlaceholders(
          absl::StrCat(at, ".parameters[", j, "].text"), c.parameters[j].text));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckRecipientVariables(const Campaign& c) {
  if (c.recipient_variables.empty()) return absl::OkStatus();
  if (c.contact_list_id.empty() && c.tags.empty() && c.contact_ids.empty()) {
    return errors::InvalidField(
        "recipient_variables",
        "apply to a contact audience only (contact_list_id, tags or "
        "contact_ids)");
  }
  if (c.recipient_variables.size() > kMaxRecipientVariables) {
    return errors::InvalidField(
        "recipient_variables",
        absl::StrCat("must have at most ", kMaxRecipientVariables,
                     " contacts"));
  }
  for (const auto& [contact, vars] : c.recipient_variables) {
    const std::string field = absl::StrCat("recipient_variables.", contact);
    if (!absl::StartsWith(contact, kContactPrefix) ||
        contact.size() > kMaxIdLength) {
      return errors::InvalidField(
          "recipient_variables",
          absl::StrCat("keys must be contact ids (ct_...), not ",
                       errors::Quote(contact)));
    }
    if (vars.size() > kMaxListEntries) {
      return errors::InvalidField(field, "has too many variables");
    }
    for (const auto& [key, value] : vars) {
      if (key.empty() || key.size() > kMaxShortText) {
        return errors::InvalidField(
            field, absl::StrCat("variable names must be 1 to ", kMaxShortText,
                                " bytes"));
      }
      if (value.size() > kMaxAttributeValueLength) {
        return errors::InvalidField(
            absl::StrCat(field, ".", key),
            absl::StrCat("must be at most ", kMaxAttributeValueLength,
                         " bytes"));
      }
    }
  }
  return absl::OkStatus();
}

// Shape of an email subject (a template's or a campaign's; "" = none): one
// header line, not blank, with well-formed placeholders.
absl::Status CheckSubject(const std::string& subject) {
  if (subject.empty()) return absl::OkStatus();
  if (subject.size() > kMaxSubjectLength) {
    return errors::InvalidField(
        "subject", absl::StrCat("must be at most ", kMaxSubjectLength,
                                " bytes (RFC 5322's line limit)"));
  }
  if (subject.find_first_of("\r\n") != std::string::npos) {
    return errors::InvalidField("subject",
                                "must be one line: CR and LF are not allowed");
  }
  if (absl::StripAsciiWhitespace(subject).empty()) {
    return errors::InvalidField("subject", "must not be blank");
  }
  return CheckPlaceholders("subject", subject);
}

// Shape of an email HTML body ("" = none): its size and placeholders.
absl::Status CheckHtmlBody(const std::string& html) {
  if (html.size() > kMaxHtmlBodyLength) {
    return errors::InvalidField(
        "html_body",
        absl::StrCat("must be at most ", kMaxHtmlBodyLength, " bytes"));
  }
  return CheckPlaceholders("html_body", html);
}

// VALIDATION_ERROR naming `subject` or `html_body` when `channel` is not
// email and one is set: nothing would send it. `what` names the object
// ("template", "campaign").
absl::Status CheckEmailOnly(Channel channel, const std::string& subject,
                            const std::string& html, absl::string_view what) {
  if (channel == Channel::kEmail) return absl::OkStatus();
  if (!subject.empty()) {
    return errors::Validation(
        "subject", absl::StrCat("only email ", what, "s have a subject; this ",
                                what, " is for ", ChannelName(channel)));
  }
  if (!html.empty()) {
    return errors::Validation(
        "html_body",
        absl::StrCat("only email ", what, "s have an HTML body; this ", what,
                     " is for ", ChannelName(channel)));
  }
  return absl::OkStatus();
}

absl::Status CheckChannel(int value) {
  if (value == 0) return errors::InvalidField("channel", "is required");
  if (!IsValidEnum(value, kChannelMax)) {
    return errors::InvalidField("channel", "is not a known channel");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateTemplate(const Template& t) {
  RETURN_IF_ERROR(CheckName("name", t.name));
  RETURN_IF_ERROR(CheckChannel(static_cast<int>(t.channel)));
  if (t.language.empty())
    return errors::InvalidField("language", "is required");
  if (t.language.size() > 16) {
    return errors::InvalidField("language",
                                "must be a language code like en_US");
  }
  if (t.body.empty() && t.components.empty()) {
    return errors::InvalidField("body", "body or components is required");
  }
  if (t.body.size() > kMaxBodyLength) {
    return errors::InvalidField("body", "is too long");
  }
  RETURN_IF_ERROR(CheckPlaceholders("body", t.body));
  RETURN_IF_ERROR(CheckSubject(t.subject));
  RETURN_IF_ERROR(CheckHtmlBody(t.html_body));
  RETURN_IF_ERROR(CheckComponents("components", t.components));
  // Last: the 422 comes after every 400.
  return CheckEmailOnly(t.channel, t.subject, t.html_body, "template");
}

absl::Status ValidateSender(const Sender& s) {
  if (absl::StripAsciiWhitespace(s.sender_id).empty()) {
    return errors::InvalidField("sender_id", "is required");
  }
  if (s.sender_id.size() > kMaxAddressLength) {
    return errors::InvalidField("sender_id", "is too long");
  }
  RETURN_IF_ERROR(CheckChannel(static_cast<int>(s.channel)));
  if (!IsValidEnum(static_cast<int>(s.tier), kSenderTierMax)) {
    return errors::InvalidField("tier", "is not a known tier");
  }
  if (s.provider.empty()) {
    return errors::InvalidField("provider", "is required");
  }
  return absl::OkStatus();
}

absl::Status ValidateCampaignSpec(const Campaign& c) {
  RETURN_IF_ERROR(CheckCampaignText(c));
  RETURN_IF_ERROR(CheckName("name", c.name));
  // Unspecified: the sender or template fixes it (storage infers it).
  if (c.channel != Channel::kUnspecified) {
    RETURN_IF_ERROR(CheckChannel(static_cast<int>(c.channel)));
  }
  if (absl::StripAsciiWhitespace(c.sender_id).empty()) {
    return errors::InvalidField("sender_id", "is required");
  }
  if (c.sender_id.size() > kMaxAddressLength) {
    return errors::InvalidField("sender_id", "is too long");
  }
  RETURN_IF_ERROR(CheckIdLength("template_id", c.template_id));
  RETURN_IF_ERROR(CheckIdLength("contact_list_id", c.contact_list_id));
  if (c.tags.size() > kMaxListEntries) {
    return errors::InvalidField("tags", "has too many entries");
  }
  if (c.contact_ids.size() > kMaxListEntries) {
    return errors::InvalidField("contact_ids", "has too many entries");
  }
  if (c.variable_mapping.size() > kMaxListEntries) {
    return errors::InvalidField("variable_mapping", "has too many entries");
  }
  if (!c.body.empty() && !c.template_id.empty()) {
    return errors::InvalidField("template_id",
                                "body and template_id are mutually exclusive");
  }
  if (c.body.size() > kMaxBodyLength) {
    return errors::InvalidField("body", "is too long");
  }
  RETURN_IF_ERROR(CheckPlaceholders("body", c.body));
  RETURN_IF_ERROR(CheckSubject(c.subject));
  RETURN_IF_ERROR(CheckHtmlBody(c.html_body));
  RETURN_IF_ERROR(
      CheckComponents("template_components", c.template_components));
  if (!c.template_components.empty() && c.template_id.empty()) {
    return errors::InvalidField("template_components",
                                "need a template_id to go with");
  }
  for (const auto& [key, value] : c.variable_mapping) {
    if (key.size() > kMaxShortText || value.size() > kMaxShortText) {
      return errors::InvalidField("variable_mapping", "has an entry too long");
    }
    if (key.empty() || value.empty()) {
      return errors::InvalidField("variable_mapping",
                                  "keys and values must be non-empty");
    }
  }
  int audiences = (c.contact_list_id.empty() ? 0 : 1) +
                  (c.tags.empty() ? 0 : 1) + (c.contact_ids.empty() ? 0 : 1);
  if (audiences > 1) {
    return errors::InvalidField(
        "contact_list_id",
        "contact_list_id, tags and contact_ids are mutually exclusive");
  }
  for (const std::string& tag : c.tags) {
    if (tag.empty()) return errors::InvalidField("tags", "must not be empty");
    if (tag.size() > kMaxShortText) {
      return errors::InvalidField("tags", "has a tag too long");
    }
  }
  for (const std::string& id : c.contact_ids) {
    if (id.empty()) {
      return errors::InvalidField("contact_ids", "must not be empty");
    }
    RETURN_IF_ERROR(CheckIdLength("contact_ids", id));
  }
  RETURN_IF_ERROR(CheckRecipientVariables(c));
  if (c.batch_size < 1 || c.batch_size > kMaxBatchSize) {
    return errors::InvalidField(
        "batch_size", absl::StrCat("must be between 1 and ", kMaxBatchSize));
  }
  if (c.batch_delay < absl::ZeroDuration() || c.batch_delay > absl::Hours(24)) {
    return errors::InvalidField("batch_delay",
                                "must be between 0 and 24 hours");
  }
  if (c.rate_limit_per_second < 0) {
    return errors::InvalidField("rate_limit_per_second",
                                "must not be negative");
  }
  if (c.validity_period && *c.validity_period <= absl::ZeroDuration()) {
    return errors::InvalidField("validity_period", "must be positive");
  }
  if (c.max_lateness && *c.max_lateness < absl::ZeroDuration()) {
    return errors::InvalidField("max_lateness", "must not be negative");
  }
  // Last: the 422 of seed 001 comes after every 400.
  if (c.body.empty() && c.template_id.empty()) {
    return errors::Validation(
        "body", "body and template_id are both absent; one is required");
  }
  return absl::OkStatus();
}

MessageContent EffectiveContent(const Campaign& c, const Template* t) {
  MessageContent out;
  out.text = t != nullptr && c.body.empty() ? t->body : c.body;
  out.subject = t != nullptr && c.subject.empty() ? t->subject : c.subject;
  out.html = t != nullptr && c.html_body.empty() ? t->html_body : c.html_body;
  return out;
}

absl::Status ValidateEmailFields(const Campaign& c, const Template* t) {
  RETURN_IF_ERROR(
      CheckEmailOnly(c.channel, c.subject, c.html_body, "campaign"));
  if (c.channel != Channel::kEmail) return absl::OkStatus();
  if (EffectiveContent(c, t).subject.empty()) {
    return errors::Validation(
        "subject",
        t == nullptr
            ? "is required for an email campaign"
            : absl::StrCat("is required for an email campaign; neither the "
                           "campaign nor its template ",
                           t->id, " has one"));
  }
  return absl::OkStatus();
}

bool IsEditable(CampaignStatus s) {
  return s == CampaignStatus::kDraft || s == CampaignStatus::kScheduled;
}

bool IsFinal(CampaignStatus s) {
  return s == CampaignStatus::kCompleted || s == CampaignStatus::kCancelled ||
         s == CampaignStatus::kFailed;
}

absl::StatusOr<CampaignStatus> NextStatus(
    CampaignStatus from, CampaignEvent event, absl::Time now,
    const std::optional<absl::Time>& schedule_at,
    const std::optional<absl::Duration>& max_lateness) {
  using S = CampaignStatus;
  const bool future = schedule_at.has_value() && *schedule_at > now;
  auto illegal = [&](absl::string_view what) {
    return errors::IllegalTransition(absl::StrCat(
        "cannot ", what, " a campaign that is ", CampaignStatusName(from)));
  };
  switch (event) {
    case CampaignEvent::kStart:
      if (from == S::kDraft) return future ? S::kScheduled : S::kSending;
      return illegal("start");
    case CampaignEvent::kScheduleAlarm:
      if (from != S::kScheduled) return illegal("fire the schedule of");
      if (schedule_at && max_lateness && now > *schedule_at + *max_lateness) {
        return S::kFailed;
      }
      return S::kSending;
    case CampaignEvent::kPause:
      if (from == S::kScheduled || from == S::kSending || from == S::kPaused) {
        return S::kPaused;
      }
      return illegal("pause");
    case CampaignEvent::kResume:
      if (from == S::kPaused) return future ? S::kScheduled : S::kSending;
      return illegal("resume");
    case CampaignEvent::kCancel:
      if (from == S::kDraft || from == S::kScheduled || from == S::kSending ||
          from == S::kPaused) {
        return S::kCancelled;
      }
      return illegal("cancel");
    case CampaignEvent::kAllDispatched:
      if (from == S::kSending) return S::kSent;
      return illegal("finish dispatching");
    case CampaignEvent::kAllFinal:
      if (from == S::kSent) return S::kCompleted;
      return illegal("complete");
    case CampaignEvent::kFatal:
      if (from == S::kSending) return S::kFailed;
      return illegal("fail");
  }
  return illegal("change");
}

bool IsOptOutText(absl::string_view text) {
  static const auto* const kWords = new std::set<std::string>{
      "STOP",   "STOPALL", "UNSUBSCRIBE", "END",     "QUIT",
      "CANCEL", "OPTOUT",  "OPT-OUT",     "OPT OUT", "REVOKE"};
  std::string word = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(text));
  while (!word.empty() && (word.back() == '.' || word.back() == '!')) {
    word.pop_back();
  }
  return kWords->count(word) > 0;
}

SkipChainStep NextSkipChainStep(const absl::Status& written, int64_t queued,
                                int64_t settled, int64_t left_elsewhere) {
  if (written.code() == absl::StatusCode::kNotFound) {
    return SkipChainStep::kGone;
  }
  if (!written.ok()) return SkipChainStep::kRetryLater;
  if (queued <= 0) return SkipChainStep::kDone;
  if (settled > 0) return SkipChainStep::kNext;
  return left_elsewhere > 0 ? SkipChainStep::kLeftElsewhere
                            : SkipChainStep::kOvercounted;
}

}  // namespace campaigns
