package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestOverrides(t *testing.T) {
	ctx := map[string]any{"mecd:region": "eu-west-1"}
	if err := overrides(ctx, []string{"-c", "mecd:region=us-east-1", "--context", "mecd:regions=a,b", "--context=k=v=w"}); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"mecd:region": "us-east-1", "mecd:regions": "a,b", "k": "v=w"}
	if !reflect.DeepEqual(ctx, want) {
		t.Errorf("context %v, want %v", ctx, want)
	}
	for _, bad := range [][]string{{"-c"}, {"-c", "novalue"}, {"deploy"}} {
		if err := overrides(map[string]any{}, bad); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestFindingsFailOnErrorsAndNagWarnings(t *testing.T) {
	dir := t.TempDir()
	manifest := `{"version":"55.0.0","artifacts":{"mecd":{"type":"aws:cloudformation:stack","metadata":{
	  "/mecd/Api/Rest/Resource":[{"type":"aws:cdk:error","data":"AwsSolutions-APIG2: no request validation"}],
	  "/mecd/Table":[{"type":"aws:cdk:warning","data":"AwsSolutions-DDB3: no PITR"},{"type":"aws:cdk:warning","data":"some other warning"},
	                 {"type":"aws:cdk:info","data":"AwsSolutions-X: info"}]}}}}`
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := findings(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/mecd/Api/Rest/Resource: AwsSolutions-APIG2: no request validation", "/mecd/Table: AwsSolutions-DDB3: no PITR"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings %v, want %v", got, want)
	}
}
