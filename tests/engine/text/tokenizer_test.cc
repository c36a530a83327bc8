#include "server/engine/text/tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "server/engine/text/utf8_stream.h"

namespace gemserve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const fs::path kData = GEM_TEXT_TEST_DATA;
const fs::path kGpt2Vocab = kData / "gpt2" / "encoder.json";
const fs::path kGpt2Merges = kData / "gpt2" / "vocab.bpe";

struct Reference {
  std::string text;
  std::vector<int32_t> ids;
};

// gpt2_reference.json, made by make_reference.js with js-tiktoken and gpt-3-encoder.
std::vector<Reference> ReadReference() {
  std::ifstream in(kData / "gpt2_reference.json");
  std::vector<Reference> references;
  for (const json& entry : json::parse(in)) {
    references.push_back({entry.at("text"), entry.at("ids")});
  }
  return references;
}

class Gpt2TokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(Loaded().ok()) << Loaded().status().message(); }

  static const Tokenizer& tokenizer() { return Loaded().value(); }

 private:
  static const StatusOr<Tokenizer>& Loaded() {
    static const StatusOr<Tokenizer> loaded = Tokenizer::Load(kGpt2Vocab, kGpt2Merges);
    return loaded;
  }
};

TEST_F(Gpt2TokenizerTest, MatchesReferenceIds) {
  const std::vector<Reference> references = ReadReference();
  ASSERT_GE(references.size(), 290u);
  for (const Reference& reference : references) {
    EXPECT_EQ(tokenizer().Encode(reference.text), reference.ids) << json(reference.text).dump();
    EXPECT_EQ(tokenizer().Decode(reference.ids), reference.text);
  }
}

TEST_F(Gpt2TokenizerTest, KnowsGpt2Vocabulary) {
  EXPECT_EQ(tokenizer().vocab_size(), 50257);
  EXPECT_EQ(tokenizer().TokenId("<|endoftext|>"), 50256);
  EXPECT_EQ(tokenizer().TokenId("\xC4\xA0the"), 262);  // "Ġthe"
  EXPECT_EQ(tokenizer().TokenId("no such token"), std::nullopt);
  EXPECT_EQ(tokenizer().TokenBytes(262), " the");
  EXPECT_EQ(tokenizer().TokenBytes(198), "\n");
  EXPECT_EQ(tokenizer().TokenBytes(50256), "<|endoftext|>");
  EXPECT_EQ(tokenizer().TokenBytes(-1), "");
  EXPECT_EQ(tokenizer().TokenBytes(50257), "");
}

TEST_F(Gpt2TokenizerTest, EncodesSpecialTokenTextAsPlainText) {
  EXPECT_THAT(tokenizer().Encode("<|endoftext|>"), ElementsAre(27, 91, 437, 1659, 5239, 91, 29));
}

TEST_F(Gpt2TokenizerTest, DecodeSkipsIdsOutsideTheVocabulary) {
  EXPECT_EQ(tokenizer().Decode({15496, -5, 50257, 1 << 30, 11}), "Hello,");
  EXPECT_EQ(tokenizer().Decode({}), "");
}

// The ids of gemmodels.bpe.Tokenizer.encode_bytes (Python, surrogateescape) on the
// same files.
TEST_F(Gpt2TokenizerTest, EncodesInvalidUtf8LikeThePythonTokenizer) {
  EXPECT_THAT(tokenizer().Encode("!\xFF?"), ElementsAre(0, 187, 30));
  EXPECT_THAT(tokenizer().Encode("a\xFFz"), ElementsAre(64, 187, 89));
  EXPECT_THAT(tokenizer().Encode("hello \xFF\xFE world"), ElementsAre(31373, 220, 187, 186, 995));
  EXPECT_THAT(tokenizer().Encode("\xE6\x97"), ElementsAre(33768));
  EXPECT_THAT(tokenizer().Encode("caf\xC3"), ElementsAre(66, 1878, 127));
  EXPECT_THAT(tokenizer().Encode("\xED\xA0\x80 surrogate"), ElementsAre(169, 254, 222, 37660));
  EXPECT_THAT(tokenizer().Encode("\xC0\xAF overlong"), ElementsAre(124, 107, 625, 6511));
  EXPECT_THAT(tokenizer().Encode("x\x80\x80\x80y"), ElementsAre(87, 222, 222, 222, 88));
  EXPECT_THAT(tokenizer().Encode("\xF0\x9F\x98 and \xF0\x9F\x98\x80"),
              ElementsAre(47249, 290, 30325, 222));
}

// Where JavaScript's \s (the references') differs from GPT-2's: ids from the Python
// tokenizer, whose \s is the `regex` module's.
TEST_F(Gpt2TokenizerTest, UsesGpt2WhiteSpace) {
  EXPECT_THAT(tokenizer().Encode("!\u0085"), ElementsAre(0, 126, 227));
  EXPECT_THAT(tokenizer().Encode("a\u0085 b"), ElementsAre(64, 126, 227, 275));
  EXPECT_THAT(tokenizer().Encode("!\uFEFF"), ElementsAre(0, 171, 119, 123));
  EXPECT_THAT(tokenizer().Encode("x\u180E\u180E y"),
              ElementsAre(87, 157, 254, 236, 157, 254, 236, 331));
}

