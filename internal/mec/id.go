package mec

import (
	"crypto/rand"
	"encoding/binary"
	"regexp"
	"strings"
	"time"
)

const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

// NewID returns a unique id that sorts by creation time ("mec-" + 10 time
// chars + 16 random chars, lowercase Crockford base32): usable in tags,
// parameter paths, security group and execution names.
func NewID(now time.Time) string {
	var b [26]byte
	ms := uint64(now.UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = crockford[ms&31]
		ms >>= 5
	}
	var r [10]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never fails on Linux
	hi := binary.BigEndian.Uint64(r[:8])
	lo := uint64(binary.BigEndian.Uint16(r[8:]))
	for i := 0; i < 16; i++ {
		if i < 12 {
			b[10+i] = crockford[hi&31]
			hi >>= 5
		} else {
			b[10+i] = crockford[lo&31]
			lo >>= 5
		}
	}
	return "mec-" + string(b[:])
}

var reID = regexp.MustCompile(`^mec-[0-9a-z]{26}$`)

// ValidID reports whether id has the form NewID produces.
func ValidID(id string) bool { return reID.MatchString(id) }

// IDTime is when an id of NewID's form was made (false for another form).
func IDTime(id string) (time.Time, bool) {
	if !ValidID(id) {
		return time.Time{}, false
	}
	var ms uint64
	for _, c := range id[4:14] {
		i := strings.IndexRune(crockford, c)
		if i < 0 {
			return time.Time{}, false
		}
		ms = ms<<5 | uint64(i)
	}
	return time.UnixMilli(int64(ms)).UTC(), true
}
