#pragma once
// One error type for everything a user can get wrong: bad files, bad shapes, impossible options.
// The message names the argument and what was expected; the CLI prints it and exits non-zero.
#include <sstream>
#include <stdexcept>
#include <string>

namespace ipt {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace detail

}  // namespace ipt

// IPT_CHECK(cond, "argument 'chunk' must be > 0, got ", chunk);
#define IPT_CHECK(cond, ...)                                 \
  do {                                                       \
    if (!(cond)) throw ::ipt::Error(::ipt::detail::concat(__VA_ARGS__)); \
  } while (0)
