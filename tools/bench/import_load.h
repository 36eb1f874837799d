// The import load shared by the benchmarks in tools/bench: synthetic
// recipients (numbers of eight countries, written in national or
// international form; 2 % duplicates, 1 % invalid, 1 % marked to suppress),
// their CSV, and the CSV streamed through ImportRecipients. Functions only,
// no state.
//
//   const std::vector<Row> rows = Generate(1000000, /*seed=*/42);
//   v1::ImportRecipientsResponse response;
//   grpc::Status s = StreamImport(stub.get(), key, campaign_id, Csv(rows),
//                                 &response);
#ifndef CAMPAIGND_TOOLS_BENCH_IMPORT_LOAD_H_
#define CAMPAIGND_TOOLS_BENCH_IMPORT_LOAD_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "campaigns/v1/campaign.grpc.pb.h"
#include "server/domain/address.h"

namespace campaigns::bench {

// One generated recipient.
struct Row {
  std::string raw;  // as written in the CSV
  std::string name;
  bool suppressed = false;
};

// `n` recipients, the same for the same seed. National-format prefixes of
// valid numbers, per region, and how many digits follow: written without a
// country code they are parsed with the default region US only for US rows;
// other rows carry their +CC.
inline std::vector<Row> Generate(int64_t n, uint32_t seed) {
  struct Plan {
    const char* prefix;  // E.164 prefix or US national prefix
    int digits;
  };
  // Each plan has room for at least 10M numbers (its digits after the
  // prefix, less the few the numbering plan refuses), so the generated
  // numbers do not repeat below 80M rows: duplicates stay the 2 % made on
  // purpose at every size.
  const std::vector<Plan> plans = {
      {"(202) ", 7},     // US national form, region US
      {"+1 415 ", 7},    // US
      {"+44 79", 8},     // GB mobile
      {"+49 151 2", 7},  // DE mobile
      {"+33 6 ", 8},     // FR mobile
      {"+91 98", 8},     // IN mobile
      {"+55 11 9", 8},   // BR mobile
      {"+61 4 ", 8},     // AU mobile
  };
  std::mt19937 rng(seed);
  std::vector<Row> rows;
  rows.reserve(n);
  std::vector<int64_t> counters(plans.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t dice = rng() % 100;
    Row r;
    r.name = absl::StrCat("user", i);
    if (dice < 2 && i > 0) {
      r.raw = rows[rng() % rows.size()].raw;  // duplicate
    } else if (dice < 3) {
      r.raw = absl::StrCat("+1 555 ", rng() % 1000);  // invalid
    } else {
      const size_t p = i % plans.size();
      const Plan& plan = plans[p];
      int64_t mod = 1;
      for (int d = 0; d < plan.digits; ++d) mod *= 10;
      // The digits after the prefix, spread so neighbours differ; skip the
      // few the region's numbering plan does not allow.
      do {
        const int64_t value = (counters[p]++ * 7919) % mod;
        r.raw = absl::StrFormat("%s%0*d", plan.prefix, plan.digits, value);
      } while (
          !campaigns::NormalizeAddress(campaigns::Channel::kSms, r.raw, "US")
               .ok());
      r.suppressed = dice < 4;
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

// `rows` as import CSV: header phone,name,code.
inline std::string Csv(const std::vector<Row>& rows) {
  std::string out = "phone,name,code\n";
  for (const Row& r : rows) {
    absl::StrAppend(&out, "\"", r.raw, "\",", r.name, ",C", r.name.size(),
                    "\n");
  }
  return out;
}

// Streams `csv` in 64 KB chunks through ImportRecipients into campaign
// `campaign_id` (default region US), as `key`; the call's status, and its
// answer in `response`.
inline grpc::Status StreamImport(
    campaigns::v1::CampaignService::Stub* stub, const std::string& key,
    const std::string& campaign_id, const std::string& csv,
    campaigns::v1::ImportRecipientsResponse* response) {
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", absl::StrCat("Bearer ", key));
  auto writer = stub->ImportRecipients(&ctx, response);
  campaigns::v1::ImportRecipientsRequest first;
  first.set_campaign_id(campaign_id);
  first.set_format(campaigns::v1::ImportRecipientsRequest::csv);
  first.set_default_region("US");
  writer->Write(first);
  constexpr size_t kChunk = 64 * 1024;
  for (size_t off = 0; off < csv.size(); off += kChunk) {
    campaigns::v1::ImportRecipientsRequest chunk;
    chunk.set_csv_chunk(csv.substr(off, kChunk));
    if (!writer->Write(chunk)) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

}  // namespace campaigns::bench

#endif  // CAMPAIGND_TOOLS_BENCH_IMPORT_LOAD_H_
