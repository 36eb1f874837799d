// Tests of storage/sqlite/database.h and storage/sqlite/migrations.h: opening
// and migrating, the group-committing writer thread, reads, and the mapping of
// SQLite exceptions to statuses.
#include "storage/sqlite/database.h"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/domain/mutex.h"
#include "storage/sqlite/migrations.h"
#include "storage/sqlite/store.h"
#include "tests/storage/temp_db.h"

namespace campaigns::storage {
namespace {

using test_util::AwaitResult;
using test_util::AwaitStatus;
using test_util::QueryInt;
using test_util::QueryText;
using test_util::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

class DatabaseTest : public ::testing::Test {
 protected:
  DatabaseOptions Options() {
    DatabaseOptions options;
    options.path = dir_.File("test.db");
    options.read_connections = 4;
    return options;
  }

  std::unique_ptr<Database> OpenOrDie(const DatabaseOptions& options) {
    absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(options);
    EXPECT_TRUE(db.ok()) << db.status();
    return db.ok() ? std::move(*db) : nullptr;
  }

  // Creates table kv(k TEXT PRIMARY KEY) through the writer.
  static void CreateKvTable(Database& db) {
    ASSERT_TRUE(db.WriteSync([](SQLite::Database& w) {
                    w.exec("CREATE TABLE kv(k TEXT PRIMARY KEY)");
                    return absl::OkStatus();
                  }).ok());
  }

  static void Insert(SQLite::Database& w, const std::string& key) {
    SQLite::Statement st(w, "INSERT INTO kv(k) VALUES(?)");
    st.bind(1, key);
    st.exec();
  }

  // The keys of kv in order, read on a pooled read connection.
  static std::vector<std::string> Keys(Database& db) {
    absl::StatusOr<std::vector<std::string>> keys = db.Read(
        [](SQLite::Database& r) -> absl::StatusOr<std::vector<std::string>> {
          std::vector<std::string> out;
          SQLite::Statement st(r, "SELECT k FROM kv ORDER BY k");
          while (st.executeStep()) out.push_back(st.getColumn(0).getString());
          return out;
        });
    EXPECT_TRUE(keys.ok()) << keys.status();
    return keys.ok() ? *keys : std::vector<std::string>{};
  }

  static int64_t CountRows(Database& db) {
    return QueryInt(db, "SELECT COUNT(*) FROM kv");
  }

