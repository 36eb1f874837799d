// Server reflection v1 and v1alpha: one implementation over the generated
// descriptor pool, for the two wire-identical versions of the protocol.
#include "server/api/reflection.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

#include <set>
#include <utility>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/error_info.pb.h"
#include "grpc/health/v1/health.pb.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"

namespace campaigns::api {
namespace {

namespace pb = google::protobuf;

constexpr const char* kHealthService = "grpc.health.v1.Health";
constexpr const char* kReflectionV1 = "grpc.reflection.v1.ServerReflection";
constexpr const char* kReflectionV1Alpha =
    "grpc.reflection.v1alpha.ServerReflection";

// Reflection answers for one protocol version's request and response
// types. Not thread-safe (one per stream).
template <typename Request, typename Response>
class Reflector {
 public:
  explicit Reflector(const std::vector<std::string>* services)
      : services_(services), pool_(pb::DescriptorPool::generated_pool()) {}

  // The answer to `req`: what it asks for, or error_response NOT_FOUND.
  Response Answer(const Request& req) {
    Response out;
    sent_.clear();
    out.set_valid_host(req.host());
    *out.mutable_original_request() = req;
    grpc::Status status;
    switch (req.message_request_case()) {
      case Request::kFileByFilename:
        status = FileByName(req.file_by_filename(), &out);
        break;
      case Request::kFileContainingSymbol:
        status = FileContainingSymbol(req.file_containing_symbol(), &out);
        break;
      case Request::kFileContainingExtension:
        status = FileContainingExtension(
            req.file_containing_extension().containing_type(),
            req.file_containing_extension().extension_number(), &out);
        break;
      case Request::kAllExtensionNumbersOfType:
        status = AllExtensionNumbers(req.all_extension_numbers_of_type(), &out);
        break;
      case Request::kListServices:
        for (const std::string& name : *services_) {
          out.mutable_list_services_response()->add_service()->set_name(name);
        }
        break;
      default:
        status = grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                              "unknown reflection request");
    }
    if (!status.ok()) {
      out.mutable_error_response()->set_error_code(status.error_code());
      out.mutable_error_response()->set_error_message(status.error_message());
    }
    return out;
  }

 private:
  grpc::Status FileByName(const std::string& name, Response* out) {
    const pb::FileDescriptor* file = pool_->FindFileByName(name);
    if (file == nullptr) return NotFound("file not found: ", name);
    AddFile(file, out);
    return grpc::Status::OK;
  }

  grpc::Status FileContainingSymbol(const std::string& symbol, Response* out) {
    const pb::FileDescriptor* file = pool_->FindFileContainingSymbol(symbol);
    if (file == nullptr) return NotFound("symbol not found: ", symbol);
    AddFile(file, out);
    return grpc::Status::OK;
  }

  grpc::Status FileContainingExtension(const std::string& type, int number,
                                       Response* out) {
    const pb::Descriptor* desc = pool_->FindMessageTypeByName(type);
    if (desc == nullptr) return NotFound("type not found: ", type);
    const pb::FieldDescriptor* ext = pool_->FindExtensionByNumber(desc, number);
    if (ext == nullptr) {
      return NotFound("extension not found: ",
                      type + "." + std::to_string(number));
    }
    AddFile(ext->file(), out);
    return grpc::Status::OK;
  }

  grpc::Status AllExtensionNumbers(const std::string& type, Response* out) {
    const pb::Descriptor* desc = pool_->FindMessageTypeByName(type);
    if (desc == nullptr) return NotFound("type not found: ", type);
    std::vector<const pb::FieldDescriptor*> extensions;
    pool_->FindAllExtensions(desc, &extensions);
    auto* numbers = out->mutable_all_extension_numbers_response();
    numbers->set_base_type_name(desc->full_name());
    for (const pb::FieldDescriptor* ext : extensions) {
      numbers->add_extension_number(ext->number());
    }
    return grpc::Status::OK;
  }

  // `file` and each file it imports (transitively), once per answer: a
  // client needs them all to build the descriptor. (Like gRPC's own
  // reflection, files sent in earlier answers are sent again.)
  void AddFile(const pb::FileDescriptor* file, Response* out) {
    if (!sent_.insert(file->name()).second) return;
    pb::FileDescriptorProto proto;
    file->CopyTo(&proto);
    out->mutable_file_descriptor_response()->add_file_descriptor_proto(
        proto.SerializeAsString());
    for (int i = 0; i < file->dependency_count(); ++i) {
      AddFile(file->dependency(i), out);
    }
  }

  static grpc::Status NotFound(const char* what, const std::string& name) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, what + name);
  }

  const std::vector<std::string>* services_;
  const pb::DescriptorPool* pool_;
  std::set<std::string> sent_;  // files already in the current answer
};

template <typename Base, typename Request, typename Response>
class ReflectionService final : public Base {
 public:
  explicit ReflectionService(std::vector<std::string> services)
      : services_(std::move(services)) {}

  grpc::Status ServerReflectionInfo(
      grpc::ServerContext* /*ctx*/,
      grpc::ServerReaderWriter<Response, Request>* stream) override {
    Reflector<Request, Response> reflector(&services_);
    Request req;
    while (stream->Read(&req)) {
      if (!stream->Write(reflector.Answer(req))) break;
    }
    return grpc::Status::OK;
  }

 private:
  const std::vector<std::string> services_;
};

std::vector<std::string> WithBuiltIns(std::vector<std::string> services) {
  for (const char* name : {kHealthService, kReflectionV1, kReflectionV1Alpha}) {
    services.emplace_back(name);
  }
  return services;
}

}  // namespace

std::vector<std::string> LinkedDescriptors() {
  return {
      grpc::health::v1::HealthCheckRequest::descriptor()
          ->file()
          ->FindServiceByName("Health")
          ->full_name(),
      google::rpc::ErrorInfo::descriptor()->full_name(),
      google::rpc::BadRequest::descriptor()->full_name(),
      google::rpc::RetryInfo::descriptor()->full_name(),
  };
}

std::unique_ptr<grpc::Service> MakeReflectionV1(
    std::vector<std::string> services) {
  namespace r = grpc::reflection::v1;
  return std::make_unique<ReflectionService<r::ServerReflection::Service,
                                            r::ServerReflectionRequest,
                                            r::ServerReflectionResponse>>(
      WithBuiltIns(std::move(services)));
}

std::unique_ptr<grpc::Service> MakeReflectionV1Alpha(
    std::vector<std::string> services) {
  namespace r = grpc::reflection::v1alpha;
  return std::make_unique<ReflectionService<r::ServerReflection::Service,
                                            r::ServerReflectionRequest,
                                            r::ServerReflectionResponse>>(
      WithBuiltIns(std::move(services)));
}

}  // namespace campaigns::api
