// Token-level answer constraint: during generation, which tokens keep the output a valid Seg-Zero answer.
//
// The generated text is treated as bytes (tokens are the exact bytes of each vocabulary entry, so
// byte-level tokens that are partial UTF-8 need no special care). Phases:
//   think   everything is allowed except: end-of-sequence ids (the answer is not written yet), banned ids
//           (special tokens that are not text, padding ids past the tokenizer's vocabulary), and tokens
//           that would complete "</think>" or "<answer>" and then continue with bytes the answer grammar
//           rejects. A thinking budget of N tokens (per generation) forces "</think><answer>" after N
//           think tokens.
//   answer  entered when "</think>" is generated (then up to max_pre_answer_ws bytes of ' '/'\n', then
//           "<answer>"), when "<answer>" is generated during the think, or by the budget. Only tokens whose
//           bytes keep the text a prefix of the grammar's answer are allowed:
//             seg_zero:         {"bbox": [X, Y, X, Y], "points_1": [X, Y], "points_2": [X, Y]}</answer>
//             vision_reasoner:  [O, O, ...]</answer> with min_objects (1, or 0: "[]" allowed) to
//                               max_objects objects
//                               O = {"bbox_2d": [X, Y, X, Y], "point_2d": [X, Y]}
//                               (the ", " between objects: a comma and one optional space)
//           X in [0, model_w], Y in [0, model_h] (inclusive: official ground truth rescaled
//           with int(v * 840 / W + 0.5) reaches 840), written without leading zeros; after each comma
//           inside a list one optional space (the prompt's example writes "[10,100,200,210]", DESIGN's
//           skeleton "[x1, y1, x2, y2]"). Keys, quotes, brackets and ": " / ", " between members are
//           exactly the canonical skeleton. Any tokenization is accepted ("{\"" as one token, "bbox"
//           split, one digit per token, spaces merged with quotes...). The list is unrolled, one run of
//           segments per object, so the automaton stays acyclic (about 5k states per object at 840).
//   done    after "</answer>": only end-of-sequence ids (everything when none were given).
// The grammar is a byte automaton (segments: literal, number, separator, whitespace). For every automaton
// state, the allowed token ids and the forced continuation (the bytes that are the only possible next
// ones, tokenized greedily with the longest vocabulary entries) are precomputed when the index is built,
// by walking a trie of the vocabulary; a generation step is then a lookup, a memset of the mask and a
// few stores. Tokens after which the answer cannot be completed with this vocabulary are not allowed
// either (only possible with vocabularies that lack some single bytes). The index is immutable after
// build and can be shared between threads; a Cursor is the state of one generation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace segzero {

inline constexpr uint32_t kReject = 0xFFFFFFFFu;

enum class Grammar : uint8_t { SegZero = 0, VisionReasoner = 1 };

inline constexpr int kMaxObjects = 128;  // VisionReasoner's rewards read at most 120 objects

struct ConstraintOptions {
  Grammar grammar = Grammar::SegZero;
  int max_objects = 16;              // vision_reasoner: most objects in the list (1..kMaxObjects)
  int min_objects = 1;               // vision_reasoner: 1, or 0 to allow the empty list "[]"
  int model_w = 840;                 // largest x the answer may hold (inclusive)
  int model_h = 840;                 // largest y
  int max_pre_answer_ws = 2;         // ' ' or '\n' bytes allowed between "</think>" and "<answer>"
  int64_t vocab_size = -1;           // logits width, >= number of tokens (-1: same)
  std::vector<int32_t> eos_ids;      // banned until done, then the only ones allowed
  std::vector<int32_t> banned_ids;   // never allowed
};

class ConstraintIndex {
 public:
  // Builds the index; returns nullptr and sets `error` when the options are invalid.
  static std::unique_ptr<ConstraintIndex> build(const std::vector<std::string>& tokens,
                                                const ConstraintOptions& options, std::string& error);

  uint32_t start_state() const { return 0; }
  uint32_t budget_state() const { return budget_state_; }
  bool is_think(uint32_t s) const { return s < n_free_; }
  bool is_done(uint32_t s) const { return s == done_state_; }
  int64_t vocab_size() const { return vocab_size_; }
  size_t num_tokens() const { return tokens_.size(); }
  size_t num_states() const { return n_states_; }

