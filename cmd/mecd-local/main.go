// Command mecd-local runs mecd on the local runtime: kumo as a process, the
// front on 127.0.0.1:4566, the node simulator and the real Lambda binaries.
//
//	mecd-local demo [-kumo bin/kumo] [-scale 0.02] [-nodes 3]
//
// The demo provisions a MEC by starting the provision state machine as the
// AWS console would, prints each step as it completes and the final record,
// then stops every process it started.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mecd/mecd/internal/record"
	"github.com/mecd/mecd/test/localrt"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mecd-local:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) < 2 || os.Args[1] != "demo" {
		return errors.New("usage: mecd-local demo [-kumo PATH] [-scale 0.02] [-nodes 3] [-name NAME]")
	}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	kumoBin := fs.String("kumo", "bin/kumo", "kumo binary (make builds it from the pinned module)")
	scale := fs.Float64("scale", 0.02, "latency time scale: 0.02 turns AWS's ~3.5 minutes into ~4 seconds")
	nodes := fs.Int("nodes", 3, "nodes in the demo MEC")
	name := fs.String("name", "edge-demo", "the demo MEC's name")
	if err := fs.Parse(os.Args[2:]); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	kumoURL, kumoStop, err := startKumo(ctx, *kumoBin)
	if err != nil {
		return err
	}
	defer kumoStop()
	fmt.Printf("mecd demo: kumo %s started (pid %d)\n", kumoURL, kumoPID)

	t0 := time.Now()
	rt, err := localrt.Start(ctx, localrt.Options{
		KumoURL: kumoURL, Scale: *scale, Processes: 3,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	})
	if err != nil {
		return err
	}
	defer func() {
		rt.Close()
		fmt.Println("mecd demo: local runtime stopped; nothing left running")
	}()
	fmt.Printf("mecd demo: local runtime up in %v (front %s, %d functions)\n", time.Since(t0).Round(time.Millisecond), rt.Endpoint, len(rt.Deployed.FunctionNames))

	input := fmt.Sprintf(`{"name":%q,"nodeCount":%d,"addons":["dns","hostpath-storage"],"ttl":"8h"}`, *name, *nodes)
	fmt.Printf("mecd demo: starting the provision state machine as the console would, input %s\n", input)
	start := time.Now()
	arn, err := rt.StartExecution(ctx, rt.Deployed.StateMachineArns["provision"], "", input)
	if err != nil {
		return err
	}
	id, err := waitForRecord(ctx, rt, *name)
	if err != nil {
		return err
	}
	fmt.Printf("mecd demo: MEC %s record created\n", id)
	m, err := follow(ctx, rt, id, start)
	if err != nil {
		return err
	}
	out, err := rt.WaitExecution(ctx, arn, time.Minute)
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	fmt.Printf("mecd demo: execution %s in %v; final record:\n%s\n", out.Status, time.Since(start).Round(time.Millisecond), b)
	if m.Status != record.Ready {
		return fmt.Errorf("MEC %s ended %s at step %s: %s", m.ID, m.Status, m.FailedStep, m.FailureCause)
	}
	fmt.Printf("mecd demo: READY: endpoint %s, kubeconfig in Parameter Store at %s\n", m.Endpoint, m.KubeconfigParameter)
	return nil
}

var kumoPID int

// startKumo runs kumo as a process on a free loopback port and returns a
// function that stops it by its pid.
func startKumo(ctx context.Context, bin string) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("find a port for kumo: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	cmd := exec.Command(bin, "--host", "127.0.0.1", "--port", strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "KUMO_LOG_LEVEL=error")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start kumo (%s; run `make demo`, which builds it): %w", bin, err)
	}
	kumoPID = cmd.Process.Pid
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/")
		if err == nil {
			_ = resp.Body.Close()
			return url, stop, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return "", nil, fmt.Errorf("kumo did not answer on %s: %w", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitForRecord finds the id of the MEC the console run creates (its name claim).
func waitForRecord(ctx context.Context, rt *localrt.Runtime, name string) (string, error) {
	ddb := rt.Clients("").DynamoDB
	for i := 0; i < 600; i++ {
		out, err := ddb.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(localrt.TableName), ConsistentRead: aws.Bool(true),
			Key: map[string]dtypes.AttributeValue{"pk": &dtypes.AttributeValueMemberS{Value: "name#" + name}}})
		if err != nil {
			return "", err
		}
		if v, ok := out.Item["clusterId"].(*dtypes.AttributeValueMemberS); ok {
			return v.Value, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "", fmt.Errorf("no record for %s after 12s", name)
}

// follow prints each step as the record shows it completed, until the MEC
// leaves CREATING.
func follow(ctx context.Context, rt *localrt.Runtime, id string, start time.Time) (*record.MEC, error) {
	store := &record.Store{DB: rt.Clients("").DynamoDB, Table: localrt.TableName}
	printed := map[string]bool{}
	for i := 0; i < 6000; i++ {
		m, err := store.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		for _, st := range m.Steps {
			key := fmt.Sprintf("%s#%d#%s", st.Name, st.Attempt, st.Outcome)
			if st.Outcome == record.Running || printed[key] {
				continue
			}
			printed[key] = true
			fmt.Printf("  [%6.2fs] %-14s %-9s %6.2fs  %s\n", time.Since(start).Seconds(), st.Name, st.Outcome, st.Seconds, short(st.Detail))
		}
		if m.Status != record.Creating {
			return m, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return nil, fmt.Errorf("MEC %s still CREATING after 150s", id)
}

func short(s string) string {
	if len(s) > 70 {
		return s[:67] + "..."
	}
	return s
}
