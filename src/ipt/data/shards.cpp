#include "ipt/data/shards.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ipt/common/durable_write.h"
#include "ipt/common/error.h"

namespace ipt::data {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'I', 'P', 'T', 'S', 'H', 'R', 'D', '1'};

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t token_bytes;
  uint64_t tokens;
  uint64_t documents;
  uint64_t checksum;
};
static_assert(sizeof(Header) == 40, "shard header layout");

std::string shard_name(size_t index) {
  std::ostringstream name;
  name << "shard-" << std::setw(5) << std::setfill('0') << index << ".bin";
  return name.str();
}

// Writes the parts, in order, to path durably (common/durable_write.h).
void write_atomically(const fs::path& path, const std::vector<std::pair<const void*, size_t>>& parts) {
  DurableFile file(path.string());
  for (auto [data, bytes] : parts) file.write(data, bytes);
  file.commit();
}

}  // namespace

uint64_t fnv1a64(const void* data, size_t bytes, uint64_t hash) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < bytes; ++i) hash = (hash ^ p[i]) * 0x100000001b3ULL;
  return hash;
}

int64_t DatasetMeta::total_tokens() const {
  int64_t n = 0;
  for (const auto& s : shards) n += s.tokens;
  return n;
}

int64_t DatasetMeta::total_documents() const {
  int64_t n = 0;
  for (const auto& s : shards) n += s.documents;
  return n;
}

DatasetMeta read_meta(const std::string& dir) {
  const fs::path path = fs::path(dir) / "meta.json";
  std::ifstream in(path);
  IPT_CHECK(in, "no token dataset at ", dir, " (", path.string(), " not found); make one with `ipt data prepare`");
  nlohmann::json j;
  try {
    in >> j;
    DatasetMeta meta;
    meta.vocab_size = j.at("vocab_size").get<int64_t>();
    meta.token_bytes = j.at("token_bytes").get<int>();
    IPT_CHECK(meta.token_bytes == 2 || meta.token_bytes == 4, path.string(), ": token_bytes must be 2 or 4, got ",
              meta.token_bytes);
    for (const auto& s : j.at("shards"))
      meta.shards.push_back({s.at("file").get<std::string>(), s.at("tokens").get<int64_t>(),
                             s.at("documents").get<int64_t>(), s.at("checksum").get<uint64_t>()});
    return meta;
  } catch (const nlohmann::json::exception& e) {
    throw Error(path.string() + " is malformed: " + e.what());
  }
}

ShardWriter::ShardWriter(std::string dir, int64_t vocab_size, int64_t shard_tokens, bool append)
    : dir_(std::move(dir)), shard_tokens_(shard_tokens) {
  IPT_CHECK(vocab_size > 0, "vocabulary size must be > 0");
  IPT_CHECK(shard_tokens > 0, "shard size must be > 0 tokens");
  fs::create_directories(dir_);
  const bool exists = fs::exists(fs::path(dir_) / "meta.json");
  if (append && exists) {
    meta_ = read_meta(dir_);
    IPT_CHECK(meta_.vocab_size == vocab_size, "cannot append to ", dir_, ": it was made with vocabulary size ",
              meta_.vocab_size, ", not ", vocab_size);
  } else {
    IPT_CHECK(!exists, dir_, " already holds a dataset; use --append to add to it or choose another directory");
    meta_.vocab_size = vocab_size;
    meta_.token_bytes = vocab_size <= 65536 ? 2 : 4;
  }
}

ShardWriter::~ShardWriter() {
  if (!finished_) {
    try {
      finish();
    } catch (...) {
      // A destructor must not throw; callers that care call finish() themselves.
    }
  }
}

void ShardWriter::add(const std::vector<int64_t>& document) {
  IPT_CHECK(!finished_, "shard writer already finished");
  if (document.empty()) return;
  for (int64_t t : document)
    IPT_CHECK(t >= 0 && t < meta_.vocab_size, "token id ", t, " is outside the vocabulary [0, ", meta_.vocab_size, ")");
  if (!tokens_.empty() && static_cast<int64_t>(tokens_.size() + document.size()) > shard_tokens_) flush_shard();
  tokens_.insert(tokens_.end(), document.begin(), document.end());
  offsets_.push_back(tokens_.size());
}

void ShardWriter::flush_shard() {
  if (tokens_.empty()) return;
  std::vector<uint8_t> packed(tokens_.size() * meta_.token_bytes);
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const uint32_t t = static_cast<uint32_t>(tokens_[i]);
    std::memcpy(packed.data() + i * meta_.token_bytes, &t, meta_.token_bytes);  // little-endian host
  }
  Header header{};
  std::memcpy(header.magic, kMagic, 8);
  header.version = 1;
  header.token_bytes = static_cast<uint32_t>(meta_.token_bytes);
  header.tokens = tokens_.size();
  header.documents = offsets_.size() - 1;
  header.checksum = fnv1a64(offsets_.data(), offsets_.size() * sizeof(uint64_t), fnv1a64(packed.data(), packed.size()));
  ShardInfo info{shard_name(meta_.shards.size()), static_cast<int64_t>(header.tokens),
                 static_cast<int64_t>(header.documents), header.checksum};
  write_atomically(fs::path(dir_) / info.file, {{&header, sizeof(header)},
                                                {packed.data(), packed.size()},
                                                {offsets_.data(), offsets_.size() * sizeof(uint64_t)}});
  meta_.shards.push_back(info);
  tokens_.clear();
  offsets_.assign(1, 0);
}

