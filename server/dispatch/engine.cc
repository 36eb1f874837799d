// Engine: the pumps that send campaigns, their steps and outcomes (engine.h).
#include "server/dispatch/engine.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/domain/errors.h"
#include "server/domain/rules.h"
#include "server/domain/utf8.h"
#include "server/log/log.h"

namespace campaigns::dispatch {
namespace {

// Messages of one provider answer by (provider, outcome), for metrics: a
// batch has one or two providers (a fallback's) and few outcomes.
class OutcomeTally {
 public:
  void Add(const std::string& provider, MessageOutcome outcome) {
    for (Entry& e : entries_) {
      if (e.outcome == outcome && e.provider == provider) {
        ++e.count;
        return;
      }
    }
    entries_.push_back(Entry{provider, outcome, 1});
  }
  void Report(Metrics* metrics, Channel channel) const {
    for (const Entry& e : entries_) {
      metrics->Messages(e.provider, channel, e.outcome, e.count);
    }
  }

 private:
  struct Entry {
    std::string provider;
    MessageOutcome outcome;
    int64_t count;
  };
  std::vector<Entry> entries_;
};

// A pump hands at most this many batches to the provider per step before
// it yields its thread to others.
constexpr int kRoundsPerStep = 16;
// How long a pump waits before trying again after a storage error.
constexpr absl::Duration kErrorRetry = absl::Seconds(1);
// How often a pump waiting for storage to write tries again (as often as the
// database's own probe, DatabaseOptions::writable_probe_every); receipts
// refused meanwhile ask their sender to wait as long.
constexpr absl::Duration kStorageRetry = absl::Seconds(2);
// Changed reads a campaign at most this often: a campaign that is being
// sent changes at every commit of outcomes, on every instance that listens.
constexpr absl::Duration kChangeReadEvery = absl::Milliseconds(100);
// How the pause_reason shown while a pump waits for storage starts.
constexpr absl::string_view kStoragePause = "storage cannot write: ";

// Text a provider made (an SMSC's message id, a vendor's error) as storage
// and the API take text: valid UTF-8 without NUL (utf8.h). Receipts mend
// the ids they name the same way, so they still match.
void MendProviderText(SendResult& r) {
  MendUtf8(&r.provider_message_id);
  MendUtf8(&r.error_code);
  MendUtf8(&r.error_desc);
}
void MendProviderText(std::vector<ReceiptUpdate>& receipts) {
  for (ReceiptUpdate& u : receipts) {
    MendUtf8(&u.provider_message_id);
    MendUtf8(&u.recipient_id);
    MendUtf8(&u.error_code);
    MendUtf8(&u.error_desc);
  }
}

// A cancel that waited for outcomes storage could not record, answered
// when campaignd stops: cancelling would settle those messages as unsent.
absl::Status NotCancelled() {
  return absl::UnavailableError(
      "not cancelled: campaignd is stopping and storage could not record the "
      "outcomes of messages already sent; cancel again once it runs");
}

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

// A storage answer that is not about the request itself (the database is
// busy, full or broken): worth a log line and a retry.
bool IsStorageFailure(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kAlreadyExists:
      return false;
    default:
      return true;
  }
}

}  // namespace

struct Engine::Item {
  Recipient r;
  RenderResult message;  // rendered for r
};

// What SetUp looked up: kept across pause and resume.
struct Engine::Setup {
  MessageTemplate text;
  Provider* provider = nullptr;
  std::string provider_name;
  int64_t tier_rate = 0;  // 0 = unlimited
  // The provider does not de-duplicate: mark each batch before the call,
  // and fail what a crash left in doubt (outcome_unknown).
  bool mark_handed = false;
  // Messages out at once (EngineOptions::max_in_flight, and for marked
  // providers little more than what they put on the wire: marked messages
  // waiting in a provider's queue at a crash would fail outcome_unknown
  // without ever having been sent).
  int64_t window = 0;
  // This pump reported the provider unusable (and will report it usable
  // again on its next accepted message).
  bool reported_unusable = false;
};

struct Engine::Pump {
  // What the pump does next.
  enum class Phase {
    kSettingUp,  // SetUp: the sender, template and provider are looked up
    kSending,    // Dispatch: leasing recipients, starting provider calls
    kHalted,     // paused, rescheduled, cancelling or stopped: nothing starts
    kFinishing,  // nothing left to send; the kAllDispatched write is out
    // A dispatch write failed for storage: nothing starts until a write
    // succeeds (RetryStorage, every kStorageRetry).
    kStorageWait,
    // With leases: another live instance holds the campaign's lease, or
    // this one lost it; nothing starts until SetUp acquires it (the
    // adoption scan, or the campaign applied as sending again).
    kUnowned,
  };
  // How far the leases got through the campaign's queued recipients.
  // Recipients can be queued again behind the cursor (a retried failure, a
  // write that failed), so dispatch ends only once a scan from the start
  // finds nothing while nothing is in flight.
  enum class Scan {
    kAhead,       // leasing forward from `cursor`
    kEnd,         // the forward leases found no more: rescan when idle
    kRescanning,  // leasing from the start again; nothing found yet
    kDrained,     // the rescan found nothing: finish when idle
  };
  // The pump's one step: at most one runs at a time and at most one alarm
  // for it is pending (stale alarms of an earlier request do nothing).
  enum class Stepper {
    kIdle,     // nothing asked for
    kArmed,    // an alarm runs the step at `step_at`
    kRunning,  // a step runs; it arms `step_at` when it ends, if not future
  };

  Pump(Mutex& engine_mu, const Campaign& c)
      : mu(engine_mu), account_id(c.account_id), id(c.id), campaign(c) {}

  // The engine's mu_, which guards the fields below. The analysis knows it
  // here as `p->mu`, apart from the engine's `mu_` (clang sees no
  // aliases); Held, Unlock and Lock tell it the two are one lock.
  Mutex& mu;
  // With the engine's lock held: the pump's fields may be used.
  void Held(const Mutex& engine_mu) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(engine_mu) ABSL_ASSERT_EXCLUSIVE_LOCK(mu) {
    (void)engine_mu;
  }
  // Drops and retakes the engine's lock. Not analysed: the analysis cannot
  // see that releasing `engine_mu` releases `mu`, which is what these say.
  void Unlock(Mutex& engine_mu)
      ABSL_UNLOCK_FUNCTION(engine_mu, mu) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    engine_mu.Unlock();
  }
  void Lock(Mutex& engine_mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(engine_mu)
      ABSL_ASSERT_EXCLUSIVE_LOCK(mu) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    engine_mu.Lock();
  }

  // The campaign's, never changed: read without the lock.
  const std::string account_id, id;

  Campaign campaign ABSL_GUARDED_BY(mu);  // settings, status/stats as recorded
  Phase phase ABSL_GUARDED_BY(mu) = Phase::kSettingUp;
  Scan scan ABSL_GUARDED_BY(mu) = Scan::kAhead;
  Stepper stepper ABSL_GUARDED_BY(mu) = Stepper::kIdle;
  absl::Time step_at ABSL_GUARDED_BY(mu) = absl::InfiniteFuture();

  std::optional<Setup> setup ABSL_GUARDED_BY(mu);
  // With leases: the campaign's lease as SetUp acquired it (the fence of
  // leases and marks); none while kUnowned.
  std::optional<Lease> lease ABSL_GUARDED_BY(mu);
  // Writes clearing the marks of batches put back unsent, not yet
  // committed: a pump re-acquiring its lease waits for them, or its rescan
  // would find those recipients marked and fail them outcome_unknown.
  int unmarking ABSL_GUARDED_BY(mu) = 0;
  // The campaign's rate override.
  std::optional<TokenBucket> own_bucket ABSL_GUARDED_BY(mu);
  // With leases: its sender's provider is not configured here but on
  // another live instance; the adoption scan leaves it to them until then.
  absl::Time not_here_until ABSL_GUARDED_BY(mu) = absl::InfinitePast();

  int64_t cursor ABSL_GUARDED_BY(mu) = 0;  // last leased seq
  absl::Time next_batch_at ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  std::deque<Item> ready ABSL_GUARDED_BY(mu);
  std::multimap<absl::Time, Item> retries ABSL_GUARDED_BY(mu);
  // Messages handed to the provider or settled, not recorded yet.
  int64_t in_flight ABSL_GUARDED_BY(mu) = 0;
  // Provider calls being started right now.
  int starting ABSL_GUARDED_BY(mu) = 0;
  // Batches marked handed (durably) whose provider call is still to start.
  std::deque<std::vector<Item>> marked ABSL_GUARDED_BY(mu);
  // When starting is 0.
  std::vector<std::function<void()>> on_quiet ABSL_GUARDED_BY(mu);
  // ... and in_flight is 0; told an error instead if the engine stops while
  // outcomes are kept unrecorded (they would never be).
  std::vector<std::function<void(absl::Status)>> on_idle ABSL_GUARDED_BY(mu);

  // Recent final outcomes: true = failed.
  std::deque<bool> window ABSL_GUARDED_BY(mu);
  int window_failures ABSL_GUARDED_BY(mu) = 0;
  // The error threshold's pause reason, to store.
  std::string auto_pause ABSL_GUARDED_BY(mu);

  // Storage could not write for this pump: the pause_reason shown until one
  // of its writes succeeds ("" = none).
  std::string storage_pause ABSL_GUARDED_BY(mu);
  // Outcomes whose write failed for storage (counted in in_flight): written
  // again before the pump sends anything.
  std::vector<DispatchOutcome> unrecorded ABSL_GUARDED_BY(mu);
  // Of those, how many are out to the store again right now.
  int64_t rerecording ABSL_GUARDED_BY(mu) = 0;
  // An automatic pause (error threshold, unusable provider) whose write
  // failed for storage: written again before anything else ("" = none).
  std::string unstored_pause ABSL_GUARDED_BY(mu);
  bool OutcomesOwed() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return !unrecorded.empty() || rerecording > 0;
  }

  // A queued recipient may be behind the cursor: scan again before ending.
  void NeedRescan() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (scan == Scan::kRescanning) scan = Scan::kAhead;
    if (scan == Scan::kDrained) scan = Scan::kEnd;
  }
  bool Leasing() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return scan == Scan::kAhead || scan == Scan::kRescanning;
  }
  // Drops the recipients leased and not handed over, and leases from the
  // start again: storage's state is what counts (leases, engine.h).
  void ForgetLeased() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    ready.clear();
    retries.clear();
    cursor = 0;
    scan = Scan::kAhead;
    next_batch_at = absl::InfinitePast();
  }
};

Engine::Engine(DispatchStore* store, Timer* timer, ProviderLookup providers,
               EngineOptions options)
    : store_(store),
      timer_(timer),
      leases_(options.leases),
      providers_(std::move(providers)),
      options_(options),
      metrics_(options_.metrics ? options_.metrics : Metrics::None()),
      held_(options_.held_receipts) {}

Engine::~Engine() { Stop(); }

void Engine::Stop() {
  // Cancels that waited for outcomes storage could not record.
  std::vector<std::function<void(absl::Status)>> refused;
  {
    MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    std::vector<PumpPtr> pumps;
    for (auto& [id, p] : pumps_) pumps.push_back(p);
    for (const PumpPtr& p : pumps) {
      HaltAndRelease(p);
      p->Held(mu_);
      if (!p->OutcomesOwed()) continue;
      logging::Error(
          "stopping with outcomes storage could not record: after a restart "
          "these messages go out again under the same keys (or fail "
          "outcome_unknown if their provider does not de-duplicate)",
          {{"campaign_id", p->id},
           {"messages",
            static_cast<int64_t>(p->unrecorded.size()) + p->rerecording},
           {"error", p->storage_pause}});
      for (auto& fn : p->on_idle) refused.push_back(std::move(fn));
      p->on_idle.clear();
    }
    // Cancellations left to finish: answered with what is stored (their
    // queued recipients are skipped by the next owner of the lease).
    for (auto& [id, f] : finishing_) {
      for (Done<Campaign>& done : f.waiters) {
        refused.push_back([done = std::move(done), c = f.cancelled](
                              absl::Status) mutable { done(std::move(c)); });
      }
    }
    finishing_.clear();
    if (const size_t held = held_.size(); held > 0) {
      logging::Warn(
          "stopping with receipts held that matched no message yet: they are "
          "lost (their messages stay sent)",
          {{"receipts", static_cast<int64_t>(held)}});
    }
    auto quiet = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const auto& [id, p] : pumps_) {
        p->Held(mu_);
        if (p->starting > 0) return false;
      }
      return true;
    };
    while (!quiet()) quiet_cv_.Wait(&mu_);
  }
  for (auto& fn : refused) fn(NotCancelled());
}

