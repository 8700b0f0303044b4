#include "core/answer_stream.hpp"

#include "core/tag_matcher.hpp"

namespace segzero {

namespace {

enum Tag : int { kThinkOpen = 0, kThinkClose = 1, kAnswerOpen = 2, kAnswerClose = 3 };

const TagMatcher& stream_tags() {
  static const TagMatcher m({"<think>", "</think>", "<answer>", "</answer>"});
  return m;
}

}  // namespace

void AnswerStream::reset() {
  phase_ = StreamPhase::Pre;
  reason_ = StopReason::None;
  tag_state_ = 0;
  tentative_ = false;
  consumed_ = 0;
}

void AnswerStream::enter_answer(bool tentative) {
  phase_ = StreamPhase::Answer;
  tentative_ = tentative;
}

bool AnswerStream::feed(const char* data, size_t n) {
  if (phase_ == StreamPhase::Done) return true;
  const TagMatcher& tags = stream_tags();
  for (size_t i = 0; i < n; ++i) {
    tag_state_ = tags.step(tag_state_, static_cast<unsigned char>(data[i]));
    const int tag = tags.match(tag_state_);
    switch (phase_) {
      case StreamPhase::Pre:
        if (tag == kThinkOpen) phase_ = StreamPhase::Think;
        else if (tag == kThinkClose) phase_ = StreamPhase::After;
        else if (tag == kAnswerOpen) enter_answer(true);
        break;
      case StreamPhase::Think:
        if (tag == kThinkClose) phase_ = StreamPhase::After;
        else if (tag == kAnswerOpen) enter_answer(true);
        break;
      case StreamPhase::After:
        if (tag == kAnswerOpen) enter_answer(false);
        break;
      case StreamPhase::Answer:
        if (tag == kAnswerClose) {
          phase_ = StreamPhase::Done;
          reason_ = StopReason::AnswerClosed;
        } else if (tag == kThinkClose && tentative_) {
          phase_ = StreamPhase::After;
        }
        break;
      case StreamPhase::Done:
        break;
    }
    if (phase_ == StreamPhase::Done) {
      consumed_ += i + 1;
      return true;
    }
  }
  consumed_ += n;
  return false;
}

}  // namespace segzero
