// ImportRecipients and ListRecipients against a real server: CSV split at
// every byte, JSON rows, normalisation, dedupe, suppressions, row errors,
// idempotency, all-or-nothing on failure, cancellation and restart, keyset
// paging.

#include <future>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "server/domain/import_rows.h"
#include "server/domain/mutex.h"
#include "tests/integration/fixture.h"

namespace campaigns::testing {
namespace {

using Request = v1::ImportRecipientsRequest;

// Builds a CSV of `n` distinct valid US numbers.
std::string ManyRows(int n, int base = 0) {
  std::string text = "phone,name\n";
  for (int i = 0; i < n; ++i) {
    absl::StrAppend(&text, "+1202", 2000000 + base + i, ",n", i, "\n");
  }
  return text;
}

// A CSV row of `columns` fields: a US number, then one-byte fields.
std::string WideRow(int columns) {
  std::string row = "+12025550199";
  for (int i = 1; i < columns; ++i) row += ",x";
  return row + "\n";
}

class ImportTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    sender_ = RegisterSmsSender(kAdminKey);
    campaign_ = NewCampaign(kAdminKey);
  }

  std::string NewCampaign(const std::string& key) {
    v1::Campaign c;
    grpc::Status s = campaigns_->CreateCampaign(Ctx(key).get(),
                                                CampaignRequest(sender_), &c);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return c.id();
  }

  static Request First(const std::string& campaign_id,
                       Request::Format format = Request::csv,
                       const std::string& region = "US",
                       const std::string& request_id = "") {
    Request r;
    r.set_campaign_id(campaign_id);
    r.set_format(format);
    r.set_default_region(region);
    r.set_request_id(request_id);
    return r;
  }

  static Request Chunk(const std::string& bytes) {
    Request r;
    r.set_csv_chunk(bytes);
    return r;
  }

