// A full disk against a real server (its database opened through the
// fault-injecting VFS of tests/support/fault_vfs.h): writes answer
// RESOURCE_EXHAUSTED / STORAGE_FULL with RetryInfo and a retry-after
// trailer, and an ImportRecipients stream that fails at any of its writes
// is all or nothing and lets go of its campaign once the disk is back
// (imports and DeleteCampaign accepted again, without a restart).
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "tests/integration/fixture.h"
#include "tests/support/fault_vfs.h"

namespace campaigns::testing {
namespace {

using Request = v1::ImportRecipientsRequest;

constexpr int kRows = 100;

// `n` distinct valid US numbers as CSV.
std::string Rows(int n) {
  std::string text = "phone\n";
  for (int i = 0; i < n; ++i)
    absl::StrAppend(&text, "+1202", 3000000 + i, "\n");
  return text;
}

// What a failed call said about retrying.
struct Answer {
  grpc::Status status;
  std::string retry_after;  // the trailer, "" if none
  bool retry_info = false;  // a google.rpc.RetryInfo detail
  v1::ImportRecipientsResponse response;
};

void ReadRetry(grpc::ClientContext& ctx, Answer* a) {
  const auto& trailers = ctx.GetServerTrailingMetadata();
  auto it = trailers.find("retry-after");
  if (it != trailers.end()) {
    a->retry_after = std::string(it->second.data(), it->second.size());
  }
  google::rpc::Status rpc;
  if (rpc.ParseFromString(a->status.error_details())) {
    for (const auto& d : rpc.details()) {
      if (d.Is<google::rpc::RetryInfo>()) a->retry_info = true;
    }
  }
}

class StorageFaultsTest : public ServerTest {
 protected:
  void Configure(ServerOptions& options) override {
    FaultVfs::Get();  // registered before the server opens its database
    options.sqlite_vfs = FaultVfs::kName;
  }

  void SetUp() override {
    if (OnPostgres()) {
      // PostgreSQL's failures (a server gone, a cut connection, a rolled
      // back commit) are tested in tests/postgres and tests/e2e.
      GTEST_SKIP() << "faults of SQLite's files (a fault-injecting VFS)";
    }
    ServerTest::SetUp();
    sender_ = RegisterSmsSender(kAdminKey);
  }

  void TearDown() override {
    FaultVfs::Get().Reset();
    ServerTest::TearDown();
  }

  std::string NewCampaign() {
    v1::Campaign c;
    grpc::Status s = campaigns_->CreateCampaign(Ctx(kAdminKey).get(),
                                                CampaignRequest(sender_), &c);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return c.id();
  }

  Answer Import(const std::string& campaign_id) {
    Answer a;
    auto ctx = Ctx(kAdminKey);
    auto writer = campaigns_->ImportRecipients(ctx.get(), &a.response);
    Request first;
    first.set_campaign_id(campaign_id);
    first.set_format(Request::csv);
    first.set_default_region("US");
    first.set_csv_chunk(Rows(kRows));
    writer->Write(first);
    writer->WritesDone();
    a.status = writer->Finish();
    ReadRetry(*ctx, &a);
    return a;
  }

