// FaultVfs: the fault-injecting SQLite VFS shim of the storage fault tests.
#include "tests/support/fault_vfs.h"

#include <sqlite3.h>

#include <cstring>
#include <mutex>

namespace campaigns::testing {
namespace {

// A file of the shim: the real file's sqlite3_file follows it in memory.
struct ShimFile {
  sqlite3_file base;
  int kind;  // FaultFile
  sqlite3_file* real;
};

sqlite3_vfs* RealVfs() {
  static sqlite3_vfs* real = sqlite3_vfs_find(nullptr);
  return real;
}

sqlite3_file* Real(sqlite3_file* f) {
  return reinterpret_cast<ShimFile*>(f)->real;
}
int Kind(sqlite3_file* f) { return reinterpret_cast<ShimFile*>(f)->kind; }

int ShimClose(sqlite3_file* f) {
  sqlite3_file* real = Real(f);
  int rc = real->pMethods ? real->pMethods->xClose(real) : SQLITE_OK;
  f->pMethods = nullptr;
  return rc;
}

int ShimRead(sqlite3_file* f, void* buf, int amt, sqlite3_int64 offset) {
  int rc = FaultVfs::Get().Check(FaultOp::kRead, Kind(f));
  if (rc == SQLITE_IOERR_SHORT_READ) {
    // As a real short read must: the part not read is zeroed.
    std::memset(buf, 0, static_cast<size_t>(amt));
    return rc;
  }
  if (rc != SQLITE_OK) return rc;
  return Real(f)->pMethods->xRead(Real(f), buf, amt, offset);
}

int ShimWrite(sqlite3_file* f, const void* buf, int amt, sqlite3_int64 offset) {
  int rc = FaultVfs::Get().Check(FaultOp::kWrite, Kind(f));
  if (rc != SQLITE_OK) return rc;
  return Real(f)->pMethods->xWrite(Real(f), buf, amt, offset);
}

int ShimTruncate(sqlite3_file* f, sqlite3_int64 size) {
  return Real(f)->pMethods->xTruncate(Real(f), size);
}

int ShimSync(sqlite3_file* f, int flags) {
  int rc = FaultVfs::Get().Check(FaultOp::kSync, Kind(f));
  if (rc != SQLITE_OK) return rc;
  return Real(f)->pMethods->xSync(Real(f), flags);
}

int ShimFileSize(sqlite3_file* f, sqlite3_int64* size) {
  return Real(f)->pMethods->xFileSize(Real(f), size);
}
int ShimLock(sqlite3_file* f, int level) {
  return Real(f)->pMethods->xLock(Real(f), level);
}
int ShimUnlock(sqlite3_file* f, int level) {
  return Real(f)->pMethods->xUnlock(Real(f), level);
}
int ShimCheckReservedLock(sqlite3_file* f, int* out) {
  return Real(f)->pMethods->xCheckReservedLock(Real(f), out);
}
int ShimFileControl(sqlite3_file* f, int op, void* arg) {
  return Real(f)->pMethods->xFileControl(Real(f), op, arg);
}
int ShimSectorSize(sqlite3_file* f) {
  return Real(f)->pMethods->xSectorSize(Real(f));
}
int ShimDeviceCharacteristics(sqlite3_file* f) {
  return Real(f)->pMethods->xDeviceCharacteristics(Real(f));
}
int ShimShmMap(sqlite3_file* f, int page, int size, int extend,
               void volatile** out) {
  return Real(f)->pMethods->xShmMap(Real(f), page, size, extend, out);
}
int ShimShmLock(sqlite3_file* f, int offset, int n, int flags) {
  return Real(f)->pMethods->xShmLock(Real(f), offset, n, flags);
}
void ShimShmBarrier(sqlite3_file* f) {
  Real(f)->pMethods->xShmBarrier(Real(f));
}
int ShimShmUnmap(sqlite3_file* f, int delete_flag) {
  return Real(f)->pMethods->xShmUnmap(Real(f), delete_flag);
}
int ShimFetch(sqlite3_file* f, sqlite3_int64 offset, int amt, void** out) {
  // No memory-mapped pages: every read goes through xRead and is counted.
  (void)f;
  (void)offset;
  (void)amt;
  *out = nullptr;
  return SQLITE_OK;
}
int ShimUnfetch(sqlite3_file* f, sqlite3_int64 offset, void* p) {
  (void)f;
  (void)offset;
  (void)p;
  return SQLITE_OK;
}

const sqlite3_io_methods kShimMethods = {
    3,
    ShimClose,
    ShimRead,
    ShimWrite,
    ShimTruncate,
    ShimSync,
    ShimFileSize,
    ShimLock,
    ShimUnlock,
    ShimCheckReservedLock,
    ShimFileControl,
    ShimSectorSize,
    ShimDeviceCharacteristics,
    ShimShmMap,
    ShimShmLock,
    ShimShmBarrier,
    ShimShmUnmap,
    ShimFetch,
    ShimUnfetch,
};

int ShimOpen(sqlite3_vfs* /*vfs*/, const char* name, sqlite3_file* f, int flags,
             int* out_flags) {
  auto* shim = reinterpret_cast<ShimFile*>(f);
  shim->base.pMethods = nullptr;
  shim->kind = (flags & SQLITE_OPEN_MAIN_DB)        ? 0
               : (flags & SQLITE_OPEN_WAL)          ? 1
               : (flags & SQLITE_OPEN_MAIN_JOURNAL) ? 2
                                                    : 3;
  shim->real = reinterpret_cast<sqlite3_file*>(shim + 1);
  sqlite3_vfs* real = RealVfs();
  int rc = real->xOpen(real, name, shim->real, flags, out_flags);
  if (rc == SQLITE_OK && shim->real->pMethods != nullptr) {
    shim->base.pMethods = &kShimMethods;
  }
  return rc;
}

int ShimDelete(sqlite3_vfs*, const char* name, int sync_dir) {
  return RealVfs()->xDelete(RealVfs(), name, sync_dir);
}
int ShimAccess(sqlite3_vfs*, const char* name, int flags, int* out) {
  return RealVfs()->xAccess(RealVfs(), name, flags, out);
}
int ShimFullPathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return RealVfs()->xFullPathname(RealVfs(), name, n, out);
}
int ShimRandomness(sqlite3_vfs*, int n, char* out) {
  return RealVfs()->xRandomness(RealVfs(), n, out);
}
int ShimSleep(sqlite3_vfs*, int us) { return RealVfs()->xSleep(RealVfs(), us); }
int ShimCurrentTime(sqlite3_vfs*, double* out) {
  return RealVfs()->xCurrentTime(RealVfs(), out);
}
int ShimGetLastError(sqlite3_vfs*, int n, char* out) {
  return RealVfs()->xGetLastError(RealVfs(), n, out);
}
int ShimCurrentTimeInt64(sqlite3_vfs*, sqlite3_int64* out) {
  return RealVfs()->xCurrentTimeInt64(RealVfs(), out);
}

// The SQLite error code a fault of `kind` gives operation `op`.
int ErrorCode(FaultKind kind, FaultOp op) {
  switch (kind) {
    case FaultKind::kFull:
      return op == FaultOp::kRead ? SQLITE_IOERR_READ : SQLITE_FULL;
    case FaultKind::kShortRead:
      if (op == FaultOp::kRead) return SQLITE_IOERR_SHORT_READ;
      [[fallthrough]];
    case FaultKind::kIoError:
      return op == FaultOp::kRead    ? SQLITE_IOERR_READ
             : op == FaultOp::kWrite ? SQLITE_IOERR_WRITE
                                     : SQLITE_IOERR_FSYNC;
    case FaultKind::kReadOnly:
      return op == FaultOp::kRead ? SQLITE_OK : SQLITE_READONLY;
  }
  return SQLITE_IOERR;
}

}  // namespace

