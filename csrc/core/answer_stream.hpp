// Incremental answer detection for streaming generation: feed the text pieces as tokens arrive and learn,
// at the byte where it happens, that the answer is complete, so generation can stop there.
//
// Phases follow the decoder's rules (core/answer_decoder.hpp), applied to the text seen so far:
//   pre    nothing yet;             "<think>" -> think, "</think>" -> after, "<answer>" -> answer (tentative)
//   think  inside an open think;   "</think>" -> after, "<answer>" -> answer (tentative)
//          tentative: a "</think>" before "</answer>" cancels the answer (back to after), as the decoder
//          then looks for the answer after the think; "<think>" inside an answer is ignored
//   after  the think is closed;    "<answer>" -> answer
//   answer inside <answer>;        "</answer>" -> done (reason AnswerClosed)
// With stop_at_json_end, the answer is also complete when the first JSON value of the region ('{' or '['
// at any depth of text after "<answer>") is closed: brackets are counted outside strings ("..." and
// '...', with backslash escapes) -> done (reason JsonClosed). That saves the tokens of "</answer>".
// Tags are matched by one automaton over bytes, so they may be split across pieces anywhere.
// Cost: one table lookup per byte plus a few comparisons; no allocation.
#pragma once

#include <cstddef>
#include <cstdint>

namespace segzero {

enum class StreamPhase : uint8_t { Pre = 0, Think = 1, After = 2, Answer = 3, Done = 4 };
enum class StopReason : uint8_t { None = 0, AnswerClosed = 1, JsonClosed = 2 };

class AnswerStream {
 public:
  explicit AnswerStream(bool stop_at_json_end = false) : stop_at_json_end_(stop_at_json_end) {}

  // Consumes bytes; returns true once the answer is complete (then further bytes are ignored).
  bool feed(const char* data, size_t n);

  bool done() const { return phase_ == StreamPhase::Done; }
  StreamPhase phase() const { return phase_; }
  StopReason reason() const { return reason_; }
  // Bytes consumed up to and including the byte that completed the answer (or all bytes fed so far).
  uint64_t consumed() const { return consumed_; }
  void reset();

 private:
  void enter_answer(bool tentative);
  bool json_byte(char c);

  bool stop_at_json_end_;
  StreamPhase phase_ = StreamPhase::Pre;
  StopReason reason_ = StopReason::None;
  uint8_t tag_state_ = 0;
  bool tentative_ = false;
  // JSON bracket tracking inside the answer
  bool json_started_ = false;
  bool in_string_ = false;
  bool escape_ = false;
  char quote_ = 0;
  uint32_t depth_ = 0;
  uint64_t consumed_ = 0;
};

}  // namespace segzero
