package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kernelgate/kernelgate/internal/testkit"
)

func TestCommands(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"version"}, 0, "kernelgate dev"},
		{[]string{"version", "extra"}, 2, "usage: kernelgate version"},
		{nil, 0, "Commands:"},
		{[]string{"--help"}, 0, "version"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			code := run(tt.args, &out, &out)
			testkit.Equal(t, code, tt.code)
			testkit.True(t, strings.Contains(out.String(), tt.contains), "output %q lacks %q", out.String(), tt.contains)
		})
	}
}
