package runbook

// The JSON Schema editors use to validate and complete runbooks
// (runbooks/rollbook.schema.json) is generated from the types in this
// package; runbook/schema's tests fail when it is stale.
//go:generate go run ./schemagen -src . -o ../runbooks/rollbook.schema.json
