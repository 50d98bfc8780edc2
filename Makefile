# kplane — the two commands that matter:
#   go run ./cmd/kplane dev    run kplane with embedded defaults
#   make test                  install what the tests need (Debian, idempotent) and run them all

GO ?= go
TESTFLAGS ?=

.PHONY: test deps lint build dev bench clean fuzz

test: deps lint
	$(GO) test -count=1 -timeout 25m $(TESTFLAGS) ./...
	GO=$(GO) ./scripts/fuzz.sh

# Every fuzz target for FUZZTIME each (default 10s): make fuzz FUZZTIME=2m
fuzz:
	GO=$(GO) ./scripts/fuzz.sh

deps:
	@./scripts/install-test-deps.sh

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "not gofmt-formatted:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

build:
	$(GO) build -o bin/kplane ./cmd/kplane

dev:
	$(GO) run ./cmd/kplane dev

bench:
	$(GO) run ./bench/registry

clean:
	rm -rf bin .kplane
