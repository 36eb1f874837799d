#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "server/metrics/prometheus_metrics.h"

namespace campaigns::metrics {
namespace {

// "name{labels}" -> value, for every sample of an exposition.
std::map<std::string, double> Samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    double v = 0;
    EXPECT_TRUE(absl::SimpleAtod(line.substr(space + 1), &v)) << line;
    out[line.substr(0, space)] = v;
  }
  return out;
}

TEST(PrometheusMetricsTest, CountersAndHistogramsMoveWithTheWork) {
  PrometheusMetrics m("1.2.3", "abc123");
  m.RpcHandled("GetCampaign", absl::StatusCode::kOk, absl::Milliseconds(2));
  m.RpcHandled("GetCampaign", absl::StatusCode::kNotFound,
               absl::Milliseconds(1));
  m.ImportRows(ImportRowResult::kImported, 40);
  m.ImportRows(ImportRowResult::kDuplicate, 2);
  m.Messages("meta", Channel::kWhatsapp, MessageOutcome::kAccepted, 39);
  m.Messages("meta", Channel::kWhatsapp, MessageOutcome::kDuplicate, 1);
  m.ProviderCall("meta", absl::Milliseconds(30));
  m.Receipts(ReceiptOutcome::kUnmatched, 5);
  m.StorageCommit(absl::Milliseconds(3), 120);
  m.WatchStreams(1);
  m.WatchStreams(1);
  m.WatchStreams(-1);
  m.HttpHandled("/metrics", 200);
  std::map<std::string, double> s = Samples(m.Exposition());
  EXPECT_EQ(
      s["campaignd_rpc_requests_total{code=\"OK\",method=\"GetCampaign\"}"], 1);
  EXPECT_EQ(s["campaignd_rpc_requests_total{code=\"NOT_FOUND\",method="
              "\"GetCampaign\"}"],
            1);
  EXPECT_EQ(s["campaignd_rpc_duration_seconds_count{method=\"GetCampaign\"}"],
            2);
  EXPECT_EQ(s["campaignd_import_rows_total{result=\"imported\"}"], 40);
  EXPECT_EQ(s["campaignd_import_rows_total{result=\"duplicate\"}"], 2);
  EXPECT_EQ(s["campaignd_messages_total{channel=\"whatsapp\",outcome="
              "\"accepted\",provider=\"meta\"}"],
            39);
  EXPECT_EQ(s["campaignd_provider_request_duration_seconds_count{provider="
              "\"meta\"}"],
            1);
  EXPECT_EQ(s["campaignd_receipts_total{status=\"unmatched\"}"], 5);
  EXPECT_EQ(s["campaignd_storage_commit_duration_seconds_count"], 1);
  EXPECT_EQ(s["campaignd_storage_batch_ops_sum"], 120);
  EXPECT_EQ(s["campaignd_watch_streams"], 1);
  EXPECT_EQ(s["campaignd_http_requests_total{code=\"200\",path=\"/metrics\"}"],
            1);
  EXPECT_EQ(s["campaignd_build_info{commit=\"abc123\",version=\"1.2.3\"}"], 1);
  EXPECT_GT(s["process_resident_memory_bytes"], 0);
  EXPECT_GT(s["process_open_fds"], 0);
  EXPECT_GT(s["process_start_time_seconds"], 1.7e9);
  EXPECT_EQ(s.count("process_cpu_seconds_total"), 1u);
}

TEST(PrometheusMetricsTest, ScrapeTimeGaugesComeFromTheirSource) {
  PrometheusMetrics m("v", "c");
  // No source yet: the series are simply absent.
  EXPECT_EQ(Samples(m.Exposition()).count("campaignd_recipients_queued"), 0u);
  int scrapes = 0;
  m.SetScrapeSource([&] {
    ++scrapes;
    ScrapeState s;
    s.providers = {{"meta", true}, {"smsc", false}};
    s.campaigns_by_status = std::map<std::string, int64_t>{{"sending", 2}};
    s.recipients_queued = 1234;
    s.storage_queue_depth = 7;
    return s;
  });
  std::map<std::string, double> s = Samples(m.Exposition());
  EXPECT_EQ(scrapes, 1);
  EXPECT_EQ(s["campaignd_provider_state{provider=\"meta\"}"], 1);
  EXPECT_EQ(s["campaignd_provider_state{provider=\"smsc\"}"], 0);
  EXPECT_EQ(s["campaignd_campaigns{status=\"sending\"}"], 2);
  // Every status is present, 0 when none.
  EXPECT_EQ(s.count("campaignd_campaigns{status=\"draft\"}"), 1u);
  EXPECT_EQ(s["campaignd_campaigns{status=\"draft\"}"], 0);
  EXPECT_EQ(s["campaignd_recipients_queued"], 1234);
  EXPECT_EQ(s["campaignd_storage_queue_depth"], 7);
}

TEST(PrometheusMetricsTest, NoneRecordsNothingAndIsShared) {
  Metrics* none = Metrics::None();
  EXPECT_EQ(none, Metrics::None());
  none->Messages("x", Channel::kSms, MessageOutcome::kAccepted, 1);  // no-op
  EXPECT_EQ(MessageOutcomeName(MessageOutcome::kSkipped), "skipped");
  EXPECT_EQ(ImportRowResultName(ImportRowResult::kSuppressed), "suppressed");
  EXPECT_EQ(ReceiptOutcomeName(ReceiptOutcome::kIgnored), "ignored");
}

}  // namespace
}  // namespace campaigns::metrics
