package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/server/files"
	"github.com/parleyim/parley/storage/blob"
)

// Config is the server's configuration. Every zero value means the default
// written beside the field; New fills them in and then validates the result.
type Config struct {
	// FilesAddr is the address of the HTTP file endpoint of attachments
	// (server/files, docs/protocol.md); empty: none. Port 0 takes a free
	// port (Server.FilesAddr). Needs Blobs.
	FilesAddr string
	// FilesURL is the endpoint's base URL that LoginOK tells clients.
	// Default http:// and the address FilesAddr bound.
	FilesURL string
	// Blobs stores the attachments' files.
	Blobs blob.Store
	// Files holds the endpoint's limits; the server sets its Store,
	// Access and Logger.
	Files files.Config
	// FilesGC configures the collector of unreferenced files
	// (server/files, gc.go), which runs whenever Blobs is set; the server
	// sets its Store, Refs and Logger. A negative Grace turns it off.
	FilesGC files.GCConfig

	// Addr is the TCP address to listen on. Default 127.0.0.1:7070; port 0
	// takes a free port (Server.Addr says which once started).
	Addr string
	// EventLoops is the number of gnet event loops. Default: one per CPU.
	EventLoops int

	// MaxConns caps concurrent connections, the server's own and those of
	// the listeners that Server.Listener wraps (the admin endpoint's)
	// together; connections past it get a Kick TOO_MANY_CONNECTIONS and are
	// closed at once. Default: the process's open-file limit minus
	// FDReserve. It is lowered to that if set higher.
	MaxConns int
	// FDReserve is how many open files are kept free for the store, logs,
	// the cluster's sockets and a socket being handed to an event loop.
	// Should the process run out anyway, accepting pauses (accept.go).
	// Default 1024.
	FDReserve int
	// MaxConnsPerAddr caps the connections of one remote address (an IPv6
	// address counts by its /64); past it a new connection gets Kick
	// TOO_MANY_CONNECTIONS. Default 256; negative: no cap.
	MaxConnsPerAddr int
	// MaxConnsPerUser caps the logged-in connections of one account; a
	// login past it is answered TOO_MANY_SESSIONS. Default 32; negative:
	// no cap.
	MaxConnsPerUser int
	// FrameTimeout is how long a frame may take to arrive whole, from its
	// first byte; past it the connection gets Kick FRAME_TIMEOUT. Default 10s.
	FrameTimeout time.Duration
	// KickLinger is how long a kicked connection stays open for its Kick
	// to be read; one that does not read is closed after it. Default 5s.
	KickLinger time.Duration

	// NoiseKeys are the server's static Noise keys (LoadNoiseKeys reads
	// them from the data dir). Default: a key made in memory at New, so
	// clients that pin it must pin again after a restart.
	NoiseKeys *NoiseKeys
	// RequireEncryption refuses connections whose first frame is not
	// NoiseHello (Kick ENCRYPTION_REQUIRED).
	RequireEncryption bool
	// RekeyFrames and RekeyBytes: the server moves its sending direction to
	// the next key (a Rekey frame) after that many frames or bytes sealed
	// under one key. Defaults 1<<20 frames and 1 GiB.
	RekeyFrames int
	RekeyBytes  int
	// HandshakeWorkers run the Diffie-Hellman work of handshakes;
	// HandshakeQueue steps may wait for one, past it a handshake is refused
	// (Kick HANDSHAKE_FAILED). Defaults: half the CPUs (at least one), and
	// 1024.
	HandshakeWorkers int
	HandshakeQueue   int
	// HandshakeRatePerAddr and HandshakeBurstPerAddr admit handshakes per
	// remote address (a token bucket); HandshakeRate and HandshakeBurst over
	// the whole server. Defaults 10/s with a burst of 50, and unlimited
	// (negative) over the server: the queue bounds it. A negative rate turns
	// that limit off.
	HandshakeRatePerAddr  float64
	HandshakeBurstPerAddr int
	HandshakeRate         float64
	HandshakeBurst        int

	// TrustedProxies are the addresses of load balancers that send the
	// PROXY protocol v2 header (HAProxy's send-proxy-v2): a connection from
	// one must start with it, and the client's address in it counts for
	// every per-address limit. A client the proxy reached over TLS
	// (send-proxy-v2-ssl) counts as encrypted under RequireEncryption.
	// Connections from other addresses are never read for a header.
	TrustedProxies []netip.Prefix

	// MaxFrame limits the frame length field (header + body). Default 64 KiB.
	MaxFrame int
	// MaxMessage limits a message body. Default 16 KiB.
	MaxMessage int
	// RecallWindow is how long after sending a user may recall a message
	// for everyone; a group's owner may recall any of the group's messages
	// at any time. Default 2 minutes.
	RecallWindow time.Duration
	// Heartbeat is the ping interval told to clients; a connection silent
	// for three intervals is closed. Default 30s.
	Heartbeat time.Duration

	// Workers is the number of goroutines that run handlers off the event
	// loops. Default 256.
	Workers int
	// InboxFrames bounds the frames of one connection waiting for a worker;
	// past it frames are answered BUSY. Default 256.
	InboxFrames int
	// MaxPendingSends bounds the Sends of one connection handed to the
	// store and not yet answered; past it a Send is answered BUSY. LoginOK
	// tells the client (send_window). Default 256, the InboxFrames default,
	// which is what clients that do not read send_window assume.
	MaxPendingSends int
	// InboxBytes bounds the bytes of the frames of one connection waiting
	// for a worker (their wire size); past it frames are answered BUSY.
	// Default 256 KiB, at most 1 GiB.
	InboxBytes int
	// MaxOutbound bounds the bytes queued to one connection that the client
	// has not read, wherever they were written (event loop or worker);
	// past it the connection is kicked SLOW_CONSUMER. Default 1 MiB.
	MaxOutbound int
	// RequestTimeout bounds one handler's storage work. Default 10s.
	RequestTimeout time.Duration

	// RateLimit is the sustained frames per second one connection may send;
	// RateBurst the bucket size. Defaults 200 and 2×RateLimit. A negative
	// RateLimit turns the limit off.
	RateLimit float64
	RateBurst int

	// AuthRatePerAddr and AuthBurstPerAddr limit the frames that cost a
	// password hash (Register, Login by password) per remote address, per
	// second; AuthRate and AuthBurst over the whole server. Past them the
	// frame is answered RATE_LIMITED with until. Defaults 1 per second with
	// a burst of 10, and 50 per second with a burst of 100; a negative rate
	// turns that limit off.
	AuthRatePerAddr  float64
	AuthBurstPerAddr int
	AuthRate         float64
	AuthBurst        int
	// DirRatePerAddr and DirBurstPerAddr limit the frames of the
	// directory of open groups (GroupSearch, GroupJoin) per remote
	// address, per second; DirRate and DirBurst over the whole server.
	// Past them the frame is answered RATE_LIMITED with until. Defaults 2
	// per second with a burst of 20, and 200 per second with a burst of
	// 400; a negative rate turns that limit off.
	DirRatePerAddr  float64
	DirBurstPerAddr int
	DirRate         float64
	DirBurst        int
	// HashWorkers is how many password hashes run at once; HashQueue how
	// many may wait for one. A hash past the queue is answered BUSY at
	// once. Defaults: half the CPUs (at least one), and 32.
	HashWorkers int
	HashQueue   int

	// BcryptCost is the password hashing cost. Default bcrypt.DefaultCost.
	BcryptCost int
	// TokenTTL is how long a resume token lives. Default 30 days.
	TokenTTL time.Duration
	// LoginFailuresPerUser and LoginFailuresPerIP are the failed logins
	// allowed within LoginWindow before TOO_MANY_ATTEMPTS. Defaults 5, 30, 1m.
	LoginFailuresPerUser int
	LoginFailuresPerIP   int
	LoginWindow          time.Duration
	// LoginFailuresPerAccount is the failed password logins of one account
	// from all addresses together allowed within LoginWindow; past it only
	// addresses the account logged in from before may try its password
	// (tokens always work). LoginFailuresPerUser then counts per (account,
	// address), each blocked window twice as long as the one before.
	// Default 100.
	LoginFailuresPerAccount int

	// SyncLimit and MaxSyncLimit are the default and largest page sizes of
	// Sync, History and Conversations. Defaults 100 and 500.
	SyncLimit    int
	MaxSyncLimit int

	// SearchConcurrency is how many Search frames run at once on the server
	// (one per user at most); past it a search is answered BUSY. Default
	// half the CPUs, at least one. SearchTimeout bounds one search (TIMEOUT
	// past it), default 2s; SearchMaxReads the messages and lists one
	// search may read (SEARCH_TOO_BROAD when none matched within them),
	// default 4000.
	SearchConcurrency int
	SearchTimeout     time.Duration
	SearchMaxReads    int

	// Expiring messages (expiry.go). MinTimer is the shortest timer a
	// conversation may get, default 5s (tests set less; at least 1s);
	// TimerRate and TimerBurst admit the timer changes of one user (a token
	// bucket), default one per 5 s with a burst of 3. ExpireInterval is how
	// often the sweeper runs, default 1s; ExpireBatch the messages one store
	// call deletes, default 256; ExpirePerTick the messages one run deletes
	// at most, default 4096 (the rest wait for the next run; reads hide them
	// meanwhile).
	MinTimer       time.Duration
	TimerRate      float64
	TimerBurst     int
	ExpireInterval time.Duration
	ExpireBatch    int
	ExpirePerTick  int

	// DMPolicy says who may send whom direct messages: DMFriends (the
	// default) or DMAnyone.
	DMPolicy DMPolicy
	// MaxGroupSize caps a group's members, the owner included. Default 2000.
	MaxGroupSize int
	// ReceiptInterval is how long the read receipts of a group are
	// collected before the senders of the messages read get their new
	// counts: at most one GroupReadEvent per sender, group and interval
	// (per node). Default 1s.
	ReceiptInterval time.Duration
	// TypingTTL is how long a typing indicator lasts unless renewed; a
	// connection's repeated Typing for one conversation is fanned out at
	// most every TypingTTL/3. Default 6s.
	TypingTTL time.Duration
	// TypingMaxGroup: typing in a group with more members is not fanned
	// out. Default 200.
	TypingMaxGroup int
	// SignalRate and SignalBurst limit the Typing and Received frames of
	// one connection per second, beyond RateLimit; past them the frame is
	// answered RATE_LIMITED. Defaults 5 and 20; a negative rate turns the
	// limit off.
	SignalRate  float64
	SignalBurst int
	// PresenceGrace is how long a user whose last connection closed may
	// take to come back before its friends are told it went offline.
	// Default 5s.
	PresenceGrace time.Duration
	// Presence is the directory of which node holds each user's
	// connections; the server closes it when it stops. Default: in memory
	// (a single node).
	Presence router.Presence
	// NodeName names this node in the directory; unique in a cluster.
	// Default: Addr.
	NodeName string
	// PresenceTTL is how long the directory counts this node's users
	// after its last heartbeat (one every PresenceTTL/3). Default 15s.
	PresenceTTL time.Duration
	// Cluster makes the server one node of a cluster; nil: a single node.
	// Bus must be set with it. The server leaves the cluster and closes the
	// bus when it stops.
	Cluster Cluster
	Bus     router.Bus
	// OutboxBytes bounds the frames queued for one other node while the
	// bus is down or slow; past it the oldest are dropped and that node
	// catches its users up (catchup.go). Default 64 MiB.
	OutboxBytes int
	// BanPoll is how often the server looks for bans of connected users
	// made by the admin tools. Default 2s.
	BanPoll time.Duration

	// ShutdownRetry is the retry hint of the Kick SHUTDOWN that Stop sends:
	// its until is ShutdownRetry to twice that from the kick. Default 2s.
	ShutdownRetry time.Duration

	// ReadyChecks are more checks of Ready (/readyz), by name: each returns
	// nil when its dependency works (the cluster's bus, for one).
	ReadyChecks map[string]func(context.Context) error

	// Metrics receives the server's figures (metrics.go); nil: none kept.
	// One Metrics serves one Server.
	Metrics *Metrics

	// NodeID is this node's snowflake node id, 0-1023. Default 1.
	NodeID int64
	// Logger receives the server's logs. Default: discard.
	Logger *slog.Logger
}

