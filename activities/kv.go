package activities

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/rollbook/rollbook/internal/clip"
	"github.com/rollbook/rollbook/runbook"
)

// MaxKVOps bounds the keys of one consul step: apply and restore run one
// Consul transaction with two operations per key, and Consul accepts at
// most 128 operations per transaction.
const MaxKVOps = 64

// KV changes Consul KV keys in one transaction with check-and-set.
type KV struct {
	// Client is the Consul API client (address, token and TLS come from the
	// worker's configuration; never logged).
	Client *consulapi.Client
	// AllowedPrefixes are the key prefixes runbooks may touch, matched as
	// plain string prefixes: end them with "/" ("config/payments/") so that
	// "config/payments-other/x" is not allowed by "config/payments". With no
	// prefixes every key is refused.
	AllowedPrefixes []string
}

// NewKV checks its arguments and returns the KV activities. With no allowed
// prefixes every consul step fails as ErrInvalid.
func NewKV(client *consulapi.Client, allowedPrefixes []string) (*KV, error) {
	if client == nil {
		return nil, errors.New("kv: nil Consul client")
	}
	for _, p := range allowedPrefixes {
		if p == "" || strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("kv: allowed prefix %q must be non-empty and must not start with '/'", p)
		}
	}
	return &KV{Client: client, AllowedPrefixes: slices.Clone(allowedPrefixes)}, nil
}

func (k *KV) checkOps(ops []runbook.KVOp) error {
	if k.Client == nil {
		return invalidf("this worker has no Consul client configured")
	}
	if len(k.AllowedPrefixes) == 0 {
		return invalidf("this worker allows no Consul KV prefixes (consul.allowedPrefixes), so it refuses every key")
	}
	if len(ops) == 0 {
		return invalidf("consul step has no keys to set or delete")
	}
	if len(ops) > MaxKVOps {
		return invalidf("consul step touches %d keys; at most %d fit in one Consul transaction", len(ops), MaxKVOps)
	}
	seen := make(map[string]bool, len(ops))
	for _, op := range ops {
		switch {
		case op.Key == "" || strings.HasPrefix(op.Key, "/") || strings.HasSuffix(op.Key, "/"):
			return invalidf("key %q: must be non-empty, without a leading or trailing '/'", clip.Bytes(op.Key, maxEcho))
		case slices.Contains(strings.Split(op.Key, "/"), ".."):
			return invalidf("key %q: must not contain '..'", clip.Bytes(op.Key, maxEcho))
		case seen[op.Key]:
			return invalidf("key %q appears more than once in the step", clip.Bytes(op.Key, maxEcho))
		case !slices.ContainsFunc(k.AllowedPrefixes, func(p string) bool { return strings.HasPrefix(op.Key, p) }):
			return invalidf("key %q is outside the prefixes this worker may change (%s)", clip.Bytes(op.Key, maxEcho), strings.Join(k.AllowedPrefixes, ", "))
		}
		seen[op.Key] = true
	}
	return nil
}

// checkState verifies that a state recorded in history belongs to ops.
func checkState(what string, ops []runbook.KVOp, st KVState) error {
	if len(st.Entries) != len(ops) {
		return invalidf("%s state has %d keys, the step has %d", what, len(st.Entries), len(ops))
	}
	for i, op := range ops {
		if st.Entries[i].Key != op.Key {
			return invalidf("%s state key %d is %q, the step's is %q", what, i, clip.Bytes(st.Entries[i].Key, maxEcho), clip.Bytes(op.Key, maxEcho))
		}
	}
	return nil
}

// read returns the state of keys, atomically, with one read-only
// transaction of get-or-empty operations.
func (k *KV) read(ctx context.Context, ops []runbook.KVOp) (KVState, error) {
	txn := make(consulapi.KVTxnOps, 0, len(ops))
	for _, op := range ops {
		txn = append(txn, &consulapi.KVTxnOp{Verb: consulapi.KVGetOrEmpty, Key: op.Key})
	}
	ok, resp, _, err := k.Client.KV().Txn(txn, (&consulapi.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return KVState{}, fmt.Errorf("reading %d Consul keys: %w", len(ops), err)
	}
	if !ok {
		return KVState{}, fmt.Errorf("reading %d Consul keys: %s", len(ops), txnErrors(resp.Errors))
	}
	if len(resp.Results) != len(ops) {
		return KVState{}, fmt.Errorf("reading %d Consul keys: got %d results", len(ops), len(resp.Results))
	}
	return stateFromPairs(ops, resp.Results)
}

func stateFromPairs(ops []runbook.KVOp, pairs []*consulapi.KVPair) (KVState, error) {
	st := KVState{Entries: make([]KVEntry, len(ops))}
	for i, op := range ops {
		p := pairs[i]
		if p == nil || p.Key != op.Key {
			return KVState{}, fmt.Errorf("consul transaction result %d does not match key %q", i, clip.Bytes(op.Key, maxEcho))
		}
		// get-or-empty returns our own empty entry (ModifyIndex 0) for a
		// missing key; an existing key always has a ModifyIndex.
		st.Entries[i] = KVEntry{Key: op.Key, Exists: p.ModifyIndex != 0}
		if st.Entries[i].Exists {
			st.Entries[i].Value = p.Value
			st.Entries[i].Flags = p.Flags
			st.Entries[i].ModifyIndex = p.ModifyIndex
		}
	}
	return st, nil
}

func txnErrors(errs consulapi.TxnErrors) string {
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msgs = append(msgs, e.What)
	}
	return strings.Join(msgs, "; ")
}