  TempDir dir_;
};

// --- Prepared reads ---------------------------------------------------------

// True when a statement of connection `db` is between its first step and
// its reset (and so holds a read snapshot open).
bool AnyStatementBusy(sqlite3* db) {
  for (sqlite3_stmt* st = sqlite3_next_stmt(db, nullptr); st != nullptr;
       st = sqlite3_next_stmt(db, st)) {
    if (sqlite3_stmt_busy(st)) return true;
  }
  return false;
}

TEST_F(DatabaseTest, ReadPreparedReusesStatementsAndLeavesThemReset) {
  DatabaseOptions options = Options();
  options.read_connections = 1;  // every read on the same connection
  std::unique_ptr<Database> db = OpenOrDie(options);
  ASSERT_NE(db, nullptr);
  CreateKvTable(*db);
  sqlite3* connection = nullptr;
  auto count = [&](SQLite::Statement** used) {
    absl::StatusOr<int64_t> n = db->ReadPrepared(
        [&](SQLite::Database& r,
            StatementCache& statements) -> absl::StatusOr<int64_t> {
          connection = r.getHandle();
          StatementCache::Use st =
              statements.Get("SELECT COUNT(*) FROM kv WHERE k >= ?");
          st->bind(1, "");
          *used = &*st;
          // One step and no more: the statement is still busy here.
          st->executeStep();
          EXPECT_TRUE(AnyStatementBusy(connection));
          return st->getColumn(0).getInt64();
        });
    EXPECT_TRUE(n.ok()) << n.status();
    return n.ok() ? *n : -1;
  };
  SQLite::Statement* first = nullptr;
  SQLite::Statement* second = nullptr;
  EXPECT_EQ(count(&first), 0);
  // Reset once the read returned: the idle connection holds no snapshot...
  EXPECT_FALSE(AnyStatementBusy(connection));
  ASSERT_TRUE(db->WriteSync([](SQLite::Database& w) {
                  Insert(w, "a");
                  return absl::OkStatus();
                }).ok());
  // ...so the same statement, used again, sees the later write.
  EXPECT_EQ(count(&second), 1);
  EXPECT_EQ(first, second);
  EXPECT_FALSE(AnyStatementBusy(connection));
}

// --- Open and migrations ----------------------------------------------------

TEST_F(DatabaseTest, FreshDatabaseIsMigratedToLatestVersionInWalMode) {
  std::unique_ptr<Database> db = OpenOrDie(Options());
  ASSERT_NE(db, nullptr);
  EXPECT_GE(LatestSchemaVersion(), 1);
  EXPECT_EQ(db->schema_version(), LatestSchemaVersion());
  EXPECT_EQ(db->path(), Options().path);
  EXPECT_EQ(QueryInt(*db, "PRAGMA user_version"), LatestSchemaVersion());
  EXPECT_EQ(QueryText(*db, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(QueryInt(*db, "PRAGMA foreign_keys"), 1);
  EXPECT_EQ(QueryInt(*db,
                     "SELECT COUNT(*) FROM sqlite_master WHERE type='table' "
                     "AND name='campaigns'"),
            1);
}

TEST_F(DatabaseTest, ReopeningIsIdempotentAndKeepsData) {
  int64_t tables = 0;
  {
    std::unique_ptr<Database> db = OpenOrDie(Options());
    ASSERT_NE(db, nullptr);
    CreateKvTable(*db);
    ASSERT_TRUE(db->WriteSync([](SQLite::Database& w) {
                    Insert(w, "kept");
                    return absl::OkStatus();
                  }).ok());
    tables = QueryInt(*db, "SELECT COUNT(*) FROM sqlite_master");
  }
  for (int i = 0; i < 2; ++i) {
    std::unique_ptr<Database> db = OpenOrDie(Options());
    ASSERT_NE(db, nullptr);
    EXPECT_EQ(db->schema_version(), LatestSchemaVersion());
    EXPECT_THAT(Keys(*db), ElementsAre("kept"));
    EXPECT_EQ(QueryInt(*db, "SELECT COUNT(*) FROM sqlite_master"), tables);
  }
}

TEST_F(DatabaseTest, MigrateOnAnUpToDateConnectionIsANoOp) {
  SQLite::Database raw(Options().path,
                       SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  absl::StatusOr<int> first = Migrate(raw);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, LatestSchemaVersion());
  absl::StatusOr<int> second = Migrate(raw);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*second, LatestSchemaVersion());
}

TEST_F(DatabaseTest, DatabaseNewerThanTheBuildIsRefused) {
  {
    SQLite::Database raw(Options().path,
                         SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    raw.exec(absl::StrCat("PRAGMA user_version=", LatestSchemaVersion() + 1));
  }
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(Options());
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), absl::StatusCode::kFailedPrecondition)
      << db.status();
}

TEST_F(DatabaseTest, MigrateToStopsAtTheTargetVersion) {
  SQLite::Database raw(Options().path,
                       SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  absl::StatusOr<int> v = MigrateTo(raw, 1);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, 1);
  EXPECT_EQ(raw.execAndGet("PRAGMA user_version").getInt(), 1);
  EXPECT_EQ(MigrateTo(raw, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MigrateTo(raw, LatestSchemaVersion() + 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Migration 11 (email subject and HTML body) on a database a build of
// schema 10 left: its templates and campaigns read back unchanged, with no
// subject or HTML body.
TEST_F(DatabaseTest, TheEmailMigrationKeepsOldTemplatesAndCampaigns) {
  {
    SQLite::Database raw(Options().path,
                         SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    absl::StatusOr<int> v = MigrateTo(raw, 10);
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_EQ(*v, 10);
    raw.exec(R"sql(
INSERT INTO accounts(id, name, currency, created_at, updated_at)
  VALUES('acct_old', 'old', 'EUR', 1, 1);
INSERT INTO templates(id, account_id, name, language, channel, body, status,
                      created_at, updated_at)
  VALUES('tmpl_old', 'acct_old', 'welcome', 'en', 'email', 'Hi {{name}}',
         'approved', 1, 2);
INSERT INTO campaigns(id, account_id, name, channel, sender_id, sender_ref,
                      template_id, template_name, template_lang, status,
                      batch_size, created_at, updated_at, seq)
  VALUES('cmp_old', 'acct_old', 'spring', 'email', 'news@example.com',
         'snd_old', 'tmpl_old', 'welcome', 'en', 'draft', 250, 3, 4, 1);
)sql");
  }
  std::unique_ptr<Database> db = OpenOrDie(Options());
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->schema_version(), LatestSchemaVersion());
  Store store(db.get());
  absl::StatusOr<Template> t = store.GetTemplate("acct_old", "tmpl_old");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->name, "welcome");
  EXPECT_EQ(t->channel, Channel::kEmail);
  EXPECT_EQ(t->body, "Hi {{name}}");
  EXPECT_EQ(t->status, TemplateStatus::kApproved);
  EXPECT_EQ(t->updated_at, absl::FromUnixMicros(2));
  EXPECT_EQ(t->subject, "");
  EXPECT_EQ(t->html_body, "");
  absl::StatusOr<Campaign> c = store.GetCampaign("acct_old", "cmp_old");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->name, "spring");
  EXPECT_EQ(c->sender_id, "news@example.com");
  EXPECT_EQ(c->template_id, "tmpl_old");
  EXPECT_EQ(c->status, CampaignStatus::kDraft);
  EXPECT_EQ(c->batch_size, 250);
  EXPECT_EQ(c->seq, 1);
  EXPECT_EQ(c->subject, "");
  EXPECT_EQ(c->html_body, "");
}

TEST_F(DatabaseTest, TheAddressSetMigrationKeepsRecipientsAndTheirNumbers) {
  {
    SQLite::Database raw(Options().path,
                         SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    absl::StatusOr<int> v = MigrateTo(raw, 12);
    ASSERT_TRUE(v.ok()) << v.status();
    raw.exec(R"sql(
INSERT INTO accounts(id, name, currency, created_at, updated_at)
  VALUES('acct_old', 'old', 'EUR', 1, 1);
INSERT INTO campaigns(id, account_id, name, channel, sender_id, sender_ref,
                      status, batch_size, created_at, updated_at, seq)
  VALUES('cmp_old', 'acct_old', 'spring', 'sms', '+15550100', 'snd_old',
         'sending', 250, 3, 4, 1);
INSERT INTO recipients(seq, campaign_seq, address, status, provider,
                       provider_message_id, retries, handed, country, units,
                       created_at, updated_at)
  VALUES(7, 1, '+15551000002', 'sent', 'sim', 'm-7', 1, 0, 'US', 1, 5, 6),
        (9, 1, '+15551000001', 'queued', '', '', 0, 1, NULL, NULL, 5, 6);
DELETE FROM recipients WHERE seq=9;
INSERT INTO recipients(seq, campaign_seq, address, status, created_at,
                       updated_at)
  VALUES(8, 1, '+15551000001', 'queued', 5, 6);
)sql");
  }
  std::unique_ptr<Database> db = OpenOrDie(Options());
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->schema_version(), LatestSchemaVersion());
  absl::StatusOr<std::string> rows =
      db->Read([](SQLite::Database& c) -> absl::StatusOr<std::string> {
        SQLite::Statement st(
            c,
            "SELECT group_concat(seq || ':' || address || ':' || status || "
            "':' || provider || ':' || provider_message_id || ':' || retries "
            "|| ':' || handed || ':' || IFNULL(country, '-') || ':' || "
            "IFNULL(import_row, '-'), ' ') FROM (SELECT * FROM recipients "
            "ORDER BY seq)");
        st.executeStep();
        std::string out = st.getColumn(0).getString();
        SQLite::Statement set(c,
                              "SELECT group_concat(address || '=' || seq, ' ') "
                              "FROM recipient_addresses WHERE campaign_seq=1");
        set.executeStep();
        return out + " | " + set.getColumn(0).getString();
      });
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(*rows,
            "7:+15551000002:sent:sim:m-7:1:0:US:- "
            "8:+15551000001:queued:::0:0:-:- | "
            "+15551000001=8 +15551000002=7");
  // Numbers are never reused: the next row comes after the deleted 9.
  absl::Status added = db->WriteSync([](SQLite::Database& c) {
    c.exec(
        "INSERT INTO recipients(campaign_seq, address, status, created_at, "
        "updated_at) VALUES(1, '+15551000003', 'queued', 7, 7)");
    return absl::OkStatus();
  });
  ASSERT_TRUE(added.ok()) << added;
  absl::StatusOr<int64_t> last =
      db->Read([](SQLite::Database& c) -> absl::StatusOr<int64_t> {
        return c.execAndGet("SELECT MAX(seq) FROM recipients").getInt64();
      });
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(*last, 10);
}

// --- What Open refuses ------------------------------------------------------

TEST_F(DatabaseTest, MissingDirectoryIsRefusedNamingIt) {
  DatabaseOptions options = Options();
  options.path = dir_.File("no/such/dir/test.db");
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(options);
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), absl::StatusCode::kFailedPrecondition)
      << db.status();
  EXPECT_THAT(std::string(db.status().message()),
              HasSubstr(dir_.File("no/such/dir") + ": No such file"));
}

TEST_F(DatabaseTest, ADirectoryInPlaceOfTheFileIsRefused) {
  DatabaseOptions options = Options();
  ASSERT_EQ(mkdir(options.path.c_str(), 0700), 0);
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(options);
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(db.status().message()),
              HasSubstr("it is a directory"));
}

TEST_F(DatabaseTest, NewerSchemaIsRefusedSayingWhatToRun) {
  {
    SQLite::Database raw(Options().path,
                         SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    raw.exec(absl::StrCat("PRAGMA user_version=", LatestSchemaVersion() + 7));
  }
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(Options());
  ASSERT_FALSE(db.ok());
  EXPECT_THAT(
      std::string(db.status().message()),
      HasSubstr(absl::StrCat("schema version ", LatestSchemaVersion() + 7,
                             " is newer than this build")));
}

TEST_F(DatabaseTest, AFileThatIsNotADatabaseIsRefused) {
  {
    std::ofstream out(Options().path, std::ios::binary);
    out << std::string(8192, 'x');
  }
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(Options());
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), absl::StatusCode::kFailedPrecondition)
      << db.status();
  EXPECT_THAT(std::string(db.status().message()),
              HasSubstr("not a SQLite database or is damaged"));
}