// DMPolicy says who may send whom direct messages.
type DMPolicy string

// Direct-message policies.
const (
	DMFriends DMPolicy = "friends" // only friends
	DMAnyone  DMPolicy = "anyone"  // any user to any other
)

// Config errors.
var (
	ErrConfig = errors.New("server: invalid config")
)

// number is a config field that defaultTo fills.
type number interface {
	~int | ~int32 | ~int64 | ~uint32 | ~uint64 | ~float64
}

// defaultTo sets *v to def unless *v is positive.
func defaultTo[T number](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

func (c *Config) fill() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:7070"
	}
	defaultTo(&c.EventLoops, runtime.NumCPU())
	defaultTo(&c.FDReserve, 1024)
	if limit := openFileLimit(); limit > 0 {
		fdCap := limit - c.FDReserve
		if c.MaxConns <= 0 || c.MaxConns > fdCap {
			c.MaxConns = fdCap
		}
	}
	defaultTo(&c.MaxFrame, protocol.DefaultMaxFrame)
	defaultTo(&c.RecallWindow, 2*time.Minute)
	defaultTo(&c.MaxMessage, 16<<10)
	defaultTo(&c.Heartbeat, 30*time.Second)
	defaultTo(&c.Workers, 256)
	defaultTo(&c.InboxFrames, 256)
	defaultTo(&c.MaxPendingSends, 256)
	defaultTo(&c.InboxBytes, 256<<10)
	defaultTo(&c.MaxOutbound, 1<<20)
	if c.MaxConnsPerAddr == 0 {
		c.MaxConnsPerAddr = 256
	}
	if c.MaxConnsPerUser == 0 {
		c.MaxConnsPerUser = 32
	}
	defaultTo(&c.FrameTimeout, 10*time.Second)
	defaultTo(&c.KickLinger, 5*time.Second)
	if c.AuthRatePerAddr == 0 {
		c.AuthRatePerAddr = 1
	}
	defaultTo(&c.AuthBurstPerAddr, 10)
	if c.AuthRate == 0 {
		c.AuthRate = 50
	}
	defaultTo(&c.AuthBurst, 100)
	if c.DirRatePerAddr == 0 {
		c.DirRatePerAddr = 2
	}
	defaultTo(&c.DirBurstPerAddr, 20)
	if c.DirRate == 0 {
		c.DirRate = 200
	}
	defaultTo(&c.DirBurst, 400)
	defaultTo(&c.HashWorkers, max(1, runtime.NumCPU()/2))
	defaultTo(&c.HashQueue, 32)
	defaultTo(&c.RekeyFrames, 1<<20)
	defaultTo(&c.RekeyBytes, 1<<30)
	defaultTo(&c.HandshakeWorkers, max(1, runtime.NumCPU()/2))
	defaultTo(&c.HandshakeQueue, 1024)
	if c.HandshakeRatePerAddr == 0 {
		c.HandshakeRatePerAddr = 10
	}
	defaultTo(&c.HandshakeBurstPerAddr, 50)
	if c.HandshakeRate == 0 {
		c.HandshakeRate = -1
	}
	defaultTo(&c.HandshakeBurst, 1000)
	defaultTo(&c.RequestTimeout, 10*time.Second)
	if c.RateLimit == 0 {
		c.RateLimit = 200
	}
	defaultTo(&c.RateBurst, int(2*c.RateLimit))
	if c.BcryptCost == 0 {
		c.BcryptCost = bcrypt.DefaultCost
	}
	defaultTo(&c.TokenTTL, 30*24*time.Hour)
	defaultTo(&c.LoginFailuresPerUser, 5)
	defaultTo(&c.LoginFailuresPerIP, 30)
	defaultTo(&c.LoginFailuresPerAccount, 100)
	defaultTo(&c.LoginWindow, time.Minute)
	defaultTo(&c.SearchConcurrency, max(1, runtime.NumCPU()/2))
	defaultTo(&c.SearchTimeout, 2*time.Second)
	defaultTo(&c.SearchMaxReads, 4000)
	defaultTo(&c.MinTimer, 5*time.Second)
	c.MinTimer = max(c.MinTimer.Round(time.Second), time.Second)
	defaultTo(&c.TimerRate, 0.2)
	defaultTo(&c.TimerBurst, 3)
	defaultTo(&c.ExpireInterval, time.Second)
	defaultTo(&c.ExpireBatch, 256)
	defaultTo(&c.ExpirePerTick, 4096)
	defaultTo(&c.SyncLimit, 100)
	defaultTo(&c.MaxSyncLimit, 500)
	if c.DMPolicy == "" {
		c.DMPolicy = DMFriends
	}
	defaultTo(&c.MaxGroupSize, 2000)
	defaultTo(&c.PresenceGrace, 5*time.Second)
	defaultTo(&c.ReceiptInterval, time.Second)
	defaultTo(&c.TypingTTL, 6*time.Second)
	defaultTo(&c.TypingMaxGroup, 200)
	if c.SignalRate == 0 {
		c.SignalRate = 5
	}
	defaultTo(&c.SignalBurst, 20)
	if c.Presence == nil {
		c.Presence = router.NewMemoryPresence(nil)
	}
	if c.NodeName == "" {
		c.NodeName = c.Addr
	}
	defaultTo(&c.PresenceTTL, 15*time.Second)
	defaultTo(&c.ShutdownRetry, 2*time.Second)
	defaultTo(&c.BanPoll, 2*time.Second)
	if c.NodeID == 0 {
		c.NodeID = 1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	switch {
	case c.MaxConns < 1:
		return fmt.Errorf("%w: MaxConns %d (open-file limit too low for FDReserve %d?)", ErrConfig, c.MaxConns, c.FDReserve)
	case c.MaxFrame < protocol.HeaderSize+64:
		return fmt.Errorf("%w: MaxFrame %d too small", ErrConfig, c.MaxFrame)
	case c.MaxMessage > c.MaxFrame-1024:
		return fmt.Errorf("%w: MaxMessage %d must leave 1 KiB of MaxFrame %d for the other fields", ErrConfig, c.MaxMessage, c.MaxFrame)
	case c.BcryptCost < bcrypt.MinCost || c.BcryptCost > bcrypt.MaxCost:
		return fmt.Errorf("%w: BcryptCost %d", ErrConfig, c.BcryptCost)
	case c.NodeID < 0 || c.NodeID > 1023:
		return fmt.Errorf("%w: NodeID %d not in 0-1023", ErrConfig, c.NodeID)
	case (c.Cluster == nil) != (c.Bus == nil):
		return fmt.Errorf("%w: Cluster and Bus go together", ErrConfig)
	case c.FilesAddr != "" && c.Blobs == nil:
		return fmt.Errorf("%w: FilesAddr needs Blobs", ErrConfig)
	case c.DMPolicy != DMFriends && c.DMPolicy != DMAnyone:
		return fmt.Errorf("%w: DMPolicy %q is neither %q nor %q", ErrConfig, c.DMPolicy, DMFriends, DMAnyone)
	case c.InboxBytes > 1<<30:
		return fmt.Errorf("%w: InboxBytes %d above 1 GiB", ErrConfig, c.InboxBytes)
	case c.SyncLimit > c.MaxSyncLimit:
		return fmt.Errorf("%w: SyncLimit %d above MaxSyncLimit %d", ErrConfig, c.SyncLimit, c.MaxSyncLimit)
	}
	return nil
}

// RaiseOpenFileLimit raises the soft open-file limit to the hard one and
// returns the new soft limit. parleyd calls it at start.
func RaiseOpenFileLimit() (int, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return int(lim.Cur), nil
}

func openFileLimit() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return int(lim.Cur)
}
