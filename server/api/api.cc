// Api: builds the services and registers every RPC handler (api.h).
#include "server/api/api.h"

#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "server/api/watch.h"
#include "server/domain/errors.h"

namespace campaigns::api {

std::vector<RawService*> Api::raw_services() {
  return {&account_service_,  &campaign_service_, &contact_service_,
          &delivery_service_, &sender_service_,   &suppression_service_,
          &template_service_};
}

std::vector<grpc::Service*> Api::services() {
  std::vector<grpc::Service*> out;
  for (RawService* s : raw_services()) out.push_back(s->grpc_service());
  return out;
}

std::vector<std::string> Api::service_names() {
  std::vector<std::string> out;
  for (RawService* s : raw_services()) {
    out.push_back(s->descriptor()->full_name());
  }
  return out;
}

void Api::Register(Registrar& registrar) {
  RegisterAccounts(registrar);
  RegisterCatalog(registrar);
  RegisterCampaigns(registrar);
  RegisterSuppressions(registrar);
  RegisterContacts(registrar);
  RegisterDelivery(registrar);
}

void Api::CancelWatches() {
  if (watch_ != nullptr) watch_->CancelAll();
}

absl::StatusOr<Principal> Api::Authenticate(const grpc::ServerContext& ctx) {
  std::string secret;
  std::optional<std::string> auth_id;
  for (const auto& [key, value] : ctx.client_metadata()) {
    absl::string_view k(key.data(), key.size());
    absl::string_view v(value.data(), value.size());
    if (k == "authorization") {
      constexpr absl::string_view kBearer = "bearer ";
      if (v.size() > kBearer.size() &&
          absl::EqualsIgnoreCase(v.substr(0, kBearer.size()), kBearer)) {
        secret =
            std::string(absl::StripAsciiWhitespace(v.substr(kBearer.size())));
      }
    } else if ((k == "x-api-key" || k == "x-auth-token") && secret.empty()) {
      secret = std::string(absl::StripAsciiWhitespace(v));
    } else if (k == "x-auth-id") {
      auth_id = std::string(absl::StripAsciiWhitespace(v));
    }
  }
  const absl::Status unauthenticated =
      errors::Unauthenticated("missing, unknown or revoked API key");
  if (secret.empty()) return unauthenticated;
  absl::StatusOr<Principal> principal = store_->Authenticate(secret);
  if (!principal.ok()) return principal;
  // Seed 003 sends its account id beside the token: it must be the key's.
  if (auth_id && *auth_id != principal->account_id) return unauthenticated;
  RETURN_IF_ERROR(key_limiter_.Admit(principal->key_id, absl::Now()));
  return principal;
}

}  // namespace campaigns::api
