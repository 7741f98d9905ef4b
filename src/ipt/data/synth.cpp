#include "ipt/data/synth.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <sstream>

#include "ipt/common/error.h"

namespace ipt::data {

namespace {

constexpr size_t kMaxWordLetters = 12;  // haystack words (and so niah keys) are 3-12 letters

const char* kNoise = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? separator : "") + parts[i];
  return out;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string random_number(std::mt19937_64& rng, int digits) {
  std::uniform_int_distribution<int64_t> d(1, 9);
  std::string s = std::to_string(d(rng));
  std::uniform_int_distribution<int> digit(0, 9);
  while (static_cast<int>(s.size()) < digits) s += static_cast<char>('0' + digit(rng));
  return s;
}

std::string random_uuid(std::mt19937_64& rng) {
  const char* hex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) s += '-';
    s += hex[rng() % 16];
  }
  s[14] = '4';  // version 4 layout, as uuid4 prints
  return s;
}

std::string random_letters(std::mt19937_64& rng, int n, bool upper) {
  std::string s;
  for (int i = 0; i < n; ++i) s += static_cast<char>((upper ? 'A' : 'a') + rng() % 26);
  return s;
}

// A key like RULER's adjective-noun pairs: two distinct haystack words joined by a hyphen.
std::string random_key(std::mt19937_64& rng, const Haystack& h) {
  const auto& w = h.words();
  return w[rng() % w.size()] + "-" + w[rng() % w.size()];
}

// `units` with `inserts` placed at the given depths (fractions in [0, 1]); depths are returned
// as the fraction of units that precede each insert.
std::string place(std::vector<std::string> units, std::vector<std::string> inserts, std::vector<double> depths,
                  const std::string& separator, std::vector<double>* placed) {
  std::vector<size_t> order(inserts.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return depths[a] < depths[b]; });
  std::vector<std::string> out;
  const size_t n = units.size();
  size_t next_unit = 0;
  for (size_t i : order) {
    const size_t at = std::min(n, static_cast<size_t>(depths[i] * static_cast<double>(n)));
    while (next_unit < at) out.push_back(units[next_unit++]);
    out.push_back(inserts[i]);
    if (placed) placed->push_back(n ? static_cast<double>(at) / n : 0.0);
  }
  while (next_unit < n) out.push_back(units[next_unit++]);
  return join(out, separator);
}

std::vector<double> random_depths(std::mt19937_64& rng, size_t count) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<double> d(count);
  for (auto& x : d) x = u(rng);
  return d;
}

// Consecutive essay sentences from a seeded start (wrapping around the corpus).
std::vector<std::string> essay(const Haystack& h, int64_t n, uint64_t start) {
  std::vector<std::string> out;
  const auto& s = h.sentences();
  for (int64_t i = 0; i < n; ++i) out.push_back(s[(start + i) % s.size()]);
  return out;
}

struct NiahConfig {
  enum Haystack { kRepeat, kEssay, kNeedles } haystack;
  bool uuid_keys, uuid_values;
  int keys, values, queries;
};

const std::map<std::string, NiahConfig>& niah_configs() {
  static const std::map<std::string, NiahConfig> configs{
      {"niah_single_1", {NiahConfig::kRepeat, false, false, 1, 1, 1}},
      {"niah_single_2", {NiahConfig::kEssay, false, false, 1, 1, 1}},
      {"niah_single_3", {NiahConfig::kEssay, false, true, 1, 1, 1}},
      {"niah_multikey_1", {NiahConfig::kEssay, false, false, 4, 1, 1}},
      {"niah_multikey_2", {NiahConfig::kNeedles, false, false, 1, 1, 1}},
      {"niah_multikey_3", {NiahConfig::kNeedles, true, true, 1, 1, 1}},
      {"niah_multivalue", {NiahConfig::kEssay, false, false, 1, 4, 1}},
      {"niah_multiquery", {NiahConfig::kEssay, false, false, 4, 1, 4}},
  };
  return configs;
}

