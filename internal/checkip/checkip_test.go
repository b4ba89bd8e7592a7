package checkip

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// newServer starts an httptest server that is closed when the test ends.
func newServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// answer returns a handler that replies 200 OK with body.
func answer(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, body)
	}
}

// status returns a handler that replies with code and a short body.
func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, http.StatusText(code), code)
	}
}

// failIfCalled returns a handler that fails the test if any request reaches it.
func failIfCalled(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request to %s: no network call should have been made", r.URL)
		http.Error(w, "unexpected", http.StatusTeapot)
	}
}

// checkErr verifies err against the expected sentinel and message fragments.
func checkErr(t *testing.T, err, want error, msgs ...string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got no error, want %v", want)
	}
	if !errors.Is(err, want) {
		t.Errorf("error %q does not wrap %q", err, want)
	}
	if !strings.HasPrefix(err.Error(), "checkip: ") {
		t.Errorf("error %q lacks the \"checkip: \" prefix", err)
	}
	for _, m := range msgs {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not mention %q", err, m)
		}
	}
}

func TestLookup(t *testing.T) {
	huge := strings.Repeat("203.0.113.7 ", 100000)
	padded := "203.0.113.7" + strings.Repeat(" ", MaxBodyBytes-len("203.0.113.7"))

	tests := []struct {
		name     string
		handler  http.HandlerFunc
		want     string // prefix, when no error is expected
		wantNote []string
		wantErr  error
		wantMsg  []string
	}{
		{name: "one IPv4 address becomes a /32", handler: answer("203.0.113.7\n"), want: "203.0.113.7/32"},
		{name: "surrounding whitespace and newlines are trimmed", handler: answer(" \r\n\t198.51.100.20 \r\n\n"), want: "198.51.100.20/32"},
		{
			name: "two addresses take the last one and the note says why", handler: answer("10.1.2.3, 198.51.100.9\n"),
			want: "198.51.100.9/32", wantNote: []string{"last address", `"198.51.100.9"`, "X-Forwarded-For"},
		},
		{name: "an IPv6 address becomes a /128", handler: answer("2001:db8::1\n"), want: "2001:db8::1/128"},
		{
			name: "an IPv4-mapped IPv6 address is unmapped with a note", handler: answer("::ffff:203.0.113.7\n"),
			want: "203.0.113.7/32", wantNote: []string{"IPv4-mapped"},
		},
		{name: "a body of exactly MaxBodyBytes is accepted", handler: answer(padded), want: "203.0.113.7/32"},
		{
			name: "the request carries the defenders-checkip User-Agent",
			handler: func(w http.ResponseWriter, r *http.Request) {
				if ua := r.Header.Get("User-Agent"); ua != UserAgent {
					http.Error(w, "bad user agent "+ua, http.StatusBadRequest)
					return
				}
				fmt.Fprintln(w, "203.0.113.8")
			},
			want: "203.0.113.8/32",
		},
		{name: "a private address is rejected", handler: answer("10.0.0.1\n"), wantErr: ErrNotPublic, wantMsg: []string{"10.0.0.1", "private"}},
		{name: "a private 192.168 address is rejected", handler: answer("192.168.1.10\n"), wantErr: ErrNotPublic, wantMsg: []string{"private"}},
		{name: "an IPv6 unique local address is rejected", handler: answer("fd12:3456::1\n"), wantErr: ErrNotPublic, wantMsg: []string{"unique local"}},
		{name: "a loopback address is rejected", handler: answer("127.0.0.1\n"), wantErr: ErrNotPublic, wantMsg: []string{"loopback"}},
		{name: "the IPv6 loopback address is rejected", handler: answer("::1\n"), wantErr: ErrNotPublic, wantMsg: []string{"loopback"}},
		{name: "a link-local address is rejected", handler: answer("169.254.169.254\n"), wantErr: ErrNotPublic, wantMsg: []string{"link-local"}},
		{name: "a carrier-grade NAT address is rejected", handler: answer("100.64.0.1\n"), wantErr: ErrNotPublic, wantMsg: []string{"shared address space", "not your public address"}},
		{name: "an unspecified address is rejected", handler: answer("0.0.0.0\n"), wantErr: ErrNotPublic, wantMsg: []string{"unspecified"}},
		{name: "a multicast address is rejected", handler: answer("224.0.0.1\n"), wantErr: ErrNotPublic, wantMsg: []string{"multicast"}},
		{
			name: "a chain whose last address is private is rejected", handler: answer("203.0.113.7, 10.0.0.1\n"),
			wantErr: ErrNotPublic, wantMsg: []string{"10.0.0.1", "private"},
		},
		{
			name: "an HTML page is rejected as a likely captive portal", handler: answer("<!DOCTYPE html><html><body>Please log in</body></html>"),
			wantErr: ErrNotAddress, wantMsg: []string{"HTML page", "captive portal"},
		},
		{name: "plain text that is not an address is rejected", handler: answer("hello world\n"), wantErr: ErrNotAddress, wantMsg: []string{`"hello world"`}},
		{name: "a 500 is rejected with its status", handler: status(http.StatusInternalServerError), wantErr: ErrHTTPStatus, wantMsg: []string{"500 Internal Server Error"}},
		{name: "a 404 is rejected with its status", handler: status(http.StatusNotFound), wantErr: ErrHTTPStatus, wantMsg: []string{"404 Not Found"}},
		{name: "a huge streamed body is rejected", handler: answer(huge), wantErr: ErrBodyTooLarge, wantMsg: []string{"larger than 256 bytes"}},
		{
			name: "a body one byte over the limit is rejected",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.(http.Flusher).Flush() // no Content-Length: the limit must be enforced while reading
				fmt.Fprint(w, padded+" ")
			},
			wantErr: ErrBodyTooLarge, wantMsg: []string{"larger than 256 bytes"},
		},
		{
			name: "a huge body announced by Content-Length is rejected before reading",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Length", "1000000")
				fmt.Fprint(w, huge[:1000000])
			},
			wantErr: ErrBodyTooLarge, wantMsg: []string{"1000000 bytes", "larger than 256 bytes"},
		},
		{name: "an empty body is rejected", handler: answer(""), wantErr: ErrEmptyBody},
		{name: "a whitespace-only body is rejected", handler: answer(" \r\n\t\n"), wantErr: ErrEmptyBody},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, tc.handler)
			got, note, err := Lookup(context.Background(), srv.Client(), srv.URL)
			checkErr(t, err, tc.wantErr, tc.wantMsg...)
			if tc.wantErr != nil {
				if got.IsValid() || note != "" {
					t.Errorf("on error got prefix %v and note %q, want zero values", got, note)
				}
				return
			}
			if want := netip.MustParsePrefix(tc.want); got != want {
				t.Errorf("got %v, want %v", got, want)
			}
			if len(tc.wantNote) == 0 && note != "" {
				t.Errorf("got note %q, want none", note)
			}
			for _, m := range tc.wantNote {
				if !strings.Contains(note, m) {
					t.Errorf("note %q does not mention %q", note, m)
				}
			}
		})
	}
}

