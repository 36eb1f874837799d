// DeliveryService: receipts (DLRs) and inbound messages, as client streams
// from providers and webhooks. Receipts go to the engine in batches (the
// stream reads on only once a batch is recorded); inbound opt-out keywords
// become opt_out suppressions.
#include "absl/strings/ascii.h"
#include "server/api/api.h"
#include "server/api/convert.h"
#include "server/api/handler_util.h"
#include "server/domain/address.h"
#include "server/domain/rules.h"

namespace campaigns::api {
namespace {

constexpr size_t kReceiptBatch = 500;

class ReceiptStream final
    : public StreamConsumer<v1::DeliveryReceipt,
                            v1::ReportDeliveryReceiptsResponse> {
 public:
  ReceiptStream(const RpcContext& ctx, dispatch::Engine* engine)
      : account_id_(ctx.principal.account_id), engine_(engine) {}

  void OnMessage(const v1::DeliveryReceipt& m, Next next) override {
    ++totals_.received;
    ReceiptUpdate r;
    r.provider_message_id = m.provider_message_id();
    r.recipient_id = m.recipient_id();
    if (r.provider_message_id.empty() && r.recipient_id.empty()) {
      return next(errors::InvalidField("provider_message_id",
                                       "provider_message_id or recipient_id is "
                                       "required"));
    }
    if (r.provider_message_id.size() > kMaxIdLength * 2 ||
        r.recipient_id.size() > kMaxIdLength) {
      return next(errors::InvalidField("provider_message_id", "is too long"));
    }
    switch (m.status()) {
      case v1::Recipient::delivered:
      case v1::Recipient::read:
      case v1::Recipient::failed:
        r.status = static_cast<RecipientStatus>(m.status());
        break;
      default:
        return next(errors::InvalidField("status",
                                         "must be delivered, read or failed"));
    }
    r.error_code = m.error_code().substr(0, kMaxShortText);
    r.error_desc = m.error_desc().substr(0, 1000);
    r.occurred_at = NowMicros();
    if (m.has_occurred_at()) {
      absl::StatusOr<absl::Time> t = FromProto(m.occurred_at(), "occurred_at");
      if (!t.ok()) return next(t.status());
      r.occurred_at = *t;
    }
    batch_.push_back(std::move(r));
    if (batch_.size() < kReceiptBatch) return next(absl::OkStatus());
    Flush([next = std::move(next)](absl::Status s) { next(std::move(s)); });
  }

  void OnEnd(Reply<v1::ReportDeliveryReceiptsResponse> reply) override {
    Flush([this, reply = std::move(reply)](absl::Status s) {
      if (!s.ok()) return reply(s);
      v1::ReportDeliveryReceiptsResponse out;
      out.set_received(totals_.received);
      out.set_matched(totals_.matched);
      out.set_unmatched(totals_.unmatched);
      out.set_ignored(totals_.ignored);
      reply(std::move(out));
    });
  }

  // Receipts already applied stay applied: each is idempotent.
  void OnAbort() override {}

 private:
  struct Totals {
    int64_t received = 0;
    int64_t matched = 0;
    int64_t unmatched = 0;
    int64_t ignored = 0;
  };

  void Flush(std::function<void(absl::Status)> done) {
    if (batch_.empty()) return done(absl::OkStatus());
    std::vector<ReceiptUpdate> batch;
    batch.swap(batch_);
    engine_->IngestReceipts(
        account_id_, std::move(batch),
        [this, done = std::move(done)](absl::StatusOr<ReceiptResult> r) {
          if (!r.ok()) return done(r.status());
          totals_.matched += r->matched;
          totals_.unmatched += r->unmatched;
          totals_.ignored += r->ignored;
          done(absl::OkStatus());
        });
  }

  const std::string account_id_;
  dispatch::Engine* const engine_;
  std::vector<ReceiptUpdate> batch_;
  Totals totals_;
};

class InboundStream final
    : public StreamConsumer<v1::InboundMessage,
                            v1::ReportInboundMessagesResponse> {
 public:
  InboundStream(const RpcContext& ctx, Repository* store)
      : account_id_(ctx.principal.account_id), store_(store) {}

  void OnMessage(const v1::InboundMessage& m, Next next) override {
    ++received_;
    absl::StatusOr<Channel> channel = ChannelFromProto(m.channel(), "channel");
    if (!channel.ok()) return next(channel.status());
    if (*channel == Channel::kUnspecified) {
      return next(errors::InvalidField("channel", "is required"));
    }
    if (!IsOptOutText(m.text())) return next(absl::OkStatus());
    absl::StatusOr<std::string> address =
        NormalizeAddress(*channel, m.from(), m.default_region());
    if (!address.ok()) {
      return next(errors::InvalidField("from", address.status().message()));
    }
    Suppression s;
    s.account_id = account_id_;
    s.address = *std::move(address);
    s.channel = *channel;
    s.reason = SuppressionReason::kOptOut;
    s.note = absl::StrCat(
        "inbound \"", absl::StripAsciiWhitespace(m.text()).substr(0, 50), "\"");
    s.created_at = NowMicros();
    store_->AddSuppression(
        std::move(s),
        [this, next = std::move(next)](absl::StatusOr<Suppression> added) {
          if (added.ok()) ++opt_outs_;
          next(added.status());
        });
  }

  void OnEnd(Reply<v1::ReportInboundMessagesResponse> reply) override {
    v1::ReportInboundMessagesResponse out;
    out.set_received(received_);
    out.set_opt_outs(opt_outs_);
    reply(std::move(out));
  }

  void OnAbort() override {}

 private:
  const std::string account_id_;
  Repository* const store_;
  int64_t received_ = 0;
  int64_t opt_outs_ = 0;
};

}  // namespace

void Api::RegisterDelivery(Registrar& r) {
  RawService* d = &delivery_service_;
  r.ClientStream<v1::DeliveryReceipt, v1::ReportDeliveryReceiptsResponse>(
      d, "ReportDeliveryReceipts", [this](const RpcContext& ctx) {
        return std::make_shared<ReceiptStream>(ctx, engine_);
      });
  r.ClientStream<v1::InboundMessage, v1::ReportInboundMessagesResponse>(
      d, "ReportInboundMessages", [this](const RpcContext& ctx) {
        return std::make_shared<InboundStream>(ctx, store_);
      });
}

}  // namespace campaigns::api
