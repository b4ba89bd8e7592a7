package cloudtrail

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrSyntax is wrapped by every error that reports input which is not valid
// JSON (truncated documents, bad escapes, stray characters, ...).
var ErrSyntax = errors.New("invalid JSON")

// ErrType is wrapped by every error that reports a syntactically valid JSON
// value of the wrong type (for example a number where CloudTrail has a
// string).
var ErrType = errors.New("unexpected JSON type")

// maxDepth bounds the nesting of skipped JSON values so that hostile input
// cannot exhaust the stack.
const maxDepth = 512

// syntaxError reports malformed JSON at a byte offset.
type syntaxError struct {
	off int
	msg string
}

// Error describes the syntax error and where it is.
func (e *syntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at offset %d: %s", e.off, e.msg)
}

// Unwrap makes the error match ErrSyntax.
func (e *syntaxError) Unwrap() error { return ErrSyntax }

// typeError reports a JSON value of the wrong type for a known field.
type typeError struct {
	field string
	want  string
	got   string
}

// Error names the field and the types involved.
func (e *typeError) Error() string {
	return fmt.Sprintf("field %q: want %s, got %s", e.field, e.want, e.got)
}

// Unwrap makes the error match ErrType.
func (e *typeError) Unwrap() error { return ErrType }

// scanner is a minimal, allocation-free JSON tokenizer over a byte slice.
// It validates everything it walks over, including skipped values, so that
// anything it accepts is also accepted by encoding/json.
type scanner struct {
	b     []byte
	pos   int
	depth int
}

func (s *scanner) fail(msg string) error { return &syntaxError{off: s.pos, msg: msg} }

