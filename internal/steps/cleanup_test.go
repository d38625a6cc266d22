package steps

import (
	"context"
	"log/slog"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"

	"github.com/mecd/mecd/internal/mec"
)

// taggedOnlyEC2 answers DeleteSecurityGroup as IAM would for a policy that
// allows deleting mecd-tagged groups only: a group that no longer exists
// has no tags, and AWS does not document whether EC2 then answers
// InvalidGroup.NotFound or UnauthorizedOperation.
type taggedOnlyEC2 struct {
	EC2API
	exists  bool
	deletes int
}

func (f *taggedOnlyEC2) DescribeSecurityGroups(_ context.Context, in *ec2.DescribeSecurityGroupsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error) {
	if len(in.GroupIds) > 0 && !f.exists {
		return nil, &smithy.GenericAPIError{Code: "InvalidGroup.NotFound", Message: "The security group does not exist"}
	}
	return &ec2.DescribeSecurityGroupsOutput{}, nil
}

func (f *taggedOnlyEC2) DeleteSecurityGroup(context.Context, *ec2.DeleteSecurityGroupInput, ...func(*ec2.Options)) (*ec2.DeleteSecurityGroupOutput, error) {
	f.deletes++
	return nil, &smithy.GenericAPIError{Code: "UnauthorizedOperation", Message: "You are not authorized to perform this operation."}
}

func TestDeletingAGoneGroupIsDone(t *testing.T) {
	for _, tc := range []struct {
		name    string
		exists  bool
		wantErr bool
	}{
		{"already deleted: done", false, false},
		{"still there and refused: an error", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &taggedOnlyEC2{exists: tc.exists}
			s := &Steps{Log: slog.New(slog.DiscardHandler)}
			err := s.deleteGroups(context.Background(), fake, &mec.MEC{ID: "mec-1", Region: "us-east-1", SecurityGroupID: "sg-1"})
			if (err != nil) != tc.wantErr || fake.deletes != 1 {
				t.Fatalf("err %v after %d deletes, want error %v", err, fake.deletes, tc.wantErr)
			}
		})
	}
}
