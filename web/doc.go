// Package web is kplane's HTTP face: the JSON API under /api/v1, the
// server-rendered operator console, /healthz, /readyz and /metrics, all on
// one gin engine returned by (*Server).Handler.
//
// It authenticates callers with package auth (Bearer tokens for the API, a
// session cookie plus CSRF token for the console) and is the one place where
// errors from every component are mapped to HTTP statuses and
// {"error","code"} bodies (errors.go). It reads component state through
// small interfaces it declares itself (ServiceSource) and never starts
// components or owns their goroutines: main wires it.
//
// Use:
//
//	srv, err := web.New(web.Config{Logger: logger, Auth: authSvc, Services: watcher})
//	httpServer := &http.Server{Handler: srv.Handler()}
//	httpServer.RegisterOnShutdown(srv.CloseStreams)
package web
