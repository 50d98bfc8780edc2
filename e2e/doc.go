// Package e2e holds end-to-end tests of the kplane binary: they build it,
// run `kplane dev` as a user would, and drive it over HTTP, the CLI and a
// real headless Chromium.
package e2e
