// RpcStatus: a failed (or successful) gRPC call's status with the campaignd
// error details decoded: ErrorInfo (reason, domain, metadata), BadRequest
// field violations, RetryInfo and the `retry-after` trailer.
//
// The server sends google.rpc.Status in grpc::Status::error_details(), its
// details packed as Any: google.rpc.ErrorInfo (proto/google/rpc/
// error_info.proto, as Debian's googleapis predates it), BadRequest and
// RetryInfo.
//
// Example:
//
//   RpcStatus status = DecodeRpcStatus(grpc_status, trailers);
//   if (!status.ok()) std::cerr << FormatRpcStatus(status);
//   // error: INVALID_ARGUMENT (INVALID_REQUEST): limit: must be at most 100
//   //   field limit: must be at most 100

#ifndef CAMPAIGND_CLIENT_RPC_STATUS_H_
#define CAMPAIGND_CLIENT_RPC_STATUS_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace campaigns::client {

// One google.rpc.BadRequest.FieldViolation. A plain value.
struct FieldViolation {
  std::string field;
  std::string description;
};

// A call's outcome. A plain value: not synchronized, copy it to share.
struct RpcStatus {
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string message;
  // From ErrorInfo; empty when the server attached none.
  std::string reason;
  std::string domain;
  std::map<std::string, std::string> metadata;
  // From BadRequest.
  std::vector<FieldViolation> field_violations;
  // From RetryInfo.retry_delay, else from the `retry-after` trailer (seconds).
  std::optional<absl::Duration> retry_delay;

  bool ok() const { return code == grpc::StatusCode::OK; }
  // True for failures that mean the server could not be reached or did not
  // answer in time (UNAVAILABLE, DEADLINE_EXCEEDED), as opposed to a refusal.
  bool unreachable() const;
};

// Decodes `status` and the details it carries. Undecodable details are
// skipped; the code and message are always kept.
RpcStatus DecodeRpcStatus(const grpc::Status& status);
RpcStatus DecodeRpcStatus(
    const grpc::Status& status,
    const std::multimap<grpc::string_ref, grpc::string_ref>& trailers);

// "INVALID_ARGUMENT", "NOT_FOUND", ...; "CODE_<n>" for unknown codes.
std::string StatusCodeName(grpc::StatusCode code);

// Human-readable, newline-terminated lines:
//   error: CODE (REASON): message
//     field F: description        (one per field violation)
//     K: V                        (one per ErrorInfo metadata entry)
//     retry after D
std::string FormatRpcStatus(const RpcStatus& status);

// One JSON object (no trailing newline):
//   {"error":{"code":"NOT_FOUND","message":"...","reason":"NOT_FOUND",
//    "domain":"campaigns.v1","metadata":{},"fieldViolations":[],
//    "retryDelay":"2s"}}
// retryDelay is present only when known, in google.protobuf.Duration's JSON
// form; "hints" (what to check) only when `hints` is not empty.
std::string RpcStatusToJson(const RpcStatus& status,
                            const std::vector<std::string>& hints = {});

// A usage error as one JSON object of the same shape (no trailing newline):
//   {"error":{"code":"USAGE","message":"..."}}
std::string UsageErrorJson(const std::string& message);

}  // namespace campaigns::client

#endif  // CAMPAIGND_CLIENT_RPC_STATUS_H_
