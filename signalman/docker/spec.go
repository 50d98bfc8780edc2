package docker

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kplane/kplane/signalman"
)

// Spec says how to run one instance of a service.
//
// Image, Cmd and Env may contain placeholders, expanded per instance:
// {id} (instance ID), {service}, {env}, {version}, {n} (instance number),
// {listen} (the address to bind: 127.0.0.1:0 on the host network,
// 0.0.0.0:<Config.Port> on a bridge network) and {advertise} (the address
// to register: empty on the host network, where the bound address is
// reachable, <container IP>:<Config.Port> on a bridge network).
type Spec struct {
	Image   string   // image reference, e.g. "kplane-demo:dev" or "shop/inventory:{version}"
	Cmd     []string // arguments to the image's entrypoint, with placeholders
	Env     []string // KEY=VALUE entries, with placeholders
	Binds   []string // bind mounts, "host-path:container-path[:ro]"
	User    string   // "uid[:gid]" to run as; "" means the image's user
	Version string   // version of new instances until a Start names another
}

func (s Spec) validate(service string) error {
	if s.Image == "" {
		return fmt.Errorf("docker: service %q: spec has no image", service)
	}
	if !validName(service) {
		return fmt.Errorf("docker: service name %q cannot be part of a container name", service)
	}
	return nil
}

// launch is one instance about to be created.
type launch struct {
	target    signalman.Target
	n         int
	version   string
	listen    string
	advertise string
	ip        string // bridge network only
}

func (l launch) id() string { return instanceID(l.target, l.n) }

func (l launch) expand(s string) string {
	return strings.NewReplacer(
		"{id}", l.id(),
		"{service}", l.target.Service,
		"{env}", l.target.Env,
		"{version}", l.version,
		"{n}", strconv.Itoa(l.n),
		"{listen}", l.listen,
		"{advertise}", l.advertise,
	).Replace(s)
}

func (l launch) expandAll(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = l.expand(s)
	}
	return out
}

// instanceID is the ID an instance registers under; the same scheme as the
// process driver, so a service keeps its IDs when it changes driver.
func instanceID(t signalman.Target, n int) string {
	if t.Env == "" {
		return t.Service + "-" + strconv.Itoa(n)
	}
	return t.Service + "-" + t.Env + "-" + strconv.Itoa(n)
}

// containerName is "kplane-<service>-<env>-<n>".
func containerName(t signalman.Target, n int) string {
	return "kplane-" + instanceID(t, n)
}

// validName reports whether s is usable in a container name, whose
// characters the engine restricts to [a-zA-Z0-9_.-].
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-'
		if !ok {
			return false
		}
	}
	return true
}
