// A small JSON reader for model answers: a strict superset of what Python's `json.loads` accepts.
//
// Why not a JSON library: the answer decoder must agree exactly with the official Seg-Zero parser,
// which is Python's `json` module (C scanner, strict=True). Every input Python accepts is accepted
// here with the same values; on top of that a few things a language model writes are accepted too.
//
// Grammar (ws = ' ' | '\t' | '\n' | '\r', exactly Python's JSON whitespace):
//   value   := object | array | string | number | literal
//   object  := '{' ws ( '}' | member ( ws ',' ws member )* ws [',' ws] '}' )
//   member  := string ws ':' ws value
//   array   := '[' ws ( ']' | value ( ws ',' ws value )* ws [',' ws] ']' )
//   string  := '"' char* '"' | "'" char* "'"
//   number  := '-'? ( '0' | [1-9][0-9]* ) ( '.' [0-9]+ )? ( [eE] [+-]? [0-9]+ )?
//   literal := true | false | null | NaN | Infinity | -Infinity | True | False | None
// Extensions over Python json (all of them inputs Python rejects, so values of accepted JSON never change):
//   single-quoted strings (the prompt's own example answer is a Python dict repr), the escape \' ,
//   Python's True/False/None, one trailing comma before ']' or '}'.
// Strings follow Python's scanner: code points below 0x20 are errors, escapes are \" \\ \/ \b \f \n \r
// \t \uXXXX; a \u high surrogate directly followed by a \u low surrogate is joined into one code point,
// any other surrogate is kept alone (encoded as 3 bytes, like Python's "surrogatepass").
// Numbers are parsed to the correctly rounded double (Python's float(), and float(int) for integers:
// both round the exact decimal value to nearest-even), so 1e400 is +inf, as in Python.
//
// Nodes live in a flat arena (Document) that is reused between calls, so parsing allocates nothing
// once the arena has grown to the size of the largest answer seen. Parsing is iterative (an explicit
// stack), so nesting depth cannot overflow the C stack.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace segzero::json {

inline constexpr uint32_t kNone = 0xFFFFFFFFu;

enum class Kind : uint8_t { Null, Bool, Number, String, Array, Object };

struct Node {
  Kind kind = Kind::Null;
  bool boolean = false;
  uint32_t first = kNone;  // first child (Array elements, Object member values)
  uint32_t next = kNone;   // next sibling in the parent
  uint32_t count = 0;      // number of children
  uint32_t key_off = 0;    // Object members: decoded key bytes in Document::strings
  uint32_t key_len = 0;
  uint32_t str_off = 0;    // String: decoded bytes in Document::strings
  uint32_t str_len = 0;
  double number = 0.0;
};

enum class Error : uint8_t { None, UnexpectedEnd, UnexpectedChar, BadString };

// Short English reason for an error ("unexpected end", ...), shared with the Python twin.
const char* error_reason(Error err);

struct Document {
  std::vector<Node> nodes;
  std::string strings;               // decoded string contents (UTF-8, surrogates as 3 bytes)
  std::vector<uint32_t> stack;       // parser work stack (container node ids)
  std::vector<uint32_t> last_child;  // parallel to stack
  void clear() {
    nodes.clear();
    strings.clear();
    stack.clear();
    last_child.clear();
  }
  const char* key_data(const Node& n) const { return strings.data() + n.key_off; }
  const char* str_data(const Node& n) const { return strings.data() + n.str_off; }
};

struct ParseResult {
  uint32_t root = kNone;  // node id of the value (kNone on error)
  size_t end = 0;         // offset just past the value (valid when err == None)
  Error err = Error::None;
};

// Parses one value starting at text[begin] (leading whitespace allowed) and never reading at or past
// text[end]. Clears `doc` first. Trailing input after the value is left to the caller.
ParseResult parse_value(const char* text, size_t begin, size_t end, Document& doc);

// Decodes UTF-8 (as produced from a Python str with "surrogatepass") into code points. Bytes that do
// not form a sequence (never the case for text coming from Python) become U+FFFD, one per byte.
void utf8_to_code_points(const char* s, size_t n, std::vector<uint32_t>& out);

// Correctly rounded decimal -> double for an ASCII span matching [+-]?digits[.digits][e[+-]digits]
// (digits may be empty on one side of '.'); overflow gives +-inf, underflow +-0 (like Python float()).
double decimal_to_double(const char* s, size_t n);

}  // namespace segzero::json
