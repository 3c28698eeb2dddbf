package podtemplate

import (
	"errors"
	"math"
	"math/big"
	"reflect"
	"testing"
)

// The expected values are what PyYAML 6's safe_load builds.
func TestLoadScalars(t *testing.T) {
	huge, _ := new(big.Int).SetString("99999999999999999999", 10)
	tests := []struct {
		yaml string
		want any
	}{
		{"yes", true}, {"No", false}, {"on", true}, {"OFF", false}, {"true", true},
		{"y", "y"}, {"n", "n"},
		{"~", nil}, {"null", nil}, {"", nil},
		{"0777", int64(511)}, {"0o17", "0o17"}, {"0x1F", int64(31)}, {"0b101", int64(5)},
		{"1_000", int64(1000)}, {"1:30", int64(90)}, {"-1:30", int64(-90)}, {"+5", int64(5)},
		{"-0", int64(0)}, {"08", "08"}, {"12:61", "12:61"}, {"99999999999999999999", huge},
		{"1e3", "1e3"}, {"1.0e+3", 1000.0}, {"1.5", 1.5}, {".5", 0.5}, {"5.", 5.0},
		{"1:30.5", 90.5}, {"1_0.5_0", 10.5}, {".inf", math.Inf(1)}, {"-.Inf", math.Inf(-1)},
		{`"123"`, "123"}, {"'yes'", "yes"}, {"!!str 123", "123"}, {`!!int "12"`, int64(12)},
		{"!!float 1", 1.0}, {"abc", "abc"},
		{"[a, {b: 1}]", List{"a", mapping("b", int64(1))}},
		{"{b: 1, a: 2, b: 3}", mapping("b", int64(3), "a", int64(2))},
	}
	for _, tt := range tests {
		got, err := loadValue(tt.yaml)
		if err != nil {
			t.Errorf("load(%q): %v", tt.yaml, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("load(%q) = %#v, want %#v", tt.yaml, got, tt.want)
		}
	}
	if v, err := loadValue(".NaN"); err != nil || !math.IsNaN(v.(float64)) {
		t.Errorf("load(.NaN) = %v, %v", v, err)
	}
}

// What EG would take (or crash on) but a gateway should not guess at.
func TestLoadRefuses(t *testing.T) {
	tests := []struct {
		yaml string
		want error
	}{
		{"[&a {x: 1}, *a]", ErrUnsupportedYAML},
		{"[{<<: {x: 1}}]", ErrUnsupportedYAML},
		{"[{1: x}]", ErrUnsupportedYAML},
		{"2001-12-14", ErrUnsupportedYAML},
		{"=", ErrUnsupportedYAML},
		{"!!binary aGk=", ErrUnsupportedYAML},
		{"!!python/object/apply:os.system [true]", ErrUnsupportedYAML},
		{"!!set {a: null}", ErrUnsupportedYAML},
		{"!!int 1.5", ErrUnsupportedYAML},
		{"0x_", ErrUnsupportedYAML},
		{"[]\n---\n[]", ErrStructuredVar},
		{"[{x: 1}", ErrStructuredVar},
	}
	for _, tt := range tests {
		if v, err := loadValue(tt.yaml); !errors.Is(err, tt.want) {
			t.Errorf("load(%q) = %#v, %v; want %v", tt.yaml, v, err, tt.want)
		}
	}
}