// The child of OpenAsNobody starts the writer's threads, which TSan refuses
// after a fork of a multi-threaded process (die_after_fork); the plain and
// ASan builds run the tests that use it.
#if defined(__SANITIZE_THREAD__)
#define SKIP_FORK_UNDER_TSAN() GTEST_SKIP() << "fork, then threads"
#else
#define SKIP_FORK_UNDER_TSAN() (void)0
#endif

// Opens `options` in a child process running as `nobody` (root passes every
// permission check) and returns the status message, or "ok".
std::string OpenAsNobody(const DatabaseOptions& options) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return "pipe failed";
  const pid_t pid = fork();
  if (pid == 0) {
    close(pipe_fds[0]);
    std::string answer;
    if (getuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) {
      answer = "setuid failed";
    } else {
      absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(options);
      answer = db.ok() ? "ok" : std::string(db.status().message());
    }
    (void)!write(pipe_fds[1], answer.data(), answer.size());
    _exit(0);
  }
  close(pipe_fds[1]);
  std::string answer;
  char buf[512];
  for (ssize_t n; (n = read(pipe_fds[0], buf, sizeof buf)) > 0;) {
    answer.append(buf, static_cast<size_t>(n));
  }
  close(pipe_fds[0]);
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
  return answer;
}

TEST_F(DatabaseTest, AReadOnlyFileInAWritableDirectoryIsRefused) {
  SKIP_FORK_UNDER_TSAN();
  { ASSERT_NE(OpenOrDie(Options()), nullptr); }
  ASSERT_EQ(chmod(dir_.path().c_str(), 0777), 0);
  ASSERT_EQ(chmod(Options().path.c_str(), 0444), 0);
  EXPECT_THAT(OpenAsNobody(Options()),
              HasSubstr("the file is not readable and writable"));
  // The same file, writable by all: opened.
  ASSERT_EQ(chmod(Options().path.c_str(), 0666), 0);
  EXPECT_EQ(OpenAsNobody(Options()), "ok");
}

