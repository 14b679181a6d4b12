package natslog

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// msgGetReq is the body of a message get request (JSApiMsgGetRequest).
type msgGetReq struct {
	LastFor string `json:"last_by_subj"`
}

// msgGetResp is the answer to a message get (JSApiMsgGetResponse).
type msgGetResp struct {
	Error   *jetstream.APIError `json:"error,omitempty"`
	Message *struct {
		Subject  string    `json:"subject"`
		Sequence uint64    `json:"seq"`
		Header   []byte    `json:"hdrs,omitempty"`
		Data     []byte    `json:"data,omitempty"`
		Time     time.Time `json:"time"`
	} `json:"message,omitempty"`
}

// leaderLast is [Log.last] read from the stream's leader: the message get
// API, which in a cluster only the stream's leader answers, where direct
// gets are answered by any replica, followers that are behind included.
// It costs a round trip through the server's API handling, so only
// appends the leader refused use it, to learn what the leader holds.
func (l *Log) leaderLast(ctx context.Context, subj string) (stored, bool, error) {
	body, err := json.Marshal(msgGetReq{LastFor: subj})
	if err != nil {
		return stored{}, false, err
	}
	reply, err := l.requestRetry(ctx, &nats.Msg{Subject: l.msgGet, Data: body})
	if err != nil {
		return stored{}, false, err
	}
	if err := statusError(reply); err != nil {
		return stored{}, false, err
	}
	var resp msgGetResp
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return stored{}, false, fmt.Errorf("natslog: bad message get reply %q: %w", reply.Data, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == codeNoMessageFound:
		l.cache.forget(subj)
		return stored{}, false, nil
	case resp.Error != nil && resp.Error.ErrorCode == codeClusterNotAvail:
		return stored{}, false, unavailable("the stream has no leader", resp.Error)
	case resp.Error != nil:
		return stored{}, false, fmt.Errorf("natslog: get the last message on %s from the stream's leader: %w", subj, resp.Error)
	case resp.Message == nil:
		return stored{}, false, fmt.Errorf("natslog: message get reply without a message: %q", reply.Data)
	}
	m := resp.Message
	h := nats.Header{}
	if len(m.Header) > 0 {
		if h, err = nats.DecodeHeadersMsg(m.Header); err != nil {
			return stored{}, false, fmt.Errorf("natslog: message %d on %s: bad headers: %w", m.Sequence, m.Subject, err)
		}
	}
	s := stored{subject: m.Subject, sseq: m.Sequence, time: m.Time, header: h, data: m.Data}
	if err := s.parseSeq(); err != nil {
		return stored{}, false, err
	}
	l.remember(subj, &s)
	return s, true, nil
}