  // Streams `messages` and returns the call's status and response.
  grpc::Status Import(const std::vector<Request>& messages,
                      v1::ImportRecipientsResponse* out,
                      const std::string& key = kAdminKey) {
    auto ctx = Ctx(key);
    auto writer = campaigns_->ImportRecipients(ctx.get(), out);
    for (const Request& m : messages) {
      if (!writer->Write(m)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  // CSV `text` sent in chunks of `chunk` bytes after the settings message.
  grpc::Status ImportCsv(const std::string& text, size_t chunk,
                         v1::ImportRecipientsResponse* out,
                         const std::string& campaign_id = "") {
    std::vector<Request> messages = {
        First(campaign_id.empty() ? campaign_ : campaign_id)};
    for (size_t i = 0; i < text.size(); i += chunk) {
      messages.push_back(Chunk(text.substr(i, chunk)));
    }
    return Import(messages, out);
  }

  v1::Campaign Get(const std::string& id = "") {
    v1::GetCampaignRequest req;
    req.set_id(id.empty() ? campaign_ : id);
    v1::Campaign c;
    grpc::Status s = campaigns_->GetCampaign(Ctx(kAdminKey).get(), req, &c);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return c;
  }

  std::vector<v1::Recipient> ListAll(
      const std::string& campaign_id = "",
      v1::Recipient::Status status = v1::Recipient::status_unspecified) {
    return ListAllRecipients(campaign_id.empty() ? campaign_ : campaign_id,
                             status);
  }

  // Opens an import into campaign_ and streams 30,000 rows without ending
  // it, waiting a moment so the server has taken in and staged them.
  std::unique_ptr<grpc::ClientWriter<Request>> OpenImport(
      grpc::ClientContext* ctx, v1::ImportRecipientsResponse* out) {
    ctx->AddMetadata("authorization", absl::StrCat("Bearer ", kAdminKey));
    auto writer = campaigns_->ImportRecipients(ctx, out);
    const std::string text = ManyRows(30000);
    EXPECT_TRUE(writer->Write(First(campaign_)));
    for (size_t i = 0; i < text.size(); i += 8192) {
      EXPECT_TRUE(writer->Write(Chunk(text.substr(i, 8192))));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return writer;
  }

  // Imports `csv` into campaign_ once an earlier import's rollback has let
  // go of it (retrying for up to 4 s).
  grpc::Status ImportOnceFree(const std::string& csv) {
    v1::ImportRecipientsResponse out;
    grpc::Status s;
    for (int attempt = 0; attempt < 200; ++attempt) {
      s = ImportCsv(csv, 100, &out);
      if (s.ok()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return s;
  }

  std::string sender_;
  std::string campaign_;
};

constexpr char kCsv[] =
    "\xEF\xBB\xBF"
    "phone,name,code\r\n"
    "(202) 555-0143,Ann,A1\r\n"
    "+44 20 7946 0958,\"Smith, Bob\",B2\r\n"
    "202-555-0143,Dup,D3\r\n"
    "not a number,Bad,X\r\n"
    "+33 1 42 68 53 00,\"Multi\r\nLine\",\"q\"\"uote\"\r\n";

TEST_F(ImportTest, CsvSplitAtEveryByteImportsTheSameRows) {
  const std::string text(kCsv);
  for (size_t chunk :
       {size_t{1}, size_t{2}, size_t{3}, size_t{7}, text.size()}) {
    SCOPED_TRACE(absl::StrCat("chunk ", chunk));
    const std::string campaign = NewCampaign(kAdminKey);
    v1::ImportRecipientsResponse out;
    grpc::Status s = ImportCsv(text, chunk, &out, campaign);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(out.received(), 5);
    EXPECT_EQ(out.imported(), 3);
    EXPECT_EQ(out.duplicates(), 1);
    EXPECT_EQ(out.invalid(), 1);
    EXPECT_EQ(out.suppressed(), 0);
    ASSERT_EQ(out.errors_size(), 2);
    EXPECT_EQ(out.errors(0).row(), 3);
    EXPECT_THAT(out.errors(0).reason(), ::testing::HasSubstr("line 4"));
    EXPECT_THAT(out.errors(0).reason(), ::testing::HasSubstr("duplicate"));
    EXPECT_EQ(out.errors(1).row(), 4);

    std::vector<v1::Recipient> rows = ListAll(campaign);
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(rows[0].address(), "+12025550143");
    EXPECT_EQ(rows[0].variables().at("name"), "Ann");
    EXPECT_EQ(rows[0].variables().at("code"), "A1");
    EXPECT_EQ(rows[0].status(), v1::Recipient::queued);
    EXPECT_EQ(rows[0].campaign_id(), campaign);
    EXPECT_EQ(rows[0].id().substr(0, 4), "rcp_");
    EXPECT_EQ(rows[1].address(), "+442079460958");
    EXPECT_EQ(rows[1].variables().at("name"), "Smith, Bob");
    EXPECT_EQ(rows[2].address(), "+33142685300");
    EXPECT_EQ(rows[2].variables().at("name"), "Multi\r\nLine");
    EXPECT_EQ(rows[2].variables().at("code"), "q\"uote");

    v1::Campaign c = Get(campaign);
    EXPECT_EQ(c.stats().total(), 3);
    EXPECT_EQ(c.stats().queued(), 3);
  }
}

TEST_F(ImportTest, JsonRowsAndDedupeAgainstEarlierImports) {
  Request first = First(campaign_, Request::json_rows);
  Request rows;
  for (const char* a : {"+12025550143", "2025550144", "+12025550143"}) {
    v1::RecipientRow* r = rows.add_rows();
    r->set_address(a);
    (*r->mutable_variables())["name"] = a;
  }
  v1::ImportRecipientsResponse out;
  ASSERT_TRUE(Import({first, rows}, &out).ok());
  EXPECT_EQ(out.received(), 3);
  EXPECT_EQ(out.imported(), 2);
  EXPECT_EQ(out.duplicates(), 1);

  // A second import: rows already on the campaign are duplicates.
  v1::ImportRecipientsResponse again;
  ASSERT_TRUE(
      ImportCsv("phone_number\n+12025550144\n+12025550145\n", 5, &again).ok());
  EXPECT_EQ(again.received(), 2);
  EXPECT_EQ(again.imported(), 1);
  EXPECT_EQ(again.duplicates(), 1);
  EXPECT_EQ(Get().stats().total(), 3);
  EXPECT_EQ(ListAll().size(), 3u);
}

TEST_F(ImportTest, SuppressedAddressesAreFilteredPerChannelAndEveryChannel) {
  for (auto [address, channel] :
       std::vector<std::pair<std::string, v1::Channel>>{
           {"+12025550143", v1::sms},
           {"+12025550144", v1::channel_unspecified},
           {"+12025550145", v1::whatsapp}}) {
    v1::AddSuppressionRequest req;
    req.set_address(address);
    req.set_channel(channel);
    req.set_reason(v1::Suppression::opt_out);
    v1::Suppression s;
    ASSERT_TRUE(
        suppressions_->AddSuppression(Ctx(kAdminKey).get(), req, &s).ok());
  }
  v1::ImportRecipientsResponse out;
  ASSERT_TRUE(
      ImportCsv("phone\n+12025550143\n+12025550144\n+12025550145\n", 64, &out)
          .ok());
  EXPECT_EQ(out.suppressed(), 2);
  EXPECT_EQ(out.imported(), 1);  // suppressed only on WhatsApp
  ASSERT_EQ(out.errors_size(), 2);
  EXPECT_THAT(out.errors(0).reason(), ::testing::HasSubstr("suppression"));
  std::vector<v1::Recipient> rows = ListAll();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].address(), "+12025550145");
}

TEST_F(ImportTest, ListsTheFirstHundredRowErrorsInRowOrder) {
  std::string text = "phone,name\n";
  for (int i = 0; i < 5000; ++i) {
    // Every third row invalid, the rest valid and distinct.
    if (i % 3 == 0) {
      absl::StrAppend(&text, "bad", i, ",x\n");
    } else {
      absl::StrAppend(&text, "+1202555", 1000 + i, ",x\n");
    }
  }
  v1::ImportRecipientsResponse out;
  ASSERT_TRUE(ImportCsv(text, 4096, &out).ok());
  EXPECT_EQ(out.received(), 5000);
  EXPECT_EQ(out.invalid(), 1667);
  EXPECT_EQ(out.imported(), 3333);
  ASSERT_EQ(out.errors_size(), 100);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(out.errors(i).row(), 3 * i + 1);
  EXPECT_EQ(Get().stats().total(), 3333);
}

TEST_F(ImportTest, BadSettingsAndHeadersNameTheField) {
  v1::ImportRecipientsResponse out;
  Request no_format = First(campaign_, Request::format_unspecified);
  ErrorDetails d = Details(Import({no_format}, &out));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(d.fields, std::vector<std::string>{"format"});

  d = Details(Import({First("")}, &out));
  EXPECT_EQ(d.fields, std::vector<std::string>{"campaign_id"});

  d = Details(Import({First(campaign_, Request::csv, "XX")}, &out));
  EXPECT_EQ(d.fields, std::vector<std::string>{"default_region"});

  d = Details(Import({}, &out));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);

  d = Details(ImportCsv("name,code\nAnn,1\n", 100, &out));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(d.fields, std::vector<std::string>{"csv_chunk"});
  EXPECT_THAT(d.message, ::testing::HasSubstr("address column"));

  d = Details(ImportCsv("phone,email\n+12025550143,a@b.c\n", 100, &out));
  EXPECT_EQ(d.code, grpc::StatusCode::OK);  // phone fits an SMS campaign
  d = Details(ImportCsv("phone,phone_number\n1,2\n", 100, &out));
  EXPECT_EQ(d.fields, std::vector<std::string>{"csv_chunk"});

  Request rows_in_csv;
  rows_in_csv.add_rows()->set_address("+12025550143");
  d = Details(Import({First(campaign_), rows_in_csv}, &out));
  EXPECT_EQ(d.fields, std::vector<std::string>{"rows"});

  Request missing = First("cmp_missing");
  d = Details(Import({missing, Chunk("phone\n+12025550143\n")}, &out));
  EXPECT_EQ(d.code, grpc::StatusCode::NOT_FOUND);

  // Another account's campaign is NOT_FOUND too.
  const std::string other = NewAccount("other");
  d = Details(
      Import({First(campaign_), Chunk("phone\n+12025550143\n")}, &out, other));
  EXPECT_EQ(d.code, grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Get().stats().total(), 1);  // only the phone,email import
}

TEST_F(ImportTest, InvalidUtf8RowsAreReportedAndAHeaderIsFatal) {
  // Invalid bytes in a variable and in an address: those rows are invalid,
  // and no reason echoes the bytes (a response must be valid UTF-8).
  const std::string csv = std::string("phone,name\n") + "+12025550143,Ann\n" +
                          "+12025550144,Bad\xff\xfe\n" +
                          "+1202555\xc3\x28,Bob\n" +
                          "+12025550145,Caf\xc3\xa9\n";
  v1::ImportRecipientsResponse out;
  grpc::Status s = ImportCsv(csv, 7, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.received(), 4);
  EXPECT_EQ(out.imported(), 2);
  EXPECT_EQ(out.invalid(), 2);
  ASSERT_EQ(out.errors_size(), 2);
  EXPECT_EQ(out.errors(0).row(), 2);
  EXPECT_THAT(out.errors(0).reason(), ::testing::HasSubstr("UTF-8"));
  EXPECT_THAT(out.errors(0).reason(), ::testing::HasSubstr("name"));
  EXPECT_EQ(out.errors(1).row(), 3);
  std::vector<v1::Recipient> rows = ListAll();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].variables().at("name"), "Caf\xc3\xa9");

  const std::string campaign = NewCampaign(kAdminKey);
  ErrorDetails d = Details(
      ImportCsv("phone,n\xffme\n+12025550143,Ann\n", 100, &out, campaign));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(d.fields, std::vector<std::string>{"csv_chunk"});
  EXPECT_THAT(d.message, ::testing::HasSubstr("UTF-8"));
  EXPECT_EQ(Get(campaign).stats().total(), 0);
}

TEST_F(ImportTest, RowWithWrongFieldCountIsReportedTheRestImported) {
  v1::ImportRecipientsResponse out;
  grpc::Status s = ImportCsv(
      "phone,name\n+12025550143,Ann\n+12025550144,Bob,extra\n"
      "+12025550145\n+12025550146,Dan\n",
      5, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.received(), 4);
  EXPECT_EQ(out.imported(), 2);
  EXPECT_EQ(out.invalid(), 2);
  ASSERT_EQ(out.errors_size(), 2);
  EXPECT_EQ(out.errors(0).row(), 2);
  EXPECT_THAT(out.errors(0).reason(), ::testing::HasSubstr("line 3"));
  EXPECT_THAT(out.errors(0).reason(), ::testing::HasSubstr("3 fields"));
  EXPECT_EQ(out.errors(1).row(), 3);
  std::vector<v1::Recipient> rows = ListAll();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].address(), "+12025550143");
  EXPECT_EQ(rows[1].address(), "+12025550146");
}

