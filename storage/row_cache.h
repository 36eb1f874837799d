// RowCache<Value>: values read from the database, by a string key, so that
// a hot read need not open a read transaction. Bounded: at most `capacity`
// entries, the least recently used dropped first; an entry older than
// `max_age` is not used (a backstop for changes this process cannot see,
// e.g. another process writing the file).
//
// Every write of what a value was read from must invalidate: an
// invalidation forgets entries and voids every Put whose Generation() was
// read before it. A reader therefore reads the generation before it reads
// the database, so a value it read before a change committed is never
// stored after the invalidation that change made:
//
//   const uint64_t generation = cache.Generation();
//   if (std::optional<V> v = cache.Get(key)) return *v;
//   V v = ...read the database...;
//   cache.Put(key, v, generation);
//   ...
//   // After the change committed, before anyone is told of it:
//   cache.InvalidateAll();
//
// Thread-safe.
#ifndef CAMPAIGND_STORAGE_ROW_CACHE_H_
#define CAMPAIGND_STORAGE_ROW_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/domain/mutex.h"

namespace campaigns::storage {

template <typename Value>
class RowCache {
 public:
  // `capacity` 0 caches nothing.
  RowCache(size_t capacity, absl::Duration max_age)
      : capacity_(capacity), max_age_(max_age) {}
  RowCache(const RowCache&) = delete;
  RowCache& operator=(const RowCache&) = delete;

  // The value cached for `key`, if any and not older than max_age at `now`.
  std::optional<Value> Get(const std::string& key, absl::Time now = absl::Now())
      ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    auto it = by_key_.find(key);
    if (it == by_key_.end()) return std::nullopt;
    if (now - it->second->stored > max_age_) {
      lru_.erase(it->second);
      by_key_.erase(it);
      return std::nullopt;
    }
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->value;
  }

  // Changes with every invalidation. Read it before reading the database.
  uint64_t Generation() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return generation_;
  }

  // Caches `value` for `key` as read at `now`, unless an invalidation
  // happened after `generation` was read.
  void Put(const std::string& key, const Value& value, uint64_t generation,
           absl::Time now = absl::Now()) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    if (generation != generation_ || capacity_ == 0) return;
    auto it = by_key_.find(key);
    if (it != by_key_.end()) {
      it->second->value = value;
      it->second->stored = now;
      lru_.splice(lru_.begin(), lru_, it->second);
      return;
    }
    while (lru_.size() >= capacity_) {
      by_key_.erase(lru_.back().key);
      lru_.pop_back();
    }
    lru_.push_front(Entry{key, value, now});
    by_key_.emplace(key, lru_.begin());
  }

  // Forgets the entries whose value matches, and voids every Put of an
  // earlier generation. Returns when no Get can answer them any more.
  void InvalidateIf(const std::function<bool(const Value&)>& matches)
      ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    ++generation_;
    for (auto it = lru_.begin(); it != lru_.end();) {
      if (matches(it->value)) {
        by_key_.erase(it->key);
        it = lru_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // Forgets every entry, and voids every Put of an earlier generation.
  void InvalidateAll() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    ++generation_;
    lru_.clear();
    by_key_.clear();
  }

  // Entries cached.
  size_t size() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return lru_.size();
  }

 private:
  struct Entry {
    std::string key;
    Value value;
    absl::Time stored;
  };
  using Lru = std::list<Entry>;  // most recently used first

  const size_t capacity_;
  const absl::Duration max_age_;
  Mutex mu_;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  Lru lru_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, typename Lru::iterator> by_key_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace campaigns::storage

#endif  // CAMPAIGND_STORAGE_ROW_CACHE_H_
