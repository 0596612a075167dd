// Command go-gzip gzips stdin to stdout with a chosen Go producer, to make the test fixtures
// of airlock's goflate module (issue 6).
//
//	go-gzip gzip LEVEL          Go's compress/gzip, LEVEL 1-9 or -1 (default)
//	go-gzip pgzip LEVEL BLOCK   klauspost/pgzip, LEVEL as above, BLOCK bytes per block (0: default)
//	go-gzip gzip LEVEL FLUSH    as gzip, calling Flush after every FLUSH bytes of input
//
// Build without modules: GO111MODULE=off GOPATH=/usr/share/gocode go build -o go-gzip .
package main

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/klauspost/pgzip"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, "go-gzip:", err)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 3 {
		fail(fmt.Errorf("usage: go-gzip gzip LEVEL | pgzip LEVEL BLOCK"))
	}
	level, err := strconv.Atoi(os.Args[2])
	if err != nil {
		fail(err)
	}
	var w io.WriteCloser
	switch os.Args[1] {
	case "gzip":
		var gw *gzip.Writer
		gw, err = gzip.NewWriterLevel(os.Stdout, level)
		if err == nil && len(os.Args) > 3 {
			every, perr := strconv.Atoi(os.Args[3])
			if perr != nil {
				fail(perr)
			}
			if err := copyFlushing(gw, every); err != nil {
				fail(err)
			}
			if err := gw.Close(); err != nil {
				fail(err)
			}
			return
		}
		w = gw
	case "pgzip":
		var pw *pgzip.Writer
		pw, err = pgzip.NewWriterLevel(os.Stdout, level)
		if err == nil && len(os.Args) > 3 {
			block, perr := strconv.Atoi(os.Args[3])
			if perr != nil {
				fail(perr)
			}
			if block > 0 {
				err = pw.SetConcurrency(block, 4)
			}
		}
		w = pw
	default:
		err = fmt.Errorf("unknown producer %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
	if _, err := io.Copy(w, os.Stdin); err != nil {
		fail(err)
	}
	if err := w.Close(); err != nil {
		fail(err)
	}
}

// copyFlushing copies stdin to w, flushing after every `every` bytes.
func copyFlushing(w *gzip.Writer, every int) error {
	buf := make([]byte, every)
	for {
		n, err := io.ReadFull(os.Stdin, buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if ferr := w.Flush(); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
