// The test process's PostgreSQL cluster, as a gtest environment: started on
// the first test that asks for it (a process whose tests never do, e.g. the
// SQLite runs of the conformance suite, starts none), stopped after the last
// test.
#include "tests/support/pg_fixture.h"

#include <gtest/gtest.h>

#include <cctype>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/domain/mutex.h"
#include "tests/support/postgres_server.h"

namespace campaigns::storage::postgres::testing {
namespace {

using ::campaigns::testing::PostgresServer;

class PgEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    MutexLock lock(&mu_);
    server_.reset();
  }

  // Starts the cluster the first time; null (with the failure logged once)
  // if it cannot start.
  PostgresServer* server() {
    MutexLock lock(&mu_);
    if (server_ == nullptr && !tried_) {
      tried_ = true;
      absl::StatusOr<std::unique_ptr<PostgresServer>> s =
          PostgresServer::Start();
      if (s.ok()) {
        server_ = *std::move(s);
      } else {
        ADD_FAILURE() << "cannot start PostgreSQL: " << s.status();
      }
    }
    return server_.get();
  }

 private:
  Mutex mu_;
  bool tried_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<PostgresServer> server_ ABSL_GUARDED_BY(mu_);
};

PgEnvironment* const kEnvironment = static_cast<PgEnvironment*>(
    ::testing::AddGlobalTestEnvironment(new PgEnvironment));

}  // namespace

PostgresServer* PgTest::Server() { return kEnvironment->server(); }

absl::StatusOr<std::string> CreateTestDatabase() {
  PostgresServer* server = kEnvironment->server();
  if (server == nullptr) {
    return absl::UnavailableError("the test cluster did not start");
  }
  const ::testing::TestInfo* info =
      ::testing::UnitTest::GetInstance()->current_test_info();
  std::string db = absl::AsciiStrToLower(
      absl::StrCat("t_", info->test_suite_name(), "_", info->name()));
  for (char& c : db) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  db = db.substr(0, 63);
  absl::StatusOr<std::unique_ptr<Connection>> admin =
      Connection::Open(server->Dsn());
  if (!admin.ok()) return admin.status();
  for (const std::string& sql :
       {"DROP DATABASE IF EXISTS " + db, "CREATE DATABASE " + db}) {
    if (absl::Status s = (*admin)->Exec(sql); !s.ok()) return s;
  }
  return db;
}

std::string TestDatabaseDsn(const std::string& db) {
  PostgresServer* server = kEnvironment->server();
  return server != nullptr ? server->Dsn(db) : std::string();
}

}  // namespace campaigns::storage::postgres::testing
