// Simulator: a provider that sends nothing but behaves like one.
#include "server/dispatch/simulator.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/dispatch/held_receipts.h"
#include "server/domain/errors.h"

namespace campaigns::dispatch {
namespace {

// FNV-1a with a final mix: stable across runs and builds (absl::Hash is
// not), so outcomes and message ids repeat.
uint64_t StableHash(absl::string_view s, uint64_t salt) {
  uint64_t h = 1469598103934665603ULL ^ (salt * 0x9E3779B97F4A7C15ULL);
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

constexpr absl::string_view kIdPrefix = "sim_";

std::string MessageId(uint64_t number) {
  return absl::StrFormat("sim_%016x", number);
}

// The number of a message id MessageId made; 0 for anything else.
uint64_t IdNumber(absl::string_view id) {
  uint64_t n = 0;
  if (!absl::ConsumePrefix(&id, kIdPrefix) || id.size() != 16 ||
      !absl::SimpleHexAtoi(id, &n)) {
    return 0;
  }
  return n;
}

std::string LogLine(const SimulatorLogEntry& e) {
  nlohmann::json j = {{"key", e.key},
                      {"address", e.address},
                      {"time", absl::FormatTime(absl::RFC3339_full, e.time,
                                                absl::UTCTimeZone())},
                      {"outcome", e.outcome},
                      {"message_id", e.message_id},
                      {"account", e.account_id},
                      {"channel", std::string(ChannelName(e.channel))}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
         "\n";
}

absl::Status ParseRate(absl::string_view key, absl::string_view value,
                       double* out) {
  double v = 0;
  if (!absl::SimpleAtod(value, &v) || v < 0 || v > 1) {
    return errors::InvalidField(key, "must be a number between 0 and 1");
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status ParseDuration(absl::string_view key, absl::string_view value,
                           absl::Duration* out) {
  absl::Duration d;
  if (!absl::ParseDuration(value, &d) || d < absl::ZeroDuration()) {
    return errors::InvalidField(key, "must be a duration like 50ms or 2s");
  }
  *out = d;
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseSimulatorChannel(absl::string_view spec,
                                   SimulatorChannel* out) {
  for (absl::string_view part : absl::StrSplit(spec, ',', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(part, absl::MaxSplits('=', 1));
    const absl::string_view k = kv.first;
    const absl::string_view v = kv.second;
    if (k == "latency") {
      RETURN_IF_ERROR(ParseDuration(k, v, &out->latency));
    } else if (k == "transient") {
      RETURN_IF_ERROR(ParseRate(k, v, &out->transient_failure_rate));
    } else if (k == "permanent") {
      RETURN_IF_ERROR(ParseRate(k, v, &out->permanent_failure_rate));
    } else if (k == "delivered") {
      RETURN_IF_ERROR(ParseRate(k, v, &out->delivered_rate));
    } else if (k == "read") {
      RETURN_IF_ERROR(ParseRate(k, v, &out->read_rate));
    } else if (k == "delivered_delay") {
      RETURN_IF_ERROR(ParseDuration(k, v, &out->delivered_delay));
    } else if (k == "read_delay") {
      RETURN_IF_ERROR(ParseDuration(k, v, &out->read_delay));
    } else if (k == "accepted_rate") {
      double r = 0;
      if (!absl::SimpleAtod(v, &r) || r < 0) {
        return errors::InvalidField(k, "must be a non-negative number");
      }
      out->accepted_rate = r;
    } else {
      return errors::InvalidField(
          k,
          "is not a simulator setting (latency, transient, permanent, "
          "accepted_rate, delivered, read, delivered_delay, read_delay)");
    }
  }
  return absl::OkStatus();
}

absl::Status ApplySimulatorSpec(absl::string_view spec,
                                SimulatorOptions* options) {
  const size_t colon = spec.find(':');
  const absl::string_view name = spec.substr(0, colon);
  const absl::string_view settings =
      colon == absl::string_view::npos ? "" : spec.substr(colon + 1);
  SimulatorChannel* target = &options->defaults;
  if (name != "default") {
    Channel channel;
    if (!ParseChannel(name, &channel)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown channel \"", name, "\""));
    }
    target =
        &options->channels.emplace(channel, options->defaults).first->second;
  }
  return ParseSimulatorChannel(settings, target);
}

absl::StatusOr<std::unique_ptr<Simulator>> Simulator::Create(
    SimulatorOptions options, Timer* timer, SimulatorReceiptSink receipts) {
  std::unique_ptr<Simulator> sim(
      new Simulator(std::move(options), timer, std::move(receipts)));
  if (sim->options_.log_path.empty()) return sim;
  MutexLock lock(&sim->mu_);
  {
    std::ifstream in(sim->options_.log_path);
    std::string line;
    // What a vendor keeps across our restarts: the messages it accepted
    // (their ids), the attempts of keys it has not accepted yet, and the
    // receipts it still owes.
    struct Accepted {
      std::string key, account, message_id;
      Channel channel = Channel::kUnspecified;
      absl::Time time;
      bool delivered = false, read = false;
    };
    std::map<uint64_t, Accepted> accepted;  // by message id number
    while (std::getline(in, line)) {
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      // A line cut off by a crash is not an acceptance.
      if (j.is_discarded() || !j.is_object()) continue;
      const std::string key = j.value("key", "");
      const std::string outcome = j.value("outcome", "");
      const uint64_t h = StableHash(key, 0);
      const uint64_t id = IdNumber(j.value("message_id", ""));
      if (outcome == "accepted" && id != 0) {
        sim->Remember(h, id);
        sim->last_id_ = std::max(sim->last_id_, id);
        sim->attempts_.erase(h);
        Accepted& a = accepted[id];
        a.key = key;
        a.account = j.value("account", "");
        a.message_id = j.value("message_id", "");
        ParseChannel(j.value("channel", ""), &a.channel);
        absl::Time t;
        std::string err;
        a.time =
            absl::ParseTime(absl::RFC3339_full, j.value("time", ""), &t, &err)
                ? t
                : absl::Now();
      } else if ((outcome == "transient" || outcome == "throttled") &&
                 !sim->accepted_.contains(h)) {
        ++sim->attempts_[h];
      } else if (outcome == "permanent") {
        sim->attempts_.erase(h);
      } else if (outcome == "delivered" || outcome == "read") {
        auto it = accepted.find(id);
        if (it != accepted.end()) {
          (outcome == "delivered" ? it->second.delivered : it->second.read) =
              true;
        }
      }
    }
    for (const auto& [id, a] : accepted) {
      if (a.account.empty() || !sim->receipts_) continue;  // an old log
      const SimulatorChannel& s = sim->Settings(a.channel);
      if (sim->Draw(a.key, 2) >= s.delivered_rate) continue;
      ReceiptUpdate d;
      d.provider_message_id = a.message_id;
      d.status = RecipientStatus::kDelivered;
      d.occurred_at = a.time + s.latency + s.delivered_delay;
      if (!a.delivered) sim->owed_[a.account].push_back(d);
      if (!a.read && sim->Draw(a.key, 3) < s.read_rate) {
        d.status = RecipientStatus::kRead;
        d.occurred_at += s.read_delay;
        sim->owed_[a.account].push_back(d);
      }
    }
  }
  sim->log_file_ = std::fopen(sim->options_.log_path.c_str(), "a");
  if (sim->log_file_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot open the simulator log ", sim->options_.log_path));
  }
  return sim;
}

Simulator::Simulator(SimulatorOptions options, Timer* timer,
                     SimulatorReceiptSink receipts)
    : options_(std::move(options)),
      timer_(timer),
      receipts_(std::move(receipts)) {}

Simulator::~Simulator() {
  MutexLock lock(&mu_);
  if (log_file_ != nullptr) std::fclose(log_file_);
}

const SimulatorChannel& Simulator::Settings(Channel c) const {
  auto it = options_.channels.find(c);
  return it == options_.channels.end() ? options_.defaults : it->second;
}

double Simulator::Draw(const std::string& key, uint64_t salt) const {
  return static_cast<double>(StableHash(key, options_.seed * 1000003 + salt) >>
                             11) *
         0x1.0p-53;
}

void Simulator::Remember(uint64_t h, uint64_t id) {
  // A key still remembered keeps its first id and its place.
  if (!accepted_.try_emplace(h, id).second) return;
  accepted_order_.push_back(h);
  if (accepted_order_.size() > std::max<size_t>(1, options_.remembered_keys)) {
    accepted_.erase(accepted_order_.front());
    accepted_order_.pop_front();
  }
}

void Simulator::Send(std::vector<OutgoingMessage> batch, SendDone done) {
  if (batch.empty()) {
    done({});
    return;
  }
  const absl::Time now = timer_->Now();
  const SimulatorChannel& s = Settings(batch.front().channel);
  std::vector<SendResult> results(batch.size());
  // Receipts by account: delivered, then read.
  std::map<std::string, std::vector<ReceiptUpdate>> delivered, read;
  const absl::Time delivered_at = now + s.latency + s.delivered_delay;
  const absl::Time read_at = delivered_at + s.read_delay;
  {
    MutexLock lock(&mu_);
    std::string lines;
    for (size_t i = 0; i < batch.size(); ++i) {
      const OutgoingMessage& m = batch[i];
      SendResult& r = results[i];
      const uint64_t h = StableHash(m.idempotency_key, 0);
      SimulatorLogEntry e{m.idempotency_key, m.address, now, "", "",
                          m.account_id,      m.channel};
      // The receipts a vendor sends for an accepted message: again for a
      // duplicate, which answers with the first message's id (its status
      // callbacks are idempotent; the first ones may have found no id).
      auto owe_receipts = [&] {
        if (!receipts_ || Draw(m.idempotency_key, 2) >= s.delivered_rate) {
          return;
        }
        ReceiptUpdate d;
        d.provider_message_id = r.provider_message_id;
        d.status = RecipientStatus::kDelivered;
        d.occurred_at = delivered_at;
        if (Draw(m.idempotency_key, 3) < s.read_rate) {
          ReceiptUpdate rd = d;
          rd.status = RecipientStatus::kRead;
          rd.occurred_at = read_at;
          read[m.account_id].push_back(std::move(rd));
        }
        delivered[m.account_id].push_back(std::move(d));
      };
      if (auto known = accepted_.find(h); known != accepted_.end()) {
        r.provider_message_id = MessageId(known->second);
        r.duplicate = true;
        e.outcome = "duplicate";
        owe_receipts();
      } else {
        const int attempt = ++attempts_[h];
        if (s.accepted_rate > 0) {
          auto it = throttles_.find(m.channel);
          if (it == throttles_.end()) {
            const int64_t rate =
                std::max<int64_t>(1, static_cast<int64_t>(s.accepted_rate));
            it =
                throttles_
                    .emplace(m.channel, TokenBucket(s.accepted_rate, rate, now))
                    .first;
          }
          if (it->second.Take(now, 1) == 0) {
            r.status = SendStatus::kTransient;
            r.error_code = "throttled";
            r.error_desc = "simulated: above the accepted rate";
            r.retry_after = it->second.ReadyAt(now, 1) - now;
            e.outcome = "throttled";
          }
        }
        if (!e.outcome.empty()) {
          // throttled
        } else if (Draw(m.idempotency_key, 1) < s.permanent_failure_rate) {
          r.status = SendStatus::kPermanent;
          r.error_code = "rejected";
          r.error_desc = "simulated permanent failure";
          e.outcome = "permanent";
          attempts_.erase(h);
        } else if (Draw(m.idempotency_key, 100 + attempt) <
                   s.transient_failure_rate) {
          r.status = SendStatus::kTransient;
          r.error_code = "unavailable";
          r.error_desc = "simulated transient failure";
          e.outcome = "transient";
        } else {
          last_id_ = std::max<uint64_t>(
              last_id_ + 1,
              static_cast<uint64_t>(absl::ToUnixMicros(absl::Now())));
          Remember(h, last_id_);
          attempts_.erase(h);
          r.provider_message_id = MessageId(last_id_);
          e.outcome = "accepted";
          owe_receipts();
        }
      }
      e.message_id = r.provider_message_id;
      if (log_file_ != nullptr) lines += LogLine(e);
      if (options_.keep_log) log_.push_back(std::move(e));
    }
    // Written (to the kernel) before the answer: a crash after this cannot
    // lose an acceptance.
    if (log_file_ != nullptr && !lines.empty()) {
      std::fwrite(lines.data(), 1, lines.size(), log_file_);
      std::fflush(log_file_);
    }
  }
  // Receipts are scheduled only after `done` ran: the engine records the
  // acceptance (queues its write) inside `done`, so a receipt can never
  // overtake the message id it refers to.
  auto finish = [this, done = std::move(done), results = std::move(results),
                 delivered = std::move(delivered), read = std::move(read),
                 delivered_at, read_at]() mutable {
    done(std::move(results));
    if (!delivered.empty()) {
      timer_->At(delivered_at, [this, by = std::move(delivered)]() mutable {
        for (auto& [account, r] : by) Report(account, std::move(r));
      });
    }
    if (!read.empty()) {
      timer_->At(read_at, [this, by = std::move(read)]() mutable {
        for (auto& [account, r] : by) Report(account, std::move(r));
      });
    }
  };
  if (s.latency <= absl::ZeroDuration()) {
    finish();
    return;
  }
  timer_->At(now + s.latency, std::move(finish));
}

void Simulator::LogReceipts(const std::vector<ReceiptUpdate>& receipts,
                            const std::string& account) {
  MutexLock lock(&mu_);
  if (log_file_ == nullptr) return;
  std::string lines;
  for (ReceiptUpdate r : receipts) {
    SimulatorLogEntry e;
    e.time = r.occurred_at;
    e.outcome = r.status == RecipientStatus::kRead ? "read" : "delivered";
    e.message_id = r.provider_message_id;
    e.account_id = account;
    lines += LogLine(e);
  }
  std::fwrite(lines.data(), 1, lines.size(), log_file_);
  std::fflush(log_file_);
}

void Simulator::Report(const std::string& account,
                       std::vector<ReceiptUpdate> receipts) {
  // Logged as reported only once stored and matched: a crash in between
  // leaves them owed, and the next start reports them again (receipts are
  // idempotent).
  auto logged = std::make_shared<std::vector<ReceiptUpdate>>(receipts);
  receipts_(account, std::move(receipts),
            [this, account, logged](absl::StatusOr<ReceiptResult> answer) {
              if (answer.ok()) {
                // Unmatched ones stay owed.
                const std::vector<bool> owed =
                    UnmatchedOf(*logged, answer->unmatched_receipts);
                std::vector<ReceiptUpdate> matched;
                for (size_t i = 0; i < owed.size(); ++i) {
                  if (!owed[i]) matched.push_back(std::move((*logged)[i]));
                }
                LogReceipts(matched, account);
                return;
              }
              const absl::Status committed = answer.status();
              // As a vendor does: "not now" (storage cannot write) is sent
              // again after the delay asked for; any other refusal is final.
              if (committed.code() != absl::StatusCode::kUnavailable) return;
              const absl::Duration wait =
                  errors::RetryAfterOf(committed).value_or(absl::Seconds(2));
              timer_->At(timer_->Now() + wait,
                         [this, account, logged] { Report(account, *logged); });
            });
}

int Simulator::DeliverOwedReceipts() {
  std::map<std::string, std::vector<ReceiptUpdate>> owed;
  {
    MutexLock lock(&mu_);
    owed.swap(owed_);
  }
  int n = 0;
  for (auto& [account, receipts] : owed) {
    n += static_cast<int>(receipts.size());
    Report(account, std::move(receipts));
  }
  return n;
}

std::vector<SimulatorLogEntry> Simulator::Log() const {
  MutexLock lock(&mu_);
  return log_;
}

}  // namespace campaigns::dispatch
