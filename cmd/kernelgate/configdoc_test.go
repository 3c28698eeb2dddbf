package main

import (
	"bytes"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kernelgate/kernelgate/internal/testkit"
)

// docs/configuration.md is what `kernelgate serve --help-markdown` prints:
// a setting added, removed or reworded without `make docs` fails here.
func TestConfigurationDocIsGenerated(t *testing.T) {
	var out, errs bytes.Buffer
	testkit.Equal(t, run([]string{"serve", "--help-markdown"}, &out, &errs), 0)
	testkit.Equal(t, errs.String(), "")
	doc, err := os.ReadFile("../../docs/configuration.md")
	testkit.NoError(t, err)
	if !bytes.Equal(doc, out.Bytes()) {
		t.Fatalf("docs/configuration.md is not what the code generates: run `make docs` and commit it\n%s", firstDiff(string(doc), out.String()))
	}
}

// Every setting of serve, launch and bench has its row, with its variables.
func TestConfigurationDocListsEverySetting(t *testing.T) {
	var out bytes.Buffer
	testkit.NoError(t, writeConfigurationDoc(&out))
	doc := out.String()
	var c serveConfig
	for _, st := range serveSettings(&c, io.Discard).list {
		row := "| `--" + st.flag + "` | `" + strings.Join(st.env, "`, `") + "` |"
		testkit.True(t, strings.Contains(doc, row), "configuration.md lacks the row of serve's --%s", st.flag)
	}
	var b benchConfig
	for _, st := range benchSettings(&b, io.Discard).list {
		testkit.True(t, strings.Contains(doc, "| `--"+st.flag+"` | `"+st.env[0]+"`"), "configuration.md lacks the row of bench's --%s", st.flag)
	}
	for _, env := range []string{"KERNEL_ID", "RESPONSE_ADDRESS", "PUBLIC_KEY", "PORT_RANGE", "POD_IP"} {
		testkit.True(t, strings.Contains(doc, "| `"+env+"` |"), "configuration.md lacks launch's %s", env)
	}
	testkit.True(t, strings.Contains(doc, "| `python` | `python3 -m ipykernel_launcher -f {connection_file}` |"), "launch's kernel commands are missing")
}

// The generated page is the same on every machine: a default that comes
// from the environment, the host name or the user needs its words in
// machineDefaults, or the check above would fail on the next machine.
func TestConfigurationDocIsTheSameEverywhere(t *testing.T) {
	var here bytes.Buffer
	testkit.NoError(t, writeConfigurationDoc(&here))
	elsewhere := t.TempDir()
	for _, env := range []string{"HOME", "XDG_RUNTIME_DIR", "XDG_DATA_HOME", "JUPYTER_DATA_DIR", "TMPDIR", "USER", "LOGNAME", "KUBECONFIG"} {
		t.Setenv(env, filepath.Join(elsewhere, strings.ToLower(env)))
	}
	var there bytes.Buffer
	testkit.NoError(t, writeConfigurationDoc(&there))
	if here.String() != there.String() {
		t.Fatalf("a default depends on the environment; describe it in machineDefaults:\n%s", firstDiff(here.String(), there.String()))
	}
	// What the environment cannot change: the host name and the user.
	host, _ := os.Hostname()
	u, _ := user.Current()
	var c serveConfig
	for _, st := range serveSettings(&c, io.Discard).list {
		if _, described := machineDefaults[st.flag]; described {
			continue
		}
		testkit.True(t, host == "" || st.def != host, "--%s defaults to the host name: describe it in machineDefaults", st.flag)
		// root is also a fixed default (EG_UNAUTHORIZED_USERS).
		testkit.True(t, u == nil || ((u.Username == "root" || st.def != u.Username) && !strings.Contains(st.def, u.HomeDir+"/")),
			"--%s defaults to something of this user's (%q): describe it in machineDefaults", st.flag, st.def)
	}
	for name := range machineDefaults {
		found := false
		for _, st := range serveSettings(&c, io.Discard).list {
			found = found || st.flag == name
		}
		testkit.True(t, found, "machineDefaults names --%s, which serve does not have", name)
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return "line " + strconv.Itoa(i+1) + ":\n  file: " + x + "\n  code: " + y
		}
	}
	return "(same lines)"
}
