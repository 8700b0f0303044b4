#include "core/pynum.hpp"

#include <cmath>
#include <string>

#include "core/json_lite.hpp"

namespace segzero::pynum {

namespace {

// Zero code point of every run of ten Unicode decimal digits (category Nd), Unicode 14.0 (Python 3.11).
// Every Nd digit belongs to exactly one such run. Mirrored in segzero_edge/_jsonlite_py.py.
constexpr uint32_t kDigitZeros[] = {
    0x30,    0x660,   0x6f0,   0x7c0,   0x966,   0x9e6,   0xa66,   0xae6,   0xb66,   0xbe6,   0xc66,
    0xce6,   0xd66,   0xde6,   0xe50,   0xed0,   0xf20,   0x1040,  0x1090,  0x17e0,  0x1810,  0x1946,
    0x19d0,  0x1a80,  0x1a90,  0x1b50,  0x1bb0,  0x1c40,  0x1c50,  0xa620,  0xa8d0,  0xa900,  0xa9d0,
    0xa9f0,  0xaa50,  0xabf0,  0xff10,  0x104a0, 0x10d30, 0x11066, 0x110f0, 0x11136, 0x111d0, 0x112f0,
    0x11450, 0x114d0, 0x11650, 0x116c0, 0x11730, 0x118e0, 0x11950, 0x11c50, 0x11d50, 0x11da0, 0x16a60,
    0x16ac0, 0x16b50, 0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e950, 0x1fbf0,
};

inline bool ascii_space(char c) {  // Py_ISSPACE
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
inline bool ascii_digit(char c) { return c >= '0' && c <= '9'; }

bool ieq(const std::string& s, size_t b, size_t e, const char* word) {
  size_t k = 0;
  for (; b < e && word[k]; ++b, ++k) {
    char c = s[b];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != word[k]) return false;
  }
  return b == e && word[k] == '\0';
}

}  // namespace

int unicode_decimal(uint32_t cp) {
  for (uint32_t z : kDigitZeros) {
    if (cp >= z && cp < z + 10) return static_cast<int>(cp - z);
    if (cp < z) break;  // the table is sorted
  }
  return -1;
}

bool unicode_space_from_127(uint32_t cp) {
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

Status parse_numeric_string(const uint32_t* cps, size_t n, double& value) {
  // Step 1: Python's _PyUnicode_TransformDecimalAndSpaceToASCII (only for non-ASCII strings).
  bool ascii = true;
  for (size_t i = 0; i < n; ++i) {
    if (cps[i] >= 128) {
      ascii = false;
      break;
    }
  }
  std::string s;
  s.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t cp = cps[i];
    if (ascii || cp < 127) {
      s.push_back(static_cast<char>(cp));
    } else if (unicode_space_from_127(cp)) {
      s.push_back(' ');
    } else {
      const int d = unicode_decimal(cp);
      if (d < 0) return Status::NotNumber;
      s.push_back(static_cast<char>('0' + d));
    }
  }
  // Step 2: strip ASCII whitespace.
  size_t b = 0, e = s.size();
  while (b < e && ascii_space(s[b])) ++b;
  while (e > b && ascii_space(s[e - 1])) --e;
  if (b == e) return Status::NotNumber;

  // Step 3: Python int grammar: [+-] digit ( '_'? digit )*
  {
    size_t i = b;
    const bool neg = s[i] == '-';
    if (s[i] == '+' || s[i] == '-') ++i;
    std::string digits;
    bool ok = i < e && ascii_digit(s[i]);
    bool prev_underscore = false;
    for (size_t k = i; ok && k < e; ++k) {
      const char c = s[k];
      if (ascii_digit(c)) {
        digits.push_back(c);
        prev_underscore = false;
      } else if (c == '_' && !prev_underscore) {
        prev_underscore = true;
      } else {
        ok = false;
      }
    }
    if (ok && !prev_underscore) {
      const double v = json::decimal_to_double(digits.data(), digits.size());
      value = neg ? -v : v;
      return Status::Ok;
    }
  }

  // Extension: a decimal number.
  {
    size_t i = b;
    if (s[i] == '+' || s[i] == '-') ++i;
    size_t int_digits = 0, frac_digits = 0;
    while (i < e && ascii_digit(s[i])) ++i, ++int_digits;
    if (i < e && s[i] == '.') {
      ++i;
      while (i < e && ascii_digit(s[i])) ++i, ++frac_digits;
    }
    bool ok = int_digits + frac_digits > 0;
    if (ok && i < e && (s[i] == 'e' || s[i] == 'E')) {
      ++i;
      if (i < e && (s[i] == '+' || s[i] == '-')) ++i;
      size_t exp_digits = 0;
      while (i < e && ascii_digit(s[i])) ++i, ++exp_digits;
      ok = exp_digits > 0;
    }
    if (ok && i == e) {
      value = json::decimal_to_double(s.data() + b, e - b);
      return Status::Ok;
    }
  }

  // Non-finite words.
  size_t w = b;
  if (s[w] == '+' || s[w] == '-') ++w;
  if (ieq(s, w, e, "nan") || ieq(s, w, e, "inf") || ieq(s, w, e, "infinity")) return Status::NonFinite;
  return Status::NotNumber;
}

}  // namespace segzero::pynum
