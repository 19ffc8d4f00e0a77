package role

import (
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/podidentity/podidentity-operator/internal/policy"
	"github.com/podidentity/podidentity-operator/internal/vocab"
)

// Observed is the role as IAM reports it.
type Observed struct {
	ARN                string
	ID                 string
	Path               string
	Description        string
	MaxSessionDuration int32
	// Unlisted: Description and MaxSessionDuration are not known (a drift
	// sweep's snapshot has not listed this role yet); Diff leaves them alone.
	Unlisted bool
	// Trust is the trust policy's fingerprint; TrustErr is set when IAM
	// returned a document that does not parse (it is then rewritten).
	Trust    policy.Fingerprint
	TrustErr error
	Boundary string
	Tags     map[string]string
	// Inline holds the inline policies; a policy that does not parse is
	// recorded in InlineErr instead (a map that is usually nil).
	Inline    Inlines
	InlineErr map[string]error
	// ManagedPolicies is sorted.
	ManagedPolicies []string
}

// Same reports whether o and p observed the same role in the same state.
// Parse errors count as differences.
func (o *Observed) Same(p *Observed) bool {
	return o.ARN == p.ARN && o.ID == p.ID && o.Path == p.Path && o.Description == p.Description &&
		o.MaxSessionDuration == p.MaxSessionDuration && o.Unlisted == p.Unlisted &&
		o.Trust == p.Trust && o.TrustErr == nil && p.TrustErr == nil && o.Boundary == p.Boundary &&
		maps.Equal(o.Tags, p.Tags) && slices.Equal(o.Inline, p.Inline) &&
		len(o.InlineErr) == 0 && len(p.InlineErr) == 0 && slices.Equal(o.ManagedPolicies, p.ManagedPolicies)
}

// InlinePolicy is an observed inline policy, kept compactly (the operator
// keeps every role it manages in memory): the document as compact JSON, to
// read its statements back, and its fingerprint, to compare it.
type InlinePolicy struct {
	Name        string
	JSON        string
	Fingerprint policy.Fingerprint
}

// Inlines are a role's inline policies sorted by name: a slice, because a
// map costs a few hundred bytes even for the one policy most roles have.
type Inlines []InlinePolicy

// Get returns the named policy.
func (in Inlines) Get(name string) (InlinePolicy, bool) {
	if i, ok := in.find(name); ok {
		return in[i], true
	}
	return InlinePolicy{}, false
}

// Set returns in with the named policy set to p.
func (in Inlines) Set(name string, p InlinePolicy) Inlines {
	p.Name = name
	i, ok := in.find(name)
	if ok {
		in[i] = p
		return in
	}
	return slices.Insert(in, i, p)
}

// Delete returns in without the named policy.
func (in Inlines) Delete(name string) Inlines {
	if i, ok := in.find(name); ok {
		return slices.Delete(in, i, i+1)
	}
	return in
}

func (in Inlines) find(name string) (int, bool) {
	return slices.BinarySearchFunc(in, name, func(p InlinePolicy, n string) int { return strings.Compare(p.Name, n) })
}

// InlineOf keeps a parsed inline policy.
func InlineOf(d policy.Document) InlinePolicy {
	text, _ := d.JSON() // cannot fail: plain strings, maps and slices
	return InlinePolicy{JSON: text, Fingerprint: d.Fingerprint()}
}

// Document parses the policy back.
func (p InlinePolicy) Document() (policy.Document, error) { return policy.Parse(p.JSON) }

// Plan is the set of IAM writes that bring an observed role to the desired one.
type Plan struct {
	UpdateTrust    bool
	UpdateRole     bool // description and max session duration
	PutBoundary    bool
	PutPermissions bool
	DeleteInline   []string
	Attach, Detach []string
	SetTags        map[string]string
	Untag          []string
	changes        []string
}

// TagPlan is a plan that only sets tags.
func TagPlan(tags map[string]string) Plan {
	p := Plan{SetTags: tags}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		p.changes = append(p.changes, "Tags: set "+k)
	}
	return p
}

// Empty reports whether the role is in sync.
func (p Plan) Empty() bool { return len(p.changes) == 0 }

// Changes describes each difference, for events and logs.
func (p Plan) Changes() []string { return p.changes }

// Kinds lists the kinds of difference (TrustPolicy, InlinePolicy, ...), for metrics.
func (p Plan) Kinds() []vocab.ChangeKind {
	var kinds []vocab.ChangeKind
	for _, c := range p.changes {
		kinds = append(kinds, vocab.ChangeKind(strings.SplitN(c, ":", 2)[0]))
	}
	return kinds
}

