package spec

import (
	"fmt"
	"slices"
	"strings"
)

// Scale is the body of PATCH /mecs/{id}: the node count to scale to, and
// whether the control plane stays highly available.
type Scale struct {
	NodeCount int `json:"nodeCount"`
	// HAControlPlane nil keeps the rule of a new MEC: HA from 3 nodes. Going
	// from an HA control plane to fewer than 3 nodes needs it false,
	// explicitly: dqlite then runs without a quorum to spare.
	HAControlPlane *bool `json:"haControlPlane,omitempty"`
}

// scaleFields are the keys a PATCH body may hold.
var scaleFields = []string{"nodeCount", "haControlPlane"}

// ParseScale reads a PATCH body strictly, as Parse reads a spec: unknown or
// repeated fields, wrong types and a missing nodeCount are errors, each
// reported at once in a *ValidationError.
func ParseScale(data []byte) (Scale, error) {
	verr := &ValidationError{}
	keys, vals, err := decodeObject(data)
	if err != nil {
		verr.Add(BodyField, err.Error())
		return Scale{}, verr
	}
	var s Spec
	for _, k := range keys {
		switch {
		case vals[k] == nil:
			verr.Add(k, "appears more than once; give each field once")
		case !slices.Contains(scaleFields, k):
			verr.Add(k, "cannot be changed on a MEC: PATCH takes "+strings.Join(scaleFields, " and ")+" (create a new MEC for another "+k+")")
		default:
			decodeField(&s, k, vals[k], verr)
		}
	}
	if vals["nodeCount"] == nil || isNull(vals["nodeCount"]) {
		verr.Add("nodeCount", "is required: the number of nodes to scale to, "+msgNodeCount)
	} else if s.NodeCount < MinNodeCount || s.NodeCount > MaxNodeCount {
		verr.Add("nodeCount", msgNodeCount)
	}
	if s.HAControlPlane != nil && *s.HAControlPlane && s.NodeCount > 0 && s.NodeCount < haMinNodes {
		verr.Add("haControlPlane", fmt.Sprintf("true needs at least %d nodes (dqlite's 3 voters): ask for %d or more, or leave it out", haMinNodes, haMinNodes))
	}
	if err := verr.Err(); err != nil {
		return Scale{}, err
	}
	return Scale{NodeCount: s.NodeCount, HAControlPlane: s.HAControlPlane}, nil
}

// Scaled is s with the node count and HA setting of a scale applied: HA
// follows the request when it says, else the rule of a new MEC.
func (s Spec) Scaled(sc Scale) Spec {
	out := s
	out.NodeCount = sc.NodeCount
	ha := sc.NodeCount >= haMinNodes
	if sc.HAControlPlane != nil {
		ha = *sc.HAControlPlane
	}
	out.HAControlPlane = &ha
	return out
}
