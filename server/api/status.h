// Maps absl::Status (with the reasons and fields of server/domain/errors.h)
// to grpc::Status with google.rpc details: ErrorInfo (domain "campaigns.v1"),
// BadRequest for field violations, RetryInfo when a retry delay is given.
//
//   grpc::Status s = ToGrpcStatus(errors::InvalidField("limit", "too big"));
//
// Thread-safe (pure functions).
#ifndef CAMPAIGND_SERVER_API_STATUS_H_
#define CAMPAIGND_SERVER_API_STATUS_H_

#include <grpcpp/support/status.h>

#include <optional>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace campaigns::api {

inline constexpr char kErrorDomain[] = "campaigns.v1";

// `retry_after`, when set, adds google.rpc.RetryInfo.
grpc::Status ToGrpcStatus(const absl::Status& status,
                          std::optional<absl::Duration> retry_after = {});

}  // namespace campaigns::api

#endif  // CAMPAIGND_SERVER_API_STATUS_H_
