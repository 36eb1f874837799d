// ProgressHub: each campaign's latest progress and its watchers.
#include "server/dispatch/progress.h"

#include <vector>

#include "server/domain/rules.h"

namespace campaigns::dispatch {
namespace {

// The rate is measured over this window, from samples this far apart.
constexpr absl::Duration kRateWindow = absl::Seconds(5);
constexpr absl::Duration kSampleEvery = absl::Milliseconds(100);

int64_t Settled(const CampaignStats& s) { return s.total - s.queued; }

// Whether `p` already shows everything of `c` a watcher sees.
bool Shows(const Progress& p, const Campaign& c) {
  const CampaignStats& a = p.stats;
  const CampaignStats& b = c.stats;
  return p.status == c.status && a.total == b.total && a.queued == b.queued &&
         a.sent == b.sent && a.delivered == b.delivered && a.read == b.read &&
         a.failed == b.failed && a.skipped == b.skipped &&
         p.pause_reason == c.pause_reason &&
         p.failure_reason == c.failure_reason;
}

}  // namespace

void ProgressHub::PublishLocked(Entry& e, const Campaign& c, absl::Time now) {
  Progress& p = e.latest;
  p.campaign_id = c.id;
  p.status = c.status;
  p.stats = c.stats;
  p.pause_reason = c.pause_reason;
  p.failure_reason = c.failure_reason;
  p.updated_at = now;
  ++p.version;
  e.published = true;
  e.row_version = c.version;
  const int64_t settled = Settled(c.stats);
  if (e.samples.empty() || now - e.samples.back().first >= kSampleEvery) {
    e.samples.emplace_back(now, settled);
  } else {
    e.samples.back().second = settled;
  }
  while (e.samples.size() > 2 && now - e.samples.front().first > kRateWindow) {
    e.samples.pop_front();
  }
  p.rate_per_second = 0;
  p.eta.reset();
  if (c.status == CampaignStatus::kSending && e.samples.size() >= 2) {
    const auto& [t0, n0] = e.samples.front();
    const double seconds = absl::ToDoubleSeconds(now - t0);
    if (seconds > 0) {
      p.rate_per_second = static_cast<double>(settled - n0) / seconds;
    }
    if (p.rate_per_second > 0 && c.stats.queued > 0) {
      p.eta = absl::Seconds(static_cast<double>(c.stats.queued) /
                            p.rate_per_second);
    }
  }
}

void ProgressHub::AnnounceLocked(Entry& e,
                                 std::vector<std::function<void()>>* wake) {
  e.unannounced = false;
  for (auto& [id, fn] : e.watchers) wake->push_back(fn);
}

void ProgressHub::Publish(const Campaign& c, absl::Time now) {
  std::vector<std::function<void()>> wake;
  {
    MutexLock lock(&mu_);
    Entry& e = entries_[c.id];
    const bool older = e.published && c.version < e.row_version;
    if (older && !e.unannounced) return;
    if (!older) PublishLocked(e, c, now);
    AnnounceLocked(e, &wake);
    // Unwatched, only a sending campaign needs state (its rate samples).
    if (c.status != CampaignStatus::kSending && e.watchers.empty()) {
      entries_.erase(c.id);
    }
  }
  for (auto& fn : wake) fn();
}

void ProgressHub::PublishIfNew(const Campaign& c, absl::Time now) {
  MutexLock lock(&mu_);
  Entry& e = entries_[c.id];
  if (!e.published || c.version > e.row_version) {
    PublishLocked(e, c, now);
    e.unannounced = true;
  }
}

void ProgressHub::PublishIfChanged(const Campaign& c, absl::Time now) {
  std::vector<std::function<void()>> wake;
  bool same = false;
  {
    MutexLock lock(&mu_);
    auto it = entries_.find(c.id);
    if (it != entries_.end() && it->second.published &&
        Shows(it->second.latest, c)) {
      same = true;
      // Nothing new to show: only watchers not woken for it yet hear.
      if (it->second.unannounced) AnnounceLocked(it->second, &wake);
    }
  }
  if (!same) Publish(c, now);
  for (auto& fn : wake) fn();
}

std::optional<Progress> ProgressHub::Latest(const std::string& campaign_id) {
  MutexLock lock(&mu_);
  auto it = entries_.find(campaign_id);
  if (it == entries_.end() || !it->second.published) return std::nullopt;
  return it->second.latest;
}

uint64_t ProgressHub::Subscribe(const std::string& campaign_id,
                                std::function<void()> wake) {
  MutexLock lock(&mu_);
  const uint64_t id = next_subscription_++;
  entries_[campaign_id].watchers.emplace(id, std::move(wake));
  return id;
}

void ProgressHub::Unsubscribe(const std::string& campaign_id,
                              uint64_t subscription) {
  MutexLock lock(&mu_);
  auto it = entries_.find(campaign_id);
  if (it == entries_.end()) return;
  it->second.watchers.erase(subscription);
  if (it->second.watchers.empty() &&
      (!it->second.published ||
       it->second.latest.status != CampaignStatus::kSending)) {
    entries_.erase(it);
  }
}

size_t ProgressHub::campaigns() const {
  MutexLock lock(&mu_);
  return entries_.size();
}

std::vector<std::string> ProgressHub::Watched() const {
  MutexLock lock(&mu_);
  std::vector<std::string> ids;
  for (const auto& [id, e] : entries_) {
    if (!e.watchers.empty()) ids.push_back(id);
  }
  return ids;
}

}  // namespace campaigns::dispatch
