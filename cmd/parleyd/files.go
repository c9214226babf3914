package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/parleyim/parley/server/files"
	"github.com/parleyim/parley/storage/blob"
	"github.com/parleyim/parley/storage/blob/s3"
)

// fileOptions configure the file endpoint of attachments and where its
// files go: a local directory, or an S3-compatible bucket when
// --s3-endpoint is set (docs/operations.md, "Attachments").
type fileOptions struct {
	listen string
	url    string
	dir    string
	limits files.Config
	gc     files.GCConfig

	s3 s3.Config
}

func (fo *fileOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&fo.listen, "files-listen", "", "address of the HTTP file endpoint (attachments); empty: off")
	fs.StringVar(&fo.url, "files-url", "", "the endpoint's base URL told to clients (default: http:// and --files-listen); set it behind a TLS proxy")
	fs.StringVar(&fo.dir, "files-dir", "./files", "directory of the files when no S3 store is configured, and of uploads in progress")
	fs.Int64Var(&fo.limits.MaxSize, "files-max-size", 25<<20, "largest file in bytes")
	fs.IntVar(&fo.limits.MaxUploadsPerUser, "files-uploads-per-user", 4, "uploads at once per user")
	fs.Int64Var(&fo.limits.MaxBytesPerUser, "files-bytes-per-user", 0, "bytes of one user's uploads in flight (0: twice --files-max-size)")
	fs.IntVar(&fo.limits.MaxUploads, "files-uploads", 64, "uploads at once on the server")
	fs.Int64Var(&fo.limits.MaxBytes, "files-bytes", 512<<20, "bytes of uploads in flight on the server")
	fs.DurationVar(&fo.limits.IdleTimeout, "files-idle-timeout", 15*time.Second, "a transfer that moves no byte this long is cut")
	fs.Int64Var(&fo.limits.MinRate, "files-min-rate", 32<<10, "bytes per second a transfer must average (after the idle timeout's grace)")
	fs.DurationVar(&fo.gc.Grace, "files-gc-grace", files.DefaultGrace, "a file no stored message holds is removed this long after its last upload (0: never remove files)")
	fs.DurationVar(&fo.gc.Interval, "files-gc-every", time.Minute, "time between two runs of the collector of files")
	fs.IntVar(&fo.gc.Batch, "files-gc-batch", 1000, "files one run of the collector examines at most")
	fs.StringVar(&fo.s3.Endpoint, "s3-endpoint", "", "host:port of an S3-compatible store for the files (empty: --files-dir)")
	fs.StringVar(&fo.s3.Bucket, "s3-bucket", "parley-files", "bucket of the files")
	fs.StringVar(&fo.s3.Region, "s3-region", "", "region of the bucket (empty: ask the store)")
	fs.StringVar(&fo.s3.AccessKey, "s3-access-key", "", "S3 access key id")
	fs.StringVar(&fo.s3.SecretKey, "s3-secret-key", "", "S3 secret access key")
	fs.BoolVar(&fo.s3.Secure, "s3-tls", true, "reach the S3 store over HTTPS")
	fs.StringVar(&fo.s3.Prefix, "s3-prefix", "", "key prefix of Parley's objects in the bucket, e.g. parley/")
	fs.BoolVar(&fo.s3.CreateBucket, "s3-create-bucket", false, "create the bucket if it does not exist")
}

func (fo *fileOptions) validate(cluster bool, bad func(string, ...any)) {
	if fo.limits.MaxSize < 1 {
		bad("--files-max-size %d: want 1 or more bytes", fo.limits.MaxSize)
	}
	if fo.limits.MinRate < 1 {
		bad("--files-min-rate %d: want 1 or more bytes per second", fo.limits.MinRate)
	}
	if fo.gc.Grace != 0 && fo.gc.Grace < time.Minute {
		bad("--files-gc-grace %v: want 0 (off) or at least 1m (an upload's Send comes after it; S3 times have seconds)", fo.gc.Grace)
	}
	if fo.gc.Interval <= 0 || fo.gc.Batch < 1 {
		bad("--files-gc-every and --files-gc-batch must be positive")
	}
	if cluster && fo.listen != "" && fo.s3.Endpoint == "" {
		bad("--files-listen in a cluster needs --s3-endpoint: every node serves every file, so they share one bucket")
	}
	if fo.s3.Endpoint != "" && (fo.s3.AccessKey == "" || fo.s3.SecretKey == "") {
		bad("--s3-endpoint needs --s3-access-key and --s3-secret-key")
	}
}

// open opens the store of the files: nil when the endpoint is off.
func (fo *fileOptions) open() (blob.Store, error) {
	if fo.listen == "" {
		return nil, nil
	}
	if fo.s3.Endpoint == "" {
		return blob.OpenDisk(fo.dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := s3.Open(ctx, fo.s3)
	if err != nil {
		return nil, fmt.Errorf("--s3-endpoint: %w", err)
	}
	return st, nil
}

// spoolDir is where uploads wait for their hash: --files-dir/tmp with S3
// (the Disk store keeps its own).
func (fo *fileOptions) spoolDir() string {
	if fo.s3.Endpoint == "" {
		return ""
	}
	return fo.dir + "/tmp"
}

// gcConfig is the collector's configuration for server.Config.FilesGC.
func (fo *fileOptions) gcConfig() files.GCConfig {
	gc := fo.gc
	if gc.Grace == 0 {
		gc.Grace = -1 // off
	}
	return gc
}
