// storage/postgres/contact_store.h with several instances on one database:
// the same contact created on every instance at once is one contact (the
// others ALREADY_EXISTS naming the address); the same memberships added
// everywhere count once; overlapping imports committed everywhere at once
// all succeed and make each address one contact; one request id commits
// one import; MaterializeAudience run everywhere at once inserts each
// recipient once. MaterializeAudience itself is tested here too, on a
// campaign row written by hand, until the engine has CampaignRepository.
#include "storage/postgres/contact_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/barrier.h"
#include "absl/time/clock.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
#include "server/domain/import_rows.h"
#include "storage/postgres/account_store.h"
#include "storage/postgres/database.h"
#include "storage/postgres/suppression_store.h"
#include "tests/storage/temp_db.h"
#include "tests/support/builders.h"
#include "tests/support/pg_fixture.h"

namespace campaigns::storage::postgres::testing {
namespace {

using storage::test_util::AwaitResult;
using storage::test_util::AwaitStatus;
using ::testing::ElementsAre;

constexpr int kContactInstances = 3;

class ContactStoreInstancesTest : public PgTest {
 protected:
  // One campaignd's view of the database: its own Database and store.
  struct Instance {
    std::unique_ptr<Database> db;
    std::unique_ptr<ContactStore> contacts;
  };

  void SetUp() override {
    PgTest::SetUp();
    if (HasFatalFailure()) return;
    for (int i = 0; i < kContactInstances; ++i) {
      DatabaseOptions options;
      options.dsn = Dsn();
      absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(options);
      ASSERT_TRUE(db.ok()) << db.status();
      Instance in;
      in.db = *std::move(db);
      // Alive throughout (the test kills instances by hand).
      const std::string id = absl::StrCat("ins_", i);
      RegisterInstance(id);
      in.contacts = std::make_unique<ContactStore>(
          in.db.get(), WorkOwner{id, absl::Hours(1)});
      instances_.push_back(std::move(in));
    }
    AccountStore accounts(instances_[0].db.get());
    absl::StatusOr<AccountWithKey> made =
        AwaitResult<AccountWithKey>([&](Done<AccountWithKey> done) {
          accounts.CreateAccount(
              test_builders::NewAccount(
                  "acme", absl::StrCat(NewId("s"), "-secret-0123456789")),
              {}, std::move(done));
        });
    ASSERT_TRUE(made.ok()) << made.status();
    a_ = made->account.id;
  }

  void TearDown() override { instances_.clear(); }

  ContactStore& store(int i) { return *instances_[i].contacts; }

  std::vector<std::string> Column(const std::string& sql) {
    std::unique_ptr<Connection> c = Connect();
    std::vector<std::string> out;
    if (c == nullptr) return out;
    absl::StatusOr<Rows> r = c->Query(sql);
    EXPECT_TRUE(r.ok()) << r.status();
    for (int i = 0; r.ok() && i < r->size(); ++i) out.push_back(r->Text(i, 0));
    return out;
  }

  // Runs `fn(i)` on every instance i at once; their statuses.
  std::vector<absl::Status> AllAtOnce(
      const std::function<absl::Status(int)>& fn) {
    absl::Barrier* start = new absl::Barrier(kContactInstances);
    std::vector<absl::Status> statuses(kContactInstances);
    std::vector<std::thread> threads;
    for (int i = 0; i < kContactInstances; ++i) {
      threads.emplace_back([&, i] {
        if (start->Block()) delete start;
        statuses[i] = fn(i);
      });
    }
    for (std::thread& t : threads) t.join();
    return statuses;
  }

  Contact NewContact(const std::string& address,
                     std::vector<std::string> tags = {}) {
    Contact c;
    c.id = NewId(kContactPrefix);
    c.account_id = a_;
    c.channel = Channel::kSms;
    c.address = address;
    c.attributes = {{"name", "N" + address}};
    c.tags = std::move(tags);
    c.created_at = c.updated_at = NowMicros();
    return c;
  }
  Contact MustCreate(Contact c) {
    absl::StatusOr<Contact> out = AwaitResult<Contact>([&](Done<Contact> d) {
      store(0).CreateContact(std::move(c), {}, std::move(d));
    });
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : Contact{};
  }
  ContactList MustCreateList() {
    ContactList l;
    l.id = NewId(kContactListPrefix);
    l.account_id = a_;
    l.name = "list";
    l.created_at = l.updated_at = NowMicros();
    absl::StatusOr<ContactList> out =
        AwaitResult<ContactList>([&](Done<ContactList> d) {
          store(0).CreateContactList(l, {}, std::move(d));
        });
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : ContactList{};
  }

