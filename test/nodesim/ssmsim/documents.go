package ssmsim

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mecd/mecd/test/nodesim/sigv4"
)

// document is a Command document the simulator can run: one step of the
// aws:runShellScript plugin, whose inputs name the document's parameters.
// Documents are regional (CreateDocument in one region is not seen in
// another); AWS-RunShellScript is Amazon's, in every region.
type document struct {
	name, region, owner string
	schemaVersion       string
	docType, format     string
	content             string
	created             time.Time
	// plugin is the name GetCommandInvocation reports: the plugin of a
	// schema 1.2 document (AWS-RunShellScript's runtimeConfig key), the step
	// name of a 2.2 one (https://docs.aws.amazon.com/systems-manager/latest/userguide/documents-schemas-features.html).
	plugin string
	params map[string]docParam
	// The plugin's inputs: runCommand, timeoutSeconds and workingDirectory,
	// each a literal or a "{{ parameter }}" reference.
	runCommand, timeoutSeconds, workingDirectory string
}

type docParam struct {
	Type           string          `json:"type"`
	Description    string          `json:"description,omitempty"`
	Default        json.RawMessage `json:"default,omitempty"`
	AllowedPattern string          `json:"allowedPattern,omitempty"`
}

// executionTimeoutPattern is AWS-RunShellScript's allowedPattern for
// executionTimeout (1-172800 seconds).
const executionTimeoutPattern = `([1-9][0-9]{0,4})|(1[0-6][0-9]{4})|(17[0-1][0-9]{3})|(172[0-7][0-9]{2})|(172800)`

// runShellScript is AWS-RunShellScript as `aws ssm get-document --name
// AWS-RunShellScript` shows it: schema 1.2, plugin aws:runShellScript,
// parameters commands (required), workingDirectory and executionTimeout.
var runShellScript = &document{
	name: "AWS-RunShellScript", owner: "Amazon", schemaVersion: "1.2", docType: "Command", format: "JSON",
	plugin: "aws:runShellScript",
	params: map[string]docParam{
		"commands":         {Type: "StringList", Description: "(Required) Specify a shell script or a command to run."},
		"workingDirectory": {Type: "String", Default: json.RawMessage(`""`), Description: "(Optional) The path to the working directory on your instance."},
		"executionTimeout": {Type: "String", Default: json.RawMessage(`"3600"`), AllowedPattern: executionTimeoutPattern,
			Description: "(Optional) The time in seconds for a command to complete before it is considered to have failed. Default is 3600 (1 hour). Maximum is 172800 (48 hours)."},
	},
	runCommand: "{{ commands }}", timeoutSeconds: "{{ executionTimeout }}", workingDirectory: "{{ workingDirectory }}",
}

// Document names: CreateDocument's Name pattern, and the prefixes AWS
// reserves (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_CreateDocument.html).
var (
	reDocName        = regexp.MustCompile(`^[a-zA-Z0-9_\-.]{3,128}$`)
	reservedPrefixes = []string{"aws", "amazon", "amzn"}
	reParamRef       = regexp.MustCompile(`^\{\{\s*([A-Za-z0-9]+)\s*\}\}$`)
)

// defaultRegion answers a request without a credential scope.
const defaultRegion = "us-east-1"

// maxDocumentBytes is CreateDocument's content limit (64 KB).
const maxDocumentBytes = 64 * 1024

// lookupDocument finds a document by name in region; the caller holds s.mu.
func (s *Sim) lookupDocumentLocked(region, name string) (*document, error) {
	if name == runShellScript.name {
		return runShellScript, nil
	}
	if d := s.docs[region+"/"+name]; d != nil {
		return d, nil
	}
	return nil, badRequest("InvalidDocument", "Document with name %s does not exist.", name)
}

type createDocumentInput struct {
	Content, Name, DocumentType, DocumentFormat, TargetType, VersionName string
}