  std::string sender_;
};

TEST_F(StorageFaultsTest, DiskFullIsStorageFullWithRetryAfter) {
  FaultVfs::Get().Arm({.op = FaultOp::kWrite, .nth = 1});
  Answer a;
  auto ctx = Ctx(kAdminKey);
  v1::Campaign c;
  a.status =
      campaigns_->CreateCampaign(ctx.get(), CampaignRequest(sender_), &c);
  ReadRetry(*ctx, &a);
  FaultVfs::Get().Clear();
  ErrorDetails d = Details(a.status);
  EXPECT_EQ(d.code, grpc::StatusCode::RESOURCE_EXHAUSTED) << d.message;
  EXPECT_EQ(d.reason, "STORAGE_FULL");
  EXPECT_TRUE(a.retry_info);
  EXPECT_FALSE(a.retry_after.empty());
  // Nothing was created.
  v1::ListCampaignsRequest list;
  v1::ListCampaignsResponse listed;
  ASSERT_TRUE(
      campaigns_->ListCampaigns(Ctx(kAdminKey).get(), list, &listed).ok());
  EXPECT_EQ(listed.items_size(), 0);
}

// For N over the writes of an import: the Nth and every later write fails
// (the disk fills up); the import is all or nothing, and once space is
// freed the campaign takes the same import and can be deleted.
TEST_F(StorageFaultsTest, ImportFailingAtAnyWriteReleasesItsCampaign) {
  const std::string counted = NewCampaign();
  FaultVfs::Get().Reset();
  ASSERT_TRUE(Import(counted).status.ok());
  const int64_t writes = FaultVfs::Get().Count(FaultOp::kWrite);
  ASSERT_GT(writes, 0);
  // Each failing point waits for the server's rollback retry (its writable
  // probe period, 2 s): at most a dozen points, spread over all the writes.
  const int64_t stride = (writes + 11) / 12;
  int failed = 0;
  for (int64_t n = 1; n <= writes; n += stride) {
    SCOPED_TRACE(absl::StrCat("write ", n, " of ", writes));
    const std::string id = NewCampaign();
    FaultVfs::Get().Arm({.op = FaultOp::kWrite, .nth = n});
    Answer a = Import(id);
    if (!a.status.ok()) {
      // Let the rollback meet the full disk too before space is freed.
      const int64_t seen = FaultVfs::Get().injected();
      for (int i = 0; i < 400 && FaultVfs::Get().injected() == seen; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    FaultVfs::Get().Clear();
    const size_t kept = ListAllRecipients(id).size();
    if (a.status.ok()) {
      EXPECT_EQ(a.response.imported(), kRows);
      EXPECT_EQ(kept, static_cast<size_t>(kRows));
      continue;
    }
    ++failed;
    ErrorDetails d = Details(a.status);
    EXPECT_EQ(d.code, grpc::StatusCode::RESOURCE_EXHAUSTED) << d.message;
    EXPECT_EQ(d.reason, "STORAGE_FULL") << d.message;
    EXPECT_FALSE(a.retry_after.empty());
    EXPECT_EQ(kept, 0u);  // all or nothing
    // The same import succeeds once the rollback has let go (bounded wait).
    Answer again;
    for (int attempt = 0; attempt < 400; ++attempt) {
      again = Import(id);
      if (again.status.ok()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    ASSERT_TRUE(again.status.ok()) << again.status.error_message();
    EXPECT_EQ(again.response.imported(), kRows);
    EXPECT_EQ(ListAllRecipients(id).size(), static_cast<size_t>(kRows));
    v1::DeleteCampaignRequest del;
    del.set_id(id);
    google::protobuf::Empty empty;
    grpc::Status deleted =
        campaigns_->DeleteCampaign(Ctx(kAdminKey).get(), del, &empty);
    EXPECT_TRUE(deleted.ok()) << deleted.error_message();
  }
  EXPECT_GT(failed, 0);
}

class DispatchStorageFaultsTest : public StorageFaultsTest {
 protected:
  void Configure(ServerOptions& options) override {
    StorageFaultsTest::Configure(options);
    options.simulator.keep_log = true;
    options.simulator.defaults.delivered_delay = absl::ZeroDuration();
  }
  v1::Campaign Get(const std::string& id) {
    v1::GetCampaignRequest req;
    req.set_id(id);
    v1::Campaign c;
    grpc::Status s = campaigns_->GetCampaign(Ctx(kAdminKey).get(), req, &c);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return c;
  }
  // Polls (10 ms apart, at most 60 s) until `done(campaign)`.
  v1::Campaign WaitUntil(const std::string& id,
                         const std::function<bool(const v1::Campaign&)>& done) {
    v1::Campaign c;
    for (int i = 0; i < 6000; ++i) {
      c = Get(id);
      if (done(c)) return c;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "never reached; the campaign is " << c.DebugString();
    return c;
  }
};

// The disk fills while a campaign sends (its sender's tier: 10 msg/s): it
// shows paused with the storage error, nothing more goes out, receipts are
// refused with a retry delay; once there is room it sends on by itself and
// every recipient was sent exactly once.
TEST_F(DispatchStorageFaultsTest, ADiskFullPausesDispatchUntilWritesWork) {
  v1::CreateCampaignRequest create = CampaignRequest(sender_);
  create.set_body("Hello from campaignd");  // the rows carry no variables
  v1::Campaign created;
  ASSERT_TRUE(
      campaigns_->CreateCampaign(Ctx(kAdminKey).get(), create, &created).ok());
  const std::string id = created.id();
  ASSERT_TRUE(Import(id).status.ok());
  v1::StartCampaignRequest start;
  start.set_id(id);
  v1::Campaign c;
  ASSERT_TRUE(campaigns_->StartCampaign(Ctx(kAdminKey).get(), start, &c).ok());
  WaitUntil(id, [](const v1::Campaign& c) {
    return c.stats().queued() <= kRows - 10;
  });
  FaultVfs::Get().Arm({.op = FaultOp::kWrite, .nth = 1});
  const v1::Campaign paused = WaitUntil(id, [](const v1::Campaign& c) {
    return c.status() == v1::Campaign::paused;
  });
  EXPECT_EQ(paused.pause_reason().rfind("storage cannot write: ", 0), 0u)
      << paused.pause_reason();
  const size_t calls = server_->simulator()->Log().size();
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_EQ(server_->simulator()->Log().size(), calls) << "sent while paused";
  EXPECT_EQ(Get(id).status(), v1::Campaign::paused);

  // A receipt cannot be stored: refused, with when to try again.
  Answer a;
  {
    auto ctx = Ctx(kAdminKey);
    v1::ReportDeliveryReceiptsResponse out;
    auto writer = delivery_->ReportDeliveryReceipts(ctx.get(), &out);
    v1::DeliveryReceipt r;
    r.set_provider_message_id("sim_unknown");
    r.set_status(v1::Recipient::delivered);
    writer->Write(r);
    writer->WritesDone();
    a.status = writer->Finish();
    ReadRetry(*ctx, &a);
  }
  EXPECT_EQ(a.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << a.status.error_message();
  EXPECT_TRUE(a.retry_info);
  EXPECT_FALSE(a.retry_after.empty());

  FaultVfs::Get().Clear();
  const v1::Campaign done = WaitUntil(id, [](const v1::Campaign& c) {
    return c.status() == v1::Campaign::completed;
  });
  EXPECT_TRUE(done.pause_reason().empty()) << done.pause_reason();
  EXPECT_EQ(done.stats().delivered(), kRows);
  EXPECT_EQ(done.stats().failed() + done.stats().skipped(), 0);
  std::map<std::string, int> accepted;
  for (const dispatch::SimulatorLogEntry& e : server_->simulator()->Log()) {
    if (e.outcome == "accepted" || e.outcome == "duplicate") ++accepted[e.key];
  }
  EXPECT_EQ(accepted.size(), static_cast<size_t>(kRows));
  for (const auto& [key, n] : accepted) EXPECT_EQ(n, 1) << key;
}

}  // namespace
}  // namespace campaigns::testing
