// CampaignRepository's contract, on every engine (engines.h): creates that
// resolve sender, template, contact list, contact ids and recipient
// variables (and name what they refuse), channel inference, idempotent
// creates, tenancy, updates of draft and scheduled campaigns only, deletes
// (refused while sending, gone at once), listing filters, order and pages,
// totals, and create-and-start in one transaction (its reservation keeps
// the ledger identity; a refused start stores nothing). The chunked purge
// of a deleted campaign's rows and its resumption: tests/storage/
// store_test.cc and tests/postgres/campaign_store_test.cc (they look at
// rows); several instances at once: tests/postgres/campaign_store_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
#include "server/domain/rules.h"
#include "tests/conformance/engines.h"
#include "tests/storage/temp_db.h"
#include "tests/support/builders.h"

namespace campaigns::conformance {
namespace {

using storage::test_util::AwaitResult;
using storage::test_util::AwaitStatus;
using test_builders::ExpectError;
using test_builders::ExpectNotFound;
using test_builders::NewSender;
using test_builders::NewTemplate;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;
using ::testing::UnorderedElementsAreArray;

// Two accounts, alpha (a_) and beta (b_), each with an SMS sender.
class CampaignRepositoryTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    if (HasFatalFailure()) return;
    a_ = MustCreateAccount("alpha");
    b_ = MustCreateAccount("beta");
    ASSERT_FALSE(a_.empty());
    ASSERT_FALSE(b_.empty());
    sender_a_ = MustRegister(NewSender(a_, "+15550100"));
    sender_b_ = MustRegister(NewSender(b_, "+15550199"));
  }

  // --- Synchronous wrappers ------------------------------------------------

  absl::StatusOr<Campaign> Create(
      Campaign c, IdempotencyKey idem = {},
      std::optional<LifecycleChange> then = std::nullopt) {
    return AwaitResult<Campaign>([&](Done<Campaign> done) {
      campaigns().CreateCampaign(std::move(c), std::move(idem), std::move(done),
                                 std::move(then));
    });
  }
  Campaign MustCreate(Campaign c) {
    absl::StatusOr<Campaign> out = Create(std::move(c));
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : Campaign{};
  }
  absl::StatusOr<Campaign> Update(
      const std::string& account, const std::string& id,
      std::function<absl::Status(Campaign&)> mutate) {
    return AwaitResult<Campaign>([&](Done<Campaign> done) {
      campaigns().UpdateCampaign(account, id, std::move(mutate),
                                 std::move(done));
    });
  }
  absl::Status Delete(const std::string& account, const std::string& id) {
    return AwaitStatus([&](StatusDone done) {
      campaigns().DeleteCampaign(account, id, std::move(done));
    });
  }
  // Sets a campaign's status directly (UpdateCampaign's mutate runs before
  // validation), from an editable state.
  void ForceStatus(const std::string& account, const std::string& id,
                   CampaignStatus status) {
    absl::StatusOr<Campaign> c = Update(account, id, [status](Campaign& c) {
      c.status = status;
      return absl::OkStatus();
    });
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_EQ(c->status, status);
  }

  Sender MustRegister(Sender s) {
    absl::StatusOr<Sender> out = AwaitResult<Sender>([&](Done<Sender> done) {
      senders().RegisterSender(std::move(s), {}, std::move(done));
    });
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : Sender{};
  }
  Template MustCreate(Template t) {
    absl::StatusOr<Template> out =
        AwaitResult<Template>([&](Done<Template> done) {
          templates().CreateTemplate(std::move(t), {}, std::move(done));
        });
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : Template{};
  }
  Contact MustCreateContact(const std::string& account,
                            const std::string& address,
                            Channel channel = Channel::kSms,
                            std::vector<std::string> tags = {}) {
    Contact c;
    c.id = NewId(kContactPrefix);
    c.account_id = account;
    c.channel = channel;
    c.address = address;
    c.attributes = {{"name", "Ada"}};
    c.tags = std::move(tags);
    c.created_at = c.updated_at = NowMicros();
    absl::StatusOr<Contact> out = AwaitResult<Contact>([&](Done<Contact> done) {
      contacts().CreateContact(std::move(c), {}, std::move(done));
    });
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : Contact{};
  }
  ContactList MustCreateList(const std::string& account) {
    ContactList l;
    l.id = NewId(kContactListPrefix);
    l.account_id = account;
    l.name = "list";
    l.created_at = l.updated_at = NowMicros();
    absl::StatusOr<ContactList> out =
        AwaitResult<ContactList>([&](Done<ContactList> done) {
          contacts().CreateContactList(std::move(l), {}, std::move(done));
        });
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : ContactList{};
  }

  static Campaign NewCampaign(const std::string& account,
                              const std::string& sender_id,
                              Channel channel = Channel::kSms) {
    Campaign c;
    c.id = NewId(kCampaignPrefix);
    c.account_id = account;
    c.name = "Spring sale";
    c.channel = channel;
    c.sender_id = sender_id;
    c.body = "Hi {{name}}";
    c.created_at = c.updated_at = NowMicros();
    return c;
  }

  static LifecycleChange StartNow(std::optional<absl::Time> send_at = {}) {
    LifecycleChange change;
    change.event = CampaignEvent::kStart;
    change.now = NowMicros();
    change.send_at = send_at;
    return change;
  }

  // Campaigns of every account (CountCampaigns), deleted ones left out.
  int64_t CountAll() {
    absl::StatusOr<CampaignTotals> totals = campaigns().CountCampaigns();
    EXPECT_TRUE(totals.ok()) << totals.status();
    int64_t n = 0;
    if (totals.ok()) {
      for (const auto& [status, count] : totals->by_status) n += count;
    }
    return n;
  }

