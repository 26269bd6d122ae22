//go:build linux

package pty

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

func TestSize(t *testing.T) {
	m, s, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defer s.Close()
	if err := SetSize(m, 120, 40); err != nil {
		t.Fatal(err)
	}
	// The slave, which the program holds, sees the size set on the master.
	cols, rows, err := Size(s)
	if err != nil || cols != 120 || rows != 40 {
		t.Fatalf("slave size %d×%d, %v; want 120×40", cols, rows, err)
	}
}

// TestRoundTrip writes through both ends: what the program writes arrives
// at the master with the line discipline's \n → \r\n, what the master
// types arrives at the program as a line.
func TestRoundTrip(t *testing.T) {
	m, s, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defer s.Close()
	if _, err := s.Write([]byte("out\n")); err != nil {
		t.Fatal(err)
	}
	if got := readUntil(t, m, []byte("out\r\n")); !bytes.HasSuffix(got, []byte("out\r\n")) {
		t.Fatalf("master read %q", got)
	}
	if _, err := m.Write([]byte("in\n")); err != nil {
		t.Fatal(err)
	}
	// The master also gets the echo; the slave gets the line.
	if got := readUntil(t, s, []byte("in\n")); !bytes.Equal(got, []byte("in\n")) {
		t.Fatalf("slave read %q", got)
	}
}

// TestCloseEndsRead: the master's reads end once the slave is closed (EIO
// on Linux), which is how a reader learns the program has gone.
func TestCloseEndsRead(t *testing.T) {
	m, s, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s.Close()
	_, err = m.Read(make([]byte, 16))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after the slave closed: %v; want an error", err)
	}
}

func readUntil(t *testing.T, f *os.File, want []byte) []byte {
	t.Helper()
	// A generous deadline only bounds a broken pty; the loop ends as soon
	// as the bytes are there.
	if err := f.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 256)
	for !bytes.Contains(got, want) {
		n, err := f.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("read %q so far: %v", got, err)
		}
	}
	return got
}