// createDocument answers CreateDocument for a Command document in JSON
// whose one step is aws:runShellScript. The simulator refuses other
// documents it could not run (a limitation, not AWS's behaviour).
func (s *Sim) createDocument(r *http.Request) (any, error) {
	var in createDocumentInput
	if err := decodeBody(r, &in); err != nil {
		return nil, err
	}
	if !reDocName.MatchString(in.Name) {
		return nil, validationError("Value '%s' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9_\\-.]{3,128}$", in.Name)
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(strings.ToLower(in.Name), p) {
			// The prefixes are documented; the error code is not: the
			// simulator answers as for any other invalid name.
			return nil, validationError("Value '%s' at 'name' failed to satisfy constraint: the prefix %q is reserved by AWS", in.Name, p)
		}
	}
	if len(in.Content) > maxDocumentBytes {
		return nil, badRequest("MaxDocumentSizeExceeded", "The content of the document must not exceed 64KB.")
	}
	if t := orDefault(in.DocumentType, "Command"); t != "Command" {
		return nil, badRequest("InvalidDocumentType", "the node simulator runs Command documents only, not %s", t)
	}
	if f := orDefault(in.DocumentFormat, "JSON"); f != "JSON" {
		return nil, badRequest("InvalidDocumentContent", "the node simulator reads JSON documents only, not %s", f)
	}
	d, err := parseDocument(in.Content)
	if err != nil {
		return nil, err
	}
	d.name, d.region, d.owner, d.content, d.created = in.Name, sigv4.Region(r, defaultRegion), s.cfg.AccountID, in.Content, time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	key := d.region + "/" + d.name
	if _, ok := s.docs[key]; ok || d.name == runShellScript.name {
		return nil, badRequest("DocumentAlreadyExists", "Document with same name %s already exists", d.name)
	}
	s.docs[key] = d
	desc := describeDoc(d)
	// AWS answers while the document is still being created; it is
	// Active seconds later (CloudFormation waits for that). The simulator
	// makes it Active at once.
	desc["Status"] = "Creating"
	return map[string]any{"DocumentDescription": desc}, nil
}

// parseDocument reads a schema 2.2 Command document of one aws:runShellScript step.
func parseDocument(content string) (*document, error) {
	var doc struct {
		SchemaVersion string              `json:"schemaVersion"`
		Parameters    map[string]docParam `json:"parameters"`
		MainSteps     []struct {
			Action string         `json:"action"`
			Name   string         `json:"name"`
			Inputs map[string]any `json:"inputs"`
		} `json:"mainSteps"`
	}
	if err := json.Unmarshal([]byte(content), &doc); err != nil {
		return nil, badRequest("InvalidDocumentContent", "JSON not well-formed. at Line: 1, Column: 1")
	}
	if doc.SchemaVersion != "2.2" {
		return nil, badRequest("InvalidDocumentSchemaVersion", "the node simulator runs schemaVersion 2.2 Command documents, not %q", doc.SchemaVersion)
	}
	if len(doc.MainSteps) != 1 || doc.MainSteps[0].Action != "aws:runShellScript" || doc.MainSteps[0].Name == "" {
		return nil, badRequest("InvalidDocumentContent", "the node simulator runs documents of one named aws:runShellScript step")
	}
	st := doc.MainSteps[0]
	d := &document{schemaVersion: doc.SchemaVersion, docType: "Command", format: "JSON", plugin: st.Name, params: doc.Parameters}
	for k, p := range d.params {
		if p.Type != "String" && p.Type != "StringList" {
			return nil, badRequest("InvalidDocumentContent", "parameter %s: the node simulator supports String and StringList parameters", k)
		}
	}
	in := func(key string) (string, error) {
		switch v := st.Inputs[key].(type) {
		case nil:
			return "", nil
		case string:
			if m := reParamRef.FindStringSubmatch(v); m != nil {
				if _, ok := d.params[m[1]]; !ok {
					return "", badRequest("InvalidDocumentContent", "Parameter %s is not defined in the document", m[1])
				}
			}
			return v, nil
		case float64:
			return strconv.Itoa(int(v)), nil
		}
		return "", badRequest("InvalidDocumentContent", "the node simulator reads input %s as a string or a {{ parameter }}", key)
	}
	var err error
	for key, dst := range map[string]*string{"runCommand": &d.runCommand, "timeoutSeconds": &d.timeoutSeconds, "workingDirectory": &d.workingDirectory} {
		if *dst, err = in(key); err != nil {
			return nil, err
		}
	}
	if d.runCommand == "" {
		return nil, badRequest("InvalidDocumentContent", "aws:runShellScript needs runCommand")
	}
	return d, nil
}

