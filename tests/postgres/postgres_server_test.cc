// Tests of the throwaway cluster's watchdog (tests/support/postgres_server.h):
// a test process killed the way ctest kills a timed-out test leaves no
// cluster running and no files behind.
#include "tests/support/postgres_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

extern char** environ;

namespace campaigns::testing {
namespace {

namespace fs = std::filesystem;

// Every process below `root` (children by their parent's pid, and theirs):
// the tree ctest kills when a test runs out of time.
std::vector<pid_t> ProcessTree(pid_t root) {
  std::multimap<pid_t, pid_t> children;
  for (const fs::directory_entry& entry : fs::directory_iterator("/proc")) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;  // gone meanwhile
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 1));
    char state = 0;
    pid_t ppid = 0;
    if (rest >> state >> ppid) children.emplace(ppid, pid);
  }
  std::vector<pid_t> tree{root};
  for (size_t i = 0; i < tree.size(); ++i) {
    auto [begin, end] = children.equal_range(tree[i]);
    for (auto it = begin; it != end; ++it) tree.push_back(it->second);
  }
  return tree;
}

bool Accepts(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool connected =
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return connected;
}

// campaignd_test_pg (tests/support/pg_cluster_main.cc), driven over pipes.
class ClusterProcess {
 public:
  ~ClusterProcess() {
    if (to_ >= 0) close(to_);
    if (from_ != nullptr) fclose(from_);
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  bool Spawn() {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0) return false;
    if (pipe2(out, O_CLOEXEC) != 0) return false;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    const char* argv[] = {CAMPAIGND_TEST_PG, nullptr};
    const int rc = posix_spawn(&pid_, argv[0], &fa, nullptr,
                               const_cast<char* const*>(argv), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    to_ = in[1];
    from_ = fdopen(out[0], "r");
    if (rc != 0) pid_ = 0;
    return rc == 0 && from_ != nullptr;
  }

  // The next line it prints, without its "<word> ".
  std::string Answer(const std::string& word) {
    char buf[4096];
    if (fgets(buf, sizeof(buf), from_) == nullptr) return "";
    absl::string_view line = absl::StripTrailingAsciiWhitespace(buf);
    return absl::ConsumePrefix(&line, word + " ") ? std::string(line) : "";
  }
  void Send(const std::string& command) {
    const std::string line = command + "\n";
    EXPECT_EQ(write(to_, line.data(), line.size()),
              static_cast<ssize_t>(line.size()));
  }

  // SIGKILL to it and every process below it, as ctest on a timeout.
  void KillTree() {
    for (pid_t pid : ProcessTree(pid_)) kill(pid, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }

 private:
  pid_t pid_ = 0;
  int to_ = -1;
  FILE* from_ = nullptr;
};

TEST(PostgresServerTest, AKilledTestProcessTreeLeavesNoClusterBehind) {
  ClusterProcess cluster;
  ASSERT_TRUE(cluster.Spawn());
  int port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(cluster.Answer("ready"), &port));
  ASSERT_TRUE(Accepts(port));
  cluster.Send("dir");
  const std::string dir = cluster.Answer("dir");
  ASSERT_FALSE(dir.empty());
  ASSERT_TRUE(fs::exists(dir + "/data/postmaster.pid"));

  cluster.KillTree();

  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while ((Accepts(port) || fs::exists(dir)) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  const bool stopped = !Accepts(port);
  const bool removed = !fs::exists(dir);
  if (!stopped) {  // leave nothing running: what the watchdog should do
    std::ifstream pidfile(dir + "/data/postmaster.pid");
    pid_t postmaster = 0;
    if (pidfile >> postmaster && postmaster > 0 &&
        kill(postmaster, SIGQUIT) == 0) {
      const absl::Time gone_by = absl::Now() + absl::Seconds(30);
      while (kill(postmaster, 0) == 0 && absl::Now() < gone_by) {
        absl::SleepFor(absl::Milliseconds(50));
      }
    }
  }
  if (!removed) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  EXPECT_TRUE(stopped) << "the cluster on port " << port << " still runs";
  EXPECT_TRUE(removed) << dir << " is still there";
}

}  // namespace
}  // namespace campaigns::testing
