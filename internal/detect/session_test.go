package detect_test

import (
	"testing"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
)

func TestIsInstanceSession(t *testing.T) {
	tests := []struct {
		name   string
		rec    cloudtrail.Record
		wantID string
		wantOK bool
	}{
		{"an IMDSv2 instance session yields its 17-digit id", record(ctt.InstanceFromPublicIP), ctt.InstanceID, true},
		{"an IMDSv1 session of an old instance yields its 8-digit id", record(ctt.InstanceIMDSv1Old), ctt.OldInstanceID, true},
		{"an IAM user is not an instance session", record(ctt.IAMUserCall), "", false},
		{"a Lambda role session is not an instance session", record(ctt.LambdaRoleCall), "", false},
		{"the detector's Lambda session is not an instance session", record(ctt.DetectorOwnCall), "", false},
		{"a role session named like an instance is treated as one", record(ctt.FakeInstanceSessionName), ctt.InstanceID, true},
		{"a principal with uppercase hex is not an instance session",
			cloudtrail.Record{UserIdentity: cloudtrail.UserIdentity{Type: "AssumedRole", PrincipalID: "AROA:i-0A1B2C3D4E5F60718"}}, "", false},
		{"a principal with a 9-digit id is not an instance session",
			cloudtrail.Record{UserIdentity: cloudtrail.UserIdentity{Type: "AssumedRole", PrincipalID: "AROA:i-123456789"}}, "", false},
		{"an IAM user whose principal ends like an instance is not an instance session",
			cloudtrail.Record{UserIdentity: cloudtrail.UserIdentity{Type: "IAMUser", PrincipalID: "AIDA:i-1a2b3c4d"}}, "", false},
		{"ec2RoleDelivery with an odd principal takes the id from the ARN",
			cloudtrail.Record{UserIdentity: cloudtrail.UserIdentity{Type: "AssumedRole", PrincipalID: "AROA:weird",
				ARN:            "arn:aws:sts::111122223333:assumed-role/r/i-1a2b3c4d",
				SessionContext: cloudtrail.SessionContext{EC2RoleDelivery: "2.0"}}}, "i-1a2b3c4d", true},
		{"ec2RoleDelivery without any instance id is an instance session with an unknown id",
			cloudtrail.Record{UserIdentity: cloudtrail.UserIdentity{Type: "AssumedRole", PrincipalID: "AROA:weird",
				SessionContext: cloudtrail.SessionContext{EC2RoleDelivery: "1.0"}}}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := detect.IsInstanceSession(&tt.rec)
			if id != tt.wantID || ok != tt.wantOK {
				t.Errorf("IsInstanceSession = %q, %v; want %q, %v", id, ok, tt.wantID, tt.wantOK)
			}
		})
	}
}

func TestValidInstanceID(t *testing.T) {
	for id, want := range map[string]bool{
		"i-1a2b3c4d": true, "i-0a1b2c3d4e5f60718": true, "i-1a2b3c4": false, "i-0a1b2c3d4e5f6071": false,
		"i-1a2b3c4g": false, "j-1a2b3c4d": false, "": false, "i-": false, "i-0A1B2C3D": false,
	} {
		t.Run("the id "+id+" is judged correctly", func(t *testing.T) {
			if got := detect.ValidInstanceID(id); got != want {
				t.Errorf("ValidInstanceID(%q) = %v", id, got)
			}
		})
	}
}

func TestIsAWSServiceCall(t *testing.T) {
	tests := []struct {
		name string
		rec  cloudtrail.Record
		want bool
	}{
		{"a call with invokedBy is a service call", record(ctt.InstanceAWSService), true},
		{"an AWS Internal call is a service call", record(ctt.InstanceAWSInternal), true},
		{"a service name as source is a service call", cloudtrail.Record{SourceIPAddress: "ec2.amazonaws.com"}, true},
		{"a China-region service name as source is a service call", cloudtrail.Record{SourceIPAddress: "ec2.amazonaws.com.cn"}, true},
		{"a call from an address is not a service call", record(ctt.StolenFromForeignIP), false},
		{"a call through a VPC endpoint is not a service call", record(ctt.InstanceViaOwnEndpoint), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := detect.IsAWSServiceCall(&tt.rec); got != tt.want {
				t.Errorf("IsAWSServiceCall = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSelfMatches(t *testing.T) {
	onInstance := record(ctt.DetectorOnInstanceOwnCall)
	lambda := record(ctt.DetectorOwnCall)
	tests := []struct {
		name string
		self detect.Self
		rec  cloudtrail.Record
		want bool
	}{
		{"the IAM role ARN matches a session of the role", detect.Self{RoleARNs: []string{ctt.DetectorRoleARN}}, onInstance, true},
		{"the IAM role ARN matches the detector's Lambda session", detect.Self{RoleARNs: []string{ctt.DetectorRoleARN}}, lambda, true},
		{"an assumed-role ARN without session matches every session",
			detect.Self{RoleARNs: []string{"arn:aws:sts::" + ctt.Account + ":assumed-role/" + ctt.DetectorRole}}, onInstance, true},
		{"an assumed-role ARN is not matched by a longer role name",
			detect.Self{RoleARNs: []string{"arn:aws:sts::" + ctt.Account + ":assumed-role/defenders"}}, onInstance, false},
		{"a role id matches every session of the role", detect.Self{PrincipalIDs: []string{"AROAYEXAMPLEDETECT1"}}, lambda, true},
		{"a role id prefix does not match another role", detect.Self{PrincipalIDs: []string{"AROAYEXAMPLEDETECT"}}, lambda, false},
		{"another role's ARN does not match", detect.Self{RoleARNs: []string{ctt.DetectorRoleARN}}, record(ctt.StolenFromForeignIP), false},
		{"an empty Self matches nothing", detect.Self{RoleARNs: []string{""}, PrincipalIDs: []string{""}}, lambda, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.self.Matches(&tt.rec); got != tt.want {
				t.Errorf("Matches = %v, want %v", got, tt.want)
			}
		})
	}
}