  // A draft sms campaign row (there is no CampaignRepository on PostgreSQL
  // yet) whose audience columns are `audience` ("contact_list_id = '...'").
  std::string InsertCampaign(const std::string& audience_column,
                             const std::string& value,
                             const std::string& recipient_variables = "{}") {
    const std::string id = NewId(kCampaignPrefix);
    std::unique_ptr<Connection> c = Connect();
    EXPECT_NE(c, nullptr);
    if (c == nullptr) return id;
    absl::Status inserted =
        c->Query(absl::StrCat("INSERT INTO campaigns(id, account_id, name, "
                              "channel, sender_id, sender_ref, status, "
                              "batch_size, recipient_variables, created_at, "
                              "updated_at, ",
                              audience_column,
                              ") VALUES ($1, $2, 'c', 'sms', '+15550100', "
                              "'snd_x', 'draft', 100, $3, 0, 0, $4)"),
                 {id, a_, recipient_variables, value})
            .status();
    EXPECT_TRUE(inserted.ok()) << inserted;
    return id;
  }
  absl::StatusOr<MaterializeResult> Materialize(int instance,
                                                const std::string& campaign) {
    return AwaitResult<MaterializeResult>([&](Done<MaterializeResult> d) {
      store(instance).MaterializeAudience(a_, campaign, std::move(d));
    });
  }

