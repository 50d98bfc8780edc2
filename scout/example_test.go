package scout_test

import (
	"context"
	"fmt"
	"time"

	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/scout"
)

// A source reports what it measured for each service; scout fills in what
// nobody measured as missing, with a reason, never as zero.
func Example() {
	src := scout.SourceFunc(func(ctx context.Context, services []registry.Service, now time.Time) (map[string]map[scout.Metric]scout.Sample, error) {
		out := map[string]map[scout.Metric]scout.Sample{}
		for _, svc := range services {
			out[svc.Name] = map[scout.Metric]scout.Sample{scout.QPS: scout.Value(float64(10*len(svc.Instances)), now)}
		}
		return out, nil
	})
	reg := staticRegistry{{Name: "inventory", Instances: []registry.Instance{{ID: "inventory-1", Name: "inventory", Addr: "127.0.0.1:9001"}}}}
	s, err := scout.New(scout.Config{Sources: []scout.Source{src}, Registry: reg})
	if err != nil {
		fmt.Println(err)
		return
	}
	snap := s.Collect(context.Background()) // Run(ctx) does this every interval
	inv := snap.Services["inventory"]
	fmt.Println("instances:", inv.Instances)
	for _, m := range scout.Metrics {
		fmt.Printf("%s: %s\n", m, inv.Metrics[m])
	}
	// Output:
	// instances: 1
	// qps: 10
	// cpu: missing (no data from any source)
	// memory: missing (no data from any source)
}