  std::vector<std::string> CampaignIds(const std::string& account,
                                       const CampaignFilter& filter) {
    PageRequest all;
    all.limit = 100;
    absl::StatusOr<Page<Campaign>> page =
        campaigns().ListCampaigns(account, filter, all);
    EXPECT_TRUE(page.ok()) << page.status();
    std::vector<std::string> ids;
    if (page.ok()) {
      for (const Campaign& c : page->items) ids.push_back(c.id);
    }
    return ids;
  }

  Account MustGetAccount(const std::string& id) {
    absl::StatusOr<Account> a = accounts().GetAccount(id);
    EXPECT_TRUE(a.ok()) << a.status();
    return a.ok() ? *a : Account{};
  }

  std::string a_;
  std::string b_;
  Sender sender_a_;
  Sender sender_b_;
};

// --- Create: references
// -------------------------------------------------------

TEST_P(CampaignRepositoryTest, CreateResolvesSenderByVisibleIdAndKeepsFields) {
  Campaign c = NewCampaign(a_, "+15550100");
  c.variable_mapping = {{"name", "first_name"}};
  c.tags = {"vip", "beta"};
  c.batch_size = 250;
  c.batch_delay = absl::Seconds(2);
  c.rate_limit_per_second = 7;
  c.validity_period = absl::Hours(1);
  c.max_lateness = absl::Minutes(10);
  c.schedule_at = absl::FromUnixSeconds(1900000000);
  Campaign created = MustCreate(c);
  EXPECT_EQ(created.sender_ref, sender_a_.id);
  EXPECT_EQ(created.sender_id, "+15550100");
  EXPECT_EQ(created.status, CampaignStatus::kDraft);

  absl::StatusOr<Campaign> got = campaigns().GetCampaign(a_, c.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->account_id, a_);
  EXPECT_EQ(got->name, "Spring sale");
  EXPECT_EQ(got->channel, Channel::kSms);
  EXPECT_EQ(got->sender_id, "+15550100");
  EXPECT_EQ(got->sender_ref, sender_a_.id);
  EXPECT_EQ(got->body, "Hi {{name}}");
  EXPECT_EQ(got->status, CampaignStatus::kDraft);
  EXPECT_THAT(got->variable_mapping, ElementsAre(Pair("name", "first_name")));
  EXPECT_THAT(got->tags, ElementsAre("vip", "beta"));
  EXPECT_EQ(got->batch_size, 250);
  EXPECT_EQ(got->batch_delay, absl::Seconds(2));
  EXPECT_EQ(got->rate_limit_per_second, 7);
  EXPECT_EQ(got->validity_period, absl::Hours(1));
  EXPECT_EQ(got->max_lateness, absl::Minutes(10));
  EXPECT_EQ(got->schedule_at, absl::FromUnixSeconds(1900000000));
  EXPECT_EQ(got->created_at, c.created_at);
  EXPECT_FALSE(got->started_at.has_value());
  EXPECT_EQ(got->stats.total, 0);
  EXPECT_EQ(got->credits_reserved, 0);
}

TEST_P(CampaignRepositoryTest, CreateResolvesSenderBySndId) {
  Campaign created = MustCreate(NewCampaign(a_, sender_a_.id));
  EXPECT_EQ(created.sender_id, "+15550100");
  EXPECT_EQ(created.sender_ref, sender_a_.id);
  absl::StatusOr<Campaign> got = campaigns().GetCampaign(a_, created.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->sender_id, "+15550100");
  EXPECT_EQ(got->sender_ref, sender_a_.id);
}

TEST_P(CampaignRepositoryTest, CreateWithUnmatchedSenderIsValidationError) {
  Sender wa = MustRegister(NewSender(a_, "ACME", Channel::kWhatsapp));
  struct Case {
    const char* what;
    std::string sender_id;
  };
  const Case kCases[] = {
      {"unregistered", "+15559999"},
      {"other channel by visible id", "ACME"},
      {"other channel by snd_ id", wa.id},
      {"other account by visible id", "+15550199"},
      {"other account by snd_ id", sender_b_.id},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.what);
    ExpectError(Create(NewCampaign(a_, c.sender_id)).status(),
                absl::StatusCode::kFailedPrecondition, "VALIDATION_ERROR",
                "sender_id");
  }
  EXPECT_EQ(CountAll(), 0);
}

TEST_P(CampaignRepositoryTest, CreateInfersTheChannelFromSenderOrTemplate) {
  MustRegister(NewSender(a_, "ACME", Channel::kWhatsapp));
  Campaign by_sender = NewCampaign(a_, "ACME", Channel::kUnspecified);
  Campaign created = MustCreate(by_sender);
  EXPECT_EQ(created.channel, Channel::kWhatsapp);

  Template t = MustCreate(NewTemplate(a_, "wa", Channel::kWhatsapp));
  Campaign by_template = NewCampaign(a_, "ACME", Channel::kUnspecified);
  by_template.body.clear();
  by_template.template_id = t.id;
  created = MustCreate(by_template);
  EXPECT_EQ(created.channel, Channel::kWhatsapp);
  EXPECT_EQ(created.template_name, "wa");

  // Unregistered: the sender is named; on two channels: the channel is
  // required.
  ExpectError(Create(NewCampaign(a_, "NOBODY", Channel::kUnspecified)).status(),
              absl::StatusCode::kFailedPrecondition, "VALIDATION_ERROR",
              "sender_id");
  MustRegister(NewSender(a_, "ACME", Channel::kSms));
  ExpectError(Create(NewCampaign(a_, "ACME", Channel::kUnspecified)).status(),
              absl::StatusCode::kInvalidArgument, "INVALID_REQUEST", "channel");
  // An unknown template decides nothing.
  Campaign unknown = NewCampaign(a_, "ACME", Channel::kUnspecified);
  unknown.body.clear();
  unknown.template_id = "tmpl_missing";
  ExpectNotFound(Create(unknown).status());
  EXPECT_EQ(CountAll(), 2);
}