absl::Status Engine::Recover() {
  absl::StatusOr<std::vector<Campaign>> cut_off = store_->CutOffCancellations();
  if (!cut_off.ok()) return cut_off.status();
  for (const Campaign& c : *cut_off) {
    if (leases_ != nullptr) {
      Apply(c);  // skipped under its lease (FinishCancellation)
    } else {
      store_->SkipCancelled(c.account_id, c.id, nullptr);
    }
  }
  absl::StatusOr<std::vector<Campaign>> live = store_->CampaignsInStatus(
      {CampaignStatus::kSending, CampaignStatus::kScheduled,
       CampaignStatus::kSent});
  if (!live.ok()) return live.status();
  std::vector<Campaign> sent;
  for (const Campaign& c : *live) {
    if (c.status != CampaignStatus::kSent) {
      Apply(c);
      continue;
    }
    Publish(c);
    sent.push_back(c);
  }
  AwaitReceipts(sent);
  if (leases_ != nullptr) ScheduleAdoption();
  return absl::OkStatus();
}

void Engine::AwaitReceipts(const std::vector<Campaign>& sent) {
  for (const Campaign& c : sent) {
    // Awaiting receipts: unless its provider sends none.
    absl::StatusOr<Sender> sender = store_->SenderOf(c);
    Provider* provider = sender.ok() ? providers_(sender->provider) : nullptr;
    const bool receipts = provider == nullptr || provider->SendsReceipts();
    MutexLock lock(&mu_);
    if (!stopped_) ArmReceiptTimeout(c, receipts);
  }
}

std::string CampaignLease(const std::string& id) {
  return absl::StrCat(kCampaignLeasePrefix, id);
}

std::string SenderLease(const std::string& sender_id) {
  return absl::StrCat(kSenderLeasePrefix, sender_id);
}

void Engine::LeaseLost(const std::string& resource) {
  if (absl::StartsWith(resource, kSenderLeasePrefix)) {
    const std::string sender = resource.substr(kSenderLeasePrefix.size());
    MutexLock lock(&mu_);
    if (stopped_) return;
    sender_leases_.erase(sender);
    senders_.erase(sender);
    std::vector<PumpPtr> pumps;
    for (const auto& [id, p] : pumps_) {
      p->Held(mu_);
      if (p->campaign.sender_ref == sender && p->setup &&
          p->setup->tier_rate > 0) {
        pumps.push_back(p);
      }
    }
    // Taken up again by SetUp (the adoption scan): this instance's, or the
    // sender's new holder's.
    for (const PumpPtr& p : pumps) {
      Disown(p, absl::AbortedError(
                    "the lease keeper reported the sender's lease lost"));
    }
    return;
  }
  if (!absl::StartsWith(resource, kCampaignLeasePrefix)) return;
  const std::string id = resource.substr(kCampaignLeasePrefix.size());
  MutexLock lock(&mu_);
  if (stopped_) return;
  auto it = pumps_.find(id);
  if (it == pumps_.end()) return;
  const PumpPtr p = it->second;
  Disown(p, absl::AbortedError("the lease keeper reported the lease lost"));
}

void Engine::ReleaseNow(const std::string& id) {
  if (absl::Status s = leases_->Release(CampaignLease(id)); !s.ok()) {
    logging::Warn("releasing a campaign's lease failed: it expires by itself",
                  {{"campaign_id", id}, {"error", s}});
  }
}

void Engine::ReleaseLease(const std::string& id) {
  timer_->At(timer_->Now(), [this, id] {
    {
      MutexLock lock(&mu_);
      auto it = pumps_.find(id);
      if (it != pumps_.end()) {
        const PumpPtr& p = it->second;
        p->Held(mu_);
        // Acquired again meanwhile (e.g. failed recipients retried), or
        // sending again here (resumed): its SetUp takes the lease on.
        if (p->lease.has_value() ||
            p->campaign.status == CampaignStatus::kSending) {
          return;
        }
      }
      // Until released, no SetUp here acquires it: the release would undo
      // that Acquire.
      if (!releasing_.insert(id).second) return;  // being released
    }
    ReleaseNow(id);
    {
      MutexLock lock(&mu_);
      releasing_.erase(id);
    }
    ReleaseUnusedSenders();
  });
}

bool Engine::SenderNeeded(const std::string& sender_id) {
  for (const auto& [id, p] : pumps_) {
    p->Held(mu_);
    if (p->campaign.sender_ref != sender_id ||
        p->campaign.status != CampaignStatus::kSending) {
      continue;
    }
    // Not set up yet: its sender may be rate-limited.
    if (!p->setup) {
      if (p->phase == Pump::Phase::kSettingUp) return true;
      continue;
    }
    if (p->setup->tier_rate > 0 && (p->phase == Pump::Phase::kSending ||
                                    p->phase == Pump::Phase::kSettingUp ||
                                    p->phase == Pump::Phase::kStorageWait)) {
      return true;
    }
    // Halted, with calls it took permits for still starting (or marked,
    // about to): the next holder's second must not begin before they go.
    if (p->setup->tier_rate > 0 && (p->starting > 0 || !p->marked.empty())) {
      return true;
    }
  }
  return false;
}

void Engine::ReleaseUnusedSenders() {
  std::vector<std::string> unused;
  {
    MutexLock lock(&mu_);
    if (stopped_) return;
    for (auto it = sender_leases_.begin(); it != sender_leases_.end();) {
      if (SenderNeeded(it->first)) {
        ++it;
        continue;
      }
      unused.push_back(it->first);
      senders_.erase(it->first);
      it = sender_leases_.erase(it);
    }
  }
  for (const std::string& sender : unused) {
    if (absl::Status s = leases_->Release(SenderLease(sender)); !s.ok()) {
      logging::Warn("releasing a sender's lease failed: it expires by itself",
                    {{"sender_id", sender}, {"error", s}});
    }
  }
}

void Engine::ScheduleAdoption() {
  timer_->At(timer_->Now() + options_.adopt_every, [this] { Adopt(); });
}

void Engine::Adopt() {
  uint64_t before;
  {
    MutexLock lock(&mu_);
    if (stopped_) return;
    before = applies_;
  }
  absl::StatusOr<std::vector<Campaign>> live = store_->CampaignsInStatus(
      {CampaignStatus::kSending, CampaignStatus::kPaused,
       CampaignStatus::kScheduled, CampaignStatus::kSent});
  // Cancelled (here or elsewhere) with queued recipients left to skip.
  absl::StatusOr<std::vector<Campaign>> cut_off =
      live.ok() ? store_->CutOffCancellations() : live.status();
  if (!cut_off.ok()) live = cut_off.status();
  std::vector<Campaign> apply;
  std::vector<Campaign> sent;  // awaiting receipts, with no timeout here
  {
    MutexLock lock(&mu_);
    if (stopped_) return;
    if (live.ok()) {
      std::set<std::string> seen;
      for (const Campaign& c : *cut_off) {
        // Skipped under its lease, by its owner once the outcomes of its
        // messages out are recorded (or here, if it died).
        seen.insert(c.id);
        if (finishing_.count(c.id) == 0 && !AppliedSince(c.id, before)) {
          apply.push_back(c);
        }
      }
      for (const Campaign& c : *live) {
        if (c.status == CampaignStatus::kSent) {
          // Sent elsewhere (or before this instance started): completed
          // here if its owner dies before its receipt timeout.
          if (receipt_timeouts_.count(c.id) == 0) sent.push_back(c);
          continue;
        }
        seen.insert(c.id);
        auto it = pumps_.find(c.id);
        if (it == pumps_.end()) {
          // Sending with no pump here: its SetUp tries the lease (free when
          // the owner died). Scheduled elsewhere: armed here too (the
          // store lets one alarm start it).
          if (c.status == CampaignStatus::kSending) apply.push_back(c);
          if (c.status == CampaignStatus::kScheduled) ArmSchedule(c);
          continue;
        }
        const PumpPtr& p = it->second;
        p->Held(mu_);
        if (AppliedSince(c.id, before)) continue;  // newer than this read
        if (c.status != p->campaign.status ||
            (p->phase == Pump::Phase::kUnowned &&
             c.status == CampaignStatus::kSending &&
             p->not_here_until <= timer_->Now())) {
          // Paused or resumed elsewhere, or perhaps free to take over.
          apply.push_back(c);
        }
      }
      std::vector<PumpPtr> gone;
      std::vector<PumpPtr> waiting;  // paused or scheduled, still held
      for (const auto& [id, p] : pumps_) {
        p->Held(mu_);
        if (seen.count(id) == 0 && !AppliedSince(id, before)) {
          gone.push_back(p);
        } else if (Waits(p->campaign.status)) {
          waiting.push_back(p);
        }
      }
      for (const PumpPtr& p : gone) Forget(p, before);
      for (const PumpPtr& p : waiting) LetGo(p);
    }
  }
  if (!live.ok()) {
    static logging::RateLimited limit(5, absl::Seconds(60));
    int64_t suppressed = 0;
    if (limit.Allow(&suppressed)) {
      logging::Error(
          "reading campaigns to take over failed: tried again at the next "
          "scan",
          {{"retry_in", options_.adopt_every},
           {"error", live.status()},
           {"suppressed", suppressed}});
    }
  }
  for (const Campaign& c : apply) {
    {
      // Not if the campaign was applied since this read (a pause on this
      // instance must not be undone by an older "sending").
      MutexLock lock(&mu_);
      if (AppliedSince(c.id, before)) continue;
      ApplyLocked(c);
    }
    Publish(c);
  }
  {
    // Later scans read after every generation up to here (and so do
    // Changed's reads, unless one began before).
    MutexLock lock(&mu_);
    const uint64_t oldest = OldestRead(before);
    for (auto it = applied_.begin(); it != applied_.end();) {
      it = it->second <= oldest ? applied_.erase(it) : std::next(it);
    }
  }
  AwaitReceipts(sent);
  ReleaseUnusedSenders();  // e.g. its campaigns paused, or taken elsewhere
  ScheduleAdoption();
}

uint64_t Engine::OldestRead(uint64_t scan_read_at) {
  uint64_t oldest = scan_read_at;
  for (const auto& [id, read] : changes_) {
    oldest = std::min(oldest, read.read_at);
  }
  return oldest;
}

void Engine::Forget(const PumpPtr& p, uint64_t read_at) {
  Disown(p, absl::FailedPreconditionError("the campaign is no longer sending"));
  p->Held(mu_);
  auto it = pumps_.find(p->id);
  if (it != pumps_.end() && it->second == p && p->in_flight == 0 &&
      p->starting == 0 && p->unmarking == 0 && !p->OutcomesOwed() &&
      p->on_idle.empty() && !AppliedSince(p->id, read_at)) {
    pumps_.erase(it);
    ReleaseLease(p->id);
  }
}

bool Engine::Waits(CampaignStatus status) {
  return status == CampaignStatus::kPaused ||
         status == CampaignStatus::kScheduled;
}

void Engine::LetGoWhenIdle(const PumpPtr& p) {
  if (leases_ == nullptr) return;
  p->Held(mu_);
  if (p->in_flight > 0 || p->starting > 0) {
    p->on_idle.push_back([this, p](absl::Status) {
      MutexLock lock(&mu_);
      LetGo(p);
    });
    return;
  }
  LetGo(p);
}

