package router

import (
	"testing"
)

func TestPercentages(t *testing.T) {
	subsets := []string{"stable", "canary"}
	for _, tc := range []struct {
		raw  map[string]int
		want map[string]int
	}{
		{map[string]int{"stable": 256, "canary": 0}, map[string]int{"stable": 100, "canary": 0}},
		{map[string]int{"stable": 90, "canary": 10}, map[string]int{"stable": 90, "canary": 10}},
		{map[string]int{"stable": 1, "canary": 1}, map[string]int{"stable": 50, "canary": 50}},
		{map[string]int{"stable": 2, "canary": 1}, map[string]int{"stable": 67, "canary": 33}},
		{map[string]int{"stable": 200, "canary": 56}, map[string]int{"stable": 78, "canary": 22}},
		{map[string]int{"stable": 0, "canary": 0}, map[string]int{"stable": 0, "canary": 0}},
	} {
		got := Percentages(subsets, tc.raw)
		if !EqualWeights(subsets, got, tc.want) {
			t.Errorf("Percentages(%v) = %v, want %v", tc.raw, got, tc.want)
		}
	}
	three := Percentages([]string{"a", "b", "c"}, map[string]int{"a": 1, "b": 1, "c": 1})
	if three["a"]+three["b"]+three["c"] != 100 || three["a"] != 34 {
		t.Errorf("thirds = %v, want a=34 b=33 c=33", three)
	}
}

func TestValidatePercent(t *testing.T) {
	subsets := []string{"stable", "canary"}
	for _, tc := range []struct {
		w  map[string]int
		ok bool
	}{
		{map[string]int{"stable": 90, "canary": 10}, true},
		{map[string]int{"canary": 100}, true},
		{map[string]int{"stable": 90, "canary": 20}, false},
		{map[string]int{"stable": 110, "canary": -10}, false},
		{map[string]int{"blue": 100}, false},
	} {
		if err := ValidatePercent(subsets, tc.w); (err == nil) != tc.ok {
			t.Errorf("ValidatePercent(%v) = %v, want ok=%v", tc.w, err, tc.ok)
		}
	}
}