  // State after `token` from `state`, or kReject when the token is not allowed.
  uint32_t next(uint32_t state, int64_t token) const;
  // Byte-level transition (kReject when the byte is not allowed); exposed for tests and the fuzzer.
  uint32_t step_byte(uint32_t state, unsigned char c) const;

  // mask[0..vocab_size) = 1 where allowed, 0 elsewhere.
  void fill_mask(uint32_t state, uint8_t* mask) const;
  // Sets logits of disallowed tokens to `neg` (logits has vocab_size entries).
  template <typename T>
  void apply(uint32_t state, T* logits, T neg, std::vector<T>& scratch) const;
  // Allowed ids, ascending.
  void allowed_ids(uint32_t state, std::vector<int32_t>& out) const;
  // Number of allowed ids.
  int64_t allowed_count(uint32_t state) const;
  // Forced continuation from `state` (empty in the think and done phases).
  const int32_t* forced_ids(uint32_t state, size_t& n) const;
  std::string forced_text(uint32_t state) const;

 private:
  enum class SegKind : uint8_t { Literal, Number, Separator, Whitespace, Branch, Done };
  struct Segment {
    SegKind kind;
    std::string literal;  // Literal; Branch: its two alternative bytes
    int max = 0;          // Number: largest value; Whitespace: most bytes
    int next = -1;        // following segment (Branch: after literal[0])
    int next2 = -1;       // Branch: literal[1] is the first byte of segment next2, which continues after it
    uint32_t base = 0;    // first state id
    uint32_t size = 0;    // number of states
  };

  static constexpr uint8_t kFlagBanned = 1;  // token_flags_ bits
  static constexpr uint8_t kFlagEos = 2;

  ConstraintIndex() = default;
  int add_segment(SegKind kind, std::string literal, int max);
  int add_object_segments(int& prev);
  void layout_states();
  uint32_t step_grammar(uint32_t state, unsigned char c) const;
  uint32_t run_bytes(uint32_t state, const std::string& bytes) const;
  bool build_tables(std::string& error);

  std::vector<std::string> tokens_;
  int64_t vocab_size_ = 0;
  ConstraintOptions options_;
  std::vector<uint8_t> token_flags_;  // per id in [0, vocab_size): 1 banned, 2 eos
  std::vector<int32_t> eos_ids_;      // sorted, unique
  std::vector<Segment> segments_;
  std::vector<uint16_t> state_segment_;  // grammar state -> segment index (offset by n_free_)
  uint32_t n_free_ = 0, n_states_ = 0, done_state_ = 0, budget_state_ = 0;
  uint32_t after_think_state_ = 0, after_answer_tag_state_ = 0;
  // Think phase: per tag-matcher state, the ids to ban (sorted): banned + eos + tag-completing tokens
  // whose remaining bytes the grammar rejects.
  std::vector<std::vector<int32_t>> free_banned_;
  std::vector<uint8_t> live_;  // per state: 1 when some token sequence reaches done (2: dead)
  // Grammar states: allowed ids and forced ids (CSR, indexed by state - n_free_).
  std::vector<uint32_t> allowed_off_, forced_off_;
  std::vector<int32_t> allowed_, forced_;
};

// One generation's position in the constraint.
class ConstraintCursor {
 public:
  // thinking_budget < 0: no budget.
  ConstraintCursor(std::shared_ptr<const ConstraintIndex> index, int64_t thinking_budget);

  // Advances by one token; false (and no change) when the token is not allowed.
  bool advance(int64_t token);
  uint32_t state() const { return state_; }
  int64_t think_tokens() const { return think_tokens_; }
  int64_t thinking_budget() const { return budget_; }
  const ConstraintIndex& index() const { return *index_; }

 private:
  std::shared_ptr<const ConstraintIndex> index_;
  uint32_t state_;
  int64_t think_tokens_ = 0;
  int64_t budget_;
};

}  // namespace segzero