func describeDoc(d *document) map[string]any {
	var params []map[string]any
	for _, k := range slices.Sorted(maps.Keys(d.params)) {
		p := d.params[k]
		item := map[string]any{"Name": k, "Type": p.Type, "Description": p.Description}
		var def string
		if json.Unmarshal(p.Default, &def) == nil {
			item["DefaultValue"] = def
		}
		params = append(params, item)
	}
	out := map[string]any{
		"Name": d.name, "Owner": d.owner, "DocumentType": d.docType, "DocumentFormat": d.format, "SchemaVersion": d.schemaVersion,
		"Status": "Active", "DocumentVersion": "1", "LatestVersion": "1", "DefaultVersion": "1",
		"PlatformTypes": []string{"Linux", "MacOS"}, "Parameters": params,
	}
	if !d.created.IsZero() {
		out["CreatedDate"] = epoch(d.created)
	}
	return out
}

// documentAction reads a DescribeDocument or DeleteDocument request and
// runs do on the named document of the request's region, under s.mu.
func (s *Sim) documentAction(r *http.Request, do func(region string, d *document) (any, error)) (any, error) {
	var in struct{ Name string }
	if err := decodeBody(r, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	region := sigv4.Region(r, defaultRegion)
	d, err := s.lookupDocumentLocked(region, in.Name)
	if err != nil {
		return nil, err
	}
	return do(region, d)
}

func (s *Sim) describeDocument(r *http.Request) (any, error) {
	return s.documentAction(r, func(_ string, d *document) (any, error) {
		return map[string]any{"Document": describeDoc(d)}, nil
	})
}

func (s *Sim) deleteDocument(r *http.Request) (any, error) {
	return s.documentAction(r, func(region string, d *document) (any, error) {
		if d.owner == runShellScript.owner {
			return nil, badRequest("InvalidDocumentOperation", "You can't delete a document owned by Amazon.")
		}
		delete(s.docs, region+"/"+d.name)
		return map[string]any{}, nil
	})
}

// commandOf is a SendCommand's parameters resolved against d's
// definitions (unknown, missing, or not matching allowedPattern:
// InvalidParameters) with defaults filled, and the plugin's inputs.
type commandOf struct {
	params      map[string][]string
	execTimeout time.Duration
	workingDir  string
	script      string
}

func resolveCommand(d *document, given map[string][]string) (commandOf, error) {
	for k := range given {
		if _, ok := d.params[k]; !ok {
			return commandOf{}, badRequest("InvalidParameters", "Parameter \"%s\" is not defined in the document.", k)
		}
	}
	out := commandOf{params: map[string][]string{}}
	for _, k := range slices.Sorted(maps.Keys(d.params)) {
		p := d.params[k]
		v, ok := given[k]
		if !ok {
			var def string
			if json.Unmarshal(p.Default, &def) != nil {
				return commandOf{}, badRequest("InvalidParameters", "Parameters list does not contain value for required parameter: %s", k)
			}
			v = []string{def}
		}
		if p.Type == "String" && len(v) != 1 {
			return commandOf{}, badRequest("InvalidParameters", "Parameter \"%s\" takes a single value.", k)
		}
		if p.AllowedPattern != "" {
			re, err := regexp.Compile(`^(?:` + p.AllowedPattern + `)$`)
			if err != nil {
				return commandOf{}, fmt.Errorf("document %s: parameter %s: %w", d.name, k, err)
			}
			for _, x := range v {
				if !re.MatchString(x) {
					return commandOf{}, badRequest("InvalidParameters", "Parameter \"%s\" \"%s\" does not match the allowed pattern %s.", k, strings.Join(v, ","), p.AllowedPattern)
				}
			}
		}
		out.params[k] = append([]string(nil), v...)
	}
	input := func(v string) []string {
		if m := reParamRef.FindStringSubmatch(v); m != nil {
			return out.params[m[1]]
		}
		if v == "" {
			return nil
		}
		return []string{v}
	}
	out.script = strings.Join(input(d.runCommand), "\n") + "\n"
	secs := 3600
	if t := input(d.timeoutSeconds); len(t) == 1 && t[0] != "" {
		n, err := strconv.Atoi(t[0])
		if err != nil || n < 1 || n > 172800 {
			return commandOf{}, badRequest("InvalidParameters", "timeoutSeconds \"%s\" is not a number of seconds from 1 to 172800.", t[0])
		}
		secs = n
	}
	out.execTimeout = time.Duration(secs) * time.Second
	if wd := input(d.workingDirectory); len(wd) == 1 {
		out.workingDir = wd[0]
	}
	return out, nil
}
