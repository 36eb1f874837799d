// TemplateService and SenderService handlers.
#include "absl/strings/ascii.h"
#include "server/api/api.h"
#include "server/api/handler_util.h"
#include "server/domain/ids.h"

namespace campaigns::api {

void Api::RegisterCatalog(Registrar& r) {
  RawService* t = &template_service_;
  r.Unary(t, "CreateTemplate", Bind(this, &Api::CreateTemplate));
  r.Unary(t, "GetTemplate", Bind(this, &Api::GetTemplate));
  r.Unary(t, "ListTemplates", Bind(this, &Api::ListTemplates));
  r.Unary(t, "UpdateTemplate", Bind(this, &Api::UpdateTemplate));
  r.Unary(t, "DeleteTemplate", Bind(this, &Api::DeleteTemplate));
  r.Unary(t, "SetTemplateStatus", Bind(this, &Api::SetTemplateStatus));

  RawService* s = &sender_service_;
  r.Unary(s, "RegisterSender", Bind(this, &Api::RegisterSender));
  r.Unary(s, "GetSender", Bind(this, &Api::GetSender));
  r.Unary(s, "ListSenders", Bind(this, &Api::ListSenders));
  r.Unary(s, "DeleteSender", Bind(this, &Api::DeleteSender));
  r.Unary(s, "ListProviders", Bind(this, &Api::ListProviders));
}

// --- Templates ---------------------------------------------------------------

void Api::CreateTemplate(const RpcContext& ctx,
                         const v1::CreateTemplateRequest& req,
                         Reply<v1::Template> reply) {
  absl::StatusOr<Channel> channel = ChannelFromProto(req.channel(), "channel");
  if (!channel.ok()) return reply(channel.status());
  Template t;
  t.id = NewId(kTemplatePrefix);
  t.account_id = ctx.principal.account_id;
  t.name = req.name();
  t.language = req.language();
  t.channel = *channel;
  t.body = req.body();
  t.subject = req.subject();
  t.html_body = req.html_body();
  t.components = ComponentsFromProto(req.components());
  t.status = TemplateStatus::kPending;
  t.created_at = t.updated_at = NowMicros();
  if (absl::Status s = ValidateTemplate(t); !s.ok()) return reply(s);
  absl::StatusOr<IdempotencyKey> idem = IdempotencyOf("CreateTemplate", req);
  if (!idem.ok()) return reply(idem.status());
  store_->CreateTemplate(std::move(t), *std::move(idem),
                         Convert<v1::Template, Template>(std::move(reply)));
}

void Api::GetTemplate(const RpcContext& ctx, const v1::GetTemplateRequest& req,
                      Reply<v1::Template> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  ReplyWith(store_->GetTemplate(ctx.principal.account_id, req.id()), reply);
}

void Api::ListTemplates(const RpcContext& ctx,
                        const v1::ListTemplatesRequest& req,
                        Reply<v1::ListTemplatesResponse> reply) {
  std::string query;
  absl::StatusOr<PageRequest> page = PageOf(ctx, req, &query);
  if (!page.ok()) return reply(page.status());
  TemplateFilter filter;
  absl::StatusOr<TemplateStatus> status =
      TemplateStatusFromProto(req.status(), "status");
  if (!status.ok()) return reply(status.status());
  absl::StatusOr<Channel> channel = ChannelFromProto(req.channel(), "channel");
  if (!channel.ok()) return reply(channel.status());
  filter.status = *status;
  filter.channel = *channel;
  filter.name = req.name();
  ReplyPage(store_->ListTemplates(ctx.principal.account_id, filter, *page),
            query, reply,
            [](v1::ListTemplatesResponse& r) { return r.add_items(); });
}

void Api::UpdateTemplate(const RpcContext& ctx,
                         const v1::UpdateTemplateRequest& req,
                         Reply<v1::Template> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  absl::StatusOr<std::set<std::string>> paths = MaskPaths(
      req.update_mask(),
      {"name", "language", "body", "subject", "html_body", "components"});
  if (!paths.ok()) return reply(paths.status());
  const bool masked = req.has_update_mask();
  auto wants = [&](const char* field, bool present) {
    return masked ? paths->count(field) > 0 : present;
  };
  v1::UpdateTemplateRequest copy = req;
  store_->UpdateTemplate(
      ctx.principal.account_id, req.id(),
      [copy = std::move(copy), name = wants("name", !req.name().empty()),
       language = wants("language", !req.language().empty()),
       body = wants("body", !req.body().empty()),
       subject = wants("subject", !req.subject().empty()),
       html_body = wants("html_body", !req.html_body().empty()),
       components = wants("components", req.components_size() > 0)](
          Template& t) -> absl::Status {
        if (name) t.name = copy.name();
        if (language) t.language = copy.language();
        const bool content_changed =
            (body && copy.body() != t.body) ||
            (subject && copy.subject() != t.subject) ||
            (html_body && copy.html_body() != t.html_body) || components;
        if (body) t.body = copy.body();
        if (subject) t.subject = copy.subject();
        if (html_body) t.html_body = copy.html_body();
        if (components) t.components = ComponentsFromProto(copy.components());
        // New content needs a new approval.
        if (content_changed && t.status == TemplateStatus::kApproved) {
          t.status = TemplateStatus::kPending;
        }
        return absl::OkStatus();
      },
      Convert<v1::Template, Template>(std::move(reply)));
}

void Api::DeleteTemplate(const RpcContext& ctx,
                         const v1::DeleteTemplateRequest& req,
                         Reply<google::protobuf::Empty> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  store_->DeleteTemplate(ctx.principal.account_id, req.id(),
                         ReplyEmpty(std::move(reply)));
}

void Api::SetTemplateStatus(const RpcContext& ctx,
                            const v1::SetTemplateStatusRequest& req,
                            Reply<v1::Template> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  absl::StatusOr<TemplateStatus> status =
      TemplateStatusFromProto(req.status(), "status");
  if (!status.ok()) return reply(status.status());
  if (*status == TemplateStatus::kUnspecified) {
    return reply(errors::InvalidField("status", "is required"));
  }
  // Admins (and provider sync, which uses an admin key) review the templates
  // of every account; nobody approves their own.
  if (!ctx.principal.admin) {
    return reply(errors::PermissionDenied(
        "SetTemplateStatus needs an admin account's API key"));
  }
  absl::StatusOr<Template> existing = store_->GetTemplateForReview(req.id());
  if (!existing.ok()) return reply(existing.status());
  store_->UpdateTemplate(
      existing->account_id, req.id(),
      [status = *status, reason = req.rejection_reason()](Template& t) {
        t.status = status;
        t.rejection_reason =
            status == TemplateStatus::kRejected ? reason : std::string();
        return absl::OkStatus();
      },
      Convert<v1::Template, Template>(std::move(reply)));
}

// --- Senders
// -------------------------------------------------------------------

void Api::RegisterSender(const RpcContext& ctx,
                         const v1::RegisterSenderRequest& req,
                         Reply<v1::Sender> reply) {
  absl::StatusOr<Channel> channel = ChannelFromProto(req.channel(), "channel");
  if (!channel.ok()) return reply(channel.status());
  absl::StatusOr<SenderTier> tier = SenderTierFromProto(req.tier(), "tier");
  if (!tier.ok()) return reply(tier.status());
  Sender s;
  s.id = NewId(kSenderPrefix);
  s.account_id = ctx.principal.account_id;
  s.sender_id = std::string(absl::StripAsciiWhitespace(req.sender_id()));
  s.channel = *channel;
  s.tier = *tier == SenderTier::kUnspecified ? SenderTier::kTier1k : *tier;
  s.verified = req.verified();
  s.provider = req.provider().empty() ? "simulator" : req.provider();
  s.created_at = s.updated_at = NowMicros();
  if (absl::Status st = ValidateSender(s); !st.ok()) return reply(st);
  // The provider must be configured (a configured one that cannot send
  // right now is accepted: its state may change) and able to serve the
  // sender's channel.
  std::optional<dispatch::ProviderInfo> provider = providers_->Find(s.provider);
  if (!provider) {
    std::vector<std::string> names;
    for (const dispatch::ProviderInfo& p : providers_->List()) {
      names.push_back(p.name);
    }
    return reply(errors::Validation(
        "provider", absl::StrCat("provider ", errors::Quote(s.provider),
                                 " is not configured; configured: ",
                                 absl::StrJoin(names, ", "))));
  }
  if (!provider->Serves(s.channel)) {
    return reply(errors::Validation(
        "provider", absl::StrCat("provider ", errors::Quote(s.provider),
                                 " (type ", provider->type, ") cannot send ",
                                 ChannelName(s.channel), " messages")));
  }
  if (s.channel == Channel::kEmail &&
      s.sender_id.find('@') == std::string::npos) {
    return reply(errors::InvalidField(
        "sender_id", "an email sender must be an email address"));
  }
  absl::StatusOr<IdempotencyKey> idem = IdempotencyOf("RegisterSender", req);
  if (!idem.ok()) return reply(idem.status());
  store_->RegisterSender(std::move(s), *std::move(idem),
                         Convert<v1::Sender, Sender>(std::move(reply)));
}

void Api::GetSender(const RpcContext& ctx, const v1::GetSenderRequest& req,
                    Reply<v1::Sender> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  ReplyWith(store_->GetSender(ctx.principal.account_id, req.id()), reply);
}

void Api::ListSenders(const RpcContext& ctx, const v1::ListSendersRequest& req,
                      Reply<v1::ListSendersResponse> reply) {
  std::string query;
  absl::StatusOr<PageRequest> page = PageOf(ctx, req, &query);
  if (!page.ok()) return reply(page.status());
  absl::StatusOr<Channel> channel = ChannelFromProto(req.channel(), "channel");
  if (!channel.ok()) return reply(channel.status());
  ReplyPage(store_->ListSenders(ctx.principal.account_id, *channel, *page),
            query, reply,
            [](v1::ListSendersResponse& r) { return r.add_items(); });
}

void Api::DeleteSender(const RpcContext& ctx,
                       const v1::DeleteSenderRequest& req,
                       Reply<google::protobuf::Empty> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  store_->DeleteSender(ctx.principal.account_id, req.id(),
                       ReplyEmpty(std::move(reply)));
}

void Api::ListProviders(const RpcContext& ctx,
                        const v1::ListProvidersRequest& req,
                        Reply<v1::ListProvidersResponse> reply) {
  (void)ctx;  // any authenticated key; the list is the same for all
  (void)req;
  v1::ListProvidersResponse out;
  for (const dispatch::ProviderInfo& p : providers_->List()) {
    v1::Provider* item = out.add_providers();
    item->set_name(p.name);
    item->set_type(p.type);
    for (Channel c : p.channels) {
      item->add_channels(static_cast<v1::Channel>(c));
    }
    item->set_state(std::string(dispatch::ProviderStateName(p.state)));
    item->set_reason(p.reason);
    item->set_fallback(p.fallback);
  }
  reply(std::move(out));
}

}  // namespace campaigns::api
