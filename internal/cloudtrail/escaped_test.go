package cloudtrail

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
)

// escapedOracle parses content (the bytes of a CloudWatch Logs message
// between its quotes, and possibly beyond) with the one-pass escaped parser
// and, when that does not give up, holds it to the two-step path
// (strFlags, appendUnescape, parseRecord): the same end of string, the same
// record, the same JSON, the same pre-filter decision. It reports whether
// the one-pass parser accepted the message.
func escapedOracle(t *testing.T, content []byte) bool {
	t.Helper()
	buf := append(append([]byte{'"'}, content...), '"')
	e := escScanner{b: buf, pos: 1}
	var fast Record
	if !e.record(&fast) {
		return false
	}
	s := scanner{b: buf}
	start, end, flags, err := s.strFlags()
	if err != nil {
		t.Fatalf("one pass accepted a message the string scanner rejects (%v): %q", err, content)
	}
	if end != e.pos-1 {
		t.Fatalf("one pass ended the string at %d, the string scanner at %d: %q", e.pos-1, end, content)
	}
	msg := buf[start:end]
	raw, err := appendUnescape(nil, msg)
	if err != nil {
		t.Fatalf("unescape: %v: %q", err, content)
	}
	var slow Record
	if err := parseRecord(&slow, raw, false); err != nil {
		t.Fatalf("one pass accepted a record the two-step path rejects (%v): %q", err, raw)
	}
	fast.raw, fast.escaped = msg, true
	if !bytes.Equal(fast.JSON(), slow.JSON()) {
		t.Fatalf("JSON differs:\n one pass %q\n two-step %q", fast.JSON(), slow.JSON())
	}
	fast.SetJSON(nil)
	slow.SetJSON(nil)
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("records differ:\n one pass %+v\n two-step %+v\n input %q", fast, slow, content)
	}
	proven := strings.Contains(fast.UserIdentity.PrincipalID, ":i-") || fast.UserIdentity.SessionContext.EC2RoleDelivery != ""
	twoStep := flags&flagUnicode != 0 || mayBeInstanceSession(msg)
	if MayBeInstanceSession(msg) != twoStep {
		t.Fatalf("pre-filter: %v on the message, %v by the two-step rule: %q", MayBeInstanceSession(msg), twoStep, content)
	}
	if proven && !twoStep {
		t.Fatalf("fields show an instance session the pre-filter would drop: %q", content)
	}
	return true
}

// quote is how a JSON encoder writes s as a string's contents.
func quote(t testing.TB, s []byte, html bool) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(html)
	if err := enc.Encode(string(s)); err != nil {
		t.Fatal(err)
	}
	out := bytes.TrimSpace(b.Bytes())
	return out[1 : len(out)-1]
}

// escapedSeeds are records in every form a message may carry them.
func escapedSeeds(t testing.TB) [][]byte {
	var recs [][]byte
	for _, s := range cloudtrailtest.Scenarios {
		recs = append(recs, s.JSON())
	}
	files, _ := filepath.Glob("testdata/*.json")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(`"detail"`)) { // an EventBridge event carries its record inside
			recs = append(recs, b)
		}
	}
	var out [][]byte
	for _, r := range recs {
		var v any
		if err := json.Unmarshal(r, &v); err != nil {
			t.Fatal(err)
		}
		indented, _ := json.MarshalIndent(v, "", "\t")
		out = append(out,
			quote(t, r, false),        // as read, compact or not
			quote(t, r, true),         // < > & as \u003c ... (Go's default)
			quote(t, indented, false), // whitespace as \n and \t
			bytes.ReplaceAll(quote(t, r, false), []byte("/"), []byte(`\/`)), // '/' escaped
		)
	}
	return append(out,
		[]byte(`{\"userAgent\":\"a \\\"quoted\\\" agent\\\\\",\"userIdentity\":{\"principalId\":\"AROAX:i-0123456789abcdef0\"}}`),
		[]byte(`{\"eventName\":\"caf\u00e9 \\u00e9 \ud83d\ude00\"}`),
		[]byte(`{\"eventName\":\"x\u0022\"}`),
		[]byte(`{\"eventName\":\"a\nb\"}`),
		[]byte(`{\"a\":[1,-2.5e3,true,false,null,{\"b\":[]}],\"userIdentity\":null} `),
		[]byte(`{\"eventName\":1}`),
		[]byte(`{\"eventName\":\"x\"}\" trailing`),
		[]byte(`[]`),
	)
}

