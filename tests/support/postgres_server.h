// PostgresServer: a throwaway PostgreSQL cluster for tests. Start() runs
// initdb under a new temporary directory and `pg_ctl -w start` on a free
// port of 127.0.0.1; the destructor stops it (immediate mode) and removes
// the directory. Nothing touches a system-wide cluster or service.
//
// If the test process dies without running the destructor (a crash, a
// kill, ctest's kill of a timed-out test's process tree), a watchdog
// process (sh, not a descendant of this one, waiting for the end of a pipe
// only this process holds) stops the cluster and removes its files.
//
// With CAMPAIGND_PG_TEMPLATE set to a directory (ctest sets it to one in
// the build tree), initdb runs once per build: the cluster it made there is
// copied for each process instead (a fraction of initdb's time), under a
// lock so concurrent processes make it once. Each copy is its own cluster.
//
// initdb refuses to run as root: as root, the cluster's files and processes
// belong to the `postgres` user (runuser); otherwise to the current user.
// The superuser is `campaignd` with a random password, and TCP connections
// need it (scram-sha-256), as a production server would.
//
//   absl::StatusOr<std::unique_ptr<PostgresServer>> pg =
//   PostgresServer::Start(); ASSERT_TRUE(pg.ok()) << pg.status(); std::string
//   dsn = (*pg)->Dsn();   // postgresql://campaignd:...@127.0.0.1:P/postgres
//
// Not thread-safe.
#ifndef CAMPAIGND_TESTS_SUPPORT_POSTGRES_SERVER_H_
#define CAMPAIGND_TESTS_SUPPORT_POSTGRES_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace campaigns::testing {

class PostgresServer {
 public:
  struct Options {
    // fsync off: a test's cluster need not survive a power cut, and is
    // faster without. Benchmarks that claim durability keep it on.
    bool fsync = false;
  };

  // Initialises and starts a cluster. The error names the step and carries
  // the tool's output.
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start(Options options);
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start() {
    return Start(Options());
  }

  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;
  ~PostgresServer();

  int port() const { return port_; }
  // The cluster's temporary directory (its data in data/).
  const std::string& dir() const { return dir_; }
  const std::string& user() const { return user_; }
  const std::string& password() const { return password_; }

  // A libpq URI for `database` with the superuser's credentials.
  std::string Dsn(const std::string& database = "postgres") const;

  // `pg_ctl stop -m fast` / `pg_ctl -w start` on the same port and files.
  absl::Status Stop();
  absl::Status StartAgain();
  // Stop then start: connections are cut, committed data stays.
  absl::Status Restart();
  bool running() const { return running_; }

  // The PostgreSQL major version of the binaries (e.g. 15).
  int major_version() const { return major_version_; }

 private:
  PostgresServer() = default;

  // Runs a PostgreSQL tool (bin_dir_/tool) as the cluster's owner and
  // returns its combined output; non-zero exit is INTERNAL with the output.
  absl::StatusOr<std::string> RunTool(const std::string& tool,
                                      const std::vector<std::string>& args);

  // initdb of a cluster in `data` whose superuser's password is in `pwfile`.
  absl::StatusOr<std::string> InitDb(const std::string& pwfile,
                                     const std::string& data);
  // Copies the template cluster in `template_dir` (made first if missing)
  // to dir_/data; returns its superuser's password.
  absl::StatusOr<std::string> CopyTemplate(const std::string& template_dir);

  // Spawns the watchdog (see the file comment).
  absl::Status StartWatchdog();

  std::string bin_dir_;  // /usr/lib/postgresql/N/bin
  std::string dir_;      // the temporary directory: data/, sockets, log
  std::string user_ = "campaignd";
  std::string password_;  // random
  std::string run_as_;    // "postgres" when we are root, else ""
  int port_ = 0;
  int major_version_ = 0;
  bool fsync_ = false;
  bool running_ = false;
  int watchdog_fd_ = -1;  // the pipe's write end
};

}  // namespace campaigns::testing

#endif  // CAMPAIGND_TESTS_SUPPORT_POSTGRES_SERVER_H_
