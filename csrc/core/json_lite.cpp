#include "core/json_lite.hpp"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <system_error>

namespace segzero::json {

namespace {

inline bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {  // includes lone surrogates (3 bytes, "surrogatepass")
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Reads 4 hex digits at s[p..p+4) (bounded by end); -1 when they are not all there and hex.
long read_hex4(const char* s, size_t p, size_t end) {
  if (end - p < 4) return -1;
  long v = 0;
  for (size_t i = 0; i < 4; ++i) {
    const int h = hex_value(s[p + i]);
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
}

// Parses a string whose opening quote is at s[p]. On success appends the decoded bytes to
// doc.strings, sets off/len and returns the offset after the closing quote.
Error parse_string(const char* s, size_t& p, size_t end, Document& doc, uint32_t& off, uint32_t& len) {
  const char quote = s[p];
  size_t q = p + 1;
  const size_t start = doc.strings.size();
  for (;;) {
    // Copy a run of plain bytes at once.
    size_t run = q;
    while (run < end) {
      const char c = s[run];
      if (c == quote || c == '\\' || static_cast<unsigned char>(c) < 0x20) break;
      ++run;
    }
    doc.strings.append(s + q, run - q);
    q = run;
    if (q >= end) return Error::UnexpectedEnd;
    const char c = s[q];
    if (c == quote) {
      ++q;
      break;
    }
    if (c != '\\') return Error::BadString;  // control character
    ++q;
    if (q >= end) return Error::UnexpectedEnd;
    const char e = s[q++];
    switch (e) {
      case '"': doc.strings.push_back('"'); break;
      case '\\': doc.strings.push_back('\\'); break;
      case '/': doc.strings.push_back('/'); break;
      case '\'': doc.strings.push_back('\''); break;  // extension (Python json rejects \')
      case 'b': doc.strings.push_back('\b'); break;
      case 'f': doc.strings.push_back('\f'); break;
      case 'n': doc.strings.push_back('\n'); break;
      case 'r': doc.strings.push_back('\r'); break;
      case 't': doc.strings.push_back('\t'); break;
      case 'u': {
        long cp = read_hex4(s, q, end);
        if (cp < 0) return Error::BadString;
        q += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && end - q >= 6 && s[q] == '\\' && s[q + 1] == 'u') {
          const long lo = read_hex4(s, q + 2, end);
          if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            q += 6;
          }
          // Otherwise the next escape is read on its own (bad hex there is an error either way).
        }
        append_utf8(doc.strings, static_cast<uint32_t>(cp));
        break;
      }
      default:
        return Error::BadString;
    }
  }
  off = static_cast<uint32_t>(start);
  len = static_cast<uint32_t>(doc.strings.size() - start);
  p = q;
  return Error::None;
}

// Matches `word` at s[p..); UnexpectedEnd when the input stops inside a prefix of it.
Error match_word(const char* s, size_t p, size_t end, const char* word, size_t n) {
  const size_t avail = end - p;
  if (avail >= n) return std::memcmp(s + p, word, n) == 0 ? Error::None : Error::UnexpectedChar;
  return std::memcmp(s + p, word, avail) == 0 ? Error::UnexpectedEnd : Error::UnexpectedChar;
}

struct Literal {
  const char* word;
  size_t n;
  Kind kind;
  bool boolean;
  double number;
};

constexpr double kInf = std::numeric_limits<double>::infinity();

// Literals by first character; '-' is handled with numbers.
const Literal* literals_for(char c, size_t& count) {
  static const Literal t[] = {{"true", 4, Kind::Bool, true, 0}, {"True", 4, Kind::Bool, true, 0}};
  static const Literal f[] = {{"false", 5, Kind::Bool, false, 0}, {"False", 5, Kind::Bool, false, 0}};
  static const Literal n[] = {{"null", 4, Kind::Null, false, 0}, {"NaN", 3, Kind::Number, false,
                                                                   std::numeric_limits<double>::quiet_NaN()},
                              {"None", 4, Kind::Null, false, 0}};
  static const Literal i[] = {{"Infinity", 8, Kind::Number, false, kInf}};
  switch (c) {
    case 't': count = 1; return t;
    case 'T': count = 1; return t + 1;
    case 'f': count = 1; return f;
    case 'F': count = 1; return f + 1;
    case 'n': count = 1; return n;
    case 'N': count = 2; return n + 1;
    case 'I': count = 1; return i;
    default: count = 0; return nullptr;
  }
}

// Scans a scalar (string, number, literal) at s[p]; fills `node`; advances p.
Error parse_scalar(const char* s, size_t& p, size_t end, Document& doc, Node& node) {
  const char c = s[p];
  if (c == '"' || c == '\'') {
    node.kind = Kind::String;
    return parse_string(s, p, end, doc, node.str_off, node.str_len);
  }
  if (c == '-' || is_digit(c)) {
    size_t q = p;
    if (s[q] == '-') {
      ++q;
      if (q >= end) return Error::UnexpectedEnd;
      if (s[q] == 'I') {
        const Error e = match_word(s, q, end, "Infinity", 8);
        if (e != Error::None) return e;
        node.kind = Kind::Number;
        node.number = -kInf;
        p = q + 8;
        return Error::None;
      }
    }
    if (s[q] == '0') {
      ++q;
    } else if (s[q] >= '1' && s[q] <= '9') {
      while (q < end && is_digit(s[q])) ++q;
    } else {
      return Error::UnexpectedChar;
    }
    if (q + 1 < end && s[q] == '.' && is_digit(s[q + 1])) {
      q += 2;
      while (q < end && is_digit(s[q])) ++q;
    }
    if (q < end && (s[q] == 'e' || s[q] == 'E')) {
      size_t r = q + 1;
      if (r < end && (s[r] == '+' || s[r] == '-')) ++r;
      if (r < end && is_digit(s[r])) {
        q = r + 1;
        while (q < end && is_digit(s[q])) ++q;
      }
    }
    node.kind = Kind::Number;
    node.number = decimal_to_double(s + p, q - p);
    p = q;
    return Error::None;
  }
  size_t count = 0;
  const Literal* lits = literals_for(c, count);
  Error best = Error::UnexpectedChar;
  for (size_t k = 0; k < count; ++k) {
    const Error e = match_word(s, p, end, lits[k].word, lits[k].n);
    if (e == Error::None) {
      node.kind = lits[k].kind;
      node.boolean = lits[k].boolean;
      node.number = lits[k].number;
      p += lits[k].n;
      return Error::None;
    }
    if (e == Error::UnexpectedEnd) best = e;
  }
  return best;
}

inline void skip_ws(const char* s, size_t& p, size_t end) {
  while (p < end && is_ws(s[p])) ++p;
}

}  // namespace

const char* error_reason(Error err) {
  switch (err) {
    case Error::None: return "ok";
    case Error::UnexpectedEnd: return "unexpected end";
    case Error::UnexpectedChar: return "unexpected character";
    case Error::BadString: return "bad string";
  }
  return "unknown";
}

ParseResult parse_value(const char* s, size_t begin, size_t end, Document& doc) {
  doc.clear();
  ParseResult res;
  size_t p = begin;
  uint32_t pending_key_off = 0, pending_key_len = 0;

  auto fail = [&](Error e) {
    res.err = e;
    res.root = kNone;
    return res;
  };

  // Attaches node `id` to the container on top of the stack (if any).
  auto attach = [&](uint32_t id) {
    if (doc.stack.empty()) {
      res.root = id;
      return;
    }
    const uint32_t parent = doc.stack.back();
    uint32_t& last = doc.last_child.back();
    if (doc.nodes[parent].kind == Kind::Object) {
      doc.nodes[id].key_off = pending_key_off;
      doc.nodes[id].key_len = pending_key_len;
    }
    if (last == kNone) {
      doc.nodes[parent].first = id;
    } else {
      doc.nodes[last].next = id;
    }
    last = id;
    doc.nodes[parent].count += 1;
  };

  // Reads `"key" ws ':'` for the object on top of the stack.
  auto read_key = [&]() -> Error {
    if (p >= end) return Error::UnexpectedEnd;
    if (s[p] != '"' && s[p] != '\'') return Error::UnexpectedChar;
    const Error e = parse_string(s, p, end, doc, pending_key_off, pending_key_len);
    if (e != Error::None) return e;
    skip_ws(s, p, end);
    if (p >= end) return Error::UnexpectedEnd;
    if (s[p] != ':') return Error::UnexpectedChar;
    ++p;
    return Error::None;
  };

  for (;;) {
    // ---- parse one value at p ----
    skip_ws(s, p, end);
    if (p >= end) return fail(Error::UnexpectedEnd);
    const char c = s[p];
    const uint32_t id = static_cast<uint32_t>(doc.nodes.size());
    doc.nodes.emplace_back();
    bool opened = false;
    if (c == '{' || c == '[') {
      doc.nodes[id].kind = c == '{' ? Kind::Object : Kind::Array;
      attach(id);
      doc.stack.push_back(id);
      doc.last_child.push_back(kNone);
      ++p;
      skip_ws(s, p, end);
      if (p >= end) return fail(Error::UnexpectedEnd);
      const char close = c == '{' ? '}' : ']';
      if (s[p] == close) {
        ++p;
        doc.stack.pop_back();
        doc.last_child.pop_back();
      } else {
        opened = true;
        if (c == '{') {
          const Error e = read_key();
          if (e != Error::None) return fail(e);
        }
      }
    } else {
      Node node;
      const Error e = parse_scalar(s, p, end, doc, node);
      if (e != Error::None) return fail(e);
      doc.nodes[id] = node;
      attach(id);
    }
    if (opened) continue;  // parse the first element / member value

    // ---- after a complete value: close containers / move to the next element ----
    bool need_value = false;
    while (!doc.stack.empty()) {
      const uint32_t top = doc.stack.back();
      const bool is_obj = doc.nodes[top].kind == Kind::Object;
      const char close = is_obj ? '}' : ']';
      skip_ws(s, p, end);
      if (p >= end) return fail(Error::UnexpectedEnd);
      if (s[p] == ',') {
        ++p;
        skip_ws(s, p, end);
        if (p >= end) return fail(Error::UnexpectedEnd);
        if (s[p] == close) {  // one trailing comma (extension)
          ++p;
          doc.stack.pop_back();
          doc.last_child.pop_back();
          continue;
        }
        if (is_obj) {
          const Error e = read_key();
          if (e != Error::None) return fail(e);
        }
        need_value = true;
        break;
      }
      if (s[p] == close) {
        ++p;
        doc.stack.pop_back();
        doc.last_child.pop_back();
        continue;
      }
      return fail(Error::UnexpectedChar);
    }
    if (need_value) continue;
    res.end = p;
    res.err = Error::None;
    return res;
  }
}

void utf8_to_code_points(const char* s, size_t n, std::vector<uint32_t>& out) {
  out.clear();
  const auto* u = reinterpret_cast<const unsigned char*>(s);
  size_t i = 0;
  while (i < n) {
    const unsigned char b = u[i];
    uint32_t cp = 0;
    size_t len = 0;
    if (b < 0x80) {
      cp = b;
      len = 1;
    } else if (b >= 0xC2 && b <= 0xDF) {
      cp = b & 0x1F;
      len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      cp = b & 0x0F;
      len = 3;
    } else if (b >= 0xF0 && b <= 0xF4) {
      cp = b & 0x07;
      len = 4;
    }
    bool good = len > 0 && i + len <= n;
    for (size_t k = 1; good && k < len; ++k) {
      if ((u[i + k] & 0xC0) != 0x80) good = false;
      else cp = (cp << 6) | (u[i + k] & 0x3F);
    }
    // Reject overlong 3/4-byte forms and code points above U+10FFFF (surrogates are allowed).
    if (good && ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))) good = false;
    if (!good) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += len;
  }
}