FaultVfs& FaultVfs::Get() {
  static FaultVfs* instance = [] {
    auto* vfs = new FaultVfs();
    static sqlite3_vfs shim;
    sqlite3_vfs* real = RealVfs();
    shim = *real;  // dlopen and system-call entries as the real one's
    shim.iVersion = 3;
    shim.szOsFile = static_cast<int>(sizeof(ShimFile)) + real->szOsFile;
    shim.zName = kName;
    shim.pNext = nullptr;
    shim.pAppData = vfs;
    shim.xOpen = ShimOpen;
    shim.xDelete = ShimDelete;
    shim.xAccess = ShimAccess;
    shim.xFullPathname = ShimFullPathname;
    shim.xRandomness = ShimRandomness;
    shim.xSleep = ShimSleep;
    shim.xCurrentTime = ShimCurrentTime;
    shim.xGetLastError = ShimGetLastError;
    shim.xCurrentTimeInt64 = ShimCurrentTimeInt64;
    sqlite3_vfs_register(&shim, /*makeDflt=*/0);
    return vfs;
  }();
  return *instance;
}

void FaultVfs::Reset() {
  MutexLock lock(&mu_);
  std::memset(counts_, 0, sizeof(counts_));
  armed_ = false;
  triggered_ = false;
  matched_ = 0;
  injected_ = 0;
}

int64_t FaultVfs::Count(FaultOp op, FaultFile file) {
  MutexLock lock(&mu_);
  const int o = static_cast<int>(op);
  if (file != FaultFile::kAny) return counts_[o][static_cast<int>(file)];
  int64_t sum = 0;
  for (int f = 0; f < kFaultFiles; ++f) sum += counts_[o][f];
  return sum;
}

void FaultVfs::Arm(const FaultSpec& spec) {
  MutexLock lock(&mu_);
  std::memset(counts_, 0, sizeof(counts_));
  spec_ = spec;
  armed_ = true;
  triggered_ = false;
  matched_ = 0;
  injected_ = 0;
}

void FaultVfs::Clear() {
  MutexLock lock(&mu_);
  armed_ = false;
  triggered_ = false;
}

int64_t FaultVfs::injected() {
  MutexLock lock(&mu_);
  return injected_;
}

int FaultVfs::Check(FaultOp op, int file) {
  MutexLock lock(&mu_);
  ++counts_[static_cast<int>(op)][file];
  if (!armed_) return SQLITE_OK;
  if (spec_.file != FaultFile::kAny && file != static_cast<int>(spec_.file)) {
    return SQLITE_OK;
  }
  if (op == spec_.op && ++matched_ == spec_.nth) {
    triggered_ = true;
    ++injected_;
    return ErrorCode(spec_.kind, op);
  }
  // Once triggered, a persistent fault goes on; a read-only file also
  // refuses the other kind of change (a sync after a write, or a write).
  const bool covered = op == spec_.op || (spec_.kind == FaultKind::kReadOnly &&
                                          op != FaultOp::kRead);
  if (triggered_ && spec_.persistent && covered) {
    const int rc = ErrorCode(spec_.kind, op);
    if (rc != SQLITE_OK) ++injected_;
    return rc;
  }
  return SQLITE_OK;
}

}  // namespace campaigns::testing
