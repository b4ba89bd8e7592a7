package locker

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
)

// errNoLockFits means IAM answered LimitExceeded to every candidate: the
// role gets AWSDenyAll (see attachDenyAll).
var errNoLockFits = errors.New("IAM refused every lock as too large")

// write puts the first candidate that IAM accepts, unless the current
// lock already means the same. IAM's LimitExceeded (the role's inline
// policies got larger since they were read) moves on to the next, coarser
// candidate; any other error stops.
func (r *run) write(ctx context.Context, role string, cands []candidate, current []byte) (candidate, bool, error) {
	if samePolicy(current, cands[0].doc) {
		return cands[0], false, nil
	}
	var last error
	for i, c := range cands {
		if i > 0 {
			c.fallback = true
		}
		err := r.call(ctx, "iam:PutRolePolicy", true, func(ctx context.Context) error {
			_, err := r.l.cfg.IAM.PutRolePolicy(ctx, &iam.PutRolePolicyInput{
				RoleName: aws.String(role), PolicyName: aws.String(r.l.cfg.PolicyName), PolicyDocument: aws.String(string(c.doc)),
			})
			return err
		})
		if err == nil {
			return c, true, nil
		}
		if errorCode(err) != codeLimitExceeded {
			return c, false, fmt.Errorf("locker: put lock on %s: %w", role, err)
		}
		last = err
	}
	return cands[len(cands)-1], false, fmt.Errorf("locker: put lock on %s: %w: %w", role, errNoLockFits, last)
}
