// Engine: sends campaigns. One pump per sending campaign leases queued
// recipients in seq order (batch_size at a time, batch_delay between
// batches), renders each message, takes permits from the sender's token
// bucket (shared by every campaign of that sender) and hands the messages
// to the sender's provider; each outcome is recorded with the campaign's
// counters in one transaction. A recipient becomes sent only once the
// provider accepted it, and every attempt of a message carries the same
// idempotency key, so after a crash the engine simply sends what is still
// queued again.
//
// Every wait (next permit, batch delay, retry backoff, scheduled start,
// receipt timeout) is a Timer callback; no thread sleeps.
//
//   Engine engine(&store, &timer, providers, EngineOptions());
//   RETURN_IF_ERROR(engine.Recover());        // at start-up
//   engine.Start(account, "cmp_...", std::nullopt, done);
//   ...
//   engine.Stop();                            // before the timer stops
//
// Pause and cancel are exact: once their `done` runs, no provider call
// starts for the campaign, and calls already started keep their real
// outcome. Neither ever blocks a thread: a halted pump starts nothing, and
// their `done` waits (as a callback, not a thread) for calls that were being
// started at that moment to return from Provider::Send.
//
// Text a provider returns (message ids, error codes and descriptions) and
// the receipts that name it are stored as valid UTF-8 without NUL (mended,
// utf8.h), as storage and the API take text.
//
// Storage errors never lose or repeat a message. A failed lease is retried
// after a second. A dispatch write that fails because storage cannot write
// (the disk is full, I/O fails: the outcomes of a batch, the mark before a
// call, the end of dispatch) halts the pump and shows the campaign paused,
// with a pause_reason "storage cannot write: <error>", to GetCampaign,
// ListCampaigns (ShowUnstoredPause) and WatchCampaign. That pause is kept in
// memory only (storing it would be a write too) and never overrides a
// stored status: a user's pause, resume or cancel wins. Outcomes whose write
// failed are kept and written again first, every 2 s or at once when the
// database says it writes again (StorageWritable); nothing is handed to a
// provider meanwhile, so nothing a provider accepted goes out twice. The
// first write that succeeds ends the pause and the campaign sends on by
// itself. A failed lifecycle write is logged and retried by the next step.
//
// Several instances on one database (EngineOptions::leases): a campaign is
// sent by the instance holding its lease "campaign:<id>" only, acquired
// when its pump sets up; recipients are leased and marked under that lease
// (the store fences both with the lease's epoch and the campaign's status),
// and no provider call starts once the lease is not held on this process's
// clock (LeaseKeeper::Held). A pump whose lease another live instance holds,
// or that lost it, sends nothing (kUnowned) and forgets what it had leased.
// Every adopt_every the engine re-reads the campaigns that are sending,
// paused or scheduled: it takes over sending campaigns whose owner died
// (their lease expired), follows pauses and resumes made on other instances,
// and arms schedules made there. A campaign that leaves sending for good
// gives its lease up.
//
// Every instance arms a schedule's and a receipt timeout's alarm; they are
// due by the database's clock, not by the instance's: lifecycle changes are
// stamped with this clock moved by the offset to the database's that the
// lease keeper measures at each heartbeat (DatabaseNow), alarms are armed by
// it, and so is a validity period judged. An instance whose clock runs ahead
// of the others' therefore starts nothing early, and one whose clock runs
// behind does not make a start late (within half the heartbeat's read of
// the database's clock, at most 100 ms: LeaseKeeper). A
// schedule's alarm refused as early because the offset moved since it was
// armed is armed again.
//
// A sender's tier holds across instances: a campaign of a rate-limited
// sender is sent only by the instance that also holds the lease
// "sender:<snd_id>", so one token bucket paces all the sender's messages
// wherever they were started. A pump whose sender's lease another live
// instance holds gives its campaign's lease up, and that instance takes the
// campaign over at its next adoption scan. A bucket starts empty whenever
// the sender's lease is newly held here (its last holder may have sent a
// chunk just before), so the chunks of both stay capacity / rate apart and
// no one-second window sees more than the tier. The lease is given up once
// no campaign of the sender is sent here.
//
// A cancel on an instance when another live instance holds the campaign's
// lease stores the cancellation at once; the queued recipients are skipped
// under the lease, by its holder once the outcomes of its messages out are
// recorded (so that those keep their real outcome), or by any instance once
// the lease is free (FinishCancellation). It is answered with the stored
// cancellation (queued recipients still counted until the holder has
// skipped them). Pause and cancel made that way are not exact: the holder
// stops when it is told of the change (Changed), at its next lease of
// recipients or at its adoption scan, whichever comes first, and may hand
// over up to one chunk it had leased before.
//
// Changes made on other instances reach this one through Changed (the
// database's notifications, StorageEngine::Subscribe): the campaign is read
// again and followed as the adoption scan would, at once, and published to
// this instance's watchers, so WatchCampaign here follows a campaign another
// instance sends, to its final state.
//
// Thread-safe. Locks, in this order: mu_, then the lease keeper's inner
// lock (Held, ConfiguredElsewhere, DatabaseClockOffset are asked under
// mu_). The keeper's calls that wait for the database (Acquire, Release)
// are made without mu_, and the keeper calls LeaseLost, which takes mu_,
// with none of its locks held (lease_keeper.h).
#ifndef CAMPAIGND_SERVER_DISPATCH_ENGINE_H_
#define CAMPAIGND_SERVER_DISPATCH_ENGINE_H_

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "server/dispatch/held_receipts.h"
#include "server/dispatch/lease_keeper.h"
#include "server/dispatch/progress.h"
#include "server/dispatch/provider.h"
#include "server/dispatch/timer.h"
#include "server/domain/dispatch_store.h"
#include "server/domain/metrics.h"
#include "server/domain/mutex.h"
#include "server/domain/render.h"
#include "server/domain/token_bucket.h"

