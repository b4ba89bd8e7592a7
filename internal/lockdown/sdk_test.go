package lockdown

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// TestLockOverTheRealSTSClient runs Lock against a local stand-in that
// speaks the STS query protocol, to check that the session policy, role
// and duration reach the wire and that the answer becomes the config's
// credentials.
func TestLockOverTheRealSTSClient(t *testing.T) {
	var mu sync.Mutex
	var form map[string][]string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		form = r.PostForm
		mu.Unlock()
		exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>`+
			`<Credentials><AccessKeyId>ASIALOCKED</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken>`+
			`<Expiration>%s</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::%s:assumed-role/fn-role/%s</Arn>`+
			`<AssumedRoleId>AROAEXAMPLE:%s</AssumedRoleId></AssumedRoleUser></AssumeRoleResult>`+
			`<ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></AssumeRoleResponse>`, exp, account, DefaultSessionName, DefaultSessionName)
	}))
	defer srv.Close()

	base := aws.Config{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDBASE", SecretAccessKey: "base", SessionToken: "base"}, nil
		}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, p, err := Lock(ctx, base, Options{RoleARN: roleARN, FindAddress: func(context.Context) (netip.Prefix, error) { return lambdaAddr, nil }})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil || creds.AccessKeyID != "ASIALOCKED" || cfg.Credentials != aws.CredentialsProvider(p) {
		t.Fatalf("locked config credentials = %+v, %v", creds, err)
	}
	want, _ := SessionPolicy(lambdaAddr, nil)
	mu.Lock()
	defer mu.Unlock()
	for k, v := range map[string]string{"Action": "AssumeRole", "RoleArn": roleARN, "Policy": string(want),
		"DurationSeconds": "3600", "RoleSessionName": DefaultSessionName} {
		if got := form[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestLockFailsTheColdStart(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not trusted</Message></Error><RequestId>r</RequestId></ErrorResponse>`)
	}))
	defer srv.Close()
	base := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDBASE", SecretAccessKey: "base"}, nil
		})}
	cfg, p, err := Lock(context.Background(), base, Options{RoleARN: roleARN, FindAddress: func(context.Context) (netip.Prefix, error) { return lambdaAddr, nil }})
	if err == nil || p != nil || cfg.Credentials != nil {
		t.Fatalf("Lock = %+v, %v, %v; want an error and nothing else", cfg, p, err)
	}
}