TEST_F(Gpt2TokenizerTest, RoundTripsArbitraryBytes) {
  std::mt19937 random(1);
  std::uniform_int_distribution<int> byte(0, 255), length(0, 80);
  for (int i = 0; i < 3000; ++i) {
    std::string bytes(length(random), '\0');
    for (char& c : bytes) c = static_cast<char>(byte(random));
    EXPECT_EQ(tokenizer().Decode(tokenizer().Encode(bytes)), bytes);
  }
}

std::string Utf8Of(char32_t code_point) {
  if (code_point < 0x80) return std::string(1, static_cast<char>(code_point));
  if (code_point < 0x800) {
    return {static_cast<char>(0xC0 | (code_point >> 6)),
            static_cast<char>(0x80 | (code_point & 0x3F))};
  }
  if (code_point < 0x10000) {
    return {static_cast<char>(0xE0 | (code_point >> 12)),
            static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)),
            static_cast<char>(0x80 | (code_point & 0x3F))};
  }
  return {static_cast<char>(0xF0 | (code_point >> 18)),
          static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)),
          static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)),
          static_cast<char>(0x80 | (code_point & 0x3F))};
}

TEST_F(Gpt2TokenizerTest, RoundTripsUnicodeText) {
  std::mt19937 random(2);
  // Mostly the Basic Multilingual Plane and emoji, some anywhere in Unicode.
  std::uniform_int_distribution<char32_t> bmp(0x20, 0xFFFF), emoji(0x1F300, 0x1FAFF),
      any(0, 0x10FFFF);
  std::uniform_int_distribution<int> pick(0, 9), length(0, 40);
  for (int i = 0; i < 2000; ++i) {
    std::string text;
    for (int n = length(random); n > 0; --n) {
      const int kind = pick(random);
      char32_t code_point = kind < 6 ? bmp(random) : kind < 8 ? emoji(random) : any(random);
      if (code_point >= 0xD800 && code_point <= 0xDFFF) code_point = ' ';
      text += Utf8Of(code_point);
    }
    EXPECT_EQ(tokenizer().Decode(tokenizer().Encode(text)), text);
  }
}

TEST_F(Gpt2TokenizerTest, EncodesLongWordsQuickly) {
  std::mt19937 random(3);
  std::uniform_int_distribution<int> letter('a', 'z');
  std::string word(1 << 20, ' ');
  for (char& c : word) c = static_cast<char>(letter(random));
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tokenizer().Encode(word);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(tokenizer().Decode(ids), word);
  EXPECT_LT(ids.size(), word.size() * 3 / 4);
  // GPT-2's quadratic loop would take hours on one 1 MiB word.
  EXPECT_LT(elapsed, std::chrono::seconds(20));
}

TEST_F(Gpt2TokenizerTest, ConcurrentEncodeAndDecodeAgreeWithSerial) {
  const std::vector<Reference> references = ReadReference();
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round) {
        for (const Reference& reference : references) {
          if (tokenizer().Encode(reference.text) != reference.ids ||
              tokenizer().Decode(reference.ids) != reference.text) {
            ++mismatches[t];
          }
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_THAT(mismatches, ElementsAre(0, 0, 0, 0));
}

// Decoding a stream of tokens through Utf8StreamDecoder: emoji and CJK characters are
// split across GPT-2 tokens, yet every piece holds whole characters.
TEST_F(Gpt2TokenizerTest, TokenByTokenStreamingKeepsCharactersWhole) {
  const std::string text = "Emoji 👨‍👩‍👧‍👦 and 日本語 and 🤖🤖.";
  Utf8StreamDecoder decoder;
  std::string streamed;
  for (const int32_t id : tokenizer().Encode(text)) {
    const std::string piece = decoder.Feed(tokenizer().TokenBytes(id));
    EXPECT_EQ(text.compare(streamed.size(), piece.size(), piece), 0);
    streamed += piece;
    if (streamed.size() < text.size()) {
      EXPECT_NE(static_cast<uint8_t>(text[streamed.size()]) & 0xC0, 0x80) << "split character";
    }
  }
  streamed += decoder.Flush();
  EXPECT_EQ(streamed, text);
}

// A small vocabulary built from GPT-2's 256 byte tokens (ids 0..255) plus `extra`.
class TokenizerFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ = fs::path(::testing::TempDir()) /
                 ("gem_text_" +
                  std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::create_directories(directory_);
    std::ifstream in(kGpt2Vocab);
    const json gpt2_vocab = json::parse(in);
    for (const auto& [token, id] : gpt2_vocab.items()) {
      if (id.get<int>() < 256) vocab_[token] = id;
    }
  }
  void TearDown() override { fs::remove_all(directory_); }

  fs::path Write(const std::string& name, const std::string& contents) {
    std::ofstream(directory_ / name, std::ios::binary) << contents;
    return directory_ / name;
  }
  fs::path WriteVocab() { return Write("vocab.json", vocab_.dump()); }

  StatusOr<Tokenizer> Load(const std::string& merges) {
    return Tokenizer::Load(WriteVocab(), Write("merges.txt", merges));
  }

  fs::path directory_;
  json vocab_;
};