TEST_F(ImportTest, OnlyDraftScheduledAndPausedCampaignsTakeImports) {
  // Set the status in the database, as the engine would. The engine hears
  // of the change (on PostgreSQL, at once) and may move such a campaign,
  // which has no recipient, on: sending to sent, sent to completed. Either
  // way the import is refused, naming the status it met.
  auto set_status = [this](const std::string& id, const char* status) {
    ASSERT_EQ(ExecSql(absl::StrCat("UPDATE campaigns SET status = '", status,
                                   "' WHERE id = '", id, "'")),
              1);
  };
  auto later = [](const std::string& status) -> std::vector<std::string> {
    if (status == "sending") return {"sending", "sent", "completed"};
    if (status == "sent") return {"sent", "completed"};
    return {status};
  };
  for (const char* status : {"sending", "sent", "completed", "cancelled",
                             "failed", "scheduled", "paused"}) {
    SCOPED_TRACE(status);
    const std::string campaign = NewCampaign(kAdminKey);
    set_status(campaign, status);
    const int64_t total = Get(campaign).stats().total();
    v1::ImportRecipientsResponse out;
    ErrorDetails d =
        Details(ImportCsv("phone\n+12025550143\n", 100, &out, campaign));
    const bool allowed =
        std::string(status) == "scheduled" || std::string(status) == "paused";
    if (allowed) {
      EXPECT_EQ(d.code, grpc::StatusCode::OK) << d.message;
      EXPECT_EQ(Get(campaign).stats().total(), 1);
    } else {
      EXPECT_EQ(d.code, grpc::StatusCode::FAILED_PRECONDITION) << d.message;
      EXPECT_EQ(d.reason, "ILLEGAL_TRANSITION");
      bool named = false;
      for (const std::string& s : later(status)) {
        named =
            named || absl::StrContains(d.message, absl::StrCat(" is ", s, ";"));
      }
      EXPECT_TRUE(named) << d.message;
      EXPECT_EQ(Get(campaign).stats().total(), total);
    }
  }
}

