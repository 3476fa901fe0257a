package runbook

import "testing"

// notify names a webhook, a paging service, or both; phases filters the
// webhook, so it needs one.
func TestValidateNotify(t *testing.T) {
	base := func(n *Notify) *Runbook {
		return &Runbook{APIVersion: APIVersion, Service: "svc", Steps: []Step{{Name: "s", Pause: &PauseStep{Approval: true}}}, Notify: n}
	}
	for _, ok := range []*Notify{
		{Webhook: "slack"},
		{Page: "oncall"},
		{Webhook: "slack", Page: "oncall", Phases: []string{"rolled-back"}},
	} {
		if err := Validate(base(ok), WithFile("r")); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	requireMessages(t, Validate(base(&Notify{}), WithFile("r")),
		"r: notify: set webhook (a webhook name from the worker configuration), page (a paging service name from it), or both")
	requireMessages(t, Validate(base(&Notify{Page: "oncall", Phases: []string{"aborted"}}), WithFile("r")),
		"r: notify.phases: phases filters the webhook's notifications, and no webhook is set")
	err := Validate(base(&Notify{Page: "on call"}), WithFile("r"))
	if err == nil || len(messages(err)) != 1 || messages(err)[0][:len("r: notify.page: ")] != "r: notify.page: " {
		t.Errorf("a bad page name: %v", err)
	}
}

func TestParseNotifyPage(t *testing.T) {
	rb, err := Parse("t.yaml", []byte(`apiVersion: rollbook/v1
service: svc
notify: {page: oncall, webhook: slack, phases: [rolled-back]}
steps:
  - name: s
    pause: {approval: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	if rb.Notify.Page != "oncall" || rb.Notify.Webhook != "slack" {
		t.Errorf("notify = %+v", rb.Notify)
	}
}
