// Failover: a provider with a fallback behind its circuit breaker — where
// each message goes, what the registry shows, and that every message is
// answered once and sent once.
#include "server/dispatch/providers/failover.h"

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "server/dispatch/providers/registry.h"
#include "tests/dispatch/fake_timer.h"

namespace campaigns::dispatch {
namespace {

// Answers each message with the status it is told to (accepted by
// default) and counts what it was handed, by idempotency key.
class ScriptedProvider : public Provider {
 public:
  explicit ScriptedProvider(std::string prefix) : prefix_(std::move(prefix)) {}

  void Send(std::vector<OutgoingMessage> batch, SendDone done) override {
    std::vector<SendResult> results;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const OutgoingMessage& m : batch) {
        ++sent_[m.idempotency_key];
        SendResult r;
        r.status = status_;
        if (status_ == SendStatus::kAccepted) {
          r.provider_message_id = prefix_ + m.idempotency_key;
        } else {
          r.error_code = status_ == SendStatus::kTransient ? "503" : "401";
          r.error_desc = status_ == SendStatus::kUnusable
                             ? "credentials refused (HTTP 401)"
                             : "unavailable";
        }
        results.push_back(std::move(r));
      }
    }
    done(std::move(results));
  }
  bool HonoursIdempotencyKeys() const override { return idempotent_; }

  void Answer(SendStatus s) {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = s;
  }
  std::map<std::string, int> sent() {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_;
  }
  int total() {
    int n = 0;
    for (const auto& [key, count] : sent()) n += count;
    return n;
  }
  bool idempotent_ = false;

 private:
  const std::string prefix_;
  std::mutex mu_;
  SendStatus status_ = SendStatus::kAccepted;
  std::map<std::string, int> sent_;
};

class FailoverTest : public ::testing::Test {
 protected:
  // primary -> backup (-> last when `chain`), all scripted.
  void Build(int failures = 3, bool chain = false,
             const std::string& backup_type = "webhook") {
    std::vector<config::ProviderConfig> configs;
    auto add = [&](const std::string& name, const std::string& fallback,
                   const std::string& type = "webhook") {
      config::ProviderConfig c;
      c.name = name;
      c.type = type;
      c.channels = config::ChannelsOfType(type);
      c.fallback = fallback;
      c.circuit_failures = failures;
      c.circuit_probe = absl::Seconds(30);
      configs.push_back(c);
    };
    add("primary", "backup");
    add("backup", chain ? "last" : "", backup_type);
    if (chain) add("last", "");
    ProviderFactory scripted =
        [this](
            const config::ProviderConfig& c,
            const ProviderEnv&) -> absl::StatusOr<std::unique_ptr<Provider>> {
      auto p = std::make_unique<ScriptedProvider>(c.name + ":");
      scripted_[c.name] = p.get();
      return p;
    };
    ProviderFactories factories = {{"webhook", scripted}, {"smtp", scripted}};
    ProviderEnv env;
    env.timer = &timer_;
    auto r = ProviderRegistry::Create(nullptr, configs, factories, env);
    ASSERT_TRUE(r.ok()) << r.status();
    registry_ = *std::move(r);
  }

  // Sends `n` messages through "primary"; returns their results.
  std::vector<SendResult> Send(int n, Channel channel = Channel::kSms) {
    std::vector<OutgoingMessage> batch(n);
    for (int i = 0; i < n; ++i) {
      batch[i].idempotency_key = absl::StrCat("k", next_++);
      batch[i].channel = channel;
    }
    std::vector<SendResult> out;
    int calls = 0;
    registry_->Lookup("primary")->Send(std::move(batch),
                                       [&](std::vector<SendResult> r) {
                                         ++calls;
                                         out = std::move(r);
                                       });
    EXPECT_EQ(calls, 1);  // the scripted providers answer inline
    EXPECT_EQ(out.size(), static_cast<size_t>(n));
    return out;
  }

  ProviderInfo Info(const std::string& name) {
    std::optional<ProviderInfo> i = registry_->Find(name);
    EXPECT_TRUE(i.has_value());
    return i.value_or(ProviderInfo());
  }

  testing::FakeTimer timer_;
  std::map<std::string, ScriptedProvider*> scripted_;
  std::unique_ptr<ProviderRegistry> registry_;
  int next_ = 0;
};

TEST_F(FailoverTest, ClosedCircuitSendsThroughTheProviderItself) {
  Build();
  for (const SendResult& r : Send(5)) {
    EXPECT_EQ(r.status, SendStatus::kAccepted);
    EXPECT_EQ(r.provider, "");  // the one the engine called
    EXPECT_EQ(r.provider_message_id.rfind("primary:", 0), 0u);
  }
  EXPECT_EQ(scripted_["backup"]->total(), 0);
  EXPECT_EQ(Info("primary").state, ProviderState::kOk);
  EXPECT_EQ(Info("primary").fallback, "backup");
  EXPECT_EQ(Info("backup").fallback, "");
}

