package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// switchState is the part of the admin API's state object the plugin uses.
type switchState struct {
	Name        string            `json:"name"`
	Version     uint64            `json:"version"`
	Weights     map[string]uint64 `json:"weights"`
	EffectiveAt time.Time         `json:"effective_at"`
	Rollout     *struct {
		State string `json:"state"`
	} `json:"rollout"`
}

// apiError is an admin API answer other than 200.
type apiError struct {
	Status int
	Msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Msg) }

// adminClient talks to one switch of one admin listener.
type adminClient struct {
	cfg  *Config
	http *http.Client
	base string // adminURL/v1/switches/SWITCH
}

func newAdminClient(c *Config) (*adminClient, error) {
	hc, err := c.httpClient()
	if err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(c.AdminURL, "/") + "/v1/switches/" + url.PathEscape(c.Switch)
	return &adminClient{cfg: c, http: hc, base: base}, nil
}

// get reads the switch's state.
func (a *adminClient) get(ctx context.Context) (*switchState, error) {
	var s switchState
	if err := a.do(ctx, http.MethodGet, a.base, "", nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// putWeights writes w under If-Match: version.
func (a *adminClient) putWeights(ctx context.Context, version uint64, w map[string]uint64, reason string) (*switchState, error) {
	body, err := json.Marshal(struct {
		Weights map[string]uint64 `json:"weights"`
		Reason  string            `json:"reason"`
	}{w, reason})
	if err != nil {
		return nil, err
	}
	var s switchState
	if err := a.do(ctx, http.MethodPut, a.base+"/weights", fmt.Sprintf(`"%d"`, version), body, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// do runs one request and decodes a 200's body into out; any other status
// is an *apiError carrying the API's {"error": ...} message.
func (a *adminClient) do(ctx context.Context, method, u, ifMatch string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	tok, err := a.cfg.token()
	if err != nil {
		return err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err) {
			return fmt.Errorf("admin API %s: no answer within the timeout (%s): %w", a.cfg.AdminURL, a.cfg.timeout(), err)
		}
		return fmt.Errorf("admin API %s: %w", a.cfg.AdminURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("admin API %s: reading the answer: %w", a.cfg.AdminURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
			if len(e.Error) > 200 {
				e.Error = e.Error[:200]
			}
		}
		return &apiError{Status: resp.StatusCode, Msg: e.Error}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("admin API %s: the answer is not a switch's state: %w", a.cfg.AdminURL, err)
	}
	return nil
}

// isStatus reports whether err is an admin API answer with that status.
func isStatus(err error, status int) bool {
	var e *apiError
	return errors.As(err, &e) && e.Status == status
}
