// Package checkpoint is the ticketing demo's venue access control: a gate
// scans a ticket's QR code and POSTs it to /checkins; checkpoint asks
// inventory whether the ticket exists and is unused, then checks it in.
//
// Checkpoint keeps no state. It reaches inventory through the HTTP client
// it is given, which in a deployment resolves http://inventory through the
// registry and balances over its instances; it passes the request's trace
// on. It does not find inventory by itself.
package checkpoint
