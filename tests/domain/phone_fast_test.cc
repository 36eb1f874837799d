// FastPhoneNormalizer against libphonenumber itself: whenever the fast path
// answers, libphonenumber must find the same input valid with the same
// E.164 form; and the fast path must actually carry the common forms.
#include "server/domain/phone_fast.h"

#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

#include <random>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/domain/address.h"

namespace campaigns {
namespace {

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

// libphonenumber alone: E.164 of a valid number, else "".
std::string Slow(const std::string& raw, const std::string& region) {
  const PhoneNumberUtil* util = PhoneNumberUtil::GetInstance();
  PhoneNumber number;
  if (util->Parse(raw, region, &number) != PhoneNumberUtil::NO_PARSING_ERROR ||
      !util->IsValidNumber(number)) {
    return "";
  }
  std::string e164;
  util->Format(number, PhoneNumberUtil::E164, &e164);
  return e164;
}

// libphonenumber's region of an E.164 number ("" for none).
std::string SlowRegion(const std::string& e164) {
  const PhoneNumberUtil* util = PhoneNumberUtil::GetInstance();
  PhoneNumber number;
  if (util->Parse(e164, "ZZ", &number) != PhoneNumberUtil::NO_PARSING_ERROR) {
    return "";
  }
  std::string region;
  util->GetRegionCodeForNumber(number, &region);
  return region == "ZZ" ? "" : region;
}

struct Counts {
  int inputs = 0;
  int slow_valid = 0;
  int fast = 0;
  int region_fast = 0;  // regions of valid numbers the fast path answered
};

void Compare(const std::string& raw, const std::string& region,
             Counts* counts) {
  const std::string slow = Slow(raw, region);
  const std::optional<std::string> fast =
      FastPhoneNormalizer::Get().TryE164(raw, region);
  ++counts->inputs;
  if (!slow.empty()) ++counts->slow_valid;
  if (fast.has_value()) {
    ++counts->fast;
    EXPECT_EQ(*fast, slow) << "input \"" << raw << "\" region " << region;
  }
  // And the public entry point agrees with libphonenumber either way.
  absl::StatusOr<std::string> normalized =
      NormalizeAddress(Channel::kSms, raw, region);
  EXPECT_EQ(normalized.ok() ? *normalized : "", slow)
      << "input \"" << raw << "\" region " << region;
  if (!slow.empty()) {
    const std::optional<std::string> fast_region =
        FastPhoneNormalizer::Get().RegionOf(slow);
    if (fast_region.has_value()) {
      ++counts->region_fast;
      EXPECT_EQ(*fast_region, SlowRegion(slow)) << "number " << slow;
    }
    EXPECT_EQ(RegionOfPhoneNumber(slow), SlowRegion(slow)) << "number " << slow;
  }
}

TEST(FastPhoneNormalizerTest, AgreesWithLibphonenumberEverywhere) {
  const PhoneNumberUtil* util = PhoneNumberUtil::GetInstance();
  std::set<std::string> regions;
  util->GetSupportedRegions(&regions);
  std::mt19937 rng(7);
  Counts counts;
  Counts e164_of_valid;
  const PhoneNumberUtil::PhoneNumberType kTypes[] = {
      PhoneNumberUtil::FIXED_LINE,
      PhoneNumberUtil::MOBILE,
      PhoneNumberUtil::TOLL_FREE,
      PhoneNumberUtil::PREMIUM_RATE,
      PhoneNumberUtil::SHARED_COST,
      PhoneNumberUtil::VOIP,
      PhoneNumberUtil::PERSONAL_NUMBER,
      PhoneNumberUtil::PAGER,
      PhoneNumberUtil::UAN,
      PhoneNumberUtil::VOICEMAIL};
  for (const std::string& region : regions) {
    for (PhoneNumberUtil::PhoneNumberType type : kTypes) {
      PhoneNumber example;
      if (!util->GetExampleNumberForType(region, type, &example)) continue;
      for (int variant = 0; variant < 12; ++variant) {
        PhoneNumber n = example;
        // Change up to the last four digits.
        uint64_t national = n.national_number();
        uint64_t mod = 1;
        for (int k = 0; k < variant % 5; ++k) mod *= 10;
        national = national - national % mod + rng() % mod;
        n.set_national_number(national);
        std::string e164, international, national_form;
        util->Format(n, PhoneNumberUtil::E164, &e164);
        util->Format(n, PhoneNumberUtil::INTERNATIONAL, &international);
        util->Format(n, PhoneNumberUtil::NATIONAL, &national_form);
        Compare(e164, region, &counts);
        Compare(international, region, &counts);
        Compare(national_form, region, &counts);
        Compare(e164, "US", &counts);
        // Without the national prefix, as lists often are.
        std::string nsn;
        util->GetNationalSignificantNumber(n, &nsn);
        Compare(nsn, region, &counts);
        Compare(absl::StrCat("00", e164.substr(1)), region, &counts);
        if (!Slow(e164, region).empty()) {
          Compare(e164, region, &e164_of_valid);
        }
      }
    }
    // Random digits, national and international.
    for (int i = 0; i < 20; ++i) {
      std::string digits;
      const int len = 3 + static_cast<int>(rng() % 14);
      for (int d = 0; d < len; ++d) digits.push_back('0' + rng() % 10);
      Compare(digits, region, &counts);
      Compare("+" + digits, region, &counts);
      Compare(
          absl::StrCat("+", util->GetCountryCodeForRegion(region), " ", digits),
          region, &counts);
    }
  }
  // Odd inputs never take the fast path wrongly.
  for (const char* raw :
       {"+1 202 555 0143 ext. 7", "+1-202-555-0143;ext=1", "tel:+12025550143",
        "+1 (202) 555-0143 x12", "+44 (0) 20 7946 0958", "+390612345678",
        "0039 06 1234 5678", "+1 202 555 01432", "++12025550143",
        "+1 2O2 555 0143", "+٣٣١٤٢٦٨٥٣٠٠", "  +33 1 42 68 53 00  ", "12",
        "+800 1234 5678", "+882 34 1234 5678", "1 202 555 0143"}) {
    Compare(raw, "US", &counts);
    Compare(raw, "GB", &counts);
  }
  std::cout << counts.inputs << " inputs, " << counts.slow_valid
            << " valid to libphonenumber, " << counts.fast
            << " answered by the fast path\n";
  // The fast path must carry the plain E.164 form of valid numbers.
  EXPECT_GT(e164_of_valid.fast, e164_of_valid.inputs * 9 / 10)
      << e164_of_valid.fast << " of " << e164_of_valid.inputs;
  // And the region of most valid numbers.
  EXPECT_GT(counts.region_fast, counts.slow_valid * 9 / 10)
      << counts.region_fast << " of " << counts.slow_valid;
}

TEST(FastPhoneNormalizerTest, CommonFormsTakeTheFastPath) {
  const FastPhoneNormalizer& fast = FastPhoneNormalizer::Get();
  EXPECT_EQ(fast.TryE164("+1 (202) 555-0143", "ZZ"), "+12025550143");
  EXPECT_EQ(fast.TryE164("(202) 555-0143", "US"), "+12025550143");
  EXPECT_EQ(fast.TryE164("+44 7911 123456", "US"), "+447911123456");
  EXPECT_EQ(fast.TryE164("+33 6 12 34 56 78", ""), "+33612345678");
  // National prefixes are libphonenumber's to strip.
  EXPECT_EQ(fast.TryE164("07911 123456", "GB"), std::nullopt);
  EXPECT_EQ(Slow("07911 123456", "GB"), "+447911123456");
  EXPECT_EQ(fast.TryE164("not a number", "US"), std::nullopt);
  EXPECT_EQ(fast.RegionOf("+12025550143"), "US");
  EXPECT_EQ(fast.RegionOf("+14165550143"), "CA");
  EXPECT_EQ(fast.RegionOf("+442079460958"), "GB");
  // +44 7911 is a Guernsey range in libphonenumber's metadata.
  EXPECT_EQ(fast.RegionOf("+447911123456"), SlowRegion("+447911123456"));
  EXPECT_EQ(fast.RegionOf("+33612345678"), "FR");
  EXPECT_EQ(fast.RegionOf("12025550143"), std::nullopt);
  EXPECT_EQ(fast.RegionOf("+"), std::nullopt);
}

}  // namespace
}  // namespace campaigns
