#include "storage/postgres/connection.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace campaigns::storage::postgres {
namespace {

// libpq's messages end in a newline and may span lines; one line, trimmed.
std::string OneLine(const char* message) {
  std::string out = message == nullptr ? "" : message;
  std::replace(out.begin(), out.end(), '\n', ' ');
  std::replace(out.begin(), out.end(), '\t', ' ');
  return std::string(absl::StripAsciiWhitespace(out));
}

// The code for a failure the server reported with SQLSTATE `state`.
absl::StatusCode CodeOfSqlState(absl::string_view state) {
  if (absl::StartsWith(state, "08")) {  // connection exception
    return absl::StatusCode::kUnavailable;
  }
  if (state == "57P01" || state == "57P02" || state == "57P03") {
    // admin_shutdown, crash_shutdown, cannot_connect_now
    return absl::StatusCode::kUnavailable;
  }
  if (state == "40001" || state == "40P01") {
    // serialization_failure, deadlock_detected
    return absl::StatusCode::kAborted;
  }
  if (state == "55P03") {  // lock_not_available (lock_timeout)
    return absl::StatusCode::kAborted;
  }
  if (state == "25P03") {  // idle_in_transaction_session_timeout
    return absl::StatusCode::kUnavailable;
  }
  if (state == "23505") return absl::StatusCode::kAlreadyExists;
  if (state == "23503") {  // foreign_key_violation: a row it needs is gone
    return absl::StatusCode::kFailedPrecondition;
  }
  if (absl::StartsWith(state, "53")) {  // disk full, out of memory, ...
    return absl::StatusCode::kResourceExhausted;
  }
  if (absl::StartsWith(state, "28")) return absl::StatusCode::kUnauthenticated;
  if (state == "3D000") return absl::StatusCode::kNotFound;  // no database
  if (state == "XX001" || state == "XX002") {  // data or index corrupted
    return absl::StatusCode::kDataLoss;
  }
  return absl::StatusCode::kInternal;
}

// The code for a connection attempt that failed with `message`. libpq
// exposes no SQLSTATE for these, so the server's FATAL text decides.
absl::StatusCode CodeOfConnectFailure(PGconn* conn,
                                      const std::string& message) {
  if (PQconnectionNeedsPassword(conn) ||
      absl::StrContains(message, "password authentication failed") ||
      absl::StrContains(message, "no pg_hba.conf entry") ||
      absl::StrContains(message, "authentication failed")) {
    return absl::StatusCode::kUnauthenticated;
  }
  if (absl::StrContains(message, "does not exist")) {
    // database "x" does not exist; role "x" does not exist
    return absl::StrContains(message, "role \"")
               ? absl::StatusCode::kUnauthenticated
               : absl::StatusCode::kNotFound;
  }
  if (absl::StrContains(message, "invalid ") ||
      absl::StrContains(message, "missing ")) {
    return absl::StatusCode::kInvalidArgument;
  }
  return absl::StatusCode::kUnavailable;
}

void IgnoreNotice(void*, const char*) {}

}  // namespace

namespace {

// Whether `dsn` (valid) sets a password.
bool DsnHasPassword(const std::string& dsn) {
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), nullptr);
  if (options == nullptr) return false;
  bool has = false;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (absl::string_view(o->keyword) == "password" && o->val != nullptr &&
        *o->val != '\0') {
      has = true;
    }
  }
  PQconninfoFree(options);
  return has;
}

}  // namespace

