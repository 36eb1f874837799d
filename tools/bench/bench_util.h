// Helpers shared by the benchmarks in tools/bench: a free loopback port, a
// process's peak resident set, seconds since a time point, a Prometheus
// scraper, and a campaignd child process (Campaignd). Linux only. The
// functions keep no state; Scraper is thread-safe, Campaignd is not.
//
//   campaigns::bench::Campaignd server({.binary = "build/server/campaignd",
//                                       .db = "/tmp/bench.db",
//                                       .bootstrap_key = kKey});
//   auto channel = grpc::CreateChannel(server.target(), ...);
#ifndef CAMPAIGND_TOOLS_BENCH_BENCH_UTIL_H_
#define CAMPAIGND_TOOLS_BENCH_BENCH_UTIL_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

namespace campaigns::bench {

using Clock = std::chrono::steady_clock;

// Seconds from `since` until now.
inline double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// A port the kernel just handed out on 127.0.0.1 and we released again.
inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

// True when something accepts TCP connections on 127.0.0.1:port.
inline bool Accepts(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool up =
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return up;
}

// How to start a campaignd child (Campaignd).
struct CampaigndOptions {
  std::string binary = "build/server/campaignd";
  // The database file. Unless `keep_db`, it is removed first (with its -wal
  // and -shm files): a fresh database.
  std::string db;
  bool keep_db = false;
  // CAMPAIGND_BOOTSTRAP_KEY: the admin key of a fresh database.
  std::string bootstrap_key;
  // Flags after --listen, --http-listen (when `http`) and --db, e.g.
  // {"--key-rate", "0"}.
  std::vector<std::string> flags;
  // Also serve the operator's HTTP listener on a free port.
  bool http = true;
  // Its stdout and stderr go to /dev/null (its log lines would break up a
  // table).
  bool quiet = false;
};

// A campaignd child process listening on free ports of 127.0.0.1 only;
// stopped (SIGTERM, then reaped) when destroyed unless already stopped. Not
// thread-safe.
class Campaignd {
 public:
  // Forks and execs at once; see WaitUntilServing.
  explicit Campaignd(CampaigndOptions options)
      : port_(FreePort()), http_port_(options.http ? FreePort() : 0) {
    if (!options.keep_db &&
        options.db.rfind("postgresql://", 0) == std::string::npos &&
        options.db.rfind("postgres://", 0) == std::string::npos) {
      for (const char* suffix : {"", "-wal", "-shm"}) {
        std::filesystem::remove(options.db + suffix);
      }
    }
    std::vector<std::string> args = {options.binary, "--listen", target()};
    if (options.http) {
      args.insert(args.end(),
                  {"--http-listen", absl::StrCat("127.0.0.1:", http_port_)});
    }
    args.insert(args.end(), {"--db", options.db});
    args.insert(args.end(), options.flags.begin(), options.flags.end());
    // Everything the child needs is built before the fork: between fork and
    // exec it calls only async-signal-safe functions (the parent may have
    // threads, e.g. gRPC's).
    std::vector<std::string> env = {
        absl::StrCat("CAMPAIGND_BOOTSTRAP_KEY=", options.bootstrap_key)};
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::string(*e).rfind("CAMPAIGND_BOOTSTRAP_KEY=", 0) != 0) {
        env.push_back(*e);
      }
    }
    std::vector<char*> argv, envp;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      if (options.quiet) {
        const int null = open("/dev/null", O_WRONLY);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
      }
      execve(argv[0], argv.data(), envp.data());
      constexpr char kFailed[] = "exec campaignd failed\n";
      (void)!write(STDERR_FILENO, kFailed, sizeof(kFailed) - 1);
      _exit(127);
    }
  }
  ~Campaignd() { Stop(); }
  Campaignd(const Campaignd&) = delete;
  Campaignd& operator=(const Campaignd&) = delete;

  // Polls (every 5 ms) until the gRPC port accepts connections: true, or
  // false when the child exited first or `timeout` passed.
  bool WaitUntilServing(
      std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (pid_ <= 0 || waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      if (Accepts(port_)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  // Sends `sig` and reaps the child; its wait status, or -1 when it was
  // already stopped. Stop() is SIGTERM, an orderly shutdown.
  int Stop(int sig = SIGTERM) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  int http_port() const { return http_port_; }
  // "127.0.0.1:<port>", for grpc::CreateChannel.
  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  const int port_;
  const int http_port_;
  pid_t pid_ = -1;
};

// A "Name:  N kB" field of /proc/PID/status in KiB; -1 when unknown.
inline int64_t ProcStatusKb(pid_t pid, const std::string& field) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      return std::stoll(line.substr(field.size() + 1));
    }
  }
  return -1;
}

