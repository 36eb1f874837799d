// RpcStatus: a gRPC call's status with campaignd's error details decoded.
#include "client/rpc_status.h"

#include <google/protobuf/any.pb.h>
#include <google/protobuf/duration.pb.h>
#include <google/protobuf/util/time_util.h>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/error_info.pb.h"
#include "google/rpc/status.pb.h"

namespace campaigns::client {
namespace {

// Type URLs under which the server may pack campaigns.v1.ErrorInfo.
bool IsErrorInfo(const google::protobuf::Any& any) {
  return absl::EndsWith(any.type_url(), "/google.rpc.ErrorInfo") ||
         absl::EndsWith(any.type_url(), "/campaigns.v1.ErrorInfo");
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

void DecodeDetails(const std::string& serialized, RpcStatus* out) {
  google::rpc::Status status;
  if (serialized.empty() || !status.ParseFromString(serialized)) return;
  for (const google::protobuf::Any& any : status.details()) {
    google::rpc::BadRequest bad_request;
    google::rpc::RetryInfo retry_info;
    if (IsErrorInfo(any)) {
      google::rpc::ErrorInfo info;
      if (!info.ParseFromString(any.value())) continue;
      out->reason = info.reason();
      out->domain = info.domain();
      out->metadata.insert(info.metadata().begin(), info.metadata().end());
    } else if (any.UnpackTo(&bad_request)) {
      for (const auto& v : bad_request.field_violations()) {
        out->field_violations.push_back({v.field(), v.description()});
      }
    } else if (any.UnpackTo(&retry_info) && retry_info.has_retry_delay()) {
      out->retry_delay = FromProto(retry_info.retry_delay());
    }
  }
}

}  // namespace

bool RpcStatus::unreachable() const {
  return code == grpc::StatusCode::UNAVAILABLE ||
         code == grpc::StatusCode::DEADLINE_EXCEEDED;
}

RpcStatus DecodeRpcStatus(const grpc::Status& status) {
  RpcStatus out;
  out.code = status.error_code();
  out.message = status.error_message();
  if (!status.ok()) DecodeDetails(status.error_details(), &out);
  return out;
}

RpcStatus DecodeRpcStatus(
    const grpc::Status& status,
    const std::multimap<grpc::string_ref, grpc::string_ref>& trailers) {
  RpcStatus out = DecodeRpcStatus(status);
  if (out.ok() || out.retry_delay.has_value()) return out;
  auto it = trailers.find("retry-after");
  int64_t seconds = 0;
  if (it != trailers.end() &&
      absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()),
                       &seconds) &&
      seconds >= 0) {
    out.retry_delay = absl::Seconds(seconds);
  }
  return out;
}

std::string StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return absl::StrCat("CODE_", static_cast<int>(code));
  }
}

std::string FormatRpcStatus(const RpcStatus& status) {
  std::string out = absl::StrCat("error: ", StatusCodeName(status.code));
  if (!status.reason.empty()) absl::StrAppend(&out, " (", status.reason, ")");
  if (!status.message.empty()) absl::StrAppend(&out, ": ", status.message);
  absl::StrAppend(&out, "\n");
  for (const FieldViolation& v : status.field_violations) {
    absl::StrAppend(&out, "  field ", v.field, ": ", v.description, "\n");
  }
  for (const auto& [key, value] : status.metadata) {
    absl::StrAppend(&out, "  ", key, ": ", value, "\n");
  }
  if (status.retry_delay.has_value()) {
    absl::StrAppend(&out, "  retry after ",
                    absl::FormatDuration(*status.retry_delay), "\n");
  }
  return out;
}

std::string UsageErrorJson(const std::string& message) {
  nlohmann::ordered_json error = {{"code", "USAGE"}, {"message", message}};
  return nlohmann::ordered_json{{"error", error}}.dump(
      -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string RpcStatusToJson(const RpcStatus& status,
                            const std::vector<std::string>& hints) {
  nlohmann::ordered_json violations = nlohmann::ordered_json::array();
  for (const FieldViolation& v : status.field_violations) {
    violations.push_back({{"field", v.field}, {"description", v.description}});
  }
  nlohmann::ordered_json error = {
      {"code", StatusCodeName(status.code)},
      {"message", status.message},
      {"reason", status.reason},
      {"domain", status.domain},
      {"metadata", status.metadata},
      {"fieldViolations", violations},
  };
  if (status.retry_delay.has_value()) {
    google::protobuf::Duration d;
    absl::Duration rest = *status.retry_delay;
    d.set_seconds(absl::IDivDuration(rest, absl::Seconds(1), &rest));
    d.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(rest)));
    error["retryDelay"] = google::protobuf::util::TimeUtil::ToString(d);
  }
  if (!hints.empty()) error["hints"] = hints;
  return nlohmann::ordered_json{{"error", error}}.dump(
      -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace campaigns::client
