// Simulator: a provider that sends nothing but behaves like one, the
// default for every channel until real adapters exist. Per channel it has a
// latency, transient and permanent failure rates, an accepted rate above
// which it throttles (transient, with a retry-after), and delivered and read
// rates and delays for the receipts it reports.
//
// Deterministic: each outcome is a hash of (seed, idempotency key, attempt),
// so a run repeats exactly whatever the timing. Message ids ("sim_" and 16
// hex digits) grow with time, like an SMSC's counter or Slack's timestamps:
// max(now in microseconds, previous + 1), unique across restarts. It
// de-duplicates on the idempotency key: a key it accepted before is
// answered with the same message id and is not delivered again (logged as
// "duplicate"), within a window of the last `remembered_keys` keys it
// accepted (as real receivers de-duplicate within a window), so its memory
// stays bounded however many messages it takes. Every
// attempt is logged (in memory when `keep_log`, and as JSON lines
// {"key","address","time","outcome","message_id"} to `log_path`); on
// creation the file's accepted keys are loaded back, so the simulator
// remembers them across a restart like a real provider would.
//
//   SimulatorOptions o;
//   o.channels[Channel::kSms].permanent_failure_rate = 0.01;
//   auto sim = Simulator::Create(o, &timer, receipt_sink);
//
// Thread-safe.
#ifndef CAMPAIGND_SERVER_DISPATCH_SIMULATOR_H_
#define CAMPAIGND_SERVER_DISPATCH_SIMULATOR_H_

#include <cstdint>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "server/dispatch/provider.h"
#include "server/dispatch/timer.h"
#include "server/domain/mutex.h"
#include "server/domain/token_bucket.h"

namespace campaigns::dispatch {

struct SimulatorChannel {
  absl::Duration latency = absl::ZeroDuration();
  double transient_failure_rate = 0;  // per attempt, 0..1
  double permanent_failure_rate = 0;  // per message, 0..1
  double accepted_rate = 0;           // msg/s accepted; 0 = no limit
  double delivered_rate = 1;          // of accepted messages, 0..1
  double read_rate = 0;               // of delivered messages, 0..1
  absl::Duration delivered_delay = absl::Seconds(1);
  absl::Duration read_delay = absl::Seconds(5);
};

struct SimulatorOptions {
  uint64_t seed = 1;
  // Settings of channels not in `channels`.
  SimulatorChannel defaults;
  std::map<Channel, SimulatorChannel> channels;
  std::string log_path;   // "" = no file
  bool keep_log = false;  // keep every attempt in memory (tests)
  // Accepted keys remembered for de-duplication, the most recent ones
  // (about 40 bytes each): a key older than these is accepted again.
  size_t remembered_keys = 100'000;
};

// Parses "key=value,key=value" settings (latency=50ms, transient=0.1,
// permanent=0.01, accepted_rate=100, delivered=0.9, read=0.5,
// delivered_delay=2s, read_delay=10s) into `out`; INVALID_ARGUMENT naming
// the key otherwise.
absl::Status ParseSimulatorChannel(absl::string_view spec,
                                   SimulatorChannel* out);

// Applies one --simulator setting, "CHANNEL:key=value,..." or
// "default:key=value,..." (a channel's settings start from the defaults as
// they are when it is first named); INVALID_ARGUMENT saying what is wrong.
absl::Status ApplySimulatorSpec(absl::string_view spec,
                                SimulatorOptions* options);

struct SimulatorLogEntry {
  std::string key;
  std::string address;
  absl::Time time;
  // accepted, duplicate, transient, throttled, permanent; and the receipts
  // it reported: delivered, read.
  std::string outcome;
  std::string message_id;
  std::string account_id;
  Channel channel = Channel::kUnspecified;
};

// Where the simulator reports its receipts, and what became of them
// (`answered`, may be null: Engine::IngestReceipts's answer). Receipts
// answered unmatched stay owed with a log: a restart reports them again, as
// a vendor retries a webhook (they may name a message whose outcome was not
// recorded yet, which the process held in memory only).
using SimulatorReceiptSink = std::function<void(
    const std::string& account_id, std::vector<ReceiptUpdate> receipts,
    Done<ReceiptResult> answered)>;

class Simulator final : public Provider {
 public:
  // `timer` (latency and receipt delays) must outlive the simulator;
  // `receipts` gets the receipts it reports (may be null).
  static absl::StatusOr<std::unique_ptr<Simulator>> Create(
      SimulatorOptions options, Timer* timer, SimulatorReceiptSink receipts);
  ~Simulator() override;

  void Send(std::vector<OutgoingMessage> batch, SendDone done) override;
  // A repeated key gets the first answer (the receiver de-duplicates on
  // webhook-id for the generic webhook).
  bool HonoursIdempotencyKeys() const override { return true; }

  // Every attempt so far (with keep_log).
  std::vector<SimulatorLogEntry> Log() const;

  // With a log: reports the receipts owed for messages accepted before a
  // restart and not reported yet (as a vendor would, after our downtime).
  // Call once the receipt sink can take them. Returns how many.
  int DeliverOwedReceipts();

 private:
  Simulator(SimulatorOptions options, Timer* timer,
            SimulatorReceiptSink receipts);
  const SimulatorChannel& Settings(Channel c) const;
  // A number in [0, 1) fixed by (seed, key, salt).
  double Draw(const std::string& key, uint64_t salt) const;

  const SimulatorOptions options_;
  Timer* const timer_;
  const SimulatorReceiptSink receipts_;
  mutable Mutex mu_;
  // Remembers that the key of hash `h` was accepted as message id number
  // `id`, forgetting the oldest key beyond options_.remembered_keys.
  void Remember(uint64_t h, uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The message id number of each remembered accepted key (by the key's
  // hash), and those hashes oldest first.
  absl::flat_hash_map<uint64_t, uint64_t> accepted_ ABSL_GUARDED_BY(mu_);
  std::deque<uint64_t> accepted_order_ ABSL_GUARDED_BY(mu_);
  // The last message id number handed out.
  uint64_t last_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::unordered_map<uint64_t, int> attempts_ ABSL_GUARDED_BY(mu_);
  std::map<Channel, TokenBucket> throttles_ ABSL_GUARDED_BY(mu_);
  std::vector<SimulatorLogEntry> log_ ABSL_GUARDED_BY(mu_);
  FILE* log_file_ ABSL_GUARDED_BY(mu_) = nullptr;
  // From the log at start: receipts owed, by account.
  std::map<std::string, std::vector<ReceiptUpdate>> owed_ ABSL_GUARDED_BY(mu_);
  // Hands receipts to the sink; logs them as reported once stored.
  void Report(const std::string& account, std::vector<ReceiptUpdate> receipts);
  // Appends a receipt-reported line (with a log file).
  void LogReceipts(const std::vector<ReceiptUpdate>& receipts,
                   const std::string& account);
};

}  // namespace campaigns::dispatch

#endif  // CAMPAIGND_SERVER_DISPATCH_SIMULATOR_H_