TEST_P(CampaignRepositoryTest, CreateChecksTheTemplate) {
  Template pending = MustCreate(
      NewTemplate(a_, "pending", Channel::kSms, TemplateStatus::kPending));
  Template rejected = MustCreate(
      NewTemplate(a_, "rejected", Channel::kSms, TemplateStatus::kRejected));
  Template whatsapp = MustCreate(NewTemplate(a_, "wa", Channel::kWhatsapp));
  Template of_b = MustCreate(NewTemplate(b_, "b's"));
  struct Case {
    const char* what;
    std::string template_id;
    absl::StatusCode code;
    const char* reason;
    const char* field;
  };
  const Case kCases[] = {
      {"pending", pending.id, absl::StatusCode::kFailedPrecondition,
       "VALIDATION_ERROR", "template_id"},
      {"rejected", rejected.id, absl::StatusCode::kFailedPrecondition,
       "VALIDATION_ERROR", "template_id"},
      {"other channel", whatsapp.id, absl::StatusCode::kFailedPrecondition,
       "VALIDATION_ERROR", "template_id"},
      {"unknown", "tmpl_missing", absl::StatusCode::kNotFound, "NOT_FOUND", ""},
      {"other account", of_b.id, absl::StatusCode::kNotFound, "NOT_FOUND", ""},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.what);
    Campaign campaign = NewCampaign(a_, "+15550100");
    campaign.body.clear();
    campaign.template_id = c.template_id;
    ExpectError(Create(campaign).status(), c.code, c.reason, c.field);
  }
  EXPECT_EQ(CountAll(), 0);
}

TEST_P(CampaignRepositoryTest, CreateWithApprovedTemplateCopiesItsName) {
  Template t = MustCreate(NewTemplate(a_, "approved", Channel::kSms,
                                      TemplateStatus::kApproved, "en_GB"));
  Campaign c = NewCampaign(a_, "+15550100");
  c.body.clear();
  c.template_id = t.id;
  Campaign created = MustCreate(c);
  EXPECT_EQ(created.template_name, "approved");
  EXPECT_EQ(created.template_lang, "en_GB");
  absl::StatusOr<Campaign> got = campaigns().GetCampaign(a_, c.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->template_id, t.id);
  EXPECT_EQ(got->template_name, "approved");
  EXPECT_EQ(got->template_lang, "en_GB");
}

TEST_P(CampaignRepositoryTest,
       EmailCampaignsNeedASubjectOfTheirOwnOrTemplates) {
  MustRegister(NewSender(a_, "news@example.com", Channel::kEmail));
  Template with = NewTemplate(a_, "with subject", Channel::kEmail);
  with.subject = "Hello {{name}}";
  with.html_body = "<p>Hello {{name}}</p>";
  with = MustCreate(with);
  Template without =
      MustCreate(NewTemplate(a_, "without subject", Channel::kEmail));

  Campaign bare = NewCampaign(a_, "news@example.com", Channel::kEmail);
  ExpectError(Create(bare).status(), absl::StatusCode::kFailedPrecondition,
              "VALIDATION_ERROR", "subject");
  Campaign no_subject = NewCampaign(a_, "news@example.com");
  no_subject.channel = Channel::kUnspecified;
  no_subject.body.clear();
  no_subject.template_id = without.id;
  ExpectError(Create(no_subject).status(),
              absl::StatusCode::kFailedPrecondition, "VALIDATION_ERROR",
              "subject");
  EXPECT_EQ(CountAll(), 0);

  Campaign own = bare;
  own.subject = "Spring sale for {{name}}";
  own.html_body = "<b>Spring</b>";
  MustCreate(own);
  absl::StatusOr<Campaign> got = campaigns().GetCampaign(a_, own.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->subject, "Spring sale for {{name}}");
  EXPECT_EQ(got->html_body, "<b>Spring</b>");

  Campaign templated = no_subject;
  templated.id = NewId(kCampaignPrefix);
  templated.template_id = with.id;
  Campaign created = MustCreate(templated);
  EXPECT_EQ(created.channel, Channel::kEmail);
  EXPECT_EQ(created.subject, "");

  // Clearing the subject of a campaign without a template's is refused.
  ExpectError(Update(a_, own.id,
                     [](Campaign& c) {
                       c.subject.clear();
                       return absl::OkStatus();
                     })
                  .status(),
              absl::StatusCode::kFailedPrecondition, "VALIDATION_ERROR",
              "subject");
  got = campaigns().GetCampaign(a_, own.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->subject, "Spring sale for {{name}}");
}

TEST_P(CampaignRepositoryTest, OtherChannelsRefuseASubjectOrHtmlBody) {
  Campaign subject = NewCampaign(a_, "+15550100");
  subject.subject = "Hello";
  ExpectError(Create(subject).status(), absl::StatusCode::kFailedPrecondition,
              "VALIDATION_ERROR", "subject");
  // Also when the sender decides the channel.
  Campaign html = NewCampaign(a_, "+15550100", Channel::kUnspecified);
  html.html_body = "<p>Hi</p>";
  ExpectError(Create(html).status(), absl::StatusCode::kFailedPrecondition,
              "VALIDATION_ERROR", "html_body");
  EXPECT_EQ(CountAll(), 0);
}

TEST_P(CampaignRepositoryTest, CreateChecksTheContactList) {
  Campaign unknown = NewCampaign(a_, "+15550100");
  unknown.contact_list_id = "cl_missing";
  ExpectNotFound(Create(unknown).status());
  // A list of account B is not A's either; A's own list works.
  ContactList of_b = MustCreateList(b_);
  Campaign with_b = NewCampaign(a_, "+15550100");
  with_b.contact_list_id = of_b.id;
  ExpectNotFound(Create(with_b).status());
  ContactList of_a = MustCreateList(a_);
  Campaign with_a = NewCampaign(a_, "+15550100");
  with_a.contact_list_id = of_a.id;
  Campaign created = MustCreate(with_a);
  EXPECT_EQ(created.contact_list_id, of_a.id);
  EXPECT_EQ(CountAll(), 1);
}

