// SuppressionService handlers: the account's do-not-contact list.
#include "server/api/api.h"
#include "server/api/handler_util.h"
#include "server/domain/address.h"

namespace campaigns::api {
namespace {

constexpr size_t kMaxNoteLength = 1000;

}  // namespace

void Api::RegisterSuppressions(Registrar& r) {
  RawService* s = &suppression_service_;
  r.Unary(s, "AddSuppression", Bind(this, &Api::AddSuppression));
  r.Unary(s, "RemoveSuppression", Bind(this, &Api::RemoveSuppression));
  r.Unary(s, "ListSuppressions", Bind(this, &Api::ListSuppressions));
  r.Unary(s, "CheckSuppression", Bind(this, &Api::CheckSuppression));
}

void Api::AddSuppression(const RpcContext& ctx,
                         const v1::AddSuppressionRequest& req,
                         Reply<v1::Suppression> reply) {
  absl::StatusOr<Channel> channel = ChannelFromProto(req.channel(), "channel");
  if (!channel.ok()) return reply(channel.status());
  absl::StatusOr<SuppressionReason> reason =
      SuppressionReasonFromProto(req.reason(), "reason");
  if (!reason.ok()) return reply(reason.status());
  if (req.note().size() > kMaxNoteLength) {
    return reply(errors::InvalidField("note", "is too long"));
  }
  absl::StatusOr<std::string> address =
      NormalizeAddress(*channel, req.address(), req.default_region());
  if (!address.ok()) return reply(address.status());
  Suppression s;
  s.account_id = ctx.principal.account_id;
  s.address = *std::move(address);
  s.channel = *channel;
  s.reason = *reason == SuppressionReason::kUnspecified
                 ? SuppressionReason::kManual
                 : *reason;
  s.note = req.note();
  s.created_at = NowMicros();
  store_->AddSuppression(
      std::move(s), Convert<v1::Suppression, Suppression>(std::move(reply)));
}

void Api::RemoveSuppression(const RpcContext& ctx,
                            const v1::RemoveSuppressionRequest& req,
                            Reply<google::protobuf::Empty> reply) {
  absl::StatusOr<Channel> channel = ChannelFromProto(req.channel(), "channel");
  if (!channel.ok()) return reply(channel.status());
  absl::StatusOr<std::string> address =
      NormalizeAddress(*channel, req.address(), "");
  if (!address.ok()) return reply(address.status());
  store_->RemoveSuppression(ctx.principal.account_id, *address, *channel,
                            ReplyEmpty(std::move(reply)));
}

void Api::ListSuppressions(const RpcContext& ctx,
                           const v1::ListSuppressionsRequest& req,
                           Reply<v1::ListSuppressionsResponse> reply) {
  std::string query;
  absl::StatusOr<PageRequest> page = PageOf(ctx, req, &query);
  if (!page.ok()) return reply(page.status());
  absl::StatusOr<Channel> channel = ChannelFromProto(req.channel(), "channel");
  if (!channel.ok()) return reply(channel.status());
  absl::StatusOr<SuppressionReason> reason =
      SuppressionReasonFromProto(req.reason(), "reason");
  if (!reason.ok()) return reply(reason.status());
  SuppressionFilter filter;
  filter.channel = *channel;
  filter.reason = *reason;
  ReplyPage(store_->ListSuppressions(ctx.principal.account_id, filter, *page),
            query, reply,
            [](v1::ListSuppressionsResponse& r) { return r.add_items(); });
}

void Api::CheckSuppression(const RpcContext& ctx,
                           const v1::CheckSuppressionRequest& req,
                           Reply<v1::CheckSuppressionResponse> reply) {
  absl::StatusOr<Channel> channel = ChannelFromProto(req.channel(), "channel");
  if (!channel.ok()) return reply(channel.status());
  absl::StatusOr<std::string> address =
      NormalizeAddress(*channel, req.address(), req.default_region());
  if (!address.ok()) return reply(address.status());
  absl::StatusOr<std::vector<Suppression>> matches =
      store_->FindSuppressions(ctx.principal.account_id, *address, *channel);
  if (!matches.ok()) return reply(matches.status());
  v1::CheckSuppressionResponse out;
  out.set_suppressed(!matches->empty());
  for (const Suppression& s : *matches) ToProto(s, out.add_matches());
  reply(std::move(out));
}

}  // namespace campaigns::api
