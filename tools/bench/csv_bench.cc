// csv_bench: the cost per byte of reading import CSV as the number of
// columns grows, and whether a wide import holds other calls up.
//
//   build/tools/bench/csv_bench [--mb 16]
//   build/tools/bench/csv_bench --campaignd build/server/campaignd [--mb 4]
//
// For 10, 100, 1,000, 10,000 and 100,000 columns, prints CPU ns/byte (the
// best of 3 runs) of:
//   1. CsvRowReader in this process, with the row limits lifted: a header of
//      C columns and rows of C fields, every field read into a variable;
//   2. the same with the default limits (ImportRowLimits): a header of at
//      most kMaxRowColumns columns, rows of C fields (beyond the limit each
//      row is an error naming it).
// With --campaignd, also end to end: a header of C columns and rows of C
// fields streamed through ImportRecipients (64 KB chunks) into a campaignd
// it starts with one completion-queue thread (--threads 1) on a fresh
// database (127.0.0.1, free ports; its output discarded), with the answer,
// ns/byte, and the slowest of the GetCampaign calls made one after another
// meanwhile. Run it against an older campaignd binary to compare. Run by hand,
// not in CI.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "campaigns/v1/campaign.grpc.pb.h"
#include "campaigns/v1/sender.grpc.pb.h"
#include "server/domain/import_rows.h"
#include "tools/bench/bench_util.h"

namespace {

using campaigns::CsvRowReader;
using campaigns::ImportRow;
using campaigns::ImportRowLimits;
using campaigns::bench::Clock;
using campaigns::bench::Seconds;
namespace v1 = campaigns::v1;

constexpr char kKey[] = "csv-bench-admin-key-0123456789abcdef";
constexpr int kColumns[] = {10, 100, 1000, 10000, 100000};
constexpr size_t kChunk = 64 * 1024;

// A header of `header_columns` (phone, v1, v2, ...), then rows of `columns`
// fields (a distinct US number, then one-byte fields) up to about `bytes`.
std::string MakeCsv(int header_columns, int columns, size_t bytes) {
  std::string csv = "phone";
  for (int i = 1; i < header_columns; ++i) absl::StrAppend(&csv, ",v", i);
  csv += "\n";
  for (int64_t n = 0; csv.size() < bytes; ++n) {
    absl::StrAppend(&csv, "+1202", 2000000 + n % 8000000);
    for (int i = 1; i < columns; ++i) csv += ",x";
    csv += "\n";
  }
  return csv;
}

// CPU seconds this thread has used (a shared machine's other load does not
// count).
double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Reads `csv` in 64 KB chunks; CPU ns per byte, or -1 on a fatal error.
double ReadNsPerByte(const std::string& csv, const ImportRowLimits& limits,
                     int64_t* rows, int64_t* errors) {
  const double start = ThreadCpuSeconds();
  CsvRowReader reader(campaigns::Channel::kSms, limits);
  std::vector<ImportRow> out;
  *rows = *errors = 0;
  auto count = [&] {
    for (const ImportRow& r : out) *errors += r.error.empty() ? 0 : 1;
    *rows += static_cast<int64_t>(out.size());
    out.clear();
  };
  for (size_t off = 0; off < csv.size(); off += kChunk) {
    if (!reader.Feed(absl::string_view(csv).substr(off, kChunk), &out).ok()) {
      return -1;
    }
    count();
  }
  if (!reader.Finish(&out).ok()) return -1;
  count();
  return (ThreadCpuSeconds() - start) * 1e9 / static_cast<double>(csv.size());
}

double Best3(const std::string& csv, const ImportRowLimits& limits,
             int64_t* rows, int64_t* errors) {
  double best = -1;
  for (int run = 0; run < 3; ++run) {
    const double ns = ReadNsPerByte(csv, limits, rows, errors);
    if (ns < 0) return ns;
    if (best < 0 || ns < best) best = ns;
  }
  return best;
}

std::unique_ptr<grpc::ClientContext> Ctx() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("authorization", absl::StrCat("Bearer ", kKey));
  return ctx;
}

