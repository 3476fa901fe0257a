// Command schemagen writes runbooks/rollbook.schema.json, the JSON Schema of
// runbooks generated from the Go types in runbook/:
//
//	go run ./runbook/schemagen           # from anywhere in the module
//	go generate ./runbook                # the same, through runbook/generate.go
//	go run ./runbook/schemagen -check    # exit 1 when the committed file is stale
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rollbook/rollbook/runbook/schema"
)

func main() {
	out := flag.String("o", "", "output file (default <module>/runbooks/"+schema.FileName+")")
	src := flag.String("src", "", "the runbook package's folder, for doc comments (default <module>/runbook)")
	check := flag.Bool("check", false, "do not write: exit 1 when the output file differs from the generated schema")
	flag.Parse()

	if *out == "" || *src == "" {
		root, err := moduleRoot()
		if err != nil {
			fail(err)
		}
		if *out == "" {
			*out = filepath.Join(root, "runbooks", schema.FileName)
		}
		if *src == "" {
			*src = filepath.Join(root, "runbook")
		}
	}
	data, err := schema.Generate(*src)
	if err != nil {
		fail(err)
	}
	if *check {
		cur, err := os.ReadFile(*out)
		if err != nil {
			fail(err)
		}
		if !bytes.Equal(cur, data) {
			fail(fmt.Errorf("%s is out of date with the types in runbook/: run go generate ./runbook", *out))
		}
		return
	}
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		fail(err)
	}
	fmt.Printf("wrote %s (%d bytes)\n", *out, len(data))
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory; pass -o and -src")
		}
		dir = parent
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "schemagen:", err)
	os.Exit(1)
}
