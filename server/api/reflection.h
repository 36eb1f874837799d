// Server reflection (grpc.reflection.v1 and v1alpha) over the generated
// descriptor pool: every campaigns.v1 service and message, the health
// service, and the error details a failed call carries (google.rpc.ErrorInfo,
// BadRequest, RetryInfo), so grpcurl needs no proto files and prints error
// details decoded. gRPC 1.51's own plugin serves only v1alpha, and only the
// files its binary happened to link; this one serves both versions from one
// implementation and links what it promises (see LinkedDescriptors).
//
//   auto v1 = MakeReflectionV1({"campaigns.v1.CampaignService", ...});
//   auto v1alpha = MakeReflectionV1Alpha({...});
//   builder.RegisterService(v1.get());
//   builder.RegisterService(v1alpha.get());
//
// Thread-safe: each stream is served on its own (synchronous) call; the
// descriptor pool is immutable.
#ifndef CAMPAIGND_SERVER_API_REFLECTION_H_
#define CAMPAIGND_SERVER_API_REFLECTION_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

namespace campaigns::api {

// The fully-qualified names reflection must resolve besides the services:
// referencing them here also keeps their generated files linked (a static
// library member nothing refers to is dropped, and with it its descriptors).
std::vector<std::string> LinkedDescriptors();

// Services answering ListServices: `services` plus grpc.health.v1.Health and
// both reflection services.
std::unique_ptr<grpc::Service> MakeReflectionV1(
    std::vector<std::string> services);
std::unique_ptr<grpc::Service> MakeReflectionV1Alpha(
    std::vector<std::string> services);

}  // namespace campaigns::api

#endif  // CAMPAIGND_SERVER_API_REFLECTION_H_
