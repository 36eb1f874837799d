// import_bench: how fast ImportRecipients is, next to the parts that bound it.
//
//   build/tools/bench/import_bench --campaignd build/server/campaignd
//                                  --rows 1000000[,5000000,10000000]
//
// For each size N: generates N synthetic recipients (numbers of several
// countries, written in national or international form; 2 % duplicates,
// 1 % invalid, 1 % suppressed), then prints, in one run:
//   1. libphonenumber parse + validate alone, one thread (and campaignd's
//      normaliser, whose RE2 fast path answers for most rows); first size
//      only;
//   2. raw SQLite insert of the same rows into the same schema alone (one
//      prepared statement, one transaction, then the campaign's address set
//      in one sorted INSERT ... SELECT);
//   3. both together in one thread (the single-thread baseline; also with
//      campaignd's normaliser); first size only;
//   4. end to end: the rows streamed as CSV through ImportRecipients into a
//      campaignd it starts on a fresh database (127.0.0.1, a free port),
//      with the ratios to (2) and (3), campaignd's peak RSS, and the p99
//      and worst latency of unrelated writes (AddSuppression, one every
//      20 ms) made while the import runs;
//   5. ListRecipients over the imported campaign, page by page with
//      page_token (first, last and worst page), and the last page by page
//      number;
//   6. DeleteCampaign of it: the answer, the time until its recipients are
//      gone (read from the database file), and the latency of unrelated
//      writes meanwhile.
// With several sizes, a table of them side by side follows: rows/s, its
// ratio to the same size's raw insert and to the first size's rate, peak
// RSS, and the unrelated writes' p99 / worst during the import and the
// delete.
// With --ops-cost R, only the end-to-end import instead, with metrics and
// JSON logs off and then on (/metrics scraped every 100 ms), R times each,
// and the on/off ratio.
// With --check-cost, only the end-to-end import, then the cost of the
// start-up check on the file it left: PRAGMA quick_check alone, and
// campaignd's start (until its port accepts) with and without --skip-check.
// With --pg (a throwaway cluster, fsync on) or --pg-dsn URI, only the
// end-to-end import (4) on a fresh PostgreSQL database per size, beside
// PostgreSQL's own COPY of as many rows into the same schema in one
// transaction (tools/bench/pg_bench.h), and the ratio of the two.
// Run by hand, not in CI.
#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <grpcpp/grpcpp.h>
#include <phonenumbers/phonenumberutil.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "campaigns/v1/account.grpc.pb.h"
#include "campaigns/v1/campaign.grpc.pb.h"
#include "campaigns/v1/sender.grpc.pb.h"
#include "campaigns/v1/suppression.grpc.pb.h"
#include "server/domain/address.h"
#include "server/domain/import_rows.h"
#include "storage/sqlite/migrations.h"
#include "storage/sqlite/store.h"
#include "tools/bench/bench_util.h"
#include "tools/bench/import_load.h"
#include "tools/bench/pg_bench.h"

