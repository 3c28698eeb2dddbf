package uplot

import (
	"strings"
	"testing"
)

func TestVersionMatchesTheFiles(t *testing.T) {
	if !strings.HasPrefix(JS, "/*! https://github.com/leeoniya/uPlot (v"+Version+") */") {
		t.Fatalf("uPlot.iife.min.js is not v%s: %.80q", Version, JS)
	}
	if !strings.Contains(License, "MIT License") || !strings.Contains(CSS, ".uplot") {
		t.Fatal("LICENSE or uPlot.min.css is not uPlot's")
	}
	// Both are inlined into <script> and <style> elements.
	for name, s := range map[string]string{"JS": JS, "CSS": CSS} {
		if strings.Contains(strings.ToLower(s), "</script") || strings.Contains(strings.ToLower(s), "</style") {
			t.Fatalf("%s would end its element early when inlined", name)
		}
	}
}
