#pragma once

// GPT-2's pre-tokenization: the split of text into the words that byte-level BPE then
// encodes one by one.

#include <memory>
#include <string_view>
#include <vector>

#include "server/engine/status.h"

namespace gemserve {

// Splits text with GPT-2's pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (PCRE2, Unicode classes), matched as GPT-2's Python `regex` module matches it:
// `\s` is Unicode's White_Space property, which PCRE2's `\s` is not quite (it also
// matches U+180E), so the pattern spells the class out.
//
// Invalid UTF-8 is accepted, as Python's `bytes.decode("utf-8", "surrogateescape")`
// accepts it: every byte that is not part of a valid character counts as one
// character outside \s, \p{L} and \p{N} (it joins the punctuation run around it).
//
// Safe for concurrent use from any number of threads.
class Pretokenizer {
 public:
  // Compiles the pattern. Fails (Internal) only where PCRE2 lacks Unicode support.
  static StatusOr<Pretokenizer> Create();

  Pretokenizer(Pretokenizer&&) noexcept;
  Pretokenizer& operator=(Pretokenizer&&) noexcept;
  ~Pretokenizer();

  // The words of `text`, in order, as views into `text`. They are non-empty and
  // their concatenation is `text`, byte for byte.
  std::vector<std::string_view> Split(std::string_view text) const;

 private:
  struct Regex;

  explicit Pretokenizer(std::unique_ptr<Regex> regex);

  std::vector<std::string_view> SplitValidUtf8(std::string_view text) const;
  std::vector<std::string_view> SplitInvalidUtf8(std::string_view text) const;

  std::unique_ptr<Regex> regex_;
};

}  // namespace gemserve
