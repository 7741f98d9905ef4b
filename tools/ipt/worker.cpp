#include "worker.h"

#include <unistd.h>

#include <cstdio>
#include <memory>
#include <sstream>

#include "command.h"
#include "ipt/common/error.h"

namespace ipt::cli {

namespace {
std::string self_path() {
  char buffer[4096];
  ssize_t n = readlink("/proc/self/exe", buffer, sizeof(buffer) - 1);
  IPT_CHECK(n > 0, "cannot find this executable through /proc/self/exe");
  return std::string(buffer, static_cast<size_t>(n));
}
}  // namespace

nlohmann::json run_worker(const std::string& args) {
  std::ostringstream command;
  command << "'" << self_path() << "' -t " << global_options().threads
          << (global_options().no_malloc_tuning ? " --no-malloc-tuning " : " ") << args;
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

}  // namespace ipt::cli
