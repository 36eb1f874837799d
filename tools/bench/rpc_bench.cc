// rpc_bench: unary RPC throughput and latency with many calls in flight,
// against campaignd and against gRPC's own floor on the same machine.
//
//   build/tools/bench/rpc_bench --campaignd build/server/campaignd
//                               [--in-flight 64] [--seconds 5] [--rounds 3]
//                               [--server-threads N] [--under-import]
//                               [--rows 1000000]
//
// One asynchronous client (one completion queue, one thread, `--in-flight`
// calls outstanding on one channel: each answer starts the next call) is run
// for `--seconds` (after a second of warm-up) against:
//   1. an echo service hosted in this binary (raw unary method answering
//      the request's bytes; completion-queue server with `--server-threads`
//      CQs and threads, default one per core, as campaignd): what gRPC
//      itself costs here;
//   2. GetCampaign of a campaignd it starts on a fresh database (127.0.0.1,
//      free ports, `--threads` as above; stopped at the end).
// 1 and 2 alternate `--rounds` times (the machine is shared: a change in
// its load then falls on both); each round prints req/s, p50/p99/p999, the
// ratio to that round's echo and the CPU per call of campaignd and of the
// echo server (this process's CPU per call with the echo, less without).
// The targets are checked on the medians. Then ListCampaigns (a page of 20)
// once.
// With --under-import, then also while a `--rows` import (import_bench's
// rows, import_load.h) streams into another campaign of the same campaignd:
//   3. unrelated writes (UpdateCampaign and CreateCampaign alternately,
//      every 20 ms, one at a time) during an import with no other load:
//      count, p50, p99 and max;
//   4. the echo, GetCampaign and ListCampaigns, each inside an import of its
//      own (from half a second in, for at most 60 % of the time the first
//      import took), with GetCampaign's ratio to the echo under the same load
//      and to the idle echo.
// Run by hand, not in CI.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/rpc_service_method.h>
#include <grpcpp/support/byte_buffer.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "campaigns/v1/campaign.grpc.pb.h"
#include "campaigns/v1/sender.grpc.pb.h"
#include "tools/bench/bench_util.h"
#include "tools/bench/import_load.h"

namespace {

namespace v1 = campaigns::v1;
using campaigns::bench::Clock;
using campaigns::bench::CpuSeconds;
using campaigns::bench::Seconds;

constexpr char kKey[] = "ck_rpc_bench_admin_key_000000000";
constexpr char kEchoMethod[] = "/campaigns.bench.Echo/Echo";

// `message` as the bytes a raw call sends.
grpc::ByteBuffer Bytes(const google::protobuf::Message& message) {
  const std::string wire = message.SerializeAsString();
  grpc::Slice slice(wire);
  return grpc::ByteBuffer(&slice, 1);
}

// --- The echo service: gRPC's floor -----------------------------------------

// A service of one raw unary method, kEchoMethod, that answers the request's
// bytes. Requested as campaignd requests its own methods
// (RequestAsyncUnary on a raw method).
class EchoService final : public grpc::Service {
 public:
  EchoService() {
    AddMethod(new grpc::internal::RpcServiceMethod(
        kEchoMethod, grpc::internal::RpcMethod::NORMAL_RPC, nullptr));
    MarkMethodRaw(0);
  }
  void Request(grpc::ServerContext* ctx, grpc::ByteBuffer* request,
               grpc::ServerAsyncResponseWriter<grpc::ByteBuffer>* responder,
               grpc::ServerCompletionQueue* cq, void* tag) {
    RequestAsyncUnary(0, ctx, request, responder, cq, cq, tag);
  }
};

// One echo call: requested, then answered, then deleted. `this` is the tag.
class EchoCall {
 public:
  EchoCall(EchoService* service, grpc::ServerCompletionQueue* cq)
      : service_(service), cq_(cq), responder_(&ctx_) {
    service_->Request(&ctx_, &request_, &responder_, cq_, this);
  }
  // The tag came back from the queue.
  void Proceed(bool ok) {
    if (answered_ || !ok) {
      delete this;
      return;
    }
    new EchoCall(service_, cq_);  // the next call of this queue
    answered_ = true;
    responder_.Finish(request_, grpc::Status::OK, this);
  }