namespace campaigns::dispatch {

struct EngineOptions {
  // Provider calls per message before a transient failure becomes final.
  int max_attempts = 5;
  // Retry backoff: base * 2^(attempt-1), +-20 % jitter, at most max; a
  // provider's retry-after wins when longer.
  absl::Duration backoff_base = absl::Seconds(1);
  absl::Duration backoff_max = absl::Minutes(5);
  // A sent campaign completes this long after it finished dispatching even
  // if receipts are missing.
  absl::Duration receipt_timeout = absl::Hours(1);
  // Receipts naming a message id that matched no message are held and
  // tried again (held_receipts.h): their outcome may not be recorded yet.
  HeldReceiptsOptions held_receipts;
  // Auto-pause when at least this share of the last `error_window` final
  // outcomes are failures (0 disables).
  double error_threshold = 0.5;
  int error_window = 100;
  // Told when a provider refused its credentials (`unusable`: why) and
  // when it accepted a message again afterwards (`unusable` ""); may be
  // null. Called without the engine's lock, from any thread.
  std::function<void(const std::string& provider, const std::string& unusable)>
      provider_state;
  // Messages of one campaign handed to its provider (or settled without
  // one) whose outcomes are not recorded yet. A pump starts no new batch
  // (or rate chunk) while this many are out.
  int max_in_flight = 2000;
  // Told of messages, provider calls and receipts; null = none. Must
  // outlive the engine.
  Metrics* metrics = nullptr;
  // Where several instances share the database: this instance's leases
  // (see the class comment), whose on_lost must call LeaseLost. Null: this
  // instance owns every campaign (SQLite). Must outlive the engine.
  LeaseKeeper* leases = nullptr;
  // With `leases`: how often campaigns are re-read to take over those of a
  // dead instance and follow changes made on others (half the lease ttl:
  // a takeover within ttl + adopt_every of the owner's last heartbeat).
  absl::Duration adopt_every = absl::Seconds(5);
};

// The lease under which campaign `id` is sent.
std::string CampaignLease(const std::string& id);
// The lease under which the campaigns of a rate-limited sender (its tier)
// are sent, by its snd_ id.
std::string SenderLease(const std::string& sender_id);

// The provider that sends for a sender's `provider` name; null if none.
using ProviderLookup = std::function<Provider*(const std::string& provider)>;

class Engine {
 public:
  // `store` and `timer` must outlive the engine.
  Engine(DispatchStore* store, Timer* timer, ProviderLookup providers,
         EngineOptions options);
  ~Engine();

