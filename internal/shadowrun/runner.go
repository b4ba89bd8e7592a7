package shadowrun

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/detect"
	"github.com/defenders-cdk/defenders/internal/emf"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
	"github.com/defenders-cdk/defenders/internal/shadow"
)

// Metric names of the runner's EMF record (namespace
// contract.DetectorMetricsNamespace, no dimensions).
const (
	// MetricWouldDeny counts the calls the proposal would deny.
	MetricWouldDeny = "WouldDeny"
	// MetricUndetermined counts the calls whose verdict depends on facts
	// the record and the inventory do not carry.
	MetricUndetermined = "ShadowUndetermined"
)

// Runner evaluates a proposed lock mode or policy over the records the
// detector judges, and logs what it would deny once per invocation. It is
// safe for concurrent use. A nil *Runner (shadow mode off) does nothing.
type Runner struct {
	mode     lockpolicy.Mode
	trust    lockpolicy.Trust
	static   *shadow.Policy
	proposal string
	cfg      Config

	mu      sync.RWMutex // guards report: Observe adds under RLock, Flush swaps it under Lock
	report  *shadow.Report
	skipped atomic.Int64 // records that name no IAM principal, since the last Flush

	cacheMu sync.Mutex
	cache   map[string]*entry // instance id -> its compiled lock (Mode) or endpoint map
	order   []string          // cache keys, oldest first (FIFO eviction)
}

// entry is what one instance's records are evaluated with, valid while the
// inventory says the same of the instance.
type entry struct {
	inst   detect.Instance
	policy *shadow.Policy
	err    error // the lock could not be rendered or compiled
	shadow shadow.Instance
	opts   shadow.Options
}

// New returns a Runner for cfg, or an error naming what is wrong: neither
// or both of Mode and Policy, an unknown mode, an invalid trust, a policy
// the shadow evaluator does not understand.
func New(cfg Config) (*Runner, error) {
	r := &Runner{mode: cfg.Mode, cache: map[string]*entry{}}
	switch {
	case cfg.Mode != "" && cfg.Policy != nil:
		return nil, errors.New("shadowrun: Config.Mode and Config.Policy are both set: propose a lock mode or a policy, not both")
	case cfg.Mode != "":
		if _, err := lockpolicy.ParseMode(string(cfg.Mode)); err != nil {
			return nil, fmt.Errorf("shadowrun: Config.Mode: %w", err)
		}
		trust, err := cfg.Trust.Validate(nil)
		if err != nil {
			return nil, fmt.Errorf("shadowrun: Config.Trust: %w", err)
		}
		r.trust = trust
		r.proposal = "lock:" + string(cfg.Mode)
		if !trust.Empty() {
			egress, shared := trust.Env()
			r.proposal += "+trust:" + shortHash([]byte(egress+"\n"+shared))
		}
	case cfg.Policy != nil:
		p, err := shadow.CompileJSON(cfg.Policy)
		if err != nil {
			return nil, fmt.Errorf("shadowrun: Config.Policy: %w", err)
		}
		r.static = p
		var compact bytes.Buffer
		if err := json.Compact(&compact, cfg.Policy); err != nil {
			return nil, fmt.Errorf("shadowrun: Config.Policy: %w", err)
		}
		r.proposal = "policy:sha256:" + shortHash(compact.Bytes())
	default:
		return nil, errors.New("shadowrun: nothing to shadow: set Config.Mode or Config.Policy")
	}
	if cfg.MaxPolicies <= 0 {
		cfg.MaxPolicies = DefaultMaxPolicies
	}
	if cfg.MaxLineBytes == 0 {
		cfg.MaxLineBytes = DefaultMaxLineBytes
	}
	cfg.MaxLineBytes = max(cfg.MaxLineBytes, minLineBytes)
	r.cfg = cfg
	r.report = shadow.NewReport(cfg.Report)
	return r, nil
}

// FromEnv returns the Runner that the environment asks for (ConfigFromEnv),
// or nil (shadow mode off, a Runner that does nothing) when it asks for
// none. Every error names the variable that is wrong: fail the start with
// it.
func FromEnv(getenv func(string) string) (*Runner, error) {
	cfg, err := ConfigFromEnv(getenv)
	if err != nil || !cfg.Enabled() {
		return nil, err
	}
	return New(cfg)
}

// shortHash is the first 12 hex digits of b's SHA-256.
func shortHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// Mode returns the proposed lock mode, or shadow.ModePolicy for a static
// policy ("" for a nil Runner).
func (r *Runner) Mode() string {
	switch {
	case r == nil:
		return ""
	case r.static != nil:
		return shadow.ModePolicy
	}
	return string(r.mode)
}

// Proposal names what r evaluates (shadow.LogLine.Proposal).
func (r *Runner) Proposal() string {
	if r == nil {
		return ""
	}
	return r.proposal
}

