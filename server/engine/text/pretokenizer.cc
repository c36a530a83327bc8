#include "server/engine/text/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <string>
#include <utility>

#include "server/engine/text/utf8_stream.h"

namespace gemserve {
namespace {

using MatchData = std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)>;

// Unicode's White_Space property, the class `\s` of GPT-2's `regex` module.
constexpr std::string_view kWhiteSpace =
    R"(\t\n\x0B\f\r\x20\x{85}\x{A0}\x{1680}\x{2000}-\x{200A})"
    R"(\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// GPT-2's pattern with `\s` spelled out; `(?!\S)` becomes `(?![^space])`.
std::string gpt2_pattern() {
  const std::string space(kWhiteSpace);
  return "'s|'t|'re|'ve|'m|'ll|'d"
         R"(| ?\p{L}+| ?\p{N}+| ?[^)" + space + R"(\p{L}\p{N}]+)"
         "|[" + space + "]+(?![^" + space + "])"
         "|[" + space + "]+";
}

std::string pcre2_error_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

bool is_valid_utf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const Utf8Scan scan = ScanUtf8Char(text.substr(i));
    if (scan.kind != Utf8Scan::kValid) return false;
    i += scan.length;
  }
  return true;
}

}  // namespace

struct Pretokenizer::Regex {
  std::unique_ptr<pcre2_code, decltype(&pcre2_code_free)> code;
};

StatusOr<Pretokenizer> Pretokenizer::Create() {
  const std::string pattern = gpt2_pattern();
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error, &error_offset, nullptr);
  if (code == nullptr) {
    return Status::Internal(
        "cannot compile GPT-2's pre-tokenization pattern (PCRE2: " + pcre2_error_message(error) +
        " at offset " + std::to_string(error_offset) + ")");
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // where JIT is unavailable, PCRE2 interprets
  return Pretokenizer(std::make_unique<Regex>(Regex{{code, &pcre2_code_free}}));
}

Pretokenizer::Pretokenizer(std::unique_ptr<Regex> regex) : regex_(std::move(regex)) {}
Pretokenizer::Pretokenizer(Pretokenizer&&) noexcept = default;
Pretokenizer& Pretokenizer::operator=(Pretokenizer&&) noexcept = default;
Pretokenizer::~Pretokenizer() = default;

std::vector<std::string_view> Pretokenizer::Split(std::string_view text) const {
  return is_valid_utf8(text) ? SplitValidUtf8(text) : SplitInvalidUtf8(text);
}

std::vector<std::string_view> Pretokenizer::SplitValidUtf8(std::string_view text) const {
  // Match data per call: the compiled pattern is shared read-only between threads.
  const MatchData match(pcre2_match_data_create_from_pattern(regex_->code.get(), nullptr),
                        &pcre2_match_data_free);
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::vector<std::string_view> words;
  size_t offset = 0;
  while (offset < text.size()) {
    // The pattern matches at every character, so the match starts at `offset`. Should
    // PCRE2 fail anyway (a resource limit), the rest becomes one word: no byte is lost.
    const int found = pcre2_match(regex_->code.get(), subject, text.size(), offset,
                                  PCRE2_NO_UTF_CHECK, match.get(), nullptr);
    const size_t end = found > 0 ? pcre2_get_ovector_pointer(match.get())[1] : text.size();
    words.push_back(text.substr(offset, end - offset));
    offset = end;
  }
  return words;
}

std::vector<std::string_view> Pretokenizer::SplitInvalidUtf8(std::string_view text) const {
  // Splits a stand-in text in which each invalid subpart is one U+FFFD: like the
  // invalid bytes (and the surrogates Python decodes them to), U+FFFD is outside \s,
  // \p{L} and \p{N}. `origin` maps each stand-in byte offset back to `text`.
  std::string stand_in;
  std::vector<size_t> origin;
  for (size_t i = 0; i < text.size();) {
    const Utf8Scan scan = ScanUtf8Char(text.substr(i));
    const std::string_view piece =
        scan.kind == Utf8Scan::kValid ? text.substr(i, scan.length) : kReplacementCharacter;
    stand_in.append(piece);
    origin.insert(origin.end(), piece.size(), i);
    i += scan.length;
  }
  origin.push_back(text.size());

  std::vector<std::string_view> words;
  for (const std::string_view word : SplitValidUtf8(stand_in)) {
    const size_t begin = origin[word.data() - stand_in.data()];
    const size_t end = origin[word.data() + word.size() - stand_in.data()];
    words.push_back(text.substr(begin, end - begin));
  }
  return words;
}

}  // namespace gemserve
