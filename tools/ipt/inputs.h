#pragma once
// Reading what users hand the commands: text files (or stdin), token-id lists, documents to
// tokenize. One implementation, so every command accepts and rejects the same things.
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "ipt/common/error.h"
#include "ipt/tokenizer/tokenizer.h"

namespace ipt::cli {

// The whole file as bytes; "-" reads standard input.
inline std::string read_input(const std::string& path) {
  std::ostringstream buffer;
  if (path == "-") {
    buffer << std::cin.rdbuf();
    return buffer.str();
  }
  std::ifstream in(path, std::ios::binary);
  IPT_CHECK(in, "cannot read '", path, "'");
  buffer << in.rdbuf();
  return buffer.str();
}

// Non-negative integers separated by whitespace or commas; `origin` names the source in errors.
inline std::vector<int64_t> parse_token_ids(const std::string& text, const std::string& origin) {
  std::vector<int64_t> ids;
  size_t i = 0;
  auto separator = [&](size_t k) { return std::isspace(static_cast<unsigned char>(text[k])) || text[k] == ','; };
  while (i < text.size()) {
    while (i < text.size() && separator(i)) ++i;
    if (i >= text.size()) break;
    size_t j = i;
    while (j < text.size() && !separator(j)) ++j;
    const std::string word = text.substr(i, j - i);
    char* end = nullptr;
    errno = 0;
    const long long value = std::strtoll(word.c_str(), &end, 10);
    IPT_CHECK(end && *end == '\0' && errno == 0 && value >= 0, origin, ": '", word,
              "' is not a token id (non-negative integer)");
    ids.push_back(value);
    i = j;
  }
  return ids;
}

// A document's ids as the model reads it: the tokenizer's bos token first when its config adds
// one, then the text (what `score --text`, `eval ppl` and `generate` all feed the model).
inline std::vector<int64_t> encode_document(const tok::Tokenizer& tokenizer, const std::string& text) {
  std::vector<int64_t> ids;
  if (tokenizer.config().add_bos_token && tokenizer.bos_id()) ids.push_back(*tokenizer.bos_id());
  for (int32_t id : tokenizer.encode(text)) ids.push_back(id);
  return ids;
}

}  // namespace ipt::cli
