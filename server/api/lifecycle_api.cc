// CampaignService's lifecycle RPCs: thin handlers over the dispatch engine,
// which runs the store's transition and brings pumps and timers in line.
#include "server/api/api.h"
#include "server/api/handler_util.h"

namespace campaigns::api {
namespace {

constexpr size_t kMaxReasonLength = 500;

}  // namespace

void Api::StartCampaign(const RpcContext& ctx,
                        const v1::StartCampaignRequest& req,
                        Reply<v1::Campaign> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  engine_->Start(ctx.principal.account_id, req.id(), std::nullopt,
                 Convert<v1::Campaign, Campaign>(std::move(reply)));
}

void Api::ConfirmCampaign(const RpcContext& ctx,
                          const v1::ConfirmCampaignRequest& req,
                          Reply<v1::Campaign> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  std::optional<absl::Time> send_at;
  if (req.has_send_at()) {
    absl::StatusOr<absl::Time> t = FromProto(req.send_at(), "send_at");
    if (!t.ok()) return reply(t.status());
    send_at = *t;
  }
  engine_->Start(ctx.principal.account_id, req.id(), send_at,
                 Convert<v1::Campaign, Campaign>(std::move(reply)));
}

void Api::PauseCampaign(const RpcContext& ctx,
                        const v1::PauseCampaignRequest& req,
                        Reply<v1::Campaign> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  if (req.reason().size() > kMaxReasonLength) {
    return reply(errors::InvalidField("reason", "is too long"));
  }
  engine_->Pause(ctx.principal.account_id, req.id(), req.reason(),
                 Convert<v1::Campaign, Campaign>(std::move(reply)));
}

void Api::ResumeCampaign(const RpcContext& ctx,
                         const v1::ResumeCampaignRequest& req,
                         Reply<v1::Campaign> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  engine_->Resume(ctx.principal.account_id, req.id(),
                  Convert<v1::Campaign, Campaign>(std::move(reply)));
}

void Api::CancelCampaign(const RpcContext& ctx,
                         const v1::CancelCampaignRequest& req,
                         Reply<v1::Campaign> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  engine_->Cancel(ctx.principal.account_id, req.id(),
                  Convert<v1::Campaign, Campaign>(std::move(reply)));
}

void Api::RetryFailed(const RpcContext& ctx, const v1::RetryFailedRequest& req,
                      Reply<v1::RetryFailedResponse> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  if (req.error_codes_size() > static_cast<int>(kMaxListEntries)) {
    return reply(errors::InvalidField("error_codes", "has too many entries"));
  }
  for (const std::string& code : req.error_codes()) {
    if (code.empty() || code.size() > kMaxShortText) {
      return reply(errors::InvalidField("error_codes",
                                        "entries must be non-empty and short"));
    }
  }
  engine_->RetryFailed(
      ctx.principal.account_id, req.id(),
      {req.error_codes().begin(), req.error_codes().end()},
      [reply = std::move(reply)](absl::StatusOr<RetryResult> r) {
        if (!r.ok()) return reply(r.status());
        v1::RetryFailedResponse out;
        out.set_requeued(r->requeued);
        ToProto(r->campaign, out.mutable_campaign());
        reply(std::move(out));
      });
}

}  // namespace campaigns::api
