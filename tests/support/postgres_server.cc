#include "tests/support/postgres_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

extern char** environ;

namespace campaigns::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kTemplateVariable[] = "CAMPAIGND_PG_TEMPLATE";

// The newest /usr/lib/postgresql/N/bin with an initdb, and N.
absl::Status FindBinaries(std::string* bin_dir, int* major) {
  *major = 0;
  std::error_code ec;
  for (const fs::directory_entry& e :
       fs::directory_iterator("/usr/lib/postgresql", ec)) {
    int n = 0;
    if (!absl::SimpleAtoi(e.path().filename().string(), &n)) continue;
    if (n > *major && fs::exists(e.path() / "bin" / "initdb")) {
      *major = n;
      *bin_dir = (e.path() / "bin").string();
    }
  }
  if (*major == 0) {
    return absl::NotFoundError(
        "no /usr/lib/postgresql/N/bin/initdb: install postgresql-15 "
        "(scripts/deps.sh)");
  }
  return absl::OkStatus();
}

absl::StatusOr<int> FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int err = errno;
    close(fd);
    return absl::InternalError(std::strerror(err));
  }
  close(fd);
  return ntohs(addr.sin_port);
}

std::string RandomHex(size_t bytes) {
  std::ifstream in("/dev/urandom", std::ios::binary);
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    const unsigned char c = static_cast<unsigned char>(in.get());
    absl::StrAppend(&out, absl::Hex(c, absl::kZeroPad2));
  }
  return out;
}

// Runs argv[0] with `argv`; returns its exit status and stdout + stderr.
absl::StatusOr<std::pair<int, std::string>> Run(
    const std::vector<std::string>& argv) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(std::strerror(errno));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  // In /: as the postgres user, initdb and pg_ctl fail if they cannot
  // enter the directory they were started in (e.g. a clone under /root).
  posix_spawn_file_actions_addchdir_np(&fa, "/");
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  std::vector<char*> cargv;
  for (const std::string& a : argv)
    cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = 0;
  const int rc =
      posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return absl::InternalError(
        absl::StrCat("cannot run ", argv[0], ": ", std::strerror(rc)));
  }
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : -1, out);
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start(
    Options options) {
  std::unique_ptr<PostgresServer> s(new PostgresServer());
  s->fsync_ = options.fsync;
  if (absl::Status found = FindBinaries(&s->bin_dir_, &s->major_version_);
      !found.ok()) {
    return found;
  }
  char tmpl[] = "/tmp/campaignd-pg.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp: ", std::strerror(errno)));
  }
  s->dir_ = tmpl;
  s->password_ = RandomHex(12);
  const std::string pwfile = s->dir_ + "/pw";
  {
    std::ofstream pw(pwfile);
    pw << s->password_ << "\n";
  }
  if (geteuid() == 0) {
    const passwd* pg = getpwnam("postgres");
    if (pg == nullptr) {
      return absl::NotFoundError(
          "running as root, and there is no `postgres` user to own the "
          "cluster (install postgresql-15)");
    }
    s->run_as_ = "postgres";
    for (const std::string& p : {s->dir_, pwfile}) {
      if (chown(p.c_str(), pg->pw_uid, pg->pw_gid) != 0) {
        return absl::InternalError(
            absl::StrCat("chown ", p, ": ", std::strerror(errno)));
      }
    }
  }
  const char* template_dir = getenv(kTemplateVariable);
  if (template_dir != nullptr && *template_dir != '\0') {
    absl::StatusOr<std::string> password = s->CopyTemplate(template_dir);
    if (!password.ok()) return password.status();
    s->password_ = *password;
  } else {
    absl::StatusOr<std::string> init = s->InitDb(pwfile, s->dir_ + "/data");
    if (!init.ok()) return init.status();
  }
  std::error_code ec;
  fs::remove(pwfile, ec);
  if (absl::Status watched = s->StartWatchdog(); !watched.ok()) {
    return watched;
  }
  absl::StatusOr<int> port = FreePort();
  if (!port.ok()) return port.status();
  s->port_ = *port;
  if (absl::Status started = s->StartAgain(); !started.ok()) return started;
  return s;
}

absl::StatusOr<std::string> PostgresServer::InitDb(const std::string& pwfile,
                                                   const std::string& data) {
  return RunTool("initdb", {"-D", data, "-U", user_, "--auth-local=trust",
                            "--auth-host=scram-sha-256", "--pwfile=" + pwfile,
                            "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"});
}

