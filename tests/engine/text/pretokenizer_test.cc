#include "server/engine/text/pretokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace gemserve {
namespace {

using ::testing::ElementsAre;

std::vector<std::string> Split(std::string_view text) {
  static const StatusOr<Pretokenizer> pretokenizer = Pretokenizer::Create();
  EXPECT_TRUE(pretokenizer.ok()) << pretokenizer.status().message();
  const std::vector<std::string_view> words = pretokenizer->Split(text);
  return {words.begin(), words.end()};
}

std::string Join(const std::vector<std::string>& words) {
  std::string text;
  for (const std::string& word : words) text += word;
  return text;
}

TEST(PretokenizerTest, SplitsWithGpt2Pattern) {
  EXPECT_THAT(Split(""), ElementsAre());
  EXPECT_THAT(Split("Hello world"), ElementsAre("Hello", " world"));
  EXPECT_THAT(Split("I'm don't"), ElementsAre("I", "'m", " don", "'t"));
  EXPECT_THAT(Split("IT'S"), ElementsAre("IT", "'", "S"));  // case-sensitive contractions
  EXPECT_THAT(Split("3.14 1,000"), ElementsAre("3", ".", "14", " 1", ",", "000"));
  EXPECT_THAT(Split("a   b"), ElementsAre("a", "  ", " b"));  // \s+(?!\S) leaves one space
  EXPECT_THAT(Split("  \n  x"), ElementsAre("  \n ", " x"));
  EXPECT_THAT(Split("x  "), ElementsAre("x", "  "));
  EXPECT_THAT(Split("Hi!! 😀"), ElementsAre("Hi", "!!", " 😀"));
  EXPECT_THAT(Split("日本語 текст"), ElementsAre("日本語", " текст"));
  EXPECT_THAT(Split("x²½"), ElementsAre("x", "²½"));  // \p{N} includes No
}

// GPT-2's `regex` module takes \s as Unicode's White_Space: U+0085 and U+00A0 are
// spaces, U+180E and U+FEFF are not (PCRE2's own \s would take U+180E).
TEST(PretokenizerTest, WhiteSpaceIsUnicodeWhiteSpaceProperty) {
  EXPECT_THAT(Split("!\u0085"), ElementsAre("!", "\u0085"));
  EXPECT_THAT(Split("a\u0085 b"), ElementsAre("a", "\u0085", " b"));
  EXPECT_THAT(Split("a\u00A0b"), ElementsAre("a", "\u00A0", "b"));
  EXPECT_THAT(Split("!\u180E"), ElementsAre("!\u180E"));
  EXPECT_THAT(Split("x\u180E\u180E y"), ElementsAre("x", "\u180E\u180E", " y"));
  EXPECT_THAT(Split("!\uFEFF"), ElementsAre("!\uFEFF"));
}

// As Python's surrogateescape: each invalid byte is a character outside \s, \p{L}, \p{N}.
TEST(PretokenizerTest, InvalidBytesCountAsPunctuation) {
  EXPECT_THAT(Split("!\xFF?"), ElementsAre("!\xFF?"));
  EXPECT_THAT(Split("a\xFFz"), ElementsAre("a", "\xFF", "z"));
  EXPECT_THAT(Split(" \xFF\xFE word"), ElementsAre(" \xFF\xFE", " word"));
  EXPECT_THAT(Split("caf\xC3"), ElementsAre("caf", "\xC3"));                // truncated at the end
  EXPECT_THAT(Split("\xED\xA0\x80 x"), ElementsAre("\xED\xA0\x80", " x"));  // a surrogate
}

TEST(PretokenizerTest, WordsTileArbitraryBytes) {
  std::mt19937 random(7);
  std::uniform_int_distribution<int> byte(0, 255), length(0, 100);
  for (int i = 0; i < 2000; ++i) {
    std::string text(length(random), '\0');
    for (char& c : text) c = static_cast<char>(byte(random));
    const std::vector<std::string> words = Split(text);
    EXPECT_EQ(Join(words), text);
    for (const std::string& word : words) EXPECT_FALSE(word.empty());
  }
}

TEST(PretokenizerTest, HandlesMegabyteRuns) {
  for (const std::string& run : {std::string(1 << 20, ' '), std::string(1 << 20, 'a'),
                                 std::string(1 << 20, '!'), std::string(1 << 20, '\xFF')}) {
    EXPECT_THAT(Split(run), ElementsAre(run));
  }
  const std::string spaces_then_word = std::string(1 << 20, ' ') + "x";
  EXPECT_THAT(Split(spaces_then_word), ElementsAre(std::string((1 << 20) - 1, ' '), " x"));
}

}  // namespace
}  // namespace gemserve
