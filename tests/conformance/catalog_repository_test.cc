// TemplateRepository's and SenderRepository's contract, on every engine
// (engines.h): creation, uniqueness, updates, deletion, tenancy, filters,
// idempotency. (Deleting one that a live campaign uses is tested with the
// campaigns, tests/storage/store_test.cc, until PostgreSQL has campaigns.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
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
using ::testing::_;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// Two accounts, alpha (a_) and beta (b_), each with an SMS sender.
class CatalogRepositoryTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    if (HasFatalFailure()) return;
    for (std::string* id : {&a_, &b_}) {
      *id = MustCreateAccount(id == &a_ ? "alpha" : "beta");
      ASSERT_FALSE(id->empty());
    }
    sender_a_ = MustRegister(NewSender(a_, "+15550100"));
    sender_b_ = MustRegister(NewSender(b_, "+15550199"));
  }

  absl::StatusOr<Template> CreateTemplate(Template t,
                                          IdempotencyKey idem = {}) {
    return AwaitResult<Template>([&](Done<Template> done) {
      templates().CreateTemplate(std::move(t), std::move(idem),
                                 std::move(done));
    });
  }
  absl::StatusOr<Template> UpdateTemplate(
      const std::string& account, const std::string& id,
      std::function<absl::Status(Template&)> mutate) {
    return AwaitResult<Template>([&](Done<Template> done) {
      templates().UpdateTemplate(account, id, std::move(mutate),
                                 std::move(done));
    });
  }
  absl::Status DeleteTemplate(const std::string& account,
                              const std::string& id) {
    return AwaitStatus([&](StatusDone done) {
      templates().DeleteTemplate(account, id, std::move(done));
    });
  }
  absl::StatusOr<Sender> RegisterSender(Sender s, IdempotencyKey idem = {}) {
    return AwaitResult<Sender>([&](Done<Sender> done) {
      senders().RegisterSender(std::move(s), std::move(idem), std::move(done));
    });
  }
  absl::Status DeleteSender(const std::string& account, const std::string& id) {
    return AwaitStatus([&](StatusDone done) {
      senders().DeleteSender(account, id, std::move(done));
    });
  }
  Sender MustRegister(Sender s) {
    absl::StatusOr<Sender> out = RegisterSender(std::move(s));
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : Sender{};
  }
  Template MustCreate(Template t) {
    absl::StatusOr<Template> out = CreateTemplate(std::move(t));
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : Template{};
  }
  static PageRequest AllOnOnePage() {
    PageRequest page;
    page.limit = 100;
    return page;
  }

  std::string a_;
  std::string b_;
  Sender sender_a_;
  Sender sender_b_;
};

TEST_P(CatalogRepositoryTest, TemplateCrud) {
  Template t = NewTemplate(a_, "welcome", Channel::kWhatsapp,
                           TemplateStatus::kPending, "en_US");
  t.components = {{"BODY", "TEXT", "Hi {{1}}", {{"text", "{{2}}", ""}}, "", 0}};
  Template created = MustCreate(t);
  EXPECT_EQ(created.id, t.id);

  absl::StatusOr<Template> got = templates().GetTemplate(a_, t.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->name, "welcome");
  EXPECT_EQ(got->language, "en_US");
  EXPECT_EQ(got->channel, Channel::kWhatsapp);
  EXPECT_EQ(got->status, TemplateStatus::kPending);
  EXPECT_EQ(got->body, "Hello {{name}}");
  ASSERT_EQ(got->components.size(), 1u);
  EXPECT_EQ(got->components[0].type, "BODY");
  EXPECT_EQ(got->components[0].format, "TEXT");
  EXPECT_EQ(got->components[0].text, "Hi {{1}}");
  ASSERT_EQ(got->components[0].parameters.size(), 1u);
  EXPECT_EQ(got->components[0].parameters[0].text, "{{2}}");

  absl::StatusOr<Template> updated = UpdateTemplate(a_, t.id, [](Template& x) {
    x.body = "Bye {{name}}";
    x.status = TemplateStatus::kApproved;
    return absl::OkStatus();
  });
  ASSERT_TRUE(updated.ok()) << updated.status();
  got = templates().GetTemplate(a_, t.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->body, "Bye {{name}}");
  EXPECT_EQ(got->status, TemplateStatus::kApproved);

  EXPECT_TRUE(DeleteTemplate(a_, t.id).ok());
  ExpectNotFound(templates().GetTemplate(a_, t.id).status());
  ExpectNotFound(DeleteTemplate(a_, t.id));
}

