// The test process's PostgreSQL cluster, as a gtest environment: started
// before the first test, stopped after the last.
#include "tests/support/pg_fixture.h"

#include <gtest/gtest.h>

#include <memory>

#include "tests/support/postgres_server.h"

namespace campaigns::storage::postgres::testing {
namespace {

using ::campaigns::testing::PostgresServer;

class PgEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<PostgresServer>> s = PostgresServer::Start();
    ASSERT_TRUE(s.ok()) << "cannot start PostgreSQL: " << s.status();
    server_ = *std::move(s);
  }
  void TearDown() override { server_.reset(); }

  PostgresServer* server() const { return server_.get(); }

 private:
  std::unique_ptr<PostgresServer> server_;
};

PgEnvironment* const kEnvironment = static_cast<PgEnvironment*>(
    ::testing::AddGlobalTestEnvironment(new PgEnvironment));

}  // namespace

PostgresServer* PgTest::Server() { return kEnvironment->server(); }

}  // namespace campaigns::storage::postgres::testing