// Builds one sample with a haystack of `n` units; deterministic in (seed, n).
SynthSample build(const std::string& task, int64_t n, uint64_t seed, const Haystack& h) {
  std::mt19937_64 rng(seed);
  SynthSample s;
  s.task = task;
  if (auto it = niah_configs().find(task); it != niah_configs().end()) {
    const NiahConfig& c = it->second;
    const std::string kind = c.uuid_values ? "uuids" : "numbers";
    auto key = [&] { return c.uuid_keys ? random_uuid(rng) : random_key(rng, h); };
    auto value = [&] { return c.uuid_values ? random_uuid(rng) : random_number(rng, 7); };
    std::vector<std::string> keys, needles;
    std::set<std::string> used;
    while (static_cast<int>(keys.size()) < c.keys)
      if (std::string k = key(); used.insert(k).second) keys.push_back(k);
    for (int k = 0; k < c.keys; ++k)
      for (int v = 0; v < c.values; ++v) {
        std::string val = value();
        needles.push_back("One of the special magic " + kind + " for " + keys[k] + " is: " + val + ".");
        if (k < c.queries) s.answers.push_back(val);
      }
    std::vector<std::string> units;
    const uint64_t start = rng();
    if (c.haystack == NiahConfig::kRepeat) units.assign(n, kNoise);
    if (c.haystack == NiahConfig::kEssay) units = essay(h, n, start);
    if (c.haystack == NiahConfig::kNeedles)
      for (int64_t i = 0; i < n; ++i) {
        std::string k = key();
        while (!used.insert(k).second) k = key();
        units.push_back("One of the special magic " + kind + " for " + k + " is: " + value() + ".");
      }
    std::string context = place(units, needles, random_depths(rng, needles.size()), " ", &s.depths);
    std::vector<std::string> queried(keys.begin(), keys.begin() + c.queries);
    std::string query = queried.size() == 1 ? queried[0]
                                            : join({queried.begin(), queried.end() - 1}, ", ") + ", and " + queried.back();
    s.answer_prefix = " The special magic " + kind + " for " + query + " mentioned in the provided text are";
    s.input = "Some special magic " + kind + " are hidden within the following text. Make sure to memorize it. "
              "I will quiz you about the " + kind + " afterwards.\n" + context + "\nWhat are all the special magic " +
              kind + " for " + query + " mentioned in the provided text?" + s.answer_prefix;
    return s;
  }
  if (task == "passkey") {
    std::string key = std::to_string(std::uniform_int_distribution<int>(1, 50000)(rng));
    std::string needle = "The pass key is " + key + ". Remember it. " + key + " is the pass key.";
    std::string context = place(std::vector<std::string>(n, kNoise), {needle}, random_depths(rng, 1), " ", &s.depths);
    s.answers = {key};
    s.answer_prefix = " The pass key is";
    s.input = "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. "
              "I will quiz you about the important information there.\n" + context + "\nWhat is the pass key?" +
              s.answer_prefix;
    return s;
  }
  if (task == "vt") {
    // One chain of four hops: VAR A = value, VAR B = VAR A, ... in order at increasing depths.
    std::string value = random_number(rng, 5);
    std::vector<std::string> names, statements;
    std::set<std::string> used;
    while (names.size() < 5)
      if (std::string v = random_letters(rng, 5, true); used.insert(v).second) names.push_back(v);
    statements.push_back("VAR " + names[0] + " = " + value + ".");
    for (size_t i = 1; i < names.size(); ++i) statements.push_back("VAR " + names[i] + " = VAR " + names[i - 1] + ".");
    std::vector<double> depths = random_depths(rng, statements.size());
    std::sort(depths.begin(), depths.end());
    std::string context = place(std::vector<std::string>(n, kNoise), statements, depths, " ", &s.depths);
    s.answers = names;
    s.answer_prefix = " Answer: According to the chain(s) of variable assignment in the text above, 5 variables are "
                      "assgined the value " + value + ", they are: ";  // RULER's spelling
    s.input = "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n" + context +
              "\nQuestion: Find all variables that are assigned the value " + value + " in the text above." +
              s.answer_prefix;
    return s;
  }
  if (task == "cwe") {
    // Ten common words 30 times each among `n` uncommon words 3 times each, shuffled and numbered.
    std::vector<std::string> vocab = h.words();
    std::shuffle(vocab.begin(), vocab.end(), rng);
    IPT_CHECK(static_cast<int64_t>(vocab.size()) >= 10 + n, "the haystack has too few distinct words for cwe");
    std::vector<std::string> list;
    for (int i = 0; i < 10; ++i) {
      s.answers.push_back(vocab[i]);
      for (int k = 0; k < 30; ++k) list.push_back(vocab[i]);
    }
    for (int64_t i = 0; i < n; ++i)
      for (int k = 0; k < 3; ++k) list.push_back(vocab[10 + i]);
    std::shuffle(list.begin(), list.end(), rng);
    std::vector<std::string> numbered;
    for (size_t i = 0; i < list.size(); ++i) numbered.push_back(std::to_string(i + 1) + ". " + list[i]);
    s.answer_prefix = " Answer: The top 10 words that appear most often in the list are:";
    s.input = "Below is a numbered list of words. In these words, some appear more often than others. Memorize the "
              "ones that appear most often.\n" + join(numbered, " ") +
              "\nQuestion: What are the 10 most common words in the above list?" + s.answer_prefix;
    return s;
  }
  if (task == "fwe") {
    // Coded words drawn from a Zipf(2) law; the answer is the three most frequent.
    std::vector<std::string> vocab;
    std::set<std::string> used;
    while (vocab.size() < 200)
      if (std::string w = random_letters(rng, 5, false); used.insert(w).second) vocab.push_back(w);
    std::vector<double> weights;
    for (size_t r = 1; r <= vocab.size(); ++r) weights.push_back(1.0 / (double(r) * double(r)));
    std::discrete_distribution<size_t> zipf(weights.begin(), weights.end());
    std::vector<std::string> words;
    std::vector<int64_t> counts(vocab.size(), 0);
    for (int64_t i = 0; i < std::max<int64_t>(n, 1); ++i) {
      size_t r = zipf(rng);
      counts[r]++;
      words.push_back(vocab[r]);
      if (i % 10 == 9) words.push_back("....");
    }
    std::vector<size_t> by_count(vocab.size());
    for (size_t i = 0; i < by_count.size(); ++i) by_count[i] = i;
    std::stable_sort(by_count.begin(), by_count.end(), [&](size_t a, size_t b) { return counts[a] > counts[b]; });
    for (int i = 0; i < 3; ++i) s.answers.push_back(vocab[by_count[i]]);
    s.answer_prefix = " Answer: According to the coded text above, the three most frequently appeared words are:";
    s.input = "Read the following coded text and track the frequency of each coded word. Find the three most "
              "frequently appeared coded words. " + join(words, " ") +
              "\nQuestion: Do not provide any explanation. Please ignore the dots '....'. What are the three most "
              "frequently appeared words in the above coded text?" + s.answer_prefix;
    return s;
  }
  if (task == "induction") {
    // A random word sequence, then its first half again: the continuation is a copy.
    std::vector<std::string> seq;
    for (int64_t i = 0; i < std::max<int64_t>(n, 8); ++i) seq.push_back(h.words()[rng() % h.words().size()]);
    const size_t half = seq.size() / 2;
    s.answers = {join({seq.begin() + half, seq.begin() + half + 4}, " ")};
    s.answer_prefix = "";
    s.input = join(seq, " ") + "\n" + join({seq.begin(), seq.begin() + half}, " ");
    return s;
  }
  throw Error("unknown synthetic task '" + task + "' (expected one of: " + join(synth_tasks(), ", ") + ")");
}

}  // namespace