func TestLookupRejectsBadURLs(t *testing.T) {
	tests := []struct {
		name string
		url  string
		msg  string
	}{
		{name: "an ftp URL is rejected", url: "ftp://checkip.example/", msg: "scheme ftp"},
		{name: "a file URL is rejected", url: "file:///etc/passwd", msg: "scheme file"},
		{name: "a URL without a scheme is rejected", url: "checkip.amazonaws.com", msg: "scheme (none)"},
		{name: "an empty URL is rejected", url: "", msg: "empty"},
		{name: "an unparsable URL is rejected", url: "http://[::1", msg: "missing ']'"},
		{name: "an http URL without a host is rejected", url: "http:///path", msg: "no host"},
		{name: "credentials in a rejected URL are redacted", url: "ftp://user:secret@checkip.example/", msg: "xxxxx"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Lookup(context.Background(), nil, tc.url)
			checkErr(t, err, ErrBadURL, tc.msg)
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q leaks the password", err)
			}
		})
	}
}

func TestLookupTimesOut(t *testing.T) {
	// block waits until the client gives up (or the test ends), so that the
	// test server can always shut down cleanly.
	block := func(stop <-chan struct{}, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		case <-time.After(10 * time.Second):
		}
	}
	tests := []struct {
		name    string
		client  func(*httptest.Server) *http.Client
		ctx     func(t *testing.T) context.Context
		handler func(stop <-chan struct{}) http.HandlerFunc
	}{
		{
			name: "a server that never answers fails at the client timeout",
			client: func(srv *httptest.Server) *http.Client {
				c := srv.Client()
				c.Timeout = 200 * time.Millisecond
				return c
			},
			ctx: func(*testing.T) context.Context { return context.Background() },
			handler: func(stop <-chan struct{}) http.HandlerFunc {
				return func(_ http.ResponseWriter, r *http.Request) { block(stop, r) }
			},
		},
		{
			name: "a server that stalls mid-body fails at the client timeout",
			client: func(srv *httptest.Server) *http.Client {
				c := srv.Client()
				c.Timeout = 200 * time.Millisecond
				return c
			},
			ctx: func(*testing.T) context.Context { return context.Background() },
			handler: func(stop <-chan struct{}) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					fmt.Fprint(w, "203.0.")
					w.(http.Flusher).Flush()
					block(stop, r)
				}
			},
		},
		{
			name:   "a nil client still honours the context deadline",
			client: func(*httptest.Server) *http.Client { return nil },
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				t.Cleanup(cancel)
				return ctx
			},
			handler: func(stop <-chan struct{}) http.HandlerFunc {
				return func(_ http.ResponseWriter, r *http.Request) { block(stop, r) }
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stop := make(chan struct{})
			srv := newServer(t, tc.handler(stop))
			t.Cleanup(func() { close(stop) }) // runs before srv.Close
			start := time.Now()
			_, _, err := Lookup(tc.ctx(t), tc.client(srv), srv.URL)
			checkErr(t, err, ErrTimeout, "timed out")
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Lookup took %v, want it bounded by the 200ms timeout", d)
			}
		})
	}
}

