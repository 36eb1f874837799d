// campaigns::client::Client: a connection to a campaignd server that runs
// unary RPCs with the API key attached and a deadline set, and hands back
// failures decoded into RpcStatus (see rpc_status.h).
//
// Example:
//
//   campaigns::client::ClientOptions options;
//   options.server = "127.0.0.1:50051";
//   options.api_key = "ck_...";
//   absl::StatusOr<std::unique_ptr<campaigns::client::Client>> client =
//       campaigns::client::Client::Connect(options);
//   if (!client.ok()) { ... }
//   campaigns::v1::GetAccountRequest request;
//   campaigns::v1::Account account;
//   campaigns::client::RpcStatus status = (*client)->Call(
//       &campaigns::v1::AccountService::Stub::GetAccount, request, &account);
//   if (!status.ok()) std::cerr << FormatRpcStatus(status);

#ifndef CAMPAIGND_CLIENT_CLIENT_H_
#define CAMPAIGND_CLIENT_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/rpc_status.h"

namespace campaigns::client {

// How to reach and authenticate to a server. A plain value.
struct ClientOptions {
  // host:port of the gRPC endpoint.
  std::string server = "127.0.0.1:50051";
  // Sent as `authorization: Bearer <api_key>` on every call; empty sends no
  // authorization header.
  std::string api_key;
  // Use TLS (grpc::SslCredentials) instead of plaintext.
  bool tls = false;
  // PEM file with the root certificates to trust; empty = gRPC's defaults.
  // Only used with `tls`.
  std::string ca_file;
  // Deadline of each call, counted from its start.
  absl::Duration timeout = absl::Seconds(30);
};

// A channel to one server plus the per-call settings of ClientOptions.
// Thread-safe: Call() and PrepareContext() may run concurrently.
class Client {
 public:
  // Creates the channel. Fails with INVALID_ARGUMENT when the options are
  // unusable (empty server, unreadable CA file, API key with characters not
  // allowed in metadata, non-positive timeout). Does not contact the server:
  // an unreachable server shows up as UNAVAILABLE on the first call.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(
      const ClientOptions& options);

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Adds the authorization metadata and the deadline to `context`, which
  // must not have been used for a call yet.
  void PrepareContext(grpc::ClientContext* context) const;

  // Runs the unary RPC `method` (e.g. &v1::CampaignService::Stub::GetCampaign)
  // with `request`, filling `*response` on success. Any failure, including
  // the retry-after trailer, comes back decoded.
  template <typename Stub, typename Request, typename Response>
  RpcStatus Call(grpc::Status (Stub::*method)(grpc::ClientContext*,
                                              const Request&, Response*),
                 const Request& request, Response* response) const {
    Stub stub(channel_);
    grpc::ClientContext context;
    PrepareContext(&context);
    grpc::Status status = (stub.*method)(&context, request, response);
    return DecodeRpcStatus(status, context.GetServerTrailingMetadata());
  }

  const ClientOptions& options() const { return options_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel);

  const ClientOptions options_;
  const std::string authorization_;  // "Bearer <key>", or empty
  const std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace campaigns::client

#endif  // CAMPAIGND_CLIENT_CLIENT_H_
