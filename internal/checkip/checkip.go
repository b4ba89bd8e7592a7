// Package checkip finds the source CIDRs that may reach the Defenders SSH
// security group.
//
// By default the SSH port is opened only to this workstation's own public
// address, looked up at synth time from the AWS checkip service
// (https://checkip.amazonaws.com). The context key defenders:sshCidr
// overrides the lookup. Every default fails closed: when the lookup fails the
// result is "no SSH ingress" plus a warning, never a wide-open rule.
//
// All errors returned by this package start with "checkip:" and can be
// classified with errors.Is against the Err* sentinels below.
package checkip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"

	"github.com/defenders-cdk/defenders/internal/contract"
)

// DefaultURL is the AWS checkip service. It answers a GET with the caller's
// public IP address as plain text, followed by a newline.
const DefaultURL = "https://checkip.amazonaws.com"

// DefaultTimeout bounds a whole lookup (connect, TLS, headers and body) when
// the caller passes a nil client or a client without its own Timeout.
const DefaultTimeout = 4 * time.Second

// MaxBodyBytes is the largest response body Lookup accepts. The longest
// textual IPv6 address is 45 bytes, so 256 bytes leaves room for a short
// "a, b, c" chain from X-Forwarded-For style proxies; anything larger is not
// a checkip answer and is rejected without being read in full.
const MaxBodyBytes = 256

// MaxRedirects is the number of HTTP redirects Lookup follows before giving
// up. Redirects must stay on http or https and may never downgrade from
// https to plain http.
const MaxRedirects = 2

// UserAgent is the User-Agent header Lookup sends.
const UserAgent = "defenders-checkip"

// ContextKey is the CDK context key that overrides the lookup. Its value is
// parsed by ParseCIDRs.
const ContextKey = contract.KeySSHCIDR

// ContextKeyURL is the CDK context key that names the lookup endpoint (DefaultURL when unset).
const ContextKeyURL = contract.KeyCheckipURL

// Values of Resolution.Source.
const (
	// SourceContext means the CIDRs came from the defenders:sshCidr context key.
	SourceContext = "context"
	// SourceCheckip means the CIDR came from a successful checkip lookup.
	SourceCheckip = "checkip"
	// SourceNone means the lookup failed and Resolve failed closed.
	SourceNone = "none (fail closed)"
)

// Sentinel errors. Errors returned by this package wrap exactly one of them
// (plus, where relevant, the underlying cause), so callers can use errors.Is.
var (
	// ErrBadURL reports a checkip URL that cannot be parsed, has no host, or
	// whose scheme is not http or https.
	ErrBadURL = errors.New("unsupported checkip URL")
	// ErrRequest reports a request that failed for a reason other than a
	// timeout, e.g. connection refused, a DNS failure or a cancelled context.
	ErrRequest = errors.New("request failed")
	// ErrTimeout reports a request that did not complete within its time limit.
	ErrTimeout = errors.New("timed out")
	// ErrRedirect reports a redirect that Lookup refused to follow.
	ErrRedirect = errors.New("refused redirect")
	// ErrHTTPStatus reports a response whose status is not 200 OK.
	ErrHTTPStatus = errors.New("unexpected HTTP status")
	// ErrBodyTooLarge reports a response body larger than MaxBodyBytes.
	ErrBodyTooLarge = errors.New("response too large")
	// ErrEmptyBody reports a response body that is empty or only whitespace.
	ErrEmptyBody = errors.New("empty response body")
	// ErrNotAddress reports a response body that is not an IP address, such
	// as an HTML captive-portal page.
	ErrNotAddress = errors.New("response is not an IP address")
	// ErrNotPublic reports an address that cannot be this workstation's
	// public internet address (private, loopback, CGNAT, ...).
	ErrNotPublic = errors.New("not a public address")
	// ErrInvalidCIDRs reports an unusable defenders:sshCidr value.
	ErrInvalidCIDRs = errors.New("invalid " + ContextKey)
)

