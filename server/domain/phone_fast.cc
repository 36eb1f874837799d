// A fast, exact path for common phone numbers ahead of libphonenumber.
#include "server/domain/phone_fast.h"

#include <phonenumbers/phonemetadata.pb.h>
#include <re2/re2.h>

#include <algorithm>

#include "absl/strings/str_cat.h"

// Exported by libphonenumber (src/phonenumbers/metadata.h, not installed):
// the serialized PhoneMetadataCollection its PhoneNumberUtil is built from.
namespace i18n::phonenumbers {
int metadata_size();
const void* metadata_get();
}  // namespace i18n::phonenumbers

namespace campaigns {
namespace {

namespace pn = ::i18n::phonenumbers;

// libphonenumber's bounds on a national significant number.
constexpr size_t kMinNsnLength = 2;
constexpr size_t kMaxNsnLength = 17;
constexpr int kMaxCountryCodeLength = 3;

std::unique_ptr<re2::RE2> Compile(const std::string& pattern, bool* ok) {
  if (pattern.empty()) return nullptr;
  re2::RE2::Options options;
  options.set_log_errors(false);
  auto re = std::make_unique<re2::RE2>(pattern, options);
  if (!re->ok()) {
    *ok = false;
    return nullptr;
  }
  return re;
}

bool IsSeparator(char c) {
  return c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '/';
}

}  // namespace

bool FastPhoneNormalizer::Desc::Matches(const std::string& nsn) const {
  // IsNumberMatchingDesc: the possible lengths first (when listed), then a
  // full match of the pattern; an empty pattern matches nothing.
  if (!lengths.empty() &&
      std::find(lengths.begin(), lengths.end(), static_cast<int>(nsn.size())) ==
          lengths.end()) {
    return false;
  }
  return pattern != nullptr && re2::RE2::FullMatch(nsn, *pattern);
}

const FastPhoneNormalizer& FastPhoneNormalizer::Get() {
  static const FastPhoneNormalizer* const kInstance = new FastPhoneNormalizer();
  return *kInstance;
}

FastPhoneNormalizer::~FastPhoneNormalizer() = default;

FastPhoneNormalizer::FastPhoneNormalizer() {
  pn::PhoneMetadataCollection collection;
  if (!collection.ParseFromArray(pn::metadata_get(), pn::metadata_size())) {
    return;  // no fast path at all
  }
  for (const pn::PhoneMetadata& m : collection.metadata()) {
    if (m.id() == "ZZ") continue;
    auto r = std::make_unique<Region>();
    r->id = m.id();
    r->country_code = m.country_code();
    bool ok = true;
    auto desc = [&ok](const pn::PhoneNumberDesc& d) {
      Desc out;
      out.lengths.assign(d.possible_length().begin(),
                         d.possible_length().end());
      out.pattern = Compile(d.national_number_pattern(), &ok);
      return out;
    };
    r->general = desc(m.general_desc());
    // GetNumberTypeHelper's order; only "any of them" matters for validity.
    for (const pn::PhoneNumberDesc* d :
         {&m.premium_rate(), &m.toll_free(), &m.shared_cost(), &m.voip(),
          &m.personal_number(), &m.pager(), &m.uan(), &m.voicemail(),
          &m.fixed_line()}) {
      r->types.push_back(desc(*d));
    }
    r->mobile = desc(m.mobile());
    r->same_mobile_and_fixed_line_pattern =
        m.same_mobile_and_fixed_line_pattern();
    if (m.has_leading_digits()) {
      r->leading_digits = Compile(m.leading_digits(), &ok);
    }
    r->national_prefix_for_parsing =
        Compile(m.national_prefix_for_parsing(), &ok);
    r->international_prefix = Compile(m.international_prefix(), &ok);
    r->usable = ok;
    const Region* region = r.get();
    if (r->id != "001") by_id_[r->id] = region;
    std::vector<const Region*>& list = by_code_[r->country_code];
    if (m.main_country_for_code()) {
      list.insert(list.begin(), region);
    } else {
      list.push_back(region);
    }
    regions_.push_back(std::move(r));
  }
}

bool FastPhoneNormalizer::HasType(const Region& r,
                                  const std::string& nsn) const {
  if (!r.general.Matches(nsn)) return false;
  for (const Desc& d : r.types) {
    if (d.Matches(nsn)) return true;
  }
  return !r.same_mobile_and_fixed_line_pattern && r.mobile.Matches(nsn);
}

bool FastPhoneNormalizer::FindRegion(int country_code, const std::string& nsn,
                                     const Region** region) const {
  *region = nullptr;
  auto it = by_code_.find(country_code);
  if (it == by_code_.end()) return true;
  const std::vector<const Region*>& regions = it->second;
  for (const Region* r : regions) {
    if (!r->usable) return false;  // let libphonenumber decide
  }
  if (regions.size() == 1) {
    *region = regions.front();
    return true;
  }
  for (const Region* r : regions) {
    if (r->leading_digits != nullptr) {
      if (StartsWithMatch(r->leading_digits.get(), nsn)) {
        *region = r;
        return true;
      }
    } else if (HasType(*r, nsn)) {
      *region = r;
      return true;
    }
  }
  return true;
}

bool FastPhoneNormalizer::IsValid(int country_code,
                                  const std::string& nsn) const {
  // GetRegionCodeForNumber, then IsValidNumberForRegion.
  const Region* region = nullptr;
  return FindRegion(country_code, nsn, &region) && region != nullptr &&
         HasType(*region, nsn);
}

bool FastPhoneNormalizer::StartsWithMatch(const re2::RE2* re,
                                          const std::string& digits) {
  if (re == nullptr) return false;
  re2::StringPiece input(digits);
  return re2::RE2::Consume(&input, *re);
}

std::optional<std::string> FastPhoneNormalizer::TryE164(
    absl::string_view raw, absl::string_view default_region) const {
  size_t i = 0;
  while (i < raw.size() && raw[i] == ' ') ++i;
  const bool international = i < raw.size() && raw[i] == '+';
  if (international) ++i;
  std::string digits;
  digits.reserve(raw.size());
  for (; i < raw.size(); ++i) {
    const char c = raw[i];
    if (c >= '0' && c <= '9') {
      digits.push_back(c);
    } else if (!IsSeparator(c)) {
      return std::nullopt;  // letters, '+' inside, extensions, non-ASCII...
    }
  }
  // Fewer than three digits is not a viable number to libphonenumber.
  if (digits.size() < 3 ||
      digits.size() > kMaxNsnLength + kMaxCountryCodeLength) {
    return std::nullopt;
  }

  int country_code = 0;
  std::string nsn;
  const Region* parsing_region = nullptr;  // whose national prefix applies
  if (international) {
    if (digits[0] == '0') return std::nullopt;
    // Calling codes form a prefix code: the first that exists is the one.
    for (int len = 1; len <= kMaxCountryCodeLength; ++len) {
      const int code = std::stoi(digits.substr(0, len));
      auto it = by_code_.find(code);
      if (it != by_code_.end()) {
        country_code = code;
        nsn = digits.substr(len);
        parsing_region = it->second.front();
        break;
      }
    }
    if (country_code == 0) return std::nullopt;
  } else {
    auto it = by_id_.find(std::string(default_region));
    if (it == by_id_.end()) return std::nullopt;
    parsing_region = it->second;
    country_code = parsing_region->country_code;
    // libphonenumber would try stripping an IDD or the region's own calling
    // code here; leave those inputs to it.
    if (StartsWithMatch(parsing_region->international_prefix.get(), digits) ||
        digits.rfind(absl::StrCat(country_code), 0) == 0) {
      return std::nullopt;
    }
    nsn = std::move(digits);
  }
  if (!parsing_region->usable ||
      StartsWithMatch(parsing_region->national_prefix_for_parsing.get(), nsn) ||
      nsn.size() < kMinNsnLength || nsn.size() > kMaxNsnLength ||
      nsn[0] == '0') {
    return std::nullopt;
  }
  if (!IsValid(country_code, nsn)) return std::nullopt;
  return absl::StrCat("+", country_code, nsn);
}

std::optional<std::string> FastPhoneNormalizer::RegionOf(
    absl::string_view e164) const {
  if (e164.size() < 2 || e164[0] != '+' || e164[1] == '0' ||
      e164.size() > 1 + kMaxNsnLength + kMaxCountryCodeLength) {
    return std::nullopt;
  }
  const std::string digits(e164.substr(1));
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  for (int len = 1;
       len <= kMaxCountryCodeLength && len < static_cast<int>(digits.size());
       ++len) {
    const int code = std::stoi(digits.substr(0, len));
    auto it = by_code_.find(code);
    if (it == by_code_.end()) continue;
    const std::string nsn = digits.substr(len);
    // Where parsing could strip a national prefix, or keep a leading zero,
    // the number libphonenumber sees may differ: ask it.
    const Region* parsing_region = it->second.front();
    if (!parsing_region->usable || nsn[0] == '0' ||
        StartsWithMatch(parsing_region->national_prefix_for_parsing.get(),
                        nsn)) {
      return std::nullopt;
    }
    const Region* region = nullptr;
    if (!FindRegion(code, nsn, &region)) return std::nullopt;
    return region == nullptr ? std::string() : region->id;
  }
  return std::nullopt;
}

}  // namespace campaigns
