// Fuzz target: GPT-2's byte-level BPE tokenizer (server/engine/text/tokenizer.h), its
// pre-tokenizer, and the UTF-8 streaming decoder (utf8_stream.h) that turns generated
// tokens into text.
//
// Feeds: the input bytes, as they are (any bytes, valid UTF-8 or not), as a text to
// Pretokenizer::Split and Tokenizer::Encode, then the ids one token at a time, as the
// generation loop emits them, to a Utf8StreamDecoder.
//
// The vocabulary is GPT-2's own (encoder.json, vocab.bpe: 50,257 tokens, 50,000 merges),
// the files the tokenizer's unit tests use, found at the path CMake compiles in
// (GEMSERVE_FUZZ_TOKENIZER_DIR = tests/engine/text/data/gpt2); the environment variables
// GEMSERVE_FUZZ_VOCAB and GEMSERVE_FUZZ_MERGES, when set, name other files, e.g.
// models/repository/gpt2-kjv/tokenizer/{vocab.json,merges.txt}.
//
// Asserts, beyond no crash, leak or undefined behaviour:
//   - Split's words are non-empty and concatenate to the text, byte for byte;
//   - every id is in [0, vocab_size()); there are at least size / longest_token_bytes();
//   - Decode(Encode(text)) == text, for every text (the header promises it for any
//     bytes), and so does the concatenation of TokenBytes(id) over the ids;
//   - every piece the stream decoder releases is valid UTF-8; for a valid UTF-8 text the
//     pieces and Flush() concatenate to the text, and Flush() is empty.
// Seeds: tests/fuzz/corpus/tokenizer (prompts: English, KJV verses, code, other scripts,
// emoji, whitespace runs, contractions, invalid UTF-8).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "server/engine/text/pretokenizer.h"
#include "server/engine/text/tokenizer.h"
#include "server/engine/text/utf8_stream.h"
#include "tests/fuzz/fuzz_check.h"

namespace gemserve::fuzz {
namespace {

std::filesystem::path FromEnvironment(const char* variable, const std::filesystem::path& fallback) {
  const char* value = std::getenv(variable);
  return value && *value ? std::filesystem::path(value) : fallback;
}

const Tokenizer* g_tokenizer = nullptr;
const Pretokenizer* g_pretokenizer = nullptr;

}  // namespace
}  // namespace gemserve::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace gemserve;
  using namespace gemserve::fuzz;
  const std::filesystem::path dir = GEMSERVE_FUZZ_TOKENIZER_DIR;
  const std::filesystem::path vocab = FromEnvironment("GEMSERVE_FUZZ_VOCAB", dir / "encoder.json");
  const std::filesystem::path merges = FromEnvironment("GEMSERVE_FUZZ_MERGES", dir / "vocab.bpe");
  static StatusOr<Tokenizer> tokenizer = Tokenizer::Load(vocab, merges);
  static StatusOr<Pretokenizer> pretokenizer = Pretokenizer::Create();
  if (!tokenizer.ok() || !pretokenizer.ok()) {
    std::fprintf(stderr, "tokenizer_fuzz: cannot load %s and %s: %s%s\n", vocab.c_str(),
                 merges.c_str(), tokenizer.status().message().c_str(),
                 pretokenizer.status().message().c_str());
    std::exit(2);
  }
  g_tokenizer = &tokenizer.value();
  g_pretokenizer = &pretokenizer.value();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemserve;
  using namespace gemserve::fuzz;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const Tokenizer& tokenizer = *g_tokenizer;

  std::string joined;
  for (const std::string_view word : g_pretokenizer->Split(text)) {
    FUZZ_CHECK(!word.empty(), "Split gave an empty word");
    joined.append(word);
  }
  FUZZ_CHECK(joined == text, "Split's words do not concatenate to the text");

  const std::vector<int32_t> ids = tokenizer.Encode(text);
  FUZZ_CHECK(ids.size() >= size / tokenizer.longest_token_bytes(),
             std::to_string(ids.size()) + " ids for " + std::to_string(size) + " bytes");
  std::string by_token;
  for (const int32_t id : ids) {
    FUZZ_CHECK(id >= 0 && id < tokenizer.vocab_size(), "id " + std::to_string(id));
    const std::string bytes = tokenizer.TokenBytes(id);
    FUZZ_CHECK(!bytes.empty(), "token " + std::to_string(id) + " stands for no bytes");
    by_token += bytes;
  }
  FUZZ_CHECK(by_token == text, "the tokens' bytes do not concatenate to the text");
  FUZZ_CHECK(tokenizer.Decode(ids) == text, "Decode(Encode(text)) != text");

  Utf8StreamDecoder decoder;
  std::string streamed;
  for (const int32_t id : ids) {
    const std::string piece = decoder.Feed(tokenizer.TokenBytes(id));
    FUZZ_CHECK(IsValidUtf8(piece), "the stream decoder released invalid UTF-8");
    streamed += piece;
  }
  const std::string rest = decoder.Flush();
  FUZZ_CHECK(rest.empty() || rest == kReplacementCharacter, "Flush gave " + rest);
  if (IsValidUtf8(text)) {
    FUZZ_CHECK(rest.empty(), "Flush held bytes back from valid UTF-8");
    FUZZ_CHECK(streamed == text, "streamed valid UTF-8 came out changed");
  }
  return 0;
}
