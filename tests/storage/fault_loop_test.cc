// Storage faults injected the way SQLite tests itself (tests/support/
// fault_vfs.h): each scenario runs once counting its reads, writes and syncs,
// then once per injection point N with the Nth one failing (a disk that
// fills up and stays full, an I/O error, a short read), and after each run:
// nothing acknowledged is lost (checked on a fresh connection after
// reopening), the campaign's counters match its rows, no import floor,
// staging import or deleting campaign is left behind once the fault clears,
// and the same operation then succeeds.
#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/domain/billing.h"
#include "server/domain/errors.h"
#include "storage/sqlite/store.h"
#include "tests/storage/temp_db.h"
#include "tests/support/fault_vfs.h"

namespace campaigns::storage {
namespace {

using campaigns::testing::FaultFile;
using campaigns::testing::FaultKind;
using campaigns::testing::FaultOp;
using campaigns::testing::FaultSpec;
using campaigns::testing::FaultVfs;
using test_util::AwaitResult;
using test_util::AwaitStatus;
using test_util::QueryInt;
using test_util::TempDir;

constexpr char kSecret[] = "ck_fault_loop_test_admin_secret";
constexpr int kRowsBefore = 30;  // committed before the fault
constexpr int kImportRows = 120;
constexpr int kContactRows = 80;
constexpr int64_t kPrice = 10000;        // per SMS
constexpr int64_t kCredits = 100000000;  // enough for every start

// One database per injection point, set up unarmed through the fault VFS.
class World {
 public:
  // `sync_full`: synchronous=FULL, so that every commit syncs the WAL (with
  // NORMAL only checkpoints sync, and the tests run none).
  explicit World(bool sync_full = false) : sync_full_(sync_full) {
    FaultVfs::Get();  // registers the VFS
    DatabaseOptions options = Options();
    auto db = Database::Open(options);
    EXPECT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
    store_ = std::make_unique<Store>(db_.get());
    EXPECT_TRUE(store_->BootstrapAdmin(kSecret).ok());
    account_ = store_->Authenticate(kSecret)->account_id;
    Sender s;
    s.id = "snd_fault";
    s.account_id = account_;
    s.sender_id = "+15550300";
    s.channel = Channel::kSms;
    s.created_at = s.updated_at = NowMicros();
    EXPECT_TRUE(AwaitResult<Sender>([&](auto done) {
                  store_->RegisterSender(s, {}, done);
                }).ok());
    Campaign c;
    c.id = "cmp_fault";
    c.account_id = account_;
    c.name = c.id;
    c.channel = Channel::kSms;
    c.sender_id = "+15550300";
    c.body = "hello";
    c.created_at = c.updated_at = NowMicros();
    EXPECT_TRUE(AwaitResult<Campaign>([&](auto done) {
                  store_->CreateCampaign(c, {}, done);
                }).ok());
    EXPECT_TRUE(ImportRecipients(0, kRowsBefore).ok());
    auto prices = NormalizePrices({Price{Channel::kSms, "", kPrice}});
    EXPECT_TRUE(prices.ok());
    EXPECT_TRUE(AwaitResult<std::vector<Price>>([&](auto done) {
                  store_->SetPrices(account_, *prices, done);
                }).ok());
    EXPECT_TRUE(AwaitResult<Account>([&](auto done) {
                  store_->AddCredits(account_, kCredits, "test",
                                     IdempotencyKey{"AddCredits", "", "h"},
                                     done);
                }).ok());
    // A cold page cache, so that the scenario reads what it needs.
    Reopen();
  }

  ~World() {
    if (db_) {
      db_->Flush();
      db_->Close();
    }
  }

  DatabaseOptions Options() {
    DatabaseOptions options;
    options.path = dir_.File("fault.db");
    options.vfs = FaultVfs::kName;
    options.read_connections = 2;
    // Checkpoints only at close: the writer's own I/O is then the same in
    // every run, so injection point N means the same write each time.
    options.checkpoint_pages = 1 << 30;
    options.writable_probe_every = absl::Milliseconds(5);
    // No quick_check at open: it would read every page into the writer's
    // cache, and the scenario's own reads (the injection points of the read
    // loops) would then never reach the file.
    options.check_on_open = false;
    options.synchronous_full = sync_full_;
    return options;
  }

