#pragma once

// GPT-2's byte-level BPE tokenizer over GPT-2's file format.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/engine/status.h"
#include "server/engine/text/pretokenizer.h"

namespace gemserve {

struct BpeModel;  // the vocabulary and merges, defined in tokenizer.cc

// Encodes text to token ids and back exactly as GPT-2's encoder.py does: the text is
// split into words by GPT-2's pattern (see Pretokenizer), each word's UTF-8 bytes are
// mapped to GPT-2's printable byte characters, and merges are applied lowest rank
// first (every occurrence of the best pair, left to right, then the next best pair)
// until none applies. With GPT-2's own encoder.json and vocab.bpe the ids are GPT-2's.
// A word of n bytes costs O(n log n) (GPT-2's loop is quadratic), so even a megabyte
// without a space encodes in well under a second.
//
// Encode takes any bytes. Invalid UTF-8 is encoded byte-wise (GPT-2 has a token for
// every byte), exactly as the project's Python tokenizer encodes it
// (gemmodels.bpe.Tokenizer.encode_bytes); so Decode(Encode(s)) == s for every s.
// Text is always plain text: "<|endoftext|>" in it is encoded as ordinary characters,
// never as the special token (look its id up with TokenId).
//
// Thread-safety: a Tokenizer is immutable after Load apart from an internal cache of
// encoded words, which is synchronized; all const methods may be called concurrently.
class Tokenizer {
 public:
  // Reads `vocab_path` (GPT-2's vocab.json / encoder.json: a JSON object mapping token
  // strings to ids) and `merges_path` (GPT-2's merges.txt / vocab.bpe: an optional
  // "#version" first line, then one merge "left right" per line; rank = line order).
  // Fails with NotFound when a file cannot be read and InvalidArgument naming the file
  // and line when a file is malformed: bad JSON, an id that is not an integer in
  // [0, 2^31) or is used twice, a missing token for one of the 256 bytes, a merge line
  // that is not two symbols, or a merge whose symbols or result are not in the
  // vocabulary.
  static StatusOr<Tokenizer> Load(const std::filesystem::path& vocab_path,
                                  const std::filesystem::path& merges_path);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // The token ids of `text` (any bytes; see the class comment). Empty text: no ids.
  std::vector<int32_t> Encode(std::string_view text) const;

  // The bytes of `ids`, concatenated. A prefix of a token sequence may end inside a
  // UTF-8 character, so the result is not always valid UTF-8 (see Utf8StreamDecoder).
  // Ids that are not in the vocabulary contribute nothing.
  std::string Decode(const std::vector<int32_t>& ids) const;

  // The bytes of one token; "" for an id that is not in the vocabulary.
  std::string TokenBytes(int32_t id) const;

  // One more than the largest id (50257 for GPT-2).
  int32_t vocab_size() const;

  // The most bytes one token stands for: a text of n bytes has at least
  // n / longest_token_bytes() tokens.
  size_t longest_token_bytes() const { return longest_token_bytes_; }

  // The id of a token given as written in vocab.json (e.g. "<|endoftext|>", or
  // "Ġthe" for " the"); nullopt when there is none.
  std::optional<int32_t> TokenId(std::string_view token) const;

 private:
  class WordCache;

  Tokenizer(Pretokenizer pretokenizer, std::unique_ptr<const BpeModel> model);

  // The ids of one pre-tokenized word, from the cache where it holds them.
  std::vector<int32_t> EncodeWord(std::string_view word) const;

  Pretokenizer pretokenizer_;
  std::unique_ptr<const BpeModel> model_;
  std::unique_ptr<WordCache> cache_;
  size_t longest_token_bytes_ = 1;
};

}  // namespace gemserve
