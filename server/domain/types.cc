// The shared enumerations and their canonical lowercase spellings.
#include "server/domain/types.h"

#include <array>

namespace campaigns {
namespace {

constexpr std::array<absl::string_view, kChannelMax + 1> kChannelNames = {
    "channel_unspecified",
    "sms",
    "whatsapp",
    "telegram",
    "email",
    "slack",
    "rcs"};
constexpr std::array<absl::string_view, kCampaignStatusMax + 1>
    kCampaignStatusNames = {"status_unspecified",
                            "draft",
                            "scheduled",
                            "sending",
                            "paused",
                            "sent",
                            "completed",
                            "cancelled",
                            "failed"};
constexpr std::array<absl::string_view, kRecipientStatusMax + 1>
    kRecipientStatusNames = {"status_unspecified",
                             "queued",
                             "sent",
                             "delivered",
                             "read",
                             "failed",
                             "skipped"};
constexpr std::array<absl::string_view, kTemplateStatusMax + 1>
    kTemplateStatusNames = {"status_unspecified", "pending", "approved",
                            "rejected"};
constexpr std::array<absl::string_view, kSenderTierMax + 1> kTierNames = {
    "tier_unspecified", "tier_1k", "tier_10k", "tier_100k", "unlimited"};

constexpr std::array<absl::string_view, kSuppressionReasonMax + 1>
    kSuppressionReasonNames = {"reason_unspecified", "manual", "opt_out",
                               "bounce", "complaint"};

template <typename E, size_t N>
absl::string_view NameOf(const std::array<absl::string_view, N>& names, E e) {
  size_t i = static_cast<size_t>(e);
  return i < N ? names[i] : absl::string_view("unknown");
}

template <typename E, size_t N>
bool ParseName(const std::array<absl::string_view, N>& names,
               absl::string_view name, E* out) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i] == name) {
      *out = static_cast<E>(i);
      return true;
    }
  }
  return false;
}

}  // namespace

absl::string_view ChannelName(Channel c) { return NameOf(kChannelNames, c); }
absl::string_view CampaignStatusName(CampaignStatus s) {
  return NameOf(kCampaignStatusNames, s);
}
absl::string_view RecipientStatusName(RecipientStatus s) {
  return NameOf(kRecipientStatusNames, s);
}
absl::string_view TemplateStatusName(TemplateStatus s) {
  return NameOf(kTemplateStatusNames, s);
}
absl::string_view SenderTierName(SenderTier t) { return NameOf(kTierNames, t); }
absl::string_view SuppressionReasonName(SuppressionReason r) {
  return NameOf(kSuppressionReasonNames, r);
}

bool ParseChannel(absl::string_view name, Channel* out) {
  return ParseName(kChannelNames, name, out);
}
bool ParseCampaignStatus(absl::string_view name, CampaignStatus* out) {
  return ParseName(kCampaignStatusNames, name, out);
}
bool ParseRecipientStatus(absl::string_view name, RecipientStatus* out) {
  return ParseName(kRecipientStatusNames, name, out);
}
bool ParseTemplateStatus(absl::string_view name, TemplateStatus* out) {
  return ParseName(kTemplateStatusNames, name, out);
}
bool ParseSenderTier(absl::string_view name, SenderTier* out) {
  return ParseName(kTierNames, name, out);
}

bool ParseSuppressionReason(absl::string_view name, SuppressionReason* out) {
  return ParseName(kSuppressionReasonNames, name, out);
}

int TierRatePerSecond(SenderTier t) {
  switch (t) {
    case SenderTier::kTier1k:
      return 10;
    case SenderTier::kTier10k:
      return 30;
    case SenderTier::kTier100k:
      return 80;
    default:
      return 0;
  }
}

bool IsPhoneChannel(Channel c) {
  return c == Channel::kSms || c == Channel::kWhatsapp || c == Channel::kRcs;
}

}  // namespace campaigns
