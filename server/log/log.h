// Logging: campaignd's one logger, on spdlog, in text or JSON lines, with
// context fields, masked addresses and rate-limited noisy sources.
//
//   logging::Configure(logging::Format::kJson, logging::Level::kInfo);
//   logging::Error("storing an outcome failed",
//                  {{"campaign_id", id}, {"provider", name}, {"error", s}});
//   // {"ts":"2026-12-01T20:31:02.123Z","level":"error",
//   //  "msg":"storing an outcome failed","campaign_id":"cmp_1",...}
//   // text: 2026-12-01T20:31:02.123Z error storing an outcome failed
//   //       campaign_id=cmp_1 provider=meta error="UNAVAILABLE: busy"
//
// Lines go to stderr (the journal, under systemd). Every byte of a message or
// a field is escaped: control characters and invalid UTF-8 can neither break
// a JSON line nor forge a second one. Addresses go into logs only through
// MaskAddress; secrets never do.
//
// Thread-safe, except Configure (call it once at start-up, before other
// threads log).
#ifndef CAMPAIGND_SERVER_LOG_LOG_H_
#define CAMPAIGND_SERVER_LOG_LOG_H_

#include <chrono>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/domain/mutex.h"

namespace campaigns::logging {

enum class Level { kDebug, kInfo, kWarn, kError, kCritical };
enum class Format { kText, kJson };

// "debug", "info", "warn", "error", "critical" (and "warning").
absl::StatusOr<Level> ParseLevel(absl::string_view name);
// "text" or "json".
absl::StatusOr<Format> ParseFormat(absl::string_view name);

// One context field of a line. Integers are JSON numbers; everything else is
// a string (a status as its ToString()).
struct Field {
  Field(absl::string_view k, absl::string_view v) : key(k), value(v) {}
  Field(absl::string_view k, const std::string& v) : key(k), value(v) {}
  Field(absl::string_view k, const char* v) : key(k), value(v) {}
  Field(absl::string_view k, const absl::Status& s)
      : key(k), value(s.ToString()) {}
  template <typename T, typename = std::enable_if_t<std::is_integral_v<T> &&
                                                    !std::is_same_v<T, bool>>>
  Field(absl::string_view k, T v)
      : key(k), value(std::to_string(v)), number(true) {}
  Field(absl::string_view k, bool v)
      : key(k), value(v ? "true" : "false"), number(true) {}
  // A JSON number when finite ("nan" and "inf" are strings).
  Field(absl::string_view k, double v)
      : key(k), value(absl::StrCat(v)), number(std::isfinite(v)) {}
  Field(absl::string_view k, absl::Duration d)
      : key(k), value(absl::FormatDuration(d)) {}

  absl::string_view key;
  std::string value;
  bool number = false;
};

using Fields = std::initializer_list<Field>;

// Sets the format and the lowest level written. Call once, first thing.
void Configure(Format format, Level level);

// Whether lines of `level` are written.
bool Enabled(Level level);

// Writes one line (when `level` is enabled).
void Log(Level level, absl::string_view msg, Fields fields = {});
inline void Debug(absl::string_view msg, Fields fields = {}) {
  Log(Level::kDebug, msg, fields);
}
inline void Info(absl::string_view msg, Fields fields = {}) {
  Log(Level::kInfo, msg, fields);
}
inline void Warn(absl::string_view msg, Fields fields = {}) {
  Log(Level::kWarn, msg, fields);
}
inline void Error(absl::string_view msg, Fields fields = {}) {
  Log(Level::kError, msg, fields);
}
inline void Critical(absl::string_view msg, Fields fields = {}) {
  Log(Level::kCritical, msg, fields);
}

// Enough of an address to tell two apart, not to contact anyone:
// "+14155552323" -> "+1415*****23", "jane@example.com" -> "j***@example.com",
// anything else (chat ids, channel ids) keeps its first two and last two
// characters. Never longer than the address; "" stays "".
std::string MaskAddress(absl::string_view address);

// A budget of lines for a source that can repeat without bound (bad requests,
// unmatched receipts): at most `burst` lines per `per`. Thread-safe.
//
//   static RateLimited limit(5, absl::Seconds(10));
//   int64_t dropped;
//   if (limit.Allow(&dropped)) Warn("...", {{"suppressed", dropped}});
class RateLimited {
 public:
  RateLimited(int burst, absl::Duration per) : burst_(burst), per_(per) {}

  // True when a line may be written now; then `*suppressed` is how many were
  // refused since the last one allowed.
  bool Allow(int64_t* suppressed);

 private:
  const int burst_;
  const absl::Duration per_;
  Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  std::chrono::steady_clock::time_point window_start_ ABSL_GUARDED_BY(mu_);
  int used_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
};

// Routes protobuf's and gRPC's own log lines into this logger: protobuf's
// at warn (a peer's bad UTF-8 is theirs, not ours), rate-limited so a
// client cannot flood the log with bad requests.
void RouteLibraryLogs();

// The line `Log` would write at `time` (tests).
std::string FormatLine(Format format, Level level, absl::Time time,
                       absl::string_view msg, Fields fields);

}  // namespace campaigns::logging

#endif  // CAMPAIGND_SERVER_LOG_LOG_H_
