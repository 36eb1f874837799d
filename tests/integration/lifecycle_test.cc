// The server shuts down in order without losing writes.
#include <unistd.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "storage/sqlite/database.h"
#include "storage/sqlite/store.h"
#include "tests/integration/fixture.h"

namespace campaigns::testing {
namespace {

using ShutdownTest = ServerTest;

// Every create the server acknowledged before shutting down is in the
// database afterwards: durable before acknowledged, nothing lost at exit.
TEST_F(ShutdownTest, ShutdownUnderLoadLosesNoAcknowledgedWrite) {
  const std::string sender = RegisterSmsSender(kAdminKey);
  std::atomic<bool> stop{false};
  std::atomic<int> acked_count{0};
  std::vector<std::vector<std::string>> acked(4);  // [t]: thread t only
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      auto stub = v1::CampaignService::NewStub(channel_);
      for (int i = 0; !stop.load(); ++i) {
        v1::CreateCampaignRequest req = CampaignRequest(sender);
        req.set_name("load-" + std::to_string(t) + "-" + std::to_string(i));
        v1::Campaign c;
        if (stub->CreateCampaign(Ctx(kAdminKey).get(), req, &c).ok()) {
          acked[t].push_back(c.id());
          acked_count.fetch_add(1);
        }
      }
    });
  }
  // Let some calls through, then shut down while they keep coming.
  while (acked_count.load() < 20) std::this_thread::yield();
  server_->Shutdown();
  stop.store(true);
  for (std::thread& t : clients) t.join();

  // Every acknowledged create is there after a restart, on either engine.
  Restart();
  size_t total = 0;
  for (const auto& ids : acked) {
    for (const std::string& id : ids) {
      v1::GetCampaignRequest req;
      req.set_id(id);
      v1::Campaign c;
      EXPECT_TRUE(campaigns_->GetCampaign(Ctx(kAdminKey).get(), req, &c).ok())
          << id;
      ++total;
    }
  }
  EXPECT_GE(total, 20u);
}

}  // namespace
}  // namespace campaigns::testing

namespace campaigns::testing {
namespace {

using StartTest = ServerTest;

TEST_F(StartTest, BadDatabasePathFailsCleanly) {
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.db_path = db_dir_ + "/no/such/dir/campaignd.db";
  auto server = CampaignServer::Start(options);
  ASSERT_FALSE(server.ok());
  // Refused before SQLite is asked, naming the missing directory.
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(server.status().message().find(db_dir_ + "/no/such/dir: No such"),
            absl::string_view::npos)
      << server.status();
}

// A start that cannot bind its port commits nothing: a generated admin key
// would otherwise be stored and never shown.
TEST_F(StartTest, PortInUseFailsWithoutBootstrappingTheDatabase) {
  const std::string fresh = db_dir_ + "/fresh.db";
  ServerOptions options;
  options.listen = "127.0.0.1:" + std::to_string(server_->port());
  options.db_path = fresh;
  auto second = CampaignServer::Start(options);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);

  storage::DatabaseOptions db_options;
  db_options.path = fresh;
  auto db = storage::Database::Open(db_options);
  ASSERT_TRUE(db.ok()) << db.status();
  storage::Store store(db->get());
  auto created = store.BootstrapAdmin("ck_a_new_admin_key_for_this_database");
  ASSERT_TRUE(created.ok());
  EXPECT_TRUE(*created) << "the failed start must not have bootstrapped";
}

// SQLite keeps no record of which process sends what: a second campaignd on
// the same file would send every campaign again. It is refused, naming the
// first; once the first is gone, a start succeeds. On PostgreSQL several
// instances share the database (each sends what it holds the lease of):
// the second starts, and both serve.
TEST_F(StartTest, ASecondServerOnTheSameDatabaseIsRefused) {
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.db_path = db_path_;
  auto second = CampaignServer::Start(options);
  if (OnPostgres()) {
    ASSERT_TRUE(second.ok()) << second.status();
    EXPECT_TRUE((*second)->Readiness().ok()) << (*second)->Readiness();
    EXPECT_TRUE(server_->Readiness().ok()) << server_->Readiness();
    (*second)->Shutdown();
    return;
  }
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find(
                absl::StrCat("another campaignd (pid ", getpid(), ")")),
            absl::string_view::npos)
      << second.status();
  // Another spelling of the same file (a symlink to its directory) too.
  const std::string link = db_dir_ + "-link";
  ASSERT_EQ(symlink(db_dir_.c_str(), link.c_str()), 0);
  options.db_path = link + db_path_.substr(db_dir_.size());
  auto aliased = CampaignServer::Start(options);
  unlink(link.c_str());
  ASSERT_FALSE(aliased.ok());
  EXPECT_EQ(aliased.status().code(), absl::StatusCode::kFailedPrecondition);
  options.db_path = db_path_;
  server_->Shutdown();
  server_.reset();
  auto third = CampaignServer::Start(options);
  ASSERT_TRUE(third.ok()) << third.status();
  (*third)->Shutdown();
}

TEST_F(StartTest, OversizedIdsAreInvalidArgumentNotEchoed) {
  v1::GetCampaignRequest get;
  get.set_id(std::string(16 * 1024, 'x'));
  v1::Campaign c;
  ErrorDetails d =
      Details(campaigns_->GetCampaign(Ctx(kAdminKey).get(), get, &c));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_EQ(d.fields.size(), 1u);
  EXPECT_EQ(d.fields[0], "id");
  EXPECT_LT(d.message.size(), 200u);

  // Just under the limit: an ordinary NOT_FOUND, with the id cut short.
  get.set_id(std::string(128, 'y'));
  d = Details(campaigns_->GetCampaign(Ctx(kAdminKey).get(), get, &c));
  EXPECT_EQ(d.code, grpc::StatusCode::NOT_FOUND);
  EXPECT_LT(d.message.size(), 120u);

  const std::string sender = RegisterSmsSender(kAdminKey);
  v1::CreateCampaignRequest req = CampaignRequest(sender);
  req.set_request_id(std::string(129, 'r'));
  d = Details(campaigns_->CreateCampaign(Ctx(kAdminKey).get(), req, &c));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_EQ(d.fields.size(), 1u);
  EXPECT_EQ(d.fields[0], "request_id");

  req.clear_request_id();
  req.set_template_id(std::string(1000, 't'));
  req.clear_body();
  d = Details(campaigns_->CreateCampaign(Ctx(kAdminKey).get(), req, &c));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_EQ(d.fields.size(), 1u);
  EXPECT_EQ(d.fields[0], "template_id");
}

TEST_F(StartTest, NewKeysAlwaysComeWithTheirSecret) {
  v1::CreateApiKeyRequest req;
  req.set_name("ci");
  v1::ApiKey key;
  ASSERT_TRUE(accounts_->CreateApiKey(Ctx(kAdminKey).get(), req, &key).ok());
  ASSERT_FALSE(key.secret().empty());
  v1::Account account;
  EXPECT_TRUE(
      accounts_->GetAccount(Ctx(key.secret()).get(), {}, &account).ok());
}

}  // namespace
}  // namespace campaigns::testing
