package cloudtrail

import (
	"encoding/binary"
	"math/bits"
	"strings"
	"unsafe"
)

// escScanner parses a CloudTrail record while it is still escaped inside
// the JSON string of a CloudWatch Logs log event's message, in the same pass
// that finds the end of that string. The decode floor (FloorCWLEvent) has to
// walk every byte of every message to find where it ends; parsing the record
// on that walk, instead of unescaping it into a copy and parsing the copy,
// leaves the product one pass over the bytes instead of three.
//
// The inner document's tokens appear in the outer string as follows: its
// structural characters, digits and literals as themselves; its whitespace
// as ' ' or the escapes \n, \r and \t; its strings between \" and \"; and
// inside those, its escapes behind an escaped backslash (\\n, \\u0041,
// \\\" for \", \\\\ for \\), and characters that the outer encoder chose to
// escape (\/, \u00e9) in them too. Anything else (an escape of the outer
// string, other than whitespace, outside an inner string, a control character or an escaped quote or
// backslash spelled \u in an inner string, a type or syntax error, an
// escaped key, nesting beyond maxDepth) makes it give up: every
// method returns false, and the caller decodes the message the two-step way
// (unescape, then parseRecord), which reports errors precisely. So this
// parser only has to be right on what it accepts; FuzzEscapedRecord holds it
// to the two-step result on arbitrary input.
//
// String fields are substrings of b made without copying (unsafe.String):
// b is the decompressed payload, a buffer of its own that nothing writes
// again (gunzip does not pool it; DecodeCWLPayload's callers promise it).
type escScanner struct {
	b     []byte
	pos   int
	depth int
}

// ws skips the inner document's whitespace: spaces, and \n, \r and \t
// escapes of the outer string.
func (e *escScanner) ws() {
	b, i := e.b, e.pos
	for i < len(b) {
		if b[i] == ' ' {
			i++
			continue
		}
		if b[i] == '\\' && i+1 < len(b) && (b[i+1] == 'n' || b[i+1] == 'r' || b[i+1] == 't') {
			i += 2
			continue
		}
		break
	}
	e.pos = i
}

// peek skips whitespace and returns the next byte (0 at the end). The
// common cases, a structural character or the \" that opens a string, are
// answered without the whitespace loop (small enough to be inlined).
func (e *escScanner) peek() byte {
	b, i := e.b, e.pos
	if i+1 < len(b) && b[i] != ' ' && (b[i] != '\\' || b[i+1] == '"') {
		return b[i]
	}
	return e.peekSlow()
}

// peekSlow is peek's whitespace path.
func (e *escScanner) peekSlow() byte {
	e.ws()
	if e.pos < len(e.b) {
		return e.b[e.pos]
	}
	return 0
}

