// SuppressionService: the account's do-not-contact list, normalised
// addresses, per-channel and every-channel entries, tenancy.
#include "tests/integration/fixture.h"

namespace campaigns::testing {
namespace {

class SuppressionTest : public ServerTest {
 protected:
  grpc::Status Add(const std::string& key, const std::string& address,
                   v1::Channel channel, v1::Suppression* out,
                   v1::Suppression::Reason reason = v1::Suppression::opt_out,
                   const std::string& region = "") {
    v1::AddSuppressionRequest req;
    req.set_address(address);
    req.set_channel(channel);
    req.set_reason(reason);
    req.set_default_region(region);
    return suppressions_->AddSuppression(Ctx(key).get(), req, out);
  }
  v1::CheckSuppressionResponse Check(const std::string& key,
                                     const std::string& address,
                                     v1::Channel channel) {
    v1::CheckSuppressionRequest req;
    req.set_address(address);
    req.set_channel(channel);
    req.set_default_region("US");
    v1::CheckSuppressionResponse out;
    grpc::Status s = suppressions_->CheckSuppression(Ctx(key).get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }
};

TEST_F(SuppressionTest, AddNormalisesAndCheckMatchesChannelAndEveryChannel) {
  v1::Suppression s;
  ASSERT_TRUE(Add(kAdminKey, "(202) 555-0143", v1::sms, &s,
                  v1::Suppression::opt_out, "US")
                  .ok());
  EXPECT_EQ(s.address(), "+12025550143");
  EXPECT_EQ(s.channel(), v1::sms);
  EXPECT_EQ(s.reason(), v1::Suppression::opt_out);
  EXPECT_TRUE(s.has_created_at());

  EXPECT_TRUE(Check(kAdminKey, "202-555-0143", v1::sms).suppressed());
  EXPECT_FALSE(Check(kAdminKey, "+12025550143", v1::whatsapp).suppressed());

  // An every-channel entry suppresses the address everywhere.
  ASSERT_TRUE(Add(kAdminKey, "+12025550143", v1::channel_unspecified, &s,
                  v1::Suppression::complaint)
                  .ok());
  v1::CheckSuppressionResponse wa =
      Check(kAdminKey, "+12025550143", v1::whatsapp);
  EXPECT_TRUE(wa.suppressed());
  ASSERT_EQ(wa.matches_size(), 1);
  EXPECT_EQ(wa.matches(0).channel(), v1::channel_unspecified);
  EXPECT_EQ(Check(kAdminKey, "+12025550143", v1::sms).matches_size(), 2);

  // Email addresses are lower-cased.
  ASSERT_TRUE(
      Add(kAdminKey, "Ann@Example.COM", v1::email, &s, v1::Suppression::bounce)
          .ok());
  EXPECT_EQ(s.address(), "ann@example.com");
  EXPECT_TRUE(Check(kAdminKey, "ANN@example.com", v1::email).suppressed());
}

TEST_F(SuppressionTest, AddingAgainUpdatesTheReasonAndListFilters) {
  v1::Suppression s;
  ASSERT_TRUE(
      Add(kAdminKey, "+12025550143", v1::sms, &s, v1::Suppression::manual)
          .ok());
  ASSERT_TRUE(
      Add(kAdminKey, "+12025550143", v1::sms, &s, v1::Suppression::opt_out)
          .ok());
  ASSERT_TRUE(
      Add(kAdminKey, "+442079460018", v1::sms, &s, v1::Suppression::bounce)
          .ok());
  v1::ListSuppressionsResponse list;
  ASSERT_TRUE(
      suppressions_->ListSuppressions(Ctx(kAdminKey).get(), {}, &list).ok());
  EXPECT_EQ(list.total(), 2);
  v1::ListSuppressionsRequest by_reason;
  by_reason.set_reason(v1::Suppression::opt_out);
  ASSERT_TRUE(
      suppressions_->ListSuppressions(Ctx(kAdminKey).get(), by_reason, &list)
          .ok());
  ASSERT_EQ(list.total(), 1);
  EXPECT_EQ(list.items(0).address(), "+12025550143");
  v1::ListSuppressionsRequest by_channel;
  by_channel.set_channel(v1::email);
  ASSERT_TRUE(
      suppressions_->ListSuppressions(Ctx(kAdminKey).get(), by_channel, &list)
          .ok());
  EXPECT_EQ(list.total(), 0);
}

TEST_F(SuppressionTest, RemoveAndNotFound) {
  v1::Suppression s;
  ASSERT_TRUE(Add(kAdminKey, "+12025550143", v1::sms, &s).ok());
  v1::RemoveSuppressionRequest remove;
  remove.set_address("+1 202 555 0143");
  remove.set_channel(v1::sms);
  google::protobuf::Empty empty;
  ASSERT_TRUE(
      suppressions_->RemoveSuppression(Ctx(kAdminKey).get(), remove, &empty)
          .ok());
  EXPECT_FALSE(Check(kAdminKey, "+12025550143", v1::sms).suppressed());
  ErrorDetails d = Details(
      suppressions_->RemoveSuppression(Ctx(kAdminKey).get(), remove, &empty));
  EXPECT_EQ(d.code, grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(d.reason, "NOT_FOUND");
}

TEST_F(SuppressionTest, BadInputNamesTheField) {
  v1::Suppression s;
  struct Case {
    const char* name;
    v1::AddSuppressionRequest req;
    const char* field;
  };
  std::vector<Case> cases(5);
  cases[0] = {"empty address", {}, "address"};
  cases[0].req.set_channel(v1::sms);
  cases[1] = {"not a number", {}, "address"};
  cases[1].req.set_address("hello");
  cases[1].req.set_channel(v1::sms);
  cases[2] = {"unknown region", {}, "default_region"};
  cases[2].req.set_address("2025550143");
  cases[2].req.set_channel(v1::sms);
  cases[2].req.set_default_region("XX");
  cases[3] = {"unknown reason", {}, "reason"};
  cases[3].req.set_address("+12025550143");
  cases[3].req.set_reason(static_cast<v1::Suppression::Reason>(17));
  cases[4] = {"bad email", {}, "address"};
  cases[4].req.set_address("not-an-email");
  cases[4].req.set_channel(v1::email);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ErrorDetails d =
        Details(suppressions_->AddSuppression(Ctx(kAdminKey).get(), c.req, &s));
    EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(d.reason, "INVALID_REQUEST");
    ASSERT_FALSE(d.fields.empty());
    EXPECT_EQ(d.fields[0], c.field);
  }
  v1::ListSuppressionsResponse list;
  ASSERT_TRUE(
      suppressions_->ListSuppressions(Ctx(kAdminKey).get(), {}, &list).ok());
  EXPECT_EQ(list.total(), 0);
}

TEST_F(SuppressionTest, ListsAreScopedToTheAccount) {
  const std::string other = NewAccount("other");
  v1::Suppression s;
  ASSERT_TRUE(Add(kAdminKey, "+12025550143", v1::sms, &s).ok());
  EXPECT_FALSE(Check(other, "+12025550143", v1::sms).suppressed());
  v1::ListSuppressionsResponse list;
  ASSERT_TRUE(
      suppressions_->ListSuppressions(Ctx(other).get(), {}, &list).ok());
  EXPECT_EQ(list.total(), 0);
  v1::RemoveSuppressionRequest remove;
  remove.set_address("+12025550143");
  remove.set_channel(v1::sms);
  google::protobuf::Empty empty;
  EXPECT_EQ(suppressions_->RemoveSuppression(Ctx(other).get(), remove, &empty)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(Check(kAdminKey, "+12025550143", v1::sms).suppressed());
}

}  // namespace
}  // namespace campaigns::testing
