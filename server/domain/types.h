// Enumerations shared by the domain, storage and API layers, with their
// canonical lowercase spellings (the same words the API's JSON uses and the
// database stores).
//
// Numeric values equal the proto enum values of campaigns.v1, so server/api
// converts with a range-checked cast. Example:
//
//   Channel c;
//   if (!ParseChannel("whatsapp", &c)) ...;
//   ChannelName(c);  // "whatsapp"
#ifndef CAMPAIGND_SERVER_DOMAIN_TYPES_H_
#define CAMPAIGND_SERVER_DOMAIN_TYPES_H_

#include <string>

#include "absl/strings/string_view.h"

namespace campaigns {

enum class Channel {
  kUnspecified = 0,
  kSms,
  kWhatsapp,
  kTelegram,
  kEmail,
  kSlack,
  kRcs
};
inline constexpr int kChannelMax = 6;

enum class CampaignStatus {
  kUnspecified = 0,
  kDraft,
  kScheduled,
  kSending,
  kPaused,
  kSent,
  kCompleted,
  kCancelled,
  kFailed
};
inline constexpr int kCampaignStatusMax = 8;

enum class RecipientStatus {
  kUnspecified = 0,
  kQueued,
  kSent,
  kDelivered,
  kRead,
  kFailed,
  kSkipped
};
inline constexpr int kRecipientStatusMax = 6;

enum class TemplateStatus { kUnspecified = 0, kPending, kApproved, kRejected };
inline constexpr int kTemplateStatusMax = 3;

// Sender throughput tiers (seed 004).
enum class SenderTier {
  kUnspecified = 0,
  kTier1k,
  kTier10k,
  kTier100k,
  kUnlimited
};
inline constexpr int kSenderTierMax = 4;

// Why an address is on the do-not-contact list.
enum class SuppressionReason {
  kUnspecified = 0,
  kManual,
  kOptOut,
  kBounce,
  kComplaint
};
inline constexpr int kSuppressionReasonMax = 4;

// Canonical names ("sms", "draft", "tier_1k", ...). kUnspecified gives
// "<x>_unspecified".
absl::string_view ChannelName(Channel c);
absl::string_view CampaignStatusName(CampaignStatus s);
absl::string_view RecipientStatusName(RecipientStatus s);
absl::string_view TemplateStatusName(TemplateStatus s);
absl::string_view SenderTierName(SenderTier t);
absl::string_view SuppressionReasonName(SuppressionReason r);

// Parse a canonical name; false (and *out untouched) when unknown.
bool ParseChannel(absl::string_view name, Channel* out);
bool ParseCampaignStatus(absl::string_view name, CampaignStatus* out);
bool ParseRecipientStatus(absl::string_view name, RecipientStatus* out);
bool ParseTemplateStatus(absl::string_view name, TemplateStatus* out);
bool ParseSenderTier(absl::string_view name, SenderTier* out);
bool ParseSuppressionReason(absl::string_view name, SuppressionReason* out);

// Messages per second of a tier; 0 means unlimited.
int TierRatePerSecond(SenderTier t);

// True for channels whose addresses are phone numbers (E.164).
bool IsPhoneChannel(Channel c);

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_DOMAIN_TYPES_H_
