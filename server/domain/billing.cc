// Money: prices, billable units and costs in micro-credits.
#include "server/domain/billing.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/domain/address.h"
#include "server/domain/errors.h"
#include "server/domain/sms_segments.h"

namespace campaigns {

absl::StatusOr<std::vector<Price>> NormalizePrices(std::vector<Price> prices) {
  if (prices.size() > static_cast<size_t>(kMaxPrices)) {
    return errors::InvalidField(
        "prices", absl::StrCat("at most ", kMaxPrices, " entries"));
  }
  std::set<std::pair<Channel, std::string>> seen;
  for (size_t i = 0; i < prices.size(); ++i) {
    Price& p = prices[i];
    const std::string at = absl::StrCat("prices[", i, "].");
    p.country = absl::AsciiStrToUpper(p.country);
    if (p.amount < 0 || p.amount > kMaxUnitPrice) {
      return errors::InvalidField(
          at + "amount", absl::StrCat("must be between 0 and ", kMaxUnitPrice,
                                      " micro-credits"));
    }
    if (!p.country.empty()) {
      if (p.channel == Channel::kUnspecified) {
        return errors::InvalidField(
            at + "country",
            "an account-wide default (no channel) cannot name a country");
      }
      if (!IsKnownRegion(p.country)) {
        return errors::InvalidField(
            at + "country",
            absl::StrCat(errors::Quote(p.country),
                         " is not an ISO 3166 region code libphonenumber "
                         "knows"));
      }
    }
    if (!seen.emplace(p.channel, p.country).second) {
      return errors::InvalidField(
          at + "country",
          absl::StrCat("repeats the price of ", ChannelName(p.channel),
                       p.country.empty() ? "" : " ", p.country));
    }
  }
  std::sort(prices.begin(), prices.end(), [](const Price& a, const Price& b) {
    return std::make_pair(static_cast<int>(a.channel), a.country) <
           std::make_pair(static_cast<int>(b.channel), b.country);
  });
  return prices;
}

ChannelPrices ChannelPrices::For(const std::vector<Price>& table,
                                 Channel channel) {
  ChannelPrices out;
  bool channel_default = false;
  for (const Price& p : table) {
    if (p.channel == channel) {
      if (p.country.empty()) {
        out.default_ = p.amount;
        out.has_default_ = true;
        channel_default = true;
      } else {
        out.by_country_[p.country] = p.amount;
      }
    }
  }
  if (!channel_default) {
    for (const Price& p : table) {
      if (p.channel == Channel::kUnspecified && p.country.empty()) {
        out.default_ = p.amount;
        out.has_default_ = true;
      }
    }
  }
  return out;
}

int64_t ChannelPrices::UnitPrice(absl::string_view country) const {
  auto it = by_country_.find(country);
  return it != by_country_.end() ? it->second : default_;
}

std::string ChannelPrices::Serialize() const {
  if (free()) return "";
  // "<default>;<country>=<price>;..." ("-" when there is no default).
  std::string out = has_default_ ? absl::StrCat(default_) : "-";
  for (const auto& [country, amount] : by_country_) {
    absl::StrAppend(&out, ";", country, "=", amount);
  }
  return out;
}

ChannelPrices ChannelPrices::Parse(absl::string_view text) {
  ChannelPrices out;
  if (text.empty()) return out;
  bool first = true;
  for (absl::string_view part : absl::StrSplit(text, ';')) {
    if (first) {
      first = false;
      out.has_default_ = absl::SimpleAtoi(part, &out.default_);
      continue;
    }
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(part, absl::MaxSplits('=', 1));
    int64_t amount = 0;
    if (absl::SimpleAtoi(kv.second, &amount)) {
      out.by_country_[std::string(kv.first)] = amount;
    }
  }
  return out;
}

int64_t BillableUnits(Channel channel, const MessageTemplate& message,
                      const std::map<std::string, std::string>& variables) {
  if (channel != Channel::kSms) {
    for (const std::string& v : message.Variables()) {
      if (variables.find(v) == variables.end()) return 0;
    }
    return 1;
  }
  RenderResult r = message.Render(variables);
  if (!r.missing.empty()) return 0;
  return CountSmsSegments(r.text).segments;
}

absl::StatusOr<int64_t> MulAdd(int64_t a, int64_t b, int64_t c) {
  int64_t product = 0;
  int64_t sum = 0;
  if (__builtin_mul_overflow(a, b, &product) ||
      __builtin_add_overflow(product, c, &sum)) {
    return absl::OutOfRangeError(
        "the amount does not fit in 64 bits of micro-credits");
  }
  return sum;
}

}  // namespace campaigns