TEST_F(DatabaseTest, AnUnwritableDirectoryIsRefused) {
  SKIP_FORK_UNDER_TSAN();
  { ASSERT_NE(OpenOrDie(Options()), nullptr); }
  ASSERT_EQ(chmod(Options().path.c_str(), 0666), 0);
  ASSERT_EQ(chmod(dir_.path().c_str(), 0755), 0);
  EXPECT_THAT(OpenAsNobody(Options()),
              HasSubstr("directory " + dir_.path() + " is not writable"));
}

// Fills kv with rows spread over many pages, closes the database (the WAL
// is checkpointed into the file), and overwrites the middle third of the
// file: kv's pages, created after the schema's.
void WriteAndDamage(const DatabaseOptions& options) {
  {
    absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(options);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)
                    ->WriteSync([](SQLite::Database& w) {
                      w.exec("CREATE TABLE kv(k TEXT PRIMARY KEY)");
                      SQLite::Statement st(w, "INSERT INTO kv(k) VALUES(?)");
                      for (int i = 0; i < 3000; ++i) {
                        st.bind(1, absl::StrCat(i, std::string(400, 'k')));
                        st.exec();
                        st.reset();
                      }
                      return absl::OkStatus();
                    })
                    .ok());
  }
  ASSERT_FALSE(std::filesystem::exists(options.path + "-wal"));
  const auto size = std::filesystem::file_size(options.path);
  std::fstream f(options.path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(size / 3));
  f << std::string(size / 3, '\xa5');
}

TEST_F(DatabaseTest, ADamagedFileFailsTheCheckAtOpen) {
  WriteAndDamage(Options());
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(Options());
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), absl::StatusCode::kFailedPrecondition)
      << db.status();
  EXPECT_THAT(std::string(db.status().message()),
              HasSubstr("failed its integrity check (PRAGMA quick_check"));
  EXPECT_THAT(std::string(db.status().message()), HasSubstr("--skip-check"));
}

TEST_F(DatabaseTest, CorruptionFoundWhileRunningStopsWrites) {
  WriteAndDamage(Options());
  DatabaseOptions options = Options();
  options.check_on_open = false;
  std::atomic<int> unwritable_calls{0};
  options.on_writable = [&](bool writable) {
    if (!writable) ++unwritable_calls;
  };
  std::unique_ptr<Database> db = OpenOrDie(options);
  ASSERT_NE(db, nullptr);
  EXPECT_FALSE(db->corrupt());
  EXPECT_TRUE(db->writable());

  absl::StatusOr<int64_t> scanned =
      db->Read([](SQLite::Database& r) -> absl::StatusOr<int64_t> {
        SQLite::Statement st(r, "SELECT k FROM kv");
        int64_t n = 0;
        while (st.executeStep()) ++n;
        return n;
      });
  ASSERT_FALSE(scanned.ok());
  EXPECT_EQ(scanned.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(scanned.status().message()),
              HasSubstr("database file is corrupt"));
  EXPECT_TRUE(db->corrupt());
  EXPECT_FALSE(db->writable());
  EXPECT_EQ(unwritable_calls.load(), 1);

  // No write is attempted from now on, not even one elsewhere in the file.
  absl::Status write = db->WriteSync([](SQLite::Database& w) {
    w.exec("CREATE TABLE other(x)");
    return absl::OkStatus();
  });
  EXPECT_EQ(write.code(), absl::StatusCode::kUnavailable) << write;
  EXPECT_THAT(std::string(write.message()), HasSubstr("corrupt"));
  EXPECT_FALSE(db->writable());
  EXPECT_EQ(QueryInt(*db,
                     "SELECT COUNT(*) FROM sqlite_master WHERE "
                     "name='other'"),
            0);
}

