package localrt

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
)

// reTemplate matches a path template's {name} or greedy {name+} segment.
var reTemplate = regexp.MustCompile(`\{([^{}/]+?)\+?\}`)

// fixProxyEvent gives a REST proxy event the concrete path AWS sends.
// kumo v0.33.1 puts the resource template in "path" ("/{proxy+}",
// "/mecs/{id}"; internal/service/execapi/event.go, `Path: req.ResourcePath`),
// while API Gateway sends the path the client asked for ("path":
// "/mecs/mec-..."), with the template in "resource" (API Gateway developer
// guide, "Input format of a Lambda function for proxy integration"). The
// template is filled from pathParameters, as the client's path was matched.
func fixProxyEvent(body []byte) []byte {
	var ev map[string]any
	if json.Unmarshal(body, &ev) != nil {
		return body
	}
	path, _ := ev["path"].(string)
	params, _ := ev["pathParameters"].(map[string]any)
	if _, ok := ev["httpMethod"]; !ok || !strings.Contains(path, "{") {
		return body
	}
	concrete := reTemplate.ReplaceAllStringFunc(path, func(m string) string {
		name := strings.TrimSuffix(strings.Trim(m, "{}"), "+")
		if v, ok := params[name].(string); ok {
			return v
		}
		return m
	})
	ev["path"] = concrete
	if rc, ok := ev["requestContext"].(map[string]any); ok {
		if stage, ok := rc["stage"].(string); ok && stage != "" {
			rc["path"] = "/" + stage + concrete
		}
	}
	out, err := json.Marshal(ev)
	if err != nil {
		return body
	}
	return out
}

// rewriteProxyEvent applies fixProxyEvent to an invoke request's body.
func rewriteProxyEvent(r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	fixed := fixProxyEvent(body)
	r.Body = io.NopCloser(bytes.NewReader(fixed))
	r.ContentLength = int64(len(fixed))
	return nil
}