// Lookup asks rawURL for the caller's public address and returns it as a
// single-address prefix (IPv4 → /32, IPv6 → /128).
//
// rawURL must be an absolute http or https URL; anything else is an
// ErrBadURL error (there is no implicit default: pass DefaultURL). client may
// be nil, in which case a client with DefaultTimeout is used; a non-nil client
// is copied, never modified, and if it has no Timeout the request is bounded
// by DefaultTimeout through the context. ctx is honoured throughout.
// Redirects are limited as described at MaxRedirects.
//
// The returned note is empty unless Lookup had to interpret the answer (see
// ParseBody), in which case it says what it did and why. The body is
// validated by ParseBody; see there for which addresses are rejected.
func Lookup(ctx context.Context, client *http.Client, rawURL string) (netip.Prefix, string, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	u, err := parseURL(rawURL)
	if err != nil {
		return netip.Prefix{}, "", err
	}
	where := u.Redacted()

	c := prepareClient(client)
	limit := c.Timeout
	if limit <= 0 {
		limit = DefaultTimeout
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	limitDesc := limit.String()
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < limit {
			limitDesc = fmt.Sprintf("%s (the caller's deadline)", left.Round(time.Millisecond))
		}
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return netip.Prefix{}, "", fmt.Errorf("checkip: %w: %s: %w", ErrBadURL, where, err)
	}
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Accept", "text/plain")

	resp, err := c.Do(req)
	if err != nil {
		return netip.Prefix{}, "", requestError(ctx, "request to "+where, limitDesc, err)
	}
	defer resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		return netip.Prefix{}, "", fmt.Errorf("checkip: %w: %s answered %q, want \"200 OK\"", ErrHTTPStatus, where, resp.Status)
	}
	if resp.ContentLength > MaxBodyBytes {
		return netip.Prefix{}, "", fmt.Errorf("checkip: %w: %s sent a body of %d bytes, larger than %d bytes", ErrBodyTooLarge, where, resp.ContentLength, MaxBodyBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes+1))
	if err != nil {
		return netip.Prefix{}, "", requestError(ctx, "reading the response from "+where, limitDesc, err)
	}
	if len(body) > MaxBodyBytes {
		return netip.Prefix{}, "", fmt.Errorf("checkip: %w: %s sent a body larger than %d bytes", ErrBodyTooLarge, where, MaxBodyBytes)
	}

	p, note, err := parseBody(body)
	if err != nil {
		return netip.Prefix{}, "", fmt.Errorf("checkip: %s: %w", where, err)
	}
	return p, note, nil
}