TEST_P(CampaignRepositoryTest, CreateChecksContactIdsAndRecipientVariables) {
  Contact mine = MustCreateContact(a_, "+12025550001");
  Contact mine_wa = MustCreateContact(a_, "+12025550002", Channel::kWhatsapp);
  Contact theirs = MustCreateContact(b_, "+12025550003");

  // contact_ids: the first that is not the account's contact, named.
  Campaign ids = NewCampaign(a_, "+15550100");
  ids.contact_ids = {mine.id, theirs.id, "ct_missing"};
  absl::Status refused = Create(ids).status();
  ExpectNotFound(refused);
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr(theirs.id));
  ids.contact_ids = {mine.id, "ct_missing"};
  refused = Create(ids).status();
  ExpectNotFound(refused);
  EXPECT_THAT(std::string(refused.message()),
              ::testing::HasSubstr("ct_missing"));

  // recipient_variables: contacts of the account on the campaign's channel.
  for (const std::string& other : {mine_wa.id, theirs.id}) {
    SCOPED_TRACE(other);
    Campaign vars = NewCampaign(a_, "+15550100");
    vars.contact_ids = {mine.id};
    vars.recipient_variables = {{mine.id, {{"name", "A"}}},
                                {other, {{"name", "B"}}}};
    refused = Create(vars).status();
    ExpectNotFound(refused);
    EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr(other));
  }
  EXPECT_EQ(CountAll(), 0);

  Campaign good = NewCampaign(a_, "+15550100");
  good.contact_ids = {mine.id};
  good.recipient_variables = {{mine.id, {{"name", "A"}}}};
  Campaign created = MustCreate(good);
  EXPECT_THAT(created.contact_ids, ElementsAre(mine.id));
  absl::StatusOr<Campaign> got = campaigns().GetCampaign(a_, good.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(got->recipient_variables,
              ElementsAre(Pair(mine.id, ElementsAre(Pair("name", "A")))));
}

// --- Tenancy
// ------------------------------------------------------------------

TEST_P(CampaignRepositoryTest, CampaignsOfAnotherAccountAreNotFound) {
  Campaign c = MustCreate(NewCampaign(a_, "+15550100"));
  ExpectNotFound(campaigns().GetCampaign(b_, c.id).status());
  ExpectNotFound(campaigns().GetCampaign("", c.id).status());
  ExpectNotFound(Update(b_, c.id, [](Campaign& x) {
                   x.name = "hijacked";
                   return absl::OkStatus();
                 }).status());
  ExpectNotFound(Delete(b_, c.id));
  ExpectNotFound(Delete("", c.id));
  EXPECT_THAT(CampaignIds(b_, {}), IsEmpty());
  CampaignFilter by_sender;
  by_sender.sender_id = sender_a_.id;
  EXPECT_THAT(CampaignIds(b_, by_sender), IsEmpty());

  absl::StatusOr<Campaign> still = campaigns().GetCampaign(a_, c.id);
  ASSERT_TRUE(still.ok()) << still.status();
  EXPECT_EQ(still->name, "Spring sale");
  EXPECT_THAT(CampaignIds(a_, {}), ElementsAre(c.id));
}

TEST_P(CampaignRepositoryTest, UnknownCampaignIsNotFound) {
  ExpectNotFound(campaigns().GetCampaign(a_, "cmp_missing").status());
  ExpectNotFound(Update(a_, "cmp_missing", [](Campaign&) {
                   return absl::OkStatus();
                 }).status());
  ExpectNotFound(Delete(a_, "cmp_missing"));
}

// --- Idempotency
// --------------------------------------------------------------

TEST_P(CampaignRepositoryTest, SameRequestIdAndBodyReturnsTheFirstCampaign) {
  IdempotencyKey idem{"CreateCampaign", "req-42", "body-hash-1"};
  absl::StatusOr<Campaign> first = Create(NewCampaign(a_, "+15550100"), idem);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<Campaign> repeat =
      Create(NewCampaign(a_, "+15550100"), idem);  // a new cmp_ id
  ASSERT_TRUE(repeat.ok()) << repeat.status();
  EXPECT_EQ(repeat->id, first->id);
  EXPECT_EQ(repeat->sender_ref, sender_a_.id);
  EXPECT_EQ(CountAll(), 1);
}

TEST_P(CampaignRepositoryTest, SameRequestIdWithAnotherBodyIsConflict) {
  IdempotencyKey idem{"CreateCampaign", "req-42", "body-hash-1"};
  ASSERT_TRUE(Create(NewCampaign(a_, "+15550100"), idem).ok());
  idem.body_hash = "body-hash-2";
  ExpectError(Create(NewCampaign(a_, "+15550100"), idem).status(),
              absl::StatusCode::kAlreadyExists, "IDEMPOTENCY_CONFLICT",
              "request_id");
  EXPECT_EQ(CountAll(), 1);
}

TEST_P(CampaignRepositoryTest, RequestIdsAreScopedByAccountAndMethod) {
  IdempotencyKey idem{"CreateCampaign", "req-42", "body-hash-1"};
  absl::StatusOr<Campaign> in_a = Create(NewCampaign(a_, "+15550100"), idem);
  ASSERT_TRUE(in_a.ok()) << in_a.status();
  IdempotencyKey idem_b = idem;
  idem_b.body_hash = "body-hash-of-b";
  absl::StatusOr<Campaign> in_b = Create(NewCampaign(b_, "+15550199"), idem_b);
  ASSERT_TRUE(in_b.ok()) << in_b.status();
  EXPECT_NE(in_b->id, in_a->id);
  EXPECT_EQ(in_b->account_id, b_);
  IdempotencyKey template_idem{"CreateTemplate", "req-42", "t-hash"};
  EXPECT_TRUE(AwaitResult<Template>([&](Done<Template> done) {
                templates().CreateTemplate(NewTemplate(a_, "t"), template_idem,
                                           std::move(done));
              }).ok());
  EXPECT_EQ(CountAll(), 2);
}

