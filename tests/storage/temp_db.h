// Test helpers for storage tests: a private temporary directory for database
// files, a way to wait for the writer thread's callbacks, and one-value
// queries.
//
//   TempDir dir;                                  // removed on destruction
//   DatabaseOptions options{.path = dir.File("test.db")};
//   absl::StatusOr<Campaign> c = AwaitResult<Campaign>(
//       [&](Callback<Campaign> done) { store.CreateCampaign(..., done); });
//   int64_t n = QueryInt(*db, "SELECT COUNT(*) FROM campaigns");
//
// Not thread-safe (one per test).
#ifndef CAMPAIGND_TESTS_STORAGE_TEMP_DB_H_
#define CAMPAIGND_TESTS_STORAGE_TEMP_DB_H_

#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "storage/sqlite/database.h"

namespace campaigns::storage::test_util {

// A fresh directory under ::testing::TempDir(), deleted with its contents.
class TempDir {
 public:
  TempDir() {
    std::string templ = ::testing::TempDir() + "campaignd_storage_XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp failed for " << templ;
    }
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // A path for `name` inside the directory.
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Runs `call`, which hands its argument to an asynchronous Store/Database
// write, and waits for that callback (run on the writer thread).
template <typename T>
absl::StatusOr<T> AwaitResult(
    const std::function<void(std::function<void(absl::StatusOr<T>)>)>& call) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<T>>>();
  std::future<absl::StatusOr<T>> future = promise->get_future();
  call([promise](absl::StatusOr<T> result) {
    promise->set_value(std::move(result));
  });
  return future.get();
}

// AwaitResult for writes whose callback takes a plain absl::Status.
inline absl::Status AwaitStatus(
    const std::function<void(std::function<void(absl::Status)>)>& call) {
  auto promise = std::make_shared<std::promise<absl::Status>>();
  std::future<absl::Status> future = promise->get_future();
  call([promise](absl::Status status) {
    promise->set_value(std::move(status));
  });
  return future.get();
}

// The first column of the first row of `sql`, run on a pooled read
// connection; a failure fails the test and gives -1 / "".
inline int64_t QueryInt(Database& db, const std::string& sql) {
  absl::StatusOr<int64_t> value =
      db.Read([&](SQLite::Database& r) -> absl::StatusOr<int64_t> {
        return r.execAndGet(sql).getInt64();
      });
  EXPECT_TRUE(value.ok()) << sql << ": " << value.status();
  return value.ok() ? *value : -1;
}
inline std::string QueryText(Database& db, const std::string& sql) {
  absl::StatusOr<std::string> value =
      db.Read([&](SQLite::Database& r) -> absl::StatusOr<std::string> {
        return r.execAndGet(sql).getString();
      });
  EXPECT_TRUE(value.ok()) << sql << ": " << value.status();
  return value.ok() ? *value : "";
}

}  // namespace campaigns::storage::test_util

#endif  // CAMPAIGND_TESTS_STORAGE_TEMP_DB_H_
