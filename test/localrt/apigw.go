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

// fixProxyEvent gives a REST proxy event the shape AWS sends.
//   - kumo v0.33.1 puts the resource template in "path" ("/{proxy+}",
//     "/mecs/{id}"; internal/service/execapi/event.go, `Path:
//     req.ResourcePath`), while API Gateway sends the path the client asked
//     for ("path": "/mecs/mec-..."), with the template in "resource" (API
//     Gateway developer guide, "Input format of a Lambda function for proxy
//     integration"). The template is filled from pathParameters, as the
//     client's path was matched.
//   - kumo sends no requestContext.identity; for a method with AWS_IAM
//     authorization API Gateway sends the signer's (accountId, caller,
//     user, userArn, accessKey: "$context.identity" in the developer
//     guide). callerOf names the principal behind the request's access key.
func fixProxyEvent(body []byte, callerOf func(accessKey string) (string, bool)) []byte {
	var ev map[string]any
	if json.Unmarshal(body, &ev) != nil {
		return body
	}
	if _, ok := ev["httpMethod"]; !ok {
		return body
	}
	path, _ := ev["path"].(string)
	params, _ := ev["pathParameters"].(map[string]any)
	rc, _ := ev["requestContext"].(map[string]any)
	changed := false
	if strings.Contains(path, "{") {
		concrete := reTemplate.ReplaceAllStringFunc(path, func(m string) string {
			name := strings.TrimSuffix(strings.Trim(m, "{}"), "+")
			if v, ok := params[name].(string); ok {
				return v
			}
			return m
		})
		ev["path"] = concrete
		if stage, ok := rc["stage"].(string); ok && stage != "" {
			rc["path"] = "/" + stage + concrete
		}
		changed = true
	}
	if rc != nil && callerOf != nil {
		id, _ := rc["identity"].(map[string]any)
		if id == nil || id["userArn"] == nil || id["userArn"] == "" {
			headers, _ := ev["headers"].(map[string]any)
			auth, _ := headers["Authorization"].(string)
			if auth == "" {
				auth, _ = headers["authorization"].(string)
			}
			if m := credScope.FindStringSubmatch(auth); m != nil {
				if arn, ok := callerOf(m[1]); ok {
					if id == nil {
						id = map[string]any{}
					}
					account := strings.SplitN(arn, ":", 6)[4]
					id["accessKey"], id["accountId"], id["userArn"] = m[1], account, arn
					id["caller"], id["user"] = "AROALOCAL:"+arn[strings.LastIndex(arn, "/")+1:], "AROALOCAL:"+arn[strings.LastIndex(arn, "/")+1:]
					rc["identity"] = id
					changed = true
				}
			}
		}
	}
	if !changed {
		return body
	}
	out, err := json.Marshal(ev)
	if err != nil {
		return body
	}
	return out
}

// rewriteProxyEvent applies fixProxyEvent to an invoke request's body.
func rewriteProxyEvent(r *http.Request, callerOf func(string) (string, bool)) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	fixed := fixProxyEvent(body, callerOf)
	r.Body = io.NopCloser(bytes.NewReader(fixed))
	r.ContentLength = int64(len(fixed))
	return nil
}
