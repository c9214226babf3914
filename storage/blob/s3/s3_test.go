package s3_test

import (
	"context"
	"strings"
	"testing"

	"github.com/parleyim/parley/storage/blob"
	"github.com/parleyim/parley/storage/blob/blobtest"
	"github.com/parleyim/parley/storage/blob/s3"
	"github.com/parleyim/parley/storage/blob/s3/s3test"
)

// TestS3 runs the contract against a real S3-compatible server (S3Proxy of
// `make services`).
func TestS3(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return s3test.Open(t) })
}

func TestOpenRefusesMissingBucketAndBadKeys(t *testing.T) {
	cfg := s3test.Config(t)
	cfg.CreateBucket = false
	if _, err := s3.Open(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Open of a missing bucket without CreateBucket: %v", err)
	}
	cfg = s3test.Config(t)
	cfg.SecretKey = "wrong"
	if _, err := s3.Open(context.Background(), cfg); err == nil {
		t.Fatal("Open with a wrong secret key succeeded")
	}
	cfg.Endpoint = "http://" + cfg.Endpoint
	if _, err := s3.Open(context.Background(), cfg); err == nil {
		t.Fatal("Open of an endpoint with a scheme succeeded")
	}
}
