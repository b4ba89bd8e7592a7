package lockpolicy

import "testing"

// TestSizeOf was locker's TestPolicySize: the size count moved here.
func TestSizeOf(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want int
	}{
		{name: "whitespace between tokens is not counted", doc: "{ \"a\" : [ 1 ,\n 2 ] }", want: len(`{"a":[1,2]}`)},
		{name: "whitespace inside strings is counted", doc: `{"a b":"c d"}`, want: 13},
		{name: "invalid JSON counts every visible character", doc: `{ "a" :`, want: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SizeOf([]byte(tt.doc)); got != tt.want {
				t.Errorf("SizeOf = %d, want %d", got, tt.want)
			}
		})
	}
}
