package admission

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzClientEnv: whatever env object a client sends, the kernel gets only
// KERNEL_* and allowed names, with values a shell cannot misread, and a
// refusal is always a bad request.
func FuzzClientEnv(f *testing.F) {
	for _, seed := range []string{`{}`, `{"KERNEL_USERNAME":"alice","PATH":"/evil"}`, `{"KERNEL_X":"$(id)"}`,
		`{"KERNEL_X":"a\nb"}`, `{"KERNEL_X":1}`, `{"ALLOWED":"v","LD_PRELOAD":"x.so"}`, `{"KERNEL_ID":"not-a-uuid"}`, `{"":"x"}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var raw map[string]any
		if json.Unmarshal(body, &raw) != nil {
			return
		}
		env, err := ClientEnv(raw, []string{"ALLOWED"})
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("refused with %v, want ErrBadRequest", err)
			}
			return
		}
		for k, v := range env {
			if !strings.HasPrefix(k, "KERNEL_") && k != "ALLOWED" {
				t.Fatalf("kept %q", k)
			}
			if strings.ContainsAny(v, "$`\r\n\x00") || len(v) > MaxEnvValue {
				t.Fatalf("kept %s=%q", k, v)
			}
		}
	})
}
