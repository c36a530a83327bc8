// Writes gpt2_reference.json: GPT-2 token ids of fixed test strings, for the C++
// tokenizer test. Run by hand (CI only reads the committed JSON):
//
//   (cd /tmp && npm install gpt-3-encoder js-tiktoken)
//   NODE_PATH=/tmp/node_modules node tests/engine/text/data/make_reference.js
//
// Every string is encoded by two independent references, js-tiktoken (encoding
// "gpt2", i.e. r50k_base) and gpt-3-encoder (a port of OpenAI's encoder.py); the script
// fails unless they agree and unless gpt2/encoder.json and gpt2/vocab.bpe are the
// files gpt-3-encoder ships.
//
// Both references run GPT-2's pattern on JavaScript's RegExp, whose \s differs from
// the `regex` module GPT-2 used at U+0085 and U+FEFF (and PCRE2's at U+180E); those
// characters are left out here and tested in pretokenizer_test.cc instead.
"use strict";

const fs = require("fs");
const path = require("path");
const gpt3Encoder = require("gpt-3-encoder");
const { getEncoding } = require("js-tiktoken");

const FIXED_TEXTS = [
  "",
  "Hello, world!",
  // Contractions (GPT-2's pattern is case-sensitive: 'S is not one).
  "I'm sure they'll say we don't know what you've done; she'd agree we're right.",
  "IT'S 'S 'T 'RE 'VE 'M 'LL 'D",
  "I'M", "don't", "they'll", "rock 'n' roll", "O'Neil's dog's bone", "'s's's", "''quoted''",
  "can’t won’t (typographic apostrophe)",
  // Digits and numbers.
  "2024", "3.14159", "1,000,000", "-42", "+1 (555) 010-9999", "0x1F600 0b1010 1e-9",
  "v2.0.1-rc3", "50% of 1/3", "1st 2nd 3rd 4th", "12345678901234567890",
  "x² y³ ½ Ⅻ ① ٣٤٥ १२३ １２３",
  // Whitespace runs.
  "a  b   c    d", "\ttab\tseparated\t", "line1\nline2\n\nline4", "trailing spaces   ",
  "  \n  ", "   leading", "\r\nwindows\r\n", " ", "\n", "\n\n\n", "\t \t \n \n",
  "word \n\n word", "a\u00a0b", "x \u3000 y", "a\u2028b\u2029c", "a\u000bb\u000cc",
  "end with newline\n", "                                        x",
  // Punctuation and code.
  "Wait... what?! (Really) [yes] {no} <html> &amp; \"quoted\" 'single'",
  "em—dash – en-dash … ellipsis «guillemets» „low quotes“",
  "#!/usr/bin/env bash", "foo_bar-baz.qux@example.com",
  "https://example.com/path?q=1&r=2#frag", "C++ && std::vector<int> x{1, 2};",
  "!!!???...", "$$$ ¥€£ ©®™", "a\u00adb (soft hyphen)", "ctrl\u0000\u0001\u001c\u001f",
  "def f(x):\n    return x ** 2  # square\n",
  // Emoji: plain, ZWJ sequences, skin tones, flags, keycaps, variation selectors.
  "😀", "I love 🍕 and 🍣!", "👨‍👩‍👧‍👦", "👍🏽 👋🏿 🧑🏻‍💻", "🏳️‍🌈", "❤️ ❤", "🇺🇸🇯🇵🇩🇪",
  "1️⃣ #️⃣", "🤖🤖🤖 robots",
  // Non-Latin scripts.
  "我爱自然语言处理。今天天气很好！", "東京は日本の首都です。ひらがなとカタカナ、漢字。",
  "مرحبا بالعالم، كيف حالك؟", "नमस्ते दुनिया, आप कैसे हैं?", "Привет, мир! Как дела?",
  "Καλημέρα κόσμε· Ἐν ἀρχῇ ἦν ὁ λόγος.", "안녕하세요 세계", "שלום עולם", "สวัสดีชาวโลก",
  "Ελληνικά and English mixed with Русский",
  // Combining accents (decomposed and precomposed).
  "e\u0301", "Ame\u0301lie", "café cafe\u0301", "n\u0303 ñ", "Z̵̡̢͇a̶l̸g̷o̴ text",
  "\u0301\u0301 leading marks",
  // Special token spelled out: plain text, as in GPT-2's encoder.py.
  "<|endoftext|>", "Hello<|endoftext|>world",
  // Repetition.
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  "================================================================",
  "hahahahahahahahahahahahaha", "ThisIsCamelCase and snake_case_name and kebab-case",
  // A long realistic paragraph.
  "The quick brown fox jumps over the lazy dog. In 2023, researchers at a well-known " +
      "lab published a 45-page report (see Appendix B, pp. 12-19) arguing that \"scaling " +
      "laws\" don't hold forever; they'd observed diminishing returns beyond ~1.5e24 FLOPs. " +
      "Critics weren't convinced: \"It's premature,\" one said, \"we've seen this before.\"\n\n" +
      "Meanwhile, the café on 5th Avenue—open 24/7—served 1,234 customers on Monday alone! " +
      "Prices: $3.50 for espresso, €4,20 in Paris, ¥500 in Tokyo. #coffee @barista 🙂",
  // King James Bible style.
  "In the beginning God created the heaven and the earth.",
  "And God said, Let there be light: and there was light.",
  "Genesis 1:3 And God said, Let there be light: and there was light.",
  "And the LORD God formed man of the dust of the ground, and breathed into his " +
      "nostrils the breath of life; and man became a living soul.",
  "Thou shalt not kill.\nThou shalt not commit adultery.\nThou shalt not steal.\n",
  "For God so loved the world, that he gave his only begotten Son, that whosoever " +
      "believeth in him should not perish, but have everlasting life.",
  "1:1 In the beginning was the Word, and the Word was with God, and the Word was God.",
];