double decimal_to_double(const char* s, size_t n) {
  bool negative = false;
  size_t i = 0;
  if (i < n && (s[i] == '+' || s[i] == '-')) {
    negative = s[i] == '-';
    ++i;
  }
  double value = 0.0;
  const auto r = std::from_chars(s + i, s + n, value, std::chars_format::general);
  if (r.ec == std::errc::result_out_of_range) {
    // Decide between overflow and underflow from the decimal exponent of the first non-zero digit.
    long long exp10 = 0;
    long long first_nonzero = -1;  // position among all mantissa digits
    long long int_digits = 0;
    long long pos = 0;
    size_t k = i;
    bool in_frac = false;
    for (; k < n && (is_digit(s[k]) || s[k] == '.'); ++k) {
      if (s[k] == '.') {
        in_frac = true;
        continue;
      }
      if (!in_frac) ++int_digits;
      if (first_nonzero < 0 && s[k] != '0') first_nonzero = pos;
      ++pos;
    }
    if (k < n && (s[k] == 'e' || s[k] == 'E')) {
      ++k;
      bool eneg = false;
      if (k < n && (s[k] == '+' || s[k] == '-')) eneg = s[k++] == '-';
      for (; k < n && is_digit(s[k]); ++k) {
        if (exp10 < 100000000LL) exp10 = exp10 * 10 + (s[k] - '0');
      }
      if (eneg) exp10 = -exp10;
    }
    const long long magnitude = (first_nonzero < 0) ? -1000000000LL : int_digits - first_nonzero + exp10;
    value = magnitude > 0 ? std::numeric_limits<double>::infinity() : 0.0;
  } else if (r.ec != std::errc()) {
    value = 0.0;  // callers only pass validated spans
  }
  return negative ? -value : value;
}

}  // namespace segzero::json
