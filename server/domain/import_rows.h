// Rows of an audience import (recipients or contacts), read from CSV bytes.
//
//   CsvRowReader reader(Channel::kSms);
//   std::vector<ImportRow> rows;
//   RETURN_IF_ERROR(reader.Feed(chunk, &rows));   // any byte boundary
//   RETURN_IF_ERROR(reader.Finish(&rows));
//
// The first record is the header. The address column is the one named
// `address`, `phone`, `phone_number`, `email` or `chat_id` (case and
// surrounding blanks ignored). When several of these are present, `address`
// wins, then the column that fits the channel (phone/phone_number for SMS,
// WhatsApp and RCS; email; chat_id for Telegram and Slack); the others stay
// variables. Every other column becomes a variable named by its header.
// Fatal (INVALID_ARGUMENT on `csv_chunk`): no address column, an ambiguous
// one, an empty or repeated column name, a malformed header or one that is
// not UTF-8, a header over the row limits (more than max_columns columns, a
// name over max_name_bytes), a quote left open, a field or record over the
// parser's limits. A malformed data row, one over the row limits (more than
// max_columns fields, a field over max_field_bytes), one with a different
// number of fields than the header, one with a field that is not UTF-8 (the
// reason names the column, never echoes the bytes) or one with an empty
// address is delivered with `error` set, and counts as a row.
//
// Cost: linear in the bytes read, whatever the number of columns.
//
// Not thread-safe: one reader per stream.
#ifndef CAMPAIGND_SERVER_DOMAIN_IMPORT_ROWS_H_
#define CAMPAIGND_SERVER_DOMAIN_IMPORT_ROWS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/domain/csv.h"
#include "server/domain/rules.h"
#include "server/domain/types.h"

namespace campaigns {

// The limits of one import row, CSV or JSON: the caps CreateContact puts on
// attributes and CreateCampaign on recipient_variables (rules.h), so that
// whatever an import accepts can be stored and rendered.
inline constexpr size_t kMaxRowVariables = kMaxListEntries;  // 1000
// The address column and one column per variable.
inline constexpr size_t kMaxRowColumns = kMaxRowVariables + 1;
// A field (CSV) or an address or variable value (JSON).
inline constexpr size_t kMaxRowFieldBytes = kMaxAttributeValueLength;  // 1000
// A CSV header column or a JSON variable name.
inline constexpr size_t kMaxRowNameBytes = kMaxShortText;  // 200

struct ImportRowLimits {
  size_t max_columns = kMaxRowColumns;
  size_t max_variables = kMaxRowVariables;
  size_t max_field_bytes = kMaxRowFieldBytes;
  size_t max_name_bytes = kMaxRowNameBytes;
};

// One data row of an import, before its address is checked.
struct ImportRow {
  int64_t row = 0;   // 1-based among the data rows (the header is not one)
  int64_t line = 0;  // CSV: line where the record starts; 0 for JSON rows
  std::string address;
  std::string contact_id;
  std::map<std::string, std::string> variables;
  std::string error;  // non-empty: the row is invalid, for this reason
};

// A row's variables as the JSON object of strings staged rows carry
// (StagedRecipient::variables_json) and recipients and contacts store. Bytes
// that are not UTF-8 become U+FFFD; never throws.
std::string VariablesToJson(const std::map<std::string, std::string>& vars);

// Error text of a row for ImportError.reason: "line N: <why>" for a CSV row
// starting on line N (> 0); just `why` for JSON rows (line 0).
std::string RowErrorReason(int64_t line, absl::string_view why);

// Why a JSON row (`address`, `variables`) is over `limits`, naming the limit
// (e.g. "100000 variables, at most 1000"); empty when it is within them.
// Linear in the size of the row.
std::string JsonRowLimitProblem(
    absl::string_view address,
    const std::map<std::string, std::string>& variables,
    const ImportRowLimits& limits = {});

// Reads one JSON row (a RecipientRow of an import in the json_rows format):
// the `row`th, its address trimmed of surrounding ASCII blanks. A row over
// `limits` (its variables dropped), one with neither address nor contact_id
// or one with a contact_id over kMaxIdLength is returned with `error` set.
// Linear in the size of the row.
ImportRow ReadJsonRow(int64_t row, absl::string_view address,
                      absl::string_view contact_id,
                      std::map<std::string, std::string> variables,
                      const ImportRowLimits& limits = {});

class CsvRowReader {
 public:
  explicit CsvRowReader(Channel channel, ImportRowLimits limits = {})
      : channel_(channel), limits_(limits) {}

  // Parses `chunk`; appends the rows it completes to `out`.
  absl::Status Feed(absl::string_view chunk, std::vector<ImportRow>* out);
  // End of input: appends a last row without a trailing line break. Also
  // INVALID_ARGUMENT if there was no header at all.
  absl::Status Finish(std::vector<ImportRow>* out);

  int64_t rows() const { return rows_; }

 private:
  absl::Status OnRecord(const CsvRecord& record, std::vector<ImportRow>* out);
  absl::Status ReadHeader(const CsvRecord& record);

  const Channel channel_;
  const ImportRowLimits limits_;
  CsvParser parser_;
  bool have_header_ = false;
  std::vector<std::string> columns_;
  size_t address_column_ = 0;
  // The variable columns (all but the address) in the order of their names,
  // so a row's variables are built in order, each in constant time.
  std::vector<size_t> variable_order_;
  int64_t rows_ = 0;
  absl::Status fatal_;
};

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_DOMAIN_IMPORT_ROWS_H_