Haystack::Haystack(const std::vector<std::string>& documents) {
  std::set<std::string> words;
  for (const std::string& doc : documents) {
    // Sentences end at . ! or ? followed by whitespace; whitespace runs collapse to one space.
    std::string sentence;
    for (size_t i = 0; i < doc.size(); ++i) {
      char c = doc[i];
      if (std::isspace(static_cast<unsigned char>(c))) {
        if (!sentence.empty() && sentence.back() != ' ') sentence += ' ';
        continue;
      }
      sentence += c;
      if ((c == '.' || c == '!' || c == '?') && (i + 1 == doc.size() || std::isspace(static_cast<unsigned char>(doc[i + 1])))) {
        sentences_.push_back(sentence);
        sentence.clear();
      }
    }
    while (!sentence.empty() && sentence.back() == ' ') sentence.pop_back();
    if (!sentence.empty()) sentences_.push_back(sentence);
    std::string word;
    for (char c : doc + " ") {
      if (std::isalpha(static_cast<unsigned char>(c))) {
        word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      } else {
        // Ordinary words only: code and markup hold letter runs of hundreds (identifiers, base64),
        // and a key made of those can make a prompt longer than any row.
        if (word.size() >= 3 && word.size() <= kMaxWordLetters) words.insert(word);
        word.clear();
      }
    }
  }
  IPT_CHECK(!sentences_.empty() && words.size() >= 100,
            "a haystack needs natural text (at least 100 distinct words); got ", sentences_.size(), " sentences and ",
            words.size(), " words");
  words_.assign(words.begin(), words.end());
}