// --- The writer
// ---------------------------------------------------------------

TEST_F(DatabaseTest, ConcurrentWritesFromSeveralThreadsAllCommit) {
  std::unique_ptr<Database> db = OpenOrDie(Options());
  ASSERT_NE(db, nullptr);
  CreateKvTable(*db);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250;
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string key = absl::StrCat(t, "-", i);
        db->Write<std::string>(
            [key](SQLite::Database& w) -> absl::StatusOr<std::string> {
              Insert(w, key);
              return key;
            },
            [&, key](absl::StatusOr<std::string> r) {
              if (r.ok() && *r == key) {
                ok.fetch_add(1);
              } else {
                failed.fetch_add(1);
              }
            });
      }
    });
  }
  for (std::thread& t : threads) t.join();
  db->Flush();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(CountRows(*db), kThreads * kPerThread);
}

// Holds the writer thread inside a transaction until released, so that the
// writes queued meanwhile form the next batch together.
class WriterBlocker {
 public:
  explicit WriterBlocker(Database& db) {
    db.WriteRaw(
        [this](SQLite::Database&) {
          started_.Notify();
          release_.WaitForNotification();
          return absl::OkStatus();
        },
        nullptr);
    started_.WaitForNotification();
  }
  ~WriterBlocker() { Release(); }
  void Release() {
    if (!release_.HasBeenNotified()) release_.Notify();
  }

 private:
  absl::Notification started_;
  absl::Notification release_;
};

// A log of operations and completions in the order the writer ran them.
class EventLog {
 public:
  void Add(std::string event) {
    MutexLock lock(&mu_);
    events_.push_back(std::move(event));
  }
  std::vector<std::string> events() {
    MutexLock lock(&mu_);
    return events_;
  }

 private:
  Mutex mu_;  // ours, not absl::Mutex: this suite runs under TSan
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
};

TEST_F(DatabaseTest, FailingOperationRollsBackAloneWithinItsBatch) {
  DatabaseOptions options = Options();
  options.max_commit_time = absl::Hours(1);  // one batch, however slow
  std::unique_ptr<Database> db = OpenOrDie(options);
  ASSERT_NE(db, nullptr);
  CreateKvTable(*db);

  EventLog log;
  std::vector<absl::Status> results(4);
  {
    WriterBlocker blocker(*db);
    // a: succeeds.
    db->WriteRaw(
        [&](SQLite::Database& w) {
          log.Add("op a");
          Insert(w, "a");
          return absl::OkStatus();
        },
        [&](absl::Status s) {
          log.Add("done a");
          results[0] = s;
        });
    // b: writes, then returns an error: its row must go.
    db->WriteRaw(
        [&](SQLite::Database& w) {
          log.Add("op b");
          Insert(w, "b");
          return absl::InvalidArgumentError("b refuses");
        },
        [&](absl::Status s) {
          log.Add("done b");
          results[1] = s;
        });
    // c: writes, then throws (duplicate primary key of a's row).
    db->WriteRaw(
        [&](SQLite::Database& w) {
          log.Add("op c");
          Insert(w, "c");
          Insert(w, "a");
          return absl::OkStatus();
        },
        [&](absl::Status s) {
          log.Add("done c");
          results[2] = s;
        });
    // d: succeeds after the failures.
    db->WriteRaw(
        [&](SQLite::Database& w) {
          log.Add("op d");
          Insert(w, "d");
          return absl::OkStatus();
        },
        [&](absl::Status s) {
          log.Add("done d");
          results[3] = s;
        });
  }
  db->Flush();

  // All four ran in one transaction before any completion.
  EXPECT_THAT(log.events(),
              ElementsAre("op a", "op b", "op c", "op d", "done a", "done b",
                          "done c", "done d"));
  EXPECT_TRUE(results[0].ok()) << results[0];
  EXPECT_EQ(results[1].code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(results[1].message(), "b refuses");
  EXPECT_EQ(results[2].code(), absl::StatusCode::kAlreadyExists) << results[2];
  EXPECT_TRUE(results[3].ok()) << results[3];
  EXPECT_THAT(Keys(*db), ElementsAre("a", "d"));
}

TEST_F(DatabaseTest, BatchesAreBoundedByMaxOpsPerCommit) {
  DatabaseOptions options = Options();
  options.max_ops_per_commit = 2;
  options.max_commit_time = absl::Hours(1);
  std::unique_ptr<Database> db = OpenOrDie(options);
  ASSERT_NE(db, nullptr);
  CreateKvTable(*db);

  EventLog log;
  {
    WriterBlocker blocker(*db);
    for (int i = 1; i <= 5; ++i) {
      db->WriteRaw(
          [&log, i](SQLite::Database& w) {
            log.Add(absl::StrCat("op ", i));
            Insert(w, absl::StrCat(i));
            return absl::OkStatus();
          },
          [&log, i](absl::Status s) {
            EXPECT_TRUE(s.ok()) << s;
            log.Add(absl::StrCat("done ", i));
          });
    }
  }
  db->Flush();
  EXPECT_THAT(log.events(),
              ElementsAre("op 1", "op 2", "done 1", "done 2", "op 3", "op 4",
                          "done 3", "done 4", "op 5", "done 5"));
  EXPECT_EQ(CountRows(*db), 5);
}

TEST_F(DatabaseTest, TypedWritesReportTheExceptionStatus) {
  // An exception in a typed op must reach `done` as the converted status
  // (CONSTRAINT -> ALREADY_EXISTS), like WriteRaw does.
  std::unique_ptr<Database> db = OpenOrDie(Options());
  ASSERT_NE(db, nullptr);
  CreateKvTable(*db);
  ASSERT_TRUE(db->WriteSync([](SQLite::Database& w) {
                  Insert(w, "dup");
                  return absl::OkStatus();
                }).ok());
  auto insert_dup = [](SQLite::Database& w) -> absl::StatusOr<int> {
    Insert(w, "dup");
    return 1;
  };

  absl::StatusOr<int> async =
      AwaitResult<int>([&](std::function<void(absl::StatusOr<int>)> done) {
        db->Write<int>(insert_dup, std::move(done));
      });
  EXPECT_EQ(async.status().code(), absl::StatusCode::kAlreadyExists)
      << async.status();

  absl::StatusOr<int> sync = db->WriteSync<int>(insert_dup);
  EXPECT_EQ(sync.status().code(), absl::StatusCode::kAlreadyExists)
      << sync.status();
}

TEST_F(DatabaseTest, TypedWriteDeliversValueOrReturnedError) {
  std::unique_ptr<Database> db = OpenOrDie(Options());
  ASSERT_NE(db, nullptr);
  CreateKvTable(*db);
  absl::StatusOr<std::string> value = db->WriteSync<std::string>(
      [](SQLite::Database& w) -> absl::StatusOr<std::string> {
        Insert(w, "v");
        return std::string("value");
      });
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, "value");

  absl::StatusOr<std::string> error = AwaitResult<std::string>(
      [&](std::function<void(absl::StatusOr<std::string>)> done) {
        db->Write<std::string>(
            [](SQLite::Database& w) -> absl::StatusOr<std::string> {
              Insert(w, "rolled-back");
              return absl::NotFoundError("nope");
            },
            std::move(done));
      });
  EXPECT_EQ(error.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Keys(*db), ElementsAre("v"));
}

