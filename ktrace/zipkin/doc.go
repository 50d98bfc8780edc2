// Package zipkin decodes Zipkin v2 JSON span lists (what zipkin-go's HTTP
// reporter and Zipkin-instrumented applications POST to /api/v2/spans)
// into ktrace spans.
//
// Zipkin differs from ktrace's model in three ways that Decode resolves:
//
//   - 64-bit trace IDs: zero-padded on the left to 128 bits, as B3 does.
//   - Dapper annotations: a span without timestamp or duration takes them
//     from cs/cr (client) or sr/ss (server), and one without a kind takes
//     its kind from them. A v1-style span holding both halves (cs, sr, ss,
//     cr) is split into a client and a server span.
//   - Shared spans: Zipkin lets a server reuse its caller's span ID
//     (shared: true). ktrace needs (trace ID, span ID) unique, so the
//     server half gets a span ID derived from the pair (the same on a
//     retry, so the store deduplicates it) and the client half as parent.
//     Spans in the same request that named the shared ID as parent and
//     belong to the server's service are moved under the server half.
//     Children reported in a later request keep the client half as
//     parent: the tree stays connected, one level shallower.
//
// A request that is not a valid span list fails as a whole with
// ktrace.ErrInvalid naming the span and the problem: Zipkin's API has no
// partial success, and a silently dropped span is worse than a rejected
// batch the client logs.
package zipkin
