#include "server/dispatch/engine.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/domain/rules.h"

namespace campaigns::dispatch {
namespace {

// A pump hands at most this many batches to the provider per step before
// it yields its thread to others.
constexpr int kRoundsPerStep = 16;
// How long a pump waits before trying again after a storage error.
constexpr absl::Duration kErrorRetry = absl::Seconds(1);

// When a campaign's messages stop being worth sending, if ever.
std::optional<absl::Time> ExpiresAt(const Campaign& c) {
  if (!c.validity_period || !c.started_at) return std::nullopt;
  return *c.started_at + *c.validity_period;
}

DispatchOutcome Expired(int64_t seq) {
  DispatchOutcome o;
  o.seq = seq;
  o.attempted = false;
  o.status = RecipientStatus::kFailed;
  o.error_code = "expired";
  o.error_desc = "the campaign's validity period passed before sending";
  return o;
}

// Messages per second `c` may send given its sender tier's `tier_rate`
// (0 = unlimited): an override can only lower it.
int64_t RateOf(const Campaign& c, int64_t tier_rate) {
  if (c.rate_limit_per_second <= 0) return tier_rate;
  if (tier_rate <= 0) return c.rate_limit_per_second;
  return std::min<int64_t>(tier_rate, c.rate_limit_per_second);
}

}  // namespace

struct Engine::Item {
  Recipient r;
  std::string text;
  std::vector<TemplateComponent> components;  // rendered
};

struct Engine::Pump {
  Campaign campaign;  // settings, and status/stats as last recorded
  bool set_up = false;
  MessageTemplate text;
  Provider* provider = nullptr;
  int64_t tier_rate = 0;                  // 0 = unlimited
  std::optional<TokenBucket> own_bucket;  // the campaign's rate override

  bool running = true;  // false: halted (paused, cancelling, stopping)
  bool stepping = false;
  bool step_pending = false;
  absl::Time step_at;
  bool finishing = false;

  int64_t cursor = 0;  // last leased seq
  bool exhausted = false;
  bool rescanned = false;
  absl::Time next_batch_at = absl::InfinitePast();
  std::deque<Item> ready;
  std::multimap<absl::Time, Item> retries;
  int in_flight = 0;  // batches whose outcomes are not recorded yet
  int starting = 0;   // provider calls being started right now
  std::vector<std::function<void()>> on_idle;  // when in_flight is 0