absl::StatusOr<std::string> DescribeDsn(const std::string& dsn) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &error);
  if (options == nullptr) {
    // libpq's text can quote the password (e.g. a bad percent-encoding in
    // it), so it is never passed on.
    PQfreemem(error);
    return absl::InvalidArgumentError(
        "--db: not a valid PostgreSQL connection string (check its syntax "
        "and the percent-encoding of the user and password)");
  }
  std::string host = "localhost", port = "5432", dbname, user;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || *o->val == '\0') continue;
    const absl::string_view k = o->keyword;
    if (k == "host" || k == "hostaddr") host = o->val;
    if (k == "port") port = o->val;
    if (k == "dbname") dbname = o->val;
    if (k == "user") user = o->val;
  }
  PQconninfoFree(options);
  if (user.empty()) {
    const char* env = std::getenv("PGUSER");
    user = env != nullptr ? env : "(the login user)";
  }
  if (dbname.empty()) dbname = user;
  return absl::StrCat(host, ":", port, "/", dbname, " as ", user);
}

Rows::Rows(pg_result* result) : result_(result) {}

Rows::Rows(Rows&& other) noexcept
    : result_(std::exchange(other.result_, nullptr)) {}

Rows& Rows::operator=(Rows&& other) noexcept {
  if (this != &other) {
    if (result_ != nullptr) PQclear(result_);
    result_ = std::exchange(other.result_, nullptr);
  }
  return *this;
}

Rows::~Rows() {
  if (result_ != nullptr) PQclear(result_);
}

int Rows::size() const { return result_ == nullptr ? 0 : PQntuples(result_); }

std::optional<std::string> Rows::Get(int row, int col) const {
  if (PQgetisnull(result_, row, col)) return std::nullopt;
  return std::string(PQgetvalue(result_, row, col),
                     static_cast<size_t>(PQgetlength(result_, row, col)));
}

std::string Rows::Text(int row, int col) const {
  return Get(row, col).value_or("");
}

int Rows::Column(const char* name) const {
  return result_ == nullptr ? -1 : PQfnumber(result_, name);
}

std::string Rows::command() const {
  return result_ == nullptr ? "" : PQcmdStatus(result_);
}

int64_t Rows::affected() const {
  int64_t n = 0;
  if (result_ != nullptr) (void)absl::SimpleAtoi(PQcmdTuples(result_), &n);
  return n;
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(
    const std::string& dsn, absl::Duration connect_timeout,
    const std::string& password) {
  absl::StatusOr<std::string> where = DescribeDsn(dsn);
  if (!where.ok()) return where.status();
  if (!password.empty() && DsnHasPassword(dsn)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PostgreSQL at ", *where,
        ": the password is given twice, in the DSN and as db_password; "
        "keep one"));
  }
  const std::string timeout =
      absl::StrCat(std::max<int64_t>(1, absl::ToInt64Seconds(connect_timeout)));
  // expand_dbname: `dsn` (the last keyword) is parsed as a connection
  // string, and what it sets wins over the defaults before it.
  // TCP keepalives and a user timeout: a connection whose peer vanished
  // (cable cut, host gone) is found dead in about 30 s instead of hanging a
  // call for the kernel's 2 hours. A DSN may override each.
  const char* keywords[] = {"connect_timeout", "application_name", "keepalives",
                            "keepalives_idle", "keepalives_interval",
                            "keepalives_count", "tcp_user_timeout", "dbname",
                            // Only when given: an empty one would hide
                            // PGPASSWORD and ~/.pgpass.
                            password.empty() ? nullptr : "password", nullptr};
  const char* values[] = {
      timeout.c_str(), "campaignd",      "1",    "10", "5", "3", "30000",
      dsn.c_str(),     password.c_str(), nullptr};
  PGconn* conn = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
  if (conn == nullptr) {
    return absl::ResourceExhaustedError("libpq: out of memory");
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    const std::string message = OneLine(PQerrorMessage(conn));
    const absl::StatusCode code = CodeOfConnectFailure(conn, message);
    PQfinish(conn);
    const char* what =
        code == absl::StatusCode::kUnauthenticated ? "refused the credentials"
        : code == absl::StatusCode::kNotFound      ? "has no such database"
        : code == absl::StatusCode::kInvalidArgument
            ? "cannot be connected to with these settings"
            : "cannot be reached";
    return absl::Status(
        code, absl::StrCat("PostgreSQL at ", *where, " ", what, ": ", message));
  }
  PQsetNoticeProcessor(conn, IgnoreNotice, nullptr);
  std::unique_ptr<Connection> c(new Connection(conn, *std::move(where)));
  c->server_version_ = PQserverVersion(conn);
  if (c->server_version_ < kMinimumServerVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "PostgreSQL at ", c->where_, " is version ", c->server_version_ / 10000,
        ".", c->server_version_ % 10000, "; campaignd needs ",
        kMinimumServerVersion / 10000, " or newer"));
  }
  // A session this process lost (network cut) must not keep its locks and
  // its transaction "in progress" for ever: the server ends it after
  // kIdleInTransaction. A statement waiting for a lock gives up after
  // kLockTimeout (ABORTED: retry) rather than stall the writer behind
  // another instance.
  if (absl::Status set = c->Exec(absl::StrCat(
          "SET idle_in_transaction_session_timeout = ",
          absl::ToInt64Milliseconds(kIdleInTransaction),
          "; SET lock_timeout = ", absl::ToInt64Milliseconds(kLockTimeout)));
      !set.ok()) {
    return set;
  }
  return c;
}