 private:
  EchoService* const service_;
  grpc::ServerCompletionQueue* const cq_;
  grpc::ServerContext ctx_;
  grpc::ByteBuffer request_;
  grpc::ServerAsyncResponseWriter<grpc::ByteBuffer> responder_;
  bool answered_ = false;
};

// The echo server on 127.0.0.1 (a port the kernel picks), one CQ and thread
// per core; shut down (and drained) when destroyed.
class EchoServer {
 public:
  explicit EchoServer(int threads) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&service_);
    for (int i = 0; i < threads; ++i)
      cqs_.push_back(builder.AddCompletionQueue());
    server_ = builder.BuildAndStart();
    for (auto& cq : cqs_) {
      new EchoCall(&service_, cq.get());
      threads_.emplace_back([cq = cq.get()] {
        void* tag;
        bool ok;
        while (cq->Next(&tag, &ok)) static_cast<EchoCall*>(tag)->Proceed(ok);
      });
    }
  }
  ~EchoServer() {
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(5));
    for (auto& cq : cqs_) cq->Shutdown();
    for (std::thread& t : threads_) t.join();
  }
  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  int port_ = 0;
  EchoService service_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::thread> threads_;
};

// --- The load
// ------------------------------------------------------------------

// What a run of calls measured.
struct Result {
  double seconds = 0;
  int64_t ok = 0;
  int64_t failed = 0;
  std::string first_error;
  std::vector<int64_t> latency_us;  // of the OK calls, sorted
  double server_cpu_us = 0;  // campaignd's CPU per OK call (0: not measured)
  double self_cpu_us = 0;    // this process's (the client, and any echo)

  double rate() const { return seconds > 0 ? ok / seconds : 0; }
  // The q-quantile (0..1) of the latencies, in ms.
  double ms(double q) const {
    if (latency_us.empty()) return 0;
    const size_t i = std::min(latency_us.size() - 1,
                              static_cast<size_t>(q * latency_us.size()));
    return static_cast<double>(latency_us[i]) / 1000.0;
  }
};

// Calls `method` with `request` over `channel` as kKey, keeping `in_flight`
// calls outstanding for `duration` on one CQ and thread; then waits for the
// outstanding ones (not counted).
Result Run(const std::shared_ptr<grpc::Channel>& channel,
           const std::string& method, const grpc::ByteBuffer& request,
           int in_flight, std::chrono::duration<double> duration) {
  struct Call {
    grpc::ClientContext ctx;
    grpc::ByteBuffer response;
    grpc::Status status;
    std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
    Clock::time_point start;
  };
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  const std::string auth = absl::StrCat("Bearer ", kKey);
  auto start_call = [&] {
    auto* call = new Call;
    call->ctx.AddMetadata("authorization", auth);
    call->start = Clock::now();
    call->reader = stub.PrepareUnaryCall(&call->ctx, method, request, &cq);
    call->reader->StartCall();
    call->reader->Finish(&call->response, &call->status, call);
  };
  Result result;
  result.latency_us.reserve(1 << 20);
  for (int i = 0; i < in_flight; ++i) start_call();
  int outstanding = in_flight;
  const auto begin = Clock::now();
  const auto end =
      begin + std::chrono::duration_cast<Clock::duration>(duration);
  void* tag;
  bool ok;
  while (outstanding > 0 && cq.Next(&tag, &ok)) {
    auto* call = static_cast<Call*>(tag);
    const auto now = Clock::now();
    --outstanding;
    if (now <= end) {
      if (ok && call->status.ok()) {
        ++result.ok;
        result.latency_us.push_back(
            std::chrono::duration_cast<std::chrono::microseconds>(now -
                                                                  call->start)
                .count());
      } else {
        if (result.failed++ == 0) {
          result.first_error = call->status.error_message();
        }
      }
      start_call();
      ++outstanding;
    }
    delete call;
  }
  result.seconds =
      std::chrono::duration<double>(std::min(Clock::now(), end) - begin)
          .count();
  std::sort(result.latency_us.begin(), result.latency_us.end());
  return result;
}

