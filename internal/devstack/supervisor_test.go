package devstack

import (
	"strings"
	"testing"
)

// A release may choose how the demo API behaves (its flags), never where it listens, what it
// is called or which database it uses.
func TestCheckDeployFlags(t *testing.T) {
	for _, flags := range [][]string{
		nil,
		{"-error-rate=0.5", "-write-failure=both", "-payment-events=true"},
		{"-latency-ms=300"},
	} {
		if err := checkDeploy(DeployRequest{Version: "v3", Flags: flags}); err != nil {
			t.Errorf("%v refused: %v", flags, err)
		}
	}
	for _, c := range []struct {
		req  DeployRequest
		want string
	}{
		{DeployRequest{Version: "v3", Flags: []string{"-listen=0.0.0.0:80"}}, `flag "-listen=0.0.0.0:80"`},
		{DeployRequest{Version: "v3", Flags: []string{"-database-url=postgres://x"}}, `flag "-database-url=postgres://x"`},
		{DeployRequest{Version: "v3", Flags: []string{"-payment-events"}}, "as -name=value"},
		{DeployRequest{Version: "v3; rm -rf /"}, "version"},
	} {
		err := checkDeploy(c.req)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want it to mention %q", c.req, err, c.want)
		}
	}
}