// sameContent reports whether two entries hold the same existence, value and
// flags (indexes aside).
func sameContent(a, b KVEntry) bool {
	if a.Exists != b.Exists {
		return false
	}
	return !a.Exists || (bytes.Equal(a.Value, b.Value) && a.Flags == b.Flags)
}

// holdsIntended reports whether e is what op writes.
func holdsIntended(op runbook.KVOp, e KVEntry) bool {
	if op.Delete {
		return !e.Exists
	}
	return e.Exists && string(e.Value) == op.Value
}

func describe(e KVEntry) string {
	if !e.Exists {
		return "absent"
	}
	return fmt.Sprintf("%q (ModifyIndex %d, flags %d)", clip.Bytes(string(e.Value), 64), e.ModifyIndex, e.Flags)
}

func intended(op runbook.KVOp) string {
	if op.Delete {
		return "absent"
	}
	return fmt.Sprintf("%q", clip.Bytes(op.Value, 64))
}

// CaptureKV reads value, flags, existence and ModifyIndex of every key of
// the step, in op order, atomically.
//
// Errors: ErrInvalid for keys outside the allowed prefixes (or otherwise
// unusable); plain errors when Consul cannot be reached.
func (k *KV) CaptureKV(ctx context.Context, in KVInput) (KVState, error) {
	if err := k.checkOps(in.Ops); err != nil {
		return KVState{}, err
	}
	st, err := k.read(ctx, in.Ops)
	if err != nil {
		return KVState{}, err
	}
	logger(ctx).Info("captured Consul keys", "step", in.Step, "keys", len(st.Entries))
	return st, nil
}

