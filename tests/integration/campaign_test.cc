// Campaign create/get/list/update/delete through the real server.
#include <google/protobuf/util/message_differencer.h>

#include <set>

#include "tests/integration/fixture.h"

namespace campaigns::testing {
namespace {

class CampaignTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    sender_ = RegisterSmsSender(kAdminKey);
  }
  v1::Campaign Create(v1::CreateCampaignRequest req) {
    v1::Campaign c;
    grpc::Status s = campaigns_->CreateCampaign(Ctx(kAdminKey).get(), req, &c);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return c;
  }
  v1::Campaign Get(const std::string& id) {
    v1::GetCampaignRequest req;
    req.set_id(id);
    v1::Campaign c;
    grpc::Status s = campaigns_->GetCampaign(Ctx(kAdminKey).get(), req, &c);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return c;
  }
  std::string sender_;
};

TEST_F(CampaignTest, CreateStoresEveryFieldAsDraft) {
  v1::CreateCampaignRequest req = CampaignRequest(sender_);
  (*req.mutable_variable_mapping())["name"] = "first_name";
  req.add_tags("vip");
  req.add_tags("beta");
  req.set_batch_size(250);
  req.mutable_batch_delay()->set_seconds(2);
  req.set_rate_limit_per_second(5);
  req.mutable_validity_period()->set_seconds(3600);
  req.mutable_max_lateness()->set_seconds(600);
  req.mutable_schedule_at()->set_seconds(4102444800);  // 2100-01-01
  v1::Campaign c = Create(req);
  EXPECT_EQ(c.id().rfind("cmp_", 0), 0u);
  EXPECT_EQ(c.status(), v1::Campaign::draft);
  EXPECT_EQ(c.sender_id(), sender_);
  EXPECT_EQ(c.variable_mapping().at("name"), "first_name");
  EXPECT_EQ(c.tags_size(), 2);
  EXPECT_EQ(c.batch_size(), 250);
  EXPECT_EQ(c.batch_delay().seconds(), 2);
  EXPECT_EQ(c.rate_limit_per_second(), 5);
  EXPECT_EQ(c.validity_period().seconds(), 3600);
  EXPECT_EQ(c.max_lateness().seconds(), 600);
  EXPECT_EQ(c.schedule_at().seconds(), 4102444800);
  EXPECT_TRUE(c.has_created_at());
  EXPECT_TRUE(c.has_stats());
  EXPECT_EQ(c.stats().total(), 0);
  EXPECT_TRUE(
      google::protobuf::util::MessageDifferencer::Equals(c, Get(c.id())));

  // Defaults.
  v1::Campaign d = Create(CampaignRequest(sender_));
  EXPECT_EQ(d.batch_size(), 100);
  EXPECT_FALSE(d.has_schedule_at());
  EXPECT_FALSE(d.has_validity_period());
}

TEST_F(CampaignTest, SenderMayBeNamedByItsRegisteredId) {
  v1::ListSendersResponse senders;
  ASSERT_TRUE(senders_->ListSenders(Ctx(kAdminKey).get(), {}, &senders).ok());
  v1::CreateCampaignRequest req = CampaignRequest(senders.items(0).id());
  v1::Campaign c = Create(req);
  EXPECT_EQ(c.sender_id(), sender_);
  v1::ListCampaignsRequest by_ref;
  by_ref.set_sender_id(senders.items(0).id());
  v1::ListCampaignsResponse list;
  ASSERT_TRUE(
      campaigns_->ListCampaigns(Ctx(kAdminKey).get(), by_ref, &list).ok());
  EXPECT_EQ(list.total(), 1);
}

TEST_F(CampaignTest, TemplateCampaignResolvesNameAndLanguage) {
  v1::Template t = ApprovedTemplate(kAdminKey);
  v1::CreateCampaignRequest req = CampaignRequest(sender_);
  req.clear_body();
  req.set_template_id(t.id());
  v1::Campaign c = Create(req);
  EXPECT_EQ(c.template_name(), "welcome");
  EXPECT_EQ(c.template_lang(), "en_US");
}