  // An import as StreamImport runs one: begin, stage in two writes, settle,
  // commit; any failure rolls it back. Returns the commit's answer.
  absl::StatusOr<Campaign> ImportRecipients(int base, int n) {
    auto lease = AwaitResult<ImportLease>([&](auto done) {
      store_->BeginRecipientImport(account_, "cmp_fault", done);
    });
    if (!lease.ok()) return lease.status();
    absl::Status failed;
    for (int half = 0; half < 2 && failed.ok(); ++half) {
      std::vector<StagedRecipient> rows;
      for (int i = half * n / 2; i < (half + 1) * n / 2; ++i) {
        StagedRecipient r;
        r.address = absl::StrCat("+1202", 5000000 + base + i);
        r.variables_json = "{}";
        r.country = "US";
        rows.push_back(std::move(r));
      }
      failed = AwaitResult<std::vector<int32_t>>([&](auto done) {
                 store_->StageRecipients(*lease, rows, done);
               }).status();
    }
    if (failed.ok()) {
      lease->settled = true;
      absl::StatusOr<ImportDuplicates> settled =
          store_->SettleRecipientImport(*lease, 10);
      if (!settled.ok()) {
        failed = settled.status();
      } else {
        EXPECT_EQ(settled->count, 0);
      }
    }
    absl::StatusOr<Campaign> committed = absl::UnknownError("not committed");
    if (!failed.ok()) {
      committed = failed;
    } else {
      committed = AwaitResult<Campaign>([&](auto done) {
        store_->CommitRecipientImport(*lease, n, "", {}, done);
      });
    }
    if (!committed.ok()) {
      // Not waited for: the rollback may have to outlast the fault.
      rollback_ = std::make_shared<std::promise<absl::Status>>();
      store_->AbortRecipientImport(
          *lease, [p = rollback_](absl::Status s) { p->set_value(s); });
    }
    return committed;
  }

  // A contact import as StreamImport runs one: begin, stage, commit (which
  // applies it); a failure before the commit rolls it back.
  absl::StatusOr<ContactImportResult> ImportContacts() {
    ContactImportLease lease;
    lease.account_id = account_;
    lease.channel = Channel::kSms;
    auto begun = AwaitResult<ContactImportLease>(
        [&](auto done) { store_->BeginContactImport(lease, done); });
    if (!begun.ok()) return begun.status();
    lease.id = begun->id;
    std::vector<StagedRecipient> rows;
    for (int i = 0; i < kContactRows; ++i) {
      StagedRecipient r;
      r.address = absl::StrCat("+1202", 6000000 + i);
      r.variables_json = absl::StrCat("{\"n\":\"", i, "\"}");
      rows.push_back(std::move(r));
    }
    absl::Status staged = AwaitResult<std::vector<int32_t>>([&](auto done) {
                            store_->StageContacts(lease, 1, rows, done);
                          }).status();
    absl::StatusOr<ContactImportResult> result =
        absl::UnknownError("not committed");
    if (!staged.ok()) {
      result = staged;
    } else {
      result = AwaitResult<ContactImportResult>([&](auto done) {
        store_->CommitContactImport(
            lease, "", {},
            [](const std::string& r, const ContactImportResult&) { return r; },
            done);
      });
    }
    if (!result.ok()) store_->AbortContactImport(lease, nullptr);
    return result;
  }

  // Starts the campaign: its rows' cost is reserved out of the balance.
  absl::StatusOr<Campaign> Start() {
    LifecycleChange change;
    change.event = CampaignEvent::kStart;
    change.now = NowMicros();
    change.send_at = absl::Now() + absl::Hours(1);  // scheduled, not sending
    return AwaitResult<Campaign>([&](auto done) {
      store_->TransitionCampaign(account_, "cmp_fault", change, done);
    });
  }