  std::deque<bool> window;  // recent final outcomes: true = failed
  int window_failures = 0;
  std::string auto_pause;  // the error threshold's pause reason, to store
};

Engine::Engine(DispatchStore* store, Timer* timer, ProviderLookup providers,
               EngineOptions options)
    : store_(store),
      timer_(timer),
      providers_(std::move(providers)),
      options_(options) {}

Engine::~Engine() { Stop(); }

void Engine::Stop() {
  std::unique_lock<std::mutex> lock(mu_);
  if (stopped_) return;
  stopped_ = true;
  for (auto& [id, p] : pumps_) Halt(*p, lock);
}

absl::Status Engine::Recover() {
  absl::StatusOr<int> cancelling = store_->ResumeCancellations();
  if (!cancelling.ok()) return cancelling.status();
  absl::StatusOr<std::vector<Campaign>> live = store_->CampaignsInStatus(
      {CampaignStatus::kSending, CampaignStatus::kScheduled,
       CampaignStatus::kSent});
  if (!live.ok()) return live.status();
  for (const Campaign& c : *live) Apply(c);
  return absl::OkStatus();
}

void Engine::Transition(const std::string& account_id, const std::string& id,
                        LifecycleChange change, Done<Campaign> done) {
  store_->TransitionCampaign(
      account_id, id, std::move(change),
      [this, done = std::move(done)](absl::StatusOr<Campaign> c) {
        if (c.ok()) Apply(*c);
        if (done) done(std::move(c));
      });
}

void Engine::Apply(const Campaign& c) {
  progress_.Publish(c, timer_->Now());
  std::unique_lock<std::mutex> lock(mu_);
  if (stopped_) return;
  auto it = pumps_.find(c.id);
  PumpPtr p = it == pumps_.end() ? nullptr : it->second;
  switch (c.status) {
    case CampaignStatus::kSending:
      EnsurePump(c);
      return;
    case CampaignStatus::kPaused:
      if (p) Halt(*p, lock);
      return;
    case CampaignStatus::kScheduled:
      if (p) Halt(*p, lock);
      ArmSchedule(c);
      return;
    case CampaignStatus::kSent:
      if (p) {
        Halt(*p, lock);
        pumps_.erase(c.id);
      }
      ArmReceiptTimeout(c);
      return;
    default:
      if (p) {
        Halt(*p, lock);
        // A cancel waiting for in-flight outcomes keeps the pump until then.
        if (p->on_idle.empty()) pumps_.erase(c.id);
      }
      return;
  }
}

void Engine::EnsurePump(const Campaign& c) {
  PumpPtr& p = pumps_[c.id];
  if (!p) {
    p = std::make_shared<Pump>();
    p->campaign = c;
  } else {
    // Resumed (or re-read): new settings, same place in the list.
    p->campaign = c;
    p->running = true;
    p->finishing = false;
    p->window.clear();
    p->window_failures = 0;
  }
  ScheduleStep(p, timer_->Now());
}

void Engine::Halt(Pump& p, std::unique_lock<std::mutex>& lock) {
  p.running = false;
  calls_cv_.wait(lock, [&p] { return p.starting == 0; });
}

void Engine::ScheduleStep(const PumpPtr& p, absl::Time when) {
  if (p->step_pending && p->step_at <= when) return;
  p->step_pending = true;
  p->step_at = when;
  timer_->At(when, [this, p] { Step(p); });
}

void Engine::ArmSchedule(const Campaign& c) {
  if (!c.schedule_at) return;
  timer_->At(*c.schedule_at, [this, account = c.account_id, id = c.id] {
    LifecycleChange change;
    change.event = CampaignEvent::kScheduleAlarm;
    change.now = timer_->Now();
    // A stale alarm (paused, rescheduled) is refused by the store.
    Transition(account, id, std::move(change), nullptr);
  });
}

void Engine::ArmReceiptTimeout(const Campaign& c) {
  const absl::Time at =
      (c.sent_at ? *c.sent_at : timer_->Now()) + options_.receipt_timeout;
  auto complete = [this, account = c.account_id, id = c.id] {
    LifecycleChange change;
    change.event = CampaignEvent::kAllFinal;
    change.now = timer_->Now();
    Transition(account, id, std::move(change), nullptr);
  };
  if (c.stats.sent == 0) {
    timer_->At(timer_->Now(), std::move(complete));
  } else {
    timer_->At(at, std::move(complete));
  }
}

void Engine::Start(const std::string& account_id, const std::string& id,
                   std::optional<absl::Time> send_at, Done<Campaign> done) {
  LifecycleChange change;
  change.event = CampaignEvent::kStart;
  change.now = timer_->Now();
  change.send_at = send_at;
  Transition(account_id, id, std::move(change), std::move(done));
}

void Engine::Pause(const std::string& account_id, const std::string& id,
                   std::string reason, Done<Campaign> done) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = pumps_.find(id);
    // Halted before the write: nothing starts once the pause is stored.
    if (it != pumps_.end() && it->second->campaign.account_id == account_id) {
      Halt(*it->second, lock);
    }
  }
  LifecycleChange change;
  change.event = CampaignEvent::kPause;
  change.now = timer_->Now();
  change.reason = std::move(reason);
  Transition(account_id, id, std::move(change),
             [this, id, done = std::move(done)](absl::StatusOr<Campaign> c) {
               if (!c.ok()) {
                 // Not paused after all: a sending campaign runs on.
                 std::unique_lock<std::mutex> lock(mu_);
                 auto it = pumps_.find(id);
                 if (it != pumps_.end() && !stopped_ &&
                     it->second->campaign.status == CampaignStatus::kSending) {
                   it->second->running = true;
                   ScheduleStep(it->second, timer_->Now());
                 }
               }
               done(std::move(c));
             });
}

void Engine::Resume(const std::string& account_id, const std::string& id,
                    Done<Campaign> done) {
  LifecycleChange change;
  change.event = CampaignEvent::kResume;
  change.now = timer_->Now();
  Transition(account_id, id, std::move(change), std::move(done));
}

