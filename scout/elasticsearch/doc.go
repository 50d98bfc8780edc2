// Package elasticsearch is a scout source that measures QPS per service
// from the access logs the services ship to Elasticsearch 7, through
// olivere/elastic/v7.
//
// Each tick it sends ONE search: documents of the asked-for services in
// the last Window (health checks and metric scrapes excluded), size 0, with
// a terms aggregation on the service field; QPS is a service's bucket count
// divided by the window in seconds. The window ends at the tick time, so
// the request is reproducible (its body is a golden file in testdata).
//
// It provides QPS only; CPU and memory come from another source. A failed
// search (index missing, server error, timeout) is an error, so scout marks
// QPS missing with it; a service with no bucket is Missing "no access-log
// lines", not zero: a quiet service and a service whose logs stopped
// arriving look the same here.
//
// Sniffing and health checks are off: kplane talks to one URL, usually a
// load balancer, and must not make requests beyond the one per tick.
package elasticsearch
