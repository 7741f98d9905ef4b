#pragma once
// safetensors files (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then the data.
// Reading memory-maps the file and validates the header completely; writing is atomic
// (temporary file, fsync, rename). Sharded checkpoints use model.safetensors.index.json.
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>

namespace ipt::io {

using TensorMap = std::map<std::string, torch::Tensor>;

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

// Tensors of one file, as zero-copy views of the mapping (kept alive by the tensors).
TensorMap read_safetensors(const std::string& path, std::map<std::string, std::string>* metadata = nullptr);

// Writes contiguous CPU copies of `tensors`; keys in sorted order, header padded to 8 bytes.
void write_safetensors(const std::string& path, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// A checkpoint directory: model.safetensors, or shards listed by model.safetensors.index.json.
TensorMap load_checkpoint(const std::string& dir);
// Writes model.safetensors, or shards of at most `max_shard_bytes` plus the index (when more
// than one shard is needed). Every file is written under a temporary name first and all are
// renamed only after every write succeeded.
void save_checkpoint(const std::string& dir, const TensorMap& tensors, uint64_t max_shard_bytes = 5ull << 30);

}  // namespace ipt::io
