// Package api is the JSON wire format of the ticketing demo services: the
// resources inventory serves (events, orders, tickets), the checkpoint
// admission, and the error body every endpoint answers with.
//
// Servers and clients (checkpoint calling inventory, the load generator)
// share these types so that the contract is written down once. The package
// holds no behaviour beyond encoding and decoding.
package api
