// dispatch_bench: how fast and how exactly the engine sends.
//
//   build/tools/bench/dispatch_bench --campaignd build/server/campaignd
//                                    [--recipients 1000000] [--batch-size 1000]
//                                    [--accuracy-seconds 21]
//
// Throughput: imports N recipients into a campaign of an `unlimited` sender
// on a fresh campaignd (simulator: no latency, no failures, no receipts;
// with --receipts, the simulator's defaults: each delivered after 1 s),
// starts it and times Start -> `sent` (every status durable, as the
// campaign reaches `sent` only after the last outcome's commit), with
// campaignd's peak RSS during the import and, apart, from Start to `sent`.
// Then, on the same database file with campaignd stopped, the raw SQLite rate
// of updating the same rows' status in id order in batched transactions (one
// prepared statement, batch-size rows a transaction), and the ratio of the two.
// With --pg (a throwaway cluster, fsync on) or --pg-dsn URI, the throughput
// run only, on a fresh PostgreSQL database, beside PostgreSQL's own batched
// UPDATE of the same rows (one statement and durable commit per batch-size
// rows, tools/bench/pg_bench.h).
//
// Accuracy: one campaign per tier (tier_1k 10/s, tier_10k 30/s, tier_100k
// 80/s) on its own sender, all at once, each with enough recipients for
// --accuracy-seconds of sending; from the simulator's send log: the achieved
// rate against the tier, and the most messages in any one-second window.
// Webhook: the same throughput through the generic webhook provider to a
// local HTTP sink in this process (every message a signed POST, every
// outcome durable), printed beside the simulator path of the same run.
//
// Ops cost (--ops-cost): the throughput run with metrics and JSON logs off,
// then on with /metrics scraped every 100 ms, alternating --rounds times;
// the on/off ratio of the rates.
//
// Instances (--instances K, with --pg or --pg-dsn): the same N recipients
// in K campaigns sent by one campaignd, then by K campaignd on one database
// (campaign i started on instance i), alternating --rounds times; each
// run's rate, each instance's CPU and the machine's busy cores, and the
// ratio of the best rates.
//
// Run by hand, not in CI.
#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "campaigns/v1/account.grpc.pb.h"
#include "campaigns/v1/campaign.grpc.pb.h"
#include "campaigns/v1/sender.grpc.pb.h"
#include "campaigns/v1/suppression.grpc.pb.h"
#include "server/http/http_server.h"
#include "tools/bench/bench_util.h"
#include "tools/bench/pg_bench.h"

namespace {

namespace v1 = campaigns::v1;
using campaigns::bench::Clock;
using campaigns::bench::CpuSeconds;
using campaigns::bench::FreePort;
using campaigns::bench::PeakRssKb;
using campaigns::bench::ProcStatusKb;
using campaigns::bench::ResetPeakRss;
using campaigns::bench::Seconds;

constexpr char kKey[] = "ck_dispatch_bench_admin_key_0000";

std::unique_ptr<grpc::ClientContext> Ctx(const std::string& key = kKey) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("authorization", absl::StrCat("Bearer ", key));
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::minutes(10));
  return ctx;
}

// A campaignd child process on a fresh database.
class Server {
 public:
  Server(const std::string& binary, const std::string& db,
         std::vector<std::string> flags)
      : process_({.binary = binary,
                  .db = db,
                  .bootstrap_key = kKey,
                  // A load test of the pipeline, not of the per-key limit.
                  .flags = WithKeyRateOff(std::move(flags))}) {
    channel_ = grpc::CreateChannel(process_.target(),
                                   grpc::InsecureChannelCredentials());
    up_ = channel_->WaitForConnected(std::chrono::system_clock::now() +
                                     std::chrono::seconds(20));
  }

  bool up() const { return up_; }
  // The operator HTTP port (metrics, webhooks) the process listens on.
  int http_port() const { return process_.http_port(); }
  pid_t pid() const { return process_.pid(); }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

  void Stop() { process_.Stop(); }

 private:
  static std::vector<std::string> WithKeyRateOff(
      std::vector<std::string> flags) {
    flags.insert(flags.begin(), {"--key-rate", "0"});
    return flags;
  }

  campaigns::bench::Campaignd process_;
  bool up_ = false;
  std::shared_ptr<grpc::Channel> channel_;
};

bool Check(const grpc::Status& s, const char* what) {
  if (!s.ok()) std::cerr << what << ": " << s.error_message() << "\n";
  return s.ok();
}