// Observe evaluates the call rec records against the proposal. inst and
// found are the inventory's answer for the instance whose credentials made
// the call (detect.Inventory.Lookup of the record's instance id), as the
// detector decided the record with them. Call it once per decided
// instance session; records that name no IAM principal are skipped.
//
// With a proposed lock mode, a record whose instance is not found is
// undetermined (its lock cannot be rendered). With a static policy it is
// evaluated all the same, with the instance's VPC and private address
// unknown.
func (r *Runner) Observe(rec *cloudtrail.Record, inst detect.Instance, found bool) {
	if r == nil || rec == nil {
		return
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if !found && r.static == nil {
		r.report.Add(rec, shadow.Verdict{Decision: shadow.Undetermined, Unknown: []shadow.Unknown{{
			Key: "instance", Reason: fmt.Sprintf("%s is not in the inventory: the %s lock it would get cannot be rendered",
				orUnknown(shadow.InstanceID(rec)), r.mode),
		}}})
		return
	}
	var e *entry
	if found {
		e = r.entry(inst)
	} else {
		e = &entry{policy: r.static}
	}
	if e.err != nil {
		r.report.AddError(rec, e.err)
		return
	}
	req, err := shadow.FromRecord(rec, e.shadow, e.opts)
	switch {
	case errors.Is(err, shadow.ErrNoPrincipal):
		r.skipped.Add(1)
		return
	case err != nil:
		r.report.AddError(rec, err)
		return
	}
	r.report.Add(rec, e.policy.Evaluate(&req))
}

func orUnknown(id string) string {
	if id == "" {
		return "(unnamed)"
	}
	return id
}

// entry returns what inst's records are evaluated with, from the cache
// when the inventory still says the same of the instance.
func (r *Runner) entry(inst detect.Instance) *entry {
	r.cacheMu.Lock()
	e, ok := r.cache[inst.ID]
	r.cacheMu.Unlock()
	if ok && sameInstance(e.inst, inst) {
		return e
	}
	e = r.build(inst)
	if inst.ID == "" {
		return e
	}
	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	if _, ok := r.cache[inst.ID]; !ok {
		if len(r.order) >= r.cfg.MaxPolicies {
			delete(r.cache, r.order[0])
			r.order = slices.Delete(r.order, 0, 1)
		}
		r.order = append(r.order, inst.ID)
	}
	r.cache[inst.ID] = e
	return e
}

// sameInstance reports whether the inventory says the same of an instance
// as far as its lock and request context go.
func sameInstance(a, b detect.Instance) bool {
	return a.ID == b.ID && a.VpcID == b.VpcID && a.Region == b.Region && a.PrimaryPrivateIP == b.PrimaryPrivateIP &&
		slices.Equal(a.PublicIPs, b.PublicIPs) && slices.Equal(a.PublicPrefixes, b.PublicPrefixes) &&
		slices.Equal(a.NATIPs, b.NATIPs) && slices.Equal(a.VPCEndpointIDs, b.VPCEndpointIDs)
}

// build renders and compiles inst's lock (Mode) and maps its VPC's
// endpoints to its VPC.
func (r *Runner) build(inst detect.Instance) *entry {
	e := &entry{inst: cloneInstance(inst), policy: r.static}
	e.shadow = shadow.Instance{Region: inst.Region}
	if lockpolicy.IsVPCID(inst.VpcID) {
		e.shadow.VPC = inst.VpcID
		// The instance's own endpoints are in its VPC. Shared endpoints
		// (Trust.SharedVPCEndpoints) live in another VPC whose id nobody
		// told us: they stay unmapped, so aws:SourceVpc is present but
		// unknown there. The locks and the SCP decide such calls by
		// aws:SourceVpce all the same; a policy that needs the shared
		// endpoint's VPC finds them undetermined. Other endpoints are
		// unknown, and so are calls through them.
		for _, id := range inst.VPCEndpointIDs {
			if lockpolicy.IsVPCEndpointID(id) {
				if e.opts.EndpointVPCs == nil {
					e.opts.EndpointVPCs = make(map[string]string, len(inst.VPCEndpointIDs))
				}
				e.opts.EndpointVPCs[id] = inst.VpcID
			}
		}
	}
	if a := inst.PrimaryPrivateIP; a.IsValid() && a.Unmap().Is4() {
		e.shadow.PrivateIPv4 = a.Unmap().String()
	}
	if r.static != nil {
		return e
	}
	doc, err := lockpolicy.Render(r.lock(inst), lockpolicy.Options{})
	if err != nil {
		e.err = fmt.Errorf("shadowrun: the %s lock of instance %s: %w", r.mode, orUnknown(inst.ID), err)
		return e
	}
	if e.policy, err = shadow.Compile(doc); err != nil {
		e.err = fmt.Errorf("shadowrun: the %s lock of instance %s: %w", r.mode, orUnknown(inst.ID), err)
	}
	return e
}

// lock is the lock r's mode would give inst, as the lock construct renders
// it (constructs/lock):
//
//   - instance-public-ip, elastic-ip: the instance's public addresses and
//     public delegated prefixes (every public address EC2 reports, the
//     reading of the locker and the detector);
//   - nat-egress: its VPC's NAT gateway addresses, and its own IPv6
//     addresses and prefixes (IPv6 leaves through an egress-only internet
//     gateway, not the NAT), not its public IPv4;
//   - vpc-endpoints-only: no address;
//
// and in every mode the instance's VPC and the app's trust. Addresses that
// are not public never appear in aws:SourceIp and are left out.
func (r *Runner) lock(inst detect.Instance) lockpolicy.Lock {
	var src []string
	addAddr := func(a netip.Addr, v6only bool) {
		a = a.Unmap()
		if lockpolicy.IsPublic(a) && (!v6only || a.Is6()) {
			src = append(src, a.String())
		}
	}
	addPrefix := func(p netip.Prefix, v6only bool) {
		p = p.Masked()
		if lockpolicy.IsPublicPrefix(p) && (!v6only || p.Addr().Is6()) {
			src = append(src, p.String())
		}
	}
	switch r.mode {
	case lockpolicy.ModeInstancePublicIP, lockpolicy.ModeElasticIP:
		for _, a := range inst.PublicIPs {
			addAddr(a, false)
		}
		for _, p := range inst.PublicPrefixes {
			addPrefix(p, false)
		}
	case lockpolicy.ModeNATEgress:
		for _, a := range inst.NATIPs {
			addAddr(a, false)
		}
		for _, a := range inst.PublicIPs {
			addAddr(a, true)
		}
		for _, p := range inst.PublicPrefixes {
			addPrefix(p, true)
		}
	}
	var vpcs []string
	if lockpolicy.IsVPCID(inst.VpcID) {
		vpcs = []string{inst.VpcID}
	}
	return lockpolicy.Lock{SourceIPs: src, VPCs: vpcs, Trust: r.trust}
}

// cloneInstance copies the fields sameInstance compares, so that the
// cache does not alias the inventory's slices.
func cloneInstance(in detect.Instance) detect.Instance {
	return detect.Instance{ID: in.ID, VpcID: in.VpcID, Region: in.Region, PrimaryPrivateIP: in.PrimaryPrivateIP,
		PublicIPs: slices.Clone(in.PublicIPs), PublicPrefixes: slices.Clone(in.PublicPrefixes),
		NATIPs: slices.Clone(in.NATIPs), VPCEndpointIDs: slices.Clone(in.VPCEndpointIDs)}
}

// cached returns the number of cached entries (for tests).
func (r *Runner) cached() int {
	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	return len(r.cache)
}

// metrics is the runner's EMF record: two metrics and, as plain
// properties (no cost), the other counts.
type metrics struct {
	WouldDeny          int64  `json:"WouldDeny"`
	ShadowUndetermined int64  `json:"ShadowUndetermined"`
	ShadowCalls        int64  `json:"ShadowCalls"`
	ShadowErrors       int64  `json:"ShadowErrors"`
	ShadowSkipped      int64  `json:"ShadowSkipped"`
	ShadowMode         string `json:"ShadowMode"`
}

var emfMetrics = emf.Counts(MetricWouldDeny, MetricUndetermined)

// Flush writes what the records observed since the last Flush would meet,
// as one shadow report log line (shadow.LogLine: {"msg":"shadow report",
// "mode":..., "proposal":..., "report":<shadow.Summary>}, shrunk to
// Config.MaxLineBytes) and one CloudWatch embedded metric format record
// (namespace contract.DetectorMetricsNamespace, metrics WouldDeny and
// ShadowUndetermined, no dimensions), in one Write; then starts a new
// report. Call it once at the end of every invocation, also when nothing
// was observed (the report then says so). requestID is the Lambda request
// id ("" outside Lambda). A nil Runner writes nothing.
func (r *Runner) Flush(w io.Writer, now time.Time, requestID string) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	rep := r.report
	r.report = shadow.NewReport(r.cfg.Report)
	skipped := r.skipped.Swap(0)
	r.mu.Unlock()

	line := shadow.LogLine{Time: now.UTC().Format(time.RFC3339Nano), Level: "INFO", Msg: shadow.ReportMessage,
		RequestID: requestID, Mode: r.Mode(), Proposal: r.proposal}
	head, err := json.Marshal(line)
	if err != nil {
		return fmt.Errorf("shadowrun: %w", err)
	}
	s := rep.Summary().Shrink(r.cfg.MaxLineBytes - len(head))
	line.Report = s
	b, err := json.Marshal(line)
	if err != nil {
		return fmt.Errorf("shadowrun: %w", err)
	}
	b = append(b, '\n')
	m, err := emf.Line(contract.DetectorMetricsNamespace, now, requestID, emfMetrics, metrics{
		WouldDeny: s.WouldDeny, ShadowUndetermined: s.Undetermined, ShadowCalls: s.Calls, ShadowErrors: s.Errors,
		ShadowSkipped: skipped, ShadowMode: r.Mode(),
	})
	if err != nil {
		return fmt.Errorf("shadowrun: %w", err)
	}
	if _, err := w.Write(append(b, m...)); err != nil {
		return fmt.Errorf("shadowrun: write the shadow report: %w", err)
	}
	return nil
}
