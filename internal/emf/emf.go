// Package emf writes CloudWatch embedded metric format (EMF) records: one
// JSON line on stdout that CloudWatch Logs turns into metrics, so that a
// Lambda needs no cloudwatch:PutMetricData. Both Defenders Lambdas write
// their metrics through it (namespaces in internal/contract).
//
// Every record has the same shape: the "_aws" metadata (timestamp, one
// directive with the namespace, no dimensions, the declared metrics), the
// invocation's "requestId" (omitted when empty), then the caller's fields,
// which carry the metric values and any other properties.
package emf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Units of the metrics the Lambdas write.
const (
	Count        = "Count"
	Milliseconds = "Milliseconds"
)

// KeyRequestID is the property that holds the Lambda request id, the same
// key as in the log lines (lambdarun.KeyRequestID).
const KeyRequestID = "requestId"

// Metric declares one metric of a record. Its value is the caller's field
// of the same name.
type Metric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

// Counts declares each name as a Count metric.
func Counts(names ...string) []Metric {
	out := make([]Metric, 0, len(names))
	for _, n := range names {
		out = append(out, Metric{Name: n, Unit: Count})
	}
	return out
}

type directive struct {
	Namespace  string     `json:"Namespace"`
	Dimensions [][]string `json:"Dimensions"`
	Metrics    []Metric   `json:"Metrics"`
}

type metadata struct {
	Timestamp         int64       `json:"Timestamp"`
	CloudWatchMetrics []directive `json:"CloudWatchMetrics"`
}

// Line renders one EMF record, newline-terminated. fields must encode as a
// JSON object (a struct or a map) holding a value for every declared
// metric. The metrics carry no dimensions: one time series per metric for
// the whole function, which is what the constructs' alarms watch.
func Line(namespace string, ts time.Time, requestID string, metrics []Metric, fields any) ([]byte, error) {
	head := struct {
		AWS       metadata `json:"_aws"`
		RequestID string   `json:"requestId,omitempty"`
	}{
		AWS:       metadata{Timestamp: ts.UnixMilli(), CloudWatchMetrics: []directive{{Namespace: namespace, Dimensions: [][]string{{}}, Metrics: metrics}}},
		RequestID: requestID,
	}
	h, err := json.Marshal(&head)
	if err != nil {
		return nil, fmt.Errorf("emf: %w", err)
	}
	body, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("emf: %w", err)
	}
	body = bytes.TrimSpace(body)
	if len(body) < 2 || body[0] != '{' {
		return nil, fmt.Errorf("emf: the fields encode as %.20s, not a JSON object", body)
	}
	var b bytes.Buffer
	b.Grow(len(h) + len(body) + 2)
	b.Write(h[:len(h)-1]) // without its closing brace
	if len(body) > 2 {
		b.WriteByte(',')
		b.Write(body[1:])
	} else {
		b.WriteByte('}')
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}
