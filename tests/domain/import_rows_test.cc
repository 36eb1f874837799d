// CsvRowReader, ReadJsonRow and JsonRowLimitProblem: the row limits of an
// import (columns, bytes per field, variables, name length), each error naming
// its limit.
#include "server/domain/import_rows.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace campaigns {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

struct Read {
  std::vector<ImportRow> rows;
  absl::Status status;
};

Read ReadCsv(const std::string& csv, ImportRowLimits limits = {}) {
  Read out;
  CsvRowReader reader(Channel::kSms, limits);
  out.status = reader.Feed(csv, &out.rows);
  if (out.status.ok()) out.status = reader.Finish(&out.rows);
  return out;
}

// A header "phone,v1,...,v<n-1>" of n columns.
std::string Header(size_t n) {
  std::string h = "phone";
  for (size_t i = 1; i < n; ++i) absl::StrAppend(&h, ",v", i);
  return h + "\n";
}

// A row of n fields: a number, then "x".
std::string Row(size_t n) {
  std::string r = "+12025550143";
  for (size_t i = 1; i < n; ++i) r += ",x";
  return r + "\n";
}

TEST(ImportRowLimitsTest, TheLimitsAreCreateContactsCaps) {
  EXPECT_EQ(kMaxRowVariables, kMaxListEntries);
  EXPECT_EQ(kMaxRowColumns, kMaxListEntries + 1);
  EXPECT_EQ(kMaxRowFieldBytes, kMaxAttributeValueLength);
  EXPECT_EQ(kMaxRowNameBytes, kMaxShortText);
}

TEST(ImportRowLimitsTest, CsvHeaderAtTheColumnLimitIsReadOverItIsFatal) {
  Read at = ReadCsv(Header(kMaxRowColumns) + Row(kMaxRowColumns));
  ASSERT_TRUE(at.status.ok()) << at.status;
  ASSERT_EQ(at.rows.size(), 1u);
  EXPECT_THAT(at.rows[0].error, IsEmpty());
  EXPECT_EQ(at.rows[0].variables.size(), kMaxRowVariables);

  Read over = ReadCsv(Header(100000) + Row(100000));
  EXPECT_EQ(over.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(over.status.message()),
              HasSubstr(absl::StrCat("the header (line 1) has 100000 columns, "
                                     "at most ",
                                     kMaxRowColumns)));
  EXPECT_THAT(over.rows, IsEmpty());
}

TEST(ImportRowLimitsTest, CsvRowOverTheColumnLimitIsARowErrorNamingIt) {
  Read r = ReadCsv("phone,name\n+12025550143,Ann\n" + Row(100000) +
                   "+12025550144,Bob\n");
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_THAT(r.rows[0].error, IsEmpty());
  EXPECT_EQ(r.rows[1].row, 2);
  EXPECT_EQ(r.rows[1].error,
            absl::StrCat("line 3: 100000 columns, at most ", kMaxRowColumns));
  EXPECT_THAT(r.rows[1].variables, IsEmpty());
  EXPECT_THAT(r.rows[2].error, IsEmpty());
  EXPECT_EQ(r.rows[2].variables.at("name"), "Bob");
}

TEST(ImportRowLimitsTest, CsvFieldOverTheByteLimitIsARowErrorNamingIt) {
  const std::string at(kMaxRowFieldBytes, 'a');
  const std::string over(kMaxRowFieldBytes + 1, 'b');
  Read r = ReadCsv("phone,name,note\n+12025550143,Ann," + at +
                   "\n+12025550144,Bob," + over + "\n");
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_THAT(r.rows[0].error, IsEmpty());
  EXPECT_EQ(r.rows[0].variables.at("note"), at);
  EXPECT_EQ(r.rows[1].error,
            absl::StrCat("line 3: column \"note\" has ", kMaxRowFieldBytes + 1,
                         " bytes, at most ", kMaxRowFieldBytes));
}

TEST(ImportRowLimitsTest, CsvHeaderNameOverTheLimitIsFatal) {
  Read r = ReadCsv("phone," + std::string(kMaxRowNameBytes + 1, 'n') +
                   "\n+12025550143,Ann\n");
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status.message()),
              HasSubstr(absl::StrCat("header column 2 has a name of ",
                                     kMaxRowNameBytes + 1, " bytes, at most ",
                                     kMaxRowNameBytes)));
  Read at = ReadCsv("phone," + std::string(kMaxRowNameBytes, 'n') +
                    "\n+12025550143,Ann\n");
  EXPECT_TRUE(at.status.ok()) << at.status;
}

