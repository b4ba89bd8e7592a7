package cloudtrail_test

import (
	"testing"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	"github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
)

// mix is the benchmark input: 1,000 records of about 1.5 KB, 20% of them
// instance sessions.
func mix() [][]byte { return cloudtrailtest.Mix(1000, 0.2, 50, 1) }

func benchDecode(b *testing.B, input []byte, decode func(*cloudtrail.Decoder, []byte, *cloudtrail.Batch) error) {
	var d cloudtrail.Decoder
	var batch cloudtrail.Batch
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	for b.Loop() {
		batch.Reset()
		if err := decode(&d, input, &batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch.Events)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDecodeCWLEvent1000 decodes a Lambda CloudWatch Logs event:
// base64, gunzip, envelope, pre-filter, record decoding.
func BenchmarkDecodeCWLEvent1000(b *testing.B) {
	benchDecode(b, cloudtrailtest.CWLEvent(cloudtrailtest.CWLPayload(mix()...)), (*cloudtrail.Decoder).DecodeCWLEvent)
}

// BenchmarkDecodeCWLPayload1000 is BenchmarkDecodeCWLEvent1000 without
// base64 and gunzip.
func BenchmarkDecodeCWLPayload1000(b *testing.B) {
	benchDecode(b, cloudtrailtest.CWLPayload(mix()...), (*cloudtrail.Decoder).DecodeCWLPayload)
}

// BenchmarkDecodeEventBridge decodes one EventBridge event carrying an
// instance session.
func BenchmarkDecodeEventBridge(b *testing.B) {
	benchDecode(b, cloudtrailtest.EventBridge(cloudtrailtest.StolenFromForeignIP.JSON()), (*cloudtrail.Decoder).DecodeEventBridge)
}

// BenchmarkParseRecord decodes one realistic instance-session record.
func BenchmarkParseRecord(b *testing.B) {
	raw := cloudtrailtest.InstanceViaOwnEndpoint.JSON()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cloudtrail.ParseRecord(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMayBeInstanceSession runs the pre-filter over 1,000 records.
func BenchmarkMayBeInstanceSession(b *testing.B) {
	recs := mix()
	n := 0
	for _, r := range recs {
		n += len(r)
	}
	b.SetBytes(int64(n))
	for b.Loop() {
		for _, r := range recs {
			cloudtrail.MayBeInstanceSession(r)
		}
	}
}
