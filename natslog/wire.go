package natslog

import (
	"fmt"
	"maps"
	"math/bits"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// The headers of an event message. The payload is the event's data,
// untouched, so other NATS clients can read it.
const (
	// hdrSeq carries the event's per-entity Seq in decimal. On a deletion
	// marker it carries the last Seq deleted.
	hdrSeq = "Es-Seq"
	// hdrEvent carries the event's name, path-escaped (url.PathEscape), so
	// any name survives the header syntax.
	hdrEvent = "Es-Event"
	// hdrRev carries the event's schema revision in decimal, when not 0.
	hdrRev = "Es-Rev"
	// hdrMeta carries the event's metadata, when not empty, query-encoded
	// (k=v&k2=v2, keys sorted).
	hdrMeta = "Es-Meta"
	// hdrMarker marks a message that stands in for deleted events: it keeps
	// the stream's last Seq when every event was deleted. Readers skip it.
	// Its value says what deleted them: "1" DeleteTo, or DeleteStream,
	// leaving a tombstone, markerReuse or markerFinal.
	hdrMarker = "Es-Deleted"
	// hdrRollup makes the server purge the subject's earlier messages when
	// it stores the message, atomically: a tombstone replaces its stream.
	hdrRollup = "Nats-Rollup"
)

// The values of [hdrMarker] of the tombstones DeleteStream leaves.
const (
	markerReuse = "stream"
	markerFinal = "final"
)

// JetStream's headers.
const (
	hdrExpectedLastSubjSeq = "Nats-Expected-Last-Subject-Sequence"
	hdrBatchID             = "Nats-Batch-Id"
	hdrBatchSeq            = "Nats-Batch-Sequence"
	hdrBatchCommit         = "Nats-Batch-Commit"
	hdrStream              = "Nats-Stream"
	hdrSubject             = "Nats-Subject"
	hdrSequence            = "Nats-Sequence"
	hdrTimeStamp           = "Nats-Time-Stamp"
	hdrNumPending          = "Nats-Num-Pending"
	hdrStatus              = "Status"
	hdrDescription         = "Description"
)

// Status codes of replies without payload.
const (
	statusNoResponders = "503"
	statusNotFound     = "404"
	statusEOB          = "204"
)

// outMsg is an event message on its way out. Appends recycle them through
// outPool, header map included: nats.go copies a message into its write
// buffer during PublishMsg and keeps no reference to it, so after the append
// nothing points into an outMsg.
//
// The header map keeps its entries from one use to the next: each is a
// one-element slice of vals, so a recycled message with the same headers
// gets its new values without a map operation. keys says which entries the
// map holds that way.
type outMsg struct {
	nats.Msg
	// vals backs the header values, one slot per header this package sets
	// (the val constants).
	vals [numVals]string
	keys uint8 // 1<<val for each header of vals in Header
	// digits backs the decimal values of Es-Seq and the expected sequence,
	// which live as long as the message is not released.
	digits [2][20]byte
}

// The places in outMsg.vals of the headers an event message may carry.
const (
	valSeq = iota
	valEvent
	valRev
	valMeta
	valExpected
	numVals
)

// valHeaders names the header of each val.
var valHeaders = [numVals]string{hdrSeq, hdrEvent, hdrRev, hdrMeta, hdrExpectedLastSubjSeq}

var outPool = sync.Pool{New: func() any { return &outMsg{Msg: nats.Msg{Header: make(nats.Header, 8)}} }}

// eventMsg returns the message for event ev with Seq seq on subj, and its
// header and payload length as the client will send it. The message carries
// the expected-sequence header, which expect must then set, if expects,
// and no batch headers. Give it back with release.
func eventMsg(subj string, seq uint64, ev *eventlog.Event, expects bool) (m *outMsg, size int) {
	m = outPool.Get().(*outMsg)
	m.Subject, m.Data = subj, ev.Data
	want := uint8(1<<valSeq | 1<<valEvent)
	m.vals[valSeq] = m.decimal(0, seq)
	m.vals[valEvent] = url.PathEscape(ev.Name)
	// The size as headerSize counts it, without going through the map.
	size = headerReserve + len(hdrSeq) + len(m.vals[valSeq]) + 4 + len(hdrEvent) + len(m.vals[valEvent]) + 4
	if ev.Revision != 0 {
		want |= 1 << valRev
		m.vals[valRev] = strconv.FormatUint(uint64(ev.Revision), 10)
		size += len(hdrRev) + len(m.vals[valRev]) + 4
	}
	if len(ev.Metadata) > 0 {
		want |= 1 << valMeta
		m.vals[valMeta] = encodeMeta(ev.Metadata)
		size += len(hdrMeta) + len(m.vals[valMeta]) + 4
	}
	if expects {
		want |= 1 << valExpected
		m.vals[valExpected] = "0"
	}
	if diff := want ^ m.keys; diff != 0 {
		for v := range numVals {
			switch bit := uint8(1) << v; {
			case diff&bit == 0:
			case want&bit != 0:
				m.Header[valHeaders[v]] = m.vals[v : v+1 : v+1]
			default:
				delete(m.Header, valHeaders[v])
			}
		}
		m.keys = want
	}
	return m, size + len(ev.Data)
}

// decimal returns n in decimal, in m.digits[i] unless a constant string
// serves: the string lives until m is released.
func (m *outMsg) decimal(i int, n uint64) string {
	if n < 100 {
		return strconv.FormatUint(n, 10) // a constant, not allocated
	}
	b := strconv.AppendUint(m.digits[i][:0], n, 10)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// expect sets the expected last subject sequence of m, built by eventMsg
// with expects, to sseq.
func (m *outMsg) expect(sseq uint64) {
	m.vals[valExpected] = m.decimal(1, sseq)
}

// release returns m to outPool. A message whose header map holds more than
// the entries keys accounts for (an atomic batch's headers) leaves it empty.
func (m *outMsg) release() {
	h := m.Header
	keys := m.keys
	if len(h) != bits.OnesCount8(keys) {
		clear(h)
		keys = 0
	}
	m.Msg = nats.Msg{Header: h}
	m.vals = [numVals]string{}
	m.keys = keys
	outPool.Put(m)
}

// headerReserve is the room the size of an event message leaves for the
// headers a publish may add: the expected sequence and the atomic batch
// headers.
const headerReserve = len("NATS/1.0\r\n\r\n") +
	len(hdrExpectedLastSubjSeq+": 18446744073709551615\r\n") +
	len(hdrBatchID+": 0123456789012345678901\r\n") +
	len(hdrBatchSeq+": 1000000\r\n") +
	len(hdrBatchCommit+": 1\r\n")

// encodeMeta encodes metadata for [hdrMeta].
func encodeMeta(md map[string]string) string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(md)) {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(k))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(md[k]))
	}
	return b.String()
}