// Diff compares the desired and the observed role by meaning.
func Diff(d Desired, o Observed) Plan {
	var p Plan
	add := func(kind vocab.ChangeKind, detail string) { p.changes = append(p.changes, string(kind)+": "+detail) }

	if o.TrustErr != nil || o.Trust != d.Trust.Fingerprint() {
		p.UpdateTrust = true
		add(vocab.ChangeTrustPolicy, "trust policy differs from the binding")
	}
	if !o.Unlisted && o.Description != d.Description {
		p.UpdateRole = true
		add(vocab.ChangeDescription, strconv.Quote(o.Description)+" -> "+strconv.Quote(d.Description))
	}
	if !o.Unlisted && o.MaxSessionDuration != d.MaxSessionDuration {
		p.UpdateRole = true
		add(vocab.ChangeMaxSessionDuration, strconv.Itoa(int(o.MaxSessionDuration))+" -> "+strconv.Itoa(int(d.MaxSessionDuration)))
	}
	// With no boundary configured the operator leaves any boundary alone:
	// removing one would widen access.
	if d.Boundary != "" && o.Boundary != d.Boundary {
		p.PutBoundary = true
		add(vocab.ChangePermissionsBoundary, strconv.Quote(o.Boundary)+" -> "+strconv.Quote(d.Boundary))
	}

	for _, name := range inlineNames(o) {
		if name == InlinePolicyName && d.Permissions != nil {
			continue
		}
		p.DeleteInline = append(p.DeleteInline, name)
		if name == InlinePolicyName {
			add(vocab.ChangeInlinePolicy, "permissions removed from the binding")
		} else {
			add(vocab.ChangeExtraInlinePolicy, "inline policy "+name+" not declared by the binding")
		}
	}
	if d.Permissions != nil {
		got, ok := o.Inline.Get(InlinePolicyName)
		if !ok || o.InlineErr[InlinePolicyName] != nil || got.Fingerprint != d.Permissions.Fingerprint() {
			p.PutPermissions = true
			if ok {
				add(vocab.ChangeInlinePolicy, "permission policy differs from the binding")
			} else {
				add(vocab.ChangeInlinePolicy, "permission policy missing")
			}
		}
	}

	attach, detach := setDiff(d.ManagedPolicies, o.ManagedPolicies)
	p.Attach, p.Detach = attach, detach
	for _, a := range attach {
		add(vocab.ChangeManagedPolicies, "attach "+a)
	}
	for _, a := range detach {
		add(vocab.ChangeManagedPolicies, "detach "+a)
	}

	// Tag keys are case-insensitive: a key that differs only in case is the
	// same tag, and only a different value is a change.
	for _, k := range slices.Sorted(maps.Keys(d.Tags)) {
		if v, ok := TagValue(o.Tags, k); !ok || v != d.Tags[k] {
			if p.SetTags == nil {
				p.SetTags = map[string]string{}
			}
			p.SetTags[k] = d.Tags[k]
			add(vocab.ChangeTags, "set "+k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(o.Tags)) {
		if _, ok := TagValue(d.Tags, k); ok || strings.HasPrefix(strings.ToLower(k), "aws:") {
			continue
		}
		p.Untag = append(p.Untag, k)
		add(vocab.ChangeTags, "remove "+k)
	}
	return p
}

// setDiff returns what is in want but not in have, and what is in have but not in want.
func setDiff(want, have []string) (add, remove []string) {
	w, h := map[string]bool{}, map[string]bool{}
	for _, x := range want {
		w[x] = true
	}
	for _, x := range have {
		h[x] = true
	}
	for _, x := range want {
		if !h[x] {
			add = append(add, x)
		}
	}
	for _, x := range have {
		if !w[x] {
			remove = append(remove, x)
		}
	}
	sort.Strings(add)
	sort.Strings(remove)
	return add, remove
}

// inlineNames are the names of every observed inline policy, parsed or not, in order.
func inlineNames(o Observed) []string {
	var names []string
	for _, p := range o.Inline {
		names = append(names, p.Name)
	}
	for n := range o.InlineErr {
		if _, ok := o.Inline.Get(n); !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Applied is what the role looks like after Apply(d, p) succeeded on a role
// that looked like o: the observation a reconcile can reuse instead of
// reading the role again. Diff(d, Applied(d, o, Diff(d, o))) is empty.
func Applied(d Desired, o Observed, p Plan) *Observed {
	out := o
	out.Tags = maps.Clone(o.Tags)
	out.Inline = slices.Clone(o.Inline)
	out.InlineErr = maps.Clone(o.InlineErr)
	if out.Tags == nil {
		out.Tags = map[string]string{}
	}
	if p.UpdateTrust {
		out.Trust, out.TrustErr = d.Trust.Fingerprint(), nil
	}
	if p.UpdateRole {
		out.Description, out.MaxSessionDuration = d.Description, d.MaxSessionDuration
	}
	if p.PutBoundary {
		out.Boundary = d.Boundary
	}
	for _, n := range p.DeleteInline {
		out.Inline = out.Inline.Delete(n)
		delete(out.InlineErr, n)
	}
	if p.PutPermissions && d.Permissions != nil {
		out.Inline = out.Inline.Set(InlinePolicyName, InlineOf(*d.Permissions))
		delete(out.InlineErr, InlinePolicyName)
	}
	if len(p.Attach) > 0 || len(p.Detach) > 0 {
		managed := map[string]bool{}
		for _, a := range o.ManagedPolicies {
			managed[a] = true
		}
		for _, a := range p.Attach {
			managed[a] = true
		}
		for _, a := range p.Detach {
			delete(managed, a)
		}
		out.ManagedPolicies = slices.Sorted(maps.Keys(managed))
	}
	for k, v := range p.SetTags {
		for old := range out.Tags {
			if strings.EqualFold(old, k) {
				delete(out.Tags, old)
			}
		}
		out.Tags[k] = v
	}
	for _, k := range p.Untag {
		delete(out.Tags, k)
	}
	return &out
}

// Created is what a role looks like right after Create(d) succeeded.
func Created(d Desired, arn, id string) *Observed {
	empty := Observed{ARN: arn, ID: id, Path: d.Path}
	return Applied(d, empty, Diff(d, empty))
}