struct Settings {
  int in_flight = 64;
  double seconds = 5;
  int rounds = 3;
  // CQs and threads of the echo server and of campaignd (--threads).
  int server_threads =
      std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 == 1 ? v[v.size() / 2]
                           : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// Run() for `seconds` after `warmup` seconds (not counted); prints a line
// (with the ratio to `echo_rate` unless 0, and the CPU time process
// `server` used per call unless 0) and returns the result.
Result Measure(const char* what, const Settings& settings,
               const std::shared_ptr<grpc::Channel>& channel,
               const std::string& method, const grpc::ByteBuffer& request,
               double echo_rate, double seconds, pid_t server = 0,
               double warmup = 1) {
  Run(channel, method, request, settings.in_flight,
      std::chrono::duration<double>(warmup));
  const double cpu_before = server > 0 ? CpuSeconds(server) : 0;
  const double self_before = CpuSeconds(getpid());
  Result r = Run(channel, method, request, settings.in_flight,
                 std::chrono::duration<double>(seconds));
  std::string cpu;
  if (r.ok > 0) {
    r.self_cpu_us = (CpuSeconds(getpid()) - self_before) * 1e6 / r.ok;
    if (server > 0) {
      r.server_cpu_us = (CpuSeconds(server) - cpu_before) * 1e6 / r.ok;
      cpu = absl::StrFormat("  campaignd CPU %.1f us/call", r.server_cpu_us);
    }
  }
  std::string ratio;
  if (echo_rate > 0) {
    ratio = absl::StrFormat("  %.2f x echo", r.rate() / echo_rate);
  }
  std::cout << absl::StrFormat(
      "  %-40s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  p999 %6.2f ms%s%s\n",
      what, r.rate(), r.ms(0.5), r.ms(0.99), r.ms(0.999), ratio, cpu);
  if (r.failed > 0) {
    std::cout << absl::StrFormat("    %d calls failed, first: %s\n", r.failed,
                                 r.first_error);
  }
  std::cout.flush();
  return r;
}

std::unique_ptr<grpc::ClientContext> Ctx() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("authorization", absl::StrCat("Bearer ", kKey));
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
  return ctx;
}

bool Check(const grpc::Status& s, const char* what) {
  if (!s.ok()) std::cerr << what << ": " << s.error_message() << "\n";
  return s.ok();
}

// A draft campaign named `name` for sender +15550001.
grpc::Status NewCampaign(v1::CampaignService::Stub* stub,
                         const std::string& name, v1::Campaign* out) {
  v1::CreateCampaignRequest req;
  req.set_name(name);
  req.set_channel(v1::sms);
  req.set_sender_id("+15550001");
  req.set_body("Hi {{name}}, {{code}}");
  return stub->CreateCampaign(Ctx().get(), req, out);
}

