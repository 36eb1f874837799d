// campaignd_test_pg: a throwaway PostgreSQL cluster (postgres_server.h) for
// test drivers that are not C++ (tests/e2e/harness.py). It prints
//   ready <port>
// once the cluster runs, then reads commands from stdin, one per line:
//   db NAME        creates database NAME; prints "dsn NAME <libpq URI>"
//   restart        pg_ctl restart; prints "restarted"
//   stop / start   pg_ctl stop / start; prints "stopped" / "started"
//   dir            prints "dir <the cluster's temporary directory>"
// and answers "error <message>" to a command that failed. At the end of
// stdin (the driver exited or closed it), it stops the cluster and removes
// its files; the cluster's watchdog does so even after a kill -9.
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/postgres/connection.h"
#include "tests/support/postgres_server.h"

namespace {

bool ValidName(const std::string& name) {
  // Unquoted in CREATE DATABASE: a letter first.
  if (name.empty() || name.size() > 60 || name[0] < 'a' || name[0] > 'z') {
    return false;
  }
  for (char ch : name) {
    if (!(ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))) {
      return false;
    }
  }
  return true;
}

}  // namespace

int main() {
  using campaigns::testing::PostgresServer;
  absl::StatusOr<std::unique_ptr<PostgresServer>> pg = PostgresServer::Start();
  if (!pg.ok()) {
    std::cout << "error " << pg.status().message() << std::endl;
    return 1;
  }
  std::cout << "ready " << (*pg)->port() << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
    absl::Status s;
    std::string answer;
    if (absl::StartsWith(line, "db ")) {
      const std::string name = line.substr(3);
      if (!ValidName(name)) {
        s = absl::InvalidArgumentError(
            "a database name is [a-z][a-z0-9_]{0,59}");
      } else {
        absl::StatusOr<
            std::unique_ptr<campaigns::storage::postgres::Connection>>
            c = campaigns::storage::postgres::Connection::Open((*pg)->Dsn());
        s = c.ok() ? (*c)->Exec(absl::StrCat("CREATE DATABASE ", name))
                   : c.status();
        answer = absl::StrCat("dsn ", name, " ", (*pg)->Dsn(name));
      }
    } else if (line == "restart") {
      s = (*pg)->Restart();
      answer = "restarted";
    } else if (line == "stop") {
      s = (*pg)->Stop();
      answer = "stopped";
    } else if (line == "start") {
      s = (*pg)->StartAgain();
      answer = "started";
    } else if (line == "dir") {
      answer = absl::StrCat("dir ", (*pg)->dir());
    } else {
      s = absl::InvalidArgumentError(absl::StrCat("unknown command: ", line));
    }
    if (s.ok()) {
      std::cout << answer << std::endl;
    } else {
      std::cout << "error " << s.message() << std::endl;
    }
  }
  return 0;  // pg's destructor stops the cluster
}
