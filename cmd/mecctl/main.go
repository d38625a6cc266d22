// Command mecctl manages MECs through the mecd API (internal/cli).
package main

import (
	"os"

	"github.com/mecd/mecd/internal/cli"
)

func main() { os.Exit(cli.Run(os.Args[1:], os.Stdout, os.Stderr)) }
