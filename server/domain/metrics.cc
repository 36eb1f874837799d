// Metrics: the no-op instance and the label names of the outcome enums.
#include "server/domain/metrics.h"

namespace campaigns {

Metrics* Metrics::None() {
  static Metrics* none = new Metrics();
  return none;
}

absl::string_view MessageOutcomeName(MessageOutcome o) {
  switch (o) {
    case MessageOutcome::kAccepted:
      return "accepted";
    case MessageOutcome::kTransient:
      return "transient";
    case MessageOutcome::kPermanent:
      return "permanent";
    case MessageOutcome::kSkipped:
      return "skipped";
    case MessageOutcome::kDuplicate:
      return "duplicate";
  }
  return "unknown";
}

absl::string_view ImportRowResultName(ImportRowResult r) {
  switch (r) {
    case ImportRowResult::kImported:
      return "imported";
    case ImportRowResult::kDuplicate:
      return "duplicate";
    case ImportRowResult::kInvalid:
      return "invalid";
    case ImportRowResult::kSuppressed:
      return "suppressed";
  }
  return "unknown";
}

absl::string_view ReceiptOutcomeName(ReceiptOutcome r) {
  switch (r) {
    case ReceiptOutcome::kDelivered:
      return "delivered";
    case ReceiptOutcome::kRead:
      return "read";
    case ReceiptOutcome::kFailed:
      return "failed";
    case ReceiptOutcome::kUnmatched:
      return "unmatched";
    case ReceiptOutcome::kIgnored:
      return "ignored";
  }
  return "unknown";
}

}  // namespace campaigns
