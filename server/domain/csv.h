// An incremental RFC 4180 CSV parser: feed bytes in chunks split anywhere,
// get complete records out.
//
//   CsvParser parser;
//   auto on_record = [&](const CsvRecord& r) { ... r.fields ... };
//   RETURN_IF_ERROR(parser.Feed(chunk1, on_record));
//   RETURN_IF_ERROR(parser.Feed(chunk2, on_record));
//   RETURN_IF_ERROR(parser.Finish(on_record));
//
// Accepted: fields separated by ',', records by "\n", "\r\n" or a lone "\r";
// fields in double quotes may hold commas, line breaks and doubled quotes
// (""); a UTF-8 byte-order mark before the first record is skipped; blank
// lines are skipped. A record with a stray quote (inside an unquoted field,
// or text after a closing quote) is delivered with `error` set and its
// fields as far as they went; the parser resynchronises at the next line
// break outside quotes. Fatal errors (a field or record over its limit, a
// quote still open at Finish) are returned as INVALID_ARGUMENT and end the
// parse.
//
// Not thread-safe: one parser per stream.
#ifndef CAMPAIGND_SERVER_DOMAIN_CSV_H_
#define CAMPAIGND_SERVER_DOMAIN_CSV_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace campaigns {

struct CsvRecord {
  // 1-based line number where the record starts (counting every line break
  // outside and inside quotes, blank lines and the header included), so it
  // matches what a text editor shows.
  int64_t line = 0;
  std::vector<std::string> fields;
  // Non-empty for a malformed record: what is wrong with it.
  std::string error;
};

struct CsvLimits {
  size_t max_field_bytes = 4 << 20;    // 4 MiB
  size_t max_record_bytes = 16 << 20;  // 16 MiB
};

class CsvParser {
 public:
  using RecordFn = std::function<void(const CsvRecord&)>;

  explicit CsvParser(CsvLimits limits = {}) : limits_(limits) {
    record_.line = 1;
  }

  // Parses `chunk`, calling `on_record` for each record it completes.
  absl::Status Feed(absl::string_view chunk, const RecordFn& on_record);

  // End of input: delivers a last record without a trailing line break.
  // INVALID_ARGUMENT if a quoted field is still open.
  absl::Status Finish(const RecordFn& on_record);

 private:
  enum class State {
    kFieldStart,     // at the start of a field
    kUnquoted,       // inside an unquoted field
    kQuoted,         // inside a quoted field
    kQuoteInQuoted,  // saw '"' inside a quoted field: end or escaped quote
    kAfterCr,        // saw '\r' ending a record: swallow a following '\n'
    kSkipToEol,      // malformed record: skip to the end of the line
  };

  void EndField();
  void EndRecord(const RecordFn& on_record);
  void MarkMalformed(absl::string_view why);

  const CsvLimits limits_;
  State state_ = State::kFieldStart;
  bool bom_checked_ = false;
  std::string bom_prefix_;  // bytes held while deciding whether a BOM starts
  CsvRecord record_;
  std::string field_;
  size_t record_bytes_ = 0;
  bool record_started_ = false;  // any byte of the current record seen
  int64_t line_ = 1;             // current line number
};

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_DOMAIN_CSV_H_