TEST_F(FailoverTest, TransientFailuresInARowOpenTheCircuit) {
  Build(/*failures=*/3);
  scripted_["primary"]->Answer(SendStatus::kTransient);
  // Transient answers go back to the engine (a timeout may have been
  // delivered): nothing is resent behind its back.
  for (const SendResult& r : Send(2)) {
    EXPECT_EQ(r.status, SendStatus::kTransient);
    EXPECT_EQ(r.provider, "");
  }
  EXPECT_EQ(Info("primary").state, ProviderState::kOk);
  Send(1);  // the third in a row
  ProviderInfo info = Info("primary");
  EXPECT_EQ(info.state, ProviderState::kCircuitOpen);
  EXPECT_NE(info.reason.find("3 transient failures in a row"),
            std::string::npos)
      << info.reason;
  EXPECT_NE(info.reason.find("\"backup\""), std::string::npos) << info.reason;
  // Open: the fallback takes everything, and says so.
  for (const SendResult& r : Send(4)) {
    EXPECT_EQ(r.status, SendStatus::kAccepted);
    EXPECT_EQ(r.provider, "backup");
    EXPECT_EQ(r.provider_message_id.rfind("backup:", 0), 0u);
  }
  EXPECT_EQ(scripted_["primary"]->total(), 3);
  EXPECT_EQ(scripted_["backup"]->total(), 4);
}

TEST_F(FailoverTest, AnAnswerBetweenFailuresResetsTheCount) {
  Build(/*failures=*/3);
  scripted_["primary"]->Answer(SendStatus::kTransient);
  Send(2);
  scripted_["primary"]->Answer(SendStatus::kPermanent);  // it is up
  Send(1);
  scripted_["primary"]->Answer(SendStatus::kTransient);
  Send(2);
  EXPECT_EQ(Info("primary").state, ProviderState::kOk);
}

TEST_F(FailoverTest, ProbeRisksOneMessageAndClosesTheCircuitWhenItIsTaken) {
  Build(/*failures=*/1);
  scripted_["primary"]->Answer(SendStatus::kTransient);
  Send(1);
  ASSERT_EQ(Info("primary").state, ProviderState::kCircuitOpen);
  timer_.Advance(absl::Seconds(29));
  Send(3);  // not yet: all to the fallback
  EXPECT_EQ(scripted_["primary"]->total(), 1);

  timer_.Advance(absl::Seconds(1));
  // The probe fails: one message tried on the provider, the rest sure.
  std::vector<SendResult> r = Send(3);
  EXPECT_EQ(r[0].status, SendStatus::kTransient);
  EXPECT_EQ(r[0].provider, "");
  EXPECT_EQ(r[1].provider, "backup");
  EXPECT_EQ(r[2].provider, "backup");
  EXPECT_EQ(scripted_["primary"]->total(), 2);
  EXPECT_EQ(Info("primary").state, ProviderState::kCircuitOpen);
  Send(2);  // the next probe is circuit_probe later
  EXPECT_EQ(scripted_["primary"]->total(), 2);

  timer_.Advance(absl::Seconds(30));
  scripted_["primary"]->Answer(SendStatus::kAccepted);
  r = Send(2);
  EXPECT_EQ(r[0].provider, "");
  EXPECT_EQ(r[1].provider, "backup");
  EXPECT_EQ(Info("primary").state, ProviderState::kOk);
  EXPECT_EQ(Info("primary").reason, "");
  for (const SendResult& s : Send(3)) EXPECT_EQ(s.provider, "");
  EXPECT_EQ(scripted_["primary"]->total(), 6);
}

TEST_F(FailoverTest, UnusableProviderHandsItsMessagesOverAtOnce) {
  Build();
  scripted_["primary"]->Answer(SendStatus::kUnusable);
  // Not sent by the provider: the fallback sends them now, and the engine
  // never sees `unusable` (the campaign does not pause).
  for (const SendResult& r : Send(3)) {
    EXPECT_EQ(r.status, SendStatus::kAccepted);
    EXPECT_EQ(r.provider, "backup");
  }
  ProviderInfo info = Info("primary");
  EXPECT_EQ(info.state, ProviderState::kUnusable);
  EXPECT_NE(info.reason.find("credentials refused"), std::string::npos);
  Send(2);
  EXPECT_EQ(scripted_["primary"]->total(), 3);
  // Fixed, and probed again.
  scripted_["primary"]->Answer(SendStatus::kAccepted);
  timer_.Advance(absl::Seconds(30));
  Send(1);
  EXPECT_EQ(Info("primary").state, ProviderState::kOk);
  // Every message went out exactly once: the primary took only the probe
  // (its unusable answers sent nothing), the backup the rest.
  EXPECT_EQ(scripted_["backup"]->sent(),
            (std::map<std::string, int>{
                {"k0", 1}, {"k1", 1}, {"k2", 1}, {"k3", 1}, {"k4", 1}}));
  EXPECT_EQ(scripted_["primary"]->sent().count("k5"), 1u);
}

