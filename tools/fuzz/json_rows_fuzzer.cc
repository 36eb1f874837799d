// libFuzzer target for the JSON row reader of the audience imports: the
// `rows` of an ImportRecipientsRequest in the json_rows format (what
// StreamImport::TakeData reads with ReadJsonRow, server/domain/
// import_rows.h).
//
// The first byte picks the encoding of the rest: even, the protobuf wire
// format (what gRPC clients send); odd, proto3 JSON (what the REST gateway
// transcodes from). Every row the reader accepts must be within the row
// limits, valid UTF-8 and encodable as the JSON the store keeps
// (VariablesToJson) without throwing; every refused row must say why, and
// one over the limits carries no variables. ASan/UBSan catch memory and UB
// errors.
//
//   tools/fuzz/build.sh build-fuzz
//   build-fuzz/tools/fuzz/json_rows_fuzzer -max_total_time=600
//   tests/fuzz/json_rows_corpus
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/json_util.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "campaigns/v1/campaign.pb.h"
#include "server/domain/import_rows.h"
#include "server/domain/utf8.h"

namespace {

[[noreturn]] void Fail(const char* why) {
  std::fprintf(stderr, "json_rows_fuzzer: %s\n", why);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // Quiet: protobuf logs each string field that is not UTF-8.
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  const std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  campaigns::v1::ImportRecipientsRequest request;
  if (data[0] % 2 == 0) {
    if (!request.ParseFromString(input)) return 0;
  } else {
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = (data[0] & 2) != 0;
    if (!google::protobuf::util::JsonStringToMessage(input, &request, options)
             .ok()) {
      return 0;
    }
  }
  const campaigns::ImportRowLimits limits;
  int64_t number = 0;
  for (const campaigns::v1::RecipientRow& in : request.rows()) {
    std::map<std::string, std::string> vars(in.variables().begin(),
                                            in.variables().end());
    const campaigns::ImportRow row = campaigns::ReadJsonRow(
        ++number, in.address(), in.contact_id(), std::move(vars), limits);
    if (row.row != number || row.line != 0) Fail("row or line number");
    if (!campaigns::IsValidUtf8(row.error)) Fail("error is not UTF-8");
    if (!row.error.empty()) {
      if (!row.variables.empty() &&
          !campaigns::JsonRowLimitProblem(row.address, row.variables, limits)
               .empty()) {
        Fail("a row over the limits kept its variables");
      }
      continue;
    }
    if (row.address.empty() && row.contact_id.empty()) Fail("empty row");
    if (!campaigns::JsonRowLimitProblem(row.address, row.variables, limits)
             .empty()) {
      Fail("an accepted row is over the limits");
    }
    if (row.contact_id.size() > campaigns::kMaxIdLength) Fail("contact_id");
    if (!campaigns::IsValidUtf8(row.address) ||
        !campaigns::IsValidUtf8(row.contact_id)) {
      Fail("an accepted row is not UTF-8");
    }
    if (!row.address.empty() &&
        (row.address.front() == ' ' || row.address.back() == ' ')) {
      Fail("the address was not trimmed");
    }
    for (const auto& [name, value] : row.variables) {
      if (!campaigns::IsValidUtf8(name) || !campaigns::IsValidUtf8(value)) {
        Fail("a variable is not UTF-8");
      }
    }
    try {
      (void)campaigns::VariablesToJson(row.variables);
    } catch (const std::exception&) {
      Fail("VariablesToJson threw");
    }
  }
  return 0;
}
