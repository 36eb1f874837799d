// UTF-8 validity of raw text.
#include "server/domain/utf8.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace campaigns {

namespace {

// The length of the well-formed UTF-8 sequence at p[i] (RFC 3629, table
// 3-7: no overlong forms, no surrogates, nothing above U+10FFFF); 0 when
// none starts there.
size_t SequenceAt(const uint8_t* p, size_t n, size_t i) {
  const uint8_t c = p[i];
  if (c < 0x80) return 1;
  size_t len;
  uint8_t lo = 0x80;  // bounds of the second byte
  uint8_t hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;  // no overlong 3-byte forms
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;  // no overlong 4-byte forms
    if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;  // a continuation byte, C0/C1 or F5..FF
  }
  if (n - i < len) return 0;
  if (p[i + 1] < lo || p[i + 1] > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    if ((p[i + k] & 0xC0) != 0x80) return 0;
  }
  return len;
}

}  // namespace

bool IsValidUtf8(absl::string_view text) {
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const size_t len = SequenceAt(p, n, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string SanitizeUtf8(absl::string_view text) {
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n;) {
    const size_t len = SequenceAt(p, n, i);
    if (len == 0) {
      out.append("\xEF\xBF\xBD");  // U+FFFD for the byte
      ++i;
      continue;
    }
    if (p[i] != 0) out.append(text.data() + i, len);
    i += len;
  }
  return out;
}

void MendUtf8(std::string* text) {
  if (text->find('\0') == std::string::npos && IsValidUtf8(*text)) return;
  *text = SanitizeUtf8(*text);
}

std::string Utf8Prefix(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  size_t n = max_bytes;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  return std::string(text.substr(0, n));
}

}  // namespace campaigns
