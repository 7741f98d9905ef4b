// Token-id lists (`--ids FILE` of score, generate, eval).
#include "fuzz_target.h"
#include "inputs.h"

IPT_FUZZ_TARGET(token_ids) {
  (void)ipt::cli::parse_token_ids(std::string(reinterpret_cast<const char*>(data), size), "fuzz input");
}
