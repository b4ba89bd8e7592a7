package lambdarun

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
)

func TestLevel(t *testing.T) {
	for v, want := range map[string]slog.Level{
		"": slog.LevelInfo, "INFO": slog.LevelInfo, "debug": slog.LevelDebug, "TRACE": slog.LevelDebug,
		" warn ": slog.LevelWarn, "ERROR": slog.LevelError, "FATAL": slog.LevelError, "loud": slog.LevelInfo,
	} {
		if got := Level(v); got != want {
			t.Errorf("Level(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestFailStartLogsAndExits(t *testing.T) {
	var code = -1
	old := exit
	exit = func(c int) { code = c }
	t.Cleanup(func() { exit = old })
	var out bytes.Buffer
	FailStart(NewLogger(&out, ""), errors.Join(errors.New("first"), errors.New("second")))
	var line map[string]any
	if err := json.Unmarshal(out.Bytes(), &line); err != nil {
		t.Fatalf("%s: %v", out.Bytes(), err)
	}
	if code != 1 || line["msg"] != "init failed" || line["level"] != "ERROR" || line[KeyError] != "first | second" {
		t.Errorf("exit %d, line %v", code, line)
	}
}
