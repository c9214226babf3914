package files

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Errors an Access returns, matched with errors.Is. Any other error means
// the check could not be made (the store is down): 503 UNAVAILABLE.
var (
	ErrUnauthorized = errors.New("files: token unknown, revoked or expired")
	ErrBanned       = errors.New("files: account banned")
	ErrForbidden    = errors.New("files: may not read that message")
)

// httpError is an error answer of the endpoint: a status and a JSON body
// {"code": ..., "message": ...}. docs/protocol.md lists the codes.
type httpError struct {
	status     int
	code       string
	msg        string
	retryAfter int // seconds; 0: no Retry-After
}

func (e *httpError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg) }

func (e *httpError) write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	if e.status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="parley"`)
	}
	if e.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": e.code, "message": e.msg})
}

var (
	errNoToken      = &httpError{status: http.StatusUnauthorized, code: "TOKEN_INVALID", msg: "send Authorization: Bearer <token> with the token of LoginOK"}
	errTokenInvalid = &httpError{status: http.StatusUnauthorized, code: "TOKEN_INVALID", msg: "token unknown, revoked or expired; log in again"}
	errBanned       = &httpError{status: http.StatusForbidden, code: "BANNED", msg: "account banned"}
	errBadName      = &httpError{status: http.StatusBadRequest, code: "BAD_NAME", msg: "name must be 1-255 bytes of UTF-8 without control characters, '/' or '\\', not . or .., no leading or trailing space"}
	errBadFileID    = &httpError{status: http.StatusBadRequest, code: "BAD_FILE_ID", msg: "a file is named by the 64 lowercase hex digits of its SHA-256"}
	errBadMessage   = &httpError{status: http.StatusBadRequest, code: "BAD_REQUEST", msg: "conv and seq name the message the file was sent in: give both or neither"}
	errLength       = &httpError{status: http.StatusLengthRequired, code: "LENGTH_REQUIRED", msg: "an upload needs a Content-Length"}
	errIncomplete   = &httpError{status: http.StatusBadRequest, code: "INCOMPLETE", msg: "the body ended before Content-Length bytes"}
	errTimeout      = &httpError{status: http.StatusRequestTimeout, code: "UPLOAD_TIMEOUT", msg: "the upload was too slow"}
	errForbidden    = &httpError{status: http.StatusForbidden, code: "FORBIDDEN", msg: "you may not read this file: name a message of a conversation you are in that carries it, sent by its uploader"}
	errNotFound     = &httpError{status: http.StatusNotFound, code: "NOT_FOUND", msg: "no such file"}
	errBusy         = &httpError{status: http.StatusServiceUnavailable, code: "BUSY", msg: "the server has as many transfers as it takes; retry", retryAfter: 5}
	errUnavailable  = &httpError{status: http.StatusServiceUnavailable, code: "UNAVAILABLE", msg: "storage is unavailable; retry", retryAfter: 5}
	errShutdown     = &httpError{status: http.StatusServiceUnavailable, code: "SHUTDOWN", msg: "the server is shutting down", retryAfter: 5}
)

func errTooLarge(limit int64) *httpError {
	return &httpError{status: http.StatusRequestEntityTooLarge, code: "FILE_TOO_LARGE", msg: fmt.Sprintf("files are at most %d bytes", limit)}
}

func errTooManyUploads(what string, limit int) *httpError {
	return &httpError{status: http.StatusTooManyRequests, code: "TOO_MANY_UPLOADS", msg: fmt.Sprintf("at most %d %s per user; wait for one to finish", limit, what), retryAfter: 1}
}

func errTooManyDownloads(limit int) *httpError {
	return &httpError{status: http.StatusTooManyRequests, code: "TOO_MANY_DOWNLOADS", msg: fmt.Sprintf("at most %d downloads at once per user", limit), retryAfter: 1}
}
