// Failover: a provider with a fallback behind a circuit breaker.
#include "server/dispatch/providers/failover.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "fmt/format.h"
#include "server/dispatch/providers/registry.h"
#include "server/log/log.h"

namespace campaigns::dispatch {
namespace {

SendResult NoResult() {
  SendResult r;
  r.status = SendStatus::kTransient;
  r.error_code = "no_result";
  r.error_desc = "the provider gave no result for this message";
  return r;
}

// Results of one batch sent in parts (to the provider and the fallback):
// `done` runs once, with every part's results in the batch's order.
class Joiner {
 public:
  Joiner(size_t size, int parts, SendDone done)
      : results_(size), parts_(parts), done_(std::move(done)) {}

  // Part results for the batch positions `at` (in order).
  void Fill(const std::vector<size_t>& at, std::vector<SendResult> results) {
    SendDone done;
    std::vector<SendResult> all;
    {
      MutexLock lock(&mu_);
      for (size_t k = 0; k < at.size(); ++k) {
        results_[at[k]] =
            k < results.size() ? std::move(results[k]) : NoResult();
      }
      if (--parts_ > 0) return;
      done = std::move(done_);
      all = std::move(results_);
    }
    done(std::move(all));
  }

 private:
  Mutex mu_;
  std::vector<SendResult> results_;
  int parts_;
  SendDone done_;
};

}  // namespace

Failover::Failover(std::unique_ptr<Provider> provider, FailoverOptions options,
                   ProviderRegistry* registry, Timer* timer)
    : provider_(std::move(provider)),
      options_(std::move(options)),
      registry_(registry),
      timer_(timer) {
  // The registry lists every provider before any adapter is built.
  if (std::optional<ProviderInfo> f = registry_->Find(options_.fallback)) {
    fallback_channels_ = f->channels;
  }
}

bool Failover::HonoursIdempotencyKeys() const {
  Provider* f = FallbackProvider();
  return provider_->HonoursIdempotencyKeys() &&
         (f == nullptr || f->HonoursIdempotencyKeys());
}

bool Failover::ResendsUnknown() const {
  Provider* f = FallbackProvider();
  return provider_->ResendsUnknown() && (f == nullptr || f->ResendsUnknown());
}

bool Failover::SendsReceipts() const {
  Provider* f = FallbackProvider();
  return provider_->SendsReceipts() || (f != nullptr && f->SendsReceipts());
}

Provider* Failover::FallbackProvider() const {
  return registry_->Lookup(options_.fallback);
}

absl::Time Failover::Now() const {
  return timer_ != nullptr ? timer_->Now() : absl::Now();
}

Failover::Route Failover::Choose() {
  if (FallbackProvider() == nullptr) return Route::kProvider;
  MutexLock lock(&mu_);
  if (circuit_ == Circuit::kClosed) return Route::kProvider;
  if (!probing_ && Now() >= probe_at_) {
    probing_ = true;
    return Route::kProbe;
  }
  return Route::kFallback;
}

void Failover::Send(std::vector<OutgoingMessage> batch, SendDone done) {
  if (batch.empty()) {
    done({});
    return;
  }
  const Route route = Choose();
  // Which messages go where: a message of a channel the fallback cannot
  // send stays with the provider; a probe risks one message on the
  // provider, the rest go the sure way.
  std::vector<size_t> mine;
  std::vector<size_t> theirs;
  bool probe = false;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (route == Route::kProvider || !FallbackServes(batch[i].channel)) {
      mine.push_back(i);
    } else if (route == Route::kProbe && !probe) {
      probe = true;
      mine.push_back(i);
    } else {
      theirs.push_back(i);
    }
  }
  if (route == Route::kProbe && !probe) {
    MutexLock lock(&mu_);
    probing_ = false;  // nothing to probe with this time
  }
  auto joiner = std::make_shared<Joiner>(
      batch.size(), (mine.empty() ? 0 : 1) + (theirs.empty() ? 0 : 1),
      std::move(done));
  auto part = [&batch](const std::vector<size_t>& at) {
    std::vector<OutgoingMessage> out;
    out.reserve(at.size());
    for (size_t i : at) out.push_back(std::move(batch[i]));
    return out;
  };
  if (!theirs.empty()) {
    std::vector<OutgoingMessage> sure = part(theirs);
    SendToFallback(std::move(sure), [joiner, theirs = std::move(theirs)](
                                        std::vector<SendResult> r) {
      joiner->Fill(theirs, std::move(r));
    });
  }
  if (mine.empty()) return;
  // Kept to hand messages the provider could not take to the fallback.
  auto kept = std::make_shared<std::vector<OutgoingMessage>>(part(mine));
  std::vector<OutgoingMessage> own = *kept;
  provider_->Send(std::move(own), [this, joiner, kept, mine = std::move(mine),
                                   probe](std::vector<SendResult> results) {
    Learn(results, probe);
    results.resize(kept->size(), NoResult());
    std::vector<size_t> unusable;  // positions in `mine`
    std::vector<OutgoingMessage> again;
    for (size_t k = 0; k < kept->size(); ++k) {
      if (results[k].status == SendStatus::kUnusable &&
          FallbackServes((*kept)[k].channel)) {
        unusable.push_back(k);
        again.push_back(std::move((*kept)[k]));
      }
    }
    if (unusable.empty() || FallbackProvider() == nullptr) {
      joiner->Fill(mine, std::move(results));
      return;
    }
    // Not sent: the fallback takes them; its results replace these.
    auto first = std::make_shared<std::vector<SendResult>>(std::move(results));
    SendToFallback(
        std::move(again), [joiner, first, mine, unusable = std::move(unusable)](
                              std::vector<SendResult> r) {
          for (size_t k = 0; k < unusable.size(); ++k) {
            (*first)[unusable[k]] = k < r.size() ? std::move(r[k]) : NoResult();
          }
          joiner->Fill(mine, std::move(*first));
        });
  });
}

