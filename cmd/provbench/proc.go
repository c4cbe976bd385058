package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// memStatus is a process's resident memory from /proc/<pid>/status.
type memStatus struct {
	rss, hwm int64 // bytes: VmRSS now, VmHWM (peak) so far
}

func readMem(pid int) (memStatus, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{}, err
	}
	return parseStatus(b)
}

func parseStatus(b []byte) (memStatus, error) {
	var m memStatus
	found := 0
	for line := range bytes.Lines(b) {
		name, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(name) {
		case "VmRSS":
			dst = &m.rss
		case "VmHWM":
			dst = &m.hwm
		default:
			continue
		}
		f := strings.Fields(string(rest)) // "12345 kB"
		if len(f) != 2 || f[1] != "kB" {
			return memStatus{}, fmt.Errorf("unexpected %s line %q", name, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return memStatus{}, err
		}
		*dst = kb << 10
		found++
	}
	if found != 2 {
		return memStatus{}, errors.New("no VmRSS and VmHWM in /proc status")
	}
	return m, nil
}

// readCPU returns the CPU time (user + system) a process has used.
func readCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStat(b)
}

// parseStat reads utime and stime, fields 14 and 15 of /proc/<pid>/stat.
// The command name (field 2) is in parentheses and may hold spaces, so the
// fields are counted from the last ')'.
func parseStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	utime, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, err
	}
	stime, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// selfCPU returns the CPU time (user + system) this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// heapStats counts the process's heap allocation and garbage collections
// so far.
type heapStats struct{ bytes, cycles uint64 }

func readHeap() heapStats {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return heapStats{bytes: s[0].Value.Uint64(), cycles: s[1].Value.Uint64()}
}

// since is what was allocated and collected between h0 and h.
func (h heapStats) since(h0 heapStats) heapStats {
	return heapStats{bytes: h.bytes - h0.bytes, cycles: h.cycles - h0.cycles}
}

// tailBuffer keeps the last max bytes written to it, for diagnostics.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// procWorker is bin/provisioner run as a child process.
type procWorker struct {
	cmd    *exec.Cmd
	output *tailBuffer
	done   chan error
}

// startProcWorker starts the provisioner at bin with exactly env (plus
// PATH), so nothing from the harness's environment changes its behaviour.
func startProcWorker(bin string, env map[string]string) (*procWorker, error) {
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &tailBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &procWorker{cmd: cmd, output: out, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	return p, nil
}

func (p *procWorker) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended, and how.
func (p *procWorker) exited() (bool, error) {
	select {
	case err := <-p.done:
		p.done <- err
		return true, err
	default:
		return false, nil
	}
}

// stop sends SIGTERM and waits for the exit, killing the process after grace.
func (p *procWorker) stop(grace time.Duration) error {
	if done, err := p.exited(); done {
		return fmt.Errorf("provisioner had already exited: %v", err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case err := <-p.done:
		return err
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("provisioner did not stop within %s of SIGTERM; killed", grace)
	}
}

// buildProvisioner builds cmd/provisioner into dir and returns its path.
func buildProvisioner(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "provisioner")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/cloudnexus/provisioner/cmd/provisioner")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build cmd/provisioner: %w\n%s", err, out.String())
	}
	return bin, nil
}
