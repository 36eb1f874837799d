// upload_bench: a recipient file uploaded through campaignd-gateway (seed
// 000's multipart form, `curl -F file=@recipients.csv`) next to the same file
// through `campaignctl recipients import`, in one run.
//
//   build/tools/bench/upload_bench --rows 1000000
//       [--campaignd build/server/campaignd]
//       [--gateway build/tools/gateway/campaignd-gateway]
//       [--campaignctl build/client/campaignctl]
//
// Writes N distinct valid US numbers as a CSV file (phone,name,code; about
// 31 bytes a row), starts campaignd on a fresh database and the gateway in
// front of it (127.0.0.1, free ports), and prints for each path the rows/s
// from the first byte sent to the answer, and the gateway's peak resident
// set (VmHWM) before and after the upload: the upload streams, so it must not
// grow with the file (the target is under 100 MB for 1,000,000 rows).
// Uploads with the curl binary, which streams the file from disk. Run by
// hand, not in CI.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "campaigns/v1/campaign.grpc.pb.h"
#include "campaigns/v1/sender.grpc.pb.h"
#include "tools/bench/bench_util.h"

namespace {

namespace v1 = campaigns::v1;
using campaigns::bench::Clock;
using campaigns::bench::FreePort;
using campaigns::bench::PeakRssKb;
using campaigns::bench::Seconds;

constexpr char kKey[] = "ck_upload_bench_admin_key_000000";

// Writes `n` rows with distinct valid NANP numbers; returns the file size.
int64_t WriteCsv(const std::string& path, int64_t n) {
  std::ofstream out(path, std::ios::binary);
  out << "phone,name,code\n";
  const char* areas[] = {"202", "415", "312", "646"};
  for (int64_t i = 0; i < n; ++i) {
    out << "+1" << areas[i % 4] << (2000000 + i / 4) << ",Name" << i << ",CODE"
        << (i % 1000) << "\n";
  }
  out.close();
  return static_cast<int64_t>(std::filesystem::file_size(path));
}

// Starts `argv` with stdout (and stderr) to `log`; returns its pid.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log,
            const std::vector<std::string>& env = {}) {
  const pid_t pid = fork();
  if (pid == 0) {
    FILE* f = std::fopen(log.c_str(), "w");
    if (f != nullptr) {
      dup2(fileno(f), STDOUT_FILENO);
      dup2(fileno(f), STDERR_FILENO);
    }
    for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> args;
    for (const std::string& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    std::perror("exec");
    _exit(127);
  }
  return pid;
}

int Wait(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The number after "imported": in an ImportRecipientsResponse as JSON.
int64_t ImportedOf(const std::string& json) {
  const size_t at = json.find("\"imported\"");
  if (at == std::string::npos) return -1;
  size_t i = json.find(':', at) + 1;
  while (i < json.size() && (json[i] == ' ' || json[i] == '"')) ++i;
  return std::atoll(json.c_str() + i);
}

std::string NewCampaign(v1::CampaignService::Stub* stub, const char* name) {
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kKey));
  v1::CreateCampaignRequest req;
  req.set_name(name);
  req.set_channel(v1::sms);
  req.set_sender_id("+15550001");
  req.set_body("Hi {{name}}, use {{code}}");
  v1::Campaign c;
  grpc::Status s = stub->CreateCampaign(&ctx, req, &c);
  if (!s.ok()) {
    std::cerr << "CreateCampaign: " << s.error_message() << "\n";
    std::exit(1);
  }
  return c.id();
}

}  // namespace

