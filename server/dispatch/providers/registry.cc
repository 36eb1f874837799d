// ProviderRegistry: the configured providers by name, and their state.
#include "server/dispatch/providers/registry.h"

#include "absl/strings/str_cat.h"
#include "server/dispatch/providers/failover.h"
#include "server/domain/utf8.h"

namespace campaigns::dispatch {

absl::StatusOr<std::unique_ptr<ProviderRegistry>> ProviderRegistry::Create(
    Provider* simulator, const std::vector<config::ProviderConfig>& configs,
    const ProviderFactories& factories, ProviderEnv env) {
  std::unique_ptr<ProviderRegistry> r(new ProviderRegistry());
  env.registry = r.get();
  std::vector<State> states;
  {
    Entry sim;
    sim.name = kSimulatorProvider;
    sim.type = "simulator";
    sim.channels = config::ChannelsOfType("simulator");
    sim.provider = simulator;
    r->by_name_.emplace(sim.name, 0);
    r->entries_.push_back(std::move(sim));
    states.push_back(State());
  }
  for (const config::ProviderConfig& c : configs) {
    if (!r->by_name_.emplace(c.name, r->entries_.size()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("provider name \"", c.name, "\" is used twice"));
    }
    Entry e;
    e.name = c.name;
    e.type = c.type;
    e.fallback = c.fallback;
    e.channels =
        c.channels.empty() ? config::ChannelsOfType(c.type) : c.channels;
    State state;
    auto factory = factories.find(c.type);
    if (factory == factories.end()) {
      state.state = ProviderState::kUnusable;
      state.reason =
          absl::StrCat("type \"", c.type, "\" is not available in this build");
    }
    r->entries_.push_back(std::move(e));
    states.push_back(std::move(state));
  }
  {
    MutexLock lock(&r->mu_);
    r->states_ = std::move(states);
  }
  // Adapters are built once every entry exists, so one may report its state
  // (SetState) from its factory.
  for (size_t i = 0; i < configs.size(); ++i) {
    const config::ProviderConfig& c = configs[i];
    Entry& e = r->entries_[i + 1];
    auto factory = factories.find(e.type);
    if (factory == factories.end()) continue;
    absl::StatusOr<std::unique_ptr<Provider>> p = factory->second(c, env);
    if (!p.ok()) {
      return absl::Status(
          p.status().code(),
          absl::StrCat("provider \"", e.name, "\": ", p.status().message()));
    }
    e.owned = *std::move(p);
    if (!c.fallback.empty()) {
      // The fallback is looked up when needed: it may be built after this.
      FailoverOptions o;
      o.name = c.name;
      o.fallback = c.fallback;
      o.circuit_failures = c.circuit_failures;
      o.circuit_probe = c.circuit_probe;
      e.owned = std::make_unique<Failover>(std::move(e.owned), std::move(o),
                                           r.get(), env.timer);
    }
    e.provider = e.owned.get();
  }
  return r;
}

Provider* ProviderRegistry::Lookup(const std::string& name) const {
  if (stopped_.load()) return nullptr;
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : entries_[it->second].provider;
}

std::vector<std::string> ProviderRegistry::SendingThrough(
    const std::string& name) const {
  std::vector<std::string> out = {name};
  for (const Entry& e : entries_) {
    // Chains are acyclic (config::Load checks), so this walk ends.
    for (std::string next = e.fallback; !next.empty();) {
      if (next == name) {
        out.push_back(e.name);
        break;
      }
      auto it = by_name_.find(next);
      next = it == by_name_.end() ? "" : entries_[it->second].fallback;
    }
  }
  return out;
}

void ProviderRegistry::StopAdapters() {
  // Lookup answers null first, so that what an adapter answers while it
  // ends (a Failover looks up its fallback) reaches no adapter ended before.
  if (stopped_.exchange(true)) return;
  // Each provider ends before its fallback: once it has ended (its threads
  // joined, its pending messages answered), nothing hands the fallback
  // more. Chains are acyclic (config::Load checks), so every round ends
  // one at least.
  std::vector<bool> ended(entries_.size(), false);
  for (size_t left = entries_.size(); left > 0;) {
    const size_t before = left;
    for (size_t i = 0; i < entries_.size(); ++i) {
      if (ended[i]) continue;
      bool needed = false;  // a live provider falls back on it
      for (size_t j = 0; j < entries_.size() && !needed; ++j) {
        needed =
            !ended[j] && j != i && entries_[j].fallback == entries_[i].name;
      }
      if (needed) continue;
      entries_[i].owned.reset();
      ended[i] = true;
      --left;
    }
    if (left == before) {  // a cycle after all: end the rest anyway
      for (Entry& e : entries_) e.owned.reset();
      break;
    }
  }
}

absl::Status ProviderRegistry::SetState(absl::string_view name,
                                        ProviderState state,
                                        std::string reason) {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) {
    return absl::NotFoundError(absl::StrCat("no provider \"", name, "\""));
  }
  // Often a provider's own error text: ListProviders serves it, so it is
  // mended to valid UTF-8 as every provider text is (utf8.h).
  MendUtf8(&reason);
  MutexLock lock(&mu_);
  states_[it->second] = State{state, std::move(reason)};
  return absl::OkStatus();
}

ProviderInfo ProviderRegistry::InfoOf(size_t i) const {
  ProviderInfo info;
  info.name = entries_[i].name;
  info.type = entries_[i].type;
  info.channels = entries_[i].channels;
  info.state = states_[i].state;
  info.reason = states_[i].reason;
  info.fallback = entries_[i].fallback;
  return info;
}

std::optional<ProviderInfo> ProviderRegistry::Find(
    absl::string_view name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return std::nullopt;
  MutexLock lock(&mu_);
  return InfoOf(it->second);
}

std::vector<ProviderInfo> ProviderRegistry::List() const {
  std::vector<ProviderInfo> out;
  MutexLock lock(&mu_);
  out.reserve(entries_.size());
  for (size_t i = 0; i < entries_.size(); ++i) out.push_back(InfoOf(i));
  return out;
}

}  // namespace campaigns::dispatch
