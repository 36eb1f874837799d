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
// A RowCache (row_cache.h) with the principal's key id as what a
// revocation matches. Thread-safe.
#ifndef CAMPAIGND_STORAGE_PRINCIPAL_CACHE_H_
#define CAMPAIGND_STORAGE_PRINCIPAL_CACHE_H_

#include <cstddef>
#include <string>

#include "absl/time/time.h"
#include "server/domain/model.h"
#include "storage/row_cache.h"

namespace campaigns::storage {

class PrincipalCache : public RowCache<Principal> {
 public:
  static constexpr size_t kDefaultCapacity = 10000;
  static constexpr absl::Duration kDefaultMaxAge = absl::Minutes(1);

  explicit PrincipalCache(size_t capacity = kDefaultCapacity,
                          absl::Duration max_age = kDefaultMaxAge)
      : RowCache<Principal>(capacity, max_age) {}

  // Forgets key `key_id` (a revocation) and voids every Put of an earlier
  // generation. Returns when no Get can answer it any more.
  void InvalidateKey(const std::string& key_id) {
    InvalidateIf([&](const Principal& p) { return p.key_id == key_id; });
  }
};

}  // namespace campaigns::storage

#endif  // CAMPAIGND_STORAGE_PRINCIPAL_CACHE_H_
