#include "server/engine/text/stop_strings.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace gemserve {
namespace {

TEST(StopStringMatcherTest, WithoutStopStringsReleasesEverything) {
  StopStringMatcher matcher({});
  const StopStringMatcher::Output output = matcher.Feed("anything at all");
  EXPECT_EQ(output.text, "anything at all");
  EXPECT_FALSE(output.stopped);
  EXPECT_EQ(matcher.Flush(), "");
}

TEST(StopStringMatcherTest, StopsBeforeAStopStringInOnePiece) {
  StopStringMatcher matcher({"END"});
  const StopStringMatcher::Output output = matcher.Feed("Hello END world");
  EXPECT_EQ(output.text, "Hello ");
  EXPECT_TRUE(output.stopped);
}

TEST(StopStringMatcherTest, DetectsAStopStringSplitAcrossPieces) {
  StopStringMatcher matcher({"END"});
  StopStringMatcher::Output output = matcher.Feed("Hello E");
  EXPECT_EQ(output.text, "Hello ");  // "E" might begin "END"
  EXPECT_FALSE(output.stopped);
  output = matcher.Feed("N");
  EXPECT_EQ(output.text, "");
  EXPECT_FALSE(output.stopped);
  output = matcher.Feed("D and more");
  EXPECT_EQ(output.text, "");
  EXPECT_TRUE(output.stopped);
  // Generation is over: nothing more comes out.
  EXPECT_EQ(matcher.Feed("later").text, "");
  EXPECT_TRUE(matcher.Feed("later").stopped);
  EXPECT_EQ(matcher.Flush(), "");
}

TEST(StopStringMatcherTest, ReleasesALookAlikeOnceItCannotMatch) {
  StopStringMatcher matcher({"END"});
  EXPECT_EQ(matcher.Feed("Hello EN").text, "Hello ");
  const StopStringMatcher::Output output = matcher.Feed("TRY");
  EXPECT_EQ(output.text, "ENTRY");
  EXPECT_FALSE(output.stopped);
}

TEST(StopStringMatcherTest, FlushReleasesHeldBackText) {
  StopStringMatcher matcher({"\n\n"});
  EXPECT_EQ(matcher.Feed("last line\n").text, "last line");
  EXPECT_EQ(matcher.Flush(), "\n");
}

TEST(StopStringMatcherTest, EarliestStopStringWins) {
  StopStringMatcher matcher({"world", "lo w", ""});
  const StopStringMatcher::Output output = matcher.Feed("hello world");
  EXPECT_EQ(output.text, "hel");
  EXPECT_TRUE(output.stopped);
}

TEST(StopStringMatcherTest, HandlesSelfOverlappingStopStrings) {
  StopStringMatcher matcher({"aab"});
  EXPECT_EQ(matcher.Feed("xaa").text, "x");
  const StopStringMatcher::Output output = matcher.Feed("aab");
  EXPECT_EQ(output.text, "aa");
  EXPECT_TRUE(output.stopped);
}

TEST(StopStringMatcherTest, KeepsMultiByteCharactersWhole) {
  StopStringMatcher matcher({"。再"});
  EXPECT_EQ(matcher.Feed("你好").text, "你好");
  EXPECT_EQ(matcher.Feed("。").text, "");
  const StopStringMatcher::Output output = matcher.Feed("再见");
  EXPECT_EQ(output.text, "");
  EXPECT_TRUE(output.stopped);
}

TEST(StopStringMatcherTest, AStopCompletedFirstWinsOverALongerOneStartedEarlier) {
  StopStringMatcher matcher({"\n", "In\nthe"});
  EXPECT_EQ(matcher.Feed("In").text, "");  // might begin "In\nthe"
  const StopStringMatcher::Output output = matcher.Feed("\n");
  EXPECT_EQ(output.text, "In");
  EXPECT_TRUE(output.stopped);
}

// Streaming in random pieces gives what checking the whole text fed so far after each
// piece gives: the text before the earliest stop string in it, at the first piece after
// which there is one; or all of it. The stops overlap, and "cabc" holds "ab" inside:
// some texts (26 of 4000 when this loop was simulated in Python) stop at "ab" before
// "cabc", which starts earlier, is complete.
TEST(StopStringMatcherTest, StreamingEqualsCheckingTheTextSoFarAfterEachPiece) {
  const std::vector<std::string> stops = {"ab", "bba", "cc", "cabc"};
  std::mt19937 random(9);
  std::uniform_int_distribution<int> letter('a', 'd'), piece(1, 4), length(0, 20);
  for (int i = 0; i < 4000; ++i) {
    std::string text;
    for (int n = length(random); n > 0; --n) text += static_cast<char>(letter(random));

    StopStringMatcher matcher(stops);
    std::string streamed, expected;
    bool stopped = false, expected_stop = false;
    for (size_t at = 0; at < text.size() && !stopped;) {
      const size_t size = std::min<size_t>(piece(random), text.size() - at);
      const StopStringMatcher::Output output = matcher.Feed(text.substr(at, size));
      streamed += output.text;
      stopped = output.stopped;
      at += size;

      size_t first = std::string::npos;
      for (const std::string& stop : stops) first = std::min(first, text.substr(0, at).find(stop));
      if (first != std::string::npos && !expected_stop) {
        expected_stop = true;
        expected = text.substr(0, first);
      }
    }
    if (!stopped) streamed += matcher.Flush();
    if (!expected_stop) expected = text;
    EXPECT_EQ(streamed, expected) << text;
    EXPECT_EQ(stopped, expected_stop) << text;
  }
}

}  // namespace
}  // namespace gemserve
