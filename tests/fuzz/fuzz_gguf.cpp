// libFuzzer target: any bytes given to the GGUF parser either parse (then every tensor, which the
// parser placed inside the buffer, dequantizes or is refused) or throw ipt::Error — nothing else.
#include <cstddef>
#include <cstdint>

#include "ipt/common/error.h"
#include "ipt/io/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const ipt::io::GgufFile file = ipt::io::parse_gguf(data, size, "fuzz");
    for (const auto& tensor : file.tensors)
      if (tensor.numel() <= (1 << 20)) file.dequantize(tensor);
  } catch (const ipt::Error&) {
  }
  return 0;
}
