// PostgreSQL for the benchmarks: a server to run campaignd on (a throwaway
// cluster with fsync on, as the tests start theirs, or one given by URI),
// a fresh database per run, and PostgreSQL's own rates for the two writes
// the engine is built on (a COPY of recipients; their statuses set by one
// batched UPDATE per commit), to print beside campaignd's in the same run.
//
//   absl::StatusOr<std::unique_ptr<PgBench>> pg = PgBench::Open("");
//   absl::StatusOr<std::string> dsn = (*pg)->FreshDatabase();  // --db
//   ...campaignd runs on *dsn, and stops...
//   absl::StatusOr<double> raw = RawBatchedUpdateRate(*dsn, 1000);
//
// Not thread-safe. Header-only, like bench_util.h.
#ifndef CAMPAIGND_TOOLS_BENCH_PG_BENCH_H_
#define CAMPAIGND_TOOLS_BENCH_PG_BENCH_H_

#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "storage/postgres/connection.h"
#include "storage/postgres/migrations.h"
#include "tests/support/postgres_server.h"

namespace campaigns::bench {

// `dsn` (a URI without a query) with its database replaced by `db`.
inline std::string WithDatabase(const std::string& dsn, const std::string& db) {
  return dsn.substr(0, dsn.rfind('/') + 1) + db;
}

class PgBench {
 public:
  // On the server at `dsn`, or (`dsn` empty) on a cluster of its own: fsync
  // on, on a free port of 127.0.0.1, removed with this object.
  static absl::StatusOr<std::unique_ptr<PgBench>> Open(const std::string& dsn) {
    std::unique_ptr<PgBench> pg(new PgBench());
    pg->dsn_ = dsn;
    if (!dsn.empty()) {
      // FreshDatabase replaces the URI's database: it needs one, and no
      // query after it (a URI's "?sslmode=..." would be lost).
      const size_t scheme = dsn.find("://");
      if (scheme == std::string::npos ||
          dsn.find('/', scheme + 3) == std::string::npos ||
          dsn.find('?') != std::string::npos) {
        return absl::InvalidArgumentError(
            "--pg-dsn: give postgresql://USER@HOST:PORT/DATABASE, without "
            "a query (libpq's PG* variables can carry the rest)");
      }
    }
    if (dsn.empty()) {
      testing::PostgresServer::Options options;
      options.fsync = true;  // the figures claim durability
      absl::StatusOr<std::unique_ptr<testing::PostgresServer>> own =
          testing::PostgresServer::Start(options);
      if (!own.ok()) return own.status();
      pg->own_ = *std::move(own);
      pg->dsn_ = pg->own_->Dsn();
    }
    absl::StatusOr<std::unique_ptr<storage::postgres::Connection>> admin =
        storage::postgres::Connection::Open(pg->dsn_);
    if (!admin.ok()) return admin.status();
    pg->admin_ = *std::move(admin);
    return pg;
  }