// Peak resident set (VmHWM) of `pid` in KiB; -1 when unknown.
inline int64_t PeakRssKb(pid_t pid) { return ProcStatusKb(pid, "VmHWM"); }

// Starts a new peak: VmHWM of `pid` becomes its current resident set
// (Linux: "5" to /proc/PID/clear_refs), so a later PeakRssKb is the peak of
// what ran after this. False when it cannot.
inline bool ResetPeakRss(pid_t pid) {
  std::ofstream clear(absl::StrCat("/proc/", pid, "/clear_refs"));
  clear << "5";
  clear.flush();
  return clear.good();
}

// The CPU time (user + system) process `pid` has used so far, in seconds;
// -1 when it cannot be read.
inline double CpuSeconds(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string all((std::istreambuf_iterator<char>(stat)),
                  std::istreambuf_iterator<char>());
  // Fields after the command name, which is in parentheses and may hold
  // spaces: state is field 3, utime 14, stime 15.
  const size_t close = all.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(all.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i >= 14) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// GETs http://127.0.0.1:port/metrics every `every` on a thread of its own,
// as Prometheus would, until destroyed: how many scrapes answered 200 and
// the slowest.
class Scraper {
 public:
  Scraper(int port, std::chrono::milliseconds every)
      : thread_([this, port, every] {
          while (!stop_.load()) {
            const auto t = Clock::now();
            if (Get(port)) {
              ++ok_;
              const int64_t us =
                  std::chrono::duration_cast<std::chrono::microseconds>(
                      Clock::now() - t)
                      .count();
              worst_us_.store(std::max(worst_us_.load(), us));
            }
            std::this_thread::sleep_for(every);
          }
        }) {}
  ~Scraper() {
    stop_.store(true);
    thread_.join();
  }
  int64_t ok() const { return ok_.load(); }
  double worst_ms() const { return static_cast<double>(worst_us_) / 1000.0; }

 private:
  // One GET /metrics; true on a 200 read to the end.
  static bool Get(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    bool ok = false;
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      const std::string req =
          "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: "
          "close\r\n\r\n";
      if (write(fd, req.data(), req.size()) ==
          static_cast<ssize_t>(req.size())) {
        std::string answer;
        char buf[16384];
        ssize_t n;
        while ((n = read(fd, buf, sizeof(buf))) > 0) answer.append(buf, n);
        ok = answer.rfind("HTTP/1.1 200", 0) == 0;
      }
    }
    close(fd);
    return ok;
  }

  std::atomic<bool> stop_{false};
  std::atomic<int64_t> ok_{0};
  std::atomic<int64_t> worst_us_{0};
  std::thread thread_;
};

// The cost of metrics and JSON logs: `run(on, &note)` runs the same work on
// a fresh campaignd with both off (--no-metrics, text logs) or on (metrics,
// JSON logs, /metrics scraped) and returns its rate (0 = failed; `note` says
// how the scrapes went). Alternates which runs first (the second run of a
// pair finds a warmer page cache), `rounds` times; prints each pair and the
// on/off ratio of the summed rates. 0, or 1 when a run failed.
inline int OpsCost(
    int rounds, const char* unit,
    const std::function<double(bool on, std::string* note)>& run) {
  double off_sum = 0, on_sum = 0;
  for (int i = 0; i < rounds; ++i) {
    std::string note;
    double off = 0, on = 0;
    if (i % 2 == 0) {
      off = run(false, &note);
      on = run(true, &note);
    } else {
      on = run(true, &note);
      off = run(false, &note);
    }
    if (off <= 0 || on <= 0) return 1;
    off_sum += off;
    on_sum += on;
    std::printf("  round %d: off %9.0f %s, on %9.0f %s (%s): on/off %.3f\n",
                i + 1, off, unit, on, unit, note.c_str(), on / off);
  }
  std::printf("  metrics + JSON logs + scrapes, on/off over %d rounds: %.3f\n",
              rounds, on_sum / off_sum);
  std::fflush(stdout);
  return 0;
}

// The campaignd flags of OpsCost's two settings.
inline std::vector<std::string> OpsFlags(bool on) {
  return on ? std::vector<std::string>{"--metrics", "--log-format", "json"}
            : std::vector<std::string>{"--no-metrics", "--log-format", "text"};
}

}  // namespace campaigns::bench

#endif  // CAMPAIGND_TOOLS_BENCH_BENCH_UTIL_H_
