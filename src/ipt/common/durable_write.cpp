#include "ipt/common/durable_write.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <unistd.h>

#include "ipt/common/error.h"

namespace ipt {

namespace fs = std::filesystem;

namespace {

std::string parent_dir(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

// fsync of an open-able path (file or directory); returns errno, 0 on success.
int sync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) return errno;
  const int result = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return result == EINVAL ? 0 : result;  // EINVAL: this file system cannot sync it
}

}  // namespace

std::string temp_path_for(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

void fsync_directory(const std::string& dir) {
  const int error = sync_path(dir, true);
  if (error != 0) throw Error("cannot sync directory " + dir + ": " + std::strerror(error));
}

DurableFile::DurableFile(std::string path) : path_(std::move(path)), temp_(temp_path_for(path_)) {
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error("cannot write " + path_ + ": cannot create " + temp_ + ": " + std::strerror(errno));
}

DurableFile::DurableFile(DurableFile&& other) noexcept
    : path_(std::move(other.path_)), temp_(std::move(other.temp_)), fd_(other.fd_), committed_(other.committed_) {
  other.fd_ = -1;
  other.committed_ = true;  // the moved-from object owns nothing to clean up
}

DurableFile::~DurableFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void DurableFile::fail(const std::string& what, int error) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(temp_.c_str());
  committed_ = true;  // nothing left to clean up
  throw Error("cannot write " + path_ + ": " + what + ": " + std::strerror(error));
}

void DurableFile::write(const void* data, size_t bytes) {
  IPT_CHECK(fd_ >= 0 && !committed_, "cannot write ", path_, ": the file is already closed");
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd_, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("write failed", n < 0 ? errno : ENOSPC);
    p += n;
    bytes -= static_cast<size_t>(n);
  }
}

void DurableFile::sync() {
  if (fd_ < 0) return;
  if (::fsync(fd_) != 0) fail("cannot flush it to disk", errno);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("cannot close it", errno);
}

void DurableFile::commit() {
  IPT_CHECK(!committed_, "cannot write ", path_, ": already committed");
  sync();
  if (::rename(temp_.c_str(), path_.c_str()) != 0) fail("cannot rename " + temp_ + " over it", errno);
  committed_ = true;
  fsync_directory(parent_dir(path_));
}

void write_file_durably(const std::string& path, std::string_view contents) {
  DurableFile file(path);
  file.write(contents);
  file.commit();
}

void install_file_durably(const std::string& temp, const std::string& path) {
  const auto fail = [&](const std::string& what, int error) {
    ::unlink(temp.c_str());
    throw Error("cannot write " + path + ": " + what + ": " + std::strerror(error));
  };
  if (const int error = sync_path(temp, false)) fail("cannot flush " + temp + " to disk", error);
  if (::rename(temp.c_str(), path.c_str()) != 0) fail("cannot rename " + temp + " over it", errno);
  fsync_directory(parent_dir(path));
}

void install_directory_durably(const std::string& staged, const std::string& path) {
  const fs::path target = fs::path(path).lexically_normal();
  // Hidden, so that nothing scanning the parent (latest checkpoint) takes it for a result.
  const fs::path aside = temp_path_for((target.parent_path() / ("." + target.filename().string() + ".old")).string());
  std::error_code ignored;
  try {
    // Everything inside first, then the directories, so the tree is on disk before it is visible.
    for (const auto& entry : fs::recursive_directory_iterator(staged)) {
      if (entry.is_symlink()) continue;
      const bool directory = entry.is_directory();
      if (!directory && !entry.is_regular_file()) continue;
      if (const int error = sync_path(entry.path().string(), directory))
        throw Error("cannot flush " + entry.path().string() + " to disk: " + std::strerror(error));
    }
    fsync_directory(staged);
    if (fs::exists(target)) fs::rename(target, aside);
    fs::rename(staged, target);
    fsync_directory(parent_dir(target.string()));
  } catch (const std::exception& e) {
    fs::remove_all(staged, ignored);
    if (!fs::exists(target) && fs::exists(aside)) fs::rename(aside, target, ignored);
    throw Error("cannot write " + target.string() + ": " + e.what());
  }
  fs::remove_all(aside, ignored);
}

}  // namespace ipt