  std::vector<Instance> instances_;
  std::string a_;
};

TEST_F(ContactStoreInstancesTest, TheSameAddressOnEveryInstanceIsOneContact) {
  for (int round = 0; round < 20; ++round) {
    const std::string address = absl::StrCat("+1555030", 1000 + round);
    std::vector<absl::Status> statuses = AllAtOnce([&](int i) {
      return AwaitResult<Contact>([&](Done<Contact> d) {
               store(i).CreateContact(NewContact(address), {}, std::move(d));
             })
          .status();
    });
    int ok = 0;
    for (const absl::Status& s : statuses) {
      if (s.ok()) {
        ++ok;
        continue;
      }
      test_builders::ExpectError(s, absl::StatusCode::kAlreadyExists,
                                 "ALREADY_EXISTS", "address");
    }
    EXPECT_EQ(ok, 1) << "round " << round;
    EXPECT_EQ(Count(absl::StrCat("SELECT count(*) FROM contacts WHERE "
                                 "address = '",
                                 address, "'")),
              1);
  }
}

TEST_F(ContactStoreInstancesTest, TheSameMembershipsOnEveryInstanceCountOnce) {
  std::vector<std::string> ids;
  for (int i = 0; i < 40; ++i) {
    ids.push_back(
        MustCreate(NewContact(absl::StrCat("+1555040", 1000 + i))).id);
  }
  for (int round = 0; round < 5; ++round) {
    ContactList list = MustCreateList();
    std::vector<int64_t> changed(kContactInstances, 0);
    std::vector<absl::Status> statuses = AllAtOnce([&](int i) -> absl::Status {
      // Each instance in another order.
      std::vector<std::string> mine = ids;
      std::rotate(mine.begin(), mine.begin() + i * 13, mine.end());
      absl::StatusOr<ListMembershipChange> r =
          AwaitResult<ListMembershipChange>([&](Done<ListMembershipChange> d) {
            store(i).AddContactsToList(a_, list.id, mine, std::move(d));
          });
      if (!r.ok()) return r.status();
      changed[i] = r->changed;
      return absl::OkStatus();
    });
    for (const absl::Status& s : statuses) EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(changed[0] + changed[1] + changed[2], 40) << "round " << round;
    absl::StatusOr<ContactList> after = store(1).GetContactList(a_, list.id);
    ASSERT_TRUE(after.ok()) << after.status();
    EXPECT_EQ(after->contact_count, 40);
  }
}

TEST_F(ContactStoreInstancesTest, OverlappingImportsOnEveryInstanceAllApply) {
  constexpr int kRows = 1500;  // more than one apply chunk
  ContactList list = MustCreateList();
  Contact existing = MustCreate(NewContact("+15550501000", {"old"}));
  std::vector<ContactImportLease> leases(kContactInstances);
  for (int i = 0; i < kContactInstances; ++i) {
    ContactImportLease lease;
    lease.account_id = a_;
    lease.channel = Channel::kSms;
    lease.list_id = list.id;
    lease.tags = {absl::StrCat("from", i)};
    absl::StatusOr<ContactImportLease> begun =
        AwaitResult<ContactImportLease>([&](Done<ContactImportLease> d) {
          store(i).BeginContactImport(lease, std::move(d));
        });
    ASSERT_TRUE(begun.ok()) << begun.status();
    leases[i] = *begun;
    std::vector<StagedRecipient> rows;
    for (int r = 0; r < kRows; ++r) {
      StagedRecipient s;
      // Each instance in another order.
      s.address = absl::StrCat("+1555050", 1000 + (r + i * 577) % kRows);
      s.variables_json = VariablesToJson({{absl::StrCat("k", i), "v"}});
      rows.push_back(std::move(s));
    }
    absl::StatusOr<std::vector<int32_t>> dups =
        AwaitResult<std::vector<int32_t>>([&](Done<std::vector<int32_t>> d) {
          store(i).StageContacts(leases[i], 1, std::move(rows), std::move(d));
        });
    ASSERT_TRUE(dups.ok()) << dups.status();
    ASSERT_TRUE(dups->empty());
  }
  std::vector<ContactImportResult> results(kContactInstances);
  std::vector<absl::Status> statuses = AllAtOnce([&](int i) -> absl::Status {
    absl::StatusOr<ContactImportResult> r =
        AwaitResult<ContactImportResult>([&](Done<ContactImportResult> d) {
          store(i).CommitContactImport(
              leases[i], "", ImportRecord{},
              [](const std::string& s, const ContactImportResult&) {
                return s;
              },
              std::move(d));
        });
    if (!r.ok()) return r.status();
    results[i] = *r;
    return absl::OkStatus();
  });
  int64_t created = 0;
  for (int i = 0; i < kContactInstances; ++i) {
    EXPECT_TRUE(statuses[i].ok()) << statuses[i];
    EXPECT_EQ(results[i].created + results[i].updated, kRows);
    created += results[i].created;
  }
  EXPECT_EQ(created, kRows - 1);  // one address existed
  EXPECT_EQ(Count("SELECT count(*) FROM contacts"), kRows);
  EXPECT_EQ(Count("SELECT count(*) FROM contact_list_members"), kRows);
  EXPECT_EQ(Count("SELECT count(*) FROM contact_tags"), 3 * kRows + 1);
  EXPECT_EQ(Count("SELECT count(*) FROM contact_imports"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM contact_import_rows"), 0);
  // Every instance's attributes merged into each contact.
  absl::StatusOr<Contact> merged = store(2).GetContact(a_, existing.id);
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(merged->attributes.size(), 4u);
  EXPECT_THAT(merged->tags, ElementsAre("from0", "from1", "from2", "old"));
}

// An apply chunk whose commit fails (here the server rolls it back) is
// tried again later by the same instance: the import does not stall until
// the next start. The caller hears of the failure.
TEST_F(ContactStoreInstancesTest, AFailedApplyChunkIsTriedAgainLater) {
  constexpr int kRows = 1500;  // two apply chunks
  std::atomic<int> commits{0};
  std::atomic<int> fail_at{-1};
  DatabaseOptions options;
  options.dsn = Dsn();
  options.retry_after = absl::Milliseconds(50);
  options.before_commit = [&](Connection& c) {
    if (++commits == fail_at.load()) {
      (void)c.Exec("SELECT 1/0");  // the COMMIT becomes a ROLLBACK
    }
  };
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(options);
  ASSERT_TRUE(db.ok()) << db.status();
  ContactStore contacts(db->get());
  ContactImportLease lease;
  lease.account_id = a_;
  lease.channel = Channel::kSms;
  absl::StatusOr<ContactImportLease> begun =
      AwaitResult<ContactImportLease>([&](Done<ContactImportLease> d) {
        contacts.BeginContactImport(lease, std::move(d));
      });
  ASSERT_TRUE(begun.ok()) << begun.status();
  std::vector<StagedRecipient> rows;
  for (int r = 0; r < kRows; ++r) {
    StagedRecipient staged;
    staged.address = absl::StrCat("+1555060", 1000 + r);
    rows.push_back(std::move(staged));
  }
  ASSERT_TRUE(
      AwaitResult<std::vector<int32_t>>([&](Done<std::vector<int32_t>> d) {
        contacts.StageContacts(*begun, 1, std::move(rows), std::move(d));
      }).ok());
  fail_at = commits.load() + 2;  // the commit's write, then the first chunk
  absl::StatusOr<ContactImportResult> result =
      AwaitResult<ContactImportResult>([&](Done<ContactImportResult> d) {
        contacts.CommitContactImport(
            *begun, "", ImportRecord{},
            [](const std::string& r, const ContactImportResult&) { return r; },
            std::move(d));
      });
  EXPECT_FALSE(result.ok());
  for (int i = 0; i < 600 && Count("SELECT count(*) FROM contact_imports") > 0;
       ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(Count("SELECT count(*) FROM contacts"), kRows);
  EXPECT_EQ(Count("SELECT count(*) FROM contact_imports"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM contact_import_rows"), 0);
}

// A large import is followed by an ANALYZE of the contact tables (audiences
// resolved next are planned knowing its rows); a small one is not.
TEST_F(ContactStoreInstancesTest, ALargeImportAnalyzesTheContactTables) {
  const std::string analyzed =
      "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = "
      "'contacts'";
  auto import = [&](int rows, int base) {
    ContactImportLease lease;
    lease.account_id = a_;
    lease.channel = Channel::kSms;
    absl::StatusOr<ContactImportLease> begun =
        AwaitResult<ContactImportLease>([&](Done<ContactImportLease> d) {
          store(0).BeginContactImport(lease, std::move(d));
        });
    ASSERT_TRUE(begun.ok()) << begun.status();
    std::vector<StagedRecipient> staged;
    for (int r = 0; r < rows; ++r) {
      StagedRecipient row;
      row.address = absl::StrCat("+1555", 2000000 + base + r);
      staged.push_back(std::move(row));
    }
    ASSERT_TRUE(
        AwaitResult<std::vector<int32_t>>([&](Done<std::vector<int32_t>> d) {
          store(0).StageContacts(*begun, 1, std::move(staged), std::move(d));
        }).ok());
    absl::StatusOr<ContactImportResult> result =
        AwaitResult<ContactImportResult>([&](Done<ContactImportResult> d) {
          store(0).CommitContactImport(
              *begun, "", ImportRecord{},
              [](const std::string& r, const ContactImportResult&) {
                return r;
              },
              std::move(d));
        });
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->created, rows);
  };
  const int64_t before = Count(analyzed);
  import(100, 0);
  EXPECT_EQ(Count(analyzed), before);
  import(10000, 1000);
  EXPECT_EQ(Count(analyzed), before + 1);
}

// A staging import whose instance died is taken over and rolled back by
// another instance's recovery; the dead owner's late stage and commit are
// refused (ABORTED), and its rows go.
TEST_F(ContactStoreInstancesTest, AStagingImportOfADeadInstanceIsRolledBack) {
  ContactImportLease lease;
  lease.account_id = a_;
  lease.channel = Channel::kSms;
  absl::StatusOr<ContactImportLease> begun =
      AwaitResult<ContactImportLease>([&](Done<ContactImportLease> d) {
        store(0).BeginContactImport(lease, std::move(d));
      });
  ASSERT_TRUE(begun.ok()) << begun.status();
  auto stage = [&](int64_t first) {
    std::vector<StagedRecipient> rows;
    for (int r = 0; r < 10; ++r) {
      StagedRecipient s;
      s.address = absl::StrCat("+1555090", 1000 + first + r);
      s.variables_json = "{}";
      rows.push_back(std::move(s));
    }
    return AwaitResult<std::vector<int32_t>>([&](Done<std::vector<int32_t>> d) {
             store(0).StageContacts(*begun, first, std::move(rows),
                                    std::move(d));
           })
        .status();
  };
  ASSERT_TRUE(stage(1).ok());
  const auto finish = [](const std::string& s, const ContactImportResult&) {
    return s;
  };
  absl::StatusOr<int> taken = store(1).ResumeContactImports(finish);
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_EQ(*taken, 0);  // ins_0 lives

  KillInstance("ins_0");
  taken = store(1).ResumeContactImports(finish);
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_EQ(*taken, 1);
  EXPECT_EQ(stage(11).code(), absl::StatusCode::kAborted);
  absl::StatusOr<ContactImportResult> committed =
      AwaitResult<ContactImportResult>([&](Done<ContactImportResult> d) {
        store(0).CommitContactImport(*begun, "", ImportRecord{}, finish,
                                     std::move(d));
      });
  EXPECT_EQ(committed.status().code(), absl::StatusCode::kAborted);
  for (int i = 0; i < 500 && Count("SELECT count(*) FROM contact_imports") > 0;
       ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(Count("SELECT count(*) FROM contact_imports"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM contact_import_rows"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM contacts"), 0);
}

// A committed import a stopped instance left half-applied is taken over by
// one of the instances recovering at once, and applied once, with its
// idempotency record completed by the finisher. A live instance's import
// is left alone.
TEST_F(ContactStoreInstancesTest,
       ResumingAnImportOnEveryInstanceAppliesItOnce) {
  constexpr int kRows = 2500;  // several apply chunks
  ContactList list = MustCreateList();
  Contact existing = MustCreate(NewContact("+15550801000", {"old"}));
  ContactImportLease lease;
  lease.account_id = a_;
  lease.channel = Channel::kSms;
  lease.list_id = list.id;
  lease.tags = {"imported"};
  absl::StatusOr<ContactImportLease> begun =
      AwaitResult<ContactImportLease>([&](Done<ContactImportLease> d) {
        store(0).BeginContactImport(lease, std::move(d));
      });
  ASSERT_TRUE(begun.ok()) << begun.status();
  std::vector<StagedRecipient> rows;
  for (int r = 0; r < kRows; ++r) {
    StagedRecipient s;
    s.address = absl::StrCat("+1555080", 1000 + r);
    s.variables_json = VariablesToJson({{"city", "c"}});
    rows.push_back(std::move(s));
  }
  ASSERT_TRUE(
      AwaitResult<std::vector<int32_t>>([&](Done<std::vector<int32_t>> d) {
        store(0).StageContacts(*begun, 1, std::move(rows), std::move(d));
      }).ok());
  // As if the instance died just after committing: applying, nothing
  // applied, its owner gone. A live instance's staging import is left
  // alone.
  {
    std::unique_ptr<Connection> c = Connect();
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(c->Query("UPDATE contact_imports SET state = 'applying', "
                         "request_id = 'req-1', body_hash = 'h', response = "
                         "'\\x00ff'::bytea WHERE id = $1",
                         {absl::StrCat(begun->id)})
                    .ok());
  }
  KillInstance("ins_0");
  lease.list_id = "";
  ASSERT_TRUE(AwaitResult<ContactImportLease>([&](Done<ContactImportLease> d) {
                store(1).BeginContactImport(lease, std::move(d));
              }).ok());

  std::atomic<int> taken{0};
  std::vector<absl::Status> statuses = AllAtOnce([&](int i) -> absl::Status {
    absl::StatusOr<int> found = store(i).ResumeContactImports(
        [](const std::string& recorded, const ContactImportResult& r) {
          return absl::StrCat(recorded.size(), ":", r.created, ":", r.updated);
        });
    if (!found.ok()) return found.status();
    taken += *found;
    return absl::OkStatus();
  });
  for (const absl::Status& s : statuses) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(taken.load(), 1);
  for (int i = 0; i < 500 && Count("SELECT count(*) FROM contact_imports "
                                   "WHERE state = 'applying'") > 0;
       ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  for (Instance& in : instances_) in.db->Flush();
  EXPECT_EQ(Count("SELECT count(*) FROM contact_imports"), 1);  // staging
  EXPECT_EQ(Count("SELECT count(*) FROM contacts"), kRows);
  EXPECT_EQ(Count("SELECT count(*) FROM contact_list_members"), kRows);
  EXPECT_EQ(Count("SELECT count(*) FROM contact_tags WHERE tag = 'imported'"),
            kRows);
  EXPECT_THAT(Column("SELECT convert_from(response, 'UTF8') FROM "
                     "idempotency_keys WHERE method = 'ImportContacts' AND "
                     "request_id = 'req-1'"),
              ElementsAre(absl::StrCat("2:", kRows - 1, ":1")));
  absl::StatusOr<Contact> merged = store(2).GetContact(a_, existing.id);
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(merged->attributes.at("city"), "c");
  EXPECT_THAT(merged->tags, ElementsAre("imported", "old"));
}

TEST_F(ContactStoreInstancesTest, OneRequestIdCommitsOneImport) {
  for (int round = 0; round < 10; ++round) {
    std::vector<ContactImportLease> leases(kContactInstances);
    for (int i = 0; i < kContactInstances; ++i) {
      ContactImportLease lease;
      lease.account_id = a_;
      lease.channel = Channel::kSms;
      absl::StatusOr<ContactImportLease> begun =
          AwaitResult<ContactImportLease>([&](Done<ContactImportLease> d) {
            store(i).BeginContactImport(lease, std::move(d));
          });
      ASSERT_TRUE(begun.ok()) << begun.status();
      leases[i] = *begun;
      std::vector<StagedRecipient> rows(1);
      rows[0].address = absl::StrCat("+1555060", 1000 + round * 10 + i);
      rows[0].variables_json = "{}";
      ASSERT_TRUE(
          AwaitResult<std::vector<int32_t>>([&](Done<std::vector<int32_t>> d) {
            store(i).StageContacts(leases[i], 1, std::move(rows), std::move(d));
          }).ok());
    }
    const std::string request_id = absl::StrCat("req-", round);
    std::vector<absl::Status> statuses = AllAtOnce([&](int i) {
      return AwaitResult<ContactImportResult>([&](Done<ContactImportResult> d) {
               store(i).CommitContactImport(
                   leases[i], request_id, ImportRecord{"h", "", "r"},
                   [](const std::string& s, const ContactImportResult&) {
                     return s;
                   },
                   std::move(d));
             })
          .status();
    });
    int ok = 0;
    for (int i = 0; i < kContactInstances; ++i) {
      if (statuses[i].ok()) {
        ++ok;
      } else {
        test_builders::ExpectError(statuses[i],
                                   absl::StatusCode::kAlreadyExists,
                                   "IDEMPOTENCY_CONFLICT");
        ASSERT_TRUE(AwaitStatus([&](StatusDone d) {
                      store(i).AbortContactImport(leases[i], std::move(d));
                    }).ok());
      }
    }
    EXPECT_EQ(ok, 1) << "round " << round;
  }
  EXPECT_EQ(Count("SELECT count(*) FROM contacts"), 10);
  EXPECT_EQ(Count("SELECT count(*) FROM idempotency_keys WHERE method = "
                  "'ImportContacts'"),
            10);
  EXPECT_EQ(Count("SELECT count(*) FROM contact_imports"), 0);
}

TEST_F(ContactStoreInstancesTest, MaterializesAListSkippingSuppressed) {
  std::vector<std::string> ids;
  for (int i = 1; i <= 5; ++i) {
    ids.push_back(
        MustCreate(NewContact(absl::StrCat("+120255501", 10 + i), {"vip"})).id);
  }
  ContactList list = MustCreateList();
  ASSERT_TRUE(
      AwaitResult<ListMembershipChange>([&](Done<ListMembershipChange> d) {
        store(0).AddContactsToList(
            a_, list.id, {ids[0], ids[1], ids[2], ids[3]}, std::move(d));
      }).ok());
  SuppressionStore suppressions(instances_[0].db.get());
  for (auto [address, channel] :
       {std::pair{"+12025550112", Channel::kSms},
        std::pair{"+12025550113", Channel::kUnspecified},
        std::pair{"+12025550114", Channel::kWhatsapp}}) {
    Suppression s;
    s.account_id = a_;
    s.address = address;
    s.channel = channel;
    s.reason = SuppressionReason::kManual;
    s.created_at = absl::Now();
    ASSERT_TRUE(AwaitResult<Suppression>([&](Done<Suppression> d) {
                  suppressions.AddSuppression(s, std::move(d));
                }).ok());
  }
  const std::string campaign = InsertCampaign(
      "contact_list_id", list.id,
      absl::StrCat("{\"", ids[0], "\":{\"name\":\"Override\",\"x\":\"y\"}}"));

  absl::StatusOr<MaterializeResult> r = Materialize(1, campaign);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->matched, 4);
  EXPECT_EQ(r->suppressed, 2);
  EXPECT_EQ(r->inserted, 2);
  EXPECT_THAT(Column(absl::StrCat("SELECT r.address || ' ' || r.contact_id || "
                                  "' ' || r.status FROM recipients r JOIN "
                                  "campaigns c ON c.seq = r.campaign_seq "
                                  "WHERE c.id = '",
                                  campaign, "' ORDER BY r.seq")),
              ElementsAre(absl::StrCat("+12025550111 ", ids[0], " queued"),
                          absl::StrCat("+12025550114 ", ids[3], " queued")));
  EXPECT_THAT(Column("SELECT variables FROM recipients ORDER BY seq"),
              ElementsAre("{\"x\": \"y\", \"name\": \"Override\"}",
                          "{\"name\":\"N+12025550114\"}"));
  EXPECT_EQ(Count("SELECT count(*) FROM recipient_addresses"), 2);
  EXPECT_THAT(Column(absl::StrCat("SELECT total || ' ' || queued FROM "
                                  "campaigns WHERE id = '",
                                  campaign, "'")),
              ElementsAre("2 2"));

  // A re-run inserts nothing; a contact added later comes with the next.
  r = Materialize(2, campaign);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->inserted, 0);
  ASSERT_TRUE(
      AwaitResult<ListMembershipChange>([&](Done<ListMembershipChange> d) {
        store(0).AddContactsToList(a_, list.id, {ids[4]}, std::move(d));
      }).ok());
  r = Materialize(0, campaign);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->inserted, 1);
  EXPECT_THAT(Column(absl::StrCat("SELECT total || ' ' || queued FROM "
                                  "campaigns WHERE id = '",
                                  campaign, "'")),
              ElementsAre("3 3"));

  // Refusals: no audience; a running import; a final campaign; another
  // account.
  const std::string none = InsertCampaign("contact_list_id", "");
  test_builders::ExpectError(Materialize(0, none).status(),
                             absl::StatusCode::kFailedPrecondition,
                             "VALIDATION_ERROR");
  const std::string tagged = InsertCampaign("tags", "[\"vip\"]");
  std::unique_ptr<Connection> c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(
      c->Query("UPDATE campaigns SET import_floor = 1 WHERE id = $1", {tagged})
          .ok());
  test_builders::ExpectError(Materialize(0, tagged).status(),
                             absl::StatusCode::kFailedPrecondition,
                             "VALIDATION_ERROR");
  ASSERT_TRUE(c->Query("UPDATE campaigns SET import_floor = NULL, status = "
                       "'completed' WHERE id = $1",
                       {tagged})
                  .ok());
  EXPECT_EQ(errors::ReasonOf(Materialize(0, tagged).status()),
            "ILLEGAL_TRANSITION");
  test_builders::ExpectNotFound(
      AwaitResult<MaterializeResult>([&](Done<MaterializeResult> d) {
        store(0).MaterializeAudience("acc_other", campaign, std::move(d));
      }).status());
}

TEST_F(ContactStoreInstancesTest, MaterializeOnEveryInstanceInsertsOnce) {
  for (int i = 0; i < 200; ++i) {
    MustCreate(NewContact(absl::StrCat("+1555070", 1000 + i), {"all"}));
  }
  for (int round = 0; round < 5; ++round) {
    const std::string campaign = InsertCampaign("tags", "[\"all\",\"none\"]");
    std::vector<int64_t> inserted(kContactInstances, 0);
    std::vector<absl::Status> statuses = AllAtOnce([&](int i) -> absl::Status {
      absl::StatusOr<MaterializeResult> r = Materialize(i, campaign);
      if (!r.ok()) return r.status();
      inserted[i] = r->inserted;
      return absl::OkStatus();
    });
    for (const absl::Status& s : statuses) EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(inserted[0] + inserted[1] + inserted[2], 200);
    EXPECT_THAT(Column(absl::StrCat("SELECT total || ' ' || (SELECT count(*) "
                                    "FROM recipients WHERE campaign_seq = "
                                    "c.seq) FROM campaigns c WHERE id = '",
                                    campaign, "'")),
                ElementsAre("200 200"));
  }
}

// Tags and ties between lists come in byte order, as on SQLite, also in a
// database whose default collation would order them otherwise.
class ContactStoreCollationTest : public PgTest {};

TEST_F(ContactStoreCollationTest, TextOrdersAreByteOrderInAnIcuDatabase) {
  const std::string name = "t_contacts_icu";
  {
    std::unique_ptr<Connection> admin = Connect();
    ASSERT_NE(admin, nullptr);
    absl::Status dropped = admin->Exec("DROP DATABASE IF EXISTS " + name);
    ASSERT_TRUE(dropped.ok()) << dropped;
    absl::Status created = admin->Exec(
        absl::StrCat("CREATE DATABASE ", name,
                     " TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE "
                     "'en-US' LOCALE 'C.UTF-8'"));
    ASSERT_TRUE(created.ok()) << created;
  }
  DatabaseOptions options;
  options.dsn = Server()->Dsn(name);
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(options);
  ASSERT_TRUE(db.ok()) << db.status();
  {
    std::unique_ptr<Connection> c = *Connection::Open(options.dsn);
    absl::StatusOr<Rows> order = c->Query(
        "SELECT string_agg(t, ' ' ORDER BY t) FROM (VALUES ('vip'), ('VIP'), "
        "('eu')) AS v(t)");
    ASSERT_TRUE(order.ok()) << order.status();
    ASSERT_EQ(order->Text(0, 0), "eu vip VIP");  // the locale's order
  }
  AccountStore accounts(db->get());
  ContactStore contacts(db->get());
  absl::StatusOr<AccountWithKey> made =
      AwaitResult<AccountWithKey>([&](Done<AccountWithKey> done) {
        accounts.CreateAccount(
            test_builders::NewAccount(
                "acme", absl::StrCat(NewId("s"), "-secret-0123456789")),
            {}, std::move(done));
      });
  ASSERT_TRUE(made.ok()) << made.status();
  const std::string account = made->account.id;

  Contact c;
  c.id = NewId(kContactPrefix);
  c.account_id = account;
  c.channel = Channel::kSms;
  c.address = "+12025550101";
  c.tags = {"vip", "VIP", "eu"};
  c.created_at = c.updated_at = NowMicros();
  ASSERT_TRUE(AwaitResult<Contact>([&](Done<Contact> d) {
                contacts.CreateContact(c, {}, std::move(d));
              }).ok());
  absl::StatusOr<Contact> got = contacts.GetContact(account, c.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(got->tags, ElementsAre("VIP", "eu", "vip"));

  for (const char* id : {"cl_a", "cl_B"}) {
    ContactList l;
    l.id = id;
    l.account_id = account;
    l.name = id;
    l.created_at = l.updated_at = absl::FromUnixMicros(1'700'000'000'000'000);
    ASSERT_TRUE(AwaitResult<ContactList>([&](Done<ContactList> d) {
                  contacts.CreateContactList(l, {}, std::move(d));
                }).ok());
  }
  absl::StatusOr<Page<ContactList>> lists =
      contacts.ListContactLists(account, PageRequest{});
  ASSERT_TRUE(lists.ok()) << lists.status();
  ASSERT_EQ(lists->items.size(), 2u);
  EXPECT_EQ(lists->items[0].id, "cl_a");
  EXPECT_EQ(lists->items[1].id, "cl_B");
  db->reset();
}

}  // namespace
}  // namespace campaigns::storage::postgres::testing
