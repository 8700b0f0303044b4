#include "core/answer_decoder.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string_view>

#include "core/pynum.hpp"

namespace segzero {

namespace {

constexpr size_t kNpos = std::string_view::npos;
constexpr int kMaxCandidates = 64;  // per scan (B or C); bounds the work on hostile text

inline size_t find(std::string_view text, size_t from, std::string_view what) {
  if (from > text.size()) return kNpos;
  return text.find(what, from);
}

inline char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// ASCII-case-insensitive substring test over the decoded key bytes. Non-ASCII bytes never equal the
// ASCII needles, which is exactly Python's `needle in key.lower()` for these needles ("bbox", "box",
// "points", "point"): no non-ASCII code point lower-cases to a string that could complete them.
bool contains_ci(const char* s, size_t n, std::string_view needle) {
  if (needle.size() > n) return false;
  for (size_t i = 0; i + needle.size() <= n; ++i) {
    size_t k = 0;
    while (k < needle.size() && ascii_lower(s[i + k]) == needle[k]) ++k;
    if (k == needle.size()) return true;
  }
  return false;
}

std::string quoted(const char* role) { return std::string("'") + role + "'"; }

}  // namespace

void AnswerDecoder::record(const std::string& message) {
  if (out_->error.empty()) out_->error = message;
}

void AnswerDecoder::record(const char* message) {
  if (out_->error.empty()) out_->error = message;
}

void AnswerDecoder::decode(const char* text, size_t n, const DecodeSizes& sizes, DecodeResult& out) {
  out.reset();
  out_ = &out;
  s_ = text;
  n_ = n;
  w_ = sizes.image_w;
  h_ = sizes.image_h;
  fx_ = sizes.image_w / sizes.model_w;
  fy_ = sizes.image_h / sizes.model_h;
  const std::string_view t(text, n);

  // ---- think ----
  size_t after = 0;
  const size_t t0 = find(t, 0, "<think>");
  if (t0 != kNpos) {
    const size_t t1 = find(t, t0 + 7, "</think>");
    out.has_think = true;
    out.think_begin = t0 + 7;
    if (t1 != kNpos) {
      out.think_end = t1;
      after = t1 + 8;
    } else {
      const size_t a = find(t, t0 + 7, "<answer>");
      out.think_end = a == kNpos ? n : a;
      after = out.think_end;
    }
  } else {
    const size_t t1 = find(t, 0, "</think>");
    if (t1 != kNpos) {
      out.has_think = true;
      out.think_begin = 0;
      out.think_end = t1;
      after = t1 + 8;
    }
  }

  // ---- answer region: phases A and B ----
  const size_t a = find(t, after, "<answer>");
  if (a != kNpos) {
    const size_t rb = a + 8;
    const size_t close = find(t, rb, "</answer>");
    const size_t re = close == kNpos ? n : close;
    bool in_list = false;
    size_t q = rb;
    while (q < re && s_[q] != '{' && s_[q] != '[') ++q;
    if (q < re && s_[q] == '[') {
      in_list = true;
      if (try_list(q, re)) {
        out.ok = true;
        out.error.clear();
        return;
      }
    }
    if (scan_candidates(rb, re, in_list)) {
      out.ok = true;
      out.error.clear();
      return;
    }
    record(close == kNpos ? msg::kTruncated : msg::kEmptyRegion);
  }

  // ---- phase C: the whole text, like the official parser ----
  if (scan_candidates(0, n, false)) {
    out.ok = true;
    out.error.clear();
    return;
  }
  record(msg::kNoJson);
  out.ok = false;
  out.objects.clear();
}

bool AnswerDecoder::try_list(size_t at, size_t end) {
  const json::ParseResult r = json::parse_value(s_, at, end, doc_);
  if (r.err != json::Error::None) {
    record(std::string("the answer is not valid JSON (") + json::error_reason(r.err) + ")");
    return false;
  }
  const json::Node& root = doc_.nodes[r.root];
  if (root.count == 0) {
    record(msg::kEmptyList);
    return false;
  }
  for (uint32_t c = root.first; c != json::kNone; c = doc_.nodes[c].next) {
    if (doc_.nodes[c].kind != json::Kind::Object) {
      record(msg::kListItem);
      continue;
    }
    DecodedObject obj;
    if (decode_object(c, true, obj)) out_->objects.push_back(obj);
  }
  return !out_->objects.empty();
}

bool AnswerDecoder::scan_candidates(size_t begin, size_t end, bool in_list) {
  int tried = 0;
  size_t i = begin;
  while (i < end) {
    while (i < end && s_[i] != '{') ++i;
    if (i + 1 >= end) return false;
    if (s_[i + 1] == '}') {  // "{}" never matches {[^}]+}
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < end && s_[j] != '}') ++j;
    if (j >= end) return false;  // no '}' left: no later '{' can match either
    if (++tried > kMaxCandidates) return false;
    const json::ParseResult r = json::parse_value(s_, i, j + 1, doc_);
    if (r.err != json::Error::None) {
      record(std::string("the answer is not valid JSON (") + json::error_reason(r.err) + ")");
    } else {
      DecodedObject obj;
      if (decode_object(r.root, in_list, obj)) {
        out_->objects.push_back(obj);
        return true;
      }
    }
    ++i;
  }
  return false;
}

bool AnswerDecoder::decode_object(uint32_t node, bool in_list, DecodedObject& obj) {
  const auto& nodes = doc_.nodes;
  auto key_contains = [&](uint32_t m, std::string_view needle) {
    return contains_ci(doc_.key_data(nodes[m]), nodes[m].key_len, needle);
  };
  auto key_equal = [&](uint32_t a, uint32_t b) {
    return nodes[a].key_len == nodes[b].key_len &&
           std::memcmp(doc_.key_data(nodes[a]), doc_.key_data(nodes[b]), nodes[a].key_len) == 0;
  };
  auto key_is = [&](uint32_t m, std::string_view name) {
    return nodes[m].key_len == name.size() && std::memcmp(doc_.key_data(nodes[m]), name.data(), name.size()) == 0;
  };
  // Python dict semantics: a key keeps its first position and its last value.
  auto last_value = [&](uint32_t m) {
    uint32_t v = m;
    for (uint32_t c = nodes[m].next; c != json::kNone; c = nodes[c].next)
      if (key_equal(c, m)) v = c;
    return v;
  };
  auto first_with = [&](auto pred) {
    for (uint32_t c = nodes[node].first; c != json::kNone; c = nodes[c].next)
      if (pred(c)) return c;
    return json::kNone;
  };
  // The first two distinct keys matching `pred` (distinct from `exclude` too, when given).
  auto two_keys = [&](auto pred, uint32_t exclude, uint32_t out[2]) {
    int k = 0;
    for (uint32_t c = nodes[node].first; c != json::kNone && k < 2; c = nodes[c].next) {
      if (!pred(c)) continue;
      if (exclude != json::kNone && key_equal(c, exclude)) continue;
      if (k == 1 && key_equal(c, out[0])) continue;
      out[k++] = c;
    }
    return k;
  };

  uint32_t pk[2] = {json::kNone, json::kNone};
  const int n_points_keys = two_keys([&](uint32_t c) { return key_contains(c, "points"); }, json::kNone, pk);

  if (n_points_keys == 2) {  // ---- Seg-Zero schema ----
    obj.rounding = Rounding::SegZero;
    const uint32_t bk = first_with([&](uint32_t c) { return key_contains(c, "bbox"); });
    if (bk == json::kNone) {
      record(msg::kNoBox);
      return false;
    }
    if (!read_coords(last_value(bk), "bbox", 4, true, obj.rounding, obj.model_box, obj.raw_box)) return false;
    const char* roles[2] = {"points_1", "points_2"};
    for (int k = 0; k < 2; ++k) {
      if (!read_coords(last_value(pk[k]), roles[k], 2, false, obj.rounding, obj.model_points[k],
                       obj.raw_points[k]))
        return false;
    }
    obj.n_points = 2;
    return finish_object(obj);
  }

  const uint32_t vb = in_list ? first_with([&](uint32_t c) { return key_is(c, "bbox_2d"); }) : json::kNone;
  const uint32_t vp = in_list ? first_with([&](uint32_t c) { return key_is(c, "point_2d"); }) : json::kNone;
  if (vb != json::kNone && vp != json::kNone) {  // ---- VisionReasoner schema ----
    obj.rounding = Rounding::VisionReasoner;
    if (!read_coords(last_value(vb), "bbox_2d", 4, false, obj.rounding, obj.model_box, obj.raw_box)) return false;
    if (!read_coords(last_value(vp), "point_2d", 2, false, obj.rounding, obj.model_points[0], obj.raw_points[0]))
      return false;
    obj.n_points = 1;
    return finish_object(obj);
  }

  // ---- lenient ----
  obj.rounding = in_list ? Rounding::VisionReasoner : Rounding::SegZero;
  uint32_t bk = first_with([&](uint32_t c) { return key_contains(c, "bbox"); });
  if (bk == json::kNone) bk = first_with([&](uint32_t c) { return key_contains(c, "box"); });
  if (bk == json::kNone) {
    record(msg::kNoBox);
    return false;
  }
  if (!read_coords(last_value(bk), "bbox", 4, true, obj.rounding, obj.model_box, obj.raw_box)) return false;
  uint32_t ptk[2] = {json::kNone, json::kNone};
  const int n_ptk = two_keys([&](uint32_t c) { return key_contains(c, "point"); }, bk, ptk);
  const char* roles[2] = {"points_1", "points_2"};
  if (n_ptk == 1) {
    // "points": [[x, y], [x, y]]: one key holding a list of points.
    const json::Node& v = nodes[last_value(ptk[0])];
    if (v.kind == json::Kind::Array && v.first != json::kNone && nodes[v.first].kind == json::Kind::Array) {
      int k = 0;
      for (uint32_t c = v.first; c != json::kNone && k < 2; c = nodes[c].next, ++k) {
        if (!read_coords(c, roles[k], 2, false, obj.rounding, obj.model_points[k], obj.raw_points[k]))
          return false;
      }
      obj.n_points = k;
      return finish_object(obj);
    }
  }
  for (int k = 0; k < n_ptk; ++k) {
    if (!read_coords(last_value(ptk[k]), roles[k], 2, false, obj.rounding, obj.model_points[k],
                     obj.raw_points[k]))
      return false;
  }
  obj.n_points = n_ptk;
  return finish_object(obj);
}

bool AnswerDecoder::finish_object(DecodedObject& obj) {
  const double x1 = std::min(obj.raw_box[0], obj.raw_box[2]);
  const double x2 = std::max(obj.raw_box[0], obj.raw_box[2]);
  const double y1 = std::min(obj.raw_box[1], obj.raw_box[3]);
  const double y2 = std::max(obj.raw_box[1], obj.raw_box[3]);
  if (x2 < 0 || x1 > w_ || y2 < 0 || y1 > h_) {
    record(msg::kOutside);
    return false;
  }
  auto clip = [](double v, double hi) { return std::min(std::max(v, 0.0), hi); };
  obj.box[0] = clip(x1, w_);
  obj.box[1] = clip(y1, h_);
  obj.box[2] = clip(x2, w_);
  obj.box[3] = clip(y2, h_);
  for (int k = 0; k < obj.n_points; ++k) {
    obj.points[k][0] = clip(obj.raw_points[k][0], w_);
    obj.points[k][1] = clip(obj.raw_points[k][1], h_);
  }
  return true;
}

// Reads `need` numbers from a coordinate list (a JSON list, or a string whose characters are the
// numbers), rescaling even indices with fx and odd ones with fy.
bool AnswerDecoder::read_coords(uint32_t node, const char* role, size_t need, bool exact, Rounding rounding,
                                double* model, double* raw) {
  const json::Node& v = doc_.nodes[node];
  size_t count = 0;
  bool is_string = false;
  if (v.kind == json::Kind::Array) {
    count = v.count;
  } else if (v.kind == json::Kind::String) {
    is_string = true;
    json::utf8_to_code_points(doc_.str_data(v), v.str_len, cps_);
    count = cps_.size();
  } else {
    record(quoted(role) + " is not a list of numbers");
    return false;
  }
  if (exact ? count != need : count < need) {
    record(quoted(role) + " must hold " + (exact ? "" : "at least ") + std::to_string(need) + " numbers, found " +
           std::to_string(count));
    return false;
  }
  uint32_t child = v.first;
  for (size_t i = 0; i < need; ++i) {
    double x = 0;
    if (is_string) {
      if (!read_char_number(cps_[i], role, x)) return false;
    } else {
      if (!read_number(child, role, x)) return false;
      child = doc_.nodes[child].next;
    }
    const double f = (i % 2 == 0) ? fx_ : fy_;
    double r;
    if (rounding == Rounding::SegZero) {
      r = std::nearbyint(std::trunc(x) * f);  // round(int(v) * f): round-half-to-even
    } else {
      r = std::trunc(x * f + 0.5);  // int(v * f + 0.5); compiled with -ffp-contract=off (no FMA)
    }
    if (!std::isfinite(r)) {
      record(quoted(role) + " holds a number too large to rescale");
      return false;
    }
    model[i] = x + 0.0;
    raw[i] = r + 0.0;  // + 0.0 turns -0.0 into 0.0 (Python's round/int give the integer 0)
  }
  return true;
}

bool AnswerDecoder::read_number(uint32_t node, const char* role, double& v) {
  const json::Node& x = doc_.nodes[node];
  switch (x.kind) {
    case json::Kind::Number:
      v = x.number;
      break;
    case json::Kind::Bool:
      v = x.boolean ? 1.0 : 0.0;
      break;
    case json::Kind::String: {
      json::utf8_to_code_points(doc_.str_data(x), x.str_len, elem_);
      const pynum::Status st = pynum::parse_numeric_string(elem_.data(), elem_.size(), v);
      if (st == pynum::Status::NotNumber) {
        record(quoted(role) + " holds a value that is not a number");
        return false;
      }
      if (st == pynum::Status::NonFinite) {
        record(quoted(role) + " holds a non-finite number");
        return false;
      }
      break;
    }
    default:
      record(quoted(role) + " holds a value that is not a number");
      return false;
  }
  if (!std::isfinite(v)) {
    record(quoted(role) + " holds a non-finite number");
    return false;
  }
  return true;
}

bool AnswerDecoder::read_char_number(uint32_t cp, const char* role, double& v) {
  const pynum::Status st = pynum::parse_numeric_string(&cp, 1, v);
  if (st != pynum::Status::Ok) {  // one character can only be a digit or not a number
    record(quoted(role) + " holds a value that is not a number");
    return false;
  }
  return true;
}

}  // namespace segzero