void ShardWriter::finish() {
  if (finished_) return;
  finished_ = true;
  flush_shard();
  nlohmann::json j;
  j["format"] = "inplace-ttt token shards v1";
  j["vocab_size"] = meta_.vocab_size;
  j["token_bytes"] = meta_.token_bytes;
  j["total_tokens"] = meta_.total_tokens();
  j["total_documents"] = meta_.total_documents();
  j["shards"] = nlohmann::json::array();
  for (const auto& s : meta_.shards)
    j["shards"].push_back({{"file", s.file}, {"tokens", s.tokens}, {"documents", s.documents}, {"checksum", s.checksum}});
  const std::string text = j.dump(1);
  write_atomically(fs::path(dir_) / "meta.json", {{text.data(), text.size()}});
}

Shard::Shard(const std::string& path, const ShardInfo& expected, int token_bytes) : token_bytes_(token_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY);
  IPT_CHECK(fd >= 0, "cannot open shard ", path, ": ", std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < sizeof(Header)) {
    ::close(fd);
    throw Error("shard " + path + " is truncated (" + std::to_string(size_) + " bytes, no complete header)");
  }
  map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  IPT_CHECK(map_ != MAP_FAILED, "cannot map shard ", path, ": ", std::strerror(errno));
  Header header;
  std::memcpy(&header, map_, sizeof(header));
  auto fail = [&](const std::string& why) {
    ::munmap(map_, size_);
    map_ = nullptr;
    throw Error("shard " + path + " " + why);
  };
  if (std::memcmp(header.magic, kMagic, 8) != 0) fail("is not a token shard (bad magic)");
  if (header.version != 1) fail("has unsupported version " + std::to_string(header.version));
  if (static_cast<int>(header.token_bytes) != token_bytes) fail("token width disagrees with meta.json");
  const uint64_t want = sizeof(Header) + header.tokens * token_bytes + (header.documents + 1) * sizeof(uint64_t);
  if (want != size_) fail("is truncated or has trailing bytes: " + std::to_string(size_) + " bytes, expected " +
                          std::to_string(want));
  if (static_cast<int64_t>(header.tokens) != expected.tokens ||
      static_cast<int64_t>(header.documents) != expected.documents || header.checksum != expected.checksum)
    fail("does not match meta.json (tokens, documents or checksum differ)");
  tokens_ = static_cast<int64_t>(header.tokens);
  documents_ = static_cast<int64_t>(header.documents);
  token_data_ = static_cast<const uint8_t*>(map_) + sizeof(Header);
  offsets_ = reinterpret_cast<const uint64_t*>(token_data_ + tokens_ * token_bytes);
  const uint64_t sum = fnv1a64(offsets_, (documents_ + 1) * sizeof(uint64_t), fnv1a64(token_data_, tokens_ * token_bytes));
  if (sum != header.checksum) fail("is corrupt (checksum mismatch)");
  if (offsets_[0] != 0 || offsets_[documents_] != static_cast<uint64_t>(tokens_)) fail("has bad document offsets");
  for (int64_t d = 0; d < documents_; ++d)
    if (offsets_[d + 1] <= offsets_[d]) fail("has bad document offsets");
}

Shard::~Shard() {
  if (map_) ::munmap(map_, size_);
}

int64_t Shard::document_length(int64_t doc) const {
  IPT_CHECK(doc >= 0 && doc < documents_, "document ", doc, " out of range [0, ", documents_, ")");
  return static_cast<int64_t>(offsets_[doc + 1] - offsets_[doc]);
}

void Shard::read(int64_t doc, int64_t begin, int64_t count, int64_t* out) const {
  const int64_t length = document_length(doc);
  IPT_CHECK(begin >= 0 && count >= 0 && begin + count <= length, "read of tokens [", begin, ", ", begin + count,
            ") outside document of length ", length);
  const uint8_t* p = token_data_ + (offsets_[doc] + begin) * token_bytes_;
  for (int64_t i = 0; i < count; ++i) {
    uint32_t t = 0;
    std::memcpy(&t, p + i * token_bytes_, token_bytes_);
    out[i] = t;
  }
}

Dataset::Dataset(const std::string& dir) : meta_(read_meta(dir)) {
  IPT_CHECK(!meta_.shards.empty(), "token dataset ", dir, " has no shards");
  for (size_t s = 0; s < meta_.shards.size(); ++s) {
    shards_.push_back(std::make_unique<Shard>((fs::path(dir) / meta_.shards[s].file).string(), meta_.shards[s],
                                              meta_.token_bytes));
    for (int64_t d = 0; d < shards_.back()->documents(); ++d) doc_index_.emplace_back(static_cast<int32_t>(s), d);
  }
}

int64_t Dataset::document_length(int64_t doc) const {
  IPT_CHECK(doc >= 0 && doc < documents(), "document ", doc, " out of range [0, ", documents(), ")");
  return shards_[doc_index_[doc].first]->document_length(doc_index_[doc].second);
}

void Dataset::read(int64_t doc, int64_t begin, int64_t count, int64_t* out) const {
  IPT_CHECK(doc >= 0 && doc < documents(), "document ", doc, " out of range [0, ", documents(), ")");
  shards_[doc_index_[doc].first]->read(doc_index_[doc].second, begin, count, out);
}

std::vector<int64_t> Dataset::document(int64_t doc) const {
  std::vector<int64_t> tokens(document_length(doc));
  read(doc, 0, static_cast<int64_t>(tokens.size()), tokens.data());
  return tokens;
}

}  // namespace ipt::data