TEST_F(ImportTest, ContactAudienceCampaignsRefuseImports) {
  v1::CreateCampaignRequest req = CampaignRequest(sender_);
  req.add_tags("vip");
  v1::Campaign c;
  ASSERT_TRUE(campaigns_->CreateCampaign(Ctx(kAdminKey).get(), req, &c).ok());
  v1::ImportRecipientsResponse out;
  ErrorDetails d =
      Details(ImportCsv("phone\n+12025550143\n", 100, &out, c.id()));
  EXPECT_EQ(d.code, grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(d.reason, "VALIDATION_ERROR");
}

TEST_F(ImportTest, RequestIdRepeatsTheFirstResultAndRefusesOtherContent) {
  std::vector<Request> messages = {
      First(campaign_, Request::csv, "US", "import-1"),
      Chunk("phone\n2025550143\n"), Chunk("2025550144\n")};
  v1::ImportRecipientsResponse first;
  ASSERT_TRUE(Import(messages, &first).ok());
  EXPECT_EQ(first.imported(), 2);

  // Same content, split differently: the first answer, nothing imported.
  v1::ImportRecipientsResponse repeat;
  ASSERT_TRUE(Import({First(campaign_, Request::csv, "US", "import-1"),
                      Chunk("phone\n2025550143\n2025550144\n")},
                     &repeat)
                  .ok());
  EXPECT_EQ(repeat.SerializeAsString(), first.SerializeAsString());
  EXPECT_EQ(Get().stats().total(), 2);

  v1::ImportRecipientsResponse out;
  ErrorDetails d =
      Details(Import({First(campaign_, Request::csv, "US", "import-1"),
                      Chunk("phone\n2025550145\n")},
                     &out));
  EXPECT_EQ(d.code, grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(d.reason, "IDEMPOTENCY_CONFLICT");
  EXPECT_EQ(Get().stats().total(), 2);
}

TEST_F(ImportTest, FatalErrorMidStreamImportsNothing) {
  ASSERT_TRUE([&] {
    v1::ImportRecipientsResponse out;
    return ImportCsv("phone\n+12025550100\n", 100, &out).ok();
  }());
  const std::string text = ManyRows(20000);
  std::vector<Request> messages = {First(campaign_)};
  for (size_t i = 0; i < text.size(); i += 8192) {
    messages.push_back(Chunk(text.substr(i, 8192)));
  }
  messages.push_back(Chunk("\"unterminated"));
  v1::ImportRecipientsResponse out;
  ErrorDetails d = Details(Import(messages, &out));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(d.fields, std::vector<std::string>{"csv_chunk"});
  EXPECT_EQ(Get().stats().total(), 1);
  EXPECT_EQ(ListAll().size(), 1u);

  // Once rolled back, the campaign takes a new import.
  grpc::Status s = ImportOnceFree("phone\n+12025550101\n");
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(Get().stats().total(), 2);
}

TEST_F(ImportTest, ClientCancelImportsNothing) {
  v1::ImportRecipientsResponse out;
  grpc::ClientContext ctx;
  auto writer = OpenImport(&ctx, &out);
  ctx.TryCancel();  // walk away mid-stream
  EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(Get().stats().total(), 0);
  EXPECT_TRUE(ListAll().empty());
}

TEST_F(ImportTest, RestartDuringImportRollsItBack) {
  v1::ImportRecipientsResponse out;
  grpc::ClientContext ctx;
  auto writer = OpenImport(&ctx, &out);
  // A short grace period: the stream is still open, so shutdown cancels it.
  std::thread restart([this] {
    server_->Shutdown(absl::Milliseconds(100));
    Restart();
  });
  EXPECT_FALSE(writer->Finish().ok());
  restart.join();
  EXPECT_EQ(Get().stats().total(), 0);
  EXPECT_TRUE(ListAll().empty());
  grpc::Status s = ImportOnceFree(ManyRows(10));
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(Get().stats().total(), 10);
}

TEST_F(ImportTest, ListRecipientsPagesByTokenAndFiltersByStatus) {
  v1::ImportRecipientsResponse out;
  ASSERT_TRUE(ImportCsv(ManyRows(250), 1000, &out).ok());
  ASSERT_EQ(out.imported(), 250);

  v1::ListRecipientsRequest req;
  req.set_campaign_id(campaign_);
  req.set_limit(100);
  v1::ListRecipientsResponse page;
  ASSERT_TRUE(
      campaigns_->ListRecipients(Ctx(kAdminKey).get(), req, &page).ok());
  EXPECT_EQ(page.total(), 250);
  EXPECT_EQ(page.items_size(), 100);
  EXPECT_TRUE(page.has_more());
  EXPECT_EQ(page.items(0).variables().at("name"), "n0");

  std::vector<v1::Recipient> all = ListAll();
  ASSERT_EQ(all.size(), 250u);
  for (int i = 0; i < 250; ++i) {
    EXPECT_EQ(all[i].variables().at("name"), absl::StrCat("n", i));
  }
  EXPECT_EQ(ListAll(campaign_, v1::Recipient::queued).size(), 250u);
  EXPECT_TRUE(ListAll(campaign_, v1::Recipient::sent).empty());

  // page numbers work too.
  req.set_page(3);
  ASSERT_TRUE(
      campaigns_->ListRecipients(Ctx(kAdminKey).get(), req, &page).ok());
  EXPECT_EQ(page.items_size(), 50);
  EXPECT_FALSE(page.has_more());
  EXPECT_EQ(page.items(0).variables().at("name"), "n200");

  req.set_page_token("garbage");
  ErrorDetails d =
      Details(campaigns_->ListRecipients(Ctx(kAdminKey).get(), req, &page));
  EXPECT_EQ(d.fields, std::vector<std::string>{"page_token"});

  v1::ListRecipientsRequest other_req;
  other_req.set_campaign_id(campaign_);
  d = Details(
      campaigns_->ListRecipients(Ctx(NewAccount("o")).get(), other_req, &page));
  EXPECT_EQ(d.code, grpc::StatusCode::NOT_FOUND);
}

TEST_F(ImportTest, DeleteCampaignDeletesItsRecipients) {
  v1::ImportRecipientsResponse out;
  ASSERT_TRUE(ImportCsv(ManyRows(5), 1000, &out).ok());
  v1::DeleteCampaignRequest del;
  del.set_id(campaign_);
  google::protobuf::Empty empty;
  ASSERT_TRUE(
      campaigns_->DeleteCampaign(Ctx(kAdminKey).get(), del, &empty).ok());
  v1::ListRecipientsRequest req;
  req.set_campaign_id(campaign_);
  v1::ListRecipientsResponse page;
  EXPECT_EQ(
      Details(campaigns_->ListRecipients(Ctx(kAdminKey).get(), req, &page))
          .code,
      grpc::StatusCode::NOT_FOUND);
}

TEST_F(ImportTest, RowLimitsNameTheLimitForCsvAndJsonRows) {
  // CSV: a row of 100,000 columns and one with a field over the byte limit
  // are row errors; the rows around them are imported.
  v1::ImportRecipientsResponse out;
  grpc::Status s = ImportCsv(
      "phone,name\n+12025550143,Ann\n" + WideRow(100000) + "+12025550144," +
          std::string(kMaxRowFieldBytes + 1, 'n') + "\n+12025550145,Bob\n",
      65536, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.received(), 4);
  EXPECT_EQ(out.imported(), 2);
  EXPECT_EQ(out.invalid(), 2);
  ASSERT_EQ(out.errors_size(), 2);
  EXPECT_EQ(out.errors(0).row(), 2);
  EXPECT_EQ(out.errors(0).reason(),
            absl::StrCat("line 3: 100000 columns, at most ", kMaxRowColumns));
  EXPECT_EQ(out.errors(1).row(), 3);
  EXPECT_EQ(out.errors(1).reason(),
            absl::StrCat("line 4: column \"name\" has ", kMaxRowFieldBytes + 1,
                         " bytes, at most ", kMaxRowFieldBytes));

  // A header of 100,000 columns is fatal: nothing is imported.
  std::string header = "phone";
  for (int i = 1; i < 100000; ++i) absl::StrAppend(&header, ",v", i);
  const std::string wide_campaign = NewCampaign(kAdminKey);
  ErrorDetails d = Details(
      ImportCsv(header + "\n" + WideRow(100000), 65536, &out, wide_campaign));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(d.fields, std::vector<std::string>{"csv_chunk"});
  EXPECT_THAT(d.message, ::testing::HasSubstr(absl::StrCat(
                             "has 100000 columns, at most ", kMaxRowColumns)));
  EXPECT_EQ(Get(wide_campaign).stats().total(), 0);

  // JSON rows: the same limits. 100,000 variables is a row error; the
  // limit itself is fine.
  const std::string json_campaign = NewCampaign(kAdminKey);
  Request rows;
  v1::RecipientRow* over = rows.add_rows();
  over->set_address("+12025550143");
  for (int i = 0; i < 100000; ++i) {
    (*over->mutable_variables())[absl::StrCat("v", i)] = "x";
  }
  v1::RecipientRow* at = rows.add_rows();
  at->set_address("+12025550144");
  for (size_t i = 0; i < kMaxRowVariables; ++i) {
    (*at->mutable_variables())[absl::StrCat("v", i)] = "x";
  }
  v1::RecipientRow* long_value = rows.add_rows();
  long_value->set_address("+12025550145");
  (*long_value->mutable_variables())["note"] =
      std::string(kMaxRowFieldBytes + 1, 'n');
  s = Import({First(json_campaign, Request::json_rows), rows}, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.received(), 3);
  EXPECT_EQ(out.imported(), 1);
  EXPECT_EQ(out.invalid(), 2);
  ASSERT_EQ(out.errors_size(), 2);
  EXPECT_EQ(out.errors(0).row(), 1);
  EXPECT_EQ(out.errors(0).reason(),
            absl::StrCat("100000 variables, at most ", kMaxRowVariables));
  EXPECT_EQ(out.errors(1).row(), 3);
  EXPECT_EQ(out.errors(1).reason(),
            absl::StrCat("variable \"note\" has ", kMaxRowFieldBytes + 1,
                         " bytes, at most ", kMaxRowFieldBytes));
  std::vector<v1::Recipient> stored = ListAll(json_campaign);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].variables_size(), static_cast<int>(kMaxRowVariables));
}