// Registers a sender of `tier` and creates a campaign with `n` recipients.
bool NewCampaign(Server& server, const std::string& sender_id,
                 v1::Sender::Tier tier, int64_t n, int32_t batch_size,
                 int64_t base, std::string* id,
                 const std::string& body = "Hi {{name}}, your code is {{code}}",
                 const std::string& provider = "") {
  auto senders = v1::SenderService::NewStub(server.channel());
  auto campaigns = v1::CampaignService::NewStub(server.channel());
  v1::RegisterSenderRequest sreq;
  sreq.set_sender_id(sender_id);
  sreq.set_channel(v1::sms);
  sreq.set_tier(tier);
  if (!provider.empty()) sreq.set_provider(provider);
  v1::Sender sender;
  if (!Check(senders->RegisterSender(Ctx().get(), sreq, &sender), "sender")) {
    return false;
  }
  v1::CreateCampaignRequest creq;
  creq.set_name(sender_id);
  creq.set_channel(v1::sms);
  creq.set_sender_id(sender_id);
  creq.set_body(body);
  creq.set_batch_size(batch_size);
  v1::Campaign c;
  if (!Check(campaigns->CreateCampaign(Ctx().get(), creq, &c), "create")) {
    return false;
  }
  *id = c.id();
  v1::ImportRecipientsResponse resp;
  auto ctx = Ctx();
  auto writer = campaigns->ImportRecipients(ctx.get(), &resp);
  v1::ImportRecipientsRequest first;
  first.set_campaign_id(c.id());
  first.set_format(v1::ImportRecipientsRequest::csv);
  first.set_default_region("US");
  writer->Write(first);
  std::string chunk = "phone,name,code\n";
  // Valid US numbers, all distinct: +1, an area code, then 2000000 and up,
  // 8,000,000 of them per area code.
  constexpr int kAreas[] = {202, 212, 312, 415, 617, 713};
  constexpr int64_t kPerArea = 8'000'000;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = base + i;
    const int area = kAreas[(k / kPerArea) % std::size(kAreas)];
    absl::StrAppend(&chunk, "+1", area, 2000000 + k % kPerArea, ",n", i, ",c",
                    i, "\n");
    if (chunk.size() > (1 << 20) || i + 1 == n) {
      v1::ImportRecipientsRequest m;
      m.set_csv_chunk(chunk);
      writer->Write(m);
      chunk.clear();
    }
  }
  writer->WritesDone();
  if (!Check(writer->Finish(), "import")) return false;
  if (resp.imported() != n) {
    std::cerr << "imported " << resp.imported() << " of " << n << "\n";
    return false;
  }
  return true;
}

v1::Campaign Get(Server& server, const std::string& id) {
  auto campaigns = v1::CampaignService::NewStub(server.channel());
  v1::GetCampaignRequest req;
  req.set_id(id);
  v1::Campaign c;
  campaigns->GetCampaign(Ctx().get(), req, &c);
  return c;
}

// Polls every `poll` until the campaign is no longer sending; returns it.
v1::Campaign WaitWhileSending(Server& server, const std::string& id,
                              std::chrono::milliseconds poll) {
  for (;;) {
    v1::Campaign c = Get(server, id);
    if (c.status() != v1::Campaign::sending) return c;
    std::this_thread::sleep_for(poll);
  }
}

bool Start(Server& server, const std::string& id) {
  auto campaigns = v1::CampaignService::NewStub(server.channel());
  v1::StartCampaignRequest req;
  req.set_id(id);
  v1::Campaign c;
  return Check(campaigns->StartCampaign(Ctx().get(), req, &c), "start");
}

// Raw SQLite: the campaign's rows set to sent in id order, `batch` rows a
// transaction, with the statement campaignd uses. Rows per second.
double RawUpdates(const std::string& db_path, int32_t batch) {
  SQLite::Database db(db_path, SQLite::OPEN_READWRITE);
  db.exec("PRAGMA journal_mode=WAL");
  db.exec("PRAGMA synchronous=NORMAL");
  std::vector<int64_t> seqs;
  {
    SQLite::Statement st(db, "SELECT seq FROM recipients ORDER BY seq");
    while (st.executeStep()) seqs.push_back(st.getColumn(0).getInt64());
    // Back to queued (untimed), so the timed updates do what campaignd did.
    db.exec("UPDATE recipients SET status='queued', provider_message_id=''");
  }
  const auto start = Clock::now();
  SQLite::Statement up(
      db,
      "UPDATE recipients SET status='sent', provider_message_id=?1, "
      "error_code='', error_desc='', skip_reason='', attempts=attempts+1, "
      "sent_at=?2, updated_at=?2 WHERE seq=?3 AND campaign_seq=1 AND "
      "status='queued'");
  const int64_t now = absl::ToUnixMicros(absl::Now());
  for (size_t i = 0; i < seqs.size(); i += batch) {
    SQLite::Transaction txn(db);
    for (size_t j = i; j < std::min(seqs.size(), i + batch); ++j) {
      // Ids shaped like the simulator's (growing), as campaignd wrote.
      up.bind(1, absl::StrFormat("sim_%016x", 1800000000000000 + seqs[j]));
      up.bind(2, static_cast<int64_t>(now));
      up.bind(3, static_cast<int64_t>(seqs[j]));
      up.exec();
      up.reset();
    }
    txn.commit();
  }
  return static_cast<double>(seqs.size()) / Seconds(start);
}

