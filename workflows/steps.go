package workflows

import (
	"github.com/rollbook/rollbook/activities/contract"
)

func (d *deployment) ref(step string) contract.StepRef {
	return contract.StepRef{DeploymentID: d.id, Step: step}
}

func (d *deployment) push(c Compensation) int {
	c.State = CompPending
	d.comps = append(d.comps, c)
	return len(d.comps) - 1
}
