package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/testkit"
)

// TestE2EReportInChromium renders the report of a short run against
// kernelgate and against the limit, side by side as `make bench` writes it,
// in headless Chromium: every chart is drawn, nothing is fetched, nothing
// is written to the console. The screenshot lands in the test's artifact
// directory (go test -artifacts).
func TestE2EReportInChromium(t *testing.T) {
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("Chromium is not installed (run `make deps`): %v", err)
	}
	clients, err := filepath.Abs(filepath.Join("..", "http", "testdata", "clients"))
	testkit.NoError(t, err)
	if _, err := os.Stat(filepath.Join(clients, "node_modules", "puppeteer-core")); err != nil {
		t.Fatalf("the npm packages are not installed (run `make deps`): %v", err)
	}

	url := gateway(t)
	scenarios := []string{"start", "rtt", "stream", "churn"}
	o := brief(Options{Target: Target{URL: url, Protocol: "v1"}, Label: "kernelgate", Scenarios: scenarios})
	o.Sampler = MetricsSamplerFor(context.Background(), url, "")
	kg, err := Run(context.Background(), o)
	testkit.NoError(t, err)
	t.Setenv("JUPYTER_PATH", specDir(t))
	limit, err := Run(context.Background(), brief(Options{Direct: true, Label: "limit", Scenarios: scenarios[:3]}))
	testkit.NoError(t, err)

	dir := t.ArtifactDir()
	page := filepath.Join(dir, "report.html")
	f, err := os.Create(page)
	testkit.NoError(t, err)
	testkit.NoError(t, WriteHTML(f, kg, limit))
	testkit.NoError(t, f.Close())

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "report.mjs", page, filepath.Join(dir, "report.png"), t.TempDir())
	cmd.Dir = clients
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res struct {
		ForeignRequests []string       `json:"foreign_requests"`
		ConsoleErrors   []string       `json:"console_errors"`
		PageErrors      []string       `json:"page_errors"`
		Error           string         `json:"error"`
		Charts          int            `json:"charts"`
		Drawn           int            `json:"drawn"`
		Inked           int            `json:"inked"`
		Kinds           map[string]int `json:"kinds"`
		Legends         []string       `json:"legends"`
		Comparisons     []string       `json:"comparisons"`
		Measures        []string       `json:"measures"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || res.Error != "" {
		t.Fatalf("node report.mjs: %v %v %s\nstdout: %s\nstderr: %s", runErr, err, res.Error, stdout.String(), stderr.String())
	}
	testkit.Equal(t, len(res.ForeignRequests), 0)
	testkit.True(t, len(res.ConsoleErrors)+len(res.PageErrors) == 0, "console %q, page %q", res.ConsoleErrors, res.PageErrors)
	testkit.True(t, res.Charts >= 10, "%d charts", res.Charts)
	testkit.Equal(t, res.Drawn, res.Charts)
	testkit.Equal(t, res.Inked, res.Charts)
	for _, kind := range []string{"bars", "dist", "lines", "resources"} {
		testkit.True(t, res.Kinds[kind] > 0, "no %s chart: %v", kind, res.Kinds)
	}
	testkit.Equal(t, res.Comparisons, []string{"Side by side: kernel synthetic"})
	testkit.True(t, slices.Contains(res.Legends, "kernelgate") && slices.Contains(res.Legends, "limit"), "legends %q", res.Legends)
	testkit.True(t, slices.Contains(res.Measures, "sequential") && slices.Contains(res.Measures, "rtt"), "measures %q", res.Measures)
	png, err := os.ReadFile(filepath.Join(dir, "report.png"))
	testkit.NoError(t, err)
	testkit.True(t, bytes.HasPrefix(png, []byte("\x89PNG")), "the screenshot is not a PNG")
}