Connection::Connection(pg_conn* conn, std::string where)
    : conn_(conn), where_(std::move(where)) {}

Connection::~Connection() { PQfinish(conn_); }

bool Connection::ok() const { return PQstatus(conn_) == CONNECTION_OK; }

int Connection::backend_pid() const { return PQbackendPID(conn_); }

int Connection::socket() const { return PQsocket(conn_); }

absl::Status Connection::WaitForNotifications(absl::Duration timeout,
                                              std::vector<Notification>& out,
                                              int wake_fd) {
  const auto drain = [&] {
    const size_t before = out.size();
    while (PGnotify* n = PQnotifies(conn_)) {
      out.push_back({n->relname, n->extra == nullptr ? "" : n->extra});
      PQfreemem(n);
    }
    return out.size() > before;
  };
  const auto lost = [&] {
    return absl::UnavailableError(absl::StrCat(
        "PostgreSQL connection to ", where_, " lost while listening: ",
        absl::StripAsciiWhitespace(PQerrorMessage(conn_))));
  };
  if (!ok()) return lost();
  if (drain()) return absl::OkStatus();
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    pollfd fds[2] = {{PQsocket(conn_), POLLIN, 0}, {wake_fd, POLLIN, 0}};
    const int64_t wait_ms =
        std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now()));
    const int n = poll(fds, wake_fd >= 0 ? 2 : 1, static_cast<int>(wait_ms));
    if (n < 0 && errno != EINTR) {
      return absl::InternalError(
          absl::StrCat("poll while listening: ", strerror(errno)));
    }
    if (n > 0 && (fds[0].revents & (POLLIN | POLLERR | POLLHUP)) != 0) {
      if (PQconsumeInput(conn_) == 0 || !ok()) return lost();
      if (drain()) return absl::OkStatus();
    }
    if (n > 0 && wake_fd >= 0 && fds[1].revents != 0) return absl::OkStatus();
    if (absl::Now() >= deadline) return absl::OkStatus();
  }
}

absl::Status Connection::Failure(pg_result* result,
                                 absl::string_view what) const {
  const char* state = result == nullptr
                          ? nullptr
                          : PQresultErrorField(result, PG_DIAG_SQLSTATE);
  // The primary message only: the server's DETAIL can quote row values
  // (addresses, names), which must not travel in a status.
  const char* primary =
      result == nullptr ? nullptr
                        : PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
  std::string message =
      OneLine(primary != nullptr  ? primary
              : result == nullptr ? PQerrorMessage(conn_)
                                  : PQresultErrorMessage(result));
  absl::StatusCode code = state != nullptr ? CodeOfSqlState(state)
                          : ok()           ? absl::StatusCode::kInternal
                                           : absl::StatusCode::kUnavailable;
  if (code == absl::StatusCode::kInternal && !ok()) {
    code = absl::StatusCode::kUnavailable;
  }
  absl::Status status(
      code, absl::StrCat("PostgreSQL at ", where_, ": ", what, ": ",
                         state != nullptr ? absl::StrCat("[", state, "] ") : "",
                         message));
  if (state != nullptr) status.SetPayload(kSqlStatePayload, absl::Cord(state));
  return status;
}

