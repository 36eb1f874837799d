#include "storage/migrate/sqlite_to_postgres.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <map>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/postgres/connection.h"
#include "storage/postgres/migrations.h"
#include "storage/sqlite/database.h"

namespace campaigns::storage {
namespace {

using postgres::Connection;
using postgres::Rows;

// PostgreSQL tables that are not SQLite's: work sharing between instances,
// the writer's commit markers and the schema's own bookkeeping.
const std::set<std::string>& PostgresOnly() {
  static const auto* const kTables = new std::set<std::string>{
      "campaignd_schema", "commit_markers", "instances", "leases"};
  return *kTables;
}

// PostgreSQL columns that SQLite's tables do not have ("table.column"):
// which instance owns a campaign's import or deletion, or a contact
// import, which marked a recipient handed, and a campaign's row version.
// Left at their default: a migrated database's unfinished work has no live
// owner, so the first instance to start takes it over.
const std::set<std::string>& PostgresOnlyColumns() {
  static const auto* const kColumns =
      new std::set<std::string>{"campaigns.work_owner", "contact_imports.owner",
                                "recipients.handed_by", "campaigns.version"};
  return *kColumns;
}

// SQLite's own tables.
bool SqliteInternal(const std::string& table) {
  return table.rfind("sqlite_", 0) == 0;
}

struct Column {
  std::string name;
  std::string type;  // PostgreSQL's data_type: text, bigint, boolean, bytea
};

// One value in COPY's text format.
void AppendCopyText(std::string& out, const char* data, size_t size) {
  for (size_t i = 0; i < size; ++i) {
    const char ch = data[i];
    switch (ch) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += ch;
    }
  }
}

// Appends SQLite's value of `column` as PostgreSQL `type` expects it.
absl::Status AppendValue(std::string& out, const SQLite::Column& value,
                         const Column& column, const std::string& table) {
  if (value.isNull()) {
    out += "\\N";
    return absl::OkStatus();
  }
  if (column.type == "boolean") {
    out += value.getInt64() != 0 ? "t" : "f";
  } else if (column.type == "bigint" || column.type == "integer") {
    absl::StrAppend(&out, value.getInt64());
  } else if (column.type == "bytea") {
    static constexpr char kHex[] = "0123456789abcdef";
    const auto* bytes = static_cast<const unsigned char*>(value.getBlob());
    out += "\\\\x";
    for (int i = 0; i < value.getBytes(); ++i) {
      out += kHex[bytes[i] >> 4];
      out += kHex[bytes[i] & 15];
    }
  } else {
    const std::string text = value.getString();
    if (text.find('\0') != std::string::npos) {
      return absl::FailedPreconditionError(
          absl::StrCat("table ", table, ", column ", column.name,
                       ": a value holds U+0000, which PostgreSQL cannot "
                       "store"));
    }
    AppendCopyText(out, text.data(), text.size());
  }
  return absl::OkStatus();
}

// The PostgreSQL tables to fill, with their columns, in dependency order
// (a table's foreign keys point at tables before it).
absl::StatusOr<std::vector<std::pair<std::string, std::vector<Column>>>>
TargetTables(Connection& pg) {
  absl::StatusOr<Rows> rows = pg.Query(
      "SELECT c.table_name, c.column_name, c.data_type FROM "
      "information_schema.columns c JOIN information_schema.tables t USING "
      "(table_schema, table_name) WHERE c.table_schema = current_schema() "
      "AND t.table_type = 'BASE TABLE' ORDER BY c.table_name, "
      "c.ordinal_position");
  if (!rows.ok()) return rows.status();
  std::map<std::string, std::vector<Column>> columns;
  for (int i = 0; i < rows->size(); ++i) {
    const std::string table = rows->Text(i, 0);
    if (PostgresOnly().count(table) > 0) continue;
    if (PostgresOnlyColumns().count(
            absl::StrCat(table, ".", rows->Text(i, 1))) > 0) {
      continue;
    }
    columns[table].push_back({rows->Text(i, 1), rows->Text(i, 2)});
  }
  // Foreign keys: a table comes after every table it references.
  absl::StatusOr<Rows> refs = pg.Query(
      "SELECT conrelid::regclass::text, confrelid::regclass::text FROM "
      "pg_constraint WHERE contype = 'f' AND connamespace = "
      "current_schema()::regnamespace");
  if (!refs.ok()) return refs.status();
  std::map<std::string, std::set<std::string>> after;
  for (int i = 0; i < refs->size(); ++i) {
    if (refs->Text(i, 0) != refs->Text(i, 1)) {
      after[refs->Text(i, 0)].insert(refs->Text(i, 1));
    }
  }
  std::vector<std::pair<std::string, std::vector<Column>>> ordered;
  std::set<std::string> placed;
  while (placed.size() < columns.size()) {
    const size_t before = placed.size();
    for (const auto& [table, cols] : columns) {
      if (placed.count(table) > 0) continue;
      bool ready = true;
      for (const std::string& dep : after[table]) {
        if (columns.count(dep) > 0 && placed.count(dep) == 0) ready = false;
      }
      if (!ready) continue;
      placed.insert(table);
      ordered.emplace_back(table, cols);
    }
    if (placed.size() == before) {
      return absl::InternalError("the schema's foreign keys form a cycle");
    }
  }
  return ordered;
}

// FAILED_PRECONDITION unless SQLite has exactly the tables `targets` names
// (besides its own), each with every column of its target.
absl::Status CheckSameShape(
    SQLite::Database& lite,
    const std::vector<std::pair<std::string, std::vector<Column>>>& targets) {
  std::set<std::string> target_names;
  for (const auto& [table, cols] : targets) {
    target_names.insert(table);
    SQLite::Statement info(lite, "SELECT name FROM pragma_table_info(?)");
    info.bind(1, table);
    std::set<std::string> have;
    while (info.executeStep()) have.insert(info.getColumn(0).getString());
    if (have.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the SQLite database has no table ", table));
    }
    for (const Column& c : cols) {
      if (have.erase(c.name) == 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the SQLite table ", table, " has no column ", c.name));
      }
    }
    if (!have.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the PostgreSQL table ", table, " has no column ",
                       *have.begin(), " (a newer SQLite schema?)"));
    }
  }
  SQLite::Statement tables(lite,
                           "SELECT name FROM sqlite_master WHERE type = "
                           "'table' ORDER BY name");
  while (tables.executeStep()) {
    const std::string name = tables.getColumn(0).getString();
    if (!SqliteInternal(name) && target_names.count(name) == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("the PostgreSQL schema has no table ", name,
                       " (a newer SQLite "
                       "schema?)"));
    }
  }
  return absl::OkStatus();
}