TEST_F(TokenizerFilesTest, AppliesMergesByRank) {
  vocab_["he"] = 256;
  vocab_["ll"] = 257;
  vocab_["hell"] = 258;
  StatusOr<Tokenizer> tokenizer = Load("#version: 0.2\nh e\nl l\nhe ll\n");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().message();
  EXPECT_THAT(tokenizer->Encode("hello"), ElementsAre(258, 'o' - '!'));
  EXPECT_EQ(tokenizer->vocab_size(), 259);
}

TEST_F(TokenizerFilesTest, AcceptsMergesWithoutHeaderAndWithCrLf) {
  vocab_["he"] = 256;
  StatusOr<Tokenizer> tokenizer = Load("h e\r\n");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().message();
  EXPECT_THAT(tokenizer->Encode("he"), ElementsAre(256));
}

// GPT-2 merges every occurrence of the best pair, left to right, before it looks at
// the pairs those merges create, even where a created pair ranks higher.
TEST_F(TokenizerFilesTest, MergesLikeGpt2WhenACreatedPairRanksHigher) {
  vocab_["aa"] = 256;
  vocab_["aaa"] = 257;
  StatusOr<Tokenizer> tokenizer = Load("aa a\na a\n");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().message();
  EXPECT_THAT(tokenizer->Encode("aaaa"), ElementsAre(256, 256));
  EXPECT_THAT(tokenizer->Encode("aaa"), ElementsAre(257));  // a a -> aa a -> aaa
}

TEST_F(TokenizerFilesTest, MissingFilesAreNotFound) {
  StatusOr<Tokenizer> no_vocab = Tokenizer::Load(directory_ / "absent.json", kGpt2Merges);
  EXPECT_EQ(no_vocab.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(no_vocab.status().message(), HasSubstr("absent.json"));
  EXPECT_THAT(no_vocab.status().message(), HasSubstr("No such file"));

  StatusOr<Tokenizer> no_merges = Tokenizer::Load(kGpt2Vocab, directory_ / "absent.txt");
  EXPECT_EQ(no_merges.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(no_merges.status().message(), HasSubstr("absent.txt"));
}

TEST_F(TokenizerFilesTest, BadJsonIsInvalid) {
  StatusOr<Tokenizer> tokenizer =
      Tokenizer::Load(Write("vocab.json", "{\"a\": 1,"), Write("merges.txt", ""));
  EXPECT_EQ(tokenizer.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(tokenizer.status().message(), HasSubstr("vocab.json"));
  EXPECT_THAT(tokenizer.status().message(), HasSubstr("not valid JSON"));
}

TEST_F(TokenizerFilesTest, VocabularyMustMapTokensToDistinctIds) {
  const fs::path merges = Write("merges.txt", "");
  EXPECT_THAT(Tokenizer::Load(Write("vocab.json", "[1, 2]"), merges).status().message(),
              HasSubstr("expected a JSON object"));
  EXPECT_THAT(Tokenizer::Load(Write("vocab.json", R"({"a": "7"})"), merges).status().message(),
              HasSubstr(R"(token "a" has id "7")"));
  EXPECT_THAT(Tokenizer::Load(Write("vocab.json", R"({"a": -1})"), merges).status().message(),
              HasSubstr("ids must be integers in [0, 2^31)"));
  vocab_["extra"] = 5;
  EXPECT_THAT(Tokenizer::Load(WriteVocab(), merges).status().message(),
              HasSubstr("id 5 is used by both"));
}

TEST_F(TokenizerFilesTest, VocabularyNeedsEveryByte) {
  vocab_.erase("\xC4\x8A");  // "Ċ", the character GPT-2 gives byte 0x0A
  StatusOr<Tokenizer> tokenizer = Load("");
  EXPECT_EQ(tokenizer.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(tokenizer.status().message(), HasSubstr("no token for byte 0x0A"));
}

TEST_F(TokenizerFilesTest, MergeWithUnknownSymbolIsInvalid) {
  vocab_["he"] = 256;
  StatusOr<Tokenizer> tokenizer = Load("#version: 0.2\nh e\nhe zz\n");
  EXPECT_EQ(tokenizer.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(tokenizer.status().message(), HasSubstr("merges.txt"));
  EXPECT_THAT(tokenizer.status().message(),
              HasSubstr(R"(line 3: symbol "zz" is not in the vocabulary)"));
}

TEST_F(TokenizerFilesTest, MergeResultMustBeInVocabulary) {
  EXPECT_THAT(Load("h e\n").status().message(),
              HasSubstr(R"(line 1: merged token "he" is not in the vocabulary)"));
}

TEST_F(TokenizerFilesTest, MalformedMergeLineIsInvalid) {
  for (const std::string line : {"abc", "a  b", "a b c", " a", "a "}) {
    EXPECT_THAT(Load(line + "\n").status().message(),
                HasSubstr("line 1: expected two symbols separated by one space"))
        << line;
  }
}

}  // namespace
}  // namespace gemserve
