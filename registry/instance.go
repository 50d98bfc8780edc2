package registry

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// DefaultPrefix is the etcd key prefix under which instances register:
// /service/<name>/<instance-id>.
const DefaultPrefix = "/service/"

// DefaultTTL is the lease TTL of a registration. A crashed instance
// disappears from the registry within this time.
const DefaultTTL = 10 * time.Second

// Instance is one running copy of a service, as stored (JSON) under
// /service/<name>/<id>.
type Instance struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Addr    string    `json:"addr"` // host:port the instance serves HTTP on
	Version string    `json:"version"`
	Tags    []string  `json:"tags,omitempty"`
	Env     string    `json:"env,omitempty"` // alpha, qa, prod, dev ...
	Started time.Time `json:"started"`
}

// Service groups the live instances of one service name.
type Service struct {
	Name      string     `json:"name"`
	Instances []Instance `json:"instances"`
}

// HasTag reports whether the instance carries tag.
func (in Instance) HasTag(tag string) bool {
	for _, t := range in.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// Validate reports what is wrong with an instance before it is registered.
func (in Instance) Validate() error {
	switch {
	case in.Name == "":
		return fmt.Errorf("instance: name is empty")
	case strings.ContainsAny(in.Name, "/ "):
		return fmt.Errorf("instance: name %q contains '/' or a space", in.Name)
	case in.ID == "":
		return fmt.Errorf("instance: id is empty")
	case strings.ContainsAny(in.ID, "/ "):
		return fmt.Errorf("instance: id %q contains '/' or a space", in.ID)
	case in.Addr == "":
		return fmt.Errorf("instance: addr is empty")
	}
	return nil
}

// Key is the etcd key of the instance under prefix (which ends in '/').
func (in Instance) Key(prefix string) string {
	return prefix + in.Name + "/" + in.ID
}

func (in Instance) marshal() (string, error) {
	b, err := json.Marshal(in)
	return string(b), err
}
