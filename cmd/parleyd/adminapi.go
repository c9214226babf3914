package main

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/parleyim/parley/storage"
)

// bans are what the admin commands change: the store itself (storeBans),
// or the store of a running server through its admin endpoint (httpBans),
// which the embedded store needs since it admits one process.
type bans interface {
	Ban(ctx context.Context, user string, until time.Time, reason string) (banResult, error)
	Unban(ctx context.Context, user string) (banResult, error)
	List(ctx context.Context) ([]storage.Ban, error)
}

// banResult names the user a ban or unban applied to.
type banResult struct {
	User  string    `json:"user"`
	ID    int64     `json:"id"`
	Until time.Time `json:"until,omitzero"`
}

// errNoUser is a ban of a user that does not exist.
var errNoUser = errors.New("no such user")

type storeBans struct{ store storage.Store }

func (b storeBans) user(ctx context.Context, name string) (storage.User, error) {
	u, err := b.store.UserByName(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return u, fmt.Errorf("%w %q", errNoUser, name)
	}
	return u, err
}

func (b storeBans) Ban(ctx context.Context, name string, until time.Time, reason string) (banResult, error) {
	u, err := b.user(ctx, name)
	if err != nil {
		return banResult{}, err
	}
	if err := b.store.BanUser(ctx, u.ID, until, reason, time.Now()); err != nil {
		return banResult{}, err
	}
	return banResult{User: u.Username, ID: u.ID, Until: until}, nil
}

func (b storeBans) Unban(ctx context.Context, name string) (banResult, error) {
	u, err := b.user(ctx, name)
	if err != nil {
		return banResult{}, err
	}
	return banResult{User: u.Username, ID: u.ID}, b.store.UnbanUser(ctx, u.ID)
}

func (b storeBans) List(ctx context.Context) ([]storage.Ban, error) {
	return b.store.ActiveBans(ctx, time.Now())
}

// banRequest is the body of POST /admin/bans.
type banRequest struct {
	User   string    `json:"user"`
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"`
}

// maxAdminBody bounds the body of an admin request.
const maxAdminBody = 64 << 10

// adminAPI serves the admin commands on the admin endpoint:
//
//	POST   /admin/bans         {"user", "until" (RFC 3339), "reason"}
//	DELETE /admin/bans/{user}
//	GET    /admin/bans
//
// Each needs "Authorization: Bearer TOKEN" with the server's --admin-token;
// without one configured the API is off (403). Answers are JSON; errors are
// {"error": "..."} with 400 (bad request), 401, 403 or 404 (no such user).
func adminAPI(mux *http.ServeMux, b bans, token string) {
	auth := func(h func(w http.ResponseWriter, r *http.Request) (any, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			status, v := http.StatusOK, any(nil)
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			switch {
			case token == "":
				status, v = http.StatusForbidden, errBody("the admin API is off: start parleyd with --admin-token")
			case !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1:
				status, v = http.StatusUnauthorized, errBody("a wrong or missing admin token")
			default:
				ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
				defer cancel()
				res, err := h(w, r.WithContext(ctx))
				switch {
				case errors.Is(err, errNoUser):
					status, v = http.StatusNotFound, errBody(err.Error())
				case errors.Is(err, errBadRequest):
					status, v = http.StatusBadRequest, errBody(err.Error())
				case err != nil:
					status, v = http.StatusInternalServerError, errBody(err.Error())
				default:
					v = res
				}
			}
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(v)
		}
	}
	mux.HandleFunc("POST /admin/bans", auth(func(w http.ResponseWriter, r *http.Request) (any, error) {
		var req banRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody)).Decode(&req); err != nil {
			return nil, fmt.Errorf("%w: %v", errBadRequest, err)
		}
		if req.User == "" || !req.Until.After(time.Now()) {
			return nil, fmt.Errorf("%w: want a user and an until in the future", errBadRequest)
		}
		return b.Ban(r.Context(), req.User, req.Until, req.Reason)
	}))
	mux.HandleFunc("DELETE /admin/bans/{user}", auth(func(_ http.ResponseWriter, r *http.Request) (any, error) {
		return b.Unban(r.Context(), r.PathValue("user"))
	}))
	mux.HandleFunc("GET /admin/bans", auth(func(_ http.ResponseWriter, r *http.Request) (any, error) {
		list, err := b.List(r.Context())
		if list == nil {
			list = []storage.Ban{}
		}
		return list, err
	}))
}

var errBadRequest = errors.New("bad request")

func errBody(msg string) map[string]string { return map[string]string{"error": msg} }

// httpBans are the bans of a running server, through its admin endpoint.
type httpBans struct {
	base  string // http://host:port
	token string
}

func (h httpBans) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("the admin endpoint of parleyd: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		if resp.StatusCode == http.StatusNotFound && strings.HasPrefix(e.Error, errNoUser.Error()) {
			return fmt.Errorf("%w%s", errNoUser, strings.TrimPrefix(e.Error, errNoUser.Error()))
		}
		return fmt.Errorf("parleyd %s: %s", resp.Status, e.Error)
	}
	return json.Unmarshal(data, out)
}

func (h httpBans) Ban(ctx context.Context, user string, until time.Time, reason string) (banResult, error) {
	var res banResult
	return res, h.do(ctx, http.MethodPost, "/admin/bans", banRequest{User: user, Until: until, Reason: reason}, &res)
}

func (h httpBans) Unban(ctx context.Context, user string) (banResult, error) {
	var res banResult
	return res, h.do(ctx, http.MethodDelete, "/admin/bans/"+url.PathEscape(user), nil, &res)
}

func (h httpBans) List(ctx context.Context) ([]storage.Ban, error) {
	var list []storage.Ban
	return list, h.do(ctx, http.MethodGet, "/admin/bans", nil, &list)
}