TEST_P(CatalogRepositoryTest, TemplateNameAndLanguageAreUniquePerAccount) {
  MustCreate(NewTemplate(a_, "promo"));
  ExpectError(CreateTemplate(NewTemplate(a_, "promo")).status(),
              absl::StatusCode::kAlreadyExists, "ALREADY_EXISTS", "name");
  // Another language, or another account, is free.
  EXPECT_TRUE(CreateTemplate(NewTemplate(a_, "promo", Channel::kSms,
                                         TemplateStatus::kApproved, "de"))
                  .ok());
  EXPECT_TRUE(CreateTemplate(NewTemplate(b_, "promo")).ok());
}

TEST_P(CatalogRepositoryTest, TemplateRenameOntoTakenNameIsAlreadyExists) {
  MustCreate(NewTemplate(a_, "first"));
  Template second = MustCreate(NewTemplate(a_, "second"));
  ExpectError(UpdateTemplate(a_, second.id,
                             [](Template& t) {
                               t.name = "first";
                               return absl::OkStatus();
                             })
                  .status(),
              absl::StatusCode::kAlreadyExists, "ALREADY_EXISTS", "name");
  absl::StatusOr<Template> got = templates().GetTemplate(a_, second.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->name, "second");
}

TEST_P(CatalogRepositoryTest,
       TemplateUpdateIsValidatedAndMutateErrorsPropagate) {
  Template t = MustCreate(NewTemplate(a_, "checked"));
  ExpectError(UpdateTemplate(a_, t.id,
                             [](Template& x) {
                               x.name.clear();
                               return absl::OkStatus();
                             })
                  .status(),
              absl::StatusCode::kInvalidArgument, "INVALID_REQUEST", "name");
  ExpectError(
      UpdateTemplate(a_, t.id,
                     [](Template&) {
                       return errors::InvalidField("update_mask", "bad path");
                     })
          .status(),
      absl::StatusCode::kInvalidArgument, "INVALID_REQUEST", "update_mask");
  absl::StatusOr<Template> got = templates().GetTemplate(a_, t.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->name, "checked");
}

TEST_P(CatalogRepositoryTest, TemplatesOfAnotherAccountAreNotFound) {
  Template t = MustCreate(NewTemplate(a_, "private"));
  ExpectNotFound(templates().GetTemplate(b_, t.id).status());
  ExpectNotFound(UpdateTemplate(b_, t.id, [](Template& x) {
                   x.body = "hijacked";
                   return absl::OkStatus();
                 }).status());
  ExpectNotFound(DeleteTemplate(b_, t.id));
  absl::StatusOr<Page<Template>> list =
      templates().ListTemplates(b_, TemplateFilter{}, AllOnOnePage());
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_THAT(list->items, IsEmpty());
  EXPECT_EQ(list->total, 0);

  absl::StatusOr<Template> still = templates().GetTemplate(a_, t.id);
  ASSERT_TRUE(still.ok()) << still.status();
  EXPECT_EQ(still->body, "Hello {{name}}");
  // An empty account id finds nothing; the admin path is explicit.
  ExpectNotFound(templates().GetTemplate("", t.id).status());
  EXPECT_TRUE(templates().GetTemplateForReview(t.id).ok());
}