void Engine::LetGo(const PumpPtr& p) {
  p->Held(mu_);
  auto it = pumps_.find(p->id);
  if (stopped_ || leases_ == nullptr || it == pumps_.end() || it->second != p ||
      !Waits(p->campaign.status) || p->stepper == Pump::Stepper::kRunning ||
      p->in_flight > 0 || p->starting > 0 || p->unmarking > 0 ||
      p->OutcomesOwed() || !p->on_idle.empty()) {
    // Sends again, or not idle yet (a step runs with the lock dropped, a
    // write is out): the next scan looks again.
    return;
  }
  // Late callbacks of this pump find it unowned and start nothing.
  p->lease.reset();
  p->phase = Pump::Phase::kUnowned;
  p->ForgetLeased();
  pumps_.erase(it);
  ReleaseLease(p->id);
}

void Engine::Changed(const std::string& id) {
  if (leases_ == nullptr) return;
  {
    MutexLock lock(&mu_);
    if (stopped_) return;
    auto [it, first] = changes_.try_emplace(id, ChangeRead{applies_, false});
    if (!first) {
      it->second.again = true;  // read once more after the current read
      return;
    }
  }
  // Off the caller's thread (the listener's): the read waits for storage.
  timer_->At(timer_->Now(), [this, id] { ReadChanged(id); });
}

void Engine::Resync() {
  if (leases_ == nullptr) return;
  std::set<std::string> ids;
  for (std::string& id : progress_.Watched()) ids.insert(std::move(id));
  {
    MutexLock lock(&mu_);
    if (stopped_) return;
    for (const auto& [id, p] : pumps_) ids.insert(id);
    for (const auto& [id, f] : finishing_) ids.insert(id);
  }
  for (const std::string& id : ids) Changed(id);
}

void Engine::ReadChanged(const std::string& id) {
  uint64_t before;
  const absl::Time began = timer_->Now();
  {
    MutexLock lock(&mu_);
    auto it = changes_.find(id);
    if (it == changes_.end()) return;
    if (stopped_) {
      changes_.erase(it);
      return;
    }
    before = applies_;
    it->second = ChangeRead{before, false};
  }
  const absl::StatusOr<Campaign> c = store_->CampaignById(id);
  std::optional<Campaign> publish;
  bool await = false;
  {
    MutexLock lock(&mu_);
    if (!stopped_ && !AppliedSince(id, before)) {
      FollowChange(id, c, before, &publish, &await);
    } else if (!stopped_) {
      // Applied here since this read began: the read may be older (a pause
      // here must not be undone by an older "sending"), or newer (resumed
      // elsewhere after it). Read once more: that read is of a state at
      // least as new as the one applied.
      auto it = changes_.find(id);
      if (it != changes_.end()) it->second.again = true;
    }
  }
  if (publish.has_value()) {
    ShowUnstoredPause(&*publish);
    progress_.PublishIfChanged(*publish, timer_->Now());
  }
  if (await) AwaitReceipts({*publish});
  {
    MutexLock lock(&mu_);
    auto it = changes_.find(id);
    if (it == changes_.end()) return;
    if (stopped_ || !it->second.again) {
      changes_.erase(it);
      return;
    }
  }
  // Changed again meanwhile: read once more (what was told meanwhile is
  // coalesced into that read).
  timer_->At(began + kChangeReadEvery, [this, id] { ReadChanged(id); });
}

void Engine::FollowChange(const std::string& id,
                          const absl::StatusOr<Campaign>& c, uint64_t read_at,
                          std::optional<Campaign>* publish, bool* await) {
  auto pit = pumps_.find(id);
  const PumpPtr p = pit == pumps_.end() ? nullptr : pit->second;
  if (!c.ok()) {
    if (c.status().code() == absl::StatusCode::kNotFound) {
      if (p) Forget(p, read_at);  // deleted elsewhere
      return;
    }
    // The adoption scan reads it again.
    static logging::RateLimited limit(5, absl::Seconds(60));
    int64_t suppressed = 0;
    if (limit.Allow(&suppressed)) {
      logging::Warn(
          "reading a campaign changed elsewhere failed: followed at the next "
          "adoption scan",
          {{"campaign_id", id},
           {"retry_in", options_.adopt_every},
           {"error", c.status()},
           {"suppressed", suppressed}});
    }
    return;
  }
  if (p) {
    p->Held(mu_);
    if (c->status != p->campaign.status) {
      // Paused, resumed or cancelled elsewhere.
      ApplyLocked(*c);
      *publish = *c;
    } else if (!Owns(*p)) {
      *publish = *c;  // sent by another instance (or by none: paused)
    }
    return;
  }
  switch (c->status) {
    case CampaignStatus::kSending:    // its SetUp tries the lease
    case CampaignStatus::kScheduled:  // armed here too (one alarm starts it)
      ApplyLocked(*c);
      break;
    case CampaignStatus::kSent:  // completed here if its owner dies
      *await = receipt_timeouts_.count(id) == 0;
      break;
    default:
      // Paused, or final: nothing to do here. A cancellation whose queued
      // recipients are left to skip is finished by the instance that sent
      // the campaign, or by the adoption scan once its lease is free.
      break;
  }
  *publish = *c;
}

void Engine::Transition(const std::string& account_id, const std::string& id,
                        LifecycleChange change, Done<Campaign> done) {
  const CampaignEvent event = change.event;
  store_->TransitionCampaign(
      account_id, id, std::move(change),
      [this, id, event, done = std::move(done)](absl::StatusOr<Campaign> c) {
        if (c.ok()) {
          Apply(*c);
        } else if (!done && IsStorageFailure(c.status())) {
          // The engine's own moves (alarms, auto-pause, fatal errors) have
          // nobody to answer: say what failed.
          logging::Error("storing a lifecycle event failed",
                         {{"campaign_id", id},
                          {"event", static_cast<int>(event)},
                          {"error", c.status()}});
        }
        if (done) done(std::move(c));
      });
}

void Engine::Apply(const Campaign& c) {
  Publish(c);
  MutexLock lock(&mu_);
  ApplyLocked(c);
}

bool Engine::AppliedSince(const std::string& id, uint64_t read_at) {
  auto it = applied_.find(id);
  return it != applied_.end() && it->second > read_at;
}

void Engine::ApplyLocked(const Campaign& c) {
  if (stopped_) return;
  auto it = pumps_.find(c.id);
  PumpPtr p = it == pumps_.end() ? nullptr : it->second;
  if (leases_ != nullptr) applied_[c.id] = ++applies_;
  if (p) {
    // The stored state: a failed pause or cancel restarts the pump only if
    // it is still sending.
    p->Held(mu_);
    p->campaign.status = c.status;
    p->campaign.pause_reason = c.pause_reason;
  }
  // Cancelled with queued recipients left: they are skipped under the
  // lease first (FinishCancellation).
  const bool cut_off = leases_ != nullptr &&
                       c.status == CampaignStatus::kCancelled &&
                       c.stats.queued > 0;
  if (c.status != CampaignStatus::kSending &&
      c.status != CampaignStatus::kPaused &&
      c.status != CampaignStatus::kScheduled && leases_ != nullptr &&
      !cut_off) {
    // Its sending ended for good (sent, or final).
    ReleaseLease(c.id);
  }
  switch (c.status) {
    case CampaignStatus::kSending:
      EnsurePump(c);
      return;
    case CampaignStatus::kPaused:
    case CampaignStatus::kScheduled:
      if (p) {
        HaltAndRelease(p);
        LetGoWhenIdle(p);
      }
      if (c.status == CampaignStatus::kScheduled) ArmSchedule(c);
      return;
    case CampaignStatus::kSent: {
      // A vendor without receipts (Telegram, Slack): sent is final.
      bool receipts = true;
      if (p) {
        p->Held(mu_);
        HaltAndRelease(p);
        if (p->setup) receipts = p->setup->provider->SendsReceipts();
        pumps_.erase(c.id);
      }
      ArmReceiptTimeout(c, receipts);
      return;
    }
    default:
      if (p) {
        p->Held(mu_);
        HaltAndRelease(p);
      }
      if (cut_off) FinishCancellation(c);
      if (p) {
        p->Held(mu_);
        // A cancel waiting for in-flight outcomes keeps the pump until then
        // (and the lock may have been dropped: only this pump goes).
        auto at = pumps_.find(c.id);
        if (at != pumps_.end() && at->second == p && p->on_idle.empty()) {
          pumps_.erase(at);
        }
      }
      return;
  }
}

void Engine::EnsurePump(const Campaign& c) {
  PumpPtr& p = pumps_[c.id];
  if (!p) {
    p = std::make_shared<Pump>(mu_, c);
    p->Held(mu_);
  } else {
    p->Held(mu_);
    // Resumed (or re-read): new settings, same place in the list.
    p->campaign = c;
    p->window.clear();
    p->window_failures = 0;
  }
  // A write committed (the start, resume or update): storage writes.
  if (!p->OutcomesOwed()) p->storage_pause.clear();
  Unhalt(p);
}

void Engine::Halt(Pump& p) {
  p.Held(mu_);
  p.phase = Pump::Phase::kHalted;
}

void Engine::HaltAndRelease(const PumpPtr& p) {
  p->Held(mu_);
  Halt(*p);
  while (!p->marked.empty()) {
    std::vector<Item> batch = std::move(p->marked.back());
    p->marked.pop_back();
    Unmark(p, std::move(batch), /*stored=*/true);
  }
}

void Engine::Unhalt(const PumpPtr& p) {
  p->Held(mu_);
  if (p->OutcomesOwed()) {
    // Nothing is sent before they are recorded: try that now.
    p->phase = Pump::Phase::kStorageWait;
    ScheduleStep(p, timer_->Now());
    return;
  }
  GoOn(p);
}

void Engine::GoOn(const PumpPtr& p) {
  p->Held(mu_);
  p->phase =
      p->setup && Owns(*p) ? Pump::Phase::kSending : Pump::Phase::kSettingUp;
  ScheduleStep(p, timer_->Now());
}

bool Engine::Owns(const Pump& p) {
  p.Held(mu_);
  if (leases_ == nullptr) return true;
  if (!p.lease.has_value()) return false;
  const std::optional<Lease> held = leases_->Held(p.lease->resource);
  if (!held.has_value() || held->epoch != p.lease->epoch) return false;
  if (!p.setup || p.setup->tier_rate <= 0) return true;
  auto it = sender_leases_.find(p.campaign.sender_ref);
  if (it == sender_leases_.end()) return false;
  const std::optional<Lease> sender = leases_->Held(it->second.resource);
  return sender.has_value() && sender->epoch == it->second.epoch;
}

void Engine::Disown(const PumpPtr& p, const absl::Status& why) {
  p->Held(mu_);
  const bool owned = p->lease.has_value();
  // First: an Unhalt while HaltAndRelease drops the lock sets it up anew.
  p->lease.reset();
  if (p->phase == Pump::Phase::kUnowned) return;
  HaltAndRelease(p);
  p->Held(mu_);
  p->phase = Pump::Phase::kUnowned;
  // What it leased may go out through the next owner (and is read again
  // when SetUp re-acquires the lease).
  p->ForgetLeased();
  if (owned) {
    logging::Warn(
        "campaign no longer sent by this instance",
        {{"campaign_id", p->id}, {"in_flight", p->in_flight}, {"why", why}});
  }
}

void Engine::WhenQuiet(const PumpPtr& p, std::function<void()> fn) {
  if (p) {
    p->Held(mu_);
    if (p->starting > 0) {
      p->on_quiet.push_back(std::move(fn));
      return;
    }
  }
  mu_.Unlock();
  fn();
  mu_.Lock();
}

void Engine::ScheduleStep(const PumpPtr& p, absl::Time when) {
  p->Held(mu_);
  switch (p->stepper) {
    case Pump::Stepper::kRunning:
      p->step_at = std::min(p->step_at, when);
      return;
    case Pump::Stepper::kArmed:
      if (p->step_at <= when) return;
      break;
    case Pump::Stepper::kIdle:
      break;
  }
  p->stepper = Pump::Stepper::kArmed;
  p->step_at = when;
  timer_->At(when, [this, p, when] { OnAlarm(p, when); });
}

