// Numeric strings, read the way the official Seg-Zero parser's `int(v)` reads them, plus decimals.
//
// Python's int(str) (CPython 3.11, base 10):
//   1. if the string is not ASCII, each code point >= 127 that is whitespace (str.isspace) becomes ' ',
//      each Unicode decimal digit (category Nd) becomes its ASCII digit, anything else makes it invalid;
//   2. leading/trailing ASCII whitespace (space \t \n \v \f \r) is skipped;
//   3. an optional sign, then ASCII digits with single '_' allowed between digits.
// Python refuses more than 4300 digits; we do not (the official parser crashes there, we still decode).
// Extension (where Python's int() raises): after the same steps 1-2, a decimal such as "12.5" or "1e2"
// ([+-]?(digits[.digits?]|.digits)([eE][+-]?digits)?) is read as the correctly rounded double.
// "nan", "inf", "infinity" (any case, signed) are reported as non-finite.
#pragma once

#include <cstddef>
#include <cstdint>

namespace segzero::pynum {

enum class Status : uint8_t { Ok, NotNumber, NonFinite };

// Parses the code points cps[0..n) as described above. On Ok, `value` holds the number.
Status parse_numeric_string(const uint32_t* cps, size_t n, double& value);

// Unicode decimal digit value of a code point (Python 3.11 / Unicode 14.0 table), or -1.
int unicode_decimal(uint32_t cp);

// str.isspace() for code points >= 127 (Python 3.11 / Unicode 14.0).
bool unicode_space_from_127(uint32_t cp);

}  // namespace segzero::pynum
