// smpp_bench: submit_sm/s through the smpp provider against the test SMSC
// (tests/peers/smsc, the npm package `smpp` on node), at several windows,
// and the SMSC's own ceiling in the same run.
//
//   build/tools/bench/smpp_bench [--messages 20000] [--windows 1,10,50]
//                                [--smsc tests/peers/smsc/smsc.js]
//
// For each window: a fresh SMSC (no receipts, no records), an SmppProvider
// bound to it, all messages handed to Send in batches of 500 at once; the
// rate is messages / (first Send -> last result). Then the peer's ceiling:
// a raw client that binds and blasts pre-packed submit_sm with no window at
// all, timed until the last submit_sm_resp — what node can answer, whoever
// asks. Run by hand, not in CI (needs `npm ci --prefix tests/peers/smsc`).
#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/completion_queue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/dispatch/alarm_timer.h"
#include "server/dispatch/cq_tag.h"
#include "server/dispatch/providers/smpp.h"

extern char** environ;

namespace campaigns::dispatch {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// The production timer on a queue of our own.
class TimerLoop {
 public:
  TimerLoop() {
    timer_.SetQueues({&cq_});
    thread_ = std::thread([this] {
      void* tag = nullptr;
      bool ok = false;
      while (cq_.Next(&tag, &ok)) static_cast<CqTag*>(tag)->Proceed(ok);
    });
  }
  ~TimerLoop() {
    timer_.Stop();
    cq_.Shutdown();
    thread_.join();
  }
  Timer* timer() { return &timer_; }

 private:
  grpc::CompletionQueue cq_;
  AlarmTimer timer_;
  std::thread thread_;
};

// The SMSC as a child process; it exits when its stdin closes.
class Smsc {
 public:
  explicit Smsc(const std::string& script) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    std::vector<std::string> args = {"/usr/bin/node", script, "--no-dlr"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ) != 0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    to_ = in[1];
    from_ = out[0];
    std::string line;
    char c;
    while (read(from_, &c, 1) == 1 && c != '\n') line += c;
    port_ = atoi(line.c_str());
  }
  ~Smsc() {
    close(to_);
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
    close(from_);
  }
  int port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int to_ = -1;
  int from_ = -1;
  int port_ = 0;
};

double ProviderRate(const std::string& script, int window, int messages) {
  Smsc smsc(script);
  if (smsc.port() <= 0) return 0;
  TimerLoop loop;
  SmppOptions o;
  o.name = "bench";
  o.host = "127.0.0.1";
  o.port = smsc.port();
  o.system_id = "bench";
  o.password = "secret";
  o.window = window;
  o.timeout = absl::Seconds(30);
  auto p = SmppProvider::Create(std::move(o), loop.timer(), nullptr);
  if (!p.ok()) {
    fprintf(stderr, "%s\n", p.status().ToString().c_str());
    return 0;
  }
  std::atomic<int> left{messages};
  std::atomic<int> accepted{0};
  std::promise<void> all;
  constexpr int kBatch = 500;
  const Clock::time_point start = Clock::now();
  for (int sent = 0; sent < messages; sent += kBatch) {
    std::vector<OutgoingMessage> batch;
    for (int i = sent; i < std::min(messages, sent + kBatch); ++i) {
      OutgoingMessage m;
      m.channel = Channel::kSms;
      m.address = absl::StrCat("+1555", 1000000 + i);
      m.sender_id = "ACME";
      m.text = "Your code is 123456";
      batch.push_back(std::move(m));
    }
    const int n = static_cast<int>(batch.size());
    (*p)->Send(std::move(batch), [&, n](std::vector<SendResult> r) {
      for (const SendResult& s : r) {
        if (s.status == SendStatus::kAccepted) ++accepted;
      }
      if (left.fetch_sub(n) == n) all.set_value();
    });
  }
  all.get_future().wait();
  const double secs = Seconds(start);
  const SmppStats stats = (*p)->Stats();
  printf(
      "  window %3d: %6d submit_sm in %6.2fs = %8.0f submit_sm/s (%d "
      "accepted, max outstanding %lld)\n",
      window, messages, secs, messages / secs, accepted.load(),
      static_cast<long long>(stats.max_outstanding));
  return messages / secs;
}