// One import of `csv` into a fresh campaignd (--threads 1); prints a line.
void EndToEnd(const std::string& campaignd, const std::string& db, int columns,
              const std::string& csv) {
  // Quiet: its log lines would break up the table.
  campaigns::bench::Campaignd server(
      {.binary = campaignd,
       .db = db,
       .bootstrap_key = kKey,
       .flags = {"--key-rate", "0", "--threads", "1"},
       .quiet = true});
  auto channel =
      grpc::CreateChannel(server.target(), grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 std::chrono::seconds(20))) {
    std::cerr << "campaignd did not come up\n";
    server.Stop(SIGKILL);
    return;
  }
  auto senders = v1::SenderService::NewStub(channel);
  auto stub = v1::CampaignService::NewStub(channel);
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
  creq.set_body("Hi");
  v1::Campaign campaign;
  if (s.ok()) s = stub->CreateCampaign(Ctx().get(), creq, &campaign);
  if (!s.ok()) {
    std::cerr << "set-up failed: " << s.error_message() << "\n";
    server.Stop(SIGKILL);
    return;
  }

  // GetCampaign one after another until the import is answered.
  std::atomic<bool> done{false};
  double worst_ms = 0;
  int gets = 0;
  std::thread getter([&] {
    v1::GetCampaignRequest req;
    req.set_id(campaign.id());
    while (!done.load()) {
      const auto t = Clock::now();
      v1::Campaign c;
      if (!stub->GetCampaign(Ctx().get(), req, &c).ok()) break;
      worst_ms = std::max(worst_ms, Seconds(t) * 1e3);
      ++gets;
    }
  });

  const auto start = Clock::now();
  v1::ImportRecipientsResponse response;
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kKey));
  auto writer = stub->ImportRecipients(&ctx, &response);
  v1::ImportRecipientsRequest first;
  first.set_campaign_id(campaign.id());
  first.set_format(v1::ImportRecipientsRequest::csv);
  first.set_default_region("US");
  bool open = writer->Write(first);
  for (size_t off = 0; open && off < csv.size(); off += kChunk) {
    v1::ImportRecipientsRequest chunk;
    chunk.set_csv_chunk(csv.substr(off, kChunk));
    open = writer->Write(chunk);
  }
  writer->WritesDone();
  s = writer->Finish();
  const double seconds = Seconds(start);
  done = true;
  getter.join();
  const std::string answer =
      s.ok() ? absl::StrCat("OK, ", response.received(), " rows")
             : absl::StrCat("code ", static_cast<int>(s.error_code()), " (",
                            s.error_message().substr(0, 48), ")");
  std::printf(
      "  %7d columns  %9zu bytes  %8.1f ns/byte  %7.2f s  "
      "GetCampaign: %d, slowest %.1f ms  %s\n",
      columns, csv.size(), seconds * 1e9 / csv.size(), seconds, gets, worst_ms,
      answer.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string campaignd;
  double mb = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--campaignd" && i + 1 < argc) {
      campaignd = argv[++i];
    } else if (arg == "--mb" && i + 1 < argc) {
      mb = std::stod(argv[++i]);
    } else {
      std::cerr << "usage: csv_bench [--mb N] [--campaignd PATH]\n";
      return 2;
    }
  }
  const size_t local_bytes =
      static_cast<size_t>((mb > 0 && campaignd.empty() ? mb : 16) * 1e6);

  ImportRowLimits lifted;
  lifted.max_columns = lifted.max_variables = lifted.max_field_bytes =
      lifted.max_name_bytes = SIZE_MAX;
  const ImportRowLimits limits;
  std::printf("CsvRowReader, %.0f MB per run, CPU time, best of 3:\n",
              static_cast<double>(local_bytes) / 1e6);
  for (int columns : kColumns) {
    int64_t rows = 0;
    int64_t errors = 0;
    const double free_ns =
        Best3(MakeCsv(columns, columns, local_bytes), lifted, &rows, &errors);
    std::printf("  %7d columns  limits lifted: %6.2f ns/byte (%lld rows)",
                columns, free_ns, static_cast<long long>(rows));
    const int header = std::min(columns, static_cast<int>(limits.max_columns));
    const double limited_ns =
        Best3(MakeCsv(header, columns, local_bytes), limits, &rows, &errors);
    std::printf("  default limits: %6.2f ns/byte (%lld rows, %lld errors)\n",
                limited_ns, static_cast<long long>(rows),
                static_cast<long long>(errors));
    std::fflush(stdout);
  }

  if (!campaignd.empty()) {
    const size_t bytes = static_cast<size_t>((mb > 0 ? mb : 4) * 1e6);
    const std::string work = (std::filesystem::temp_directory_path() /
                              absl::StrCat("csv_bench-", getpid()))
                                 .string();
    std::filesystem::create_directories(work);
    std::printf("ImportRecipients end to end (%s, --threads 1), %.0f MB:\n",
                campaignd.c_str(), static_cast<double>(bytes) / 1e6);
    for (int columns : kColumns) {
      EndToEnd(campaignd, work + "/campaignd.db", columns,
               MakeCsv(columns, columns, bytes));
    }
    std::filesystem::remove_all(work);
  }
  return 0;
}
