package contract

import (
	"strings"
	"testing"
)

func TestParseBool(t *testing.T) {
	tests := []struct {
		in      string
		want    bool
		wantErr bool
	}{
		{"true", true, false}, {"TRUE", true, false}, {" True ", true, false},
		{"false", false, false}, {"False", false, false}, {"", false, false}, {"  ", false, false},
		{"1", false, true}, {"t", false, true}, {"yes", false, true}, {"True please", false, true}, {"0", false, true},
	}
	for _, tt := range tests {
		got, err := ParseBool(EnvLockdown, tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseBool(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), EnvLockdown) {
			t.Errorf("error %q does not name %s", err, EnvLockdown)
		}
	}
}
