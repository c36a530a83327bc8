#include "server/engine/text/utf8_stream.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace gemserve {
namespace {

const std::string kReplacement(kReplacementCharacter);

void ExpectScan(std::string_view bytes, Utf8Scan::Kind kind, size_t length) {
  const Utf8Scan scan = ScanUtf8Char(bytes);
  EXPECT_EQ(scan.kind, kind) << testing::PrintToString(std::string(bytes));
  EXPECT_EQ(scan.length, length) << testing::PrintToString(std::string(bytes));
}

TEST(ScanUtf8CharTest, ClassifiesByRfc3629) {
  ExpectScan("a", Utf8Scan::kValid, 1);
  ExpectScan("\xC3\xA9x", Utf8Scan::kValid, 2);         // é
  ExpectScan("\xE6\x97\xA5", Utf8Scan::kValid, 3);      // 日
  ExpectScan("\xF0\x9F\x98\x80", Utf8Scan::kValid, 4);  // 😀
  ExpectScan("\xF4\x8F\xBF\xBF", Utf8Scan::kValid, 4);  // U+10FFFF
  ExpectScan("\xE6\x97", Utf8Scan::kTruncated, 2);
  ExpectScan("\xF0", Utf8Scan::kTruncated, 1);
  ExpectScan("\x80", Utf8Scan::kInvalid, 1);              // continuation without lead
  ExpectScan("\xC0\x80", Utf8Scan::kInvalid, 1);          // overlong lead
  ExpectScan("\xE0\x80\x80", Utf8Scan::kInvalid, 1);      // overlong
  ExpectScan("\xED\xA0\x80", Utf8Scan::kInvalid, 1);      // surrogate
  ExpectScan("\xF4\x90\x80\x80", Utf8Scan::kInvalid, 1);  // above U+10FFFF
  ExpectScan("\xF5\x80\x80\x80", Utf8Scan::kInvalid, 1);
  ExpectScan("\xE6\x97Z", Utf8Scan::kInvalid, 2);  // the maximal subpart, then 'Z'
  ExpectScan("\xF0\x9F\x98Z", Utf8Scan::kInvalid, 3);
}

// The text as its characters, so that piece boundaries can be checked against them.
const std::vector<std::string> kCharacters = {
    "a", "é", "日", "😀", " ", "\xF4\x8F\xBF\xBF", "ß", "👍", "\xE2\x80\x8D", "z", "本", "€"};

TEST(Utf8StreamDecoderTest, ByteAtATimeNeverSplitsACharacter) {
  std::string text;
  std::vector<size_t> boundaries = {0};
  for (const std::string& character : kCharacters) {
    text += character;
    boundaries.push_back(text.size());
  }
  Utf8StreamDecoder decoder;
  std::string streamed;
  for (const char byte : text) {
    const std::string piece = decoder.Feed(std::string_view(&byte, 1));
    streamed += piece;
    EXPECT_EQ(text.compare(0, streamed.size(), streamed), 0);
    EXPECT_NE(std::find(boundaries.begin(), boundaries.end(), streamed.size()), boundaries.end())
        << "a piece ended inside a character at byte " << streamed.size();
  }
  EXPECT_EQ(decoder.Flush(), "");
  EXPECT_EQ(streamed, text);
}

TEST(Utf8StreamDecoderTest, ReleasesACharacterWithItsLastByte) {
  Utf8StreamDecoder decoder;
  EXPECT_EQ(decoder.Feed("ab\xF0\x9F"), "ab");
  EXPECT_EQ(decoder.Feed("\x98"), "");
  EXPECT_EQ(decoder.Feed("\x80!"), "😀!");
}

TEST(Utf8StreamDecoderTest, InvalidBytesBecomeReplacementCharacters) {
  Utf8StreamDecoder decoder;
  EXPECT_EQ(decoder.Feed("a\xFFz"), "a" + kReplacement + "z");
  EXPECT_EQ(decoder.Feed("\xE6\x97"), "");
  EXPECT_EQ(decoder.Feed("A"), kReplacement + "A");  // the sequence was cut short
  EXPECT_EQ(decoder.Feed("\xED\xA0\x80"), kReplacement + kReplacement + kReplacement);
  EXPECT_EQ(decoder.Feed("\xF0\x9F"), "");
  EXPECT_EQ(decoder.Flush(), kReplacement);  // incomplete at the end of the stream
  EXPECT_EQ(decoder.Flush(), "");
  EXPECT_EQ(decoder.Feed("ok"), "ok");  // usable again after Flush
}

bool IsValidUtf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const Utf8Scan scan = ScanUtf8Char(text.substr(i));
    if (scan.kind != Utf8Scan::kValid) return false;
    i += scan.length;
  }
  return true;
}

// Any bytes, in any chunks: the output is valid UTF-8 and does not depend on how the
// bytes were chunked; valid input comes out unchanged.
TEST(Utf8StreamDecoderTest, ChunkingDoesNotChangeTheOutput) {
  std::mt19937 random(5);
  std::uniform_int_distribution<int> byte(0, 255), character(0, kCharacters.size() - 1),
      chunk(1, 6), coin(0, 1);
  for (int i = 0; i < 1000; ++i) {
    std::string input;
    const bool valid = coin(random) == 1;
    for (int n = 0; n < 30; ++n) {
      input +=
          valid ? kCharacters[character(random)] : std::string(1, static_cast<char>(byte(random)));
    }
    Utf8StreamDecoder whole;
    std::string expected = whole.Feed(input);
    expected += whole.Flush();

    Utf8StreamDecoder chunked;
    std::string streamed;
    for (size_t at = 0; at < input.size();) {
      const size_t size = std::min<size_t>(chunk(random), input.size() - at);
      const std::string piece = chunked.Feed(std::string_view(input).substr(at, size));
      EXPECT_TRUE(IsValidUtf8(piece));
      streamed += piece;
      at += size;
    }
    streamed += chunked.Flush();
    EXPECT_EQ(streamed, expected);
    if (valid) {
      EXPECT_EQ(streamed, input);
    }
  }
}

}  // namespace
}  // namespace gemserve
