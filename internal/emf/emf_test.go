package emf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func TestLine(t *testing.T) {
	type fields struct {
		Source string  `json:"Source"`
		Events int     `json:"Events"`
		Ms     float64 `json:"DurationMs"`
	}
	tests := []struct {
		name      string
		requestID string
		fields    any
		want      map[string]any
	}{
		{"a struct", "req", fields{"kinesis", 3, 1.5}, map[string]any{"Source": "kinesis", "Events": 3.0, "DurationMs": 1.5, "requestId": "req"}},
		{"a map, no request id", "", map[string]any{"Events": 2, "DurationMs": 0}, map[string]any{"Events": 2.0, "DurationMs": 0.0}},
		{"no fields", "req", map[string]any{}, map[string]any{"requestId": "req"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line, err := Line("Defenders/Test", time.UnixMilli(1715680800000), tt.requestID,
				append(Counts("Events"), Metric{"DurationMs", Milliseconds}), tt.fields)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasSuffix(line, []byte("}\n")) || bytes.Count(line, []byte("\n")) != 1 {
				t.Fatalf("not one line: %q", line)
			}
			var r map[string]any
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			d := r["_aws"].(map[string]any)
			cw := d["CloudWatchMetrics"].([]any)[0].(map[string]any)
			if d["Timestamp"] != float64(1715680800000) || cw["Namespace"] != "Defenders/Test" || fmt.Sprint(cw["Dimensions"]) != "[[]]" ||
				fmt.Sprint(cw["Metrics"]) != "[map[Name:Events Unit:Count] map[Name:DurationMs Unit:Milliseconds]]" {
				t.Errorf("EMF metadata %v", d)
			}
			delete(r, "_aws")
			if fmt.Sprint(r) != fmt.Sprint(tt.want) {
				t.Errorf("fields %v, want %v", r, tt.want)
			}
		})
	}
	if _, err := Line("N", time.Now(), "", nil, []int{1}); err == nil {
		t.Error("fields that are not an object: no error")
	}
}