void Engine::OnAlarm(const PumpPtr& p, absl::Time at) {
  MutexLock lock(&mu_);
  p->Held(mu_);
  if (p->stepper != Pump::Stepper::kArmed || p->step_at != at) return;
  p->stepper = Pump::Stepper::kRunning;
  p->step_at = absl::InfiniteFuture();
  if (!stopped_) {
    if (!p->unrecorded.empty() || !p->unstored_pause.empty() ||
        p->phase == Pump::Phase::kStorageWait) {
      // Halted or not: outcomes kept after a failed write are recorded.
      RetryStorage(p);
    } else {
      switch (p->phase) {
        case Pump::Phase::kSettingUp:
          SetUp(p);
          break;
        case Pump::Phase::kSending:
          Dispatch(p);
          break;
        case Pump::Phase::kHalted:
        case Pump::Phase::kFinishing:
        case Pump::Phase::kStorageWait:
        case Pump::Phase::kUnowned:
          break;
      }
    }
  }
  p->stepper = Pump::Stepper::kIdle;
  if (p->step_at != absl::InfiniteFuture() && !stopped_) {
    const absl::Time when = p->step_at;
    p->step_at = absl::InfiniteFuture();
    ScheduleStep(p, when);
  }
}

void Engine::ArmSchedule(const Campaign& c) {
  if (!c.schedule_at) return;
  auto [armed, added] = schedules_.emplace(c.id, *c.schedule_at);
  if (!added) {
    if (armed->second == *c.schedule_at) return;  // armed already
    armed->second = *c.schedule_at;
  }
  AtDatabaseTime(*c.schedule_at,
                 [this, at = *c.schedule_at, account = c.account_id,
                  id = c.id] { FireSchedule(account, id, at); });
}

void Engine::FireSchedule(const std::string& account_id, const std::string& id,
                          absl::Time at) {
  {
    MutexLock lock(&mu_);
    if (stopped_) return;  // armed again by the next start's Recover
    auto it = schedules_.find(id);
    if (it != schedules_.end() && it->second == at) schedules_.erase(it);
  }
  LifecycleChange change;
  change.event = CampaignEvent::kScheduleAlarm;
  change.now = DatabaseNow();
  // A stale alarm (paused, rescheduled) is refused by the store.
  Transition(
      account_id, id, change,
      [this, account_id, id, at, now = change.now](absl::StatusOr<Campaign> c) {
        if (c.ok()) return;
        const bool storage = IsStorageFailure(c.status());
        // Refused otherwise than as early (the clock offset moved since
        // the alarm was armed): the schedule changed, and its own alarm
        // stands.
        if (!storage && now >= at) return;
        if (storage) {
          static logging::RateLimited limit(5, absl::Seconds(60));
          int64_t suppressed = 0;
          if (limit.Allow(&suppressed)) {
            logging::Error("starting a scheduled campaign failed: tried again",
                           {{"campaign_id", id},
                            {"retry_in", kStorageRetry},
                            {"error", c.status()},
                            {"suppressed", suppressed}});
          }
        }
        MutexLock lock(&mu_);
        if (stopped_) return;
        // Armed again under its entry, so that an adoption scan meanwhile
        // does not arm a second one; not if one (this schedule's or a new
        // one's) was armed since.
        if (!schedules_.emplace(id, at).second) return;
        auto fire = [this, account_id, id, at] {
          FireSchedule(account_id, id, at);
        };
        if (storage) {
          timer_->At(timer_->Now() + kStorageRetry, std::move(fire));
        } else {
          AtDatabaseTime(at, std::move(fire));
        }
      });
}

void Engine::AtDatabaseTime(absl::Time at, std::function<void()> fn) {
  timer_->At(at - ClockOffset(), std::move(fn));
}

absl::Duration Engine::ClockOffset() {
  return leases_ == nullptr ? absl::ZeroDuration()
                            : leases_->DatabaseClockOffset();
}

absl::Time Engine::DatabaseNow() { return timer_->Now() + ClockOffset(); }

void Engine::ArmReceiptTimeout(const Campaign& c, bool receipts) {
  const absl::Time now = DatabaseNow();
  const absl::Time at =
      c.stats.sent == 0 || !receipts
          ? now
          : (c.sent_at ? *c.sent_at : now) + options_.receipt_timeout;
  auto [armed, added] = receipt_timeouts_.emplace(c.id, at);
  if (!added) {
    if (armed->second <= at) return;  // one as early is armed already
    armed->second = at;
  }
  AtDatabaseTime(at, [this, at, account = c.account_id, id = c.id] {
    {
      MutexLock lock(&mu_);
      auto it = receipt_timeouts_.find(id);
      if (it != receipt_timeouts_.end() && it->second == at) {
        receipt_timeouts_.erase(it);
      }
    }
    LifecycleChange change;
    change.event = CampaignEvent::kAllFinal;
    change.now = DatabaseNow();
    Transition(account, id, std::move(change), nullptr);
  });
}

void Engine::Start(const std::string& account_id, const std::string& id,
                   std::optional<absl::Time> send_at, Done<Campaign> done) {
  LifecycleChange change;
  change.event = CampaignEvent::kStart;
  change.now = DatabaseNow();
  change.send_at = send_at;
  Transition(account_id, id, std::move(change), std::move(done));
}

void Engine::Pause(const std::string& account_id, const std::string& id,
                   std::string reason, Done<Campaign> done) {
  {
    MutexLock lock(&mu_);
    auto it = pumps_.find(id);
    // Halted before the write: nothing starts once the pause is stored.
    if (it != pumps_.end() && it->second->account_id == account_id) {
      HaltAndRelease(PumpPtr(it->second));
    }
  }
  LifecycleChange change;
  change.event = CampaignEvent::kPause;
  change.now = DatabaseNow();
  change.reason = std::move(reason);
  Transition(account_id, id, std::move(change),
             [this, id, done = std::move(done)](absl::StatusOr<Campaign> c) {
               MutexLock lock(&mu_);
               auto it = pumps_.find(id);
               PumpPtr p = it == pumps_.end() ? nullptr : it->second;
               if (!c.ok() && p && !stopped_) {
                 p->Held(mu_);
                 if (p->phase == Pump::Phase::kHalted &&
                     p->campaign.status == CampaignStatus::kSending) {
                   // Not paused after all: a sending campaign runs on.
                   Unhalt(p);
                 }
               }
               // Answered once nothing that was starting can still start.
               WhenQuiet(p,
                         [done = std::move(done), c = std::move(c)]() mutable {
                           done(std::move(c));
                         });
             });
}

void Engine::Resume(const std::string& account_id, const std::string& id,
                    Done<Campaign> done) {
  LifecycleChange change;
  change.event = CampaignEvent::kResume;
  change.now = DatabaseNow();
  Transition(account_id, id, std::move(change), std::move(done));
}

void Engine::Cancel(const std::string& account_id, const std::string& id,
                    Done<Campaign> done) {
  if (leases_ != nullptr) {
    bool owned;
    {
      MutexLock lock(&mu_);
      auto it = pumps_.find(id);
      owned = it != pumps_.end() && Owns(*it->second);
    }
    if (!owned) {
      // Off the caller's thread: Acquire waits for the database.
      timer_->At(timer_->Now(),
                 [this, account_id, id, done = std::move(done)]() mutable {
                   absl::StatusOr<std::optional<Lease>> lease =
                       leases_->Acquire(CampaignLease(id));
                   if (lease.ok() && lease->has_value()) {
                     // Nobody else sends it: cancelled as on one instance.
                     CancelHere(account_id, id, std::move(done));
                     return;
                   }
                   // Another live instance sends it (or the database cannot
                   // say): stored now; its queued recipients are skipped under
                   // the lease once that instance's messages out are recorded
                   // (FinishCancellation, started by Apply).
                   CancelElsewhere(account_id, id, std::move(done));
                 });
      return;
    }
  }
  CancelHere(account_id, id, std::move(done));
}

void Engine::CancelElsewhere(const std::string& account_id,
                             const std::string& id, Done<Campaign> done) {
  LifecycleChange change;
  change.event = CampaignEvent::kCancel;
  change.now = DatabaseNow();
  change.skip_queued = false;
  Transition(
      account_id, id, std::move(change),
      [this, id, done = std::move(done)](absl::StatusOr<Campaign> c) mutable {
        if (c.ok() && c->stats.queued > 0) {
          MutexLock lock(&mu_);
          auto f = finishing_.find(id);
          if (f != finishing_.end()) {
            // This instance skips them after all: answered then.
            f->second.waiters.push_back(std::move(done));
            return;
          }
        }
        done(std::move(c));
      });
}

void Engine::CancelHere(const std::string& account_id, const std::string& id,
                        Done<Campaign> done) {
  auto cancel = [this, account_id, id,
                 done = std::move(done)](absl::Status go) mutable {
    if (!go.ok()) {
      done(std::move(go));
      return;
    }
    LifecycleChange change;
    change.event = CampaignEvent::kCancel;
    change.now = DatabaseNow();
    // The lease may have been lost while messages out were awaited: then
    // its next holder skips the queued recipients (FinishCancellation).
    change.skip_queued =
        leases_ == nullptr || leases_->Held(CampaignLease(id)).has_value();
    Transition(account_id, id, std::move(change),
               [this, id, done = std::move(done)](absl::StatusOr<Campaign> c) {
                 // A refused cancel keeps no lease taken for it (a pump
                 // that sends the campaign keeps its own).
                 if (!c.ok() && leases_ != nullptr) ReleaseLease(id);
                 ReleasableMutexLock lock(&mu_);
                 auto it = pumps_.find(id);
                 if (it != pumps_.end()) {
                   it->second->Held(mu_);
                   const CampaignStatus stored = it->second->campaign.status;
                   if (c.ok() || (stored != CampaignStatus::kSending &&
                                  stored != CampaignStatus::kPaused &&
                                  stored != CampaignStatus::kScheduled)) {
                     pumps_.erase(it);
                   } else if (stored == CampaignStatus::kSending && !stopped_) {
                     Unhalt(it->second);  // still sending: run on
                   }
                 }
                 lock.Unlock();
                 done(std::move(c));
               });
  };
  absl::Status go = absl::OkStatus();
  {
    MutexLock lock(&mu_);
    auto it = pumps_.find(id);
    if (it != pumps_.end() && it->second->account_id == account_id) {
      const PumpPtr p = it->second;
      p->Held(mu_);
      HaltAndRelease(p);
      if (stopped_ && p->OutcomesOwed()) {
        // Outcomes kept unrecorded will not be recorded now: cancelling
        // would settle those messages as never sent.
        go = NotCancelled();
      } else if (p->in_flight > 0 || p->starting > 0) {
        // Messages with the provider keep their real outcome: cancel once
        // they are recorded and no call is being started.
        p->on_idle.push_back(std::move(cancel));
        return;
      }
    }
  }
  cancel(std::move(go));
}

void Engine::WhenCallsRecorded(const std::string& account_id,
                               const std::string& id,
                               std::function<void(absl::Status)> fn) {
  {
    MutexLock lock(&mu_);
    auto it = pumps_.find(id);
    if (it != pumps_.end() && it->second->account_id == account_id) {
      const PumpPtr& p = it->second;
      p->Held(mu_);
      if (p->phase == Pump::Phase::kHalted &&
          (p->in_flight > 0 || p->starting > 0)) {
        p->on_idle.push_back(std::move(fn));
        return;
      }
    }
  }
  fn(absl::OkStatus());
}

void Engine::FinishCancellation(const Campaign& c) {
  if (stopped_ || !finishing_.emplace(c.id, Finishing{c, {}}).second) return;
  auto skip = [this, account_id = c.account_id, id = c.id] {
    timer_->At(timer_->Now(),
               [this, account_id, id] { SkipCancelledHere(account_id, id); });
  };
  auto it = pumps_.find(c.id);
  if (it != pumps_.end()) {
    const PumpPtr& p = it->second;
    p->Held(mu_);
    if (p->in_flight > 0 || p->starting > 0) {
      // Its messages out keep their real outcome: skip once recorded.
      p->on_idle.push_back([this, id = c.id, skip](absl::Status go) {
        if (go.ok()) {
          skip();
        } else {
          EndCancellation(id, go);
        }
      });
      return;
    }
  }
  skip();
}

