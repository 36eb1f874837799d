// Recipient addresses: normalisation and checks per channel.
//
//   absl::StatusOr<std::string> a =
//       NormalizeAddress(Channel::kSms, "(202) 555-0143", "US");
//   // *a == "+12025550143"
//   NormalizeAddress(Channel::kEmail, " Ann@Example.COM ", "");
//   // "ann@example.com"
//
// Phone channels (sms, whatsapp, rcs) are parsed and validated with
// libphonenumber and stored in E.164; email addresses are checked and
// lower-cased; Telegram chat ids and Slack ids are checked for their form.
// Failures are INVALID_ARGUMENT on field "address" with a short reason.
//
// Thread-safe (libphonenumber's PhoneNumberUtil is a thread-safe singleton).
#ifndef CAMPAIGND_SERVER_DOMAIN_ADDRESS_H_
#define CAMPAIGND_SERVER_DOMAIN_ADDRESS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/domain/types.h"

namespace campaigns {

// The canonical form of `raw` for `channel`. `default_region` (ISO 3166
// alpha-2, e.g. "US"; may be empty) is used for phone numbers written without
// a country code. Channel::kUnspecified (a suppression for every channel)
// accepts any of the forms: an email address if it has an '@', else a phone
// number if it parses as one, else a Telegram or Slack id.
absl::StatusOr<std::string> NormalizeAddress(Channel channel,
                                             absl::string_view raw,
                                             absl::string_view default_region);

// True if `region` is a region libphonenumber knows ("US", "GB", ...).
bool IsKnownRegion(absl::string_view region);

// The ISO 3166 region of an E.164 number ("" if none or not a phone number).
std::string RegionOfPhoneNumber(absl::string_view e164);

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_DOMAIN_ADDRESS_H_
