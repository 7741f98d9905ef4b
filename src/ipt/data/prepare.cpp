#include "ipt/data/prepare.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "ipt/common/error.h"
#include "ipt/data/shards.h"
#include "ipt/tokenizer/tokenizer.h"

namespace ipt::data {

namespace fs = std::filesystem;

std::vector<std::string> list_input_files(const std::vector<std::string>& inputs) {
  IPT_CHECK(!inputs.empty(), "data prepare: no inputs given");
  std::vector<std::string> files;
  for (const std::string& input : inputs) {
    IPT_CHECK(fs::exists(input), "data prepare: input '", input, "' does not exist");
    if (fs::is_directory(input)) {
      std::vector<std::string> found;
      for (const auto& entry : fs::recursive_directory_iterator(input, fs::directory_options::skip_permission_denied))
        if (entry.is_regular_file()) found.push_back(entry.path().string());
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else {
      files.push_back(input);
    }
  }
  IPT_CHECK(!files.empty(), "data prepare: the inputs hold no files");
  return files;
}

namespace {

bool is_jsonl(const std::string& path) {
  const std::string ext = fs::path(path).extension().string();
  return ext == ".jsonl" || ext == ".ndjson";
}

// Where a text block may be cut without changing the ids: just after a "\n" between two
// printable non-space ASCII characters, the rule Tokenizer::encode_parallel cuts by (the
// pre-tokenizer patterns never match across it, and no character straddles it). Returns npos
// when the block has no such point.
size_t safe_cut(const std::string& text) {
  auto plain = [](char c) { return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7F; };
  for (size_t i = text.size(); i-- > 2;)
    if (text[i - 1] == '\n' && plain(text[i - 2]) && plain(text[i])) return i;
  return std::string::npos;
}

// The 64-bit mix of splitmix64: a well-spread hash of (seed, document index).
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

class Preparer {
 public:
  Preparer(const tok::Tokenizer& tokenizer, const PrepareOptions& o)
      : tokenizer_(tokenizer), o_(o),
        train_(o.out, static_cast<int64_t>(tokenizer.vocab_size()), o.shard_tokens, o.append) {
    if (o.add_eos) eos_ = tokenizer.eos_id();
    if (o.val_fraction > 0)
      val_ = std::make_unique<ShardWriter>((fs::path(o.out) / "val").string(), static_cast<int64_t>(tokenizer.vocab_size()),
                                           o.shard_tokens, o.append);
    // Appending continues the document numbering, so the split of new documents is as stable as
    // that of the old ones.
    if (o.append && fs::exists(fs::path(o.out) / "meta.json")) next_index_ += read_meta(o.out).total_documents();
    if (o.append && fs::exists(fs::path(o.out) / "val" / "meta.json"))
      next_index_ += read_meta((fs::path(o.out) / "val").string()).total_documents();
  }

  void add_document(std::vector<int64_t>&& ids, PrepareReport& report) {
    if (ids.empty()) {
      ++report.empty_documents;
      return;
    }
    if (eos_) ids.push_back(*eos_);
    const double u = static_cast<double>(mix(o_.seed ^ mix(static_cast<uint64_t>(next_index_++))) >> 11) * 0x1.0p-53;
    if (val_ && u < o_.val_fraction) {
      ++report.val_documents;
      report.val_tokens += static_cast<int64_t>(ids.size());
      val_->add(ids);
    } else {
      ++report.train_documents;
      report.train_tokens += static_cast<int64_t>(ids.size());
      train_.add(ids);
    }
  }

  void encode_into(std::string_view text, std::vector<int64_t>& ids) const {
    const std::vector<int32_t> piece = o_.threads > 1 && text.size() > (1 << 20)
                                           ? tokenizer_.encode_parallel(text, o_.threads)
                                           : tokenizer_.encode(text);
    ids.insert(ids.end(), piece.begin(), piece.end());
  }

  void finish() {
    train_.finish();
    if (val_) val_->finish();
  }

 private:
  const tok::Tokenizer& tokenizer_;
  const PrepareOptions& o_;
  ShardWriter train_;
  std::unique_ptr<ShardWriter> val_;
  std::optional<int32_t> eos_;
  int64_t next_index_ = 0;
};

}  // namespace

PrepareReport prepare(const tok::Tokenizer& tokenizer, const PrepareOptions& o, const PrepareProgress& progress) {
  IPT_CHECK(!o.out.empty(), "data prepare: --out is required");
  IPT_CHECK(o.val_fraction >= 0 && o.val_fraction < 1, "data prepare: --val-fraction must be in [0, 1), got ",
            o.val_fraction);
  IPT_CHECK(o.threads >= 1, "data prepare: threads must be >= 1");
  IPT_CHECK(o.block_bytes >= 1024, "data prepare: block size must be >= 1 KiB");
  const auto start = std::chrono::steady_clock::now();
  const std::vector<std::string> files = list_input_files(o.inputs);
  int64_t total_bytes = 0;
  for (const std::string& f : files) total_bytes += static_cast<int64_t>(fs::file_size(f));

  PrepareReport report;
  Preparer preparer(tokenizer, o);
  const bool can_cut = tokenizer.parallel_safe();
  std::string block(o.block_bytes, '\0');
  for (const std::string& path : files) {
    std::ifstream in(path, std::ios::binary);
    IPT_CHECK(in, "data prepare: cannot read ", path);
    ++report.files;
    if (is_jsonl(path)) {
      std::string line;
      int64_t number = 0;
      while (std::getline(in, line)) {
        ++number;
        report.bytes += static_cast<int64_t>(line.size()) + 1;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        nlohmann::json j;
        try {
          j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) {
          throw Error("data prepare: " + path + " line " + std::to_string(number) + " is not JSON: " + e.what());
        }
        IPT_CHECK(j.is_object() && j.contains("text") && j["text"].is_string(), "data prepare: ", path, " line ",
                  number, " must be an object with a string \"text\"");
        std::vector<int64_t> ids;
        preparer.encode_into(j["text"].get<std::string>(), ids);
        preparer.add_document(std::move(ids), report);
        if (progress && number % 1024 == 0) progress(report.bytes, total_bytes);
      }
    } else {
      // One document, read block by block; the unfinished tail of a block carries over.
      std::vector<int64_t> ids;
      std::string carry;
      while (in) {
        in.read(block.data(), static_cast<std::streamsize>(block.size()));
        const size_t got = static_cast<size_t>(in.gcount());
        if (got == 0) break;
        report.bytes += static_cast<int64_t>(got);
        carry.append(block.data(), got);
        const size_t cut = can_cut ? safe_cut(carry) : std::string::npos;
        if (cut != std::string::npos && cut > 0) {
          preparer.encode_into(std::string_view(carry).substr(0, cut), ids);
          carry.erase(0, cut);
        }
        if (progress) progress(report.bytes, total_bytes);
      }
      IPT_CHECK(!in.bad(), "data prepare: read error in ", path);
      if (!carry.empty()) preparer.encode_into(carry, ids);
      preparer.add_document(std::move(ids), report);
    }
  }
  preparer.finish();
  if (progress) progress(total_bytes, total_bytes);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace ipt::data