TEST_P(CampaignRepositoryTest, FailedCreateDoesNotConsumeTheRequestId) {
  IdempotencyKey idem{"CreateCampaign", "req-retry", "h"};
  ExpectError(Create(NewCampaign(a_, "+15551234"), idem).status(),
              absl::StatusCode::kFailedPrecondition, "VALIDATION_ERROR",
              "sender_id");
  MustRegister(NewSender(a_, "+15551234"));
  absl::StatusOr<Campaign> retry = Create(NewCampaign(a_, "+15551234"), idem);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(CountAll(), 1);
}

// --- Update and delete
// --------------------------------------------------------

TEST_P(CampaignRepositoryTest, UpdateAppliesValidatesAndResolves) {
  Campaign c = MustCreate(NewCampaign(a_, "+15550100"));
  Sender other = MustRegister(NewSender(a_, "+15550111"));
  absl::StatusOr<Campaign> updated = Update(a_, c.id, [&](Campaign& x) {
    x.name = "Summer sale";
    x.sender_id = other.id;
    return absl::OkStatus();
  });
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->sender_id, "+15550111");
  EXPECT_EQ(updated->sender_ref, other.id);
  absl::StatusOr<Campaign> got = campaigns().GetCampaign(a_, c.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->name, "Summer sale");
  EXPECT_EQ(got->sender_ref, other.id);
  EXPECT_GE(got->updated_at, c.updated_at);

  // Invalid shape, unregistered sender, and a mutate error change nothing.
  ExpectError(Update(a_, c.id,
                     [](Campaign& x) {
                       x.batch_size = 0;
                       return absl::OkStatus();
                     })
                  .status(),
              absl::StatusCode::kInvalidArgument, "INVALID_REQUEST",
              "batch_size");
  ExpectError(Update(a_, c.id,
                     [](Campaign& x) {
                       x.sender_id = "+15559999";
                       return absl::OkStatus();
                     })
                  .status(),
              absl::StatusCode::kFailedPrecondition, "VALIDATION_ERROR",
              "sender_id");
  ExpectError(
      Update(a_, c.id,
             [](Campaign&) {
               return errors::InvalidField("update_mask", "unknown path");
             })
          .status(),
      absl::StatusCode::kInvalidArgument, "INVALID_REQUEST", "update_mask");
  got = campaigns().GetCampaign(a_, c.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->name, "Summer sale");
  EXPECT_EQ(got->batch_size, kDefaultBatchSize);
  EXPECT_EQ(got->sender_id, "+15550111");
}

TEST_P(CampaignRepositoryTest, ScheduledCampaignIsEditable) {
  Campaign c = MustCreate(NewCampaign(a_, "+15550100"));
  ForceStatus(a_, c.id, CampaignStatus::kScheduled);
  absl::StatusOr<Campaign> updated = Update(a_, c.id, [](Campaign& x) {
    x.name = "Rescheduled";
    return absl::OkStatus();
  });
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->status, CampaignStatus::kScheduled);
  EXPECT_EQ(updated->name, "Rescheduled");
}

TEST_P(CampaignRepositoryTest, NonEditableCampaignRefusesUpdate) {
  for (CampaignStatus status :
       {CampaignStatus::kSending, CampaignStatus::kPaused,
        CampaignStatus::kSent, CampaignStatus::kCompleted,
        CampaignStatus::kCancelled, CampaignStatus::kFailed}) {
    SCOPED_TRACE(CampaignStatusName(status));
    Campaign c = MustCreate(NewCampaign(a_, "+15550100"));
    ForceStatus(a_, c.id, status);
    ExpectError(Update(a_, c.id,
                       [](Campaign& x) {
                         x.name = "too late";
                         return absl::OkStatus();
                       })
                    .status(),
                absl::StatusCode::kFailedPrecondition, "ILLEGAL_TRANSITION");
    absl::StatusOr<Campaign> got = campaigns().GetCampaign(a_, c.id);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->name, "Spring sale");
    EXPECT_EQ(got->status, status);
  }
}

TEST_P(CampaignRepositoryTest, DeleteRefusesSendingOnlyAndThenItIsGone) {
  Campaign sending = MustCreate(NewCampaign(a_, "+15550100"));
  ForceStatus(a_, sending.id, CampaignStatus::kSending);
  ExpectError(Delete(a_, sending.id), absl::StatusCode::kFailedPrecondition,
              "ILLEGAL_TRANSITION");
  EXPECT_TRUE(campaigns().GetCampaign(a_, sending.id).ok());

  for (CampaignStatus status :
       {CampaignStatus::kDraft, CampaignStatus::kScheduled,
        CampaignStatus::kPaused, CampaignStatus::kCompleted,
        CampaignStatus::kCancelled, CampaignStatus::kFailed}) {
    SCOPED_TRACE(CampaignStatusName(status));
    Campaign c = MustCreate(NewCampaign(a_, "+15550100"));
    if (status != CampaignStatus::kDraft) ForceStatus(a_, c.id, status);
    EXPECT_TRUE(Delete(a_, c.id).ok());
    // Gone for every read at once, and for every write.
    ExpectNotFound(campaigns().GetCampaign(a_, c.id).status());
    EXPECT_THAT(CampaignIds(a_, {}), ::testing::Not(::testing::Contains(c.id)));
    ExpectNotFound(
        Update(a_, c.id, [](Campaign&) { return absl::OkStatus(); }).status());
    ExpectNotFound(Delete(a_, c.id));
  }
  EXPECT_EQ(CountAll(), 1);  // the sending one
  EXPECT_THAT(CampaignIds(a_, {}), ElementsAre(sending.id));
}

