// PrincipalCache: the principals of API keys that recently authenticated,
// by the SHA-256 of their secret, so that a call need not read SQLite to
// authenticate (Store::Authenticate).
//
// Only keys that authenticated are cached: an unknown key is looked up
// every time (a cache of misses would grow with every guess, and a key
// created later must work at once). Bounded: at most `capacity` keys, the
// least recently used dropped first; an entry older than `max_age` is not
// used (a backstop for changes this process cannot see, e.g. another
// process writing the file; every revocation through the Store invalidates
// at once).
//
// A revocation must not be undone by a lookup that read the database before
// it committed and stores its (valid) answer after: Put takes the
// Generation() read before the database was, and is ignored when any
// invalidation happened since.
//
//   const uint64_t generation = cache.Generation();
//   std::optional<Principal> p = cache.Get(hash);
//   if (!p) {
//     p = ...read the database...;
//     cache.Put(hash, *p, generation);
//   }
//   ...
//   // After the revocation committed, before anyone is told of it:
//   cache.InvalidateKey(key_id);
//
// Thread-safe.
#ifndef CAMPAIGND_STORAGE_PRINCIPAL_CACHE_H_
#define CAMPAIGND_STORAGE_PRINCIPAL_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/domain/model.h"
#include "server/domain/mutex.h"

namespace campaigns::storage {

class PrincipalCache {
 public:
  static constexpr size_t kDefaultCapacity = 10000;
  static constexpr absl::Duration kDefaultMaxAge = absl::Minutes(1);

  // `capacity` 0 caches nothing.
  explicit PrincipalCache(size_t capacity = kDefaultCapacity,
                          absl::Duration max_age = kDefaultMaxAge)
      : capacity_(capacity), max_age_(max_age) {}
  PrincipalCache(const PrincipalCache&) = delete;
  PrincipalCache& operator=(const PrincipalCache&) = delete;

  // The cached principal of the key whose secret hashes to `key_hash`, if
  // any and not older than max_age at `now`.
  std::optional<Principal> Get(const std::string& key_hash,
                               absl::Time now = absl::Now())
      ABSL_LOCKS_EXCLUDED(mu_);

  // Changes with every invalidation. Read it before reading the database.
  uint64_t Generation() ABSL_LOCKS_EXCLUDED(mu_);

  // Caches `principal` for `key_hash` as read at `now`, unless an
  // invalidation happened after `generation` was read.
  void Put(const std::string& key_hash, const Principal& principal,
           uint64_t generation, absl::Time now = absl::Now())
      ABSL_LOCKS_EXCLUDED(mu_);

  // Forgets key `key_id` (a revocation) and voids every Put of an earlier
  // generation. Returns when no Get can answer it any more.
  void InvalidateKey(const std::string& key_id) ABSL_LOCKS_EXCLUDED(mu_);

  // Forgets every key, and voids every Put of an earlier generation.
  void InvalidateAll() ABSL_LOCKS_EXCLUDED(mu_);

  // Keys cached.
  size_t size() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    std::string key_hash;
    Principal principal;
    absl::Time stored;
  };
  using Lru = std::list<Entry>;  // most recently used first

  const size_t capacity_;
  const absl::Duration max_age_;
  Mutex mu_;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  Lru lru_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, Lru::iterator> by_hash_ ABSL_GUARDED_BY(mu_);
};

}  // namespace campaigns::storage

#endif  // CAMPAIGND_STORAGE_PRINCIPAL_CACHE_H_