func (s *scanner) skipWS() {
	for s.pos < len(s.b) {
		switch s.b[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek skips whitespace and returns the next byte without consuming it, or
// 0 at the end of the input.
func (s *scanner) peek() byte {
	s.skipWS()
	if s.pos >= len(s.b) {
		return 0
	}
	return s.b[s.pos]
}

// end reports an error unless only whitespace remains.
func (s *scanner) end() error {
	if s.peek() != 0 || s.pos < len(s.b) {
		return s.fail("unexpected data after top-level value")
	}
	return nil
}

// kindName names the JSON type starting with c, for type errors.
func kindName(c byte) string {
	switch {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	case c == '-' || isDigit(c):
		return "number"
	case c == 0:
		return "end of input"
	default:
		return fmt.Sprintf("character %q", c)
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// specialMask returns, for the 8 bytes packed little-endian in w, a mask
// whose lowest set bit is the high bit of the first byte that is '"', '\\'
// or a control character (< 0x20), or 0 if there is none. (Higher bits may
// be spurious because of borrows; only the lowest is exact.)
func specialMask(w uint64) uint64 {
	q := w ^ (lsb * '"')
	bs := w ^ (lsb * '\\')
	return ((q-lsb)&^q | (bs-lsb)&^bs | (w-lsb*0x20)&^w) & msb
}

// hasSpecial reports whether any of the 8 bytes packed in w is '"', '\\' or
// a control character.
func hasSpecial(w uint64) bool { return specialMask(w) != 0 }

func hexVal(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// hex4 decodes the 4 hex digits at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		v := hexVal(c)
		if v < 0 {
			return 0, false
		}
		r = r<<4 | v
	}
	return r, true
}

// strFlags describes the escapes found in a string.
type strFlags uint8

const (
	// flagEscaped: the string contains escapes.
	flagEscaped strFlags = 1 << iota
	// flagUnicode: the string contains a \u escape, or an escaped
	// backslash followed by 'u' (a \u escape of a JSON document nested in
	// the string).
	flagUnicode
)

// str scans the string whose opening quote is at s.pos. It returns the
// bounds of the raw, still escaped, contents and whether they contain
// escapes.
func (s *scanner) str() (start, end int, esc bool, err error) {
	start, end, f, err := s.strFlags()
	return start, end, f&flagEscaped != 0, err
}

// strFlags is str reporting the escapes in more detail.
func (s *scanner) strFlags() (start, end int, flags strFlags, err error) {
	b := s.b
	i := s.pos + 1
	start = i
	for {
		// Jump to the next quote, backslash or control character, 8 bytes
		// at a time.
		for i+8 <= len(b) {
			m := specialMask(binary.LittleEndian.Uint64(b[i:]))
			if m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(b) {
			s.pos = len(b)
			return 0, 0, 0, s.fail("unterminated string")
		}
		switch c := b[i]; {
		case c == '"':
			s.pos = i + 1
			return start, i, flags, nil
		case c == '\\':
			flags |= flagEscaped
			if i+1 >= len(b) {
				s.pos = len(b)
				return 0, 0, 0, s.fail("unterminated string")
			}
			switch b[i+1] {
			case '\\':
				if i+2 < len(b) && b[i+2] == 'u' {
					flags |= flagUnicode
				}
				i += 2
			case '"', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if _, ok := hex4(b[i+2:]); !ok {
					s.pos = i
					return 0, 0, 0, s.fail("invalid \\u escape in string")
				}
				flags |= flagUnicode
				i += 6
			default:
				s.pos = i
				return 0, 0, 0, s.fail("invalid escape in string")
			}
		case c < 0x20:
			s.pos = i
			return 0, 0, 0, s.fail("control character in string")
		default:
			i++ // only in the last 7 bytes
		}
	}
}

// number scans a JSON number at s.pos.
func (s *scanner) number() error {
	b := s.b
	i := s.pos
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		s.pos = i
		return s.fail("invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			s.pos = i
			return s.fail("invalid number")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			s.pos = i
			return s.fail("invalid number")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	s.pos = i
	return nil
}

// literal consumes the literal lit (true, false or null) at s.pos.
func (s *scanner) literal(lit string) error {
	if !bytes.HasPrefix(s.b[s.pos:], []byte(lit)) {
		return s.fail("invalid literal")
	}
	s.pos += len(lit)
	return nil
}

// skip consumes and validates any JSON value.
func (s *scanner) skip() error {
	switch c := s.peek(); {
	case c == '"':
		_, _, _, err := s.str()
		return err
	case c == '{':
		return s.object(func([]byte) error { return s.skip() })
	case c == '[':
		return s.array(s.skip)
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || isDigit(c):
		return s.number()
	case c == 0:
		return s.fail("unexpected end of input")
	default:
		return s.fail("unexpected character")
	}
}

// object parses the object at s.pos (the caller has checked for '{'). For
// each member it calls member with the unescaped key and the scanner
// positioned at the value, which member must consume.
func (s *scanner) object(member func(key []byte) error) error {
	s.depth++
	if s.depth > maxDepth {
		return s.fail("nesting too deep")
	}
	s.pos++ // '{'
	if s.peek() == '}' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		if s.peek() != '"' {
			return s.fail("expected string object key")
		}
		start, end, esc, err := s.str()
		if err != nil {
			return err
		}
		key := s.b[start:end]
		if esc {
			if key, err = appendUnescape(nil, key); err != nil {
				return s.fail(err.Error())
			}
		}
		if s.peek() != ':' {
			return s.fail("expected ':' after object key")
		}
		s.pos++
		s.skipWS()
		if err := member(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			s.depth--
			return nil
		default:
			return s.fail("expected ',' or '}' in object")
		}
	}
}

// array parses the array at s.pos (the caller has checked for '['), calling
// elem with the scanner positioned at each element, which elem must consume.
func (s *scanner) array(elem func() error) error {
	s.depth++
	if s.depth > maxDepth {
		return s.fail("nesting too deep")
	}
	s.pos++ // '['
	if s.peek() == ']' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		s.skipWS()
		if err := elem(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			s.depth--
			return nil
		default:
			return s.fail("expected ',' or ']' in array")
		}
	}
}

// stringValue scans a value that must be a JSON string or null. For a
// string it returns the bounds of the raw contents; null reports null.
func (s *scanner) stringValue(field string) (start, end int, esc, null bool, err error) {
	switch c := s.peek(); c {
	case '"':
		start, end, esc, err = s.str()
		return start, end, esc, false, err
	case 'n':
		return 0, 0, false, true, s.literal("null")
	default:
		if err := s.skip(); err != nil {
			return 0, 0, false, false, err
		}
		return 0, 0, false, false, &typeError{field: field, want: "string", got: kindName(c)}
	}
}

// errBadEscape reports an escape sequence appendUnescape cannot decode.
var errBadEscape = errors.New("invalid escape in string")

// appendUnescape appends the decoded form of the JSON string contents src
// (without quotes) to dst. It mirrors encoding/json: \u escapes are decoded,
// surrogate pairs are combined and lone surrogates become U+FFFD. It does not
// check for control characters or invalid UTF-8; callers pass contents that
// str has validated.
func appendUnescape(dst, src []byte) ([]byte, error) {
	for len(src) > 0 {
		i := bytes.IndexByte(src, '\\')
		if i < 0 {
			return append(dst, src...), nil
		}
		dst = append(dst, src[:i]...)
		src = src[i:]
		if len(src) < 2 {
			return dst, errBadEscape
		}
		switch c := src[1]; c {
		case '"', '\\', '/':
			dst = append(dst, c)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(src[2:])
			if !ok {
				return dst, errBadEscape
			}
			src = src[6:]
			if utf16.IsSurrogate(r) {
				if len(src) >= 6 && src[0] == '\\' && src[1] == 'u' {
					if r2, ok := hex4(src[2:]); ok {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							dst = utf8.AppendRune(dst, dec)
							src = src[6:]
							continue
						}
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			return dst, errBadEscape
		}
		src = src[2:]
	}
	return dst, nil
}
