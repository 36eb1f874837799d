// HeldReceipts: receipts that matched no message yet, kept for a while so
// that they can be tried again. A receipt can overtake the recording of its
// message's outcome:
//   - a vendor calls back before the group commit of its accepted answer;
//   - a restarted process sends again, under the same idempotency keys,
//     what a killed one had handed over, after the vendor has already
//     replayed those messages' receipts;
//   - another instance on the same database has not recorded it yet.
// Dropped at once, such a receipt is lost for good and its campaign waits
// for its receipt timeout.
//
// Held receipts were acknowledged to their sender and live in memory only:
// a process that dies loses those it holds. Each is given up `hold` after
// it first matched nothing; at most `capacity` are held, beyond which the
// oldest are given up (a misrouted webhook's foreign ids must not grow this
// without bound). Only receipts naming a provider message id are held: a
// recipient id that matches nothing names no recipient.
//
// Also the retry schedule (the engine arms the alarms): at most one retry
// runs at a time; the first `first_retry` after receipts were held, then
// with the delay doubling up to `max_retry` while some stay unmatched.
//
//   if (held.Want(now + held.first_retry())) timer->At(...);   // on Hold
//   if (!held.Begin()) return;                                 // the alarm
//   for (Batch& b : held.Take(now, &expired)) ...apply, then Keep(b, left)
//   if (auto next = held.End(now)) timer->At(*next, ...);
//
// Thread-safe.
#ifndef CAMPAIGND_SERVER_DISPATCH_HELD_RECEIPTS_H_
#define CAMPAIGND_SERVER_DISPATCH_HELD_RECEIPTS_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "server/domain/dispatch_store.h"
#include "server/domain/mutex.h"

namespace campaigns::dispatch {

// For each receipt of `batch`, whether it is one of `unmatched`: a
// subsequence of `batch` (ReceiptResult::unmatched_receipts of its apply).
std::vector<bool> UnmatchedOf(const std::vector<ReceiptUpdate>& batch,
                              const std::vector<ReceiptUpdate>& unmatched);

struct HeldReceiptsOptions {
  absl::Duration hold = absl::Minutes(10);
  size_t capacity = 100000;
  absl::Duration first_retry = absl::Seconds(1);
  absl::Duration max_retry = absl::Seconds(16);
};

class HeldReceipts {
 public:
  // Receipts of one scope: an account's (DeliveryService, the simulator) or
  // a provider's (its webhook); the other name is "".
  struct Batch {
    std::string account_id;
    std::string provider;
    std::vector<ReceiptUpdate> receipts;
    std::vector<absl::Time> until;  // when each is given up
  };

  explicit HeldReceipts(HeldReceiptsOptions options = {});

  // Holds `receipts` of the scope until `now` + hold. Returns how many
  // were given up to make room (the oldest held).
  int64_t Hold(const std::string& account_id, const std::string& provider,
               std::vector<ReceiptUpdate> receipts, absl::Time now);
  // Holds again, with their deadlines, `unmatched`: those of `b` a retry
  // left unmatched, in b's order (ReceiptResult::unmatched_receipts).
  // Returns how many were given up to make room.
  int64_t Keep(const Batch& b, const std::vector<ReceiptUpdate>& unmatched);
  // Takes every receipt held, in batches of at most `max_batch` per scope;
  // those past their deadline are given up instead (`*expired` counts
  // them).
  std::vector<Batch> Take(absl::Time now, int64_t* expired,
                          size_t max_batch = 1000);
  size_t size() const;

  // The retry schedule. A retry is wanted at `at`: true when the caller
  // must arm an alarm for `at` (none is armed as early and none runs; one
  // running ends with End, which asks for the next).
  bool Want(absl::Time at);
  // An alarm fired: true when this retry is to run now (false: another
  // runs, or none is armed).
  bool Begin();
  // The running retry ended: when the next is to run (an alarm the caller
  // arms), if any receipt is held.
  std::optional<absl::Time> End(absl::Time now);
  absl::Duration first_retry() const { return options_.first_retry; }

 private:
  struct Entry {
    std::string account_id;
    std::string provider;
    ReceiptUpdate receipt;
    absl::Time until;
  };
  // Gives up the oldest beyond capacity; returns how many.
  int64_t Trim() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const HeldReceiptsOptions options_;
  mutable Mutex mu_;
  std::deque<Entry> held_ ABSL_GUARDED_BY(mu_);  // oldest first
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  // The alarm armed (InfiniteFuture: none).
  absl::Time armed_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  // Asked for while a retry ran (InfiniteFuture: nothing).
  absl::Time wanted_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  absl::Duration delay_ ABSL_GUARDED_BY(mu_);
};

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_HELD_RECEIPTS_H_