TEST_F(FailoverTest, MessagesTheFallbackCannotSendStayWithTheProvider) {
  Build(/*failures=*/1, /*chain=*/false, /*backup_type=*/"smtp");
  scripted_["primary"]->Answer(SendStatus::kUnusable);
  for (const SendResult& r : Send(2, Channel::kSms)) {
    EXPECT_EQ(r.status, SendStatus::kUnusable);  // the engine pauses
    EXPECT_EQ(r.provider, "");
  }
  for (const SendResult& r : Send(2, Channel::kEmail)) {
    EXPECT_EQ(r.status, SendStatus::kAccepted);
    EXPECT_EQ(r.provider, "backup");
  }
  // A mixed batch while unusable: each message its own way, in order.
  std::vector<OutgoingMessage> batch(3);
  batch[0].channel = Channel::kEmail;
  batch[1].channel = Channel::kSms;
  batch[2].channel = Channel::kEmail;
  std::vector<SendResult> out;
  registry_->Lookup("primary")->Send(
      std::move(batch), [&](std::vector<SendResult> r) { out = std::move(r); });
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].provider, "backup");
  EXPECT_EQ(out[1].provider, "");
  EXPECT_EQ(out[1].status, SendStatus::kUnusable);
  EXPECT_EQ(out[2].provider, "backup");
  EXPECT_EQ(scripted_["backup"]->total(), 4);
}

TEST_F(FailoverTest, BothUnusableIsReportedAsTheFallbacks) {
  Build();
  scripted_["primary"]->Answer(SendStatus::kUnusable);
  scripted_["backup"]->Answer(SendStatus::kUnusable);
  for (const SendResult& r : Send(2)) {
    EXPECT_EQ(r.status, SendStatus::kUnusable);
    EXPECT_EQ(r.provider, "backup");  // whose credentials to fix
  }
}

TEST_F(FailoverTest, AChainNamesTheProviderThatTookTheMessage) {
  Build(/*failures=*/1, /*chain=*/true);
  scripted_["backup"]->Answer(SendStatus::kUnusable);
  scripted_["primary"]->Answer(SendStatus::kUnusable);
  for (const SendResult& r : Send(2)) {
    EXPECT_EQ(r.status, SendStatus::kAccepted);
    EXPECT_EQ(r.provider, "last");
  }
  EXPECT_EQ(scripted_["last"]->total(), 2);
}

TEST_F(FailoverTest, OptOutsAtAFallbackConcernWhoSendsThroughIt) {
  Build(/*failures=*/1, /*chain=*/true);
  EXPECT_EQ(registry_->SendingThrough("last"),
            (std::vector<std::string>{"last", "primary", "backup"}));
  EXPECT_EQ(registry_->SendingThrough("backup"),
            (std::vector<std::string>{"backup", "primary"}));
  EXPECT_EQ(registry_->SendingThrough("primary"),
            (std::vector<std::string>{"primary"}));
}

TEST_F(FailoverTest, MarksWhenEitherEndDoesNotDeduplicate) {
  Build();
  Provider* p = registry_->Lookup("primary");
  EXPECT_FALSE(p->HonoursIdempotencyKeys());
  scripted_["primary"]->idempotent_ = true;
  EXPECT_FALSE(p->HonoursIdempotencyKeys());
  scripted_["backup"]->idempotent_ = true;
  EXPECT_TRUE(p->HonoursIdempotencyKeys());
}

TEST_F(FailoverTest, ManyThreadsEveryMessageAnsweredOnce) {
  Build(/*failures=*/5);
  std::atomic<int> answered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        if (t == 0 && i == 10) {
          scripted_["primary"]->Answer(SendStatus::kUnusable);
        }
        std::vector<OutgoingMessage> batch(3);
        for (int k = 0; k < 3; ++k) {
          batch[k].idempotency_key = absl::StrCat("t", t, "-", i, "-", k);
          batch[k].channel = Channel::kSms;
        }
        registry_->Lookup("primary")->Send(
            std::move(batch), [&](std::vector<SendResult> r) {
              for (const SendResult& s : r) {
                EXPECT_EQ(s.status, SendStatus::kAccepted);
                ++answered;
              }
            });
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(answered.load(), 600);
  // Accepted exactly once each: by the backup, or by the primary before it
  // became unusable (whose unusable answers were handed over).
  std::map<std::string, int> accepted = scripted_["backup"]->sent();
  EXPECT_EQ(static_cast<int>(accepted.size()), scripted_["backup"]->total());
}

}  // namespace
}  // namespace campaigns::dispatch
