// FaultVfs: a test-only SQLite VFS that counts reads, writes and syncs per
// file kind and makes the Nth one fail, the way SQLite's own test_vfs.c /
// test_devsym.c shims do. It wraps the default VFS and its sqlite3_io_methods;
// a database opened with DatabaseOptions::vfs = FaultVfs::kName goes through
// it. Never linked into campaignd.
//
//   FaultVfs& vfs = FaultVfs::Get();
//   vfs.Reset();                       // count from zero, nothing armed
//   RunScenario();                     // learn how many writes it does
//   int64_t n = vfs.Count(FaultOp::kWrite, FaultFile::kWal);
//   vfs.Arm({.op = FaultOp::kWrite, .file = FaultFile::kWal, .nth = 7,
//            .kind = FaultKind::kFull, .persistent = true});
//   RunScenario();                     // the 7th WAL write fails, and after
//   vfs.Clear();                       // it every one until cleared
//
// Thread-safe: SQLite calls it from any connection's thread.
#ifndef CAMPAIGND_TESTS_SUPPORT_FAULT_VFS_H_
#define CAMPAIGND_TESTS_SUPPORT_FAULT_VFS_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "server/domain/mutex.h"

namespace campaigns::testing {

enum class FaultOp { kRead = 0, kWrite = 1, kSync = 2 };
inline constexpr int kFaultOps = 3;

// Which file an operation is on. kAny matches all of them when arming or
// counting.
enum class FaultFile { kMain = 0, kWal = 1, kJournal = 2, kOther = 3, kAny };
inline constexpr int kFaultFiles = 4;

enum class FaultKind {
  kFull,       // SQLITE_FULL (a write or sync)
  kIoError,    // SQLITE_IOERR_READ / _WRITE / _FSYNC by operation
  kShortRead,  // a read returns SQLITE_IOERR_SHORT_READ, the buffer zeroed
  kReadOnly,   // the file refuses writes, syncs and truncates (SQLITE_READONLY)
};

struct FaultSpec {
  FaultOp op = FaultOp::kWrite;
  FaultFile file = FaultFile::kAny;
  int64_t nth = 1;  // 1-based, counted from Arm
  FaultKind kind = FaultKind::kFull;
  // The nth operation and every later matching one fail (a disk that stays
  // full) until Clear; otherwise only the nth.
  bool persistent = true;
};

class FaultVfs {
 public:
  static constexpr char kName[] = "campaignd-fault";

  // The process's instance, registered (not as the default) on first use.
  static FaultVfs& Get();

  // Zeroes the counters and disarms.
  void Reset();
  // Operations of `op` on `file` since the last Reset or Arm.
  int64_t Count(FaultOp op, FaultFile file = FaultFile::kAny);
  // Zeroes the counters and arms `spec`.
  void Arm(const FaultSpec& spec);
  // Disarms: every later operation succeeds (counters go on).
  void Clear();
  // Operations failed since the last Arm.
  int64_t injected();

  // Called by the shim for each operation: 0 to go ahead, else the SQLite
  // error code to return.
  int Check(FaultOp op, int file);

 private:
  FaultVfs() = default;

  Mutex mu_;
  int64_t counts_[kFaultOps][kFaultFiles] ABSL_GUARDED_BY(mu_) = {};
  bool armed_ ABSL_GUARDED_BY(mu_) = false;
  bool triggered_ ABSL_GUARDED_BY(mu_) = false;  // the nth op came
  FaultSpec spec_ ABSL_GUARDED_BY(mu_);
  int64_t matched_ ABSL_GUARDED_BY(mu_) = 0;  // matching ops since Arm
  int64_t injected_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace campaigns::testing

#endif  // CAMPAIGND_TESTS_SUPPORT_FAULT_VFS_H_
