package runbook

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: no input makes Parse panic, and a runbook Parse accepts
// passes Validate too (the two agree).
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/invalid/*.yaml")
	examples, _ := filepath.Glob("../runbooks/*.yaml")
	for _, p := range append(seeds, examples...) {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rb, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		if err := Validate(rb); err != nil {
			t.Fatalf("Parse accepted what Validate refuses: %v", err)
		}
		if _, err := json.Marshal(rb); err != nil {
			t.Fatalf("accepted runbook does not encode: %v", err)
		}
	})
}

// FuzzDecodeBundle: no input makes DecodeBundle panic.
func FuzzDecodeBundle(f *testing.F) {
	if b, err := BuildBundle("../runbooks/payments-api.yaml", "v1", Origin{}); err == nil {
		data, _ := json.Marshal(b)
		f.Add(data)
	}
	f.Add([]byte(`{"runbook":{"steps":null},"hash":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBundle(data)
		if err == nil && b.Check() != nil {
			t.Fatal("DecodeBundle returned a bundle that fails Check")
		}
	})
}