  // At start-up: resumes sending campaigns, re-arms scheduled starts and
  // receipt timeouts, finishes cancellations; with leases, starts the
  // adoption scan.
  absl::Status Recover();

  // The keeper's on_lost: the work of `resource` stops here (a campaign's
  // pump sends nothing more until it holds the lease again; a sender's, no
  // pump of its campaigns does). Any thread.
  void LeaseLost(const std::string& resource) ABSL_LOCKS_EXCLUDED(mu_);
  // What a lifecycle change is stamped with and judged by: the database's
  // clock, as well as this instance knows it (the timer's, moved by the
  // lease keeper's last measure of the difference). Any thread.
  absl::Time DatabaseNow();

  // StartCampaign / ConfirmCampaign (`send_at`: the new schedule).
  void Start(const std::string& account_id, const std::string& id,
             std::optional<absl::Time> send_at, Done<Campaign> done);
  void Pause(const std::string& account_id, const std::string& id,
             std::string reason, Done<Campaign> done);
  void Resume(const std::string& account_id, const std::string& id,
              Done<Campaign> done);
  // Stops the pump, lets messages already with the provider be recorded,
  // then cancels (queued recipients become skipped). With leases, see the
  // class comment.
  void Cancel(const std::string& account_id, const std::string& id,
              Done<Campaign> done);
  // Runs `fn` once no message of campaign `id` (of `account_id`) is with
  // the provider here while its pump is halted (paused): at once if none
  // is, or it is not halted (a sending campaign is refused by whatever
  // `fn` does); else when their outcomes are recorded. An error instead if
  // the engine stops with outcomes it cannot record. DeleteCampaign comes
  // after it, so those outcomes (and their cost) are not lost.
  void WhenCallsRecorded(const std::string& account_id, const std::string& id,
                         std::function<void(absl::Status)> fn)
      ABSL_LOCKS_EXCLUDED(mu_);
  void RetryFailed(const std::string& account_id, const std::string& id,
                   std::vector<std::string> error_codes,
                   Done<RetryResult> done);
  // Receipts from DeliveryService or a provider; completes campaigns whose
  // last awaited receipt arrived. Those naming a message id that matched
  // nothing are answered as unmatched and held, then applied once their
  // message's outcome is recorded (held_receipts.h). UNAVAILABLE with a
  // retry delay, nothing applied, when storage cannot write them, or while
  // outcomes of the account's messages are kept unrecorded after a failed
  // write (a receipt for one of them would match nothing yet): the sender
  // sends them again.
  void IngestReceipts(const std::string& account_id,
                      std::vector<ReceiptUpdate> receipts,
                      Done<ReceiptResult> done);

  // Receipts a provider's webhook brought (matched by provider and
  // provider message id, in any account); refused as IngestReceipts's are,
  // while outcomes of that provider's messages are kept unrecorded.
  void IngestProviderReceipts(const std::string& provider,
                              std::vector<ReceiptUpdate> receipts,
                              Done<ReceiptResult> done);
  // Receipts held because they matched no message yet (held_receipts.h).
  size_t held_receipts() const { return held_.size(); }

  // A campaign created (perhaps started) or updated (e.g. a new
  // schedule_at) outside the engine: pumps and timers follow it.
  void Updated(const Campaign& c) { Apply(c); }