void Engine::Cancel(const std::string& account_id, const std::string& id,
                    Done<Campaign> done) {
  auto cancel = [this, account_id, id, done = std::move(done)]() mutable {
    LifecycleChange change;
    change.event = CampaignEvent::kCancel;
    change.now = timer_->Now();
    Transition(account_id, id, std::move(change),
               [this, id, done = std::move(done)](absl::StatusOr<Campaign> c) {
                 std::unique_lock<std::mutex> lock(mu_);
                 auto it = pumps_.find(id);
                 if (it != pumps_.end()) {
                   if (c.ok() || it->second->campaign.status !=
                                     CampaignStatus::kSending) {
                     pumps_.erase(it);
                   } else if (!stopped_) {  // still sending: run on
                     it->second->running = true;
                     ScheduleStep(it->second, timer_->Now());
                   }
                 }
                 lock.unlock();
                 done(std::move(c));
               });
  };
  {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = pumps_.find(id);
    if (it != pumps_.end() && it->second->campaign.account_id == account_id) {
      Pump& p = *it->second;
      Halt(p, lock);
      // Messages with the provider keep their real outcome: cancel once
      // they are recorded.
      if (p.in_flight > 0) {
        p.on_idle.push_back(std::move(cancel));
        return;
      }
    }
  }
  cancel();
}

void Engine::RetryFailed(const std::string& account_id, const std::string& id,
                         std::vector<std::string> error_codes,
                         Done<RetryResult> done) {
  store_->RetryFailed(
      account_id, id, std::move(error_codes),
      [this, done = std::move(done)](absl::StatusOr<RetryResult> r) {
        if (r.ok()) {
          {
            std::lock_guard<std::mutex> lock(mu_);
            auto it = pumps_.find(r->campaign.id);
            // A running pump finds them on its rescan before finishing.
            if (it != pumps_.end()) it->second->rescanned = false;
          }
          Apply(r->campaign);
        }
        done(std::move(r));
      });
}

void Engine::IngestReceipts(const std::string& account_id,
                            std::vector<ReceiptUpdate> receipts,
                            Done<ReceiptResult> done) {
  store_->ApplyReceipts(
      account_id, std::move(receipts),
      [this, done = std::move(done)](absl::StatusOr<ReceiptResult> r) {
        if (r.ok()) {
          for (const Campaign& c : r->campaigns) {
            progress_.Publish(c, timer_->Now());
            if (c.status == CampaignStatus::kSent && c.stats.sent == 0) {
              LifecycleChange change;
              change.event = CampaignEvent::kAllFinal;
              change.now = timer_->Now();
              Transition(c.account_id, c.id, std::move(change), nullptr);
            }
          }
        }
        if (done) done(std::move(r));
      });
}

int64_t Engine::TakePermits(Pump& p, int64_t want, absl::Time now,
                            absl::Time* ready_at) {
  const int64_t rate = RateOf(p.campaign, p.tier_rate);
  if (rate <= 0) return want;
  TokenBucket* sender = nullptr;
  if (p.tier_rate > 0) {
    auto it = senders_.find(p.campaign.sender_ref);
    if (it == senders_.end()) {
      it = senders_
               .emplace(p.campaign.sender_ref,
                        TokenBucket(static_cast<double>(p.tier_rate),
                                    TokenBucket::CapacityFor(p.tier_rate), now))
               .first;
    }
    sender = &it->second;
  }
  TokenBucket* own = nullptr;
  if (p.campaign.rate_limit_per_second > 0) {
    const int64_t r = p.campaign.rate_limit_per_second;
    if (!p.own_bucket || p.own_bucket->rate() != static_cast<double>(r)) {
      p.own_bucket.emplace(static_cast<double>(r), TokenBucket::CapacityFor(r),
                           now);
    }
    own = &*p.own_bucket;
  }
  // A chunk: at most every bucket's capacity, once every bucket is full.
  int64_t n = want;
  absl::Time at = now;
  for (TokenBucket* b : {sender, own}) {
    if (b == nullptr) continue;
    n = std::min(n, b->capacity());
    at = std::max(at, b->ChunkReadyAt(now));
  }
  if (at > now) {
    *ready_at = at;
    return 0;
  }
  for (TokenBucket* b : {sender, own}) {
    if (b != nullptr) b->TakeChunk(now);
  }
  return n;
}

int64_t Engine::ChunkSize(const Pump& p) const {
  const int64_t rate = RateOf(p.campaign, p.tier_rate);
  if (rate <= 0) return p.campaign.batch_size;
  int64_t n = p.campaign.batch_size;
  if (p.tier_rate > 0) n = std::min(n, TokenBucket::CapacityFor(p.tier_rate));
  if (p.campaign.rate_limit_per_second > 0) {
    n = std::min<int64_t>(
        n, TokenBucket::CapacityFor(p.campaign.rate_limit_per_second));
  }
  return n;
}

