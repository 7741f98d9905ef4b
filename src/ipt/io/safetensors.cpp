#include "ipt/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "ipt/common/durable_write.h"
#include "ipt/common/error.h"

namespace ipt::io {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct DtypeInfo {
  const char* name;
  torch::Dtype dtype;
  size_t bytes;
};

const std::vector<DtypeInfo>& dtypes() {
  static const std::vector<DtypeInfo> table{
      {"F64", torch::kFloat64, 8}, {"F32", torch::kFloat32, 4}, {"F16", torch::kFloat16, 2},
      {"BF16", torch::kBFloat16, 2}, {"I64", torch::kInt64, 8}, {"I32", torch::kInt32, 4},
      {"I16", torch::kInt16, 2},   {"I8", torch::kInt8, 1},     {"U8", torch::kUInt8, 1},
      {"BOOL", torch::kBool, 1}};
  return table;
}

const DtypeInfo& by_name(const std::string& name, const std::string& where) {
  for (const auto& d : dtypes())
    if (name == d.name) return d;
  throw Error(where + ": unsupported dtype '" + name + "'");
}

const DtypeInfo& by_dtype(torch::Dtype dtype, const std::string& where) {
  for (const auto& d : dtypes())
    if (dtype == d.dtype) return d;
  throw Error(where + ": dtype " + std::string(c10::toString(dtype)) + " cannot be stored in safetensors");
}

// A read-only mapping shared by every tensor viewing it.
struct Mapping {
  void* data = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (data && data != MAP_FAILED) munmap(data, size);
  }
};

// The safetensors bytes of `tensors` into `file` (synced, not yet in place: the caller commits).
void write_file(DurableFile& file, const TensorMap& tensors, const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> contiguous;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    IPT_CHECK(tensor.defined(), "cannot save undefined tensor ", name);
    torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    const DtypeInfo& d = by_dtype(t.scalar_type(), name);
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * d.bytes;
    header[name] = {{"dtype", d.name}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    contiguous.push_back(t);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t header_size = text.size();
  uint8_t size_bytes[8];
  for (int i = 0; i < 8; ++i) size_bytes[i] = static_cast<uint8_t>(header_size >> (8 * i));
  file.write(size_bytes, 8);
  file.write(text);
  for (const auto& t : contiguous) file.write(t.data_ptr(), t.numel() * t.element_size());
  file.sync();
}

}  // namespace

TensorMap read_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  int fd = ::open(path.c_str(), O_RDONLY);
  IPT_CHECK(fd >= 0, "cannot open ", path, ": ", std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  auto mapping = std::make_shared<Mapping>();
  mapping->size = static_cast<size_t>(st.st_size);
  if (mapping->size < 8) {
    ::close(fd);
    throw Error(path + ": not a safetensors file (" + std::to_string(mapping->size) + " bytes)");
  }
  mapping->data = ::mmap(nullptr, mapping->size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  IPT_CHECK(mapping->data != MAP_FAILED, "cannot map ", path, ": ", std::strerror(errno));
  const uint8_t* base = static_cast<const uint8_t*>(mapping->data);
  uint64_t header_size = 0;
  for (int i = 0; i < 8; ++i) header_size |= static_cast<uint64_t>(base[i]) << (8 * i);
  IPT_CHECK(header_size <= kMaxHeaderBytes, path, ": header length ", header_size, " exceeds the ", kMaxHeaderBytes,
            "-byte limit");
  IPT_CHECK(8 + header_size <= mapping->size, path, ": header length ", header_size,
            " runs past the end of the file (", mapping->size, " bytes): truncated?");
  json header;
  try {
    header = json::parse(base + 8, base + 8 + header_size);
  } catch (const json::exception& e) {
    throw Error(path + ": header is not valid JSON: " + e.what());
  }
  IPT_CHECK(header.is_object(), path, ": header must be a JSON object");
  const uint64_t data_size = mapping->size - 8 - header_size;
  const uint8_t* data = base + 8 + header_size;
  TensorMap tensors;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, entry] : header.items()) {
    const std::string where = path + ": tensor '" + name + "'";
    if (name == "__metadata__") {
      IPT_CHECK(entry.is_object(), path, ": __metadata__ must be an object of strings");
      for (const auto& [k, v] : entry.items()) {
        IPT_CHECK(v.is_string(), path, ": __metadata__ value of '", k, "' must be a string");
        if (metadata) (*metadata)[k] = v.get<std::string>();
      }
      continue;
    }
    IPT_CHECK(entry.is_object() && entry.contains("dtype") && entry.contains("shape") && entry.contains("data_offsets"),
              where, " needs dtype, shape and data_offsets");
    IPT_CHECK(entry["dtype"].is_string(), where, ": dtype must be a string");
    const DtypeInfo& d = by_name(entry["dtype"].get<std::string>(), where);
    IPT_CHECK(entry["shape"].is_array(), where, ": shape must be a list of integers");
    std::vector<int64_t> shape;
    uint64_t count = 1;
    for (const auto& s : entry["shape"]) {
      IPT_CHECK(s.is_number_unsigned(), where, ": shape must be a list of non-negative integers");
      shape.push_back(s.get<int64_t>());
      count *= s.get<uint64_t>();
    }
    const auto& off = entry["data_offsets"];
    IPT_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(), where,
              ": data_offsets must be [begin, end]");
    const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    IPT_CHECK(begin <= end && end <= data_size, where, ": data_offsets [", begin, ", ", end,
              ") fall outside the data section of ", data_size, " bytes");
    IPT_CHECK(end - begin == count * d.bytes, where, ": ", end - begin, " bytes stored but shape and dtype need ",
              count * d.bytes);
    ranges.emplace_back(begin, end);
    auto keep = mapping;  // each tensor holds the mapping
    tensors[name] = torch::from_blob(const_cast<uint8_t*>(data + begin), shape, [keep](void*) {},
                                     torch::TensorOptions().dtype(d.dtype));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    IPT_CHECK(ranges[i].first >= ranges[i - 1].second || ranges[i].first == ranges[i].second, path,
              ": two tensors overlap at byte ", ranges[i].first);
  return tensors;
}

