// A main for the libFuzzer targets in this directory when they are built
// without libFuzzer (gcc, the normal and sanitizer builds): runs the
// target's LLVMFuzzerTestOneInput once on every file named, and on every
// file of every directory named (not recursively), in name order — what
// `fuzzer -runs=0 DIR` does, as LLVM's StandaloneFuzzTargetMain.c does.
//
//   csv_fuzzer_replay tests/fuzz/csv_corpus    # 0 = every input ran
//
// A crash (or a sanitizer report) ends the process; the input that was
// running is printed first, so the failure names it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
// Optional, as with libFuzzer.
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv)
    __attribute__((weak));
// Optional, ours: called once every input ran, before main returns, so a
// target can stop what it runs while the statics it uses still exist (exit
// handlers run in an order no target controls).
extern "C" void CampaigndFuzzerCleanup() __attribute__((weak));

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);
  std::vector<std::filesystem::path> inputs;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path arg(argv[i]);
    std::error_code ec;
    if (std::filesystem::is_directory(arg, ec)) {
      std::vector<std::filesystem::path> files;
      for (const auto& entry : std::filesystem::directory_iterator(arg)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
      std::sort(files.begin(), files.end());
      inputs.insert(inputs.end(), files.begin(), files.end());
    } else if (std::filesystem::is_regular_file(arg, ec)) {
      inputs.push_back(arg);
    } else {
      std::fprintf(stderr, "replay: %s: no such file or directory\n", argv[i]);
      return 2;
    }
  }
  for (const std::filesystem::path& path : inputs) {
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)),
                            std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      std::fprintf(stderr, "replay: %s: cannot read\n", path.c_str());
      return 2;
    }
    std::fprintf(stderr, "replay: %s\n", path.c_str());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()),
                           bytes.size());
  }
  std::fprintf(stderr, "replay: %zu inputs ran\n", inputs.size());
  if (CampaigndFuzzerCleanup != nullptr) CampaigndFuzzerCleanup();
  return 0;
}