// str scans the inner string whose opening \" is at e.pos and returns the
// bounds of its contents (as they stand in b) and whether they hold inner
// escapes.
func (e *escScanner) str() (start, end int, esc, ok bool) {
	b := e.b
	i := e.pos
	if i+1 >= len(b) || b[i] != '\\' || b[i+1] != '"' {
		return 0, 0, false, false
	}
	i += 2
	start = i
	for {
		for i+8 <= len(b) {
			if m := specialMask(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(b) {
			return 0, 0, false, false
		}
		if c := b[i]; c != '\\' {
			if c == '"' || c < 0x20 { // the outer string ends inside an inner one, or is invalid
				return 0, 0, false, false
			}
			i++ // only in the last 7 bytes
			continue
		}
		if i+2 >= len(b) {
			return 0, 0, false, false
		}
		switch b[i+1] {
		case '"': // the closing \"
			e.pos = i + 2
			return start, i, esc, true
		case '\\': // an inner escape; its character follows, itself escaped if need be
			esc = true
			switch b[i+2] {
			case '/', 'b', 'f', 'n', 'r', 't':
				i += 3
			case 'u':
				if _, ok := hex4(b[i+3:]); !ok {
					return 0, 0, false, false
				}
				i += 7
			case '\\':
				if i+3 >= len(b) || (b[i+3] != '"' && b[i+3] != '\\' && b[i+3] != '/') {
					return 0, 0, false, false
				}
				i += 4
			default:
				return 0, 0, false, false
			}
		case '/': // '/' escaped by the outer string's encoder
			esc = true
			i += 2
		case 'u': // a character escaped by the outer string's encoder
			// One that would mean something to the inner document (its
			// quote or backslash) or make it invalid (a control
			// character) is left to the two-step path.
			if c, ok := hex4(b[i+2:]); !ok || c < 0x20 || c == '"' || c == '\\' {
				return 0, 0, false, false
			}
			esc = true
			i += 6
		default: // a control character in the inner string (\n, \t, ...)
			return 0, 0, false, false
		}
	}
}

// key scans an object key; escaped keys give up (CloudTrail never writes
// them, and the two-step path matches them exactly).
func (e *escScanner) key() ([]byte, bool) {
	start, end, esc, ok := e.str()
	if !ok || esc {
		return nil, false
	}
	return e.b[start:end], true
}

// enter steps into the container at e.pos and reports whether the nesting
// is still within maxDepth (the caller decrements depth when it closes).
func (e *escScanner) enter() bool {
	e.depth++
	e.pos++
	return e.depth <= maxDepth
}

// object walks the object at e.pos (the caller has seen '{'), calling
// member with each key and e.pos at the value, which member consumes.
func (e *escScanner) object(member func(key []byte) bool) bool {
	if !e.enter() {
		return false
	}
	if e.peek() == '}' {
		e.pos++
		e.depth--
		return true
	}
	for {
		if e.peek() != '\\' {
			return false
		}
		key, ok := e.key()
		if !ok || e.peek() != ':' {
			return false
		}
		e.pos++
		e.ws()
		if !member(key) {
			return false
		}
		switch e.peek() {
		case ',':
			e.pos++
		case '}':
			e.pos++
			e.depth--
			return true
		default:
			return false
		}
	}
}

// skip consumes and validates any inner value. It does not recurse: the
// kinds of the containers it is inside are bits of arrays (1: array), which
// keeps the hot loop free of calls for the large values a record has and
// detection does not read (requestParameters, responseElements, ...).
func (e *escScanner) skip() bool {
	var arrays [maxDepth/64 + 1]uint64
	isArray := func(k int) bool { return arrays[k>>6]&(1<<(k&63)) != 0 }
	open := 0
	for {
		// A value.
		switch c := e.peek(); {
		case c == '\\':
			if _, _, _, ok := e.str(); !ok {
				return false
			}
		case c == '{' || c == '[':
			if e.depth+open >= maxDepth {
				return false
			}
			if c == '[' {
				arrays[open>>6] |= 1 << (open & 63)
			} else {
				arrays[open>>6] &^= 1 << (open & 63)
			}
			open++
			e.pos++
			if d := e.peek(); d == c+2 { // '{'+2 is '}', '['+2 is ']'
				e.pos++
				open--
				break // an empty container is a whole value
			}
			if c == '{' && !e.memberKey() {
				return false
			}
			continue // the first member's value
		default:
			// Numbers and literals are written as themselves: the plain
			// scanner validates them.
			s := scanner{b: e.b, pos: e.pos}
			var err error
			switch {
			case c == 't':
				err = s.literal("true")
			case c == 'f':
				err = s.literal("false")
			case c == 'n':
				err = s.literal("null")
			case c == '-' || isDigit(c):
				err = s.number()
			default:
				return false
			}
			e.pos = s.pos
			if err != nil {
				return false
			}
		}
		// After a value: close what ends here, then go on with the next
		// member, or return once the outermost value is complete.
		for {
			if open == 0 {
				return true
			}
			arr := isArray(open - 1)
			c := e.peek()
			if c == ',' {
				e.pos++
				if !arr && !e.memberKey() {
					return false
				}
				break
			}
			if (c == '}' && !arr) || (c == ']' && arr) {
				e.pos++
				open--
				continue
			}
			return false
		}
	}
}

// memberKey consumes an object key of a skipped object and its colon.
func (e *escScanner) memberKey() bool {
	if e.peek() != '\\' {
		return false
	}
	if _, _, _, ok := e.str(); !ok || e.peek() != ':' {
		return false
	}
	e.pos++
	return true
}

// str reads a string-or-null field value into dst.
func (e *escScanner) strValue(dst *string) bool {
	switch e.peek() {
	case 'n':
		s := scanner{b: e.b, pos: e.pos}
		if s.literal("null") != nil {
			return false
		}
		e.pos = s.pos
		*dst = ""
		return true
	case '\\':
		start, end, esc, ok := e.str()
		switch {
		case !ok:
			return false
		case start == end:
			*dst = ""
		case !esc:
			*dst = unsafe.String(&e.b[start], end-start)
		default:
			once, err := appendUnescape(make([]byte, 0, end-start), e.b[start:end])
			if err != nil {
				return false
			}
			twice, err := appendUnescape(make([]byte, 0, len(once)), once)
			if err != nil {
				return false
			}
			*dst = string(twice)
		}
		return true
	default:
		return false
	}
}

// objOrNull walks an object-or-null value.
func (e *escScanner) objOrNull(member func(key []byte) bool) bool {
	switch e.peek() {
	case '{':
		return e.object(member)
	case 'n':
		return e.skip()
	default:
		return false
	}
}

// record parses the record, which must fill the rest of the outer string,
// and consumes the outer string's closing quote.
func (e *escScanner) record(r *Record) bool {
	if e.peek() != '{' {
		return false
	}
	ok := e.object(func(key []byte) bool {
		if dst, _ := r.stringField(key); dst != nil {
			return e.strValue(dst)
		}
		if string(key) != "userIdentity" {
			return e.skip()
		}
		u := &r.UserIdentity
		*u = UserIdentity{}
		return e.objOrNull(func(key []byte) bool {
			if dst, _ := u.stringField(key); dst != nil {
				return e.strValue(dst)
			}
			if string(key) != "sessionContext" {
				return e.skip()
			}
			sc := &u.SessionContext
			*sc = SessionContext{}
			return e.objOrNull(func(key []byte) bool {
				if dst, _ := sc.stringField(key); dst != nil {
					return e.strValue(dst)
				}
				if string(key) != "sessionIssuer" {
					return e.skip()
				}
				si := &sc.SessionIssuer
				*si = SessionIssuer{}
				return e.objOrNull(func(key []byte) bool {
					if dst, _ := si.stringField(key); dst != nil {
						return e.strValue(dst)
					}
					return e.skip()
				})
			})
		})
	})
	if !ok || e.peek() != '"' {
		return false
	}
	e.pos++
	return true
}

// keepRatio bounds what a payload costs once decoded: when the records kept
// from it hold less than 1/keepRatio of its bytes, detach copies them off it
// so that it can be collected. (A Kinesis event carries many payloads, most
// of whose records the pre-filter drops; without this, each would stay in
// memory for one kept record.)
const keepRatio = 4

// detach moves recs, the records just decoded from payload, into one buffer
// of their own when they use little of it (keepRatio). Each record's string
// fields lie in its own message, or in memory of their own, so moving the
// message moves them.
func detach(recs []Record, payload []byte) {
	if len(payload) == 0 || len(recs) == 0 {
		return
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(payload)))
	inPayload := func(p unsafe.Pointer, n int) bool {
		a := uintptr(p)
		return n > 0 && a >= lo && a+uintptr(n) <= lo+uintptr(len(payload))
	}
	total := 0
	for i := range recs {
		if r := &recs[i]; r.escaped && inPayload(unsafe.Pointer(unsafe.SliceData(r.raw)), len(r.raw)) {
			total += len(r.raw)
		}
	}
	if total*keepRatio >= len(payload) {
		return
	}
	buf := make([]byte, 0, total)
	for i := range recs {
		r := &recs[i]
		if inPayload(unsafe.Pointer(unsafe.StringData(r.DeliveryID)), len(r.DeliveryID)) {
			r.DeliveryID = strings.Clone(r.DeliveryID)
		}
		if !r.escaped || !inPayload(unsafe.Pointer(unsafe.SliceData(r.raw)), len(r.raw)) {
			continue // a private copy already (the two-step path's)
		}
		start := len(buf)
		buf = append(buf, r.raw...)
		moved := buf[start:len(buf):len(buf)]
		from := uintptr(unsafe.Pointer(unsafe.SliceData(r.raw)))
		r.eachString(func(s *string) {
			p := uintptr(unsafe.Pointer(unsafe.StringData(*s)))
			if len(*s) > 0 && p >= from && p+uintptr(len(*s)) <= from+uintptr(len(r.raw)) {
				*s = unsafe.String(&moved[p-from], len(*s))
			}
		})
		r.raw = moved
	}
}
