// Package inventory is the ticketing demo's ticket seller: events with a
// ticket stock, orders that take tickets out of that stock, and the tickets
// they issue, which venues check in.
//
// State lives in SQLite (WAL) so that several inventory instances can share
// one database file: a purchase takes its tickets with a conditional UPDATE
// and records the order and its tickets in the same transaction, so stock
// never goes negative and no acknowledged order is lost however many buyers
// arrive at once. The package does not register itself or serve metrics;
// package ticketing wires it into a running service.
//
//	store, err := inventory.Open(ctx, inventory.StoreConfig{Path: "inventory.db"})
//	h := inventory.NewHandler(inventory.HandlerConfig{Store: store, Logger: logger})
//	h.Register(mux)
package inventory
