// What the HTTP vendor adapters share: a request per message, answers mapped.
#include "server/dispatch/providers/adapter_util.h"

#include <atomic>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace campaigns::dispatch {
namespace {

// One Send's results, filled in by the answers of its requests.
struct Pending {
  std::vector<SendResult> results;
  std::atomic<size_t> left{0};
  SendDone done;
};

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

absl::StatusOr<std::string> FormUnescape(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= s.size()) {
        return absl::InvalidArgumentError("a truncated percent escape");
      }
      const int hi = HexValue(s[i + 1]);
      const int lo = HexValue(s[i + 2]);
      if (hi < 0 || lo < 0) {
        return absl::InvalidArgumentError("a bad percent escape");
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void FormEscape(absl::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (absl::ascii_isalnum(c) || c == '*' || c == '-' || c == '.' ||
        c == '_') {
      out->push_back(ch);
    } else if (c == ' ') {
      out->push_back('+');
    } else {
      out->push_back('%');
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 0xF]);
    }
  }
}

}  // namespace

void SendEach(
    HttpClient* http, const std::shared_ptr<HttpClient::Lane>& lane,
    std::vector<OutgoingMessage> batch,
    const std::function<HttpRequest(const OutgoingMessage&)>& build,
    std::function<SendResult(const OutgoingMessage&, const HttpResponse&)> map,
    SendDone done) {
  if (batch.empty()) {
    done({});
    return;
  }
  auto pending = std::make_shared<Pending>();
  pending->results.resize(batch.size());
  pending->left = batch.size();
  pending->done = std::move(done);
  auto shared_map = std::make_shared<decltype(map)>(std::move(map));
  for (size_t i = 0; i < batch.size(); ++i) {
    HttpRequest req = build(batch[i]);
    http->Send(
        lane, std::move(req),
        [pending, shared_map, i, m = std::move(batch[i])](HttpResponse r) {
          pending->results[i] = (*shared_map)(m, r);
          if (--pending->left == 0) {
            pending->done(std::move(pending->results));
          }
        });
  }
}

bool NoAnswer(const HttpResponse& r, SendResult* out) {
  if (r.status != 0) return false;
  *out = SendResult();
  out->status = SendStatus::kTransient;
  out->error_code = r.timed_out ? "timeout" : "connection_failed";
  out->error_desc = r.error.empty() ? std::string("no answer") : r.error;
  return true;
}

SendResult OutcomeUnknown(absl::string_view vendor, absl::string_view why) {
  SendResult out;
  out.status = SendStatus::kPermanent;
  out.error_code = "outcome_unknown";
  out.error_desc = absl::StrCat(vendor, " answered success but ", why,
                                "; the message may have been sent, so it is "
                                "not sent again");
  return out;
}

std::string Redact(std::string text,
                   const std::vector<absl::string_view>& secrets) {
  for (absl::string_view s : secrets) {
    if (s.empty()) continue;
    absl::StrReplaceAll({{s, "<redacted>"}}, &text);
  }
  return text;
}

std::string FormEncode(
    const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [name, value] : fields) {
    if (!out.empty()) out.push_back('&');
    FormEscape(name, &out);
    out.push_back('=');
    FormEscape(value, &out);
  }
  return out;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> FormDecode(
    absl::string_view body) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t pos = 0;
  while (pos <= body.size()) {
    size_t amp = body.find('&', pos);
    if (amp == absl::string_view::npos) amp = body.size();
    const absl::string_view field = body.substr(pos, amp - pos);
    pos = amp + 1;
    if (field.empty()) continue;
    const size_t eq = field.find('=');
    absl::StatusOr<std::string> name = FormUnescape(field.substr(0, eq));
    if (!name.ok()) return name.status();
    absl::StatusOr<std::string> value =
        FormUnescape(eq == absl::string_view::npos ? absl::string_view()
                                                   : field.substr(eq + 1));
    if (!value.ok()) return value.status();
    out.emplace_back(*std::move(name), *std::move(value));
  }
  return out;
}

const std::string& HeaderOf(const WebhookRequest& r, const std::string& name) {
  static const std::string* const kEmpty = new std::string();
  auto it = r.headers.find(name);
  return it == r.headers.end() ? *kEmpty : it->second;
}

bool ParseJsonObject(absl::string_view body, nlohmann::json* out) {
  *out = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  return !out->is_discarded() && out->is_object();
}

std::string JsonString(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

bool JsonInt(const nlohmann::json& obj, const char* key, int64_t* out) {
  if (!obj.is_object()) return false;
  auto it = obj.find(key);
  if (it == obj.end()) return false;
  if (it->is_number_integer()) {
    *out = it->get<int64_t>();
    return true;
  }
  if (it->is_string()) {
    return absl::SimpleAtoi(it->get_ref<const std::string&>(), out);
  }
  return false;
}

std::string Clip(absl::string_view text, size_t max) {
  if (text.size() <= max) return std::string(text);
  // Cut on a UTF-8 character boundary: descriptions end up in protos.
  while (max > 0 && (static_cast<unsigned char>(text[max]) & 0xC0) == 0x80) {
    --max;
  }
  return absl::StrCat(text.substr(0, max), "...");
}

}  // namespace campaigns::dispatch