// One campaign of `n` recipients sent through the simulator (no latency,
// no failures, no receipts) on a fresh campaignd run with `flags`; with
// `scrape`, /metrics is scraped every 100 ms meanwhile. Start -> sent in
// msg/s, or 0 on failure.
double SendOnce(const std::string& binary, const std::string& db,
                std::vector<std::string> flags, int64_t n, int32_t batch,
                bool scrape, std::string* scrape_note) {
  flags.insert(flags.end(), {"--error-threshold", "0", "--simulator",
                             "default:delivered=0"});
  Server server(binary, db, flags);
  std::string id;
  if (!server.up() || !NewCampaign(server, "+15550001", v1::Sender::unlimited,
                                   n, batch, 0, &id)) {
    std::cerr << "set-up failed\n";
    return 0;
  }
  std::optional<campaigns::bench::Scraper> scraper;
  if (scrape) {
    scraper.emplace(server.http_port(), std::chrono::milliseconds(100));
  }
  const auto start = Clock::now();
  if (!Start(server, id)) return 0;
  const v1::Campaign c =
      WaitWhileSending(server, id, std::chrono::milliseconds(20));
  const double secs = Seconds(start);
  if (scraper) {
    *scrape_note = absl::StrFormat("%d scrapes, slowest %.1f ms", scraper->ok(),
                                   scraper->worst_ms());
  }
  if (c.stats().sent() != n) {
    std::cerr << "ended with " << c.stats().sent() << " sent\n";
    return 0;
  }
  return static_cast<double>(n) / secs;
}

// The cost of metrics and JSON logs: the same campaign sent with both off
// (--no-metrics, text logs) and on (metrics, --log-format json, /metrics
// scraped every 100 ms), alternating, `rounds` times each.
int OpsCost(const std::string& binary, const std::string& work, int64_t n,
            int32_t batch, int rounds) {
  return campaigns::bench::OpsCost(
      rounds, "msg/s", [&](bool on, std::string* note) {
        return SendOnce(binary, work + (on ? "/ops_on.db" : "/ops_off.db"),
                        campaigns::bench::OpsFlags(on), n, batch, on, note);
      });
}

// With `pg`, campaignd runs on a fresh PostgreSQL database of it, and the
// raw rate is PostgreSQL's batched UPDATE of the same rows.
int Throughput(const std::string& binary, const std::string& work, int64_t n,
               int32_t batch, bool receipts, campaigns::bench::PgBench* pg) {
  std::string db = work + "/throughput.db";
  if (pg != nullptr) {
    absl::StatusOr<std::string> fresh = pg->FreshDatabase();
    if (!fresh.ok()) {
      std::cerr << "PostgreSQL: " << fresh.status() << "\n";
      return 1;
    }
    db = *fresh;
  }
  double rate = 0;
  {
    // With receipts, the simulator's defaults: each message delivered 1 s
    // after it was accepted, every receipt a durable write too.
    std::vector<std::string> flags = {"--error-threshold", "0"};
    if (!receipts) {
      flags.insert(flags.end(), {"--simulator", "default:delivered=0"});
    }
    Server server(binary, db, flags);
    if (!server.up()) {
      std::cerr << "campaignd did not come up\n";
      return 1;
    }
    std::string id;
    if (!NewCampaign(server, "+15550001", v1::Sender::unlimited, n, batch, 0,
                     &id)) {
      return 1;
    }
    const int64_t import_rss_kb = PeakRssKb(server.pid());
    std::cout << absl::StrFormat(
        "  campaignd peak RSS after the import (before Start): %.1f MB\n",
        static_cast<double>(import_rss_kb) / 1024.0);
    // The dispatch's own peak, apart from the import's.
    const bool dispatch_peak = ResetPeakRss(server.pid());
    const auto mb = [&server](const char* field) {
      return static_cast<double>(ProcStatusKb(server.pid(), field)) / 1024;
    };
    std::cout << absl::StrFormat(
        "  campaignd RSS at Start: %.1f MB (anonymous %.1f, files %.1f, "
        "shared memory %.1f)\n",
        mb("VmRSS"), mb("RssAnon"), mb("RssFile"), mb("RssShmem"));
    const double cpu_before = CpuSeconds(server.pid());
    const auto start = Clock::now();
    if (!Start(server, id)) return 1;
    const v1::Campaign c =
        WaitWhileSending(server, id, std::chrono::milliseconds(20));
    const double secs = Seconds(start);
    const double cpu = CpuSeconds(server.pid()) - cpu_before;
    const double peak_mb = static_cast<double>(PeakRssKb(server.pid())) / 1024;
    if (dispatch_peak) {
      std::cout << absl::StrFormat(
          "  campaignd peak RSS from Start to sent: %.1f MB\n", peak_mb);
    } else {
      std::cout << absl::StrFormat(
          "  campaignd peak RSS (whole run; the dispatch's own is unknown): "
          "%.1f MB\n",
          peak_mb);
    }
    if (c.stats().sent() + c.stats().delivered() != n) {
      std::cerr << "ended " << v1::Campaign::Status_Name(c.status()) << " with "
                << c.stats().sent() << " sent\n";
      return 1;
    }
    rate = static_cast<double>(n) / secs;
    std::cout << absl::StrFormat(
        "  end to end, Start -> sent (every status durable): %9.0f msg/s  "
        "(%d in %.2f s; campaignd CPU %.1f us/msg, %.2f cores)\n",
        rate, n, secs, 1e6 * cpu / static_cast<double>(n), cpu / secs);
  }
  double raw = 0;
  if (pg != nullptr) {
    absl::StatusOr<double> pg_raw =
        campaigns::bench::RawBatchedUpdateRate(db, batch);
    if (!pg_raw.ok()) {
      std::cerr << "raw PostgreSQL updates: " << pg_raw.status() << "\n";
      return 1;
    }
    raw = *pg_raw;
    std::cout << absl::StrFormat(
        "  raw PostgreSQL batched UPDATE, seq order, %d a statement and "
        "commit: %9.0f rows/s\n",
        batch, raw);
  } else {
    raw = RawUpdates(db, batch);
    std::cout << absl::StrFormat(
        "  raw SQLite status updates, id order, %d a transaction: %9.0f "
        "rows/s\n",
        batch, raw);
  }
  std::cout << absl::StrFormat("  engine / raw: %.2f\n", rate / raw);
  return 0;
}

