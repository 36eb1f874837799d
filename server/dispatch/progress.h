// ProgressHub: the latest progress of each campaign and who watches it.
//
// The engine publishes every change of a campaign (status or counters);
// each watcher is woken (its callback, without locks held) and reads the
// latest snapshot when it is ready to send, so a slow watcher skips the
// snapshots it had no time for: memory per watcher is constant.
//
//   uint64_t sub = hub.Subscribe(id, [] { wake_my_stream(); });
//   std::optional<Progress> p = hub.Latest(id);
//   hub.Unsubscribe(id, sub);
//
// Thread-safe.
#ifndef CAMPAIGND_SERVER_DISPATCH_PROGRESS_H_
#define CAMPAIGND_SERVER_DISPATCH_PROGRESS_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "server/domain/model.h"
#include "server/domain/mutex.h"

namespace campaigns::dispatch {

struct Progress {
  std::string campaign_id;
  CampaignStatus status = CampaignStatus::kUnspecified;
  CampaignStats stats;
  std::string pause_reason;
  std::string failure_reason;
  // Recipients settled per second over the last few seconds.
  double rate_per_second = 0;
  // Time left at that rate (unset when the rate is 0 or nothing is queued).
  std::optional<absl::Duration> eta;
  absl::Time updated_at;
  uint64_t version = 0;  // grows with every publish
};

class ProgressHub {
 public:
  // Records `c`'s state at `now` (the rate comes from these samples) and
  // wakes its watchers; unless `c` is older than what was published last
  // (a lower Campaign::version: e.g. a re-read that began before a change
  // another path published already), which is dropped (waking the
  // watchers still, if what is shown was never announced: PublishIfNew).
  void Publish(const Campaign& c, absl::Time now);
  // Publishes `c` only if nothing was published for it yet, or only an
  // older version (a stale snapshot a watcher's fresh read replaces),
  // waking nobody: its caller (a watcher joining, which may hold its own
  // lock) reads Latest next. Watchers that joined earlier read a state as
  // new when they joined, and the hub keeps versions while any watch.
  void PublishIfNew(const Campaign& c, absl::Time now);
  // Publishes `c` unless what was published last shows the same (status,
  // counters, reasons): a re-read of an unchanged campaign wakes nobody but
  // watchers not woken yet for what is shown (PublishIfNew), and gives no
  // watcher a second message.
  void PublishIfChanged(const Campaign& c, absl::Time now);

  std::optional<Progress> Latest(const std::string& campaign_id);

  // `wake` runs after each later publish, on the publisher's thread.
  uint64_t Subscribe(const std::string& campaign_id,
                     std::function<void()> wake);
  void Unsubscribe(const std::string& campaign_id, uint64_t subscription);

  // Campaigns with state kept: those watched, and those sending (tests:
  // memory stays bounded).
  size_t campaigns() const;
  // The campaigns someone watches now.
  std::vector<std::string> Watched() const;

 private:
  struct Entry {
    Progress latest;
    bool published = false;
    int64_t row_version = 0;  // latest's Campaign::version
    // `latest` was set by PublishIfNew, and the watchers that joined before
    // it were not woken for it: the next Publish or PublishIfChanged wakes
    // them even if it is older or shows the same (a write's answer carries
    // the version it read, one below the row a watcher's read found).
    bool unannounced = false;
    std::deque<std::pair<absl::Time, int64_t>> samples;  // (time, settled)
    std::map<uint64_t, std::function<void()>> watchers;
  };
  void PublishLocked(Entry& e, const Campaign& c, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks what `e` shows announced, and adds its watchers to `wake` (each
  // to run after mu_ is released).
  void AnnounceLocked(Entry& e, std::vector<std::function<void()>>* wake)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable Mutex mu_;
  uint64_t next_subscription_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_PROGRESS_H_