absl::Duration Engine::Backoff(const Recipient& r, int attempt) const {
  absl::Duration d = options_.backoff_base;
  for (int i = 1; i < attempt && d < options_.backoff_max; ++i) d *= 2;
  d = std::min(d, options_.backoff_max);
  // +-20 % jitter, fixed per (recipient, attempt) so runs repeat.
  uint64_t x = static_cast<uint64_t>(r.seq) * 0x9E3779B97F4A7C15ULL +
               static_cast<uint64_t>(attempt);
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 29;
  const double jitter = 0.8 + 0.4 * static_cast<double>(x % 10000) / 10000.0;
  return d * jitter;
}

void Engine::Step(const PumpPtr& p) {
  std::unique_lock<std::mutex> lock(mu_);
  p->step_pending = false;
  if (stopped_ || !p->running || p->stepping || p->finishing) return;
  p->stepping = true;
  if (!p->set_up) {
    const Campaign c = p->campaign;
    lock.unlock();
    absl::StatusOr<Sender> sender = store_->SenderOf(c);
    absl::StatusOr<std::string> text =
        sender.ok() ? store_->MessageText(c) : sender.status();
    Provider* provider = sender.ok() ? providers_(sender->provider) : nullptr;
    lock.lock();
    p->stepping = false;
    std::string fatal;
    if (!text.ok()) {
      fatal = std::string(text.status().message());
    } else if (provider == nullptr) {
      fatal = absl::StrCat("no provider \"", sender->provider, "\" for sender ",
                           c.sender_id);
    }
    if (!fatal.empty()) {
      p->running = false;
      lock.unlock();
      LifecycleChange change;
      change.event = CampaignEvent::kFatal;
      change.now = timer_->Now();
      change.reason = fatal;
      Transition(c.account_id, c.id, std::move(change), nullptr);
      return;
    }
    p->text = MessageTemplate::Parse(*text, c.template_components,
                                     c.variable_mapping);
    p->provider = provider;
    p->tier_rate = TierRatePerSecond(sender->tier);
    p->set_up = true;
    ScheduleStep(p, timer_->Now());
    return;
  }
  // Every way out of the loop but its bound re-reads the pump's state under
  // the lock and leaves something to wake it (a timer, an outcome); at the
  // bound, the next step is scheduled.
  int round = 0;
  for (; round < kRoundsPerStep && p->running; ++round) {
    const absl::Time now = timer_->Now();
    while (!p->retries.empty() && p->retries.begin()->first <= now) {
      p->ready.push_back(std::move(p->retries.begin()->second));
      p->retries.erase(p->retries.begin());
    }
    // Every chunk but a campaign's last is full: a short one would cost
    // the rate a whole chunk. So top up from the next batch first (unless
    // batches are meant to be apart).
    const bool short_chunk =
        static_cast<int64_t>(p->ready.size()) < ChunkSize(*p) &&
        p->campaign.batch_delay <= absl::ZeroDuration() &&
        p->in_flight < options_.max_batches_in_flight;
    if ((p->ready.empty() || short_chunk) && !p->exhausted) {
      if (now < p->next_batch_at) {
        ScheduleStep(p, p->next_batch_at);
        break;
      }
      if (p->in_flight >= options_.max_batches_in_flight) break;
      Refill(p, lock);
      continue;
    }
    if (p->ready.empty()) {
      if (p->in_flight > 0) break;  // their outcomes step again
      if (!p->retries.empty()) {
        ScheduleStep(p, p->retries.begin()->first);
        break;
      }
      if (!p->rescanned) {
        // Nothing in flight: whatever is still queued (retried failures,
        // outcomes that failed to record) is genuinely waiting.
        p->rescanned = true;
        p->cursor = 0;
        p->exhausted = false;
        continue;
      }
      p->finishing = true;
      p->stepping = false;
      lock.unlock();
      FinishDispatch(p);
      return;
    }
    if (p->in_flight >= options_.max_batches_in_flight) break;
    if (const std::optional<absl::Time> expires = ExpiresAt(p->campaign);
        expires && now > *expires) {
      // Past the validity period: what has not gone out never will.
      std::vector<DispatchOutcome> expired;
      for (Item& item : p->ready) expired.push_back(Expired(item.r.seq));
      p->ready.clear();
      ++p->in_flight;
      lock.unlock();
      Record(p, std::move(expired));
      lock.lock();
      continue;
    }
    absl::Time ready_at;
    const int64_t want = std::min<int64_t>(
        static_cast<int64_t>(p->ready.size()), p->campaign.batch_size);
    const int64_t n = TakePermits(*p, want, now, &ready_at);
    if (n == 0) {
      ScheduleStep(p, ready_at);
      break;
    }
    std::vector<Item> batch;
    std::vector<OutgoingMessage> messages;
    batch.reserve(n);
    messages.reserve(n);
    for (int64_t i = 0; i < n; ++i) {
      batch.push_back(std::move(p->ready.front()));
      p->ready.pop_front();
      const Recipient& r = batch.back().r;
      OutgoingMessage m;
      m.idempotency_key = absl::StrCat(p->campaign.id, ":", r.id);
      if (r.retries > 0) absl::StrAppend(&m.idempotency_key, ":", r.retries);
      m.account_id = p->campaign.account_id;
      m.campaign_id = p->campaign.id;
      m.recipient_id = r.id;
      m.channel = p->campaign.channel;
      m.sender_id = p->campaign.sender_id;
      m.address = r.address;
      m.text = batch.back().text;
      if (!p->campaign.template_id.empty()) {
        m.template_name = p->campaign.template_name;
        m.template_language = p->campaign.template_lang;
      }
      m.components = batch.back().components;
      messages.push_back(std::move(m));
    }
    if (p->ready.empty() && p->campaign.batch_delay > absl::ZeroDuration()) {
      p->next_batch_at = now + p->campaign.batch_delay;
    }
    ++p->in_flight;
    ++p->starting;
    Provider* provider = p->provider;
    lock.unlock();
    provider->Send(std::move(messages),
                   [this, p, batch = std::move(batch)](
                       std::vector<SendResult> results) mutable {
                     OnSent(p, std::move(batch), std::move(results));
                   });
    lock.lock();
    if (--p->starting == 0) calls_cv_.notify_all();
  }
  if (round == kRoundsPerStep && p->running) ScheduleStep(p, timer_->Now());
  p->stepping = false;
}

