package lograte

import "testing"

func TestCrossed(t *testing.T) {
	for _, tt := range []struct {
		before, after uint64
		want          bool
	}{
		{0, 1, true}, {1, 2, true}, {2, 3, false}, {3, 4, true}, {4, 7, false}, {5, 9, true}, {9, 9, false}, {100, 5000, true},
	} {
		if got := Crossed(tt.before, tt.after); got != tt.want {
			t.Errorf("Crossed(%d, %d) = %v, want %v", tt.before, tt.after, got, tt.want)
		}
	}
}