TEST_P(CampaignRepositoryTest, ResumeDeletionsFindsNothingOnAFreshDatabase) {
  absl::StatusOr<int> resumed = campaigns().ResumeCampaignDeletions();
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(*resumed, 0);
}

TEST_P(CampaignRepositoryTest, ResumedDeletionsStayGone) {
  Contact ct = MustCreateContact(a_, "+12025550001");
  Campaign c = NewCampaign(a_, "+15550100");
  c.contact_ids = {ct.id};
  c = MustCreate(c);
  ASSERT_TRUE(AwaitResult<MaterializeResult>([&](Done<MaterializeResult> d) {
                contacts().MaterializeAudience(a_, c.id, std::move(d));
              }).ok());
  ASSERT_TRUE(Delete(a_, c.id).ok());
  // However far the background purge got: at most this one to resume, and
  // the campaign stays gone.
  absl::StatusOr<int> resumed = campaigns().ResumeCampaignDeletions();
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_LE(*resumed, 1);
  ExpectNotFound(campaigns().GetCampaign(a_, c.id).status());
  EXPECT_EQ(CountAll(), 0);
}

TEST_P(CampaignRepositoryTest, TemplateInUseByLiveCampaignCannotBeDeleted) {
  Template t = MustCreate(NewTemplate(a_, "in-use"));
  Campaign c = NewCampaign(a_, "+15550100");
  c.body.clear();
  c.template_id = t.id;
  MustCreate(c);
  auto delete_template = [&] {
    return AwaitStatus([&](StatusDone done) {
      templates().DeleteTemplate(a_, t.id, std::move(done));
    });
  };
  ExpectError(delete_template(), absl::StatusCode::kFailedPrecondition,
              "VALIDATION_ERROR");
  ForceStatus(a_, c.id, CampaignStatus::kCancelled);  // final now
  EXPECT_TRUE(delete_template().ok());
}

TEST_P(CampaignRepositoryTest, SenderInUseByLiveCampaignCannotBeDeleted) {
  Sender s = MustRegister(NewSender(a_, "+15550122"));
  Campaign c = MustCreate(NewCampaign(a_, "+15550122"));
  ForceStatus(a_, c.id, CampaignStatus::kScheduled);
  auto delete_sender = [&] {
    return AwaitStatus([&](StatusDone done) {
      senders().DeleteSender(a_, s.id, std::move(done));
    });
  };
  ExpectError(delete_sender(), absl::StatusCode::kFailedPrecondition,
              "VALIDATION_ERROR");
  ForceStatus(a_, c.id, CampaignStatus::kFailed);  // final now
  EXPECT_TRUE(delete_sender().ok());
}

// --- Listing and totals
// -------------------------------------------------------

TEST_P(CampaignRepositoryTest, ListFilters) {
  Sender second = MustRegister(NewSender(a_, "+15550133"));
  Sender wa = MustRegister(NewSender(a_, "ACME", Channel::kWhatsapp));
  Campaign c1 = MustCreate(NewCampaign(a_, "+15550100"));
  Campaign c2 = MustCreate(NewCampaign(a_, second.id));
  Campaign c3 = MustCreate(NewCampaign(a_, "ACME", Channel::kWhatsapp));
  ForceStatus(a_, c2.id, CampaignStatus::kScheduled);
  MustCreate(NewCampaign(b_, "+15550199"));  // never listed for A

  EXPECT_THAT(CampaignIds(a_, {}), UnorderedElementsAre(c1.id, c2.id, c3.id));
  CampaignFilter f;
  f.status = CampaignStatus::kScheduled;
  EXPECT_THAT(CampaignIds(a_, f), ElementsAre(c2.id));
  f.status = CampaignStatus::kDraft;
  EXPECT_THAT(CampaignIds(a_, f), UnorderedElementsAre(c1.id, c3.id));
  f = {};
  f.channel = Channel::kWhatsapp;
  EXPECT_THAT(CampaignIds(a_, f), ElementsAre(c3.id));
  f.channel = Channel::kEmail;
  EXPECT_THAT(CampaignIds(a_, f), IsEmpty());
  f = {};
  f.sender_id = "+15550100";  // visible id
  EXPECT_THAT(CampaignIds(a_, f), ElementsAre(c1.id));
  f.sender_id = sender_a_.id;  // snd_ id
  EXPECT_THAT(CampaignIds(a_, f), ElementsAre(c1.id));
  f.sender_id = "+15550133";  // created by snd_ id, found by visible id
  EXPECT_THAT(CampaignIds(a_, f), ElementsAre(c2.id));
  f.sender_id = wa.id;
  EXPECT_THAT(CampaignIds(a_, f), ElementsAre(c3.id));
  f = {};
  f.status = CampaignStatus::kDraft;
  f.channel = Channel::kSms;
  EXPECT_THAT(CampaignIds(a_, f), ElementsAre(c1.id));
}

