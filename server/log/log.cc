// Logging: the line formats (text and JSON), the spdlog logger on stderr,
// address masking, rate limits, and the hand-over of protobuf's and gRPC's
// own log lines.
#include "server/log/log.h"

#include <google/protobuf/stubs/logging.h>
#include <grpc/support/log.h>

#include <atomic>
#include <cstdio>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace campaigns::logging {
namespace {

std::atomic<Format> g_format{Format::kText};

spdlog::level::level_enum ToSpd(Level level) {
  switch (level) {
    case Level::kDebug:
      return spdlog::level::debug;
    case Level::kInfo:
      return spdlog::level::info;
    case Level::kWarn:
      return spdlog::level::warn;
    case Level::kError:
      return spdlog::level::err;
    case Level::kCritical:
      return spdlog::level::critical;
  }
  return spdlog::level::info;
}

absl::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
    case Level::kCritical:
      return "critical";
  }
  return "info";
}

// Length of the well-formed UTF-8 sequence at s[i], or 0.
size_t Utf8SequenceAt(absl::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  }
  return n;
}

// Appends `s` escaped as the inside of a JSON string: quotes, backslashes
// and control characters escaped, invalid UTF-8 as U+FFFD.
void AppendEscaped(std::string* out, absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out->append("\\\"");
          break;
        case '\\':
          out->append("\\\\");
          break;
        case '\n':
          out->append("\\n");
          break;
        case '\r':
          out->append("\\r");
          break;
        case '\t':
          out->append("\\t");
          break;
        default:
          if (c < 0x20 || c == 0x7F) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", c);
            out->append(buf);
          } else {
            out->push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    const size_t n = Utf8SequenceAt(s, i);
    if (n == 0) {
      out->append("\xEF\xBF\xBD");  // U+FFFD
      ++i;
    } else {
      out->append(s.data() + i, n);
      i += n;
    }
  }
}

// A text-format value: bare when it is one plain word, else quoted and
// escaped like JSON.
void AppendTextValue(std::string* out, absl::string_view v) {
  bool bare = !v.empty();
  for (char ch : v) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == '"' || c == '=' || c == '\\' || c >= 0x7F) {
      bare = false;
      break;
    }
  }
  if (bare) {
    out->append(v.data(), v.size());
    return;
  }
  out->push_back('"');
  AppendEscaped(out, v);
  out->push_back('"');
}

std::shared_ptr<spdlog::logger> MakeLogger() {
  auto logger = std::make_shared<spdlog::logger>(
      "campaignd", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_pattern("%v");
  logger->flush_on(spdlog::level::trace);  // one line, one write
  return logger;
}

}  // namespace

absl::StatusOr<Level> ParseLevel(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "debug") return Level::kDebug;
  if (n == "info") return Level::kInfo;
  if (n == "warn" || n == "warning") return Level::kWarn;
  if (n == "error") return Level::kError;
  if (n == "critical") return Level::kCritical;
  return absl::InvalidArgumentError(absl::StrCat(
      "log_level: expected debug, info, warn, error or critical, got \"", name,
      "\""));
}

absl::StatusOr<Format> ParseFormat(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "text") return Format::kText;
  if (n == "json") return Format::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("log_format: expected text or json, got \"", name, "\""));
}

void Configure(Format format, Level level) {
  g_format.store(format);
  std::shared_ptr<spdlog::logger> logger = MakeLogger();
  logger->set_level(ToSpd(level));
  spdlog::set_default_logger(std::move(logger));
}

bool Enabled(Level level) { return spdlog::should_log(ToSpd(level)); }