TEST_F(CampaignTest, IdempotentCreate) {
  v1::CreateCampaignRequest req = CampaignRequest(sender_);
  req.set_request_id("create-1");
  v1::Campaign first = Create(req);
  v1::Campaign again = Create(req);
  EXPECT_EQ(first.id(), again.id());

  req.set_name("Another body");
  v1::Campaign out;
  ErrorDetails d =
      Details(campaigns_->CreateCampaign(Ctx(kAdminKey).get(), req, &out));
  EXPECT_EQ(d.code, grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(d.reason, "IDEMPOTENCY_CONFLICT");

  // Another account's identical request_id is its own.
  const std::string other = NewAccount("other");
  const std::string other_sender = RegisterSmsSender(other);
  v1::CreateCampaignRequest theirs = CampaignRequest(other_sender);
  theirs.set_request_id("create-1");
  ASSERT_TRUE(campaigns_->CreateCampaign(Ctx(other).get(), theirs, &out).ok());
  EXPECT_NE(out.id(), first.id());

  v1::ListCampaignsResponse list;
  ASSERT_TRUE(campaigns_->ListCampaigns(Ctx(kAdminKey).get(), {}, &list).ok());
  EXPECT_EQ(list.total(), 1);
}

TEST_F(CampaignTest, ConcurrentIdempotentCreatesMakeOneCampaign) {
  v1::CreateCampaignRequest req = CampaignRequest(sender_);
  req.set_request_id("race");
  grpc::CompletionQueue cq;
  constexpr int kCalls = 20;
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<v1::Campaign> out(kCalls);
  std::vector<grpc::Status> status(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    ctxs.push_back(Ctx(kAdminKey));
    auto rpc = campaigns_->AsyncCreateCampaign(ctxs.back().get(), req, &cq);
    rpc->Finish(&out[i], &status[i], reinterpret_cast<void*>(i));
  }
  std::set<std::string> ids;
  for (int i = 0; i < kCalls; ++i) {
    void* tag;
    bool ok;
    ASSERT_TRUE(cq.Next(&tag, &ok));
  }
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(status[i].ok()) << status[i].error_message();
    ids.insert(out[i].id());
  }
  EXPECT_EQ(ids.size(), 1u);
}

TEST_F(CampaignTest, ListFiltersAndPages) {
  for (int i = 0; i < 25; ++i) {
    v1::CreateCampaignRequest req = CampaignRequest(sender_);
    req.set_name("c" + std::to_string(i));
    Create(req);
  }
  v1::ListCampaignsRequest req;
  req.set_limit(10);
  v1::ListCampaignsResponse page1;
  ASSERT_TRUE(
      campaigns_->ListCampaigns(Ctx(kAdminKey).get(), req, &page1).ok());
  EXPECT_EQ(page1.items_size(), 10);
  EXPECT_EQ(page1.total(), 25);
  EXPECT_EQ(page1.page(), 1);
  EXPECT_EQ(page1.limit(), 10);
  EXPECT_TRUE(page1.has_more());
  EXPECT_EQ(page1.items(0).name(), "c24");  // newest first

  // page_token and page agree.
  v1::ListCampaignsRequest by_token = req;
  by_token.set_page_token(page1.next_page_token());
  v1::ListCampaignsResponse page2;
  ASSERT_TRUE(
      campaigns_->ListCampaigns(Ctx(kAdminKey).get(), by_token, &page2).ok());
  EXPECT_EQ(page2.page(), 2);
  EXPECT_EQ(page2.items(0).name(), "c14");

  req.set_page(3);
  v1::ListCampaignsResponse page3;
  ASSERT_TRUE(
      campaigns_->ListCampaigns(Ctx(kAdminKey).get(), req, &page3).ok());
  EXPECT_EQ(page3.items_size(), 5);
  EXPECT_FALSE(page3.has_more());
  EXPECT_TRUE(page3.next_page_token().empty());

  std::set<std::string> seen;
  for (const auto* p : {&page1, &page2, &page3}) {
    for (const v1::Campaign& c : p->items()) seen.insert(c.id());
  }
  EXPECT_EQ(seen.size(), 25u);

  v1::ListCampaignsRequest filtered;
  filtered.set_status(v1::Campaign::draft);
  filtered.set_channel(v1::sms);
  v1::ListCampaignsResponse drafts;
  ASSERT_TRUE(
      campaigns_->ListCampaigns(Ctx(kAdminKey).get(), filtered, &drafts).ok());
  EXPECT_EQ(drafts.total(), 25);
  filtered.set_status(v1::Campaign::sending);
  ASSERT_TRUE(
      campaigns_->ListCampaigns(Ctx(kAdminKey).get(), filtered, &drafts).ok());
  EXPECT_EQ(drafts.total(), 0);
  filtered.clear_status();
  filtered.set_channel(v1::email);
  ASSERT_TRUE(
      campaigns_->ListCampaigns(Ctx(kAdminKey).get(), filtered, &drafts).ok());
  EXPECT_EQ(drafts.total(), 0);
}

