// Tests of campaignctl --version and the version command: both print the
// version of the build and its git commit (version.h), and need no server.
#include "version.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "tests/client/cli_test_util.h"

namespace campaigns::client {
namespace {

using test_util::CliResult;
using test_util::RunRaw;

// Digits only, at least one. (No std::regex: gcc 12's -O1 ASan build warns
// inside libstdc++'s regex compiler, a false -Wmaybe-uninitialized.)
bool AllDigits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

TEST(VersionTest, HeaderHasAVersionAndACommit) {
  const std::vector<std::string> parts = absl::StrSplit(kVersion, '.');
  ASSERT_EQ(parts.size(), 3u) << kVersion;
  for (const std::string& p : parts) EXPECT_TRUE(AllDigits(p)) << kVersion;
  const std::string commit = kGitCommit;
  bool hex = commit.size() == 12;
  for (char c : commit) {
    hex = hex && (absl::ascii_isdigit(static_cast<unsigned char>(c)) ||
                  (c >= 'a' && c <= 'f'));
  }
  EXPECT_TRUE(hex || commit == "unknown") << commit;
}

TEST(VersionTest, FlagPrintsVersionAndCommit) {
  const CliResult r = RunRaw({"campaignctl", "--version"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, std::string("campaignctl ") + kVersion + " (commit " +
                       kGitCommit + ", API campaigns.v1)\n");
}

TEST(VersionTest, CommandPrintsTheSameLine) {
  const CliResult flag = RunRaw({"campaignctl", "--version"});
  const CliResult command = RunRaw({"campaignctl", "version"});
  EXPECT_EQ(command.code, 0) << command.err;
  EXPECT_EQ(command.out, flag.out);
}

}  // namespace
}  // namespace campaigns::client