void Engine::Refill(const PumpPtr& p, std::unique_lock<std::mutex>& lock) {
  const Campaign c = p->campaign;
  const int64_t after = p->cursor;
  lock.unlock();
  absl::StatusOr<std::vector<Recipient>> leased =
      store_->LeaseRecipients(c, after, c.batch_size);
  absl::StatusOr<std::vector<bool>> suppressed = std::vector<bool>();
  if (leased.ok() && !leased->empty()) {
    std::vector<std::string> addresses;
    addresses.reserve(leased->size());
    for (const Recipient& r : *leased) addresses.push_back(r.address);
    suppressed = store_->SuppressedAmong(c.account_id, c.channel, addresses);
  }
  lock.lock();
  const absl::Time now = timer_->Now();
  if (!leased.ok() || !suppressed.ok()) {
    p->next_batch_at = now + kErrorRetry;
    return;
  }
  if (leased->empty()) {
    p->exhausted = true;
    return;
  }
  p->rescanned = false;
  p->cursor = leased->back().seq;
  const std::optional<absl::Time> expires = ExpiresAt(c);
  std::vector<DispatchOutcome> settled;
  for (size_t i = 0; i < leased->size(); ++i) {
    Recipient& r = (*leased)[i];
    DispatchOutcome o;
    o.seq = r.seq;
    o.attempted = false;
    if ((*suppressed)[i]) {
      o.status = RecipientStatus::kSkipped;
      o.skip_reason = "suppressed";
      settled.push_back(std::move(o));
      continue;
    }
    if (expires && now > *expires) {
      settled.push_back(Expired(r.seq));
      continue;
    }
    RenderResult text = p->text.Render(r.variables);
    if (!text.missing.empty()) {
      o.status = RecipientStatus::kSkipped;
      o.skip_reason = "missing_variable";
      o.error_desc = absl::StrCat("variable \"", text.missing, "\" is missing");
      settled.push_back(std::move(o));
      continue;
    }
    p->ready.push_back(
        Item{std::move(r), std::move(text.text), std::move(text.components)});
  }
  if (!settled.empty()) {
    ++p->in_flight;
    lock.unlock();
    Record(p, std::move(settled));
    lock.lock();
  }
}