void write_safetensors(const std::string& path, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata) {
  DurableFile file(path);
  write_file(file, tensors, metadata);
  file.commit();
}

TensorMap load_checkpoint(const std::string& dir) {
  const fs::path single = fs::path(dir) / "model.safetensors", index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(index)) {
    std::ifstream in(index);
    json j;
    try {
      in >> j;
    } catch (const json::exception& e) {
      throw Error(index.string() + " is not valid JSON: " + e.what());
    }
    IPT_CHECK(j.contains("weight_map") && j["weight_map"].is_object(), index.string(), ": no weight_map");
    std::map<std::string, std::vector<std::string>> by_file;
    for (const auto& [name, file] : j["weight_map"].items()) {
      IPT_CHECK(file.is_string(), index.string(), ": weight_map entry for '", name, "' must be a file name");
      by_file[file.get<std::string>()].push_back(name);
    }
    TensorMap all;
    for (const auto& [file, names] : by_file) {
      TensorMap shard = read_safetensors((fs::path(dir) / file).string());
      for (const auto& name : names) {
        IPT_CHECK(shard.count(name), index.string(), " puts '", name, "' in ", file, " but it is not there");
        all[name] = shard.at(name);
      }
    }
    return all;
  }
  IPT_CHECK(fs::exists(single), "no checkpoint in ", dir, " (neither model.safetensors nor model.safetensors.index.json)");
  return read_safetensors(single.string());
}

void save_checkpoint(const std::string& dir, const TensorMap& tensors, uint64_t max_shard_bytes) {
  IPT_CHECK(max_shard_bytes > 0, "max shard size must be > 0");
  fs::create_directories(dir);
  std::vector<TensorMap> shards(1);
  uint64_t current = 0, total = 0;
  for (const auto& [name, t] : tensors) {
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    if (current > 0 && current + bytes > max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back()[name] = t;
    current += bytes;
    total += bytes;
  }
  // Every file is written and synced before any is put in place; an exception removes them all.
  std::vector<DurableFile> files;
  if (shards.size() == 1) {
    files.emplace_back((fs::path(dir) / "model.safetensors").string());
    write_file(files.back(), shards[0], {{"format", "pt"}});
  } else {
    json index = {{"metadata", {{"total_size", total}}}, {"weight_map", json::object()}};
    for (size_t i = 0; i < shards.size(); ++i) {
      std::ostringstream name;
      name << "model-" << std::setw(5) << std::setfill('0') << i + 1 << "-of-" << std::setw(5) << shards.size()
           << ".safetensors";
      files.emplace_back((fs::path(dir) / name.str()).string());
      write_file(files.back(), shards[i], {{"format", "pt"}});
      for (const auto& kv : shards[i]) index["weight_map"][kv.first] = name.str();
    }
    files.emplace_back((fs::path(dir) / "model.safetensors.index.json").string());
    files.back().write(index.dump(2) + "\n");
  }
  // Everything is on disk: put it in place. A single file replaces a stale index and vice versa.
  for (auto& file : files) file.commit();
  if (shards.size() == 1) fs::remove(fs::path(dir) / "model.safetensors.index.json");
  else fs::remove(fs::path(dir) / "model.safetensors");
  fsync_directory(dir);
}

}  // namespace ipt::io
