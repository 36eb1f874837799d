// `campaignctl campaigns watch ID`: follows WatchCampaign, drawing one
// refreshed progress line on stderr (a line per update when stderr is not
// a terminal; JSON lines on stdout with --json), and prints a summary when
// the campaign reaches a final state.
#include <unistd.h>

#include <chrono>
#include <iostream>

#include "absl/strings/str_format.h"
#include "campaigns/v1/campaign.grpc.pb.h"
#include "client/commands.h"

namespace campaigns::client {
namespace {

struct WatchOptions {
  std::string id;
  double rate_hz = 4;
  bool no_progress = false;
};

std::string Bar(const v1::CampaignStats& s, int width) {
  if (s.total() <= 0) return std::string(width, ' ');
  const double done = static_cast<double>(s.total() - s.queued()) /
                      static_cast<double>(s.total());
  const int filled = static_cast<int>(done * width + 0.5);
  return std::string(filled, '#') + std::string(width - filled, '.');
}

std::string Eta(const v1::CampaignProgress& p) {
  if (!p.has_eta()) return "-";
  const int64_t s = p.eta().seconds();
  if (s >= 3600) return absl::StrFormat("%dh%02dm", s / 3600, s / 60 % 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

std::string Line(const v1::CampaignProgress& p) {
  const v1::CampaignStats& s = p.stats();
  return absl::StrFormat(
      "%-9s [%s] %d/%d  sent %d  delivered %d  read %d  failed %d  skipped "
      "%d  %.0f/s  eta %s",
      v1::Campaign::Status_Name(p.status()), Bar(s, 24), s.total() - s.queued(),
      s.total(), s.sent(), s.delivered(), s.read(), s.failed(), s.skipped(),
      p.rate_per_second(), Eta(p));
}

bool IsFinal(v1::Campaign::Status s) {
  return s == v1::Campaign::completed || s == v1::Campaign::cancelled ||
         s == v1::Campaign::failed;
}

int RunWatch(Env& env, const WatchOptions& opts) {
  const Client* client = env.client();
  if (client == nullptr) return kExitUsage;
  v1::CampaignService::Stub stub(client->channel());
  grpc::ClientContext ctx;
  client->PrepareContext(&ctx);
  // A watch lasts as long as the campaign: no call deadline.
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::hours(24 * 365));
  v1::WatchCampaignRequest req;
  req.set_id(opts.id);
  req.set_max_rate_hz(opts.rate_hz);
  auto reader = stub.WatchCampaign(&ctx, req);
  const bool tty = isatty(STDERR_FILENO) == 1;
  const bool live =
      !opts.no_progress && !env.options().json && !env.options().ids_only;
  const auto start = std::chrono::steady_clock::now();
  v1::CampaignProgress p;
  v1::CampaignProgress last;
  bool any = false;
  while (reader->Read(&p)) {
    any = true;
    last = p;
    if (env.options().json) {
      PrintJson(p, env.out());
    } else if (live) {
      env.err() << (tty ? "\r" : "") << Line(p) << (tty ? "   " : "\n")
                << std::flush;
    }
  }
  if (live && tty && any) env.err() << "\n";
  RpcStatus status =
      DecodeRpcStatus(reader->Finish(), ctx.GetServerTrailingMetadata());
  if (!status.ok()) return env.ReportFailure(status);
  if (env.options().ids_only) {
    env.out() << last.campaign_id() << "\n";
  } else if (!env.options().json) {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    const v1::CampaignStats& s = last.stats();
    env.out() << absl::StrFormat(
        "campaign %s %s: total %d, sent %d, delivered %d, read %d, failed %d, "
        "skipped %d (watched %.1fs)\n",
        last.campaign_id(), v1::Campaign::Status_Name(last.status()), s.total(),
        s.sent(), s.delivered(), s.read(), s.failed(), s.skipped(), secs);
    if (!last.failure_reason().empty()) {
      env.out() << "failure_reason: " << last.failure_reason() << "\n";
    }
  }
  return IsFinal(last.status()) ? kExitOk : kExitRpcError;
}

}  // namespace

void AddWatchCommand(CommandSet* commands, CLI::App* campaigns) {
  auto opts = std::make_shared<WatchOptions>();
  CLI::App* watch = commands->AddCommand(
      campaigns, "watch",
      "Follow a campaign live (progress bar: sent, delivered, failed, rate, "
      "ETA) until it is completed, cancelled or failed",
      [opts](Env& env) { return RunWatch(env, *opts); });
  watch->add_option("id", opts->id, "Campaign id (cmp_...)")->required();
  watch
      ->add_option("--rate-hz", opts->rate_hz,
                   "Most updates a second (default 4)")
      ->check(CLI::Range(0.1, 100.0));
  watch->add_flag("--no-progress", opts->no_progress,
                  "No progress line; only the summary");
}

}  // namespace campaigns::client
