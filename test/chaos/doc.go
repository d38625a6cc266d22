// Package chaos is mecd's chaos suite (tests only): MECs created at once
// under injected AWS faults, per-host faults, Lambda processes killed while
// they serve, DELETE racing POST and the sweeper, then a full audit (stuck,
// leaked, duplicated, secrets). `make chaos` runs the full size and writes
// test/artifacts/chaos.json; `make test` runs a short form.
package chaos
