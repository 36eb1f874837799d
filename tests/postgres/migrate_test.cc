// MigrateSqliteToPostgres against a real PostgreSQL: an SQLite database with
// rows in every table and every column (made generically from the schema,
// so a table added later is covered without touching this test) arrives
// value for value; the copy is all or nothing; it refuses a running
// campaignd's file and a PostgreSQL database that already has data.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/migrate/sqlite_to_postgres.h"
#include "storage/sqlite/database.h"
#include "storage/sqlite/instance_lock.h"
#include "tests/storage/temp_db.h"
#include "tests/support/pg_fixture.h"

namespace campaigns::storage::postgres::testing {
namespace {

using LiteDatabase = ::campaigns::storage::Database;
using LiteOptions = ::campaigns::storage::DatabaseOptions;

struct SqliteColumn {
  std::string name;
  std::string type;  // declared: INTEGER, TEXT, BLOB
  bool nullable = false;
};

std::string Hex(const std::string& bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\\x";
  for (unsigned char b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

class MigrateTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    path_ = dir_.File("source.db");
    LiteOptions options;
    options.path = path_;
    absl::StatusOr<std::unique_ptr<LiteDatabase>> db =
        LiteDatabase::Open(options);
    ASSERT_TRUE(db.ok()) << db.status();
    lite_ = *std::move(db);
  }

  // Two rows in every table (the second with NULL in every nullable
  // column), parents before children, foreign keys pointing at the parent
  // row of the same index. Text holds tabs, newlines, backslashes, quotes
  // and non-ASCII; blobs hold every awkward byte.
  void FillEveryTable() {
    absl::Status s = lite_->WriteSync([&](SQLite::Database& db) {
      std::vector<std::string> tables;
      SQLite::Statement list(db,
                             "SELECT name FROM sqlite_master WHERE type = "
                             "'table' AND name NOT LIKE 'sqlite_%'");
      while (list.executeStep()) tables.push_back(list.getColumn(0));
      std::map<std::string, std::map<std::string, std::string>> fks;
      std::map<std::string, std::set<std::string>> parents;
      for (const std::string& t : tables) {
        SQLite::Statement fk(db,
                             "SELECT \"table\", \"from\", \"to\" FROM "
                             "pragma_foreign_key_list(?)");
        fk.bind(1, t);
        while (fk.executeStep()) {
          fks[t][fk.getColumn(1).getString()] = absl::StrCat(
              fk.getColumn(0).getString(), ".", fk.getColumn(2).getString());
          parents[t].insert(fk.getColumn(0).getString());
          referenced_.insert(absl::StrCat(fk.getColumn(0).getString(), ".",
                                          fk.getColumn(2).getString()));
        }
      }
      std::set<std::string> done;
      while (done.size() < tables.size()) {
        for (const std::string& t : tables) {
          if (done.count(t) > 0) continue;
          bool ready = true;
          for (const std::string& p : parents[t]) {
            if (p != t && done.count(p) == 0) ready = false;
          }
          if (!ready) continue;
          try {
            FillTable(db, t, fks[t]);
          } catch (const std::exception& e) {
            return absl::InternalError(
                absl::StrCat("filling ", t, ": ", e.what()));
          }
          done.insert(t);
        }
      }
      return absl::OkStatus();
    });
    ASSERT_TRUE(s.ok()) << s;
  }

  // The value row `row` of a filled table has in `column` of `type`.
  static std::string Value(const std::string& table, const std::string& column,
                           int row) {
    return absl::StrCat("v", row, "\t", table, ".", column,
                        "\n\\ 'q' \"dq\" é ✓ \r end");
  }

  void FillTable(SQLite::Database& db, const std::string& table,
                 const std::map<std::string, std::string>& fks) {
    std::vector<SqliteColumn> cols = Columns(db, table);
    std::vector<std::string> names, marks;
    for (const SqliteColumn& c : cols) {
      names.push_back(absl::StrCat("\"", c.name, "\""));
      marks.push_back("?");
    }
    for (int row = 0; row < 2; ++row) {
      SQLite::Statement insert(
          db, absl::StrCat("INSERT OR REPLACE INTO ", table, " (",
                           absl::StrJoin(names, ", "), ") VALUES (",
                           absl::StrJoin(marks, ", "), ")"));
      for (size_t i = 0; i < cols.size(); ++i) {
        const SqliteColumn& c = cols[i];
        const int at = static_cast<int>(i) + 1;
        auto fk = fks.find(c.name);
        if (fk != fks.end()) {
          // The parent's column of the same row: integers are the row
          // index, text the parent's Value.
          const std::string parent = fk->second.substr(0, fk->second.find('.'));
          const std::string parent_col =
              fk->second.substr(fk->second.find('.') + 1);
          if (absl::StrContains(absl::AsciiStrToUpper(c.type), "INT")) {
            insert.bind(at, row);
          } else {
            insert.bind(at, Value(parent, parent_col, row));
          }
        } else if (row == 1 && c.nullable &&
                   referenced_.count(absl::StrCat(table, ".", c.name)) == 0) {
          insert.bind(at);
        } else if (absl::StrContains(absl::AsciiStrToUpper(c.type), "INT")) {
          insert.bind(at, row);
        } else if (absl::StrContains(absl::AsciiStrToUpper(c.type), "BLOB")) {
          const std::string bytes =
              absl::StrCat(std::string("\0\xff\\\t\n", 5), table, row);
          insert.bind(at, bytes.data(), static_cast<int>(bytes.size()));
        } else {
          insert.bind(at, Value(table, c.name, row));
        }
      }
      insert.exec();
    }
  }

  static std::vector<SqliteColumn> Columns(SQLite::Database& db,
                                           const std::string& table) {
    SQLite::Statement info(
        db, "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?)");
    info.bind(1, table);
    std::vector<SqliteColumn> cols;
    while (info.executeStep()) {
      cols.push_back(
          {info.getColumn(0).getString(), info.getColumn(1).getString(),
           info.getColumn(2).getInt() == 0 && info.getColumn(3).getInt() == 0});
    }
    return cols;
  }

  // Every table's rows as sorted lines of "column=value" in PostgreSQL's
  // text output (booleans t/f, bytea \x..., NULL <null>), read from
  // SQLite; `pg_types` maps "table.column" to PostgreSQL's data_type.
  std::map<std::string, std::vector<std::string>> SqliteContent(
      const std::map<std::string, std::string>& pg_types) {
    std::map<std::string, std::vector<std::string>> out;
    absl::Status s = lite_->Read([&](SQLite::Database& db) {
      SQLite::Statement list(db,
                             "SELECT name FROM sqlite_master WHERE type = "
                             "'table' AND name NOT LIKE 'sqlite_%'");
      while (list.executeStep()) {
        const std::string table = list.getColumn(0).getString();
        std::vector<SqliteColumn> cols = Columns(db, table);
        SQLite::Statement rows(db, absl::StrCat("SELECT * FROM ", table));
        std::vector<std::string>& lines = out[table];
        while (rows.executeStep()) {
          std::vector<std::string> fields;
          for (int i = 0; i < rows.getColumnCount(); ++i) {
            const std::string name = rows.getColumnName(i);
            const SQLite::Column v = rows.getColumn(i);
            const std::string type = pg_types.at(table + "." + name);
            std::string text;
            if (v.isNull()) {
              text = "<null>";
            } else if (type == "boolean") {
              text = v.getInt64() != 0 ? "t" : "f";
            } else if (type == "bytea") {
              text = Hex(std::string(static_cast<const char*>(v.getBlob()),
                                     v.getBytes()));
            } else {
              text = v.getString();
            }
            fields.push_back(absl::StrCat(name, "=", text));
          }
          std::sort(fields.begin(), fields.end());
          lines.push_back(absl::StrJoin(fields, "|"));
        }
        std::sort(lines.begin(), lines.end());
      }
      return absl::OkStatus();
    });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  std::map<std::string, std::string> PgTypes(Connection& pg) {
    std::map<std::string, std::string> types;
    absl::StatusOr<Rows> r = pg.Query(
        "SELECT table_name || '.' || column_name, data_type FROM "
        "information_schema.columns WHERE table_schema = current_schema()");
    EXPECT_TRUE(r.ok()) << r.status();
    for (int i = 0; r.ok() && i < r->size(); ++i) {
      types[r->Text(i, 0)] = r->Text(i, 1);
    }
    return types;
  }

  // A column SQLite's table does not have: the instance owning a
  // campaign's import or deletion, or a contact import, which marked a
  // recipient handed, or a campaign's row version.
  static bool PostgresOnlyColumn(const std::string& table,
                                 const std::string& column) {
    return (table == "campaigns" &&
            (column == "work_owner" || column == "version")) ||
           (table == "contact_imports" && column == "owner") ||
           (table == "recipients" && column == "handed_by");
  }

  std::vector<std::string> PgLines(Connection& pg, const std::string& table) {
    std::vector<std::string> lines;
    absl::StatusOr<Rows> r = pg.Query(absl::StrCat("SELECT * FROM ", table));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return lines;
    absl::StatusOr<Rows> names = pg.Query(
        "SELECT column_name FROM information_schema.columns WHERE "
        "table_schema = current_schema() AND table_name = $1 ORDER BY "
        "ordinal_position",
        {table});
    for (int i = 0; i < r->size(); ++i) {
      std::vector<std::string> fields;
      for (int c = 0; c < names->size(); ++c) {
        const std::string value = r->Get(i, c).value_or("<null>");
        if (PostgresOnlyColumn(table, names->Text(c, 0))) {
          // Not SQLite's: no owner of unfinished work yet, version 0.
          EXPECT_EQ(value, names->Text(c, 0) == "version" ? "0" : "")
              << table << "." << names->Text(c, 0);
          continue;
        }
        fields.push_back(absl::StrCat(names->Text(c, 0), "=", value));
      }
      std::sort(fields.begin(), fields.end());
      lines.push_back(absl::StrJoin(fields, "|"));
    }
    std::sort(lines.begin(), lines.end());
    return lines;
  }

  int64_t PgRows(Connection& pg) {
    int64_t total = 0;
    for (const char* t : {"accounts", "campaigns", "recipients", "contacts"}) {
      absl::StatusOr<Rows> r =
          pg.Query(absl::StrCat("SELECT count(*) FROM ", t));
      EXPECT_TRUE(r.ok()) << r.status();
      if (r.ok()) total += std::stoll(r->Text(0, 0));
    }
    return total;
  }

  // "table.column" that foreign keys point at: never NULL.
  std::set<std::string> referenced_;
  test_util::TempDir dir_;
  std::string path_;
  std::unique_ptr<LiteDatabase> lite_;
};

TEST_F(MigrateTest, EveryRowOfEveryTableArrivesValueForValue) {
  FillEveryTable();
  if (HasFatalFailure()) return;
  absl::StatusOr<MigrationReport> report =
      MigrateSqliteToPostgres(path_, Dsn());
  ASSERT_TRUE(report.ok()) << report.status();
  std::unique_ptr<Connection> pg = Connect();
  ASSERT_NE(pg, nullptr);
  const std::map<std::string, std::string> types = PgTypes(*pg);
  const std::map<std::string, std::vector<std::string>> want =
      SqliteContent(types);
  ASSERT_GE(want.size(), 15u);
  std::map<std::string, int64_t> reported(report->tables.begin(),
                                          report->tables.end());
  for (const auto& [table, lines] : want) {
    EXPECT_GE(lines.size(), 2u) << table;  // every table has rows
    EXPECT_EQ(reported[table], static_cast<int64_t>(lines.size())) << table;
    EXPECT_EQ(PgLines(*pg, table), lines) << table;
  }
  // Identity sequences continue after the copied rows (seq 0 and 1).
  for (const char* table : {"campaigns", "contacts", "transactions"}) {
    absl::StatusOr<Rows> next = pg->Query(absl::StrCat(
        "SELECT nextval(pg_get_serial_sequence('", table, "', 'seq'))"));
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_EQ(next->Text(0, 0), "2") << table;
  }
}

TEST_F(MigrateTest, RefusesATargetWithDataAndARunningCampaignd) {
  FillEveryTable();
  if (HasFatalFailure()) return;
  ASSERT_TRUE(MigrateSqliteToPostgres(path_, Dsn()).ok());
  std::unique_ptr<Connection> pg = Connect();
  ASSERT_NE(pg, nullptr);
  const int64_t before = PgRows(*pg);
  absl::StatusOr<MigrationReport> again = MigrateSqliteToPostgres(path_, Dsn());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition)
      << again.status();
  EXPECT_TRUE(absl::StrContains(again.status().message(), "already has data"))
      << again.status();
  EXPECT_EQ(PgRows(*pg), before);
  // A campaignd holding the file: refused before anything is read.
  absl::StatusOr<InstanceLock> running = InstanceLock::Acquire(path_);
  ASSERT_TRUE(running.ok()) << running.status();
  absl::StatusOr<MigrationReport> busy = MigrateSqliteToPostgres(path_, Dsn());
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(busy.status().message(), "another campaignd"))
      << busy.status();
}

TEST_F(MigrateTest, AValuePostgresCannotHoldKeepsNothingAndARetrySucceeds) {
  FillEveryTable();
  if (HasFatalFailure()) return;
  // A NUL inside a text value (SQLite stores it; PostgreSQL cannot).
  ASSERT_TRUE(lite_
                  ->WriteSync([](SQLite::Database& db) {
                    db.exec(
                        "UPDATE suppressions SET note = 'a' || char(0) || 'b' "
                        "WHERE note IS NOT NULL");
                    return absl::OkStatus();
                  })
                  .ok());
  absl::StatusOr<MigrationReport> failed =
      MigrateSqliteToPostgres(path_, Dsn());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kFailedPrecondition)
      << failed.status();
  EXPECT_TRUE(absl::StrContains(failed.status().message(), "suppressions"))
      << failed.status();
  std::unique_ptr<Connection> pg = Connect();
  ASSERT_NE(pg, nullptr);
  EXPECT_EQ(PgRows(*pg), 0);  // tables copied before it were rolled back
  ASSERT_TRUE(lite_
                  ->WriteSync([](SQLite::Database& db) {
                    db.exec("UPDATE suppressions SET note = 'ab'");
                    return absl::OkStatus();
                  })
                  .ok());
  absl::StatusOr<MigrationReport> retried =
      MigrateSqliteToPostgres(path_, Dsn());
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_GT(PgRows(*pg), 0);
}

}  // namespace
}  // namespace campaigns::storage::postgres::testing
