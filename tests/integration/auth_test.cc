// Authentication: Bearer and x-api-key accepted; missing, unknown and revoked
// keys refused alike, on implemented and not-yet-implemented RPCs.
#include "tests/integration/fixture.h"

namespace campaigns::testing {
namespace {

using AuthTest = ServerTest;

TEST_F(AuthTest, BearerAndXApiKeyBothAccepted) {
  v1::Account account;
  EXPECT_TRUE(accounts_->GetAccount(Ctx(kAdminKey).get(), {}, &account).ok());
  EXPECT_TRUE(account.admin());

  grpc::ClientContext ctx;
  ctx.AddMetadata("x-api-key", kAdminKey);
  EXPECT_TRUE(accounts_->GetAccount(&ctx, {}, &account).ok());

  grpc::ClientContext lower;
  lower.AddMetadata("authorization", std::string("bearer ") + kAdminKey);
  EXPECT_TRUE(accounts_->GetAccount(&lower, {}, &account).ok());
}

TEST_F(AuthTest, MissingUnknownAndRevokedKeysGetTheSameAnswer) {
  // A second key that we then revoke.
  v1::CreateApiKeyRequest create;
  create.set_name("temp");
  v1::ApiKey key;
  ASSERT_TRUE(accounts_->CreateApiKey(Ctx(kAdminKey).get(), create, &key).ok());
  ASSERT_FALSE(key.secret().empty());
  v1::Account account;
  ASSERT_TRUE(
      accounts_->GetAccount(Ctx(key.secret()).get(), {}, &account).ok());
  v1::RevokeApiKeyRequest revoke;
  revoke.set_id(key.id());
  v1::ApiKey revoked;
  ASSERT_TRUE(
      accounts_->RevokeApiKey(Ctx(kAdminKey).get(), revoke, &revoked).ok());
  EXPECT_TRUE(revoked.revoked());

  std::vector<std::string> messages;
  for (const std::string& k :
       {std::string(), std::string("ck_unknown"), key.secret()}) {
    grpc::Status s = accounts_->GetAccount(Ctx(k).get(), {}, &account);
    ErrorDetails d = Details(s);
    EXPECT_EQ(d.code, grpc::StatusCode::UNAUTHENTICATED) << k;
    EXPECT_EQ(d.reason, "UNAUTHORIZED");
    EXPECT_EQ(d.domain, "campaigns.v1");
    messages.push_back(d.message);
  }
  EXPECT_EQ(messages[0], messages[1]);
  EXPECT_EQ(messages[1], messages[2]);

  // Malformed authorization headers are refused too.
  for (const char* header : {"Basic abc", "Bearer", "Bearer   "}) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", header);
    EXPECT_EQ(accounts_->GetAccount(&ctx, {}, &account).error_code(),
              grpc::StatusCode::UNAUTHENTICATED)
        << header;
  }
}

TEST_F(AuthTest, RevokedKeyRefusedAtOnceEvenOnItsOwnNextCall) {
  v1::CreateApiKeyRequest create;
  v1::ApiKey key;
  ASSERT_TRUE(accounts_->CreateApiKey(Ctx(kAdminKey).get(), create, &key).ok());
  v1::RevokeApiKeyRequest revoke;
  revoke.set_id(key.id());
  v1::ApiKey out;
  // A key may revoke itself; its very next call is refused.
  ASSERT_TRUE(
      accounts_->RevokeApiKey(Ctx(key.secret()).get(), revoke, &out).ok());
  EXPECT_EQ(accounts_->RevokeApiKey(Ctx(key.secret()).get(), revoke, &out)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(AuthTest, KeyInUseRefusedOnTheCallAfterAnotherKeyRevokesIt) {
  v1::CreateApiKeyRequest create;
  create.set_name("busy");
  v1::ApiKey key;
  ASSERT_TRUE(accounts_->CreateApiKey(Ctx(kAdminKey).get(), create, &key).ok());
  // Used again and again first (the server remembers keys that worked).
  v1::Account account;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(
        accounts_->GetAccount(Ctx(key.secret()).get(), {}, &account).ok());
  }
  v1::RevokeApiKeyRequest revoke;
  revoke.set_id(key.id());
  v1::ApiKey out;
  ASSERT_TRUE(accounts_->RevokeApiKey(Ctx(kAdminKey).get(), revoke, &out).ok());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(accounts_->GetAccount(Ctx(key.secret()).get(), {}, &account)
                  .error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  // The revoking key itself still works.
  EXPECT_TRUE(accounts_->GetAccount(Ctx(kAdminKey).get(), {}, &account).ok());
}

TEST_F(AuthTest, LifecycleAndStreamingRpcsRequireAKey) {
  v1::Campaign c;
  v1::StartCampaignRequest start;
  start.set_id("cmp_x");
  EXPECT_EQ(campaigns_->StartCampaign(Ctx("").get(), start, &c).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto ctx = Ctx("");
  v1::ImportRecipientsResponse resp;
  auto writer = campaigns_->ImportRecipients(ctx.get(), &resp);
  writer->WritesDone();
  EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(AuthTest, KeysAreListedWithoutSecrets) {
  v1::ListApiKeysResponse list;
  ASSERT_TRUE(accounts_->ListApiKeys(Ctx(kAdminKey).get(), {}, &list).ok());
  ASSERT_EQ(list.items_size(), 1);
  EXPECT_TRUE(list.items(0).secret().empty());
  EXPECT_EQ(list.items(0).prefix(), std::string(kAdminKey).substr(0, 8));
}

TEST_F(AuthTest, AdminOnlyRpcsRefuseOtherAccounts) {
  const std::string key = NewAccount("tenant");
  v1::CreateAccountRequest req;
  req.set_name("sneaky");
  v1::Account account;
  ErrorDetails d =
      Details(accounts_->CreateAccount(Ctx(key).get(), req, &account));
  EXPECT_EQ(d.code, grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(d.reason, "PERMISSION_DENIED");

  v1::CreateTemplateRequest t;
  t.set_name("mine");
  t.set_language("en");
  t.set_channel(v1::sms);
  t.set_body("hi");
  v1::Template tmpl;
  ASSERT_TRUE(templates_->CreateTemplate(Ctx(key).get(), t, &tmpl).ok());
  EXPECT_EQ(tmpl.status(), v1::Template::pending);
  v1::SetTemplateStatusRequest approve;
  approve.set_id(tmpl.id());
  approve.set_status(v1::Template::approved);
  EXPECT_EQ(templates_->SetTemplateStatus(Ctx(key).get(), approve, &tmpl)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(AuthTest, NewAccountsKeySecretIsShownOnceAndWorks) {
  v1::CreateAccountRequest req;
  req.set_name("acme");
  req.set_request_id("acct-1");
  v1::Account account;
  ASSERT_TRUE(
      accounts_->CreateAccount(Ctx(kAdminKey).get(), req, &account).ok());
  EXPECT_EQ(account.currency(), "EUR");
  EXPECT_EQ(account.credit_unit(), "micro");
  const std::string secret = account.api_key().secret();
  ASSERT_FALSE(secret.empty());
  v1::Account self;
  ASSERT_TRUE(accounts_->GetAccount(Ctx(secret).get(), {}, &self).ok());
  EXPECT_EQ(self.id(), account.id());
  EXPECT_FALSE(self.admin());
  EXPECT_TRUE(self.api_key().secret().empty());

  // The same request again: the same account, no second secret.
  v1::Account again;
  ASSERT_TRUE(accounts_->CreateAccount(Ctx(kAdminKey).get(), req, &again).ok());
  EXPECT_EQ(again.id(), account.id());
  EXPECT_TRUE(again.api_key().secret().empty());
}

}  // namespace
}  // namespace campaigns::testing
