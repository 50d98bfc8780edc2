package docker

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/pkg/stdcopy"
)

func errdefsNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

// tail returns what a container wrote last (its final 50 lines, cut to
// 800 bytes from their start, where a failing program says why), for an
// error message.
func (d *Driver) tail(containerID string) string {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.StopTimeout)
	defer cancel()
	rc, err := d.cli.ContainerLogs(ctx, containerID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "50"})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil && out.Len() == 0 {
		return ""
	}
	s := strings.TrimSpace(out.String())
	if s == "" {
		return ""
	}
	if len(s) > 800 {
		s = s[:800] + "..."
	}
	return ": " + strings.ReplaceAll(s, "\n", " | ")
}

// ensureNetwork creates the bridge network if it does not exist, and
// checks that an existing one has a subnet to take fixed addresses from.
func (d *Driver) ensureNetwork(ctx context.Context) error {
	nw, err := d.cli.NetworkInspect(ctx, d.cfg.Network, network.InspectOptions{})
	switch {
	case cerrdefs.IsNotFound(err):
		_, err = d.cli.NetworkCreate(ctx, d.cfg.Network, network.CreateOptions{
			Driver: "bridge",
			IPAM:   &network.IPAM{Config: []network.IPAMConfig{{Subnet: d.cfg.Subnet}}},
			Labels: map[string]string{LabelManaged: "true"},
		})
		if err != nil {
			return fmt.Errorf("docker: create network %q: %w", d.cfg.Network, err)
		}
		d.log.Info("created network", "network", d.cfg.Network, "subnet", d.cfg.Subnet)
		if nw, err = d.cli.NetworkInspect(ctx, d.cfg.Network, network.InspectOptions{}); err != nil {
			return fmt.Errorf("docker: inspect network %q: %w", d.cfg.Network, err)
		}
	case err != nil:
		return fmt.Errorf("docker: inspect network %q: %w", d.cfg.Network, err)
	}
	if nw.Driver != "bridge" {
		return fmt.Errorf("docker: network %q has driver %q; the docker driver needs host networking or a bridge network", d.cfg.Network, nw.Driver)
	}
	for _, c := range nw.IPAM.Config {
		p, err := netip.ParsePrefix(c.Subnet)
		if err == nil && p.Addr().Is4() {
			d.prefix = p.Masked()
			return nil
		}
	}
	return fmt.Errorf("docker: network %q has no IPv4 subnet of its own; create it with --subnet, or let kplane create it", d.cfg.Network)
}

// RemoveNetwork removes the bridge network the driver uses, if any. It
// fails while containers are attached.
func (d *Driver) RemoveNetwork(ctx context.Context) error {
	if !d.bridge {
		return nil
	}
	if err := d.cli.NetworkRemove(ctx, d.cfg.Network); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: remove network %q: %w", d.cfg.Network, err)
	}
	return nil
}

// freeAddr picks the lowest address of the subnet that no managed
// container holds (by label, so containers created but not yet started
// count too) and that is neither the network address nor the gateway.
// Called with ipMu held until the container is created.
func (d *Driver) freeAddr(ctx context.Context) (netip.Addr, error) {
	raw, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", labelAddr))})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("docker: list containers: %w", err)
	}
	used := make(map[netip.Addr]bool)
	for _, c := range raw {
		if a, err := netip.ParseAddr(c.Labels[labelAddr]); err == nil {
			used[a] = true
		}
	}
	nw, err := d.cli.NetworkInspect(ctx, d.cfg.Network, network.InspectOptions{})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("docker: inspect network %q: %w", d.cfg.Network, err)
	}
	for _, c := range nw.IPAM.Config {
		if a, err := netip.ParseAddr(c.Gateway); err == nil {
			used[a] = true
		}
	}
	for _, ep := range nw.Containers { // containers kplane does not manage
		if p, err := netip.ParsePrefix(ep.IPv4Address); err == nil {
			used[p.Addr()] = true
		}
	}
	// Skip the network address and the conventional gateway (.1).
	for a := d.prefix.Addr().Next().Next(); d.prefix.Contains(a); a = a.Next() {
		if !d.prefix.Contains(a.Next()) {
			break // broadcast
		}
		if !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("docker: network %q (%s) has no free address", d.cfg.Network, d.prefix)
}
