package web

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kplane/kplane/registry"
)

// sortedServices copies the source's snapshot (which web must not modify)
// into a stable order: services by name, instances by id.
func (s *Server) sortedServices() []registry.Service {
	src := s.services.Services()
	out := make([]registry.Service, len(src))
	for i, svc := range src {
		out[i] = registry.Service{Name: svc.Name, Instances: slices.Clone(svc.Instances)}
		slices.SortFunc(out[i].Instances, func(a, b registry.Instance) int { return strings.Compare(a.ID, b.ID) })
	}
	slices.SortFunc(out, func(a, b registry.Service) int { return strings.Compare(a.Name, b.Name) })
	return out
}

type servicesView struct {
	Services     []serviceView
	Instances    int
	Environments []string
}

type serviceView struct {
	Name      string
	Versions  []string
	Instances []instanceView
}

type instanceView struct {
	ID, Addr, Version, Env string
	Tags                   []string
	Started                string // RFC 3339, for the live uptime ticker
	Uptime                 string
}

func (s *Server) servicesView() servicesView {
	now := s.now()
	var v servicesView
	envs := map[string]bool{}
	for _, svc := range s.sortedServices() {
		sv := serviceView{Name: svc.Name}
		for _, in := range svc.Instances {
			iv := instanceView{ID: in.ID, Addr: in.Addr, Version: in.Version, Env: in.Env, Tags: in.Tags}
			if !in.Started.IsZero() {
				iv.Started = in.Started.UTC().Format(time.RFC3339)
				iv.Uptime = formatUptime(now.Sub(in.Started))
			}
			sv.Instances = append(sv.Instances, iv)
			if in.Version != "" && !slices.Contains(sv.Versions, in.Version) {
				sv.Versions = append(sv.Versions, in.Version)
			}
			if in.Env != "" {
				envs[in.Env] = true
			}
		}
		slices.Sort(sv.Versions)
		v.Instances += len(sv.Instances)
		v.Services = append(v.Services, sv)
	}
	for e := range envs {
		v.Environments = append(v.Environments, e)
	}
	slices.Sort(v.Environments)
	return v
}

// instanceJSON is the API shape of an instance; tags is always an array so
// clients need not handle null.
type instanceJSON struct {
	ID      string    `json:"id"`
	Addr    string    `json:"addr"`
	Version string    `json:"version"`
	Tags    []string  `json:"tags"`
	Env     string    `json:"env"`
	Started time.Time `json:"started"`
}

type serviceJSON struct {
	Name      string         `json:"name"`
	Instances []instanceJSON `json:"instances"`
}

func (s *Server) apiServices(c *gin.Context) {
	out := []serviceJSON{}
	for _, svc := range s.sortedServices() {
		sj := serviceJSON{Name: svc.Name, Instances: []instanceJSON{}}
		for _, in := range svc.Instances {
			tags := in.Tags
			if tags == nil {
				tags = []string{}
			}
			sj.Instances = append(sj.Instances, instanceJSON{
				ID: in.ID, Addr: in.Addr, Version: in.Version, Tags: tags, Env: in.Env, Started: in.Started,
			})
		}
		out = append(out, sj)
	}
	c.JSON(http.StatusOK, gin.H{"services": out})
}