// ApplyKV sets and deletes the step's keys in one transaction, each
// checked against its captured ModifyIndex (a key that did not exist must
// still not exist), and returns the state after the commit, read inside the
// same transaction.
//
// When the check-and-set fails, the keys are read again: if every key
// already holds what the step writes (an earlier attempt committed and its
// answer was lost), that state is returned as success. Otherwise the error
// is a non-retryable ErrConflict naming the keys that changed.
func (k *KV) ApplyKV(ctx context.Context, in KVApplyInput) (KVState, error) {
	if err := k.checkOps(in.Ops); err != nil {
		return KVState{}, err
	}
	if err := checkState("captured", in.Ops, in.Captured); err != nil {
		return KVState{}, err
	}
	txn := make(consulapi.KVTxnOps, 0, 2*len(in.Ops))
	for i, op := range in.Ops {
		c := in.Captured.Entries[i]
		switch {
		case !op.Delete:
			// Index 0 makes the CAS "create only if absent". Flags are kept.
			txn = append(txn, &consulapi.KVTxnOp{Verb: consulapi.KVCAS, Key: op.Key, Value: []byte(op.Value), Flags: c.Flags, Index: c.ModifyIndex})
		case c.Exists:
			txn = append(txn, &consulapi.KVTxnOp{Verb: consulapi.KVDeleteCAS, Key: op.Key, Index: c.ModifyIndex})
		default:
			txn = append(txn, &consulapi.KVTxnOp{Verb: consulapi.KVCheckNotExists, Key: op.Key})
		}
	}
	for _, op := range in.Ops {
		txn = append(txn, &consulapi.KVTxnOp{Verb: consulapi.KVGetOrEmpty, Key: op.Key})
	}
	ok, resp, _, err := k.Client.KV().Txn(txn, (&consulapi.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return KVState{}, fmt.Errorf("applying %d Consul keys: %w", len(in.Ops), err)
	}
	if ok {
		n := len(resp.Results)
		if n < len(in.Ops) {
			return KVState{}, fmt.Errorf("applying %d Consul keys: got %d results", len(in.Ops), n)
		}
		st, err := stateFromPairs(in.Ops, resp.Results[n-len(in.Ops):])
		if err != nil {
			return KVState{}, err
		}
		logger(ctx).Info("applied Consul keys", "step", in.Step, "keys", len(in.Ops))
		return st, nil
	}

	// The transaction was rolled back: either our earlier attempt already
	// committed, or someone else changed a key.
	cur, err := k.read(ctx, in.Ops)
	if err != nil {
		return KVState{}, fmt.Errorf("check-and-set failed (%s); re-reading keys: %w", txnErrors(resp.Errors), err)
	}
	committed := true
	for i, op := range in.Ops {
		committed = committed && holdsIntended(op, cur.Entries[i])
	}
	if committed {
		logger(ctx).Info("Consul keys already hold the step's values; an earlier attempt committed", "step", in.Step)
		return cur, nil
	}
	var changed []string
	for i, op := range in.Ops {
		c, now := in.Captured.Entries[i], cur.Entries[i]
		if now.Exists != c.Exists || now.ModifyIndex != c.ModifyIndex {
			changed = append(changed, fmt.Sprintf("key %s: captured %s, now %s (step writes %s)", clip.Bytes(op.Key, maxEcho), describe(c), describe(now), intended(op)))
		}
	}
	if len(changed) == 0 {
		// The keys changed and changed back between our write and read.
		return KVState{}, fmt.Errorf("applying Consul keys: check-and-set failed (%s) but the keys match the capture again; will retry", txnErrors(resp.Errors))
	}
	return KVState{}, conflictf("consul keys changed since capture, not applying: %s", strings.Join(changed, "; "))
}

// RestoreKV puts the captured values (and flags) back and deletes keys that
// did not exist, in one transaction checked against the indexes it read.
//
// Every key must hold either what the step wrote (Applied's ModifyIndex when
// the workflow has the apply result; otherwise the step's value or absence)
// or already its captured content. Anything else is a non-retryable
// ErrConflict naming the keys, and nothing is written. AlreadyRestored is
// set when every key already holds its captured content.
func (k *KV) RestoreKV(ctx context.Context, in KVRestoreInput) (RestoreResult, error) {
	if err := k.checkOps(in.Ops); err != nil {
		return RestoreResult{}, err
	}
	if err := checkState("captured", in.Ops, in.Captured); err != nil {
		return RestoreResult{}, err
	}
	if in.Applied != nil {
		if err := checkState("applied", in.Ops, *in.Applied); err != nil {
			return RestoreResult{}, err
		}
	}
	cur, err := k.read(ctx, in.Ops)
	if err != nil {
		return RestoreResult{}, err
	}
	var (
		txn               consulapi.KVTxnOps
		conflicts         []string
		restored, deleted []string
	)
	for i, op := range in.Ops {
		c, now := in.Captured.Entries[i], cur.Entries[i]
		if sameContent(now, c) {
			// Keep the transaction honest about keys it does not write.
			if now.Exists {
				txn = append(txn, &consulapi.KVTxnOp{Verb: consulapi.KVCheckIndex, Key: op.Key, Index: now.ModifyIndex})
			} else {
				txn = append(txn, &consulapi.KVTxnOp{Verb: consulapi.KVCheckNotExists, Key: op.Key})
			}
			continue
		}
		var ours bool
		var expected string
		if in.Applied != nil {
			a := in.Applied.Entries[i]
			ours = now.Exists == a.Exists && (!now.Exists || now.ModifyIndex == a.ModifyIndex)
			expected = describe(a)
		} else {
			ours = holdsIntended(op, now)
			expected = intended(op)
		}
		if !ours {
			conflicts = append(conflicts, fmt.Sprintf("key %s: found %s, expected our %s or the captured %s", clip.Bytes(op.Key, maxEcho), describe(now), expected, describe(c)))
			continue
		}
		if c.Exists {
			txn = append(txn, &consulapi.KVTxnOp{Verb: consulapi.KVCAS, Key: op.Key, Value: c.Value, Flags: c.Flags, Index: now.ModifyIndex})
			restored = append(restored, op.Key)
		} else {
			txn = append(txn, &consulapi.KVTxnOp{Verb: consulapi.KVDeleteCAS, Key: op.Key, Index: now.ModifyIndex})
			deleted = append(deleted, op.Key)
		}
	}
	if len(conflicts) > 0 {
		return RestoreResult{}, conflictf("consul keys changed by someone else since our apply, not restoring any: %s", strings.Join(conflicts, "; "))
	}
	if len(restored)+len(deleted) == 0 {
		return RestoreResult{AlreadyRestored: true, Detail: fmt.Sprintf("%d keys already hold their captured values", len(in.Ops))}, nil
	}
	ok, resp, _, err := k.Client.KV().Txn(txn, (&consulapi.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return RestoreResult{}, fmt.Errorf("restoring %d Consul keys: %w", len(in.Ops), err)
	}
	if !ok {
		// A key changed between our read and write. Retrying re-reads and
		// decides again (restored, ours, or a conflict).
		return RestoreResult{}, fmt.Errorf("restoring Consul keys: a key changed between read and write (%s); will re-check", txnErrors(resp.Errors))
	}
	detail := fmt.Sprintf("restored %d keys", len(restored))
	if len(restored) > 0 {
		detail += " (" + clip.Bytes(strings.Join(restored, ", "), 4*maxEcho) + ")"
	}
	if len(deleted) > 0 {
		detail += fmt.Sprintf(", deleted %d keys that did not exist (%s)", len(deleted), clip.Bytes(strings.Join(deleted, ", "), 4*maxEcho))
	}
	logger(ctx).Info("restored Consul keys", "step", in.Step, "restored", len(restored), "deleted", len(deleted))
	return RestoreResult{Detail: detail}, nil
}
