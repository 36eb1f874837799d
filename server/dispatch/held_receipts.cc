#include "server/dispatch/held_receipts.h"

#include <algorithm>
#include <map>
#include <utility>

namespace campaigns::dispatch {

std::vector<bool> UnmatchedOf(const std::vector<ReceiptUpdate>& batch,
                              const std::vector<ReceiptUpdate>& unmatched) {
  std::vector<bool> out(batch.size(), false);
  size_t j = 0;
  for (const ReceiptUpdate& u : unmatched) {
    while (j < batch.size() &&
           (batch[j].provider_message_id != u.provider_message_id ||
            batch[j].status != u.status ||
            batch[j].occurred_at != u.occurred_at)) {
      ++j;
    }
    if (j == batch.size()) break;  // not of this batch
    out[j++] = true;
  }
  return out;
}

HeldReceipts::HeldReceipts(HeldReceiptsOptions options)
    : options_(options), delay_(options.first_retry) {}

int64_t HeldReceipts::Hold(const std::string& account_id,
                           const std::string& provider,
                           std::vector<ReceiptUpdate> receipts,
                           absl::Time now) {
  MutexLock lock(&mu_);
  for (ReceiptUpdate& r : receipts) {
    held_.push_back(
        Entry{account_id, provider, std::move(r), now + options_.hold});
  }
  // New receipts are tried again soon, whatever the delay had grown to.
  delay_ = options_.first_retry;
  return Trim();
}

int64_t HeldReceipts::Keep(const Batch& b,
                           const std::vector<ReceiptUpdate>& unmatched) {
  const std::vector<bool> again = UnmatchedOf(b.receipts, unmatched);
  MutexLock lock(&mu_);
  for (size_t j = 0; j < again.size(); ++j) {
    if (again[j]) {
      held_.push_back(
          Entry{b.account_id, b.provider, b.receipts[j], b.until[j]});
    }
  }
  return Trim();
}

std::vector<HeldReceipts::Batch> HeldReceipts::Take(absl::Time now,
                                                    int64_t* expired,
                                                    size_t max_batch) {
  std::deque<Entry> taken;
  {
    MutexLock lock(&mu_);
    taken.swap(held_);
  }
  *expired = 0;
  // By scope (account, provider), each in the order held.
  std::map<std::pair<std::string, std::string>, std::vector<Batch>> scopes;
  for (Entry& e : taken) {
    if (e.until <= now) {
      ++*expired;
      continue;
    }
    std::vector<Batch>& batches = scopes[{e.account_id, e.provider}];
    if (batches.empty() || batches.back().receipts.size() >= max_batch) {
      batches.push_back(Batch{e.account_id, e.provider, {}, {}});
    }
    batches.back().receipts.push_back(std::move(e.receipt));
    batches.back().until.push_back(e.until);
  }
  std::vector<Batch> out;
  for (auto& [scope, batches] : scopes) {
    for (Batch& b : batches) out.push_back(std::move(b));
  }
  return out;
}

size_t HeldReceipts::size() const {
  MutexLock lock(&mu_);
  return held_.size();
}

bool HeldReceipts::Want(absl::Time at) {
  MutexLock lock(&mu_);
  if (running_) {
    wanted_ = std::min(wanted_, at);
    return false;
  }
  if (armed_ <= at) return false;
  armed_ = at;
  return true;
}

bool HeldReceipts::Begin() {
  MutexLock lock(&mu_);
  // Not compared with the clock: an alarm may fire a hair before its time
  // by another clock's reading, and must not be lost then. A superseded
  // alarm that fires later runs a retry early: harmless.
  if (running_ || armed_ == absl::InfiniteFuture()) return false;
  running_ = true;
  armed_ = absl::InfiniteFuture();
  return true;
}

std::optional<absl::Time> HeldReceipts::End(absl::Time now) {
  MutexLock lock(&mu_);
  running_ = false;
  const absl::Time wanted = wanted_;
  wanted_ = absl::InfiniteFuture();
  if (held_.empty()) {
    delay_ = options_.first_retry;
    return std::nullopt;
  }
  armed_ = std::min(wanted, now + delay_);
  delay_ = std::min(delay_ * 2, options_.max_retry);
  return armed_;
}

int64_t HeldReceipts::Trim() {
  int64_t dropped = 0;
  while (held_.size() > options_.capacity) {
    held_.pop_front();
    ++dropped;
  }
  return dropped;
}

}  // namespace campaigns::dispatch