TEST(ImportRowLimitsTest, CsvRepeatedColumnIsFoundAmongManyAndVariablesKeep) {
  std::string header = Header(kMaxRowColumns - 1);
  header.insert(header.size() - 1, ",v7");
  Read r = ReadCsv(header + Row(kMaxRowColumns));
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status.message()),
              HasSubstr("\"v7\" appears twice"));

  // Variables are named by their columns, whatever the column order.
  Read ok = ReadCsv("zeta,phone,alpha,mid\n1,+12025550143,2,3\n");
  ASSERT_TRUE(ok.status.ok()) << ok.status;
  ASSERT_EQ(ok.rows.size(), 1u);
  EXPECT_EQ(ok.rows[0].address, "+12025550143");
  EXPECT_EQ(ok.rows[0].variables,
            (std::map<std::string, std::string>{
                {"alpha", "2"}, {"mid", "3"}, {"zeta", "1"}}));
}

TEST(ImportRowLimitsTest, LiftedLimitsReadAHundredThousandColumns) {
  ImportRowLimits none;
  none.max_columns = none.max_variables = none.max_field_bytes =
      none.max_name_bytes = SIZE_MAX;
  Read r = ReadCsv(Header(100000) + Row(100000), none);
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_THAT(r.rows[0].error, IsEmpty());
  EXPECT_EQ(r.rows[0].variables.size(), 99999u);
  EXPECT_EQ(r.rows[0].variables.at("v99999"), "x");
}

TEST(ImportRowLimitsTest, JsonRowLimitsNameTheLimit) {
  std::map<std::string, std::string> vars;
  for (size_t i = 0; i < kMaxRowVariables; ++i) {
    vars[absl::StrCat("v", i)] = "x";
  }
  EXPECT_EQ(JsonRowLimitProblem("+12025550143", vars), "");
  for (size_t i = kMaxRowVariables; i < 100000; ++i) {
    vars[absl::StrCat("v", i)] = "x";
  }
  EXPECT_EQ(JsonRowLimitProblem("+12025550143", vars),
            absl::StrCat("100000 variables, at most ", kMaxRowVariables));

  EXPECT_EQ(
      JsonRowLimitProblem("+12025550143",
                          {{"note", std::string(kMaxRowFieldBytes, 'a')}}),
      "");
  EXPECT_EQ(
      JsonRowLimitProblem("+12025550143",
                          {{"note", std::string(kMaxRowFieldBytes + 1, 'a')}}),
      absl::StrCat("variable \"note\" has ", kMaxRowFieldBytes + 1,
                   " bytes, at most ", kMaxRowFieldBytes));
  EXPECT_EQ(
      JsonRowLimitProblem("+12025550143",
                          {{std::string(kMaxRowNameBytes + 1, 'n'), "x"}}),
      absl::StrCat("a variable name has ", kMaxRowNameBytes + 1,
                   " bytes, at most ", kMaxRowNameBytes));
  EXPECT_EQ(JsonRowLimitProblem(std::string(kMaxRowFieldBytes + 1, '1'), {}),
            absl::StrCat("the address has ", kMaxRowFieldBytes + 1,
                         " bytes, at most ", kMaxRowFieldBytes));
}

TEST(ReadJsonRowTest, TrimsTheAddressAndKeepsTheRest) {
  ImportRow row =
      ReadJsonRow(7, " \t+12025550143\n", "ct_1", {{"name", "Ann"}});
  EXPECT_EQ(row.row, 7);
  EXPECT_EQ(row.line, 0);
  EXPECT_EQ(row.address, "+12025550143");
  EXPECT_EQ(row.contact_id, "ct_1");
  EXPECT_EQ(row.variables.at("name"), "Ann");
  EXPECT_THAT(row.error, IsEmpty());
  // A contact alone is a row: its address comes from the contact.
  EXPECT_THAT(ReadJsonRow(1, "  ", "ct_1", {}).error, IsEmpty());
}

TEST(ReadJsonRowTest, RefusedRowsSayWhyAndDropTheirVariables) {
  EXPECT_EQ(ReadJsonRow(1, " ", "", {{"a", "b"}}).error,
            "the address is empty");
  EXPECT_EQ(ReadJsonRow(1, "", std::string(kMaxIdLength + 1, 'c'), {}).error,
            "contact_id is too long");
  ImportRow over =
      ReadJsonRow(1, "+12025550143", "",
                  {{"note", std::string(kMaxRowFieldBytes + 1, 'a')}});
  EXPECT_EQ(over.error,
            absl::StrCat("variable \"note\" has ", kMaxRowFieldBytes + 1,
                         " bytes, at most ", kMaxRowFieldBytes));
  EXPECT_THAT(over.variables, IsEmpty());
}

}  // namespace
}  // namespace campaigns
