#include <SQLiteCpp/Database.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/error_info.pb.h"
#include "google/rpc/status.pb.h"
#include "storage/postgres/connection.h"
#include "tests/integration/fixture.h"
#include "tests/support/pg_fixture.h"

namespace campaigns::testing {

ErrorDetails Details(const grpc::Status& status) {
  ErrorDetails d;
  d.code = status.error_code();
  d.message = status.error_message();
  google::rpc::Status rpc;
  if (!rpc.ParseFromString(status.error_details())) return d;
  for (const google::protobuf::Any& any : rpc.details()) {
    if (any.Is<google::rpc::ErrorInfo>()) {
      google::rpc::ErrorInfo info;
      any.UnpackTo(&info);
      d.reason = info.reason();
      d.domain = info.domain();
    } else if (any.Is<google::rpc::BadRequest>()) {
      google::rpc::BadRequest bad;
      any.UnpackTo(&bad);
      for (const auto& v : bad.field_violations())
        d.fields.push_back(v.field());
    }
  }
  return d;
}

std::unique_ptr<grpc::ClientContext> Ctx(const std::string& key) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!key.empty()) ctx->AddMetadata("authorization", "Bearer " + key);
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(30));
  return ctx;
}

bool OnPostgres() {
  const char* engine = getenv("CAMPAIGND_TEST_ENGINE");
  return engine != nullptr && std::string(engine) == "postgres";
}

void ServerTest::SetUp() {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "campaignd-it-XXXXXX").string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  db_dir_ = tmpl;
  db_path_ = db_dir_ + "/campaignd.db";
  if (OnPostgres()) {
    absl::StatusOr<std::string> db =
        storage::postgres::testing::CreateTestDatabase();
    ASSERT_TRUE(db.ok()) << db.status();
    db_path_ = storage::postgres::testing::TestDatabaseDsn(*db);
  }
  StartServer();
}

void ServerTest::StartServer() {
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.db_path = db_path_;
  options.cq_threads = 2;
  options.bootstrap_key = kAdminKey;
  // Tests call as fast as they can (and poll); the per-key limit is tested
  // on its own (billing_test.cc), so it is off unless a test configures it.
  options.key_limit.rate = 0;
  Configure(options);
  auto server = CampaignServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *std::move(server);
  channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                 grpc::InsecureChannelCredentials());
  accounts_ = v1::AccountService::NewStub(channel_);
  campaigns_ = v1::CampaignService::NewStub(channel_);
  templates_ = v1::TemplateService::NewStub(channel_);
  senders_ = v1::SenderService::NewStub(channel_);
  contacts_ = v1::ContactService::NewStub(channel_);
  suppressions_ = v1::SuppressionService::NewStub(channel_);
  delivery_ = v1::DeliveryService::NewStub(channel_);
}

void ServerTest::Restart() {
  if (server_) server_->Shutdown();
  server_.reset();
  StartServer();
}

void ServerTest::TearDown() {
  if (server_) server_->Shutdown();
  server_.reset();
  if (!db_dir_.empty()) std::filesystem::remove_all(db_dir_);
}

int64_t ServerTest::ExecSql(const std::string& sql) {
  if (OnPostgres()) {
    absl::StatusOr<std::unique_ptr<storage::postgres::Connection>> c =
        storage::postgres::Connection::Open(db_path_);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return -1;
    absl::StatusOr<storage::postgres::Rows> r = (*c)->Query(sql);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->affected() : -1;
  }
  try {
    SQLite::Database db(db_path_, SQLite::OPEN_READWRITE);
    db.setBusyTimeout(5000);
    return db.exec(sql);
  } catch (const std::exception& e) {
    ADD_FAILURE() << sql << ": " << e.what();
    return -1;
  }
}

std::string ServerTest::NewAccount(const std::string& name) {
  v1::CreateAccountRequest req;
  req.set_name(name);
  v1::Account account;
  grpc::Status s =
      accounts_->CreateAccount(Ctx(kAdminKey).get(), req, &account);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return account.api_key().secret();
}

std::string ServerTest::RegisterSmsSender(const std::string& key,
                                          const std::string& sender_id) {
  v1::RegisterSenderRequest req;
  req.set_sender_id(sender_id);
  req.set_channel(v1::sms);
  req.set_tier(v1::Sender::tier_10k);
  v1::Sender sender;
  grpc::Status s = senders_->RegisterSender(Ctx(key).get(), req, &sender);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return sender.sender_id();
}

v1::Template ServerTest::ApprovedTemplate(const std::string& key,
                                          const std::string& name) {
  v1::CreateTemplateRequest req;
  req.set_name(name);
  req.set_language("en_US");
  req.set_channel(v1::sms);
  req.set_body("Hello {{1}}, your code is {{code}}");
  v1::Template t;
  grpc::Status s = templates_->CreateTemplate(Ctx(key).get(), req, &t);
  EXPECT_TRUE(s.ok()) << s.error_message();
  v1::SetTemplateStatusRequest approve;
  approve.set_id(t.id());
  approve.set_status(v1::Template::approved);
  s = templates_->SetTemplateStatus(Ctx(kAdminKey).get(), approve, &t);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return t;
}

std::vector<v1::Recipient> ServerTest::ListAllRecipients(
    const std::string& campaign_id, v1::Recipient::Status status) {
  std::vector<v1::Recipient> all;
  v1::ListRecipientsRequest req;
  req.set_campaign_id(campaign_id);
  req.set_status(status);
  req.set_limit(100);
  for (;;) {
    v1::ListRecipientsResponse page;
    grpc::Status s =
        campaigns_->ListRecipients(Ctx(kAdminKey).get(), req, &page);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (!s.ok()) break;
    for (const v1::Recipient& r : page.items()) all.push_back(r);
    if (!page.has_more()) break;
    req.set_page_token(page.next_page_token());
  }
  return all;
}

v1::CreateCampaignRequest ServerTest::CampaignRequest(
    const std::string& sender) {
  v1::CreateCampaignRequest req;
  req.set_name("Spring Promotion");
  req.set_channel(v1::sms);
  req.set_sender_id(sender);
  req.set_body("Hi {{name}}, use {{code}}");
  return req;
}

}  // namespace campaigns::testing
