// InstanceLock: one campaignd at a time on an SQLite database. SQLite keeps
// no record of who sends what, so two processes on one file would both
// dispatch the same campaigns; the second start is refused instead. (Several
// instances share work through PostgreSQL.)
//
// The lock is an flock(2) on "<database>-instance" (the database's path with
// symlinks resolved, so two spellings of one file meet; a hard link does
// not), which holds the pid of its owner for the message. The kernel releases
// it when the process ends, however it ends (kill -9 included): no stale lock
// outlives its process.
//
// Not thread-safe; move-only. Released by the destructor.
#ifndef CAMPAIGND_STORAGE_SQLITE_INSTANCE_LOCK_H_
#define CAMPAIGND_STORAGE_SQLITE_INSTANCE_LOCK_H_

#include <string>

#include "absl/status/statusor.h"

namespace campaigns::storage {

class InstanceLock {
 public:
  // Takes the lock of the database at `db_path`. FAILED_PRECONDITION naming
  // the holder's pid when another process holds it; the error of the file
  // otherwise (e.g. its directory is missing).
  static absl::StatusOr<InstanceLock> Acquire(const std::string& db_path);

  InstanceLock(InstanceLock&& other) noexcept;
  InstanceLock& operator=(InstanceLock&& other) noexcept;
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;
  ~InstanceLock();

  const std::string& path() const { return path_; }

 private:
  InstanceLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
};

}  // namespace campaigns::storage

#endif  // CAMPAIGND_STORAGE_SQLITE_INSTANCE_LOCK_H_
