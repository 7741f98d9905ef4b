#pragma once
// Text files -> token shards (docs/data.md, `ipt data prepare`).
//
// Inputs are files or directories (walked recursively, in sorted order, so the result does not
// depend on the file system). A `.jsonl` file holds one document per line ({"text": ...}); any
// other file is one document. Documents are tokenized as they are read: a large file is read in
// blocks cut where the tokenizer provably gives the same ids (Tokenizer::parallel_safe), so
// inputs larger than memory stream through. Each document goes to the training set or, with
// probability val_fraction (decided by a hash of the seed and the document's index), to the
// validation set in `out/val`. Deterministic: the same inputs, tokenizer and seed give the same
// bytes.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ipt::tok {
class Tokenizer;
}

namespace ipt::data {

struct PrepareOptions {
  std::vector<std::string> inputs;
  std::string out;                  // the training dataset; validation documents go to out/val
  double val_fraction = 0.0;        // in [0, 1)
  uint64_t seed = 0;
  bool append = false;              // add to existing datasets (same vocabulary)
  bool add_eos = true;              // end every document with the tokenizer's eos token, if it has one
  int64_t shard_tokens = 64 << 20;  // tokens per shard file
  int threads = 1;                  // tokenizer threads for large documents
  size_t block_bytes = 8 << 20;     // how much of a file is read at once
};

struct PrepareReport {
  int64_t files = 0, train_documents = 0, val_documents = 0, empty_documents = 0;
  int64_t train_tokens = 0, val_tokens = 0, bytes = 0;
  double seconds = 0;
};

// Called after each block: bytes read so far, total input bytes.
using PrepareProgress = std::function<void(int64_t done_bytes, int64_t total_bytes)>;

// The files `inputs` name, directories expanded; an input that does not exist is an error.
std::vector<std::string> list_input_files(const std::vector<std::string>& inputs);

PrepareReport prepare(const tok::Tokenizer& tokenizer, const PrepareOptions& options,
                      const PrepareProgress& progress = {});

}  // namespace ipt::data