absl::StatusOr<std::string> PostgresServer::CopyTemplate(
    const std::string& template_dir) {
  std::error_code ec;
  fs::create_directories(template_dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("template ", template_dir, ": ", ec.message()));
  }
  // One process makes the template; the others wait for it.
  const std::string lock_path = template_dir + "/lock";
  const int lock = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0 || flock(lock, LOCK_EX) != 0) {
    const int err = errno;
    if (lock >= 0) close(lock);
    return absl::InternalError(
        absl::StrCat("lock ", lock_path, ": ", std::strerror(err)));
  }
  const auto read_file = [](const std::string& path) {
    std::ifstream in(path);
    std::string text;
    std::getline(in, text);
    return text;
  };
  const std::string data = template_dir + "/data";
  const std::string password_file = template_dir + "/password";
  // A template of other binaries (an upgrade since) is made again.
  if (read_file(data + "/PG_VERSION") != absl::StrCat(major_version_) ||
      read_file(password_file).empty()) {
    fs::remove_all(data, ec);
    fs::remove(password_file, ec);
    // initdb writes into dir_ (ours, owned by the cluster's user), then the
    // data moves into the template, which that user may not reach.
    const std::string fresh = dir_ + "/template";
    absl::StatusOr<std::string> init = InitDb(dir_ + "/pw", fresh);
    absl::StatusOr<std::pair<int, std::string>> copied =
        init.ok() ? Run({"/bin/cp", "-a", fresh, data})
                  : absl::StatusOr<std::pair<int, std::string>>(init.status());
    fs::remove_all(fresh, ec);
    if (copied.ok() && copied->first == 0) {
      std::ofstream out(password_file + ".new");
      out << password_ << "\n";
      out.close();
      fs::permissions(password_file + ".new",
                      fs::perms::owner_read | fs::perms::owner_write, ec);
      fs::rename(password_file + ".new", password_file, ec);
    }
    if (!copied.ok() || copied->first != 0 || ec) {
      fs::remove_all(data, ec);
      close(lock);
      if (!copied.ok()) return copied.status();
      return absl::InternalError(absl::StrCat("cannot make the template ", data,
                                              ": ", copied->second));
    }
  }
  const std::string password = read_file(password_file);
  absl::StatusOr<std::pair<int, std::string>> copied =
      Run({"/bin/cp", "-a", data, dir_ + "/data"});
  close(lock);
  if (!copied.ok()) return copied.status();
  if (copied->first != 0) {
    return absl::InternalError(
        absl::StrCat("cannot copy the template ", data, ": ", copied->second));
  }
  return password;
}

PostgresServer::~PostgresServer() {
  if (running_) {
    (void)RunTool("pg_ctl",
                  {"-D", dir_ + "/data", "-w", "-m", "immediate", "stop"});
  }
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  if (watchdog_fd_ >= 0) close(watchdog_fd_);
}

absl::Status PostgresServer::StartWatchdog() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  const std::string run_as =
      run_as_.empty() ? "" : "/usr/sbin/runuser -u " + run_as_ + " -- ";
  // The sh this spawns starts the watchdog in the background and exits, so
  // the watchdog is no descendant of this process: ctest, on a timeout,
  // kills the test's whole tree (children found by their parent's pid), and
  // took a watchdog that was a child with it. It reads the pipe as fd 3: an
  // asynchronous list's stdin is /dev/null.
  const std::string script =
      absl::StrCat("(cat >/dev/null; ", run_as, bin_dir_, "/pg_ctl -D ", dir_,
                   "/data -m immediate stop; rm -rf ", dir_, ") <&3 3<&- &");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  // In /: as the postgres user, initdb and pg_ctl fail if they cannot
  // enter the directory they were started in (e.g. a clone under /root).
  posix_spawn_file_actions_addchdir_np(&fa, "/");
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, fds[0], 3);
  const char* argv[] = {"/bin/sh", "-c", script.c_str(), nullptr};
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr,
                             const_cast<char* const*>(argv), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[0]);
  if (rc != 0) {
    close(fds[1]);
    return absl::InternalError(
        absl::StrCat("cannot start the watchdog: ", std::strerror(rc)));
  }
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  watchdog_fd_ = fds[1];
  return absl::OkStatus();
}

std::string PostgresServer::Dsn(const std::string& database) const {
  return absl::StrCat("postgresql://", user_, ":", password_,
                      "@127.0.0.1:", port_, "/", database);
}

absl::Status PostgresServer::StartAgain() {
  const std::string server_options =
      absl::StrCat("-p ", port_, " -c listen_addresses=127.0.0.1 -k ", dir_,
                   fsync_ ? "" : " -c fsync=off -c synchronous_commit=off");
  absl::StatusOr<std::string> out =
      RunTool("pg_ctl", {"-D", dir_ + "/data", "-w", "-t", "60", "-l",
                         dir_ + "/server.log", "-o", server_options, "start"});
  if (!out.ok()) {
    std::ifstream log(dir_ + "/server.log");
    std::string text((std::istreambuf_iterator<char>(log)),
                     std::istreambuf_iterator<char>());
    return absl::Status(
        out.status().code(),
        absl::StrCat(out.status().message(), "\nserver log:\n", text));
  }
  running_ = true;
  return absl::OkStatus();
}

absl::Status PostgresServer::Stop() {
  absl::StatusOr<std::string> out =
      RunTool("pg_ctl", {"-D", dir_ + "/data", "-w", "-m", "fast", "stop"});
  if (!out.ok()) return out.status();
  running_ = false;
  return absl::OkStatus();
}

absl::Status PostgresServer::Restart() {
  if (absl::Status stopped = Stop(); !stopped.ok()) return stopped;
  return StartAgain();
}

absl::StatusOr<std::string> PostgresServer::RunTool(
    const std::string& tool, const std::vector<std::string>& args) {
  std::vector<std::string> argv;
  if (!run_as_.empty()) {
    argv = {"/usr/sbin/runuser", "-u", run_as_, "--"};
  }
  argv.push_back(bin_dir_ + "/" + tool);
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<std::pair<int, std::string>> ran = Run(argv);
  if (!ran.ok()) return ran.status();
  if (ran->first != 0) {
    return absl::InternalError(absl::StrCat(tool, " exited with ", ran->first,
                                            ": ", absl::StrJoin(args, " "),
                                            "\n", ran->second));
  }
  return std::move(ran->second);
}

}  // namespace campaigns::testing
