package steps

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/resolve"
	"github.com/mecd/mecd/internal/spec"
	"github.com/mecd/mecd/internal/store"
)

// Defaults are the spec defaults of this deployment.
func (s *Steps) Defaults() spec.Defaults {
	return spec.Defaults{Region: s.Env.Region, Regions: s.Env.AllowedRegions, Now: s.now}
}

// Prepare starts a provisioning: with {"clusterId"} it takes the record the
// API created; with a bare spec (a console run) it creates the record itself
// under the same rules. Then it resolves architecture, AMI, VPC and subnet.
func (s *Steps) Prepare(ctx context.Context, raw json.RawMessage) (State, error) {
	m, err := s.recordFor(ctx, raw)
	if err != nil {
		return State{}, err
	}
	log := s.Log.With("clusterId", m.ID)
	if m.Resolved == nil {
		if _, err := s.Store.Update(ctx, m.ID, func(r *mec.MEC) error {
			r.StartStep(mec.StepResolve, s.now())
			return nil
		}); err != nil {
			return State{}, err
		}
		res, err := resolve.Resolve(ctx, m.Spec, s.AWS.EC2(m.Region), s.AWS.SSM(m.Region))
		if err != nil {
			var ve *spec.ValidationError
			if errors.As(err, &ve) {
				// The region refuses the spec: FAILED now, and the name goes
				// back (a console run's Catch cannot name this record).
				if _, uerr := s.Store.Update(ctx, m.ID, func(r *mec.MEC) error {
					if !r.Fail(mec.StepResolve, tail(ve.Error(), 2000), s.now()) {
						return store.ErrNoChange
					}
					return nil
				}); uerr != nil {
					return State{}, uerr
				}
				return State{}, stepErr(ErrInvalidSpec, "%s", ve.Error())
			}
			return State{}, fmt.Errorf("resolve: %w", err)
		}
		m, err = s.Store.Update(ctx, m.ID, func(r *mec.MEC) error {
			r.SetResolved(res, s.now())
			return nil
		})
		if err != nil {
			return State{}, err
		}
		log.InfoContext(ctx, "resolved", "architecture", res.Architecture, "ami", res.AmiID, "subnet", res.SubnetID)
	}
	return State{
		ClusterID: m.ID,
		Region:    m.Region,
		Timeouts:  &Timeouts{Command: int(math.Ceil(s.Env.CommandTimeout.Seconds())) + 60},
	}, nil
}

// recordFor returns the record to provision, creating it for console runs.
func (s *Steps) recordFor(ctx context.Context, raw json.RawMessage) (*mec.MEC, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, stepErr(ErrInvalidSpec, "input must be a JSON object: a MEC spec such as {\"name\": \"edge-1\"}, or {\"clusterId\": \"mec-...\"}")
	}
	if idRaw, ok := probe["clusterId"]; ok && len(probe) == 1 {
		var id string
		if err := json.Unmarshal(idRaw, &id); err != nil || id == "" {
			return nil, stepErr(ErrInvalidSpec, "clusterId must be a string")
		}
		m, err := s.Store.Get(ctx, id)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, stepErr(ErrInvalidSpec, "no MEC with clusterId %q", id)
			}
			return nil, err
		}
		if m.Status != mec.Creating {
			return nil, stepErr(ErrCancelled, "MEC %s is %s, not CREATING", id, m.Status)
		}
		return m, nil
	}
	sp, err := spec.Parse(bytes.TrimSpace(raw), s.Defaults())
	if err != nil {
		return nil, stepErr(ErrInvalidSpec, "%s", err.Error())
	}
	m := mec.New(sp, "created by a console run", s.now())
	err = s.Store.Create(ctx, m, nil)
	if errors.Is(err, store.ErrNameTaken) {
		// A retried invocation of this same start finds its own record: adopt
		// it rather than failing or making a second MEC.
		if own, ok := s.adoptable(ctx, sp); ok {
			return own, nil
		}
		return nil, stepErr(ErrNameTaken, "a MEC named %q already exists; delete it or choose another name", sp.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("create record: %w", err)
	}
	s.Log.InfoContext(ctx, "record created", "clusterId", m.ID, "name", m.Name, "region", m.Region)
	return m, nil
}

// adoptable finds a record for the same spec that nothing has launched for
// yet: the trace of an earlier attempt of this very invocation.
func (s *Steps) adoptable(ctx context.Context, sp spec.Spec) (*mec.MEC, bool) {
	id, err := s.Store.NameOwner(ctx, sp.Name)
	if err != nil || id == "" {
		return nil, false
	}
	m, err := s.Store.Get(ctx, id)
	if err != nil || m.Status != mec.Creating || m.ExecutionArn != "" || len(m.Nodes) > 0 || m.SecurityGroupID != "" {
		return nil, false
	}
	if m.Spec.Hash() != sp.Hash() || s.now().Sub(m.CreatedAt) > 5*time.Minute {
		return nil, false
	}
	return m, true
}
