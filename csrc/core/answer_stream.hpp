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
// Tags are matched by one automaton over bytes, so they may be split across pieces anywhere.
// Cost: one table lookup per byte plus a few comparisons; no allocation.
#pragma once

#include <cstddef>
#include <cstdint>

namespace segzero {

enum class StreamPhase : uint8_t { Pre = 0, Think = 1, After = 2, Answer = 3, Done = 4 };
enum class StopReason : uint8_t { None = 0, AnswerClosed = 1 };

class AnswerStream {
 public:
  AnswerStream() = default;

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

  StreamPhase phase_ = StreamPhase::Pre;
  StopReason reason_ = StopReason::None;
  uint8_t tag_state_ = 0;
  bool tentative_ = false;
  uint64_t consumed_ = 0;
};

}  // namespace segzero