  // balance + reserved = added - debited, for the account and every row.
  void ExpectLedgerIdentity() {
    auto page = store_->ListTransactions(account_, PageRequest{1, 100, 0});
    ASSERT_TRUE(page.ok()) << page.status();
    int64_t added = 0;
    int64_t debited = 0;
    for (auto it = page->items.rbegin(); it != page->items.rend(); ++it) {
      if (it->type == Transaction::Type::kCredit) added += it->amount;
      if (it->type == Transaction::Type::kDebit) debited += it->amount;
      EXPECT_EQ(it->balance_after + it->reserved_after, added - debited);
    }
    auto a = store_->GetAccount(account_);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->credits_balance + a->credits_reserved, added - debited);
  }

  // Polls until `sql` counts zero (a background chain finished), flushing
  // the writer between looks; at most about ten seconds.
  void AwaitZero(const std::string& sql) {
    for (int i = 0; i < 2000 && Int(sql) > 0; ++i) {
      absl::SleepFor(absl::Milliseconds(5));
      db_->Flush();
    }
  }

  // Waits for the rollback ImportRecipients started, if any.
  absl::Status AwaitRollback() {
    if (!rollback_) return absl::OkStatus();
    absl::Status s = rollback_->get_future().get();
    rollback_.reset();
    return s;
  }

  // Closes and reopens the database (unarmed), as a restart would, but
  // without the start-up recovery: what the fault left is what is seen.
  void Reopen() {
    db_->Flush();
    db_->Close();
    store_.reset();
    db_.reset();
    auto db = Database::Open(Options());
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
    store_ = std::make_unique<Store>(db_.get());
  }

  int64_t Int(const std::string& sql) { return QueryInt(*db_, sql); }

  // The campaign's counters against its rows.
  void ExpectCountersMatchRows() {
    EXPECT_EQ(Int("SELECT total FROM campaigns WHERE id='cmp_fault'"),
              Int("SELECT COUNT(*) FROM recipients"));
    EXPECT_EQ(Int("SELECT queued FROM campaigns WHERE id='cmp_fault'"),
              Int("SELECT COUNT(*) FROM recipients WHERE status='queued'"));
  }

