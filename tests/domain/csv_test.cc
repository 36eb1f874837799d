#include "server/domain/csv.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace campaigns {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

struct Parsed {
  std::vector<CsvRecord> records;
  absl::Status status;
};

// Parses `input` split into chunks at the given byte offsets.
Parsed Parse(const std::string& input, const std::vector<size_t>& cuts = {},
             CsvLimits limits = {}) {
  Parsed out;
  CsvParser parser(limits);
  auto on_record = [&](const CsvRecord& r) { out.records.push_back(r); };
  size_t start = 0;
  for (size_t cut : cuts) {
    out.status = parser.Feed(input.substr(start, cut - start), on_record);
    if (!out.status.ok()) return out;
    start = cut;
  }
  out.status = parser.Feed(input.substr(start), on_record);
  if (out.status.ok()) out.status = parser.Finish(on_record);
  return out;
}

std::vector<std::vector<std::string>> CsvFields(const Parsed& p) {
  std::vector<std::vector<std::string>> out;
  for (const CsvRecord& r : p.records) out.push_back(r.fields);
  return out;
}

TEST(CsvParserTest, PlainRecordsWithAndWithoutTrailingNewline) {
  Parsed p = Parse("phone,name\n+1234567890,John\n+9876543210,Jane");
  ASSERT_TRUE(p.status.ok()) << p.status;
  EXPECT_THAT(CsvFields(p), ElementsAre(ElementsAre("phone", "name"),
                                        ElementsAre("+1234567890", "John"),
                                        ElementsAre("+9876543210", "Jane")));
  EXPECT_EQ(p.records[2].line, 3);
}

TEST(CsvParserTest, QuotedCommasNewlinesAndEscapedQuotes) {
  Parsed p = Parse(
      "a,b,c\r\n\"x, y\",\"line1\nline2\",\"say "
      "\"\"hi\"\"\"\r\nlast,\"\",\r\n");
  ASSERT_TRUE(p.status.ok()) << p.status;
  EXPECT_THAT(CsvFields(p),
              ElementsAre(ElementsAre("a", "b", "c"),
                          ElementsAre("x, y", "line1\nline2", "say \"hi\""),
                          ElementsAre("last", "", "")));
  EXPECT_EQ(p.records[1].line, 2);
  EXPECT_EQ(p.records[2].line, 4);  // the quoted newline took a line
}

TEST(CsvParserTest, BomBlankLinesAndLoneCarriageReturns) {
  Parsed p = Parse("\xEF\xBB\xBFphone\r\n\r\n+1\r+2\n\n");
  ASSERT_TRUE(p.status.ok()) << p.status;
  EXPECT_THAT(CsvFields(p), ElementsAre(ElementsAre("phone"), ElementsAre("+1"),
                                        ElementsAre("+2")));
  EXPECT_EQ(p.records[1].line, 3);
  EXPECT_EQ(p.records[2].line, 4);
}

TEST(CsvParserTest, PartialBomIsData) {
  Parsed p = Parse("\xEF\xBBx,y\n");
  ASSERT_TRUE(p.status.ok());
  EXPECT_THAT(CsvFields(p), ElementsAre(ElementsAre("\xEF\xBBx", "y")));
  Parsed tiny = Parse("\xEF");
  ASSERT_TRUE(tiny.status.ok());
  EXPECT_THAT(CsvFields(tiny), ElementsAre(ElementsAre("\xEF")));
}

// Every split of the input into two and into single bytes parses the same
// as the whole: chunk boundaries may fall anywhere, inside quotes, between
// "\r" and "\n", inside the BOM or inside an escaped quote.
TEST(CsvParserTest, ChunkBoundariesAnywhereGiveTheSameRecords) {
  const std::string input =
      "\xEF\xBB\xBFphone,name,note\r\n+1,\"A, \"\"B\"\"\",\"multi\r\nline\"\r\n"
      "+2,C,\r\n\"+3\",\"\",x\n";
  const Parsed whole = Parse(input);
  ASSERT_TRUE(whole.status.ok()) << whole.status;
  ASSERT_EQ(whole.records.size(), 4u);
  for (size_t cut = 0; cut <= input.size(); ++cut) {
    Parsed p = Parse(input, {cut});
    ASSERT_TRUE(p.status.ok()) << cut;
    EXPECT_EQ(CsvFields(p), CsvFields(whole)) << "cut at " << cut;
  }
  std::vector<size_t> every_byte;
  for (size_t i = 1; i < input.size(); ++i) every_byte.push_back(i);
  EXPECT_EQ(CsvFields(Parse(input, every_byte)), CsvFields(whole));
}

TEST(CsvParserTest, StrayQuotesMarkOnlyThatRecord) {
  Parsed p = Parse("a,b\nfoo\"bar,x\n\"ok\"junk,y\ngood,z\n");
  ASSERT_TRUE(p.status.ok()) << p.status;
  ASSERT_EQ(p.records.size(), 4u);
  EXPECT_THAT(p.records[0].error, IsEmpty());
  EXPECT_EQ(p.records[1].error, "a quote inside an unquoted field");
  EXPECT_EQ(p.records[1].line, 2);
  EXPECT_EQ(p.records[2].error, "text after a closing quote");
  EXPECT_THAT(p.records[3].error, IsEmpty());
  EXPECT_THAT(p.records[3].fields, ElementsAre("good", "z"));
}

TEST(CsvParserTest, UnclosedQuoteAtEndIsFatal) {
  Parsed p = Parse("a,b\n\"never closed,x\n");
  EXPECT_EQ(p.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(p.status.message()), ::testing::HasSubstr("line 2"));
}

TEST(CsvParserTest, OneMegabyteFieldIsFineAndLimitsAreEnforced) {
  const std::string big(1 << 20, 'x');
  Parsed p = Parse("phone,blob\n+1,\"" + big + "\"\n", {100, 500000});
  ASSERT_TRUE(p.status.ok()) << p.status;
  ASSERT_EQ(p.records.size(), 2u);
  EXPECT_EQ(p.records[1].fields[1].size(), big.size());

  CsvLimits small;
  small.max_field_bytes = 1000;
  Parsed over = Parse("a\n" + std::string(1001, 'y') + "\n", {}, small);
  EXPECT_EQ(over.status.code(), absl::StatusCode::kInvalidArgument);
  small.max_field_bytes = 100;
  small.max_record_bytes = 150;
  over = Parse("a\n" + std::string(80, 'y') + "," + std::string(80, 'z') + "\n",
               {}, small);
  EXPECT_EQ(over.status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(CsvParserTest, EmptyInputHasNoRecords) {
  EXPECT_THAT(Parse("").records, IsEmpty());
  EXPECT_THAT(Parse("\n\r\n").records, IsEmpty());
  EXPECT_THAT(CsvFields(Parse(",")), ElementsAre(ElementsAre("", "")));
}

}  // namespace
}  // namespace campaigns
