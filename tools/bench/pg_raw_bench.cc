// pg_raw_bench: what PostgreSQL itself does on this machine for the two
// writes campaignd's PostgreSQL engine is built on, as the baselines of
// issue 17's targets (import >= 50,000 rows/s, dispatch >= 20,000 msg/s with
// every status durable):
//   - a raw COPY of N recipients into the real schema (its indexes and
//     foreign keys), in one transaction;
//   - the statuses of those recipients set as a dispatch would, durable
//     (synchronous_commit on, fsync on): batched (one UPDATE ... FROM
//     unnest(...) of --batch rows per commit) and per row (--batch UPDATE
//     statements per commit).
//
//   build/tools/bench/pg_raw_bench [--rows 1000000] [--batch 1000]
//                                  [--dsn postgresql://...]
//
// Without --dsn it starts a throwaway cluster of its own (initdb, fsync on,
// on a free port of 127.0.0.1) and removes it at the end; with --dsn it makes
// a database of its own there and drops it at the end. Run by hand.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "storage/postgres/connection.h"
#include "storage/postgres/migrations.h"
#include "tests/support/postgres_server.h"
#include "tools/bench/pg_bench.h"

namespace {

using campaigns::storage::postgres::Connection;
using campaigns::storage::postgres::Rows;

[[noreturn]] void Die(const std::string& what, const absl::Status& s) {
  std::fprintf(stderr, "pg_raw_bench: %s: %s\n", what.c_str(),
               std::string(s.message()).c_str());
  std::exit(1);
}

template <typename T>
T Must(absl::StatusOr<T> v, const std::string& what) {
  if (!v.ok()) Die(what, v.status());
  return *std::move(v);
}

void Must(const absl::Status& s, const std::string& what) {
  if (!s.ok()) Die(what, s);
}

std::string Rate(int64_t n, absl::Duration d) {
  const double per_s = static_cast<double>(n) / absl::ToDoubleSeconds(d);
  return absl::StrFormat("%.0f rows/s (%d rows in %.2f s)", per_s, n,
                         absl::ToDoubleSeconds(d));
}

}  // namespace

int main(int argc, char** argv) {
  int64_t rows = 1000000, batch = 1000;
  std::string dsn;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--rows" && absl::SimpleAtoi(argv[i + 1], &rows)) continue;
    if (flag == "--batch" && absl::SimpleAtoi(argv[i + 1], &batch)) continue;
    if (flag == "--dsn") {
      dsn = argv[i + 1];
      continue;
    }
    std::fprintf(stderr,
                 "usage: pg_raw_bench [--rows N] [--batch B] [--dsn URI]\n");
    return 2;
  }
  if ((argc - 1) % 2 != 0 || rows < 1 || batch < 1) {
    std::fprintf(stderr,
                 "usage: pg_raw_bench [--rows N] [--batch B] [--dsn URI]\n");
    return 2;
  }
  std::unique_ptr<campaigns::testing::PostgresServer> own;
  if (dsn.empty()) {
    campaigns::testing::PostgresServer::Options options;
    options.fsync = true;  // the figures claim durability
    own = Must(campaigns::testing::PostgresServer::Start(options),
               "starting PostgreSQL");
    dsn = own->Dsn();
  }
  const std::string db = absl::StrCat("pg_raw_bench_", getpid());
  std::unique_ptr<Connection> admin = Must(Connection::Open(dsn), "connect");
  Must(admin->Exec("CREATE DATABASE " + db), "create database");
  std::unique_ptr<Connection> c = Must(
      Connection::Open(campaigns::bench::WithDatabase(dsn, db)), "connect");
  Must(campaigns::storage::postgres::Migrate(*c).status(), "migrate");
  Rows settings =
      Must(c->Query("SELECT current_setting('fsync'), "
                    "current_setting('synchronous_commit'), version()"),
           "settings");
  std::printf("PostgreSQL at %s: fsync %s, synchronous_commit %s\n  %s\n",
              c->where().c_str(), settings.Text(0, 0).c_str(),
              settings.Text(0, 1).c_str(), settings.Text(0, 2).c_str());

  const std::string campaign_seq =
      Must(campaigns::bench::SeedCampaign(*c), "campaign");

  // COPY: one transaction, as an import commits.
  absl::Time start = absl::Now();
  const int64_t copied =
      Must(campaigns::bench::CopyRecipients(*c, campaign_seq, 1, rows), "copy");
  const absl::Duration copy_time = absl::Now() - start;
  std::printf("raw COPY into recipients, one transaction: %s\n",
              Rate(copied, copy_time).c_str());

  // Batched: one statement and one durable commit per `batch` rows.
  const int64_t half = rows / 2;
  std::vector<int64_t> first_half;
  for (int64_t s = 1; s <= half; ++s) first_half.push_back(s);
  const absl::Duration batched_time =
      Must(campaigns::bench::BatchedUpdates(*c, first_half, batch),
           "batched update");
  std::printf("batched UPDATE, %d rows per statement and commit: %s\n",
              static_cast<int>(batch), Rate(half, batched_time).c_str());

  // Per row: `batch` statements per durable commit.
  start = absl::Now();
  for (int64_t from = half + 1; from <= rows; from += batch) {
    Must(c->Exec("BEGIN"), "begin");
    for (int64_t s = from; s < from + batch && s <= rows; ++s) {
      Must(c->Query("UPDATE recipients SET status = 'sent', "
                    "provider_message_id = $2, attempts = attempts + 1, "
                    "handed = true, sent_at = 1, updated_at = 1 WHERE seq = "
                    "$1",
                    {absl::StrCat(s), absl::StrCat("SM", s)})
               .status(),
           "update");
    }
    Must(c->Exec("COMMIT"), "commit");
  }
  const absl::Duration per_row_time = absl::Now() - start;
  std::printf("per-row UPDATE, %d statements per commit: %s\n",
              static_cast<int>(batch), Rate(rows - half, per_row_time).c_str());
  std::printf("batched / per-row: %.2f x\n",
              absl::ToDoubleSeconds(per_row_time) /
                  absl::ToDoubleSeconds(batched_time) *
                  static_cast<double>(half) / static_cast<double>(rows - half));
  c.reset();
  Must(admin->Exec("DROP DATABASE " + db), "drop database");
  return 0;
}
