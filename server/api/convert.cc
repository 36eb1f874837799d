// Conversions between campaigns.v1 protos and domain values (convert.h).
#include "server/api/convert.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
#include "server/domain/rules.h"

namespace campaigns::api {
namespace {

// Earliest/latest instants google.protobuf.Timestamp allows.
constexpr int64_t kMinSeconds = -62135596800;
constexpr int64_t kMaxSeconds = 253402300799;

template <typename E>
absl::StatusOr<E> EnumFromProto(int value, int max, const char* field) {
  if (value < 0 || value > max) {
    return errors::InvalidField(field, absl::StrCat("unknown value ", value));
  }
  return static_cast<E>(value);
}

}  // namespace

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp out;
  const int64_t us = absl::ToUnixMicros(t);
  int64_t seconds = us / 1000000;
  int64_t micros = us % 1000000;
  if (micros < 0) {
    micros += 1000000;
    --seconds;
  }
  out.set_seconds(seconds);
  out.set_nanos(static_cast<int32_t>(micros * 1000));
  return out;
}

google::protobuf::Duration ToProto(absl::Duration d) {
  google::protobuf::Duration out;
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  out.set_seconds(ns / 1000000000);
  out.set_nanos(static_cast<int32_t>(ns % 1000000000));
  return out;
}

