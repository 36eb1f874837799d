// Status constructors that carry the API's error reason and offending field.
//
// The domain and storage layers speak absl::Status only. A status made here
// carries its ErrorInfo reason and, for field problems, the field paths as
// payloads; server/api turns them into google.rpc.ErrorInfo and
// google.rpc.BadRequest details. Example:
//
//   if (req.name.empty()) return errors::InvalidField("name", "is required");
//   ...
//   std::string reason = errors::ReasonOf(status);  // "INVALID_REQUEST"
#ifndef CAMPAIGND_SERVER_DOMAIN_ERRORS_H_
#define CAMPAIGND_SERVER_DOMAIN_ERRORS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace campaigns::errors {

// Reasons of API.md's error table.
inline constexpr absl::string_view kInvalidRequest = "INVALID_REQUEST";
inline constexpr absl::string_view kUnauthorized = "UNAUTHORIZED";
inline constexpr absl::string_view kPermissionDenied = "PERMISSION_DENIED";
inline constexpr absl::string_view kNotFound = "NOT_FOUND";
inline constexpr absl::string_view kValidationError = "VALIDATION_ERROR";
inline constexpr absl::string_view kInsufficientCredits =
    "INSUFFICIENT_CREDITS";
inline constexpr absl::string_view kIllegalTransition = "ILLEGAL_TRANSITION";
inline constexpr absl::string_view kRateLimitExceeded = "RATE_LIMIT_EXCEEDED";
inline constexpr absl::string_view kStorageFull = "STORAGE_FULL";
inline constexpr absl::string_view kIdempotencyConflict =
    "IDEMPOTENCY_CONFLICT";
inline constexpr absl::string_view kAlreadyExists = "ALREADY_EXISTS";
inline constexpr absl::string_view kUnimplemented = "UNIMPLEMENTED";
inline constexpr absl::string_view kInternal = "INTERNAL";
inline constexpr absl::string_view kUnavailable = "UNAVAILABLE";
// Internal only (LeaseLost): never an API answer.
inline constexpr absl::string_view kLeaseLost = "LEASE_LOST";

// A field that a request got wrong.
struct FieldViolation {
  std::string field;
  std::string description;
};

// INVALID_ARGUMENT / INVALID_REQUEST naming one field. The message reads
// "<field>: <description>".
absl::Status InvalidField(absl::string_view field,
                          absl::string_view description);
// INVALID_ARGUMENT / INVALID_REQUEST naming several fields (non-empty).
absl::Status InvalidFields(const std::vector<FieldViolation>& violations);

// NOT_FOUND / NOT_FOUND: "<what> <id> not found".
absl::Status NotFound(absl::string_view what, absl::string_view id);

// FAILED_PRECONDITION / VALIDATION_ERROR; `field` may be empty. The message
// reads "<field>: <message>" when a field is named.
absl::Status Validation(absl::string_view field, absl::string_view message);

// FAILED_PRECONDITION / ILLEGAL_TRANSITION.
absl::Status IllegalTransition(absl::string_view message);

// UNAUTHENTICATED / UNAUTHORIZED.
absl::Status Unauthenticated(absl::string_view message);

// PERMISSION_DENIED / PERMISSION_DENIED.
absl::Status PermissionDenied(absl::string_view message);

// ALREADY_EXISTS / IDEMPOTENCY_CONFLICT.
absl::Status IdempotencyConflict(absl::string_view request_id);

// ALREADY_EXISTS / ALREADY_EXISTS naming the field that must be unique.
absl::Status AlreadyExists(absl::string_view field, absl::string_view message);

// FAILED_PRECONDITION / INSUFFICIENT_CREDITS.
absl::Status InsufficientCredits(absl::string_view message);

// RESOURCE_EXHAUSTED / RATE_LIMIT_EXCEEDED, to be retried after
// `retry_after` (see RetryAfterOf).
absl::Status RateLimited(absl::string_view message, absl::Duration retry_after);

// RESOURCE_EXHAUSTED / STORAGE_FULL: the server's disk is full; nothing was
// written, and the same call may succeed after `retry_after` (see
// RetryAfterOf) once space is freed.
absl::Status StorageFull(absl::string_view message, absl::Duration retry_after);

// UNAVAILABLE / UNAVAILABLE: nothing was done, and the same call may
// succeed after `retry_after` (see RetryAfterOf).
absl::Status Unavailable(absl::string_view message, absl::Duration retry_after);

// The retry delay a status carries (RateLimited, StorageFull, Unavailable),
// if any.
std::optional<absl::Duration> RetryAfterOf(const absl::Status& status);

// FAILED_PRECONDITION / LEASE_LOST: the work a lease guards (leases.h) is no
// longer this instance's (another took the lease over, or it expired), or
// no longer to be done (the campaign stopped sending). Internal: the engine
// stops that work; no API call answers it.
absl::Status LeaseLost(absl::string_view message);
bool IsLeaseLost(const absl::Status& status);

// UNIMPLEMENTED / UNIMPLEMENTED.
absl::Status Unimplemented(absl::string_view message);

// `text` as it may be quoted in an error message: at most 64 bytes, cut at a
// UTF-8 character boundary and marked with "..." when cut. User input echoed
// in errors goes through this so a huge value cannot bloat the trailers.
std::string Quote(absl::string_view text);

// Returns `status` with `reason` attached (replacing any earlier one).
absl::Status WithReason(absl::Status status, absl::string_view reason);

// The attached reason, or a default derived from the code ("" for OK).
std::string ReasonOf(const absl::Status& status);

// The attached field violations (empty if none).
std::vector<FieldViolation> FieldViolationsOf(const absl::Status& status);

}  // namespace campaigns::errors

// Propagates a non-OK absl::Status from `expr`.
#define RETURN_IF_ERROR(expr)            \
  do {                                   \
    ::absl::Status _status_ = (expr);    \
    if (!_status_.ok()) return _status_; \
  } while (0)

#define CAMPAIGND_CONCAT_INNER_(a, b) a##b
#define CAMPAIGND_CONCAT_(a, b) CAMPAIGND_CONCAT_INNER_(a, b)

// Declares `lhs` from the value of the absl::StatusOr `rexpr`, or returns its
// status.
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  ASSIGN_OR_RETURN_IMPL_(CAMPAIGND_CONCAT_(_status_or_, __LINE__), lhs, rexpr)
#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                           \
  if (!statusor.ok()) return statusor.status();      \
  lhs = std::move(statusor).value()

#endif  // CAMPAIGND_SERVER_DOMAIN_ERRORS_H_
