package main

import (
	"io"
	"log/slog"
	"strings"

	"github.com/defenders-cdk/defenders/internal/detect"
)

// The function's configuration: read by detect.LoadSettings, whose
// environment variable names live in internal/contract (shared with
// constructs/detector, which this package must not import: a Lambda binary
// never links the CDK).
const (
	EnvTopicARN     = detect.EnvTopicARN
	EnvDLQURL       = detect.EnvDLQURL
	EnvDedupeWindow = detect.EnvDedupeWindow
	EnvInventoryTTL = detect.EnvInventoryTTL
	EnvSelfRoleARN  = detect.EnvSelfRoleARN
	EnvLockdown     = detect.EnvLockdown
	EnvRegions      = detect.EnvRegions
	EnvRegion       = detect.EnvRegion
)

// Defaults of the settings.
const (
	DefaultDedupeWindow = detect.DefaultDedupeWindow
	DefaultInventoryTTL = detect.DefaultCacheTTL
)

// settings is the function's configuration.
type settings = detect.Settings

// loadSettings reads and validates the environment through getenv.
func loadSettings(getenv func(string) string) (settings, error) { return detect.LoadSettings(getenv) }

// newLogger returns the JSON logger, at the level Lambda's advanced
// logging controls set in AWS_LAMBDA_LOG_LEVEL (INFO by default).
func newLogger(w io.Writer, level string) *slog.Logger {
	l := slog.LevelInfo
	switch strings.ToUpper(strings.TrimSpace(level)) {
	case "TRACE", "DEBUG":
		l = slog.LevelDebug
	case "WARN":
		l = slog.LevelWarn
	case "ERROR", "FATAL":
		l = slog.LevelError
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}