absl::StatusOr<absl::Time> FromProto(const google::protobuf::Timestamp& t,
                                     const char* field) {
  if (t.seconds() < kMinSeconds || t.seconds() > kMaxSeconds || t.nanos() < 0 ||
      t.nanos() > 999999999) {
    return errors::InvalidField(field, "is not a valid timestamp");
  }
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

absl::StatusOr<absl::Duration> FromProto(const google::protobuf::Duration& d,
                                         const char* field) {
  if (d.seconds() < -315576000000 || d.seconds() > 315576000000 ||
      d.nanos() < -999999999 || d.nanos() > 999999999 ||
      (d.seconds() > 0 && d.nanos() < 0) ||
      (d.seconds() < 0 && d.nanos() > 0)) {
    return errors::InvalidField(field, "is not a valid duration");
  }
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

absl::StatusOr<Channel> ChannelFromProto(int value, const char* field) {
  return EnumFromProto<Channel>(value, kChannelMax, field);
}
absl::StatusOr<CampaignStatus> CampaignStatusFromProto(int value,
                                                       const char* field) {
  return EnumFromProto<CampaignStatus>(value, kCampaignStatusMax, field);
}
absl::StatusOr<TemplateStatus> TemplateStatusFromProto(int value,
                                                       const char* field) {
  return EnumFromProto<TemplateStatus>(value, kTemplateStatusMax, field);
}
absl::StatusOr<SenderTier> SenderTierFromProto(int value, const char* field) {
  return EnumFromProto<SenderTier>(value, kSenderTierMax, field);
}

absl::StatusOr<SuppressionReason> SuppressionReasonFromProto(
    int value, const char* field) {
  return EnumFromProto<SuppressionReason>(value, kSuppressionReasonMax, field);
}

void ToProto(const Suppression& s, v1::Suppression* out) {
  out->set_address(s.address);
  out->set_channel(static_cast<v1::Channel>(s.channel));
  out->set_reason(static_cast<v1::Suppression::Reason>(s.reason));
  out->set_note(s.note);
  *out->mutable_created_at() = ToProto(s.created_at);
}

void ToProto(const Recipient& r, v1::Recipient* out) {
  out->set_id(r.id);
  out->set_campaign_id(r.campaign_id);
  out->set_contact_id(r.contact_id);
  out->set_address(r.address);
  out->mutable_variables()->insert(r.variables.begin(), r.variables.end());
  out->set_status(static_cast<v1::Recipient::Status>(r.status));
  out->set_skip_reason(r.skip_reason);
  out->set_provider_message_id(r.provider_message_id);
  out->set_provider(r.provider);
  out->set_error_code(r.error_code);
  out->set_error_desc(r.error_desc);
  out->set_attempts(r.attempts);
  if (r.sent_at) *out->mutable_sent_at() = ToProto(*r.sent_at);
  if (r.delivered_at) *out->mutable_delivered_at() = ToProto(*r.delivered_at);
  if (r.read_at) *out->mutable_read_at() = ToProto(*r.read_at);
  *out->mutable_created_at() = ToProto(r.created_at);
  *out->mutable_updated_at() = ToProto(r.updated_at);
}

void ToProto(const Contact& c, v1::Contact* out) {
  out->set_id(c.id);
  out->set_address(c.address);
  out->set_channel(static_cast<v1::Channel>(c.channel));
  out->mutable_attributes()->insert(c.attributes.begin(), c.attributes.end());
  for (const std::string& tag : c.tags) out->add_tags(tag);
  *out->mutable_created_at() = ToProto(c.created_at);
  *out->mutable_updated_at() = ToProto(c.updated_at);
}

void ToProto(const ContactList& l, v1::ContactList* out) {
  out->set_id(l.id);
  out->set_name(l.name);
  out->set_description(l.description);
  out->set_contact_count(l.contact_count);
  *out->mutable_created_at() = ToProto(l.created_at);
  *out->mutable_updated_at() = ToProto(l.updated_at);
}

void ToProto(const Account& a, v1::Account* out) {
  out->set_id(a.id);
  out->set_name(a.name);
  out->set_admin(a.admin);
  out->set_currency(a.currency);
  out->set_credits_balance(a.credits_balance);
  out->set_credits_reserved(a.credits_reserved);
  out->set_credit_unit(kCreditUnit);
  *out->mutable_created_at() = ToProto(a.created_at);
  *out->mutable_updated_at() = ToProto(a.updated_at);
}

void ToProto(const Transaction& t, v1::Transaction* out) {
  out->set_id(absl::StrCat("txn_", t.seq));
  out->set_account_id(t.account_id);
  switch (t.type) {
    case Transaction::Type::kCredit:
      out->set_type(v1::Transaction::credit);
      break;
    case Transaction::Type::kReservation:
      out->set_type(v1::Transaction::reservation);
      break;
    case Transaction::Type::kDebit:
      out->set_type(v1::Transaction::debit);
      break;
    case Transaction::Type::kRelease:
      out->set_type(v1::Transaction::release);
      break;
  }
  out->set_amount(t.amount);
  out->set_campaign_id(t.campaign_id);
  out->set_description(t.description);
  out->set_balance_after(t.balance_after);
  *out->mutable_created_at() = ToProto(t.created_at);
}

void ToProto(const Price& p, v1::Price* out) {
  out->set_channel(static_cast<v1::Channel>(p.channel));
  out->set_country(p.country);
  out->set_amount(p.amount);
}

void ToProto(const CostEstimateValue& e, v1::CostEstimate* out) {
  out->set_campaign_id(e.campaign_id);
  out->set_total(e.total);
  out->set_currency(e.currency);
  out->set_credit_unit(kCreditUnit);
  for (const CostLineValue& l : e.lines) {
    v1::CostLine* line = out->add_lines();
    line->set_channel(static_cast<v1::Channel>(l.channel));
    line->set_country(l.country);
    line->set_recipients(l.recipients);
    line->set_segments(l.units);
    line->set_unit_price(l.unit_price);
    line->set_amount(l.amount);
  }
  out->set_credits_available(e.credits_available);
  out->set_sufficient(e.sufficient);
}

void ToProto(const AccountStats& s, v1::GetCampaignStatsResponse* out) {
  out->set_campaigns(s.campaigns);
  ToProto(s.stats, out->mutable_stats());
  out->set_cost(s.cost);
  out->set_currency(s.currency);
  for (const ChannelStatsValue& c : s.by_channel) {
    v1::ChannelStats* cs = out->add_by_channel();
    cs->set_channel(static_cast<v1::Channel>(c.channel));
    cs->set_campaigns(c.campaigns);
    ToProto(c.stats, cs->mutable_stats());
    cs->set_cost(c.cost);
  }
}

void ToProto(const ApiKey& k, v1::ApiKey* out) {
  out->set_id(k.id);
  out->set_account_id(k.account_id);
  out->set_name(k.name);
  out->set_prefix(k.prefix);
  out->set_revoked(k.revoked_at.has_value());
  *out->mutable_created_at() = ToProto(k.created_at);
  if (k.revoked_at) *out->mutable_revoked_at() = ToProto(*k.revoked_at);
}

void ToProto(const Template& t, v1::Template* out) {
  out->set_id(t.id);
  out->set_name(t.name);
  out->set_language(t.language);
  out->set_channel(static_cast<v1::Channel>(t.channel));
  out->set_body(t.body);
  out->set_subject(t.subject);
  out->set_html_body(t.html_body);
  ComponentsToProto(t.components, out->mutable_components());
  out->set_status(static_cast<v1::Template::Status>(t.status));
  out->set_rejection_reason(t.rejection_reason);
  for (const std::string& p : TemplatePlaceholders(t)) out->add_placeholders(p);
  *out->mutable_created_at() = ToProto(t.created_at);
  *out->mutable_updated_at() = ToProto(t.updated_at);
}

void ToProto(const Sender& s, v1::Sender* out) {
  out->set_id(s.id);
  out->set_sender_id(s.sender_id);
  out->set_channel(static_cast<v1::Channel>(s.channel));
  out->set_tier(static_cast<v1::Sender::Tier>(s.tier));
  out->set_verified(s.verified);
  out->set_provider(s.provider);
  out->set_rate_per_second(TierRatePerSecond(s.tier));
  *out->mutable_created_at() = ToProto(s.created_at);
  *out->mutable_updated_at() = ToProto(s.updated_at);
}

void ToProto(const CampaignStats& s, v1::CampaignStats* out) {
  out->set_total(s.total);
  out->set_queued(s.queued);
  out->set_sent(s.sent);
  out->set_delivered(s.delivered);
  out->set_read(s.read);
  out->set_failed(s.failed);
  out->set_skipped(s.skipped);
}

void ToProto(const Campaign& c, v1::Campaign* out) {
  out->set_id(c.id);
  out->set_name(c.name);
  out->set_channel(static_cast<v1::Channel>(c.channel));
  out->set_sender_id(c.sender_id);
  out->set_body(c.body);
  out->set_subject(c.subject);
  out->set_html_body(c.html_body);
  out->set_template_id(c.template_id);
  out->set_template_name(c.template_name);
  out->set_template_lang(c.template_lang);
  out->mutable_variable_mapping()->insert(c.variable_mapping.begin(),
                                          c.variable_mapping.end());
  ComponentsToProto(c.template_components, out->mutable_template_components());
  for (const auto& [contact, vars] : c.recipient_variables) {
    auto* fields =
        (*out->mutable_recipient_variables())[contact].mutable_fields();
    for (const auto& [key, value] : vars) {
      (*fields)[key].set_string_value(value);
    }
  }
  out->set_contact_list_id(c.contact_list_id);
  for (const std::string& t : c.tags) out->add_tags(t);
  for (const std::string& id : c.contact_ids) out->add_contact_ids(id);
  out->set_status(static_cast<v1::Campaign::Status>(c.status));
  out->set_pause_reason(c.pause_reason);
  out->set_failure_reason(c.failure_reason);
  ToProto(c.stats, out->mutable_stats());
  out->set_batch_size(c.batch_size);
  *out->mutable_batch_delay() = ToProto(c.batch_delay);
  out->set_rate_limit_per_second(c.rate_limit_per_second);
  if (c.validity_period) {
    *out->mutable_validity_period() = ToProto(*c.validity_period);
  }
  if (c.max_lateness) *out->mutable_max_lateness() = ToProto(*c.max_lateness);
  if (c.schedule_at) *out->mutable_schedule_at() = ToProto(*c.schedule_at);
  if (c.started_at) *out->mutable_started_at() = ToProto(*c.started_at);
  if (c.sent_at) *out->mutable_sent_at() = ToProto(*c.sent_at);
  if (c.completed_at) *out->mutable_completed_at() = ToProto(*c.completed_at);
  if (c.cancelled_at) *out->mutable_cancelled_at() = ToProto(*c.cancelled_at);
  *out->mutable_created_at() = ToProto(c.created_at);
  *out->mutable_updated_at() = ToProto(c.updated_at);
}

std::vector<TemplateComponent> ComponentsFromProto(
    const google::protobuf::RepeatedPtrField<v1::TemplateComponent>& in) {
  std::vector<TemplateComponent> out;
  for (const v1::TemplateComponent& pc : in) {
    TemplateComponent c;
    c.type = pc.type();
    c.format = pc.format();
    c.text = pc.text();
    for (const v1::TemplateParameter& pp : pc.parameters()) {
      c.parameters.push_back({pp.type(), pp.text(), pp.payload()});
    }
    c.sub_type = pc.sub_type();
    c.index = pc.index();
    out.push_back(std::move(c));
  }
  return out;
}

void ComponentsToProto(
    const std::vector<TemplateComponent>& in,
    google::protobuf::RepeatedPtrField<v1::TemplateComponent>* out) {
  for (const TemplateComponent& c : in) {
    v1::TemplateComponent* pc = out->Add();
    pc->set_type(c.type);
    pc->set_format(c.format);
    pc->set_text(c.text);
    for (const TemplateParameter& p : c.parameters) {
      v1::TemplateParameter* pp = pc->add_parameters();
      pp->set_type(p.type);
      pp->set_text(p.text);
      pp->set_payload(p.payload);
    }
    pc->set_sub_type(c.sub_type);
    pc->set_index(c.index);
  }
}

absl::StatusOr<std::map<std::string, std::map<std::string, std::string>>>
RecipientVariablesFromProto(
    const google::protobuf::Map<std::string, google::protobuf::Struct>& in) {
  std::map<std::string, std::map<std::string, std::string>> out;
  for (const auto& [contact, vars] : in) {
    std::map<std::string, std::string>& values = out[contact];
    for (const auto& [key, value] : vars.fields()) {
      switch (value.kind_case()) {
        case google::protobuf::Value::kStringValue:
          values[key] = value.string_value();
          break;
        case google::protobuf::Value::kBoolValue:
          values[key] = value.bool_value() ? "true" : "false";
          break;
        case google::protobuf::Value::kNumberValue: {
          // Integers as integers ("42", not "42.0"), else with up to 15
          // significant digits (what a double holds exactly in decimal).
          const double n = value.number_value();
          values[key] =
              std::isfinite(n) && n == std::trunc(n) && std::abs(n) < 1e15
                  ? absl::StrCat(static_cast<int64_t>(n))
                  : absl::StrFormat("%.15g", n);
          break;
        }
        default:
          return errors::InvalidField(
              absl::StrCat("recipient_variables.", contact, ".", key),
              "must be a string, number or boolean");
      }
    }
  }
  return out;
}

std::string RequestHash(const google::protobuf::Message& request) {
  std::unique_ptr<google::protobuf::Message> copy(request.New());
  copy->CopyFrom(request);
  if (const auto* field =
          copy->GetDescriptor()->FindFieldByName("request_id")) {
    copy->GetReflection()->ClearField(copy.get(), field);
  }
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    copy->SerializeToCodedStream(&coded);
  }
  return Sha256Hex(bytes);
}

}  // namespace campaigns::api