// TestEscapedParserAcceptsWhatEncodersWrite: every record, in every form an
// encoder writes it, is parsed in one pass (a give-up would cost the hot path
// a second and third pass) and agrees with the two-step path.
func TestEscapedParserAcceptsWhatEncodersWrite(t *testing.T) {
	seeds := escapedSeeds(t)
	records := len(seeds) - 8 // the hand-written tail is checked below
	for i, s := range seeds[:records] {
		if !escapedOracle(t, s) {
			t.Errorf("seed %d: the one-pass parser gave up on %.200q", i, s)
		}
	}
	for _, tt := range []struct {
		content string
		accept  bool
	}{
		{`{\"userAgent\":\"a \\\"quoted\\\" agent\\\\\",\"userIdentity\":{\"principalId\":\"AROAX:i-0123456789abcdef0\"}}`, true},
		{`{\"eventName\":\"caf\u00e9 \\u00e9 \ud83d\ude00\"}`, true},
		{`{\"a\":[1,-2.5e3,true,false,null,{\"b\":[]}],\"userIdentity\":null} `, true},
		{`{\"eventName\":\"x\u0022\"}`, false},      // a quote spelled \u0022 by the outer encoder
		{`{\"eventName\":\"a\nb\"}`, false},         // a newline inside an inner string
		{`{\"eventName\":1}`, false},                // a type error: the two-step path names it
		{`{\"eventName\":\"x\"}\" trailing`, false}, // the string ends after the record: that is all
		{`[]`, false},                                                // not an object
		{`{\"eventName\":\"x\"} {}`, false},                          // trailing data
		{`{\"event\u004eame\":\"x\"}`, false},                        // an escaped key
		{strings.Repeat(`[`, 600) + strings.Repeat(`]`, 600), false}, // not an object
		// The record object and 511 arrays are maxDepth (512) levels: the
		// two-step path takes them; one more it rejects.
		{`{\"a\":` + strings.Repeat(`[`, 511) + strings.Repeat(`]`, 511) + `}`, true},
		{`{\"a\":` + strings.Repeat(`[`, 512) + strings.Repeat(`]`, 512) + `}`, false},
		{`{\"a\":[{\"b\":{}},[],{\"c\\u0041\":[1,{\"d\":null}]}],\"eventName\":\"x\"}`, true}, // an escaped key in a skipped object
		{`{\"a\":[1,]}`, false},
		{`{\"a\":{\"b\"}}`, false},
		{`{\"a\":{\"b\":1,}}`, false},
		{`{\"a\":[}`, false},
	} {
		if got := escapedOracle(t, []byte(tt.content)); got != tt.accept {
			t.Errorf("accepted %v, want %v: %q", got, tt.accept, tt.content)
		}
	}
}

// TestEscapedParserOnRealPayloads: every message of the real CloudWatch Logs
// payloads in testdata/real (published CloudTrail deliveries; the README
// there names each source) is parsed in one pass, exactly as the two-step
// path parses it, and the decoder keeps the same records either way. The
// real single records are checked as CloudWatch Logs quotes them (only \"
// escaped, as those payloads show) and as an encoder that escapes '/' would.
func TestEscapedParserOnRealPayloads(t *testing.T) {
	payloads, _ := filepath.Glob("testdata/real/*.cwl.json")
	records, _ := filepath.Glob("testdata/real/*.record.json")
	if len(payloads) < 3 || len(records) < 3 {
		t.Fatalf("testdata/real: %d payloads and %d records", len(payloads), len(records))
	}
	for _, name := range payloads {
		payload, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var env struct {
			LogEvents []struct{ Message string }
		}
		if err := json.Unmarshal(payload, &env); err != nil {
			t.Fatal(err)
		}
		s := scanner{b: payload}
		fused := 0
		if err := s.object(func(key []byte) error {
			if string(key) != "logEvents" {
				return s.skip()
			}
			return s.array(func() error {
				return s.object(func(key []byte) error {
					if string(key) != "message" {
						return s.skip()
					}
					start, end, _, err := s.strFlags()
					if err == nil && escapedOracle(t, payload[start:end]) {
						fused++
					}
					return err
				})
			})
		}); err != nil {
			t.Fatal(err)
		}
		if fused != len(env.LogEvents) || fused == 0 {
			t.Errorf("%s: %d of %d messages parsed in one pass", name, fused, len(env.LogEvents))
		}
		var b Batch
		if err := (&Decoder{DecodeAll: true}).DecodeCWLPayload(payload, &b); err != nil || len(b.Records) != len(env.LogEvents) {
			t.Fatalf("%s: %d records of %d, %v", name, len(b.Records), len(env.LogEvents), err)
		}
		for i, r := range b.Records {
			if string(r.JSON()) != env.LogEvents[i].Message {
				t.Errorf("%s: record %d JSON differs from the message", name, i)
			}
		}
	}
	for _, name := range records {
		rec, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(rec, &v); err != nil {
			t.Fatal(err)
		}
		compact, _ := json.Marshal(v) // as CloudTrail writes it: no whitespace
		for _, content := range [][]byte{quote(t, rec, false), quote(t, compact, false),
			bytes.ReplaceAll(quote(t, rec, false), []byte("/"), []byte(`\/`))} {
			if !escapedOracle(t, content) {
				t.Errorf("%s: the one-pass parser gave up on %.200q", name, content)
			}
		}
	}
}

