// PrometheusMetrics: the Metrics interface on prometheus-cpp (Debian's
// prometheus-cpp-dev, core only: the exposition is served by campaignd's own
// HTTP listener at /metrics, not by prometheus-cpp's civetweb).
//
//   PrometheusMetrics metrics("0.1.0", "2b73bcb");
//   metrics.SetScrapeSource([&] { return state_now(); });
//   engine_options.metrics = &metrics;
//   ...
//   std::string text = metrics.Exposition();   // GET /metrics
//
// Counters and histograms are updated as the work happens. Gauges that are
// a state rather than a count (campaigns by status, queued recipients,
// provider states, the writer's queue) are read from their owner when
// scraped: from the campaigns' own counters, never by scanning recipients.
// The process_* series (Prometheus' standard names) come from /proc.
//
// Thread-safe.
#ifndef CAMPAIGND_SERVER_METRICS_PROMETHEUS_METRICS_H_
#define CAMPAIGND_SERVER_METRICS_PROMETHEUS_METRICS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/domain/metrics.h"

namespace campaigns::metrics {

// The state the scrape reads from its owners.
struct ScrapeState {
  // Provider name -> usable (1) or not (0).
  std::vector<std::pair<std::string, bool>> providers;
  // Campaign status name ("sending", ...) -> campaigns; absent = 0. Unset
  // when the database could not be read (the series are left out).
  std::optional<std::map<std::string, int64_t>> campaigns_by_status;
  std::optional<int64_t> recipients_queued;
  // Writes waiting for the storage writer.
  int64_t storage_queue_depth = 0;
};

class PrometheusMetrics final : public Metrics {
 public:
  PrometheusMetrics(const std::string& version, const std::string& commit);
  ~PrometheusMetrics() override;

  // Where scrapes read the gauges above; set before serving (may be unset).
  void SetScrapeSource(std::function<ScrapeState()> source);

  // The exposition in Prometheus' text format (version 0.0.4).
  std::string Exposition();
  static constexpr char kContentType[] =
      "text/plain; version=0.0.4; charset=utf-8";

  void RpcHandled(absl::string_view method, absl::StatusCode code,
                  absl::Duration took) override;
  void HttpHandled(absl::string_view path, int status) override;
  void ImportRows(ImportRowResult result, int64_t rows) override;
  void Messages(absl::string_view provider, Channel channel,
                MessageOutcome outcome, int64_t count) override;
  void ProviderCall(absl::string_view provider, absl::Duration took) override;
  void Receipts(ReceiptOutcome outcome, int64_t count) override;
  void StorageCommit(absl::Duration took, int64_t ops) override;
  void WatchStreams(int delta) override;

 private:
  class ScrapeCollector;

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& rpc_requests_;
  prometheus::Family<prometheus::Histogram>& rpc_duration_;
  prometheus::Family<prometheus::Counter>& http_requests_;
  prometheus::Family<prometheus::Counter>& import_rows_;
  prometheus::Family<prometheus::Counter>& messages_;
  prometheus::Family<prometheus::Histogram>& provider_duration_;
  prometheus::Family<prometheus::Counter>& receipts_;
  prometheus::Histogram& commit_duration_;
  prometheus::Histogram& batch_ops_;
  prometheus::Gauge& watch_streams_;
  std::unique_ptr<ScrapeCollector> scrape_;
};

}  // namespace campaigns::metrics

#endif  // CAMPAIGND_SERVER_METRICS_PROMETHEUS_METRICS_H_
