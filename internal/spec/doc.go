// Package spec owns the MEC spec (DESIGN section 3): strict parsing, defaults and
// validation, the same for the API, the CLI and console runs, without calling AWS.
//
// It parses, defaults and validates a MEC spec (DESIGN section 3),
// without calling AWS: internal/resolve checks what depends on the region.
//
// The same rules serve the API and console-started executions, so a spec is
// accepted or refused the same way whichever door it came through.
package spec