// FuzzEscapedRecord holds the one-pass parser to the two-step path on
// arbitrary message contents.
func FuzzEscapedRecord(f *testing.F) {
	for _, s := range escapedSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		escapedOracle(t, content)
	})
}

// TestDetachFreesMostlyFilteredPayloads: a payload whose records the
// pre-filter mostly drops is not kept alive by the few it keeps (a Kinesis
// event carries many): wiping the payload after decoding changes nothing in
// them. A payload of instance sessions is kept: its records alias it.
func TestDetachFreesMostlyFilteredPayloads(t *testing.T) {
	stolen := cloudtrailtest.StolenFromForeignIP.JSON()
	want, err := ParseRecord(stolen)
	if err != nil {
		t.Fatal(err)
	}
	recs := [][]byte{stolen}
	for range 40 {
		recs = append(recs, cloudtrailtest.IAMUserCall.JSON())
	}
	payload := cloudtrailtest.CWLPayload(recs...)
	var b Batch
	if err := new(Decoder).DecodeCWLPayload(payload, &b); err != nil || len(b.Records) != 1 || b.Filtered != 40 {
		t.Fatalf("%d records, %d filtered, %v", len(b.Records), b.Filtered, err)
	}
	for i := range payload {
		payload[i] = 'x'
	}
	got := b.Records[0]
	if !bytes.Equal(got.JSON(), stolen) {
		t.Errorf("JSON after the payload was wiped: %q", got.JSON())
	}
	if got.DeliveryID == "" || strings.Contains(got.DeliveryID, "x") {
		t.Errorf("DeliveryID after the payload was wiped: %q", got.DeliveryID)
	}
	got.SetJSON(nil)
	want.SetJSON(nil)
	got.Source, got.DeliveryID = 0, ""
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after the payload was wiped:\n got %+v\nwant %+v", got, want)
	}

	kept := cloudtrailtest.CWLPayload(stolen, stolen, stolen)
	b.Reset()
	if err := new(Decoder).DecodeCWLPayload(kept, &b); err != nil || len(b.Records) != 3 {
		t.Fatalf("%d records, %v", len(b.Records), err)
	}
	arn := b.Records[2].UserIdentity.ARN
	p := uintptr(unsafe.Pointer(unsafe.StringData(arn)))
	if lo := uintptr(unsafe.Pointer(&kept[0])); p < lo || p >= lo+uintptr(len(kept)) {
		t.Errorf("a record of a payload it mostly fills was copied")
	}
}

// TestEachStringCoversEveryField: detach moves the fields eachString
// lists; a string field added to Record must be listed there (the two
// outside the record JSON, DeliveryID and SequenceNumber, are handled
// apart).
func TestEachStringCoversEveryField(t *testing.T) {
	var count func(reflect.Type) int
	count = func(ty reflect.Type) int {
		n := 0
		for i := range ty.NumField() {
			switch f := ty.Field(i); f.Type.Kind() {
			case reflect.String:
				n++
			case reflect.Struct:
				n += count(f.Type)
			}
		}
		return n
	}
	listed := 0
	new(Record).eachString(func(*string) { listed++ })
	if fields := count(reflect.TypeFor[Record]()); listed+2 != fields {
		t.Errorf("Record has %d string fields; eachString lists %d (+ DeliveryID and SequenceNumber)", fields, listed)
	}
}