void Engine::SkipCancelledHere(const std::string& account_id,
                               const std::string& id) {
  {
    MutexLock lock(&mu_);
    if (stopped_) return;  // Stop answered its cancels
  }
  absl::StatusOr<std::optional<Lease>> lease =
      leases_->Acquire(CampaignLease(id));
  if (!lease.ok() || !lease->has_value()) {
    if (!lease.ok()) {
      logging::Warn(
          "finishing a cancellation: the campaign's lease cannot be read; "
          "tried again at the next scan",
          {{"campaign_id", id}, {"error", lease.status()}});
    }
    // Else another live instance holds it, and skips them itself.
    EndCancellation(id, absl::UnavailableError("not skipped here"));
    return;
  }
  store_->SkipCancelled(account_id, id, [this, id](absl::StatusOr<Campaign> c) {
    if (c.ok()) {
      Apply(*c);  // publishes it, and gives the lease up
      // A counter above the rows (logged by the store) ends it too.
      if (c->stats.queued > 0) ReleaseLease(id);
    } else if (c.status().code() == absl::StatusCode::kNotFound) {
      ReleaseLease(id);
    } else {
      // The lease is kept: the store skips the rest once writes succeed,
      // and the next scan here tries too.
      logging::Error(
          "skipping a cancelled campaign's queued recipients failed: "
          "the rest are skipped once writes succeed",
          {{"campaign_id", id}, {"error", c.status()}});
    }
    EndCancellation(id, std::move(c));
  });
}

void Engine::EndCancellation(const std::string& id,
                             absl::StatusOr<Campaign> skipped) {
  Finishing f;
  {
    MutexLock lock(&mu_);
    auto it = finishing_.find(id);
    if (it == finishing_.end()) return;
    f = std::move(it->second);
    finishing_.erase(it);
  }
  for (Done<Campaign>& done : f.waiters) {
    done(skipped.ok() ? *skipped : f.cancelled);
  }
}

void Engine::RetryFailed(const std::string& account_id, const std::string& id,
                         std::vector<std::string> error_codes,
                         Done<RetryResult> done) {
  store_->RetryFailed(
      account_id, id, std::move(error_codes),
      [this, done = std::move(done)](absl::StatusOr<RetryResult> r) {
        if (r.ok()) {
          {
            MutexLock lock(&mu_);
            auto it = pumps_.find(r->campaign.id);
            // A running pump finds them on its rescan before finishing.
            if (it != pumps_.end()) {
              it->second->Held(mu_);
              it->second->NeedRescan();
            }
          }
          Apply(r->campaign);
        }
        done(std::move(r));
      });
}

void Engine::IngestReceipts(const std::string& account_id,
                            std::vector<ReceiptUpdate> receipts,
                            Done<ReceiptResult> done) {
  if (absl::Status wait = ReceiptsWait(account_id, ""); !wait.ok()) {
    if (done) done(std::move(wait));
    return;
  }
  MendProviderText(receipts);
  store_->ApplyReceipts(
      account_id, std::move(receipts),
      [this, account_id,
       done = std::move(done)](absl::StatusOr<ReceiptResult> r) mutable {
        AfterReceipts(account_id, "", std::move(r), std::move(done));
      });
}

void Engine::IngestProviderReceipts(const std::string& provider,
                                    std::vector<ReceiptUpdate> receipts,
                                    Done<ReceiptResult> done) {
  if (absl::Status wait = ReceiptsWait("", provider); !wait.ok()) {
    if (done) done(std::move(wait));
    return;
  }
  MendProviderText(receipts);
  store_->ApplyProviderReceipts(
      provider, std::move(receipts),
      [this, provider,
       done = std::move(done)](absl::StatusOr<ReceiptResult> r) mutable {
        AfterReceipts("", provider, std::move(r), std::move(done));
      });
}

void Engine::AfterReceipts(const std::string& account_id,
                           const std::string& provider,
                           absl::StatusOr<ReceiptResult> r,
                           Done<ReceiptResult> done) {
  // Checked again after the write: outcomes whose write failed after the
  // check before it (the disk filled, or was freed, in between) would leave
  // these unmatched for good. The sender sends them again; what matched now
  // is ignored then as a repeat.
  absl::Status again = absl::OkStatus();
  if (r.ok() && r->unmatched > 0) {
    again = ReceiptsWait(account_id, provider);
    if (!again.ok()) {  // not counted: they come back
      r->unmatched = 0;
      r->unmatched_receipts.clear();
    }
  }
  if (r.ok()) {
    ReceiptsApplied(*r);
    const int64_t held = static_cast<int64_t>(r->unmatched_receipts.size());
    CountUnmatched(r->unmatched - held);
    if (held > 0) {
      const absl::Time now = timer_->Now();
      // Copied: the answer names them too (the simulator keeps them owed).
      CountUnmatched(
          held_.Hold(account_id, provider, r->unmatched_receipts, now));
      WantHeldRetry(now + held_.first_retry());
    }
  } else if (IsStorageFailure(r.status())) {
    // Refused, never acknowledged and dropped: every intake answers its
    // sender "try again" (gRPC UNAVAILABLE, HTTP 503, a temporary SMPP
    // error), and the sender keeps them until then.
    static logging::RateLimited limit(10, absl::Seconds(10));
    int64_t suppressed = 0;
    if (limit.Allow(&suppressed)) {
      logging::Error("receipts not stored: refused, their sender retries",
                     {{"error", r.status()}, {"suppressed", suppressed}});
    }
    r = errors::Unavailable(
        absl::StrCat("receipts not stored (", r.status().message(),
                     "); none of this batch was applied: send it again"),
        kStorageRetry);
  }
  if (!again.ok()) r = std::move(again);
  if (done) done(std::move(r));
}

void Engine::ReceiptsApplied(const ReceiptResult& r) {
  metrics_->Receipts(ReceiptOutcome::kDelivered, r.delivered);
  metrics_->Receipts(ReceiptOutcome::kRead, r.read);
  metrics_->Receipts(ReceiptOutcome::kFailed, r.failed);
  metrics_->Receipts(ReceiptOutcome::kIgnored, r.ignored);
  for (const Campaign& c : r.campaigns) {
    Publish(c);
    if (c.status == CampaignStatus::kSent && c.stats.sent == 0) {
      LifecycleChange change;
      change.event = CampaignEvent::kAllFinal;
      change.now = DatabaseNow();
      Transition(c.account_id, c.id, std::move(change), nullptr);
    }
  }
}

void Engine::CountUnmatched(int64_t n) {
  if (n <= 0) return;
  metrics_->Receipts(ReceiptOutcome::kUnmatched, n);
  // Unmatched receipts come in bulk (another system's ids, a wrong
  // webhook URL): one line a minute with the count since the last.
  unmatched_receipts_.fetch_add(n);
  static logging::RateLimited limit(1, absl::Minutes(1));
  int64_t suppressed = 0;
  if (limit.Allow(&suppressed)) {
    logging::Warn("receipts matched no message",
                  {{"receipts", unmatched_receipts_.exchange(0)},
                   {"held_for", options_.held_receipts.hold}});
  }
}

void Engine::WantHeldRetry(absl::Time at) {
  if (held_.Want(at)) timer_->At(at, [this] { RetryHeldReceipts(); });
}

void Engine::RetryHeldReceipts() {
  const absl::Time now = timer_->Now();
  if (!held_.Begin()) return;
  int64_t expired = 0;
  std::vector<HeldReceipts::Batch> batches = held_.Take(now, &expired);
  CountUnmatched(expired);
  auto end = [this] {
    {
      // Stopped meanwhile: nothing is retried (the timer may be gone).
      MutexLock lock(&mu_);
      if (stopped_) return;
    }
    if (std::optional<absl::Time> next = held_.End(timer_->Now())) {
      timer_->At(*next, [this] { RetryHeldReceipts(); });
    }
  };
  if (batches.empty()) {
    end();
    return;
  }
  auto left = std::make_shared<std::atomic<size_t>>(batches.size());
  for (HeldReceipts::Batch& b : batches) {
    auto batch = std::make_shared<HeldReceipts::Batch>(std::move(b));
    Done<ReceiptResult> after = [this, batch, left,
                                 end](absl::StatusOr<ReceiptResult> r) {
      if (r.ok()) {
        ReceiptsApplied(*r);
        CountUnmatched(r->unmatched -
                       static_cast<int64_t>(r->unmatched_receipts.size()));
        CountUnmatched(held_.Keep(*batch, r->unmatched_receipts));
      } else {
        // Held again, whatever went wrong: tried at the next retry.
        static logging::RateLimited limit(1, absl::Minutes(1));
        int64_t suppressed = 0;
        if (limit.Allow(&suppressed)) {
          logging::Warn(
              "held receipts not applied: tried again later",
              {{"receipts", static_cast<int64_t>(batch->receipts.size())},
               {"error", r.status()},
               {"suppressed", suppressed}});
        }
        CountUnmatched(held_.Keep(*batch, batch->receipts));
      }
      if (left->fetch_sub(1) == 1) end();
    };
    // A copy: `batch` keeps the receipts' deadlines for Keep.
    std::vector<ReceiptUpdate> receipts = batch->receipts;
    if (batch->provider.empty()) {
      store_->ApplyReceipts(batch->account_id, std::move(receipts),
                            std::move(after));
    } else {
      store_->ApplyProviderReceipts(batch->provider, std::move(receipts),
                                    std::move(after));
    }
  }
}

absl::Status Engine::ReceiptsWait(absl::string_view account_id,
                                  absl::string_view provider) {
  MutexLock lock(&mu_);
  for (const auto& [id, p] : pumps_) {
    p->Held(mu_);
    if (!p->OutcomesOwed()) continue;
    bool owns = !account_id.empty() && p->account_id == account_id;
    if (!owns && !provider.empty()) {
      owns = p->setup && p->setup->provider_name == provider;
      // A fallback provider may have sent some of them.
      for (const DispatchOutcome& o : p->unrecorded) {
        owns = owns || o.provider == provider;
      }
      owns = owns || p->rerecording > 0;  // out again: not known here
    }
    if (!owns) continue;
    return errors::Unavailable(
        absl::StrCat("receipts refused for now: outcomes of campaign ", id,
                     " are not recorded yet (storage could not write), so "
                     "a receipt for one of them would match nothing; send "
                     "them again"),
        kStorageRetry);
  }
  return absl::OkStatus();
}