TEST_P(CatalogRepositoryTest, ListTemplatesFilters) {
  Template sms = MustCreate(NewTemplate(a_, "sms-approved"));
  Template wa = MustCreate(NewTemplate(a_, "wa-pending", Channel::kWhatsapp,
                                       TemplateStatus::kPending));
  auto ids = [&](const TemplateFilter& filter) {
    std::vector<std::string> out;
    absl::StatusOr<Page<Template>> page =
        templates().ListTemplates(a_, filter, AllOnOnePage());
    EXPECT_TRUE(page.ok()) << page.status();
    if (page.ok()) {
      for (const Template& t : page->items) out.push_back(t.id);
    }
    return out;
  };
  EXPECT_THAT(ids({}), UnorderedElementsAre(sms.id, wa.id));
  EXPECT_THAT(ids({TemplateStatus::kPending, Channel::kUnspecified, ""}),
              ElementsAre(wa.id));
  EXPECT_THAT(ids({TemplateStatus::kUnspecified, Channel::kSms, ""}),
              ElementsAre(sms.id));
  EXPECT_THAT(
      ids({TemplateStatus::kUnspecified, Channel::kUnspecified, "wa-pending"}),
      ElementsAre(wa.id));
  EXPECT_THAT(ids({TemplateStatus::kRejected, Channel::kUnspecified, ""}),
              IsEmpty());
}

// --- Senders -----------------------------------------------------------------

TEST_P(CatalogRepositoryTest, RegisterGetListAndDeleteSender) {
  Sender s = NewSender(a_, "ACME", Channel::kWhatsapp);
  s.tier = SenderTier::kTier100k;
  s.verified = true;
  MustRegister(s);
  absl::StatusOr<Sender> got = senders().GetSender(a_, s.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->sender_id, "ACME");
  EXPECT_EQ(got->channel, Channel::kWhatsapp);
  EXPECT_EQ(got->tier, SenderTier::kTier100k);
  EXPECT_TRUE(got->verified);
  EXPECT_EQ(got->provider, "simulator");

  absl::StatusOr<Page<Sender>> wa =
      senders().ListSenders(a_, Channel::kWhatsapp, AllOnOnePage());
  ASSERT_TRUE(wa.ok()) << wa.status();
  ASSERT_EQ(wa->items.size(), 1u);
  EXPECT_EQ(wa->items[0].id, s.id);
  absl::StatusOr<Page<Sender>> all =
      senders().ListSenders(a_, Channel::kUnspecified, AllOnOnePage());
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->total, 2);  // with the SMS sender of the fixture

  EXPECT_TRUE(DeleteSender(a_, s.id).ok());
  ExpectNotFound(senders().GetSender(a_, s.id).status());
  ExpectNotFound(DeleteSender(a_, s.id));
}

TEST_P(CatalogRepositoryTest, DuplicateSenderIsAlreadyExists) {
  ExpectError(RegisterSender(NewSender(a_, "+15550100")).status(),
              absl::StatusCode::kAlreadyExists, "ALREADY_EXISTS", "sender_id");
  // The same visible id on another channel or in another account is free.
  EXPECT_TRUE(
      RegisterSender(NewSender(a_, "+15550100", Channel::kWhatsapp)).ok());
  EXPECT_TRUE(RegisterSender(NewSender(b_, "+15550100")).ok());
}

TEST_P(CatalogRepositoryTest, RegisterSenderIsIdempotent) {
  IdempotencyKey idem{"RegisterSender", "req-s", "h1"};
  absl::StatusOr<Sender> first = RegisterSender(NewSender(a_, "ONE"), idem);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<Sender> repeat = RegisterSender(NewSender(a_, "ONE"), idem);
  ASSERT_TRUE(repeat.ok()) << repeat.status();
  EXPECT_EQ(repeat->id, first->id);
  idem.body_hash = "h2";
  ExpectError(RegisterSender(NewSender(a_, "TWO"), idem).status(),
              absl::StatusCode::kAlreadyExists, "IDEMPOTENCY_CONFLICT");
}

TEST_P(CatalogRepositoryTest, SendersOfAnotherAccountAreNotFound) {
  ExpectNotFound(senders().GetSender(b_, sender_a_.id).status());
  ExpectNotFound(DeleteSender(b_, sender_a_.id));
  absl::StatusOr<Page<Sender>> list =
      senders().ListSenders(b_, Channel::kUnspecified, AllOnOnePage());
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->items.size(), 1u);
  EXPECT_EQ(list->items[0].id, sender_b_.id);
  EXPECT_TRUE(senders().GetSender(a_, sender_a_.id).ok());
}

INSTANTIATE_TEST_SUITE_P(Engines, CatalogRepositoryTest,
                         ::testing::ValuesIn(kEngines), EngineName);

}  // namespace
}  // namespace campaigns::conformance
