package locker

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// lockSpec reads how a role is to be locked: its contract.LockModeTagKey
// tag (ListRoleTags, every page) and the app's trust.
func (r *run) lockSpec(ctx context.Context, role string) (lockSpec, error) {
	spec := lockSpec{trust: r.l.cfg.Trust}
	var marker *string
	for {
		var out *iam.ListRoleTagsOutput
		err := r.call(ctx, "iam:ListRoleTags", true, func(ctx context.Context) (err error) {
			out, err = r.l.cfg.IAM.ListRoleTags(ctx, &iam.ListRoleTagsInput{RoleName: aws.String(role), Marker: marker})
			return err
		})
		if err != nil {
			return spec, fmt.Errorf("locker: read the tags of role %s: %w", role, err)
		}
		for _, t := range out.Tags {
			if deref(t.Key) == contract.LockModeTagKey {
				spec.tagged, spec.tag = true, deref(t.Value)
			}
		}
		if !out.IsTruncated || out.Marker == nil {
			break
		}
		marker = out.Marker
	}
	if spec.tagged {
		m, err := lockpolicy.ParseMode(spec.tag)
		spec.mode, spec.unknown = m, err != nil
	}
	return spec, nil
}
