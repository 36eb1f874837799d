// UTF-8 validity of raw text (CSV bytes; proto strings are checked on
// arrival by the API layer).
#ifndef CAMPAIGND_SERVER_DOMAIN_UTF8_H_
#define CAMPAIGND_SERVER_DOMAIN_UTF8_H_

#include <string>

#include "absl/strings/string_view.h"

namespace campaigns {

// True when `text` is well-formed UTF-8 (RFC 3629): no overlong forms, no
// surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no truncated
// sequence. The same bytes protobuf accepts in a string field.
bool IsValidUtf8(absl::string_view text);

// `text` as well-formed UTF-8 without U+0000: each byte that starts no
// well-formed sequence becomes U+FFFD, and NULs are dropped. For text from
// outside (a provider's error, a message id) stored where text must be
// valid (PostgreSQL); `text` itself when it already is.
std::string SanitizeUtf8(absl::string_view text);

// The first `max_bytes` bytes of `text`, cut back to a whole UTF-8
// character (a note stored from the start of a provider's error).
std::string Utf8Prefix(absl::string_view text, size_t max_bytes);

// `*text` = SanitizeUtf8(*text), without a copy when it is already valid
// (the common case: one scan). Deterministic, so a provider's message id
// and the receipts that name it mend alike and still match; two ids that
// differ only in their broken bytes would mend alike too.
void MendUtf8(std::string* text);

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_DOMAIN_UTF8_H_