TEST_F(DatabaseTest, CompletionRunsAfterCommit) {
  std::unique_ptr<Database> db = OpenOrDie(Options());
  ASSERT_NE(db, nullptr);
  CreateKvTable(*db);
  int64_t seen_in_op = -1;
  int64_t seen_in_done = -1;
  absl::Status done_status = absl::UnknownError("not called");
  db->WriteRaw(
      [&](SQLite::Database& w) {
        Insert(w, "k");
        // Another connection does not see the uncommitted row yet.
        seen_in_op = CountRows(*db);
        return absl::OkStatus();
      },
      [&](absl::Status s) {
        done_status = s;
        // Committed: visible from another connection.
        seen_in_done = CountRows(*db);
      });
  db->Flush();
  EXPECT_TRUE(done_status.ok()) << done_status;
  EXPECT_EQ(seen_in_op, 0);
  EXPECT_EQ(seen_in_done, 1);
}

TEST_F(DatabaseTest, CompletionMayQueueFurtherWrites) {
  std::unique_ptr<Database> db = OpenOrDie(Options());
  ASSERT_NE(db, nullptr);
  CreateKvTable(*db);
  absl::Status second =
      AwaitStatus([&](std::function<void(absl::Status)> done) {
        db->WriteRaw(
            [](SQLite::Database& w) {
              Insert(w, "first");
              return absl::OkStatus();
            },
            [&db, done](absl::Status s) {
              EXPECT_TRUE(s.ok()) << s;
              db->WriteRaw(
                  [](SQLite::Database& w) {
                    Insert(w, "second");
                    return absl::OkStatus();
                  },
                  done);
            });
      });
  EXPECT_TRUE(second.ok()) << second;
  EXPECT_THAT(Keys(*db), ElementsAre("first", "second"));
}

TEST_F(DatabaseTest, FlushWaitsForEveryQueuedWrite) {
  std::unique_ptr<Database> db = OpenOrDie(Options());
  ASSERT_NE(db, nullptr);
  db->Flush();  // nothing queued: returns
  CreateKvTable(*db);
  constexpr int kWrites = 300;
  std::atomic<int> done{0};
  for (int i = 0; i < kWrites; ++i) {
    db->WriteRaw(
        [i](SQLite::Database& w) {
          Insert(w, absl::StrCat("k", i));
          return absl::OkStatus();
        },
        [&done](absl::Status s) {
          EXPECT_TRUE(s.ok()) << s;
          done.fetch_add(1);
        });
  }
  db->Flush();
  EXPECT_EQ(done.load(), kWrites);
  EXPECT_EQ(CountRows(*db), kWrites);
}

