// PrometheusMetrics: the families behind the Metrics interface, the
// scrape-time gauges and the process_* series read from /proc.
#include "server/metrics/prometheus_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_split.h"
#include "prometheus/collectable.h"
#include "prometheus/text_serializer.h"
#include "server/domain/mutex.h"

namespace campaigns::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void AddGauge(MetricFamily* f, double value,
              std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  f->metric.push_back(std::move(m));
}

std::string ReadAll(const char* path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The process_* series of Prometheus' client libraries, from /proc.
void CollectProcess(std::vector<MetricFamily>* out) {
  static const long ticks = sysconf(_SC_CLK_TCK);
  static const long page = sysconf(_SC_PAGESIZE);
  const std::string stat = ReadAll("/proc/self/stat");
  const size_t paren = stat.rfind(')');
  if (paren != std::string::npos && ticks > 0) {
    // Fields after "pid (comm)": state is field 3; utime 14, stime 15,
    // starttime 22, vsize 23, rss 24 (1-based, as in proc(5)).
    std::vector<std::string> f =
        absl::StrSplit(stat.substr(paren + 2), ' ', absl::SkipEmpty());
    auto field = [&](int n) -> double {
      const size_t i = static_cast<size_t>(n - 3);
      return i < f.size() ? std::strtod(f[i].c_str(), nullptr) : 0.0;
    };
    MetricFamily cpu =
        Family("process_cpu_seconds_total",
               "Total user and system CPU time spent in seconds.",
               MetricType::Counter);
    ClientMetric c;
    c.counter.value = (field(14) + field(15)) / static_cast<double>(ticks);
    cpu.metric.push_back(std::move(c));
    out->push_back(std::move(cpu));
    MetricFamily rss =
        Family("process_resident_memory_bytes",
               "Resident memory size in bytes.", MetricType::Gauge);
    AddGauge(&rss, field(24) * static_cast<double>(page));
    out->push_back(std::move(rss));
    MetricFamily vsize =
        Family("process_virtual_memory_bytes", "Virtual memory size in bytes.",
               MetricType::Gauge);
    AddGauge(&vsize, field(23));
    out->push_back(std::move(vsize));
    // starttime is in ticks since boot; btime (in /proc/stat) is the boot.
    const std::string proc_stat = ReadAll("/proc/stat");
    const size_t btime = proc_stat.find("\nbtime ");
    if (btime != std::string::npos) {
      MetricFamily start =
          Family("process_start_time_seconds",
                 "Start time of the process since unix epoch in seconds.",
                 MetricType::Gauge);
      AddGauge(&start, std::strtod(proc_stat.c_str() + btime + 7, nullptr) +
                           field(22) / static_cast<double>(ticks));
      out->push_back(std::move(start));
    }
  }
  if (DIR* d = opendir("/proc/self/fd")) {
    int fds = 0;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') ++fds;
    }
    closedir(d);
    MetricFamily open_fds =
        Family("process_open_fds", "Number of open file descriptors.",
               MetricType::Gauge);
    AddGauge(&open_fds, fds - 1);  // less the directory being read
    out->push_back(std::move(open_fds));
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    MetricFamily max_fds =
        Family("process_max_fds", "Maximum number of open file descriptors.",
               MetricType::Gauge);
    AddGauge(&max_fds, static_cast<double>(limit.rlim_cur));
    out->push_back(std::move(max_fds));
  }
}

prometheus::Histogram::BucketBoundaries RpcBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,  0.5,    1,     2.5,  5,     10};
}

}  // namespace