TEST_F(CampaignTest, UpdateWithoutMaskReplacesSetFieldsOnly) {
  v1::Campaign c = Create(CampaignRequest(sender_));
  v1::UpdateCampaignRequest req;
  req.set_id(c.id());
  req.set_name("Renamed");
  req.set_batch_size(500);
  v1::Campaign updated;
  ASSERT_TRUE(
      campaigns_->UpdateCampaign(Ctx(kAdminKey).get(), req, &updated).ok());
  EXPECT_EQ(updated.name(), "Renamed");
  EXPECT_EQ(updated.batch_size(), 500);
  EXPECT_EQ(updated.body(), c.body());
  EXPECT_EQ(updated.sender_id(), c.sender_id());
  EXPECT_GE(updated.updated_at().seconds(), c.updated_at().seconds());
  EXPECT_EQ(Get(c.id()).name(), "Renamed");
}

TEST_F(CampaignTest, UpdateWithMaskReplacesExactlyTheMaskedFields) {
  v1::CreateCampaignRequest create = CampaignRequest(sender_);
  create.mutable_schedule_at()->set_seconds(4102444800);
  create.add_tags("vip");
  v1::Campaign c = Create(create);
  v1::Template t = ApprovedTemplate(kAdminKey);

  v1::UpdateCampaignRequest req;
  req.set_id(c.id());
  req.set_template_id(t.id());
  req.set_name("ignored: not in the mask");
  req.mutable_update_mask()->add_paths("body");
  req.mutable_update_mask()->add_paths("template_id");
  req.mutable_update_mask()->add_paths("schedule_at");
  req.mutable_update_mask()->add_paths("contact_list_id");
  v1::Campaign updated;
  ASSERT_TRUE(
      campaigns_->UpdateCampaign(Ctx(kAdminKey).get(), req, &updated).ok());
  EXPECT_EQ(updated.name(), c.name());
  EXPECT_TRUE(updated.body().empty());
  EXPECT_EQ(updated.template_id(), t.id());
  EXPECT_EQ(updated.template_name(), t.name());
  EXPECT_FALSE(updated.has_schedule_at());
  // Setting the audience (here: clearing it) replaces the whole choice.
  EXPECT_EQ(updated.tags_size(), 0);
}

