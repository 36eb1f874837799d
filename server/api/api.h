// Api: every campaigns.v1 service as completion-queue handlers over the Store.
//
// Handlers are thin: they check the request's shape, convert proto <-> domain
// and call the Store; errors are absl::Status with reasons (server/domain/
// errors.h) that the call machinery maps to gRPC details. Each API key's
// calls are limited (key_limiter.h) where they are authenticated.
//
//   Api api(&store, &engine, &providers,
//           KeyRateLimit{/*rate=*/100, /*burst=*/200});
//   for (grpc::Service* s : api.services()) builder.RegisterService(s);
//   api.Register(registrar);
//
// Thread-safe once registered: handlers run concurrently on CQ threads.
#ifndef CAMPAIGND_SERVER_API_API_H_
#define CAMPAIGND_SERVER_API_API_H_

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "campaigns/v1/account.grpc.pb.h"
#include "campaigns/v1/campaign.grpc.pb.h"
#include "campaigns/v1/contact.grpc.pb.h"
#include "campaigns/v1/delivery.grpc.pb.h"
#include "campaigns/v1/sender.grpc.pb.h"
#include "campaigns/v1/suppression.grpc.pb.h"
#include "campaigns/v1/template.grpc.pb.h"
#include "server/api/call.h"
#include "server/api/key_limiter.h"
#include "server/api/worker_pool.h"
#include "server/dispatch/engine.h"
#include "server/dispatch/provider_directory.h"
#include "server/domain/repository.h"

namespace campaigns::api {

class WatchMethod;

class Api {
 public:
  // `store`, `engine` and `providers` must outlive the Api. `providers`
  // says which provider names senders may use (and ListProviders lists
  // them). `key_limit` limits each API key's calls (see key_limiter.h).
  Api(Repository* store, dispatch::Engine* engine,
      const dispatch::ProviderDirectory* providers, KeyRateLimit key_limit = {})
      : store_(store),
        engine_(engine),
        providers_(providers),
        key_limiter_(key_limit),
        pool_(
            std::max(2, static_cast<int>(std::thread::hardware_concurrency())),
            kBulkNice) {}

  // The async services to register with the grpc::ServerBuilder.
  std::vector<grpc::Service*> services();
  // Their full names, e.g. "campaigns.v1.CampaignService".
  std::vector<std::string> service_names();

  // Registers every RPC's handler.
  void Register(Registrar& registrar);

  // Ends every WatchCampaign stream (at shutdown, before the server's).
  void CancelWatches();

  // The principal of the call's `authorization: Bearer <key>` (which wins),
  // `x-api-key: <key>` or `x-auth-token: <key>` (seed 003) metadata;
  // UNAUTHENTICATED with one message for a missing, unknown or revoked key,
  // or an `x-auth-id` that is not the key's account id.
  absl::StatusOr<Principal> Authenticate(const grpc::ServerContext& ctx);

 private:
  std::vector<RawService*> raw_services();

  // account_api.cc
  void RegisterAccounts(Registrar& r);
  void GetAccount(const RpcContext& ctx, const v1::GetAccountRequest& req,
                  Reply<v1::Account> reply);
  void CreateAccount(const RpcContext& ctx, const v1::CreateAccountRequest& req,
                     Reply<v1::Account> reply);
  void CreateApiKey(const RpcContext& ctx, const v1::CreateApiKeyRequest& req,
                    Reply<v1::ApiKey> reply);
  void ListApiKeys(const RpcContext& ctx, const v1::ListApiKeysRequest& req,
                   Reply<v1::ListApiKeysResponse> reply);
  void RevokeApiKey(const RpcContext& ctx, const v1::RevokeApiKeyRequest& req,
                    Reply<v1::ApiKey> reply);
  void AddCredits(const RpcContext& ctx, const v1::AddCreditsRequest& req,
                  Reply<v1::Account> reply);
  void SetPrices(const RpcContext& ctx, const v1::SetPricesRequest& req,
                 Reply<v1::SetPricesResponse> reply);
  void ListTransactions(const RpcContext& ctx,
                        const v1::ListTransactionsRequest& req,
                        Reply<v1::ListTransactionsResponse> reply);

