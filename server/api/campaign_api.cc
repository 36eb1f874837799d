// CampaignService handlers.
#include "absl/strings/ascii.h"
#include "server/api/api.h"
#include "server/api/handler_util.h"
#include "server/api/recipient_import.h"
#include "server/api/watch.h"
#include "server/domain/ids.h"

namespace campaigns::api {
namespace {

// The fields of Create/UpdateCampaignRequest that describe a campaign, in the
// names of API.md (and of UpdateCampaignRequest's update_mask paths).
const std::set<std::string>& UpdatableFields() {
  static const auto* const kFields =
      new std::set<std::string>{"name",
                                "channel",
                                "sender_id",
                                "body",
                                "subject",
                                "html_body",
                                "template_id",
                                "variable_mapping",
                                "template_components",
                                "recipient_variables",
                                "contact_list_id",
                                "tags",
                                "contact_ids",
                                "batch_size",
                                "batch_delay",
                                "rate_limit_per_second",
                                "validity_period",
                                "max_lateness",
                                "schedule_at"};
  return *kFields;
}

// Copies the fields of a Create- or UpdateCampaignRequest into `c`. `wants`
// says, per field name, whether to take it (present or masked); a taken but
// unset message field clears the stored value.
template <typename Req, typename Wants>
absl::Status ApplyCampaignFields(const Req& req, Wants wants, Campaign& c) {
  if (wants("name", !req.name().empty())) c.name = req.name();
  if (wants("channel", req.channel() != 0)) {
    ASSIGN_OR_RETURN(c.channel, ChannelFromProto(req.channel(), "channel"));
  }
  if (wants("sender_id", !req.sender_id().empty())) {
    c.sender_id = std::string(absl::StripAsciiWhitespace(req.sender_id()));
  }
  if (wants("body", !req.body().empty())) c.body = req.body();
  if (wants("subject", !req.subject().empty())) c.subject = req.subject();
  if (wants("html_body", !req.html_body().empty())) {
    c.html_body = req.html_body();
  }
  if (wants("template_id", !req.template_id().empty())) {
    c.template_id = req.template_id();
  }
  if (wants("variable_mapping", !req.variable_mapping().empty())) {
    c.variable_mapping = {req.variable_mapping().begin(),
                          req.variable_mapping().end()};
  }
  if (wants("template_components", !req.template_components().empty())) {
    c.template_components = ComponentsFromProto(req.template_components());
  }
  if (wants("recipient_variables", !req.recipient_variables().empty())) {
    ASSIGN_OR_RETURN(c.recipient_variables,
                     RecipientVariablesFromProto(req.recipient_variables()));
  }
  // The audience is one choice: setting one member replaces the others.
  const bool list = wants("contact_list_id", !req.contact_list_id().empty());
  const bool tags = wants("tags", !req.tags().empty());
  const bool ids = wants("contact_ids", !req.contact_ids().empty());
  if (list || tags || ids) {
    c.contact_list_id = req.contact_list_id();
    c.tags = {req.tags().begin(), req.tags().end()};
    c.contact_ids = {req.contact_ids().begin(), req.contact_ids().end()};
  }
  if (wants("batch_size", req.batch_size() != 0)) {
    c.batch_size = req.batch_size() == 0 ? kDefaultBatchSize : req.batch_size();
  }
  if (wants("batch_delay", req.has_batch_delay())) {
    c.batch_delay = absl::ZeroDuration();
    if (req.has_batch_delay()) {
      ASSIGN_OR_RETURN(c.batch_delay,
                       FromProto(req.batch_delay(), "batch_delay"));
    }
  }
  if (wants("rate_limit_per_second", req.rate_limit_per_second() != 0)) {
    c.rate_limit_per_second = req.rate_limit_per_second();
  }
  if (wants("validity_period", req.has_validity_period())) {
    c.validity_period.reset();
    if (req.has_validity_period()) {
      ASSIGN_OR_RETURN(c.validity_period,
                       FromProto(req.validity_period(), "validity_period"));
    }
  }
  if (wants("max_lateness", req.has_max_lateness())) {
    c.max_lateness.reset();
    if (req.has_max_lateness()) {
      ASSIGN_OR_RETURN(c.max_lateness,
                       FromProto(req.max_lateness(), "max_lateness"));
    }
  }
  if (wants("schedule_at", req.has_schedule_at())) {
    c.schedule_at.reset();
    if (req.has_schedule_at()) {
      ASSIGN_OR_RETURN(c.schedule_at,
                       FromProto(req.schedule_at(), "schedule_at"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

void Api::RegisterCampaigns(Registrar& r) {
  RawService* s = &campaign_service_;
  r.Unary(s, "CreateCampaign", Bind(this, &Api::CreateCampaign));
  r.Unary(s, "GetCampaignStats", Bind(this, &Api::GetCampaignStats));
  r.Unary(s, "GetCampaign", Bind(this, &Api::GetCampaign));
  r.Unary(s, "ListCampaigns", Bind(this, &Api::ListCampaigns));
  r.Unary(s, "UpdateCampaign", Bind(this, &Api::UpdateCampaign));
  r.Unary(s, "DeleteCampaign", Bind(this, &Api::DeleteCampaign));
  r.Unary(s, "StartCampaign", Bind(this, &Api::StartCampaign));
  r.Unary(s, "ConfirmCampaign", Bind(this, &Api::ConfirmCampaign));
  r.Unary(s, "PauseCampaign", Bind(this, &Api::PauseCampaign));
  r.Unary(s, "ResumeCampaign", Bind(this, &Api::ResumeCampaign));
  r.Unary(s, "CancelCampaign", Bind(this, &Api::CancelCampaign));
  r.Unary(s, "RetryFailed", Bind(this, &Api::RetryFailed));
  r.Unary(s, "EstimateCost", Bind(this, &Api::EstimateCost));
  r.Custom(s, "WatchCampaign", [this, &r](int index) {
    auto watch = std::make_unique<WatchMethod>(&campaign_service_, index,
                                               r.env(), store_, engine_);
    watch_ = watch.get();
    return watch;
  });
  r.ClientStream<v1::ImportRecipientsRequest, v1::ImportRecipientsResponse>(
      s, "ImportRecipients", [this](const RpcContext& ctx) {
        return std::make_shared<RecipientImport>(ctx, store_, &pool_);
      });
  r.Unary(s, "ListRecipients", Bind(this, &Api::ListRecipients));
}

void Api::CreateCampaign(const RpcContext& ctx,
                         const v1::CreateCampaignRequest& req,
                         Reply<v1::Campaign> reply) {
  Campaign c;
  c.id = NewId(kCampaignPrefix);
  c.account_id = ctx.principal.account_id;
  c.status = CampaignStatus::kDraft;
  c.created_at = c.updated_at = NowMicros();
  absl::Status status = ApplyCampaignFields(
      req, [](const char*, bool present) { return present; }, c);
  if (status.ok()) status = ValidateCampaignSpec(c);
  if (!status.ok()) return reply(status);
  absl::StatusOr<IdempotencyKey> idem = IdempotencyOf("CreateCampaign", req);
  if (!idem.ok()) return reply(idem.status());
  std::optional<LifecycleChange> start;
  if (req.start()) {
    // Seeds 001 and 003 send on create: created and started (as
    // StartCampaign would) in one transaction, or neither.
    start.emplace();
    start->event = CampaignEvent::kStart;
    start->now = engine_->DatabaseNow();
  }
  store_->CreateCampaign(
      std::move(c), *std::move(idem),
      [this, reply = std::move(reply)](absl::StatusOr<Campaign> created) {
        if (created.ok()) engine_->Updated(*created);
        Convert<v1::Campaign, Campaign>(reply)(std::move(created));
      },
      std::move(start));
}

void Api::GetCampaign(const RpcContext& ctx, const v1::GetCampaignRequest& req,
                      Reply<v1::Campaign> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  absl::StatusOr<Campaign> c =
      store_->GetCampaign(ctx.principal.account_id, req.id());
  // A campaign waiting for storage to write shows as paused, with why.
  if (c.ok()) engine_->ShowUnstoredPause(&*c);
  ReplyWith(std::move(c), reply);
}

void Api::ListCampaigns(const RpcContext& ctx,
                        const v1::ListCampaignsRequest& req,
                        Reply<v1::ListCampaignsResponse> reply) {
  std::string query;
  absl::StatusOr<PageRequest> page = PageOf(ctx, req, &query);
  if (!page.ok()) return reply(page.status());
  absl::StatusOr<CampaignStatus> status =
      CampaignStatusFromProto(req.status(), "status");
  if (!status.ok()) return reply(status.status());
  absl::StatusOr<Channel> channel = ChannelFromProto(req.channel(), "channel");
  if (!channel.ok()) return reply(channel.status());
  CampaignFilter filter;
  filter.status = *status;
  filter.channel = *channel;
  filter.sender_id = req.sender_id();
  absl::StatusOr<Page<Campaign>> found =
      store_->ListCampaigns(ctx.principal.account_id, filter, *page);
  if (found.ok()) {
    for (Campaign& c : found->items) engine_->ShowUnstoredPause(&c);
  }
  ReplyPage(std::move(found), query, reply,
            [](v1::ListCampaignsResponse& r) { return r.add_items(); });
}

void Api::UpdateCampaign(const RpcContext& ctx,
                         const v1::UpdateCampaignRequest& req,
                         Reply<v1::Campaign> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  absl::StatusOr<std::set<std::string>> paths =
      MaskPaths(req.update_mask(), UpdatableFields());
  if (!paths.ok()) return reply(paths.status());
  // Check the request's own fields before touching storage, so bad input is
  // INVALID_ARGUMENT whatever the campaign's state.
  Campaign probe;
  if (absl::Status s = ApplyCampaignFields(
          req, [](const char*, bool present) { return present; }, probe);
      !s.ok()) {
    return reply(s);
  }
  store_->UpdateCampaign(
      ctx.principal.account_id, req.id(),
      [req, paths = *std::move(paths)](Campaign& c) {
        const bool masked = req.has_update_mask();
        return ApplyCampaignFields(
            req,
            [&](const char* field, bool present) {
              return masked ? paths.count(field) > 0 : present;
            },
            c);
      },
      [this, reply = std::move(reply)](absl::StatusOr<Campaign> c) {
        // A new schedule_at needs a new alarm.
        if (c.ok()) engine_->Updated(*c);
        Convert<v1::Campaign, Campaign>(reply)(std::move(c));
      });
}

void Api::DeleteCampaign(const RpcContext& ctx,
                         const v1::DeleteCampaignRequest& req,
                         Reply<google::protobuf::Empty> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  // Paused while messages were with the provider: deleted once their
  // outcomes (and what they cost) are recorded.
  engine_->WhenCallsRecorded(
      ctx.principal.account_id, req.id(),
      [this, account_id = ctx.principal.account_id, id = req.id(),
       done = ReplyEmpty(std::move(reply))](absl::Status go) mutable {
        if (!go.ok()) {
          done(absl::UnavailableError(absl::StrCat(
              "campaign ", id,
              " not deleted: campaignd is stopping with outcomes of its "
              "messages unrecorded; delete it once it runs again")));
          return;
        }
        store_->DeleteCampaign(account_id, id, std::move(done));
      });
}

void Api::ListRecipients(const RpcContext& ctx,
                         const v1::ListRecipientsRequest& req,
                         Reply<v1::ListRecipientsResponse> reply) {
  absl::Status status = RequireId(req.campaign_id(), "campaign_id");
  RecipientStatus filter = RecipientStatus::kUnspecified;
  if (status.ok() && req.status() != 0) {
    if (req.status() < 0 || req.status() > kRecipientStatusMax) {
      status = errors::InvalidField("status", "is not a recipient status");
    } else {
      filter = static_cast<RecipientStatus>(req.status());
    }
  }
  std::string query;
  absl::StatusOr<PageRequest> page = PageOf(ctx, req, &query);
  if (!status.ok()) return reply(status);
  if (!page.ok()) return reply(page.status());
  ReplyPage(store_->ListRecipients(ctx.principal.account_id, req.campaign_id(),
                                   filter, *page),
            query, reply,
            [](v1::ListRecipientsResponse& out) { return out.add_items(); });
}

void Api::EstimateCost(const RpcContext& ctx,
                       const v1::EstimateCostRequest& req,
                       Reply<v1::CostEstimate> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  EstimateAttempt(ctx.principal.account_id, req.id(), 3, std::move(reply));
}

void Api::EstimateAttempt(std::string account_id, std::string campaign_id,
                          int attempts, Reply<v1::CostEstimate> reply) {
  // Count what is not counted yet (writes, in chunks), then read the
  // estimate off the writer thread, on the pool: a million rows take a
  // moment to sum, and no write should wait for that.
  store_->PrepareCosts(
      account_id, campaign_id, /*only_if_priced=*/false,
      [this, account_id, campaign_id, attempts,
       reply = std::move(reply)](absl::Status) mutable {
        pool_.Submit([this, account_id = std::move(account_id),
                      campaign_id = std::move(campaign_id), attempts,
                      reply = std::move(reply)]() mutable {
          absl::StatusOr<std::optional<CostEstimateValue>> e =
              store_->ReadEstimate(account_id, campaign_id);
          if (!e.ok()) return reply(e.status());
          if (e->has_value()) {
            v1::CostEstimate out;
            ToProto(**e, &out);
            return reply(std::move(out));
          }
          // Recipients arrived (or the message changed) meanwhile.
          if (attempts <= 1) {
            return reply(absl::UnavailableError(
                "the campaign's recipients keep changing; estimate again "
                "when its import has ended"));
          }
          EstimateAttempt(std::move(account_id), std::move(campaign_id),
                          attempts - 1, std::move(reply));
        });
      });
}

void Api::GetCampaignStats(const RpcContext& ctx,
                           const v1::GetCampaignStatsRequest& req,
                           Reply<v1::GetCampaignStatsResponse> reply) {
  StatsFilter filter;
  if (req.has_from()) {
    absl::StatusOr<absl::Time> from = FromProto(req.from(), "from");
    if (!from.ok()) return reply(from.status());
    filter.from = *from;
  }
  if (req.has_to()) {
    absl::StatusOr<absl::Time> to = FromProto(req.to(), "to");
    if (!to.ok()) return reply(to.status());
    filter.to = *to;
  }
  if (filter.from && filter.to && *filter.to < *filter.from) {
    return reply(errors::InvalidField("to", "must not be before from"));
  }
  absl::StatusOr<Channel> channel = ChannelFromProto(req.channel(), "channel");
  if (!channel.ok()) return reply(channel.status());
  filter.channel = *channel;
  absl::StatusOr<AccountStats> stats =
      store_->CampaignStatsOf(ctx.principal.account_id, filter);
  if (!stats.ok()) return reply(stats.status());
  v1::GetCampaignStatsResponse out;
  ToProto(*stats, &out);
  if (filter.from) *out.mutable_from() = ToProto(*filter.from);
  if (filter.to) *out.mutable_to() = ToProto(*filter.to);
  reply(std::move(out));
}

}  // namespace campaigns::api