// The generic webhook provider end to end: campaignd sends each message as
// a signed POST to a local sink (libmicrohttpd in this process, answering
// 200 with a message_id at once) and records every outcome durably.
// Printed beside the simulator path measured in the same run.
int Webhook(const std::string& binary, const std::string& work, int64_t n,
            int32_t batch, int max_in_flight) {
  std::atomic<int64_t> received{0};
  auto sink = campaigns::http::HttpServer::Start(
      "127.0.0.1:0",
      [&received](campaigns::http::HttpServerRequest req,
                  campaigns::http::HttpReply reply) {
        const int64_t k = ++received;
        campaigns::http::HttpServerResponse r;
        r.content_type = "application/json";
        r.body = absl::StrCat("{\"message_id\":\"sink-", k, "-",
                              req.Header("webhook-id").size(), "\"}");
        reply(std::move(r));
      },
      [] {
        campaigns::http::HttpServerOptions o;
        o.threads = 2;
        return o;
      }());
  if (!sink.ok()) {
    std::cerr << "sink: " << sink.status() << "\n";
    return 1;
  }
  const std::string secret_file = work + "/sink.secret";
  std::ofstream(secret_file) << "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n";
  const std::string config = work + "/webhook.toml";
  std::ofstream(config) << absl::StrFormat(
      "[[providers]]\nname = \"sink\"\ntype = \"webhook\"\n"
      "url = \"http://127.0.0.1:%d/send\"\nsecret = \"file:%s\"\n"
      "max_in_flight = %d\n",
      (*sink)->port(), secret_file, max_in_flight);
  const std::string db = work + "/webhook.db";
  Server server(binary, db,
                {"--simulator", "default:delivered=0", "--error-threshold", "0",
                 "--config", config});
  if (!server.up()) {
    std::cerr << "campaignd did not come up\n";
    return 1;
  }
  std::string id;
  if (!NewCampaign(server, "+15550009", v1::Sender::unlimited, n, batch, 0, &id,
                   "Hi {{name}}, your code is {{code}}", "sink")) {
    return 1;
  }
  const double cpu_before = CpuSeconds(server.pid());
  const double sink_cpu_before = CpuSeconds(getpid());
  const auto start = Clock::now();
  if (!Start(server, id)) return 1;
  const v1::Campaign c =
      WaitWhileSending(server, id, std::chrono::milliseconds(20));
  const double secs = Seconds(start);
  const double cpu = CpuSeconds(server.pid()) - cpu_before;
  const double sink_cpu = CpuSeconds(getpid()) - sink_cpu_before;
  const int64_t rss_kb = PeakRssKb(server.pid());
  if (c.stats().sent() != n) {
    std::cerr << "ended " << v1::Campaign::Status_Name(c.status()) << " with "
              << c.stats().sent() << " sent, " << c.stats().failed()
              << " failed\n";
    return 1;
  }
  std::cout << absl::StrFormat(
      "  webhook provider -> local sink, Start -> sent (every status "
      "durable): %9.0f msg/s  (%d in %.2f s, %d requests at the sink, "
      "max_in_flight %d)\n",
      static_cast<double>(n) / secs, n, secs, received.load(), max_in_flight);
  std::cout << absl::StrFormat(
      "  CPU: campaignd %.1f us/msg (%.2f cores), sink and this bench "
      "%.1f us/msg (%.2f cores)\n",
      1e6 * cpu / static_cast<double>(n), cpu / secs,
      1e6 * sink_cpu / static_cast<double>(n), sink_cpu / secs);
  std::cout << absl::StrFormat("  campaignd peak RSS (webhook run): %.1f MB\n",
                               static_cast<double>(rss_kb) / 1024.0);
  return 0;
}