const std::vector<std::string>& synth_tasks() {
  static const std::vector<std::string> tasks{
      "niah_single_1",   "niah_single_2",   "niah_single_3",   "niah_multikey_1", "niah_multikey_2", "niah_multikey_3",
      "niah_multivalue", "niah_multiquery", "vt",              "cwe",             "fwe",             "passkey",
      "induction"};
  return tasks;
}

SynthSample generate(const SynthOptions& options, const Haystack& haystack, const TokenCounter& count) {
  IPT_CHECK(options.max_length > options.tokens_to_generate && options.tokens_to_generate >= 0,
            "synthetic sample length ", options.max_length, " must exceed the answer budget ",
            options.tokens_to_generate);
  const int64_t budget = options.max_length - options.tokens_to_generate;
  auto fits = [&](int64_t n) { return count(build(options.task, n, options.seed, haystack).input) <= budget; };
  IPT_CHECK(fits(0), "task ", options.task, " does not fit in ", options.max_length,
            " tokens even without a haystack");
  // Largest haystack that fits: grow until it does not (or the task runs out of material), then bisect.
  const int64_t max_units = options.task == "cwe" ? static_cast<int64_t>(haystack.words().size()) - 10 : int64_t(1) << 26;
  int64_t lo = 0, hi = 1;
  while (hi <= max_units && fits(hi)) {
    lo = hi;
    hi *= 2;
  }
  if (hi > max_units) {
    IPT_CHECK(max_units < (int64_t(1) << 26), "task ", options.task, ": the token counter never reaches ", budget);
    if (fits(max_units)) hi = max_units + 1, lo = max_units;  // shorter than asked: the haystack's words run out
  }
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  SynthSample s = build(options.task, lo, options.seed, haystack);
  s.length = count(s.input);
  return s;
}

double string_match_all(const std::string& prediction, const std::vector<std::string>& answers) {
  if (answers.empty()) return 0.0;
  const std::string p = lower(prediction);
  double found = 0;
  for (const auto& a : answers) found += p.find(lower(a)) != std::string::npos ? 1.0 : 0.0;
  return found / static_cast<double>(answers.size());
}

}  // namespace ipt::data