int main(int argc, char** argv) {
  std::string campaignd = "build/server/campaignd";
  std::string gateway = "build/tools/gateway/campaignd-gateway";
  std::string campaignctl = "build/client/campaignctl";
  std::string curl = "/usr/bin/curl";
  int64_t n = 1000000;
  std::string work = "/tmp/campaignd-upload-bench";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--campaignd") {
      campaignd = value;
    } else if (flag == "--gateway") {
      gateway = value;
    } else if (flag == "--campaignctl") {
      campaignctl = value;
    } else if (flag == "--curl") {
      curl = value;
    } else if (flag == "--rows") {
      n = std::stoll(value);
    } else if (flag == "--work-dir") {
      work = value;
    } else {
      std::cerr << "usage: upload_bench [--campaignd PATH] [--gateway PATH] "
                   "[--campaignctl PATH] [--curl PATH] [--rows N] "
                   "[--work-dir DIR]\n";
      return 2;
    }
  }
  std::filesystem::remove_all(work);
  std::filesystem::create_directories(work);
  const std::string csv = work + "/recipients.csv";
  const int64_t bytes = WriteCsv(csv, n);
  std::cout << absl::StrFormat("upload_bench: %d rows, %.1f MB, %u cores\n", n,
                               bytes / 1e6,
                               std::thread::hardware_concurrency());

  const int port = FreePort();
  const std::string grpc_addr = absl::StrCat("127.0.0.1:", port);
  const pid_t server = Spawn({campaignd, "--listen", grpc_addr, "--db",
                              work + "/campaignd.db", "--key-rate", "0"},
                             work + "/campaignd.log",
                             {absl::StrCat("CAMPAIGND_BOOTSTRAP_KEY=", kKey)});
  auto channel =
      grpc::CreateChannel(grpc_addr, grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 std::chrono::seconds(20))) {
    std::cerr << "campaignd did not come up (" << work << "/campaignd.log)\n";
    kill(server, SIGKILL);
    return 1;
  }
  auto senders = v1::SenderService::NewStub(channel);
  auto campaigns = v1::CampaignService::NewStub(channel);
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kKey));
    v1::RegisterSenderRequest req;
    req.set_sender_id("+15550001");
    req.set_channel(v1::sms);
    req.set_tier(v1::Sender::unlimited);
    v1::Sender s;
    if (!senders->RegisterSender(&ctx, req, &s).ok()) {
      std::cerr << "RegisterSender failed\n";
      kill(server, SIGKILL);
      return 1;
    }
  }
  const int http_port = FreePort();
  const std::string base = absl::StrCat("http://127.0.0.1:", http_port);
  const pid_t gw =
      Spawn({gateway, "--listen", absl::StrCat("127.0.0.1:", http_port),
             "--backend", grpc_addr},
            work + "/gateway.log");
  bool up = false;
  for (int i = 0; i < 200 && !up; ++i) {
    const pid_t probe =
        Spawn({curl, "-s", "-o", "/dev/null", base + "/"}, work + "/probe.log");
    up = Wait(probe) == 0;
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!up) {
    std::cerr << "the gateway did not come up (" << work << "/gateway.log)\n";
    kill(gw, SIGKILL);
    kill(server, SIGKILL);
    return 1;
  }
  const int64_t gateway_before_kb = PeakRssKb(gw);

  // 1. The seed's multipart upload through the gateway.
  const std::string upload_campaign = NewCampaign(campaigns.get(), "upload");
  auto start = Clock::now();
  const pid_t upload = Spawn(
      {curl, "-s", "-S", "-o", work + "/upload.json", "-w", "%{http_code}",
       "-H", absl::StrCat("Authorization: Bearer ", kKey), "-X", "POST",
       absl::StrCat(base, "/api/v1/campaigns/", upload_campaign, "/recipients"),
       "-F", "file=@" + csv},
      work + "/upload.status");
  const int upload_exit = Wait(upload);
  const double upload_secs = Seconds(start);
  const int64_t gateway_peak_kb = PeakRssKb(gw);
  const std::string upload_answer = ReadFile(work + "/upload.json");
  const int64_t upload_imported = ImportedOf(upload_answer);
  if (upload_exit != 0 || upload_imported != n) {
    std::cerr << "the upload failed: curl exit " << upload_exit << ", HTTP "
              << ReadFile(work + "/upload.status") << ": "
              << upload_answer.substr(0, 400) << "\n";
  }

  // 2. The same file through campaignctl (gRPC client streaming).
  const std::string ctl_campaign = NewCampaign(campaigns.get(), "campaignctl");
  start = Clock::now();
  const pid_t ctl = Spawn({campaignctl, "--server", grpc_addr, "--api-key",
                           kKey, "--json", "recipients", "import", csv,
                           "--campaign", ctl_campaign, "--no-progress"},
                          work + "/campaignctl.json");
  const int ctl_exit = Wait(ctl);
  const double ctl_secs = Seconds(start);
  const int64_t ctl_imported = ImportedOf(ReadFile(work + "/campaignctl.json"));
  if (ctl_exit != 0 || ctl_imported != n) {
    std::cerr << "campaignctl failed: exit " << ctl_exit << ": "
              << ReadFile(work + "/campaignctl.json").substr(0, 400) << "\n";
  }

  const int64_t server_peak_kb = PeakRssKb(server);
  kill(gw, SIGTERM);
  Wait(gw);
  kill(server, SIGTERM);
  Wait(server);

  const double upload_rate = n / upload_secs;
  const double ctl_rate = n / ctl_secs;
  std::cout << absl::StrFormat(
      "  gateway multipart upload (curl -F file=@):  %9.0f rows/s  "
      "(%.1f s, %d imported)\n",
      upload_rate, upload_secs, upload_imported);
  std::cout << absl::StrFormat(
      "  campaignctl recipients import:              %9.0f rows/s  "
      "(%.1f s, %d imported)\n",
      ctl_rate, ctl_secs, ctl_imported);
  std::cout << absl::StrFormat(
      "  upload / campaignctl:                       %9.2f\n",
      upload_rate / ctl_rate);
  std::cout << absl::StrFormat(
      "  gateway peak RSS: %.1f MB before the upload, %.1f MB after "
      "(file %.1f MB)\n",
      gateway_before_kb / 1024.0, gateway_peak_kb / 1024.0, bytes / 1e6);
  std::cout << absl::StrFormat("  campaignd peak RSS: %.1f MB\n",
                               server_peak_kb / 1024.0);
  const bool ok = upload_exit == 0 && upload_imported == n && ctl_exit == 0 &&
                  ctl_imported == n;
  return ok ? 0 : 1;
}
