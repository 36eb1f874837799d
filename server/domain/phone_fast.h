// A fast path for the common phone numbers of an import, exact by
// construction: it answers only when it is certain libphonenumber would
// parse the input to the same number and find it valid, and otherwise says
// "ask libphonenumber".
//
//   std::optional<std::string> e164 =
//       FastPhoneNormalizer::Get().TryE164("(202) 555-0143", "US");
//   // "+12025550143", or nullopt: use PhoneNumberUtil
//
// Why: the Debian build of libphonenumber matches with ICU regular
// expressions (~15-25 us per Parse + IsValidNumber), which caps an import at
// tens of thousands of rows per second per core. This class reads the very
// metadata libphonenumber ships (metadata_get()), compiles its patterns
// with RE2, and repeats libphonenumber's validity rules (GetRegionCodeFor-
// Number, IsValidNumberForRegion, GetNumberTypeHelper) on plainly written
// numbers: ASCII digits with spaces, '-', '.', '(', ')' or '/', either '+'
// and a country code, or national digits for a known default region. Inputs
// where libphonenumber would strip a national prefix, an international
// (IDD) prefix or a leading country code, keep leading zeros, or find an
// extension, and every number it would reject, fall through. A differential
// test over many generated numbers holds it to libphonenumber's answers.
//
// Thread-safe: immutable after construction (RE2 matching is thread-safe).
#ifndef CAMPAIGND_SERVER_DOMAIN_PHONE_FAST_H_
#define CAMPAIGND_SERVER_DOMAIN_PHONE_FAST_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace re2 {
class RE2;
}

namespace campaigns {

class FastPhoneNormalizer {
 public:
  // The process-wide instance, built on first use from libphonenumber's
  // metadata.
  static const FastPhoneNormalizer& Get();

  // The E.164 form of `raw` when certain (see above), else nullopt.
  std::optional<std::string> TryE164(absl::string_view raw,
                                     absl::string_view default_region) const;

  // The region libphonenumber's GetRegionCodeForNumber gives the E.164
  // number `e164` ("US", "001" for non-geographic numbers, "" for none),
  // or nullopt when only libphonenumber can tell.
  std::optional<std::string> RegionOf(absl::string_view e164) const;

  ~FastPhoneNormalizer();

 private:
  struct Desc {
    std::vector<int> lengths;
    std::unique_ptr<re2::RE2> pattern;  // null: matches nothing
    bool Matches(const std::string& nsn) const;
  };
  struct Region {
    std::string id;
    int country_code = 0;
    bool usable = true;  // every pattern compiled
    Desc general;
    std::vector<Desc> types;  // premium rate ... voicemail, then fixed line
    Desc mobile;
    bool same_mobile_and_fixed_line_pattern = false;
    std::unique_ptr<re2::RE2> leading_digits;
    std::unique_ptr<re2::RE2> national_prefix_for_parsing;
    std::unique_ptr<re2::RE2> international_prefix;
  };

  FastPhoneNormalizer();
  bool HasType(const Region& r, const std::string& nsn) const;
  bool IsValid(int country_code, const std::string& nsn) const;
  // GetRegionCodeForNumber: false when a region of the calling code is not
  // usable; else `*region` is the number's region (null: none).
  bool FindRegion(int country_code, const std::string& nsn,
                  const Region** region) const;
  static bool StartsWithMatch(const re2::RE2* re, const std::string& digits);

  std::vector<std::unique_ptr<Region>> regions_;
  std::map<std::string, const Region*> by_id_;  // geographic regions
  // Calling code -> its regions, the main country first (libphonenumber's
  // order).
  std::map<int, std::vector<const Region*>> by_code_;
};

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_DOMAIN_PHONE_FAST_H_
