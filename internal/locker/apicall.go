package locker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
	"github.com/defenders-cdk/defenders/internal/lockpolicy/ec2addr"
)

// apiCall handles a CloudTrail event of one of AddressAPICalls: it finds
// the instance the call changed (attribute) and reconciles the roles of its
// instance profile, and of any instance profile the event names (the one
// DisassociateIamInstanceProfile removed). A replaced instance profile's
// role is not named by the event: the roles whose lock lists the
// instance's public addresses are reconciled too. An event that names no
// instance the locker can find reconciles every managed role. A failed
// call (errorCode) changed nothing.
func (r *run) apiCall(ctx context.Context, ev Event) error {
	if ev.ErrorCode != "" {
		r.note("%s failed (%s): it changed nothing", ev.APICall, ev.ErrorCode)
		return nil
	}
	ids, err := r.attribute(ctx, ev.Refs)
	if err != nil {
		return err
	}
	if len(ids) == 0 && len(ev.Refs.InstanceProfileARNs) == 0 {
		refs, _ := json.Marshal(ev.Refs)
		r.note("%s names no instance the locker can find (%s): reconciling every managed role", ev.APICall, refs)
		return r.reconcileAll(ctx)
	}
	var addrs []string
	for _, id := range ids {
		inst, err := r.instanceChanged(ctx, id, false, ev.APICall)
		if err != nil {
			return err
		}
		if inst != nil {
			addrs = append(addrs, prefixStrings(ec2addr.Of(*inst).SourcePrefixes())...)
		}
	}
	for _, arn := range ev.Refs.InstanceProfileARNs {
		if err := r.lockProfile(ctx, arn, false); err != nil {
			return err
		}
	}
	oldRoleUnknown := ev.APICall == "ReplaceIamInstanceProfileAssociation" ||
		(ev.APICall == "DisassociateIamInstanceProfile" && len(ev.Refs.InstanceProfileARNs) == 0)
	if oldRoleUnknown && len(addrs) > 0 {
		r.note("%s: the previous instance profile is not named: reconciling the managed roles whose lock lists %v", ev.APICall, addrs)
		return r.reconcileListing(ctx, addrs)
	}
	return nil
}

// attribute returns the instances an API call event is about: the
// instance ids it names; else the instances of the network interfaces it
// names; else the holders of the Elastic IPs it names (DescribeAddresses by
// allocation id, association id or public IP: an instance, or a network
// interface whose instance is then looked up); else the instances of the
// network interface attachments it names. Nothing found is no error: the
// caller then reconciles every managed role. Lookups use filters, which
// answer nothing (not an error) for what no longer exists, such as the
// association a DisassociateAddress just removed.
func (r *run) attribute(ctx context.Context, refs APIRefs) ([]string, error) {
	if len(refs.InstanceIDs) > 0 {
		return refs.InstanceIDs, nil
	}
	var ids []string
	enis := slices.Clone(refs.NetworkInterfaceIDs)
	if len(enis) == 0 {
		for _, f := range []struct {
			name   string
			values []string
		}{{"allocation-id", refs.AllocationIDs}, {"association-id", refs.AssociationIDs}, {"public-ip", refs.PublicIPs}} {
			if len(f.values) == 0 || len(ids)+len(enis) > 0 {
				continue
			}
			var out *ec2.DescribeAddressesOutput
			err := r.call(ctx, "ec2:DescribeAddresses", false, func(ctx context.Context) (err error) {
				out, err = r.l.cfg.EC2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{
					Filters: []ec2types.Filter{{Name: aws.String(f.name), Values: f.values}},
				})
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("locker: find the Elastic IPs with %s %v: %w", f.name, f.values, err)
			}
			for _, a := range out.Addresses {
				switch {
				case deref(a.InstanceId) != "":
					ids = append(ids, deref(a.InstanceId))
				case deref(a.NetworkInterfaceId) != "":
					enis = append(enis, deref(a.NetworkInterfaceId))
				}
			}
		}
	}
	for _, f := range []struct {
		name   string
		values []string
	}{{"network-interface.network-interface-id", enis}, {"network-interface.attachment.attachment-id", refs.AttachmentIDs}} {
		if len(f.values) == 0 || len(ids) > 0 {
			continue
		}
		filters := []ec2types.Filter{{Name: aws.String(f.name), Values: f.values}}
		err := r.describeInstances(ctx, filters, func(in ec2types.Instance) { ids = append(ids, deref(in.InstanceId)) })
		if err != nil {
			return nil, fmt.Errorf("locker: find the instances with %s %v: %w", f.name, f.values, err)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// reconcileListing reconciles the managed roles whose current lock lists
// (covers) any of addrs: for an address that left an instance whose role
// the event does not name. It reads the lock of every managed role
// (ListRoles, then one GetRolePolicy each): one call per role instead of
// the five or more of a reconcile.
func (r *run) reconcileListing(ctx context.Context, addrs []string) error {
	var want []netip.Prefix
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a); err == nil {
			want = append(want, p)
		}
	}
	var match []roleRef
	err := r.managedRoles(ctx, func(role iamtypes.Role) {
		ref := refOf(role)
		if r.done[ref.name] {
			return
		}
		doc, err := r.currentLock(ctx, ref.name)
		if err != nil {
			r.done[ref.name] = true
			r.report.Results = append(r.report.Results, Result{Role: ref.name, Action: ActionError, Err: err, Error: err.Error(),
				Addresses: []string{}, SourceIPs: []string{}, VPCs: []string{}})
			return
		}
		if lockListsAny(doc, want) {
			match = append(match, ref)
		}
	})
	if err != nil {
		return err
	}
	for _, ref := range match {
		r.reconcileOnce(ctx, ref)
	}
	return nil
}

// currentLock reads a role's lock policy; nil when it has none.
func (r *run) currentLock(ctx context.Context, role string) ([]byte, error) {
	var out *iam.GetRolePolicyOutput
	err := r.call(ctx, "iam:GetRolePolicy", false, func(ctx context.Context) (err error) {
		out, err = r.l.cfg.IAM.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String(r.l.cfg.PolicyName)})
		return err
	})
	if errorCode(err) == codeNoSuchEntity {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("locker: get the lock of role %s: %w", role, err)
	}
	doc, err := DecodePolicyDocument(deref(out.PolicyDocument))
	if err != nil {
		return nil, nil // unreadable: it lists nothing; the schedule replaces it
	}
	return doc, nil
}

// lockListsAny reports whether a lock admits internet calls from any of
// addrs: a prefix of its SidDenyPublicCallsFromOtherAddresses statement
// overlaps one of them.
func lockListsAny(doc []byte, addrs []netip.Prefix) bool {
	var d struct {
		Statement []struct {
			Sid       string
			Condition map[string]map[string]json.RawMessage
		}
	}
	if doc == nil || json.Unmarshal(doc, &d) != nil {
		return false
	}
	for _, st := range d.Statement {
		if st.Sid != lockpolicy.SidDenyPublicCallsFromOtherAddresses {
			continue
		}
		raw := st.Condition["NotIpAddress"]["aws:SourceIp"]
		var many []string
		var one string
		if json.Unmarshal(raw, &one) == nil {
			many = []string{one}
		} else if json.Unmarshal(raw, &many) != nil {
			continue
		}
		for _, s := range many {
			if !strings.Contains(s, "/") {
				s += "/32"
				if strings.Contains(s, ":") {
					s = strings.TrimSuffix(s, "/32") + "/128"
				}
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				continue
			}
			for _, a := range addrs {
				if p.Overlaps(a) {
					return true
				}
			}
		}
	}
	return false
}
