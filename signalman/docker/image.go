package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
)

// ImageConfig describes a FROM scratch image of one static binary.
type ImageConfig struct {
	// Tag names the image, e.g. "kplane-demo:3f2a9c1e".
	Tag string
	// Binary is the content of the executable, linked statically
	// (CGO_ENABLED=0): a scratch image has no libc.
	Binary []byte
	// Name is the file name of the binary in the image, at the root.
	Name string
	// Labels are set on the image.
	Labels map[string]string
	// Progress, if not nil, receives the build's output lines.
	Progress io.Writer
}

// BuildImage builds a FROM scratch image holding only the binary, offline:
// the build context is an in-memory tar sent through the engine API, and
// nothing is pulled.
func BuildImage(ctx context.Context, cli *client.Client, cfg ImageConfig) error {
	if cfg.Tag == "" || cfg.Name == "" || len(cfg.Binary) == 0 {
		return errors.New("docker: image needs a tag, a binary and its name")
	}
	dockerfile := fmt.Sprintf("FROM scratch\nCOPY %s /%s\nENTRYPOINT [\"/%s\"]\n", cfg.Name, cfg.Name, cfg.Name)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte(dockerfile)},
		{cfg.Name, 0o755, cfg.Binary},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			return fmt.Errorf("docker: build context: %w", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return fmt.Errorf("docker: build context: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("docker: build context: %w", err)
	}
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags:        []string{cfg.Tag},
		Labels:      cfg.Labels,
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1, // BuildKit needs a session; the classic builder needs nothing
	})
	if err != nil {
		return fmt.Errorf("docker: build %s: %w", cfg.Tag, err)
	}
	defer resp.Body.Close()
	// The build's outcome is in the stream, not in the HTTP status.
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("docker: build %s: %w", cfg.Tag, err)
		}
		if msg.Error != "" {
			return fmt.Errorf("docker: build %s: %s", cfg.Tag, strings.TrimSpace(msg.Error))
		}
		if cfg.Progress != nil && strings.TrimSpace(msg.Stream) != "" {
			fmt.Fprintln(cfg.Progress, strings.TrimSpace(msg.Stream))
		}
	}
	return nil
}

// ImageExists reports whether the engine has an image of that reference.
func ImageExists(ctx context.Context, cli *client.Client, ref string) (bool, error) {
	_, err := cli.ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("docker: inspect image %s: %w", ref, err)
	}
}
