package workflows

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/runbook"
)

// A Prometheus query with nothing to judge is inconclusive, never a pass;
// a failed query or a value out of bounds fails.
func TestJudgePrometheus(t *testing.T) {
	one := 1.0
	c := runbook.Check{Name: "ratio", Prometheus: &runbook.PrometheusCheck{Query: "q", Max: &one}}
	val := func(v float64) *float64 { return &v }
	for name, tc := range map[string]struct {
		m    contract.Measurement
		want string
	}{
		"no data":    {contract.Measurement{NoData: true, Detail: `query "q" returned 0 samples`}, JudgeInconclusive},
		"error":      {contract.Measurement{Error: "connection refused"}, JudgeFail},
		"no value":   {contract.Measurement{}, JudgeFail},
		"above max":  {contract.Measurement{Value: val(2)}, JudgeFail},
		"within max": {contract.Measurement{Value: val(0.5)}, JudgePass},
		"error wins": {contract.Measurement{Error: "boom", NoData: true}, JudgeFail},
	} {
		t.Run(name, func(t *testing.T) {
			j := judge(c, tc.m)
			assert.Equal(t, tc.want, j.Verdict, j.Reason)
		})
	}
	j := judge(c, contract.Measurement{NoData: true, Detail: `query "q" returned NaN`})
	assert.Contains(t, j.Reason, "returned NaN")
}
