#include "ipt/bench/worker.h"

#include <cstdio>
#include <memory>
#include <sstream>

#include "ipt/common/error.h"

namespace ipt::bench {

nlohmann::json WorkerLauncher::run(const std::string& args) const {
  std::ostringstream command;
  command << "'" << executable << "' -t " << threads << (no_malloc_tuning ? " --no-malloc-tuning " : " ") << args;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.str().c_str(), "r"), pclose);
  IPT_CHECK(pipe, "cannot start a benchmark worker: ", command.str());
  std::string output;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe.get())) output.append(buffer, n);
  const int status = pclose(pipe.release());
  IPT_CHECK(status == 0, "benchmark worker failed (status ", status, "): ", args);
  try {
    return nlohmann::json::parse(output);
  } catch (const nlohmann::json::exception&) {
    throw Error("benchmark worker printed no JSON: " + output.substr(0, 400));
  }
}

}  // namespace ipt::bench
