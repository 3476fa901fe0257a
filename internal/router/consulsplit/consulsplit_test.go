package consulsplit

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/rollbook/rollbook/internal/router"
)

// A service name becomes a URL path segment: names that would change the
// path (or could not be escaped away) never reach Consul.
func TestRefusesNamesThatWouldChangeTheURLPath(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.EscapedPath())
		mu.Unlock()
		http.NotFound(w, r)
	}))
	defer srv.Close()
	cfg := consulapi.DefaultConfig()
	cfg.Address = strings.TrimPrefix(srv.URL, "http://")
	c, err := consulapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(c, "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	subsets := []string{"stable", "canary"}
	bad := []string{"../acl/token", "a/b", "..", "a..b", "pay\u202Ements", "pay\u0085", "pay ments", "pay?x=1", "pay%2F", "é", "-lead", "", strings.Repeat("a", 129)}
	for _, name := range bad {
		if _, err := r.Weights(ctx, name, subsets); !errors.Is(err, router.ErrRejected) {
			t.Errorf("Weights(%q) = %v, want ErrRejected", name, err)
		}
		if _, err := r.SetWeights(ctx, name, subsets, map[string]int{"stable": 100}, nil); !errors.Is(err, router.ErrRejected) {
			t.Errorf("SetWeights(%q) = %v, want ErrRejected", name, err)
		}
		if _, err := r.Restore(ctx, "payments", []string{"stable", name}, router.State{Absent: true}, nil); !errors.Is(err, router.ErrRejected) {
			t.Errorf("Restore(subset %q) = %v, want ErrRejected", name, err)
		}
	}
	mu.Lock()
	if len(paths) != 0 {
		t.Fatalf("requests reached Consul: %q", paths)
	}
	mu.Unlock()

	// A valid name reaches Consul as exactly one path segment.
	if _, err := r.Weights(ctx, "payments-api.v2_x", subsets); !errors.Is(err, router.ErrNotFound) {
		t.Fatalf("valid name: %v, want ErrNotFound from the fake Consul", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 1 || paths[0] != "/v1/config/service-resolver/payments-api.v2_x" {
		t.Fatalf("paths = %q", paths)
	}
}
