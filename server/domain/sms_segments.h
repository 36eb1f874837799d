// How many SMS segments a text takes, as carriers bill them.
//
// A text whose every character is in the GSM 03.38 default alphabet (or its
// extension table, whose characters take two septets: ^ { } \ [ ~ ] | € and
// form feed) goes as GSM-7: 160 septets in one segment, 153 per segment
// when concatenated. Anything else goes as UCS-2: 70 UTF-16 units in one
// segment, 67 per segment when concatenated. A character never straddles
// two segments (an escaped GSM-7 character, a surrogate pair). An empty
// text is one segment.
//
//   SmsSegments s = CountSmsSegments("Hi Ann, your code is 1234");
//   s.encoding == SmsEncoding::kGsm7; s.segments == 1;
//
// Thread-safe (pure).
#ifndef CAMPAIGND_SERVER_DOMAIN_SMS_SEGMENTS_H_
#define CAMPAIGND_SERVER_DOMAIN_SMS_SEGMENTS_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace campaigns {

enum class SmsEncoding { kGsm7, kUcs2 };

struct SmsSegments {
  SmsEncoding encoding = SmsEncoding::kGsm7;
  int64_t units = 0;  // septets (GSM-7) or UTF-16 code units (UCS-2)
  int64_t segments = 1;
};

// `text` is UTF-8; a byte that is not is counted as one UCS-2 unit.
SmsSegments CountSmsSegments(absl::string_view text);

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_DOMAIN_SMS_SEGMENTS_H_
