#pragma once
// Durable, atomic file writes: a reader (or the next run after a crash or a power cut) sees either
// the old file or the whole new one, never a part. Every writer of files we must not lose
// (checkpoints, data shards, safetensors, config.json, session files, plots) goes through here.
//
// The recipe: write a temporary file in the destination's directory (a rename is atomic only within
// one file system), fsync it, rename it over the destination, fsync the directory (so the rename
// itself survives a power cut). On any failure the temporary file is removed, the destination is
// untouched, and the error (ipt::Error) names the destination path and the system's reason.
#include <cstddef>
#include <string>
#include <string_view>

namespace ipt {

// `<path>.tmp.<pid>.<n>`: beside the destination, unique within and across processes. Leftovers of a
// killed writer match `<path>.tmp.` (the server's session directory check removes them).
std::string temp_path_for(const std::string& path);

// A file being written durably. Nothing is visible at `path` until commit(); destroying an
// uncommitted file removes its temporary.
class DurableFile {
 public:
  explicit DurableFile(std::string path);  // creates the temporary file (throws naming `path`)
  ~DurableFile();
  DurableFile(DurableFile&& other) noexcept;
  DurableFile& operator=(DurableFile&&) = delete;
  DurableFile(const DurableFile&) = delete;
  DurableFile& operator=(const DurableFile&) = delete;

  void write(const void* data, size_t bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  // Flushes the contents to disk and closes the temporary (commit does it when not yet done); a
  // writer of several files syncs them all before putting any in place.
  void sync();
  void commit();  // sync, rename over the destination, fsync the directory

  const std::string& path() const { return path_; }

 private:
  [[noreturn]] void fail(const std::string& what, int error);

  std::string path_, temp_;
  int fd_ = -1;
  bool committed_ = false;
};

// The whole of `contents` to `path`, durably.
void write_file_durably(const std::string& path, std::string_view contents);

// A temporary file written by someone else (a child process) installed at `path`: fsync, rename,
// fsync the directory; on failure `temp` is removed.
void install_file_durably(const std::string& temp, const std::string& path);

// A directory assembled at `staged` (in the destination's parent directory) put in place of `path`
// as a whole: its files and it are synced, an existing `path` is moved aside and removed only once
// the new one is in place; on failure `staged` is removed and the old `path` is back.
void install_directory_durably(const std::string& staged, const std::string& path);

// fsync of a directory, so renames and creations in it survive a power cut. File systems that
// cannot sync a directory (EINVAL) are not an error.
void fsync_directory(const std::string& dir);

}  // namespace ipt
