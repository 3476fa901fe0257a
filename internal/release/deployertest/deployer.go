// Package deployertest is a small in-memory deployer that implements the
// http driver's API contract (docs/release.md), for tests of the driver,
// the activities and the end-to-end tests. It is a real HTTP server; its
// knobs make it fail the way deployers do (an answer lost after the deploy
// started, a deployment that fails, a target that never gets healthy).
package deployertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
)

// Deployer is the test deployer. Its fields are guarded by its mutex; use
// the methods to read and change them while it serves.
type Deployer struct {
	// Server is the running HTTP server; URL is its base URL.
	Server *httptest.Server
	URL    string
	// Token, when set, is required as "Authorization: Bearer <token>".
	Token string

	mu      sync.Mutex
	targets map[string]*target
	byKey   map[string]*deployment
	byID    map[string]*deployment
	nextID  int
	// deploys counts deploys carried out per target.
	deploys map[string]int
	// failPOSTs is how many deploy requests answer 502 after the deploy
	// was started (the answer is lost on the way back).
	failPOSTs int
	// failVersions makes deployments of these versions fail.
	failVersions map[string]string
	// unhealthy versions never become healthy.
	unhealthy map[string]bool
	// pollsToFinish is how many polls a deployment stays running.
	pollsToFinish int
	// requests records "METHOD escaped-path" per request.
	requests []string
}

type target struct {
	version string
	healthy bool
}

type deployment struct {
	ID      string `json:"id"`
	Target  string `json:"target"`
	Version string `json:"version"`
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	polls   int
}

// New starts a deployer whose targets run the given versions, healthy.
func New(versions map[string]string) *Deployer {
	d := &Deployer{targets: map[string]*target{}, byKey: map[string]*deployment{}, byID: map[string]*deployment{},
		deploys: map[string]int{}, failVersions: map[string]string{}, unhealthy: map[string]bool{}, pollsToFinish: 1}
	for t, v := range versions {
		d.targets[t] = &target{version: v, healthy: true}
	}
	d.Server = httptest.NewServer(http.HandlerFunc(d.serve))
	d.URL = d.Server.URL
	return d
}

// Close stops the server.
func (d *Deployer) Close() { d.Server.Close() }

// FailNextPOSTs makes the next n deploy requests start their deploy and
// then answer 502, as if the answer were lost.
func (d *Deployer) FailNextPOSTs(n int) { d.mu.Lock(); d.failPOSTs = n; d.mu.Unlock() }

// FailVersion makes deployments of version fail with message.
func (d *Deployer) FailVersion(version, message string) {
	d.mu.Lock()
	d.failVersions[version] = message
	d.mu.Unlock()
}

// Unhealthy makes targets running version report unhealthy.
func (d *Deployer) Unhealthy(version string) { d.mu.Lock(); d.unhealthy[version] = true; d.mu.Unlock() }

// SetPollsToFinish sets how many polls a deployment stays running.
func (d *Deployer) SetPollsToFinish(n int) { d.mu.Lock(); d.pollsToFinish = n; d.mu.Unlock() }

// Version returns the version target runs.
func (d *Deployer) Version(t string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if tg := d.targets[t]; tg != nil {
		return tg.version
	}
	return ""
}

// SetVersion changes what a target runs behind rollbook's back.
func (d *Deployer) SetVersion(t, v string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.targets[t] = &target{version: v, healthy: !d.unhealthy[v]}
}

// Deploys returns how many deploys were carried out on target.
func (d *Deployer) Deploys(t string) int { d.mu.Lock(); defer d.mu.Unlock(); return d.deploys[t] }

// Requests returns the requests served so far ("METHOD escaped-path").
func (d *Deployer) Requests() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.requests...)
}

func (d *Deployer) serve(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.requests = append(d.requests, r.Method+" "+r.URL.EscapedPath())
	if d.Token != "" && r.Header.Get("Authorization") != "Bearer "+d.Token {
		http.Error(w, `{"message":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	// Match on the escaped path: an escaped slash in a target name is part
	// of the name, never a path level.
	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	switch {
	case r.Method == http.MethodGet && len(parts) == 2 && parts[0] == "targets":
		d.getTarget(w, parts[1])
	case r.Method == http.MethodPost && len(parts) == 3 && parts[0] == "targets" && parts[2] == "deploy":
		d.postDeploy(w, r, parts[1])
	case r.Method == http.MethodGet && len(parts) == 4 && parts[0] == "targets" && parts[2] == "deployments":
		d.getDeployment(w, parts[1], parts[3])
	default:
		http.Error(w, `{"message":"no such route"}`, http.StatusNotFound)
	}
}

func (d *Deployer) getTarget(w http.ResponseWriter, name string) {
	t := d.targets[name]
	if t == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "unknown target " + name})
		return
	}
	msg := ""
	if !t.healthy {
		msg = fmt.Sprintf("%s: 0/2 instances of %s ready", name, t.version)
	}
	writeJSON(w, http.StatusOK, map[string]any{"target": name, "version": t.version, "healthy": t.healthy, "message": msg})
}

func (d *Deployer) postDeploy(w http.ResponseWriter, r *http.Request, name string) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Idempotency-Key is required"})
		return
	}
	var body struct {
		Version string `json:"version"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil || body.Version == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "body must be {\"version\": …}"})
		return
	}
	if d.targets[name] == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "unknown target " + name})
		return
	}
	if dep := d.byKey[key]; dep != nil {
		// The same key is the same deploy: answer with it, start nothing.
		writeJSON(w, http.StatusOK, dep)
		return
	}
	d.nextID++
	dep := &deployment{ID: fmt.Sprintf("d-%d", d.nextID), Target: name, Version: body.Version, Status: "running"}
	d.byKey[key], d.byID[dep.ID] = dep, dep
	d.deploys[name]++
	if d.failPOSTs > 0 {
		d.failPOSTs--
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	}
	writeJSON(w, http.StatusAccepted, dep)
}

func (d *Deployer) getDeployment(w http.ResponseWriter, name, id string) {
	dep := d.byID[id]
	if dep == nil || dep.Target != name {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "unknown deployment " + id})
		return
	}
	if dep.Status == "running" {
		dep.polls++
		if dep.polls >= d.pollsToFinish {
			if msg, bad := d.failVersions[dep.Version]; bad {
				dep.Status, dep.Message = "failed", msg
			} else {
				dep.Status = "succeeded"
				d.targets[name] = &target{version: dep.Version, healthy: !d.unhealthy[dep.Version]}
			}
		}
	}
	writeJSON(w, http.StatusOK, dep)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
