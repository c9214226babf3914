package files

import "sync"

// admission bounds transfers per user and in total: how many run at once
// and (uploads) how many bytes they may still bring. A transfer past a
// bound is refused at once; nothing queues.
type admission struct {
	mu sync.Mutex

	maxUploads, maxUserUploads     int
	maxBytes, maxUserBytes         int64
	maxDownloads, maxUserDownloads int

	uploads, downloads int
	bytes              int64
	users              map[int64]*usage
}

type usage struct {
	uploads, downloads int
	bytes              int64
}

func newAdmission(c *Config) *admission {
	return &admission{
		maxUploads: c.MaxUploads, maxUserUploads: c.MaxUploadsPerUser,
		maxBytes: c.MaxBytes, maxUserBytes: c.MaxBytesPerUser,
		maxDownloads: c.MaxDownloads, maxUserDownloads: c.MaxDownloadsPerUser,
		users: map[int64]*usage{},
	}
}

func (a *admission) user(id int64) *usage {
	u := a.users[id]
	if u == nil {
		u = &usage{}
		a.users[id] = u
	}
	return u
}

func (a *admission) forget(id int64, u *usage) {
	if u.uploads == 0 && u.downloads == 0 && u.bytes == 0 {
		delete(a.users, id)
	}
}

// upload admits an upload of size bytes by user; the error says which
// bound refused it. release undoes it.
func (a *admission) upload(user, size int64) (release func(), err *httpError) {
	a.mu.Lock()
	defer a.mu.Unlock()
	u := a.user(user)
	switch {
	case u.uploads >= a.maxUserUploads:
		a.forget(user, u)
		return nil, errTooManyUploads("uploads at once", a.maxUserUploads)
	case u.bytes+size > a.maxUserBytes:
		a.forget(user, u)
		return nil, errTooManyUploads("bytes of uploads in flight", int(a.maxUserBytes))
	case a.uploads >= a.maxUploads || a.bytes+size > a.maxBytes:
		a.forget(user, u)
		return nil, errBusy
	}
	u.uploads++
	u.bytes += size
	a.uploads++
	a.bytes += size
	return func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		u.uploads--
		u.bytes -= size
		a.uploads--
		a.bytes -= size
		a.forget(user, u)
	}, nil
}

// download admits a download by user.
func (a *admission) download(user int64) (release func(), err *httpError) {
	a.mu.Lock()
	defer a.mu.Unlock()
	u := a.user(user)
	switch {
	case u.downloads >= a.maxUserDownloads:
		a.forget(user, u)
		return nil, errTooManyDownloads(a.maxUserDownloads)
	case a.downloads >= a.maxDownloads:
		a.forget(user, u)
		return nil, errBusy
	}
	u.downloads++
	a.downloads++
	return func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		u.downloads--
		a.downloads--
		a.forget(user, u)
	}, nil
}
