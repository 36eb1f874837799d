// campaignctl's command line, callable in-process (main.cc and tests):
//
//   std::ostringstream out, err;
//   const char* argv[] = {"campaignctl", "--server", "127.0.0.1:50051",
//                         "campaigns", "list", "--json"};
//   int exit_code = campaigns::client::RunCampaignctl(6, argv, out, err);
//
// Exit codes are those of ExitCode in command.h. Flags with an environment
// fallback (CAMPAIGND_ADDR, CAMPAIGND_API_KEY) read the process
// environment.

#ifndef CAMPAIGND_CLIENT_CAMPAIGNCTL_H_
#define CAMPAIGND_CLIENT_CAMPAIGNCTL_H_

#include <ostream>

namespace campaigns::client {

// Parses `argv`, runs the selected command writing results to `out` and
// diagnostics to `err`, and returns the process exit code.
int RunCampaignctl(int argc, const char* const* argv, std::ostream& out,
                   std::ostream& err);

}  // namespace campaigns::client

#endif  // CAMPAIGND_CLIENT_CAMPAIGNCTL_H_