// parseURL accepts only absolute http and https URLs with a host.
func parseURL(rawURL string) (*url.URL, error) {
	if strings.TrimSpace(rawURL) == "" {
		return nil, fmt.Errorf("checkip: %w: the URL is empty (use %s)", ErrBadURL, DefaultURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("checkip: %w: %w", ErrBadURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		scheme := u.Scheme
		if scheme == "" {
			scheme = "(none)"
		}
		return nil, fmt.Errorf("checkip: %w: %q has scheme %s; only http and https are allowed", ErrBadURL, u.Redacted(), scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("checkip: %w: %q has no host", ErrBadURL, u.Redacted())
	}
	return u, nil
}

// prepareClient returns a copy of client (or a default client) whose
// redirect policy enforces checkRedirect before any policy of its own.
func prepareClient(client *http.Client) *http.Client {
	var c http.Client
	if client == nil {
		c.Timeout = DefaultTimeout
	} else {
		c = *client
	}
	prev := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := checkRedirect(req, via); err != nil {
			return err
		}
		if prev != nil {
			return prev(req, via)
		}
		return nil
	}
	return &c
}

// checkRedirect allows at most MaxRedirects redirects, only to http or
// https, and never from https down to plain http.
func checkRedirect(req *http.Request, via []*http.Request) error {
	to := req.URL.Redacted()
	if len(via) > MaxRedirects {
		return fmt.Errorf("%w: more than %d redirects (the last one to %s)", ErrRedirect, MaxRedirects, to)
	}
	if s := req.URL.Scheme; s != "http" && s != "https" {
		return fmt.Errorf("%w: to %s, which is not http or https", ErrRedirect, to)
	}
	if len(via) > 0 && via[len(via)-1].URL.Scheme == "https" && req.URL.Scheme == "http" {
		return fmt.Errorf("%w: from https down to plain http (%s)", ErrRedirect, to)
	}
	return nil
}

// requestError classifies a failure of the HTTP exchange.
func requestError(ctx context.Context, what, limit string, err error) error {
	// Drop the *url.Error wrapper: its message repeats the method and URL,
	// which the messages below already name.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	switch {
	case errors.Is(err, ErrRedirect):
		return fmt.Errorf("checkip: %s: %w", what, err)
	case errors.Is(ctx.Err(), context.Canceled):
		return fmt.Errorf("checkip: %w: %s was cancelled: %w", ErrRequest, what, err)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("checkip: %w: %s did not finish within %s: %w", ErrTimeout, what, limit, err)
	default:
		return fmt.Errorf("checkip: %w: %s: %w", ErrRequest, what, err)
	}
}

// ParseBody parses a checkip response body. It is exported for testing and
// fuzzing; Lookup applies it to every response.
//
// Surrounding whitespace and newlines are trimmed. The body must then be one
// IP address, or a comma-separated chain such as "a, b": behind proxies the
// service may echo an X-Forwarded-For chain, whose earlier entries were
// supplied by the client side and cannot be trusted, so ParseBody takes the
// LAST entry (the address the service itself saw) and says so in the note.
// An IPv4-mapped IPv6 address is unmapped to plain IPv4, also with a note.
// Addresses with an IPv6 zone are rejected.
//
// The chosen address must be public as lockpolicy.NonPublicReason defines
// it, the one definition the lock uses too; otherwise ErrNotPublic names
// the reason (a private, shared-space, loopback, reserved... address). The
// documentation ranges 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and
// 2001:db8::/32 are deliberately ACCEPTED, because tests and documentation
// use them.
//
// On success the prefix covers exactly one address: /32 for IPv4, /128 for
// IPv6.
func ParseBody(body []byte) (netip.Prefix, string, error) {
	p, note, err := parseBody(body)
	if err != nil {
		return netip.Prefix{}, "", fmt.Errorf("checkip: %w", err)
	}
	return p, note, nil
}

func parseBody(body []byte) (netip.Prefix, string, error) {
	s := strings.TrimSpace(string(body))
	if s == "" {
		return netip.Prefix{}, "", fmt.Errorf("%w (expected one IP address)", ErrEmptyBody)
	}
	if s[0] == '<' {
		return netip.Prefix{}, "", fmt.Errorf("%w: the body looks like an HTML page (a captive portal or proxy login page?): %s", ErrNotAddress, snippet(s))
	}

	items := strings.Split(s, ",")
	for i, item := range items {
		if strings.TrimSpace(item) == "" {
			return netip.Prefix{}, "", fmt.Errorf("%w: entry %d of %s is empty", ErrNotAddress, i+1, snippet(s))
		}
	}
	last := strings.TrimSpace(items[len(items)-1])
	var notes []string
	if len(items) > 1 {
		notes = append(notes, fmt.Sprintf(
			"the service answered %s; using the last address, %s, because it is the one the service itself saw (the earlier entries come from X-Forwarded-For style proxies and cannot be trusted)",
			snippet(s), snippet(last)))
	}

	addr, err := netip.ParseAddr(last)
	if err != nil {
		if len(items) > 1 {
			return netip.Prefix{}, "", fmt.Errorf("%w: the last entry of %s is %s", ErrNotAddress, snippet(s), snippet(last))
		}
		return netip.Prefix{}, "", fmt.Errorf("%w: got %s", ErrNotAddress, snippet(s))
	}
	if addr.Zone() != "" {
		return netip.Prefix{}, "", fmt.Errorf("%w: %s carries an IPv6 zone, which only makes sense on a local link", ErrNotAddress, snippet(last))
	}
	if addr.Is4In6() {
		notes = append(notes, fmt.Sprintf("the IPv4-mapped IPv6 address %s was treated as the IPv4 address %s", addr, addr.Unmap()))
		addr = addr.Unmap()
	}
	if reason := lockpolicy.NonPublicReason(addr); reason != "" {
		return netip.Prefix{}, "", fmt.Errorf("%w: %s is %s", ErrNotPublic, addr, reason)
	}
	return netip.PrefixFrom(addr, addr.BitLen()), strings.Join(notes, "; "), nil
}

// snippet quotes s for an error message, truncated to a readable length.
func snippet(s string) string {
	const limit = 64
	if len(s) > limit {
		return fmt.Sprintf("%q…", s[:limit])
	}
	return fmt.Sprintf("%q", s)
}

// ParseCIDRs parses the value of the defenders:sshCidr context key.
//
// The value is either the word "none" (any case; it means no SSH ingress at
// all and yields an empty, non-nil slice) or one or more CIDRs or bare
// addresses separated by commas, with optional whitespace around each item.
// Bare addresses become /32 (IPv4) or /128 (IPv6). Private ranges are
// allowed, since SSH may legitimately arrive over a VPN or Direct Connect
// (PrivateSource tells them apart; the battleground warns about them).
// Loopback, link-local, multicast and reserved ranges are refused: no
// workstation's connection arrives from there.
//
// It returns an ErrInvalidCIDRs error naming the offending item for: an empty
// value, empty items, invalid syntax, a CIDR with host bits set (the error
// says what the network would be), any prefix of length 0 (0.0.0.0/0 and ::/0
// are ALWAYS refused), the unspecified address as a bare address,
// IPv4-mapped IPv6, IPv6 zones, duplicates (10.0.0.1 and 10.0.0.1/32 count as
// the same), and "none" mixed with CIDRs.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("checkip: %w: the value is empty; give one or more CIDRs separated by commas (e.g. 203.0.113.7/32), or \"none\" for no SSH ingress", ErrInvalidCIDRs)
	}
	if strings.EqualFold(strings.TrimSpace(s), "none") {
		return []netip.Prefix{}, nil
	}

	items := strings.Split(s, ",")
	out := make([]netip.Prefix, 0, len(items))
	seen := make(map[netip.Prefix]int, len(items))
	for i, raw := range items {
		item := strings.TrimSpace(raw)
		n := i + 1
		p, err := parseCIDRItem(item)
		if err != nil {
			if item == "" {
				return nil, fmt.Errorf("checkip: %w: item %d is empty (stray comma?)", ErrInvalidCIDRs, n)
			}
			return nil, fmt.Errorf("checkip: %w: item %d (%s) %w", ErrInvalidCIDRs, n, snippet(item), err)
		}
		if first, dup := seen[p]; dup {
			return nil, fmt.Errorf("checkip: %w: item %d (%s) duplicates item %d (%s)", ErrInvalidCIDRs, n, snippet(item), first, p)
		}
		seen[p] = n
		out = append(out, p)
	}
	return out, nil
}

