// Helpers shared by the benchmarks in tools/bench: a free loopback port, a
// process's peak resident set, seconds since a time point, and a Prometheus
// scraper. Linux only. The functions keep no state; Scraper is thread-safe.
#ifndef CAMPAIGND_TOOLS_BENCH_BENCH_UTIL_H_
#define CAMPAIGND_TOOLS_BENCH_BENCH_UTIL_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
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

// Peak resident set (VmHWM) of `pid` in KiB; -1 when unknown.
inline int64_t PeakRssKb(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
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