// decodeMeta reverses [encodeMeta].
func decodeMeta(s string) (map[string]string, error) {
	md := make(map[string]string)
	for pair := range strings.SplitSeq(s, "&") {
		k, v, _ := strings.Cut(pair, "=")
		k, err := url.QueryUnescape(k)
		if err != nil {
			return nil, err
		}
		if v, err = url.QueryUnescape(v); err != nil {
			return nil, err
		}
		md[k] = v
	}
	return md, nil
}

// stored is an event message as read back from the stream.
type stored struct {
	subject string
	sseq    uint64 // stream sequence: the record's Position
	seq     uint64 // Es-Seq
	marker  bool   // a deletion marker, not an event
	tomb    bool   // a marker DeleteStream left, the subject's first message
	final   bool   // a tombstone of a stream deleted for good
	time    time.Time
	header  nats.Header
	data    []byte
}

// parseDirect reads a message returned by a direct get: the stored headers
// plus Nats-Subject, Nats-Sequence and Nats-Time-Stamp.
func parseDirect(m *nats.Msg) (stored, error) {
	h := m.Header
	s := stored{subject: h.Get(hdrSubject), header: h, data: m.Data}
	var err error
	if s.sseq, err = strconv.ParseUint(h.Get(hdrSequence), 10, 64); err != nil {
		return s, fmt.Errorf("natslog: direct get reply without a valid %s header: %q", hdrSequence, h.Get(hdrSequence))
	}
	if s.time, err = time.Parse(time.RFC3339Nano, h.Get(hdrTimeStamp)); err != nil {
		return s, fmt.Errorf("natslog: message %d: bad %s header: %w", s.sseq, hdrTimeStamp, err)
	}
	return s, s.parseSeq()
}

// parseSeq reads the Es-Seq header and the marker flags. Only a tombstone
// may carry Seq 0: that of a stream deleted before its first event.
func (s *stored) parseSeq() error {
	v := s.header.Get(hdrSeq)
	kind := s.header.Get(hdrMarker)
	s.marker = kind != ""
	s.final = kind == markerFinal
	s.tomb = s.final || kind == markerReuse
	seq, err := strconv.ParseUint(v, 10, 64)
	if err != nil || seq == 0 && !s.tomb {
		return fmt.Errorf("natslog: message %d on %s is not an event of this log: %s header %q", s.sseq, s.subject, hdrSeq, v)
	}
	s.seq = seq
	return nil
}

// record builds the Record of an event message of stream (typ, id).
func (s *stored) record(typ, id string) (eventlog.Record, error) {
	r := eventlog.Record{
		EntityType: typ,
		EntityID:   id,
		Seq:        s.seq,
		Position:   s.sseq,
		Time:       s.time,
	}
	if len(s.data) > 0 {
		r.Data = s.data
	}
	name, err := url.PathUnescape(s.header.Get(hdrEvent))
	if err != nil || name == "" {
		return r, fmt.Errorf("natslog: message %d on %s: bad %s header %q", s.sseq, s.subject, hdrEvent, s.header.Get(hdrEvent))
	}
	r.Name = name
	if v := s.header.Get(hdrRev); v != "" {
		rev, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return r, fmt.Errorf("natslog: message %d on %s: bad %s header %q", s.sseq, s.subject, hdrRev, v)
		}
		r.Revision = uint32(rev)
	}
	if v := s.header.Get(hdrMeta); v != "" {
		md, err := decodeMeta(v)
		if err != nil {
			return r, fmt.Errorf("natslog: message %d on %s: bad %s header: %w", s.sseq, s.subject, hdrMeta, err)
		}
		r.Metadata = md
	}
	return r, nil
}
