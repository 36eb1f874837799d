// absl::Status to grpc::Status with google.rpc error details (status.h).
#include "server/api/status.h"

#include <algorithm>
#include <string>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/error_info.pb.h"
#include "google/rpc/status.pb.h"
#include "server/domain/errors.h"

namespace campaigns::api {

grpc::Status ToGrpcStatus(const absl::Status& status,
                          std::optional<absl::Duration> retry_after) {
  if (status.ok()) return grpc::Status::OK;
  google::rpc::Status rpc_status;
  rpc_status.set_code(static_cast<int>(status.code()));
  rpc_status.set_message(std::string(status.message()));

  google::rpc::ErrorInfo info;
  info.set_reason(errors::ReasonOf(status));
  info.set_domain(kErrorDomain);
  std::vector<errors::FieldViolation> fields =
      errors::FieldViolationsOf(status);
  if (!fields.empty()) (*info.mutable_metadata())["field"] = fields[0].field;
  rpc_status.add_details()->PackFrom(info);

  if (!fields.empty()) {
    google::rpc::BadRequest bad_request;
    for (const errors::FieldViolation& f : fields) {
      auto* v = bad_request.add_field_violations();
      v->set_field(f.field);
      v->set_description(f.description);
    }
    rpc_status.add_details()->PackFrom(bad_request);
  }
  if (!retry_after) retry_after = errors::RetryAfterOf(status);
  if (retry_after) {
    google::rpc::RetryInfo retry;
    const int64_t ms = absl::ToInt64Milliseconds(*retry_after);
    retry.mutable_retry_delay()->set_seconds(ms / 1000);
    retry.mutable_retry_delay()->set_nanos(static_cast<int32_t>(ms % 1000) *
                                           1000000);
    rpc_status.add_details()->PackFrom(retry);
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()),
                      rpc_status.SerializeAsString());
}

grpc::Status ToGrpcStatus(const absl::Status& status,
                          grpc::ServerContext* ctx) {
  if (std::optional<absl::Duration> retry = errors::RetryAfterOf(status)) {
    const int64_t seconds = std::max<int64_t>(
        1, absl::ToInt64Seconds(absl::Ceil(*retry, absl::Seconds(1))));
    ctx->AddTrailingMetadata("retry-after", std::to_string(seconds));
  }
  return ToGrpcStatus(status);
}

}  // namespace campaigns::api