TEST_F(CampaignTest, DeleteRemovesTheCampaign) {
  v1::Campaign c = Create(CampaignRequest(sender_));
  v1::DeleteCampaignRequest del;
  del.set_id(c.id());
  google::protobuf::Empty empty;
  ASSERT_TRUE(
      campaigns_->DeleteCampaign(Ctx(kAdminKey).get(), del, &empty).ok());
  v1::GetCampaignRequest get;
  get.set_id(c.id());
  v1::Campaign out;
  EXPECT_EQ(
      campaigns_->GetCampaign(Ctx(kAdminKey).get(), get, &out).error_code(),
      grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(campaigns_->DeleteCampaign(Ctx(kAdminKey).get(), del, &empty)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(CampaignTest, TemplateAndSenderInUseCannotBeDeleted) {
  v1::Template t = ApprovedTemplate(kAdminKey);
  v1::CreateCampaignRequest req = CampaignRequest(sender_);
  req.clear_body();
  req.set_template_id(t.id());
  v1::Campaign c = Create(req);
  google::protobuf::Empty empty;
  v1::DeleteTemplateRequest dt;
  dt.set_id(t.id());
  ErrorDetails d =
      Details(templates_->DeleteTemplate(Ctx(kAdminKey).get(), dt, &empty));
  EXPECT_EQ(d.code, grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(d.reason, "VALIDATION_ERROR");
  v1::ListSendersResponse senders;
  ASSERT_TRUE(senders_->ListSenders(Ctx(kAdminKey).get(), {}, &senders).ok());
  v1::DeleteSenderRequest ds;
  ds.set_id(senders.items(0).id());
  EXPECT_EQ(
      senders_->DeleteSender(Ctx(kAdminKey).get(), ds, &empty).error_code(),
      grpc::StatusCode::FAILED_PRECONDITION);

  v1::DeleteCampaignRequest dc;
  dc.set_id(c.id());
  ASSERT_TRUE(
      campaigns_->DeleteCampaign(Ctx(kAdminKey).get(), dc, &empty).ok());
  EXPECT_TRUE(
      templates_->DeleteTemplate(Ctx(kAdminKey).get(), dt, &empty).ok());
  EXPECT_TRUE(senders_->DeleteSender(Ctx(kAdminKey).get(), ds, &empty).ok());
}

TEST_F(CampaignTest, TemplateContentChangeNeedsNewApproval) {
  v1::Template t = ApprovedTemplate(kAdminKey);
  EXPECT_EQ(t.status(), v1::Template::approved);
  EXPECT_EQ(t.placeholders_size(), 2);
  v1::UpdateTemplateRequest rename;
  rename.set_id(t.id());
  rename.set_name("renamed");
  v1::Template out;
  ASSERT_TRUE(
      templates_->UpdateTemplate(Ctx(kAdminKey).get(), rename, &out).ok());
  EXPECT_EQ(out.status(), v1::Template::approved);
  v1::UpdateTemplateRequest rebody;
  rebody.set_id(t.id());
  rebody.set_body("New text {{x}}");
  ASSERT_TRUE(
      templates_->UpdateTemplate(Ctx(kAdminKey).get(), rebody, &out).ok());
  EXPECT_EQ(out.status(), v1::Template::pending);
  ASSERT_EQ(out.placeholders_size(), 1);
  EXPECT_EQ(out.placeholders(0), "x");

  v1::SetTemplateStatusRequest reject;
  reject.set_id(t.id());
  reject.set_status(v1::Template::rejected);
  reject.set_rejection_reason("promotional content");
  ASSERT_TRUE(
      templates_->SetTemplateStatus(Ctx(kAdminKey).get(), reject, &out).ok());
  EXPECT_EQ(out.rejection_reason(), "promotional content");
  v1::ListTemplatesRequest filter;
  filter.set_status(v1::Template::rejected);
  v1::ListTemplatesResponse list;
  ASSERT_TRUE(
      templates_->ListTemplates(Ctx(kAdminKey).get(), filter, &list).ok());
  EXPECT_EQ(list.total(), 1);
}

TEST_F(CampaignTest, DataSurvivesARestart) {
  v1::Campaign c = Create(CampaignRequest(sender_));
  Restart();
  v1::Campaign after = Get(c.id());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(c, after));
}

}  // namespace
}  // namespace campaigns::testing