void Engine::OnSent(const PumpPtr& p, std::vector<Item> batch,
                    std::vector<SendResult> results) {
  std::vector<DispatchOutcome> outcomes;
  outcomes.reserve(batch.size());
  {
    std::lock_guard<std::mutex> lock(mu_);
    const absl::Time now = timer_->Now();
    for (size_t i = 0; i < batch.size(); ++i) {
      Item& item = batch[i];
      SendResult res =
          i < results.size()
              ? std::move(results[i])
              : SendResult{SendStatus::kTransient, "", "no_result",
                           "the provider gave no result for this message",
                           absl::ZeroDuration()};
      DispatchOutcome o;
      o.seq = item.r.seq;
      const int attempt = item.r.attempts + 1;
      bool failed = false;
      switch (res.status) {
        case SendStatus::kAccepted:
          o.status = RecipientStatus::kSent;
          o.provider_message_id = std::move(res.provider_message_id);
          break;
        case SendStatus::kPermanent:
          o.status = RecipientStatus::kFailed;
          o.error_code = std::move(res.error_code);
          o.error_desc = std::move(res.error_desc);
          failed = true;
          break;
        case SendStatus::kTransient:
          o.error_code = res.error_code;
          if (attempt >= options_.max_attempts) {
            o.status = RecipientStatus::kFailed;
            o.error_desc = absl::StrCat("gave up after ", attempt,
                                        " attempts: ", res.error_desc);
            failed = true;
          } else {
            o.status = RecipientStatus::kQueued;
            o.error_desc = std::move(res.error_desc);
            item.r.attempts = attempt;
            const absl::Duration wait =
                std::max(res.retry_after, Backoff(item.r, attempt));
            p->retries.emplace(now + wait, std::move(item));
          }
          break;
      }
      if (o.status != RecipientStatus::kQueued) {
        p->window.push_back(failed);
        p->window_failures += failed ? 1 : 0;
        while (static_cast<int>(p->window.size()) > options_.error_window) {
          p->window_failures -= p->window.front() ? 1 : 0;
          p->window.pop_front();
        }
      }
      outcomes.push_back(std::move(o));
    }
    if (options_.error_threshold > 0 && p->running &&
        static_cast<int>(p->window.size()) >= options_.error_window &&
        p->window_failures >=
            options_.error_threshold * static_cast<double>(p->window.size())) {
      // No further batch starts; the pause is stored once these outcomes
      // are (OnRecorded). Not Halt(): this may run inside this pump's own
      // provider call.
      p->running = false;
      p->auto_pause = absl::StrFormat(
          "auto-paused: %d of the last %d messages failed", p->window_failures,
          static_cast<int>(p->window.size()));
    }
  }
  Record(p, std::move(outcomes));
}

void Engine::Record(const PumpPtr& p, std::vector<DispatchOutcome> outcomes) {
  store_->RecordOutcomes(
      p->campaign.account_id, p->campaign.id, std::move(outcomes),
      [this, p](absl::StatusOr<Campaign> c) { OnRecorded(p, std::move(c)); });
}

void Engine::OnRecorded(const PumpPtr& p, absl::StatusOr<Campaign> c) {
  std::vector<std::function<void()>> idle;
  std::string pause_reason;
  {
    std::unique_lock<std::mutex> lock(mu_);
    --p->in_flight;
    const absl::Time now = timer_->Now();
    if (!c.ok()) {
      // Nothing of the batch is recorded: it is still queued and is sent
      // again (same keys) from a rescan.
      p->rescanned = false;
      p->next_batch_at = now + kErrorRetry;
    } else {
      p->campaign.stats = c->stats;
    }
    pause_reason.swap(p->auto_pause);
    if (p->in_flight == 0 && !p->on_idle.empty()) {
      idle.swap(p->on_idle);
    } else if (p->running && !stopped_) {
      ScheduleStep(p, now);
    }
  }
  if (c.ok()) progress_.Publish(*c, timer_->Now());
  if (!pause_reason.empty()) {
    LifecycleChange change;
    change.event = CampaignEvent::kPause;
    change.now = timer_->Now();
    change.reason = std::move(pause_reason);
    Transition(p->campaign.account_id, p->campaign.id, std::move(change),
               nullptr);
  }
  for (auto& fn : idle) fn();
}

void Engine::FinishDispatch(const PumpPtr& p) {
  LifecycleChange change;
  change.event = CampaignEvent::kAllDispatched;
  change.now = timer_->Now();
  store_->TransitionCampaign(
      p->campaign.account_id, p->campaign.id, std::move(change),
      [this, p](absl::StatusOr<Campaign> c) {
        if (c.ok()) {
          Apply(*c);
          return;
        }
        // Something is queued after all (or the campaign left sending).
        std::lock_guard<std::mutex> lock(mu_);
        p->finishing = false;
        p->rescanned = false;
        if (p->running && !stopped_) {
          ScheduleStep(p, timer_->Now() + kErrorRetry / 10);
        }
      });
}

}  // namespace campaigns::dispatch
