// Maps absl::Status (with the reasons and fields of server/domain/errors.h)
// to grpc::Status with google.rpc details: ErrorInfo (domain "campaigns.v1"),
// BadRequest for field violations, RetryInfo when a retry delay is given.
//
//   grpc::Status s = ToGrpcStatus(errors::InvalidField("limit", "too big"));
//
// Thread-safe (pure functions).
#ifndef CAMPAIGND_SERVER_API_STATUS_H_
#define CAMPAIGND_SERVER_API_STATUS_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include <optional>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace campaigns::api {

inline constexpr char kErrorDomain[] = "campaigns.v1";

// `retry_after` (by default the status's own, errors::RetryAfterOf), when
// set, adds google.rpc.RetryInfo.
grpc::Status ToGrpcStatus(const absl::Status& status,
                          std::optional<absl::Duration> retry_after = {});

// The same for a call being finished with `ctx`: a status with a retry
// delay also sets the `retry-after` trailer (whole seconds, rounded up).
grpc::Status ToGrpcStatus(const absl::Status& status, grpc::ServerContext* ctx);

}  // namespace campaigns::api

#endif  // CAMPAIGND_SERVER_API_STATUS_H_
