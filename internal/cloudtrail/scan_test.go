package cloudtrail

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/bits"
	"testing"
	"unicode/utf8"
)

func TestHasSpecialFindsEveryStopByteInEveryPosition(t *testing.T) {
	for pos := range 8 {
		for c := range 256 {
			var b [8]byte
			for i := range b {
				b[i] = 'a'
			}
			b[pos] = byte(c)
			want := c == '"' || c == '\\' || c < 0x20
			if got := hasSpecial(binary.LittleEndian.Uint64(b[:])); got != want {
				t.Fatalf("hasSpecial(byte %#x at %d) = %v, want %v", c, pos, got, want)
			}
		}
	}
}

func TestSpecialMaskLowestBitIsTheFirstStopByte(t *testing.T) {
	stop := func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 }
	// Every pair of positions with every byte value at the first and a
	// sample of values at the second, over a background that has bytes
	// just above and below the thresholds.
	background := []byte{'!', '#', '[', ']', 0x7f, 0x80, 0xa2, 0xdc}
	for p1 := range 8 {
		for p2 := p1 + 1; p2 <= 8; p2++ {
			for c1 := range 256 {
				for _, c2 := range []byte{0, 0x1f, '"', '\\', 0x21, 0x5d, 0xff} {
					var b [8]byte
					copy(b[:], background)
					b[p1] = byte(c1)
					if p2 < 8 {
						b[p2] = c2
					}
					want := -1
					for i, c := range b {
						if stop(c) {
							want = i
							break
						}
					}
					m := specialMask(binary.LittleEndian.Uint64(b[:]))
					got := -1
					if m != 0 {
						got = bits.TrailingZeros64(m) >> 3
					}
					if got != want {
						t.Fatalf("first stop byte of % x: got %d, want %d", b, got, want)
					}
				}
			}
		}
	}
}

func TestStrFlagsReportsUnicodeEscapes(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want strFlags
	}{
		{"a plain string has no flags", `"abc"`, 0},
		{"an escaped quote is an escape", `"a\"b"`, flagEscaped},
		{"a unicode escape is flagged", `"a\u0041"`, flagEscaped | flagUnicode},
		{"an escaped backslash before u is flagged as a nested unicode escape", `"a\\u0041"`, flagEscaped | flagUnicode},
		{"an escaped backslash before another letter is not", `"a\\n"`, flagEscaped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := scanner{b: []byte(tt.in)}
			if _, _, f, err := s.strFlags(); err != nil || f != tt.want {
				t.Errorf("strFlags(%s) = %b, %v; want %b", tt.in, f, err, tt.want)
			}
		})
	}
}

func TestAppendUnescape(t *testing.T) {
	tests := []struct {
		name string
		in   string // JSON string contents, without quotes
	}{
		{"plain text is copied", `hello world`},
		{"simple escapes are decoded", `a\"b\\c\/d\be\ff\ng\rh\ti`},
		{"a BMP unicode escape is decoded", `caf\u00e9`},
		{"a surrogate pair is combined", `\ud83d\ude00 smile`},
		{"a lone high surrogate becomes U+FFFD", `x\ud83dy`},
		{"a lone low surrogate becomes U+FFFD", `x\ude00y`},
		{"a high surrogate followed by a non-surrogate escape keeps both", `\ud83d\u0041`},
		{"an escaped JSON record is unescaped", `{\"principalId\":\"AROA:i-0123456789abcdef0\"}`},
		{"uppercase hex digits are accepted", `\u00E9\u00C9`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want string
			if err := json.Unmarshal([]byte(`"`+tt.in+`"`), &want); err != nil {
				t.Fatalf("encoding/json rejects the test input: %v", err)
			}
			got, err := appendUnescape(nil, []byte(tt.in))
			if err != nil {
				t.Fatalf("appendUnescape: %v", err)
			}
			if string(got) != want {
				t.Errorf("appendUnescape = %q, want %q", got, want)
			}
		})
	}
}

func TestAppendUnescapeRejectsBadEscapes(t *testing.T) {
	for _, in := range []string{`\`, `\x`, `\u12`, `\u12g4`, `ab\`} {
		t.Run("it rejects "+in, func(t *testing.T) {
			if _, err := appendUnescape(nil, []byte(in)); !errors.Is(err, errBadEscape) {
				t.Errorf("appendUnescape(%q) error = %v, want errBadEscape", in, err)
			}
		})
	}
}

func TestScannerAgreesWithEncodingJSONOnValidity(t *testing.T) {
	docs := []string{
		`{}`, `[]`, `""`, `0`, `-0.5e+10`, `true`, `null`, ` {"a" : [1, 2.5, -3e2, "x", {"b": null}] } `,
		`{"a":"\u00e9\"\\\/\b\f\n\r\t"}`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `01`, `1.`, `1e`, `-`,
		`"abc`, `"a\qb"`, "\"a\x01b\"", `{"a":tru}`, `[1 2]`, `{"a":1}}`, `{"a":1} x`, `[`, `]`, ``, ` `,
		`"\u12"`, `{"a":"\ud800"}`, `[[[[[]]]]]`, `{"":""}`, `1e5`, `-01`, `+1`, `.5`, `"` + "\xff" + `"`,
	}
	for _, doc := range docs {
		t.Run("it judges "+strconvQuote(doc)+" as encoding/json does", func(t *testing.T) {
			s := scanner{b: []byte(doc)}
			err := s.skip()
			if err == nil {
				err = s.end()
			}
			if got, want := err == nil, json.Valid([]byte(doc)); got != want {
				t.Errorf("scanner valid = %v (err %v), encoding/json valid = %v", got, err, want)
			}
			if err != nil && !errors.Is(err, ErrSyntax) {
				t.Errorf("error %v does not wrap ErrSyntax", err)
			}
		})
	}
}

func TestScannerLimitsNesting(t *testing.T) {
	deep := make([]byte, 0, 2*(maxDepth+10))
	for range maxDepth + 10 {
		deep = append(deep, '[')
	}
	for range maxDepth + 10 {
		deep = append(deep, ']')
	}
	s := scanner{b: deep}
	if err := s.skip(); !errors.Is(err, ErrSyntax) {
		t.Fatalf("skip of %d nested arrays: error = %v, want ErrSyntax", maxDepth+10, err)
	}
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s) // marshalling a string cannot fail
	return string(b)
}

func FuzzAppendUnescape(f *testing.F) {
	for _, s := range []string{`plain`, `a\"b\\c\/d\be\ff\ng\rh\ti`, `\ud83d\ude00`, `\ud83dx`, `\u00e9`, `\`, `\u12`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		quoted := append(append([]byte{'"'}, in...), '"')
		s := scanner{b: quoted}
		_, end, _, serr := s.str()
		got, err := appendUnescape(nil, in)
		var want string
		jerr := json.Unmarshal(quoted, &want)
		strValid := serr == nil && end == len(quoted)-1
		if strValid != (jerr == nil) {
			t.Fatalf("scanner accepts %q: %v, encoding/json: %v", quoted, serr, jerr)
		}
		if jerr == nil && utf8.Valid(in) && (err != nil || string(got) != want) {
			t.Fatalf("appendUnescape(%q) = %q, %v; encoding/json = %q", in, got, err, want)
		}
	})
}