  // With leases: campaign `id` changed in storage, perhaps on another
  // instance. It is read again (off the caller's thread) and followed: a
  // status this instance's pump does not have yet is applied (a pause,
  // resume or cancel made elsewhere stops or restarts the pump at once; a
  // start or schedule made elsewhere is taken up), and the campaign is
  // published to watchers here unless this instance sends it (it publishes
  // its own progress). One read per campaign at a time, and at most one
  // every 100 ms: calls meanwhile make one more read after it, so the last
  // read is of the last change.
  // Without leases it does nothing. Any thread; never blocks.
  void Changed(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  // With leases: changes may have been missed (the notifications' listener
  // connected again): every campaign with a pump, a cancellation being
  // finished or a watcher here is read again (Changed).
  void Resync() ABSL_LOCKS_EXCLUDED(mu_);

  // Told by the database when its writes start failing or succeed again
  // (DatabaseOptions::on_writable): pumps waiting for storage try again at
  // once rather than at their next 2 s retry. Any thread; never blocks.
  void StorageWritable(bool writable) ABSL_LOCKS_EXCLUDED(mu_);

  // `c` (as read from the store) as readers should see it: a sending
  // campaign whose pump waits for storage to write shows as paused with
  // the storage error as its pause_reason.
  void ShowUnstoredPause(Campaign* c) ABSL_LOCKS_EXCLUDED(mu_);

  // Live progress of campaigns (WatchCampaign).
  ProgressHub& progress() { return progress_; }

  // Stops every pump: no provider call starts afterwards. Waits for calls
  // being started right now to return from Provider::Send, so call it from
  // a thread of its own (shutdown), never from a timer or storage callback.
  // A cancel still waiting for outcomes that storage could not record is
  // answered UNAVAILABLE (not cancelled); those outcomes are logged as lost
  // to this run (after a restart they are sent again under the same keys,
  // or fail outcome_unknown for providers that do not de-duplicate).
  // Idempotent.
  void Stop();

 private:
  struct Pump;
  struct Setup;  // what a pump looked up before it sends
  struct Item;   // a leased recipient with its rendered message
  using PumpPtr = std::shared_ptr<Pump>;

  // Runs after every transition the store committed: brings the pump and
  // timers in line with the campaign's new status, publishes progress.
  void Apply(const Campaign& c) ABSL_LOCKS_EXCLUDED(mu_);
  // Apply without the publishing.
  void ApplyLocked(const Campaign& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // With leases: whether campaign `id` was applied after generation
  // `read_at` (applies_ when a read of it began).
  bool AppliedSince(const std::string& id, uint64_t read_at)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Creates or restarts the pump of a sending campaign.
  void EnsurePump(const Campaign& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stops `p` from starting provider calls. Never waits: calls being
  // started right now finish on their own thread (see WhenQuiet).
  void Halt(Pump& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Halt, and puts batches marked but not started back (unmarked): a
  // halted pump holds no durable mark it will not act on. May drop the lock
  // meanwhile; returns with it held.
  void HaltAndRelease(const PumpPtr& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Puts a halted pump of a sending campaign back to work.
  void Unhalt(const PumpPtr& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets a pump that may send to work now: sending when it is set up (and,
  // with leases, holds its lease), else setting up.
  void GoOn(const PumpPtr& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // With leases: whether `p` holds its campaign's lease now (and its
  // sender's, for a rate-limited sender).
  bool Owns(const Pump& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a pump of sender `sender_id` here needs its sender's lease: it
  // is sending or setting up, with a rate-limited sender.
  bool SenderNeeded(const std::string& sender_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Gives up (off the lock) the sender leases no pump here needs, so that
  // another instance may send that sender's campaigns.
  void ReleaseUnusedSenders() ABSL_LOCKS_EXCLUDED(mu_);
  // `p` lost its lease (or its campaign stopped sending elsewhere): halted
  // as HaltAndRelease, kUnowned, and what it leased is forgotten (the next
  // owner may send it); calls out keep their real outcome. May drop the
  // lock meanwhile; returns with it held.
  void Disown(const PumpPtr& p, const absl::Status& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Gives up the lease of campaign `id` (its sending ended here), off the
  // caller's thread, unless a pump here holds it again or sends it by
  // then. With mu_ held or not.
  void ReleaseLease(const std::string& id);
  // Gives it up now (a round trip to the database; another instance may
  // take it at once); a failure is logged, the lease then expires by itself.
  void ReleaseNow(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  // Changed's read of campaign `id`; another one follows (kChangeReadEvery
  // after this one began) if one was asked for meanwhile.
  void ReadChanged(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  // Follows `c`, campaign `id` as read from generation `read_at` on (its
  // error: NOT_FOUND when deleted); sets `*publish` to what watchers here
  // should see, and `*await` when its receipts are awaited here now.
  void FollowChange(const std::string& id, const absl::StatusOr<Campaign>& c,
                    uint64_t read_at, std::optional<Campaign>* publish,
                    bool* await) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Campaign `p` sends, read from generation `read_at` on, is no longer
  // sending (sent, cancelled, failed or deleted elsewhere): `p` sends
  // nothing more and, once nothing of it is out, goes with its lease. May
  // drop the lock meanwhile; returns with it held.
  void Forget(const PumpPtr& p, uint64_t read_at)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a campaign in `status` waits for a resume or its schedule
  // (paused, scheduled).
  static bool Waits(CampaignStatus status);
  // With leases: LetGo once nothing of `p` (paused or scheduled) is out.
  void LetGoWhenIdle(const PumpPtr& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // With leases, `p` paused or scheduled and idle (no call out, being
  // started or marked, no outcome owed): `p` goes with its lease, so that
  // another instance sees that nothing of the campaign is out (a delete
  // there waits for that) and whichever instance resumes it may send it.
  // Otherwise nothing: the adoption scan asks again.
  void LetGo(const PumpPtr& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The generation up to which applied_ may be forgotten: no read of a
  // campaign that is still to be followed began before it.
  uint64_t OldestRead(uint64_t scan_read_at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The adoption scan (EngineOptions::adopt_every) and its next run.
  void Adopt() ABSL_LOCKS_EXCLUDED(mu_);
  void ScheduleAdoption();
  // Runs `fn` (without the lock) once no provider call of `p` is being
  // started: now (dropping the lock meanwhile; returns with it held), or
  // when the last such call returns. `p` may be null.
  void WhenQuiet(const PumpPtr& p, std::function<void()> fn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Asks for one step of `p` at `when` (or earlier, if one is asked for
  // already): one alarm per pump, one step running at a time.
  void ScheduleStep(const PumpPtr& p, absl::Time when)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The alarm of a step asked for at `at`; stale alarms do nothing.
  void OnAlarm(const PumpPtr& p, absl::Time at) ABSL_LOCKS_EXCLUDED(mu_);
  // The named steps. Each is called with the lock held and returns with it
  // held, drops it around storage and provider calls and re-checks the
  // pump's phase when it takes it back.
  //   SetUp:    looks up the sender, template and provider (kSettingUp).
  //   Dispatch: hands batches to the provider within rate, window and
  //             batch delay; ends in FinishDispatch once nothing is left.
  //   Refill:   leases the next recipients (the lock dropped around the
  //             reads) and settles what needs no provider (missing
  //             variables, suppressed, expired).
  void SetUp(const PumpPtr& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Dispatch(const PumpPtr& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Refill(const PumpPtr& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Hands `batch` to the provider with the lock dropped; runs what waited
  // for the pump to be quiet when the last call being started returns.
  // Returns with the lock held.
  void StartCall(const PumpPtr& p, std::vector<Item> batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // For a provider that does not de-duplicate: marks `batch` durably; once
  // the mark commits, the pump's next step starts the call (halted
  // meanwhile: the batch goes back, unmarked). Drops the lock meanwhile;
  // returns with it held.
  void MarkThenCall(const PumpPtr& p, std::vector<Item> batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Puts a batch that was not sent back at the front of `p`'s queue and
  // (when its mark was `stored`) clears its mark. May drop the lock
  // meanwhile; returns with it held.
  void Unmark(const PumpPtr& p, std::vector<Item> batch, bool stored)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Clears the marks of `seqs` (Pump::unmarking counts it until it
  // commits; a failed write is tried again every kErrorRetry until then or
  // until Stop).
  void ClearMarks(const PumpPtr& p, std::vector<int64_t> seqs)
      ABSL_LOCKS_EXCLUDED(mu_);
  void OnSent(const PumpPtr& p, std::vector<Item> batch,
              std::vector<SendResult> results) ABSL_LOCKS_EXCLUDED(mu_);
  // Writes outcomes of messages counted in `p`'s in_flight; `again`: they
  // are `p`'s unrecorded ones, out again (counted in `rerecording`). If
  // storage cannot write them they are kept (StorageWait).
  void Record(const PumpPtr& p, std::vector<DispatchOutcome> outcomes,
              bool again = false) ABSL_LOCKS_EXCLUDED(mu_);
  // `rerecorded`: of `messages`, those that were out again (Record).
  void OnRecorded(const PumpPtr& p, int64_t messages,
                  absl::StatusOr<Campaign> c, int64_t rerecorded = 0)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Stores an automatic pause of `p` (its pump is halted already); if
  // storage cannot write it, it is kept and written again (RetryStorage).
  void StoreAutoPause(const PumpPtr& p, std::string reason)
      ABSL_LOCKS_EXCLUDED(mu_);
  void FinishDispatch(const PumpPtr& p) ABSL_LOCKS_EXCLUDED(mu_);
  // A dispatch write of `p` failed with `error`, a storage failure: keeps
  // `unrecorded` (still counted in in_flight) to write again, and a pump
  // that was sending waits (kStorageWait) with the campaign shown paused.
  // Logged once per wait. The retry is a step 2 s later. After Stop
  // nothing retries: a cancel waiting for them is answered UNAVAILABLE.
  // `rerecorded`: of `unrecorded`, those that were out again (Record).
  void StorageWait(const PumpPtr& p, const absl::Status& error,
                   std::vector<DispatchOutcome> unrecorded,
                   int64_t rerecorded = 0) ABSL_LOCKS_EXCLUDED(mu_);
  // Storage answered a write of `p`: with nothing left to record, a
  // waiting pump sends on, and its storage pause ends (true: publish it).
  bool StorageWrote(const PumpPtr& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The storage step: writes `p`'s unrecorded outcomes again (whatever the
  // phase: a paused or cancelling campaign's outcomes are recorded too),
  // then an automatic pause that could not be stored; with neither left,
  // lets a waiting pump try its failed write again.
  void RetryStorage(const PumpPtr& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // progress_.Publish of `c` as readers should see it (ShowUnstoredPause).
  void Publish(Campaign c) ABSL_LOCKS_EXCLUDED(mu_);
  // UNAVAILABLE (with a retry delay) while outcomes of a campaign of
  // `account_id`, or of messages of `provider`, are kept unrecorded (""
  // matches no account or provider).
  absl::Status ReceiptsWait(absl::string_view account_id,
                            absl::string_view provider)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Publishes and completes the campaigns receipts changed, and holds
  // those that matched no message. (For the receipts of `account_id` or of
  // `provider`.)
  void AfterReceipts(const std::string& account_id, const std::string& provider,
                     absl::StatusOr<ReceiptResult> r, Done<ReceiptResult> done)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Counts what receipts did (not those unmatched: CountUnmatched), and
  // publishes and completes the campaigns they changed.
  void ReceiptsApplied(const ReceiptResult& r) ABSL_LOCKS_EXCLUDED(mu_);
  // Receipts that matched no message for good: counted, and logged at most
  // once a minute.
  void CountUnmatched(int64_t n);
  // The alarm of held_'s retries (held_receipts.h): applies what is held
  // again, keeps what still matches nothing, and arms the next.
  void RetryHeldReceipts() ABSL_LOCKS_EXCLUDED(mu_);
  void WantHeldRetry(absl::Time at);
  // With leases, a cancel when another instance holds the campaign's lease
  // (or the database cannot say): stored with skip_queued false.
  void CancelElsewhere(const std::string& account_id, const std::string& id,
                       Done<Campaign> done) ABSL_LOCKS_EXCLUDED(mu_);
  // Cancel on the instance that sends the campaign (or on the only one).
  void CancelHere(const std::string& account_id, const std::string& id,
                  Done<Campaign> done) ABSL_LOCKS_EXCLUDED(mu_);
  // With leases: cancelled campaign `c` still counts queued recipients.
  // They are skipped under its lease, once this instance's messages of it
  // out are recorded (SkipCancelledHere), unless another live instance
  // holds the lease (it does so itself). One at a time per campaign.
  void FinishCancellation(const Campaign& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SkipCancelledHere(const std::string& account_id, const std::string& id)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Ends campaign `id`'s FinishCancellation: its waiting cancels are
  // answered with `skipped`, or else with the stored cancellation.
  void EndCancellation(const std::string& id, absl::StatusOr<Campaign> skipped)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Runs a store transition and Apply()s its result before `done`.
  void Transition(const std::string& account_id, const std::string& id,
                  LifecycleChange change, Done<Campaign> done);
  // One alarm per campaign and schedule_at, however often it is asked for.
  void ArmSchedule(const Campaign& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The alarm of `c`'s schedule `at`: starts it (or fails it, too late).
  // Refused as not due yet (this clock's offset to the database's moved
  // since it was armed), armed again; failed for storage, tried again
  // kStorageRetry later.
  void FireSchedule(const std::string& account_id, const std::string& id,
                    absl::Time at) ABSL_LOCKS_EXCLUDED(mu_);
  // Runs `fn` on the timer at `at` on the database's clock.
  void AtDatabaseTime(absl::Time at, std::function<void()> fn);
  // The database's clock minus the timer's (LeaseKeeper); zero without
  // leases (one instance: its clock is the only one).
  absl::Duration ClockOffset();
  // ArmReceiptTimeout for each of `sent` (campaigns in sent status), once
  // their providers say whether they send receipts (storage reads).
  void AwaitReceipts(const std::vector<Campaign>& sent)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Completes `c` once its receipts are in or the receipt timeout passed;
  // at once when its provider sends no receipts (`receipts` false). One
  // alarm per campaign: an earlier one armed already stands.
  void ArmReceiptTimeout(const Campaign& c, bool receipts = true)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Permits for the messages `p` may hand over now: a whole chunk of every
  // bucket it is under (spent within one step), or a batch when it has no
  // rate limit; 0 and `*ready_at` when none.
  int64_t TakePermits(Pump& p, absl::Time now, absl::Time* ready_at)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration Backoff(const Recipient& r, int attempt) const;
  // The messages `p` hands over at once: its batch size, or for a
  // rate-limited campaign a tenth of a second's worth (the buckets'
  // capacity), in provider calls of at most batch size each.
  int64_t ChunkSize(const Pump& p) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  DispatchStore* const store_;
  Timer* const timer_;
  LeaseKeeper* const leases_;
  const ProviderLookup providers_;
  const EngineOptions options_;
  Metrics* const metrics_;
  // Unmatched receipts not logged yet (logged at most once a minute).
  std::atomic<int64_t> unmatched_receipts_{0};
  HeldReceipts held_;
  ProgressHub progress_;

  // Guards the fields below and every Pump's (Pump::mu is this mutex).
  Mutex mu_;
  CondVar quiet_cv_;  // after Stop: some pump's calls started
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, PumpPtr> pumps_ ABSL_GUARDED_BY(mu_);  // by id
  // Sender buckets by the sender's snd_ id.
  std::map<std::string, TokenBucket> senders_ ABSL_GUARDED_BY(mu_);
  // With leases: the sender leases held here, by snd_ id (Owns compares
  // their epochs with the keeper's).
  std::map<std::string, Lease> sender_leases_ ABSL_GUARDED_BY(mu_);
  // Schedule alarms armed, by campaign id: when (one alarm per schedule,
  // however often the adoption scan sees it).
  std::map<std::string, absl::Time> schedules_ ABSL_GUARDED_BY(mu_);
  // Receipt timeouts armed, by campaign id: when.
  std::map<std::string, absl::Time> receipt_timeouts_ ABSL_GUARDED_BY(mu_);
  // Campaign leases being released (ReleaseLease): not acquired meanwhile.
  std::set<std::string> releasing_ ABSL_GUARDED_BY(mu_);
  // With leases: Apply()s so far, and the last one's by campaign id (kept
  // until no read that began before it is in progress: the adoption scan's,
  // Changed's), so that a state read before an Apply does not set the
  // campaign back.
  uint64_t applies_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, uint64_t> applied_ ABSL_GUARDED_BY(mu_);
  // With leases: Changed's reads asked for, by campaign id: the generation
  // (applies_) when the current (or last) read began, and whether another
  // is asked for.
  struct ChangeRead {
    uint64_t read_at = 0;
    bool again = false;
  };
  std::map<std::string, ChangeRead> changes_ ABSL_GUARDED_BY(mu_);
  // With leases: FinishCancellation in progress, by campaign id: the stored
  // cancellation, and cancels waiting for its end.
  struct Finishing {
    Campaign cancelled;
    std::vector<Done<Campaign>> waiters;
  };
  std::map<std::string, Finishing> finishing_ ABSL_GUARDED_BY(mu_);
};

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_ENGINE_H_