  const bool sync_full_;
  TempDir dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<Store> store_;
  std::string account_;
  std::shared_ptr<std::promise<absl::Status>> rollback_;
};

// The number of `op` operations `scenario` does on a fresh world.
template <typename Scenario>
int64_t CountOps(FaultOp op, Scenario scenario) {
  World w(op == FaultOp::kSync);
  FaultVfs::Get().Reset();
  (void)scenario(w);
  w.db_->Flush();
  int64_t n = FaultVfs::Get().Count(op);
  FaultVfs::Get().Reset();
  return n;
}

struct LoopCase {
  const char* name;
  FaultOp op;
  FaultKind kind;
  bool persistent;
};

class ImportFaultLoop : public ::testing::TestWithParam<LoopCase> {};

// A recipient import is all or nothing whichever write, sync or read fails,
// and its campaign accepts the next import once the fault clears.
TEST_P(ImportFaultLoop, AllOrNothingAndReleased) {
  const LoopCase& c = GetParam();
  auto scenario = [](World& w) {
    return w.ImportRecipients(kRowsBefore, kImportRows);
  };
  const int64_t count = CountOps(c.op, scenario);
  ASSERT_GT(count, 0);
  // Every point when there are few; a stride over many reads.
  const int64_t stride = count > 60 ? count / 60 : 1;
  int failures = 0;
  for (int64_t n = 1; n <= count; n += stride) {
    SCOPED_TRACE(absl::StrCat(c.name, ": operation ", n, " of ", count));
    World w(c.op == FaultOp::kSync);
    FaultVfs::Get().Arm({.op = c.op,
                         .file = FaultFile::kAny,
                         .nth = n,
                         .kind = c.kind,
                         .persistent = c.persistent});
    absl::StatusOr<Campaign> result = scenario(w);
    const bool injected = FaultVfs::Get().injected() > 0;
    FaultVfs::Get().Clear();
    if (!result.ok()) {
      ++failures;
      if (c.kind == FaultKind::kFull && c.op == FaultOp::kWrite) {
        EXPECT_EQ(errors::ReasonOf(result.status()), errors::kStorageFull)
            << result.status();
        EXPECT_TRUE(errors::RetryAfterOf(result.status()).has_value());
      }
    }
    // The rollback outlasts the fault, then ends.
    EXPECT_TRUE(w.AwaitRollback().ok());
    w.db_->Flush();
    w.Reopen();
    const int64_t expected =
        result.ok() ? kRowsBefore + kImportRows : kRowsBefore;
    EXPECT_EQ(w.Int("SELECT COUNT(*) FROM recipients"), expected)
        << (injected ? "after the fault" : "no fault hit");
    EXPECT_EQ(w.Int("SELECT COUNT(*) FROM campaigns WHERE import_floor IS "
                    "NOT NULL"),
              0);
    w.ExpectCountersMatchRows();
    // The same import now succeeds (unless it already had).
    if (!result.ok()) {
      absl::StatusOr<Campaign> again =
          w.ImportRecipients(kRowsBefore, kImportRows);
      ASSERT_TRUE(again.ok()) << again.status();
      EXPECT_EQ(again->stats.total, kRowsBefore + kImportRows);
    }
  }
  // The loop reached the import's own writes, not only set-up noise.
  EXPECT_GT(failures, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Faults, ImportFaultLoop,
    ::testing::Values(
        LoopCase{"DiskFullWrite", FaultOp::kWrite, FaultKind::kFull, true},
        LoopCase{"IoErrorWriteOnce", FaultOp::kWrite, FaultKind::kIoError,
                 false},
        LoopCase{"IoErrorSync", FaultOp::kSync, FaultKind::kIoError, true},
        LoopCase{"ReadOnlyFile", FaultOp::kWrite, FaultKind::kReadOnly, true},
        LoopCase{"IoErrorRead", FaultOp::kRead, FaultKind::kIoError, false}),
    [](const ::testing::TestParamInfo<LoopCase>& info) {
      return info.param.name;
    });

// Deleting a campaign: acknowledged means gone for good; not acknowledged
// means intact; either way the background purge finishes once the disk is
// back, and the delete can be repeated.
TEST(DeleteFaultLoop, DeletedOrIntactAndPurged) {
  auto scenario = [](World& w) {
    return AwaitStatus([&](auto done) {
      w.store_->DeleteCampaign(w.account_, "cmp_fault", done);
    });
  };
  const int64_t count = CountOps(FaultOp::kWrite, scenario);
  ASSERT_GT(count, 0);
  for (int64_t n = 1; n <= count; ++n) {
    SCOPED_TRACE(absl::StrCat("write ", n, " of ", count));
    World w;
    FaultVfs::Get().Arm({.op = FaultOp::kWrite, .nth = n});
    absl::Status deleted = scenario(w);
    // The purge runs in the background: let it meet the full disk.
    w.db_->Flush();
    FaultVfs::Get().Clear();
    // Once writes succeed, the purge (retried) removes every row.
    w.AwaitZero("SELECT COUNT(*) FROM campaigns WHERE deleting=1");
    w.Reopen();
    if (deleted.ok()) {
      EXPECT_EQ(w.Int("SELECT COUNT(*) FROM campaigns"), 0);
      EXPECT_EQ(w.Int("SELECT COUNT(*) FROM recipients"), 0);
    } else {
      EXPECT_EQ(w.Int("SELECT COUNT(*) FROM campaigns WHERE deleting=0"), 1);
      EXPECT_EQ(w.Int("SELECT COUNT(*) FROM recipients"), kRowsBefore);
      w.ExpectCountersMatchRows();
      EXPECT_TRUE(scenario(w).ok());
      w.AwaitZero("SELECT COUNT(*) FROM campaigns");
      EXPECT_EQ(w.Int("SELECT COUNT(*) FROM recipients"), 0);
    }
  }
}

// A contact import: acknowledged means all its contacts are there; not
// acknowledged means none or (committed, then cut off while applying) all
// of them once the disk is back; no staging import is left, and the same
// import then succeeds.
TEST(ContactImportFaultLoop, AllOrNothingAndNothingLeftStaged) {
  auto scenario = [](World& w) { return w.ImportContacts(); };
  const int64_t count = CountOps(FaultOp::kWrite, scenario);
  ASSERT_GT(count, 0);
  int failures = 0;
  for (int64_t n = 1; n <= count; ++n) {
    SCOPED_TRACE(absl::StrCat("write ", n, " of ", count));
    World w;
    FaultVfs::Get().Arm({.op = FaultOp::kWrite, .nth = n});
    absl::StatusOr<ContactImportResult> result = scenario(w);
    w.db_->Flush();
    FaultVfs::Get().Clear();
    if (!result.ok()) {
      ++failures;
      EXPECT_EQ(errors::ReasonOf(result.status()), errors::kStorageFull)
          << result.status();
    }
    w.AwaitZero("SELECT COUNT(*) FROM contact_imports");
    w.Reopen();
    EXPECT_EQ(w.Int("SELECT COUNT(*) FROM contact_imports"), 0);
    EXPECT_EQ(w.Int("SELECT COUNT(*) FROM contact_import_rows"), 0);
    const int64_t contacts = w.Int("SELECT COUNT(*) FROM contacts");
    if (result.ok()) {
      EXPECT_EQ(result->created, kContactRows);
      EXPECT_EQ(contacts, kContactRows);
    } else {
      EXPECT_TRUE(contacts == 0 || contacts == kContactRows) << contacts;
    }
    absl::StatusOr<ContactImportResult> again = w.ImportContacts();
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->created + again->updated, kContactRows);
    EXPECT_EQ(w.Int("SELECT COUNT(*) FROM contacts"), kContactRows);
  }
  EXPECT_GT(failures, 0);
}

// Starting a campaign reserves its cost: acknowledged means reserved and
// started, not acknowledged means still a draft with nothing reserved; the
// ledger adds up either way, and the start then succeeds.
TEST(StartFaultLoop, ReservedOrDraftAndTheLedgerAddsUp) {
  auto scenario = [](World& w) { return w.Start(); };
  const int64_t count = CountOps(FaultOp::kWrite, scenario);
  ASSERT_GT(count, 0);
  const int64_t cost = kRowsBefore * kPrice;
  int failures = 0;
  for (int64_t n = 1; n <= count; ++n) {
    SCOPED_TRACE(absl::StrCat("write ", n, " of ", count));
    World w;
    FaultVfs::Get().Arm({.op = FaultOp::kWrite, .nth = n});
    absl::StatusOr<Campaign> started = scenario(w);
    w.db_->Flush();
    FaultVfs::Get().Clear();
    if (!started.ok()) {
      ++failures;
      EXPECT_EQ(errors::ReasonOf(started.status()), errors::kStorageFull)
          << started.status();
    }
    w.Reopen();
    auto c = w.store_->GetCampaign(w.account_, "cmp_fault");
    ASSERT_TRUE(c.ok()) << c.status();
    auto a = w.store_->GetAccount(w.account_);
    ASSERT_TRUE(a.ok());
    if (started.ok()) {
      EXPECT_EQ(c->status, CampaignStatus::kScheduled);
      EXPECT_EQ(c->credits_reserved, cost);
      EXPECT_EQ(a->credits_reserved, cost);
    } else {
      EXPECT_EQ(c->status, CampaignStatus::kDraft);
      EXPECT_EQ(c->credits_reserved, 0);
      EXPECT_EQ(a->credits_reserved, 0);
      EXPECT_EQ(a->credits_balance, kCredits);
    }
    w.ExpectLedgerIdentity();
    w.ExpectCountersMatchRows();
    if (!started.ok()) {
      absl::StatusOr<Campaign> again = w.Start();
      ASSERT_TRUE(again.ok()) << again.status();
      EXPECT_EQ(again->credits_reserved, cost);
      w.ExpectLedgerIdentity();
    }
  }
  EXPECT_GT(failures, 0);
}

}  // namespace
}  // namespace campaigns::storage
