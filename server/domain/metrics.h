// Metrics: what campaignd counts and times, as an interface the layers call
// (injected like dispatch::Timer), so that storage, dispatch and api never
// see prometheus-cpp. The base class records nothing; server/metrics/
// implements it for Prometheus.
//
//   Metrics* metrics = options.metrics ? options.metrics : Metrics::None();
//   metrics->Messages("meta", Channel::kWhatsapp, MessageOutcome::kAccepted,
//   50);
//
// Label values come from small fixed sets (method names, provider names from
// the config, enum names), never from ids, addresses or keys.
//
// Implementations are thread-safe and never block on I/O: every method may be
// called from any thread, including the storage writer and CQ threads.
#ifndef CAMPAIGND_SERVER_DOMAIN_METRICS_H_
#define CAMPAIGND_SERVER_DOMAIN_METRICS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/domain/types.h"

namespace campaigns {

// What happened to messages handed to (or settled without) a provider.
enum class MessageOutcome {
  kAccepted,   // the provider took it
  kTransient,  // to be retried
  kPermanent,  // failed for good
  kSkipped,    // settled without a provider call (suppressed, expired, ...)
  kDuplicate,  // the provider had it already (same idempotency key)
};
absl::string_view MessageOutcomeName(MessageOutcome o);

// What an import did with each row.
enum class ImportRowResult { kImported, kDuplicate, kInvalid, kSuppressed };
absl::string_view ImportRowResultName(ImportRowResult r);

// What a delivery receipt did.
enum class ReceiptOutcome { kDelivered, kRead, kFailed, kUnmatched, kIgnored };
absl::string_view ReceiptOutcomeName(ReceiptOutcome r);

class Metrics {
 public:
  virtual ~Metrics() = default;

  // A stateless instance that records nothing.
  static Metrics* None();

  // An RPC answered (`method`: its name, e.g. "GetCampaign").
  virtual void RpcHandled(absl::string_view /*method*/,
                          absl::StatusCode /*code*/, absl::Duration /*took*/) {}
  // An operator HTTP request answered (`path`: a route, e.g. "/readyz").
  virtual void HttpHandled(absl::string_view /*path*/, int /*status*/) {}
  // Rows of a committed import.
  virtual void ImportRows(ImportRowResult /*result*/, int64_t /*rows*/) {}
  virtual void Messages(absl::string_view /*provider*/, Channel /*channel*/,
                        MessageOutcome /*outcome*/, int64_t /*count*/) {}
  // One Provider::Send call, from the call to its answer.
  virtual void ProviderCall(absl::string_view /*provider*/,
                            absl::Duration /*took*/) {}
  virtual void Receipts(ReceiptOutcome /*outcome*/, int64_t /*count*/) {}
  // One storage transaction of `ops` operations, BEGIN to COMMIT.
  virtual void StorageCommit(absl::Duration /*took*/, int64_t /*ops*/) {}
  // A Watch stream opened (+1) or ended (-1).
  virtual void WatchStreams(int /*delta*/) {}
};

}  // namespace campaigns

#endif  // CAMPAIGND_SERVER_DOMAIN_METRICS_H_
