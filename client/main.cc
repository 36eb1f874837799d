// campaignctl: command-line client of campaignd. See campaignctl.h.

#include <iostream>

#include "client/campaignctl.h"

int main(int argc, char** argv) {
  return campaigns::client::RunCampaignctl(argc, argv, std::cout, std::cerr);
}
