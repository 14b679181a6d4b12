package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// EndSpan ends span, if it is not nil, with err recorded on it and an
// error status when err is not nil.
func EndSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// LinkTo returns links with a link to ctx's span added, if ctx carries a
// valid span context: the span of a batch links to the spans of the calls
// it serves, since it is theirs alike.
func LinkTo(links []trace.Link, ctx context.Context) []trace.Link {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		links = append(links, trace.Link{SpanContext: sc})
	}
	return links
}