// FAILED_PRECONDITION when the target already holds rows of campaignd
// (its meta row, made by the schema migration, aside).
absl::Status CheckEmpty(
    Connection& pg,
    const std::vector<std::pair<std::string, std::vector<Column>>>& targets) {
  for (const auto& [table, cols] : targets) {
    if (table == "meta") continue;
    absl::StatusOr<Rows> any = pg.Query(absl::StrCat(
        "SELECT count(*) FROM (SELECT 1 FROM ", table, " LIMIT 1) AS any_row"));
    if (!any.ok()) return any.status();
    if (any->Text(0, 0) != "0") {
      return absl::FailedPreconditionError(
          absl::StrCat("the PostgreSQL database at ", pg.where(),
                       " already has data (table ", table,
                       "); migrate into an empty database"));
    }
  }
  return absl::OkStatus();
}

// Copies `table` from SQLite into PostgreSQL; the rows copied.
absl::StatusOr<int64_t> CopyTable(SQLite::Database& lite, Connection& pg,
                                  const std::string& table,
                                  const std::vector<Column>& cols) {
  std::vector<std::string> names;
  for (const Column& c : cols)
    names.push_back(absl::StrCat("\"", c.name, "\""));
  const std::string list = absl::StrJoin(names, ", ");
  SQLite::Statement select(lite,
                           absl::StrCat("SELECT ", list, " FROM ", table));
  constexpr size_t kChunkBytes = 1 << 20;
  bool more = true;
  return pg.CopyIn(absl::StrCat("COPY ", table, " (", list, ") FROM STDIN"),
                   [&](std::string& chunk, absl::Status* stop) {
                     while (chunk.size() < kChunkBytes && more &&
                            (more = select.executeStep())) {
                       for (size_t i = 0; i < cols.size(); ++i) {
                         if (i > 0) chunk += '\t';
                         *stop = AppendValue(
                             chunk, select.getColumn(static_cast<int>(i)),
                             cols[i], table);
                         if (!stop->ok()) return false;
                       }
                       chunk += '\n';
                     }
                     return !chunk.empty();
                   });
}