bool Failover::FallbackServes(Channel c) const {
  return std::find(fallback_channels_.begin(), fallback_channels_.end(), c) !=
         fallback_channels_.end();
}

void Failover::SendToFallback(std::vector<OutgoingMessage> batch,
                              SendDone done) {
  Provider* f = FallbackProvider();
  if (f == nullptr) {
    SendResult r;
    r.status = SendStatus::kUnusable;
    r.error_desc = absl::StrCat("fallback \"", options_.fallback,
                                "\" has no adapter in this build");
    done(std::vector<SendResult>(batch.size(), r));
    return;
  }
  f->Send(std::move(batch), [done = std::move(done), name = options_.fallback](
                                std::vector<SendResult> results) {
    for (SendResult& r : results) {
      if (r.provider.empty()) r.provider = name;
    }
    done(std::move(results));
  });
}

void Failover::Learn(const std::vector<SendResult>& results, bool probe) {
  Circuit before;
  Circuit after;
  std::string reason;
  {
    MutexLock lock(&mu_);
    before = circuit_;
    bool answered = false;  // the provider took or refused a message
    bool unusable = false;
    for (const SendResult& r : results) {
      switch (r.status) {
        case SendStatus::kAccepted:
        case SendStatus::kPermanent:
          answered = true;
          failures_ = 0;
          break;
        case SendStatus::kTransient:
          ++failures_;
          last_error_ = absl::StrCat(r.error_code, " ", r.error_desc);
          break;
        case SendStatus::kUnusable:
          unusable = true;
          last_error_ = r.error_desc;
          break;
      }
    }
    if (probe) probing_ = false;
    if (unusable) {
      circuit_ = Circuit::kUnusable;
    } else if (probe && answered) {
      circuit_ = Circuit::kClosed;
      failures_ = 0;
    } else if (probe) {
      circuit_ =
          before == Circuit::kUnusable ? Circuit::kUnusable : Circuit::kOpen;
    } else if (circuit_ == Circuit::kClosed &&
               failures_ >= options_.circuit_failures) {
      circuit_ = Circuit::kOpen;
    }
    after = circuit_;
    if (after != Circuit::kClosed && (after != before || probe)) {
      probe_at_ = Now() + options_.circuit_probe;
    }
    if (after == Circuit::kOpen) {
      reason = absl::StrCat("circuit open after ", options_.circuit_failures,
                            " transient failures in a row (last: ", last_error_,
                            "); sending through \"", options_.fallback,
                            "\", next probe in ",
                            absl::FormatDuration(options_.circuit_probe));
    } else if (after == Circuit::kUnusable) {
      reason = absl::StrCat(last_error_, "; sending through \"",
                            options_.fallback, "\", next probe in ",
                            absl::FormatDuration(options_.circuit_probe));
    }
  }
  if (after == before && !(probe && after != Circuit::kClosed)) return;
  if (after == Circuit::kClosed) {
    logging::Info(
        fmt::format("provider {}: probe succeeded, sending through it again",
                    options_.name));
  } else if (after != before) {
    logging::Warn(fmt::format("provider {}: {}", options_.name, reason));
  }
  Publish(after, reason);
}

void Failover::Publish(Circuit circuit, const std::string& reason) {
  ProviderState state = ProviderState::kOk;
  if (circuit == Circuit::kOpen) state = ProviderState::kCircuitOpen;
  if (circuit == Circuit::kUnusable) state = ProviderState::kUnusable;
  (void)registry_->SetState(options_.name, state, reason);
}

}  // namespace campaigns::dispatch
