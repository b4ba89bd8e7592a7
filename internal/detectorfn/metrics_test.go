package detectorfn

// The EMF record of an invocation.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func TestEMFLine(t *testing.T) {
	line := emfLine(metrics{Source: "kinesis", EventsSeen: 3, Alerts: 1, DurationMs: 1.5}, "req", time.UnixMilli(1715680800000))
	var r map[string]any
	if err := json.Unmarshal(line, &r); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	d := r["_aws"].(map[string]any)
	cw := d["CloudWatchMetrics"].([]any)[0].(map[string]any)
	if d["Timestamp"] != float64(1715680800000) || cw["Namespace"] != "Defenders/Detector" || fmt.Sprint(cw["Dimensions"]) != "[[]]" {
		t.Errorf("EMF directive %v", d)
	}
	for _, m := range cw["Metrics"].([]any) {
		name := m.(map[string]any)["Name"].(string)
		if _, ok := r[name]; !ok {
			t.Errorf("metric %s declared but absent", name)
		}
	}
	if r["EventsSeen"] != float64(3) || r["Alerts"] != float64(1) || r["Source"] != "kinesis" || !bytes.HasSuffix(line, []byte("\n")) {
		t.Errorf("EMF record %s", line)
	}
}