TEST_F(DatabaseTest, CloseDrainsQueuedWrites) {
  std::atomic<int> done{0};
  {
    std::unique_ptr<Database> db = OpenOrDie(Options());
    ASSERT_NE(db, nullptr);
    CreateKvTable(*db);
    for (int i = 0; i < 50; ++i) {
      db->WriteRaw(
          [i](SQLite::Database& w) {
            Insert(w, absl::StrCat("k", i));
            return absl::OkStatus();
          },
          [&done](absl::Status s) {
            if (s.ok()) done.fetch_add(1);
          });
    }
    db->Close();
    EXPECT_EQ(done.load(), 50);
  }
  std::unique_ptr<Database> db = OpenOrDie(Options());
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(CountRows(*db), 50);
}

// An op that ends the group transaction itself (here: ROLLBACK) breaks its
// savepoint handling. It must fail once, not be re-queued forever, and the
// writes queued behind it must still commit.
TEST_F(DatabaseTest, OpThatBreaksTheTransactionFailsOnceAndOthersCommit) {
  std::unique_ptr<Database> db = OpenOrDie(Options());
  ASSERT_NE(db, nullptr);
  CreateKvTable(*db);
  absl::Status broken =
      AwaitStatus([&](std::function<void(absl::Status)> done) {
        db->WriteRaw(
            [](SQLite::Database& w) {
              Insert(w, "lost");
              w.exec("ROLLBACK");
              return absl::OkStatus();
            },
            done);
      });
  EXPECT_FALSE(broken.ok());
  absl::Status after = AwaitStatus([&](std::function<void(absl::Status)> done) {
    db->WriteRaw(
        [](SQLite::Database& w) {
          Insert(w, "kept");
          return absl::OkStatus();
        },
        done);
  });
  EXPECT_TRUE(after.ok()) << after;
  db->Flush();
  EXPECT_EQ(Keys(*db), std::vector<std::string>{"kept"});
}

// A transaction that fails to commit makes the database unwritable (for
// readiness) until one commits again, which the writer's own probe finds
// out while idle; both changes are told once, and every transaction is
// reported to the metrics with its size.
TEST_F(DatabaseTest, WritableFollowsTheLastCommitAndMetricsSeeEveryOne) {
  struct Counting : Metrics {
    void StorageCommit(absl::Duration took, int64_t ops) override {
      EXPECT_GE(took, absl::ZeroDuration());
      commits.fetch_add(1);
      total_ops.fetch_add(ops);
    }
    std::atomic<int> commits{0};
    std::atomic<int64_t> total_ops{0};
  } metrics;
  std::vector<bool> changes;  // written on the writer thread only
  DatabaseOptions options = Options();
  options.metrics = &metrics;
  options.writable_probe_every = absl::Milliseconds(20);
  options.on_writable = [&](bool writable) { changes.push_back(writable); };
  std::unique_ptr<Database> db = OpenOrDie(options);
  ASSERT_NE(db, nullptr);
  CreateKvTable(*db);
  EXPECT_TRUE(db->writable());
  EXPECT_EQ(metrics.commits.load(), 1);
  EXPECT_EQ(metrics.total_ops.load(), 1);
  EXPECT_FALSE(AwaitStatus([&](std::function<void(absl::Status)> done) {
                 db->WriteRaw(
                     [](SQLite::Database& w) {
                       w.exec("ROLLBACK");
                       return absl::OkStatus();
                     },
                     done);
               }).ok());
  // No write of ours follows: the writer's own probe finds the database
  // writable again.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!db->writable() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_TRUE(db->writable());
  db->Flush();  // the writer counts a batch done after its callbacks
  EXPECT_EQ(db->queue_depth(), 0);
  ASSERT_TRUE(AwaitStatus([&](std::function<void(absl::Status)> done) {
                db->WriteRaw(
                    [](SQLite::Database& w) {
                      Insert(w, "a");
                      return absl::OkStatus();
                    },
                    done);
              }).ok());
  EXPECT_TRUE(db->writable());
  db->Flush();
  EXPECT_EQ(changes, (std::vector<bool>{false, true}));
  // The table, the broken one, the probe, the insert.
  EXPECT_EQ(metrics.commits.load(), 4);
}

TEST_F(DatabaseTest, WriteAfterCloseIsUnavailable) {
  std::unique_ptr<Database> db = OpenOrDie(Options());
  ASSERT_NE(db, nullptr);
  db->Close();
  db->Close();  // idempotent

  bool op_ran = false;
  bool called = false;
  absl::Status status;
  db->WriteRaw(
      [&](SQLite::Database&) {
        op_ran = true;
        return absl::OkStatus();
      },
      [&](absl::Status s) {
        called = true;
        status = s;
      });
  EXPECT_TRUE(called);  // at once, on the calling thread
  EXPECT_FALSE(op_ran);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;

  absl::Status sync =
      db->WriteSync([](SQLite::Database&) { return absl::OkStatus(); });
  EXPECT_EQ(sync.code(), absl::StatusCode::kUnavailable) << sync;

  db->WriteRaw([](SQLite::Database&) { return absl::OkStatus(); }, nullptr);
  db->Flush();  // nothing pending: returns
}

