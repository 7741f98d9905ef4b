// GGUF files (`ipt convert --from-gguf`): the header, metadata and tensor table, then every
// tensor the parser placed inside the buffer dequantized (those of at most 2^20 elements).
#include "fuzz_target.h"
#include "ipt/io/gguf.h"

IPT_FUZZ_TARGET(gguf) {
  const ipt::io::GgufFile file = ipt::io::parse_gguf(data, size, "fuzz");
  for (const auto& tensor : file.tensors)
    if (tensor.numel() <= (1 << 20)) file.dequantize(tensor);
}
