// Conversions between campaigns.v1 protos and domain values.
//
// Enum conversions check the range and report the field on failure, so a
// number outside the proto enum is INVALID_ARGUMENT naming the field.
// Thread-safe (pure functions).
#ifndef CAMPAIGND_SERVER_API_CONVERT_H_
#define CAMPAIGND_SERVER_API_CONVERT_H_

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/message.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/timestamp.pb.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "campaigns/v1/account.pb.h"
#include "campaigns/v1/campaign.pb.h"
#include "campaigns/v1/contact.pb.h"
#include "campaigns/v1/sender.pb.h"
#include "campaigns/v1/suppression.pb.h"
#include "campaigns/v1/template.pb.h"
#include "server/domain/billing.h"
#include "server/domain/model.h"

namespace campaigns::api {

google::protobuf::Timestamp ToProto(absl::Time t);
google::protobuf::Duration ToProto(absl::Duration d);
absl::StatusOr<absl::Time> FromProto(const google::protobuf::Timestamp& t,
                                     const char* field);
absl::StatusOr<absl::Duration> FromProto(const google::protobuf::Duration& d,
                                         const char* field);

// Enum checks: 0 (unspecified) is allowed here; callers that require a value
// check for it.
absl::StatusOr<Channel> ChannelFromProto(int value, const char* field);
absl::StatusOr<CampaignStatus> CampaignStatusFromProto(int value,
                                                       const char* field);
absl::StatusOr<TemplateStatus> TemplateStatusFromProto(int value,
                                                       const char* field);
absl::StatusOr<SenderTier> SenderTierFromProto(int value, const char* field);
absl::StatusOr<SuppressionReason> SuppressionReasonFromProto(int value,
                                                             const char* field);

void ToProto(const Account& a, v1::Account* out);
void ToProto(const ApiKey& k, v1::ApiKey* out);
void ToProto(const Template& t, v1::Template* out);
void ToProto(const Sender& s, v1::Sender* out);
void ToProto(const Campaign& c, v1::Campaign* out);
void ToProto(const CampaignStats& s, v1::CampaignStats* out);
void ToProto(const Suppression& s, v1::Suppression* out);
void ToProto(const Recipient& r, v1::Recipient* out);
void ToProto(const Contact& c, v1::Contact* out);
void ToProto(const ContactList& l, v1::ContactList* out);
void ToProto(const Transaction& t, v1::Transaction* out);
void ToProto(const Price& p, v1::Price* out);
void ToProto(const CostEstimateValue& e, v1::CostEstimate* out);
void ToProto(const AccountStats& s, v1::GetCampaignStatsResponse* out);

void ComponentsToProto(
    const std::vector<TemplateComponent>& in,
    google::protobuf::RepeatedPtrField<v1::TemplateComponent>* out);
// Seed 003's {contact_id: {key: value}}: strings as they are, numbers and
// booleans as their JSON text; anything else is INVALID_ARGUMENT naming
// recipient_variables.<contact>.<key>.
absl::StatusOr<std::map<std::string, std::map<std::string, std::string>>>
RecipientVariablesFromProto(
    const google::protobuf::Map<std::string, google::protobuf::Struct>& in);
std::vector<TemplateComponent> ComponentsFromProto(
    const google::protobuf::RepeatedPtrField<v1::TemplateComponent>& in);

// SHA-256 of `request` serialized deterministically with its request_id
// field cleared: what idempotency compares.
std::string RequestHash(const google::protobuf::Message& request);

}  // namespace campaigns::api

#endif  // CAMPAIGND_SERVER_API_CONVERT_H_