// EstimateCost's time: the first call (which counts each recipient's SMS
// segments once, when the message has placeholders) and later ones (one
// grouped query); Start's reservation; and dispatch with billing on.
double TimeEstimate(Server& server, const std::string& id,
                    v1::CostEstimate* out) {
  auto campaigns = v1::CampaignService::NewStub(server.channel());
  v1::EstimateCostRequest req;
  req.set_id(id);
  const auto start = Clock::now();
  if (!Check(campaigns->EstimateCost(Ctx().get(), req, out), "estimate")) {
    return -1;
  }
  return Seconds(start);
}

int Money(const std::string& binary, const std::string& work, int64_t n,
          int32_t batch) {
  Server server(
      binary, work + "/money.db",
      {"--simulator", "default:delivered=0", "--error-threshold", "0"});
  if (!server.up()) return 1;
  auto accounts = v1::AccountService::NewStub(server.channel());
  v1::Account me;
  if (!Check(accounts->GetAccount(Ctx().get(), {}, &me), "account")) return 1;
  v1::SetPricesRequest prices;
  prices.set_account_id(me.id());
  v1::Price* p = prices.add_prices();
  p->set_channel(v1::sms);
  p->set_amount(50000);
  p = prices.add_prices();
  p->set_channel(v1::sms);
  p->set_country("US");
  p->set_amount(40000);
  v1::SetPricesResponse stored;
  if (!Check(accounts->SetPrices(Ctx().get(), prices, &stored), "prices")) {
    return 1;
  }
  v1::CreateAccountRequest other_req;
  other_req.set_name("unrelated writes");
  v1::Account other;
  if (!Check(accounts->CreateAccount(Ctx().get(), other_req, &other),
             "account")) {
    return 1;
  }
  const std::string other_key = other.api_key().secret();
  const int64_t credits = 2 * 40000 * n;
  v1::AddCreditsRequest add;
  add.set_account_id(me.id());
  add.set_amount(credits);
  if (!Check(accounts->AddCredits(Ctx().get(), add, &me), "credits")) return 1;

  struct Case {
    const char* what;
    const char* body;
    std::string id;
  };
  std::vector<Case> cases = {
      {"message with placeholders (segments counted per recipient)",
       "Hi {{name}}, your code is {{code}}", ""},
      {"constant message (segments counted once)",
       "Your parcel is on its way; track it in the app.", ""}};
  int64_t base = 0;
  for (Case& c : cases) {
    if (!NewCampaign(server, absl::StrCat("+1555009", base / n),
                     v1::Sender::unlimited, n, batch, base, &c.id, c.body)) {
      return 1;
    }
    base += n;
    v1::CostEstimate e;
    // Unrelated writes meanwhile (another account's, so that the
    // campaign's own sends are not checked against them): how long the
    // first call holds them up.
    std::atomic<bool> stop{false};
    int64_t worst_us = 0;
    std::thread writer([&] {
      auto suppressions = v1::SuppressionService::NewStub(server.channel());
      for (int i = 0; !stop.load(); ++i) {
        v1::AddSuppressionRequest req;
        req.set_address(absl::StrCat("bench", i, "@example.com"));
        req.set_channel(v1::email);
        v1::Suppression out;
        const auto t0 = Clock::now();
        suppressions->AddSuppression(Ctx(other_key).get(), req, &out);
        worst_us = std::max<int64_t>(worst_us,
                                     static_cast<int64_t>(Seconds(t0) * 1e6));
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
    const double first = TimeEstimate(server, c.id, &e);
    stop.store(true);
    writer.join();
    double later = 1e9;
    for (int i = 0; i < 5; ++i)
      later = std::min(later, TimeEstimate(server, c.id, &e));
    if (first < 0 || later < 0) return 1;
    std::cout << absl::StrFormat(
        "  %s, %d recipients:\n"
        "    EstimateCost first call %8.1f ms, later calls (best of 5) %6.1f ms"
        "  (total %d micro-credits, %d lines)\n"
        "    worst unrelated write during the first call: %.1f ms\n",
        c.what, n, first * 1000, later * 1000, e.total(), e.lines_size(),
        static_cast<double>(worst_us) / 1000);
  }
  // Start the first (its reservation), and dispatch it with billing on.
  const std::string& id = cases[0].id;
  auto start = Clock::now();
  if (!Start(server, id)) return 1;
  const double start_secs = Seconds(start);
  const v1::Campaign c =
      WaitWhileSending(server, id, std::chrono::milliseconds(20));
  const double secs = Seconds(start);
  if (c.stats().sent() != n) {
    std::cerr << "billed campaign ended with " << c.stats().sent() << " sent\n";
    return 1;
  }
  if (!Check(accounts->GetAccount(Ctx().get(), {}, &me), "account")) return 1;
  std::cout << absl::StrFormat(
      "  StartCampaign (reserves the estimate): %.1f ms\n"
      "  billed end to end, Start -> sent: %9.0f msg/s  (%d in %.2f s)\n"
      "  ledger: balance %d + reserved %d = %d; credits %d - debited %d = %d\n",
      start_secs * 1000, static_cast<double>(n) / secs, n, secs,
      me.credits_balance(), me.credits_reserved(),
      me.credits_balance() + me.credits_reserved(), credits, n * 40000,
      credits - n * 40000);
  return 0;
}

int Accuracy(const std::string& binary, const std::string& work, int seconds) {
  const std::string log = work + "/simulator.jsonl";
  std::filesystem::remove(log);
  struct Tier {
    v1::Sender::Tier tier;
    int rate;
    std::string sender;
    std::string id;
  };
  std::vector<Tier> tiers = {{v1::Sender::tier_1k, 10, "+15550010", ""},
                             {v1::Sender::tier_10k, 30, "+15550030", ""},
                             {v1::Sender::tier_100k, 80, "+15550080", ""}};
  {
    Server server(
        binary, work + "/accuracy.db",
        {"--simulator-log", log, "--simulator", "default:delivered=0"});
    if (!server.up()) return 1;
    int64_t base = 0;
    for (Tier& t : tiers) {
      const int64_t n = int64_t{t.rate} * seconds + 1;
      if (!NewCampaign(server, t.sender, t.tier, n, 100, base, &t.id)) {
        return 1;
      }
      base += n;
    }
    for (Tier& t : tiers) {
      if (!Start(server, t.id)) return 1;
    }
    for (Tier& t : tiers) {
      WaitWhileSending(server, t.id, std::chrono::milliseconds(100));
    }
  }
  std::map<std::string, std::vector<absl::Time>> times;  // by campaign
  std::ifstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || j.value("outcome", "") != "accepted") continue;
    const std::string key = j.value("key", "");
    absl::Time t;
    std::string err;
    if (!absl::ParseTime(absl::RFC3339_full, j.value("time", ""), &t, &err)) {
      continue;
    }
    times[key.substr(0, key.find(':'))].push_back(t);
  }
  for (const Tier& t : tiers) {
    std::vector<absl::Time>& v = times[t.id];
    std::sort(v.begin(), v.end());
    if (v.size() < 2) {
      std::cerr << "no sends logged for " << t.sender << "\n";
      return 1;
    }
    const double secs = absl::ToDoubleSeconds(v.back() - v.front());
    const double achieved = static_cast<double>(v.size() - 1) / secs;
    int worst = 0;
    size_t j = 0;
    for (size_t i = 0; i < v.size(); ++i) {
      j = std::max(j, i);
      while (j < v.size() && v[j] < v[i] + absl::Seconds(1)) ++j;
      worst = std::max(worst, static_cast<int>(j - i));
    }
    std::cout << absl::StrFormat(
        "  tier %-9s %3d/s: %5d messages over %5.2f s = %7.3f/s (%+.2f %%), "
        "most in any 1 s window: %d\n",
        v1::Sender::Tier_Name(t.tier), t.rate, v.size(), secs, achieved,
        100.0 * (achieved - t.rate) / t.rate, worst);
  }
  return 0;
}

// Busy and total CPU time of the whole machine so far (/proc/stat's first
// line), in seconds: what campaignd, PostgreSQL and this process used.
struct BoxCpu {
  double busy = 0;
  double total = 0;
};
BoxCpu ReadBoxCpu() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  in >> cpu;
  BoxCpu t;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  // user nice system idle iowait irq softirq steal
  for (int i = 0; i < 8; ++i) {
    int64_t v = 0;
    if (!(in >> v)) break;
    t.total += static_cast<double>(v) / tick;
    if (i != 3 && i != 4) t.busy += static_cast<double>(v) / tick;
  }
  return t;
}

