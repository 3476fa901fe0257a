package runbook

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func buildExample(t *testing.T) *Bundle {
	t.Helper()
	b, err := BuildBundle("../runbooks/payments-api.yaml", "v1.0.0", Origin{User: "alice", CIJob: "build-7"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBundleContents(t *testing.T) {
	b := buildExample(t)
	if b.Source != "../runbooks/payments-api.yaml" || b.Version != "v1.0.0" || b.StartedBy.User != "alice" {
		t.Errorf("bundle metadata: %+v", b)
	}
	var paths []string
	for _, f := range b.Files {
		paths = append(paths, f.Path)
		if f.Content == "" {
			t.Errorf("%s is empty", f.Path)
		}
	}
	want := []string{
		"payments-api/contract/00004_drop_ledger_memo.sql",
		"payments-api/migrations/00001_create_ledger_entries.sql",
		"payments-api/migrations/00002_add_ledger_reference.sql",
		"payments-api/migrations/00003_index_ledger_account.sql",
	}
	if strings.Join(paths, ",") != strings.Join(want, ",") {
		t.Errorf("files = %v, want %v", paths, want)
	}
	if err := b.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
	// Check is deterministic: the workflow calls it during replay too.
	if a, c := errString(b.Check()), errString(b.Check()); a != c {
		t.Errorf("Check not deterministic")
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestBundleRoundTrip(t *testing.T) {
	b := buildExample(t)
	data, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(back)
	if string(again) != string(data) {
		t.Errorf("JSON round trip changed the bundle:\n%s\n%s", data, again)
	}
}

func TestBundleTamper(t *testing.T) {
	tests := []struct {
		name   string
		change func(b *Bundle)
		want   []string
	}{
		{
			name:   "file content",
			change: func(b *Bundle) { b.Files[1].Content += "\nDROP TABLE ledger_entries;\n" },
		},
		{
			name:   "weights",
			change: func(b *Bundle) { b.Runbook.Steps[3].Traffic.Weights = map[string]int{"stable": 0, "canary": 100} },
		},
		{
			name:   "version",
			change: func(b *Bundle) { b.Version = "v6.6.6" },
		},
		{
			name:   "removed file",
			change: func(b *Bundle) { b.Files = b.Files[:2] },
		},
		{
			name: "Down section emptied and hash recomputed",
			change: func(b *Bundle) {
				b.Files[1].Content = strings.Replace(b.Files[1].Content, "DROP TABLE ledger_entries;", "-- gone", 1)
				b.Hash, _ = b.ContentHash()
			},
			want: []string{"../runbooks/payments-api.yaml: steps[0].migrate.dir: migration payments-api/migrations/00001_create_ledger_entries.sql has no Down section with SQL; a reversible migrate step must be able to roll back: add a -- +goose Down section, or mark the step irreversible: true"},
		},
		{
			name: "stray file",
			change: func(b *Bundle) {
				b.Files = append(b.Files, File{Path: "elsewhere/x.sql", Content: gooseOK})
				b.Hash, _ = b.ContentHash()
			},
			want: []string{`../runbooks/payments-api.yaml: files[4]: file "elsewhere/x.sql" is not in the folder of any migrate step`},
		},
		{
			name: "escaping file path",
			change: func(b *Bundle) {
				b.Files[0].Path = "../etc/passwd"
				b.Hash, _ = b.ContentHash()
			},
			want: []string{`../runbooks/payments-api.yaml: files[0]: invalid file path "../etc/passwd": must be a clean relative slash-separated path`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := buildExample(t)
			orig := b.Hash
			tt.change(b)
			err := b.Check()
			if err == nil {
				t.Fatal("tampered bundle passed Check")
			}
			if tt.want == nil {
				if !errors.Is(err, ErrHashMismatch) || !strings.Contains(err.Error(), "hash: content hash mismatch: the bundle says "+orig) {
					t.Errorf("err = %v, want a hash mismatch", err)
				}
				return
			}
			requireMessages(t, err, tt.want...)
		})
	}
}

func TestDecodeBundleStrict(t *testing.T) {
	b := buildExample(t)
	good, _ := json.Marshal(b)
	tests := []struct {
		name string
		data string
		want string
	}{
		{"unknown field", strings.Replace(string(good), `"version":`, `"extra":1,"version":`, 1), `unknown field "extra"`},
		{"unknown nested field", strings.Replace(string(good), `"service":`, `"servce":"x","service":`, 1), `unknown field "servce"`},
		{"trailing data", string(good) + "{}", "data after the bundle object"},
		{"not JSON", "runbook: yaml", "invalid bundle JSON"},
		{"empty", "", "invalid bundle JSON"},
		{"null", "null", "hash is missing"},
		{"too large", `{"source":"` + strings.Repeat("x", MaxBundleBytes) + `"}`, "over the limit"},
		{"wrong type", strings.Replace(string(good), `"version":"v1.0.0"`, `"version":1`, 1), "invalid bundle JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeBundle([]byte(tt.data))
			if err == nil || got != nil {
				t.Fatalf("DecodeBundle accepted it")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestBuildBundleVersion(t *testing.T) {
	for _, v := range []string{"", "v 1", "v1\n", strings.Repeat("v", MaxVersionLen+1), "\x01"} {
		if _, err := BuildBundle("../runbooks/config-only.yaml", v, Origin{}); err == nil {
			t.Errorf("version %q accepted", v)
		}
	}
	for _, v := range []string{"v1.2.3", "sha-0123abc", "2024.05.01+build.7"} {
		if _, err := BuildBundle("../runbooks/config-only.yaml", v, Origin{}); err != nil {
			t.Errorf("version %q: %v", v, err)
		}
	}
}

// TestBundleTooLarge: migration files within the byte budget on disk can
// still make a bundle too large once JSON-escaped; the error says by how
// much.
func TestBundleTooLarge(t *testing.T) {
	big := "-- +goose Up\n-- " + strings.Repeat(`"<>`, 200_000) + "\nSELECT 1;\n-- +goose Down\nSELECT 1;\n"
	dir := writeTree(t, map[string]string{
		"rb.yaml":         "apiVersion: rollbook/v1\nservice: svc\nsteps:\n  - name: m\n    migrate: {database: db, dir: m}\n",
		"m/00001_big.sql": big,
	})
	_, err := BuildBundle(filepath.Join(dir, "rb.yaml"), "v1", Origin{})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "over the limit of 1048576 bytes") {
		t.Errorf("err = %v, want bundle too large", err)
	}
}
