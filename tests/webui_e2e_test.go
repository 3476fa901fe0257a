package tests

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/workflows"
)

const webUITaskQueue = "rollbook-e2e-webui"

// TestE2EWebUI drives the Temporal Web UI in headless Chromium the way an
// operator uses it: the deployment list filtered by the RollbookPhase search
// attribute, and the page of a rolled-back deployment, which must show the
// deployment's summary (service, version) and the step that failed. The
// shared stack runs headless, so this test starts a small stack of its own
// with the Web UI, and a worker on it. Screenshots go to tests/results/.
func TestE2EWebUI(t *testing.T) {
	chromium := chromiumPath(t)

	logw := &testLogWriter{t: t}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ui, err := devstack.Start(ctx, devstack.Options{
		Dir: filepath.Join(t.TempDir(), "stack"), WebUI: true, RemoveOnStop: true, ModuleRoot: repoRoot, Log: logw,
	})
	require.NoError(t, err, "starting a dev stack with the Web UI")
	t.Cleanup(func() { assert.NoError(t, ui.Stop(), "stopping the Web UI stack") })
	require.NotEmpty(t, ui.WebUI)

	// The worker and the CLI processes of this test talk to the UI stack.
	for k, v := range ui.Env() {
		t.Setenv(k, v)
	}
	w := startWorkerWithMetrics(t, webUITaskQueue)

	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	// A good deployment of another service, so that the filter has
	// something to leave out.
	good := write("webui-good.yaml", `apiVersion: rollbook/v1
service: webui-good
steps:
  - name: flags
    consul:
      set:
        rollbook-e2e/webui-good/features/x: "on"
  - name: watch
    verify:
      duration: 2s
      interval: 1s
      checks:
        - name: healthz
          http: {endpoint: stable, path: /healthz}
`)
	out, code := cli(t, "deploy", good, "--version", "v2", "--wait", "--task-queue", webUITaskQueue)
	require.Equal(t, 0, code, out)

	// A bad canary: its API fails, the verification fails, the deployment
	// rolls back.
	bad := write("webui-payments.yaml", `apiVersion: rollbook/v1
service: webui-payments
description: Ledger entries behind a 10% canary (Web UI e2e).
routes:
  - {name: api, router: edge, backend: payments_api, subsets: [stable, canary], stable: stable, canary: canary}
steps:
  - name: feature-flags
    consul:
      set:
        rollbook-e2e/webui-payments/features/new-ledger: "true"
  - name: canary-10
    traffic: {route: api, weights: {stable: 90, canary: 10}}
  - name: verify-canary
    verify:
      duration: 20s
      interval: 1s
      checks:
        - name: canary-api
          http: {endpoint: canary, path: /api/payments, expectStatus: 200}
`)
	resp, err := http.Post(ui.DemoCanaryURL+"/admin/bad?errorRate=1", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Less(t, resp.StatusCode, 300)
	out, code = cli(t, "deploy", bad, "--version", "v3-bad", "--wait", "--task-queue", webUITaskQueue)
	require.Equal(t, 2, code, out)
	require.Contains(t, out, "verify-canary")
	link := regexp.MustCompile(`Web UI: (\S+)`).FindStringSubmatch(out)
	require.NotNil(t, link, "deploy prints the Web UI link first")
	require.True(t, strings.HasPrefix(link[1], ui.WebUI), "the link %s points at this stack's Web UI %s", link[1], ui.WebUI)

	results := filepath.Join(repoRoot, "tests", "results")
	require.NoError(t, os.MkdirAll(results, 0o755))

	browser := newBrowser(t, chromium)

	// 1. The list, filtered as the README tells operators to.
	query := fmt.Sprintf(`RollbookPhase = %q`, workflows.OutcomeRolledBack)
	listURL := fmt.Sprintf("%s/namespaces/%s/workflows?query=%s", ui.WebUI, devstack.Namespace, url.QueryEscape(query))
	listText := browser.open(t, listURL, []string{workflows.WorkflowID("webui-payments")}, filepath.Join(results, "webui-list-rolled-back.png"))
	assert.Contains(t, listText, workflows.WorkflowID("webui-payments"), "the rolled-back deployment is listed")
	assert.NotContains(t, listText, workflows.WorkflowID("webui-good"), "the succeeded deployment is filtered out")

	// 2. The deployment's page, from the link the CLI printed.
	pageText := browser.open(t, link[1], []string{"deploy webui-payments v3-bad", `"failedStep": "verify-canary"`}, filepath.Join(results, "webui-deployment-rolled-back.png"))
	assert.Contains(t, pageText, "deploy webui-payments v3-bad", "the static summary: service and version")
	assert.Contains(t, pageText, `"failedStep": "verify-canary"`, "the failed step, in the Result panel")
	assert.Contains(t, pageText, `"outcome": "rolled-back"`, "the outcome, in the Result panel")

	// 3. Its "User Metadata" tab: the summary, the runbook as Markdown with
	// how to abort, and the current details the workflow keeps up to date —
	// each step's state, the failed one marked ✘, and why.
	href := browser.linkHref(t, "User Metadata")
	metaText := browser.open(t, href, []string{"deploy webui-payments v3-bad by", "Ledger entries behind a 10% canary", "✘ verify-canary"},
		filepath.Join(results, "webui-deployment-metadata.png"))
	assert.Contains(t, metaText, "deploy webui-payments v3-bad by", "summary: service, version, who")
	assert.Contains(t, metaText, "Abort: send the signal abort", "details: how to abort")
	assert.Contains(t, metaText, "phase rolled-back", "current details: the outcome")
	assert.Contains(t, metaText, "✘ verify-canary (verify): check canary-api failed", "current details: the failed step and why")
	assert.Contains(t, metaText, "↩ canary-10", "current details: the compensated traffic step")

	// 4. Abort a running deployment from the Web UI exactly as the README
	// tells operators to: More Actions → Send a Signal → abort + JSON input.
	slow := write("webui-abort.yaml", `apiVersion: rollbook/v1
service: webui-abort
steps:
  - name: flags
    consul:
      set:
        rollbook-e2e/webui-abort/features/x: "on"
  - name: soak
    verify:
      duration: 5m
      interval: 2s
      checks:
        - name: healthz
          http: {endpoint: stable, path: /healthz}
`)
	d := startCLI(t, "deploy", slow, "--version", "v4", "--wait", "--task-queue", webUITaskQueue)
	waitPhaseWith(t, w.Client, "webui-abort", workflows.PhaseVerifying, 60*time.Second)
	desc, err := w.Client.DescribeWorkflowExecution(context.Background(), workflows.WorkflowID("webui-abort"), "")
	require.NoError(t, err)
	page := fmt.Sprintf("%s/namespaces/%s/workflows/%s/%s/history", ui.WebUI, devstack.Namespace,
		workflows.WorkflowID("webui-abort"), desc.GetWorkflowExecutionInfo().GetExecution().GetRunId())
	browser.sendSignal(t, page, workflows.SignalAbort, `{"reason": "aborted from the Web UI", "by": "e2e"}`,
		filepath.Join(results, "webui-send-abort-signal.png"))
	out, code = d.wait(t, 60*time.Second)
	require.Equal(t, 3, code, out)
	assert.Contains(t, out, "aborted from the Web UI")
}

// sendSignal opens a workflow page and sends a signal through the Web UI's
// "More Actions → Send a Signal" dialog, clicking and typing like a person.
func (b *browser) sendSignal(t *testing.T, page, name, payload, screenshot string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	dump := func(what string) {
		if d := os.Getenv("ROLLBOOK_WEBUI_DUMP"); d != "" {
			sctx, c := context.WithTimeout(b.ctx, 10*time.Second)
			defer c()
			html, _ := chromedp.Run(sctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
			_ = os.WriteFile(filepath.Join(d, what+".html"), []byte(html), 0o644)
			b.screenshot(t, sctx, filepath.Join(d, what+".png"))
		}
	}
	// click clicks the last visible element (the innermost, for nested
	// matches) matching a CSS selector whose text is text (any text when
	// empty), waiting up to 20 s for one; it reports whether it found one.
	click := func(selector, text string) bool {
		t.Helper()
		js := fmt.Sprintf(`(() => {
			const el = [...document.querySelectorAll(%q)].filter(e => e.offsetParent !== null && (%q === "" || e.innerText.trim() === %q)).pop();
			if (!el) return false;
			el.click();
			return true;
		})()`, selector, text, text)
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
			require.NoError(t, err)
			if ok {
				return true
			}
			time.Sleep(200 * time.Millisecond)
		}
		return false
	}
	insertText := func(text string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := cdp.Call(ctx, tg, input.InsertText, input.InsertTextParams{Text: text})
			return chromedp.Void{}, err
		}
	}

	_, err := chromedp.Run(ctx, chromedp.Navigate(page))
	require.NoError(t, err)
	if !click(`button[aria-controls="workflow-actions"]`, "") {
		dump("signal-no-menu")
		t.Fatalf("%s: no More Actions button", page)
	}
	if !click(`#workflow-actions *`, "Send a Signal") {
		dump("signal-no-item")
		t.Fatalf("%s: no \"Send a Signal\" in More Actions", page)
	}
	// Signal name: a list of the signals the workflow declares.
	if !click(`[data-testid="signal-select-button"]`, "") || !click(`#signal-select-select li[role="option"]`, name) {
		dump("signal-no-option")
		t.Fatalf("%s: no signal %q to pick in the Send a Signal dialog", page, name)
	}
	// Input: a JSON editor; type into it as a person would, once the dialog
	// has finished opening (it scales in) and the signal list has closed.
	_, err = chromedp.Run(ctx, chromedp.Sleep(500*time.Millisecond))
	require.NoError(t, err)
	// (The page holds two copies of the dialog, for the wide and the
	// narrow layout; the open one is the one on screen.)
	const editor = `dialog[open][data-testid="signal-confirmation-modal"] [contenteditable="true"]`
	if !click(editor, "") {
		dump("signal-no-editor")
		t.Fatalf("%s: no input editor in the Send a Signal dialog", page)
	}
	// A real mouse click in the editor's middle focuses it.
	rect, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](fmt.Sprintf(`(() => { const r = document.querySelector(%q).getBoundingClientRect(); return [r.x + r.width/2, r.y + r.height/2]; })()`, editor)))
	require.NoError(t, err)
	require.Len(t, rect, 2)
	require.NoError(t, chromedp.Do(ctx, chromedp.MouseClickXY(rect[0], rect[1])))
	focused := false
	for deadline := time.Now().Add(5 * time.Second); !focused && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		focused, err = chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.activeElement === document.querySelector(%q)`, editor)))
		require.NoError(t, err)
	}
	if !focused {
		dump("signal-editor-not-focused")
		t.Fatalf("%s: clicking the signal input editor did not focus it", page)
	}
	require.NoError(t, chromedp.Do(ctx, insertText(payload)), "typing the signal input")
	// The editor renders what was typed on its next frame.
	var typed string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		typed, err = chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q).innerText`, editor)))
		require.NoError(t, err)
		if strings.TrimSpace(typed) != "" {
			break
		}
	}
	if strings.TrimSpace(typed) == "" {
		dump("signal-not-typed")
		active, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement ? document.activeElement.outerHTML.slice(0, 300) : "none"`))
		t.Logf("nothing typed; the focused element is %s", active)
	}
	require.JSONEq(t, payload, typed, "the signal input as typed into the dialog")
	b.screenshot(t, ctx, screenshot)
	if !click(`dialog[open][data-testid="signal-confirmation-modal"] [data-testid="confirm-modal-button"]:not([disabled])`, "Submit") {
		dump("signal-no-submit")
		t.Fatalf("%s: the Send a Signal dialog's Submit stayed disabled", page)
	}
}

// linkHref returns the absolute URL of the current page's link whose text is
// text (a tab of the workflow page).
func (b *browser) linkHref(t *testing.T, text string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	js := fmt.Sprintf(`(() => { const a = [...document.querySelectorAll("a")].find(a => a.innerText.trim() === %q); return a ? a.href : ""; })()`, text)
	href, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	require.NoError(t, err)
	require.NotEmpty(t, href, "no link %q on the page", text)
	return href
}

// chromiumPath finds Debian's chromium (.ci/run installs it when missing).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("ROLLBOOK_CHROMIUM"), "chromium", "chromium-browser"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("headless Chromium is needed for the Web UI test: apt-get install -y chromium (or set ROLLBOOK_CHROMIUM)")
	return ""
}

// pageTextJS returns the page's visible text plus that of its same-origin
// frames: the Web UI renders user metadata (summary, details) as Markdown
// in iframes served by its /render endpoint.
const pageTextJS = `(() => {
	let t = document.body ? document.body.innerText : "";
	for (const f of document.querySelectorAll("iframe")) {
		try { if (f.contentDocument && f.contentDocument.body) t += "\n" + f.contentDocument.body.innerText; } catch (e) {}
	}
	return t;
})()`

type browser struct {
	ctx context.Context
}

// newBrowser launches Chromium with exactly the flags that work on a closed
// network (without the background-networking ones it stalls), plus the
// DevTools port chromedp drives it through, in a new empty profile.
func newBrowser(t *testing.T, path string) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		// Closes the tab, then ends the Chromium process this test started.
		cancelBrowser()
		cancelAlloc()
	})
	// The first Run starts the browser and ties it to bctx: it must not get
	// a context of its own that ends before the test does.
	_, err := chromedp.Run(bctx, chromedp.EmulateViewport(1440, 1000))
	require.NoError(t, err, "launching %s", path)
	return &browser{ctx: bctx}
}

// open loads url, waits until the page text contains every string of want
// (the UI renders after its API calls return), saves a full-page screenshot
// and returns the page text.
func (b *browser) open(t *testing.T, u string, want []string, screenshot string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Navigate(u))
	require.NoError(t, err, "opening %s", u)
	var text string
	deadline := time.Now().Add(45 * time.Second)
	for {
		text, err = chromedp.Run(ctx, chromedp.Evaluate[string](pageTextJS))
		require.NoError(t, err)
		missing := ""
		for _, w := range want {
			if !strings.Contains(text, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			if d := os.Getenv("ROLLBOOK_WEBUI_DUMP"); d != "" {
				html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
				_ = os.WriteFile(filepath.Join(d, filepath.Base(screenshot)+".html"), []byte(html), 0o644)
			}
			b.screenshot(t, ctx, screenshot)
			t.Fatalf("%s: %q not shown within 45s; page text:\n%s", u, missing, text)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Let late panels (metadata, results) finish rendering before the picture.
	time.Sleep(time.Second)
	text, err = chromedp.Run(ctx, chromedp.Evaluate[string](pageTextJS))
	require.NoError(t, err)
	if d := os.Getenv("ROLLBOOK_WEBUI_DUMP"); d != "" {
		_ = os.WriteFile(filepath.Join(d, filepath.Base(screenshot)+".txt"), []byte(text), 0o644)
		html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
		_ = os.WriteFile(filepath.Join(d, filepath.Base(screenshot)+".html"), []byte(html), 0o644)
	}
	for _, w := range want {
		for _, line := range strings.Split(text, "\n") {
			if strings.Contains(line, w) {
				t.Logf("%s shows: %s", screenshot, strings.TrimSpace(line))
				break
			}
		}
	}
	b.screenshot(t, ctx, screenshot)
	return text
}

func (b *browser) screenshot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", path, err)
		return
	}
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("screenshot: %s", path)
}

// testLogWriter sends the stack's progress lines to the test log.
type testLogWriter struct{ t *testing.T }

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
