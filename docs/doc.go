// Package docs holds no code: its tests keep the Markdown in README.md and
// docs/ honest. The runbook reference must name every field of the runbook
// JSON Schema the way the schema does, and every relative link must point at
// a file (and heading) that exists.
package docs
