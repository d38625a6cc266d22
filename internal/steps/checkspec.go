package steps

import (
	"context"
	"errors"
	"fmt"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/resolve"
	"github.com/mecd/mecd/internal/spec"
)

// CheckSpec resolves a parsed spec in its region without creating anything:
// the API asks it before accepting a MEC, so an instance type the region
// does not have, an AMI of the wrong architecture or a subnet without a
// route out is a 400 naming the field, not a provisioning that fails later.
func (s *Steps) CheckSpec(ctx context.Context, sp spec.Spec) (mec.SpecCheck, error) {
	res, err := resolve.Resolve(ctx, sp, s.AWS.EC2(sp.Region), s.AWS.SSM(sp.Region))
	var ve *spec.ValidationError
	switch {
	case errors.As(err, &ve):
		return mec.SpecCheck{Fields: ve.Fields}, nil
	case err != nil:
		return mec.SpecCheck{}, fmt.Errorf("check spec in %s: %w", sp.Region, err)
	}
	return mec.SpecCheck{Resolved: &res}, nil
}
