package ssmsim

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/mecd/mecd/test/nodesim/fault"
	"github.com/mecd/mecd/test/nodesim/latency"
)

func describe(t *testing.T, e *env, in *ssm.DescribeInstanceInformationInput) map[string]types.InstanceInformation {
	t.Helper()
	out, err := e.ssm.DescribeInstanceInformation(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]types.InstanceInformation{}
	for _, i := range out.InstanceInformationList {
		m[aws.ToString(i.InstanceId)] = i
	}
	return m
}

func TestAgentOnlineAfterDelay(t *testing.T) {
	lat := latency.New(0.01, latency.Typical, 1)
	lat.Fix(latency.AgentOnline, 40) // 0.4 s at this scale
	e := newEnv(t, envOptions{lat: lat})
	inst := e.addInstance(func(i *Instance) { i.RunningAt = time.Now() })
	filter := &ssm.DescribeInstanceInformationInput{InstanceInformationFilterList: []types.InstanceInformationFilter{
		{Key: types.InstanceInformationFilterKeyInstanceIds, ValueSet: []string{inst.ID}},
	}}
	if got := describe(t, e, filter); len(got) != 0 {
		t.Fatalf("online at once: %+v", got)
	}
	_, err := e.ssm.SendCommand(context.Background(), &ssm.SendCommandInput{DocumentName: aws.String("AWS-RunShellScript"),
		InstanceIds: []string{inst.ID}, Parameters: map[string][]string{"commands": {"true"}}})
	var bad *types.InvalidInstanceId
	if !errors.As(err, &bad) {
		t.Fatalf("SendCommand before online: %v", err)
	}
	start := time.Now()
	var info types.InstanceInformation
	for {
		if got := describe(t, e, filter); len(got) == 1 {
			info = got[inst.ID]
			break
		}
		if time.Since(start) > 3*time.Second {
			t.Fatal("never online")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("online after %v, want about 0.4 s", d)
	}
	if info.PingStatus != types.PingStatusOnline || aws.ToString(info.PlatformName) != "Ubuntu" || aws.ToString(info.PlatformVersion) != "24.04" ||
		info.ResourceType != types.ResourceTypeEc2Instance || aws.ToString(info.IPAddress) != inst.PrivateIP ||
		aws.ToString(info.ComputerName) != hostnameFor(inst.PrivateIP, inst.ID) || info.PlatformType != types.PlatformTypeLinux ||
		aws.ToString(info.IamRole) != "mecd-node-test" || info.LastPingDateTime == nil {
		t.Fatalf("info = %+v", info)
	}
	if _, ok := e.sim.Host(inst.ID); !ok {
		t.Fatal("an online instance has a host")
	}
}

func TestNeverOnlineAndLifecycle(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.faults.NeverOnline(fault.Host{TagKey: "mecd:cluster-id", TagValue: "c-stuck", Index: fault.AnyIndex})
	stuck := e.addInstance(func(i *Instance) { i.Tags = map[string]string{"mecd:cluster-id": "c-stuck"} })
	online := e.addInstance()
	pending := e.addInstance(func(i *Instance) { i.State = "pending"; i.RunningAt = time.Time{} })
	gone := e.addInstance()
	describe(t, e, &ssm.DescribeInstanceInformationInput{}) // gone was online once
	e.insts.setState(gone.ID, "terminated")

	got := describe(t, e, &ssm.DescribeInstanceInformationInput{})
	if _, ok := got[stuck.ID]; ok {
		t.Fatal("NeverOnline host listed")
	}
	if _, ok := got[pending.ID]; ok {
		t.Fatal("pending host listed")
	}
	if got[online.ID].PingStatus != types.PingStatusOnline || got[gone.ID].PingStatus != types.PingStatusConnectionLost {
		t.Fatalf("got %+v", got)
	}
	for _, id := range []string{stuck.ID, gone.ID} {
		_, err := e.ssm.SendCommand(context.Background(), &ssm.SendCommandInput{DocumentName: aws.String("AWS-RunShellScript"),
			InstanceIds: []string{id}, Parameters: map[string][]string{"commands": {"true"}}})
		if apiCode(err) != "InvalidInstanceId" {
			t.Fatalf("SendCommand to %s: %v", id, err)
		}
	}
}

func TestDescribeInstanceInformationFiltersAndPages(t *testing.T) {
	e := newEnv(t, envOptions{})
	insts := e.addInstances(7)
	other := e.addInstance(func(i *Instance) { i.Tags = map[string]string{"mecd:cluster-id": "c-other"} })
	ctx := context.Background()

	var seen []string
	var token *string
	pages := 0
	for {
		out, err := e.ssm.DescribeInstanceInformation(ctx, &ssm.DescribeInstanceInformationInput{MaxResults: aws.Int32(5), NextToken: token,
			Filters: []types.InstanceInformationStringFilter{{Key: aws.String("tag:mecd:cluster-id"), Values: []string{"c-test"}}}})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, i := range out.InstanceInformationList {
			seen = append(seen, aws.ToString(i.InstanceId))
		}
		if token = out.NextToken; token == nil {
			break
		}
	}
	if len(seen) != 7 || pages != 2 {
		t.Fatalf("seen %d in %d pages", len(seen), pages)
	}
	for _, id := range seen {
		if id == other.ID {
			t.Fatal("tag filter ignored")
		}
	}
	got := describe(t, e, &ssm.DescribeInstanceInformationInput{Filters: []types.InstanceInformationStringFilter{
		{Key: aws.String("InstanceIds"), Values: []string{insts[0].ID, insts[1].ID}},
		{Key: aws.String("PingStatus"), Values: []string{"Online"}},
	}})
	if len(got) != 2 {
		t.Fatalf("InstanceIds+PingStatus: %d", len(got))
	}
	for _, tc := range []struct {
		in   ssm.DescribeInstanceInformationInput
		code string
	}{
		{ssm.DescribeInstanceInformationInput{MaxResults: aws.Int32(2)}, "ValidationException"},
		{ssm.DescribeInstanceInformationInput{Filters: []types.InstanceInformationStringFilter{{Key: aws.String("Color"), Values: []string{"x"}}}}, "InvalidFilterKey"},
		{ssm.DescribeInstanceInformationInput{NextToken: aws.String("nope")}, "InvalidNextToken"},
	} {
		if _, err := e.ssm.DescribeInstanceInformation(ctx, &tc.in); apiCode(err) != tc.code {
			t.Fatalf("want %s, got %v", tc.code, err)
		}
	}
}
