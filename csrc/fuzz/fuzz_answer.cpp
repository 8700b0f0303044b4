// libFuzzer target for the native answer code (run with `make fuzz`; built with AddressSanitizer and
// UndefinedBehaviorSanitizer). One input drives all three components:
//   bytes 0..3  image / model sizes and a seed for how the text is cut into stream pieces
//   bytes 4..   the model text, decoded by AnswerDecoder and streamed through AnswerStream; the same
//               bytes, read as token ids, drive a ConstraintCursor over a small fixed vocabulary.
// Besides memory errors and undefined behaviour, it aborts on any broken invariant: results inside the
// image, ok <=> objects, stream answer independent of how the text is cut, masks that disagree with
// advance(), forced tokens that are not accepted.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/answer_constraint.hpp"
#include "core/answer_decoder.hpp"
#include "core/answer_stream.hpp"

namespace {

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      std::fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__); \
      std::abort();                                                        \
    }                                                                      \
  } while (0)

std::shared_ptr<const segzero::ConstraintIndex> make_index(segzero::Grammar grammar, int min_objects = 1) {
  // Every single byte (like a byte-level BPE) plus multi-byte tokens that straddle the skeleton.
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(std::string(1, static_cast<char>(b)));
  for (const char* t : {"</think>", "<answer>", "</think>\n<answer>{\"", "{\"bbox\": [", "\": [", "], \"",
                        "points_1", "points_2", ", ", "84", "840", "841", "07", "]}</answer>", "</answer>", "</",
                        "think", "answer", ">{\"", "\n\n", "   ", "[{\"bbox_2d\": [", "point_2d", "]}, {", "]}]</answer>",
                        "<|im_end|>", ""}) {
    tokens.emplace_back(t);
  }
  segzero::ConstraintOptions options;
  options.grammar = grammar;
  options.max_objects = 3;
  options.min_objects = min_objects;
  options.model_w = 840;
  options.model_h = 448;
  options.vocab_size = static_cast<int64_t>(tokens.size()) + 3;
  options.eos_ids = {static_cast<int32_t>(tokens.size()) - 2};
  std::string error;
  auto index = segzero::ConstraintIndex::build(tokens, options, error);
  CHECK(index != nullptr);
  return std::shared_ptr<const segzero::ConstraintIndex>(std::move(index));
}

void check_decode(const char* text, size_t n, const segzero::DecodeSizes& sizes) {
  static segzero::AnswerDecoder decoder;
  static segzero::DecodeResult result;
  decoder.decode(text, n, sizes, result);
  CHECK(result.ok == !result.objects.empty());
  CHECK(result.ok == result.error.empty());
  CHECK(!result.has_think || (result.think_begin <= result.think_end && result.think_end <= n));
  for (const segzero::DecodedObject& o : result.objects) {
    CHECK(o.n_points >= 0 && o.n_points <= 2);
    CHECK(0 <= o.box[0] && o.box[0] <= o.box[2] && o.box[2] <= sizes.image_w);
    CHECK(0 <= o.box[1] && o.box[1] <= o.box[3] && o.box[3] <= sizes.image_h);
    for (int i = 0; i < 4; ++i) CHECK(std::isfinite(o.raw_box[i]) && std::isfinite(o.model_box[i]));
    for (int k = 0; k < o.n_points; ++k) {
      CHECK(0 <= o.points[k][0] && o.points[k][0] <= sizes.image_w);
      CHECK(0 <= o.points[k][1] && o.points[k][1] <= sizes.image_h);
    }
  }
}

void check_stream(const char* text, size_t n, uint8_t seed) {
  segzero::AnswerStream whole, cut;
  const bool done = whole.feed(text, n);
  size_t pos = 0, step = 1 + (seed >> 1) % 7;
  bool cut_done = false;
  while (pos < n) {
    const size_t len = std::min(step, n - pos);
    const bool d = cut.feed(text + pos, len);
    CHECK(!cut_done || d);  // once done, stays done
    cut_done = d;
    pos += len;
    step = 1 + (step * 5 + 3) % 11;
  }
  CHECK(done == cut_done && whole.reason() == cut.reason() && whole.phase() == cut.phase());
  CHECK(!done || whole.consumed() == cut.consumed());
}

void check_constraint(const uint8_t* data, size_t n, int grammar) {
  static const std::shared_ptr<const segzero::ConstraintIndex> indexes[3] = {
      make_index(segzero::Grammar::SegZero),
      make_index(segzero::Grammar::VisionReasoner),
      make_index(segzero::Grammar::VisionReasoner, 0),
  };
  const std::shared_ptr<const segzero::ConstraintIndex>& index = indexes[grammar % 3];
  const int64_t vocab = index->vocab_size();
  std::vector<uint8_t> mask(static_cast<size_t>(vocab));
  std::vector<float> logits(static_cast<size_t>(vocab)), scratch;
  segzero::ConstraintCursor cursor(index, n > 0 ? data[0] % 24 : -1);
  for (size_t i = 1; i < n && !index->is_done(cursor.state()); ++i) {
    const uint32_t state = cursor.state();
    index->fill_mask(state, mask.data());
    int64_t allowed = 0;
    for (int64_t t = 0; t < vocab; ++t) allowed += mask[static_cast<size_t>(t)];
    CHECK(allowed == index->allowed_count(state) && allowed > 0);
    // mask == advance() for every token on some steps, for a few tokens on the others (speed)
    const bool full = i % 16 == 1;
    for (int64_t t = full ? 0 : data[i] % 7; t < vocab; t += full ? 1 : 29)
      CHECK((index->next(state, t) != segzero::kReject) == (mask[static_cast<size_t>(t)] == 1));
    if (full) {
      for (int64_t t = 0; t < vocab; ++t) logits[static_cast<size_t>(t)] = static_cast<float>(t);
      index->apply<float>(state, logits.data(), -1.0f, scratch);
      for (int64_t t = 0; t < vocab; ++t)
        CHECK((logits[static_cast<size_t>(t)] >= 0) == (mask[static_cast<size_t>(t)] == 1));
    }
    size_t n_forced = 0;
    const int32_t* forced = index->forced_ids(state, n_forced);
    if (n_forced > 0 && (data[i] & 1)) {
      for (size_t k = 0; k < n_forced; ++k) CHECK(cursor.advance(forced[k]));
      continue;
    }
    // pick the token: the byte itself when allowed (fuzzer-chosen text), otherwise an allowed one
    int64_t token = data[i];
    if (!mask[static_cast<size_t>(token)]) {
      int64_t skip = data[i] % allowed;
      for (token = 0; token < vocab; ++token)
        if (mask[static_cast<size_t>(token)] && skip-- == 0) break;
    }
    CHECK(cursor.advance(token));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  static const double kModel[4][2] = {{840, 840}, {448, 448}, {672, 560}, {1, 3}};
  const double* model = kModel[data[0] & 3];
  segzero::DecodeSizes sizes;
  sizes.image_w = 1 + data[1] * 17.0;
  sizes.image_h = 1 + data[2] * 13.0;
  sizes.model_w = model[0];
  sizes.model_h = model[1];
  const char* text = reinterpret_cast<const char*>(data + 4);
  const size_t n = size - 4;
  check_decode(text, n, sizes);
  check_stream(text, n, data[3]);
  check_constraint(data + 3, std::min<size_t>(size - 3, 160), data[1] % 3);
  return 0;
}