int64_t Engine::TakePermits(Pump& p, absl::Time now, absl::Time* ready_at) {
  p.Held(mu_);
  const int64_t rate = RateOf(p.campaign, p.setup->tier_rate);
  if (rate <= 0) return p.campaign.batch_size;
  // With leases, a new bucket starts empty: until its lease was held here,
  // another instance may have sent under the same limit (engine.h).
  const bool handed_over = leases_ != nullptr;
  TokenBucket* sender = nullptr;
  if (p.setup->tier_rate > 0) {
    const int64_t tier = p.setup->tier_rate;
    auto it = senders_.find(p.campaign.sender_ref);
    if (it == senders_.end()) {
      it = senders_
               .emplace(p.campaign.sender_ref,
                        TokenBucket(static_cast<double>(tier),
                                    TokenBucket::CapacityFor(tier), now))
               .first;
      if (handed_over) it->second.Drain(now);
    }
    sender = &it->second;
  }
  TokenBucket* own = nullptr;
  if (p.campaign.rate_limit_per_second > 0) {
    const int64_t r = p.campaign.rate_limit_per_second;
    if (!p.own_bucket || p.own_bucket->rate() != static_cast<double>(r)) {
      const bool first = !p.own_bucket;
      p.own_bucket.emplace(static_cast<double>(r), TokenBucket::CapacityFor(r),
                           now);
      if (first && handed_over) p.own_bucket->Drain(now);
    }
    own = &*p.own_bucket;
  }
  // A chunk: the smallest capacity, once every bucket is full.
  int64_t n = std::numeric_limits<int64_t>::max();
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
  p.Held(mu_);
  const int64_t tier = p.setup ? p.setup->tier_rate : 0;
  if (RateOf(p.campaign, tier) <= 0) return p.campaign.batch_size;
  int64_t n = std::numeric_limits<int64_t>::max();
  if (tier > 0) n = std::min(n, TokenBucket::CapacityFor(tier));
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

void Engine::SetUp(const PumpPtr& p) {
  p->Held(mu_);
  const Campaign c = p->campaign;
  const bool acquire = leases_ != nullptr && !p->lease;
  if (acquire && (p->in_flight > 0 || p->starting > 0 || p->unmarking > 0)) {
    // Back from a lost lease: its outcomes and cleared marks first, or a
    // rescan would take the recipients they are for as still to send (or
    // as in doubt).
    ScheduleStep(p, timer_->Now() + kErrorRetry);
    return;
  }
  if (acquire && releasing_.count(c.id) > 0) {
    // Its lease is on its way out (let go of while paused): taken again
    // once it is.
    ScheduleStep(p, timer_->Now() + kErrorRetry);
    return;
  }
  const bool look_up = !p->setup;
  // Set up before: its sender's tier is known, and its lease is taken
  // first (when another instance holds it, the campaign is left alone).
  const int64_t known_tier = look_up ? 0 : p->setup->tier_rate;
  p->Unlock(mu_);
  // With a rate-limited sender: its lease (none needed: ok, nullopt).
  absl::StatusOr<std::optional<Lease>> sender_lease = std::optional<Lease>();
  bool sender_refused = false;  // another live instance holds it
  int64_t tier = known_tier;
  auto take_sender = [&] {
    sender_lease = leases_->Acquire(SenderLease(c.sender_ref));
    sender_refused = sender_lease.ok() && !sender_lease->has_value();
  };
  if (leases_ != nullptr && known_tier > 0) take_sender();
  absl::StatusOr<std::optional<Lease>> lease = std::optional<Lease>();
  if (acquire && sender_lease.ok() && !sender_refused) {
    lease = leases_->Acquire(CampaignLease(c.id));
  }
  bool ours = lease.ok() && (!acquire || lease->has_value());
  // Read only when needed (set up before: not read again).
  absl::StatusOr<Sender> sender = absl::UnknownError("not read");
  absl::StatusOr<MessageContent> text = absl::UnknownError("not read");
  Provider* provider = nullptr;
  if (ours && look_up && !sender_refused) {
    sender = store_->SenderOf(c);
    text = sender.ok() ? store_->MessageContentOf(c) : sender.status();
    provider = sender.ok() ? providers_(sender->provider) : nullptr;
    if (sender.ok()) tier = TierRatePerSecond(sender->tier);
    if (leases_ != nullptr && tier > 0) take_sender();
  }
  if (sender_refused) ours = false;
  if (acquire && sender_refused &&
      leases_->Held(CampaignLease(c.id)).has_value()) {
    // Left to the sender's holder, which takes it over at its next scan
    // (nothing of it is out: see above). Held from now, or from before its
    // sender's lease went elsewhere.
    ReleaseNow(c.id);
  }
  p->Lock(mu_);
  if (ours && acquire) {
    p->lease = **lease;  // kept even if halted meanwhile
    // Sent from storage's state only: a batch whose mark came back after
    // the lease was lost is in `ready` again, and would go out beside its
    // recipients leased anew (nothing is in flight, so nothing else is).
    p->ForgetLeased();
    // Its messages may have gone out from another instance until now: a
    // new bucket (empty, TakePermits).
    p->own_bucket.reset();
  }
  if (sender_lease.ok() && sender_lease->has_value()) {
    const Lease& held = **sender_lease;
    auto [it, added] = sender_leases_.try_emplace(c.sender_ref, held);
    if (added || it->second.epoch != held.epoch) {
      // Newly held here: the sender's last holder may have sent a chunk
      // just now. A new bucket (empty, TakePermits).
      it->second = held;
      senders_.erase(c.sender_ref);
    }
  }
  if (ours && acquire) {
    auto it = pumps_.find(c.id);
    if (it == pumps_.end() || it->second != p) {
      // Let go of (paused) or forgotten meanwhile: no pump here sends it,
      // so the lease just taken goes (its sender's too, if unused).
      p->lease.reset();
      ReleaseLease(c.id);
      return;
    }
  }
  if (p->phase != Pump::Phase::kSettingUp) return;  // halted meanwhile
  if (!lease.ok() || !sender_lease.ok()) {
    const bool of_sender = !sender_lease.ok();
    static logging::RateLimited limit(10, absl::Seconds(10));
    int64_t suppressed = 0;
    if (limit.Allow(&suppressed)) {
      logging::Error(
          of_sender ? "acquiring a sender's lease failed"
                    : "acquiring a campaign's lease failed",
          {{"campaign_id", c.id},
           {"sender_id", c.sender_ref},
           {"retry_in", kErrorRetry},
           {"error", of_sender ? sender_lease.status() : lease.status()},
           {"suppressed", suppressed}});
    }
    ScheduleStep(p, timer_->Now() + kErrorRetry);
    return;
  }
  if (sender_refused && p->lease.has_value()) {
    // Set up and holding the campaign's lease (resumed): the next scan's
    // SetUp (acquiring) gives that up once nothing of it is out.
    Disown(p, absl::FailedPreconditionError(
                  "another instance holds the sender's lease, and sends its "
                  "campaigns"));
    return;
  }
  if (!ours || sender_refused) {
    // Another live instance sends it (or the sender's campaigns); the
    // adoption scan tries again.
    p->phase = Pump::Phase::kUnowned;
    return;
  }
  if (!look_up) {
    p->phase = Pump::Phase::kSending;
    ScheduleStep(p, timer_->Now());
    return;
  }
  if (IsStorageFailure(text.status())) {
    logging::Error("reading a campaign's sender and template failed",
                   {{"campaign_id", c.id},
                    {"retry_in", kErrorRetry},
                    {"error", text.status()}});
    ScheduleStep(p, timer_->Now() + kErrorRetry);
    return;
  }
  if (text.ok() && provider == nullptr && leases_ != nullptr &&
      leases_->ConfiguredElsewhere(sender->provider)) {
    // Another live instance configures the provider: it sends the
    // campaign, not this one (nor is the campaign failed for it). Released
    // now, and left alone here for three scans, so that one of theirs
    // takes it.
    p->phase = Pump::Phase::kUnowned;
    p->lease.reset();
    p->not_here_until = timer_->Now() + 3 * options_.adopt_every;
    p->Unlock(mu_);
    static logging::RateLimited limit(10, absl::Minutes(1));
    int64_t suppressed = 0;
    if (limit.Allow(&suppressed)) {
      logging::Warn(
          "campaign's provider is not configured on this instance: left to "
          "the instances that configure it",
          {{"campaign_id", c.id},
           {"provider", sender->provider},
           {"suppressed", suppressed}});
    }
    ReleaseNow(c.id);
    p->Lock(mu_);
    return;
  }
  std::string fatal;
  if (!text.ok()) {
    fatal = std::string(text.status().message());
  } else if (provider == nullptr) {
    fatal = absl::StrCat("no provider \"", sender->provider, "\" for sender ",
                         c.sender_id);
  }
  if (!fatal.empty()) {
    Halt(*p);
    p->Unlock(mu_);
    logging::Warn("campaign cannot send: failing it",
                  {{"campaign_id", c.id}, {"error", fatal}});
    LifecycleChange change;
    change.event = CampaignEvent::kFatal;
    change.now = DatabaseNow();
    change.reason = fatal;
    Transition(c.account_id, c.id, std::move(change), nullptr);
    p->Lock(mu_);
    return;
  }
  const bool mark_handed =
      !provider->HonoursIdempotencyKeys() && !provider->ResendsUnknown();
  int64_t window = options_.max_in_flight;
  if (mark_handed && provider->MaxInFlight() > 0) {
    // What the provider has on the wire plus two batches: one being
    // marked, one waiting for the wire, so the provider never idles.
    window = std::min<int64_t>(
        window, provider->MaxInFlight() + 2 * int64_t{c.batch_size});
  }
  p->setup = Setup{
      MessageTemplate::Parse(*text, c.template_components, c.variable_mapping),
      provider,
      sender->provider,
      TierRatePerSecond(sender->tier),
      mark_handed,
      window};
  p->phase = Pump::Phase::kSending;
  ScheduleStep(p, timer_->Now());
}

void Engine::Dispatch(const PumpPtr& p) {
  p->Held(mu_);
  // Permits granted in this step: a rate chunk is spent at once (in calls
  // of at most batch_size), never carried into a later step.
  int64_t permits = 0;
  // Every way out but the round bound leaves something to wake the pump (an
  // alarm, an outcome); at the bound, the next step is asked for.
  for (int round = 0;; ++round) {
    if (p->phase != Pump::Phase::kSending || stopped_) return;
    if (!Owns(*p)) {
      // Not renewed in time: another instance may take it over now.
      Disown(p, absl::DeadlineExceededError(
                    "the campaign's (or its sender's) lease was not renewed "
                    "in time"));
      return;
    }
    // Batches whose durable mark committed go out first, in order.
    while (!p->marked.empty() && p->phase == Pump::Phase::kSending &&
           !stopped_) {
      if (!Owns(*p)) {
        // A call can block (a full window): checked before each.
        Disown(p, absl::DeadlineExceededError(
                      "the campaign's (or its sender's) lease was not "
                      "renewed in time"));
        return;
      }
      std::vector<Item> batch = std::move(p->marked.front());
      p->marked.pop_front();
      p->in_flight -= static_cast<int64_t>(batch.size());
      StartCall(p, std::move(batch));
    }
    if (p->phase != Pump::Phase::kSending || stopped_) return;
    const absl::Time now = timer_->Now();
    if (round == kRoundsPerStep) {
      ScheduleStep(p, now);
      return;
    }
    while (!p->retries.empty() && p->retries.begin()->first <= now) {
      p->ready.push_back(std::move(p->retries.begin()->second));
      p->retries.erase(p->retries.begin());
    }
    const bool window_open = p->in_flight < p->setup->window;
    // Every chunk but a campaign's last is full: a short one would cost
    // the rate a whole chunk. So top up from the next lease first (unless
    // batches are meant to be apart).
    const int64_t want = permits > 0 ? permits : ChunkSize(*p);
    const bool short_chunk = static_cast<int64_t>(p->ready.size()) < want &&
                             p->campaign.batch_delay <= absl::ZeroDuration() &&
                             window_open;
    if ((p->ready.empty() || short_chunk) && p->Leasing()) {
      if (now < p->next_batch_at) {
        ScheduleStep(p, p->next_batch_at);
        return;
      }
      if (!window_open) return;  // recorded outcomes step again
      Refill(p);
      continue;
    }
    if (p->ready.empty()) {
      if (p->in_flight > 0 || p->starting > 0) return;  // outcomes step
      if (!p->retries.empty()) {
        ScheduleStep(p, p->retries.begin()->first);
        return;
      }
      if (p->scan == Pump::Scan::kEnd) {
        // Nothing in flight: whatever is still queued (retried failures,
        // outcomes that failed to record) is genuinely waiting.
        p->scan = Pump::Scan::kRescanning;
        p->cursor = 0;
        continue;
      }
      p->phase = Pump::Phase::kFinishing;
      p->Unlock(mu_);
      FinishDispatch(p);
      p->Lock(mu_);
      return;
    }
    if (permits == 0 && !window_open) return;  // recorded outcomes step
    if (const std::optional<absl::Time> expires = ExpiresAt(p->campaign);
        expires && now + ClockOffset() > *expires) {
      // Past the validity period: what has not gone out never will.
      std::vector<DispatchOutcome> expired;
      for (Item& item : p->ready) expired.push_back(Expired(item.r.seq));
      p->ready.clear();
      metrics_->Messages(p->setup->provider_name, p->campaign.channel,
                         MessageOutcome::kSkipped,
                         static_cast<int64_t>(expired.size()));
      p->in_flight += static_cast<int64_t>(expired.size());
      p->Unlock(mu_);
      Record(p, std::move(expired));
      p->Lock(mu_);
      continue;
    }
    if (permits == 0) {
      absl::Time ready_at;
      permits = TakePermits(*p, now, &ready_at);
      if (permits == 0) {
        ScheduleStep(p, ready_at);
        return;
      }
    }
    const int64_t n = std::min<int64_t>(
        {static_cast<int64_t>(p->ready.size()),
         static_cast<int64_t>(p->campaign.batch_size), permits});
    // Without a rate limit a step's permits are one batch at a time.
    permits = RateOf(p->campaign, p->setup->tier_rate) > 0 ? permits - n : 0;
    std::vector<Item> batch;
    batch.reserve(n);
    for (int64_t i = 0; i < n; ++i) {
      batch.push_back(std::move(p->ready.front()));
      p->ready.pop_front();
    }
    if (p->ready.empty() && p->campaign.batch_delay > absl::ZeroDuration()) {
      p->next_batch_at = now + p->campaign.batch_delay;
    }
    if (p->setup->mark_handed) {
      MarkThenCall(p, std::move(batch));
    } else {
      StartCall(p, std::move(batch));
    }
  }
}

void Engine::MarkThenCall(const PumpPtr& p, std::vector<Item> batch) {
  p->Held(mu_);
  const int64_t n = static_cast<int64_t>(batch.size());
  std::vector<int64_t> seqs;
  seqs.reserve(batch.size());
  for (const Item& item : batch) seqs.push_back(item.r.seq);
  p->in_flight += n;  // counted from the mark on (the window, a cancel)
  const std::optional<Lease> fence = p->lease;
  p->Unlock(mu_);
  store_->MarkHanded(
      p->account_id, p->id, std::move(seqs), true, fence ? &*fence : nullptr,
      [this, p, n, batch = std::move(batch)](absl::Status marked) mutable {
        const bool storage = IsStorageFailure(marked);
        bool wrote_again = false;
        Campaign shown;
        {
          MutexLock lock(&mu_);
          p->Held(mu_);
          if (errors::IsLeaseLost(marked)) {
            // Nothing was marked: back unsent, and the pump stops.
            Unmark(p, std::move(batch), /*stored=*/false);
            if (!stopped_) Disown(p, marked);
            return;
          }
          if (marked.ok()) wrote_again = StorageWrote(p);
          if (wrote_again) shown = p->campaign;
          if (marked.ok() && p->phase == Pump::Phase::kSending && !stopped_) {
            // The call starts from the pump's next step, on a timer thread:
            // never on the storage writer's.
            p->marked.push_back(std::move(batch));
            ScheduleStep(p, timer_->Now());
          } else {
            if (!marked.ok() && !storage) {
              logging::Error("marking messages before the provider call failed",
                             {{"campaign_id", p->id},
                              {"messages", static_cast<int64_t>(n)},
                              {"retry_in", kErrorRetry},
                              {"error", marked}});
              p->next_batch_at = timer_->Now() + kErrorRetry;
            }
            // Back at the front, unsent.
            Unmark(p, std::move(batch), /*stored=*/marked.ok());
            if (p->phase == Pump::Phase::kSending && !stopped_ && !storage) {
              ScheduleStep(p, p->next_batch_at);
            }
          }
        }
        if (wrote_again) Publish(shown);
        if (storage) StorageWait(p, marked, {});
      });
  p->Lock(mu_);
}

void Engine::Unmark(const PumpPtr& p, std::vector<Item> batch, bool stored) {
  p->Held(mu_);
  std::vector<int64_t> seqs;
  p->in_flight -= static_cast<int64_t>(batch.size());
  for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
    seqs.push_back(it->r.seq);
    p->ready.push_front(std::move(*it));
  }
  std::vector<std::function<void(absl::Status)>> idle;
  if (p->in_flight == 0 && p->starting == 0) idle.swap(p->on_idle);
  if (!stored && idle.empty()) return;
  if (stored) ++p->unmarking;
  p->Unlock(mu_);
  // Not sent after all: a crash now must not make them outcome_unknown.
  if (stored) ClearMarks(p, std::move(seqs));
  for (auto& fn : idle) fn(absl::OkStatus());
  p->Lock(mu_);
}