// One completion-queue thread: whatever runs on it holds up every call.
class ImportOneCqThreadTest : public ImportTest {
 protected:
  void Configure(ServerOptions& options) override { options.cq_threads = 1; }
};

TEST_F(ImportOneCqThreadTest, ParsingWideRowsHoldsNoOtherCallUp) {
  // After the header, one message just under gRPC's 4 MB cap of rows of
  // 100,000 columns (row errors all), which takes the parser a while; then
  // a message the import refuses (rows in a CSV import), which ends the
  // call once the server has parsed the one before.
  std::string csv;
  const std::string wide = WideRow(100000);
  while (csv.size() + wide.size() < 4000000) csv += wide;
  Request header = First(campaign_);
  header.set_csv_chunk("phone,name\n");
  const Request big = Chunk(csv);
  Request refused;
  refused.add_rows()->set_address("+12025550143");

  Mutex mu;
  std::vector<std::string> events;
  auto note = [&](std::string event) {
    MutexLock lock(&mu);
    events.push_back(std::move(event));
  };
  std::promise<bool> big_written;
  std::thread import([&] {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kAdminKey));
    v1::ImportRecipientsResponse out;
    auto writer = campaigns_->ImportRecipients(&ctx, &out);
    const bool written = writer->Write(header) && writer->Write(big);
    big_written.set_value(written);
    writer->Write(refused);  // false if the call already ended
    ErrorDetails d = Details(writer->Finish());
    note(absl::StrCat("import ended: ",
                      d.fields.empty() ? "no field" : d.fields[0]));
  });
  // Once the server has the whole big message (it is parsing it or about
  // to), three GetCampaign calls one after another: each answered while
  // the import still runs.
  const bool written = big_written.get_future().get();
  EXPECT_TRUE(written);
  for (int i = 0; written && i < 3; ++i) {
    EXPECT_EQ(Get().id(), campaign_);
    note("get answered");
  }
  import.join();
  EXPECT_EQ(events,
            (std::vector<std::string>{"get answered", "get answered",
                                      "get answered", "import ended: rows"}));
  EXPECT_EQ(Get().stats().total(), 0);
}

}  // namespace
}  // namespace campaigns::testing
