// Tests of campaignctl --version and the version command: both print the
// version of the build and its git commit (version.h), and need no server.
#include "version.h"

#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "tests/client/cli_test_util.h"

namespace campaigns::client {
namespace {

using test_util::CliResult;
using test_util::RunRaw;

TEST(VersionTest, HeaderHasAVersionAndACommit) {
  EXPECT_TRUE(std::regex_match(kVersion, std::regex(R"(\d+\.\d+\.\d+)")))
      << kVersion;
  EXPECT_TRUE(std::regex_match(kGitCommit, std::regex("[0-9a-f]{12}|unknown")))
      << kGitCommit;
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
