package files

import "testing"

func TestAdmission(t *testing.T) {
	c := &Config{MaxUploadsPerUser: 2, MaxBytesPerUser: 100, MaxUploads: 3, MaxBytes: 150, MaxDownloadsPerUser: 1, MaxDownloads: 2}
	a := newAdmission(c)
	code := func(e *httpError) string {
		if e == nil {
			return ""
		}
		return e.code
	}
	r1, err := a.upload(1, 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.upload(1, 41); code(err) != "TOO_MANY_UPLOADS" {
		t.Fatalf("user 1 past 100 bytes in flight: %v", err)
	}
	r2, err := a.upload(1, 40)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.upload(1, 0); code(err) != "TOO_MANY_UPLOADS" {
		t.Fatalf("a third upload of user 1 at once: %v", err)
	}
	if _, err := a.upload(2, 51); code(err) != "BUSY" {
		t.Fatalf("past 150 bytes on the server: %v", err)
	}
	r3, err := a.upload(2, 50)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.upload(3, 0); code(err) != "BUSY" {
		t.Fatalf("a fourth upload on the server: %v", err)
	}
	r1()
	r4, err := a.upload(3, 60)
	if err != nil {
		t.Fatalf("after one ended: %v", err)
	}
	r2()
	r3()
	r4()
	if a.uploads != 0 || a.bytes != 0 || len(a.users) != 0 {
		t.Fatalf("after every release: %d uploads, %d bytes, %d users held", a.uploads, a.bytes, len(a.users))
	}

	d1, err := a.download(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.download(1); code(err) != "TOO_MANY_DOWNLOADS" {
		t.Fatalf("a second download of user 1: %v", err)
	}
	d2, _ := a.download(2)
	if _, err := a.download(3); code(err) != "BUSY" {
		t.Fatalf("a third download on the server: %v", err)
	}
	d1()
	d2()
	if a.downloads != 0 || len(a.users) != 0 {
		t.Fatal("downloads held after release")
	}
}
