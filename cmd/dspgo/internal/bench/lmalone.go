package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/dspgo/dspgo/internal/lmtest"
)

// lmAlone is the second figure of the LM-bound row: the test LM server
// called with nothing between, by one Go HTTP client that posts the
// request a worker sent, with as many calls in flight. Its calls per
// second are what the server itself serves on the same machine at the
// same moment, the real ceiling of the row, where the target counts the
// LM's nominal latency only.
type lmAlone struct {
	client *http.Client
	url    string
	body   string
}

// newLMAlone replays the first request lm recorded, over up to inFlight
// kept-alive connections; close releases them.
func newLMAlone(lm *lmtest.Server, inFlight int) (*lmAlone, error) {
	reqs := lm.Requests()
	if len(reqs) == 0 {
		return nil, errors.New("the test LM server recorded no request to replay")
	}
	r := reqs[0]
	return &lmAlone{
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: inFlight}},
		url:    "http://" + lm.Addr() + r.Path,
		body:   r.Body,
	}, nil
}

// call posts the request and reads the whole answer.
func (l *lmAlone) call(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url, strings.NewReader(l.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the test LM server answered %s", resp.Status)
	}
	return nil
}

// close closes the client's idle connections.
func (l *lmAlone) close() { l.client.CloseIdleConnections() }