  ~PgBench() {
    for (const std::string& db : made_) {
      (void)admin_->Exec("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
    }
  }

  // A new empty database: its URI.
  absl::StatusOr<std::string> FreshDatabase() {
    const std::string db =
        absl::StrCat("campaignd_bench_", getpid(), "_", made_.size());
    if (absl::Status s = admin_->Exec("CREATE DATABASE " + db); !s.ok()) {
      return s;
    }
    made_.push_back(db);
    return WithDatabase(dsn_, db);
  }

  // "host:port/db as user: fsync on, synchronous_commit on, PostgreSQL ...".
  std::string Describe() {
    absl::StatusOr<storage::postgres::Rows> r = admin_->Query(
        "SELECT current_setting('fsync'), "
        "current_setting('synchronous_commit'), version()");
    if (!r.ok()) return r.status().ToString();
    return absl::StrCat(admin_->where(), ": fsync ", r->Text(0, 0),
                        ", synchronous_commit ", r->Text(0, 1), "\n  ",
                        r->Text(0, 2));
  }

 private:
  PgBench() = default;

  std::unique_ptr<testing::PostgresServer> own_;
  std::string dsn_;
  std::unique_ptr<storage::postgres::Connection> admin_;
  std::vector<std::string> made_;
};

// COPY of `rows` synthetic recipients (seq from `first_seq`) of campaign
// `campaign_seq`, as one transaction, on `c`.
inline absl::StatusOr<int64_t> CopyRecipients(storage::postgres::Connection& c,
                                              const std::string& campaign_seq,
                                              int64_t first_seq, int64_t rows) {
  if (absl::Status s = c.Exec("BEGIN"); !s.ok()) return s;
  int64_t next = 0;
  absl::StatusOr<int64_t> copied = c.CopyIn(
      "COPY recipients (seq, campaign_seq, address, variables, "
      "status, created_at, updated_at) FROM STDIN",
      [&](std::string& chunk, absl::Status*) {
        for (; next < rows && chunk.size() < (1 << 20); ++next) {
          absl::StrAppend(&chunk, first_seq + next, "\t", campaign_seq,
                          "\t+4915", 100000000 + next, "\t{\"name\":\"n", next,
                          "\"}\tqueued\t0\t0\n");
        }
        return !chunk.empty();
      });
  if (!copied.ok()) return copied.status();
  if (absl::Status s = c.Exec("COMMIT"); !s.ok()) return s;
  return *copied;
}

// `seqs` set to sent in order, `batch` rows per statement and durable
// commit (one UPDATE ... FROM unnest), on `c`: how long it took.
inline absl::StatusOr<absl::Duration> BatchedUpdates(
    storage::postgres::Connection& c, const std::vector<int64_t>& seqs,
    int64_t batch) {
  const absl::Time start = absl::Now();
  for (size_t from = 0; from < seqs.size(); from += batch) {
    std::string ids = "{", messages = "{";
    for (size_t i = from; i < seqs.size() && i < from + batch; ++i) {
      absl::StrAppend(&ids, i == from ? "" : ",", seqs[i]);
      absl::StrAppend(&messages, i == from ? "" : ",", "SM", seqs[i]);
    }
    ids += "}";
    messages += "}";
    absl::StatusOr<storage::postgres::Rows> r = c.Query(
        "UPDATE recipients AS r SET status = 'sent', provider_message_id = "
        "v.id, attempts = r.attempts + 1, handed = false, sent_at = 1, "
        "updated_at = 1 FROM unnest($1::bigint[], $2::text[]) AS v(seq, id) "
        "WHERE r.seq = v.seq",
        {ids, messages});
    if (!r.ok()) return r.status();
  }
  return absl::Now() - start;
}

// An account and a draft campaign to copy recipients into, in a migrated
// database, on `c`: the campaign's seq.
inline absl::StatusOr<std::string> SeedCampaign(
    storage::postgres::Connection& c) {
  absl::Status seeded = c.Exec(
      "INSERT INTO accounts(id, name, currency, created_at, updated_at) "
      "VALUES ('acc_bench', 'bench', 'EUR', 0, 0); INSERT INTO "
      "campaigns(id, account_id, name, channel, sender_id, sender_ref, "
      "status, batch_size, created_at, updated_at) VALUES ('cmp_bench', "
      "'acc_bench', 'bench', 'sms', '+15550100', 'snd_bench', 'draft', 100, "
      "0, 0)");
  if (!seeded.ok()) return seeded;
  absl::StatusOr<storage::postgres::Rows> seq =
      c.Query("SELECT seq FROM campaigns WHERE id = 'cmp_bench'");
  if (!seq.ok()) return seq.status();
  return seq->Text(0, 0);
}

// PostgreSQL's own COPY rate into campaignd's schema: `rows` recipients of
// a campaign in the fresh database `dsn` (migrated here), one transaction.
// Rows per second.
inline absl::StatusOr<double> RawCopyRate(const std::string& dsn,
                                          int64_t rows) {
  absl::StatusOr<std::unique_ptr<storage::postgres::Connection>> c =
      storage::postgres::Connection::Open(dsn);
  if (!c.ok()) return c.status();
  storage::postgres::Connection& conn = **c;
  if (absl::Status s = storage::postgres::Migrate(conn).status(); !s.ok()) {
    return s;
  }
  absl::StatusOr<std::string> campaign_seq = SeedCampaign(conn);
  if (!campaign_seq.ok()) return campaign_seq.status();
  const absl::Time start = absl::Now();
  absl::StatusOr<int64_t> copied = CopyRecipients(conn, *campaign_seq, 1, rows);
  if (!copied.ok()) return copied.status();
  return static_cast<double>(*copied) /
         absl::ToDoubleSeconds(absl::Now() - start);
}

// PostgreSQL's own rate for what a dispatch writes, on the rows campaignd
// left in `dsn` (it must have stopped): every recipient put back to queued
// (untimed), then set to sent in seq order by BatchedUpdates. Rows per
// second.
inline absl::StatusOr<double> RawBatchedUpdateRate(const std::string& dsn,
                                                   int64_t batch) {
  absl::StatusOr<std::unique_ptr<storage::postgres::Connection>> c =
      storage::postgres::Connection::Open(dsn);
  if (!c.ok()) return c.status();
  storage::postgres::Connection& conn = **c;
  absl::StatusOr<storage::postgres::Rows> rows =
      conn.Query("SELECT seq FROM recipients ORDER BY seq");
  if (!rows.ok()) return rows.status();
  std::vector<int64_t> seqs;
  seqs.reserve(rows->size());
  for (int i = 0; i < rows->size(); ++i) {
    seqs.push_back(std::stoll(rows->Text(i, 0)));
  }
  // As campaignd found them: queued, and no dead rows to step over.
  for (const char* sql :
       {"UPDATE recipients SET status = 'queued', provider_message_id = ''",
        "VACUUM ANALYZE recipients"}) {
    if (absl::Status s = conn.Exec(sql); !s.ok()) return s;
  }
  absl::StatusOr<absl::Duration> took = BatchedUpdates(conn, seqs, batch);
  if (!took.ok()) return took.status();
  return static_cast<double>(seqs.size()) / absl::ToDoubleSeconds(*took);
}

}  // namespace campaigns::bench

#endif  // CAMPAIGND_TOOLS_BENCH_PG_BENCH_H_
