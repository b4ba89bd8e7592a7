package shadow

import (
	"testing"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
)

// benchWorld is 10,000 generated records over 3 accounts and 20 roles.
func benchWorld(b *testing.B) (*world, []cloudtrail.Record) {
	b.Helper()
	w := generate(b, 10000, 3, 20, 42)
	recs := make([]cloudtrail.Record, len(w.records))
	for i, raw := range w.records {
		r, err := cloudtrail.ParseRecord(raw)
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = r
	}
	return w, recs
}

// BenchmarkShadow measures decoded records through FromRecord, Evaluate
// and Report.Add: what shadow mode costs on top of the detector's decoding.
func BenchmarkShadow(b *testing.B) {
	w, recs := benchWorld(b)
	report := NewReport(ReportOptions{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		w.shadow(&recs[i%len(recs)], report)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkShadowFromJSON adds decoding each record's JSON
// (cloudtrail.ParseRecord).
func BenchmarkShadowFromJSON(b *testing.B) {
	w, _ := benchWorld(b)
	report := NewReport(ReportOptions{})
	var bytes int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		raw := w.records[i%len(w.records)]
		bytes += int64(len(raw))
		rec, err := cloudtrail.ParseRecord(raw)
		if err != nil {
			b.Fatal(err)
		}
		w.shadow(&rec, report)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkEvaluate measures the evaluator alone on prepared requests.
func BenchmarkEvaluate(b *testing.B) {
	w, recs := benchWorld(b)
	reqs := make([]Request, 0, len(recs))
	pols := make([]*Policy, 0, len(recs))
	for i := range recs {
		r, err := FromRecord(&recs[i], w.inventory[InstanceID(&recs[i])], Options{EndpointVPCs: w.endpoints})
		if err != nil {
			continue
		}
		reqs = append(reqs, r)
		pols = append(pols, w.policies[recs[i].UserIdentity.SessionContext.SessionIssuer.ARN])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		j := i % len(reqs)
		_ = pols[j].Evaluate(&reqs[j])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