// One dispatch of `n` recipients split over `campaign_count` campaigns, each on
// its own unlimited sender, by `instances` campaignd processes on one fresh
// PostgreSQL database: campaign i is imported into and started on instance
// i % instances (the instance a campaign is started on takes its lease and
// sends it). Times the first Start to the last campaign's `sent`; prints
// the rate, each instance's CPU, and the machine's busy cores meanwhile.
// Returns msg/s, 0 on failure.
double SendOnInstances(const std::string& binary, int64_t n, int32_t batch,
                       int instances, int campaign_count,
                       campaigns::bench::PgBench& pg) {
  absl::StatusOr<std::string> db = pg.FreshDatabase();
  if (!db.ok()) {
    std::cerr << "PostgreSQL: " << db.status() << "\n";
    return 0;
  }
  std::vector<std::unique_ptr<Server>> servers;
  for (int i = 0; i < instances; ++i) {
    servers.push_back(std::make_unique<Server>(
        binary, *db,
        std::vector<std::string>{"--error-threshold", "0", "--simulator",
                                 "default:delivered=0"}));
    if (!servers.back()->up()) {
      std::cerr << "campaignd " << i << " did not come up\n";
      return 0;
    }
  }
  const int64_t each = n / campaign_count;
  std::vector<std::string> ids(campaign_count);
  for (int c = 0; c < campaign_count; ++c) {
    if (!NewCampaign(*servers[c % instances], absl::StrCat("+1555000", c + 1),
                     v1::Sender::unlimited, each, batch, c * each, &ids[c])) {
      return 0;
    }
  }
  std::vector<double> cpu_before;
  for (const auto& s : servers) cpu_before.push_back(CpuSeconds(s->pid()));
  const BoxCpu box_before = ReadBoxCpu();
  const auto start = Clock::now();
  for (int c = 0; c < campaign_count; ++c) {
    if (!Start(*servers[c % instances], ids[c])) return 0;
  }
  int64_t sent = 0;
  for (int c = 0; c < campaign_count; ++c) {
    const v1::Campaign done = WaitWhileSending(*servers[c % instances], ids[c],
                                               std::chrono::milliseconds(20));
    sent += done.stats().sent();
  }
  const double secs = Seconds(start);
  const BoxCpu box_after = ReadBoxCpu();
  if (sent != each * campaign_count) {
    std::cerr << "ended with " << sent << " sent of " << each * campaign_count
              << "\n";
    return 0;
  }
  std::string cpus;
  for (size_t i = 0; i < servers.size(); ++i) {
    absl::StrAppend(
        &cpus, i == 0 ? "" : ", ",
        absl::StrFormat(
            "%.2f", (CpuSeconds(servers[i]->pid()) - cpu_before[i]) / secs));
  }
  const double rate = static_cast<double>(each * campaign_count) / secs;
  std::cout << absl::StrFormat(
      "  %d instance(s), %d campaigns: %9.0f msg/s  (%d in %.2f s; "
      "campaignd cores %s; machine busy %.2f of %.0f cores)\n",
      instances, campaign_count, rate, each * campaign_count, secs, cpus,
      (box_after.busy - box_before.busy) / secs,
      (box_after.total - box_before.total) / secs);
  for (auto& s : servers) s->Stop();
  return rate;
}