void PutBe32(std::string* s, uint32_t v) {
  const uint32_t n = htonl(v);
  s->append(reinterpret_cast<const char*>(&n), 4);
}

std::string Pdu(uint32_t id, uint32_t seq, const std::string& body) {
  std::string s;
  PutBe32(&s, 16 + body.size());
  PutBe32(&s, id);
  PutBe32(&s, 0);
  PutBe32(&s, seq);
  return s + body;
}

// A raw client with no window: what the SMSC answers per second at most.
double PeerCeiling(const std::string& script, int messages) {
  Smsc smsc(script);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(smsc.port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return 0;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  std::string bind_body = std::string("bench\0secret\0\0", 14);
  bind_body += std::string("\x34\x00\x00\x00", 4);
  std::string bind = Pdu(0x00000009, 1, bind_body);
  if (write(fd, bind.data(), bind.size()) !=
      static_cast<ssize_t>(bind.size())) {
    return 0;
  }
  char hdr[64];
  if (read(fd, hdr, sizeof(hdr)) <= 0) return 0;  // bind_transceiver_resp
  // service_type, src ton/npi/addr, dst ton/npi/addr, esm, pid, prio,
  // sched, validity, registered_delivery, replace, dcs, default id, length.
  std::string text = "Your code is 123456";
  std::string body = std::string(
      "\0\x05\x00"
      "ACME\0"
      "\x01\x01",
      10);
  body += std::string("15551000000\0", 12);
  body += std::string("\0\0\0\0\0\x01\0\0\0", 9);
  body += static_cast<char>(text.size());
  body += text;
  std::string all;
  for (int i = 0; i < messages; ++i) all += Pdu(0x00000004, 2 + i, body);
  const Clock::time_point start = Clock::now();
  std::thread writer([&] {
    size_t off = 0;
    while (off < all.size()) {
      ssize_t n = write(fd, all.data() + off, all.size() - off);
      if (n <= 0) return;
      off += n;
    }
  });
  int64_t got = 0;
  std::string in;
  char buf[65536];
  while (got < messages) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    in.append(buf, n);
    size_t off = 0;
    while (in.size() - off >= 16) {
      uint32_t len;
      memcpy(&len, in.data() + off, 4);
      len = ntohl(len);
      if (in.size() - off < len) break;
      uint32_t id;
      memcpy(&id, in.data() + off + 4, 4);
      if (ntohl(id) == 0x80000004) ++got;
      off += len;
    }
    in.erase(0, off);
  }
  const double secs = Seconds(start);
  writer.join();
  close(fd);
  printf(
      "  peer ceiling (raw client, no window): %lld submit_sm_resp in "
      "%.2fs = %.0f/s\n",
      static_cast<long long>(got), secs, got / secs);
  return got / secs;
}

}  // namespace
}  // namespace campaigns::dispatch

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  int messages = 20000;
  std::vector<int> windows = {1, 10, 50};
  std::string script =
      std::string(CAMPAIGND_SOURCE_DIR) + "/tests/peers/smsc/smsc.js";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--messages") {
      messages = atoi(v.c_str());
    } else if (k == "--smsc") {
      script = v;
    } else if (k == "--windows") {
      windows.clear();
      for (absl::string_view w : absl::StrSplit(v, ',')) {
        int n = 0;
        if (absl::SimpleAtoi(w, &n)) windows.push_back(n);
      }
    } else {
      fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  printf(
      "smpp provider -> npm smpp SMSC on 127.0.0.1 (%d messages, one "
      "part each)\n",
      messages);
  for (int w : windows) {
    // Window 1 is one round trip a message: a fifth of the messages do.
    campaigns::dispatch::ProviderRate(script, w,
                                      w == 1 ? messages / 5 : messages);
  }
  campaigns::dispatch::PeerCeiling(script, messages);
  return 0;
}
