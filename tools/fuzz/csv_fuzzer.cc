// libFuzzer target for the streaming CSV parser (server/domain/csv.h) and
// the import rows read from it (server/domain/import_rows.h).
//
// Differential: the input is parsed whole and again split into chunks at
// offsets taken from its first bytes; both parses must succeed or fail alike
// and give the same records. The chunks then go through CsvRowReader: every
// row it accepts must be valid UTF-8 and encode as JSON (what staging does
// with its variables) without throwing. ASan/UBSan catch memory and UB
// errors.
//
//   tools/fuzz/build.sh build-fuzz
//   build-fuzz/tools/fuzz/csv_fuzzer -max_total_time=600 tests/fuzz/csv_corpus
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "server/domain/csv.h"
#include "server/domain/import_rows.h"
#include "server/domain/utf8.h"

namespace {

struct Result {
  bool ok = true;
  std::vector<campaigns::CsvRecord> records;
};

Result Parse(const std::string& input, const std::vector<size_t>& cuts) {
  campaigns::CsvLimits limits;
  limits.max_field_bytes = 4096;  // small, so the limit paths are reached
  limits.max_record_bytes = 16384;
  campaigns::CsvParser parser(limits);
  Result out;
  auto on_record = [&](const campaigns::CsvRecord& r) {
    out.records.push_back(r);
  };
  size_t start = 0;
  for (size_t cut : cuts) {
    if (!parser
             .Feed(absl::string_view(input).substr(start, cut - start),
                   on_record)
             .ok()) {
      out.ok = false;
      return out;
    }
    start = cut;
  }
  out.ok =
      parser.Feed(absl::string_view(input).substr(start), on_record).ok() &&
      parser.Finish(on_record).ok();
  return out;
}

bool Same(const Result& a, const Result& b) {
  if (a.ok != b.ok) return false;
  if (!a.ok) return true;  // where a fatal error stops may differ by chunk
  if (a.records.size() != b.records.size()) return false;
  for (size_t i = 0; i < a.records.size(); ++i) {
    if (a.records[i].fields != b.records[i].fields ||
        a.records[i].error != b.records[i].error ||
        a.records[i].line != b.records[i].line) {
      return false;
    }
  }
  return true;
}

// Reads `input` as import rows in the chunks `cuts` makes; aborts if an
// accepted row could not be stored.
void CheckRows(const std::string& input, const std::vector<size_t>& cuts) {
  campaigns::CsvRowReader reader(campaigns::Channel::kSms);
  std::vector<campaigns::ImportRow> rows;
  size_t start = 0;
  for (size_t cut : cuts) {
    if (!reader.Feed(absl::string_view(input).substr(start, cut - start), &rows)
             .ok()) {
      return;
    }
    start = cut;
  }
  if (!reader.Feed(absl::string_view(input).substr(start), &rows).ok()) return;
  (void)reader.Finish(&rows);
  for (const campaigns::ImportRow& row : rows) {
    if (!campaigns::IsValidUtf8(row.error)) std::abort();
    if (!row.error.empty()) continue;
    if (!campaigns::IsValidUtf8(row.address)) std::abort();
    try {
      (void)nlohmann::json(row.variables).dump();
    } catch (const nlohmann::json::exception&) {
      std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The first byte picks how many cuts, the next ones where they fall.
  const size_t header = size > 0 ? 1 + data[0] % 8 : 0;
  if (size < header) return 0;
  std::string input(reinterpret_cast<const char*>(data) + header,
                    size - header);
  std::vector<size_t> cuts;
  for (size_t i = 1; i < header; ++i) {
    size_t at = input.empty() ? 0 : (data[i] * 131u) % (input.size() + 1);
    if (cuts.empty() || at >= cuts.back()) cuts.push_back(at);
  }
  Result whole = Parse(input, {});
  Result chunked = Parse(input, cuts);
  if (!Same(whole, chunked)) std::abort();
  CheckRows(input, cuts);
  return 0;
}