// Point 8 of issue 17: the same work (n recipients in `instances`
// campaigns) sent by one instance, then by `instances` instances on one
// database, alternating `rounds` times; the ratio of the best rates.
int Instances(const std::string& binary, int64_t n, int32_t batch,
              int instances, int rounds, campaigns::bench::PgBench& pg) {
  const int campaign_count = instances;
  double one = 0;
  double many = 0;
  for (int r = 0; r < rounds; ++r) {
    const double a = SendOnInstances(binary, n, batch, 1, campaign_count, pg);
    const double b =
        SendOnInstances(binary, n, batch, instances, campaign_count, pg);
    if (a == 0 || b == 0) return 1;
    one = std::max(one, a);
    many = std::max(many, b);
  }
  std::cout << absl::StrFormat(
      "  best of %d: one instance %.0f msg/s, %d instances %.0f msg/s, "
      "ratio %.2f\n",
      rounds, one, instances, many, many / one);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string binary = "build/server/campaignd";
  std::string work = "/tmp/campaignd-dispatch-bench";
  int64_t n = 1000000;
  int32_t batch = 1000;
  int seconds = 21;
  bool throughput = true;
  bool accuracy = true;
  bool money = true;
  bool webhook = true;
  bool receipts = false;
  bool ops_cost = false;
  int rounds = 3;
  int max_in_flight = 64;
  bool pg = false;
  std::string pg_dsn;
  int instances = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    const bool has_value = i + 1 < argc;
    if (flag == "--campaignd" && has_value) {
      binary = argv[++i];
    } else if (flag == "--recipients" && has_value) {
      n = std::stoll(argv[++i]);
    } else if (flag == "--batch-size" && has_value) {
      batch = std::stoi(argv[++i]);
    } else if (flag == "--accuracy-seconds" && has_value) {
      seconds = std::stoi(argv[++i]);
    } else if (flag == "--work-dir" && has_value) {
      work = argv[++i];
    } else if (flag == "--max-in-flight" && has_value) {
      max_in_flight = std::stoi(argv[++i]);
    } else if (flag == "--receipts") {
      receipts = true;
    } else if (flag == "--pg") {
      pg = true;
    } else if (flag == "--pg-dsn" && has_value) {
      pg = true;
      pg_dsn = argv[++i];
    } else if (flag == "--instances" && has_value) {
      instances = std::stoi(argv[++i]);
      throughput = accuracy = money = webhook = false;
    } else if (flag == "--ops-cost") {
      ops_cost = true;
      throughput = accuracy = money = webhook = false;
    } else if (flag == "--rounds" && has_value) {
      rounds = std::stoi(argv[++i]);
    } else if (flag == "--throughput-only") {
      accuracy = money = webhook = false;
    } else if (flag == "--webhook-only") {
      accuracy = money = throughput = false;
    } else if (flag == "--throughput-and-webhook") {
      accuracy = money = false;
    } else if (flag == "--accuracy-only") {
      throughput = money = webhook = false;
    } else if (flag == "--money-only") {
      throughput = accuracy = webhook = false;
    } else {
      std::cerr << "usage: dispatch_bench [--campaignd PATH] [--recipients N] "
                   "[--batch-size B] [--accuracy-seconds S] [--work-dir DIR] "
                   "[--max-in-flight M] [--receipts] [--pg | --pg-dsn URI] "
                   "[--throughput-only | --webhook-only "
                   "| --throughput-and-webhook | --accuracy-only | "
                   "--money-only | --ops-cost [--rounds R] "
                   "| --instances K [--rounds R] (with --pg)]\n";
      return 2;
    }
  }
  std::filesystem::create_directories(work);
  std::cout << "dispatch_bench: " << std::thread::hardware_concurrency()
            << " cores\n";
  std::unique_ptr<campaigns::bench::PgBench> postgres;
  if (pg) {
    // The throughput run only: the other runs read SQLite files.
    accuracy = money = webhook = ops_cost = false;
    absl::StatusOr<std::unique_ptr<campaigns::bench::PgBench>> opened =
        campaigns::bench::PgBench::Open(pg_dsn);
    if (!opened.ok()) {
      std::cerr << "PostgreSQL: " << opened.status() << "\n";
      return 1;
    }
    postgres = *std::move(opened);
    std::cout << "on PostgreSQL at " << postgres->Describe() << "\n";
  }
  if (instances > 0) {
    if (!postgres || instances < 2) {
      std::cerr << "--instances K: K >= 2, with --pg or --pg-dsn\n";
      return 2;
    }
    std::cout << "instances: " << n << " recipients in " << instances
              << " campaigns (unlimited senders), batch size " << batch
              << ", one instance vs " << instances << ", " << rounds
              << " round(s)\n";
    if (int rc = Instances(binary, n, batch, instances, rounds, *postgres);
        rc != 0) {
      return rc;
    }
  }
  if (throughput) {
    std::cout << "throughput: " << n << " recipients, unlimited sender, "
              << "batch size " << batch << ", receipts "
              << (receipts ? "on (simulator defaults)" : "off") << "\n";
    if (int rc = Throughput(binary, work, n, batch, receipts, postgres.get());
        rc != 0) {
      return rc;
    }
  }
  if (ops_cost) {
    std::cout << "ops cost: " << n << " recipients, unlimited sender, batch "
              << "size " << batch << ", metrics and JSON logs off vs on\n";
    if (int rc = OpsCost(binary, work, n, batch, rounds); rc != 0) return rc;
  }
  if (webhook) {
    std::cout << "webhook: " << n << " recipients, unlimited sender, batch "
              << "size " << batch << "\n";
    if (int rc = Webhook(binary, work, n, batch, max_in_flight); rc != 0) {
      return rc;
    }
  }
  if (money) {
    std::cout << "money: prices set, batch size " << batch << "\n";
    if (int rc = Money(binary, work, n, batch); rc != 0) return rc;
  }
  if (accuracy) {
    std::cout << "accuracy: " << seconds << " s per tier, all three at once\n";
    if (int rc = Accuracy(binary, work, seconds); rc != 0) return rc;
  }
  return 0;
}
