package cloudtrail_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	"github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
)

// fuzzLimit keeps decompression bombs cheap while fuzzing.
const fuzzLimit = 1 << 20

func seedRecords(f *testing.F) [][]byte {
	var out [][]byte
	for _, s := range cloudtrailtest.Scenarios {
		out = append(out, s.JSON())
	}
	for _, name := range []string{"instance_session_imdsv1_v1.08.json", "instance_session_vpce_v1.10.json", "iam_user_v1.09.json"} {
		out = append(out, readFile(f, name))
	}
	return out
}

// checkError asserts the properties every returned error has.
func checkError(t *testing.T, err error) {
	t.Helper()
	if err != nil && !strings.HasPrefix(err.Error(), "cloudtrail: ") {
		t.Fatalf("error %q lacks the package prefix", err)
	}
}

// checkBatch asserts invariants every Batch satisfies, whatever the input.
func checkBatch(t *testing.T, b *cloudtrail.Batch) {
	t.Helper()
	if len(b.Records)+b.Filtered > b.Events {
		t.Fatalf("%d records + %d filtered > %d events", len(b.Records), b.Filtered, b.Events)
	}
	if len(b.Errors) > b.Malformed || len(b.Errors) > cloudtrail.MaxItemErrors {
		t.Fatalf("%d errors kept for %d malformed", len(b.Errors), b.Malformed)
	}
	for _, e := range b.Errors {
		if e == nil || e.Err == nil || e.Error() == "" {
			t.Fatalf("empty item error %#v", e)
		}
	}
	for _, r := range b.Records {
		if !json.Valid(r.JSON()) {
			t.Fatalf("decoded record is not valid JSON: %q", r.JSON())
		}
	}
}

// looksLikeInstanceSession is what the pre-filter must never miss.
func looksLikeInstanceSession(r *cloudtrail.Record) bool {
	return strings.Contains(r.UserIdentity.PrincipalID, ":i-") || r.UserIdentity.SessionContext.EC2RoleDelivery != ""
}