// itemError is the reason one defenders:sshCidr item is invalid; ParseCIDRs
// prefixes it with the item's position and text.
type itemError string

func (e itemError) Error() string { return string(e) }

func parseCIDRItem(item string) (netip.Prefix, error) {
	switch {
	case item == "":
		return netip.Prefix{}, itemError("is empty")
	case strings.EqualFold(item, "none"):
		return netip.Prefix{}, itemError(`is "none", which cannot be combined with CIDRs; use "none" on its own for no SSH ingress`)
	case strings.Contains(item, "%"):
		return netip.Prefix{}, itemError("has an IPv6 zone (%...), which security groups cannot use")
	}

	if !strings.Contains(item, "/") {
		addr, err := netip.ParseAddr(item)
		if err != nil {
			return netip.Prefix{}, itemError("is not a valid IP address or CIDR: " + err.Error())
		}
		if addr.Is4In6() {
			return netip.Prefix{}, itemError(fmt.Sprintf("is an IPv4-mapped IPv6 address; write it as %s", addr.Unmap()))
		}
		if addr.IsUnspecified() {
			return netip.Prefix{}, itemError("is the unspecified address, which is never an SSH source (to allow nobody, use \"none\")")
		}
		p := netip.PrefixFrom(addr, addr.BitLen())
		if why := neverASource(p); why != "" {
			return netip.Prefix{}, itemError(why)
		}
		return p, nil
	}

	p, err := netip.ParsePrefix(item)
	if err != nil {
		return netip.Prefix{}, itemError("is not a valid CIDR: " + err.Error())
	}
	if p.Addr().Is4In6() {
		hint := ""
		if p.Bits() >= 96 {
			hint = fmt.Sprintf("; write it as %s", netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96))
		}
		return netip.Prefix{}, itemError("is an IPv4-mapped IPv6 prefix" + hint)
	}
	if p.Bits() == 0 {
		return netip.Prefix{}, itemError("has prefix length 0, which would open SSH to the whole internet; this is never allowed")
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, itemError(fmt.Sprintf("has host bits set; the network would be %s (or use %s for the single address)",
			m, netip.PrefixFrom(p.Addr(), p.Addr().BitLen())))
	}
	if why := neverASource(p); why != "" {
		return netip.Prefix{}, itemError(why)
	}
	return p, nil
}

