// Tests of server/domain/errors.h: each constructor's code, reason and field
// payload, the reason defaults per code, and the propagation macros.
#include "server/domain/errors.h"

#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace campaigns::errors {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

using Fields = std::vector<std::pair<std::string, std::string>>;

// The field violations of `status` as (field, description) pairs.
Fields FieldsOf(const absl::Status& status) {
  Fields out;
  for (const FieldViolation& v : FieldViolationsOf(status)) {
    out.emplace_back(v.field, v.description);
  }
  return out;
}

struct ConstructorCase {
  std::string name;
  absl::Status status;
  absl::StatusCode code;
  std::string reason;
  Fields fields;
};

// Names the case in gtest's failure messages.
void PrintTo(const ConstructorCase& c, std::ostream* os) { *os << c.name; }

class ConstructorTest : public ::testing::TestWithParam<ConstructorCase> {};

TEST_P(ConstructorTest, CarriesCodeReasonAndFields) {
  const ConstructorCase& c = GetParam();
  EXPECT_EQ(c.status.code(), c.code);
  EXPECT_EQ(ReasonOf(c.status), c.reason);
  EXPECT_EQ(FieldsOf(c.status), c.fields);
}

INSTANTIATE_TEST_SUITE_P(
    AllConstructors, ConstructorTest,
    ::testing::Values(
        ConstructorCase{"InvalidField",
                        InvalidField("name", "is required"),
                        absl::StatusCode::kInvalidArgument,
                        "INVALID_REQUEST",
                        {{"name", "is required"}}},
        ConstructorCase{
            "InvalidFields",
            InvalidFields({{"name", "is required"}, {"channel", "is unknown"}}),
            absl::StatusCode::kInvalidArgument,
            "INVALID_REQUEST",
            {{"name", "is required"}, {"channel", "is unknown"}}},
        ConstructorCase{"NotFound",
                        NotFound("campaign", "cmp_x"),
                        absl::StatusCode::kNotFound,
                        "NOT_FOUND",
                        {}},
        ConstructorCase{"ValidationWithField",
                        Validation("sender_id", "not registered"),
                        absl::StatusCode::kFailedPrecondition,
                        "VALIDATION_ERROR",
                        {{"sender_id", "not registered"}}},
        ConstructorCase{"ValidationWithoutField",
                        Validation("", "audience is empty"),
                        absl::StatusCode::kFailedPrecondition,
                        "VALIDATION_ERROR",
                        {}},
        ConstructorCase{"IllegalTransition",
                        IllegalTransition("cannot resume"),
                        absl::StatusCode::kFailedPrecondition,
                        "ILLEGAL_TRANSITION",
                        {}},
        ConstructorCase{"Unauthenticated",
                        Unauthenticated("bad key"),
                        absl::StatusCode::kUnauthenticated,
                        "UNAUTHORIZED",
                        {}},
        ConstructorCase{"PermissionDenied",
                        PermissionDenied("admin only"),
                        absl::StatusCode::kPermissionDenied,
                        "PERMISSION_DENIED",
                        {}},
        ConstructorCase{"IdempotencyConflict",
                        IdempotencyConflict("req-1"),
                        absl::StatusCode::kAlreadyExists,
                        "IDEMPOTENCY_CONFLICT",
                        {{"request_id", "reused with a different body"}}},
        ConstructorCase{"AlreadyExists",
                        AlreadyExists("name", "taken"),
                        absl::StatusCode::kAlreadyExists,
                        "ALREADY_EXISTS",
                        {{"name", "taken"}}},
        ConstructorCase{"Unimplemented",
                        Unimplemented("later"),
                        absl::StatusCode::kUnimplemented,
                        "UNIMPLEMENTED",
                        {}}),
    [](const ::testing::TestParamInfo<ConstructorCase>& info) {
      return info.param.name;
    });

TEST(ErrorsTest, MessagesNameFieldAndObject) {
  EXPECT_EQ(InvalidField("limit", "must be at most 100").message(),
            "limit: must be at most 100");
  EXPECT_EQ(InvalidFields({{"a", "x"}, {"b", "y"}}).message(), "a: x; b: y");
  EXPECT_EQ(NotFound("campaign", "cmp_1").message(),
            "campaign cmp_1 not found");
  EXPECT_THAT(std::string(IdempotencyConflict("req-7").message()),
              HasSubstr("req-7"));
}

TEST(ErrorsTest, FieldViolationRoundTripsAnyDescription) {
  // A description may quote user input (e.g. a bad placeholder name), which
  // can contain newlines and tabs; it must come back exactly, as one field.
  absl::Status status = InvalidField("body", "placeholder {{a\nb}} is bad");
  EXPECT_THAT(FieldsOf(status),
              ElementsAre(Pair("body", "placeholder {{a\nb}} is bad")));
  status = InvalidField("body", "tab\there");
  EXPECT_THAT(FieldsOf(status), ElementsAre(Pair("body", "tab\there")));
}

