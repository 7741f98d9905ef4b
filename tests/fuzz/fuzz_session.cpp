// Session files (`generate --session`, the server's --session-dir), loaded into the model they
// were saved with, then used: a loaded session must be able to take a token.
#include "fuzz_model.h"
#include "fuzz_target.h"
#include "ipt/infer/session.h"

IPT_FUZZ_TARGET(session) {
  torch::NoGradGuard no_grad;
  const std::string path = ipt::fuzz::write_scratch("fuzz.session", data, size);
  ipt::infer::Session session = ipt::infer::Session::load(ipt::fuzz::fuzz_model(), path);
  if (session.position() < session.context()) session.append({1});
}