  // catalog_api.cc: templates and senders.
  void RegisterCatalog(Registrar& r);
  void CreateTemplate(const RpcContext& ctx,
                      const v1::CreateTemplateRequest& req,
                      Reply<v1::Template> reply);
  void GetTemplate(const RpcContext& ctx, const v1::GetTemplateRequest& req,
                   Reply<v1::Template> reply);
  void ListTemplates(const RpcContext& ctx, const v1::ListTemplatesRequest& req,
                     Reply<v1::ListTemplatesResponse> reply);
  void UpdateTemplate(const RpcContext& ctx,
                      const v1::UpdateTemplateRequest& req,
                      Reply<v1::Template> reply);
  void DeleteTemplate(const RpcContext& ctx,
                      const v1::DeleteTemplateRequest& req,
                      Reply<google::protobuf::Empty> reply);
  void SetTemplateStatus(const RpcContext& ctx,
                         const v1::SetTemplateStatusRequest& req,
                         Reply<v1::Template> reply);
  void RegisterSender(const RpcContext& ctx,
                      const v1::RegisterSenderRequest& req,
                      Reply<v1::Sender> reply);
  void GetSender(const RpcContext& ctx, const v1::GetSenderRequest& req,
                 Reply<v1::Sender> reply);
  void ListSenders(const RpcContext& ctx, const v1::ListSendersRequest& req,
                   Reply<v1::ListSendersResponse> reply);
  void DeleteSender(const RpcContext& ctx, const v1::DeleteSenderRequest& req,
                    Reply<google::protobuf::Empty> reply);
  void ListProviders(const RpcContext& ctx, const v1::ListProvidersRequest& req,
                     Reply<v1::ListProvidersResponse> reply);

  // campaign_api.cc
  void RegisterCampaigns(Registrar& r);
  void CreateCampaign(const RpcContext& ctx,
                      const v1::CreateCampaignRequest& req,
                      Reply<v1::Campaign> reply);
  void GetCampaign(const RpcContext& ctx, const v1::GetCampaignRequest& req,
                   Reply<v1::Campaign> reply);
  void ListCampaigns(const RpcContext& ctx, const v1::ListCampaignsRequest& req,
                     Reply<v1::ListCampaignsResponse> reply);
  void UpdateCampaign(const RpcContext& ctx,
                      const v1::UpdateCampaignRequest& req,
                      Reply<v1::Campaign> reply);
  void DeleteCampaign(const RpcContext& ctx,
                      const v1::DeleteCampaignRequest& req,
                      Reply<google::protobuf::Empty> reply);
  void ListRecipients(const RpcContext& ctx,
                      const v1::ListRecipientsRequest& req,
                      Reply<v1::ListRecipientsResponse> reply);

  // lifecycle_api.cc: the lifecycle RPCs, served by the engine.
  void StartCampaign(const RpcContext& ctx, const v1::StartCampaignRequest& req,
                     Reply<v1::Campaign> reply);
  void ConfirmCampaign(const RpcContext& ctx,
                       const v1::ConfirmCampaignRequest& req,
                       Reply<v1::Campaign> reply);
  void PauseCampaign(const RpcContext& ctx, const v1::PauseCampaignRequest& req,
                     Reply<v1::Campaign> reply);
  void ResumeCampaign(const RpcContext& ctx,
                      const v1::ResumeCampaignRequest& req,
                      Reply<v1::Campaign> reply);
  void CancelCampaign(const RpcContext& ctx,
                      const v1::CancelCampaignRequest& req,
                      Reply<v1::Campaign> reply);
  void RetryFailed(const RpcContext& ctx, const v1::RetryFailedRequest& req,
                   Reply<v1::RetryFailedResponse> reply);
  void EstimateCost(const RpcContext& ctx, const v1::EstimateCostRequest& req,
                    Reply<v1::CostEstimate> reply);
  // Prepares the campaign's costs, then reads the estimate; again (up to
  // `attempts` times in all) while recipients keep arriving.
  void EstimateAttempt(std::string account_id, std::string campaign_id,
                       int attempts, Reply<v1::CostEstimate> reply);
  void GetCampaignStats(const RpcContext& ctx,
                        const v1::GetCampaignStatsRequest& req,
                        Reply<v1::GetCampaignStatsResponse> reply);