std::string FormatLine(Format format, Level level, absl::Time time,
                       absl::string_view msg, Fields fields) {
  std::string out;
  out.reserve(64 + msg.size() + 24 * fields.size());
  const std::string ts =
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
  if (format == Format::kJson) {
    absl::StrAppend(&out, "{\"ts\":\"", ts, "\",\"level\":\"", LevelName(level),
                    "\",\"msg\":\"");
    AppendEscaped(&out, msg);
    out.push_back('"');
    for (const Field& f : fields) {
      out.append(",\"");
      AppendEscaped(&out, f.key);
      out.append("\":");
      if (f.number) {
        out.append(f.value);
      } else {
        out.push_back('"');
        AppendEscaped(&out, f.value);
        out.push_back('"');
      }
    }
    out.push_back('}');
    return out;
  }
  absl::StrAppend(&out, ts, " ", LevelName(level), " ");
  // The message is the reader's sentence: escaped, never quoted.
  std::string escaped;
  AppendEscaped(&escaped, msg);
  out.append(escaped);
  for (const Field& f : fields) {
    out.push_back(' ');
    AppendEscaped(&out, f.key);
    out.push_back('=');
    AppendTextValue(&out, f.value);
  }
  return out;
}

void Log(Level level, absl::string_view msg, Fields fields) {
  if (!Enabled(level)) return;
  const std::string line =
      FormatLine(g_format.load(), level, absl::Now(), msg, fields);
  spdlog::default_logger_raw()->log(ToSpd(level), "{}", line);
}

std::string MaskAddress(absl::string_view a) {
  if (a.empty()) return "";
  std::string out(a);
  const size_t at = a.rfind('@');
  if (at != absl::string_view::npos && at > 0) {
    // Keep the first character of the local part and the domain.
    for (size_t i = 1; i < at; ++i) out[i] = '*';
    if (at == 1) out[0] = '*';
    return out;
  }
  if (a[0] == '+' && a.size() >= 8) {
    // E.164: country code and area code stay (the first five), and the
    // last two digits.
    for (size_t i = 5; i + 2 < a.size(); ++i) out[i] = '*';
    return out;
  }
  if (a.size() <= 4) return std::string(a.size(), '*');
  for (size_t i = 2; i + 2 < a.size(); ++i) out[i] = '*';
  return out;
}

bool RateLimited::Allow(int64_t* suppressed) {
  MutexLock lock(&mu_);
  // Monotonic: a wall clock stepped back must not silence the log.
  const std::chrono::steady_clock::time_point now =
      std::chrono::steady_clock::now();
  if (!started_ || now - window_start_ >= absl::ToChronoNanoseconds(per_)) {
    started_ = true;
    window_start_ = now;
    used_ = 0;
  }
  if (used_ >= burst_) {
    ++suppressed_;
    return false;
  }
  ++used_;
  *suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

namespace {

// The budgets of library lines: what a client's bad requests can take of
// the log (protobuf's warnings), and a separate one for errors, so that
// such a flood never hides a real error.
RateLimited& LibraryLimit(Level level) {
  static RateLimited* noise = new RateLimited(10, absl::Seconds(10));
  static RateLimited* errors = new RateLimited(20, absl::Seconds(10));
  return level >= Level::kError ? *errors : *noise;
}

void OnProtobufLog(google::protobuf::LogLevel level, const char* file, int line,
                   const std::string& message) {
  // Protobuf's errors at run time are parse errors of a peer's bytes.
  const Level ours =
      level >= google::protobuf::LOGLEVEL_FATAL     ? Level::kCritical
      : level >= google::protobuf::LOGLEVEL_WARNING ? Level::kWarn
                                                    : Level::kDebug;
  int64_t suppressed = 0;
  if (!Enabled(ours) || !LibraryLimit(ours).Allow(&suppressed)) return;
  Log(ours, message,
      {{"source", "protobuf"},
       {"at", absl::StrCat(file, ":", line)},
       {"suppressed", suppressed}});
}

void OnGrpcLog(gpr_log_func_args* args) {
  const Level ours = args->severity == GPR_LOG_SEVERITY_ERROR  ? Level::kError
                     : args->severity == GPR_LOG_SEVERITY_INFO ? Level::kInfo
                                                               : Level::kDebug;
  int64_t suppressed = 0;
  if (!Enabled(ours) || !LibraryLimit(ours).Allow(&suppressed)) return;
  Log(ours, args->message,
      {{"source", "grpc"},
       {"at", absl::StrCat(args->file, ":", args->line)},
       {"suppressed", suppressed}});
}

}  // namespace

void RouteLibraryLogs() {
  google::protobuf::SetLogHandler(&OnProtobufLog);
  gpr_set_log_function(&OnGrpcLog);
}

}  // namespace campaigns::logging
