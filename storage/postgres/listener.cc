#include "storage/postgres/listener.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/domain/errors.h"
#include "server/log/log.h"

namespace campaigns::storage::postgres {
namespace {

// How long one wait for notifications lasts before the loop looks again
// (Stop wakes it at once through the eventfd).
constexpr absl::Duration kWaitSlice = absl::Seconds(10);

bool ValidChannel(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  if (absl::ascii_isdigit(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char ch) {
    return absl::ascii_islower(static_cast<unsigned char>(ch)) ||
           absl::ascii_isdigit(static_cast<unsigned char>(ch)) || ch == '_';
  });
}

}  // namespace

absl::Status Notify(Connection& c, const std::string& channel,
                    const std::string& payload) {
  if (payload.size() >= 8000) {
    return absl::InvalidArgumentError(
        absl::StrCat("notification payload on ", channel, " is ",
                     payload.size(), " bytes; at most 7999"));
  }
  return c.Query("SELECT pg_notify($1, $2)", {channel, payload}).status();
}

std::string ChangedId(const std::string& payload) {
  const size_t space = payload.rfind(' ');
  if (space == std::string::npos || space == 0) return "";
  return payload.substr(space + 1);
}

absl::StatusOr<std::unique_ptr<Listener>> Listener::Start(
    ListenerOptions options, OnNotify notify, OnResync resync) {
  if (options.channels.empty()) {
    return absl::InvalidArgumentError("listener: no channel to listen on");
  }
  for (const std::string& channel : options.channels) {
    if (!ValidChannel(channel)) {
      return absl::InvalidArgumentError(
          absl::StrCat("listener: channel ", errors::Quote(channel),
                       " is not lower-case letters, digits and '_'"));
    }
  }
  std::unique_ptr<Listener> listener(
      new Listener(std::move(options), std::move(notify), std::move(resync)));
  if (listener->wake_fd_ < 0) {
    return absl::InternalError(
        absl::StrCat("listener: eventfd: ", strerror(errno)));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, listener->Connect());
  listener->listening_ = true;
  if (listener->resync_) listener->resync_();
  Listener* self = listener.get();
  MutexLock lock(&self->stop_mu_);
  self->thread_ = std::thread([self, conn = std::move(conn)]() mutable {
    self->Loop(std::move(conn));
  });
  return listener;
}

Listener::Listener(ListenerOptions options, OnNotify notify, OnResync resync)
    : options_(std::move(options)),
      notify_(std::move(notify)),
      resync_(std::move(resync)),
      wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

Listener::~Listener() {
  Stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void Listener::Stop() {
  MutexLock lock(&stop_mu_);
  stopping_ = true;
  const uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  listening_ = false;
}

absl::StatusOr<std::unique_ptr<Connection>> Listener::Connect() const {
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn,
                   Connection::Open(options_.dsn, options_.connect_timeout,
                                    options_.password));
  for (const std::string& channel : options_.channels) {
    RETURN_IF_ERROR(conn->Exec(absl::StrCat("LISTEN ", channel)));
  }
  return conn;
}

bool Listener::Sleep(absl::Duration d) {
  pollfd fd = {wake_fd_, POLLIN, 0};
  (void)poll(&fd, 1, static_cast<int>(absl::ToInt64Milliseconds(d)));
  return !stopping_.load();
}

void Listener::Loop(std::unique_ptr<Connection> conn) {
  std::vector<Connection::Notification> received;
  absl::Duration backoff = absl::ZeroDuration();
  while (!stopping_.load()) {
    if (conn == nullptr) {
      absl::StatusOr<std::unique_ptr<Connection>> opened = Connect();
      if (!opened.ok()) {
        backoff = std::clamp(backoff * 2, options_.min_reconnect_backoff,
                             options_.max_reconnect_backoff);
        logging::Warn("PostgreSQL listener cannot reconnect",
                      {{"error", opened.status()}, {"retry_in", backoff}});
        if (!Sleep(backoff)) break;
        continue;
      }
      conn = *std::move(opened);
      backoff = absl::ZeroDuration();
      listening_ = true;
      logging::Info("PostgreSQL listener listening again",
                    {{"db", conn->where()}});
      if (resync_) resync_();
    }
    received.clear();
    const absl::Status waited =
        conn->WaitForNotifications(kWaitSlice, received, wake_fd_);
    for (const Connection::Notification& n : received) {
      if (stopping_.load()) break;
      if (notify_) notify_(n);
    }
    if (!waited.ok()) {
      listening_ = false;
      logging::Warn(
          "PostgreSQL listener lost its connection: changes made "
          "elsewhere are missed until it reconnects",
          {{"error", waited}});
      conn.reset();
    }
  }
  listening_ = false;
}

}  // namespace campaigns::storage::postgres