// Unrelated writes, one at a time every 20 ms on a thread of their own,
// until destroyed: UpdateCampaign of `campaign_id` (its name) and
// CreateCampaign, alternately.
class WriteProber {
 public:
  WriteProber(v1::CampaignService::Stub* stub, std::string campaign_id)
      : thread_([this, stub, id = std::move(campaign_id)] {
          for (int64_t i = 0; !stop_.load(); ++i) {
            grpc::Status s;
            v1::Campaign out;
            const auto t = Clock::now();
            if (i % 2 == 0) {
              v1::UpdateCampaignRequest req;
              req.set_id(id);
              req.set_name(absl::StrCat("probe ", i));
              s = stub->UpdateCampaign(Ctx().get(), req, &out);
            } else {
              s = NewCampaign(stub, absl::StrCat("probe ", i), &out);
            }
            const int64_t us =
                std::chrono::duration_cast<std::chrono::microseconds>(
                    Clock::now() - t)
                    .count();
            {
              std::lock_guard<std::mutex> lock(mu_);
              (s.ok() ? latency_us_ : failed_us_).push_back(us);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
          }
        }) {}
  ~WriteProber() { Stop(); }

  // Stops the probes; prints their count, p99 and max.
  void Report(const char* what) {
    Stop();
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int64_t> v = latency_us_;
    std::sort(v.begin(), v.end());
    auto ms = [&](double q) {
      if (v.empty()) return 0.0;
      return static_cast<double>(
                 v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))]) /
             1000.0;
    };
    std::cout << absl::StrFormat(
        "  %-40s %5d writes  p50 %6.1f ms  p99 %6.1f ms  max %6.1f ms\n", what,
        v.size(), ms(0.5), ms(0.99), v.empty() ? 0.0 : v.back() / 1000.0);
    if (!failed_us_.empty()) {
      std::cout << absl::StrFormat("    %d writes failed\n", failed_us_.size());
    }
    std::cout.flush();
  }

 private:
  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }

  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<int64_t> latency_us_;
  std::vector<int64_t> failed_us_;
  std::thread thread_;
};

// An import of `csv` into campaign `campaign_id` on a thread of its own.
class Import {
 public:
  Import(v1::CampaignService::Stub* stub, const std::string& campaign_id,
         const std::string& csv)
      : start_(Clock::now()), thread_([this, stub, campaign_id, &csv] {
          status_ = campaigns::bench::StreamImport(stub, kKey, campaign_id, csv,
                                                   &response_);
          seconds_ = Seconds(start_);
          done_.store(true);
        }) {}
  ~Import() { Wait(); }
  bool done() const { return done_.load(); }
  // How long the import took (after Wait).
  double seconds() const { return seconds_; }
  // Waits for the answer; prints the import's rate. False when it failed.
  bool Wait() {
    if (!thread_.joinable()) return status_.ok();
    thread_.join();
    if (!Check(status_, "import")) return false;
    std::cout << absl::StrFormat(
        "    (import: %d rows received, %d imported in %.2f s: %.0f rows/s)\n",
        response_.received(), response_.imported(), seconds_,
        response_.received() / seconds_);
    return true;
  }