func FuzzParseRecord(f *testing.F) {
	for _, r := range seedRecords(f) {
		f.Add(r)
	}
	f.Add([]byte(`{"userIdentity":{"principalId":"AROA\u003ai-0123456789abcdef0"}}`))
	f.Add([]byte(`{"userIdentity":{"sessionContext":{"ec2RoleDelivery":null}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkAgainstEncodingJSON(t, raw)
		r, err := cloudtrail.ParseRecord(raw)
		checkError(t, err)
		if err == nil && looksLikeInstanceSession(&r) && !cloudtrail.MayBeInstanceSession(raw) {
			t.Fatalf("pre-filter rejects an instance session: %q", raw)
		}
	})
}

func FuzzDecodeEventBridge(f *testing.F) {
	for _, r := range seedRecords(f) {
		f.Add(cloudtrailtest.EventBridge(r))
	}
	f.Add(readFile(f, "eventbridge_api_call.json"))
	f.Add([]byte(`{"detail-type":"Scheduled Event","detail":{}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var b cloudtrail.Batch
		err := new(cloudtrail.Decoder).DecodeEventBridge(raw, &b)
		checkError(t, err)
		checkBatch(t, &b)
		if len(b.Records)+b.Filtered+b.Malformed+b.Ignored > 1 {
			t.Fatalf("one event produced %+v", b)
		}
		var all cloudtrail.Batch
		errAll := (&cloudtrail.Decoder{DecodeAll: true}).DecodeEventBridge(raw, &all)
		if (err == nil) != (errAll == nil) {
			t.Fatalf("DecodeAll changes the outcome: %v vs %v", err, errAll)
		}
		for _, r := range all.Records {
			if looksLikeInstanceSession(&r) && len(b.Records) == 0 {
				t.Fatalf("pre-filter rejects an instance session: %q", raw)
			}
		}
	})
}

// checkCWLPayload decodes payload with and without the pre-filter and
// compares the results with each other and with encoding/json.
func checkCWLPayload(t *testing.T, payload []byte) {
	var b, all cloudtrail.Batch
	err := new(cloudtrail.Decoder).DecodeCWLPayload(payload, &b)
	errAll := (&cloudtrail.Decoder{DecodeAll: true}).DecodeCWLPayload(payload, &all)
	checkError(t, err)
	checkBatch(t, &b)
	checkBatch(t, &all)
	if (err == nil) != (errAll == nil) {
		t.Fatalf("DecodeAll changes the outcome: %v vs %v", err, errAll)
	}
	if b.Events != all.Events || b.Ignored != all.Ignored {
		t.Fatalf("pre-filter changes counts: %+v vs %+v", b, all)
	}
	if err == nil && b.Ignored == 0 && b.Events != len(b.Records)+b.Filtered+b.Malformed {
		t.Fatalf("events %d != records %d + filtered %d + malformed %d", b.Events, len(b.Records), b.Filtered, b.Malformed)
	}
	// Every instance session found without the pre-filter is found with it.
	kept := map[string]bool{}
	for _, r := range b.Records {
		kept[string(r.JSON())] = true
	}
	for _, r := range all.Records {
		if looksLikeInstanceSession(&r) && !kept[string(r.JSON())] {
			t.Fatalf("pre-filter rejects an instance session: %q", r.JSON())
		}
	}
	// Records are the messages as encoding/json unescapes them.
	if err != nil || !utf8.Valid(payload) {
		return
	}
	var p struct {
		MessageType string
		LogEvents   []struct{ Message *string }
	}
	if json.Unmarshal(payload, &p) != nil {
		return // ParseRecord is stricter about types than this loose view
	}
	var msgs []string
	for _, e := range p.LogEvents {
		if e.Message != nil && json.Valid([]byte(*e.Message)) {
			msgs = append(msgs, *e.Message)
		}
	}
	i := 0
	for _, r := range all.Records {
		for i < len(msgs) && msgs[i] != string(r.JSON()) {
			i++
		}
		if i == len(msgs) {
			t.Fatalf("record %q is not one of the payload's messages", r.JSON())
		}
		i++
	}
}

// smallSeed is a short payload with an instance session, another
// principal and a record with unicode escapes.
func smallSeed(f *testing.F) []byte {
	return cloudtrailtest.CWLPayload(cloudtrailtest.StolenFromForeignIP.JSON(), cloudtrailtest.IAMUserCall.JSON(),
		readFile(f, "instance_session_vpce_v1.10.json"))
}

func FuzzDecodeCWLPayload(f *testing.F) {
	f.Add(smallSeed(f))
	f.Add(mixedPayload())
	f.Add(cloudtrailtest.ControlPayload())
	f.Add(cloudtrailtest.CWLPayloadEvents("DATA_MESSAGE"))
	f.Add([]byte(`{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","message":"{\"userIdentity\":{\"principalId\":\"A\\u003ai-1\"}}"}]}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkCWLPayload(t, payload)
		// The full Lambda path gives the same outcome.
		var direct, wrapped cloudtrail.Batch
		errDirect := new(cloudtrail.Decoder).DecodeCWLPayload(payload, &direct)
		errWrapped := new(cloudtrail.Decoder).DecodeCWLEvent(cloudtrailtest.CWLEvent(payload), &wrapped)
		if (errDirect == nil) != (errWrapped == nil) || len(direct.Records) != len(wrapped.Records) || direct.Malformed != wrapped.Malformed {
			t.Fatalf("Lambda event path differs: %v/%d/%d vs %v/%d/%d", errDirect, len(direct.Records), direct.Malformed,
				errWrapped, len(wrapped.Records), wrapped.Malformed)
		}
	})
}

func FuzzDecodeCWLCompressed(f *testing.F) {
	f.Add(cloudtrailtest.Gzip(smallSeed(f)))
	f.Add(cloudtrailtest.Gzip(cloudtrailtest.ControlPayload()))
	f.Add(cloudtrailtest.Gzip(bytes.Repeat([]byte{' '}, fuzzLimit+1)))
	f.Add([]byte{0x1f, 0x8b, 0x08, 0x00})
	f.Fuzz(func(t *testing.T, gz []byte) {
		var b cloudtrail.Batch
		err := (&cloudtrail.Decoder{MaxPayloadBytes: fuzzLimit}).DecodeCWLCompressed(gz, &b)
		checkError(t, err)
		checkBatch(t, &b)
		if b.Payloads != 1 {
			t.Fatalf("Payloads = %d, want 1", b.Payloads)
		}
	})
}

func FuzzDecodeCWLEvent(f *testing.F) {
	f.Add(cloudtrailtest.CWLEvent(smallSeed(f)))
	f.Add(cloudtrailtest.CWLEvent(mixedPayload()))
	f.Add([]byte(`{"awslogs":{"data":"H4sIAAAAAAAA\/wMAAAAAAAAAAAA="}}`))
	f.Add([]byte(`{"awslogs":{"data":"!!"}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var b cloudtrail.Batch
		err := (&cloudtrail.Decoder{MaxPayloadBytes: fuzzLimit}).DecodeCWLEvent(raw, &b)
		checkError(t, err)
		checkBatch(t, &b)
		if b.Payloads != 1 {
			t.Fatalf("Payloads = %d, want 1", b.Payloads)
		}
	})
}

func FuzzDecodeKinesisEvent(f *testing.F) {
	f.Add(cloudtrailtest.KinesisEvent(smallSeed(f), cloudtrailtest.ControlPayload(), []byte("junk")))
	f.Add(cloudtrailtest.KinesisEvent(mixedPayload()))
	f.Add([]byte(`{"Records":[{"kinesis":{"data":"AAAA","sequenceNumber":"1"}},7,{}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var b cloudtrail.Batch
		err := (&cloudtrail.Decoder{MaxPayloadBytes: fuzzLimit}).DecodeKinesisEvent(raw, &b)
		checkError(t, err)
		checkBatch(t, &b)
	})
}

func FuzzDecodeKinesisData(f *testing.F) {
	f.Add(cloudtrailtest.Gzip(smallSeed(f)))
	f.Add([]byte("not gzip"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var b cloudtrail.Batch
		err := (&cloudtrail.Decoder{MaxPayloadBytes: fuzzLimit}).DecodeKinesisData("7", data, &b)
		checkError(t, err)
		checkBatch(t, &b)
		for _, r := range b.Records {
			if r.SequenceNumber != "7" {
				t.Fatalf("record not tagged: %+v", r)
			}
		}
	})
}
