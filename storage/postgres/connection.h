// Connection: one libpq connection to PostgreSQL, with every failure as an
// absl::Status whose code says what the caller can do about it and whose
// message names the server and the cause (never the password).
//
//   absl::StatusOr<std::unique_ptr<Connection>> c =
//       Connection::Open("postgresql://campaignd@db:5432/campaignd");
//   absl::StatusOr<Rows> r = (*c)->Query("SELECT id FROM t WHERE n = $1",
//                                        {"42"});
//
// Codes: INVALID_ARGUMENT for a DSN that does not parse; UNAUTHENTICATED for
// refused credentials; NOT_FOUND for a database that does not exist;
// UNAVAILABLE when the server cannot be reached or the connection was lost
// (retry later: a transaction in progress has been rolled back by the
// server); FAILED_PRECONDITION for a server older than
// kMinimumServerVersion; ABORTED for a serialization failure or a deadlock
// (retry the transaction); ALREADY_EXISTS for a unique violation;
// RESOURCE_EXHAUSTED when the server is out of disk or memory; DATA_LOSS
// for corruption it reports; FAILED_PRECONDITION for a foreign-key
// violation; INTERNAL for the rest. A lock wait longer than
// kLockTimeout is ABORTED too. Messages carry the server's primary message
// and SQLSTATE, never its DETAIL (which can quote row values).
//
// Not thread-safe: one thread at a time (libpq's rule for a PGconn).
#ifndef CAMPAIGND_STORAGE_POSTGRES_CONNECTION_H_
#define CAMPAIGND_STORAGE_POSTGRES_CONNECTION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

struct pg_conn;
struct pg_result;

namespace campaigns::storage::postgres {

// PostgreSQL 15 (PQserverVersion's 150000): MERGE, NULLS NOT DISTINCT and
// the jsonb functions the schema relies on.
inline constexpr int kMinimumServerVersion = 150000;

// Every connection's session settings (Connection::Open).
inline constexpr absl::Duration kIdleInTransaction = absl::Seconds(30);
inline constexpr absl::Duration kLockTimeout = absl::Seconds(10);

// The SQLSTATE of a failure the server reported rides on its status as
// this payload ("40P01", ...); SqlStateOf reads it ("" when there is none).
inline constexpr absl::string_view kSqlStatePayload = "campaignd/sqlstate";
std::string SqlStateOf(const absl::Status& status);
// ABORTED with SQLSTATE 40001 (serialization_failure): what an op returns
// when it found the rows it read changed under it, so that the Database
// runs it once more, alone, as it does the server's own (database.h).
absl::Status SerializationFailure(absl::string_view message);

// Where a DSN points, for messages: "host:port/database as user". Never the
// password. INVALID_ARGUMENT when the DSN does not parse.
absl::StatusOr<std::string> DescribeDsn(const std::string& dsn);

// The rows of a query, as text (NULL = nullopt). Movable, not copyable.
class Rows {
 public:
  Rows() = default;
  explicit Rows(pg_result* result);
  Rows(Rows&& other) noexcept;
  Rows& operator=(Rows&& other) noexcept;
  Rows(const Rows&) = delete;
  Rows& operator=(const Rows&) = delete;
  ~Rows();

  int size() const;
  // Column `col` of row `row` (both 0-based, in range).
  std::optional<std::string> Get(int row, int col) const;
  // The same, with NULL as "".
  std::string Text(int row, int col) const;
  // The index of the column named `name`; -1 if there is none.
  int Column(const char* name) const;
  // Get and Text by column name (a column the query has).
  std::optional<std::string> Get(int row, const char* name) const {
    return Get(row, Column(name));
  }
  std::string Text(int row, const char* name) const {
    return Text(row, Column(name));
  }
  // The command tag ("COMMIT", "ROLLBACK", "INSERT 0 1", ...).
  std::string command() const;
  // Rows changed by an INSERT, UPDATE or DELETE.
  int64_t affected() const;

 private:
  pg_result* result_ = nullptr;
};

class Connection {
 public:
  // Connects and checks the server's version. `connect_timeout` bounds the
  // whole attempt (libpq's connect_timeout, whole seconds, at least 1).
  // `password` (when not empty: the config's db_password) is for a DSN
  // without one; a DSN that has one too is INVALID_ARGUMENT. Without
  // either, libpq's PGPASSWORD and ~/.pgpass apply.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(
      const std::string& dsn,
      absl::Duration connect_timeout = absl::Seconds(10),
      const std::string& password = "");

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Runs `sql` (one or more statements, no parameters); rows are discarded.
  absl::Status Exec(absl::string_view sql);
  // Runs one statement with text parameters ($1, $2, ...; nullopt = NULL).
  absl::StatusOr<Rows> Query(
      absl::string_view sql,
      const std::vector<std::optional<std::string>>& params = {});

  // Runs `copy_sql` (a COPY ... FROM STDIN) and sends it what `next`
  // produces, chunk by chunk in COPY's format, until `next` returns false.
  // A failing `next` (its status set in `*stop`) ends the COPY with an
  // error, so the server keeps none of it. Returns the rows copied.
  absl::StatusOr<int64_t> CopyIn(
      absl::string_view copy_sql,
      const std::function<bool(std::string& chunk, absl::Status* stop)>& next);

  // A NOTIFY received on a channel this session LISTENs on.
  struct Notification {
    std::string channel;
    std::string payload;
  };
  // Appends to `out` the notifications received, waiting up to `timeout`
  // for the first when none is buffered yet. Returns early, with none,
  // when `wake_fd` (-1: none) becomes readable (the caller drains it).
  // UNAVAILABLE when the connection is lost. Outside a transaction only.
  absl::Status WaitForNotifications(absl::Duration timeout,
                                    std::vector<Notification>& out,
                                    int wake_fd = -1);

  // PQserverVersion: e.g. 150018 for 15.18.
  int server_version() const { return server_version_; }
  // "host:port/database as user", for messages.
  const std::string& where() const { return where_; }
  // False once the connection is known to be lost.
  bool ok() const;
  // The server process of this session (pg_backend_pid()).
  int backend_pid() const;
  // The socket's file descriptor (PQsocket), for tests that cut it.
  int socket() const;

 private:
  Connection(pg_conn* conn, std::string where);
  // The status of a failed result (or of the connection when `result` is
  // null), named for `what`.
  absl::Status Failure(pg_result* result, absl::string_view what) const;

  pg_conn* const conn_;
  const std::string where_;
  int server_version_ = 0;
};

}  // namespace campaigns::storage::postgres

#endif  // CAMPAIGND_STORAGE_POSTGRES_CONNECTION_H_