 private:
  const Clock::time_point start_;
  std::atomic<bool> done_{false};
  grpc::Status status_;
  v1::ImportRecipientsResponse response_;
  double seconds_ = 0;
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string campaignd_path = "build/server/campaignd";
  std::string work = "/tmp/campaignd-rpc-bench";
  Settings settings;
  bool under_import = false;
  int64_t rows = 1000000;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--under-import") {
      under_import = true;
      --i;  // takes no value
    } else if (i + 1 == argc) {
      std::cerr << flag << " needs a value\n";
      return 2;
    } else if (flag == "--campaignd") {
      campaignd_path = argv[i + 1];
    } else if (flag == "--in-flight") {
      settings.in_flight = std::max(1, std::stoi(argv[i + 1]));
    } else if (flag == "--seconds") {
      settings.seconds = std::stod(argv[i + 1]);
    } else if (flag == "--rounds") {
      settings.rounds = std::max(1, std::stoi(argv[i + 1]));
    } else if (flag == "--server-threads") {
      settings.server_threads = std::max(1, std::stoi(argv[i + 1]));
    } else if (flag == "--rows") {
      rows = std::stoll(argv[i + 1]);
    } else if (flag == "--work-dir") {
      work = argv[i + 1];
    } else {
      std::cerr << "usage: rpc_bench [--campaignd PATH] [--in-flight N] "
                   "[--seconds S] [--rounds N] [--server-threads N] "
                   "[--under-import] "
                   "[--rows N] [--work-dir DIR]\n";
      return 2;
    }
  }
  std::filesystem::create_directories(work);
  std::cout << absl::StrFormat(
      "rpc_bench: %d calls in flight, %.1f s per run, %d cores, %d server "
      "threads\n",
      settings.in_flight, settings.seconds, std::thread::hardware_concurrency(),
      settings.server_threads);

  v1::GetCampaignRequest get;
  v1::ListCampaignsRequest list;
  list.set_limit(20);

  // gRPC's floor (an echo in this process, sent GetCampaign's request
  // bytes) and campaignd on a fresh database, both up for the whole run.
  EchoServer echo(settings.server_threads);
  auto echo_channel =
      grpc::CreateChannel(echo.target(), grpc::InsecureChannelCredentials());
  campaigns::bench::Campaignd server(
      {.binary = campaignd_path,
       .db = work + "/campaignd.db",
       .bootstrap_key = kKey,
       .flags = {"--key-rate", "0", "--threads",
                 absl::StrCat(settings.server_threads)},
       .quiet = true});
  if (!server.WaitUntilServing()) {
    std::cerr << "campaignd did not come up\n";
    return 1;
  }
  auto channel =
      grpc::CreateChannel(server.target(), grpc::InsecureChannelCredentials());
  auto senders = v1::SenderService::NewStub(channel);
  auto stub = v1::CampaignService::NewStub(channel);
  v1::RegisterSenderRequest sreq;
  sreq.set_sender_id("+15550001");
  sreq.set_channel(v1::sms);
  sreq.set_tier(v1::Sender::tier_100k);
  v1::Sender sender;
  if (!Check(senders->RegisterSender(Ctx().get(), sreq, &sender),
             "RegisterSender")) {
    return 1;
  }
  v1::Campaign target;
  for (int i = 0; i < 20; ++i) {
    if (!Check(NewCampaign(stub.get(), absl::StrCat("bench ", i), &target),
               "CreateCampaign")) {
      return 1;
    }
  }
  get.set_id(target.id());
  const std::string kGet = "/campaigns.v1.CampaignService/GetCampaign";
  const std::string kList = "/campaigns.v1.CampaignService/ListCampaigns";

  // Echo and GetCampaign alternate, `--rounds` times, so that a change in
  // the machine's load (it is shared) falls on both; each round's ratio is
  // of figures measured seconds apart.
  std::vector<double> ratios, p99s, echo_rates, get_rates;
  for (int round = 1; round <= settings.rounds; ++round) {
    const Result e = Measure(
        absl::StrFormat("round %d: echo (gRPC's floor):", round).c_str(),
        settings, echo_channel, kEchoMethod, Bytes(get), 0, settings.seconds);
    const Result g = Measure(
        absl::StrFormat("round %d: GetCampaign:", round).c_str(), settings,
        channel, kGet, Bytes(get), e.rate(), settings.seconds, server.pid());
    if (e.rate() <= 0) return 1;
    ratios.push_back(g.rate() / e.rate());
    p99s.push_back(g.ms(0.99));
    // The client's own CPU per call is about the same whichever server
    // answers; what the echo run used beyond it is the echo server's.
    std::cout << absl::StrFormat(
        "    server CPU per call: echo about %.1f us (this process %.1f with "
        "the echo, %.1f without), campaignd %.1f us\n",
        e.self_cpu_us - g.self_cpu_us, e.self_cpu_us, g.self_cpu_us,
        g.server_cpu_us);
    echo_rates.push_back(e.rate());
    get_rates.push_back(g.rate());
  }
  const double echo_rate = Median(echo_rates);
  const double idle_get_rate = Median(get_rates);
  const Result idle_list =
      Measure("ListCampaigns (20 per page):", settings, channel, kList,
              Bytes(list), echo_rate, settings.seconds, server.pid());
  const double ratio = Median(ratios);
  const double p99 = Median(p99s);
  std::cout << absl::StrFormat(
      "  GetCampaign / echo, median of %d rounds: %.2f (target >= 0.50: %s); "
      "p99 %.2f ms (target <= 5 ms: %s)\n",
      settings.rounds, ratio, ratio >= 0.5 ? "met" : "NOT met", p99,
      p99 <= 5 ? "met" : "NOT met");
  std::cout.flush();
  if (!under_import) return server.Stop() == 0 ? 0 : 1;

  // 3 and 4: the same campaignd while imports run.
  std::cout << absl::StrFormat(
      "under import (%d rows into another campaign):\n", rows);
  const std::string csv =
      campaigns::bench::Csv(campaigns::bench::Generate(rows, 42));
  v1::Campaign probed;
  if (!Check(NewCampaign(stub.get(), "probed", &probed), "CreateCampaign")) {
    return 1;
  }
  // Each import goes into a campaign of its own.
  int imports = 0;
  auto next_campaign = [&](v1::Campaign* c) {
    return Check(NewCampaign(stub.get(), absl::StrCat("import ", ++imports), c),
                 "CreateCampaign");
  };
  double import_seconds = 0;
  {
    v1::Campaign c;
    if (!next_campaign(&c)) return 1;
    WriteProber probes(stub.get(), probed.id());
    Import import(stub.get(), c.id(), csv);
    if (!import.Wait()) return 1;
    probes.Report("unrelated writes during the import:");
    import_seconds = import.seconds();
  }
  // Reads measured inside one import each: half a second after it starts,
  // for at most 60 % of the time the first import took.
  const double window =
      std::min(settings.seconds, std::max(0.5, 0.6 * import_seconds - 0.5));
  std::cout << absl::StrFormat(
      "  reads measured for %.1f s inside each import\n", window);
  auto during_import =
      [&](const char* what, const std::shared_ptr<grpc::Channel>& to,
          const std::string& method, const grpc::ByteBuffer& request,
          double floor, pid_t measured, Result* out) {
        v1::Campaign c;
        if (!next_campaign(&c)) return false;
        Import import(stub.get(), c.id(), csv);
        *out = Measure(what, settings, to, method, request, floor, window,
                       measured, /*warmup=*/0.5);
        const bool overran = import.done();
        if (!import.Wait()) return false;
        if (overran) {
          std::cout << "  NOTE: the import ended before the measurement did\n";
        }
        return true;
      };
  // The echo inside an import too: gRPC's floor on the machine as loaded.
  Result echo_busy, get_busy, list_busy;
  if (!during_import("echo during an import:", echo_channel, kEchoMethod,
                     Bytes(get), 0, 0, &echo_busy) ||
      !during_import("GetCampaign during an import:", channel, kGet, Bytes(get),
                     echo_busy.rate(), server.pid(), &get_busy) ||
      !during_import("ListCampaigns during an import:", channel, kList,
                     Bytes(list), echo_busy.rate(), server.pid(), &list_busy)) {
    return 1;
  }
  const double busy_ratio =
      echo_busy.rate() > 0 ? get_busy.rate() / echo_busy.rate() : 0;
  std::cout << absl::StrFormat(
      "  during / idle: GetCampaign %.2f, ListCampaigns %.2f, echo %.2f\n"
      "  GetCampaign during an import / echo during an import: %.2f (target "
      ">= 0.50: %s); / idle echo: %.2f; p99 %.2f ms (target <= 5 ms: %s)\n",
      get_busy.rate() / idle_get_rate, list_busy.rate() / idle_list.rate(),
      echo_busy.rate() / echo_rate, busy_ratio,
      busy_ratio >= 0.5 ? "met" : "NOT met", get_busy.rate() / echo_rate,
      get_busy.ms(0.99), get_busy.ms(0.99) <= 5 ? "met" : "NOT met");
  return server.Stop() == 0 ? 0 : 1;
}
