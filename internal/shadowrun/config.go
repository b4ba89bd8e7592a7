package shadowrun

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
	"github.com/defenders-cdk/defenders/internal/shadow"
)

// Environment variables of the detector's shadow mode (internal/contract's,
// which constructs/detector sets). Set at most one of the two; neither turns shadow mode
// off.
const (
	// EnvShadowMode is a proposed lock mode (lockpolicy.Mode:
	// instance-public-ip, elastic-ip, nat-egress, vpc-endpoints-only):
	// every instance session is evaluated against the lock that mode would
	// give its instance, with the app's trust
	// (contract.EnvTrustedEgressPrefixes, contract.EnvSharedVPCEndpoints).
	EnvShadowMode = contract.EnvShadowMode
	// EnvShadowPolicy is a proposed deny-only policy document in the lock
	// vocabulary (shadow.CompileJSON): an SCP from lockpolicy.SCP, a lock,
	// DenyAll. Either the JSON itself or, to fit Lambda's 4 KB of
	// environment, its gzip compressed in standard base64 (EncodePolicy).
	EnvShadowPolicy = contract.EnvShadowPolicy
)

// Config is what a Runner evaluates: exactly one of Mode and Policy.
type Config struct {
	// Mode is a proposed lock mode.
	Mode lockpolicy.Mode
	// Trust is the app's trust, rendered into every proposed lock (Mode
	// only).
	Trust lockpolicy.Trust
	// Policy is a proposed static deny-only policy document (JSON).
	Policy []byte
	// Report bounds the report of one invocation (shadow.NewReport's
	// defaults).
	Report shadow.ReportOptions
	// MaxPolicies bounds the compiled locks cached, one per instance
	// (DefaultMaxPolicies if zero).
	MaxPolicies int
	// MaxLineBytes bounds the report log line (DefaultMaxLineBytes if
	// zero): a bigger report is shrunk (shadow.Summary.Shrink).
	MaxLineBytes int
}

// Defaults of Config.
const (
	// DefaultMaxPolicies is Config.MaxPolicies' default: a compiled lock
	// takes a few KB.
	DefaultMaxPolicies = 1024
	// DefaultMaxLineBytes is Config.MaxLineBytes' default, under
	// CloudWatch Logs' 256 KB per event (a longer Lambda log line is cut).
	DefaultMaxLineBytes = 200_000
	// minLineBytes is the smallest Config.MaxLineBytes: a report with
	// totals only fits.
	minLineBytes = 4096
)

// Enabled reports whether c proposes anything.
func (c Config) Enabled() bool { return c.Mode != "" || c.Policy != nil }

// ConfigFromEnv reads the shadow mode's configuration; a zero Config (not
// Enabled) when neither EnvShadowMode nor EnvShadowPolicy is set. Every
// error names the variable that is wrong.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	mode := strings.TrimSpace(getenv(EnvShadowMode))
	policy := strings.TrimSpace(getenv(EnvShadowPolicy))
	var c Config
	switch {
	case mode != "" && policy != "":
		return Config{}, fmt.Errorf("shadowrun: %s and %s are both set: propose a lock mode or a policy, not both", EnvShadowMode, EnvShadowPolicy)
	case mode != "":
		m, err := lockpolicy.ParseMode(mode)
		if err != nil {
			return Config{}, fmt.Errorf("shadowrun: %s: %w", EnvShadowMode, err)
		}
		c.Mode = m
		egress, err := lockpolicy.ParseTrust(getenv(contract.EnvTrustedEgressPrefixes), "")
		if err != nil {
			return Config{}, fmt.Errorf("shadowrun: %s (with %s): %w", contract.EnvTrustedEgressPrefixes, EnvShadowMode, err)
		}
		shared, err := lockpolicy.ParseTrust("", getenv(contract.EnvSharedVPCEndpoints))
		if err != nil {
			return Config{}, fmt.Errorf("shadowrun: %s (with %s): %w", contract.EnvSharedVPCEndpoints, EnvShadowMode, err)
		}
		c.Trust = lockpolicy.Trust{EgressPrefixes: egress.EgressPrefixes, SharedVPCEndpoints: shared.SharedVPCEndpoints}
	case policy != "":
		doc, err := DecodePolicy(policy)
		if err == nil {
			_, err = shadow.CompileJSON(doc)
		}
		if err != nil {
			return Config{}, fmt.Errorf("shadowrun: %s: %w", EnvShadowPolicy, err)
		}
		c.Policy = doc
	}
	return c, nil
}

// DecodePolicy reads EnvShadowPolicy's value: JSON (starting with "{"),
// or standard base64 of the JSON or of its gzip.
func DecodePolicy(v string) ([]byte, error) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "{") {
		return []byte(v), nil
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("neither a JSON policy document nor base64: %w", err)
	}
	if len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		b, err = io.ReadAll(io.LimitReader(zr, shadow.MaxPolicyBytes+1))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if len(b) > shadow.MaxPolicyBytes {
			return nil, fmt.Errorf("the document is larger than %d bytes", shadow.MaxPolicyBytes)
		}
	}
	if !bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
		return nil, errors.New("the base64 value is not a JSON policy document")
	}
	return b, nil
}

// EncodePolicy renders a policy document for EnvShadowPolicy: its compact
// JSON, or the base64 of its gzip when that is shorter.
func EncodePolicy(doc []byte) (string, error) {
	var compact bytes.Buffer
	if err := json.Compact(&compact, doc); err != nil {
		return "", fmt.Errorf("shadowrun: encode policy: %w", err)
	}
	var z bytes.Buffer
	zw, err := gzip.NewWriterLevel(&z, gzip.BestCompression)
	if err != nil {
		return "", fmt.Errorf("shadowrun: encode policy: %w", err)
	}
	if _, err := zw.Write(compact.Bytes()); err != nil {
		return "", fmt.Errorf("shadowrun: encode policy: %w", err)
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("shadowrun: encode policy: %w", err)
	}
	if b64 := base64.StdEncoding.EncodeToString(z.Bytes()); len(b64) < compact.Len() {
		return b64, nil
	}
	return compact.String(), nil
}