namespace {

namespace v1 = campaigns::v1;
using Server = campaigns::bench::Campaignd;  // Campaignd() is the normaliser
using campaigns::bench::Clock;
using campaigns::bench::Csv;
using campaigns::bench::Generate;
using campaigns::bench::PeakRssKb;
using campaigns::bench::Row;
using campaigns::bench::Seconds;
using campaigns::bench::StreamImport;

constexpr char kKey[] = "ck_import_bench_admin_key_000000";

// libphonenumber alone: Parse, IsValidNumber, Format(E164).
absl::StatusOr<std::string> Libphonenumber(const std::string& raw) {
  using i18n::phonenumbers::PhoneNumberUtil;
  const PhoneNumberUtil* util = PhoneNumberUtil::GetInstance();
  i18n::phonenumbers::PhoneNumber number;
  if (util->Parse(raw, "US", &number) != PhoneNumberUtil::NO_PARSING_ERROR ||
      !util->IsValidNumber(number)) {
    return absl::InvalidArgumentError("invalid");
  }
  std::string e164;
  util->Format(number, PhoneNumberUtil::E164, &e164);
  return e164;
}

// campaignd's normaliser (RE2 fast path, libphonenumber for the rest).
absl::StatusOr<std::string> Campaignd(const std::string& raw) {
  return campaigns::NormalizeAddress(campaigns::Channel::kSms, raw, "US");
}

using Normalizer = absl::StatusOr<std::string> (*)(const std::string&);

// Parse + validate only, one thread.
double BenchValidate(const std::vector<Row>& rows, Normalizer normalize) {
  const auto start = Clock::now();
  int64_t ok = 0;
  for (const Row& r : rows) ok += normalize(r.raw).ok();
  const double secs = Seconds(start);
  if (ok == 0) std::cerr << "nothing valid?\n";
  return static_cast<double>(rows.size()) / secs;
}

// A database with the server's schema and one campaign to insert into.
std::unique_ptr<SQLite::Database> FreshDb(const std::string& path) {
  std::filesystem::remove(path);
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");
  auto db = std::make_unique<SQLite::Database>(
      path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  db->exec("PRAGMA journal_mode=WAL");
  db->exec("PRAGMA synchronous=NORMAL");
  db->exec("PRAGMA foreign_keys=ON");
  if (!campaigns::storage::Migrate(*db).ok()) std::abort();
  db->exec(
      "INSERT INTO accounts(id,name,currency,created_at,updated_at) "
      "VALUES('acct_b','b','EUR',0,0)");
  db->exec(
      "INSERT INTO campaigns(id,account_id,name,channel,sender_id,sender_ref,"
      "status,batch_size,created_at,updated_at,seq) VALUES('cmp_b','acct_b',"
      "'b','sms','s','snd_s','draft',100,0,0,1)");
  return db;
}

// Inserts in one transaction, normalising each row with `normalize`; with
// null, inserts addresses normalised beforehand (untimed).
double BenchInsert(const std::vector<Row>& rows, const std::string& path,
                   Normalizer normalize) {
  std::vector<std::string> addresses;
  if (normalize == nullptr) {
    for (const Row& r : rows) {
      absl::StatusOr<std::string> a = Campaignd(r.raw);
      addresses.push_back(a.ok() ? *a : r.raw);
    }
  }
  std::unique_ptr<SQLite::Database> db = FreshDb(path);
  const auto start = Clock::now();
  SQLite::Transaction txn(*db);
  SQLite::Statement st(*db,
                       "INSERT INTO recipients(campaign_seq, contact_id, "
                       "address, variables, status, created_at, updated_at) "
                       "VALUES(1,'',?,?,'queued',0,0)");
  for (size_t i = 0; i < rows.size(); ++i) {
    std::string address;
    if (normalize != nullptr) {
      absl::StatusOr<std::string> a = normalize(rows[i].raw);
      if (!a.ok()) continue;
      address = *std::move(a);
    } else {
      address = addresses[i];
    }
    st.bind(1, address);
    st.bind(2, campaigns::VariablesToJson(
                   {{"name", rows[i].name},
                    {"code", absl::StrCat("C", rows[i].name.size())}}));
    st.exec();
    st.reset();
  }
  // The campaign's address set, built the fastest way SQLite offers: one
  // sorted INSERT ... SELECT (duplicates ignored, not deleted).
  db->exec(
      "INSERT OR IGNORE INTO recipient_addresses(campaign_seq, address, seq) "
      "SELECT campaign_seq, address, seq FROM recipients ORDER BY address");
  txn.commit();
  return static_cast<double>(rows.size()) / Seconds(start);
}

std::unique_ptr<grpc::ClientContext> Ctx() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("authorization", absl::StrCat("Bearer ", kKey));
  return ctx;
}

// `csv` through ImportRecipients into a new campaign of a campaignd started
// on a fresh database with `flags`; with `scrape`, /metrics is scraped every
// 100 ms meanwhile. Rows/s, or 0 on failure.
double ImportOnce(const std::string& campaignd, const std::string& db,
                  std::vector<std::string> flags, const std::string& csv,
                  int64_t n, bool scrape, std::string* scrape_note) {
  flags.insert(flags.begin(), {"--key-rate", "0"});
  Server server({.binary = campaignd,
                 .db = db,
                 .bootstrap_key = kKey,
                 .flags = std::move(flags)});
  auto channel =
      grpc::CreateChannel(server.target(), grpc::InsecureChannelCredentials());
  double rate = 0;
  if (channel->WaitForConnected(std::chrono::system_clock::now() +
                                std::chrono::seconds(20))) {
    auto senders = v1::SenderService::NewStub(channel);
    auto campaigns_stub = v1::CampaignService::NewStub(channel);
    v1::RegisterSenderRequest sreq;
    sreq.set_sender_id("+15550001");
    sreq.set_channel(v1::sms);
    sreq.set_tier(v1::Sender::tier_100k);
    v1::Sender sender;
    grpc::Status s = senders->RegisterSender(Ctx().get(), sreq, &sender);
    v1::CreateCampaignRequest creq;
    creq.set_name("bench");
    creq.set_channel(v1::sms);
    creq.set_sender_id("+15550001");
    creq.set_body("Hi {{name}}, {{code}}");
    v1::Campaign campaign;
    if (s.ok()) {
      s = campaigns_stub->CreateCampaign(Ctx().get(), creq, &campaign);
    }
    std::optional<campaigns::bench::Scraper> scraper;
    if (scrape) {
      scraper.emplace(server.http_port(), std::chrono::milliseconds(100));
    }
    const auto start = Clock::now();
    if (s.ok()) {
      v1::ImportRecipientsResponse response;
      s = StreamImport(campaigns_stub.get(), kKey, campaign.id(), csv,
                       &response);
    }
    if (s.ok()) {
      rate = static_cast<double>(n) / Seconds(start);
    } else {
      std::cerr << "import failed: " << s.error_message() << "\n";
    }
    if (scraper) {
      *scrape_note = absl::StrFormat("%d scrapes, slowest %.1f ms",
                                     scraper->ok(), scraper->worst_ms());
    }
  } else {
    std::cerr << "campaignd did not come up\n";
  }
  return rate;
}

// The cost of metrics and JSON logs on an import: off (--no-metrics, text
// logs) and on (metrics, JSON logs, /metrics scraped every 100 ms),
// alternating `rounds` times.
int OpsCost(const std::string& campaignd, const std::string& work,
            const std::string& csv, int64_t n, int rounds) {
  return campaigns::bench::OpsCost(
      rounds, "rows/s", [&](bool on, std::string* note) {
        return ImportOnce(campaignd, work + (on ? "/ops_on.db" : "/ops_off.db"),
                          campaigns::bench::OpsFlags(on), csv, n, on, note);
      });
}

// Seconds from exec'ing campaignd on `db` (with `flags`) until its gRPC
// port accepts a connection (polled every 5 ms), or -1 if it exited first.
double StartupSeconds(const std::string& campaignd, const std::string& db,
                      const std::vector<std::string>& flags) {
  const auto start = Clock::now();
  Server server({.binary = campaignd,
                 .db = db,
                 .keep_db = true,
                 .bootstrap_key = kKey,
                 .flags = flags});
  if (!server.WaitUntilServing(std::chrono::minutes(10))) return -1;
  return Seconds(start);
}

// The start-up check's cost on the database of an n-row import.
int CheckCost(const std::string& campaignd, const std::string& work,
              const std::string& csv, int64_t n) {
  const std::string db = work + "/check.db";
  std::string note;
  const double rate = ImportOnce(campaignd, db, {}, csv, n, false, &note);
  if (rate <= 0) return 1;
  std::cout << absl::StrFormat(
      "  import: %.0f rows/s; file %.0f MB\n", rate,
      static_cast<double>(std::filesystem::file_size(db)) / 1e6);
  const auto check_start = Clock::now();
  std::string verdict;
  {
    SQLite::Database file(db, SQLite::OPEN_READONLY);
    SQLite::Statement check(file, "PRAGMA quick_check");
    while (check.executeStep()) verdict += check.getColumn(0).getString();
  }
  std::cout << absl::StrFormat("  PRAGMA quick_check alone: %.2f s (%s)\n",
                               Seconds(check_start), verdict);
  // Alternating, twice each: the first start also meets a cold page cache.
  for (int round = 0; round < 2; ++round) {
    const double checked = StartupSeconds(campaignd, db, {});
    const double skipped = StartupSeconds(campaignd, db, {"--skip-check"});
    if (checked < 0 || skipped < 0) {
      std::cerr << "campaignd exited during start-up\n";
      return 1;
    }
    std::cout << absl::StrFormat(
        "  start-up until serving: with the check %.2f s, --skip-check %.2f "
        "s\n",
        checked, skipped);
  }
  return 0;
}

}  // namespace

