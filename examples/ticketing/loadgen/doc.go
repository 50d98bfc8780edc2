// Package loadgen sends the ticketing demo's traffic: an open-loop request
// rate that follows a steady, ramp or spike profile, bounded in time and in
// request count, and reports what came back (counts by status, latency
// percentiles, achieved rate).
//
// It only ever sends to this machine. A target whose address is not
// loopback is refused before the run, and the default client's dialer
// refuses to connect anywhere else, whatever a name resolves to later. A
// caller-supplied client (a registry client resolving http://inventory)
// must dial through NewTransport, or the equivalent Dialer.Control, to keep
// that promise; a refused dial stops the run with ErrNotLoopback.
//
//	rep, err := loadgen.Run(ctx, loadgen.Config{
//		Target: "http://127.0.0.1:8081", Profile: loadgen.Spike, Rate: 50, Peak: 500, Duration: 30 * time.Second,
//	})
//	fmt.Print(rep)
package loadgen
