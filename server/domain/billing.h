// Money: prices, billable units and costs, all integers in micro-credits
// (1 credit = 1,000,000 micro-credits) of the account's currency.
//
// An account's price table holds prices per channel, optionally per
// destination country (ISO 3166 alpha-2 from libphonenumber's region of the
// recipient's number), with a default per channel (country "") and an
// account-wide default (channel unspecified, country ""). An account with no
// prices pays nothing: billing is opt-in.
//
//   ChannelPrices p = ChannelPrices::For(table, Channel::kSms);
//   int64_t units = BillableUnits(Channel::kSms, tmpl, recipient.variables);
//   absl::StatusOr<int64_t> cost = MessageCost(p.UnitPrice("US"), units);
//
// Thread-safe (values and pure functions).
#ifndef CAMPAIGND_SERVER_DOMAIN_BILLING_H_
#define CAMPAIGND_SERVER_DOMAIN_BILLING_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/domain/render.h"
#include "server/domain/types.h"

namespace campaigns {

// The unit every amount of the API is given in.
inline constexpr char kCreditUnit[] = "micro";
// The most a price may be: one million credits per message or segment.
inline constexpr int64_t kMaxUnitPrice = int64_t{1000000} * 1000000;
// The most one AddCredits may add.
inline constexpr int64_t kMaxCreditAmount = int64_t{1000000000} * 1000000;
// At most this many entries in a price table.
inline constexpr int kMaxPrices = 2000;

struct Price {
  Channel channel = Channel::kUnspecified;  // kUnspecified: every channel
  std::string country;                      // "" = the channel's default
  int64_t amount = 0;                       // micro-credits per unit
};

// Checks a SetPrices table and returns it normalised: countries upper-case,
// sorted by channel and country. INVALID_ARGUMENT naming
// `prices[i].<field>` for a negative or too large amount, an unknown
// country, a country on an account-wide default, or a repeated entry.
absl::StatusOr<std::vector<Price>> NormalizePrices(std::vector<Price> prices);

// One channel's prices out of an account's table.
class ChannelPrices {
 public:
  ChannelPrices() = default;
  static ChannelPrices For(const std::vector<Price>& table, Channel channel);

  // Per unit for a destination country ("" = unknown or not a phone).
  int64_t UnitPrice(absl::string_view country) const;
  // True when the table priced nothing for this channel: sending is free.
  bool free() const { return !has_default_ && by_country_.empty(); }

  // A compact text form ("" when free), to keep the prices a campaign
  // reserved with.
  std::string Serialize() const;
  static ChannelPrices Parse(absl::string_view text);

 private:
  std::map<std::string, int64_t, std::less<>> by_country_;
  int64_t default_ = 0;
  bool has_default_ = false;
};

// What one recipient's message counts as: SMS segments of the rendered text
// (see sms_segments.h), one for every other channel; 0 when the recipient
// lacks a variable of the message (it is skipped, not sent).
int64_t BillableUnits(Channel channel, const MessageTemplate& message,
                      const std::map<std::string, std::string>& variables);

// `a` * `b` + `c`, or OUT_OF_RANGE when it does not fit in int64.
absl::StatusOr<int64_t> MulAdd(int64_t a, int64_t b, int64_t c);

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_DOMAIN_BILLING_H_