TEST_P(CampaignRepositoryTest, ListPages) {
  std::vector<std::string> all;
  for (int i = 0; i < 5; ++i) {
    all.push_back(MustCreate(NewCampaign(a_, "+15550100")).id);
  }
  std::vector<std::string> seen;
  const bool want_more[] = {true, true, false};
  const size_t want_size[] = {2, 2, 1};
  for (int p = 1; p <= 3; ++p) {
    SCOPED_TRACE(p);
    PageRequest req;
    req.page = p;
    req.limit = 2;
    absl::StatusOr<Page<Campaign>> page =
        campaigns().ListCampaigns(a_, CampaignFilter{}, req);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_EQ(page->total, 5);
    EXPECT_EQ(page->page, p);
    EXPECT_EQ(page->limit, 2);
    EXPECT_EQ(page->has_more, want_more[p - 1]);
    ASSERT_EQ(page->items.size(), want_size[p - 1]);
    for (const Campaign& c : page->items) seen.push_back(c.id);
  }
  EXPECT_THAT(seen, UnorderedElementsAreArray(all));

  PageRequest beyond;
  beyond.page = 4;
  beyond.limit = 2;
  absl::StatusOr<Page<Campaign>> empty =
      campaigns().ListCampaigns(a_, CampaignFilter{}, beyond);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_THAT(empty->items, IsEmpty());
  EXPECT_EQ(empty->total, 5);
  EXPECT_FALSE(empty->has_more);
}

TEST_P(CampaignRepositoryTest, ListNewestFirstThenIdDescending) {
  Campaign older = NewCampaign(a_, "+15550100");
  older.created_at = absl::FromUnixSeconds(1600000000);
  Campaign newer = NewCampaign(a_, "+15550100");
  newer.created_at = absl::FromUnixSeconds(1700000000);
  // Ties in time: by id, descending, in byte order.
  Campaign tie_upper = NewCampaign(a_, "+15550100");
  tie_upper.id = "cmp_Z";
  tie_upper.created_at = absl::FromUnixSeconds(1650000000);
  Campaign tie_lower = tie_upper;
  tie_lower.id = "cmp_a";
  MustCreate(older);
  MustCreate(tie_upper);
  MustCreate(newer);
  MustCreate(tie_lower);
  EXPECT_THAT(CampaignIds(a_, {}),
              ElementsAre(newer.id, "cmp_a", "cmp_Z", older.id));
}

TEST_P(CampaignRepositoryTest, CountCampaignsByStatusOverEveryAccount) {
  absl::StatusOr<CampaignTotals> empty = campaigns().CountCampaigns();
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_THAT(empty->by_status, IsEmpty());
  EXPECT_EQ(empty->queued, 0);

  Contact one = MustCreateContact(a_, "+12025550001");
  Contact two = MustCreateContact(a_, "+12025550002");
  Campaign with = NewCampaign(a_, "+15550100");
  with.contact_ids = {one.id, two.id};
  with = MustCreate(with);
  ASSERT_TRUE(AwaitResult<MaterializeResult>([&](Done<MaterializeResult> d) {
                contacts().MaterializeAudience(a_, with.id, std::move(d));
              }).ok());
  MustCreate(NewCampaign(b_, "+15550199"));
  Campaign scheduled = MustCreate(NewCampaign(b_, "+15550199"));
  ForceStatus(b_, scheduled.id, CampaignStatus::kScheduled);
  Campaign deleted = MustCreate(NewCampaign(b_, "+15550199"));
  ASSERT_TRUE(Delete(b_, deleted.id).ok());

  absl::StatusOr<CampaignTotals> totals = campaigns().CountCampaigns();
  ASSERT_TRUE(totals.ok()) << totals.status();
  EXPECT_THAT(totals->by_status,
              UnorderedElementsAre(Pair("draft", 2), Pair("scheduled", 1)));
  EXPECT_EQ(totals->queued, 2);
}

// --- Create and start in one transaction -----------------------------------

TEST_P(CampaignRepositoryTest, CreateAndStartMaterialisesTheContactAudience) {
  ContactList list = MustCreateList(a_);
  std::vector<std::string> ids;
  for (const char* address : {"+12025550001", "+12025550002", "+12025550003"}) {
    ids.push_back(MustCreateContact(a_, address).id);
  }
  ASSERT_TRUE(
      AwaitResult<ListMembershipChange>([&](Done<ListMembershipChange> done) {
        contacts().AddContactsToList(a_, list.id, ids, std::move(done));
      }).ok());
  Suppression stop;
  stop.account_id = a_;
  stop.address = "+12025550003";
  stop.channel = Channel::kSms;
  stop.reason = SuppressionReason::kManual;
  stop.created_at = NowMicros();
  ASSERT_TRUE(AwaitResult<Suppression>([&](Done<Suppression> done) {
                suppressions().AddSuppression(stop, std::move(done));
              }).ok());

  Campaign c = NewCampaign(a_, "+15550100");
  c.contact_list_id = list.id;
  const LifecycleChange start = StartNow();
  absl::StatusOr<Campaign> started = Create(c, {}, start);
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(started->status, CampaignStatus::kSending);
  EXPECT_EQ(started->stats.total, 2);
  EXPECT_EQ(started->stats.queued, 2);
  EXPECT_EQ(started->started_at, start.now);
  EXPECT_EQ(started->credits_reserved, 0);  // no prices: free

  absl::StatusOr<Campaign> got = campaigns().GetCampaign(a_, c.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->status, CampaignStatus::kSending);
  EXPECT_EQ(got->stats.total, 2);
  EXPECT_EQ(got->stats.queued, 2);
  EXPECT_EQ(got->started_at, start.now);
  // Sending: it cannot be deleted now.
  ExpectError(Delete(a_, c.id), absl::StatusCode::kFailedPrecondition,
              "ILLEGAL_TRANSITION");

  // With a send_at in the future it is scheduled instead.
  Campaign later = NewCampaign(a_, "+15550100");
  later.contact_ids = {ids[0]};
  const absl::Time at = NowMicros() + absl::Hours(1);
  absl::StatusOr<Campaign> scheduled = Create(later, {}, StartNow(at));
  ASSERT_TRUE(scheduled.ok()) << scheduled.status();
  EXPECT_EQ(scheduled->status, CampaignStatus::kScheduled);
  EXPECT_EQ(scheduled->schedule_at, at);
  EXPECT_EQ(scheduled->stats.total, 1);
}

