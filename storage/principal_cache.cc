// PrincipalCache: an LRU list and a map into it, under one lock
// (principal_cache.h).
#include "storage/principal_cache.h"

namespace campaigns::storage {

std::optional<Principal> PrincipalCache::Get(const std::string& key_hash,
                                             absl::Time now) {
  MutexLock lock(&mu_);
  auto it = by_hash_.find(key_hash);
  if (it == by_hash_.end()) return std::nullopt;
  if (now - it->second->stored > max_age_) {
    lru_.erase(it->second);
    by_hash_.erase(it);
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->principal;
}

uint64_t PrincipalCache::Generation() {
  MutexLock lock(&mu_);
  return generation_;
}

void PrincipalCache::Put(const std::string& key_hash,
                         const Principal& principal, uint64_t generation,
                         absl::Time now) {
  MutexLock lock(&mu_);
  if (generation != generation_ || capacity_ == 0) return;
  auto it = by_hash_.find(key_hash);
  if (it != by_hash_.end()) {
    it->second->principal = principal;
    it->second->stored = now;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  while (lru_.size() >= capacity_) {
    by_hash_.erase(lru_.back().key_hash);
    lru_.pop_back();
  }
  lru_.push_front(Entry{key_hash, principal, now});
  by_hash_.emplace(key_hash, lru_.begin());
}

void PrincipalCache::InvalidateKey(const std::string& key_id) {
  MutexLock lock(&mu_);
  ++generation_;
  for (auto it = lru_.begin(); it != lru_.end();) {
    if (it->principal.key_id == key_id) {
      by_hash_.erase(it->key_hash);
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
}

void PrincipalCache::InvalidateAll() {
  MutexLock lock(&mu_);
  ++generation_;
  lru_.clear();
  by_hash_.clear();
}

size_t PrincipalCache::size() {
  MutexLock lock(&mu_);
  return lru_.size();
}

}  // namespace campaigns::storage
