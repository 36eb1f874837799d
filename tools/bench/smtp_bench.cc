// smtp_bench: emails per second through the smtp provider into a local
// sink, with its connections reused and with a new connection per message,
// in one run; and the sink's own ceiling, so that one can tell whether the
// provider or the sink is the limit.
//
//   smtp_bench [--messages N] [--fresh N] [--in-flight K] [--aiosmtpd N]
//
// The sink is in this binary: a thread per connection speaking just enough
// ESMTP (EHLO with PIPELINING, MAIL, RCPT, DATA, RSET, NOOP, QUIT) and
// counting messages and connections. With --aiosmtpd N (and
// /usr/bin/python3 with aiosmtpd), N more emails go to
// tests/peers/smtp_sink.py, the tests' peer, for comparison.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/dispatch/providers/smtp.h"
#include "tools/bench/bench_util.h"

extern char** environ;

namespace campaigns::bench {
namespace {

using dispatch::OutgoingMessage;
using dispatch::SendResult;
using dispatch::SendStatus;
using dispatch::SmtpOptions;
using dispatch::SmtpProvider;

// The in-process sink. Thread-safe; Stop() ends it (connections included).
class Sink {
 public:
  Sink() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(listen_fd_, 1024);
    socklen_t len = sizeof addr;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~Sink() {
    shutdown(listen_fd_, SHUT_RDWR);
    close(listen_fd_);
    acceptor_.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
    for (std::thread& t : threads_) t.join();
  }
  int port() const { return port_; }
  int64_t messages() const { return messages_.load(); }
  int64_t connections() const { return connections_.load(); }

