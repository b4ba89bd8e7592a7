package detect

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/defenders-cdk/defenders/internal/contract"
)

func TestLoadSettings(t *testing.T) {
	valid := map[string]string{
		contract.EnvTopicARN: "arn:aws:sns:eu-west-1:111122223333:alerts",
		contract.EnvDLQURL:   "https://sqs.eu-west-1.amazonaws.com/111122223333/dlq",
	}
	tests := []struct {
		name    string
		env     map[string]string
		want    Settings
		wantErr string
	}{
		{name: "defaults", want: Settings{DedupeWindow: time.Hour, InventoryTTL: 10 * time.Minute}},
		{name: "as the construct sets it", env: map[string]string{
			contract.EnvDedupeWindow: "1h0m0s", contract.EnvInventoryTTL: "10m0s", contract.EnvSelfRoleARN: "arn:aws:iam::111122223333:role/detector",
		}, want: Settings{DedupeWindow: time.Hour, InventoryTTL: 10 * time.Minute, SelfRoleARN: "arn:aws:iam::111122223333:role/detector"}},
		{name: "dedupe off", env: map[string]string{contract.EnvDedupeWindow: "0s"}, want: Settings{DedupeWindow: -1, InventoryTTL: 10 * time.Minute}},
		{name: "lockdown", env: map[string]string{contract.EnvLockdown: "true"}, want: Settings{DedupeWindow: time.Hour, InventoryTTL: 10 * time.Minute, Lockdown: true}},
		{name: "lockdown off", env: map[string]string{contract.EnvLockdown: "false"}, want: Settings{DedupeWindow: time.Hour, InventoryTTL: 10 * time.Minute}},
		{name: "no topic", env: map[string]string{contract.EnvTopicARN: ""}, wantErr: contract.EnvTopicARN},
		{name: "topic not SNS", env: map[string]string{contract.EnvTopicARN: "arn:aws:sqs:eu-west-1:1:q"}, wantErr: contract.EnvTopicARN},
		{name: "no queue", env: map[string]string{contract.EnvDLQURL: ""}, wantErr: contract.EnvDLQURL},
		{name: "queue not a URL", env: map[string]string{contract.EnvDLQURL: "dlq"}, wantErr: contract.EnvDLQURL},
		{name: "bad window", env: map[string]string{contract.EnvDedupeWindow: "1 hour"}, wantErr: contract.EnvDedupeWindow},
		{name: "negative window", env: map[string]string{contract.EnvDedupeWindow: "-1h"}, wantErr: contract.EnvDedupeWindow},
		{name: "zero TTL", env: map[string]string{contract.EnvInventoryTTL: "0s"}, wantErr: contract.EnvInventoryTTL},
		{name: "bad TTL", env: map[string]string{contract.EnvInventoryTTL: "soon"}, wantErr: contract.EnvInventoryTTL},
		{name: "bad role", env: map[string]string{contract.EnvSelfRoleARN: "detector"}, wantErr: contract.EnvSelfRoleARN},
		{name: "bad lockdown", env: map[string]string{contract.EnvLockdown: "True please"}, wantErr: contract.EnvLockdown},
		{name: "the function's region", env: map[string]string{EnvRegion: "us-east-1"},
			want: Settings{DedupeWindow: time.Hour, InventoryTTL: 10 * time.Minute, Region: "us-east-1"}},
		{name: "regions searched", env: map[string]string{contract.EnvRegions: " eu-west-1, us-gov-west-1,,eu-west-1,ap-southeast-4 "},
			want: Settings{DedupeWindow: time.Hour, InventoryTTL: 10 * time.Minute, Regions: []string{"eu-west-1", "us-gov-west-1", "ap-southeast-4"}}},
		{name: "a region that is not one", env: map[string]string{contract.EnvRegions: "eu-west-1,Frankfurt"}, wantErr: contract.EnvRegions},
		{name: "a region list without a region", env: map[string]string{contract.EnvRegions: " , "}, wantErr: contract.EnvRegions},
		{name: "the app's trust, canonical", env: map[string]string{
			contract.EnvTrustedEgressPrefixes: " 203.0.113.0/25, 198.51.100.7 ,",
			contract.EnvSharedVPCEndpoints:    "vpce-0badc0ffee0123456,vpce-01234567",
		}, want: Settings{DedupeWindow: time.Hour, InventoryTTL: 10 * time.Minute,
			TrustedEgressPrefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.7/32"), netip.MustParsePrefix("203.0.113.0/25")},
			SharedVPCEndpoints:    []string{"vpce-01234567", "vpce-0badc0ffee0123456"}}},
		{name: "a private egress prefix", env: map[string]string{contract.EnvTrustedEgressPrefixes: "10.0.0.0/8"}, wantErr: contract.EnvTrustedEgressPrefixes},
		{name: "the whole internet as egress", env: map[string]string{contract.EnvTrustedEgressPrefixes: "0.0.0.0/0"}, wantErr: contract.EnvTrustedEgressPrefixes},
		{name: "an egress prefix with host bits", env: map[string]string{contract.EnvTrustedEgressPrefixes: "203.0.113.5/24"}, wantErr: contract.EnvTrustedEgressPrefixes},
		{name: "a VPC id as shared endpoint", env: map[string]string{contract.EnvSharedVPCEndpoints: "vpc-0123456789abcdef0"}, wantErr: contract.EnvSharedVPCEndpoints},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range valid {
				env[k] = v
			}
			for k, v := range tt.env {
				env[k] = v
			}
			got, err := LoadSettings(func(k string) string { return env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.TopicARN, tt.want.DLQURL = valid[contract.EnvTopicARN], valid[contract.EnvDLQURL]
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("settings\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