// impossibleSources are ranges whose addresses never reach a security group as the source of a
// connection from a workstation: a value inside one of them is a typo or a copy of the wrong
// address, and SSH would silently stay closed.
var impossibleSources = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\" (0.0.0.0/8)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (240.0.0.0/4)"},
}

// neverASource says why p lies wholly inside a range that can never be an SSH source, or "".
func neverASource(p netip.Prefix) string {
	for _, r := range impossibleSources {
		if p.Bits() >= r.prefix.Bits() && r.prefix.Contains(p.Addr()) {
			return fmt.Sprintf("is %s (%s): a workstation's connection never arrives from there, so SSH would stay closed; use the public address that checkip.amazonaws.com shows", r.what, r.prefix)
		}
	}
	return ""
}

// privateRanges are sources that reach a VPC only over a VPN, Direct Connect, a peering or a
// transit gateway, never from the internet: allowed, but worth a warning.
var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("fc00::/7"),
}

// PrivateSource reports whether p lies inside a private (RFC 1918, RFC 6598 shared or IPv6
// unique local) range: such a source reaches an instance only over private connectivity.
func PrivateSource(p netip.Prefix) bool {
	for _, r := range privateRanges {
		if p.Bits() >= r.Bits() && r.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// Resolution is the outcome of Resolve.
type Resolution struct {
	// CIDRs are the SSH sources; empty (never nil) means no SSH ingress.
	CIDRs []netip.Prefix
	// Source is SourceContext, SourceCheckip or SourceNone.
	Source string
	// Warning is non-empty when the checkip lookup failed and Resolve failed
	// closed; it says why and how to pin defenders:sshCidr.
	Warning string
	// Note is informational, e.g. how a checkip answer was interpreted.
	Note string
}

// Resolve decides the SSH source CIDRs.
//
// If overrideSet is true, override (the value of defenders:sshCidr) wins and
// no network request is made; it is parsed with ParseCIDRs and an invalid
// value is an ERROR, never a warning. Otherwise Resolve calls Lookup with
// ctx, client and rawURL. If the lookup fails, Resolve fails closed: it returns
// no CIDRs, Source SourceNone and a Warning explaining the failure and how to
// pin defenders:sshCidr, with a nil error, so that an offline synth still
// works.
func Resolve(ctx context.Context, client *http.Client, override string, overrideSet bool, rawURL string) (Resolution, error) {
	if overrideSet {
		cidrs, err := ParseCIDRs(override)
		if err != nil {
			return Resolution{}, err
		}
		r := Resolution{CIDRs: cidrs, Source: SourceContext}
		if len(cidrs) == 0 {
			r.Note = fmt.Sprintf("%s is \"none\": no SSH ingress", ContextKey)
		}
		return r, nil
	}

	p, note, err := Lookup(ctx, client, rawURL)
	if err != nil {
		return Resolution{
			CIDRs:  []netip.Prefix{},
			Source: SourceNone,
			Warning: fmt.Sprintf(
				"could not look up this workstation's public address (%v); failing closed: the SSH security group gets NO ingress rule. "+
					"To allow SSH, pin the source with `cdk synth -c %s=<your-public-ip>/32` (or set %q in the context of cdk.json); "+
					"set it to \"none\" to silence this warning",
				err, ContextKey, ContextKey),
		}, nil
	}
	return Resolution{CIDRs: []netip.Prefix{p}, Source: SourceCheckip, Note: note}, nil
}
