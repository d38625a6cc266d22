package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// decodeObject returns the top-level keys in order and their raw values; a
// repeated key maps to nil so the caller can report it.
func decodeObject(data []byte) ([]string, map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil, errors.New(`is empty; send one JSON object such as {"name": "edge-1"}`)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, fmt.Errorf("must be one JSON object: %s", jsonMsg(err))
	}
	if tok != json.Delim('{') {
		return nil, nil, fmt.Errorf("must be one JSON object, not %s", jsonKind(tok))
	}
	var keys []string
	vals := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("must be one JSON object: %s", jsonMsg(err))
		}
		k, _ := tok.(string) // object keys are always strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, fmt.Errorf("must be one JSON object: %s", jsonMsg(err))
		}
		if _, dup := vals[k]; dup {
			vals[k] = nil
			continue
		}
		keys = append(keys, k)
		vals[k] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, nil, fmt.Errorf("must be one JSON object: %s", jsonMsg(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, fmt.Errorf("must be exactly one JSON object; unexpected data after it at byte %d", dec.InputOffset())
	}
	return keys, vals, nil
}

func jsonMsg(err error) string {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonKind(tok json.Token) string {
	switch tok.(type) {
	case json.Delim:
		return "an array"
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	default:
		return "null"
	}
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// isSet says whether a field was given a non-null, non-empty value.
func isSet(raw json.RawMessage) bool {
	return raw != nil && !isNull(raw) && string(raw) != `""`
}

func isZeroNumber(raw json.RawMessage) bool {
	var n json.Number
	if raw == nil || json.Unmarshal(raw, &n) != nil {
		return false
	}
	f, err := n.Float64()
	return err == nil && f == 0
}

// stringFields are the fields that take one string, each with what would be
// valid (the message for a value of another type).
var stringFields = map[string]struct {
	field func(*Spec) *string
	msg   string
}{
	"name":            {func(s *Spec) *string { return &s.Name }, msgName},
	"region":          {func(s *Spec) *string { return &s.Region }, msgRegion},
	"instanceType":    {func(s *Spec) *string { return &s.InstanceType }, msgInstanceType},
	"amiId":           {func(s *Spec) *string { return &s.AmiID }, msgAmiID},
	"vpcId":           {func(s *Spec) *string { return &s.VpcID }, msgVpcID},
	"subnetId":        {func(s *Spec) *string { return &s.SubnetID }, msgSubnetID},
	"ebsKmsKeyId":     {func(s *Spec) *string { return &s.EBSKmsKeyID }, msgKMSKey},
	"microk8sChannel": {func(s *Spec) *string { return &s.Microk8sChannel }, msgChannel},
	"ttl":             {func(s *Spec) *string { return &s.TTL }, msgTTL},
}

// decodeField decodes one known field, or reports an unknown one. null is the
// same as leaving the field out.
func decodeField(s *Spec, key string, raw json.RawMessage, verr *ValidationError) {
	str := func(dst *string, msg string) {
		if !isNull(raw) && json.Unmarshal(raw, dst) != nil {
			verr.Add(key, msg)
		}
	}
	num := func(dst *int, msg string) {
		if !isNull(raw) && json.Unmarshal(raw, dst) != nil {
			verr.Add(key, "must be a whole number, "+strings.TrimPrefix(msg, "must be "))
		}
	}
	if f, ok := stringFields[key]; ok {
		if string(raw) == `""` && key != "name" {
			// An empty string (often a template's unset variable) is not a
			// request for the default: say so rather than replace it.
			verr.Add(key, "must not be empty; leave the field out for the default, or "+strings.TrimPrefix(f.msg, "must "))
			return
		}
		str(f.field(s), f.msg)
		return
	}
	switch key {
	case "nodeCount":
		num(&s.NodeCount, msgNodeCount)
	case "addons":
		s.Addons = decodeStrings(key, raw, "must be a list of addon names; each "+msgAddon, msgAddon, verr)
	case "apiAccessCidrs":
		s.APIAccessCIDRs = decodeStrings(key, raw, "must be a list of IPv4 CIDRs such as [\"203.0.113.0/24\"]", msgCIDR, verr)
	case "nodePortCidrs":
		s.NodePortCIDRs = decodeStrings(key, raw, "must be a list of IPv4 CIDRs such as [\"203.0.113.0/24\"]", msgCIDR, verr)
	case "publicEndpoint":
		if !isNull(raw) && json.Unmarshal(raw, &s.PublicEndpoint) != nil {
			verr.Add(key, msgBool)
		}
	case "allowWorldAccess":
		if !isNull(raw) && json.Unmarshal(raw, &s.AllowWorldAccess) != nil {
			verr.Add(key, msgBool)
		}
	case "haControlPlane":
		var b *bool
		if json.Unmarshal(raw, &b) != nil {
			verr.Add(key, msgBool)
		}
		s.HAControlPlane = b
	case "rootVolumeGiB":
		num(&s.RootVolumeGiB, msgRootVolume)
	case "dataVolumes":
		s.DataVolumes = decodeDataVolumes(raw, verr)
	case "expiresAt":
		var v string
		if isNull(raw) {
			return
		}
		if json.Unmarshal(raw, &v) != nil {
			verr.Add(key, msgExpiresAt)
			return
		}
		if v == "" {
			verr.Add(key, "must not be empty; leave the field out for no expiry, or "+strings.TrimPrefix(msgExpiresAt, "must "))
			return
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			verr.Add(key, msgExpiresAt)
			return
		}
		t = t.UTC()
		s.ExpiresAt = &t
	case "tags":
		s.Tags = decodeTags(raw, verr)
	default:
		msg := "unknown field; valid fields are " + strings.Join(jsonFields, ", ")
		for _, f := range jsonFields {
			if strings.EqualFold(f, key) {
				msg = fmt.Sprintf("unknown field; did you mean %q? (field names are case-sensitive)", f)
			}
		}
		verr.Add(key, msg)
	}
}

// decodeStrings decodes a list of strings, reporting a bad element by index.
// A bad element is kept as "" so later indexes still line up.
func decodeStrings(key string, raw json.RawMessage, listMsg, elemMsg string, verr *ValidationError) []string {
	if isNull(raw) {
		return nil
	}
	var elems []json.RawMessage
	if json.Unmarshal(raw, &elems) != nil {
		verr.Add(key, listMsg)
		return nil
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		if isNull(e) || json.Unmarshal(e, &out[i]) != nil {
			verr.Add(fmt.Sprintf("%s[%d]", key, i), "must be a string; "+elemMsg)
		}
	}
	return out
}

func decodeTags(raw json.RawMessage, verr *ValidationError) map[string]string {
	if isNull(raw) {
		return nil
	}
	keys, vals, err := decodeObject(raw)
	if err != nil {
		verr.Add("tags", "must be an object of tag keys to string values")
		return nil
	}
	tags := make(map[string]string, len(keys))
	for _, k := range keys {
		if vals[k] == nil {
			verr.Add("tags."+k, "appears more than once; give each tag once")
			continue
		}
		var v string
		if isNull(vals[k]) || json.Unmarshal(vals[k], &v) != nil {
			verr.Add("tags."+k, msgTagValue)
		}
		tags[k] = v
	}
	return tags
}

// decodeDataVolumes reads {"count": N, "sizeGiB": G} strictly; an explicit
// 0 size is refused rather than replaced by the default.
func decodeDataVolumes(raw json.RawMessage, verr *ValidationError) *DataVolumes {
	if isNull(raw) {
		return nil
	}
	keys, vals, err := decodeObject(raw)
	if err != nil {
		verr.Add("dataVolumes", msgDataVolumes)
		return nil
	}
	dv := &DataVolumes{}
	for _, k := range keys {
		key := "dataVolumes." + k
		if vals[k] == nil {
			verr.Add(key, "appears more than once; give each field once")
			continue
		}
		var dst *int
		var msg string
		switch k {
		case "count":
			dst, msg = &dv.Count, msgDataCount
		case "sizeGiB":
			dst, msg = &dv.SizeGiB, msgDataSize
			if isZeroNumber(vals[k]) {
				verr.Add(key, msg)
			}
		default:
			verr.Add(key, `unknown field; dataVolumes takes "count" and "sizeGiB"`)
			continue
		}
		if isNull(vals[k]) || json.Unmarshal(vals[k], dst) != nil {
			verr.Add(key, "must be a whole number, "+strings.TrimPrefix(msg, "must be "))
		}
	}
	if _, ok := vals["count"]; !ok {
		verr.Add("dataVolumes.count", "is required; "+msgDataCount)
	}
	return dv
}
