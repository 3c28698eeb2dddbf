package podtemplate

import (
	"errors"
	"reflect"
	"testing"
)

func TestKernelEnv(t *testing.T) {
	const id = "3F5A2B1C-0d9e"
	cfg := Config{Image: "elyra/kernel-py:3.2.3"}
	tests := []struct {
		name       string
		cfg        Config
		env        map[string]string
		want       map[string]string
		wantCreate bool
	}{
		{"defaults", cfg, map[string]string{"KERNEL_USERNAME": "Alice.Smith", "KERNEL_WORKING_DIR": "/w"}, map[string]string{
			"KERNEL_ID": id, "KERNEL_USERNAME": "Alice.Smith", "KERNEL_POD_NAME": "alice-smith-3f5a2b1c-0d9e",
			"KERNEL_NAMESPACE": "alice-smith-3f5a2b1c-0d9e", "KERNEL_SERVICE_ACCOUNT_NAME": "default",
			"KERNEL_IMAGE": "elyra/kernel-py:3.2.3", "KERNEL_EXECUTOR_IMAGE": "elyra/kernel-py:3.2.3",
			"KERNEL_UID": "1000", "KERNEL_GID": "100",
		}, true},
		{"client values", Config{Image: "x", ExecutorImage: "y", MirrorWorkingDirs: true, DefaultServiceAccount: "kernels"}, map[string]string{
			"KERNEL_USERNAME": "bob", "KERNEL_NAMESPACE": "team-a", "KERNEL_IMAGE": "custom", "KERNEL_UID": " 1_001 ", "KERNEL_GID": "+2000",
			"KERNEL_WORKING_DIR": "/w", "KERNEL_POD_NAME": "--{{ kernel_username }}_{{kernel_id}}--",
		}, map[string]string{
			"KERNEL_ID": id, "KERNEL_USERNAME": "bob", "KERNEL_POD_NAME": "bob-3f5a2b1c-0d9e", "KERNEL_NAMESPACE": "team-a",
			"KERNEL_SERVICE_ACCOUNT_NAME": "kernels", "KERNEL_IMAGE": "custom", "KERNEL_EXECUTOR_IMAGE": "y",
			"KERNEL_UID": "1001", "KERNEL_GID": "2000", "KERNEL_WORKING_DIR": "/w",
		}, false},
		{"shared namespace, pod name template with an expression", Config{Image: "x", SharedNamespace: true}, map[string]string{
			"KERNEL_USERNAME": "bob", "KERNEL_POD_NAME": "{{ kernel_username.__class__ }}",
		}, map[string]string{
			"KERNEL_ID": id, "KERNEL_USERNAME": "bob", "KERNEL_POD_NAME": "bob-3f5a2b1c-0d9e", "KERNEL_NAMESPACE": "default",
			"KERNEL_SERVICE_ACCOUNT_NAME": "default", "KERNEL_IMAGE": "x", "KERNEL_EXECUTOR_IMAGE": "x", "KERNEL_UID": "1000", "KERNEL_GID": "100",
		}, false},
		{"pod name template with a missing variable", cfg, map[string]string{
			"KERNEL_USERNAME": "bob", "KERNEL_POD_NAME": "{{ kernel_team }}-x",
		}, map[string]string{
			"KERNEL_ID": id, "KERNEL_USERNAME": "bob", "KERNEL_POD_NAME": "bob-3f5a2b1c-0d9e", "KERNEL_NAMESPACE": "bob-3f5a2b1c-0d9e",
			"KERNEL_SERVICE_ACCOUNT_NAME": "default", "KERNEL_IMAGE": "elyra/kernel-py:3.2.3", "KERNEL_EXECUTOR_IMAGE": "elyra/kernel-py:3.2.3",
			"KERNEL_UID": "1000", "KERNEL_GID": "100",
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, create, err := tt.cfg.KernelEnv(tt.env, id)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) || create != tt.wantCreate {
				t.Errorf("env =\n%v, create %v\nwant\n%v, create %v", got, create, tt.want, tt.wantCreate)
			}
		})
	}
}

func TestKernelEnvRefuses(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		env  map[string]string
		want error
	}{
		{"no image", Config{}, nil, ErrNoImage},
		{"root uid", Config{Image: "x"}, map[string]string{"KERNEL_UID": "0"}, ErrInvalidID},
		{"root gid", Config{Image: "x"}, map[string]string{"KERNEL_GID": "00"}, ErrInvalidID},
		{"prohibited uid", Config{Image: "x", ProhibitedUIDs: []int64{0, 1001}}, map[string]string{"KERNEL_UID": "1001"}, ErrInvalidID},
		{"negative", Config{Image: "x"}, map[string]string{"KERNEL_UID": "-1"}, ErrInvalidID},
		{"too large", Config{Image: "x"}, map[string]string{"KERNEL_GID": "4294967296"}, ErrInvalidID},
		{"not a number", Config{Image: "x"}, map[string]string{"KERNEL_UID": "1e3"}, ErrInvalidID},
		{"empty", Config{Image: "x"}, map[string]string{"KERNEL_UID": ""}, ErrInvalidID},
	}
	for _, tt := range tests {
		if _, _, err := tt.cfg.KernelEnv(tt.env, "k"); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
	// Root is allowed once the operator's list leaves it out.
	if _, _, err := (Config{Image: "x", ProhibitedUIDs: []int64{}}).KernelEnv(map[string]string{"KERNEL_UID": "0"}, "k"); err != nil {
		t.Errorf("uid 0 with an empty prohibited list: %v", err)
	}
}
