package blob_test

import (
	"testing"

	"github.com/parleyim/parley/storage/blob"
	"github.com/parleyim/parley/storage/blob/blobtest"
)

func TestDisk(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		d, err := blob.OpenDisk(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}

func TestParseSum(t *testing.T) {
	good := "b94f5ce0690dbe021dcf4110f2c756483eee412ce056843451eb3b19c15547ad"
	if s, ok := blob.ParseSum(good); !ok || s.String() != good {
		t.Fatalf("ParseSum(%q) = %v, %v", good, s, ok)
	}
	for _, bad := range []string{"", "../../etc/passwd", good[:63], good + "0", "B94F5CE0690DBE021DCF4110F2C756483EEE412CE056843451EB3B19C15547AD",
		"..%2f" + good[5:], "g" + good[1:], good[:62] + "/."} {
		if _, ok := blob.ParseSum(bad); ok {
			t.Errorf("ParseSum(%q) accepted", bad)
		}
	}
}
