// A byte automaton (Aho-Corasick, fully expanded) that finds a few fixed tags in a stream of bytes.
// State 0 is "nothing matched"; after each byte, match(state) is the index of the tag that ends at that
// byte, or -1. Tags here never end with another tag, so at most one tag ends at a byte.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace segzero {

class TagMatcher {
 public:
  explicit TagMatcher(const std::vector<std::string>& tags) {
    // Trie.
    goto_.push_back({});
    goto_[0].fill(-1);
    out_.push_back(-1);
    for (size_t t = 0; t < tags.size(); ++t) {
      int s = 0;
      for (unsigned char c : tags[t]) {
        if (goto_[s][c] < 0) {
          goto_[s][c] = static_cast<int>(goto_.size());
          goto_.push_back({});
          goto_.back().fill(-1);
          out_.push_back(-1);
        }
        s = goto_[s][c];
      }
      out_[s] = static_cast<int>(t);
    }
    // Failure links, breadth first, expanding the automaton into a full transition table.
    const size_t n = goto_.size();
    std::vector<int> fail(n, 0), queue;
    next_.assign(n * 256, 0);
    for (int c = 0; c < 256; ++c) {
      const int s = goto_[0][c];
      if (s > 0) {
        fail[s] = 0;
        queue.push_back(s);
        next_[c] = static_cast<uint8_t>(s);
      }
    }
    for (size_t qi = 0; qi < queue.size(); ++qi) {
      const int r = queue[qi];
      if (out_[r] < 0) out_[r] = out_[fail[r]];
      for (int c = 0; c < 256; ++c) {
        const int s = goto_[r][c];
        if (s > 0) {
          fail[s] = next_[fail[r] * 256 + c];
          queue.push_back(s);
          next_[r * 256 + c] = static_cast<uint8_t>(s);
        } else {
          next_[r * 256 + c] = next_[fail[r] * 256 + c];
        }
      }
    }
  }

  uint8_t step(uint8_t state, unsigned char c) const { return next_[state * 256u + c]; }
  int match(uint8_t state) const { return out_[state]; }
  size_t num_states() const { return out_.size(); }

 private:
  std::vector<std::array<int, 256>> goto_;
  std::vector<int> out_;
  std::vector<uint8_t> next_;
};

}  // namespace segzero
