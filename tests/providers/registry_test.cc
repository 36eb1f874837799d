// The provider registry: the built-in simulator, configured providers with
// and without an adapter, states, and lookups from several threads.
#include "server/dispatch/providers/registry.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace campaigns::dispatch {
namespace {

class NullProvider : public Provider {
 public:
  void Send(std::vector<OutgoingMessage> batch, SendDone done) override {
    done(std::vector<SendResult>(batch.size()));
  }
};

config::ProviderConfig Config(const std::string& name,
                              const std::string& type) {
  config::ProviderConfig c;
  c.name = name;
  c.type = type;
  c.channels = config::ChannelsOfType(type);
  return c;
}

TEST(RegistryTest, SimulatorAlwaysThereAndFirst) {
  NullProvider sim;
  auto r = ProviderRegistry::Create(&sim, {}, {}, ProviderEnv());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->Lookup("simulator"), &sim);
  std::vector<ProviderInfo> all = (*r)->List();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].name, "simulator");
  EXPECT_EQ(all[0].type, "simulator");
  EXPECT_EQ(all[0].channels.size(), 6u);
  EXPECT_EQ(all[0].state, ProviderState::kOk);
  EXPECT_EQ((*r)->Lookup("nope"), nullptr);
  EXPECT_FALSE((*r)->Find("nope").has_value());
}

TEST(RegistryTest, TypeWithoutAdapterIsUnusable) {
  NullProvider sim;
  auto r = ProviderRegistry::Create(
      &sim, {Config("meta", "whatsapp_cloud"), Config("mail", "smtp")}, {},
      ProviderEnv());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->Lookup("meta"), nullptr);
  std::optional<ProviderInfo> meta = (*r)->Find("meta");
  ASSERT_TRUE(meta.has_value());
  EXPECT_EQ(meta->type, "whatsapp_cloud");
  EXPECT_EQ(meta->state, ProviderState::kUnusable);
  EXPECT_EQ(meta->reason,
            "type \"whatsapp_cloud\" is not available in this build");
  EXPECT_TRUE(meta->Serves(Channel::kWhatsapp));
  EXPECT_FALSE(meta->Serves(Channel::kSms));
  std::vector<ProviderInfo> all = (*r)->List();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[1].name, "meta");
  EXPECT_EQ(all[2].name, "mail");
}

TEST(RegistryTest, FactoryBuildsAdapterAndMaySetItsState) {
  NullProvider sim;
  config::ProviderConfig seen;
  ProviderFactories factories = {
      {"webhook",
       [&seen](const config::ProviderConfig& c, const ProviderEnv& env)
           -> absl::StatusOr<std::unique_ptr<Provider>> {
         seen = c;
         EXPECT_NE(env.registry, nullptr);
         if (c.name == "down") {
           EXPECT_TRUE(env.registry
                           ->SetState(c.name, ProviderState::kUnusable,
                                      "credentials refused")
                           .ok());
         }
         return std::make_unique<NullProvider>();
       }}};
  auto r = ProviderRegistry::Create(
      &sim, {Config("hooks", "webhook"), Config("down", "webhook")}, factories,
      ProviderEnv());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(seen.name, "down");
  EXPECT_NE((*r)->Lookup("hooks"), nullptr);
  EXPECT_EQ((*r)->Find("hooks")->state, ProviderState::kOk);
  // An unusable adapter still answers lookups: it decides what a send does.
  EXPECT_NE((*r)->Lookup("down"), nullptr);
  EXPECT_EQ((*r)->Find("down")->state, ProviderState::kUnusable);
  EXPECT_EQ((*r)->Find("down")->reason, "credentials refused");
  // A vendor's own error text as the reason is served as valid UTF-8.
  ASSERT_TRUE((*r)->SetState("down", ProviderState::kUnusable,
                             std::string("refused \xff\0!", 11))
                  .ok());
  EXPECT_EQ((*r)->Find("down")->reason, "refused \xEF\xBF\xBD!");
  ASSERT_TRUE((*r)->SetState("down", ProviderState::kOk, "").ok());
  EXPECT_EQ((*r)->Find("down")->state, ProviderState::kOk);
  EXPECT_EQ((*r)->SetState("ghost", ProviderState::kOk, "").code(),
            absl::StatusCode::kNotFound);
}

TEST(RegistryTest, FactoryErrorStopsCreateNamingTheProvider) {
  ProviderFactories factories = {
      {"slack",
       [](const config::ProviderConfig&,
          const ProviderEnv&) -> absl::StatusOr<std::unique_ptr<Provider>> {
         return absl::InvalidArgumentError("base_url: unreachable");
       }}};
  auto r = ProviderRegistry::Create(nullptr, {Config("s", "slack")}, factories,
                                    ProviderEnv());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "provider \"s\": base_url: unreachable");
}

TEST(RegistryTest, RepeatedNameRefused) {
  auto r = ProviderRegistry::Create(
      nullptr, {Config("a", "slack"), Config("a", "slack")}, {}, ProviderEnv());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  auto sim = ProviderRegistry::Create(nullptr, {Config("simulator", "slack")},
                                      {}, ProviderEnv());
  EXPECT_EQ(sim.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RegistryTest, ConcurrentStateChangesAndReads) {
  NullProvider sim;
  auto r =
      ProviderRegistry::Create(&sim, {Config("s", "slack")}, {}, ProviderEnv());
  ASSERT_TRUE(r.ok());
  ProviderRegistry* reg = r->get();
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; i < 2000; ++i) {
      ASSERT_TRUE(
          reg->SetState("s",
                        i % 2 ? ProviderState::kOk : ProviderState::kUnusable,
                        i % 2 ? "" : "flapping")
              .ok());
    }
    stop = true;
  });
  while (!stop) {
    for (const ProviderInfo& p : reg->List()) {
      if (p.state == ProviderState::kOk) {
        EXPECT_TRUE(p.reason.empty());
      }
    }
    EXPECT_EQ(reg->Lookup("simulator"), &sim);
  }
  writer.join();
}

}  // namespace
}  // namespace campaigns::dispatch