void Engine::ClearMarks(const PumpPtr& p, std::vector<int64_t> seqs) {
  std::vector<int64_t> again = seqs;
  store_->MarkHanded(
      p->account_id, p->id, std::move(seqs), false, /*fence=*/nullptr,
      [this, p, again = std::move(again)](absl::Status s) mutable {
        bool retry = false;
        {
          MutexLock lock(&mu_);
          p->Held(mu_);
          retry = !s.ok() && !stopped_;
          if (!retry) --p->unmarking;
        }
        if (s.ok()) return;
        logging::Error("clearing the marks of unsent messages failed",
                       {{"campaign_id", p->id},
                        {"messages", static_cast<int64_t>(again.size())},
                        {"retry_in", kErrorRetry},
                        {"error", s}});
        if (!retry) return;
        timer_->At(timer_->Now() + kErrorRetry,
                   [this, p, again = std::move(again)]() mutable {
                     ClearMarks(p, std::move(again));
                   });
      });
}

void Engine::StartCall(const PumpPtr& p, std::vector<Item> batch) {
  p->Held(mu_);
  std::vector<OutgoingMessage> messages;
  messages.reserve(batch.size());
  for (const Item& item : batch) {
    const Recipient& r = item.r;
    OutgoingMessage m;
    m.idempotency_key = absl::StrCat(p->campaign.id, ":", r.id);
    if (r.retries > 0) absl::StrAppend(&m.idempotency_key, ":", r.retries);
    m.account_id = p->campaign.account_id;
    m.campaign_id = p->campaign.id;
    m.recipient_id = r.id;
    m.channel = p->campaign.channel;
    m.sender_id = p->campaign.sender_id;
    m.address = r.address;
    m.text = item.message.text;
    if (m.channel == Channel::kEmail) {
      m.subject = item.message.subject;
      m.html = item.message.html;
    }
    m.variables = r.variables;
    if (!p->campaign.template_id.empty()) {
      m.template_name = p->campaign.template_name;
      m.template_language = p->campaign.template_lang;
    }
    m.components = item.message.components;
    messages.push_back(std::move(m));
  }
  p->in_flight += static_cast<int64_t>(batch.size());
  ++p->starting;
  Provider* provider = p->setup->provider;
  std::string provider_name = p->setup->provider_name;
  p->Unlock(mu_);
  provider->Send(std::move(messages),
                 [this, p, batch = std::move(batch), sent_at = absl::Now(),
                  provider_name = std::move(provider_name)](
                     std::vector<SendResult> results) mutable {
                   metrics_->ProviderCall(provider_name, absl::Now() - sent_at);
                   OnSent(p, std::move(batch), std::move(results));
                 });
  p->Lock(mu_);
  if (--p->starting > 0) return;
  std::vector<std::function<void()>> ready;
  ready.swap(p->on_quiet);
  if (p->in_flight == 0) {
    for (auto& fn : p->on_idle) {
      ready.push_back([fn = std::move(fn)]() mutable { fn(absl::OkStatus()); });
    }
    p->on_idle.clear();
  }
  if (stopped_) quiet_cv_.SignalAll();
  if (ready.empty()) return;
  p->Unlock(mu_);
  for (auto& fn : ready) fn();
  p->Lock(mu_);
}

void Engine::Refill(const PumpPtr& p) {
  p->Held(mu_);
  const Campaign c = p->campaign;
  const int64_t after = p->cursor;
  const std::optional<Lease> fence = p->lease;
  p->Unlock(mu_);
  absl::StatusOr<std::vector<Recipient>> leased = store_->LeaseRecipients(
      c, after, c.batch_size, fence ? &*fence : nullptr);
  if (errors::IsLeaseLost(leased.status())) {
    p->Lock(mu_);
    Disown(p, leased.status());
    return;
  }
  absl::StatusOr<std::vector<bool>> suppressed = std::vector<bool>();
  if (leased.ok() && !leased->empty()) {
    std::vector<std::string> addresses;
    addresses.reserve(leased->size());
    for (const Recipient& r : *leased) addresses.push_back(r.address);
    suppressed = store_->SuppressedAmong(c.account_id, c.channel, addresses);
  }
  if (!leased.ok() || !suppressed.ok()) {
    logging::Error(
        "leasing recipients failed",
        {{"campaign_id", c.id},
         {"retry_in", kErrorRetry},
         {"error", leased.ok() ? suppressed.status() : leased.status()}});
  }
  p->Lock(mu_);
  const absl::Time now = timer_->Now();
  if (!leased.ok() || !suppressed.ok()) {
    p->next_batch_at = now + kErrorRetry;
    return;
  }
  if (leased->empty()) {
    p->scan = p->scan == Pump::Scan::kRescanning ? Pump::Scan::kDrained
                                                 : Pump::Scan::kEnd;
    return;
  }
  p->scan = Pump::Scan::kAhead;
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
    if (expires && now + ClockOffset() > *expires) {
      settled.push_back(Expired(r.seq));
      continue;
    }
    if (r.in_doubt && p->setup->mark_handed) {
      // Handed over before a crash, outcome never recorded: it may have
      // gone out, and this provider would send it again.
      o.status = RecipientStatus::kFailed;
      o.error_code = "outcome_unknown";
      o.error_desc = absl::StrCat(
          "handed to provider \"", p->setup->provider_name,
          "\" before a restart with no recorded outcome; not sent again "
          "(RetryFailed sends it)");
      settled.push_back(std::move(o));
      continue;
    }
    RenderResult text = p->setup->text.Render(r.variables);
    if (!text.missing.empty()) {
      o.status = RecipientStatus::kSkipped;
      o.skip_reason = "missing_variable";
      o.error_desc = absl::StrCat("variable \"", text.missing, "\" is missing");
      settled.push_back(std::move(o));
      continue;
    }
    p->ready.push_back(Item{std::move(r), std::move(text)});
  }
  if (!settled.empty()) {
    p->in_flight += static_cast<int64_t>(settled.size());
    // Settled without a provider call (suppressed, missing variable,
    // expired, outcome unknown after a restart): skipped, not attempts.
    metrics_->Messages(p->setup->provider_name, c.channel,
                       MessageOutcome::kSkipped,
                       static_cast<int64_t>(settled.size()));
    p->Unlock(mu_);
    Record(p, std::move(settled));
    p->Lock(mu_);
  }
}