TEST(ErrorsTest, OkHasNoReasonAndNoFields) {
  EXPECT_EQ(ReasonOf(absl::OkStatus()), "");
  EXPECT_THAT(FieldViolationsOf(absl::OkStatus()), IsEmpty());
  EXPECT_THAT(FieldViolationsOf(absl::InternalError("x")), IsEmpty());
}

TEST(ErrorsTest, WithReasonReplacesReasonAndKeepsCodeAndFields) {
  absl::Status status =
      WithReason(Validation("balance", "too low"), kInsufficientCredits);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(status), "INSUFFICIENT_CREDITS");
  EXPECT_THAT(FieldsOf(status), ElementsAre(Pair("balance", "too low")));
}

TEST(ErrorsTest, WithReasonOnOkStaysOk) {
  absl::Status status = WithReason(absl::OkStatus(), kNotFound);
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(ReasonOf(status), "");
}

struct DefaultReasonCase {
  absl::StatusCode code;
  std::string reason;
};

// Names the case in gtest's failure messages.
void PrintTo(const DefaultReasonCase& c, std::ostream* os) {
  *os << absl::StatusCodeToString(c.code);
}

class DefaultReasonTest : public ::testing::TestWithParam<DefaultReasonCase> {};

TEST_P(DefaultReasonTest, PlainStatusGetsReasonFromCode) {
  EXPECT_EQ(ReasonOf(absl::Status(GetParam().code, "plain")),
            GetParam().reason);
}

INSTANTIATE_TEST_SUITE_P(
    Codes, DefaultReasonTest,
    ::testing::Values(
        DefaultReasonCase{absl::StatusCode::kInvalidArgument,
                          "INVALID_REQUEST"},
        DefaultReasonCase{absl::StatusCode::kOutOfRange, "INVALID_REQUEST"},
        DefaultReasonCase{absl::StatusCode::kUnauthenticated, "UNAUTHORIZED"},
        DefaultReasonCase{absl::StatusCode::kPermissionDenied,
                          "PERMISSION_DENIED"},
        DefaultReasonCase{absl::StatusCode::kNotFound, "NOT_FOUND"},
        DefaultReasonCase{absl::StatusCode::kFailedPrecondition,
                          "VALIDATION_ERROR"},
        DefaultReasonCase{absl::StatusCode::kResourceExhausted,
                          "RATE_LIMIT_EXCEEDED"},
        DefaultReasonCase{absl::StatusCode::kAlreadyExists, "ALREADY_EXISTS"},
        DefaultReasonCase{absl::StatusCode::kUnimplemented, "UNIMPLEMENTED"},
        DefaultReasonCase{absl::StatusCode::kUnavailable, "UNAVAILABLE"},
        DefaultReasonCase{absl::StatusCode::kInternal, "INTERNAL"},
        DefaultReasonCase{absl::StatusCode::kUnknown, "INTERNAL"},
        DefaultReasonCase{absl::StatusCode::kDataLoss, "INTERNAL"}));

// --- RETURN_IF_ERROR / ASSIGN_OR_RETURN -----------------------------------

absl::Status ReturnIfError(absl::Status first, int* reached) {
  RETURN_IF_ERROR(first);
  ++*reached;
  return absl::OkStatus();
}

TEST(MacrosTest, ReturnIfErrorPropagatesError) {
  int reached = 0;
  absl::Status status = ReturnIfError(NotFound("template", "t"), &reached);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReasonOf(status), "NOT_FOUND");
  EXPECT_EQ(reached, 0);
}

TEST(MacrosTest, ReturnIfErrorContinuesOnOk) {
  int reached = 0;
  EXPECT_TRUE(ReturnIfError(absl::OkStatus(), &reached).ok());
  EXPECT_EQ(reached, 1);
}

absl::StatusOr<std::string> Twice(absl::StatusOr<std::string> in) {
  ASSIGN_OR_RETURN(std::string s, std::move(in));
  ASSIGN_OR_RETURN(std::string again, absl::StatusOr<std::string>(s));
  return s + again;
}

TEST(MacrosTest, AssignOrReturnAssignsValue) {
  absl::StatusOr<std::string> out = Twice(std::string("ab"));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "abab");
}

TEST(MacrosTest, AssignOrReturnPropagatesStatus) {
  absl::StatusOr<std::string> out = Twice(IllegalTransition("no"));
  EXPECT_EQ(out.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(out.status()), "ILLEGAL_TRANSITION");
}

}  // namespace
}  // namespace campaigns::errors
