#pragma once
// Python's str methods on UTF-8 text, by code point: strip family, split, case, title.
#include <string>
#include <vector>

namespace ipt::infer::jinja {

std::u32string to_code_points(const std::string& s);
std::string to_utf8(const std::u32string& s);
bool python_space(char32_t c);  // str.isspace()

// chars null: whitespace (Python's default); otherwise any of the code points in *chars.
std::string strip(const std::string& s, const std::string* chars, bool left, bool right);
// sep null: runs of whitespace, no empty pieces; max_split < 0: unlimited.
std::vector<std::string> split(const std::string& s, const std::string* sep, int64_t max_split);
std::string upper(const std::string& s);
std::string lower(const std::string& s);
std::string python_title(const std::string& s);  // str.title()
std::string jinja_title(const std::string& s);   // the `title` filter (words start after space, -, (, {, [, <)
std::string capitalize(const std::string& s);
std::string replace(const std::string& s, const std::string& from, const std::string& to, int64_t count);

}  // namespace ipt::infer::jinja
