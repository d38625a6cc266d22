package ec2sim

import "regexp"

// selection is how a Describe call picks its items: by the ids listed in
// idParam (each of the form idForm, else malformed(id); unknown ones
// reported together by missing), or every item kept by inScope.
type selection[T any] struct {
	idParam, listName string // "VolumeId", "volumeIds"
	idForm            *regexp.Regexp
	malformed         func(id string) error
	missing           func(ids []string) error
}

// pick applies the selection to all (keyed by id) for one call.
func (sel selection[T]) pick(c *call, all map[string]T, inScope func(T) bool) ([]T, error) {
	ids := c.p.list(sel.idParam)
	if err := noMaxWithIDs(c.p, ids, sel.listName); err != nil {
		return nil, err
	}
	var items []T
	if len(ids) == 0 {
		for _, it := range all {
			if inScope(it) {
				items = append(items, it)
			}
		}
		return items, nil
	}
	var missing []string
	for _, id := range ids {
		if sel.idForm != nil && !sel.idForm.MatchString(id) {
			return nil, sel.malformed(id)
		}
		it, ok := all[id]
		if !ok || !inScope(it) {
			missing = append(missing, id)
			continue
		}
		items = append(items, it)
	}
	if len(missing) > 0 {
		return nil, sel.missing(missing)
	}
	return items, nil
}

// listing filters and pages a Describe call's items as EC2 does: Filter.N
// on the named fields and tags, then MaxResults (minMax-maxMax) and NextToken.
type listing[T any] struct {
	fields         fields[T]
	tags           func(T) map[string]string
	key            func(T) string
	minMax, maxMax int
}

func (l listing[T]) apply(c *call, items []T) ([]T, string, error) {
	tags := l.tags
	if tags == nil {
		tags = func(T) map[string]string { return nil }
	}
	items, err := applyFilters(items, parseFilters(c.p), l.fields, tags)
	if err != nil {
		return nil, "", err
	}
	return page(items, l.key, c.p, l.minMax, l.maxMax)
}