// The unrelated writes of one phase: how many, and their latency.
struct Probes {
  Probes() = default;
  explicit Probes(std::vector<int64_t> us) : count(us.size()) {
    if (us.empty()) return;
    std::sort(us.begin(), us.end());
    p99_ms = static_cast<double>(us[(us.size() - 1) * 99 / 100]) / 1000.0;
    worst_ms = static_cast<double>(us.back()) / 1000.0;
  }
  int64_t count = 0;
  double p99_ms = 0;
  double worst_ms = 0;
};

// One size's figures, for the side-by-side table.
struct Figures {
  int64_t rows = 0;
  double raw = 0;  // raw SQLite insert, rows/s
  double e2e = 0;  // end to end, rows/s
  double rss_mb = 0;
  Probes import_writes;
  Probes delete_writes;
  bool purged = false;
  double purge_secs = 0;
};

// Steps 4 to 6 for `rows` (see the top), printing as it goes; nullopt on
// failure. `baseline` and `baseline_fast` (0 = not measured) are step 3's
// rates, `raw` step 2's.
std::optional<Figures> EndToEnd(const std::string& campaignd,
                                const std::string& work,
                                const std::vector<Row>& rows,
                                const std::string& csv, double raw,
                                double baseline, double baseline_fast) {
  Figures f;
  f.rows = static_cast<int64_t>(rows.size());
  f.raw = raw;
  const std::string db = work + "/campaignd.db";
  std::filesystem::remove(db);
  std::filesystem::remove(db + "-wal");
  std::filesystem::remove(db + "-shm");
  Server server({.binary = campaignd,
                 .db = db,
                 .bootstrap_key = kKey,
                 .flags = {"--key-rate", "0"}});
  auto channel =
      grpc::CreateChannel(server.target(), grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 std::chrono::seconds(20))) {
    std::cerr << "campaignd did not come up\n";
    server.Stop(SIGKILL);
    return std::nullopt;
  }
  auto senders = v1::SenderService::NewStub(channel);
  auto campaigns_stub = v1::CampaignService::NewStub(channel);
  auto suppressions = v1::SuppressionService::NewStub(channel);
  v1::RegisterSenderRequest sreq;
  sreq.set_sender_id("+15550001");
  sreq.set_channel(v1::sms);
  sreq.set_tier(v1::Sender::tier_100k);
  v1::Sender sender;
  grpc::Status s = senders->RegisterSender(Ctx().get(), sreq, &sender);
  v1::CreateCampaignRequest creq;
  creq.set_name("bench");
  creq.set_channel(v1::sms);
  creq.set_sender_id("+15550001");
  creq.set_body("Hi {{name}}, {{code}}");
  v1::Campaign campaign;
  if (s.ok()) s = campaigns_stub->CreateCampaign(Ctx().get(), creq, &campaign);
  for (const Row& r : rows) {
    if (!s.ok() || !r.suppressed) continue;
    v1::AddSuppressionRequest req;
    req.set_address(r.raw);
    req.set_default_region("US");
    req.set_channel(v1::sms);
    req.set_reason(v1::Suppression::opt_out);
    v1::Suppression out;
    s = suppressions->AddSuppression(Ctx().get(), req, &out);
  }
  if (!s.ok()) {
    std::cerr << "set-up failed: " << s.error_message() << "\n";
    server.Stop(SIGKILL);
    return std::nullopt;
  }

  // Unrelated writes (AddSuppression every 20 ms) while the import, and
  // later the delete, run: their latencies, per phase.
  std::atomic<bool> probing{true};
  std::mutex probe_mu;
  std::vector<int64_t> latencies_us;
  auto take_probes = [&] {
    std::lock_guard<std::mutex> lock(probe_mu);
    std::vector<int64_t> out;
    out.swap(latencies_us);
    return Probes(std::move(out));
  };
  std::thread prober([&] {
    int64_t i = 0;
    while (probing.load()) {
      v1::AddSuppressionRequest req;
      req.set_address(absl::StrCat("probe", i++, "@example.com"));
      req.set_channel(v1::email);
      v1::Suppression out;
      const auto t = Clock::now();
      suppressions->AddSuppression(Ctx().get(), req, &out);
      const int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(
                             Clock::now() - t)
                             .count();
      {
        std::lock_guard<std::mutex> lock(probe_mu);
        latencies_us.push_back(us);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  auto stop = [&](const std::string& why) {
    std::cerr << why << "\n";
    probing.store(false);
    prober.join();
    server.Stop(SIGKILL);
    return std::optional<Figures>();
  };

  take_probes();
  const auto start = Clock::now();
  v1::ImportRecipientsResponse response;
  s = StreamImport(campaigns_stub.get(), kKey, campaign.id(), csv, &response);
  const double secs = Seconds(start);
  f.import_writes = take_probes();
  const int64_t rss_kb = PeakRssKb(server.pid());
  if (!s.ok()) return stop("import failed: " + s.error_message());

  // ListRecipients over the imported campaign: every page by page_token
  // (keyset), and the last page by page number (offset) for comparison.
  constexpr int kPageLimit = 100;  // the API's largest
  v1::ListRecipientsRequest lreq;
  lreq.set_campaign_id(campaign.id());
  lreq.set_limit(kPageLimit);
  int pages = 0;
  double first_page_ms = 0, last_page_ms = 0, worst_page_ms = 0;
  const auto walk = Clock::now();
  for (;;) {
    v1::ListRecipientsResponse page;
    const auto t = Clock::now();
    s = campaigns_stub->ListRecipients(Ctx().get(), lreq, &page);
    const double ms = Seconds(t) * 1000;
    if (!s.ok()) return stop("ListRecipients failed: " + s.error_message());
    if (pages++ == 0) first_page_ms = ms;
    last_page_ms = ms;
    worst_page_ms = std::max(worst_page_ms, ms);
    if (!page.has_more()) break;
    lreq.set_page_token(page.next_page_token());
  }
  const double walk_secs = Seconds(walk);
  lreq.clear_page_token();
  lreq.set_page(pages);
  v1::ListRecipientsResponse offset_page;
  const auto offset_start = Clock::now();
  s = campaigns_stub->ListRecipients(Ctx().get(), lreq, &offset_page);
  const double offset_ms = Seconds(offset_start) * 1000;
  if (!s.ok()) return stop("ListRecipients failed: " + s.error_message());

  // DeleteCampaign of the imported campaign, with the probes running.
  take_probes();
  v1::DeleteCampaignRequest dreq;
  dreq.set_id(campaign.id());
  google::protobuf::Empty empty;
  const auto delete_start = Clock::now();
  s = campaigns_stub->DeleteCampaign(Ctx().get(), dreq, &empty);
  const double delete_secs = Seconds(delete_start);
  if (!s.ok()) return stop("DeleteCampaign failed: " + s.error_message());
  // The recipients go in the background: watch the row disappear.
  {
    SQLite::Database watch(db, SQLite::OPEN_READONLY);
    watch.setBusyTimeout(5000);
    SQLite::Statement left(watch, "SELECT COUNT(*) FROM campaigns WHERE id=?");
    left.bind(1, campaign.id());
    for (;;) {
      left.executeStep();
      const bool gone = left.getColumn(0).getInt64() == 0;
      left.reset();
      f.purged = gone;
      if (gone || Seconds(delete_start) > 120) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  const double purge_secs = Seconds(delete_start);
  f.delete_writes = take_probes();

  probing.store(false);
  prober.join();
  server.Stop();
  f.e2e = static_cast<double>(response.received()) / secs;
  f.rss_mb = static_cast<double>(rss_kb) / 1024.0;
  f.purge_secs = purge_secs;
  std::cout << absl::StrFormat(
      "  end to end (ImportRecipients):    %9.0f rows/s  (%.2f s)\n", f.e2e,
      secs);
  std::cout << absl::StrFormat(
      "    received %d imported %d duplicates %d invalid %d suppressed %d\n",
      response.received(), response.imported(), response.duplicates(),
      response.invalid(), response.suppressed());
  std::cout << absl::StrFormat("  end to end / raw SQLite insert: %.2fx\n",
                               f.e2e / f.raw);
  if (baseline > 0) {
    std::cout << absl::StrFormat(
        "  end to end / single-thread baseline: %.2fx  (/ normaliser + insert "
        "in one thread: %.2fx)\n",
        f.e2e / baseline, f.e2e / baseline_fast);
  }
  std::cout << absl::StrFormat("  campaignd peak RSS: %.1f MB\n", f.rss_mb);
  std::cout << absl::StrFormat(
      "  unrelated writes during the import: %d, p99 %.1f ms, worst %.1f "
      "ms\n",
      f.import_writes.count, f.import_writes.p99_ms, f.import_writes.worst_ms);
  std::cout << absl::StrFormat(
      "  ListRecipients by page_token, %d pages of %d: first %.1f ms, last "
      "%.1f ms, worst %.1f ms (%.1f s in all)\n",
      pages, kPageLimit, first_page_ms, last_page_ms, worst_page_ms, walk_secs);
  std::cout << absl::StrFormat(
      "  ListRecipients last page by page number (offset): %.1f ms\n",
      offset_ms);
  std::cout << absl::StrFormat(
      "  DeleteCampaign of the imported campaign: answered in %.1f ms, "
      "recipients %s after %.2f s; unrelated writes meanwhile: %d, p99 %.1f "
      "ms, worst %.1f ms\n",
      delete_secs * 1000, f.purged ? "gone" : "NOT gone", purge_secs,
      f.delete_writes.count, f.delete_writes.p99_ms, f.delete_writes.worst_ms);
  std::cout.flush();
  return f;
}

// The end-to-end import on a fresh PostgreSQL database per size, beside
// PostgreSQL's own COPY of as many rows into the same schema.
int OnPostgres(const std::string& campaignd, const std::string& dsn,
               const std::vector<int64_t>& sizes) {
  absl::StatusOr<std::unique_ptr<campaigns::bench::PgBench>> pg =
      campaigns::bench::PgBench::Open(dsn);
  if (!pg.ok()) {
    std::cerr << "PostgreSQL: " << pg.status() << "\n";
    return 1;
  }
  std::cout << "on PostgreSQL at " << (*pg)->Describe() << "\n";
  for (const int64_t n : sizes) {
    std::cout << n << " rows:\n";
    const std::string csv = Csv(Generate(n, 42));
    absl::StatusOr<std::string> raw_db = (*pg)->FreshDatabase();
    absl::StatusOr<std::string> db = (*pg)->FreshDatabase();
    if (!raw_db.ok() || !db.ok()) {
      std::cerr << "PostgreSQL: "
                << (raw_db.ok() ? db.status() : raw_db.status()) << "\n";
      return 1;
    }
    absl::StatusOr<double> raw = campaigns::bench::RawCopyRate(*raw_db, n);
    if (!raw.ok()) {
      std::cerr << "raw COPY: " << raw.status() << "\n";
      return 1;
    }
    std::cout << absl::StrFormat("  %-56s %9.0f rows/s\n",
                                 "raw PostgreSQL COPY (1 transaction):", *raw);
    std::string note;
    const double e2e = ImportOnce(campaignd, *db, {}, csv, n, false, &note);
    if (e2e <= 0) return 1;
    std::cout << absl::StrFormat(
        "  %-56s %9.0f rows/s  (x raw %.2f)\n",
        "end to end: CSV -> ImportRecipients -> committed:", e2e, e2e / *raw);
  }
  return 0;
}

int main(int argc, char** argv) {
  std::string campaignd = "build/server/campaignd";
  std::vector<int64_t> sizes = {1000000};
  std::string work = "/tmp/campaignd-import-bench";
  int ops_rounds = 0;
  bool check_cost = false;
  bool pg = false;
  std::string pg_dsn;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--check-cost") {
      check_cost = true;
      --i;  // takes no value
    } else if (flag == "--pg") {
      pg = true;
      --i;  // takes no value
    } else if (i + 1 == argc) {
      std::cerr << flag << " needs a value\n";
      return 2;
    } else if (flag == "--ops-cost") {
      ops_rounds = std::stoi(argv[i + 1]);
    } else if (flag == "--campaignd") {
      campaignd = argv[i + 1];
    } else if (flag == "--rows") {
      sizes.clear();
      for (absl::string_view size : absl::StrSplit(argv[i + 1], ',')) {
        int64_t n = 0;
        if (!absl::SimpleAtoi(size, &n) || n <= 0) {
          std::cerr << "--rows: " << size << " is not a row count\n";
          return 2;
        }
        sizes.push_back(n);
      }
    } else if (flag == "--work-dir") {
      work = argv[i + 1];
    } else if (flag == "--pg-dsn") {
      pg = true;
      pg_dsn = argv[i + 1];
    } else {
      std::cerr << "usage: import_bench [--campaignd PATH] [--rows N[,N...]] "
                   "[--work-dir DIR] [--ops-cost ROUNDS | --check-cost | "
                   "--pg | --pg-dsn URI]\n";
      return 2;
    }
  }
  std::filesystem::create_directories(work);
  std::cout << "import_bench: " << absl::StrJoin(sizes, ", ") << " rows, "
            << std::thread::hardware_concurrency() << " cores\n";
  if (pg) return OnPostgres(campaignd, pg_dsn, sizes);
  if (ops_rounds > 0 || check_cost) {
    const int64_t n = sizes.front();
    const std::vector<Row> rows = Generate(n, 42);
    const std::string csv = Csv(rows);
    if (ops_rounds > 0) {
      std::cout << "ops cost: metrics and JSON logs off vs on, " << ops_rounds
                << " rounds\n";
      return OpsCost(campaignd, work, csv, n, ops_rounds);
    }
    std::cout << "start-up check cost\n";
    return CheckCost(campaignd, work, csv, n);
  }

  auto line = [](const char* what, double rate) {
    std::cout << absl::StrFormat("  %-56s %9.0f rows/s\n", what, rate);
  };
  std::vector<Figures> all;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const int64_t n = sizes[i];
    std::cout << n << " rows:\n";
    std::vector<Row> rows = Generate(n, 42);
    std::string csv = Csv(rows);
    double baseline = 0, baseline_fast = 0;
    if (i == 0) {  // rates per row that do not depend on the size
      line("libphonenumber Parse+IsValidNumber alone (1 thread):",
           BenchValidate(rows, &Libphonenumber));
      line("campaignd normaliser alone (1 thread):",
           BenchValidate(rows, &Campaignd));
    }
    const double raw = BenchInsert(rows, work + "/raw.db", nullptr);
    line("raw SQLite insert alone (1 statement, 1 transaction):", raw);
    std::filesystem::remove(work + "/raw.db");
    std::filesystem::remove(work + "/raw.db-wal");
    if (i == 0) {
      baseline = BenchInsert(rows, work + "/both.db", &Libphonenumber);
      line("libphonenumber + insert in one thread (the baseline):", baseline);
      baseline_fast = BenchInsert(rows, work + "/fast.db", &Campaignd);
      line("campaignd normaliser + insert in one thread:", baseline_fast);
    }
    std::optional<Figures> f =
        EndToEnd(campaignd, work, rows, csv, raw, baseline, baseline_fast);
    if (!f.has_value()) return 1;
    all.push_back(*f);
  }
  if (all.size() > 1) {
    std::cout << "side by side (x raw: the same size's raw SQLite insert; x "
              << all.front().rows << ": its end-to-end rate):\n";
    std::cout << absl::StrFormat(
        "  %10s %10s %6s %7s %9s %24s %12s %24s\n", "rows", "rows/s", "x raw",
        absl::StrCat("x ", all.front().rows / 1000000, "M"), "peak RSS",
        "import: writes p99/worst", "delete gone", "delete: writes p99/worst");
    for (const Figures& f : all) {
      std::cout << absl::StrFormat(
          "  %10d %10.0f %6.2f %7.2f %6.1f MB %11.1f / %7.1f ms %9.1f s%s "
          "%11.1f / %7.1f ms\n",
          f.rows, f.e2e, f.e2e / f.raw, f.e2e / all.front().e2e, f.rss_mb,
          f.import_writes.p99_ms, f.import_writes.worst_ms, f.purge_secs,
          f.purged ? " " : "!", f.delete_writes.p99_ms,
          f.delete_writes.worst_ms);
    }
  }
  return 0;
}