void Engine::OnSent(const PumpPtr& p, std::vector<Item> batch,
                    std::vector<SendResult> results) {
  std::vector<DispatchOutcome> outcomes;
  outcomes.reserve(batch.size());
  std::string state_change;       // provider state to report: "" none
  std::string unusable_provider;  // whose state it is
  bool usable_again = false;
  std::string provider_name;
  OutcomeTally tally;
  Channel channel;
  {
    MutexLock lock(&mu_);
    p->Held(mu_);
    provider_name = p->setup->provider_name;
    channel = p->campaign.channel;
    const absl::Time now = timer_->Now();
    for (size_t i = 0; i < batch.size(); ++i) {
      Item& item = batch[i];
      SendResult res =
          i < results.size()
              ? std::move(results[i])
              : SendResult{SendStatus::kTransient,
                           "",
                           "no_result",
                           "the provider gave no result for this message",
                           absl::ZeroDuration(),
                           /*suppress=*/"",
                           /*provider=*/"",
                           /*duplicate=*/false};
      MendProviderText(res);
      // Who answered: the sender's provider, or a fallback that took over.
      const bool by_fallback = !res.provider.empty();
      DispatchOutcome o;
      o.seq = item.r.seq;
      o.provider = by_fallback ? std::move(res.provider) : provider_name;
      // An unusable provider made no attempt: not counted (the message
      // is counted when it is sent after the resume).
      if (res.status != SendStatus::kUnusable) {
        tally.Add(o.provider, res.status == SendStatus::kAccepted
                                  ? (res.duplicate ? MessageOutcome::kDuplicate
                                                   : MessageOutcome::kAccepted)
                              : res.status == SendStatus::kPermanent
                                  ? MessageOutcome::kPermanent
                                  : MessageOutcome::kTransient);
      }
      const int attempt = item.r.attempts + 1;
      bool failed = false;
      switch (res.status) {
        case SendStatus::kAccepted:
          o.status = RecipientStatus::kSent;
          o.provider_message_id = std::move(res.provider_message_id);
          if (p->setup->reported_unusable && !by_fallback) {
            p->setup->reported_unusable = false;
            usable_again = true;
          }
          break;
        case SendStatus::kPermanent:
          o.status = RecipientStatus::kFailed;
          o.error_code = std::move(res.error_code);
          o.error_desc = std::move(res.error_desc);
          if (res.suppress == "opt_out" || res.suppress == "bounce") {
            o.suppress = res.suppress;
          }
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
        case SendStatus::kUnusable:
          // Not the recipient's failure: it waits, unattempted, for the
          // provider to be fixed and the campaign resumed.
          o.status = RecipientStatus::kQueued;
          o.attempted = false;
          o.error_code = "provider_unusable";
          o.error_desc = res.error_desc;
          if (p->auto_pause.empty()) {
            p->auto_pause = absl::StrCat("provider \"", o.provider,
                                         "\" is unusable: ", res.error_desc);
            state_change = res.error_desc;
            unusable_provider = o.provider;
            p->setup->reported_unusable = !by_fallback;
          }
          o.provider.clear();  // not attempted: the row keeps its own
          Halt(*p);
          p->retries.emplace(now, std::move(item));
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
    if (options_.error_threshold > 0 && p->auto_pause.empty() &&
        p->phase == Pump::Phase::kSending &&
        static_cast<int>(p->window.size()) >= options_.error_window &&
        p->window_failures >=
            options_.error_threshold * static_cast<double>(p->window.size())) {
      // No further batch starts; the pause is stored once these outcomes
      // are (OnRecorded).
      Halt(*p);
      p->auto_pause = absl::StrFormat(
          "auto-paused: %d of the last %d messages failed", p->window_failures,
          static_cast<int>(p->window.size()));
    }
  }
  tally.Report(metrics_, channel);
  if (options_.provider_state && (usable_again || !state_change.empty())) {
    if (!state_change.empty()) {
      logging::Error("provider unusable: its campaigns pause",
                     {{"provider", unusable_provider},
                      {"campaign_id", p->id},
                      {"error", state_change}});
      options_.provider_state(unusable_provider, state_change);
    } else {
      options_.provider_state(provider_name, "");
    }
  }
  Record(p, std::move(outcomes));
}

void Engine::Record(const PumpPtr& p, std::vector<DispatchOutcome> outcomes,
                    bool again) {
  const int64_t messages = static_cast<int64_t>(outcomes.size());
  // Kept until committed: if storage cannot write them, they are written
  // again later, never sent again.
  auto kept = std::make_shared<std::vector<DispatchOutcome>>(outcomes);
  store_->RecordOutcomes(
      p->account_id, p->id, std::move(outcomes),
      [this, p, messages, again, kept](absl::StatusOr<Campaign> c) {
        // Out again: no longer counted as such in the same critical section
        // that keeps them again or counts them recorded, so they are owed
        // throughout.
        const int64_t rerecorded = again ? messages : 0;
        if (!c.ok() && IsStorageFailure(c.status())) {
          StorageWait(p, c.status(), std::move(*kept), rerecorded);
          return;
        }
        OnRecorded(p, messages, std::move(c), rerecorded);
      });
}

void Engine::OnRecorded(const PumpPtr& p, int64_t messages,
                        absl::StatusOr<Campaign> c, int64_t rerecorded) {
  if (!c.ok() && c.status().code() == absl::StatusCode::kNotFound) {
    // Deleted while they were with the provider (paused, here or on
    // another instance, then deleted): nothing of it is sent again.
    logging::Warn(
        "outcomes not recorded: the campaign was deleted while these "
        "messages were with the provider (they may have gone out)",
        {{"campaign_id", p->id}, {"messages", messages}});
  } else if (!c.ok()) {
    // Not storage's failure (StorageWait keeps those): the request's.
    logging::Error(
        "recording outcomes failed: they stay queued and are sent again with "
        "the same keys",
        {{"campaign_id", p->id},
         {"messages", messages},
         {"error", c.status()}});
  }
  std::vector<std::function<void(absl::Status)>> idle;
  std::string pause_reason;
  {
    MutexLock lock(&mu_);
    p->Held(mu_);
    p->in_flight -= messages;
    p->rerecording -= rerecorded;
    const absl::Time now = timer_->Now();
    if (!c.ok()) {
      p->NeedRescan();
      p->next_batch_at = now + kErrorRetry;
    } else {
      p->campaign.stats = c->stats;
    }
    // Storage answered (a refusal of the request is no storage failure).
    if (StorageWrote(p)) {
      logging::Info("storage writes again: the campaign's storage pause ends",
                    {{"campaign_id", p->id}});
    }
    // What else failed meanwhile is written at once.
    if ((!p->unrecorded.empty() || !p->unstored_pause.empty()) && !stopped_) {
      ScheduleStep(p, now);
    }
    pause_reason.swap(p->auto_pause);
    if (p->in_flight == 0 && p->starting == 0 && !p->on_idle.empty()) {
      idle.swap(p->on_idle);
    } else if (p->phase == Pump::Phase::kSending && !stopped_) {
      ScheduleStep(p, now);
    }
  }
  if (c.ok()) Publish(*c);
  if (!pause_reason.empty()) {
    logging::Warn("campaign auto-paused",
                  {{"campaign_id", p->id}, {"reason", pause_reason}});
    StoreAutoPause(p, std::move(pause_reason));
  }
  for (auto& fn : idle) fn(absl::OkStatus());
}

void Engine::StoreAutoPause(const PumpPtr& p, std::string reason) {
  LifecycleChange change;
  change.event = CampaignEvent::kPause;
  change.now = DatabaseNow();
  change.reason = reason;
  Transition(p->account_id, p->id, std::move(change),
             [this, p, reason](absl::StatusOr<Campaign> c) {
               if (c.ok() || !IsStorageFailure(c.status())) {
                 // Stored, or moot (cancelled, paused by hand meanwhile).
                 return;
               }
               {
                 MutexLock lock(&mu_);
                 p->Held(mu_);
                 p->unstored_pause = reason;  // RetryStorage writes it
               }
               StorageWait(p, c.status(), {});
             });
}

void Engine::FinishDispatch(const PumpPtr& p) {
  LifecycleChange change;
  change.event = CampaignEvent::kAllDispatched;
  change.now = DatabaseNow();
  store_->TransitionCampaign(
      p->account_id, p->id, std::move(change),
      [this, p](absl::StatusOr<Campaign> c) {
        if (c.ok()) {
          Apply(*c);
          return;
        }
        const bool storage = IsStorageFailure(c.status());
        {
          // Something is queued after all (or the campaign left sending).
          MutexLock lock(&mu_);
          p->Held(mu_);
          if (p->phase != Pump::Phase::kFinishing || stopped_) return;
          p->phase = Pump::Phase::kSending;
          p->scan = Pump::Scan::kEnd;  // rescan from the start
          if (!storage) {
            ScheduleStep(p, timer_->Now() + kErrorRetry / 10);
            return;
          }
        }
        StorageWait(p, c.status(), {});
      });
}

void Engine::StorageWait(const PumpPtr& p, const absl::Status& error,
                         std::vector<DispatchOutcome> unrecorded,
                         int64_t rerecorded) {
  const int64_t n = static_cast<int64_t>(unrecorded.size());
  bool paused = false;  // the campaign is shown paused from now on
  bool first = false;   // the first failure since writes last succeeded
  bool stopped = false;
  int64_t lost = 0;
  Campaign shown;
  std::vector<std::function<void(absl::Status)>> refused;
  {
    MutexLock lock(&mu_);
    p->Held(mu_);
    p->rerecording -= rerecorded;
    first = p->storage_pause.empty() && !p->OutcomesOwed();
    for (DispatchOutcome& o : unrecorded) {
      p->unrecorded.push_back(std::move(o));
    }
    if (stopped_) {
      // Nothing tries again: a cancel waiting for them is answered now.
      stopped = true;
      lost = static_cast<int64_t>(p->unrecorded.size());
      refused.swap(p->on_idle);
    }
    switch (p->phase) {
      case Pump::Phase::kSettingUp:
      case Pump::Phase::kSending:
      case Pump::Phase::kFinishing:
      case Pump::Phase::kStorageWait:
        p->phase = Pump::Phase::kStorageWait;
        if (p->storage_pause.empty()) {
          p->storage_pause = absl::StrCat(kStoragePause, error.message());
          paused = true;
          shown = p->campaign;
        }
        break;
      case Pump::Phase::kHalted:
      case Pump::Phase::kUnowned:
        // Paused, cancelling, stopped or disowned: that stays; the
        // outcomes are recorded all the same.
        break;
    }
    if (!stopped_) ScheduleStep(p, timer_->Now() + kStorageRetry);
  }
  if (stopped) {
    logging::Error(
        "storage cannot write and campaignd is stopping: outcomes not "
        "recorded are lost to this run (after a restart these messages go "
        "out again under the same keys, or fail outcome_unknown if their "
        "provider does not de-duplicate)",
        {{"campaign_id", p->id}, {"messages", lost}, {"error", error}});
    for (auto& fn : refused) fn(NotCancelled());
    return;
  }
  // Once per wait, and at most 10 lines in 10 s over all campaigns.
  static logging::RateLimited limit(10, absl::Seconds(10));
  int64_t suppressed = 0;
  if (first && limit.Allow(&suppressed)) {
    logging::Error(
        "storage cannot write: the campaign waits, sending nothing, and "
        "tries again every 2 s; outcomes not recorded are kept",
        {{"campaign_id", p->id},
         {"unrecorded", n},
         {"retry_in", kStorageRetry},
         {"error", error},
         {"suppressed", suppressed}});
  }
  if (paused) Publish(shown);
}

bool Engine::StorageWrote(const PumpPtr& p) {
  p->Held(mu_);
  if (p->OutcomesOwed()) return false;
  const bool ended = !p->storage_pause.empty();
  p->storage_pause.clear();
  // However it came to wait (its own failed write, or a resume while
  // outcomes were owed), it sends on.
  if (p->phase == Pump::Phase::kStorageWait && !stopped_) Unhalt(p);
  return ended;
}

void Engine::RetryStorage(const PumpPtr& p) {
  p->Held(mu_);
  if (p->rerecording > 0) return;  // out already: its answer steps again
  if (!p->unrecorded.empty()) {
    std::vector<DispatchOutcome> again = std::move(p->unrecorded);
    p->unrecorded.clear();
    p->rerecording = static_cast<int64_t>(again.size());
    p->Unlock(mu_);
    Record(p, std::move(again), /*again=*/true);
    p->Lock(mu_);
    return;
  }
  if (!p->unstored_pause.empty()) {
    // An automatic pause whose write failed: the campaign stays halted.
    std::string reason;
    reason.swap(p->unstored_pause);
    p->Unlock(mu_);
    StoreAutoPause(p, std::move(reason));
    p->Lock(mu_);
    return;
  }
  if (p->phase != Pump::Phase::kStorageWait) return;
  // Nothing kept: the write that failed (a mark, the end of dispatch) is
  // tried again by sending on; the campaign shows paused until it works.
  GoOn(p);
}

void Engine::StorageWritable(bool writable) {
  if (!writable) return;  // each pump learns it from its own write
  MutexLock lock(&mu_);
  if (stopped_) return;
  for (const auto& [id, p] : pumps_) {
    p->Held(mu_);
    if (p->OutcomesOwed() || !p->unstored_pause.empty() ||
        p->phase == Pump::Phase::kStorageWait) {
      ScheduleStep(p, timer_->Now());
    }
  }
}

void Engine::Publish(Campaign c) {
  ShowUnstoredPause(&c);
  progress_.Publish(c, timer_->Now());
}

void Engine::ShowUnstoredPause(Campaign* c) {
  if (c->status != CampaignStatus::kSending) return;  // stored states win
  MutexLock lock(&mu_);
  auto it = pumps_.find(c->id);
  if (it == pumps_.end() || it->second->account_id != c->account_id) return;
  const Pump& p = *it->second;
  p.Held(mu_);
  if (!p.storage_pause.empty()) {
    c->status = CampaignStatus::kPaused;
    c->pause_reason = p.storage_pause;
  } else if (!p.unstored_pause.empty()) {
    c->status = CampaignStatus::kPaused;  // halted; stored once it can be
    c->pause_reason = p.unstored_pause;
  }
}

}  // namespace campaigns::dispatch
