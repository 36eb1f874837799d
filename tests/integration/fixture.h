// A real campaignd server on 127.0.0.1:0 with a fresh database, and helpers
// to call it through the generated stubs and read error details.
#ifndef CAMPAIGND_TESTS_INTEGRATION_FIXTURE_H_
#define CAMPAIGND_TESTS_INTEGRATION_FIXTURE_H_

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "campaigns/v1/account.grpc.pb.h"
#include "campaigns/v1/campaign.grpc.pb.h"
#include "campaigns/v1/contact.grpc.pb.h"
#include "campaigns/v1/delivery.grpc.pb.h"
#include "campaigns/v1/sender.grpc.pb.h"
#include "campaigns/v1/suppression.grpc.pb.h"
#include "campaigns/v1/template.grpc.pb.h"
#include "server/server.h"

namespace campaigns::testing {

inline constexpr char kAdminKey[] = "ck_test_admin_key_for_integration";

// The details of a failed call.
struct ErrorDetails {
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string message;
  std::string reason;  // google.rpc.ErrorInfo.reason
  std::string domain;
  std::vector<std::string> fields;  // google.rpc.BadRequest field paths
};
ErrorDetails Details(const grpc::Status& status);

// A client context carrying `authorization: Bearer <key>` (none if empty).
std::unique_ptr<grpc::ClientContext> Ctx(const std::string& key);

// True in the runs on PostgreSQL (CAMPAIGND_TEST_ENGINE=postgres: ctest's
// integration_pg), where every ServerTest's server runs on a fresh
// PostgreSQL database (db_path_ is its DSN) instead of a SQLite file.
bool OnPostgres();

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Stops the server (ordered shutdown; unless stopped already) and starts a
  // new one on the same database.
  void Restart();
  // Adjusts the options of every server the test starts.
  virtual void Configure(ServerOptions& options) { (void)options; }

  // Runs `sql` (text both engines take) on the test's database, past the
  // server, as another process would: the rows it changed, or -1 (and a
  // test failure) when it fails.
  int64_t ExecSql(const std::string& sql);
  // A new non-admin account; returns its API key.
  std::string NewAccount(const std::string& name);
  // Registers an sms sender for `key` and returns its visible id.
  std::string RegisterSmsSender(const std::string& key,
                                const std::string& sender_id = "+15550001");
  // Creates an approved sms template for `key`'s account.
  v1::Template ApprovedTemplate(const std::string& key,
                                const std::string& name = "welcome");
  // Every recipient of the campaign (of the admin account), page by page
  // with page_token; with `status`, only those in it.
  std::vector<v1::Recipient> ListAllRecipients(
      const std::string& campaign_id,
      v1::Recipient::Status status = v1::Recipient::status_unspecified);
  // A valid draft sms campaign request using `sender`.
  static v1::CreateCampaignRequest CampaignRequest(const std::string& sender);

  // A directory of the test's own; db_path_ is a SQLite file in it, or on
  // PostgreSQL (OnPostgres) the DSN of the test's database.
  std::string db_dir_;
  std::string db_path_;
  std::unique_ptr<CampaignServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AccountService::Stub> accounts_;
  std::unique_ptr<v1::CampaignService::Stub> campaigns_;
  std::unique_ptr<v1::TemplateService::Stub> templates_;
  std::unique_ptr<v1::SenderService::Stub> senders_;
  std::unique_ptr<v1::ContactService::Stub> contacts_;
  std::unique_ptr<v1::SuppressionService::Stub> suppressions_;
  std::unique_ptr<v1::DeliveryService::Stub> delivery_;

 private:
  void StartServer();
};

}  // namespace campaigns::testing

#endif  // CAMPAIGND_TESTS_INTEGRATION_FIXTURE_H_