// Pieces that exercise the pattern's boundaries; random strings are made of them.
const ATOMS = [
  "a", "Z", "é", "ß", "日", "本", "ا", "न", "ा", "ि", "1", "9", "٣", "²", "Ⅻ", " ", "  ",
  "\t", "\n", "\r\n", "\u00a0", "\u3000", "'", "'s", "'t", "'re", "'ll", "'S", "!", ".",
  ",", "-", "_", "\"", "😀", "👍🏽", "👨‍👩‍👧", "\u0301", "\u200d", "€", "©", "\u00ad",
];
const RANDOM_TEXTS = 200;

// Long words: the tokenizer's merge loop must agree with GPT-2's on them too.
function longTexts(random) {
  let letters = "";
  for (let i = 0; i < 600; i++) letters += "etaoinshrdlucmfwyp"[Math.floor(random() * 18)];
  return ["a".repeat(300), "ab".repeat(150), "9".repeat(100), " ".repeat(200) + "x", letters];
}

// mulberry32: a small seeded generator, so that the strings are the same every run.
function makeRandom(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomTexts(count, random) {
  const texts = [];
  for (let i = 0; i < count; i++) {
    const length = 1 + Math.floor(random() * 30);
    let text = "";
    for (let j = 0; j < length; j++) text += ATOMS[Math.floor(random() * ATOMS.length)];
    texts.push(text);
  }
  return texts;
}

function checkVocabularyFiles() {
  const packageDir = path.dirname(require.resolve("gpt-3-encoder/package.json"));
  for (const [committed, shipped] of [["encoder.json", "encoder.json"], ["vocab.bpe", "vocab.bpe"]]) {
    const ours = fs.readFileSync(path.join(__dirname, "gpt2", committed));
    const theirs = fs.readFileSync(path.join(packageDir, shipped));
    if (!ours.equals(theirs)) throw new Error(`gpt2/${committed} differs from gpt-3-encoder's`);
  }
}

function main() {
  checkVocabularyFiles();
  const tiktoken = getEncoding("gpt2");
  const random = makeRandom(20240611);
  const texts = FIXED_TEXTS.concat(randomTexts(RANDOM_TEXTS, random), longTexts(random));
  const entries = texts.map((text) => {
    const ids = Array.from(tiktoken.encode(text, [], []));  // special tokens as plain text
    const other = gpt3Encoder.encode(text);
    if (JSON.stringify(ids) !== JSON.stringify(other)) {
      throw new Error(`references disagree on ${JSON.stringify(text)}: ` +
                      `js-tiktoken ${JSON.stringify(ids)}, gpt-3-encoder ${JSON.stringify(other)}`);
    }
    return { text, ids };
  });
  const out = path.join(__dirname, "gpt2_reference.json");
  fs.writeFileSync(out, "[\n" + entries.map((e) => JSON.stringify(e)).join(",\n") + "\n]\n");
  console.log(`wrote ${entries.length} texts to ${out}; js-tiktoken and gpt-3-encoder agree on all`);
}

main();