func TestLookupReportsCancellation(t *testing.T) {
	srv := newServer(t, answer("203.0.113.7\n"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := Lookup(ctx, srv.Client(), srv.URL)
	checkErr(t, err, ErrRequest, "cancelled")
}

func TestLookupReportsAnUnreachableServer(t *testing.T) {
	srv := httptest.NewServer(answer("203.0.113.7\n"))
	url := srv.URL
	srv.Close()
	_, _, err := Lookup(context.Background(), nil, url)
	checkErr(t, err, ErrRequest, url)
}

func TestLookupRedirects(t *testing.T) {
	final := newServer(t, answer("203.0.113.9\n"))
	redirectTo := func(target string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, target, http.StatusFound) }
	}
	hop1 := newServer(t, redirectTo(final.URL))
	hop2 := newServer(t, redirectTo(hop1.URL))
	hop3 := newServer(t, redirectTo(hop2.URL))
	toFTP := newServer(t, redirectTo("ftp://checkip.example/"))
	var loop *httptest.Server
	loop = newServer(t, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, loop.URL, http.StatusFound) })

	tests := []struct {
		name    string
		url     string
		want    string
		wantErr error
		wantMsg []string
	}{
		{name: "one redirect is followed", url: hop1.URL, want: "203.0.113.9/32"},
		{name: "two redirects are followed", url: hop2.URL, want: "203.0.113.9/32"},
		{name: "three redirects are refused", url: hop3.URL, wantErr: ErrRedirect, wantMsg: []string{"more than 2 redirects"}},
		{name: "a redirect loop is refused", url: loop.URL, wantErr: ErrRedirect, wantMsg: []string{"more than 2 redirects"}},
		{name: "a redirect to ftp is refused", url: toFTP.URL, wantErr: ErrRedirect, wantMsg: []string{"ftp://checkip.example/", "not http or https"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := Lookup(context.Background(), nil, tc.url)
			checkErr(t, err, tc.wantErr, tc.wantMsg...)
			if tc.wantErr == nil && got != netip.MustParsePrefix(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("a redirect from https down to http is refused", func(t *testing.T) {
		tlsSrv := httptest.NewTLSServer(redirectTo(final.URL))
		t.Cleanup(tlsSrv.Close)
		_, _, err := Lookup(context.Background(), tlsSrv.Client(), tlsSrv.URL)
		checkErr(t, err, ErrRedirect, "from https down to plain http")
	})

	t.Run("the caller's client and its redirect policy are left untouched", func(t *testing.T) {
		called := 0
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { called++; return nil }}
		before := fmt.Sprintf("%p", client.CheckRedirect)
		if _, _, err := Lookup(context.Background(), client, hop1.URL); err != nil {
			t.Fatal(err)
		}
		if called != 1 {
			t.Errorf("caller's CheckRedirect ran %d times, want 1", called)
		}
		if after := fmt.Sprintf("%p", client.CheckRedirect); after != before || client.Timeout != 0 {
			t.Errorf("Lookup modified the caller's client")
		}
	})
}

func TestParseBody(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    string
		wantErr error
		wantMsg []string
	}{
		{name: "the documentation range 192.0.2.0/24 is accepted", body: "192.0.2.1", want: "192.0.2.1/32"},
		{name: "the documentation range 198.51.100.0/24 is accepted", body: "198.51.100.1", want: "198.51.100.1/32"},
		{name: "the documentation range 203.0.113.0/24 is accepted", body: "203.0.113.1", want: "203.0.113.1/32"},
		{name: "the documentation range 2001:db8::/32 is accepted", body: "2001:db8::2\n", want: "2001:db8::2/128"},
		{name: "a long proxy chain uses the last entry", body: "unknown, 10.0.0.1, 2001:db8::7", want: "2001:db8::7/128"},
		{name: "the broadcast address is rejected", body: "255.255.255.255", wantErr: ErrNotPublic, wantMsg: []string{"reserved"}},
		{name: "the this-network range is rejected", body: "0.1.2.3", wantErr: ErrNotPublic, wantMsg: []string{"this network"}},
		{name: "an IPv6 link-local address is rejected", body: "fe80::1", wantErr: ErrNotPublic, wantMsg: []string{"link-local"}},
		{name: "an IPv6 multicast address is rejected", body: "ff02::1", wantErr: ErrNotPublic, wantMsg: []string{"multicast"}},
		{name: "an IPv6 address with a zone is rejected", body: "2001:db8::1%eth0", wantErr: ErrNotAddress, wantMsg: []string{"zone"}},
		{name: "a trailing comma is rejected", body: "203.0.113.7,", wantErr: ErrNotAddress, wantMsg: []string{"entry 2", "empty"}},
		{name: "a leading comma is rejected", body: ", 203.0.113.7", wantErr: ErrNotAddress, wantMsg: []string{"entry 1", "empty"}},
		{name: "a chain ending in garbage is rejected", body: "203.0.113.7, nope", wantErr: ErrNotAddress, wantMsg: []string{"last entry", `"nope"`}},
		{name: "two space-separated addresses are rejected", body: "203.0.113.7 203.0.113.8", wantErr: ErrNotAddress},
		{name: "an address with a port is rejected", body: "203.0.113.7:22", wantErr: ErrNotAddress},
		{name: "a CIDR is rejected", body: "203.0.113.7/32", wantErr: ErrNotAddress},
		{name: "binary garbage is rejected and quoted safely", body: "\x00\xff\x1b[31m", wantErr: ErrNotAddress, wantMsg: []string{`\x00`}},
		{name: "a very long non-address is truncated in the error", body: strings.Repeat("a", 200), wantErr: ErrNotAddress, wantMsg: []string{"…"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := ParseBody([]byte(tc.body))
			checkErr(t, err, tc.wantErr, tc.wantMsg...)
			if tc.wantErr == nil && got != netip.MustParsePrefix(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if tc.wantErr != nil && len(err.Error()) > 300 {
				t.Errorf("error is %d bytes long, want it short: %q", len(err.Error()), err)
			}
		})
	}
}

func TestParseCIDRs(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantMsg []string // non-empty means an error is expected
	}{
		{name: "a single IPv4 CIDR is accepted", in: "203.0.113.0/24", want: []string{"203.0.113.0/24"}},
		{name: "a bare IPv4 address becomes a /32", in: "203.0.113.7", want: []string{"203.0.113.7/32"}},
		{name: "a bare IPv6 address becomes a /128", in: "2001:db8::7", want: []string{"2001:db8::7/128"}},
		{name: "an IPv6 CIDR is accepted", in: "2001:db8:1::/48", want: []string{"2001:db8:1::/48"}},
		{
			name: "several items with whitespace keep their order", in: " 203.0.113.7 ,\t10.0.0.0/8,2001:db8::/32 ",
			want: []string{"203.0.113.7/32", "10.0.0.0/8", "2001:db8::/32"},
		},
		{name: "private ranges are allowed for VPN access", in: "192.168.0.0/16,172.16.0.0/12", want: []string{"192.168.0.0/16", "172.16.0.0/12"}},
		{name: "none means no SSH ingress", in: "none", want: []string{}},
		{name: "none is case-insensitive and may be padded", in: "  NONE ", want: []string{}},
		{name: "an empty value is rejected", in: "", wantMsg: []string{"empty", "none"}},
		{name: "a whitespace-only value is rejected", in: "  \t", wantMsg: []string{"empty"}},
		{name: "an empty item is rejected", in: "203.0.113.7,,10.0.0.0/8", wantMsg: []string{"item 2 is empty"}},
		{name: "a trailing comma is rejected", in: "203.0.113.7,", wantMsg: []string{"item 2 is empty"}},
		{name: "invalid syntax is rejected naming the item", in: "203.0.113.7,bogus", wantMsg: []string{"item 2", `"bogus"`, "not a valid IP address"}},
		{name: "an out-of-range prefix length is rejected", in: "203.0.113.0/33", wantMsg: []string{`"203.0.113.0/33"`, "not a valid CIDR"}},
		{name: "an out-of-range octet is rejected", in: "203.0.113.256/32", wantMsg: []string{"not a valid CIDR"}},
		{name: "host bits set are rejected with the network named", in: "10.0.0.1/24", wantMsg: []string{`"10.0.0.1/24"`, "host bits", "10.0.0.0/24", "10.0.0.1/32"}},
		{name: "IPv6 host bits set are rejected", in: "2001:db8::1/64", wantMsg: []string{"host bits", "2001:db8::/64"}},
		{name: "0.0.0.0/0 is always rejected", in: "0.0.0.0/0", wantMsg: []string{"prefix length 0", "whole internet"}},
		{name: "::/0 is always rejected", in: "::/0", wantMsg: []string{"prefix length 0", "whole internet"}},
		{name: "a /0 hidden among valid items is rejected", in: "203.0.113.7, 0.0.0.0/0", wantMsg: []string{"item 2", "prefix length 0"}},
		{name: "any prefix of length 0 is rejected", in: "10.0.0.0/0", wantMsg: []string{"prefix length 0"}},
		{name: "the bare unspecified address is rejected", in: "0.0.0.0", wantMsg: []string{"unspecified"}},
		{name: "an IPv4-mapped IPv6 address is rejected", in: "::ffff:203.0.113.7", wantMsg: []string{"IPv4-mapped", "203.0.113.7"}},
		{name: "an IPv4-mapped IPv6 prefix is rejected", in: "::ffff:203.0.113.0/120", wantMsg: []string{"IPv4-mapped", "203.0.113.0/24"}},
		{name: "an IPv6 zone is rejected", in: "fe80::1%eth0", wantMsg: []string{"zone"}},
		{name: "an IPv6 zone in a CIDR is rejected", in: "fe80::1%eth0/128", wantMsg: []string{"zone"}},
		{name: "an exact duplicate is rejected", in: "10.0.0.0/8,10.0.0.0/8", wantMsg: []string{"item 2", "duplicates item 1"}},
		{name: "a bare address duplicating its /32 is rejected", in: "203.0.113.7, 203.0.113.7/32", wantMsg: []string{"duplicates item 1"}},
		{name: "none mixed with CIDRs is rejected", in: "none,203.0.113.7", wantMsg: []string{"item 1", "none", "cannot be combined"}},
		{name: "CIDRs followed by none are rejected", in: "203.0.113.7, None", wantMsg: []string{"item 2", "cannot be combined"}},
		{name: "a semicolon separator is rejected", in: "203.0.113.7;10.0.0.0/8", wantMsg: []string{"not a valid"}},
		{name: "a loopback address is rejected", in: "127.0.0.1", wantMsg: []string{"item 1", "loopback", "127.0.0.0/8"}},
		{name: "the IPv6 loopback is rejected", in: "::1", wantMsg: []string{"loopback"}},
		{name: "a loopback range is rejected", in: "127.0.0.0/8", wantMsg: []string{"loopback"}},
		{name: "an EC2 metadata-style link-local address is rejected", in: "169.254.169.254", wantMsg: []string{"link-local"}},
		{name: "an IPv6 link-local address is rejected", in: "fe80::1", wantMsg: []string{"link-local"}},
		{name: "a multicast address is rejected", in: "203.0.113.7,224.0.0.251", wantMsg: []string{"item 2", "multicast"}},
		{name: "an IPv6 multicast range is rejected", in: "ff02::/16", wantMsg: []string{"multicast"}},
		{name: "a reserved class E address is rejected", in: "255.255.255.255", wantMsg: []string{"reserved"}},
		{name: "a wide prefix that merely contains loopback is judged elsewhere", in: "64.0.0.0/2", want: []string{"64.0.0.0/2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCIDRs(tc.in)
			if len(tc.wantMsg) > 0 {
				checkErr(t, err, ErrInvalidCIDRs, append([]string{ContextKey}, tc.wantMsg...)...)
				if got != nil {
					t.Errorf("on error got %v, want nil", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got == nil {
				t.Fatal("got a nil slice, want non-nil")
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i, w := range tc.want {
				if got[i] != netip.MustParsePrefix(w) {
					t.Errorf("item %d: got %v, want %v", i, got[i], w)
				}
			}
		})
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name        string
		override    string
		overrideSet bool
		handler     func(t *testing.T) http.HandlerFunc // nil: an unreachable server
		want        []string
		wantSource  string
		wantWarning []string
		wantNote    []string
		wantErr     []string // non-empty means an error is expected
	}{
		{
			name: "an override wins without any network call", override: "203.0.113.0/24, 2001:db8::/48", overrideSet: true,
			handler: failIfCalled, want: []string{"203.0.113.0/24", "2001:db8::/48"}, wantSource: SourceContext,
		},
		{
			name: "an override of none means no SSH ingress", override: "none", overrideSet: true,
			handler: failIfCalled, want: []string{}, wantSource: SourceContext, wantNote: []string{"none"},
		},
		{
			name: "an invalid override is an error, not a warning", override: "not-a-cidr", overrideSet: true,
			handler: failIfCalled, wantErr: []string{ContextKey, `"not-a-cidr"`},
		},
		{
			name: "an override set to the empty string is an error", override: "", overrideSet: true,
			handler: failIfCalled, wantErr: []string{ContextKey, "empty"},
		},
		{
			name: "an override of 0.0.0.0/0 is rejected", override: "0.0.0.0/0", overrideSet: true,
			handler: failIfCalled, wantErr: []string{"prefix length 0"},
		},
		{
			name: "an override of ::/0 is rejected", override: "::/0", overrideSet: true,
			handler: failIfCalled, wantErr: []string{"prefix length 0"},
		},
		{
			name: "an unset override falls back to checkip", override: "0.0.0.0/0",
			handler: func(*testing.T) http.HandlerFunc { return answer("203.0.113.7\n") },
			want:    []string{"203.0.113.7/32"}, wantSource: SourceCheckip,
		},
		{
			name:    "a checkip proxy chain is resolved with a note",
			handler: func(*testing.T) http.HandlerFunc { return answer("10.0.0.1, 203.0.113.7\n") },
			want:    []string{"203.0.113.7/32"}, wantSource: SourceCheckip, wantNote: []string{"X-Forwarded-For"},
		},
		{
			name:    "a failing lookup fails closed with a warning",
			handler: func(*testing.T) http.HandlerFunc { return status(http.StatusServiceUnavailable) },
			want:    []string{}, wantSource: SourceNone, wantWarning: []string{"503", "NO ingress", ContextKey, "-c " + ContextKey + "="},
		},
		{
			name:    "a private checkip answer fails closed with a warning",
			handler: func(*testing.T) http.HandlerFunc { return answer("192.168.1.1\n") },
			want:    []string{}, wantSource: SourceNone, wantWarning: []string{"private", ContextKey},
		},
		{
			name: "an unreachable checkip service fails closed so offline synth works",
			want: []string{}, wantSource: SourceNone, wantWarning: []string{"request failed", ContextKey},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var url string
			if tc.handler != nil {
				url = newServer(t, tc.handler(t)).URL
			} else {
				srv := httptest.NewServer(failIfCalled(t))
				url = srv.URL
				srv.Close()
			}
			got, err := Resolve(context.Background(), nil, tc.override, tc.overrideSet, url)
			if len(tc.wantErr) > 0 {
				checkErr(t, err, ErrInvalidCIDRs, tc.wantErr...)
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got.Source != tc.wantSource {
				t.Errorf("got source %q, want %q", got.Source, tc.wantSource)
			}
			if got.CIDRs == nil || len(got.CIDRs) != len(tc.want) {
				t.Fatalf("got CIDRs %#v, want %v", got.CIDRs, tc.want)
			}
			for i, w := range tc.want {
				if got.CIDRs[i] != netip.MustParsePrefix(w) {
					t.Errorf("CIDR %d: got %v, want %v", i, got.CIDRs[i], w)
				}
			}
			if len(tc.wantWarning) == 0 && got.Warning != "" {
				t.Errorf("got warning %q, want none", got.Warning)
			}
			for _, m := range tc.wantWarning {
				if !strings.Contains(got.Warning, m) {
					t.Errorf("warning %q does not mention %q", got.Warning, m)
				}
			}
			if len(tc.wantNote) == 0 && got.Note != "" {
				t.Errorf("got note %q, want none", got.Note)
			}
			for _, m := range tc.wantNote {
				if !strings.Contains(got.Note, m) {
					t.Errorf("note %q does not mention %q", got.Note, m)
				}
			}
		})
	}
}

func TestPrivateSource(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"10.1.2.3/32", true}, {"172.16.0.0/12", true}, {"192.168.1.0/24", true},
		{"100.64.0.1/32", true}, {"fd00::1/128", true},
		{"203.0.113.7/32", false}, {"2001:db8::/64", false}, {"8.0.0.0/7", false},
		{"10.0.0.0/7", false}, // wider than the private range: not wholly private
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := PrivateSource(netip.MustParsePrefix(tc.in)); got != tc.want {
				t.Errorf("PrivateSource(%s) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}
