package deploy

import (
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors/proxy/remote"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/zmq"
)

// requireDeployEnv makes a machine without podman or buildah, or without
// systemd-analyze, fail the tests that need them instead of skipping them
// (`make test` installs them and sets it).
const requireDeployEnv = "KERNELGATE_REQUIRE_DEPLOY"

// imageTool is podman, else buildah; the test skips (or fails under
// KERNELGATE_REQUIRE_IMAGES=1) without either, or when not root (the
// kernel image is checked by running its files under chroot).
func imageTool(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"podman", "buildah"} {
		if _, err := exec.LookPath(tool); err == nil {
			if os.Getuid() != 0 {
				skipOrFail(t, requireDeployEnv, "the image test mounts images and runs their files under chroot: it needs root")
			}
			return tool
		}
	}
	skipOrFail(t, requireDeployEnv, "neither podman nor buildah is installed: `make images` (or `make test`) installs podman")
	return ""
}

func skipOrFail(t *testing.T, env, msg string) {
	t.Helper()
	if os.Getenv(env) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// imageConfig is what `podman inspect` says of an image's configuration.
type imageConfig struct {
	User         string
	Entrypoint   []string
	Cmd          []string
	Env          []string
	ExposedPorts map[string]struct{}
	Labels       map[string]string
	Healthcheck  *json.RawMessage
	WorkingDir   string
}

func inspect(t *testing.T, tool, ref string) (cfg imageConfig, size int64) {
	t.Helper()
	var out []byte
	var err error
	if tool == "podman" {
		out, err = exec.Command("podman", "image", "inspect", ref).Output()
	} else {
		out, err = exec.Command("buildah", "inspect", "--type", "image", ref).Output()
	}
	testkit.NoError(t, err)
	if tool == "podman" {
		var imgs []struct {
			Config imageConfig
			Size   int64
		}
		testkit.NoError(t, json.Unmarshal(out, &imgs))
		testkit.Equal(t, len(imgs), 1)
		return imgs[0].Config, imgs[0].Size
	}
	var img struct {
		OCIv1 struct{ Config imageConfig }
	}
	testkit.NoError(t, json.Unmarshal(out, &img))
	return img.OCIv1.Config, 0
}

// mountImage gives a writable copy of an image's root file system (a
// container's, made for the purpose and removed with t).
func mountImage(t *testing.T, tool, ref string) string {
	t.Helper()
	var ctr []byte
	var err error
	if tool == "podman" {
		ctr, err = exec.Command("podman", "create", ref).Output()
	} else {
		ctr, err = exec.Command("buildah", "from", "--pull-never", ref).Output()
	}
	testkit.NoError(t, err)
	id := strings.TrimSpace(string(ctr))
	mnt, err := exec.Command(tool, "mount", id).Output()
	testkit.NoError(t, err)
	t.Cleanup(func() {
		exec.Command(tool, "umount", id).Run()
		exec.Command(tool, "rm", id).Run()
	})
	return strings.TrimSpace(string(mnt))
}

// TestImages builds both images with deploy/images.sh (as `make images`
// does) and checks what they hold and how they start. Containers cannot
// run on every machine (this project's VMs refuse the runtime's setrlimit),
// so the images' files are run directly: the gateway's binary, and the
// kernel image's `kernelgate launch` with the image's own python3 and
// ipykernel under chroot, as the image's user, calling back a response
// listener with EG's encrypted payload; the test then asks the kernel for
// kernel_info over ZeroMQ.
func TestImages(t *testing.T) {
	tool := imageTool(t)
	const tag = "kernelgate-test"
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	start := time.Now()
	build := exec.CommandContext(ctx, "./images.sh")
	build.Env = append(os.Environ(), "TAG="+tag, "VERSION=v0.0.0-imagetest")
	out, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("images.sh: %v\n%s", err, out)
	}
	t.Logf("images.sh took %v:\n%s", time.Since(start).Round(time.Second), out)
	// The test's tags go; the base layer stays cached for the next run.
	t.Cleanup(func() {
		exec.Command(tool, "rmi", "localhost/kernelgate:"+tag, "localhost/kernelgate-kernel-py:"+tag).Run()
	})

	t.Run("gateway", func(t *testing.T) {
		ref := "localhost/kernelgate:" + tag
		cfg, size := inspect(t, tool, ref)
		t.Logf("%s: %.1f MB", ref, float64(size)/1e6)
		testkit.Equal(t, cfg.User, "65532:65532")
		testkit.Equal(t, cfg.Entrypoint, []string{"/usr/local/bin/kernelgate", "serve"})
		_, has8888 := cfg.ExposedPorts["8888/tcp"]
		testkit.True(t, has8888, "exposed ports %v lack 8888/tcp", cfg.ExposedPorts)
		testkit.True(t, cfg.Healthcheck == nil, "the gateway image has a HEALTHCHECK; probes use /healthz and /readyz")
		testkit.Equal(t, cfg.Labels["org.opencontainers.image.version"], "v0.0.0-imagetest")
		testkit.True(t, strings.HasPrefix(cfg.Labels["org.opencontainers.image.source"], "https://"), "source label %q", cfg.Labels["org.opencontainers.image.source"])
		testkit.True(t, len(cfg.Labels["org.opencontainers.image.revision"]) == 40, "revision label %q", cfg.Labels["org.opencontainers.image.revision"])

		root := mountImage(t, tool, ref)
		bin := filepath.Join(root, "usr/local/bin/kernelgate")
		f, err := elf.Open(bin)
		testkit.NoError(t, err)
		for _, p := range f.Progs {
			testkit.True(t, p.Type != elf.PT_INTERP, "the gateway's binary is dynamically linked (it has an interpreter)")
		}
		f.Close()
		v, err := exec.Command(bin, "version").Output()
		testkit.NoError(t, err)
		testkit.True(t, strings.HasPrefix(string(v), "kernelgate v0.0.0-imagetest "), "version: %q", v)
		passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
		testkit.NoError(t, err)
		testkit.True(t, strings.Contains(string(passwd), ":65532:65532:"), "/etc/passwd names no user 65532: %q", passwd)
		st, err := os.Stat(filepath.Join(root, "tmp"))
		testkit.NoError(t, err)
		testkit.True(t, st.Mode()&os.ModeSticky != 0 && st.Mode().Perm() == 0o777, "/tmp is %v", st.Mode())
		_, err = os.Stat(filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"))
		testkit.NoError(t, err)
		entries, err := os.ReadDir(root)
		testkit.NoError(t, err)
		var top []string
		for _, e := range entries {
			top = append(top, e.Name())
		}
		t.Logf("gateway image root: %v", top)
		testkit.True(t, !contains(top, "bin") && !contains(top, "lib"), "the gateway image has more than its binary: %v", top)

		// Where containers run, the image itself answers too.
		if tool == "podman" {
			out, err := exec.Command("podman", "run", "--rm", "--entrypoint", "/usr/local/bin/kernelgate", ref, "version").CombinedOutput()
			switch {
			case err == nil:
				testkit.True(t, strings.HasPrefix(string(out), "kernelgate v0.0.0-imagetest "), "podman run: %q", out)
			case strings.Contains(string(out), "setrlimit"):
				t.Logf("containers cannot run on this machine (%s): checked the image's files instead", strings.TrimSpace(string(out)))
			default:
				t.Errorf("podman run: %v\n%s", err, out)
			}
		}
	})

	t.Run("kernel-py", func(t *testing.T) {
		ref := "localhost/kernelgate-kernel-py:" + tag
		cfg, size := inspect(t, tool, ref)
		t.Logf("%s: %.1f MB", ref, float64(size)/1e6)
		testkit.Equal(t, cfg.User, "1000:100")
		testkit.Equal(t, cfg.Entrypoint, []string{"/usr/local/bin/kernelgate", "launch"})
		testkit.Equal(t, cfg.Labels["org.opencontainers.image.version"], "v0.0.0-imagetest")
		testkit.True(t, contains(cfg.Env, "HOME=/home/jovyan"), "env %v", cfg.Env)
		root := mountImage(t, tool, ref)
		launchInImage(t, root, cfg)
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// launchInImage runs the image's entrypoint in its root file system, as its
// user, with the environment EG gives a kernel pod, and talks to the kernel.
func launchInImage(t *testing.T, root string, cfg imageConfig) {
	// What a container runtime would provide: device nodes and /proc.
	for _, dev := range []string{"null", "zero", "random", "urandom"} {
		target := filepath.Join(root, "dev", dev)
		testkit.NoError(t, os.WriteFile(target, nil, 0o666))
		testkit.NoError(t, syscall.Mount("/dev/"+dev, target, "", syscall.MS_BIND, ""))
		t.Cleanup(func() { syscall.Unmount(target, syscall.MNT_DETACH) })
	}
	proc := filepath.Join(root, "proc")
	testkit.NoError(t, syscall.Mount("proc", proc, "proc", 0, ""))
	t.Cleanup(func() { syscall.Unmount(proc, syscall.MNT_DETACH) })

	keys, err := remote.NewKeyPair(2048)
	testkit.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	testkit.NoError(t, err)
	defer ln.Close()
	const kernelID = "8c5f3c7e-6a8e-4f0b-9d0e-2f1b7f0e5a11"
	env := append([]string{}, cfg.Env...)
	env = append(env, "KERNEL_ID="+kernelID, "RESPONSE_ADDRESS="+ln.Addr().String(), "PUBLIC_KEY="+keys.PublicKey(),
		"PORT_RANGE=0..0", "KERNEL_LANGUAGE=python", "POD_IP=127.0.0.1")
	var uid, gid uint32 = 1000, 100
	cmd := exec.Command(cfg.Entrypoint[0], cfg.Entrypoint[1:]...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: uid, Gid: gid}, Setpgid: true}
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	testkit.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if t.Failed() {
			t.Logf("kernelgate launch in the image:\n%s", logs.String())
		}
	}()

	// The launcher's callback: EG's payload, encrypted with our key.
	conns := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			conns <- c
		}
	}()
	var conn net.Conn
	select {
	case conn = <-conns:
	case err := <-done:
		t.Fatalf("kernelgate launch exited before calling back: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("no callback from kernelgate launch in 60 s")
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	wire, err := io.ReadAll(conn)
	conn.Close()
	testkit.NoError(t, err)
	p, err := keys.Decode(wire)
	testkit.NoError(t, err)
	testkit.Equal(t, p.KernelID, kernelID)
	testkit.True(t, p.CommPort > 0 && p.ShellPort > 0, "payload without ports: %+v", p)

	// The kernel is the image's ipykernel: ask it.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ci := p.ConnectionInfo
	ci.IP = "127.0.0.1"
	client, err := zmq.Connect(ctx, ci, zmq.Options{})
	testkit.NoError(t, err)
	defer client.Close()
	var info struct {
		Implementation string `json:"implementation"`
		LanguageInfo   struct {
			Name string `json:"name"`
		} `json:"language_info"`
	}
	for info.Implementation == "" {
		req, err := zmq.NewMessage("kernel_info_request", client.Identity(), "test", nil, nil)
		testkit.NoError(t, err)
		testkit.NoError(t, client.Send(zmq.Shell, req))
		wait := time.After(2 * time.Second)
	recv:
		for {
			select {
			case r := <-client.Messages():
				if r.Err == nil && r.Channel == zmq.Shell && r.Msg.MsgType() == "kernel_info_reply" {
					testkit.NoError(t, r.Msg.DecodeContent(&info))
					break recv
				}
			case <-wait:
				break recv
			case <-ctx.Done():
				t.Fatal("no kernel_info_reply from the image's kernel")
			}
		}
	}
	testkit.Equal(t, info.Implementation, "ipython")
	testkit.Equal(t, info.LanguageInfo.Name, "python")

	// A shutdown through the comm port, as the gateway sends it, ends the
	// launcher once the kernel is told to go.
	testkit.NoError(t, remote.SendComm(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p.CommPort))), remote.ShutdownRequest, 5*time.Second))
	req, err := zmq.NewMessage("shutdown_request", client.Identity(), "test", nil, map[string]bool{"restart": false})
	testkit.NoError(t, err)
	testkit.NoError(t, client.Send(zmq.Control, req))
	select {
	case err := <-done:
		var exit *exec.ExitError
		testkit.True(t, err == nil || errors.As(err, &exit), "launch: %v", err)
		done <- err // for the deferred clean-up
	case <-time.After(30 * time.Second):
		t.Fatal("kernelgate launch did not end after the shutdown")
	}
}
