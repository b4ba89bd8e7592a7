package golambda

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/internal/contract"
)

// Environment variables that turn on internal/lockdown in a bundled Lambda.
const (
	EnvLockdown = contract.EnvLockdown
	EnvRoleARN  = contract.EnvRoleARN
)

// NewRole creates a Lambda execution role. With lockdown, the function locks its own
// credentials at cold start (internal/lockdown): it calls sts:AssumeRole on this very role with a
// session policy that denies use from any other address. That needs exactly two grants, both
// limited to this role's own IAM path (a path unique to the construct, because a generated role
// name cannot be referenced from the role's own trust policy without a cycle):
//
//   - trust: principals of this account whose ARN is under the path may assume it (AWS requires
//     a role's self-assumption to be allowed explicitly in its trust policy);
//   - identity: sts:AssumeRole on roles under the path.
//
// The returned environment tells the Lambda to lock itself and which role to assume.
func NewRole(scope constructs.Construct, id, description string, lockdown bool) (awsiam.Role, map[string]*string) {
	props := &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String(description),
	}
	env := map[string]*string{}
	if !lockdown {
		return awsiam.NewRole(scope, jsii.String(id), props), env
	}
	path := "/defenders-lockdown/" + *scope.Node().Addr() + "/"
	props.Path = jsii.String(path)
	role := awsiam.NewRole(scope, jsii.String(id), props)
	stack := awscdk.Stack_Of(scope)
	underPath := awscdk.Fn_Join(jsii.String(""), &[]*string{
		jsii.String("arn:"), stack.Partition(), jsii.String(":iam::"), stack.Account(), jsii.String(":role" + path + "*"),
	})
	role.AssumeRolePolicy().AddStatements(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("LockdownSelfAssume"),
		Actions:    jsii.Strings("sts:AssumeRole"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewAccountPrincipal(stack.Account())},
		Conditions: &map[string]interface{}{"ArnLike": map[string]interface{}{"aws:PrincipalArn": underPath}},
	}))
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("LockdownSelfAssume"),
		Actions:   jsii.Strings("sts:AssumeRole"),
		Resources: &[]*string{underPath},
	}))
	env[EnvLockdown] = jsii.String("true")
	env[EnvRoleARN] = role.RoleArn()
	return role, env
}
