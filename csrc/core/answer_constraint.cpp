#include "core/answer_constraint.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <utility>

#include "core/tag_matcher.hpp"

namespace segzero {

namespace {

constexpr int kMaxModelSize = 8192;
constexpr int kMaxPreAnswerWs = 16;

enum FreeTag : int { kThinkClose = 0, kAnswerOpen = 1 };

const TagMatcher& free_tags() {
  static const TagMatcher m({"</think>", "<answer>"});
  return m;
}

}  // namespace

int ConstraintIndex::add_segment(SegKind kind, std::string literal, int max) {
  Segment s;
  s.kind = kind;
  s.literal = std::move(literal);
  s.max = max;
  segments_.push_back(std::move(s));
  return static_cast<int>(segments_.size()) - 1;
}

void ConstraintIndex::layout_states() {
  n_free_ = static_cast<uint32_t>(free_tags().num_states());
  uint32_t next_id = n_free_;
  for (size_t k = 0; k < segments_.size(); ++k) {
    Segment& s = segments_[k];
    switch (s.kind) {
      case SegKind::Literal: s.size = static_cast<uint32_t>(s.literal.size()); break;
      case SegKind::Number: s.size = static_cast<uint32_t>(s.max) + 2; break;  // empty, then value v at 1+v
      case SegKind::Separator: s.size = 2; break;                              // before ',', after ','
      case SegKind::Whitespace: s.size = static_cast<uint32_t>(s.max) + 1; break;
      case SegKind::Branch: s.size = 1; break;
      case SegKind::Done: s.size = 1; break;
    }
    s.base = next_id;
    next_id += s.size;
    state_segment_.insert(state_segment_.end(), s.size, static_cast<uint16_t>(k));
  }
  n_states_ = next_id;
}

std::unique_ptr<ConstraintIndex> ConstraintIndex::build(const std::vector<std::string>& tokens,
                                                        const ConstraintOptions& options, std::string& error) {
  const int64_t n_tokens = static_cast<int64_t>(tokens.size());
  const int64_t vocab = options.vocab_size < 0 ? n_tokens : options.vocab_size;
  if (n_tokens == 0) {
    error = "the vocabulary is empty";
    return nullptr;
  }
  if (vocab < n_tokens || vocab > 0x7FFFFFFF) {
    error = "vocab_size must be >= the number of tokens (" + std::to_string(n_tokens) + ") and < 2**31";
    return nullptr;
  }
  if (options.model_w < 1 || options.model_h < 1 || options.model_w > kMaxModelSize ||
      options.model_h > kMaxModelSize) {
    error = "model size must be within [1, " + std::to_string(kMaxModelSize) + "]";
    return nullptr;
  }
  if (options.grammar != Grammar::SegZero && options.grammar != Grammar::VisionReasoner) {
    error = "unknown answer grammar";
    return nullptr;
  }
  if (options.min_objects < 0 || options.min_objects > 1) {
    error = "min_objects must be 0 or 1";
    return nullptr;
  }
  if (options.max_objects < 1 || options.max_objects > kMaxObjects) {
    error = "max_objects must be within [1, " + std::to_string(kMaxObjects) + "]";
    return nullptr;
  }
  if (options.max_pre_answer_ws < 0 || options.max_pre_answer_ws > kMaxPreAnswerWs) {
    error = "max_pre_answer_ws must be within [0, " + std::to_string(kMaxPreAnswerWs) + "]";
    return nullptr;
  }
  std::unique_ptr<ConstraintIndex> idx(new ConstraintIndex());
  idx->tokens_ = tokens;
  idx->vocab_size_ = vocab;
  idx->options_ = options;
  idx->token_flags_.assign(static_cast<size_t>(vocab), 0);
  for (int64_t id = n_tokens; id < vocab; ++id) idx->token_flags_[id] = kFlagBanned;  // padding ids
  for (int32_t id : options.banned_ids) {
    if (id < 0 || id >= vocab) {
      error = "banned id " + std::to_string(id) + " is outside the vocabulary";
      return nullptr;
    }
    idx->token_flags_[id] |= kFlagBanned;
  }
  for (int32_t id : options.eos_ids) {
    if (id < 0 || id >= vocab) {
      error = "end-of-sequence id " + std::to_string(id) + " is outside the vocabulary";
      return nullptr;
    }
    idx->token_flags_[id] |= kFlagEos;
  }
  idx->eos_ids_ = options.eos_ids;
  std::sort(idx->eos_ids_.begin(), idx->eos_ids_.end());
  idx->eos_ids_.erase(std::unique(idx->eos_ids_.begin(), idx->eos_ids_.end()), idx->eos_ids_.end());

  // The answer grammar (see the header). Segment order is irrelevant; `next` links them.
  const int mw = options.model_w, mh = options.model_h;
  const int ws = idx->add_segment(SegKind::Whitespace, "", options.max_pre_answer_ws);
  const int tag = idx->add_segment(SegKind::Literal, "<answer>", 0);
  idx->segments_[ws].next = tag;
  int prev = tag;
  auto chain = [&](int seg) {
    idx->segments_[prev].next = seg;
    prev = seg;
  };
  auto numbers = [&](int count, const char* between_pairs) {
    // count numbers x, y, x, y...; a Separator inside each list, `between_pairs` after number 4 of 8.
    for (int k = 0; k < count; ++k) {
      chain(idx->add_segment(SegKind::Number, "", k % 2 == 0 ? mw : mh));
      if (k + 1 == count) break;
      if (between_pairs != nullptr && k % 2 == 1 && k >= 3) {
        chain(idx->add_segment(SegKind::Literal, k == 3 ? "], \"points_1\": [" : between_pairs, 0));
      } else {
        chain(idx->add_segment(SegKind::Separator, "", 0));
      }
    }
  };
  int open = -1;
  if (options.grammar == Grammar::SegZero) {
    open = idx->add_segment(SegKind::Literal, "{\"bbox\": [", 0);
    chain(open);
    numbers(8, "], \"points_2\": [");
    chain(idx->add_segment(SegKind::Literal, "]}</answer>", 0));
  } else {
    const int close = idx->add_segment(SegKind::Literal, "</answer>", 0);
    if (options.min_objects == 0) {  // "[" then "]" (empty) or the first object's "{"
      open = idx->add_segment(SegKind::Literal, "[", 0);
      chain(open);
      const int branch = idx->add_segment(SegKind::Branch, "]{", 0);
      chain(branch);
      idx->segments_[branch].next = close;
      const int first = idx->add_segment(SegKind::Literal, "{\"bbox_2d\": [", 0);
      idx->segments_[branch].next2 = first;
      prev = first;
    } else {
      open = idx->add_segment(SegKind::Literal, "[{\"bbox_2d\": [", 0);
      chain(open);
    }
    for (int k = 0; k < options.max_objects; ++k) {
      if (k > 0) chain(idx->add_segment(SegKind::Literal, "{\"bbox_2d\": [", 0));
      numbers(4, nullptr);
      chain(idx->add_segment(SegKind::Literal, "], \"point_2d\": [", 0));
      numbers(2, nullptr);
      chain(idx->add_segment(SegKind::Literal, "]}", 0));
      if (k + 1 == options.max_objects) {
        chain(idx->add_segment(SegKind::Literal, "]", 0));
        break;
      }
      const int branch = idx->add_segment(SegKind::Branch, "],", 0);
      chain(branch);
      idx->segments_[branch].next = close;
      const int sep = idx->add_segment(SegKind::Separator, "", 0);
      idx->segments_[branch].next2 = sep;
      prev = sep;
    }
    chain(close);
  }
  const int done = idx->add_segment(SegKind::Done, "", 0);
  chain(done);
  const int forced = idx->add_segment(SegKind::Literal, "</think><answer>", 0);
  idx->segments_[forced].next = open;
  if (idx->segments_.size() > 0xFFFF) {
    error = "the answer grammar is too large";
    return nullptr;
  }
  idx->layout_states();
  idx->done_state_ = idx->segments_[done].base;
  idx->budget_state_ = idx->segments_[forced].base;
  idx->after_think_state_ = idx->segments_[ws].base;
  idx->after_answer_tag_state_ = idx->segments_[open].base;
  if (!idx->build_tables(error)) return nullptr;
  return idx;
}

uint32_t ConstraintIndex::step_grammar(uint32_t state, unsigned char c) const {
  // Optional parts (whitespace, the space after a comma, the end of a number) hand the byte on to the
  // next segment; at most three hand-offs can chain, the loop bound is only a guard.
  for (int guard = 0; guard < 8; ++guard) {
    const Segment& g = segments_[state_segment_[state - n_free_]];
    const uint32_t sub = state - g.base;
    switch (g.kind) {
      case SegKind::Literal:
        if (c != static_cast<unsigned char>(g.literal[sub])) return kReject;
        return sub + 1 == g.size ? segments_[g.next].base : state + 1;
      case SegKind::Number:
        if (c >= '0' && c <= '9') {
          const int d = c - '0';
          if (sub == 0) return d <= g.max ? g.base + 1 + d : kReject;
          const int v = static_cast<int>(sub) - 1;
          if (v == 0) return kReject;  // no leading zeros
          const int nv = v * 10 + d;
          return nv <= g.max ? g.base + 1 + static_cast<uint32_t>(nv) : kReject;
        }
        if (sub == 0) return kReject;
        state = segments_[g.next].base;
        continue;
      case SegKind::Separator:
        if (sub == 0) return c == ',' ? state + 1 : kReject;
        if (c == ' ') return segments_[g.next].base;
        state = segments_[g.next].base;
        continue;
      case SegKind::Whitespace:
        if (static_cast<int>(sub) < g.max && (c == ' ' || c == '\n')) return state + 1;
        state = segments_[g.next].base;
        continue;
      case SegKind::Branch:
        // Either byte ends the segment: literal[0] leads to `next`; literal[1] is the first byte of segment
        // `next2` (the comma of a Separator, the "{" of an object), which continues after it.
        if (c == static_cast<unsigned char>(g.literal[0])) return segments_[g.next].base;
        if (c == static_cast<unsigned char>(g.literal[1])) return segments_[g.next2].base + 1;
        return kReject;
      case SegKind::Done:
        return kReject;
    }
  }
  return kReject;
}

uint32_t ConstraintIndex::step_byte(uint32_t state, unsigned char c) const {
  if (state >= n_states_) return kReject;
  if (state < n_free_) {
    const TagMatcher& tags = free_tags();
    const uint8_t m = tags.step(static_cast<uint8_t>(state), c);
    const int t = tags.match(m);
    if (t == kThinkClose) return after_think_state_;
    if (t == kAnswerOpen) return after_answer_tag_state_;
    return m;
  }
  return step_grammar(state, c);
}

uint32_t ConstraintIndex::run_bytes(uint32_t state, const std::string& bytes) const {
  for (unsigned char c : bytes) {
    state = step_byte(state, c);
    if (state == kReject) return kReject;
  }
  return state;
}

uint32_t ConstraintIndex::next(uint32_t state, int64_t token) const {
  if (token < 0 || token >= vocab_size_ || state >= n_states_) return kReject;
  const uint8_t flags = token_flags_[static_cast<size_t>(token)];
  if (state == done_state_) {
    if (eos_ids_.empty() || (flags & kFlagEos)) return state;
    return kReject;
  }
  if (flags & (kFlagBanned | kFlagEos)) return kReject;
  const std::string& bytes = tokens_[static_cast<size_t>(token)];
  if (state >= n_free_ && bytes.empty()) return kReject;  // no progress in the answer
  const uint32_t r = run_bytes(state, bytes);
  return (r != kReject && live_[r] == 1) ? r : kReject;  // never into a dead end
}

std::string ConstraintIndex::forced_text(uint32_t state) const {
  std::string out;
  if (state < n_free_ || state >= n_states_) return out;
  while (state != done_state_) {
    int count = 0;
    uint32_t only_next = kReject;
    unsigned char only = 0;
    for (int c = 0; c < 256 && count < 2; ++c) {
      const uint32_t nx = step_grammar(state, static_cast<unsigned char>(c));
      if (nx != kReject) {
        ++count;
        only = static_cast<unsigned char>(c);
        only_next = nx;
      }
    }
    if (count != 1) break;
    out.push_back(static_cast<char>(only));
    state = only_next;
  }
  return out;
}

void ConstraintIndex::fill_mask(uint32_t state, uint8_t* mask) const {
  const size_t v = static_cast<size_t>(vocab_size_);
  if (state < n_free_) {
    std::memset(mask, 1, v);
    for (int32_t id : free_banned_[state]) mask[id] = 0;
  } else if (state == done_state_ && eos_ids_.empty()) {
    std::memset(mask, 1, v);
  } else {
    std::memset(mask, 0, v);
    if (state == done_state_) {
      for (int32_t id : eos_ids_) mask[id] = 1;
    } else if (state < n_states_) {
      const uint32_t g = state - n_free_;
      for (uint32_t i = allowed_off_[g]; i < allowed_off_[g + 1]; ++i) mask[allowed_[i]] = 1;
    }
  }
}

template <typename T>
void ConstraintIndex::apply(uint32_t state, T* logits, T neg, std::vector<T>& scratch) const {
  const size_t v = static_cast<size_t>(vocab_size_);
  if (state < n_free_) {
    for (int32_t id : free_banned_[state]) logits[id] = neg;
    return;
  }
  if (state == done_state_ && eos_ids_.empty()) return;
  const int32_t* ids = nullptr;
  size_t n = 0;
  if (state == done_state_) {
    ids = eos_ids_.data();
    n = eos_ids_.size();
  } else if (state < n_states_) {
    const uint32_t g = state - n_free_;
    ids = allowed_.data() + allowed_off_[g];
    n = allowed_off_[g + 1] - allowed_off_[g];
  }
  scratch.resize(n);
  for (size_t i = 0; i < n; ++i) scratch[i] = logits[ids[i]];
  std::fill(logits, logits + v, neg);
  for (size_t i = 0; i < n; ++i) logits[ids[i]] = scratch[i];
}

template void ConstraintIndex::apply<float>(uint32_t, float*, float, std::vector<float>&) const;
template void ConstraintIndex::apply<double>(uint32_t, double*, double, std::vector<double>&) const;

void ConstraintIndex::allowed_ids(uint32_t state, std::vector<int32_t>& out) const {
  out.clear();
  if (state < n_free_ || (state == done_state_ && eos_ids_.empty())) {
    const std::vector<int32_t>* bans = state < n_free_ ? &free_banned_[state] : nullptr;
    size_t b = 0;
    for (int64_t id = 0; id < vocab_size_; ++id) {
      if (bans && b < bans->size() && (*bans)[b] == id) {
        ++b;
        continue;
      }
      out.push_back(static_cast<int32_t>(id));
    }
  } else if (state == done_state_) {
    out = eos_ids_;
  } else if (state < n_states_) {
    const uint32_t g = state - n_free_;
    out.assign(allowed_.begin() + allowed_off_[g], allowed_.begin() + allowed_off_[g + 1]);
  }
}

int64_t ConstraintIndex::allowed_count(uint32_t state) const {
  if (state < n_free_) return vocab_size_ - static_cast<int64_t>(free_banned_[state].size());
  if (state == done_state_) return eos_ids_.empty() ? vocab_size_ : static_cast<int64_t>(eos_ids_.size());
  if (state >= n_states_) return 0;
  const uint32_t g = state - n_free_;
  return allowed_off_[g + 1] - allowed_off_[g];
}

const int32_t* ConstraintIndex::forced_ids(uint32_t state, size_t& n) const {
  n = 0;
  if (state < n_free_ || state >= n_states_) return nullptr;
  const uint32_t g = state - n_free_;
  n = forced_off_[g + 1] - forced_off_[g];
  return forced_.data() + forced_off_[g];
}

ConstraintCursor::ConstraintCursor(std::shared_ptr<const ConstraintIndex> index, int64_t thinking_budget)
    : index_(std::move(index)), state_(index_->start_state()), budget_(thinking_budget) {
  if (budget_ == 0) state_ = index_->budget_state();
}

bool ConstraintCursor::advance(int64_t token) {
  const uint32_t nx = index_->next(state_, token);
  if (nx == kReject) return false;
  const bool was_think = index_->is_think(state_);
  state_ = nx;
  if (was_think) {
    ++think_tokens_;
    if (index_->is_think(state_) && budget_ >= 0 && think_tokens_ >= budget_) state_ = index_->budget_state();
  }
  return true;
}

}  // namespace segzero
