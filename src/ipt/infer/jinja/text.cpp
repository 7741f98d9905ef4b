#include "ipt/infer/jinja/text.h"


#include "ipt/tokenizer/utf8.h"

namespace ipt::infer::jinja {

std::u32string to_code_points(const std::string& s) {
  std::u32string out;
  size_t i = 0;
  while (i < s.size()) out += tok::next_code_point(s, i);
  return out;
}

std::string to_utf8(const std::u32string& s) {
  std::string out;
  for (char32_t c : s) tok::append_utf8(out, c);
  return out;
}

bool python_space(char32_t c) { return tok::is_unicode_whitespace(c) || (c >= 0x1C && c <= 0x1F); }

std::string strip(const std::string& s, const std::string* chars, bool left, bool right) {
  const std::u32string text = to_code_points(s);
  const std::u32string set = chars ? to_code_points(*chars) : U"";
  auto stripped = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : python_space(c); };
  size_t begin = 0, end = text.size();
  if (left)
    while (begin < end && stripped(text[begin])) ++begin;
  if (right)
    while (end > begin && stripped(text[end - 1])) --end;
  return to_utf8(text.substr(begin, end - begin));
}

std::vector<std::string> split(const std::string& s, const std::string* sep, int64_t max_split) {
  std::vector<std::string> out;
  if (sep) {
    size_t from = 0;
    for (;;) {
      const size_t at = max_split >= 0 && static_cast<int64_t>(out.size()) >= max_split ? std::string::npos : s.find(*sep, from);
      if (at == std::string::npos) break;
      out.push_back(s.substr(from, at - from));
      from = at + sep->size();
    }
    out.push_back(s.substr(from));
    return out;
  }
  const std::u32string text = to_code_points(s);
  size_t i = 0;
  for (;;) {
    while (i < text.size() && python_space(text[i])) ++i;
    if (i == text.size()) break;
    if (max_split >= 0 && static_cast<int64_t>(out.size()) >= max_split) {  // the rest, right-trimmed
      size_t end = text.size();
      while (end > i && python_space(text[end - 1])) --end;
      out.push_back(to_utf8(text.substr(i, end - i)));
      break;
    }
    size_t j = i;
    while (j < text.size() && !python_space(text[j])) ++j;
    out.push_back(to_utf8(text.substr(i, j - i)));
    i = j;
  }
  return out;
}

namespace {

// Case mapping for ASCII, Latin-1, basic Greek and Cyrillic (fixed offsets); other scripts keep
// their case (chat templates change the case of role names and keywords, not of prose).
char32_t to_upper(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
  if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  return c;
}
char32_t to_lower(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if ((c >= 0xC0 && c <= 0xDE && c != 0xD7)) return c + 32;
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  return c;
}
bool is_cased(char32_t c) { return to_upper(c) != c || to_lower(c) != c; }

}  // namespace

std::string upper(const std::string& s) {
  std::u32string t = to_code_points(s);
  for (auto& c : t) c = to_upper(c);
  return to_utf8(t);
}

std::string lower(const std::string& s) {
  std::u32string t = to_code_points(s);
  for (auto& c : t) c = to_lower(c);
  return to_utf8(t);
}

std::string python_title(const std::string& s) {
  std::u32string t = to_code_points(s);
  bool previous_cased = false;
  for (auto& c : t) {
    c = previous_cased ? to_lower(c) : to_upper(c);
    previous_cased = is_cased(c);
  }
  return to_utf8(t);
}

std::string jinja_title(const std::string& s) {
  std::u32string t = to_code_points(s);
  bool word_start = true;
  for (auto& c : t) {
    const bool boundary = python_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    if (boundary) {
      word_start = true;
      continue;
    }
    c = word_start ? to_upper(c) : to_lower(c);
    word_start = false;
  }
  return to_utf8(t);
}

std::string capitalize(const std::string& s) {
  std::u32string t = to_code_points(s);
  for (size_t i = 0; i < t.size(); ++i) t[i] = i == 0 ? to_upper(t[i]) : to_lower(t[i]);
  return to_utf8(t);
}

std::string replace(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  std::string out;
  if (from.empty()) {  // Python inserts `to` around every code point
    const std::u32string t = to_code_points(s);
    int64_t n = 0;
    for (size_t i = 0; i <= t.size(); ++i) {
      if (count < 0 || n < count) out += to, ++n;
      if (i < t.size()) out += to_utf8(t.substr(i, 1));
    }
    return out;
  }
  size_t at = 0;
  int64_t n = 0;
  for (;;) {
    const size_t hit = count >= 0 && n >= count ? std::string::npos : s.find(from, at);
    if (hit == std::string::npos) break;
    out += s.substr(at, hit - at) + to;
    at = hit + from.size();
    ++n;
  }
  return out + s.substr(at);
}

}  // namespace ipt::infer::jinja
