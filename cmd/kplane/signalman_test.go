package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/kplane/kplane/hawaii"
)

func TestServicesValidate(t *testing.T) {
	server := func(driver string, svcs map[string]ServiceConfig) func(*Config) {
		return func(c *Config) { c.Driver, c.Services = driver, svcs }
	}
	for name, tc := range map[string]struct {
		mod  func(*Config)
		want string // in the error; "" is valid
	}{
		"process service": {server("process", map[string]ServiceConfig{"shop": {Path: "/usr/bin/shop",
			Args: []string{"--id", "{id}", "--env", "{env}", "--version", "{version}"}, Env: []string{"N={n}"}, Version: "1.0", Instances: 2}}), ""},
		"docker service": {server("docker", map[string]ServiceConfig{"shop": {Image: "shop:{version}", Version: "1.0",
			Cmd: []string{"--listen", "{listen}", "--advertise={advertise}"}, Binds: []string{"/a:/a"}, User: "1000"}}), ""},
		"swarm service":    {server("swarm", map[string]ServiceConfig{"shop": {SwarmService: "shop_{service}_{env}"}}), ""},
		"swarm empty":      {server("swarm", map[string]ServiceConfig{"shop": {}}), ""},
		"swarm no service": {server("swarm", nil), ""},
		"marathon service": {func(c *Config) {
			server("marathon", map[string]ServiceConfig{"shop": {AppID: "/{env}/shop-api"}})(c)
			c.Marathon.URL = "http://marathon.mesos:8080"
		}, ""},
		"unknown driver":      {server("k8s", nil), `driver "k8s": want process, docker, swarm or marathon`},
		"process needs path":  {server("process", map[string]ServiceConfig{"shop": {Args: []string{"x"}}}), "services.shop.path is empty"},
		"docker needs image":  {server("docker", map[string]ServiceConfig{"shop": {Cmd: []string{"x"}}}), "services.shop.image is empty"},
		"image on process":    {server("process", map[string]ServiceConfig{"shop": {Path: "/bin/shop", Image: "shop:1"}}), "services.shop.image is not a setting of driver process (it takes path, args, env)"},
		"path on docker":      {server("docker", map[string]ServiceConfig{"shop": {Image: "shop:1", Path: "/bin/shop"}}), "services.shop.path is not a setting of driver docker"},
		"app_id on swarm":     {server("swarm", map[string]ServiceConfig{"shop": {AppID: "/x"}}), "services.shop.app_id is not a setting of driver swarm (it takes swarm_service, image, cmd, env)"},
		"unknown placeholder": {server("process", map[string]ServiceConfig{"shop": {Path: "/bin/shop", Args: []string{"--id={instance}"}}}), "{instance} is not a placeholder of driver process"},
		"listen on process":   {server("process", map[string]ServiceConfig{"shop": {Path: "/bin/shop", Args: []string{"{listen}"}}}), "{listen} is not a placeholder of driver process"},
		"version placeholder without version": {server("docker", map[string]ServiceConfig{"shop": {Image: "shop:{version}"}}),
			"services.shop uses {version} but services.shop.version is empty"},
		"bad env entry":      {server("process", map[string]ServiceConfig{"shop": {Path: "/bin/shop", Env: []string{"NOEQUALS"}}}), `services.shop.env entry "NOEQUALS": want KEY=VALUE`},
		"negative instances": {server("process", map[string]ServiceConfig{"shop": {Path: "/bin/shop", Instances: -1}}), "services.shop.instances is -1"},
		"bad name":           {server("process", map[string]ServiceConfig{"shop/api": {Path: "/bin/shop"}}), "services.shop/api: a service name is"},
		"demo name clash": {func(c *Config) {
			server("process", map[string]ServiceConfig{"inventory": {Path: "/bin/inv"}})(c)
			c.Demo.Enabled = true
		}, "services.inventory: the demo runs inventory"},
		"demo on marathon": {func(c *Config) {
			c.Driver, c.Demo.Enabled, c.Marathon.URL = "marathon", true, "http://m:8080"
		}, "the demo runs with driver process or docker, not marathon"},
		"demo on a bridge": {func(c *Config) {
			c.Driver, c.Demo.Enabled, c.Docker.Network = "docker", true, "shop-net"
		}, `the demo runs on the host network, not docker.network "shop-net"`},
		"marathon needs url": {server("marathon", nil), "driver marathon needs marathon.url (or KPLANE_MARATHON_URL)"},
		"pipeline on swarm": {func(c *Config) {
			server("swarm", map[string]ServiceConfig{"shop": {Image: "shop:{version}", Env: []string{"ENV={env}"}},
				"stock": {Image: "stock:{version}"}})(c)
			c.Pipeline.Services = []hawaii.ServicePipeline{{Service: "shop", Dependencies: []string{"stock@1.0"}}}
		}, ""},
		"pipeline on swarm without image": {func(c *Config) {
			server("swarm", map[string]ServiceConfig{"shop": {SwarmService: "shop_{env}"}})(c)
			c.Pipeline.Services = []hawaii.ServicePipeline{{Service: "shop"}}
		}, "pipeline.services: shop runs in each build's throwaway environment alpha-b<build>, which driver swarm creates from services.shop.image"},
		"pipeline dependency on swarm without image": {func(c *Config) {
			server("swarm", map[string]ServiceConfig{"shop": {Image: "shop:{version}"}})(c)
			c.Pipeline.Services = []hawaii.ServicePipeline{{Service: "shop", Dependencies: []string{"stock@1.0"}}}
		}, "set services.stock.image"},
		"pipeline on marathon": {func(c *Config) {
			server("marathon", map[string]ServiceConfig{"shop": {Image: "shop:{version}"}})(c)
			c.Marathon.URL = "http://marathon.mesos:8080"
			c.Pipeline.Services = []hawaii.ServicePipeline{{Service: "shop"}}
		}, "pipeline.services: HAWAII runs every build first in a throwaway environment alpha-b<build>, and driver marathon does not create or destroy environments"},
		"swarm network": {func(c *Config) {
			server("swarm", nil)(c)
			c.Swarm.Network, c.Swarm.StopGracePeriod = "shop-overlay", "15s"
		}, ""},
		"bad swarm grace": {func(c *Config) { c.Driver, c.Swarm.StopGracePeriod = "swarm", "15" }, `swarm.stop_grace_period "15": want a positive duration`},
		"swarm deploy templates": {server("swarm", map[string]ServiceConfig{"shop": {SwarmService: "shop_{env}",
			Image: "registry.example/{service}:{version}", Cmd: []string{"--env", "{env}", "--version", "{version}"}}}), ""},
		"marathon deploy templates": {func(c *Config) {
			server("marathon", map[string]ServiceConfig{"shop": {Image: "shop:{version}", Cmd: []string{"--version={version}"}}})(c)
			c.Marathon.URL = "http://marathon.mesos:8080"
		}, ""},
		"version in a swarm name": {server("swarm", map[string]ServiceConfig{"shop": {SwarmService: "shop-{version}"}}),
			"services.shop: {version} names no Swarm service or Marathon app"},
		"user on swarm": {server("swarm", map[string]ServiceConfig{"shop": {User: "1000"}}),
			"services.shop.user is not a setting of driver swarm (it takes swarm_service, image, cmd, env)"},
		"bad swarm monitor":    {func(c *Config) { c.Driver, c.Swarm.Monitor = "swarm", "soon" }, `swarm.monitor "soon": want a positive duration`},
		"bad stop timeout":     {func(c *Config) { c.Docker.StopTimeout = "10" }, `docker.stop_timeout "10": want a positive duration`},
		"bad port":             {func(c *Config) { c.Docker.Port = 70000 }, "docker.port 70000"},
		"autoscaler env":       {func(c *Config) { c.Autoscaler.Env = "staging" }, ""},
		"bad autoscaler env":   {func(c *Config) { c.Autoscaler.Env = "Prod!" }, `autoscaler.env "Prod!"`},
		"process stop timeout": {func(c *Config) { c.Process.StopTimeout = "30s" }, ""},
	} {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			c.DataDir = t.TempDir()
			tc.mod(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// The services section, the drivers' settings and autoscaler.env come from
// the YAML file; the environment overrides the scalar settings.
func TestServicesConfigLayers(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kplane.yaml")
	yaml := `driver: docker
docker:
  network: shop-net
  subnet: 172.31.0.0/24
  port: 9000
  stop_timeout: 20s
autoscaler:
  env: live
services:
  shop:
    image: "shop:{version}"
    version: 2.0.0
    cmd: [--listen, "{listen}", --advertise, "{advertise}"]
    env: [LOG=json]
    instances: 3
`
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KPLANE_DOCKER_STOP_TIMEOUT", "5s")
	t.Setenv("KPLANE_AUTOSCALER_ENV", "prod")
	var f configFlags
	cmd := &cobra.Command{Use: "x"}
	f.bindCommon(cmd.Flags())
	if err := cmd.Flags().Parse([]string{"--config", file, "--data-dir", dir}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.load(cmd, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Docker.Network != "shop-net" || cfg.Docker.Subnet != "172.31.0.0/24" || cfg.Docker.Port != 9000 {
		t.Errorf("docker settings = %+v", cfg.Docker)
	}
	if cfg.Docker.StopTimeout != "5s" {
		t.Errorf("docker.stop_timeout = %q, want the environment's 5s", cfg.Docker.StopTimeout)
	}
	if got := cfg.autoscalerEnv(); got != "prod" {
		t.Errorf("autoscaler env = %q, want the environment's prod", got)
	}
	s := cfg.Services["shop"]
	if s.Image != "shop:{version}" || s.Version != "2.0.0" || s.Instances != 3 || len(s.Cmd) != 4 || s.Env[0] != "LOG=json" {
		t.Errorf("services.shop = %+v", s)
	}
}

func TestAutoscalerEnvDefaults(t *testing.T) {
	if got := DevConfig().autoscalerEnv(); got != "dev" {
		t.Errorf("kplane dev: %q, want dev", got)
	}
	noDemo := DevConfig()
	noDemo.Demo.Enabled = false
	if got := noDemo.autoscalerEnv(); got != "dev" {
		t.Errorf("kplane dev --no-demo: %q, want dev", got)
	}
	if got := DefaultConfig().autoscalerEnv(); got != "prod" {
		t.Errorf("kplane server: %q, want prod", got)
	}
	// A server running the demo scales the demo's environment, as before.
	withDemo := DefaultConfig()
	withDemo.Demo.Enabled = true
	if got := withDemo.autoscalerEnv(); got != "dev" {
		t.Errorf("kplane server with the demo: %q, want dev", got)
	}
}

// Without a Deployer there is no deploy API: nil, not a nil
// *signalman.Deployer inside a non-nil interface.
func TestNoDeployer(t *testing.T) {
	if d := (&orchestrator{driver: "swarm"}).deploys(nil); d != nil {
		t.Fatalf("deploys(nil) = %#v, want nil", d)
	}
}