// Moves every identity sequence past the largest value copied into it.
absl::Status ContinueSequences(Connection& pg) {
  absl::StatusOr<Rows> identities = pg.Query(
      "SELECT table_name, column_name FROM information_schema.columns WHERE "
      "table_schema = current_schema() AND is_identity = 'YES'");
  if (!identities.ok()) return identities.status();
  for (int i = 0; i < identities->size(); ++i) {
    const std::string table = identities->Text(i, 0);
    const std::string column = identities->Text(i, 1);
    absl::StatusOr<Rows> set = pg.Query(
        absl::StrCat(
            "SELECT setval(pg_get_serial_sequence($1, $2), coalesce(max(\"",
            column, "\"), 0) + 1, false) FROM ", table),
        {table, column});
    if (!set.ok()) return set.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<MigrationReport> CopyAll(SQLite::Database& lite,
                                        Connection& pg) {
  absl::StatusOr<std::vector<std::pair<std::string, std::vector<Column>>>>
      targets = TargetTables(pg);
  if (!targets.ok()) return targets.status();
  if (absl::Status s = CheckSameShape(lite, *targets); !s.ok()) return s;
  if (absl::Status s = CheckEmpty(pg, *targets); !s.ok()) return s;
  // One snapshot of SQLite, one transaction in PostgreSQL.
  SQLite::Transaction snapshot(lite);
  if (absl::Status s = pg.Exec("BEGIN; DELETE FROM meta"); !s.ok()) return s;
  MigrationReport report;
  for (const auto& [table, cols] : *targets) {
    absl::StatusOr<int64_t> copied = CopyTable(lite, pg, table, cols);
    if (!copied.ok()) {
      (void)pg.Exec("ROLLBACK");
      return copied.status();
    }
    SQLite::Statement count(lite, absl::StrCat("SELECT count(*) FROM ", table));
    count.executeStep();
    if (count.getColumn(0).getInt64() != *copied) {
      (void)pg.Exec("ROLLBACK");
      return absl::DataLossError(absl::StrCat(
          "table ", table, ": SQLite has ", count.getColumn(0).getInt64(),
          " rows but ", *copied, " were copied; nothing was kept"));
    }
    report.tables.emplace_back(table, *copied);
    report.total_rows += *copied;
  }
  if (absl::Status s = ContinueSequences(pg); !s.ok()) {
    (void)pg.Exec("ROLLBACK");
    return s;
  }
  absl::StatusOr<Rows> committed = pg.Query("COMMIT");
  if (!committed.ok()) return committed.status();
  if (committed->command() != "COMMIT") {
    return absl::InternalError(
        "PostgreSQL rolled the copy back at its commit; nothing was kept");
  }
  return report;
}

}  // namespace

absl::StatusOr<MigrationReport> MigrateSqliteToPostgres(
    const std::string& sqlite_path, const std::string& postgres_dsn) {
  DatabaseOptions lite_options;
  lite_options.path = sqlite_path;
  lite_options.single_instance = true;  // no campaignd writes meanwhile
  lite_options.read_connections = 1;
  absl::StatusOr<std::unique_ptr<Database>> lite = Database::Open(lite_options);
  if (!lite.ok()) return lite.status();
  absl::StatusOr<std::unique_ptr<Connection>> pg =
      Connection::Open(postgres_dsn);
  if (!pg.ok()) return pg.status();
  absl::StatusOr<int> version = postgres::Migrate(**pg);
  if (!version.ok()) return version.status();
  return (*lite)->Read([&](SQLite::Database& db) { return CopyAll(db, **pg); });
}

}  // namespace campaigns::storage