  // suppression_api.cc
  void RegisterSuppressions(Registrar& r);
  void AddSuppression(const RpcContext& ctx,
                      const v1::AddSuppressionRequest& req,
                      Reply<v1::Suppression> reply);
  void RemoveSuppression(const RpcContext& ctx,
                         const v1::RemoveSuppressionRequest& req,
                         Reply<google::protobuf::Empty> reply);
  void ListSuppressions(const RpcContext& ctx,
                        const v1::ListSuppressionsRequest& req,
                        Reply<v1::ListSuppressionsResponse> reply);
  void CheckSuppression(const RpcContext& ctx,
                        const v1::CheckSuppressionRequest& req,
                        Reply<v1::CheckSuppressionResponse> reply);

  // contact_api.cc: contacts and contact lists (ImportContacts is a
  // ContactImport stream, contact_import.h).
  void RegisterContacts(Registrar& r);
  void CreateContact(const RpcContext& ctx, const v1::CreateContactRequest& req,
                     Reply<v1::Contact> reply);
  void GetContact(const RpcContext& ctx, const v1::GetContactRequest& req,
                  Reply<v1::Contact> reply);
  void ListContacts(const RpcContext& ctx, const v1::ListContactsRequest& req,
                    Reply<v1::ListContactsResponse> reply);
  void UpdateContact(const RpcContext& ctx, const v1::UpdateContactRequest& req,
                     Reply<v1::Contact> reply);
  void DeleteContact(const RpcContext& ctx, const v1::DeleteContactRequest& req,
                     Reply<google::protobuf::Empty> reply);
  void CreateContactList(const RpcContext& ctx,
                         const v1::CreateContactListRequest& req,
                         Reply<v1::ContactList> reply);
  void GetContactList(const RpcContext& ctx,
                      const v1::GetContactListRequest& req,
                      Reply<v1::ContactList> reply);
  void ListContactLists(const RpcContext& ctx,
                        const v1::ListContactListsRequest& req,
                        Reply<v1::ListContactListsResponse> reply);
  void DeleteContactList(const RpcContext& ctx,
                         const v1::DeleteContactListRequest& req,
                         Reply<google::protobuf::Empty> reply);
  void AddContactsToList(const RpcContext& ctx,
                         const v1::ContactListMembershipRequest& req,
                         Reply<v1::ContactListMembershipResponse> reply);
  void RemoveContactsFromList(const RpcContext& ctx,
                              const v1::ContactListMembershipRequest& req,
                              Reply<v1::ContactListMembershipResponse> reply);

  // delivery_api.cc: receipts and inbound messages (client streams).
  void RegisterDelivery(Registrar& r);

  Repository* const store_;
  dispatch::Engine* const engine_;
  const dispatch::ProviderDirectory* const providers_;
  KeyRateLimiter key_limiter_;
  WatchMethod* watch_ = nullptr;  // owned by the Registrar
  // The pool's threads yield to the CQ threads when both want a core: an
  // import then slows down under heavy call traffic instead of the calls
  // waiting behind it (nice 10: about a tenth of a contended core).
  static constexpr int kBulkNice = 10;
  // CPU-bound work of streams (import row checks, the settle) and long
  // reads (cost estimates), off the CQ threads.
  WorkerPool pool_;
  RawAsyncService<v1::AccountService> account_service_;
  RawAsyncService<v1::CampaignService> campaign_service_;
  RawAsyncService<v1::ContactService> contact_service_;
  RawAsyncService<v1::DeliveryService> delivery_service_;
  RawAsyncService<v1::SenderService> sender_service_;
  RawAsyncService<v1::SuppressionService> suppression_service_;
  RawAsyncService<v1::TemplateService> template_service_;
};

}  // namespace campaigns::api

#endif  // CAMPAIGND_SERVER_API_API_H_
