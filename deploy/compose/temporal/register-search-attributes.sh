#!/bin/sh
# One-shot (the temporal-setup service): register rollbook's search attributes on the
# namespace, so that the Web UI can filter deployments with RollbookPhase = "rolling-back".
# Idempotent: an attribute that exists is left alone.
set -eu
addr=${TEMPORAL_ADDRESS:-temporal:7233}
ns=${TEMPORAL_NAMESPACE:-default}

# auto-setup creates the namespace shortly after the frontend answers.
i=0
until temporal operator namespace describe --address "$addr" --namespace "$ns" >/dev/null 2>&1; do
	i=$((i + 1))
	if [ "$i" -ge 60 ]; then
		echo "namespace $ns does not exist on $addr after 60 s" >&2
		exit 1
	fi
	sleep 1
done

for name in RollbookService RollbookVersion RollbookPhase; do
	if temporal operator search-attribute list --address "$addr" --namespace "$ns" | grep -qw "$name"; then
		echo "search attribute $name: already registered"
		continue
	fi
	temporal operator search-attribute create --address "$addr" --namespace "$ns" --name "$name" --type Keyword
	echo "search attribute $name: registered (Keyword)"
done
