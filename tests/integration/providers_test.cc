// ListProviders and RegisterSender's provider checks against a server with
// configured providers: one whose type has no adapter in this build, one
// built by a test factory.
#include <algorithm>

#include "tests/integration/fixture.h"

namespace campaigns::testing {
namespace {

class NullProvider : public dispatch::Provider {
 public:
  void Send(std::vector<dispatch::OutgoingMessage> batch,
            dispatch::SendDone done) override {
    done(std::vector<dispatch::SendResult>(batch.size()));
  }
};

config::ProviderConfig Provider(const std::string& name,
                                const std::string& type) {
  config::ProviderConfig c;
  c.name = name;
  c.type = type;
  c.channels = config::ChannelsOfType(type);
  c.secrets["bot_token"] = config::Secret("env:T", "secret-token-value");
  return c;
}

class ProvidersTest : public ServerTest {
 protected:
  void Configure(ServerOptions& options) override {
    options.providers = {Provider("meta", "whatsapp_cloud"),
                         Provider("hooks", "webhook"),
                         Provider("mail", "smtp")};
    // The smtp adapter needs its required keys (it connects on send only).
    options.providers[2].settings = {{"url", "smtp://127.0.0.1:1"},
                                     {"from", "news@example.com"},
                                     {"starttls", "never"}};
    options.provider_factories["webhook"] = [](const config::ProviderConfig&,
                                               const dispatch::ProviderEnv&)
        -> absl::StatusOr<std::unique_ptr<dispatch::Provider>> {
      return std::make_unique<NullProvider>();
    };
  }

  v1::ListProvidersResponse List(const std::string& key) {
    v1::ListProvidersResponse out;
    grpc::Status s = senders_->ListProviders(Ctx(key).get(),
                                             v1::ListProvidersRequest(), &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }
};

TEST_F(ProvidersTest, ListsSimulatorAndConfiguredProviders) {
  v1::ListProvidersResponse got = List(kAdminKey);
  ASSERT_EQ(got.providers_size(), 4);
  const v1::Provider& sim = got.providers(0);
  EXPECT_EQ(sim.name(), "simulator");
  EXPECT_EQ(sim.type(), "simulator");
  EXPECT_EQ(sim.channels_size(), 6);
  EXPECT_EQ(sim.state(), "ok");
  EXPECT_EQ(sim.reason(), "");
  const v1::Provider& meta = got.providers(1);
  EXPECT_EQ(meta.name(), "meta");
  EXPECT_EQ(meta.type(), "whatsapp_cloud");
  ASSERT_EQ(meta.channels_size(), 1);
  EXPECT_EQ(meta.channels(0), v1::whatsapp);
  EXPECT_EQ(meta.state(), "ok");
  EXPECT_EQ(meta.reason(), "");
  const v1::Provider& hooks = got.providers(2);
  EXPECT_EQ(hooks.name(), "hooks");
  EXPECT_EQ(hooks.state(), "ok");
  EXPECT_EQ(hooks.channels_size(), 6);
  // (A type without an adapter is listed unusable: registry_test.)
  const v1::Provider& mail = got.providers(3);
  EXPECT_EQ(mail.name(), "mail");
  EXPECT_EQ(mail.state(), "ok");
  EXPECT_EQ(mail.reason(), "");
  EXPECT_EQ(got.DebugString().find("secret-token-value"), std::string::npos);

  // Any authenticated key, not only the admin's; no key is refused.
  EXPECT_EQ(List(NewAccount("tenant")).providers_size(), 4);
  v1::ListProvidersResponse out;
  EXPECT_EQ(
      senders_->ListProviders(Ctx("").get(), v1::ListProvidersRequest(), &out)
          .error_code(),
      grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(ProvidersTest, StateChangesShowInTheList) {
  ASSERT_TRUE(server_->providers()
                  ->SetState("hooks", dispatch::ProviderState::kUnusable,
                             "credentials refused (HTTP 401)")
                  .ok());
  v1::ListProvidersResponse got = List(kAdminKey);
  ASSERT_EQ(got.providers_size(), 4);
  EXPECT_EQ(got.providers(2).state(), "unusable");
  EXPECT_EQ(got.providers(2).reason(), "credentials refused (HTTP 401)");
}

TEST_F(ProvidersTest, RegisterSenderChecksTheProvider) {
  struct Case {
    std::string name;
    v1::Channel channel;
    std::string provider;
    grpc::StatusCode code;
    std::string reason;
  } cases[] = {
      {"not configured", v1::sms, "carrier-pigeon",
       grpc::StatusCode::FAILED_PRECONDITION, "VALIDATION_ERROR"},
      {"named like a type only", v1::whatsapp, "whatsapp_cloud",
       grpc::StatusCode::FAILED_PRECONDITION, "VALIDATION_ERROR"},
      {"wrong channel for its type", v1::sms, "meta",
       grpc::StatusCode::FAILED_PRECONDITION, "VALIDATION_ERROR"},
  };
  int n = 0;
  for (const Case& c : cases) {
    v1::RegisterSenderRequest req;
    req.set_sender_id("+1555000" + std::to_string(n++));
    req.set_channel(c.channel);
    req.set_provider(c.provider);
    v1::Sender out;
    ErrorDetails d =
        Details(senders_->RegisterSender(Ctx(kAdminKey).get(), req, &out));
    EXPECT_EQ(d.code, c.code) << c.name;
    EXPECT_EQ(d.reason, c.reason) << c.name;
    EXPECT_EQ(d.fields, std::vector<std::string>{"provider"}) << c.name;
  }
  // Configured and of the right channel: accepted, even while unusable.
  v1::RegisterSenderRequest ok;
  ok.set_sender_id("+15550100");
  ok.set_channel(v1::whatsapp);
  ok.set_provider("meta");
  v1::Sender sender;
  ASSERT_TRUE(senders_->RegisterSender(Ctx(kAdminKey).get(), ok, &sender).ok());
  EXPECT_EQ(sender.provider(), "meta");
  ok.set_sender_id("+15550101");
  ok.set_channel(v1::sms);
  ok.set_provider("hooks");
  ASSERT_TRUE(senders_->RegisterSender(Ctx(kAdminKey).get(), ok, &sender).ok());
  ok.clear_provider();  // the default
  ok.set_sender_id("+15550102");
  ASSERT_TRUE(senders_->RegisterSender(Ctx(kAdminKey).get(), ok, &sender).ok());
  EXPECT_EQ(sender.provider(), "simulator");
}

}  // namespace
}  // namespace campaigns::testing