 private:
  void Accept() {
    for (;;) {
      const int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ++connections_;
      std::lock_guard<std::mutex> lock(mu_);
      fds_.push_back(fd);
      threads_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  // Answers each command line; in DATA, reads up to CRLF.CRLF. Replies to
  // pipelined commands go out together.
  void Serve(int fd) {
    std::string in;
    std::string out = "220 sink ESMTP\r\n";
    bool data = false;
    char buf[65536];
    for (;;) {
      if (!out.empty()) {
        if (send(fd, out.data(), out.size(), MSG_NOSIGNAL) < 0) break;
        out.clear();
      }
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
      size_t pos = 0;
      bool quit = false;
      for (;;) {
        if (data) {
          const size_t end = in.find("\r\n.\r\n", pos > 2 ? pos - 2 : 0);
          if (end == std::string::npos) break;
          pos = end + 5;
          data = false;
          ++messages_;
          out += "250 2.0.0 queued\r\n";
          continue;
        }
        const size_t eol = in.find("\r\n", pos);
        if (eol == std::string::npos) break;
        const std::string line = in.substr(pos, eol - pos);
        pos = eol + 2;
        if (absl::StartsWithIgnoreCase(line, "EHLO")) {
          out += "250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n";
        } else if (absl::StartsWithIgnoreCase(line, "DATA")) {
          out += "354 go ahead\r\n";
          data = true;
        } else if (absl::StartsWithIgnoreCase(line, "QUIT")) {
          out += "221 bye\r\n";
          quit = true;
          break;
        } else {
          out += "250 ok\r\n";  // MAIL, RCPT, RSET, NOOP, HELO
        }
      }
      in.erase(0, pos);
      if (quit) {
        send(fd, out.data(), out.size(), MSG_NOSIGNAL);
        break;
      }
    }
    close(fd);
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::atomic<int64_t> messages_{0};
  std::atomic<int64_t> connections_{0};
  std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
};

std::vector<OutgoingMessage> Emails(int n) {
  std::vector<OutgoingMessage> out;
  out.reserve(n);
  for (int i = 0; i < n; ++i) {
    OutgoingMessage m;
    m.idempotency_key = absl::StrCat("cmp_b:rcp_", i);
    m.recipient_id = absl::StrCat("rcp_", i);
    m.channel = Channel::kEmail;
    m.address = absl::StrCat("user", i, "@example.com");
    m.subject = "Spring sale — 20% off";
    m.text = "Hello,\n\nour spring sale starts today. See you there.\n";
    m.html = "<p>Hello,</p><p>our <b>spring sale</b> starts today.</p>\n";
    out.push_back(std::move(m));
  }
  return out;
}

struct Run {
  double seconds = 0;
  int accepted = 0;
  int failed = 0;
};

Run SendAll(const std::string& url, int n, int in_flight, bool reuse) {
  SmtpOptions o;
  o.name = "bench";
  o.url = url;
  o.from = "Acme <news@acme.test>";
  o.starttls = dispatch::StartTls::kNever;
  o.unsubscribe_url = "https://acme.test/u/{recipient_id}";
  o.max_in_flight = in_flight;
  o.timeout = absl::Seconds(30);
  o.forbid_reuse = !reuse;
  auto p = SmtpProvider::Create(o);
  if (!p.ok()) {
    std::cerr << p.status() << "\n";
    std::exit(1);
  }
  std::vector<OutgoingMessage> batch = Emails(n);
  std::promise<std::vector<SendResult>> got;
  const auto start = Clock::now();
  (*p)->Send(std::move(batch),
             [&](std::vector<SendResult> r) { got.set_value(std::move(r)); });
  const std::vector<SendResult> results = got.get_future().get();
  Run r;
  r.seconds = Seconds(start);
  for (const SendResult& s : results) {
    (s.status == SendStatus::kAccepted ? r.accepted : r.failed)++;
  }
  return r;
}

void Print(const std::string& what, int n, const Run& r, int64_t conns) {
  std::cout << absl::StrFormat(
      "  %-34s %6d emails in %6.2f s: %8.0f emails/s (%d failed, %d "
      "connections)\n",
      what, n, r.seconds, r.accepted / r.seconds, r.failed, conns);
}

// The sink's ceiling: raw pipelined transactions over `conns` connections
// (no TLS, no MIME building), as fast as the sink answers them.
double SinkCeiling(int port, int n, int conns) {
  const std::string body =
      "Subject: x\r\n\r\n" + std::string(900, 'x') + "\r\n.\r\n";
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (int c = 0; c < conns; ++c) {
    threads.emplace_back([&, c] {
      const int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(port);
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
      char buf[65536];
      std::string got;
      auto expect = [&](int replies) {
        // Waits for `replies` final reply lines ("NNN ").
        int seen = 0;
        while (seen < replies) {
          const ssize_t k = recv(fd, buf, sizeof buf, 0);
          if (k <= 0) return;
          got.append(buf, k);
          size_t pos = 0;
          for (size_t eol; (eol = got.find("\r\n", pos)) != std::string::npos;
               pos = eol + 2) {
            if (eol - pos >= 4 && got[pos + 3] == ' ') ++seen;
          }
          got.erase(0, pos);
        }
      };
      expect(1);
      const std::string ehlo = "EHLO bench\r\n";
      send(fd, ehlo.data(), ehlo.size(), MSG_NOSIGNAL);
      expect(1);
      const int mine = n / conns + (c < n % conns ? 1 : 0);
      for (int i = 0; i < mine; ++i) {
        const std::string tx =
            absl::StrCat("MAIL FROM:<a@b.test>\r\nRCPT TO:<u", i,
                         "@example.com>\r\nDATA\r\n");
        send(fd, tx.data(), tx.size(), MSG_NOSIGNAL);
        expect(3);
        send(fd, body.data(), body.size(), MSG_NOSIGNAL);
        expect(1);
      }
      close(fd);
    });
  }
  for (std::thread& t : threads) t.join();
  return n / Seconds(start);
}

// tests/peers/smtp_sink.py, started in a temporary directory.
struct PythonSink {
  pid_t pid = -1;
  std::string dir;
  int port = 0;
  explicit PythonSink(const std::string& script) {
    char tmpl[] = "/tmp/smtp-bench-XXXXXX";
    dir = mkdtemp(tmpl);
    std::vector<std::string> args = {"/usr/bin/python3", script, "serve",
                                     "--dir", dir};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) !=
        0) {
      pid = -1;
      return;
    }
    for (int i = 0; i < 1000 && port == 0; ++i) {
      std::ifstream f(dir + "/port");
      f >> port;
      if (port == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ~PythonSink() {
    if (pid > 0) {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

}  // namespace
}  // namespace campaigns::bench

int main(int argc, char** argv) {
  using namespace campaigns::bench;  // NOLINT: a main of a few lines
  int messages = 20000;
  int fresh = 2000;
  int in_flight = 8;
  int aiosmtpd = 0;
  std::string script = "tests/peers/smtp_sink.py";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--messages") messages = std::stoi(value);
    if (flag == "--fresh") fresh = std::stoi(value);
    if (flag == "--in-flight") in_flight = std::stoi(value);
    if (flag == "--aiosmtpd") aiosmtpd = std::stoi(value);
    if (flag == "--sink-script") script = value;
  }
  std::cout << "smtp_bench: " << std::thread::hardware_concurrency()
            << " cores, max_in_flight " << in_flight
            << ", multipart/alternative emails of about 1.5 KB\n";
  {
    Sink sink;
    const std::string url = absl::StrCat("smtp://127.0.0.1:", sink.port());
    // Warm-up (connections, allocator), not counted.
    SendAll(url, 200, in_flight, true);
    int64_t before = sink.connections();
    const Run reuse = SendAll(url, messages, in_flight, true);
    Print("reused connections", messages, reuse, sink.connections() - before);
    before = sink.connections();
    const Run each = SendAll(url, fresh, in_flight, false);
    Print("a new connection per email", fresh, each,
          sink.connections() - before);
    std::cout << absl::StrFormat(
        "  reuse / new connection: %.1fx\n",
        (reuse.accepted / reuse.seconds) / (each.accepted / each.seconds));
    std::cout << absl::StrFormat(
        "  sink ceiling (raw pipelined SMTP, %d connections): %.0f emails/s\n",
        in_flight, SinkCeiling(sink.port(), messages, in_flight));
  }
  if (aiosmtpd > 0) {
    PythonSink py(script);
    if (py.port == 0) {
      std::cout << "  aiosmtpd: the sink did not start (" << script << ")\n";
      return 0;
    }
    const Run r = SendAll(absl::StrCat("smtp://127.0.0.1:", py.port), aiosmtpd,
                          in_flight, true);
    std::ifstream f(py.dir + "/connections");
    int64_t conns = 0;
    f >> conns;
    Print("reused connections, aiosmtpd sink", aiosmtpd, r, conns);
  }
  return 0;
}