// The series read at scrape time.
class PrometheusMetrics::ScrapeCollector final
    : public prometheus::Collectable {
 public:
  ScrapeCollector(std::string version, std::string commit)
      : version_(std::move(version)), commit_(std::move(commit)) {}

  void SetSource(std::function<ScrapeState()> source) {
    MutexLock lock(&mu_);
    source_ = std::move(source);
  }

  std::vector<MetricFamily> Collect() const override {
    std::vector<MetricFamily> out;
    MetricFamily build = Family(
        "campaignd_build_info",
        "The running build: 1, labelled with its version and git commit.",
        MetricType::Gauge);
    AddGauge(&build, 1, {{"commit", commit_}, {"version", version_}});
    out.push_back(std::move(build));

    std::function<ScrapeState()> source;
    {
      MutexLock lock(&mu_);
      source = source_;
    }
    if (source) {
      const ScrapeState s = source();
      MetricFamily providers =
          Family("campaignd_provider_state",
                 "1 when the provider can send, 0 when it is unusable (refused "
                 "credentials, circuit open, not configured).",
                 MetricType::Gauge);
      for (const auto& [name, ok] : s.providers) {
        AddGauge(&providers, ok ? 1 : 0, {{"provider", name}});
      }
      out.push_back(std::move(providers));
      if (s.campaigns_by_status) {
        MetricFamily campaigns = Family(
            "campaignd_campaigns", "Campaigns by status.", MetricType::Gauge);
        for (int i = 1; i <= kCampaignStatusMax; ++i) {
          const std::string status(
              CampaignStatusName(static_cast<CampaignStatus>(i)));
          auto it = s.campaigns_by_status->find(status);
          AddGauge(&campaigns,
                   it == s.campaigns_by_status->end()
                       ? 0
                       : static_cast<double>(it->second),
                   {{"status", status}});
        }
        out.push_back(std::move(campaigns));
      }
      if (s.recipients_queued) {
        MetricFamily queued =
            Family("campaignd_recipients_queued",
                   "Recipients waiting to be sent, in every campaign (from the "
                   "campaigns' counters).",
                   MetricType::Gauge);
        AddGauge(&queued, static_cast<double>(*s.recipients_queued));
        out.push_back(std::move(queued));
      }
      MetricFamily depth = Family(
          "campaignd_storage_queue_depth",
          "Writes queued for the storage writer thread.", MetricType::Gauge);
      AddGauge(&depth, static_cast<double>(s.storage_queue_depth));
      out.push_back(std::move(depth));
    }
    CollectProcess(&out);
    return out;
  }

 private:
  const std::string version_;
  const std::string commit_;
  mutable Mutex mu_;
  std::function<ScrapeState()> source_ ABSL_GUARDED_BY(mu_);
};

PrometheusMetrics::PrometheusMetrics(const std::string& version,
                                     const std::string& commit)
    : registry_(std::make_shared<prometheus::Registry>()),
      rpc_requests_(prometheus::BuildCounter()
                        .Name("campaignd_rpc_requests_total")
                        .Help("gRPC calls answered, by method and status code.")
                        .Register(*registry_)),
      rpc_duration_(prometheus::BuildHistogram()
                        .Name("campaignd_rpc_duration_seconds")
                        .Help("Time from a call's arrival to its answer.")
                        .Register(*registry_)),
      http_requests_(prometheus::BuildCounter()
                         .Name("campaignd_http_requests_total")
                         .Help("Requests to the operator HTTP listener, by "
                               "route and HTTP status.")
                         .Register(*registry_)),
      import_rows_(prometheus::BuildCounter()
                       .Name("campaignd_import_rows_total")
                       .Help("Rows of committed imports, by what became of "
                             "them.")
                       .Register(*registry_)),
      messages_(prometheus::BuildCounter()
                    .Name("campaignd_messages_total")
                    .Help("Messages by provider, channel and outcome of the "
                          "attempt.")
                    .Register(*registry_)),
      provider_duration_(
          prometheus::BuildHistogram()
              .Name("campaignd_provider_request_duration_seconds")
              .Help("Time from handing a batch to a provider to "
                    "its answer.")
              .Register(*registry_)),
      receipts_(prometheus::BuildCounter()
                    .Name("campaignd_receipts_total")
                    .Help("Delivery receipts by what they did.")
                    .Register(*registry_)),
      commit_duration_(prometheus::BuildHistogram()
                           .Name("campaignd_storage_commit_duration_seconds")
                           .Help("Storage transactions, BEGIN to COMMIT.")
                           .Register(*registry_)
                           .Add({},
                                prometheus::Histogram::BucketBoundaries{
                                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                    0.05, 0.1, 0.25, 0.5, 1, 2.5})),
      batch_ops_(prometheus::BuildHistogram()
                     .Name("campaignd_storage_batch_ops")
                     .Help("Operations group-committed per storage "
                           "transaction.")
                     .Register(*registry_)
                     .Add({},
                          prometheus::Histogram::BucketBoundaries{
                              1, 2, 5, 10, 25, 50, 100, 250, 500, 1000})),
      watch_streams_(prometheus::BuildGauge()
                         .Name("campaignd_watch_streams")
                         .Help("Open WatchCampaign streams.")
                         .Register(*registry_)
                         .Add({})),
      scrape_(std::make_unique<ScrapeCollector>(version, commit)) {}