TEST_P(CampaignRepositoryTest, CreateAndStartReservesItsCost) {
  // 10,000 per SMS segment; "Hi {{name}}" is one for each of three.
  SeedMoney(a_, {Price{Channel::kSms, "", 10000}}, 1000000);
  if (HasFatalFailure()) return;
  std::vector<std::string> ids;
  for (const char* address : {"+12025550001", "+12025550002", "+12025550003"}) {
    ids.push_back(MustCreateContact(a_, address).id);
  }
  Campaign c = NewCampaign(a_, "+15550100");
  c.contact_ids = ids;
  absl::StatusOr<Campaign> started = Create(c, {}, StartNow());
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(started->credits_reserved, 30000);
  absl::StatusOr<Campaign> got = campaigns().GetCampaign(a_, c.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->credits_reserved, 30000);
  const Account a = MustGetAccount(a_);
  EXPECT_EQ(a.credits_reserved, 30000);
  EXPECT_EQ(a.credits_balance, 970000);
  EXPECT_EQ(a.credits_balance + a.credits_reserved, 1000000);
}

TEST_P(CampaignRepositoryTest, UpdatingAScheduledStartReservesAnewDeleteFrees) {
  SeedMoney(a_, {Price{Channel::kSms, "", 10000}}, 1000000);
  if (HasFatalFailure()) return;
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) {
    ids.push_back(MustCreateContact(a_, absl::StrCat("+1202555", 1000 + i)).id);
  }
  Campaign c = NewCampaign(a_, "+15550100");
  c.contact_ids = ids;
  absl::StatusOr<Campaign> scheduled =
      Create(c, {}, StartNow(NowMicros() + absl::Hours(1)));
  ASSERT_TRUE(scheduled.ok()) << scheduled.status();
  ASSERT_EQ(scheduled->status, CampaignStatus::kScheduled);
  EXPECT_EQ(MustGetAccount(a_).credits_reserved, 100000);
  // 315 GSM-7 characters: three segments (153 each) for everyone.
  absl::StatusOr<Campaign> longer = Update(a_, c.id, [](Campaign& x) {
    x.body = "Hi {{name}}" + std::string(310, '.');
    return absl::OkStatus();
  });
  ASSERT_TRUE(longer.ok()) << longer.status();
  EXPECT_EQ(longer->credits_reserved, 300000);
  EXPECT_EQ(MustGetAccount(a_).credits_reserved, 300000);
  EXPECT_EQ(MustGetAccount(a_).credits_balance, 700000);
  ASSERT_TRUE(Delete(a_, c.id).ok());
  const Account a = MustGetAccount(a_);
  EXPECT_EQ(a.credits_reserved, 0);
  EXPECT_EQ(a.credits_balance, 1000000);
}

TEST_P(CampaignRepositoryTest, RefusedStartStoresNothing) {
  IdempotencyKey idem{"CreateCampaign", "req-start", "h"};
  // No recipients: nothing to start.
  ExpectError(Create(NewCampaign(a_, "+15550100"), idem, StartNow()).status(),
              absl::StatusCode::kFailedPrecondition, "VALIDATION_ERROR",
              "audience");
  EXPECT_EQ(CountAll(), 0);

  // Not enough credits: the campaign, its recipients and the request id
  // are all left as they were.
  SeedMoney(a_, {Price{Channel::kSms, "", 10000}}, 15000);
  if (HasFatalFailure()) return;
  Contact one = MustCreateContact(a_, "+12025550001");
  Contact two = MustCreateContact(a_, "+12025550002");
  Campaign c = NewCampaign(a_, "+15550100");
  c.contact_ids = {one.id, two.id};
  ExpectError(Create(c, idem, StartNow()).status(),
              absl::StatusCode::kFailedPrecondition, "INSUFFICIENT_CREDITS");
  EXPECT_EQ(CountAll(), 0);
  ExpectNotFound(campaigns().GetCampaign(a_, c.id).status());
  Account a = MustGetAccount(a_);
  EXPECT_EQ(a.credits_balance, 15000);
  EXPECT_EQ(a.credits_reserved, 0);

  // The same request without the start: stored as a draft, and nothing was
  // materialised before (its audience is all still to add).
  absl::StatusOr<Campaign> draft = Create(c, idem);
  ASSERT_TRUE(draft.ok()) << draft.status();
  EXPECT_EQ(draft->status, CampaignStatus::kDraft);
  EXPECT_EQ(draft->stats.total, 0);
  absl::StatusOr<MaterializeResult> added =
      AwaitResult<MaterializeResult>([&](Done<MaterializeResult> d) {
        contacts().MaterializeAudience(a_, c.id, std::move(d));
      });
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(added->inserted, 2);
  EXPECT_EQ(CountAll(), 1);
}

TEST_P(CampaignRepositoryTest,
       CreateAndStartFromAStatusThatCannotStartIsIllegal) {
  // A start refused by its lifecycle checks names the field.
  Contact one = MustCreateContact(a_, "+12025550001");
  Campaign c = NewCampaign(a_, "+15550100");
  c.contact_ids = {one.id};
  c.status = CampaignStatus::kSending;  // no start from sending
  absl::Status illegal = Create(c, {}, StartNow()).status();
  EXPECT_EQ(illegal.code(), absl::StatusCode::kFailedPrecondition) << illegal;
  EXPECT_EQ(errors::ReasonOf(illegal), "ILLEGAL_TRANSITION") << illegal;
  EXPECT_EQ(CountAll(), 0);
}

INSTANTIATE_TEST_SUITE_P(Engines, CampaignRepositoryTest,
                         ::testing::ValuesIn(kEngines), EngineName);

}  // namespace
}  // namespace campaigns::conformance
