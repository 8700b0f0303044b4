// Decoding of the reasoning model's answer text into boxes and points.
//
// Coordinates: the model writes pixel coordinates of its own input image (model_w x model_h, 840x840 for
// Seg-Zero); we return pixels of the original image (image_w x image_h): x right, y down, origin at the
// top-left corner of the top-left pixel. Values pass through three stages, all returned:
//   model  the numbers as written (after reading numeric strings), model pixels;
//   raw    rescaled and rounded exactly like the official parser of the answer's format (see below),
//          image pixels, before anything else: this is what parity with the official code is tested on;
//   final  raw box corners reordered (x1 <= x2, y1 <= y2) and then clipped to [0, W] x [0, H]; raw points
//          clipped the same way. Clipping happens after rescaling and rounding, never before.
//
// Where the text comes from (the same rules hold in the Python twin, segzero_edge/_answer_py.py):
//   think   if "<think>" occurs: the text after its first occurrence up to the next "</think>" (or, when
//           that is missing, up to the next "<answer>" or the end). Otherwise, if "</think>" occurs, the
//           text before it. Otherwise none. Returned whatever it contains (empty, '<', braces...).
//   region  the first "<answer>" after the think, up to the next "</answer>" (or the end: truncated).
// Which JSON is read, in order, stopping at the first object that decodes:
//   A. if the first '{' or '[' of the region is '[': the region's JSON list (VisionReasoner format);
//      every item that decodes becomes an object, the others are skipped;
//   B. every '{' in the region, in order, taken up to the next '}' (the official regex `{[^}]+}`,
//      retried from each later '{' when a candidate does not decode), at most 64 candidates;
//   C. the same over the whole text (this is exactly the official Seg-Zero choice for its first
//      candidate; it finds answers written without tags, or only inside the think).
// The first error met in that order is reported when nothing decodes.
//
// One object (schema chosen from its keys; "contains" = ASCII-case-insensitive substring, which for these
// needles equals Python's key.lower() test; duplicate keys: first position, last value, as Python dicts):
//   Seg-Zero   two distinct keys contain "points": box = first key containing "bbox" (exactly 4 numbers),
//              points = the first two "points" keys (first 2 numbers of each). Rounding round(int(v) * f)
//              with half-to-even (Seg-Zero inference parser, spec section 6).
//   VisionReasoner  inside a JSON list, keys "bbox_2d" and "point_2d": the first 4 / first 2 numbers.
//              Rounding int(v * f + 0.5), truncation toward zero (spec section 10).
//   lenient    anything else (official parsers crash): box = first key containing "bbox", else "box"
//              (exactly 4 numbers); up to two points from keys containing "point" ("points": [[x, y], ...]
//              also works); no point is fine (a box alone is a usable SAM2 prompt). Rounding of the
//              format: VisionReasoner's inside a list, Seg-Zero's otherwise.
// A coordinate list is a JSON list, or a string whose characters are digits (Python indexes strings,
// so the official parser reads "bbox": "1234" as 1, 2, 3, 4). A number is a JSON number, true/false
// (1/0, as Python's int(True)), or a numeric string (core/pynum.hpp). NaN/Infinity -> error; a box that
// lies entirely outside the image after reordering -> error ("out of range"); points are clipped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/json_lite.hpp"

namespace segzero {

enum class Rounding : uint8_t { SegZero = 0, VisionReasoner = 1 };

struct DecodedObject {
  double box[4] = {0, 0, 0, 0};        // final: reordered + clipped, image pixels
  double raw_box[4] = {0, 0, 0, 0};    // official rescale + rounding, image pixels
  double model_box[4] = {0, 0, 0, 0};  // as written, model pixels
  int n_points = 0;                    // 0, 1 or 2
  double points[2][2] = {{0, 0}, {0, 0}};
  double raw_points[2][2] = {{0, 0}, {0, 0}};
  double model_points[2][2] = {{0, 0}, {0, 0}};
  Rounding rounding = Rounding::SegZero;
};

struct DecodeResult {
  bool ok = false;
  std::string error;  // empty when ok
  bool has_think = false;
  size_t think_begin = 0;  // byte offsets into the text
  size_t think_end = 0;
  std::vector<DecodedObject> objects;
  void reset() {
    ok = false;
    error.clear();
    has_think = false;
    think_begin = think_end = 0;
    objects.clear();
  }
};

struct DecodeSizes {
  double image_w = 840, image_h = 840;  // original image, pixels (> 0)
  double model_w = 840, model_h = 840;  // model input, pixels (> 0)
};

// Reusable decoder: keeps its buffers between calls, so a warm decoder does not allocate for
// ordinary answers. Not thread-safe; use one per thread.
class AnswerDecoder {
 public:
  // Never fails on any byte string; the outcome is in `out` (ok / error).
  void decode(const char* text, size_t n, const DecodeSizes& sizes, DecodeResult& out);

 private:
  bool try_list(size_t at, size_t end);
  bool scan_candidates(size_t begin, size_t end, bool in_list);
  bool decode_object(uint32_t node, bool in_list, DecodedObject& obj);
  bool read_coords(uint32_t node, const char* role, size_t need, bool exact, Rounding rounding,
                   double* model, double* raw);
  bool read_number(uint32_t node, const char* role, double& v);
  bool read_char_number(uint32_t cp, const char* role, double& v);
  void record(const std::string& message);
  void record(const char* message);
  bool finish_object(DecodedObject& obj);

  const char* s_ = nullptr;
  size_t n_ = 0;
  double fx_ = 1, fy_ = 1, w_ = 0, h_ = 0;
  DecodeResult* out_ = nullptr;
  json::Document doc_;
  std::vector<uint32_t> cps_;
  std::vector<uint32_t> elem_;
};

// Messages shared with the Python twin (segzero_edge/_answer_py.py); keep both in sync.
namespace msg {
inline constexpr const char* kNoJson =
    "no JSON answer in the text (expected <answer>{\"bbox\": [x1, y1, x2, y2], \"points_1\": [x, y], "
    "\"points_2\": [x, y]}</answer>)";
inline constexpr const char* kTruncated =
    "the answer is truncated: <answer> is never closed and holds no complete JSON object";
inline constexpr const char* kEmptyRegion = "<answer> holds no JSON object";
inline constexpr const char* kEmptyList = "the answer is an empty list";
inline constexpr const char* kListItem = "the answer list holds an item that is not an object";
inline constexpr const char* kNoBox = "the answer object has no 'bbox' key";
inline constexpr const char* kOutside = "the box lies entirely outside the image (out of range)";
}  // namespace msg

}  // namespace segzero
