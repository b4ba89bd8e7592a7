package review

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/defenders-cdk/defenders/internal/contract"
)

// AcknowledgeKey is the resource Metadata key that acknowledges findings of that resource,
// one rule at a time, each with a written reason (as cdk-nag suppressions):
//
//	"Metadata": {"defenders:acknowledge": [{"rule": "DEF-LOCK-1", "reason": "why this is fine"}]}
//
// An acknowledgement applies to the findings of that rule whose resource (Finding.Stack and
// Finding.Resource) is the resource carrying it, and to nothing else. An acknowledged finding
// is reported under "Acknowledged" with its reason instead of counting as an error or a
// warning. A malformed acknowledgement (not a list of objects, a missing field, an unknown
// rule, a reason shorter than MinAcknowledgementReason characters) acknowledges nothing and
// is itself an error finding (DEF-ACK-1), which cannot be acknowledged.
//
// The older ExemptKey ("defenders:exempt": "<reason>") is read as an acknowledgement of
// DEF-LOCK-1.
const AcknowledgeKey = contract.AcknowledgeMetadataKey

// LockModeTagKey is the role tag in which the Defenders lock construct records the mode of the
// role's lock; the report shows it (Role.LockModeTag).
const LockModeTagKey = contract.LockModeTagKey

// MinAcknowledgementReason is the shortest reason an acknowledgement accepts, in characters
// after trimming spaces (lock.Exempt asks the same).
const MinAcknowledgementReason = 10

// ack is one valid acknowledgement of a resource.
type ack struct {
	rule   string
	reason string
}

// readAcks reads the acknowledgements of every resource, recording a DEF-ACK-1 finding for
// each malformed one.
func (z *analyzer) readAcks(stacks []*Stack) {
	z.acks = map[*resource][]ack{}
	for _, st := range stacks {
		for _, id := range sortedKeys(st.resources) {
			r := st.resources[id]
			raw, hasNew := r.meta[AcknowledgeKey]
			legacy, hasOld := r.meta[ExemptKey]
			if !hasNew && !hasOld {
				continue
			}
			var acks []ack
			if hasNew {
				acks = z.parseAcks(r, raw)
			}
			if s, ok := legacy.(string); hasOld && ok && !slices.ContainsFunc(acks, func(a ack) bool { return a.rule == RuleUnlockedRole }) {
				reason := strings.TrimSpace(s)
				if len([]rune(reason)) < MinAcknowledgementReason {
					z.addFinding(RuleBadAcknowledgement, r, nil,
						"Metadata `%s` of `%s` gives the reason %q, shorter than %d characters: it acknowledges nothing. Say why the finding is acceptable.",
						ExemptKey, display(r), reason, MinAcknowledgementReason)
				} else {
					acks = append(acks, ack{rule: RuleUnlockedRole, reason: reason})
				}
			}
			if len(acks) > 0 {
				z.acks[r] = acks
			}
		}
	}
}

// parseAcks validates the AcknowledgeKey value of r and returns its valid entries.
func (z *analyzer) parseAcks(r *resource, raw any) []ack {
	bad := func(format string, args ...any) {
		z.addFinding(RuleBadAcknowledgement, r, nil,
			"Metadata `%s` of `%s`: %s; it acknowledges nothing. Write a list of {\"rule\": \"DEF-...\", \"reason\": \"...\"} objects, "+
				"one per rule, each with a reason of at least %d characters.",
			AcknowledgeKey, display(r), fmt.Sprintf(format, args...), MinAcknowledgementReason)
	}
	list, ok := raw.([]any)
	if !ok {
		bad("want a list, got %s", kindOf(raw))
		return nil
	}
	var out []ack
	for i, el := range list {
		m, ok := el.(map[string]any)
		if !ok {
			bad("entry %d: want an object, got %s", i+1, kindOf(el))
			continue
		}
		rule, rok := m["rule"].(string)
		reason, sok := m["reason"].(string)
		reason = strings.TrimSpace(reason)
		switch {
		case m["rule"] == nil:
			bad("entry %d has no \"rule\"", i+1)
		case !rok:
			bad("entry %d: \"rule\" must be a string, got %s", i+1, kindOf(m["rule"]))
		case rule == RuleBadAcknowledgement:
			bad("entry %d acknowledges %s, which cannot be acknowledged", i+1, rule)
		case !knownRule(rule):
			bad("entry %d names rule %q, which does not exist (the rules are listed in the README)", i+1, rule)
		case m["reason"] == nil:
			bad("entry %d (%s) has no \"reason\"", i+1, rule)
		case !sok:
			bad("entry %d (%s): \"reason\" must be a string, got %s", i+1, rule, kindOf(m["reason"]))
		case len([]rune(reason)) < MinAcknowledgementReason:
			bad("entry %d (%s) gives the reason %q, shorter than %d characters", i+1, rule, reason, MinAcknowledgementReason)
		case slices.ContainsFunc(out, func(a ack) bool { return a.rule == rule }):
			bad("entry %d acknowledges %s a second time", i+1, rule)
		default:
			out = append(out, ack{rule: rule, reason: reason})
		}
	}
	return out
}

// knownRule reports whether id is a rule of the catalogue.
func knownRule(id string) bool {
	_, err := RuleByID(id)
	return err == nil
}

// ackOf returns r's acknowledgement of rule, if any.
func (z *analyzer) ackOf(r *resource, rule string) (ack, bool) {
	for _, a := range z.acks[r] {
		if a.rule == rule {
			return a, true
		}
	}
	return ack{}, false
}

// splitAcknowledged separates the findings acknowledged by their resource from the others,
// setting the reason of the acknowledged ones.
func (z *analyzer) splitAcknowledged(fs []*Finding) (active, acked []*Finding) {
	for _, f := range fs {
		if f.Rule != RuleBadAcknowledgement && len(f.subjects) > 0 {
			if a, ok := z.ackOf(f.subjects[0], f.Rule); ok {
				f.Reason = a.reason
				acked = append(acked, f)
				continue
			}
		}
		active = append(active, f)
	}
	return active, acked
}

// numberAcknowledged sorts acknowledged findings and numbers them A1, A2, ...
func numberAcknowledged(fs []*Finding) []Finding {
	slices.SortFunc(fs, func(a, b *Finding) int {
		return cmp.Or(strings.Compare(a.Stack, b.Stack), strings.Compare(a.Resource, b.Resource),
			strings.Compare(a.Rule, b.Rule), strings.Compare(a.Message, b.Message))
	})
	out := make([]Finding, 0, len(fs))
	for _, f := range fs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.Stack == f.Stack && last.Resource == f.Resource && last.Rule == f.Rule && last.Message == f.Message {
				last.subjects = append(last.subjects, f.subjects...)
				continue
			}
		}
		g := *f
		g.ID = fmt.Sprintf("A%d", len(out)+1)
		out = append(out, g)
	}
	return out
}
