// How many SMS segments a text takes, as carriers bill them.
#include "server/domain/sms_segments.h"

#include <vector>

namespace campaigns {
namespace {

// Septets a code point takes in GSM-7: 1 (default alphabet), 2 (extension
// table) or 0 (not representable).
int GsmSeptets(char32_t c) {
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
      (c >= '0' && c <= '9')) {
    return 1;
  }
  switch (c) {
    // The default alphabet's other characters.
    case '@':
    case U'£':
    case '$':
    case U'¥':
    case U'è':
    case U'é':
    case U'ù':
    case U'ì':
    case U'ò':
    case U'Ç':
    case '\n':
    case U'Ø':
    case U'ø':
    case '\r':
    case U'Å':
    case U'å':
    case U'Δ':
    case '_':
    case U'Φ':
    case U'Γ':
    case U'Λ':
    case U'Ω':
    case U'Π':
    case U'Ψ':
    case U'Σ':
    case U'Θ':
    case U'Ξ':
    case U'Æ':
    case U'æ':
    case U'ß':
    case U'É':
    case ' ':
    case '!':
    case '"':
    case '#':
    case U'¤':
    case '%':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case '-':
    case '.':
    case '/':
    case ':':
    case ';':
    case '<':
    case '=':
    case '>':
    case '?':
    case U'¡':
    case U'Ä':
    case U'Ö':
    case U'Ñ':
    case U'Ü':
    case U'§':
    case U'¿':
    case U'ä':
    case U'ö':
    case U'ñ':
    case U'ü':
    case U'à':
      return 1;
    // The extension table: an escape septet, then the character.
    case '\f':
    case '^':
    case '{':
    case '}':
    case '\\':
    case '[':
    case '~':
    case ']':
    case '|':
    case U'€':
      return 2;
    default:
      return 0;
  }
}

// The code points of `text`; a byte that starts no valid sequence becomes
// U+FFFD (not in GSM-7, one UCS-2 unit).
std::vector<char32_t> Decode(absl::string_view text) {
  std::vector<char32_t> out;
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char b = static_cast<unsigned char>(text[i]);
    int len = b < 0x80         ? 1
              : (b >> 5) == 6  ? 2
              : (b >> 4) == 14 ? 3
              : (b >> 3) == 30 ? 4
                               : 0;
    char32_t c = len == 1   ? b
                 : len == 2 ? (b & 0x1F)
                 : len == 3 ? (b & 0x0F)
                            : (b & 0x07);
    bool ok = len > 0 && i + len <= text.size();
    for (int k = 1; ok && k < len; ++k) {
      const unsigned char cont = static_cast<unsigned char>(text[i + k]);
      ok = (cont >> 6) == 2;
      c = (c << 6) | (cont & 0x3F);
    }
    if (!ok) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(c);
    i += len;
  }
  return out;
}

// Segments for characters of `sizes` units each: `single` units fit one
// segment; concatenated, `part` units a segment, no character split.
int64_t Split(const std::vector<int>& sizes, int64_t total, int64_t single,
              int64_t part) {
  if (total <= single) return 1;
  int64_t segments = 1;
  int64_t used = 0;
  for (int size : sizes) {
    if (used + size > part) {
      ++segments;
      used = 0;
    }
    used += size;
  }
  return segments;
}

}  // namespace

SmsSegments CountSmsSegments(absl::string_view text) {
  const std::vector<char32_t> chars = Decode(text);
  std::vector<int> sizes;
  sizes.reserve(chars.size());
  bool gsm = true;
  for (char32_t c : chars) {
    const int septets = GsmSeptets(c);
    if (septets == 0) {
      gsm = false;
      break;
    }
    sizes.push_back(septets);
  }
  SmsSegments out;
  if (!gsm) {
    sizes.clear();
    for (char32_t c : chars) sizes.push_back(c > 0xFFFF ? 2 : 1);
    out.encoding = SmsEncoding::kUcs2;
  }
  for (int s : sizes) out.units += s;
  out.segments =
      gsm ? Split(sizes, out.units, 160, 153) : Split(sizes, out.units, 70, 67);
  return out;
}

}  // namespace campaigns