TEST_F(DatabaseTest, TypedWriteAfterCloseIsUnavailable) {
  // Clients retry UNAVAILABLE; a write refused at shutdown must say so.
  std::unique_ptr<Database> db = OpenOrDie(Options());
  ASSERT_NE(db, nullptr);
  db->Close();
  auto op = [](SQLite::Database&) -> absl::StatusOr<int> { return 1; };
  absl::StatusOr<int> typed =
      AwaitResult<int>([&](std::function<void(absl::StatusOr<int>)> done) {
        db->Write<int>(op, std::move(done));
      });
  EXPECT_EQ(typed.status().code(), absl::StatusCode::kUnavailable)
      << typed.status();
  absl::StatusOr<int> sync = db->WriteSync<int>(op);
  EXPECT_EQ(sync.status().code(), absl::StatusCode::kUnavailable)
      << sync.status();
}

// --- Reads
// --------------------------------------------------------------------

TEST_F(DatabaseTest, ReadConvertsExceptionsToStatus) {
  std::unique_ptr<Database> db = OpenOrDie(Options());
  ASSERT_NE(db, nullptr);
  absl::StatusOr<int64_t> value =
      db->Read([](SQLite::Database& r) -> absl::StatusOr<int64_t> {
        return r.execAndGet("SELEC nonsense FROM nowhere").getInt64();
      });
  ASSERT_FALSE(value.ok());
  EXPECT_EQ(value.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(value.status().message()),
              Not(HasSubstr("nonsense")));

  absl::Status status = db->Read([](SQLite::Database& r) -> absl::Status {
    r.exec("SELECT * FROM missing_table");
    return absl::OkStatus();
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("missing_table")));
}

TEST_F(DatabaseTest, ReadConnectionsAreReadOnly) {
  std::unique_ptr<Database> db = OpenOrDie(Options());
  ASSERT_NE(db, nullptr);
  absl::Status status = db->Read([](SQLite::Database& r) -> absl::Status {
    r.exec("CREATE TABLE sneaky(x)");
    return absl::OkStatus();
  });
  EXPECT_FALSE(status.ok());
}

TEST_F(DatabaseTest, ReadsRunConcurrentlyWithWrites) {
  std::unique_ptr<Database> db = OpenOrDie(Options());
  ASSERT_NE(db, nullptr);
  CreateKvTable(*db);
  std::vector<std::thread> readers;
  std::atomic<int> read_errors{0};
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (CountRows(*db) < 0) read_errors.fetch_add(1);
      }
    });
  }
  for (int i = 0; i < 200; ++i) {
    db->WriteRaw(
        [i](SQLite::Database& w) {
          Insert(w, absl::StrCat(i));
          return absl::OkStatus();
        },
        nullptr);
  }
  for (std::thread& t : readers) t.join();
  db->Flush();
  EXPECT_EQ(read_errors.load(), 0);
  EXPECT_EQ(CountRows(*db), 200);
}

// --- StatusFromException
// ------------------------------------------------------

struct ExceptionCase {
  std::string name;
  int sqlite_code;
  absl::StatusCode want;
};

// Names the case in gtest's failure messages.
void PrintTo(const ExceptionCase& c, std::ostream* os) { *os << c.name; }

class StatusFromExceptionTest : public ::testing::TestWithParam<ExceptionCase> {
};

TEST_P(StatusFromExceptionTest, MapsSqliteCode) {
  SQLite::Exception e("INSERT INTO secret_table VALUES(1)",
                      GetParam().sqlite_code);
  absl::Status status = StatusFromException(e);
  EXPECT_EQ(status.code(), GetParam().want) << status;
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("secret_table")));
}

INSTANTIATE_TEST_SUITE_P(
    Codes, StatusFromExceptionTest,
    ::testing::Values(
        ExceptionCase{"Busy", SQLITE_BUSY, absl::StatusCode::kUnavailable},
        ExceptionCase{"BusySnapshot", SQLITE_BUSY_SNAPSHOT,
                      absl::StatusCode::kUnavailable},
        ExceptionCase{"Locked", SQLITE_LOCKED, absl::StatusCode::kUnavailable},
        ExceptionCase{"Constraint", SQLITE_CONSTRAINT,
                      absl::StatusCode::kAlreadyExists},
        ExceptionCase{"ConstraintUnique", SQLITE_CONSTRAINT_UNIQUE,
                      absl::StatusCode::kAlreadyExists},
        ExceptionCase{"ConstraintPrimaryKey", SQLITE_CONSTRAINT_PRIMARYKEY,
                      absl::StatusCode::kAlreadyExists},
        ExceptionCase{"Full", SQLITE_FULL,
                      absl::StatusCode::kResourceExhausted},
        ExceptionCase{"Error", SQLITE_ERROR, absl::StatusCode::kInternal},
        ExceptionCase{"Corrupt", SQLITE_CORRUPT, absl::StatusCode::kInternal},
        ExceptionCase{"NoCode", -1, absl::StatusCode::kInternal}),
    [](const ::testing::TestParamInfo<ExceptionCase>& info) {
      return info.param.name;
    });

TEST(StatusFromExceptionPlainTest, NonSqliteExceptionIsInternal) {
  std::runtime_error e("SELECT password FROM users");
  absl::Status status = StatusFromException(e);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("password")));
}

}  // namespace
}  // namespace campaigns::storage
