// Status constructors carrying the API's error reason and field.
#include "server/domain/errors.h"

#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace campaigns::errors {
namespace {

// Payload type URLs private to this process; server/api reads them back
// through ReasonOf / FieldViolationsOf only.
constexpr absl::string_view kReasonUrl = "campaignd/reason";
constexpr absl::string_view kFieldsUrl = "campaignd/fields";
constexpr absl::string_view kRetryUrl = "campaignd/retry-after-us";

absl::Status Make(absl::StatusCode code, absl::string_view reason,
                  absl::string_view message) {
  absl::Status status(code, message);
  status.SetPayload(kReasonUrl, absl::Cord(reason));
  return status;
}

// One violation per line, "<field>\t<description>", each part C-escaped so
// that user text quoted in a description cannot split or merge lines.
std::string Encode(absl::string_view field, absl::string_view description) {
  return absl::StrCat(absl::CEscape(field), "\t", absl::CEscape(description));
}

}  // namespace

absl::Status InvalidField(absl::string_view field,
                          absl::string_view description) {
  return InvalidFields({{std::string(field), std::string(description)}});
}

absl::Status InvalidFields(const std::vector<FieldViolation>& violations) {
  std::vector<std::string> parts;
  std::vector<std::string> encoded;
  for (const FieldViolation& v : violations) {
    parts.push_back(absl::StrCat(v.field, ": ", v.description));
    encoded.push_back(Encode(v.field, v.description));
  }
  absl::Status status = Make(absl::StatusCode::kInvalidArgument,
                             kInvalidRequest, absl::StrJoin(parts, "; "));
  status.SetPayload(kFieldsUrl, absl::Cord(absl::StrJoin(encoded, "\n")));
  return status;
}

absl::Status InsufficientCredits(absl::string_view message) {
  return Make(absl::StatusCode::kFailedPrecondition, kInsufficientCredits,
              message);
}

namespace {

// `code` / `reason`, carrying the delay RetryAfterOf reads.
absl::Status WithRetryAfter(absl::StatusCode code, absl::string_view reason,
                            absl::string_view message,
                            absl::Duration retry_after) {
  absl::Status status = Make(code, reason, message);
  status.SetPayload(
      kRetryUrl,
      absl::Cord(absl::StrCat(absl::ToInt64Microseconds(retry_after))));
  return status;
}

}  // namespace

absl::Status RateLimited(absl::string_view message,
                         absl::Duration retry_after) {
  return WithRetryAfter(absl::StatusCode::kResourceExhausted,
                        kRateLimitExceeded, message, retry_after);
}

absl::Status StorageFull(absl::string_view message,
                         absl::Duration retry_after) {
  return WithRetryAfter(absl::StatusCode::kResourceExhausted, kStorageFull,
                        message, retry_after);
}

absl::Status Unavailable(absl::string_view message,
                         absl::Duration retry_after) {
  return WithRetryAfter(absl::StatusCode::kUnavailable, kUnavailable, message,
                        retry_after);
}

std::optional<absl::Duration> RetryAfterOf(const absl::Status& status) {
  auto payload = status.GetPayload(kRetryUrl);
  int64_t us = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &us)) {
    return std::nullopt;
  }
  return absl::Microseconds(us);
}

std::string Quote(absl::string_view text) {
  constexpr size_t kMax = 64;
  if (text.size() <= kMax) return std::string(text);
  size_t cut = kMax;
  // Back off over UTF-8 continuation bytes (10xxxxxx).
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  return absl::StrCat(text.substr(0, cut), "...");
}

absl::Status NotFound(absl::string_view what, absl::string_view id) {
  return Make(absl::StatusCode::kNotFound, kNotFound,
              absl::StrCat(what, " ", Quote(id), " not found"));
}

absl::Status Validation(absl::string_view field, absl::string_view message) {
  absl::Status status =
      Make(absl::StatusCode::kFailedPrecondition, kValidationError,
           field.empty() ? std::string(message)
                         : absl::StrCat(field, ": ", message));
  if (!field.empty()) {
    status.SetPayload(kFieldsUrl, absl::Cord(Encode(field, message)));
  }
  return status;
}

absl::Status IllegalTransition(absl::string_view message) {
  return Make(absl::StatusCode::kFailedPrecondition, kIllegalTransition,
              message);
}

absl::Status Unauthenticated(absl::string_view message) {
  return Make(absl::StatusCode::kUnauthenticated, kUnauthorized, message);
}

absl::Status PermissionDenied(absl::string_view message) {
  return Make(absl::StatusCode::kPermissionDenied, kPermissionDenied, message);
}

absl::Status IdempotencyConflict(absl::string_view request_id) {
  absl::Status status =
      Make(absl::StatusCode::kAlreadyExists, kIdempotencyConflict,
           absl::StrCat("request_id ", Quote(request_id),
                        " was already used with a different request body"));
  status.SetPayload(
      kFieldsUrl,
      absl::Cord(Encode("request_id", "reused with a different body")));
  return status;
}

absl::Status AlreadyExists(absl::string_view field, absl::string_view message) {
  absl::Status status =
      Make(absl::StatusCode::kAlreadyExists, kAlreadyExists, message);
  status.SetPayload(kFieldsUrl, absl::Cord(Encode(field, message)));
  return status;
}

absl::Status LeaseLost(absl::string_view message) {
  return Make(absl::StatusCode::kFailedPrecondition, kLeaseLost, message);
}

bool IsLeaseLost(const absl::Status& status) {
  return status.code() == absl::StatusCode::kFailedPrecondition &&
         ReasonOf(status) == kLeaseLost;
}

absl::Status Unimplemented(absl::string_view message) {
  return Make(absl::StatusCode::kUnimplemented, kUnimplemented, message);
}

absl::Status WithReason(absl::Status status, absl::string_view reason) {
  if (!status.ok()) status.SetPayload(kReasonUrl, absl::Cord(reason));
  return status;
}

std::string ReasonOf(const absl::Status& status) {
  if (status.ok()) return "";
  if (auto payload = status.GetPayload(kReasonUrl)) {
    return std::string(*payload);
  }
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return std::string(kInvalidRequest);
    case absl::StatusCode::kUnauthenticated:
      return std::string(kUnauthorized);
    case absl::StatusCode::kPermissionDenied:
      return std::string(kPermissionDenied);
    case absl::StatusCode::kNotFound:
      return std::string(kNotFound);
    case absl::StatusCode::kFailedPrecondition:
      return std::string(kValidationError);
    case absl::StatusCode::kResourceExhausted:
      return std::string(kRateLimitExceeded);
    case absl::StatusCode::kAlreadyExists:
      return std::string(kAlreadyExists);
    case absl::StatusCode::kUnimplemented:
      return std::string(kUnimplemented);
    case absl::StatusCode::kUnavailable:
      return std::string(kUnavailable);
    default:
      return std::string(kInternal);
  }
}

std::vector<FieldViolation> FieldViolationsOf(const absl::Status& status) {
  std::vector<FieldViolation> out;
  auto payload = status.GetPayload(kFieldsUrl);
  if (!payload) return out;
  for (absl::string_view line :
       absl::StrSplit(std::string(*payload), '\n', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv =
        absl::StrSplit(line, absl::MaxSplits('\t', 1));
    FieldViolation v;
    if (!absl::CUnescape(kv.first, &v.field) ||
        !absl::CUnescape(kv.second, &v.description)) {
      continue;
    }
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace campaigns::errors