std::string SqlStateOf(const absl::Status& status) {
  const auto state = status.GetPayload(kSqlStatePayload);
  return state.has_value() ? std::string(*state) : std::string();
}

absl::Status SerializationFailure(absl::string_view message) {
  absl::Status status(absl::StatusCode::kAborted, message);
  status.SetPayload(kSqlStatePayload, absl::Cord("40001"));
  return status;
}

absl::Status Connection::Exec(absl::string_view sql) {
  const std::string text(sql);
  PGresult* result = PQexec(conn_, text.c_str());
  const ExecStatusType status =
      result == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(result);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
    PQclear(result);
    return absl::OkStatus();
  }
  absl::Status failed = Failure(result, "statement failed");
  if (result != nullptr) PQclear(result);
  return failed;
}

absl::StatusOr<int64_t> Connection::CopyIn(
    absl::string_view copy_sql,
    const std::function<bool(std::string& chunk, absl::Status* stop)>& next) {
  const std::string text(copy_sql);
  PGresult* started = PQexec(conn_, text.c_str());
  if (started == nullptr || PQresultStatus(started) != PGRES_COPY_IN) {
    absl::Status failed = Failure(started, "COPY failed");
    if (started != nullptr) PQclear(started);
    return failed;
  }
  PQclear(started);
  std::string chunk;
  absl::Status stop;
  bool sent = true;
  while (sent) {
    chunk.clear();
    if (!next(chunk, &stop)) break;
    sent = chunk.empty() || PQputCopyData(conn_, chunk.data(),
                                          static_cast<int>(chunk.size())) == 1;
  }
  const std::string why = stop.ok() ? "" : std::string(stop.message());
  PQputCopyEnd(conn_, stop.ok() && sent ? nullptr
                      : why.empty()     ? "the copy was cut short"
                                        : why.c_str());
  absl::Status result;
  int64_t rows = 0;
  while (PGresult* r = PQgetResult(conn_)) {
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
      (void)absl::SimpleAtoi(PQcmdTuples(r), &rows);
    } else if (result.ok()) {
      result = Failure(r, "COPY failed");
    }
    PQclear(r);
  }
  if (!stop.ok()) return stop;
  if (!sent && result.ok()) result = Failure(nullptr, "COPY failed");
  if (!result.ok()) return result;
  return rows;
}

absl::StatusOr<Rows> Connection::Query(
    absl::string_view sql,
    const std::vector<std::optional<std::string>>& params) {
  const std::string text(sql);
  std::vector<const char*> values;
  values.reserve(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const std::optional<std::string>& p = params[i];
    // libpq's text parameters end at the first NUL; PostgreSQL's text type
    // cannot hold one either. Refused rather than stored cut short.
    if (p.has_value() && p->find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("text contains U+0000 (parameter ", i + 1,
                       "), which PostgreSQL cannot store"));
    }
    values.push_back(p.has_value() ? p->c_str() : nullptr);
  }
  PGresult* result =
      PQexecParams(conn_, text.c_str(), static_cast<int>(values.size()),
                   nullptr, values.data(), nullptr, nullptr, 0);
  const ExecStatusType status =
      result == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(result);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
    return Rows(result);
  }
  absl::Status failed = Failure(result, "query failed");
  if (result != nullptr) PQclear(result);
  return failed;
}

}  // namespace campaigns::storage::postgres
