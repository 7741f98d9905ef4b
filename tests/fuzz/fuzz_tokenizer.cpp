// tokenizer.json and tokenizer_config.json: the input is both, split at its first NUL byte.
#include "fuzz_target.h"
#include "ipt/tokenizer/tokenizer.h"

IPT_FUZZ_TARGET(tokenizer) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string tokenizer_json = input.substr(0, nul);
  const std::string config_json = nul == std::string::npos ? "" : input.substr(nul + 1);
  const ipt::tok::Tokenizer tokenizer = ipt::tok::Tokenizer::from_json(tokenizer_json, config_json);
  // A loaded tokenizer must encode and decode anything, including invalid UTF-8.
  const std::vector<int32_t> ids = tokenizer.encode("Hello, world! 123  \xe4\xbd\xa0\xe5\xa5\xbd \xff\xfe <|im_end|>");
  (void)tokenizer.decode(ids);
}
