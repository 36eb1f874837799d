// The test process's PostgreSQL cluster, as a gtest environment: started on
// the first test that asks for it (a process whose tests never do, e.g. the
// SQLite runs of the conformance suite, starts none), stopped after the last
// test.
#include "tests/support/pg_fixture.h"

#include <gtest/gtest.h>

#include <memory>

#include "absl/base/thread_annotations.h"
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

}  // namespace campaigns::storage::postgres::testing