PrometheusMetrics::~PrometheusMetrics() = default;

void PrometheusMetrics::SetScrapeSource(std::function<ScrapeState()> source) {
  scrape_->SetSource(std::move(source));
}

std::string PrometheusMetrics::Exposition() {
  std::vector<MetricFamily> families = registry_->Collect();
  std::vector<MetricFamily> more = scrape_->Collect();
  families.insert(families.end(), std::make_move_iterator(more.begin()),
                  std::make_move_iterator(more.end()));
  return prometheus::TextSerializer().Serialize(families);
}

void PrometheusMetrics::RpcHandled(absl::string_view method,
                                   absl::StatusCode code, absl::Duration took) {
  const std::string m(method);
  rpc_requests_.Add({{"method", m}, {"code", absl::StatusCodeToString(code)}})
      .Increment();
  rpc_duration_.Add({{"method", m}}, RpcBuckets())
      .Observe(absl::ToDoubleSeconds(took));
}

void PrometheusMetrics::HttpHandled(absl::string_view path, int status) {
  http_requests_
      .Add({{"path", std::string(path)}, {"code", std::to_string(status)}})
      .Increment();
}

void PrometheusMetrics::ImportRows(ImportRowResult result, int64_t rows) {
  if (rows <= 0) return;
  import_rows_.Add({{"result", std::string(ImportRowResultName(result))}})
      .Increment(static_cast<double>(rows));
}

void PrometheusMetrics::Messages(absl::string_view provider, Channel channel,
                                 MessageOutcome outcome, int64_t count) {
  if (count <= 0) return;
  messages_
      .Add({{"provider", std::string(provider)},
            {"channel", std::string(ChannelName(channel))},
            {"outcome", std::string(MessageOutcomeName(outcome))}})
      .Increment(static_cast<double>(count));
}

void PrometheusMetrics::ProviderCall(absl::string_view provider,
                                     absl::Duration took) {
  provider_duration_
      .Add({{"provider", std::string(provider)}},
           prometheus::Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.025,
                                                   0.05, 0.1, 0.25, 0.5, 1, 2.5,
                                                   5, 10, 30})
      .Observe(absl::ToDoubleSeconds(took));
}

void PrometheusMetrics::Receipts(ReceiptOutcome outcome, int64_t count) {
  if (count <= 0) return;
  receipts_.Add({{"status", std::string(ReceiptOutcomeName(outcome))}})
      .Increment(static_cast<double>(count));
}

void PrometheusMetrics::StorageCommit(absl::Duration took, int64_t ops) {
  commit_duration_.Observe(absl::ToDoubleSeconds(took));
  batch_ops_.Observe(static_cast<double>(ops));
}

void PrometheusMetrics::WatchStreams(int delta) {
  watch_streams_.Increment(delta);
}

}  // namespace campaigns::metrics
