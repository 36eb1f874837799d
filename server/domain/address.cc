// Recipient addresses: normalisation and checks per channel.
#include "server/domain/address.h"

#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/domain/errors.h"
#include "server/domain/phone_fast.h"
#include "server/domain/rules.h"

namespace campaigns {
namespace {

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

absl::Status Invalid(absl::string_view reason) {
  return errors::InvalidField("address", reason);
}

absl::StatusOr<std::string> NormalizePhone(absl::string_view raw,
                                           absl::string_view default_region) {
  const PhoneNumberUtil* util = PhoneNumberUtil::GetInstance();
  PhoneNumber number;
  const std::string region = default_region.empty()
                                 ? std::string("ZZ")
                                 : absl::AsciiStrToUpper(default_region);
  if (std::optional<std::string> e164 =
          FastPhoneNormalizer::Get().TryE164(raw, region);
      e164.has_value()) {
    return *std::move(e164);
  }
  switch (util->Parse(std::string(raw), region, &number)) {
    case PhoneNumberUtil::NO_PARSING_ERROR:
      break;
    case PhoneNumberUtil::INVALID_COUNTRY_CODE_ERROR:
      return Invalid(default_region.empty()
                         ? "phone number has no valid country code and no "
                           "default_region was given"
                         : "phone number has no valid country code");
    case PhoneNumberUtil::TOO_SHORT_NSN:
    case PhoneNumberUtil::TOO_SHORT_AFTER_IDD:
      return Invalid("phone number is too short");
    case PhoneNumberUtil::TOO_LONG_NSN:
      return Invalid("phone number is too long");
    default:
      return Invalid("not a phone number");
  }
  if (!util->IsValidNumber(number)) {
    return Invalid("not a valid phone number for its region");
  }
  std::string e164;
  util->Format(number, PhoneNumberUtil::E164, &e164);
  return e164;
}

bool IsEmailLocalChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         absl::StrContains("!#$%&'*+/=?^_`{|}~.-", c);
}

absl::StatusOr<std::string> NormalizeEmail(absl::string_view raw) {
  std::string email = absl::AsciiStrToLower(raw);
  const size_t at = email.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 == email.size()) {
    return Invalid("not an email address");
  }
  absl::string_view local = absl::string_view(email).substr(0, at);
  absl::string_view domain = absl::string_view(email).substr(at + 1);
  if (local.size() > 64 || email.size() > 254) {
    return Invalid("email address is too long");
  }
  if (local.front() == '.' || local.back() == '.' ||
      absl::StrContains(local, "..")) {
    return Invalid("email address has misplaced dots");
  }
  for (char c : local) {
    if (!IsEmailLocalChar(c))
      return Invalid("email address has a bad character");
  }
  // Domain: dot-separated labels of letters, digits and inner hyphens, with
  // at least one dot.
  if (!absl::StrContains(domain, '.')) {
    return Invalid("email domain needs a dot");
  }
  size_t label_start = 0;
  for (size_t i = 0; i <= domain.size(); ++i) {
    if (i == domain.size() || domain[i] == '.') {
      absl::string_view label = domain.substr(label_start, i - label_start);
      if (label.empty() || label.size() > 63 || label.front() == '-' ||
          label.back() == '-') {
        return Invalid("email domain is malformed");
      }
      label_start = i + 1;
    } else if (!absl::ascii_isalnum(static_cast<unsigned char>(domain[i])) &&
               domain[i] != '-') {
      return Invalid("email domain has a bad character");
    }
  }
  return email;
}

// A chat id (an integer, negative for groups and channels) or a public
// @username (5-32 letters, digits, underscores).
absl::StatusOr<std::string> NormalizeTelegram(absl::string_view raw) {
  int64_t id = 0;
  if (absl::SimpleAtoi(raw, &id) && id != 0) return absl::StrCat(id);
  absl::string_view name = raw;
  if (absl::ConsumePrefix(&name, "@") && name.size() >= 5 &&
      name.size() <= 32 &&
      absl::ascii_isalpha(static_cast<unsigned char>(name.front()))) {
    bool ok = true;
    for (char c : name) {
      ok = ok &&
           (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_');
    }
    if (ok) return absl::StrCat("@", absl::AsciiStrToLower(name));
  }
  return Invalid("not a Telegram chat id or @username");
}

// A Slack member, channel or group id: an upper-case letter of U, W, C, G or
// D followed by 8-20 upper-case letters and digits.
absl::StatusOr<std::string> NormalizeSlack(absl::string_view raw) {
  std::string id = absl::AsciiStrToUpper(raw);
  bool ok = id.size() >= 9 && id.size() <= 21 &&
            absl::StrContains("UWCGD", id.front());
  for (size_t i = 1; ok && i < id.size(); ++i) {
    ok = absl::ascii_isupper(static_cast<unsigned char>(id[i])) ||
         absl::ascii_isdigit(static_cast<unsigned char>(id[i]));
  }
  if (!ok) return Invalid("not a Slack member or channel id (like U024BE7LH)");
  return id;
}

}  // namespace

absl::StatusOr<std::string> NormalizeAddress(Channel channel,
                                             absl::string_view raw,
                                             absl::string_view default_region) {
  absl::string_view trimmed = absl::StripAsciiWhitespace(raw);
  if (trimmed.empty()) return Invalid("is required");
  if (trimmed.size() > kMaxAddressLength) return Invalid("is too long");
  if (!default_region.empty() && !IsKnownRegion(default_region)) {
    return errors::InvalidField(
        "default_region",
        absl::StrCat("unknown region ", errors::Quote(default_region)));
  }
  switch (channel) {
    case Channel::kSms:
    case Channel::kWhatsapp:
    case Channel::kRcs:
      return NormalizePhone(trimmed, default_region);
    case Channel::kEmail:
      return NormalizeEmail(trimmed);
    case Channel::kTelegram:
      return NormalizeTelegram(trimmed);
    case Channel::kSlack:
      return NormalizeSlack(trimmed);
    case Channel::kUnspecified:
      break;
  }
  if (absl::StrContains(trimmed, '@') && !absl::StartsWith(trimmed, "@")) {
    return NormalizeEmail(trimmed);
  }
  if (absl::StatusOr<std::string> phone =
          NormalizePhone(trimmed, default_region);
      phone.ok()) {
    return phone;
  }
  if (absl::StatusOr<std::string> tg = NormalizeTelegram(trimmed); tg.ok()) {
    return tg;
  }
  if (absl::StatusOr<std::string> slack = NormalizeSlack(trimmed); slack.ok()) {
    return slack;
  }
  return Invalid("not a phone number, email address, Telegram or Slack id");
}

bool IsKnownRegion(absl::string_view region) {
  static const std::set<std::string>* const kRegions = [] {
    auto* regions = new std::set<std::string>();
    PhoneNumberUtil::GetInstance()->GetSupportedRegions(regions);
    return regions;
  }();
  return kRegions->count(absl::AsciiStrToUpper(region)) > 0;
}

std::string RegionOfPhoneNumber(absl::string_view e164) {
  if (std::optional<std::string> fast =
          FastPhoneNormalizer::Get().RegionOf(e164)) {
    return *std::move(fast);
  }
  const PhoneNumberUtil* util = PhoneNumberUtil::GetInstance();
  PhoneNumber number;
  if (util->Parse(std::string(e164), "ZZ", &number) !=
      PhoneNumberUtil::NO_PARSING_ERROR) {
    return "";
  }
  std::string region;
  util->GetRegionCodeForNumber(number, &region);
  return region == "ZZ" ? "" : region;
}

}  // namespace campaigns
